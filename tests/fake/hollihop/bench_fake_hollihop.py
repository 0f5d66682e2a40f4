#!/usr/bin/env python3
"""Measure the fake server itself: start time and 1000-row page serve times over HTTP.

    python3 tests/fake/hollihop/bench_fake_hollihop.py [--scale bench] [--pages 20] [--full]

Starts fake_hollihop.py as a subprocess (rate limit off), then times keep-alive POST requests
as a client would send them. --full also pages through every paged method once (a whole
export's worth of fake-side time).
"""
import argparse
import json
import http.client
import os
import statistics
import subprocess
import sys
import time
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
KEY = "bench/Key+1"
DAYS = {"queryDays": "true", "dateFrom": "2024-09-01", "dateTo": "2025-05-31"}
CASES = [
    ("GetPayments", {}), ("GetStudents", {}), ("GetLeads", {}), ("GetStudyRequests", {}),
    ("GetHistoryModifyLeadStatus", {}), ("GetEdUnits", {}), ("GetEdUnits", DAYS),
    ("GetEdUnitStudents", {}),
    ("GetEdUnitStudents", {"queryDays": "true", "queryPayers": "true",
                           "dateFrom": "2025-05-01", "dateTo": "2025-05-31"}),
    ("GetEdUnitLeads", {}), ("GetBalances", {"balanceDate": "2025-06-01"}),
    ("GetLessonPlans", {}), ("GetSupplies", {}),
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", default="bench")
    ap.add_argument("--pages", type=int, default=20, help="pages sampled per case")
    ap.add_argument("--take", type=int, default=1000)
    ap.add_argument("--full", action="store_true", help="also page through everything once")
    a = ap.parse_args()
    t0 = time.perf_counter()
    p = subprocess.Popen([sys.executable, os.path.join(HERE, "fake_hollihop.py"), "--port", "0",
                          "--authkey", KEY, "--scale", a.scale, "--rate-limit", "0"],
                         stdout=subprocess.PIPE, text=True)
    port = int(p.stdout.readline().split("=")[1])
    t1 = time.perf_counter()
    c = http.client.HTTPConnection("127.0.0.1", port)

    def call(m, **kw):
        kw["authkey"] = KEY
        t = time.perf_counter()
        c.request("POST", "/Api/V2/" + m, body=urllib.parse.urlencode(kw),
                  headers={"Content-Type": "application/x-www-form-urlencoded"})
        r = c.getresponse()
        b = r.read()
        return time.perf_counter() - t, b

    dt, _ = call("GetLocations")
    print(f"scale={a.scale}: process start -> 'listening' line {1000 * (t1 - t0):.0f} ms; "
          f"first answer after {1000 * (time.perf_counter() - t0):.0f} ms")
    time.sleep(2)   # let the background warm-up finish
    for m, kw in CASES:
        cnt = json.loads(urllib.request.urlopen(
            f"http://127.0.0.1:{port}/_fake/count?method={m}&children=0").read())["rows"]
        ts, size = [], 0
        for k in range(a.pages):
            skip = (k * 7919 * a.take) % max(1, cnt - a.take)
            dt, b = call(m, take=a.take, skip=skip, **kw)
            ts.append(dt * 1000)
            size = max(size, len(b))
        ts.sort()
        label = m + (" +days" if kw.get("queryDays") else "")
        print(f"{label:34s} take={a.take}: median {statistics.median(ts):6.1f} ms  "
              f"p90 {ts[int(len(ts) * 0.9) - 1]:6.1f} ms  max {ts[-1]:6.1f} ms  ~{size // 1024} KiB")
    if a.full:
        roots = {"GetHistoryModifyLeadStatus": "Actions"}
        for m, kw in CASES:
            root = roots.get(m, m[3:])
            served = 0.0
            skip = pages = 0
            while True:
                dt, b = call(m, take=a.take, skip=skip, **kw)
                served += dt
                pages += 1
                skip += a.take
                if len(json.loads(b)[root]) < a.take:
                    break
            print(f"full pass {m}{' +days' if kw.get('queryDays') else ''}: {pages} pages, "
                  f"{served:.1f} s serving")
    p.terminate()
    p.wait()


if __name__ == "__main__":
    main()

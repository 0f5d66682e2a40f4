#!/usr/bin/env python3
"""Measure the fake amoCRM at bench scale: start time, cold and cached 250-row pages.

    python3 tests/fake/amocrm/bench_fake_amocrm.py [--scale bench] [--pages 40]

Starts fake_amocrm.py (--no-auth --rps 0), reads pages over one keep-alive connection and
prints client-side wall times plus the server's own wall/CPU times (from /_fake/stats "timing";
CPU time is the figure that survives a busy machine).
"""

import argparse
import http.client
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))

LISTS = [("leads", "/api/v4/leads?limit=250&page=%d"),
         ("leads with=contacts,...", "/api/v4/leads?limit=250&with=contacts,catalog_elements,loss_reason,source_id&page=%d"),
         ("contacts", "/api/v4/contacts?limit=250&page=%d"),
         ("companies with=contacts,leads", "/api/v4/companies?limit=250&with=contacts,leads&page=%d"),
         ("tasks", "/api/v4/tasks?limit=250&page=%d"),
         ("leads/notes", "/api/v4/leads/notes?limit=250&page=%d"),
         ("events (100 per page)", "/api/v4/events?limit=100&page=%d"),
         ("leads by updated_at", "/api/v4/leads?limit=250&order%%5Bupdated_at%%5D=asc"
                                 "&filter%%5Bupdated_at%%5D%%5Bfrom%%5D=1700000000&page=%d")]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", default="bench")
    ap.add_argument("--pages", type=int, default=30, help="pages per list and pass")
    a = ap.parse_args()
    t0 = time.perf_counter()
    p = subprocess.Popen([sys.executable, os.path.join(HERE, "fake_amocrm.py"), "--port", "0",
                          "--scale", a.scale, "--no-auth", "--rps", "0"],
                         stdout=subprocess.PIPE, text=True)
    port = int(p.stdout.readline().split("=")[1])
    print("start: %.0f ms to the 'listening' line" % ((time.perf_counter() - t0) * 1000))
    c = http.client.HTTPConnection("127.0.0.1", port)

    def call(method, path, body=None):
        t = time.perf_counter()
        c.request(method, path, body=body)
        r = c.getresponse()
        b = r.read()
        return r.status, (time.perf_counter() - t) * 1000, b

    try:
        while json.loads(call("GET", "/_fake/stats")[2])["warm"] != 1:
            time.sleep(0.05)                # the background warm-up: measure after it
        for label, path in LISTS:
            for pass_ in ("cold", "cached"):
                call("POST", "/_fake/reset_stats", b"{}")
                ms, size = [], 0
                for pg in range(2, a.pages + 2):
                    st, t, b = call("GET", path % pg)
                    ms.append(t)
                    size = max(size, len(b))
                ms.sort()
                st, _, b = call("GET", "/_fake/stats")
                tm = list(json.loads(b)["timing"].values())[0]
                print("%-30s %-6s client median %5.1f ms p90 %5.1f | server avg %5.1f ms, cpu %5.1f ms"
                      " | %d KB" % (label, pass_, ms[len(ms) // 2], ms[int(len(ms) * 0.9)],
                                   tm["avg_ms"], tm["avg_cpu_ms"], size // 1024))
        t = time.perf_counter()
        pg = 1
        while call("GET", "/api/v4/contacts?limit=250&page=%d" % pg)[0] == 200:
            pg += 1
        print("walk: all contacts, %d pages to the 204, in %.2f s" % (pg - 1, time.perf_counter() - t))
        with open("/proc/%d/status" % p.pid) as f:
            rss = [line for line in f if line.startswith("VmRSS")]
        print("server " + (rss[0].strip() if rss else "RSS unknown"))
    finally:
        p.terminate()
        p.wait()


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""sync_path.py - hollihop-sync's own path (download, parse, normalise, pack, NNG) against
curl, on one fake that has already served every request once (a warm fake for both).

One fake Hollihop (rate limit off) and one null store (bench/hollihop/null_store.c) for the
whole run. A first hollihop-sync pass warms the fake (its rendered rows are kept) and logs
the requests; then, ROUNDS times, curl downloads those same requests over one keep-alive
connection and every build given runs hollihop-sync --run-now into the null store, in
turn, so the figures of one round met the same machine. Per step: wall, CPU seconds
(user+sys) of hollihop-sync and of the fake, and the CPU the fake spent per MB served.

    CS_BUILD_DIRS="build-a build-b" python3 bench/hollihop/sync_path.py [--rounds 2]
        [--scale bench] [--concurrency N] [--keep]
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_hollihop as bh  # noqa: E402 - cpu_s, wait_for, run_sync, stack, KEY


def curl_cfg(log_path, base, path):
    reqs = []
    for line in open(log_path):
        m = re.search(r"ev=api\.request method=(\S+) form=\"(.*)\"$", line.rstrip("\n"))
        if m:
            reqs.append((m.group(1), m.group(2)))
    enc = "authkey=" + urllib.parse.quote(bh.KEY, safe="")
    with open(path, "w") as f:
        for i, (meth, form) in enumerate(reqs):
            if i:
                f.write("next\n")
            f.write(f'url = "{base}/{meth}?culture=ru-RU"\n')
            f.write(f'data = "{enc}{form}"\n')
            f.write("output = /dev/null\nsilent\n")
    return len(reqs)


def short(path):
    return "/".join(path.split("/")[-2:])


def loadavg():
    return open("/proc/loadavg").read().split()[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", default="bench")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--per-client", type=int, default=1000)
    ap.add_argument("--concurrency", default=None, help="CS_HOLLIHOP_CONCURRENCY (default: the service's)")
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    builds = [os.path.abspath(b) for b in os.environ.get("CS_BUILD_DIRS", os.path.join(bh.ROOT, "build-rel")).split()]
    tmp = tempfile.mkdtemp(prefix="crmsync-bench-hhpath-")
    os.chmod(tmp, 0o755)
    procs = []
    try:
        procs.append("fake")
        base = bh.stack.fake_start(tmp, "fake", "hollihop", "--scale", a.scale, "--rate-limit", "0",
                                   "--authkey", bh.KEY) + "/Api/V2"
        env = dict(os.environ, CS_HOLLIHOP_BASE_URL=base, CS_HOLLIHOP_AUTHKEY=bh.KEY, CS_HOLLIHOP_RATE="0",
                   CS_HOLLIHOP_SCHEDULE="off", CS_HOLLIHOP_HEALTH_URL=f"ipc://{tmp}/hh-health.sock",
                   CS_HOLLIHOP_DATE_FROM="2025-03-01", CS_HOLLIHOP_DATE_TO="2025-05-31",
                   CS_HOLLIHOP_PER_CLIENT_LIMIT=str(a.per_client), CS_STORE_URL=f"ipc://{tmp}/null.sock")
        if a.concurrency:
            env["CS_HOLLIHOP_CONCURRENCY"] = a.concurrency
        procs.append("null")
        bh.stack.run(tmp, "null", [f"{builds[0]}/bench/hollihop/hollihop_null_store"], env)
        bh.wait_for(lambda: "null_store: ready" in open(os.path.join(tmp, "null.log")).read(), 20,
                    "the null store")
        fake = bh.stack.pid(tmp, "fake")

        def step(name, fn):
            la, c0 = loadavg(), bh.cpu_s(fake)
            wall, cpu, extra = fn()
            cf = bh.cpu_s(fake) - c0
            print(f"  {name:<40} {wall:6.1f} s  sync CPU {cpu:5.1f} s  fake CPU {cf:5.1f} s"
                  f"  load {la}{extra}", flush=True)
            return wall

        def sync(b, log):
            def fn():
                wall, rc, rss, cpu = bh.run_sync(b, env, log, tmp)
                if rc != 0:
                    sys.exit(f"sync_path: {b} exited {rc} (log {log})")
                return wall, cpu, f"  RSS {rss} MB"
            return fn

        warm = os.path.join(tmp, "warm.log")
        print(f"hollihop-sync's path, scale={a.scale}, warm fake, null store; builds: {' '.join(builds)}")
        step("warm-up (fake cold): " + short(builds[0]), sync(builds[0], warm))
        cfg = os.path.join(tmp, "curl.cfg")
        n = curl_cfg(warm, base, cfg)
        print(f"  {n} requests")

        def curl():
            t0 = time.perf_counter()
            subprocess.run(["curl", "-K", cfg], check=True)
            return time.perf_counter() - t0, 0.0, ""
        for r in range(a.rounds):
            t_curl = step(f"round {r + 1}: curl", curl)
            for i, b in enumerate(builds):
                w = step(f"round {r + 1}: {short(b)}", sync(b, os.path.join(tmp, f"r{r}-{i}.log")))
                print(f"    = {w / t_curl:.2f} x curl")
    finally:
        bh.stack.bench_end(tmp, procs, a.keep)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""bench_hollihop.py - full Hollihop export through crmsync, next to a plain curl download.

In one run, on one throwaway PostgreSQL, against the fake Hollihop at bench scale (100k
students, 500k payments, 20k ed units with lesson days; its rate limit off):
  1. hollihop-sync --run-now (every catalogue method) against a null store that acks at once:
     the sync service's own cost (download, parse, normalise, pack, NNG); twice, since the
     first pass meets the fake cold (it keeps the rows it renders) and everything after
     it meets the fake warm: the second pass is the figure;
  2. baseline: the very same requests (replayed from step 1's -v log) downloaded by one curl
     process over one keep-alive connection, bodies discarded;
  3. the pipeline: hollihop-sync -> crmsync-store -> PostgreSQL; wall time, rows, rows/s,
     peak RSS of hollihop-sync and of the store, CPU seconds of every process.
Goals: the pipeline takes at most 25% longer than the download; hollihop-sync < 64 MB RSS.

    bench/hollihop/run.sh            (builds in Release, then runs this)
    CS_BUILD_DIR=build-rel python3 bench/hollihop/bench_hollihop.py [--scale bench]
        [--per-client 1000] [--date-from 2025-03-01] [--date-to 2025-05-31] [--durable 1]
CS_PG_OPTS adds server options to the cluster's (e.g. "-c shared_preload_libraries=pg_stat_statements"
with --keep, to see afterwards which statements the export's time went to).
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.parse

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests/harness"))
import stack  # noqa: E402 - the launchers every test uses (tests/harness/README.md)
KEY = "bench/Key+1=="


def vm(pid, field):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) // 1024
    except OSError:
        pass
    return -1


def cpu_s(pid):
    """user+system CPU seconds of a live process."""
    try:
        f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return -1.0


def pg_cpu_s(pgdir):
    """CPU seconds of every process of the cluster (postmaster and its backends)."""
    try:
        pm = int(open(f"{pgdir}/data/postmaster.pid").readline())
    except OSError:
        return -1.0
    total = 0.0
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                f = open(f"/proc/{d}/stat").read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(d) == pm or int(f[1]) == pm:
                total += (int(f[11]) + int(f[12]) + int(f[13]) + int(f[14])) / os.sysconf("SC_CLK_TCK")
    return total


def wait_for(pred, timeout, what):
    end = time.time() + timeout
    while time.time() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    sys.exit(f"bench: timed out waiting for {what}")


def run_sync(build, env, log_path, tmp):
    """hollihop-sync --run-now -v; (wall s, exit code, peak RSS MB, CPU s)."""
    rss_path = os.path.join(tmp, "hh.time")
    t0 = time.perf_counter()
    with open(log_path, "w") as log:
        rc = subprocess.run(["/usr/bin/time", "-f", "%U %S %M", "-o", rss_path,
                             f"{build}/services/hollihop-sync/crmsync-hollihop-sync", "--run-now", "-v"],
                            env=env, stdout=log, stderr=log).returncode
    wall = time.perf_counter() - t0
    tl = open(rss_path).read().split()
    return wall, rc, int(tl[-1]) // 1024, float(tl[-3]) + float(tl[-2])


def print_phases(path):
    """Sum the store's batch.timing lines per run: where the batch time went."""
    runs, cur = [], None
    for line in open(path):
        if "ev=run.started" in line:
            cur = {}
            runs.append(cur)
        elif "ev=batch.timing" in line and cur is not None:
            for k, v in re.findall(r"(\w+)=(\d+)", line):
                if k in ("n", "new", "same", "staged") or k.endswith("_us"):
                    cur[k] = cur.get(k, 0) + int(v)
    for i, r in enumerate(runs, 1):
        if not r:
            continue
        t = r["total_us"] / 1e6
        parts = ", ".join(f"{k[:-3]} {r[k] / 1e6:.1f}" for k in
                          ("prep_us", "lookup_us", "direct_us", "staged_us", "commit_us"))
        rest = t - sum(r[k] for k in ("prep_us", "lookup_us", "direct_us", "staged_us", "commit_us")) / 1e6
        print(f"  store export {i}: {t:.1f} s in batches ({parts}, other {rest:.1f}); "
              f"records new {r['new']}, unchanged {r['same']}, staged {r['staged']}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", default="bench")
    ap.add_argument("--per-client", type=int, default=1000,
                    help="CS_HOLLIHOP_PER_CLIENT_LIMIT (per-client methods cost one call per client)")
    ap.add_argument("--date-from", default="2025-03-01")
    ap.add_argument("--date-to", default="2025-05-31")
    ap.add_argument("--durable", type=int, default=int(os.environ.get("CS_PG_DURABLE", "1")),
                    help="1 = PostgreSQL with fsync/synchronous_commit on (production), 0 = off")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir")
    ap.add_argument("--store-phases", action="store_true",
                    help="run the store with -v and print where its batch time went")
    ap.add_argument("--second", action="store_true",
                    help="also time a second export of the same data (the nightly steady state)")
    a = ap.parse_args()
    build = os.path.abspath(os.environ.get("CS_BUILD_DIR", os.path.join(ROOT, "build-rel")))
    tmp = tempfile.mkdtemp(prefix="crmsync-bench-hh-")
    os.chmod(tmp, 0o755)
    procs = []          # names of the processes started under tmp (tests/harness/svc)
    pgdir = os.path.join(tmp, "pg")
    try:
        # -- PostgreSQL
        dsn = stack.pg_start(pgdir, env=dict(os.environ, CS_PG_DURABLE=str(int(a.durable)),
                                             CS_PG_OPTS="-c max_wal_size=4GB " + os.environ.get("CS_PG_OPTS", "")))

        # -- the fake
        procs.append("fake")
        base = stack.fake_start(tmp, "fake", "hollihop", "--scale", a.scale, "--rate-limit", "0",
                                "--authkey", KEY) + "/Api/V2"

        # -- 1. hollihop-sync against the null store
        env = dict(os.environ, CS_HOLLIHOP_BASE_URL=base, CS_HOLLIHOP_AUTHKEY=KEY, CS_HOLLIHOP_RATE="0",
                   CS_HOLLIHOP_SCHEDULE="off", CS_HOLLIHOP_HEALTH_URL=f"ipc://{tmp}/hh-health.sock",
                   CS_HOLLIHOP_DATE_FROM=a.date_from, CS_HOLLIHOP_DATE_TO=a.date_to,
                   CS_HOLLIHOP_PER_CLIENT_LIMIT=str(a.per_client))
        nenv = dict(env, CS_STORE_URL=f"ipc://{tmp}/null.sock")
        procs.append("null")
        stack.run(tmp, "null", [f"{build}/bench/hollihop/hollihop_null_store"], nenv)
        wait_for(lambda: "null_store: ready" in open(os.path.join(tmp, "null.log")).read(), 20, "the null store")
        t_cold, rc, _, _ = run_sync(build, nenv, os.path.join(tmp, "hh-null.log"), tmp)
        if rc != 0:
            sys.exit(f"bench: hollihop-sync (null store) exited {rc}")
        # The first pass met the fake cold (it renders and keeps every row then), curl's
        # replay below and the exports after it meet it warm: the null-store figure that
        # compares with curl is a second pass, on the fake as curl finds it.
        t_null, rc, null_rss, c_null = run_sync(build, nenv, os.path.join(tmp, "hh-null-2.log"), tmp)
        stack.stop(tmp, "null")
        null_counts = "".join(x for x in open(os.path.join(tmp, "null.log")) if "batches=" in x).strip()
        if rc != 0:
            sys.exit(f"bench: hollihop-sync (null store) exited {rc}")

        # -- 2. the same requests with curl
        reqs = []
        for line in open(os.path.join(tmp, "hh-null.log")):
            m = re.search(r"ev=api\.request method=(\S+) form=\"(.*)\"$", line.rstrip("\n"))
            if m:
                reqs.append((m.group(1), m.group(2)))
        cfg = os.path.join(tmp, "curl.cfg")
        enc = "authkey=" + urllib.parse.quote(KEY, safe="")
        with open(cfg, "w") as f:
            for i, (meth, form) in enumerate(reqs):
                if i:
                    f.write("next\n")
                f.write(f'url = "{base}/{meth}?culture=ru-RU"\n')
                f.write(f'data = "{enc}{form}"\n')
                f.write("output = /dev/null\nsilent\n")
        # The fake's speed varies from run to run (Python): download twice, compare with the
        # faster one (the strict baseline), and print both.
        t_curls = []
        for _ in range(2):
            t0 = time.perf_counter()
            subprocess.run(["curl", "-K", cfg], check=True)
            t_curls.append(time.perf_counter() - t0)
        t_curl = min(t_curls)

        # -- 3. the pipeline: the store and PostgreSQL
        senv = dict(env, CS_STORE_URL=f"ipc://{tmp}/store.sock",
                    CS_STORE_HEALTH_URL=f"ipc://{tmp}/store-health.sock", CS_PG_DSN=dsn)
        sargs = [f"{build}/services/store/crmsync-store"] + (["-v"] if a.store_phases else [])
        procs.append("store")
        stack.run(tmp, "store", sargs, senv)
        wait_for(lambda: "store.ready" in open(os.path.join(tmp, "store.log")).read(), 60, "the store")
        hlog_path = os.path.join(tmp, "hollihop-sync.log")
        fake, store = stack.pid(tmp, "fake"), stack.pid(tmp, "store")
        c_fake, c_store, c_pg = cpu_s(fake), cpu_s(store), pg_cpu_s(pgdir)
        t_pipe, rc, hh_rss, c_hh = run_sync(build, senv, hlog_path, tmp)
        store_rss = vm(store, "VmHWM")
        c_fake, c_store, c_pg = cpu_s(fake) - c_fake, cpu_s(store) - c_store, pg_cpu_s(pgdir) - c_pg
        if rc != 0:
            sys.exit(f"bench: hollihop-sync exited {rc}; see {hlog_path}")
        q = lambda sql: subprocess.run(["psql", "-At", "-h", pgdir, "-U", "postgres", "crmsync", "-c", sql],
                                       capture_output=True, text=True, check=True).stdout.strip()
        status, progress = q("SELECT status || '|' || progress FROM crmsync.sync_runs ORDER BY id DESC LIMIT 1").split("|", 1)
        progress = json.loads(progress)
        rows = sum(v["rows"] for v in progress.values())
        pages = sum(v["pages"] for v in progress.values())
        nbytes = 0
        for line in open(hlog_path):
            m = re.search(r"ev=run\.end .* bytes=(\d+)", line)
            if m:
                nbytes = int(m.group(1))

        t_second = None
        if a.second:
            t_second, rc, _, _ = run_sync(build, senv, os.path.join(tmp, "hollihop-sync-2.log"), tmp)
            if rc != 0:
                sys.exit("bench: the second export failed")
        big = {t: q(f"SELECT count(*) FROM hollihop.{t}") for t in
               ("students", "payments", "ed_units", "ed_unit_days", "ed_unit_students",
                "ed_unit_student_days", "leads")}
        print(f"hollihop export, scale={a.scale}, PostgreSQL durable={a.durable}, "
              f"lesson days {a.date_from}..{a.date_to}, per-client methods capped at {a.per_client} clients")
        print("  rows: " + ", ".join(f"{k}={v}" for k, v in big.items()))
        print(f"  run status             {status}; {null_counts} (both null-store passes)")
        print(f"  requests               {len(reqs)} ({pages} pages), {nbytes / 1e6:.0f} MB received")
        print(f"  rows (parents)         {rows}")
        print(f"  1. curl download only  {t_curl:7.1f} s  (the faster of {t_curls[0]:.1f} and {t_curls[1]:.1f} s)")
        print(f"  2. hollihop-sync, null store {t_null:7.1f} s  ({100 * (t_null / t_curl - 1):+.1f} % over the download; "
              f"{c_null:.1f} CPU s; peak RSS {null_rss} MB; its first pass, on the fake cold, {t_cold:.1f} s)")
        print(f"  3. full pipeline       {t_pipe:7.1f} s  ({100 * (t_pipe / t_curl - 1):+.1f} % over the download, "
              f"goal <= +25 %; {rows / t_pipe:,.0f} rows/s)")
        if t_second is not None:
            print(f"  4. second export, same data {t_second:7.1f} s  ({100 * (t_second / t_curl - 1):+.1f} % over the download)")
        print(f"  peak RSS hollihop-sync {hh_rss} MB (goal < 64 MB); store {store_rss} MB")
        if a.store_phases:
            print_phases(os.path.join(tmp, "store.log"))
        print(f"  CPU during 3: hollihop-sync {c_hh:.1f} s, store {c_store:.1f} s, "
              f"PostgreSQL {c_pg:.1f} s, fake {c_fake:.1f} s (2 vCPU: {2 * t_pipe:.0f} CPU s available)")
    finally:
        stack.bench_end(tmp, procs, a.keep, pgdir)


if __name__ == "__main__":
    main()

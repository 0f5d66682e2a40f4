#!/usr/bin/env python3
"""nightly.py - what a nightly Hollihop export costs a large school: changed-only vs full.

One throwaway PostgreSQL, the real store and hollihop-sync, the fake Hollihop with N
students (default 100,000). Three runs of the same entities (default: students and the
per-client methods that have changed_by in the catalogue; --entities all for everything):
  1. first export into an empty database (no cursor yet: a sweep, every client);
  2. nightly: --changed-pct of the students edited (Updated bumped), CS_HOLLIHOP_SWEEP_EVERY
     at its default: the per-client methods call the changed clients only;
  3. full: the same edits again, CS_HOLLIHOP_SWEEP_EVERY=0 (today's behaviour before the
     change, and what every weekly sweep costs): every client.
For each: requests (the fake's count), wall time, the floor (requests / the allowed rate,
when --rate is set: the fake enforces it and hollihop-sync is configured alike) and what
the run would take at the default limit of 600 requests per 30 s (requests / 20 per s).

    bench/hollihop/nightly.sh [--students 100000] [--changed-pct 1] [--rate 6000/30]
        [--entities students,client_files,student_personal_office_settings|all]
"""
import argparse
import os
import subprocess
import sys
import json
import tempfile
import time
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests/harness"))
import stack  # noqa: E402 - the launchers every test uses (tests/harness/README.md)
KEY = "bench/Key+1=="
DEFAULT_RATE = 600 / 30.0
# The methods called once per client (catalogue: PAGE_PER_PARENT).
PER_CLIENT = ("GetIncomesAndOutgoes", "GetClientFiles", "GetStudentPersonalOfficeSettings")


def http(base, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, headers={"Content-Type": "application/json"})
    return json.loads(urllib.request.urlopen(req, timeout=600).read())


def wait_rebuilt(dsn, timeout=600):
    """The store rebuilds the analytic tables after it acknowledges a complete run's end, so
    a run started at once would wait for that rebuild behind its RunBegin (at 100,000
    students ~14 s). A nightly run starts hours after the last one: wait for the store to be
    idle again (nothing to wait for with CS_STORE_ANALYTICS=off)."""
    if os.environ.get("CS_STORE_ANALYTICS", "on") == "off":
        return
    q = ("SELECT coalesce(max(rebuilt_at) >= (SELECT max(finished_at) FROM crmsync.sync_runs "
         "WHERE status = 'complete'), true) FROM crmsync.analytics_state")
    end = time.time() + timeout
    while time.time() < end:
        out = subprocess.run(["psql", dsn, "-Atc", q], capture_output=True, text=True)
        if out.stdout.strip() == "t":
            return
        time.sleep(0.2)
    print("bench: the store's rebuild after the run did not end in time; going on", file=sys.stderr)


def cpu_s(pid):
    """user+system CPU seconds of a live process (and its reaped children)."""
    try:
        f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        return sum(int(x) for x in f[11:15]) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return 0.0


def pg_cpu_s(pgdir):
    """CPU seconds of the PostgreSQL cluster: the postmaster and its live children."""
    try:
        pm = int(open(f"{pgdir}/data/postmaster.pid").readline())
    except (OSError, ValueError):
        return 0.0
    total = cpu_s(pm)
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                st = open(f"/proc/{d}/stat").read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(st[1]) == pm:
                total += cpu_s(int(d))
    return total


def entity_times(log_path):
    """[(entity, pages, ms)] from hollihop-sync's export.entity_done lines."""
    out = []
    for line in open(log_path, errors="replace"):
        if "ev=export.entity_done" in line:
            f = dict(kv.split("=", 1) for kv in line.split() if "=" in kv)
            out.append((f.get("entity", "?"), int(f.get("pages", 0)), int(f.get("ms", 0))))
    return out


def run_sync(build, env, log_path, verbose=False):
    """hollihop-sync --run-now; (wall s, exit code, peak RSS MB, CPU s)."""
    tfile = log_path + ".time"
    t0 = time.perf_counter()
    with open(log_path, "w") as log:
        rc = subprocess.run(["/usr/bin/time", "-f", "%U %S %M", "-o", tfile,
                             f"{build}/services/hollihop-sync/crmsync-hollihop-sync", "--run-now"]
                            + (["--verbose"] if verbose else []),
                            env=env, stdout=log, stderr=log).returncode
    wall = time.perf_counter() - t0
    u, s, m = open(tfile).read().split()[-3:]
    return wall, rc, int(m) // 1024, float(u) + float(s)


def vm_hwm_mb(pid):
    """Peak resident set (VmHWM) of a live process, in MB."""
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) // 1024
    return -1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--students", type=int, default=100000)
    ap.add_argument("--changed-pct", type=float, default=1.0)
    ap.add_argument("--rate", default="0", help="N/S: N requests per S seconds, enforced by the fake "
                    "and configured in hollihop-sync (0 = no limit)")
    ap.add_argument("--entities", default="all")
    ap.add_argument("--scale-all", action="store_true",
                    help="scale the other large entities (payments, leads, ed units...) with "
                         "--students, as a school of that size (default: bench scale)")
    ap.add_argument("--setup-unlimited", action="store_true",
                    help="the first export (setup) without the rate limit; only the runs after it "
                         "are limited (a nightly run at the default limit without hours of setup)")
    ap.add_argument("--runs", default="first,nightly,full",
                    help="which runs to report (the first export always runs)")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--verbose", action="store_true",
                    help="hollihop-sync logs debug lines too (export.batch, batch.committed "
                    "store_ms, fetch.times: where a run's time goes; with --keep)")
    a = ap.parse_args()
    build = os.path.abspath(os.environ.get("CS_BUILD_DIR", os.path.join(ROOT, "build-hh-rel")))
    rate_n, rate_s = (int(a.rate.split("/")[0]), float(a.rate.split("/")[1])) if "/" in a.rate else (0, 30.0)
    tmp = tempfile.mkdtemp(prefix="crmsync-bench-nightly-")
    os.chmod(tmp, 0o755)
    procs = []          # names of the processes started under tmp (tests/harness/svc)
    pgdir = os.path.join(tmp, "pg")
    try:
        dsn = stack.pg_start(pgdir, env=dict(os.environ, CS_PG_DURABLE="1", CS_PG_OPTS="-c max_wal_size=4GB"))

        scaled = []
        if a.scale_all:
            f = a.students / 100000
            for k, n in (("leads", 150000), ("study-requests", 60000), ("payments", 500000),
                         ("ed-units", 20000), ("lesson-plans", 100000), ("supplies", 20000),
                         ("companies", 500)):
                scaled += [f"--{k}", str(max(1, int(n * f)))]
        procs.append("fake")
        fbase = stack.fake_start(tmp, "fake", "hollihop", "--scale", "bench", "--students", a.students, *scaled,
                                 "--rate-limit", rate_n, "--rate-window", rate_s, "--authkey", KEY)
        fake = stack.pid(tmp, "fake")
        env = dict(os.environ, CS_HOLLIHOP_BASE_URL=fbase + "/Api/V2", CS_HOLLIHOP_AUTHKEY=KEY,
                   CS_HOLLIHOP_RATE=str(rate_n), CS_HOLLIHOP_RATE_WINDOW=f"{int(rate_s * 1000)}ms",
                   CS_HOLLIHOP_SCHEDULE="off", CS_HOLLIHOP_HEALTH_URL=f"ipc://{tmp}/hh-health.sock",
                   CS_HOLLIHOP_URL=f"ipc://{tmp}/hh.sock", CS_STORE_URL=f"ipc://{tmp}/store.sock",
                   CS_STORE_HEALTH_URL=f"ipc://{tmp}/store-health.sock", CS_PG_DSN=dsn)
        if a.entities != "all":
            env["CS_HOLLIHOP_ENTITIES"] = a.entities
        procs.append("store")
        store = stack.run(tmp, "store", [f"{build}/services/store/crmsync-store"], env)
        end = time.time() + 60
        while "store.ready" not in open(os.path.join(tmp, "store.log")).read():
            if time.time() > end:
                sys.exit("bench: the store did not start")
            time.sleep(0.05)

        keys = http(fbase, "/_fake/keys?method=GetStudents")["keys"]
        nchange = max(1, int(len(keys) * a.changed_pct / 100))
        step = max(1, len(keys) // nchange)
        changed = [k[0] if isinstance(k, list) else k for k in keys[::step][:nchange]]

        def edit(tag):
            for i in range(0, len(changed), 1000):
                http(fbase, "/_fake/mutate", {"ops": [{"op": "edit", "method": "GetStudents", "key": k,
                                                       "set": {"FirstName": f"{tag} {k}"}}
                                                      for k in changed[i:i + 1000]]})

        results = []
        wanted = a.runs.split(",")
        for tag, name, extra, mutate in (
                ("first", "first export (empty database, a sweep)", {}, None),
                ("nightly", f"nightly, {a.changed_pct:g}% of students changed", {}, "nightly"),
                ("full", "full (SWEEP_EVERY=0: before, and every sweep)",
                 {"CS_HOLLIHOP_SWEEP_EVERY": "0"}, "full")):
            if tag != "first" and tag not in wanted:
                continue
            if mutate:
                edit(mutate)
                time.sleep(1.1)		# Updated has 1 s resolution: the next run is later
            limited = rate_n and not (a.setup_unlimited and tag == "first")
            http(fbase, "/_fake/config", {"rate_limit": rate_n if limited else 0})
            if not limited:
                extra = dict(extra, CS_HOLLIHOP_RATE="0")
            http(fbase, "/_fake/reset_stats", {})
            c0 = (cpu_s(fake), cpu_s(store), pg_cpu_s(pgdir))
            wall, rc, rss, sync_cpu = run_sync(build, dict(env, **extra), os.path.join(tmp, f"hh-{tag}.log"),
                                             a.verbose)
            cpu = (sync_cpu,) + tuple(b - a for a, b in zip(c0, (cpu_s(fake), cpu_s(store),
                                                                   pg_cpu_s(pgdir))))
            if rc != 0:
                sys.exit(f"bench: run '{name}' exited {rc}; see {tmp}")
            wait_rebuilt(dsn)
            if tag not in wanted:
                continue
            if not limited and rate_n:
                name += " (no limit)"
            st = http(fbase, "/_fake/stats")
            per = st["requests"]
            pc = sum(per.get(m, 0) for m in PER_CLIENT)
            ents = entity_times(os.path.join(tmp, f"hh-{tag}.log"))
            results.append((name, st["requests_total"], pc, wall, rss, vm_hwm_mb(store),
                            st.get("rate_limited", 0), dict(per), limited, cpu, ents))

        print(f"hollihop nightly export: {len(keys)} students, {nchange} changed "
              f"({a.changed_pct:g}%), entities: {a.entities}; "
              f"rate limit {'off' if not rate_n else f'{rate_n}/{rate_s:g} s (fake and hollihop-sync)'}; "
              f"{os.cpu_count()} CPUs, load {open('/proc/loadavg').read().split()[0]}"
              f"{'; other entities scaled with the students' if a.scale_all else ''}")
        print(f"{'run':48} {'requests':>9} {'per-client':>10} {'wall':>8} {'floor':>8} {'wall/floor':>10} "
              f"{'at 600/30s':>10} {'sync RSS':>8} {'store RSS':>9} {'429s':>5}")
        for name, req, pc, wall, rss, srss, rl, _, limited, _, _ in results:
            floor = req / (rate_n / rate_s) if limited else 0
            ratio = f"{wall / floor:9.2f}x" if floor else "        -"
            print(f"{name:48} {req:9d} {pc:10d} {wall:7.1f}s {floor:7.1f}s {ratio:>10} "
                  f"{req / DEFAULT_RATE / 60:8.1f}min {rss:6d}MB {srss:7d}MB {rl:5d}")
        # Requests per method and run: where a run's requests go.
        methods = sorted({m for r in results for m in r[7]}, key=lambda m: (m not in PER_CLIENT, m))
        print()
        print(f"{'requests per method':36}" + "".join(f"{('run ' + str(i + 1)):>10}" for i in range(len(results))))
        for m in methods:
            print(f"{m:36}" + "".join(f"{r[7].get(m, 0):10d}" for r in results))
        print(f"{'(store peak RSS is VmHWM since its start; sync RSS per run, /usr/bin/time)':36}")
        print()
        if rate_n:
            print("Entities that took longer than their share of the floor (pages / rate), limited runs:")
            for r in results:
                if not r[8]:
                    continue
                slow = [(e, p, ms, p / (rate_n / rate_s)) for e, p, ms in r[10]
                        if ms / 1000 > p / (rate_n / rate_s) + 1]
                over = sum(ms / 1000 - fl for _, _, ms, fl in slow)
                print(f"  {r[0]}: {over:.1f} s over the floor in {len(slow)} entities")
                for e, p, ms, fl in sorted(slow, key=lambda x: x[3] - x[2] / 1000)[:8]:
                    print(f"    {e:34} pages {p:7d}  {ms / 1000:7.1f} s  floor {fl:7.1f} s")
            print()
        print("CPU seconds per run (where the wall time goes when it is above the floor):")
        for r in results:
            c = r[9]
            print(f"  {r[0]:48} hollihop-sync {c[0]:6.1f}  fake {c[1]:6.1f}  store {c[2]:6.1f}  "
                  f"PostgreSQL {c[3]:6.1f}  (wall {r[3]:.1f} s, {os.cpu_count()} CPUs)")
    finally:
        stack.bench_end(tmp, procs, a.keep, pgdir, "immediate")


if __name__ == "__main__":
    main()

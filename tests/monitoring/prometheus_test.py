#!/usr/bin/env python3
"""prometheus_test.py - the alert rules evaluated by a real Prometheus against the real services.

A throwaway PostgreSQL, the two fake CRMs and the four services run as processes with their
/metrics on loopback; Debian's prometheus scrapes them every 0.5 s and evaluates
deploy/monitoring/alerts.yml every 0.5 s (the only change: every `for:` becomes 1s, so a
test does not wait minutes). Then, through Prometheus' HTTP API:
  - every service is up, and the store's run metrics arrive (last success per entity, the
    run-duration histogram) and join the sync services' allowed ages on (crm, entity);
  - the fake amoCRM stops: CrmsyncSyncFailing{crm="amo"} fires (and a restarted store still
    counts those failures); it comes back: resolved;
  - the fake amoCRM revokes the token: CrmsyncAmoTokenRevoked fires; a fresh fake and
    `crmsyncctl sync amo`: resolved;
  - hollihop-sync stops: CrmsyncServiceDown fires for its job; started again: resolved;
  - PostgreSQL stops: CrmsyncDatabaseUnreachable fires; started again: resolved;
  - the Grafana dashboard names only metrics the services export (check_dashboard.py
    against the live /metrics of all four), and Prometheus accepts each of its queries.
Waits poll with deadlines, never fixed sleeps.
    CS_BUILD_DIR=build-test tests/monitoring/prometheus_test.py      (ctest sets it)
Exit 77 (skipped) when prometheus is not installed.
"""
import glob
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

SRC = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(SRC, "tests/harness"))
import stack        # noqa: E402 - the launchers every test uses (tests/harness/README.md)

B = os.path.abspath(os.environ.get("CS_BUILD_DIR", os.path.join(SRC, "build-test")))
PY = sys.executable
T0 = time.monotonic()
procs = set()       # names of the processes started under T
T = None


def say(msg):
    print("[%5.1fs] %s" % (time.monotonic() - T0, msg), flush=True)


def fail(msg):
    raise AssertionError(msg)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_for(what, fn, timeout=20.0, every=0.1):
    """Poll fn() until it returns something true; that value, or fail after timeout s."""
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() > deadline:
            fail("timed out after %.0fs waiting for %s" % (timeout, what))
        time.sleep(every)


def http_get(url, timeout=5):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.read().decode()
    except OSError:
        return None


def http_post(url, body=b"{}"):
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.read().decode()


def start(name, argv, env=None):
    stack.run(T, name, argv, env)
    procs.add(name)


def stop(name):
    procs.discard(name)
    stack.stop(T, name)


# --- Prometheus' HTTP API -------------------------------------------------------------------
PROM = None


def query(expr):
    r = http_get(PROM + "/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
    if r is None:
        return []
    doc = json.loads(r)
    if doc.get("status") != "success":
        fail("query %s: %s" % (expr, r))
    return doc["data"]["result"]


def firing(alertname, **labels):
    r = http_get(PROM + "/api/v1/alerts")
    if r is None:
        return []
    return [a for a in json.loads(r)["data"]["alerts"]
            if a["labels"].get("alertname") == alertname and a["state"] == "firing"
            and all(a["labels"].get(k) == v for k, v in labels.items())]


def fires(alertname, timeout=30, **labels):
    a = wait_for("%s%s to fire" % (alertname, labels), lambda: firing(alertname, **labels), timeout)
    say("%s fires: %s" % (alertname, a[0]["annotations"].get("summary")))


def resolves(alertname, timeout=30, **labels):
    wait_for("%s%s to resolve" % (alertname, labels), lambda: not firing(alertname, **labels), timeout)
    say("%s resolved" % alertname)


def check_dashboard_queries(path):
    """Every query of the dashboard is PromQL this Prometheus accepts."""
    def exprs(d):
        for p in d.get("panels", []):
            for t in p.get("targets", []):
                yield p["title"], t["expr"]
            yield from exprs(p)
    with open(path) as f:
        dash = json.load(f)
    n = 0
    for title, e in exprs(dash):
        e = e.replace("$__rate_interval", "1m")
        url = PROM + "/api/v1/query?" + urllib.parse.urlencode({"query": e})
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                doc = json.loads(r.read())
        except urllib.error.HTTPError as err:
            doc = json.loads(err.read() or b"{}")
        if doc.get("status") != "success":
            fail("dashboard panel %r: Prometheus refuses %s: %s" % (title, e, doc.get("error")))
        n += 1
    say("dashboard: %d queries accepted by Prometheus" % n)


def ctl(*args, env):
    return subprocess.run([os.path.join(B, "tools/crmsyncctl/crmsyncctl")] + list(args), env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120)


# --- the test ---------------------------------------------------------------------------------
def prom_rules(dst):
    """alerts.yml with every `for:` shortened to 1s (the expressions are the real ones)."""
    with open(os.path.join(SRC, "deploy/monitoring/alerts.yml")) as f:
        rules = f.read()
    n = len(re.findall(r"^\s+for: ", rules, re.M))
    with open(dst, "w") as f:
        f.write(re.sub(r"^(\s+for: ).*$", r"\g<1>1s", rules, flags=re.M))
    return n


def run():
    global T, PROM
    prometheus = shutil.which("prometheus")
    if prometheus is None:
        print("prometheus_test: prometheus not installed (apt-get install prometheus)")
        return 77
    T = tempfile.mkdtemp(prefix="crmsync-prom.")
    os.chmod(T, 0o755)
    pgdir = os.path.join(T, "pg")
    dsn = stack.pg_start(pgdir)

    hh = stack.fake_start(T, "fake-hollihop", "hollihop", "--scale", "tiny", "--seed", "5", "--authkey", "hh-key")
    procs.add("fake-hollihop")
    amo_port = free_port()      # a restarted fake must come back where amo-sync looks for it

    def start_fake_amo():
        procs.add("fake-amocrm")
        return stack.fake_start(T, "fake-amocrm", "amocrm", "--port", amo_port, "--scale", "tiny", "--seed", "5",
                                "--rps", "0", "--long-lived-token", "amo-llt", "--now", "real")
    amo = start_fake_amo()

    gw_port = free_port()
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-days", "2", "-keyout", T + "/gw.key", "-out", T + "/gw.crt", "-subj",
                    "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    mport = {s: free_port() for s in ("store", "hook-gateway", "amo-sync", "hollihop-sync")}
    env = dict(os.environ)
    env.update({
        "CS_PG_DSN": dsn,
        "CS_CTL_PG_DSN": dsn,
        "CS_STORE_URL": "ipc://%s/store.sock" % T,
        "CS_STORE_HEALTH_URL": "ipc://%s/store-health.sock" % T,
        "CS_STORE_RECONNECT_MAX": "500ms",
        "CS_STORE_METRICS_ADDR": "127.0.0.1:%d" % mport["store"],
        "CS_AMO_URL": "ipc://%s/amo.sock" % T,
        "CS_AMO_HEALTH_URL": "ipc://%s/amo-health.sock" % T,
        "CS_AMO_BASE_URL": amo,
        "CS_AMO_LONG_LIVED_TOKEN": "amo-llt",
        "CS_AMO_TOKEN_FILE": T + "/amo-token.json",
        "CS_AMO_RPS": "100",
        "CS_AMO_ENTITIES": "leads,contacts",
        "CS_AMO_INCREMENTAL_INTERVAL": "1s",
        "CS_AMO_RETRY_MAX": "0",
        "CS_AMO_BACKOFF_MAX": "100ms",
        "CS_AMO_HTTP_TIMEOUT": "2s",
        "CS_AMO_METRICS_ADDR": "127.0.0.1:%d" % mport["amo-sync"],
        "CS_HOLLIHOP_URL": "ipc://%s/hollihop.sock" % T,
        "CS_HOLLIHOP_HEALTH_URL": "ipc://%s/hollihop-health.sock" % T,
        "CS_HOLLIHOP_BASE_URL": hh + "/Api/V2",
        "CS_HOLLIHOP_AUTHKEY": "hh-key",
        "CS_HOLLIHOP_SCHEDULE": "03:30",
        "CS_HOLLIHOP_ENTITIES": "students",
        "CS_HOLLIHOP_RATE": "0",
        "CS_HOLLIHOP_METRICS_ADDR": "127.0.0.1:%d" % mport["hollihop-sync"],
        "CS_GATEWAY_LISTEN": "127.0.0.1:%d" % gw_port,
        "CS_GATEWAY_TLS_CERT": T + "/gw.crt",
        "CS_GATEWAY_TLS_KEY": T + "/gw.key",
        "CS_GATEWAY_SECRET": "prometheus-test-secret-0123456789",
        "CS_GATEWAY_JOURNAL_DIR": T + "/journal",
        "CS_GATEWAY_DEADLETTER_DIR": T + "/deadletter",
        "CS_GATEWAY_HEALTH_URL": "ipc://%s/gateway-health.sock" % T,
        "CS_GATEWAY_METRICS_ADDR": "127.0.0.1:%d" % mport["hook-gateway"],
    })

    def start_service(s):
        procs.add(s)
        stack.svc_start(T, s, B, env)
    for s in ("store", "hollihop-sync", "amo-sync", "hook-gateway"):
        start_service(s)
    say("four services up")

    # Prometheus: the shipped scrape layout (one job per service), loopback, short intervals.
    nfor = prom_rules(T + "/alerts.yml")
    prom_port = free_port()
    with open(T + "/prometheus.yml", "w") as f:
        f.write("global: {scrape_interval: 500ms, evaluation_interval: 500ms, scrape_timeout: 400ms}\n"
                "rule_files: [alerts.yml]\nscrape_configs:\n")
        for s, p in mport.items():
            f.write("  - job_name: crmsync-%s\n    static_configs: [{targets: ['127.0.0.1:%d']}]\n" % (s, p))
    start("prometheus", [prometheus, "--config.file=" + T + "/prometheus.yml",
                         "--storage.tsdb.path=" + T + "/prom", "--web.listen-address=127.0.0.1:%d" % prom_port,
                         "--log.level=warn"])
    PROM = "http://127.0.0.1:%d" % prom_port
    wait_for("prometheus to be ready", lambda: http_get(PROM + "/-/ready") is not None, 30)
    wait_for("all four services up in Prometheus",
             lambda: len([r for r in query('up{job=~"crmsync-.*"} == 1')]) == 4, 20)
    say("prometheus scrapes all four (rules: %d `for:` shortened to 1s)" % nfor)

    # The store's run metrics: a Hollihop export and amoCRM's incremental runs complete.
    r = ctl("sync", "hollihop", "--full", env=env)
    if r.returncode != 0:
        fail("hollihop export: " + r.stdout)
    wait_for("the store's last success of hollihop.students in Prometheus", lambda: query(
        'crmsync_last_success_timestamp_seconds{service="store",crm="hollihop",entity="students"} > 0'))
    wait_for("a full Hollihop run in the duration histogram", lambda: query(
        'crmsync_run_duration_seconds_count{service="store",crm="hollihop",kind="full"} >= 1'))
    wait_for("amoCRM incremental runs complete", lambda: query(
        'crmsync_runs_ended_total{service="store",crm="amo",status="complete"} >= 1'), 30)
    # The stale-data rule joins the store's series with the sync services' on (crm, entity).
    joined = wait_for("last success joined with the allowed age", lambda: query(
        'crmsync_last_success_timestamp_seconds{service="store"} > 0 and on (crm, entity) '
        'crmsync_sync_max_age_seconds'))
    names = sorted("%s.%s" % (x["metric"]["crm"], x["metric"]["entity"]) for x in joined)
    say("stale-data rule sees %s" % ", ".join(names))
    if "hollihop.students" not in names or "amo.leads" not in names:
        fail("the stale-data rule cannot see hollihop.students and amo.leads: %s" % names)
    if firing("CrmsyncSyncFailing") or firing("CrmsyncAmoTokenRevoked") or firing("CrmsyncServiceDown"):
        fail("alerts fire on a healthy system: %s" % http_get(PROM + "/api/v1/alerts"))

    # The dashboard's queries name only metrics the services export (live /metrics).
    for s, p in mport.items():
        with open(os.path.join(T, "metrics-%s.txt" % s), "w") as f:
            f.write(http_get("http://127.0.0.1:%d/metrics" % p))
    dash = os.path.join(SRC, "deploy/monitoring/grafana-dashboard.json")
    if os.path.exists(dash):
        r = subprocess.run([PY, os.path.join(SRC, "tests/monitoring/check_dashboard.py"), dash] +
                           sorted(glob.glob(os.path.join(T, "metrics-*.txt"))),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        print(r.stdout, end="")
        if r.returncode != 0:
            fail("grafana-dashboard.json names metrics the services do not export")
        check_dashboard_queries(dash)
    wait_for("rows written per entity", lambda: query(
        'crmsync_entity_rows_written_total{service="store",crm="hollihop",entity="students"} > 0'))

    # 1. amoCRM unreachable: runs fail one after another.
    stop("fake-amocrm")
    say("fake amoCRM stopped")
    fires("CrmsyncSyncFailing", crm="amo")
    # A restarted store serves the same run metrics (read back from crmsync.*).
    stop("store")
    start_service("store")
    wait_for("the store to be ready", lambda: ctl("probe", "-q", "store", env=env).returncode == 0)
    m = http_get("http://127.0.0.1:%d/metrics" % mport["store"])
    got = dict(re.findall(r'^(crmsync_consecutive_failed_runs\{service="store",crm="amo"\}|'
                          r'crmsync_last_success_timestamp_seconds\{service="store",crm="hollihop",'
                          r'entity="students"\}) (\d+)$', m or "", re.M))
    if len(got) != 2 or min(int(v) for v in got.values()) < 1 or \
            int(got['crmsync_consecutive_failed_runs{service="store",crm="amo"}']) < 3:
        fail("the restarted store lost its run metrics: %s" % got)
    say("store restarted: run metrics kept (%s)" % ", ".join("%s=%s" % kv for kv in got.items()))
    fires("CrmsyncSyncFailing", crm="amo")     # again: its series were gone for a scrape
    start_fake_amo()
    resolves("CrmsyncSyncFailing", crm="amo")
    wait_for("amo's failures in a row back to 0", lambda: query(
        'crmsync_consecutive_failed_runs{service="store",crm="amo"} == 0'))

    # 2. The token revoked in amoCRM: amo-sync stops and says so.
    http_post(amo + "/_fake/revoke")
    say("token revoked in the fake amoCRM")
    fires("CrmsyncAmoTokenRevoked")
    stop("fake-amocrm")                     # a new authorisation: a fresh fake accepts the token
    start_fake_amo()
    r = ctl("sync", "amo", "--no-wait", env=env)
    if r.returncode != 0:
        fail("crmsyncctl sync amo: " + r.stdout)
    resolves("CrmsyncAmoTokenRevoked")

    # 3. A service down.
    stop("hollihop-sync")
    say("hollihop-sync stopped")
    fires("CrmsyncServiceDown", job="crmsync-hollihop-sync")
    start_service("hollihop-sync")
    resolves("CrmsyncServiceDown", job="crmsync-hollihop-sync")

    # 4. PostgreSQL away: the store notices at its next statement (amo-sync's runs, each
    #    second) and says so; back: it reconnects on its own.
    stack.pg_stop(pgdir, "immediate")
    say("PostgreSQL stopped")
    fires("CrmsyncDatabaseUnreachable")
    stack.pg_restart(pgdir)
    resolves("CrmsyncDatabaseUnreachable")
    say("OK")
    return 0


def cleanup(ok):
    for name in list(procs):
        try:
            t = time.monotonic()
            stop(name)
            if time.monotonic() - t > 2:
                say("%s took %.1fs to stop" % (name, time.monotonic() - t))
        except Exception:       # noqa: BLE001 - keep tearing down
            pass
    if T is None:
        return
    try:
        stack.pg_stop(os.path.join(T, "pg"), "immediate")
    except subprocess.CalledProcessError:
        pass
    if not ok:
        for f in sorted(glob.glob(T + "/*.log")):
            print("----- " + f)
            with open(f, errors="replace") as fh:
                print("".join(fh.readlines()[-25:]), end="")
    stack.finish(T, ok)


if __name__ == "__main__":
    ok = False
    try:
        rc = run()
        ok = True
    except AssertionError as e:
        say("FAIL: %s" % e)
        rc = 1
    finally:
        cleanup(ok)
    sys.exit(rc)

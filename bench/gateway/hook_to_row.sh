#!/bin/sh
# bench/gateway/hook_to_row.sh - hook-to-row latency through the whole amoCRM pipeline:
#   fake amoCRM --webhook (HTTPS)--> hook-gateway --> amo-sync --REST (7 rps)--> store --> PostgreSQL
#   bench/gateway/hook_to_row.sh [hooks=40] [interval_ms=500] [burst_hooks=1000] [burst_leads=300]
# Builds in Release (build-gw-bench), starts a throwaway PostgreSQL, the fake amoCRM with
# its rate limit on (--rps 7) and the three services (amo-sync: CS_AMO_RPS=7), makes a full
# sync, then measures amo-sync twice in the same run, restarted between:
#   fixed    - today's behaviour before the adaptive delay: every hook waits 2 s
#              (CS_AMO_HOOK_QUIET=2s CS_AMO_HOOK_DELAY=2s)
#   adaptive - the defaults (CS_AMO_HOOK_QUIET=100ms, CS_AMO_HOOK_DELAY=2s)
# Each mode: single hooks on a quiet system (one lead edited, its update hook sent, the
# time until PostgreSQL shows the edit: p50/p90/p99/max), then a burst (burst_hooks update
# hooks for burst_leads edited leads, 10 events per request, 8 connections) and the list
# requests amo-sync made for it until every edit is in PostgreSQL.
set -eu
cd "$(dirname "$0")/../.."
SRC=$PWD
N=${1:-40} INTERVAL_MS=${2:-500} BURST=${3:-1000} BURST_LEADS=${4:-300}
PY=${CS_PYTHON:-python3}
B=$SRC/build-gw-bench
cmake -S . -B "$B" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$B" -j"$(nproc)" --target crmsync-store crmsync-amo-sync crmsync-hook-gateway crmsyncctl >/dev/null
T=$(mktemp -d "${TMPDIR:-/tmp}/gw-hook2row.XXXXXX")
chmod 0755 "$T"
OK=1	# the logs' tails only when fail() says why
. "$SRC/tests/harness/stack.sh"
trap stack_cleanup EXIT
trap 'exit 1' INT TERM
fail() { echo "hook_to_row: $*" >&2; for f in "$T"/*.log; do echo "--- $f" >&2; tail -n 15 "$f" >&2; done; exit 1; }

# PostgreSQL with its production durability (fsync on): the row is committed when we see it.
export CS_PG_DURABLE=1
stack_pg
start_fake fake-amocrm amocrm --scale tiny --seed 7 --rps 7 --long-lived-token amo-llt --now real
AMO=$(url_of fake-amocrm)
GW_PORT=$(free_port)
make_cert
SECRET=hook-to-row-bench-$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')
stack_env
echo "CS_AMO_INCREMENTAL_INTERVAL=0" >>"$T/env"	# only hooks move rows (and use the API) while measured
stack_export
for s in store amo-sync hook-gateway; do start_svc "$s"; done
"$CTL" sync amo --full >"$T/sync.log" 2>&1 || fail "initial full sync"
NLEADS=$(psql -X -q -h "$T/pg" -U postgres -d crmsync -tA -c 'SELECT max(id) FROM amo.leads')
if [ "$NLEADS" -lt "$BURST_LEADS" ]; then
	curl -sf -X POST -H 'Content-Type: application/json' "$AMO/_fake/mutate" \
	    -d "{\"ops\":[{\"op\":\"add\",\"entity\":\"leads\",\"count\":$((BURST_LEADS - NLEADS))}]}" >/dev/null
	"$CTL" sync amo --full >>"$T/sync.log" 2>&1 || fail "second full sync"
	NLEADS=$(psql -X -q -h "$T/pg" -U postgres -d crmsync -tA -c 'SELECT max(id) FROM amo.leads')
fi

echo "hook-to-row: $N lead edits, one every ${INTERVAL_MS} ms; burst: $BURST hooks for $BURST_LEADS leads; fake amoCRM --rps 7; amo-sync CS_AMO_RPS=7; PostgreSQL fsync on; $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
# measure MODE: single hooks, then the burst; one result line to $T/results
measure() {
"$PY" - "$AMO" "https://127.0.0.1:$GW_PORT/hooks/amo/$SECRET" "$T/gw.crt" "$NLEADS" "$N" "$INTERVAL_MS" "$T/pg" \
    "$1" "$BURST" "$BURST_LEADS" >>"$T/results" <<'PY'
import json, subprocess, sys, threading, time, urllib.request
amo, hook_url, cafile, nleads, n, interval_ms, pghost, mode, burst, burst_leads = sys.argv[1:11]
nleads, n, interval = int(nleads), int(n), int(interval_ms) / 1000.0
burst, burst_leads = int(burst), int(burst_leads)
def post(url, body, timeout=30):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    return json.loads(urllib.request.urlopen(req, timeout=timeout).read())
def get(url):
    return json.loads(urllib.request.urlopen(url, timeout=30).read())
def psql(sql):
    return subprocess.run(["psql", "-X", "-q", "-h", pghost, "-U", "postgres", "-d", "crmsync", "-tA",
                           "-F", "\t", "-c", sql], capture_output=True, text=True).stdout
pending, sent, ack_ms, lat_ms, lock = {}, {}, [], [], threading.Lock()
done = threading.Event()
def poll():
    while not (done.is_set() and not pending):
        with lock:
            want = dict(pending)
        if want:
            out = psql("SELECT id, name FROM amo.leads WHERE id IN (%s)" % ",".join(str(i) for i in want))
            now = time.time()
            for line in out.splitlines():
                lid, name = line.split("\t", 1)
                lid = int(lid)
                with lock:
                    if lid in pending and pending[lid] == name:
                        lat_ms.append((now - sent[lid]) * 1000)
                        del pending[lid]
        time.sleep(0.02)
poller = threading.Thread(target=poll)
poller.start()
for k in range(n):
    lid = 1 + (k * 13) % nleads
    with lock:
        while lid in pending:            # one edit of a lead in flight at a time
            lid = 1 + (lid % nleads)
    name = f"hook-to-row {mode} {k} {time.time():.3f}"
    post(amo + "/_fake/mutate", {"ops": [{"op": "edit", "entity": "leads", "id": lid, "set": {"name": name}}]})
    t0 = time.time()
    with lock:
        pending[lid], sent[lid] = name, t0
    r = post(amo + "/_fake/send_hooks", {"url": hook_url, "cafile": cafile, "timeout": 5,
             "events": [{"entity": "leads", "action": "update", "id": lid}]})
    if r["ok"] != r["requests"]:
        sys.exit("hook not answered 2xx: %r" % r)
    ack_ms.append((time.time() - t0) * 1000)
    time.sleep(interval)
done.set()
poller.join(timeout=120)
if pending:
    sys.exit("%d edits never reached PostgreSQL" % len(pending))
time.sleep(3)                            # let the last single hooks' fetches settle
# The burst: every lead edited, then burst hooks for them, as a bulk edit in the UI sends.
tag = f"burst {mode} {time.time():.3f}"
post(amo + "/_fake/mutate", {"ops": [{"op": "edit", "entity": "leads", "id": i, "set": {"name": f"{tag} {i}"}}
                                     for i in range(1, burst_leads + 1)]})
post(amo + "/_fake/reset_stats", {})
t0 = time.time()
r = post(amo + "/_fake/send_hooks", {"url": hook_url, "cafile": cafile, "timeout": 10, "per_request": 10,
         "concurrency": 8, "keepalive": True,
         "events": [{"entity": "leads", "action": "update", "id": i % burst_leads + 1} for i in range(burst)]},
         timeout=300)
if r["ok"] != r["requests"]:
    sys.exit("burst hooks not all answered 2xx: %r" % {k: v for k, v in r.items() if k != "results"})
send_s = time.time() - t0
deadline = time.time() + 120
while time.time() < deadline:
    got = int(psql(f"SELECT count(*) FROM amo.leads WHERE name LIKE '{tag} %'").strip() or 0)
    if got == burst_leads:
        break
    time.sleep(0.05)
else:
    sys.exit("burst: only %d of %d edits reached PostgreSQL" % (got, burst_leads))
burst_s = time.time() - t0
st = get(amo + "/_fake/stats")
def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(round(p / 100.0 * (len(v) - 1))))]
print(json.dumps({"mode": mode, "p50": pct(lat_ms, 50), "p90": pct(lat_ms, 90), "p99": pct(lat_ms, 99),
                  "max": max(lat_ms), "ack50": pct(ack_ms, 50), "lists": st.get("lists", {}).get("leads", 0),
                  "filter_id_requests": st.get("filter_id_requests", 0), "requests": st.get("requests", 0),
                  "send_s": send_s, "burst_s": burst_s}))
PY
}
restart_amo() {
	stop_proc amo-sync
	bg amo-sync env "$@" "$B/services/amo-sync/crmsync-amo-sync"
	wait_live amo-sync
	sleep 2	# measure a running service, not its first second
}
: >"$T/results"
restart_amo CS_AMO_HOOK_QUIET=2s CS_AMO_HOOK_DELAY=2s
measure fixed || fail "fixed-delay run"
restart_amo CS_AMO_HOOK_QUIET=100ms CS_AMO_HOOK_DELAY=2s
measure adaptive || fail "adaptive run"
"$PY" - "$T/results" "$N" "$BURST" "$BURST_LEADS" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
n, burst, leads = sys.argv[2:5]
print("\n%-44s %8s %8s %8s %8s | %s" % ("hook -> row in PostgreSQL (%s single hooks)" % n, "p50", "p90", "p99", "max",
                                          "burst %s hooks / %s leads: list requests, all rows in" % (burst, leads)))
labels = {"fixed": "fixed 2 s delay (QUIET=DELAY=2s, before)", "adaptive": "adaptive (QUIET=100ms, DELAY=2s)"}
for r in rows:
    print("%-44s %6.0fms %6.0fms %6.0fms %6.0fms | %d list requests (%d filter[id]), %.1f s (hooks sent in %.1f s)" % (
        labels.get(r["mode"], r["mode"]), r["p50"], r["p90"], r["p99"], r["max"], r["lists"], r["filter_id_requests"],
        r["burst_s"], r["send_s"]))
print("%-44s %6.1fms (hook -> 2xx, fake's client, new TLS)" % ("", rows[-1]["ack50"]))
PY

#!/bin/sh
# fresh_journal_test.sh - the hook gateway restarted on an empty journal (a new container
# without its volume, a wiped disk, a moved host) while amo-sync keeps running. The new
# journal numbers its hooks from 1 again; amo-sync has already seen higher numbers from the
# old one and must not take the new hooks for re-sends: every hook answered 2xx lands in
# PostgreSQL. Real store, amo-sync and gateway, the fake amoCRM, a throwaway PostgreSQL;
# amo-sync's periodic sync is off, so only the hooks can bring the edits in.
#   CS_BUILD_DIR=build tests/integration/system/fresh_journal_test.sh     (ctest sets it)
set -eu
SRC=$(cd "$(dirname "$0")/../../.." && pwd)
B=$(cd "${CS_BUILD_DIR:?set CS_BUILD_DIR to the build directory}" && pwd)
PY=${CS_PYTHON:-python3}
TESTPG=$SRC/tests/harness/testpg
T=$(mktemp -d "${TMPDIR:-/tmp}/crmsync-fresh-journal.XXXXXX")
chmod 0755 "$T"
CTL=$B/tools/crmsyncctl/crmsyncctl
OK=0

say() { printf '%s %s\n' "$(date +%T)" "$*"; }
cleanup() {
	for f in "$T"/*.pid; do [ -f "$f" ] && kill -TERM "$(cat "$f")" 2>/dev/null || true; done
	sleep 0.5
	for f in "$T"/*.pid; do [ -f "$f" ] && kill -KILL "$(cat "$f")" 2>/dev/null || true; done
	"$TESTPG" stop "$T/pg" immediate
	if [ "$OK" != 1 ]; then
		for f in "$T"/*.log; do echo "----- $f"; tail -n 25 "$f"; done
	fi
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
fail() { say "FAIL: $*"; exit 1; }
psql_() { psql -X -q -h "$T/pg" -U postgres -d crmsync -tA "$@"; }
bg() {	# bg NAME CMD...: start in the background, pid in NAME.pid, output in NAME.log
	name=$1
	shift
	"$@" >>"$T/$name.log" 2>&1 &
	echo $! >"$T/$name.pid"
}

"$TESTPG" start "$T/pg" crmsync >/dev/null

bg fake-amocrm "$PY" "$SRC/tests/fake/amocrm/fake_amocrm.py" --port 0 --scale tiny --seed 3 --rps 0 \
    --long-lived-token amo-llt --now real
for _ in $(seq 100); do
	p=$(sed -n 's/^listening port=\([0-9]*\).*/\1/p' "$T/fake-amocrm.log" | head -n1)
	[ -n "$p" ] && break
	sleep 0.1
done
[ -n "$p" ] || fail "the fake amoCRM did not start"
AMO=http://127.0.0.1:$p

GW_PORT=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -keyout "$T/gw.key" -out "$T/gw.crt" -subj "/CN=127.0.0.1" \
    -addext "subjectAltName=IP:127.0.0.1" >/dev/null 2>&1
SECRET=fresh-journal-secret-0123456789
export CS_PG_DSN="host=$T/pg dbname=crmsync user=postgres"
export CS_STORE_URL=ipc://$T/store.sock CS_STORE_HEALTH_URL=ipc://$T/store-health.sock
export CS_AMO_URL=ipc://$T/amo.sock CS_AMO_HEALTH_URL=ipc://$T/amo-health.sock
export CS_AMO_BASE_URL=$AMO CS_AMO_LONG_LIVED_TOKEN=amo-llt CS_AMO_TOKEN_FILE=$T/amo-token.json
export CS_AMO_HOOK_DELAY=100ms CS_AMO_RPS=100 CS_AMO_INCREMENTAL_INTERVAL=0
export CS_GATEWAY_LISTEN=127.0.0.1:$GW_PORT CS_GATEWAY_TLS_CERT=$T/gw.crt CS_GATEWAY_TLS_KEY=$T/gw.key
export CS_GATEWAY_SECRET=$SECRET CS_GATEWAY_DEADLETTER_DIR=$T/deadletter
export CS_GATEWAY_HEALTH_URL=ipc://$T/gateway-health.sock
start() {	# start SERVICE: run it and wait until it answers its health probe
	bg "$1" "$B/services/$1/crmsync-$1"
	for _ in $(seq 300); do "$CTL" probe -q --live "$1" && return 0; sleep 0.1; done
	fail "$1 did not come up"
}

# edit_and_hook FROM TO TAG: rename leads FROM..TO in the fake to "TAG <id>", then send one
# update hook per lead through the gateway; every one must be answered 2xx.
edit_and_hook() {
	"$PY" - "$AMO" "https://127.0.0.1:$GW_PORT/hooks/amo/$SECRET" "$T/gw.crt" "$1" "$2" "$3" <<'PY'
import json, sys, urllib.request
amo, url, ca, a, b, tag = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
def post(path, body):
    req = urllib.request.Request(amo + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    return json.loads(urllib.request.urlopen(req, timeout=30).read())
post("/_fake/mutate", {"ops": [{"op": "edit", "entity": "leads", "id": i, "set": {"name": f"{tag} {i}"}} for i in range(a, b + 1)]})
for i in range(a, b + 1):
    r = post("/_fake/send_hooks", {"url": url, "cafile": ca, "timeout": 10,
             "events": [{"entity": "leads", "action": "update", "id": i}]})
    if r["ok"] != r["requests"]:
        sys.exit(f"hook for lead {i} not answered 2xx: {r}")
PY
}
landed() {	# landed FROM TO TAG: how many of those leads carry their new name in PostgreSQL
	psql_ -c "SELECT count(*) FROM amo.leads WHERE id BETWEEN $1 AND $2 AND name = '$3 ' || id"
}
wait_landed() {	# wait_landed FROM TO TAG
	want=$(($2 - $1 + 1))
	for _ in $(seq 150); do [ "$(landed "$@")" = "$want" ] && return 0; sleep 0.2; done
	fail "only $(landed "$@") of $want hooks answered 2xx ($3) landed in PostgreSQL"
}

start store
start amo-sync
CS_GATEWAY_JOURNAL_DIR=$T/journal-old start hook-gateway
say "store, amo-sync and the gateway up (journal $T/journal-old)"

edit_and_hook 1 30 "old" || fail "hooks through the first journal"
wait_landed 1 30 "old"
say "30 hooks through the first journal landed (amo-sync has seen seqs up to 30)"

# The gateway comes back on an empty journal; amo-sync keeps running.
kill -TERM "$(cat "$T/hook-gateway.pid")"
wait "$(cat "$T/hook-gateway.pid")" 2>/dev/null || true
CS_GATEWAY_JOURNAL_DIR=$T/journal-new start hook-gateway
say "gateway restarted on an empty journal ($T/journal-new)"
edit_and_hook 1 5 "new" || fail "hooks through the fresh journal"
wait_landed 1 5 "new"
say "all 5 hooks answered 2xx by the fresh journal landed"
grep -q 'ev=hook.journal_changed' "$T/amo-sync.log" || fail "amo-sync did not log hook.journal_changed"
if grep -q 'ev=forward.done_seq_refused' "$T/hook-gateway.log"; then
	fail "the gateway refused a done_seq: $(grep 'ev=forward.done_seq_refused' "$T/hook-gateway.log" | head -1)"
fi
# and the journal empties: the backlog reaches 0
for _ in $(seq 100); do
	[ "$("$CTL" status -v 2>/dev/null | awk '$1 == "journal_backlog" { print $2; exit }')" = 0 ] && break
	sleep 0.1
done
[ "$("$CTL" status -v 2>/dev/null | awk '$1 == "journal_backlog" { print $2; exit }')" = 0 ] ||
	fail "the fresh journal's backlog does not reach 0"
if grep -qE 'runtime error|AddressSanitizer|LeakSanitizer' "$T"/*.log; then
	fail "sanitizer report in the logs"
fi
OK=1
say "passed"

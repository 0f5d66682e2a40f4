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
T=$(mktemp -d "${TMPDIR:-/tmp}/crmsync-fresh-journal.XXXXXX")
chmod 0755 "$T"
. "$SRC/tests/harness/stack.sh"
trap stack_cleanup EXIT
trap 'exit 1' INT TERM

stack_pg
start_fake fake-amocrm amocrm --scale tiny --seed 3 --rps 0 --long-lived-token amo-llt --now real
AMO=$(url_of fake-amocrm)
GW_PORT=$(free_port)
make_cert
SECRET=fresh-journal-secret-0123456789
stack_env
cat >>"$T/env" <<EOF
CS_AMO_HOOK_DELAY=100ms
CS_AMO_RPS=100
CS_AMO_INCREMENTAL_INTERVAL=0
EOF
stack_export
start() { start_svc "$1"; }

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
stop_proc hook-gateway
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

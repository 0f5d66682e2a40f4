#!/bin/sh
# upgrade_test.sh - a database made by the previous release comes out of the upgrade right.
#
# The previous release (CS_UPGRADE_FROM, default fc59d24: the last release before the
# catalogue round that changed Hollihop's columns to real traffic and added amoCRM's) is
# built from git into a cache keyed by its commit hash ($CS_BUILD_DIR/release-cache/<hash>,
# so re-runs skip the build). Its store, hollihop-sync and amo-sync load database
# crmsync_up from the fake CRMs: two full syncs of each CRM with deletions and edits in
# between. Then the new store starts on that database, is killed (SIGKILL) during the
# re-derivation, starts again and finishes it. Checks: the fakes saw no request meanwhile;
# every row is still there with its raw, deleted rows stay deleted, cursors and runs
# survive; and every typed column and child row equals what the new release writes into
# database crmsync_fresh synced from scratch from the same fakes (upgrade_compare.py).
#   CS_BUILD_DIR=build tests/integration/system/upgrade_test.sh     (ctest sets it)
# Exit 77 (skipped) when the source tree is not a git checkout holding that commit.
set -eu
SRC=$(cd "$(dirname "$0")/../../.." && pwd)
B=$(cd "${CS_BUILD_DIR:?set CS_BUILD_DIR to the build directory}" && pwd)
PY=${CS_PYTHON:-python3}
FROM=${CS_UPGRADE_FROM:-fc59d24}
CMP="$PY $SRC/tests/integration/system/upgrade_compare.py"
. "$SRC/tests/harness/stack.sh"

# --- the previous release, built once per commit ------------------------------------------
REV=$(git -C "$SRC" rev-parse --verify -q "$FROM^{commit}" 2>/dev/null) || {
	echo "upgrade_test: SKIPPED: $SRC is not a git checkout with commit $FROM"
	exit 77
}
OLD=$B/release-cache/$REV
if [ ! -x "$OLD/bin/crmsync-store" ]; then
	say "building the previous release $REV (cached in $OLD)"
	rm -rf "$OLD.tmp"
	mkdir -p "$OLD.tmp/src" "$OLD.tmp/bin"
	git -C "$SRC" archive "$REV" | tar -x -C "$OLD.tmp/src"
	# A plain optimised build: the old release is only the means to a database.
	env -u CFLAGS -u LDFLAGS cmake -S "$OLD.tmp/src" -B "$OLD.tmp/build" -DCMAKE_BUILD_TYPE=Release \
	    -DCS_WERROR=OFF -DCS_SANITIZER= >"$OLD.tmp/build.log" 2>&1 &&
	cmake --build "$OLD.tmp/build" -j"$(nproc)" --target crmsync-store crmsync-hollihop-sync \
	    crmsync-amo-sync crmsyncctl >>"$OLD.tmp/build.log" 2>&1 || {
		tail -n 30 "$OLD.tmp/build.log"
		fail "building $REV"
	}
	cp "$OLD.tmp/build/services/store/crmsync-store" "$OLD.tmp/build/services/hollihop-sync/crmsync-hollihop-sync" \
	    "$OLD.tmp/build/services/amo-sync/crmsync-amo-sync" "$OLD.tmp/build/tools/crmsyncctl/crmsyncctl" "$OLD.tmp/bin/"
	rm -rf "$OLD.tmp/src" "$OLD.tmp/build"
	mv "$OLD.tmp" "$OLD"
fi
say "previous release: $REV"

T=$(mktemp -d "${TMPDIR:-/tmp}/crmsync-upgrade.XXXXXX")
chmod 0755 "$T"
trap stack_cleanup EXIT
trap 'exit 1' INT TERM
psql_() { db=$1; shift; psql -X -q -h "$T/pg" -U postgres -d "$db" -tA "$@"; }

stack_pg crmsync_up crmsync_fresh
start_fake fake-hollihop hollihop --scale tiny --seed 18 --authkey hh-key
start_fake fake-amocrm amocrm --scale tiny --seed 18 --rps 0 --long-lived-token amo-llt --now real
HH=$(url_of fake-hollihop)
AMO=$(url_of fake-amocrm)
requests() {	# every API request either fake has answered so far
	h=$(curl -fsS "$HH/_fake/stats" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["requests_total"])')
	a=$(curl -fsS "$AMO/_fake/stats" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["requests"])')
	echo "hollihop=$h amo=$a"
}

stack_env
cat >>"$T/env" <<EOF
CS_STORE_RECONNECT_MAX=500ms
CS_AMO_RPS=100
CS_AMO_INCREMENTAL_INTERVAL=1h
EOF
stack_export

start() {	# start NAME SERVICE CMD...: run it and wait until it answers its health probe
	name=$1 svc=$2
	shift 2
	bg "$name" "$@"
	wait_live "$svc"
}
stop() { stop_proc "$@"; }
syncs() {	# syncs CTL: a full sync of each CRM, each must complete
	"$1" sync hollihop --full >>"$T/syncs.log" 2>&1 || fail "Hollihop export ($1)"
	"$1" sync amo --full >>"$T/syncs.log" 2>&1 || fail "amoCRM sync ($1)"
}

# --- the previous release loads crmsync_up ------------------------------------------------
export CS_PG_DSN="host=$T/pg dbname=crmsync_up user=postgres" CS_CTL_PG_DSN="host=$T/pg dbname=crmsync_up user=postgres"
CTL=$OLD/bin/crmsyncctl
start old-store store "$OLD/bin/crmsync-store"
start old-hollihop-sync hollihop-sync "$OLD/bin/crmsync-hollihop-sync"
start old-amo-sync amo-sync "$OLD/bin/crmsync-amo-sync"
syncs "$CTL"
# Deletions and edits in both CRMs, then full syncs again: soft deletes, changed rows.
curl -fsS -X POST "$HH/_fake/mutate" -H 'Content-Type: application/json' -d "$("$PY" - "$HH" <<'PY'
import json, sys, urllib.request
hh = sys.argv[1]
keys = lambda m: json.loads(urllib.request.urlopen(f"{hh}/_fake/keys?method={m}").read())["keys"]
st, pay = keys("GetStudents"), keys("GetPayments")
ops = [{"op": "delete", "method": "GetStudents", "keys": st[:3]},
       {"op": "delete", "method": "GetPayments", "keys": pay[-2:]},
       {"op": "edit", "method": "GetStudents", "key": st[5], "set": {"FirstName": "Обновлённый"}}]
print(json.dumps({"ops": ops}))
PY
)" >/dev/null || fail "mutating the fake Hollihop"
curl -fsS -X POST "$AMO/_fake/mutate" -H 'Content-Type: application/json' -d "$("$PY" - "$AMO" <<'PY'
import json, sys, urllib.request
ids = json.loads(urllib.request.urlopen(sys.argv[1] + "/_fake/ids?entity=leads").read())
ids = ids["ids"] if isinstance(ids, dict) else ids
print(json.dumps({"ops": [{"op": "delete", "entity": "leads", "id": ids[0]},
                          {"op": "delete", "entity": "leads", "id": ids[1]},
                          {"op": "edit", "entity": "leads", "id": ids[2], "set": {"name": "Обновлённая"}}]}))
PY
)" >/dev/null || fail "mutating the fake amoCRM"
syncs "$CTL"
for s in old-amo-sync old-hollihop-sync old-store; do stop "$s"; done
deleted=$(psql_ crmsync_up -c "SELECT (SELECT count(*) FROM hollihop.students WHERE deleted_at IS NOT NULL) + \
    (SELECT count(*) FROM amo.leads WHERE deleted_at IS NOT NULL)")
[ "$deleted" -ge 5 ] || fail "the previous release deleted only $deleted students and leads"
say "previous release: $(psql_ crmsync_up -c 'SELECT count(*) FROM hollihop.students') students, \
$(psql_ crmsync_up -c 'SELECT count(*) FROM amo.leads') leads, $deleted deleted"
$CMP snapshot "$T/pg" crmsync_up >>"$T/compare.log" || fail "snapshot"

# --- the new store upgrades it: killed once during the re-derivation ----------------------
CTL=$B/tools/crmsyncctl/crmsyncctl
before=$(requests)
# Slowly (3 rows a step, 300 ms apart) so that it is killed in the middle of a job. Whether
# the kill fell inside a job (its position written) or between two is read after the kill,
# from the frozen database; between two, the slow store is started again (a few tries).
midjob="SELECT count(*) FROM crmsync.rederive_jobs WHERE status = 'pending' AND last_key IS NOT NULL"
for try in 1 2 3 4 5; do
	start new-store store env CS_STORE_REDERIVE_ROWS=3 CS_STORE_REDERIVE_PAUSE=300ms "$B/services/store/crmsync-store"
	for _ in $(seq 600); do
		[ "$(psql_ crmsync_up -c "$midjob")" -ge 1 ] &&
		    [ "$(psql_ crmsync_up -c "SELECT count(*) FROM crmsync.rederive_jobs WHERE status = 'done'")" -ge 1 ] && break
		sleep 0.05
	done
	pending=$(psql_ crmsync_up -c "SELECT count(*) FROM crmsync.rederive_jobs WHERE status = 'pending'")
	[ "$pending" -gt 0 ] || fail "the re-derivation was over before the store could be killed"
	if [ "$try" = 1 ]; then
		"$CTL" status -v >"$T/status-upgrading.log" 2>&1 || true
		grep -q 'upgrading: re-deriving' "$T/status-upgrading.log" || fail "crmsyncctl status does not say it is upgrading"
		grep -q 'rederive_pending_rows' "$T/status-upgrading.log" || fail "crmsyncctl status -v lacks rederive_pending_rows"
	fi
	stop new-store KILL
	pending=$(psql_ crmsync_up -c "SELECT count(*) FROM crmsync.rederive_jobs WHERE status = 'pending'")
	[ "$(psql_ crmsync_up -c "$midjob")" -ge 1 ] && break
	say "the kill fell between two jobs (try $try); again"
done
[ "$(psql_ crmsync_up -c "$midjob")" -ge 1 ] || fail "five kills all fell between jobs"
say "new store killed during the re-derivation ($pending jobs pending)"
mv "$T/new-store.log" "$T/new-store-killed.log"	# the restarted store's own log tells whether it resumed
start new-store store "$B/services/store/crmsync-store"
for _ in $(seq 600); do
	[ "$(psql_ crmsync_up -c "SELECT count(*) FROM crmsync.rederive_jobs WHERE status = 'pending'")" = 0 ] && break
	sleep 0.1
done
[ "$(psql_ crmsync_up -c "SELECT count(*) FROM crmsync.rederive_jobs WHERE status <> 'done'")" = 0 ] ||
    fail "re-derivation jobs not done: $(psql_ crmsync_up -c "SELECT entity || ':' || status FROM crmsync.rederive_jobs WHERE status <> 'done'")"
grep -q 'resumed=1' "$T/new-store.log" || fail "the restarted store did not resume the job it was killed in"
runs=$(psql_ crmsync_up -c "SELECT string_agg(crm || ' ' || status, ', ') FROM crmsync.sync_runs WHERE kind = 'rederive'")
"$CTL" probe store >"$T/probe.log" || fail "store not healthy after the upgrade"
grep -q upgrading "$T/probe.log" && fail "the store still says it is upgrading"
after=$(requests)
stop new-store
[ "$before" = "$after" ] || fail "the fakes saw requests during the upgrade: $before -> $after"
say "upgraded: runs $runs; the fakes saw no request ($after)"
$CMP survived "$T/pg" crmsync_up >"$T/survived.log" 2>&1 || { cat "$T/survived.log"; fail "rows, deletions, cursors or runs did not survive"; }
say "$(tail -n 1 "$T/survived.log")"
psql_ crmsync_up -c "SELECT action, count(*) FROM crmsync.schema_steps GROUP BY 1 ORDER BY 1" >"$T/steps.log"
say "steps: $(tr '\n|' '; ' <"$T/steps.log")"
for step in "hollihop.students add_column amo_lead_id" "hollihop.ed_unit_student_days add_column minutes" \
    "hollihop.ed_unit_student_days drop_column payable" "hollihop.teachers drop_column gender"; do
	set -- $step
	[ "$(psql_ crmsync_up -c "SELECT count(*) FROM crmsync.schema_steps WHERE tbl = '$1' AND action = '$2' AND detail LIKE '$3%'")" = 1 ] ||
	    fail "no step $step"
done

# --- the new release from scratch, for comparison -----------------------------------------
export CS_PG_DSN="host=$T/pg dbname=crmsync_fresh user=postgres" CS_CTL_PG_DSN="host=$T/pg dbname=crmsync_fresh user=postgres"
rm -f "$T/amo-token.json"
start store store "$B/services/store/crmsync-store"
start hollihop-sync hollihop-sync "$B/services/hollihop-sync/crmsync-hollihop-sync"
start amo-sync amo-sync "$B/services/amo-sync/crmsync-amo-sync"
syncs "$CTL"
for s in amo-sync hollihop-sync store; do stop "$s"; done
$CMP compare "$T/pg" crmsync_up crmsync_fresh >"$T/compare.log" 2>&1 || { cat "$T/compare.log"; fail "the upgraded database differs from a fresh sync"; }
grep '^note' "$T/compare.log" || true
say "$(tail -n 1 "$T/compare.log")"
[ "$(psql_ crmsync_up -c 'SELECT count(amo_lead_id) FROM hollihop.students')" -gt 0 ] ||
    fail "students.amo_lead_id is empty after the upgrade"
OK=1
say "passed"

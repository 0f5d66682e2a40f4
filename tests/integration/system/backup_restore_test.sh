#!/bin/sh
# backup_restore_test.sh - server B's backup, restored into a fresh cluster, comes current.
#
# Cluster A is set up as server B is (the image's roles script; the store logs in as
# crmsync_store). The four services sync it from the fake CRMs, a few hooks land, then
# deploy/backup/crmsync-backup dumps it as crmsync_store (its lock, naming and retention are
# checked on the way, and it must refuse a pg_dump that leaves a schema out). After the dump
# the fakes change: leads and contacts edited, added and deleted in amoCRM with their hooks
# (which land in A), students and payments edited, added and deleted in Hollihop. Then
# server B is "lost": the store stops, deploy/backup/crmsync-restore puts the dump into a
# FRESH cluster B (no roles, no database: it makes them), and a store starts on B while
# amo-sync, hollihop-sync and the gateway keep running. Checks, in order:
#   - B right after the restore holds what A held at the dump, not the later changes;
#   - an incremental amoCRM sync (`crmsyncctl sync amo`, the cursors from the dump) brings
#     the post-dump lead edits, additions and deletions in;
#   - after full syncs of both CRMs on B, and on A (the reference, never restored), every table of every entity schema (amo, hollihop, analytics when there)
#     holds the same rows in A and B: keys and contents, deleted or not, nothing missing,
#     nothing twice (backup_compare.py); the cursors are equal; live leads and students
#     equal the fakes' own keys; the analyst reads B, cannot write it.
# CS_BACKUP_TEST_PG_DUMP_ARGS="-N hollihop" (or "--exclude-table-data=hollihop.payments")
# makes the dump with plain pg_dump and those options instead of crmsync-backup (which
# refuses such a dump): the test must then fail; that is how it was checked.
#   CS_BUILD_DIR=build tests/integration/system/backup_restore_test.sh     (ctest sets it)
set -eu
SRC=$(cd "$(dirname "$0")/../../.." && pwd)
B=$(cd "${CS_BUILD_DIR:?set CS_BUILD_DIR to the build directory}" && pwd)
PY=${CS_PYTHON:-python3}
BACKUP=$SRC/deploy/backup/crmsync-backup
RESTORE=$SRC/deploy/backup/crmsync-restore
CMP="$PY $SRC/tests/integration/system/backup_compare.py"
T=$(mktemp -d "${TMPDIR:-/tmp}/crmsync-backup.XXXXXX")
chmod 0755 "$T"
# shellcheck source=tests/harness/stack.sh
. "$SRC/tests/harness/stack.sh"
cleanup() {
	_rc0=$?
	"$TESTPG" stop "$T/pgB" immediate
	stack_cleanup "$_rc0"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
sqlc() {	# sqlc A|B ARGS...: psql on cluster A ($T/pg, stack_pg's) or B ($T/pgB)
	_h=$T/pg
	[ "$1" = A ] || _h=$T/pgB
	shift
	psql -X -q -h "$_h" -U postgres -d crmsync -tA "$@"
}

# --- cluster A as server B is made, the fakes, the four services ------------------------
stack_pg
PGHOST=$T/pg PGUSER=postgres POSTGRES_DB=crmsync CRMSYNC_STORE_PASSWORD=unused-a CRMSYNC_ANALYST_PASSWORD=unused-b \
    sh "$SRC/deploy/docker/postgres/initdb/10-crmsync-roles.sh" >"$T/roles.log" 2>&1 || fail "roles on cluster A"
start_fake fake-hollihop hollihop --scale tiny --seed 13 --authkey hh-key
start_fake fake-amocrm amocrm --scale tiny --seed 13 --rps 0 --long-lived-token amo-llt --now real
HH=$(url_of fake-hollihop)
AMO=$(url_of fake-amocrm)
GW_PORT=$(free_port)
make_cert
SECRET=backup-test-secret-0123456789
HOOK_URL=https://127.0.0.1:$GW_PORT/hooks/amo/$SECRET
stack_env
cat >>"$T/env" <<EOF
CS_STORE_RECONNECT_MAX=500ms
CS_AMO_HOOK_DELAY=100ms
CS_AMO_RPS=100
CS_AMO_INCREMENTAL_INTERVAL=0
EOF
stack_export
use_cluster() {	# use_cluster A|B: the store (as crmsync_store) and crmsyncctl talk to that cluster
	_h=$T/pg
	[ "$1" = A ] || _h=$T/pgB
	export CS_PG_DSN="host=$_h dbname=crmsync user=crmsync_store"
	export CS_CTL_PG_DSN="host=$_h dbname=crmsync user=postgres"
}
use_cluster A
sync_() {	# sync_ ARGS...: crmsyncctl sync ARGS, which must complete
	"$CTL" sync "$@" >>"$T/syncs.log" 2>&1 || fail "crmsyncctl sync $* ($CS_CTL_PG_DSN)"
}
for s in store hollihop-sync amo-sync hook-gateway; do start_svc "$s"; done
sync_ hollihop --full
sync_ amo --full

# amo CHANGES...: fake amoCRM mutations, then their webhooks through the gateway (each
# must be answered 2xx). A change: edit:ENTITY:FROM-TO:NAME, add:ENTITY:N, del:ENTITY:ID.
amo() {
	"$PY" - "$AMO" "$HOOK_URL" "$T/gw.crt" "$@" <<'PY'
import json, sys, urllib.request
amo, url, ca = sys.argv[1:4]
def post(path, body):
    req = urllib.request.Request(amo + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    return json.loads(urllib.request.urlopen(req, timeout=30).read())
ops, hooks = [], []
for ch in sys.argv[4:]:
    kind, ent, arg, *rest = ch.split(":")
    if kind == "edit":
        a, b = map(int, arg.split("-"))
        ops += [{"op": "edit", "entity": ent, "id": i, "set": {"name": f"{rest[0]} {i}"}} for i in range(a, b + 1)]
        hooks += [{"entity": ent, "action": "update", "ids": list(range(a, b + 1))}]
    elif kind == "del":
        ops.append({"op": "delete", "entity": ent, "id": int(arg)})
        hooks.append({"entity": ent, "action": "delete", "id": int(arg)})
    elif kind == "add":
        ops.append({"op": "add", "entity": ent, "count": int(arg)})
res = post("/_fake/mutate", {"ops": ops})
for r in res.get("results", []):
    if r.get("op") == "add":
        hooks.append({"entity": "leads", "action": "add", "ids": r["ids"]})
        print(" ".join(map(str, r["ids"])))
r = post("/_fake/send_hooks", {"url": url, "cafile": ca, "timeout": 10, "events": hooks})
if r["ok"] != r["requests"]:
    sys.exit(f"hooks not answered 2xx: {r}")
PY
}
wait_for() {	# wait_for CLUSTER SQL WANT WHAT: poll until SQL on CLUSTER gives WANT
	for _ in $(seq 200); do [ "$(sqlc "$1" -c "$2")" = "$3" ] && return 0; sleep 0.1; done
	fail "$4: $(sqlc "$1" -c "$2") instead of $3"
}
amo "edit:leads:1-4:before" >/dev/null || fail "hooks before the backup"
wait_for A "SELECT count(*) FROM amo.leads WHERE name LIKE 'before %'" 4 "hooks before the backup"
say "A synced: $(sqlc A -c 'SELECT count(*) FROM amo.leads') leads, $(sqlc A -c 'SELECT count(*) FROM hollihop.students') students"

# --- the backup ------------------------------------------------------------------------------
BK=$T/backups
mkdir -p "$BK"
export PGHOST=$T/pg PGUSER=crmsync_store
if [ -n "${CS_BACKUP_TEST_PG_DUMP_ARGS:-}" ]; then
	# shellcheck disable=SC2086 # a list of pg_dump options
	pg_dump -Fc -d crmsync $CS_BACKUP_TEST_PG_DUMP_ARGS -f "$BK/crmsync-$(date -u +%Y%m%dT%H%M%SZ).dump" ||
	    fail "pg_dump $CS_BACKUP_TEST_PG_DUMP_ARGS"
	say "SABOTAGE: dump made by pg_dump $CS_BACKUP_TEST_PG_DUMP_ARGS, not by crmsync-backup"
	DUMP=$(ls "$BK"/crmsync-*T*Z.dump)
else
	# Empty dumps of earlier days and a .partial a killed run left: the run keeps 2 daily
	# and 1 weekly dumps (the same rule computed below) and removes the .partial.
	for d in 1 2 3 9 10; do
		: >"$BK/crmsync-$(date -u -d "-$d days" +%Y%m%d)T013000Z.dump"
	done
	: >"$BK/.crmsync-$(date -u -d '-1 days' +%Y%m%d)T013000Z.dump.partial"
	ls "$BK" >"$T/backups-before.ls"
	"$BACKUP" --dir "$BK" --keep-daily 2 --keep-weekly 1 2>"$T/backup.log" || fail "crmsync-backup exited $?"
	DUMP=$(sed -n 's/.*ev=backup.done .*file=\([^ ]*\).*/\1/p' "$T/backup.log")
	[ -s "$DUMP" ] || fail "no dump: $(cat "$T/backup.log")"
	"$PY" - "$BK" "$(basename "$DUMP")" "$T/backups-before.ls" <<'PY' || fail "retention"
import datetime, os, sys
d, new, before = sys.argv[1], sys.argv[2], open(sys.argv[3]).read().split()
names = sorted({n for n in before if n.endswith(".dump")} | {new}, reverse=True)
keep, days, weeks = {new}, [], []
for n in names:
    day = datetime.datetime.strptime(n[len("crmsync-"):len("crmsync-") + 8], "%Y%m%d").date()
    if day not in days:
        days.append(day)
        if len(days) <= 2: keep.add(n)
    if day.isocalendar()[:2] not in weeks:
        weeks.append(day.isocalendar()[:2])
        if len(weeks) <= 1: keep.add(n)
have = set(os.listdir(d)) - {".lock"}
if have != keep:
    sys.exit(f"retention: kept {sorted(have)}, want {sorted(keep)}")
PY
	[ "$(stat -c %a "$DUMP")" = 600 ] || fail "the dump is mode $(stat -c %a "$DUMP"), not 600"
fi
# The lock: a second run while one holds it exits 4 and writes nothing.
rc=0
flock "$BK/.lock" "$BACKUP" --dir "$BK" 2>"$T/backup-locked.log" || rc=$?
[ "$rc" = 4 ] || fail "crmsync-backup beside a running one exited $rc, not 4"
# A pg_dump that leaves a schema out is refused; the dumps already there stay.
mkdir -p "$T/bad-bin"
printf '#!/bin/sh\nexec pg_dump --exclude-schema=hollihop "$@"\n' | sed "s|exec pg_dump|exec $(command -v pg_dump)|" >"$T/bad-bin/pg_dump"
chmod +x "$T/bad-bin/pg_dump"
rc=0
PATH=$T/bad-bin:$PATH "$BACKUP" --dir "$T/bad-backups" 2>"$T/backup-bad.log" || rc=$?
[ "$rc" = 1 ] && grep -q 'ev=backup.verify_failed.*schema:hollihop' "$T/backup-bad.log" ||
    fail "a dump without schema hollihop was not refused (exit $rc): $(cat "$T/backup-bad.log")"
for f in "$T/bad-backups"/*dump*; do [ -e "$f" ] && fail "the refused dump was kept: $f"; done
unset PGHOST PGUSER
say "backup: $(basename "$DUMP"), $(wc -c <"$DUMP") bytes; lock, retention, a dump missing a schema refused"

# --- after the backup: the CRMs move on; A keeps up through hooks ----------------------------
new_leads=$(amo "edit:leads:5-9:after" "add:leads:3" "del:leads:10" "del:leads:11" "edit:contacts:1-2:after") ||
    fail "amoCRM changes after the backup"
curl -fsS -X POST "$HH/_fake/mutate" -H 'Content-Type: application/json' -d "$("$PY" - "$HH" <<'PY'
import json, sys, urllib.request
keys = lambda m: json.loads(urllib.request.urlopen(f"{sys.argv[1]}/_fake/keys?method={m}").read())["keys"]
st, pay = keys("GetStudents"), keys("GetPayments")
print(json.dumps({"ops": [{"op": "delete", "method": "GetStudents", "keys": st[:2]},
                          {"op": "delete", "method": "GetPayments", "keys": pay[-1:]},
                          {"op": "edit", "method": "GetStudents", "key": st[4], "set": {"FirstName": "После"}},
                          {"op": "add", "method": "GetStudents", "count": 2}]}))
PY
)" >/dev/null || fail "Hollihop changes after the backup"
wait_for A "SELECT count(*) FROM amo.leads WHERE name LIKE 'after %' OR (id IN (10, 11) AND deleted_at IS NOT NULL)" 7 \
    "hooks after the backup in A"
for id in $new_leads; do wait_for A "SELECT count(*) FROM amo.leads WHERE id = $id" 1 "new lead $id in A"; done
say "after the backup: 5 leads and 2 contacts edited, 3 leads added ($new_leads), 2 deleted, hooks in A; Hollihop: 2 students and a payment deleted, 1 edited, 2 added"

# --- server B lost: restore into a fresh cluster, the store moves there ----------------------
stop_proc store
"$TESTPG" start "$T/pgB" scratch >/dev/null
rc=0
PGHOST=$T/pgB PGUSER=postgres "$RESTORE" "$BK" >"$T/restore.out" 2>"$T/restore.log" || rc=$?
[ "$rc" = 3 ] && grep -q 'ev=restore.no_password' "$T/restore.log" ||
    fail "restore into a cluster without roles and without passwords: exit $rc ($(cat "$T/restore.log"))"
PGHOST=$T/pgB PGUSER=postgres CRMSYNC_STORE_PASSWORD=unused-a CRMSYNC_ANALYST_PASSWORD=unused-b \
    "$RESTORE" "$BK" >"$T/restore.out" 2>"$T/restore.log" || fail "crmsync-restore exited $?: $(cat "$T/restore.log")"
grep -q '^Next:' "$T/restore.out" || fail "crmsync-restore printed no next steps"
rc=0
PGHOST=$T/pgB PGUSER=postgres "$RESTORE" "$DUMP" >/dev/null 2>"$T/restore-again.log" || rc=$?
[ "$rc" = 4 ] || fail "a second restore onto the restored database exited $rc, not 4 (not empty)"
[ "$(sqlc B -c "SELECT count(*) FROM amo.leads WHERE name LIKE 'after %'")" = 0 ] ||
    fail "B holds changes made after the dump"
[ "$(sqlc B -c "SELECT count(*) FROM amo.leads WHERE name LIKE 'before %'")" = 4 ] ||
    fail "B lacks the hooks before the dump"
[ "$(sqlc B -c "SELECT nspowner::regrole FROM pg_namespace WHERE nspname = 'amo'")" = crmsync_store ] ||
    fail "schema amo is not owned by crmsync_store after the restore"
psql -X -q -h "$T/pgB" -U crmsync_analyst -d crmsync -tA -c 'SELECT count(*) FROM hollihop.students' >/dev/null ||
    fail "the analyst cannot read B"
psql -X -q -h "$T/pgB" -U crmsync_analyst -d crmsync -c 'DELETE FROM amo.leads' >/dev/null 2>&1 &&
    fail "the analyst can write B"
cur0=$(sqlc B -c "SELECT value FROM crmsync.cursors WHERE crm = 'amo' AND name = 'leads.updated_at'")
[ -n "$cur0" ] || fail "no amoCRM leads cursor in the restored database: $(sqlc B -c 'SELECT crm, name FROM crmsync.cursors')"
use_cluster B
start_svc store
say "restored into cluster B ($(grep -c . "$T/restore.out") lines of summary); store on B, the other three kept running"

# The incremental sync from the restored cursors re-reads what changed after the dump.
sync_ amo
after=$(sqlc B -c "SELECT count(*) FROM amo.leads WHERE name LIKE 'after %' AND deleted_at IS NULL")
[ "$after" = 5 ] || fail "the incremental sync from the restored cursor brought $after of 5 edited leads"
for id in $new_leads; do
	[ "$(sqlc B -c "SELECT count(*) FROM amo.leads WHERE id = $id AND deleted_at IS NULL")" = 1 ] ||
	    fail "lead $id, added after the dump, is not in B after the incremental sync"
done
[ "$(sqlc B -c "SELECT count(*) FROM amo.leads WHERE id IN (10, 11) AND deleted_at IS NOT NULL")" = 2 ] ||
    fail "leads deleted after the dump are not deleted in B after the incremental sync"
cur1=$(sqlc B -c "SELECT value FROM crmsync.cursors WHERE crm = 'amo' AND name = 'leads.updated_at'")
[ "$cur1" -gt "$cur0" ] || fail "the leads cursor did not move: $cur0 -> $cur1"
say "incremental amoCRM sync on B: edits, additions and deletions after the dump are in (cursor $cur0 -> $cur1)"
sync_ hollihop --full
sync_ amo --full
stop_proc store

# The reference: A, never restored, gets the same syncs.
use_cluster A
start_svc store
sync_ hollihop --full
sync_ amo --full
stop_proc store
say "full syncs of both CRMs on A"

# --- A and B must be equal, and equal to the fakes ---------------------------------------
$CMP "$T/pg" "$T/pgB" crmsync >"$T/compare.log" 2>&1 || { cat "$T/compare.log"; fail "B differs from A"; }
say "$(tail -n 1 "$T/compare.log")"
"$PY" - "$AMO" "$HH" "$T/pgB" >"$T/fakes.log" 2>&1 <<'PY' || { cat "$T/fakes.log"; fail "B differs from the fakes"; }
import json, subprocess, sys, urllib.request
amo, hh, host = sys.argv[1:4]
get = lambda u: json.loads(urllib.request.urlopen(u).read())
def db(sql):
    return subprocess.run(["psql", "-X", "-q", "-tA", "-h", host, "-U", "postgres", "-d", "crmsync", "-c", sql],
                          check=True, capture_output=True, text=True).stdout.split()
bad = 0
for ent in ("leads", "contacts"):
    want = sorted(map(str, get(f"{amo}/_fake/ids?entity={ent}")["ids"]), key=int)
    have = db(f"SELECT id FROM amo.{ent} WHERE deleted_at IS NULL ORDER BY id")
    if want != have:
        print(f"FAIL amo.{ent}: fake has {len(want)} live, B {len(have)}: {sorted(set(want) ^ set(have))[:10]}")
        bad += 1
k = get(f"{hh}/_fake/keys?method=GetStudents")
want = sorted(str(x[0] if isinstance(x, list) else x) for x in k["keys"])
col = "client_id" if k["key_fields"][0] == "ClientId" else "id"
have = sorted(db(f"SELECT {col} FROM hollihop.students WHERE deleted_at IS NULL"))
if want != have:
    print(f"FAIL hollihop.students: fake has {len(want)} live, B {len(have)}")
    bad += 1
print("fakes: live leads, contacts and students of B equal the fakes' keys")
sys.exit(1 if bad else 0)
PY
say "$(tail -n 1 "$T/fakes.log")"
if grep -qE 'runtime error|AddressSanitizer|LeakSanitizer' "$T"/*.log; then
	fail "sanitizer report in the logs"
fi
OK=1
say "passed"

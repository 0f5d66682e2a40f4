#!/bin/sh
# restarts_test.sh - independent restarts: the four services run as processes against a
# throwaway PostgreSQL and the two fake CRMs while webhooks and syncs keep flowing; each
# service in turn is stopped (SIGTERM) and started again, then each is killed (SIGKILL)
# and started again. While one is down the others must keep answering (and the gateway
# keep accepting hooks); they reconnect on their own; and nothing may be lost: at the end
# every lead edit whose webhook the gateway answered 2xx is in PostgreSQL, every student
# edit made in Hollihop is there after a full export, row counts equal the fakes' counts,
# and there are no dead letters.
#   CS_BUILD_DIR=build tests/integration/system/restarts_test.sh     (ctest sets it)
set -eu
SRC=$(cd "$(dirname "$0")/../../.." && pwd)
B=$(cd "${CS_BUILD_DIR:?set CS_BUILD_DIR to the build directory}" && pwd)
PY=${CS_PYTHON:-python3}
T=$(mktemp -d "${TMPDIR:-/tmp}/crmsync-restarts.XXXXXX")
chmod 0755 "$T"
. "$SRC/tests/harness/stack.sh"
trap stack_cleanup EXIT	# the traffic generator too (bg traffic)
trap 'exit 1' INT TERM

# --- PostgreSQL, fakes --------------------------------------------------------------------
stack_pg
start_fake fake-hollihop hollihop --scale tiny --seed 5 --authkey hh-key
start_fake fake-amocrm amocrm --scale tiny --seed 5 --rps 0 --long-lived-token amo-llt --now real
HH=$(url_of fake-hollihop)
AMO=$(url_of fake-amocrm)

# --- the four services ----------------------------------------------------------------
GW_PORT=$(free_port)
make_cert
SECRET=restarts-test-secret-0123456789
HOOK_URL=https://127.0.0.1:$GW_PORT/hooks/amo/$SECRET
# One environment for every process, as one env file would give them.
stack_env
cat >>"$T/env" <<EOF
CS_STORE_RECONNECT_MAX=500ms
CS_AMO_HOOK_DELAY=100ms
CS_AMO_RPS=100
CS_AMO_INCREMENTAL_INTERVAL=4s
EOF
stack_export

start() { start_svc "$1"; }
stop() { stop_proc "$@"; }
for s in store hollihop-sync amo-sync hook-gateway; do start "$s"; done
say "four services up"

# --- a baseline: full syncs of both CRMs ------------------------------------------------
"$CTL" sync hollihop --full >"$T/sync0.log" 2>&1 || fail "first Hollihop export"
"$CTL" sync amo --full >>"$T/sync0.log" 2>&1 || fail "first amoCRM sync"
say "baseline: $(psql_ -c 'SELECT count(*) FROM amo.leads') leads, $(psql_ -c 'SELECT count(*) FROM hollihop.students') students"

# --- traffic: lead edits whose hooks go through the gateway; student edits in Hollihop --
NLEADS=$(psql_ -c 'SELECT max(id) FROM amo.leads')
NSTUD=$(psql_ -c 'SELECT count(*) FROM hollihop.students')
: >"$T/traffic.stop"
rm -f "$T/traffic.stop"
cat >"$T/traffic.py" <<'PY'
# Edit a lead in the fake, then deliver its update hook through the HTTPS gateway until it
# is answered 2xx (as amoCRM retries); record what each lead must finally be called.
# Every third round also renames a Hollihop student. Stops when T/traffic.stop appears.
import json, os, sys, time, urllib.request
amo, hh, hook_url, cafile, nleads, tdir = sys.argv[1:7]
nleads = int(nleads)
def post(url, body):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    return json.loads(urllib.request.urlopen(req, timeout=30).read())
keys = json.loads(urllib.request.urlopen(hh + "/_fake/keys?method=GetStudents").read())["keys"]
leads, students, n, acked, refused = {}, {}, 0, 0, 0
while not os.path.exists(os.path.join(tdir, "traffic.stop")):
    n += 1
    lid = 1 + (n * 7) % nleads
    name = f"перезапуск {n}"
    post(amo + "/_fake/mutate", {"ops": [{"op": "edit", "entity": "leads", "id": lid, "set": {"name": name}}]})
    while True:
        r = post(amo + "/_fake/send_hooks", {"url": hook_url, "cafile": cafile, "timeout": 5,
                 "events": [{"entity": "leads", "action": "update", "id": lid}]})
        if r["ok"] == r["requests"]:
            acked += 1
            break
        refused += 1          # gateway down or busy: amoCRM would retry later
        time.sleep(0.2)
    leads[lid] = name
    if n % 3 == 0:
        key = keys[n % len(keys)]
        sname = f"Студент {n}"
        post(hh + "/_fake/mutate", {"ops": [{"op": "edit", "method": "GetStudents", "key": key,
             "set": {"FirstName": sname}}]})
        students[json.dumps(key)] = sname
    with open(os.path.join(tdir, "traffic.json.tmp"), "w") as f:
        json.dump({"leads": leads, "students": students, "acked": acked, "refused": refused, "n": n}, f)
    os.replace(os.path.join(tdir, "traffic.json.tmp"), os.path.join(tdir, "traffic.json"))
    time.sleep(0.05)
PY
bg traffic "$PY" "$T/traffic.py" "$AMO" "$HH" "$HOOK_URL" "$T/gw.crt" "$NLEADS" "$T"
acked() { "$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["acked"])' "$T/traffic.json" 2>/dev/null || echo 0; }
for _ in $(seq 100); do [ "$(acked)" -gt 3 ] && break; sleep 0.1; done
[ "$(acked)" -gt 3 ] || fail "no webhook got through the gateway"
say "traffic flowing: $(acked) hooks acknowledged"

# --- restart each service in turn while traffic flows: stopped, then killed -------------
for round in TERM KILL; do
for s in store amo-sync hollihop-sync hook-gateway; do
	# A sync in flight too (it may be refused as busy, or be cut by the restart: both fine).
	"$CTL" sync hollihop --full --no-wait >>"$T/syncs.log" 2>&1 || true
	before=$(acked)
	stop "$s" "$round"
	say "$s stopped (SIG$round)"
	sleep 2	# a window with $s down, on purpose: the others must keep answering through it
	for o in store amo-sync hollihop-sync hook-gateway; do
		[ "$o" = "$s" ] && continue
		"$CTL" probe -q --live "$o" || fail "$o stopped answering while $s was down"
	done
	if [ "$s" != hook-gateway ]; then
		# The gateway keeps answering webhooks (they wait in its journal).
		for _ in $(seq 50); do [ "$(acked)" -gt "$before" ] && break; sleep 0.1; done
		[ "$(acked)" -gt "$before" ] || fail "no webhook acknowledged while $s was down"
	fi
	"$CTL" probe -q "$s" >/dev/null 2>&1 && fail "$s still answers after it stopped"
	start "$s"
	say "$s started again; $(acked) hooks acknowledged so far"
	# Traffic flows through the restarted service before the next one goes down.
	n=$(acked)
	for _ in $(seq 100); do [ "$(acked)" -gt "$((n + 5))" ] && break; sleep 0.1; done
	[ "$(acked)" -gt "$((n + 5))" ] || fail "no webhook acknowledged after $s came back"
done
done

touch "$T/traffic.stop"
[ "$("$SVC" wait "$T" traffic 120)" = 0 ] || fail "traffic generator failed"
say "traffic stopped: $(acked) hooks acknowledged"

# --- nothing lost ------------------------------------------------------------------------
# Every acknowledged lead edit reaches PostgreSQL through gateway -> amo-sync -> store.
"$PY" - "$T/traffic.json" >"$T/expect.sql" <<'PY'
import json, sys
t = json.load(open(sys.argv[1]))
rows = ",".join(f"({int(k)}, '{v}')" for k, v in t["leads"].items())
print(f"SELECT count(*) FROM (VALUES {rows}) AS e(id, name) JOIN amo.leads l USING (id) WHERE l.name = e.name")
PY
want=$("$PY" -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["leads"]))' "$T/traffic.json")
got=0
for _ in $(seq 300); do
	got=$(psql_ -f "$T/expect.sql")
	[ "$got" = "$want" ] && break
	sleep 0.2
done
[ "$got" = "$want" ] || fail "only $got of $want edited leads have their last name in PostgreSQL"
say "all $want edited leads carry their last name in PostgreSQL"

# Both CRMs: a full run completes after all this, and row counts match the fakes.
# A run started before the last edits may still be going: follow it, then start a fresh one.
for _ in 1 2 3; do
	"$CTL" sync hollihop --full >"$T/sync1.log" 2>&1 || fail "Hollihop export after the restarts"
	grep -q 'is busy' "$T/sync1.log" || break
done
grep -q 'is busy' "$T/sync1.log" && fail "hollihop-sync stays busy"
for _ in 1 2 3; do
	"$CTL" sync amo --full >"$T/sync2.log" 2>&1 || fail "amoCRM sync after the restarts"
	grep -q 'is busy' "$T/sync2.log" || break
done
fake_students=$(curl -fsS "$HH/_fake/count?method=GetStudents&children=0" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["rows"])')
db_students=$(psql_ -c 'SELECT count(*) FROM hollihop.students WHERE deleted_at IS NULL')
[ "$fake_students" = "$db_students" ] || fail "students: fake $fake_students, PostgreSQL $db_students"
fake_leads=$(curl -fsS "$AMO/_fake/count?entity=leads" | "$PY" -c 'import json,sys; d=json.load(sys.stdin); print(d["count"] if isinstance(d, dict) and "count" in d else d)')
db_leads=$(psql_ -c 'SELECT count(*) FROM amo.leads WHERE deleted_at IS NULL')
[ "$fake_leads" = "$db_leads" ] || fail "leads: fake $fake_leads, PostgreSQL $db_leads"
"$PY" - "$T/traffic.json" >"$T/expect-st.sql" <<'PY'
import json, sys
t = json.load(open(sys.argv[1]))
rows = ",".join(f"({json.loads(k)}, '{v}')" for k, v in t["students"].items()) or "(0, '')"
print(f"SELECT count(*) FROM (VALUES {rows}) AS e(id, name) JOIN hollihop.students s ON s.client_id = e.id WHERE s.first_name = e.name")
PY
want_st=$("$PY" -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["students"]))' "$T/traffic.json")
got_st=$(psql_ -f "$T/expect-st.sql")
[ "$got_st" = "$want_st" ] || fail "only $got_st of $want_st edited students are in PostgreSQL"
dead=$(psql_ -c 'SELECT count(*) FROM crmsync.dead_letters')
[ "$dead" = 0 ] || fail "$dead dead letters"
[ -z "$(ls "$T/deadletter" 2>/dev/null)" ] || fail "the gateway dead-lettered hooks"
say "counts match (students $db_students of $NSTUD+, leads $db_leads), $want_st student edits, no dead letters"

"$CTL" status >"$T/status.log" 2>&1 || { cat "$T/status.log"; fail "crmsyncctl status not healthy at the end"; }
for s in hook-gateway amo-sync hollihop-sync store; do stop "$s"; done
OK=1
say "passed"

#!/bin/sh
# containers_test.sh - both servers for real, under podman: the project's images, the
# project's compose files run by podman-compose, the demo's flow and the independent
# restarts inside containers.
#
#   server A  deploy/compose/server-a.yml: store, amo-sync, hollihop-sync, hook-gateway on
#             their own network; the test's override (written below) adds the fake amoCRM
#             and fake Hollihop (tests/fake, in a python3 container) on that network and
#             the name of server B's host for the store
#   server B  deploy/compose/server-b.yml: the project's PostgreSQL image on a network of
#             its own. The store reaches it only through server B's published port, with
#             sslmode=verify-full and a certificate for db.<run>.test, as across two hosts
#
# Steps: images (cached: deploy/podman/build.sh), the fakes, server B, OAuth authorisation
# of amo-sync with a one-off `podman-compose run`, server A's services; server B's TLS and roles; full Hollihop
# export, full amoCRM sync and a burst of HTTPS webhooks, `crmsyncctl status` inside the
# stack, `podman healthcheck run` for each container; then, while hooks and syncs flow,
# each service's process is killed (SIGKILL) in turn and its restart policy must bring it
# back (unhealthy, then healthy), PostgreSQL's container is restarted, and nothing may be
# lost (rows and hooks counted against the fakes); last, the gateway's journal and
# amo-sync's token survive `podman rm -f` + recreate of both containers.
# Every container, network and volume carries this run's prefix and is removed at the end,
# also on failure. Published ports: 127.0.0.1 only, except server B's, which is published
# on the gateway address of server A's network (see PG_IP below).
#
#   tests/containers/containers_test.sh     (ctest containers_test; root, ~2-4 min warm)
# Exit 77 (skipped) when not root; everything else it needs, it installs.
set -eu
SRC=$(cd "$(dirname "$0")/../.." && pwd)
PY=${CS_PYTHON:-python3}
T0=$(date +%s)
OK=0
say() { printf '[%3ss] %s\n' $(($(date +%s) - T0)) "$*"; }
fail() { say "FAIL: $*"; exit 1; }
[ "$(id -u)" = 0 ] || { echo "containers_test: needs root (rootful podman); skipped"; exit 77; }

export CONTAINERS_CONF="$SRC/deploy/podman/containers.conf"
RUN=ct$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')	# this run's prefix
A=${RUN}a B=${RUN}b					# compose project names
T=$(mktemp -d "${TMPDIR:-/tmp}/crmsync-containers.XXXXXX")
chmod 0755 "$T"
C=$T/compose

remove_all() {
	for p in "$A" "$B"; do
		podman ps -aq --filter "label=io.podman.compose.project=$p" | xargs -r podman rm -f -t 0 >/dev/null 2>&1 || true
	done
	podman ps -aq --filter "name=^$RUN" | xargs -r podman rm -f -t 0 >/dev/null 2>&1 || true
	for p in "$A" "$B"; do
		podman volume ls -q --filter "label=io.podman.compose.project=$p" | xargs -r podman volume rm -f >/dev/null 2>&1 || true
		podman network ls -q --filter "label=io.podman.compose.project=$p" | xargs -r podman network rm -f >/dev/null 2>&1 || true
	done
}
cleanup() {
	_rc=$?
	[ -f "$T/traffic.pid" ] && kill "$(cat "$T/traffic.pid")" 2>/dev/null
	if [ "$OK" != 1 ]; then
		for c in $(podman ps -a --format '{{.Names}}' --filter "name=^$RUN" 2>/dev/null); do
			echo "----- podman logs $c (last 30 lines)"
			podman logs --tail 30 "$c" 2>&1 || true
		done
		for f in "$T"/*.log; do [ -f "$f" ] && { echo "----- $f"; tail -n 30 "$f"; }; done
	fi
	remove_all
	left=$(podman ps -aq --filter "name=^$RUN"; podman volume ls -q --filter "name=^$RUN"; podman network ls -q --filter "name=^$RUN")
	[ -z "$left" ] || echo "containers_test: could not remove: $left" >&2
	# A failed run's files (compose files, logs) stay for inspection, and any with CS_TEST_KEEP.
	if [ "$_rc" = 0 ] && [ "$OK" = 1 ] && [ "${CS_TEST_KEEP:-0}" = 0 ]; then rm -rf "$T"; else echo "containers_test: kept $T" >&2; fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# --- podman, images -----------------------------------------------------------------------
"$SRC/deploy/podman/setup.sh" >"$T/setup.log" 2>&1 || { cat "$T/setup.log"; fail "deploy/podman/setup.sh"; }
command -v psql >/dev/null || fail "psql missing (deploy/install-deps.sh installs postgresql-client)"
TAG=$("$SRC/deploy/podman/build.sh" 2>"$T/build.log" | tail -n1) || { cat "$T/build.log"; fail "deploy/podman/build.sh"; }
PYTAG=p$(sha256sum "$SRC/tests/containers/python.Dockerfile" | cut -c1-12)
PYIMG=localhost/crmsync-test/python:$PYTAG
podman image exists "$PYIMG" || podman build -q --format docker --pull=never -t "$PYIMG" \
    -f "$SRC/tests/containers/python.Dockerfile" "$SRC/tests/containers" >>"$T/build.log" 2>&1 ||
    fail "building $PYIMG"
say "images ready: crmsync/*:$TAG ($(grep -c 'Using cache' "$T/build.log" || true) cached steps)"

# --- the two servers' files: the project's compose files, certificates, env files -----
mkdir -p "$C/tls"
cp "$SRC/deploy/compose/server-a.yml" "$SRC/deploy/compose/server-b.yml" "$C/"
DBNAME=db.$RUN.test
sh "$SRC/deploy/compose/make-certs.sh" "$C/pgtls" "$DBNAME" >/dev/null
sh "$SRC/deploy/compose/make-certs.sh" "$C/othertls" "$DBNAME" >/dev/null	# a foreign CA
cp "$C/pgtls/server.crt" "$C/pgtls/server.key" "$C/tls/"
cp "$C/pgtls/ca.crt" "$C/tls/pg-ca.crt"
chown 999:999 "$C/tls/server.key" && chmod 0600 "$C/tls/server.key"
# The gateway's certificate: the name the fake amoCRM dials on server A's network.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -keyout "$C/tls/gateway.key" -out "$C/tls/gateway.crt" -subj "/CN=hook-gateway" \
    -addext "subjectAltName=DNS:hook-gateway,IP:127.0.0.1" >/dev/null 2>&1
chown 10001:10001 "$C/tls/gateway.key" && chmod 0400 "$C/tls/gateway.key"

# Server A's network, made before compose would make it, to know its gateway address:
# server B publishes PostgreSQL there. A container cannot reach the host's 127.0.0.1,
# and the host's outward address would publish the port beyond this machine; the
# gateway address of the test's own bridge is a host address that only this host and
# server A's containers reach - "server B's host" as server A sees it.
podman network create --label "io.podman.compose.project=$A" --label "com.docker.compose.project=$A" \
    "${A}_crmsync" >/dev/null
PG_IP=$(podman network inspect "${A}_crmsync" --format '{{range .Subnets}}{{.Gateway}}{{end}}')
[ -n "$PG_IP" ] || fail "no gateway address for ${A}_crmsync"
PG_PORT=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("0.0.0.0",0)); print(s.getsockname()[1])')
STORE_PW='st0re pw/%'	# needs percent-encoding in the URI
STORE_PW_URI='st0re%20pw%2F%25'
ANALYST_PW=analyst-$RUN
SECRET=containers-test-secret-$RUN
printf 'POSTGRES_PASSWORD=\nCRMSYNC_STORE_PASSWORD=%s\nCRMSYNC_ANALYST_PASSWORD=%s\n' "$STORE_PW" "$ANALYST_PW" >"$C/server-b.env"
cat >"$C/crmsync.env" <<EOF
CS_PG_DSN=postgresql://crmsync_store:$STORE_PW_URI@$DBNAME:$PG_PORT/crmsync?sslmode=verify-full&sslrootcert=/etc/crmsync/pg-ca.crt&connect_timeout=10
CS_CTL_PG_DSN=postgresql://crmsync_analyst:$ANALYST_PW@$DBNAME:$PG_PORT/crmsync?sslmode=verify-full&sslrootcert=/etc/crmsync/pg-ca.crt&connect_timeout=10
CS_STORE_RECONNECT_MAX=500ms
CS_AMO_BASE_URL=http://fake-amocrm:8080
CS_AMO_CLIENT_ID=fake-client-id
CS_AMO_CLIENT_SECRET=fake-client-secret
CS_AMO_REDIRECT_URI=https://example.com/oauth
CS_AMO_HOOK_DELAY=100ms
CS_AMO_RPS=100
CS_AMO_INCREMENTAL_INTERVAL=4s
CS_HOLLIHOP_BASE_URL=http://fake-hollihop:8080/Api/V2
CS_HOLLIHOP_AUTHKEY=hh-key
CS_HOLLIHOP_SCHEDULE=off
CS_HOLLIHOP_RATE=0
CS_GATEWAY_SECRET=$SECRET
EOF
chmod 0600 "$C/crmsync.env" "$C/server-b.env"
# The test's override of server A: the fakes, and server B's name for every service (the
# store dials it; crmsyncctl reads crmsync.* as the analyst from any container).
{
	echo 'version: "2.4"'
	echo 'services:'
	for s in store amo-sync hollihop-sync hook-gateway; do
		printf '  %s:\n    extra_hosts:\n      - "%s:%s"\n' "$s" "$DBNAME" "$PG_IP"
	done
	for f in amocrm hollihop; do
		if [ $f = amocrm ]; then
			args='"--scale", "tiny", "--seed", "5", "--rps", "0", "--now", "real"'
		else
			args='"--scale", "tiny", "--seed", "5", "--authkey", "hh-key"'
		fi
		cat <<EOF
  fake-$f:
    image: $PYIMG
    restart: "no"
    networks:
      - crmsync
    read_only: true
    volumes:
      - $SRC/tests/fake:/fake:ro
      - $SRC/tests/containers/fake_in_container.py:/fake_in_container.py:ro
      - $C/tls/gateway.crt:/tls/gateway.crt:ro
    command: ["/fake_in_container.py", "/fake/$f/fake_$f.py", "--port", "8080", $args]
    ports:
      - "127.0.0.1::8080"
EOF
	done
} >"$C/test-a.yml"
export CRMSYNC_TAG=$TAG
export CRMSYNC_WEBHOOK_PUBLISH=127.0.0.1: CRMSYNC_STORE_METRICS=127.0.0.1: CRMSYNC_AMO_METRICS=127.0.0.1: \
    CRMSYNC_HOLLIHOP_METRICS=127.0.0.1: CRMSYNC_GATEWAY_METRICS=127.0.0.1:
export CRMSYNC_PG_PUBLISH=$PG_IP:$PG_PORT
compose_a() { (cd "$C" && podman-compose -p "$A" -f server-a.yml -f test-a.yml "$@") >>"$T/compose.log" 2>&1; }
compose_b() { (cd "$C" && podman-compose -p "$B" -f server-b.yml "$@") >>"$T/compose.log" 2>&1; }
c() { echo "${A}_$1_1"; }	# container of a server A service
PGC=${B}_postgres_1

# --- server B; server A: fakes, the OAuth authorisation, the services --------------------
# The fakes first: their containers bring server A's bridge (and its gateway address) up,
# where server B then publishes its port; the services start once PostgreSQL is there.
compose_a up -d --no-build fake-amocrm fake-hollihop || fail "podman-compose up (fakes)"
compose_b up -d --no-build || fail "podman-compose up (server B)"
hostport() { podman port "$1" "$2" | head -n1 | sed 's/^0\.0\.0\.0:/127.0.0.1:/'; }
AMO=http://$(hostport "$(c fake-amocrm)" 8080)
HH=http://$(hostport "$(c fake-hollihop)" 8080)
for u in "$AMO/_fake/count?entity=leads" "$HH/_fake/keys?method=GetStudents"; do
	for _ in $(seq 100); do curl -fsS -o /dev/null "$u" 2>/dev/null && break; sleep 0.1; done
	curl -fsS -o /dev/null "$u" || fail "fake not answering: $u"
done
# As an operator authorises the integration once: the token pair lands in amo-state.
compose_a run --rm --no-deps amo-sync --auth-code fake-auth-code || fail "amo-sync --auth-code"
compose_a up -d --no-build || fail "podman-compose up (server A)"
SERVICES="store amo-sync hollihop-sync hook-gateway"
ALL="$(for s in $SERVICES; do c "$s"; done) $PGC"
for x in $ALL; do
	[ "$(podman inspect --format '{{.State.Status}}' "$x" 2>/dev/null)" = running ] || fail "$x is not running"
done
hc() { podman healthcheck run "$1" >/dev/null 2>&1; }	# the image's HEALTHCHECK, run now
wait_healthy() {	# wait_healthy CONTAINER [SECONDS]
	end=$(($(date +%s) + ${2:-90}))
	until hc "$1"; do
		[ "$(date +%s)" -lt "$end" ] || return 1
		sleep 0.3
	done
}
for x in $ALL; do wait_healthy "$x" 120 || fail "$x did not turn healthy"; done
say "server A (4 services + 2 fakes) and server B up, every HEALTHCHECK passes"

# --- server B: TLS, roles, published port -----------------------------------------------
pgdsn() {	# pgdsn ROLE PASSWORD [extra conninfo]: keyword DSN to server B from the host
	echo "host=$DBNAME hostaddr=$PG_IP port=$PG_PORT dbname=crmsync user=$1 password=$2 sslmode=verify-full sslrootcert=$C/pgtls/ca.crt ${3:-}"
}
ADSN=$(pgdsn crmsync_analyst "$ANALYST_PW")
psql_() { psql -X -q -tA "$ADSN" "$@"; }
for _ in $(seq 100); do
	[ "$(psql_ -c "SELECT count(*) FROM pg_tables WHERE schemaname = 'amo'" 2>/dev/null || echo 0)" -gt 0 ] && break
	sleep 0.3
done
[ "$(psql_ -c 'SHOW ssl')" = on ] || fail "analyst session is not TLS"
[ "$(psql_ -c "SELECT string_agg(DISTINCT tableowner, ',') FROM pg_tables WHERE schemaname IN ('amo','hollihop','crmsync')")" = crmsync_store ] ||
    fail "the store did not migrate as crmsync_store"
# Every session of the store, seen by the superuser inside server B's container.
pgsu() { podman exec "$PGC" psql -X -q -tA -U postgres -d crmsync "$@"; }
[ "$(pgsu -c "SELECT count(*) FILTER (WHERE s.ssl) || '/' || count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.usename = 'crmsync_store'")" = 1/1 ] ||
    fail "the store's sessions are not all TLS: $(pgsu -c "SELECT a.client_addr, s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.usename = 'crmsync_store'")"
psql_ -c "INSERT INTO crmsync.cursors (crm, name, value) VALUES ('x','y','z')" >/dev/null 2>&1 && fail "analyst could write"
psql -X -tA "host=$PG_IP port=$PG_PORT dbname=crmsync user=crmsync_analyst password=$ANALYST_PW sslmode=verify-full sslrootcert=$C/pgtls/ca.crt" \
    -c 'SELECT 1' >/dev/null 2>&1 && fail "verify-full accepted a certificate that does not name $PG_IP"
psql -X -tA "$(pgdsn crmsync_analyst "$ANALYST_PW" | sed "s#$C/pgtls/ca.crt#$C/othertls/ca.crt#")" \
    -c 'SELECT 1' >/dev/null 2>&1 && fail "a certificate from another CA was accepted"
psql -X -tA "host=$PG_IP port=$PG_PORT dbname=crmsync user=crmsync_store password=x sslmode=disable" \
    -c 'SELECT 1' >/dev/null 2>&1 && fail "plain TCP accepted"
say "server B: store migrated as crmsync_store over TLS; analyst read-only; wrong name, foreign CA, plain TCP refused"

# --- the demo's flow inside the containers --------------------------------------------
ctl() { ctl_c=$(c "$1"); shift; podman exec "$ctl_c" crmsyncctl "$@"; }
ctl store sync hollihop --full >"$T/sync0.log" 2>&1 || fail "full Hollihop export"
ctl store sync amo --full >>"$T/sync0.log" 2>&1 || fail "full amoCRM sync"
NLEADS=$(psql_ -c 'SELECT count(*) FROM amo.leads')
NSTUD=$(psql_ -c 'SELECT count(*) FROM hollihop.students')
[ "$NLEADS" -gt 20 ] && [ "$NSTUD" -gt 0 ] || fail "full syncs wrote $NLEADS leads, $NSTUD students"
curl -fsS "$AMO/_fake/mutate" -H 'Content-Type: application/json' -d "$("$PY" -c '
import json; print(json.dumps({"ops": [{"op": "edit", "entity": "leads", "id": i, "set": {"name": f"Вебхук в контейнер #{i}"}} for i in range(1, 21)]}))')" >/dev/null ||
    fail "editing leads in the fake"
# A burst from "amoCRM" (the fake's container) over HTTPS into the gateway's container.
podman exec "$(c fake-amocrm)" python3 /fake/amocrm/fake_amocrm.py send-hooks --from http://127.0.0.1:8080 \
    --url "https://hook-gateway:8443/hooks/amo/$SECRET" --cafile /tls/gateway.crt \
    --entity leads --action update --ids 1-20 --count 200 --concurrency 8 >"$T/burst.log" 2>&1 ||
    fail "webhook burst"
n=0
for _ in $(seq 300); do
	n=$(psql_ -c "SELECT count(*) FROM amo.leads WHERE name LIKE 'Вебхук в контейнер #%'")
	[ "$n" = 20 ] && break
	sleep 0.2
done
[ "$n" = 20 ] || fail "only $n of 20 leads renamed by webhooks reached PostgreSQL"
ctl store status >"$T/status0.log" 2>&1 || { cat "$T/status0.log"; fail "crmsyncctl status is not all healthy"; }
for x in $ALL; do hc "$x" || fail "podman healthcheck run $x"; done
say "demo flow: $NSTUD students, $NLEADS leads, 20 leads renamed by 200 HTTPS hooks; status and every HEALTHCHECK healthy"

# --- independent restarts while hooks and syncs flow ------------------------------------
GWPORT=$(hostport "$(c hook-gateway)" 8443)
curl -fsS -o /dev/null --cacert "$C/tls/gateway.crt" -X POST -d 'x=1' "https://$GWPORT/hooks/amo/wrong-secret-0123456789" 2>/dev/null &&
    fail "the gateway accepted a wrong secret"
curl -sS -o /dev/null --cacert "$C/tls/gateway.crt" "https://$GWPORT/" || fail "gateway not reachable on its published port $GWPORT"
"$PY" "$SRC/tests/containers/traffic.py" "$AMO" "$HH" "https://hook-gateway:8443/hooks/amo/$SECRET" \
    /tls/gateway.crt "$NLEADS" "$T" >>"$T/traffic.log" 2>&1 &
echo $! >"$T/traffic.pid"
acked() { "$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["acked"])' "$T/traffic.json" 2>/dev/null || echo 0; }
for _ in $(seq 100); do [ "$(acked)" -gt 3 ] && break; sleep 0.1; done
[ "$(acked)" -gt 3 ] || fail "no webhook got through the gateway"
say "traffic flowing: $(acked) hooks acknowledged"

restarts() { podman inspect --format '{{.RestartCount}}' "$1"; }
svc_pid() {	# svc_pid CONTAINER: host pid of the service's process (not the init)
	podman top "$1" hpid args | awk '$2 ~ /crmsync-/ { print $1; exit }'
}
# Each service in turn: first it hangs (SIGSTOP), and its HEALTHCHECK must turn unhealthy;
# then its process is killed (SIGKILL), as an operator or the OOM killer would; the
# container's restart policy must start it again (RestartCount + 1) and the HEALTHCHECK
# turn healthy. (`podman kill` would not do: podman 4.3 counts it as a stop by the user,
# after which no restart policy restarts the container; a process that dies is a crash.)
for s in store amo-sync hollihop-sync hook-gateway; do
	sc=$(c "$s")
	other=store
	[ "$s" = store ] && other=hollihop-sync
	# A sync in flight too (it may be refused as busy, or be cut by the crash: both fine).
	ctl "$other" sync hollihop --full --no-wait >>"$T/syncs.log" 2>&1 || true
	before=$(acked)
	r0=$(restarts "$sc")
	pid=$(svc_pid "$sc")
	[ -n "$pid" ] || fail "no service process in $sc"
	kill -STOP "$pid"
	sick=0
	for _ in $(seq 20); do hc "$sc" || { sick=1; break; }; sleep 0.2; done
	[ "$sick" = 1 ] || { kill -CONT "$pid"; fail "$s hangs, yet its HEALTHCHECK passes"; }
	kill -KILL "$pid"
	wait_healthy "$sc" 90 || fail "$s not healthy again after SIGKILL (restarts: $(restarts "$sc"))"
	[ "$(restarts "$sc")" = $((r0 + 1)) ] || fail "$s: RestartCount $(restarts "$sc"), expected $((r0 + 1))"
	[ "$(svc_pid "$sc")" != "$pid" ] || fail "$s: still the old process"
	for o in $SERVICES; do
		wait_healthy "$(c "$o")" 30 || fail "$o unhealthy after $s came back"
	done
	if [ "$s" != hook-gateway ]; then
		for _ in $(seq 100); do [ "$(acked)" -gt "$before" ] && break; sleep 0.1; done
		[ "$(acked)" -gt "$before" ] || fail "no webhook acknowledged around the $s restart"
	fi
	say "$s: hung -> unhealthy; SIGKILL -> restarted by its policy (RestartCount $(restarts "$sc")) -> healthy; $(acked) hooks acknowledged"
done
# PostgreSQL too: the store loses its session, reconnects, and nothing is lost.
r0=$(restarts "$PGC")
podman restart -t 30 "$PGC" >/dev/null || fail "podman restart $PGC"
wait_healthy "$PGC" 90 || fail "$PGC not healthy after its restart"
wait_healthy "$(c store)" 90 || fail "store not healthy after PostgreSQL's restart"
say "PostgreSQL container restarted; store healthy again; $(acked) hooks acknowledged so far"
n=$(acked)	# traffic flows again before it stops
for _ in $(seq 100); do [ "$(acked)" -gt "$((n + 5))" ] && break; sleep 0.2; done
[ "$(acked)" -gt "$((n + 5))" ] || fail "no webhook acknowledged after PostgreSQL's restart"

touch "$T/traffic.stop"
wait "$(cat "$T/traffic.pid")" || fail "traffic generator failed"
rm -f "$T/traffic.pid"
say "traffic stopped: $(acked) hooks acknowledged, $("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["refused"])' "$T/traffic.json") refused and retried"

# --- nothing lost -------------------------------------------------------------------------
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
for _ in 1 2 3; do
	ctl store sync hollihop --full >"$T/sync1.log" 2>&1 || fail "Hollihop export after the restarts"
	grep -q 'is busy' "$T/sync1.log" || break
done
grep -q 'is busy' "$T/sync1.log" && fail "hollihop-sync stays busy"
for _ in 1 2 3; do
	ctl store sync amo --full >"$T/sync2.log" 2>&1 || fail "amoCRM sync after the restarts"
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
[ "$(psql_ -c 'SELECT count(*) FROM crmsync.dead_letters')" = 0 ] || fail "dead letters in PostgreSQL"
GWVOL=$(podman volume inspect --format '{{.Mountpoint}}' "${A}_gateway-state")
AMOVOL=$(podman volume inspect --format '{{.Mountpoint}}' "${A}_amo-state")
[ -z "$(ls "$GWVOL/deadletter" 2>/dev/null)" ] || fail "the gateway dead-lettered hooks"
say "nothing lost: all $want edited leads, $want_st edited students; students $db_students and leads $db_leads as in the fakes"

# --- volumes survive replacement --------------------------------------------------------
# amo-sync stopped: hooks wait in the gateway's journal. Then both containers are removed
# and compose creates new ones: the journal must still hold the hooks, the token file
# must still authorise amo-sync (no new --auth-code), and the hooks must reach PostgreSQL.
[ -s "$AMOVOL/amo-token.json" ] || fail "no token file on the amo-state volume"
tok=$(sha256sum <"$AMOVOL/amo-token.json")
podman stop -t 30 "$(c amo-sync)" >/dev/null
curl -fsS "$AMO/_fake/mutate" -H 'Content-Type: application/json' -d "$("$PY" -c '
import json; print(json.dumps({"ops": [{"op": "edit", "entity": "leads", "id": i, "set": {"name": f"Из журнала #{i}"}} for i in range(1, 11)]}))')" >/dev/null
podman exec "$(c fake-amocrm)" python3 /fake/amocrm/fake_amocrm.py send-hooks --from http://127.0.0.1:8080 \
    --url "https://hook-gateway:8443/hooks/amo/$SECRET" --cafile /tls/gateway.crt \
    --entity leads --action update --ids 1-10 --count 10 --concurrency 2 >"$T/burst2.log" 2>&1 ||
    fail "hooks while amo-sync is stopped"
journal_files() { find "$GWVOL/journal" -type f -size +0 2>/dev/null | wc -l; }
[ "$(journal_files)" -gt 0 ] || fail "no journal on the gateway-state volume"
ids="$(podman inspect --format '{{.Id}}' "$(c hook-gateway)" "$(c amo-sync)")"
podman rm -f -t 10 "$(c hook-gateway)" "$(c amo-sync)" >/dev/null
[ "$(journal_files)" -gt 0 ] || fail "journal gone with the gateway's container"
[ "$(sha256sum <"$AMOVOL/amo-token.json")" = "$tok" ] || fail "token file changed with the container's removal"
compose_a up -d --no-build || true	# creates the two missing containers; the others exist
for s in hook-gateway amo-sync; do
	wait_healthy "$(c "$s")" 90 || fail "recreated $s not healthy"
done
[ "$(podman inspect --format '{{.Id}}' "$(c hook-gateway)" "$(c amo-sync)")" != "$ids" ] || fail "containers were not replaced"
n=0
for _ in $(seq 300); do
	n=$(psql_ -c "SELECT count(*) FROM amo.leads WHERE name LIKE 'Из журнала #%'")
	[ "$n" = 10 ] && break
	sleep 0.2
done
[ "$n" = 10 ] || fail "only $n of 10 leads whose hooks waited in the journal reached PostgreSQL"
[ -s "$AMOVOL/amo-token.json" ] || fail "token file lost"
say "volumes: journal and token survived podman rm -f + recreate; the 10 journaled hooks reached PostgreSQL"

ctl store status >"$T/status1.log" 2>&1 || { cat "$T/status1.log"; fail "crmsyncctl status not healthy at the end"; }
for x in $ALL; do hc "$x" || fail "podman healthcheck run $x at the end"; done
compose_a down -t 30 || fail "podman-compose down (server A)"
compose_b down -t 60 || fail "podman-compose down (server B)"
OK=1
say "passed"

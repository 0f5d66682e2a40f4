# tests/harness/stack.sh - sourced (". tests/harness/stack.sh") by the shell tests and
# benchmarks that run crmsync as processes: one way to start each piece of a test stack under
# a work directory, and one way to take all of it down. Each piece is started by the same
# launcher the C harness (harness.c) and the Python callers (stack.py) use: testpg for
# PostgreSQL, fake for the fake CRMs, svc for the services and any other process.
#
# The caller sets SRC (source tree), T (its work directory, made with mktemp -d), PY (python3)
# and, to run services, B (build directory); T0 (start time) and OK (1 = passed: logs are
# not printed at the end) are optional.
#   say MSG...                  "[ 12s] MSG" (seconds since T0)
#   fail MSG...                 say FAIL and exit 1 (stack_cleanup prints the logs' tails)
#   stack_pg [DB...]            a throwaway PostgreSQL in $T/pg (tests/harness/testpg; durable
#                               when CS_PG_DURABLE=1); psql_ runs psql on its crmsync database
#   bg NAME CMD...              run CMD in the background (svc run): pid in $T/NAME.pid, output
#                               in $T/NAME.log, exit status in $T/NAME.rc once it has ended
#   start_fake NAME amocrm|hollihop ARGS...
#                               a fake CRM on a free port, listening when this returns (fake
#                               start); url_of NAME prints its URL
#   free_port                   a free TCP port on 127.0.0.1
#   make_cert                   a self-signed certificate for 127.0.0.1: $T/gw.crt, $T/gw.key
#   stack_env [FILE]            the services' common settings into FILE (default $T/env) for
#                               the stack under $T (needs AMO, HH, GW_PORT, SECRET); the caller
#                               appends its own lines, then stack_export reads them in
#   start_svc SERVICE           run build/services/SERVICE/crmsync-SERVICE, wait until it answers
#                               crmsyncctl probe --live (30 s) (svc start)
#   wait_live SERVICE           the waiting part alone (svc live)
#   stop_proc NAME [SIGNAL]     signal NAME (TERM by default, which must end it with 0) and wait
#                               for its end (svc stop)
#   stack_cleanup [RC]          TERM, then KILL, everything started with bg (every NAME.pid in
#                               $T must be svc's); PostgreSQL stopped; the logs' tails unless
#                               OK=1; $T removed if the test passed (OK=1 and exit status RC,
#                               default $?, 0) and CS_TEST_KEEP is unset, else kept and named
#                               on stderr (trap it on EXIT)

T0=${T0:-$(date +%s)}
OK=${OK:-0}
TESTPG=$SRC/tests/harness/testpg
SVC=$SRC/tests/harness/svc
FAKE=$SRC/tests/harness/fake
CTL=${CTL:-${B:+$B/tools/crmsyncctl/crmsyncctl}}

say() { printf '[%3ss] %s\n' $(($(date +%s) - T0)) "$*"; }
fail() { say "FAIL: $*"; exit 1; }
pids() {	# of the processes still running (svc writes NAME.rc when one ends)
	for _f in "$T"/*.pid; do
		[ -f "$_f" ] && [ ! -f "${_f%.pid}.rc" ] && cat "$_f"
	done
	true
}

stack_pg() {
	[ $# -gt 0 ] || set -- crmsync
	"$TESTPG" start "$T/pg" "$@" >/dev/null
}
psql_() { psql -X -q -h "$T/pg" -U postgres -d crmsync -tA "$@"; }

bg() { "$SVC" run "$T" "$@" || fail "$1 did not start"; }

start_fake() {	# start_fake NAME KIND ARGS...
	CS_PYTHON=$PY "$FAKE" start "$T" "$@" >/dev/null || fail "$1 did not start"
}
url_of() { "$FAKE" url "$T" "$1" || fail "$1 was not started"; }

free_port() {
	"$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
make_cert() {
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
	    -keyout "$T/gw.key" -out "$T/gw.crt" -subj "/CN=127.0.0.1" \
	    -addext "subjectAltName=IP:127.0.0.1" >/dev/null 2>&1
}

stack_env() {
	cat >"${1:-$T/env}" <<EOF
CS_PG_DSN=host=$T/pg dbname=crmsync user=postgres
CS_CTL_PG_DSN=host=$T/pg dbname=crmsync user=postgres
CS_STORE_URL=ipc://$T/store.sock
CS_STORE_HEALTH_URL=ipc://$T/store-health.sock
CS_AMO_URL=ipc://$T/amo.sock
CS_AMO_HEALTH_URL=ipc://$T/amo-health.sock
CS_AMO_BASE_URL=${AMO:-}
CS_AMO_LONG_LIVED_TOKEN=amo-llt
CS_AMO_TOKEN_FILE=$T/amo-token.json
CS_HOLLIHOP_URL=ipc://$T/hollihop.sock
CS_HOLLIHOP_HEALTH_URL=ipc://$T/hollihop-health.sock
CS_HOLLIHOP_BASE_URL=${HH:-}/Api/V2
CS_HOLLIHOP_AUTHKEY=hh-key
CS_HOLLIHOP_SCHEDULE=off
CS_HOLLIHOP_RATE=0
CS_GATEWAY_LISTEN=127.0.0.1:${GW_PORT:-0}
CS_GATEWAY_TLS_CERT=$T/gw.crt
CS_GATEWAY_TLS_KEY=$T/gw.key
CS_GATEWAY_SECRET=${SECRET:-}
CS_GATEWAY_JOURNAL_DIR=$T/journal
CS_GATEWAY_DEADLETTER_DIR=$T/deadletter
CS_GATEWAY_HEALTH_URL=ipc://$T/gateway-health.sock
EOF
}
stack_export() {	# every KEY=VALUE line of FILE (default $T/env) exported; later lines win
	while IFS= read -r _kv; do
		[ -n "$_kv" ] && export "${_kv?}"
	done <"${1:-$T/env}"
}

wait_live() { CS_CTL=$CTL "$SVC" live "$T" "$1" "$B" || fail "$1 did not come up"; }
start_svc() { CS_CTL=$CTL "$SVC" start "$T" "$1" "$B" || fail "$1 did not come up"; }
stop_proc() {
	[ -f "$T/$1.pid" ] || fail "stop_proc: $1 is not running"
	_rc=$("$SVC" stop "$T" "$1" "${2:-TERM}") || fail "$1 did not stop"
	[ "${2:-TERM}" = KILL ] || [ "$_rc" = 0 ] || fail "$1 exited with $_rc after SIGTERM"
}

keep_tmp() { [ -n "${CS_TEST_KEEP:-}" ] && [ "$CS_TEST_KEEP" != 0 ]; }
stack_cleanup() {
	_rc=${1:-$?}
	for _p in $(pids); do kill -TERM "$_p" 2>/dev/null || true; done
	for _ in $(seq 50); do [ -z "$(pids)" ] && break; sleep 0.1; done
	for _p in $(pids); do kill -KILL "$_p" 2>/dev/null || true; done
	# Until svc has written each one's rc file: nothing may write into $T as it is removed.
	for _ in $(seq 50); do [ -z "$(pids)" ] && break; sleep 0.1; done
	[ -d "$T/pg" ] && "$TESTPG" stop "$T/pg" immediate
	if [ "$OK" != 1 ]; then
		for _f in "$T"/*.log; do [ -f "$_f" ] && { echo "----- $_f"; tail -n 25 "$_f"; }; done
	fi
	# Never under a cluster that still runs (a caller's second one included).
	for _d in "$T"/*/data/postmaster.pid; do
		[ -f "$_d" ] && { echo "stack: kept $T (PostgreSQL in ${_d%/data/postmaster.pid} still runs)" >&2; return; }
	done
	if [ "$_rc" = 0 ] && [ "$OK" = 1 ] && ! keep_tmp; then
		rm -rf "$T"
	else
		echo "stack: kept $T ($([ "$_rc" = 0 ] && [ "$OK" = 1 ] && echo CS_TEST_KEEP is set || echo "test failed: exit $_rc"))" >&2
	fi
}

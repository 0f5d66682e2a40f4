#!/usr/bin/env bash
# tls_reload_test.sh - the gateway reloads its certificate and key on SIGHUP without
# dropping a hook: the real binary, real TLS, a stand-in amo-sync (gw_test_receiver).
#
#   tls_reload_test.sh GATEWAY RECEIVER PROBE
#
# A CA (openssl, made here) signs certificate A; the gateway starts with it. Two clients
# stream lead hooks throughout (tls_stream.py: one keep-alive connection open across every
# reload, one new handshake per hook). Certificate B (a new key) replaces the files as
# certbot does (rename), SIGHUP: new handshakes present B. Then a certificate whose key is
# not the one in the key file, and a file that is not PEM, each with SIGHUP: refused, B stays.
# At the end: no answer but 2xx, every hook answered 2xx reached the stand-in amo-sync, the
# keep-alive connection survived every reload. Readiness is probed, never slept for.
set -euo pipefail

GW=$1 RECV=$2 PROBE=$3
HERE=$(cd "$(dirname "$0")" && pwd)
SVC=$HERE/../../harness/svc	# the one way tests start a process (tests/harness/README.md)
PY=${CS_PYTHON:-python3}
T=$(mktemp -d "${TMPDIR:-/tmp}/gwtls.XXXXXX")
SECRET=tls-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
PIDS=()

log() { printf '%s %s\n' "$(date +%T.%3N)" "$*"; }
fail() {
	log "FAIL $*"
	for f in "$T"/*.log; do echo "--- tail $f"; tail -n 30 "$f"; done
	exit 1
}
cleanup() {
	local rc=$?
	touch "$T/stop"
	# svc stop waits for the rc file: nothing writes into $T as it is removed
	for n in gw recv; do [ -f "$T/$n.pid" ] && "$SVC" stop "$T" "$n" KILL >/dev/null 2>&1 || true; done
	for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -9 "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	if [ $rc -eq 0 ] && [ -z "${KEEP:-}" ] && [ "${CS_TEST_KEEP:-0}" = 0 ]; then rm -rf "$T"; else log "kept $T for inspection" >&2; fi
}
trap cleanup EXIT
wait_until() {	# wait_until TIMEOUT_S DESCRIPTION COMMAND...
	local limit=$1 what=$2; shift 2
	local end=$((SECONDS + limit))
	until "$@"; do
		[ $SECONDS -lt $end ] || fail "timed out after ${limit}s waiting for: $what"
		sleep 0.05
	done
}

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
	-keyout "$T/ca.key" -out "$T/ca.pem" -subj "/CN=crmsync tls reload test CA" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >"$T/ext.cnf"
mkcert() {	# mkcert NAME: NAME.key and NAME.pem (signed by the CA)
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
		-keyout "$T/$1.key" -out "$T/$1.csr" -subj "/CN=localhost" 2>/dev/null
	openssl x509 -req -in "$T/$1.csr" -CA "$T/ca.pem" -CAkey "$T/ca.key" -CAcreateserial \
		-days 2 -out "$T/$1.pem" -extfile "$T/ext.cnf" 2>/dev/null
}
fp_of() { openssl x509 -in "$1" -noout -fingerprint -sha256 | sed 's/.*=//; s/://g'; }
install_files() {	# install_files CERT KEY: replace the files the gateway reads, each by a rename
	cp "$1" "$T/live/cert.tmp" && mv "$T/live/cert.tmp" "$T/live/cert.pem"
	cp "$2" "$T/live/key.tmp" && mv "$T/live/key.tmp" "$T/live/key.pem"
}
mkcert a
mkcert b
mkcert c
mkdir "$T/live"
install_files "$T/a.pem" "$T/a.key"
FP_A=$(fp_of "$T/a.pem") FP_B=$(fp_of "$T/b.pem")

export CS_GATEWAY_LISTEN=127.0.0.1:0
export CS_GATEWAY_TLS_CERT=$T/live/cert.pem CS_GATEWAY_TLS_KEY=$T/live/key.pem
export CS_GATEWAY_SECRET=$SECRET
export CS_GATEWAY_JOURNAL_DIR=$T/journal CS_GATEWAY_DEADLETTER_DIR=$T/deadletter
export CS_AMO_URL=ipc://$T/amo.ipc CS_GATEWAY_HEALTH_URL=ipc://$T/health.ipc
export CS_GATEWAY_IDLE_TIMEOUT=60s

"$SVC" run "$T" recv "$RECV" "$CS_AMO_URL" "$T/recv.txt" --ready "$T/recv.ready"
PIDS+=("$(cat "$T/recv.pid")")
wait_until 10 "receiver ready" test -e "$T/recv.ready"
"$SVC" run "$T" gw "$GW"
GWPID=$(cat "$T/gw.pid")
PIDS+=("$GWPID")
wait_until 20 "gateway health" "$PROBE" "$CS_GATEWAY_HEALTH_URL" >/dev/null 2>&1
PORT=$("$PROBE" "$CS_GATEWAY_HEALTH_URL" http_port)
fp_now() { "$PY" "$HERE/tls_stream.py" fingerprint 127.0.0.1 "$PORT" "$T/ca.pem"; }
presents() { [ "$(fp_now)" = "$1" ]; }
[ "$(fp_now)" = "$FP_A" ] || fail "the gateway does not present certificate A at start"
na=$("$PROBE" "$CS_GATEWAY_HEALTH_URL" tls_not_after_timestamp_seconds) || fail "no stat tls_not_after_timestamp_seconds"
[ "$na" = "$(date -d "$(openssl x509 -in "$T/a.pem" -noout -enddate | sed 's/.*=//')" +%s)" ] ||
	fail "tls_not_after_timestamp_seconds $na is not certificate A's notAfter"
log "gateway up on port $PORT with certificate A ($FP_A)"

mkdir "$T/stream"
"$PY" "$HERE/tls_stream.py" stream 127.0.0.1 "$PORT" "$T/ca.pem" "/hooks/amo/$SECRET" "$T/stop" "$T/stream" \
	>>"$T/stream.log" 2>&1 &
PIDS+=($!)
oks() { if [ -e "$T/stream/ok" ]; then wc -l <"$T/stream/ok"; else echo 0; fi; }
oks_ge() { [ "$(oks)" -ge "$1" ]; }
wait_until 30 "the stream under way" oks_ge 50

# ---- 1. new certificate, SIGHUP: new handshakes present it ----
install_files "$T/b.pem" "$T/b.key"
n0=$(oks)
t0=$(date +%s%N)
kill -HUP "$GWPID"
wait_until 10 "certificate B presented" presents "$FP_B"
ms=$((($(date +%s%N) - t0) / 1000000))
grep -q 'ev=http.tls_reloaded' "$T/gw.log" || fail "no http.tls_reloaded in the log"
kill -0 "$GWPID" || fail "the gateway died on SIGHUP"
wait_until 30 "the stream goes on after the reload" oks_ge $((n0 + 100))
[ "$("$PROBE" "$CS_GATEWAY_HEALTH_URL" tls_reloads)" = 1 ] || fail "tls_reloads is not 1"
# once B is presented, every later handshake of the stream presents B
last_a=$(grep -n "$FP_A" "$T/stream/certs" | tail -n1 | cut -d: -f1)
first_b=$(grep -n "$FP_B" "$T/stream/certs" | head -n1 | cut -d: -f1)
[ -n "$first_b" ] || fail "the stream never saw certificate B"
[ "$last_a" -lt "$first_b" ] || fail "a handshake presented A after one presented B"
log "SIGHUP: new handshakes present B after $ms ms; $(oks) hooks answered 2xx so far"

# ---- 2. a broken pair, then a file that is not a certificate: B stays ----
install_files "$T/c.pem" "$T/b.key"
kill -HUP "$GWPID"
wait_until 10 "the mismatched pair refused" grep -q 'ev=http.tls_key_mismatch' "$T/gw.log"
wait_until 10 "tls_reload_failures 1" test "$("$PROBE" "$CS_GATEWAY_HEALTH_URL" tls_reload_failures)" = 1
presents "$FP_B" || fail "after a refused reload the gateway no longer presents B"
echo "not a certificate" >"$T/garbage.pem"
install_files "$T/garbage.pem" "$T/b.key"
kill -HUP "$GWPID"
wait_until 10 "the garbage refused" test "$("$PROBE" "$CS_GATEWAY_HEALTH_URL" tls_reload_failures)" = 2
grep -q 'ev=http.tls_reload_failed' "$T/gw.log" || fail "no http.tls_reload_failed in the log"
presents "$FP_B" || fail "after a refused reload the gateway no longer presents B"
n1=$(oks)
wait_until 30 "the stream goes on after the refused reloads" oks_ge $((n1 + 100))
log "a mismatched key and a non-PEM file: both refused (http.tls_reload_failed), B still presented"

# ---- 3. nothing dropped ----
touch "$T/stop"
wait_until 30 "the stream to stop" test -e "$T/stream/done"
[ ! -s "$T/stream/bad" ] || fail "answers other than 2xx: $(head -n 5 "$T/stream/bad")"
n=$(oks)
# the keep-alive client's connection was made once: one handshake more than the other's requests
handshakes=$(wc -l <"$T/stream/certs")
[ "$handshakes" -lt "$n" ] || fail "$handshakes handshakes for $n hooks: the keep-alive connection was dropped"
delivered() { awk '{ split($3, e, "/"); print e[3] }' "$T/recv.txt" | sort -n | uniq | wc -l; }
wait_until 30 "all $n hooks at the stand-in amo-sync" test "$(delivered)" -ge "$n"
sort -n "$T/stream/ok" >"$T/ok.sorted"
awk '{ split($3, e, "/"); print e[3] }' "$T/recv.txt" | sort -n | uniq >"$T/got.sorted"
missing=$(comm -23 "$T/ok.sorted" "$T/got.sorted" | head -n 5)
[ -z "$missing" ] || fail "hooks answered 2xx that never reached amo-sync: $missing"
[ "$("$PROBE" "$CS_GATEWAY_HEALTH_URL" hooks_accepted)" -ge "$n" ] || fail "hooks_accepted below $n"
rc=$("$SVC" stop "$T" gw) || fail "the gateway did not stop"
[ "$rc" = 0 ] || fail "the gateway exited $rc"
if grep -qE 'runtime error|AddressSanitizer|LeakSanitizer' "$T"/*.log; then
	fail "sanitizer report in the logs"
fi
log "passed: $n hooks, $handshakes handshakes, none answered other than 2xx, all journaled and delivered"

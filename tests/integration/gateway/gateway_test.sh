#!/usr/bin/env bash
# gateway_test.sh - integration tests of crmsync-hook-gateway: the real binary, real TLS.
#
#   gateway_test.sh GATEWAY RECEIVER PROBE SAMPLES_DIR CRMSYNCCTL
#
# Makes a throwaway CA and server certificate with openssl, talks HTTPS with curl
# --cacert (verification on), and stands in for amo-sync with gw_test_receiver (NNG REP,
# records every HookDelivery it acks). Readiness is always probed (the gateway's NNG health
# responder, the receiver's ready file, curl output), never waited for with a fixed sleep.
# Scenarios: every sample hook reaches amo-sync; wrong secret 404; oversized 413; chunked 411;
# malformed and non-UTF-8 400 + dead letter; amo-sync down while 5,000 hooks arrive, then up:
# all arrive exactly in order; kill -9 of the gateway mid-stream: every 204'd hook arrives;
# journal cap: 503, then accepted again once drained; the fake amoCRM's sender, if present;
# a fresh journal while amo-sync keeps running; the journal's filesystem full (a small
# tmpfs in a private mount namespace): 503 and unhealthy, then back by itself; slowloris
# from one address against the per-client connection cap.
set -euo pipefail

GW=$1 RECV=$2 PROBE=$3 SAMPLES=$4 CTL=$5
HERE=$(cd "$(dirname "$0")" && pwd)
FAKE=$HERE/../../fake/amocrm/fake_amocrm.py
SVC=$HERE/../../harness/svc	# the one way tests start a process (tests/harness/README.md)
T=$(mktemp -d "${TMPDIR:-/tmp}/gwtest.XXXXXX")
SECRET=it-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
PIDS=()
NPASS=0

log() { printf '%s %s\n' "$(date +%T.%3N)" "$*"; }
pass() { NPASS=$((NPASS + 1)); log "ok   $*"; }
fail() {
	log "FAIL $*"
	for f in "$T"/*.log; do echo "--- tail $f"; tail -n 30 "$f"; done
	exit 1
}
cleanup() {
	local rc=$?
	# svc stop waits for the rc file: nothing writes into $T as it is removed
	for n in gw recv; do [ -f "$T/$n.pid" ] && "$SVC" stop "$T" "$n" KILL >/dev/null 2>&1 || true; done
	for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -9 "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	if [ $rc -eq 0 ] && [ "${CS_TEST_KEEP:-0}" = 0 ]; then rm -rf "$T"; else log "kept $T for inspection" >&2; fi
}
trap cleanup EXIT

# wait_until TIMEOUT_S DESCRIPTION COMMAND...: poll COMMAND until it succeeds.
wait_until() {
	local limit=$1 what=$2; shift 2
	local end=$((SECONDS + limit))
	until "$@"; do
		[ $SECONDS -lt $end ] || fail "timed out after ${limit}s waiting for: $what"
		sleep 0.05
	done
}

# ---- certificates: a CA and a server certificate it signed ----
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
	-keyout "$T/ca.key" -out "$T/ca.pem" -subj "/CN=crmsync gateway test CA" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
	-keyout "$T/server.key" -out "$T/server.csr" -subj "/CN=localhost" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >"$T/ext.cnf"
openssl x509 -req -in "$T/server.csr" -CA "$T/ca.pem" -CAkey "$T/ca.key" -CAcreateserial \
	-days 2 -out "$T/server.pem" -extfile "$T/ext.cnf" 2>/dev/null

export CS_GATEWAY_LISTEN=127.0.0.1:0
export CS_GATEWAY_TLS_CERT=$T/server.pem CS_GATEWAY_TLS_KEY=$T/server.key
export CS_GATEWAY_SECRET=$SECRET
export CS_GATEWAY_JOURNAL_DIR=$T/journal CS_GATEWAY_DEADLETTER_DIR=$T/deadletter
export CS_AMO_URL=ipc://$T/amo.ipc CS_GATEWAY_HEALTH_URL=ipc://$T/health.ipc
export CS_GATEWAY_BODY_MAX=64KiB CS_GATEWAY_FORWARD_TIMEOUT=500ms
export CS_GATEWAY_IDLE_TIMEOUT=5s CS_GATEWAY_BODY_TIMEOUT=3s

GWPID='' RCPID='' PORT='' URL=''
start_gw() {
	"$SVC" run "$T" gw "$GW"
	GWPID=$(cat "$T/gw.pid")
	PIDS+=("$GWPID")
	wait_until 20 "gateway health" "$PROBE" "$CS_GATEWAY_HEALTH_URL" >/dev/null 2>&1
	PORT=$("$PROBE" "$CS_GATEWAY_HEALTH_URL" http_port)
	URL=https://127.0.0.1:$PORT/hooks/amo/$SECRET
}
stop_gw() {	# SIGTERM; svc stop waits 20 s for the end (then KILL: 137)
	local rc
	rc=$("$SVC" stop "$T" gw) || fail "gateway did not stop on SIGTERM"
	[ "$rc" = 0 ] || fail "gateway exited $rc after SIGTERM"
}
start_recv() {	# start_recv OUTFILE [MODE] [LAG_MS]: the stand-in amo-sync
	rm -f "$T/recv.ready"
	"$SVC" run "$T" recv "$RECV" "$CS_AMO_URL" "$1" --mode "${2:-ack}" --lag-ms "${3:-0}" --ready "$T/recv.ready"
	RCPID=$(cat "$T/recv.pid")
	PIDS+=("$RCPID")
	wait_until 10 "receiver ready" test -e "$T/recv.ready"
}
stop_recv() { "$SVC" stop "$T" recv "${1:-TERM}" >/dev/null || true; }
stat_of() { "$PROBE" "$CS_GATEWAY_HEALTH_URL" "$1"; }
lines() { if [ -e "$1" ]; then wc -l <"$1"; else echo 0; fi; }
lines_ge() { [ "$(lines "$1")" -ge "$2" ]; }
stat_eq() { [ "$(stat_of "$1")" = "$2" ]; }
post() {	# post BODYFILE [extra curl args...] -> prints the status code
	local f=$1; shift
	curl -sS --cacert "$T/ca.pem" -o "$T/resp.body" -w '%{http_code}' --data-binary @"$f" "$@" "$URL"
}

# curl config that POSTs hooks for lead ids FROM..TO, one request each, keep-alive.
make_stream() {	# make_stream CFG FROM TO
	local cfg=$1 i
	{
		for ((i = $2; i <= $3; i++)); do
			printf 'url = "%s"\ncacert = "%s"\ndata-binary = "leads%%5Bupdate%%5D%%5B0%%5D%%5Bid%%5D=%d&leads%%5Bupdate%%5D%%5B0%%5D%%5Blast_modified%%5D=1700000000&account%%5Bsubdomain%%5D=it&account%%5Bid%%5D=42"\noutput = "/dev/null"\nwrite-out = "%%{http_code}\\n"\n' \
				"$URL" "$T/ca.pem" "$i"
			if [ "$i" -lt "$3" ]; then echo next; fi
		done
	} >"$cfg"
}

log "workdir $T"
start_recv "$T/recv1.txt"
start_gw
log "gateway up on port $PORT"

# ---- 1. every sample hook: 204, and amo-sync gets each, in order ----
n=0
: >"$T/samples.expect"
for f in "$SAMPLES"/*.form; do
	code=$(post "$f")
	[ "$code" = 204 ] || fail "sample $(basename "$f"): status $code, want 204"
	[ ! -s "$T/resp.body" ] || fail "sample $(basename "$f"): a 204 with a body"
	n=$((n + 1))
	echo "$(basename "$f")" >>"$T/samples.expect"
done
wait_until 30 "$n deliveries" lines_ge "$T/recv1.txt" "$n"
[ "$(lines "$T/recv1.txt")" -eq "$n" ] || fail "receiver has $(lines "$T/recv1.txt") deliveries, want $n"
# the deliveries arrive in the order of the POSTs and each carries its kind
paste -d' ' "$T/samples.expect" "$T/recv1.txt" | while read -r name _seq nev first _rest; do
	[ "$nev" -ge 1 ] || fail "$name: no events"
	case $name in batch_*) continue ;; esac
	kind=${name%.form}
	ent=${first%%/*}; act=${first#*/}; act=${act%%/*}
	# amoCRM sends companies as contacts[...] with [type]=company: the event says both
	case $first in contacts/*/company) ent=companies ;; esac
	case $kind in "${ent}_${act}"*) ;; *) fail "$name delivered as $first" ;; esac
done
awk 'NR > 1 && $1 <= prev { exit 1 } { prev = $1 }' "$T/recv1.txt" || fail "seqs not increasing"
pass "1. $n sample hooks (every entity/action) answered 204 and delivered in order"

# ---- 2. wrong secret, near misses and other methods: 404, no body ----
printf 'leads%%5Badd%%5D%%5B0%%5D%%5Bid%%5D=1&account%%5Bid%%5D=1' >"$T/one.form"
for u in "https://127.0.0.1:$PORT/hooks/amo/wrong-secret" "https://127.0.0.1:$PORT/hooks/amo/${SECRET}x" \
	"https://127.0.0.1:$PORT/hooks/amo/${SECRET%?}" "https://127.0.0.1:$PORT/hooks/amo/" \
	"https://127.0.0.1:$PORT/"; do
	code=$(curl -sS --cacert "$T/ca.pem" -o "$T/resp.body" -w '%{http_code}' --data-binary @"$T/one.form" "$u")
	[ "$code" = 404 ] || fail "POST to a wrong path: $code, want 404"
	[ ! -s "$T/resp.body" ] || fail "404 with a body"
done
code=$(curl -sS --cacert "$T/ca.pem" -o "$T/resp.body" -w '%{http_code}' "$URL")
[ "$code" = 404 ] || fail "GET with the right secret: $code, want 404"
pass "2. wrong secret / near misses / GET: 404 with no body"

# ---- 3-6. oversized, chunked, malformed, non-UTF-8 ----
before=$(stat_of journal_committed_seq)
head -c 100000 /dev/zero | tr '\0' 'a' | sed 's/^/leads%5Badd%5D%5B0%5D%5Bid%5D=1\&x=/' >"$T/big.form"
code=$(post "$T/big.form")
[ "$code" = 413 ] || fail "oversized body: $code, want 413"
pass "3. oversized body (100 kB > 64 KiB): 413"

code=$(post "$T/one.form" -H 'Transfer-Encoding: chunked')
[ "$code" = 411 ] || fail "chunked body: $code, want 411"
pass "4. chunked body: 411"

printf 'leads%%5Badd%%5D%%5B0%%5D%%5Bid%%5D=1&x=%%zz&account%%5Bid%%5D=1' >"$T/malformed.form"
code=$(post "$T/malformed.form")
[ "$code" = 400 ] || fail "malformed body: $code, want 400"
dl=$(ls -t "$T/deadletter"/malformed-* 2>/dev/null | head -1)
[ -n "$dl" ] || fail "no dead-letter file for the malformed body"
cmp -s "$dl" "$T/malformed.form" || fail "dead-letter file differs from the body"
grep -q 'ev=hook.malformed' "$T/gw.log" || fail "no hook.malformed log line"
pass "5. malformed body: 400, raw body kept in $(basename "$dl")"

printf 'leads%%5Badd%%5D%%5B0%%5D%%5Bname%%5D=%%C3%%28&account%%5Bid%%5D=1' >"$T/bad-utf8.form"
code=$(post "$T/bad-utf8.form")
[ "$code" = 400 ] || fail "non-UTF-8 body: $code, want 400"
printf 'leads[add][0][name]=\xff\xfe&account[id]=1' >"$T/bad-utf8-raw.form"
code=$(post "$T/bad-utf8-raw.form")
[ "$code" = 400 ] || fail "raw non-UTF-8 body: $code, want 400"
[ "$(ls "$T/deadletter" | wc -l)" -ge 3 ] || fail "non-UTF-8 bodies not dead-lettered"
[ "$(stat_of journal_committed_seq)" = "$before" ] || fail "a rejected request reached the journal"
pass "6. non-UTF-8 bodies (encoded and raw): 400 + dead letter; nothing rejected was journaled"

grep -q -- "$SECRET" "$T/gw.log" && fail "the secret appears in the gateway log"
pass "7. the secret never appears in the log"

# ---- 8. amo-sync down while 5,000 hooks arrive, then up: all 5,000, exactly in order ----
stop_recv
base=$(stat_of journal_committed_seq)
for s in 0 1 2 3; do make_stream "$T/s$s.cfg" $((s * 1250 + 1)) $(((s + 1) * 1250)); done
t0=$SECONDS
for s in 0 1 2 3; do curl -sS -K "$T/s$s.cfg" >"$T/s$s.codes" 2>>"$T/curl.log" & done
wait_until 300 "4 x 1250 responses" bash -c "[ \$(cat $T/s?.codes | wc -l) -ge 5000 ]"
bad=$(cat "$T"/s?.codes | grep -vc '^204$' || true)
[ "$bad" = 0 ] || fail "$bad of 5000 hooks not answered 204 while amo-sync was down"
[ "$(stat_of journal_backlog)" -ge 5000 ] || fail "backlog $(stat_of journal_backlog), want >= 5000"
log "   5000 hooks journaled in $((SECONDS - t0))s with amo-sync down; backlog $(stat_of journal_backlog)"
start_recv "$T/recv2.txt"
wait_until 300 "5000 deliveries after amo-sync came back" lines_ge "$T/recv2.txt" 5000
[ "$(lines "$T/recv2.txt")" -eq 5000 ] || fail "got $(lines "$T/recv2.txt") deliveries, want exactly 5000"
# exactly the journal's order: consecutive seqs, no gaps, no duplicates
awk -v b="$base" '$1 != b + NR { printf "line %d: seq %s, want %d\n", NR, $1, b + NR; exit 1 }' \
	"$T/recv2.txt" || fail "deliveries not in exact journal order"
# every id once, and each sender's hooks in the order it sent them
awk '{ split($3, a, "/"); print a[3] }' "$T/recv2.txt" >"$T/ids2.txt"
[ "$(sort -n "$T/ids2.txt" | uniq | wc -l)" -eq 5000 ] || fail "duplicate or missing ids"
[ "$(sort -n "$T/ids2.txt" | head -1)" = 1 ] && [ "$(sort -n "$T/ids2.txt" | tail -1)" = 5000 ] || fail "ids not 1..5000"
awk '{ s = int(($1 - 1) / 1250); if ($1 <= last[s]) { print "stream " s " out of order at " $1; exit 1 } last[s] = $1 }' \
	"$T/ids2.txt" || fail "a sender's hooks were reordered"
wait_until 30 "backlog 0" stat_eq journal_backlog 0
pass "8. amo-sync down during 5000 hooks, then up: all 5000 delivered, consecutive seqs, per-sender order kept"

# ---- 9. kill -9 of the gateway mid-stream: every hook that got a 2xx arrives ----
for s in 0 1 2 3; do make_stream "$T/k$s.cfg" $((100000 + s * 10000 + 1)) $((100000 + s * 10000 + 2000)); done
for s in 0 1 2 3; do curl -sS -K "$T/k$s.cfg" >"$T/k$s.codes" 2>>"$T/curl.log" & done
wait_until 60 "some hooks answered before the kill" bash -c "[ \$(cat $T/k?.codes 2>/dev/null | grep -c '^204$') -ge 300 ]"
"$SVC" stop "$T" gw KILL >/dev/null
log "   gateway killed with SIGKILL"
wait_until 120 "curl streams to finish" bash -c "[ \$(cat $T/k?.codes | wc -l) -ge 8000 ]"
: >"$T/acked.ids"
for s in 0 1 2 3; do
	awk -v b=$((100000 + s * 10000)) '$1 == 204 { print b + NR }' "$T/k$s.codes" >>"$T/acked.ids"
done
nacked=$(wc -l <"$T/acked.ids")
[ "$nacked" -ge 300 ] || fail "only $nacked hooks answered before the kill"
[ "$nacked" -lt 8000 ] || fail "the kill came after the stream ended; nothing was tested"
start_gw
log "   gateway restarted on port $PORT; $nacked hooks had been answered 204"
have_all() {
	awk '{ for (i = 3; i <= NF; i++) { split($i, a, "/"); print a[3] } }' "$T/recv2.txt" | sort -u >"$T/got.ids"
	[ -z "$(sort -u "$T/acked.ids" | comm -23 - "$T/got.ids" | head -1)" ]
}
wait_until 120 "every 204'd hook at amo-sync" have_all
nlost=$(sort -u "$T/acked.ids" | comm -23 - "$T/got.ids" | wc -l)
[ "$nlost" = 0 ] || fail "$nlost hooks answered 204 never reached amo-sync"
extra=$(comm -13 <(sort -u "$T/acked.ids") <(grep -E '^1[0-9]{5}$' "$T/got.ids") | wc -l)
pass "9. kill -9 mid-stream: all $nacked hooks answered 204 reached amo-sync ($extra more were journaled but unanswered)"

# ---- 9b. two-phase acknowledgement: received is not processed ----
# A stand-in that queues (ACK_OK) but never processes (done_seq stays): the journal must
# keep every entry. Killed, its queue is gone; the replacement gets them all again.
ids_in() { awk '{ for (i = 3; i <= NF; i++) { split($i, a, "/"); print a[3] } }' "$@" 2>/dev/null | sort -u; }
stop_recv
start_recv "$T/recv4.txt" ack 3600000
acked0=$(stat_of journal_acked_seq) fwd0=$(stat_of forwarded)
make_stream "$T/tp.cfg" 300001 300200
curl -sS -K "$T/tp.cfg" >"$T/tp.codes" 2>>"$T/curl.log"
[ "$(grep -c '^204$' "$T/tp.codes")" = 200 ] || fail "two-phase: not every hook answered 204"
wait_until 30 "200 deliveries received" bash -c "[ \$($PROBE $CS_GATEWAY_HEALTH_URL forwarded) -ge $((fwd0 + 200)) ]"
sleep 1	# give a wrong implementation the time to trim: nothing may move
[ "$(stat_of journal_acked_seq)" = "$acked0" ] || fail "journal trimmed on ACK_OK without done_seq"
[ "$(stat_of journal_backlog)" -ge 200 ] || fail "two-phase: backlog $(stat_of journal_backlog), want >= 200"
[ ! -s "$T/recv4.txt" ] || fail "the never-processing stand-in processed something"
stop_recv KILL
start_recv "$T/recv4b.txt"
wait_until 60 "the 200 unprocessed hooks re-sent to the new amo-sync" bash -c \
	"[ \$(awk '{ for (i = 3; i <= NF; i++) { split(\$i, a, \"/\"); if (a[3] > 300000 && a[3] <= 300200) print a[3] } }' $T/recv4b.txt | sort -u | wc -l) -eq 200 ]"
wait_until 30 "backlog 0" stat_eq journal_backlog 0
grep -q 'ev=forward.peer_restarted' "$T/gw.log" || fail "no forward.peer_restarted log line"
pass "9b. two-phase ack: ACK_OK without done_seq keeps the journal; after kill -9 of amo-sync all 200 re-sent and processed"

# ---- 9c. amo-sync killed mid-stream while it lags 300 ms behind ----
stop_recv
start_recv "$T/recv5.txt" ack 300
for s in 0 1 2 3; do make_stream "$T/a$s.cfg" $((500000 + s * 10000 + 1)) $((500000 + s * 10000 + 1500)); done
for s in 0 1 2 3; do curl -sS -K "$T/a$s.cfg" >"$T/a$s.codes" 2>>"$T/curl.log" & done
wait_until 60 "a third of the stream answered" bash -c "[ \$(cat $T/a?.codes 2>/dev/null | grep -c '^204$') -ge 2000 ]"
stop_recv KILL
log "   stand-in amo-sync killed with SIGKILL mid-stream (300 ms of unprocessed hooks lost with it)"
start_recv "$T/recv5.txt" ack 300
wait_until 120 "the streams to finish" bash -c "[ \$(cat $T/a?.codes | wc -l) -ge 6000 ]"
: >"$T/a.acked"
for s in 0 1 2 3; do awk -v b=$((500000 + s * 10000)) '$1 == 204 { print b + NR }' "$T/a$s.codes" >>"$T/a.acked"; done
sort -u -o "$T/a.acked" "$T/a.acked"
[ "$(wc -l <"$T/a.acked")" = 6000 ] || fail "amo-sync restart: only $(wc -l <"$T/a.acked") of 6000 answered 204 (the gateway does not depend on amo-sync)"
all_processed() { ids_in "$T/recv5.txt" >"$T/a.got"; [ -z "$(comm -23 "$T/a.acked" "$T/a.got" | head -1)" ]; }
wait_until 120 "every hook processed by one amo-sync or the other" all_processed
pass "9c. amo-sync kill -9 mid-stream (lag 300 ms): all 6000 hooks processed, $(stat_of forward_rewinds) restart(s) noticed"

# ---- 10. journal cap: 503 when full, accepted again once amo-sync drains it ----
stop_gw
stop_recv
CS_GATEWAY_JOURNAL_DIR=$T/journal-cap CS_GATEWAY_JOURNAL_MAX=64KiB CS_GATEWAY_SEGMENT_SIZE=16KiB start_gw
make_stream "$T/cap.cfg" 1 2000
curl -sS -K "$T/cap.cfg" >"$T/cap.codes" 2>>"$T/curl.log"
n204=$(grep -c '^204$' "$T/cap.codes" || true)
n503=$(grep -c '^503$' "$T/cap.codes" || true)
[ "$n503" -gt 0 ] || fail "journal cap: no 503 among 2000 hooks"
[ $((n204 + n503)) -eq 2000 ] || fail "journal cap: unexpected statuses: $(sort "$T/cap.codes" | uniq -c | tr '\n' ' ')"
[ "$(stat_of journal_bytes)" -le 65536 ] || fail "journal above its cap: $(stat_of journal_bytes)"
grep -q 'ev=journal.full' "$T/gw.log" || fail "no journal.full log line"
start_recv "$T/recv3.txt"
wait_until 60 "backlog drained" stat_eq journal_backlog 0
code=$(post "$T/one.form")
[ "$code" = 204 ] || fail "after draining: $code, want 204"
wait_until 30 "post-drain hook delivered" lines_ge "$T/recv3.txt" $((n204 + 1))
pass "10. journal cap 64 KiB: $n204 accepted then 503 x $n503 (loud log); accepted again after draining"

# ---- 11. the fake amoCRM's own sender, when it is there ----
if [ -f "$FAKE" ] && command -v python3 >/dev/null; then
	before=$(lines "$T/recv3.txt")
	out=$(python3 "$FAKE" send-hooks --url "$URL" --cafile "$T/ca.pem" --entity leads --action status \
		--ids 1-40 --count 200 --concurrency 8 2>&1) || fail "fake send-hooks failed: $out"
	log "   fake amoCRM: $out"
	case $out in *"ok=200"*) ;; *) fail "fake amoCRM sender: $out" ;; esac
	wait_until 60 "200 hooks from the fake amoCRM" lines_ge "$T/recv3.txt" $((before + 200))
	pass "11. fake amoCRM send-hooks: 200 hooks over verified TLS, all delivered"
else
	log "skip 11. fake amoCRM not found at $FAKE"
fi

# ---- 12. clients that vanish mid-request leave no connection behind ----
# Each sends a whole hook (or half a body) and resets the connection without reading the
# reply, so the 204 goes out on a dead TCP connection. NNG 1.5's TLS then strands any read
# started later; the gateway must still close and free every one of them.
python3 - "$PORT" "$SECRET" "$T/ca.pem" <<'PY' || fail "vanishing-client script failed"
import socket, ssl, struct, sys
port, secret, ca = int(sys.argv[1]), sys.argv[2], sys.argv[3]
ctx = ssl.create_default_context(cafile=ca)
body = b"leads%5Bupdate%5D%5B0%5D%5Bid%5D=7&account%5Bid%5D=42"
for i in range(60):
    raw = socket.create_connection(("127.0.0.1", port))
    s = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
    n = len(body) if i % 3 else len(body) + 100      # every third: body cut short
    s.sendall(b"POST /hooks/amo/%s HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
              b"Content-Length: %d\r\n\r\n%s" % (secret.encode(), n, body))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()                                         # RST, reply unread
PY
wait_until 20 "every vanished client's connection freed" stat_eq connections 0
code=$(post "$T/one.form")
[ "$code" = 204 ] || fail "after vanishing clients: $code, want 204"
pass "12. 60 clients that reset mid-request: all connections freed, service unaffected"

# ---- 13. HTTP/1.1 edge cases the gateway speaks itself ----
python3 - "$PORT" "$SECRET" "$T/ca.pem" <<'PY' || fail "HTTP edge cases"
import socket, ssl, sys, time
port, secret, ca = int(sys.argv[1]), sys.argv[2].encode(), sys.argv[3]
ctx = ssl.create_default_context(cafile=ca)
body = b"leads%5Bupdate%5D%5B0%5D%5Bid%5D=9&account%5Bid%5D=42"
def conn():
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname="127.0.0.1")
    s.settimeout(10)
    return s
def req(extra=b"", b=body, path=b"/hooks/amo/" + secret, ver=b"HTTP/1.1"):
    return (b"POST " + path + b" " + ver + b"\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n" +
            extra + b"Content-Length: %d\r\n\r\n" % len(b) + b)
def replies(s, n):
    got = b""
    while got.count(b"\r\n\r\n") < n:
        d = s.recv(4096)
        if not d: break
        got += d
    return got
def check(name, cond, got):
    if not cond:
        print("FAIL", name, got); sys.exit(1)
# pipelined: three requests in one write, three 204s in order, one connection
s = conn(); s.sendall(req() * 3); got = replies(s, 3)
check("pipelined", got.count(b"HTTP/1.1 204 No Content\r\n") == 3, got); s.close()
# a head over 8 KiB: 431 and close
s = conn(); s.sendall(b"POST /x HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n"); got = replies(s, 1)
check("431", got.startswith(b"HTTP/1.1 431 ") and b"Connection: close" in got, got); s.close()
# HTTP/1.0: answered, then closed
s = conn(); s.sendall(req(ver=b"HTTP/1.0")); got = replies(s, 1)
check("http/1.0", got.startswith(b"HTTP/1.1 204") and b"Connection: close" in got and s.recv(1) == b"", got); s.close()
# Expect: 100-continue, body sent after the interim reply
head = req(b"Expect: 100-continue\r\n")[:-len(body)]   # the head alone
s = conn(); s.sendall(head)
got = replies(s, 1); check("100 continue", got.startswith(b"HTTP/1.1 100 Continue"), got)
s.sendall(body); got = replies(s, 1); check("after 100", b"204" in got, got); s.close()
# conflicting Content-Length: 400 and close
s = conn(); s.sendall(req(b"Content-Length: 5\r\n")); got = replies(s, 1)
check("cl conflict", got.startswith(b"HTTP/1.1 400"), got); s.close()
# HTTP/2 preface-ish version: 505
s = conn(); s.sendall(b"POST / HTTP/2.0\r\nHost: x\r\n\r\n"); got = replies(s, 1)
check("505", got.startswith(b"HTTP/1.1 505"), got); s.close()
# slowloris: a head trickled slower than its deadline (3 s here) is cut off
s = conn(); t0 = time.time(); closed = False
try:
    for ch in b"POST /hooks/amo/x HTTP/1.1\r\nHost: x\r\n":
        s.sendall(bytes([ch])); time.sleep(0.2)
except (ssl.SSLError, OSError):
    closed = True
if not closed:
    closed = s.recv(1) == b""
check("slowloris cut", closed and time.time() - t0 < 9, time.time() - t0); s.close()
PY
pass "13. HTTP edge cases: pipelining, 431, HTTP/1.0, 100-continue, Content-Length conflict, 505, slowloris cut at its deadline"

# ---- 15. a fresh journal while amo-sync keeps running: every 204'd hook arrives ----
# (a new container without its volume, a wiped disk). The journal starts at seq 1 again;
# amo-sync, still running, has seen seqs far above: it must not take them for re-sends.
stop_gw
CS_GATEWAY_JOURNAL_DIR=$T/journal-fresh start_gw
make_stream "$T/fresh.cfg" 900001 900005
curl -sS -K "$T/fresh.cfg" >"$T/fresh.codes" 2>>"$T/curl.log"
[ "$(grep -c '^204$' "$T/fresh.codes")" = 5 ] || fail "fresh journal: not all 5 hooks answered 204"
got_fresh() { [ "$(ids_in "$T/recv3.txt" | grep -c '^90000[1-5]$')" = 5 ]; }
wait_until 30 "the 5 hooks of the fresh journal at amo-sync" got_fresh
wait_until 30 "backlog 0" stat_eq journal_backlog 0
[ "$(stat_of forward_bad_done_seq)" = 0 ] || fail "done_seq refused with a receiver that knows journal ids"
pass "15. fresh journal (seq 1 again) while amo-sync kept running: all 5 hooks answered 204 arrived"

# ---- 16. the journal's filesystem full: 503 and unhealthy, then back without an operator ----
# A 128 KiB tmpfs in a private mount namespace (root: unshare -m; otherwise a user namespace),
# a cap far above it and a segment bigger than the filesystem: only rolling the segment
# once amo-sync caught up can free space.
ns=""
if unshare -m --propagation private true 2>/dev/null; then
	ns="unshare -m --propagation private"
elif unshare -rm --propagation private true 2>/dev/null; then
	ns="unshare -rm --propagation private"
fi
if [ -z "$ns" ]; then
	log "skip 16. no private mount namespace here (unshare -m / -rm refused): cannot mount a small tmpfs"
else
	stop_gw
	stop_recv
	mkdir -p "$T/jfs"
	CS_GATEWAY_JOURNAL_DIR=$T/jfs/journal CS_GATEWAY_JOURNAL_MAX=64MiB CS_GATEWAY_SEGMENT_SIZE=16MiB \
		"$SVC" run "$T" gw $ns sh -c 'mount -t tmpfs -o size=128k tmpfs "$1" && exec "$2"' sh "$T/jfs" "$GW"
	GWPID=$(cat "$T/gw.pid")
	PIDS+=("$GWPID")
	wait_until 20 "gateway health (tmpfs journal)" "$PROBE" "$CS_GATEWAY_HEALTH_URL" >/dev/null 2>&1
	PORT=$("$PROBE" "$CS_GATEWAY_HEALTH_URL" http_port)
	URL=https://127.0.0.1:$PORT/hooks/amo/$SECRET
	"$CTL" probe -q hook-gateway || fail "disk full: unhealthy before anything happened"
	make_stream "$T/dfull.cfg" 700001 703000
	curl -sS -K "$T/dfull.cfg" >"$T/dfull.codes" 2>>"$T/curl.log"
	n204=$(grep -c '^204$' "$T/dfull.codes" || true)
	n503=$(grep -c '^503$' "$T/dfull.codes" || true)
	[ "$n503" -gt 0 ] && [ "$n204" -gt 100 ] || fail "disk full: $n204 x 204, $n503 x 503 of 3000"
	[ $((n204 + n503)) -eq 3000 ] || fail "disk full: unexpected statuses: $(sort "$T/dfull.codes" | uniq -c | tr '\n' ' ')"
	grep -q 'ev=journal.disk_full' "$T/gw.log" || fail "no journal.disk_full log line"
	# refusing hooks is unhealthy, and says why
	rc=0; out=$("$CTL" probe hook-gateway) || rc=$?
	[ "$rc" = 1 ] || fail "disk full: crmsyncctl probe exited $rc, want 1 ($out)"
	case $out in *"refusing hooks"*"filesystem full"*) ;; *) fail "disk full: probe says: $out" ;; esac
	rc=0; "$CTL" status >"$T/status.out" 2>&1 || rc=$?
	[ "$rc" = 1 ] && grep -q 'hook-gateway.*degraded.*refusing hooks' "$T/status.out" ||
		fail "disk full: status (exit $rc) does not say so: $(cat "$T/status.out")"
	[ "$(stat_of journal_refusing)" = 1 ] || fail "disk full: journal_refusing gauge not 1"
	# amo-sync comes back and catches up: the space comes back with no hook and no operator
	start_recv "$T/recv6.txt"
	wait_until 60 "the $n204 journaled hooks delivered" lines_ge "$T/recv6.txt" "$n204"
	wait_until 30 "healthy again without a single new hook" "$CTL" probe -q hook-gateway
	[ "$(stat_of journal_refusing)" = 0 ] || fail "disk full: still refusing after recovery"
	make_stream "$T/dfull2.cfg" 703001 703200
	curl -sS -K "$T/dfull2.cfg" >"$T/dfull2.codes" 2>>"$T/curl.log"
	[ "$(grep -c '^204$' "$T/dfull2.codes")" = 200 ] || fail "after recovery: $(sort "$T/dfull2.codes" | uniq -c | tr '\n' ' ')"
	wait_until 60 "the 200 new hooks delivered" lines_ge "$T/recv6.txt" $((n204 + 200))
	grep -q 'ev=journal.space_reclaimed' "$T/gw.log" || fail "no journal.space_reclaimed log line"
	pass "16. journal filesystem full (128 KiB tmpfs): $n204 x 204 then $n503 x 503, probe/status unhealthy with the reason; after amo-sync caught up, healthy and accepting again by itself"
	stop_gw
	start_gw
fi

# ---- 17. slowloris from one address cannot lock the others out ----
# One client opens as many idle connections as the global cap (90 here); it gets
# CS_GATEWAY_MAX_CONNS_PER_CLIENT=8 of them, and a hook from another address still gets in.
# Then ten other addresses take their 8 each, twice over (the per-address counts must come
# back down when connections close). The held connections never send a request, so the
# deadline for a first request (CS_GATEWAY_BODY_TIMEOUT, 3 s elsewhere in this file) would
# cut them mid-step on a loaded machine: it is as long as the idle limit here.
stop_gw
CS_GATEWAY_MAX_CONNS=90 CS_GATEWAY_MAX_CONNS_PER_CLIENT=8 CS_GATEWAY_IDLE_TIMEOUT=60s \
	CS_GATEWAY_BODY_TIMEOUT=60s start_gw
rm -f "$T/sl.ready" "$T/sl.stop"
python3 - "$PORT" "$T" <<'PY' >>"$T/slowloris.log" 2>&1 &
import os, socket, sys, time
port, t = int(sys.argv[1]), sys.argv[2]
def hold(src, n):
    out = []
    for _ in range(n):
        s = socket.socket()
        s.bind((src, 0))
        s.connect(("127.0.0.1", port))
        out.append(s)
    return out
def mark(name):
    open(os.path.join(t, name), "w").close()
def wait_for(name):
    end = time.time() + 60
    while not os.path.exists(os.path.join(t, name)):
        if time.time() > end:
            sys.exit("timed out waiting for " + name)
        time.sleep(0.05)
slow = hold("127.0.0.1", 90)
mark("sl.ready")
for r in (1, 2):
    wait_for("sl.round%d" % r)
    others = [s for i in range(3, 13) for s in hold("127.0.0.%d" % i, 9)]
    mark("sl.held%d" % r)
    wait_for("sl.drop%d" % r)
    for s in others:
        s.close()
wait_for("sl.stop")
PY
SLPID=$!
PIDS+=("$SLPID")
wait_until 20 "the slow client's 90 connections" test -e "$T/sl.ready"
wait_until 20 "the gateway to keep 8 and refuse 82" bash -c \
	"[ \$($PROBE $CS_GATEWAY_HEALTH_URL connections) = 8 ] && [ \$($PROBE $CS_GATEWAY_HEALTH_URL connections_refused_per_client) -ge 82 ]"
code=$(post "$T/one.form" --interface 127.0.0.2)
[ "$code" = 204 ] || fail "slowloris: a hook from another address got $code while one client held 90 connections"
grep -q 'ev=http.client_overload client=127.0.0.1 ' "$T/gw.log" || fail "no http.client_overload log line"
for r in 1 2; do
	touch "$T/sl.round$r"
	wait_until 20 "round $r: ten more addresses connected" test -e "$T/sl.held$r"
	wait_until 20 "round $r: 8 per address (88 in all)" stat_eq connections 88
	touch "$T/sl.drop$r"
	wait_until 20 "round $r: back to the slow client's 8" stat_eq connections 8
done
code=$(post "$T/one.form" --interface 127.0.0.2)
[ "$code" = 204 ] || fail "slowloris: after the churn a hook from another address got $code"
touch "$T/sl.stop"
wait "$SLPID" || fail "slowloris client script failed: $(tail -3 "$T/slowloris.log")"
wait_until 20 "every connection freed" stat_eq connections 0
pass "17. one client opening 90 connections (the global cap) gets 8 (CS_GATEWAY_MAX_CONNS_PER_CLIENT); hooks from other addresses still get in; per-address counts follow closes"
stop_gw
start_gw

# ---- 14. clean shutdown ----
stop_gw
grep -q 'ev=gateway.stopped' "$T/gw.log" || fail "no clean stop logged"
if grep -qE 'runtime error|AddressSanitizer|LeakSanitizer|ThreadSanitizer' "$T/gw.log" "$T/recv.log"; then
	fail "sanitizer report in the logs"
fi
pass "14. SIGTERM: clean stop, exit 0"

log "all $NPASS checks passed"

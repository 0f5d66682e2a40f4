#!/usr/bin/env bash
# bench/gateway/run.sh - hook gateway: hooks/s and time-to-2xx over HTTPS keep-alive.
#   bench/gateway/run.sh [seconds=15] [connections=32] [body.form]
# Builds in Release (build-gw-bench), starts a stand-in amo-sync that acks everything, and
# runs the gateway twice on the same machine with the same body and the same wrk load:
#   durable  - journal on: each 204 only after the fdatasync covering it (group commit)
#   baseline - CS_GATEWAY_JOURNAL=off: same TLS, same parse, 204 without any disk work
# Then prints hooks/s, p50/p99 time-to-2xx, hooks per fsync, and checks that every hook the
# durable run answered 204 reached the stand-in amo-sync. The journal lives on this
# machine's disk ($TMPDIR, default /tmp), never on tmpfs (fsync would be free there).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
SECS=${1:-15} CONNS=${2:-32}
BODY=${3:-$ROOT/tests/integration/gateway/samples/leads_status.form}
command -v wrk >/dev/null || { echo "wrk missing: deploy/install-deps.sh installs it" >&2; exit 1; }

B=$ROOT/build-gw-bench
cmake -S . -B "$B" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$B" -j"$(nproc)" --target crmsync-hook-gateway gw_test_receiver gw_probe >/dev/null
GW=$B/services/hook-gateway/crmsync-hook-gateway
RECV=$B/tests/integration/gateway/gw_test_receiver
PROBE=$B/tests/integration/gateway/gw_probe
SVC=$ROOT/tests/harness/svc	# the one way tests start a process (tests/harness/README.md)

T=$(mktemp -d "${TMPDIR:-/tmp}/gwbench.XXXXXX")
PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$T"; }
trap cleanup EXIT
if [ "$(stat -f -c %T "$T")" = tmpfs ]; then echo "$T is tmpfs: set TMPDIR to a disk" >&2; exit 1; fi

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
	-keyout "$T/key.pem" -out "$T/cert.pem" -subj "/CN=127.0.0.1" \
	-addext "subjectAltName=IP:127.0.0.1" 2>/dev/null
SECRET=bench-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
export CS_GATEWAY_LISTEN=127.0.0.1:0 CS_GATEWAY_TLS_CERT=$T/cert.pem CS_GATEWAY_TLS_KEY=$T/key.pem
export CS_GATEWAY_SECRET=$SECRET CS_AMO_URL=ipc://$T/amo.ipc CS_GATEWAY_HEALTH_URL=ipc://$T/health.ipc
export CS_GATEWAY_DEADLETTER_DIR=$T/deadletter

RECV_PID=
start_recv() {
	"$SVC" run "$T" recv "$RECV" "$CS_AMO_URL" "$T/recv.txt" --ready "$T/recv.ready"
	RECV_PID=$(cat "$T/recv.pid")
	PIDS+=("$RECV_PID")
	until [ -e "$T/recv.ready" ]; do sleep 0.05; done
}

stat_of() { "$PROBE" "$CS_GATEWAY_HEALTH_URL" "$1"; }

# run NAME JOURNAL(on|off) RECEIVER(up|down): start the gateway, drive it with wrk for
# SECS, keep the figures in $T/NAME.*; a durable run then drains to the stand-in amo-sync
# and counts what arrived.
run() {
	local name=$1 journal=$2 recv=$3 gw port
	rm -f "$T/recv.txt"
	if [ "$recv" = up ]; then start_recv; fi
	CS_GATEWAY_JOURNAL=$journal CS_GATEWAY_JOURNAL_DIR=$T/journal-$name "$SVC" run "$T" "$name" "$GW"
	gw=$(cat "$T/$name.pid")
	PIDS+=("$gw")
	until "$PROBE" "$CS_GATEWAY_HEALTH_URL" >/dev/null 2>&1; do sleep 0.05; done
	port=$(stat_of http_port)
	BODY=$BODY wrk -t2 -c"$CONNS" -d"${SECS}s" --latency -s bench/gateway/post.lua \
		"https://127.0.0.1:$port/hooks/amo/$SECRET" >"$T/$name.wrk"
	stat_of hooks_accepted >"$T/$name.accepted"
	stat_of journal_fsyncs >"$T/$name.fsyncs"
	if [ "$journal" = on ]; then
		if [ "$recv" = down ]; then start_recv; fi
		until [ "$(stat_of journal_backlog)" = 0 ]; do sleep 0.1; done
		wc -l <"$T/recv.txt" >"$T/$name.delivered"
	fi
	[ "$("$SVC" stop "$T" "$name")" = 0 ] || { echo "gateway ($name) exited non-zero on SIGTERM" >&2; exit 1; }
	if [ -n "${RECV_PID:-}" ]; then "$SVC" stop "$T" recv >/dev/null; RECV_PID=; fi
	rm -f "$T/recv.ready"
}

rps() { awk '/^Requests\/sec/ { print $2 }' "$1"; }
pct() { awk -v p="$2" '$1 == p { print $2 }' "$1"; }
non2xx() { awk '/Non-2xx/ { n = $NF } END { print n + 0 }' "$1"; }
row() {	# row LABEL NAME
	printf '%-44s %10s %9s %9s %9s %8s\n' "$1" "$(rps "$T/$2.wrk")" "$(pct "$T/$2.wrk" 50%)" \
		"$(pct "$T/$2.wrk" 90%)" "$(pct "$T/$2.wrk" 99%)" "$(non2xx "$T/$2.wrk")"
}

echo "hook gateway benchmark: ${SECS}s per run, $CONNS keep-alive HTTPS connections (wrk -t2), body $(basename "$BODY") ($(wc -c <"$BODY") bytes), $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
run durable on up
run durable-down on down
run baseline off up

printf '\n%-44s %10s %9s %9s %9s %8s\n' run "hooks/s" p50 p90 p99 non-2xx
row "durable: journal + fdatasync, amo-sync up" durable
row "durable, amo-sync down (journal only)" durable-down
row "baseline: CS_GATEWAY_JOURNAL=off" baseline
d=$(rps "$T/durable.wrk") b=$(rps "$T/baseline.wrk")
for name in durable durable-down; do
	awk -v n="$name" -v acc="$(cat "$T/$name.accepted")" -v fs="$(cat "$T/$name.fsyncs")" \
	    -v del="$(cat "$T/$name.delivered")" 'BEGIN {
		printf "%s: %d hooks answered 204 with %d fdatasyncs (%.1f hooks per fsync); delivered to the stand-in amo-sync: %d (%s)\n",
		    n, acc, fs, fs ? acc / fs : 0, del, (del >= acc ? "all" : "MISSING")
	}'
done
awk -v d="$d" -v b="$b" 'BEGIN { printf "durable / baseline = %.0f%%\n", 100 * d / b }'
[ "$(cat "$T/durable.delivered")" -ge "$(cat "$T/durable.accepted")" ]
[ "$(cat "$T/durable-down.delivered")" -ge "$(cat "$T/durable-down.accepted")" ]

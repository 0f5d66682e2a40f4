#!/bin/sh
# webhook_health_test.sh - amoCRM disables a webhook after failed deliveries and tells
# nobody: amo-sync checks the subscription of CS_AMO_WEBHOOK_URL (GET /api/v4/webhooks) every
# CS_AMO_WEBHOOK_CHECK_INTERVAL (1 s here) and shows a disabled or missing one in
# `crmsyncctl status` and the webhook_ok metric within one period; with CS_AMO_WEBHOOK_REPAIR
# off it changes nothing, with it on it re-enables (and registers) the subscription and hooks
# sent by the fake to its subscriptions flow again into PostgreSQL. Real store, amo-sync and
# gateway (TLS), the fake amoCRM, a throwaway PostgreSQL; the incremental sync is off, so only
# hooks bring edits in.
#   CS_BUILD_DIR=build tests/integration/system/webhook_health_test.sh     (ctest sets it)
set -eu
SRC=$(cd "$(dirname "$0")/../../.." && pwd)
B=$(cd "${CS_BUILD_DIR:?set CS_BUILD_DIR to the build directory}" && pwd)
PY=${CS_PYTHON:-python3}
T=$(mktemp -d "${TMPDIR:-/tmp}/crmsync-webhook.XXXXXX")
chmod 0755 "$T"
. "$SRC/tests/harness/stack.sh"
trap stack_cleanup EXIT
trap 'exit 1' INT TERM
fail() { say "FAIL: $*" >&2; exit 1; }	# stderr: also from inside $(...)

stack_pg
start_fake fake-amocrm amocrm --scale tiny --seed 3 --rps 0 --long-lived-token amo-llt --now real
AMO=$(url_of fake-amocrm)
GW_PORT=$(free_port)
METRICS=127.0.0.1:$(free_port)
make_cert
SECRET=webhook-health-secret-0123456789
HOOK_URL=https://127.0.0.1:$GW_PORT/hooks/amo/$SECRET
stack_env
cat >>"$T/env" <<EOF
CS_AMO_HOOK_DELAY=100ms
CS_AMO_RPS=100
CS_AMO_INCREMENTAL_INTERVAL=0
CS_AMO_METRICS_ADDR=$METRICS
CS_AMO_WEBHOOK_URL=$HOOK_URL
CS_AMO_WEBHOOK_CHECK_INTERVAL=1s
EOF
stack_export
start() { start_svc "$1"; }
stop() { stop_proc "$1"; }
api() {	# api METHOD PATH [JSON]: the fake's REST API with the token; prints the body
	"$PY" - "$AMO" "$@" <<'PY'
import sys, urllib.request
amo, method, path = sys.argv[1:4]
data = sys.argv[4].encode() if len(sys.argv) > 4 else None
req = urllib.request.Request(amo + path, data=data, method=method,
                             headers={"Authorization": "Bearer amo-llt", "Content-Type": "application/json"})
print(urllib.request.urlopen(req, timeout=30).read().decode())
PY
}
# subscription FIELD: that field of the fake's subscription to HOOK_URL ("none" when there is none)
subscription() {
	curl -fsS "$AMO/_fake/webhooks" | "$PY" -c '
import json, sys
w = [x for x in json.load(sys.stdin)["webhooks"] if x["destination"] == sys.argv[1]]
print(json.dumps(w[0][sys.argv[2]]) if w else "none")' "$HOOK_URL" "$1"
}
metric() { curl -fsS "http://$METRICS/metrics" | awk -v m="$1" 'index($1, m "{") == 1 && !f { print $2; f = 1 }'; }
amo_status() { "$CTL" status 2>/dev/null | awk '$1 == "amo-sync"' || true; }
# edit_and_send FROM TO TAG: rename leads FROM..TO in the fake, then let the fake send one update
# hook per lead to its subscriptions (as amoCRM does); prints "sent skipped_disabled"
edit_and_send() {
	"$PY" - "$AMO" "$T/gw.crt" "$1" "$2" "$3" <<'PY'
import json, sys, urllib.request
amo, ca, a, b, tag = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
def post(path, body):
    req = urllib.request.Request(amo + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    return json.loads(urllib.request.urlopen(req, timeout=60).read())
post("/_fake/mutate", {"ops": [{"op": "edit", "entity": "leads", "id": i, "set": {"name": f"{tag} {i}"}} for i in range(a, b + 1)]})
r = post("/_fake/send_hooks", {"cafile": ca, "timeout": 10, "events": [{"entity": "leads", "action": "update", "ids": list(range(a, b + 1))}]})
if r["ok"] != r["requests"]:
    sys.exit(f"hooks not answered 2xx: {r['statuses']}")
print(r["ok"], r["skipped_disabled"])
PY
}
landed() {	# landed FROM TO TAG: how many of those leads carry their new name in PostgreSQL
	psql_ -c "SELECT count(*) FROM amo.leads WHERE id BETWEEN $1 AND $2 AND name = '$3 ' || id"
}
wait_landed() {	# wait_landed FROM TO TAG
	want=$(($2 - $1 + 1))
	for _ in $(seq 150); do [ "$(landed "$@")" = "$want" ] && return 0; sleep 0.2; done
	fail "only $(landed "$@") of $want hooks landed in PostgreSQL ($3)"
}
# wait_for WHAT SECONDS CMD...: poll CMD until it succeeds; the time it took in ms on stdout
wait_for() {
	what=$1 secs=$2
	shift 2
	t0=$(date +%s%N)
	for _ in $(seq $((secs * 10))); do
		if "$@"; then echo $((($(date +%s%N) - t0) / 1000000)); return 0; fi
		sleep 0.1
	done
	fail "$what: not within ${secs}s"
}
status_says() { amo_status | grep -q "$1"; }
metric_is() { [ "$(metric "$1")" = "$2" ]; }
sub_is() { [ "$(subscription "$1")" = "$2" ]; }

# 1. subscribed and enabled: hooks flow, the check says ok
api POST /api/v4/webhooks "{\"destination\": \"$HOOK_URL\", \"settings\": [\"update_lead\", \"status_lead\"]}" >/dev/null
start store
start amo-sync
start hook-gateway
wait_for "webhook_ok 1" 20 metric_is crmsync_webhook_ok 1 >/dev/null
amo_status | grep -q ' up .* ok' || fail "amo-sync not ok while subscribed: $(amo_status)"
[ "$(edit_and_send 1 10 first)" = "10 0" ] || fail "the subscription did not send 10 hooks"
wait_landed 1 10 first
say "subscribed: 10 hooks sent to the subscription landed; webhook_ok 1"
grep -q 'ev=webhook.events_missing' "$T/amo-sync.log" || fail "no webhook.events_missing for a subscription without add_lead etc."

# 2. amoCRM disables it: status and metric within one check period; repair off changes nothing
curl -fsS -X POST -d '{}' "$AMO/_fake/webhooks/disable" >/dev/null
ms=$(wait_for "status shows the disabled webhook" 10 status_says "degraded.*disabled the webhook")
metric_is crmsync_webhook_ok 0 || fail "webhook_ok is $(metric crmsync_webhook_ok), not 0, while status says disabled"
say "disabled: crmsyncctl status and webhook_ok=0 after $ms ms (check period 1 s): $(amo_status | cut -c1-160)"
c0=$(metric crmsync_webhook_checked_timestamp_seconds)
wait_for "two more checks" 10 sh -c "[ \$(curl -fsS http://$METRICS/metrics | awk '/^crmsync_webhook_checked_timestamp_seconds/ {print \$2}') -ge $((c0 + 2)) ]" >/dev/null
[ "$(subscription disabled)" = true ] || fail "repair off, yet the subscription is no longer disabled"
! grep -q 'ev=webhook.repaired' "$T/amo-sync.log" || fail "repair off, yet amo-sync repaired: $(grep ev=webhook.repaired "$T/amo-sync.log")"
[ "$(edit_and_send 11 15 lost)" = "0 1" ] || fail "a disabled subscription still got hooks"
say "repair off: after more checks the subscription is still disabled, no POST made; the fake sends nothing to it"

# 3. repair on: re-enabled within a check, the hooks flow again
stop amo-sync
CS_AMO_WEBHOOK_REPAIR=on start amo-sync
ms=$(wait_for "re-enabled by amo-sync" 20 sub_is disabled false)
wait_for "webhook_ok 1 after the repair" 10 metric_is crmsync_webhook_ok 1 >/dev/null
grep -q 'ev=webhook.repaired action=re-enable' "$T/amo-sync.log" || fail "no webhook.repaired action=re-enable in the log"
[ "$(metric crmsync_webhook_repairs_total)" -ge 1 ] || fail "webhook_repairs not counted"
settings=$(subscription settings)
case $settings in *'"add_lead"'*'"status_lead"'*) ;; *) fail "repaired settings lack the needed events or the old ones: $settings" ;; esac
[ "$(edit_and_send 16 25 again)" = "10 0" ] || fail "the re-enabled subscription did not send 10 hooks"
wait_landed 16 25 again
wait_for "status ok after the repair" 10 status_says ' up .* ok' >/dev/null
say "repair on: re-enabled after $ms ms, the events it lacked added; 10 hooks landed again"

# 4. gone entirely: registered again
api DELETE /api/v4/webhooks "{\"destination\": \"$HOOK_URL\"}" >/dev/null
wait_for "registered again" 20 sh -c "[ \"\$(curl -fsS $AMO/_fake/webhooks | grep -c hooks/amo)\" = 1 ]" >/dev/null
grep -q 'ev=webhook.repaired action=register' "$T/amo-sync.log" || fail "no webhook.repaired action=register"
say "missing: registered again"

# The destination holds the gateway's secret: never in a log line
if grep -q "$SECRET" "$T/amo-sync.log" "$T/hook-gateway.log"; then
	fail "the gateway secret appears in a log: $(grep -h "$SECRET" "$T/amo-sync.log" "$T/hook-gateway.log" | head -2)"
fi
if grep -qE 'runtime error|AddressSanitizer|LeakSanitizer' "$T"/*.log; then
	fail "sanitizer report in the logs"
fi
OK=1
say "passed"

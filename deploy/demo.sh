#!/usr/bin/env bash
# demo.sh - crmsync end to end on one machine, with built-in demo data.
#
# Installs what is missing, builds, starts a throwaway PostgreSQL, the fake Hollihop and
# fake amoCRM (a few thousand records, Cyrillic names), the four services; runs a full
# sync of both CRMs, sends a burst of webhooks through the HTTPS gateway, and prints what
# landed, then the funnel and revenue per channel from the analytics schema (some amoCRM
# contacts are given the phones of paying Hollihop students first, so that leads have
# revenue). Ctrl-C (or the end, with --no-wait) stops everything and removes the temp dir.
#   deploy/demo.sh            run and keep everything up until Ctrl-C
#   deploy/demo.sh --no-wait  run, print, stop (used by tests)
# Everything runs on loopback / unix sockets in a temp dir; nothing is installed as a service.
# Nothing waits for a key: psql never pages (a terminal would otherwise stop at less's ':').
# CS_DEMO_BUILD=DIR uses the binaries already built in DIR instead of building build-demo/
# (tests/integration/system/demo_tty_test.py runs the demo that way, under a terminal).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
WAIT=1
[ "${1:-}" = "--no-wait" ] && WAIT=0

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

deploy/install-deps.sh
if [ -n "${CS_DEMO_BUILD:-}" ]; then
  B=$(cd "$CS_DEMO_BUILD" && pwd)
  say "using the binaries in $B"
else
  say "building (build-demo/)"
  cmake -S . -B build-demo -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build build-demo -j"$(nproc)" --target crmsync-store crmsync-hollihop-sync \
    crmsync-amo-sync crmsync-hook-gateway crmsyncctl >/dev/null
  B=$ROOT/build-demo
fi

DEMO=$(mktemp -d /tmp/crmsync-demo.XXXXXX)
chmod 755 "$DEMO"
NAMES=()
# The throwaway PostgreSQL, the fakes and the services are started as every test starts
# them: tests/harness/testpg, fake and svc (pid, log and exit status in $DEMO/NAME.*).
TESTPG=$ROOT/tests/harness/testpg
SVC=$ROOT/tests/harness/svc
FAKE=$ROOT/tests/harness/fake

cleanup() {
  trap - EXIT INT TERM
  echo
  say "stopping"
  local i
  for ((i = ${#NAMES[@]} - 1; i >= 0; i--)); do "$SVC" stop "$DEMO" "${NAMES[i]}" >/dev/null || true; done
  "$TESTPG" stop "$DEMO/pg" fast
  rm -rf "$DEMO"
  echo "all stopped; nothing left running"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Start a background process with its log in $DEMO/<name>.log (tests/harness/svc run).
start() {
  local name=$1; shift
  "$SVC" run "$DEMO" "$name" "$@"
  NAMES+=("$name")
}
fail() { echo "demo: $*" >&2; for f in "$DEMO"/*.log; do echo "--- $f"; tail -n 20 "$f"; done; exit 1; }

say "PostgreSQL (throwaway, unix socket in $DEMO/pg)"
CS_PG_DURABLE=1 "$TESTPG" start "$DEMO/pg" crmsync >/dev/null
export CS_PG_DSN="host=$DEMO/pg port=5432 dbname=crmsync user=postgres"
# -P pager=off: on a terminal psql would page the 100-row listing below and wait for 'q'.
PSQL=(psql -X -P pager=off -h "$DEMO/pg" -U postgres -d crmsync)

say "fake CRMs with demo data"
HH_KEY='demo/key+1'
NAMES+=(fake-hollihop)
HH_URL=$("$FAKE" start "$DEMO" fake-hollihop hollihop --scale demo --seed 7 --authkey "$HH_KEY") ||
  fail "the fake Hollihop did not start"
NAMES+=(fake-amocrm)
AMO_URL=$("$FAKE" start "$DEMO" fake-amocrm amocrm --scale demo --seed 7 \
  --long-lived-token demo-long-lived-token --now real) || fail "the fake amoCRM did not start"
HH_PORT=${HH_URL##*:}; AMO_PORT=${AMO_URL##*:}
echo "fake Hollihop on 127.0.0.1:$HH_PORT, fake amoCRM on 127.0.0.1:$AMO_PORT"

say "the four services"
export CS_STORE_URL="ipc://$DEMO/store.sock" CS_STORE_HEALTH_URL="ipc://$DEMO/store-health.sock"
export CS_AMO_URL="ipc://$DEMO/amo.sock" CS_AMO_HEALTH_URL="ipc://$DEMO/amo-health.sock"
export CS_HOLLIHOP_URL="ipc://$DEMO/hollihop.sock" CS_HOLLIHOP_HEALTH_URL="ipc://$DEMO/hollihop-health.sock"
export CS_GATEWAY_HEALTH_URL="ipc://$DEMO/gateway-health.sock"
CTL=("$B/tools/crmsyncctl/crmsyncctl")
start store "$B/services/store/crmsync-store"
for _ in $(seq 200); do "${CTL[@]}" probe -q store && break; sleep 0.1; done
"${CTL[@]}" probe -q store || fail "store not ready"

CS_HOLLIHOP_BASE_URL="http://127.0.0.1:$HH_PORT/Api/V2" CS_HOLLIHOP_AUTHKEY="$HH_KEY" \
CS_HOLLIHOP_SCHEDULE=off CS_HOLLIHOP_RATE=0 \
  start hollihop-sync "$B/services/hollihop-sync/crmsync-hollihop-sync"
CS_AMO_BASE_URL="http://127.0.0.1:$AMO_PORT" CS_AMO_LONG_LIVED_TOKEN=demo-long-lived-token \
CS_AMO_TOKEN_FILE="$DEMO/amo-token.json" CS_AMO_HOOK_DELAY=200ms \
  start amo-sync "$B/services/amo-sync/crmsync-amo-sync"

GW_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -keyout "$DEMO/gw.key" -out "$DEMO/gw.crt" -subj "/CN=127.0.0.1" \
  -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" >/dev/null 2>&1
HOOK_SECRET=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
CS_GATEWAY_LISTEN="127.0.0.1:$GW_PORT" CS_GATEWAY_TLS_CERT="$DEMO/gw.crt" CS_GATEWAY_TLS_KEY="$DEMO/gw.key" \
CS_GATEWAY_SECRET="$HOOK_SECRET" CS_GATEWAY_JOURNAL_DIR="$DEMO/journal" CS_GATEWAY_DEADLETTER_DIR="$DEMO/deadletter" \
  start hook-gateway "$B/services/hook-gateway/crmsync-hook-gateway"
for s in hollihop-sync amo-sync hook-gateway; do
  for _ in $(seq 200); do "${CTL[@]}" probe -q "$s" && break; sleep 0.1; done
  "${CTL[@]}" probe -q "$s" || fail "$s not ready"
done
"${CTL[@]}" status || true

say "full export of Hollihop"
"${CTL[@]}" sync hollihop --full || fail "Hollihop export did not complete"
say "linking the demo data: some amoCRM contacts are parents who also enrolled in Hollihop"
# The two fakes generate their people independently: no amoCRM contact shares a phone with a
# Hollihop student and no student names an amoCRM lead, so analytics.lead_revenue had nothing
# to match and every channel showed 0 paid. As at a real school, where the parent who wrote
# in amoCRM later signs the child up, the main contacts of some amoCRM leads get the phone
# (as Hollihop holds it) of a paying student; the amoCRM sync below brings them in, and the
# store matches them by phone (analytics.person_matches) in the same transaction.
"${PSQL[@]}" -tAc "SELECT s.mobile FROM hollihop.students s
  WHERE s.deleted_at IS NULL AND analytics.e164(s.mobile) IS NOT NULL
    AND EXISTS (SELECT 1 FROM hollihop.payments p WHERE p.client_id = s.client_id
                AND p.deleted_at IS NULL AND p.state = 'Paid' AND p.value_quantity > 0)
  ORDER BY s.client_id LIMIT 150" >"$DEMO/phones.txt"
python3 - "$AMO_PORT" "$DEMO/phones.txt" <<'PY'
import json, sys, urllib.request
port, phones = sys.argv[1], [l.strip() for l in open(sys.argv[2]) if l.strip()]
base = f"http://127.0.0.1:{port}/_fake"
get = lambda path: json.load(urllib.request.urlopen(base + path))
ops, seen = [], set()
for i, phone in enumerate(phones):
    lead = get(f"/record?entity=leads&id={1 + i * 13}&with=contacts")
    main = [c["id"] for c in lead.get("_embedded", {}).get("contacts", []) if c.get("is_main")]
    if not main or main[0] in seen:
        continue
    seen.add(main[0])
    contact = get(f"/record?entity=contacts&id={main[0]}")
    cfv = contact.get("custom_fields_values") or []
    old = [f for f in cfv if f.get("field_code") == "PHONE"]
    fields = [f for f in cfv if f.get("field_code") != "PHONE"]
    fields.append(dict(old[0] if old else {"field_id": 310000, "field_name": "Телефон",
                       "field_code": "PHONE", "field_type": "multitext"},
                       values=[{"value": phone, "enum_code": "MOB"}]))
    ops.append({"op": "edit", "entity": "contacts", "id": main[0], "set": {"custom_fields_values": fields}})
req = urllib.request.Request(base + "/mutate", data=json.dumps({"ops": ops}).encode(),
                             headers={"Content-Type": "application/json"})
urllib.request.urlopen(req).read()
print(f"{len(ops)} amoCRM contacts now carry the phone of a paying Hollihop student")
PY
say "full sync of amoCRM (rate limited to 7 requests/s, as the real API)"
"${CTL[@]}" sync amo --full || fail "amoCRM sync did not complete"

say "webhooks: edit 20 leads in the fake amoCRM, send their hooks through the HTTPS gateway"
python3 - "$AMO_PORT" <<'PY'
import json, sys, urllib.request
port = sys.argv[1]
ops = [{"op": "edit", "entity": "leads", "id": i, "set": {"name": f"Обновлено вебхуком #{i}"}} for i in range(1, 21)]
req = urllib.request.Request(f"http://127.0.0.1:{port}/_fake/mutate", data=json.dumps({"ops": ops}).encode(),
                             headers={"Content-Type": "application/json"})
urllib.request.urlopen(req).read()
PY
python3 tests/fake/amocrm/fake_amocrm.py send-hooks --from "http://127.0.0.1:$AMO_PORT" \
  --url "https://127.0.0.1:$GW_PORT/hooks/amo/$HOOK_SECRET" --cafile "$DEMO/gw.crt" \
  --entity leads --action update --ids 1-20 --count 200 --concurrency 8
for _ in $(seq 300); do
  n=$("${PSQL[@]}" -tAc "SELECT count(*) FROM amo.leads WHERE name LIKE 'Обновлено вебхуком%'")
  [ "$n" = 20 ] && break; sleep 0.2
done
echo "leads renamed through webhooks and visible in PostgreSQL: $n of 20"
# The gateway drops a hook from its journal once amo-sync reports it processed (polled
# every half second): the backlog empties within a second or two of the work being done.
# awk reads to the end: one that exits early can SIGPIPE crmsyncctl, and with pipefail
# and set -e that ended the demo (exit 141) right here.
for _ in $(seq 100); do
  backlog=$("${CTL[@]}" status -v 2>/dev/null | awk '$1 == "journal_backlog" && !seen++ { print $2 }')
  [ "$backlog" = 0 ] && break; sleep 0.1
done
echo "hooks still waiting in the gateway's journal for amo-sync: ${backlog:-?}"

say "rows per table"
"${PSQL[@]}" -c "SELECT n.nspname AS schema, c.relname AS table,
  (xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM %I.%I', n.nspname, c.relname), false, true, '')))[1]::text::bigint AS rows
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE n.nspname IN ('amo', 'hollihop') AND c.relkind = 'r' ORDER BY 1, 2"

say "sync runs"
"${PSQL[@]}" -c "SELECT id, crm, kind, status, started_at::time(0) AS started, finished_at - started_at AS took,
  rows_written, rows_deleted, left(coalesce(error, ''), 60) AS error FROM crmsync.sync_runs ORDER BY id"

say "example analytic queries"
echo "-- amoCRM: leads and their value per pipeline stage"
"${PSQL[@]}" -c "SELECT p.name AS pipeline, s.name AS stage, count(l.id) AS leads, sum(l.price) AS value
  FROM amo.leads l JOIN amo.pipelines p ON p.id = l.pipeline_id
  JOIN amo.pipeline_statuses s ON s.pipeline_id = l.pipeline_id AND s.status_id = l.status_id
  WHERE l.deleted_at IS NULL GROUP BY 1, 2, s.sort ORDER BY 1, s.sort LIMIT 15" || true
echo "-- Hollihop: payments per month per office"
"${PSQL[@]}" -c "SELECT date_trunc('month', p.date)::date AS month, o.name AS office, count(*) AS payments,
  sum(p.value_quantity) AS amount FROM hollihop.payments p
  LEFT JOIN hollihop.offices o ON o.id = p.office_or_company_id
  WHERE p.deleted_at IS NULL GROUP BY 1, 2 ORDER BY 1 DESC, 2 LIMIT 15" || true
echo "-- Hollihop: students per status"
"${PSQL[@]}" -c "SELECT coalesce(status, '(none)') AS status, count(*) FROM hollihop.students
  WHERE deleted_at IS NULL GROUP BY 1 ORDER BY 2 DESC" || true

say "the analyst layer: funnel and revenue per channel (crmsyncctl report --text)"
# The analytics tables are the store's; a store without the analyst layer has none.
if [ "$("${PSQL[@]}" -tAc "SELECT to_regclass('analytics.amo_funnel') IS NOT NULL
    AND to_regclass('analytics.lead_revenue') IS NOT NULL")" = t ]; then
  "${CTL[@]}" report --text --only funnel,revenue.channel || echo "demo: the report failed (above)"
  echo "-- the whole report as one page: $B/tools/crmsyncctl/crmsyncctl report --out report.html"
else
  echo "no analytics tables in this database yet (this store predates the analyst layer): no funnel or revenue report"
fi

"${CTL[@]}" status || true
if [ "$WAIT" = 1 ]; then
  say "everything is running. PostgreSQL: psql -h $DEMO/pg -U postgres crmsync   — Ctrl-C stops it all"
  while sleep 3600; do :; done
fi

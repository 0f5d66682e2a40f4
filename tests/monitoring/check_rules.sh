#!/bin/sh
# check_rules.sh - the alerting files in deploy/monitoring, checked offline with promtool
# (Debian's prometheus package): the scrape config and its rule file load, every rule
# parses, the unit tests in alerts_test.yml pass, and every alert has a runbook section, a
# runbook annotation pointing at it, and at least one test in which it fires.
# Exit 77 (skipped) when promtool is missing.
set -eu
M=$(cd "$(dirname "$0")/../../deploy/monitoring" && pwd)
command -v promtool >/dev/null || { echo "check_rules: promtool missing (apt-get install prometheus)"; exit 77; }
fail() { echo "check_rules: FAIL: $*" >&2; exit 1; }

if command -v yamllint >/dev/null; then
	printf 'extends: default\nrules:\n  line-length: {max: 120}\n  document-start: disable\n' >"${TMPDIR:-/tmp}/crmsync-yamllint.$$"
	yamllint -s -c "${TMPDIR:-/tmp}/crmsync-yamllint.$$" "$M"/*.yml || { rm -f "${TMPDIR:-/tmp}/crmsync-yamllint.$$"; fail yamllint; }
	rm -f "${TMPDIR:-/tmp}/crmsync-yamllint.$$"
fi
promtool check config "$M/prometheus.yml"
promtool check rules "$M/alerts.yml"
promtool test rules "$M/alerts_test.yml"

alerts=$(sed -n 's/^ *- alert: *\([A-Za-z0-9_]*\).*/\1/p' "$M/alerts.yml")
[ -n "$alerts" ] || fail "no alerts in alerts.yml"
for a in $alerts; do
	anchor=$(echo "$a" | tr 'A-Z' 'a-z')
	grep -q "^## $a\$" "$M/RUNBOOK.md" || fail "$a has no section '## $a' in RUNBOOK.md"
	grep -q "runbook: \"deploy/monitoring/RUNBOOK.md#$anchor\"" "$M/alerts.yml" ||
	    fail "$a: no runbook annotation pointing at RUNBOOK.md#$anchor"
	# A test that expects it to fire: "alertname: X" followed by a non-empty exp_alerts.
	awk -v a="$a" '
		$1 == "alertname:" { cur = $2; next }
		$1 == "exp_alerts:" && cur == a && $2 != "[]" { found = 1 }
		END { exit found ? 0 : 1 }' "$M/alerts_test.yml" || fail "$a has no test in which it fires"
done
echo "check_rules: $(echo "$alerts" | wc -l) alerts, each with a runbook section and a firing test"

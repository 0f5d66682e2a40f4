#!/bin/sh
# tmpdir_test.sh - a test's temporary directory goes when the test passes (after what runs in
# it is stopped), and stays, named in one line on stderr, when it fails or CS_TEST_KEEP is
# set: the C harness (h_done and its exit handler, through tmpdir_probe) and stack.sh's
# stack_cleanup.   usage: tmpdir_test.sh PROBE
set -eu
PROBE=${1:?usage: tmpdir_test.sh PROBE}
SRC=$(cd "$(dirname "$0")/../.." && pwd)
W=$(mktemp -d "${TMPDIR:-/tmp}/crmsync-tmpdir-test.XXXXXX")
chmod 0755 "$W"
trap 'rm -rf "$W"' EXIT	# only this script's own dir, which holds the cases' dirs
bad=0

# verdict CASE DIR PID WANT: WANT is removed or kept; when removed, the process must be gone
# too; a kept dir must be named on stderr ($W/err). The process is ended afterwards anyway.
verdict() {
	check "$@"
	kill "$3" 2>/dev/null || true
}
check() {
	if [ "$4" = removed ] && [ -e "$2" ]; then echo "FAIL $1: $2 was not removed"; bad=1; return; fi
	if [ "$4" = removed ] && kill -0 "$3" 2>/dev/null; then echo "FAIL $1: pid $3 still runs"; bad=1; return; fi
	if [ "$4" = kept ] && [ ! -d "$2" ]; then echo "FAIL $1: $2 was removed"; bad=1; return; fi
	if [ "$4" = kept ] && ! grep -q "kept $2" "$W/err"; then echo "FAIL $1: stderr does not name $2"; bad=1; return; fi
	echo "ok   $1: $4"
}

c_case() {	# NAME RESULT KEEP WANT
	out=$(TMPDIR=$W CS_TEST_KEEP=$3 "$PROBE" "$2" 2>"$W/err") || true
	[ -n "$out" ] || { echo "FAIL $1: the probe printed nothing: $(cat "$W/err")"; bad=1; return; }
	verdict "C $1" "${out% *}" "${out#* }" "$4"
}

sh_case() {	# NAME EXIT OK KEEP WANT
	(
		# shellcheck disable=SC2034 # read by stack.sh, sourced into this subshell
		T=$(mktemp -d "$W/stack.XXXXXX") PY=python3 OK=$3 CS_TEST_KEEP=$4
		# shellcheck source=tests/harness/stack.sh
		. "$SRC/tests/harness/stack.sh"
		bg sleeper sleep 300
		echo "$T $(cat "$T/sleeper.pid")" >"$W/case"
		trap stack_cleanup EXIT
		exit "$2"
	) >/dev/null 2>"$W/err" || true
	out=$(cat "$W/case")
	verdict "sh $1" "${out% *}" "${out#* }" "$5"
}

c_case "passed" 0 "" removed
c_case "failed" 1 "" kept
c_case "passed, CS_TEST_KEEP=1" 0 1 kept
sh_case "passed" 0 1 "" removed
sh_case "failed (exit 1)" 1 0 "" kept
sh_case "exit 0 without OK=1" 0 0 "" kept
sh_case "passed, CS_TEST_KEEP=1" 0 1 1 kept
exit $bad

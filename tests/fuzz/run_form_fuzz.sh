#!/usr/bin/env bash
# run_form_fuzz.sh FUZZER SAMPLES_DIR SECONDS - seed a corpus with the sample hook bodies
# (each prefixed with the mode byte 0 = default limits) and fuzz form_parse for SECONDS.
set -euo pipefail
fuzzer=$1 samples=$2 secs=${3:-20}
mkdir -p corpus
for f in "$samples"/*.form; do
	{ printf '\0'; cat "$f"; } >"corpus/$(basename "$f")"
done
exec "$fuzzer" -max_total_time="$secs" -timeout=5 -rss_limit_mb=1024 -max_len=65536 \
	-print_final_stats=1 corpus

#!/usr/bin/env bash
# run_json_fuzz.sh FUZZER DATA_DIR SECONDS - seed a corpus with the CRM pages of the test
# data (tests/data/*/*.json) and a few hostile shapes, then fuzz lib/json.c for SECONDS.
set -euo pipefail
fuzzer=$1 data=$2 secs=${3:-15}
mkdir -p json-corpus
for f in "$data"/*/*.json; do
	cp "$f" "json-corpus/$(basename "$(dirname "$f")")-$(basename "$f")"
done
printf '%*s' 70 '' | tr ' ' '[' >json-corpus/deep
printf '[[[:{"k":1,"j":{"x":2}\n}:7,{"y":[[[' >json-corpus/stray-colon
printf '["x\\"[[[[[[[[",{"a":[1,-2.5e3,true,null]}]' >json-corpus/strings
exec "$fuzzer" -max_total_time="$secs" -timeout=5 -rss_limit_mb=1024 -max_len=16384 \
	-print_final_stats=1 json-corpus

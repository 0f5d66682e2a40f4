#!/bin/sh
# bench/amo/run.sh - build in Release and run the amoCRM full-sync benchmark (~2.5 min).
#   bench/amo/run.sh                          leads, contacts, companies, tasks, notes
#   AMO_BENCH_ENTITIES=all bench/amo/run.sh   the whole catalogue (events alone add ~2.5 min)
set -eu
cd "$(dirname "$0")/../.."
BUILD=${CS_AMO_BENCH_BUILD:-build-amo-bench}
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD" -j"$(nproc)" --target amo_bench crmsync-amo-sync crmsync-store >/dev/null
CS_PG_DURABLE=${CS_PG_DURABLE:-1} CS_BUILD_DIR=$PWD/$BUILD CS_SOURCE_DIR=$PWD \
    CS_PYTHON=$(command -v python3) exec "$BUILD/bench/amo/amo_bench"

#!/bin/sh
# bench/hollihop/run.sh - build in Release and run the Hollihop export benchmark.
#   bench/hollihop/run.sh [--per-client N] [--date-from D] [--date-to D] [--durable 0|1]
set -eu
cd "$(dirname "$0")/../.."
BUILD=${CS_BUILD_DIR:-build-hh-rel}
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD" -j"$(nproc)" --target crmsync-hollihop-sync crmsync-store hollihop_null_store >/dev/null
CS_BUILD_DIR=$PWD/$BUILD exec python3 bench/hollihop/bench_hollihop.py "$@"

#!/bin/sh
# bench/analytics/run.sh - build in Release and run the analytics benchmark.
#   bench/analytics/run.sh [leads=50000] [other_events=200000] [pairs=40]
set -eu
cd "$(dirname "$0")/../.."
deploy/install-deps.sh
cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build-bench -j"$(nproc)" --target analytics_bench crmsync-store >/dev/null
# PostgreSQL with its production defaults (fsync on, synchronous_commit on).
CS_PG_DURABLE=${CS_PG_DURABLE:-1} CS_BUILD_DIR=$PWD/build-bench exec build-bench/bench/analytics/analytics_bench "$@"

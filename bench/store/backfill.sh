#!/bin/sh
# bench/store/backfill.sh - build in Release and run the re-derivation benchmark.
#   bench/store/backfill.sh [payments=500000] [leads=200000] [batch=2000]
set -eu
cd "$(dirname "$0")/../.."
deploy/install-deps.sh
cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build-bench -j"$(nproc)" --target backfill_bench crmsync-store >/dev/null
# PostgreSQL with its production defaults (fsync on, synchronous_commit on).
CS_PG_DURABLE=${CS_PG_DURABLE:-1} CS_BUILD_DIR=$PWD/build-bench exec build-bench/bench/store/backfill_bench "$@"

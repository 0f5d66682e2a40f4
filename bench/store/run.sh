#!/bin/sh
# bench/store/run.sh - build in Release and run the store benchmark.
#   bench/store/run.sh [rows] [batch] [loop_rows]
set -eu
cd "$(dirname "$0")/../.."
deploy/install-deps.sh
cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build-bench -j"$(nproc)" --target store_bench crmsync-store >/dev/null
# PostgreSQL with its production defaults (fsync on, synchronous_commit on).
CS_PG_DURABLE=${CS_PG_DURABLE:-1} CS_BUILD_DIR=$PWD/build-bench exec build-bench/bench/store/store_bench "$@"

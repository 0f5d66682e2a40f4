#!/bin/sh
# bench/hollihop/nightly.sh - build in Release and run the nightly-export benchmark
# (changed-only per-client calls vs a full sweep; see nightly.py).
#   bench/hollihop/nightly.sh [--students 100000] [--changed-pct 1] [--rate 6000/30] [--entities all]
set -eu
cd "$(dirname "$0")/../.."
BUILD=${CS_BUILD_DIR:-build-hh-rel}
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD" -j"$(nproc)" --target crmsync-hollihop-sync crmsync-store >/dev/null
CS_BUILD_DIR=$PWD/$BUILD exec python3 bench/hollihop/nightly.py "$@"

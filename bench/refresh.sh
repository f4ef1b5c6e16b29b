#!/usr/bin/env bash
# The worker's refresh benchmarks of BENCHMARKS.md on release builds, on the machine's Postgres:
# per-tick cost (find 256 due grants, claim one) at 10k, 100k and 1M grants, then refreshes per
# second with 1 and 3 `switchboard worker` processes against an instant authorization server.
# Usage: bench/refresh.sh [sizes=10000,100000,1000000] [due=20000]. Prints one JSON line per measure.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZES="${1:-10000,100000,1000000}"
DUE="${2:-20000}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/switchboard/target}"
cargo build --release -q -p switchboard-api -p switchboard-bench
"$CARGO_TARGET_DIR/release/switchboard-bench" refresh --bin "$CARGO_TARGET_DIR/release/switchboard" \
  --sizes "$SIZES" --due "$DUE" --workers 1,3

#!/usr/bin/env bash
# The runtime-plane benchmarks of BENCHMARKS.md on release builds, on Postgres + Redis:
#   - GET /v1/runtime/agents/{id}/mcp-servers with a session ticket verified on every request,
#     20 attached servers with connections in mixed states, 50 keep-alive connections, N runs;
#   - connect → provider → consent callback against an instant in-process authorization server,
#     reported as the time Switchboard adds.
# Usage: bench/runtime.sh [runs=3] [seconds=15]. Prints one JSON line per run.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${1:-3}"
SECS="${2:-15}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/switchboard/target}"
cargo build --release -q -p switchboard-api -p switchboard-bench
BIN="$CARGO_TARGET_DIR/release/switchboard"
BENCH="$CARGO_TARGET_DIR/release/switchboard-bench"
PG_ADMIN="${BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
PG_DB=switchboard_bench_runtime
PORT=18284
URL="http://127.0.0.1:$PORT"

psql "$PG_ADMIN" -qc "DROP DATABASE IF EXISTS $PG_DB" -c "CREATE DATABASE $PG_DB" >/dev/null
export SWITCHBOARD_DATABASE_URL="${PG_ADMIN%/*}/$PG_DB" SWITCHBOARD_REDIS_URL=redis://127.0.0.1:6379
export SWITCHBOARD_MASTER_KEY; SWITCHBOARD_MASTER_KEY=$(head -c 32 /dev/urandom | base64)
dir=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$dir"' EXIT
# The roundtrip's authorization server is on loopback, hence the private-network switch.
(cd "$dir" && RUST_LOG=warn SWITCHBOARD_ALLOW_PRIVATE_NETWORKS=true exec "$BIN" serve --listen "127.0.0.1:$PORT" \
  --public-url "$URL" --run-worker false >"$dir/log" 2>&1) &
pid=$!
for _ in $(seq 200); do curl -fs "$URL/readyz" >/dev/null 2>&1 && break; sleep 0.05; done
key=$(cd "$dir" && "$BIN" admin tenant create bench --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["api_key"])')
seed=$("$BENCH" runtime-seed --url "$URL" --key "$key")
agent=$(echo "$seed" | python3 -c 'import json,sys; print(json.load(sys.stdin)["agent_id"])')
ticket=$(echo "$seed" | python3 -c 'import json,sys; print(json.load(sys.stdin)["ticket"])')
server_pid=$(pgrep -f "$BIN serve --listen 127.0.0.1:$PORT" | head -1)

echo "# runtime list, postgres + redis, 20 servers"
for _ in $(seq "$RUNS"); do
  "$BENCH" load --url "$URL" --key "$ticket" --path "/v1/runtime/agents/$agent/mcp-servers" --connections 50 \
    --duration "$SECS" --server-pid "$server_pid"
done
echo "# connect -> consent callback"
for _ in $(seq "$RUNS"); do "$BENCH" connect-roundtrip --url "$URL" --key "$key" --runs 50; done
psql "$PG_ADMIN" -qc "DROP DATABASE IF EXISTS $PG_DB" >/dev/null 2>&1 || true

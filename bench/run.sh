#!/usr/bin/env bash
# Runs the foundation benchmarks of BENCHMARKS.md on release builds:
#   - start-up: time to a ready /readyz and idle RSS (fresh SQLite)
#   - for each backend (sqlite, postgres): 100 servers registered, then 50 keep-alive connections
#     for 15 s on GET /v1/mcp-servers?limit=100, GET /v1/mcp-servers/{id} and GET /healthz,
#     three runs each; and pgbench on the same Postgres with the exact SELECTs those calls issue.
# Usage: bench/run.sh [runs=3] [seconds=15]. Prints one JSON line per run.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${1:-3}"
SECS="${2:-15}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/switchboard/target}"
cargo build --release -q -p switchboard-api -p switchboard-bench
BIN="$CARGO_TARGET_DIR/release/switchboard"
BENCH="$CARGO_TARGET_DIR/release/switchboard-bench"
PG_ADMIN="${BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
PG_DB=switchboard_bench
PORT=18282
URL="http://127.0.0.1:$PORT"

echo "# start-up (SQLite, fresh data dir)"
for _ in $(seq "$RUNS"); do "$BENCH" startup --bin "$BIN"; done

run_backend() {
  local backend="$1"; shift
  local dir; dir=$(mktemp -d)
  (cd "$dir" && RUST_LOG=warn "$@" "$BIN" serve --listen "127.0.0.1:$PORT" --run-worker false >"$dir/log" 2>&1) &
  local pid=""
  for _ in $(seq 200); do
    pid=$(pgrep -f "$BIN serve --listen 127.0.0.1:$PORT" | head -1 || true)
    [ -n "$pid" ] && curl -fs "$URL/readyz" >/dev/null 2>&1 && break
    sleep 0.05
  done
  local key
  if [ "$backend" = sqlite ]; then
    key=$(cat "$dir/data/bootstrap-api-key")
  else
    key=$(cd "$dir" && "$@" "$BIN" admin tenant create bench --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["api_key"])')
  fi
  local id; id=$("$BENCH" seed --url "$URL" --key "$key" --count 100)
  echo "# $backend: server pid $pid, idle RSS $(awk '/VmRSS/{print $2/1024 " MB"}' /proc/"$pid"/status)"
  for path in "/v1/mcp-servers?limit=100" "/v1/mcp-servers/$id" "/healthz"; do
    for _ in $(seq "$RUNS"); do
      "$BENCH" load --url "$URL" --key "$key" --path "$path" --connections 50 --duration "$SECS" --server-pid "$pid"
    done
  done
  kill "$pid"; wait 2>/dev/null || true
  rm -rf "$dir"
  BENCH_TENANT_KEY="$key" BENCH_SERVER_ID="$id"
}

echo "# sqlite"
run_backend sqlite env -u SWITCHBOARD_DATABASE_URL

echo "# postgres + redis"
psql "$PG_ADMIN" -qc "DROP DATABASE IF EXISTS $PG_DB" -c "CREATE DATABASE $PG_DB" >/dev/null
PG_URL="${PG_ADMIN%/*}/$PG_DB"
export SWITCHBOARD_MASTER_KEY; SWITCHBOARD_MASTER_KEY=$(head -c 32 /dev/urandom | base64)
run_backend postgres env SWITCHBOARD_DATABASE_URL="$PG_URL" SWITCHBOARD_REDIS_URL=redis://127.0.0.1:6379

echo "# pgbench floor: the exact SELECTs of the list and get calls, 50 clients, prepared statements"
tenant=$(psql "$PG_URL" -Atc "SELECT tenant_id FROM mcp_servers LIMIT 1")
server=$(psql "$PG_URL" -Atc "SELECT id FROM mcp_servers ORDER BY id LIMIT 1")
cols='"mcp_servers"."id", "mcp_servers"."tenant_id", "mcp_servers"."name", "mcp_servers"."slug", "mcp_servers"."description", "mcp_servers"."config", "mcp_servers"."secret_hints", "mcp_servers"."discovery_result", "mcp_servers"."created_at", "mcp_servers"."updated_at"'
tmp=$(mktemp -d)
echo "SELECT $cols FROM \"mcp_servers\" WHERE \"mcp_servers\".\"tenant_id\" = '$tenant' ORDER BY \"mcp_servers\".\"id\" ASC LIMIT 101;" >"$tmp/list.sql"
echo "SELECT $cols FROM \"mcp_servers\" WHERE \"mcp_servers\".\"id\" = '$server' AND \"mcp_servers\".\"tenant_id\" = '$tenant' LIMIT 1;" >"$tmp/get.sql"
for q in list get; do
  for _ in $(seq "$RUNS"); do
    tps=$(pgbench -n -M prepared -c 50 -j 2 -T "$SECS" -f "$tmp/$q.sql" "$PG_URL" 2>/dev/null | awk '/^tps/{print $3; exit}')
    echo "{\"pgbench\": \"$q\", \"tps\": $tps}"
  done
done
rm -rf "$tmp"
psql "$PG_ADMIN" -qc "DROP DATABASE IF EXISTS $PG_DB" >/dev/null

echo "# discovery + registration, every response delayed 50 ms (median of 5 per layout)"
"$BENCH" discovery --delay-ms 50 --runs 5

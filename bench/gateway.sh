#!/usr/bin/env bash
# The MCP gateway's overhead and throughput (BENCHMARKS.md, issue 12), on release builds:
# `tools/call` of `echo` on tests/peers/upstream.mjs (FAST=1), at 1 and 50 keep-alive connections,
#   - modern era (2026-07-28, stateless JSON): direct, and through Switchboard's gateway (session
#     ticket verified, the server's token injected, the tool filter applied), also with a ticket
#     narrowed three times (tools, life, an argument cap: every block checked on every call);
#   - session era (2025-11-25: one MCP session per connection): direct, through the gateway, and
#     through the Rust `mcp-proxy` crate as a bare proxy (no authorization) when `mcp-proxy` is on
#     PATH (`cargo install mcp-proxy`).
# Prints one JSON line per run (`"label"` says which). Usage: bench/gateway.sh [runs=3] [seconds=15]
# With SOAK_SECS=600: instead, one modern-era run through the gateway at 50 connections for that
# long, printing the server's resident memory (VmRSS) every 60 s — the no-growth check.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${1:-3}"
SECS="${2:-15}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/switchboard/target}"
cargo build --release -q -p switchboard-api -p switchboard-bench
tests/peers/install.sh
BIN="$CARGO_TARGET_DIR/release/switchboard"
BENCH="$CARGO_TARGET_DIR/release/switchboard-bench"
PEERS="${SWITCHBOARD_PEERS_DIR:-$HOME/.cache/switchboard/peers}"
TOKEN="bench-upstream-$RANDOM$RANDOM"
SB_PORT=18282
SB="http://127.0.0.1:$SB_PORT"
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}" $(cat "$work/upstream.pids" 2>/dev/null); do kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# start NAME COMMAND...: runs it in the background; its first stdout line is its ready JSON.
start_upstream() {
  local name="$1"; shift
  env "$@" FAST=1 node "$PEERS/upstream.mjs" >"$work/$name.out" 2>/dev/null &
  # (Called in $(…), a subshell: the pid goes to a file the exit trap reads, or it would leak.)
  echo $! >>"$work/upstream.pids"
  for _ in $(seq 100); do [ -s "$work/$name.out" ] && break; sleep 0.05; done
  python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["mcp_url"])' "$work/$name.out"
}
UP=$(start_upstream up "REQUIRE_TOKEN=$TOKEN")
UP_OPEN=$(start_upstream up_open)

(cd "$work" && RUST_LOG=warn SWITCHBOARD_ALLOW_PRIVATE_NETWORKS=true SWITCHBOARD_PUBLIC_URL="$SB" \
  exec "$BIN" serve --listen "127.0.0.1:$SB_PORT" --run-worker false >"$work/serve.log" 2>&1) &
pids+=($!)
sb_pid=$!
for _ in $(seq 200); do curl -fs "$SB/readyz" >/dev/null 2>&1 && break; sleep 0.05; done
KEY=$(cat "$work/data/bootstrap-api-key")
api() { curl -fsS -H "Authorization: Bearer $KEY" -H 'content-type: application/json' "$@"; }
SERVER=$(api -X POST "$SB/v1/mcp-servers" -d "{\"name\": \"bench upstream\", \"slug\": \"echo-v1\", \"config\": {\"endpoint\": \"$UP\", \"auth\": {\"type\": \"token\", \"auth_token\": \"$TOKEN\"}}}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
AGENT=$(api -X POST "$SB/v1/agents" -d '{"name": "bench agent"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
GW=$(api -X PUT "$SB/v1/agents/$AGENT/mcp-servers/$SERVER" -d '{"tools": ["echo", "test_simple_text"]}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["gateway_url"])')
TICKET=$(api -X POST "$SB/v1/session-tickets" -d "{\"user_id\": \"bench-user\", \"agent_ids\": [\"$AGENT\"], \"expires_in\": 86400}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["ticket"])')

MODERN='{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hi"},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}'
LEGACY='{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hi"}}}'
MODERN_H=(--header 'accept: application/json, text/event-stream' --header 'mcp-protocol-version: 2026-07-28' --header 'mcp-method: tools/call' --header 'mcp-name: echo')
LEGACY_H=(--header 'accept: application/json, text/event-stream')

# run LABEL URL BEARER CONNECTIONS ARGS...
run() {
  local label="$1" url="$2" bearer="$3" c="$4"; shift 4
  local line
  line=$("$BENCH" load --url "$url" --path "" --key "$bearer" --connections "$c" --duration "$SECS" --expect '"result"' "$@" --server-pid "$sb_pid")
  echo "{\"label\": \"$label\", ${line#\{}"
}

# A delegated ticket three hops deep (two tools; a shorter life; a cap on echo's `max_rows`),
# narrowed offline with `switchboard ticket attenuate`: every call runs each block's checks
# against its arguments.
PK=$(api "$SB/v1/session-tickets/public-key" | python3 -c 'import json,sys; print(json.load(sys.stdin)["public_key"])')
T1=$("$BIN" ticket attenuate --ticket "$TICKET" --public-key "$PK" --tools echo,test_simple_text 2>/dev/null)
T2=$("$BIN" ticket attenuate --ticket "$T1" --public-key "$PK" --ttl 20h 2>/dev/null)
DEEP=$("$BIN" ticket attenuate --ticket "$T2" --public-key "$PK" --cap echo.max_rows=100 2>/dev/null)
MODERN_CAPPED='{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hi","max_rows":50},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}'

MP=""
if command -v mcp-proxy >/dev/null; then
  cat >"$work/proxy.toml" <<TOML
[proxy]
name = "bench"
version = "1.0.0"
separator = "/"

[proxy.listen]
host = "127.0.0.1"
port = 18303

[[backends]]
name = "up"
transport = "http"
url = "$UP_OPEN"
TOML
  (cd "$work" && RUST_LOG=warn exec mcp-proxy --config "$work/proxy.toml" >"$work/mcp-proxy.log" 2>&1) &
  pids+=($!)
  for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:18303/" && break; sleep 0.1; done
  MP="http://127.0.0.1:18303/"
fi
PROXIED_LEGACY='{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"up/echo","arguments":{"text":"hi"}}}'

if [ -n "${SOAK_SECS:-}" ]; then
  "$BENCH" load --url "$GW" --path "" --key "$TICKET" --connections 50 --duration "$SOAK_SECS" --expect '"result"' \
    --body "$MODERN" "${MODERN_H[@]}" --server-pid "$sb_pid" >"$work/soak.json" &
  load_pid=$!
  start=$SECONDS
  while kill -0 "$load_pid" 2>/dev/null; do
    echo "{\"label\": \"soak rss\", \"seconds\": $((SECONDS - start)), \"vm_rss_kb\": $(awk '/VmRSS/ {print $2}' "/proc/$sb_pid/status")}"
    sleep 60
  done
  wait "$load_pid"
  echo "{\"label\": \"soak modern gateway c=50\", $(cut -c2- "$work/soak.json")"
  exit 0
fi

for c in 1 50; do
  for _ in $(seq "$RUNS"); do
    run "modern direct c=$c" "$UP" "$TOKEN" "$c" --body "$MODERN" "${MODERN_H[@]}"
    run "modern gateway c=$c" "$GW" "$TICKET" "$c" --body "$MODERN" "${MODERN_H[@]}"
    run "modern gateway depth-3 ticket c=$c" "$GW" "$DEEP" "$c" --body "$MODERN_CAPPED" "${MODERN_H[@]}"
    run "session direct c=$c" "$UP" "$TOKEN" "$c" --mcp-session --body "$LEGACY" "${LEGACY_H[@]}"
    run "session gateway c=$c" "$GW" "$TICKET" "$c" --mcp-session --body "$LEGACY" "${LEGACY_H[@]}"
    if [ -n "$MP" ]; then
      run "session mcp-proxy c=$c" "$MP" "none" "$c" --mcp-session --body "$PROXIED_LEGACY" "${LEGACY_H[@]}"
    fi
  done
done
echo "{\"label\": \"switchboard peak RSS (kB)\", \"vm_hwm_kb\": $(awk '/VmHWM/ {print $2}' "/proc/$sb_pid/status")}"

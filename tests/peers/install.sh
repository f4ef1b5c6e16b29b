#!/usr/bin/env bash
# Installs the "real peers" test fixture (peers.mjs and its npm dependencies)
# outside the repository, into ${SWITCHBOARD_PEERS_DIR:-$HOME/.cache/switchboard/peers}.
#
# Idempotent and quiet: `npm ci` runs only when package-lock.json differs from
# the one last installed successfully (compared by sha256), or when
# node_modules is missing; peers.mjs is refreshed on every run. Prints nothing
# when there is nothing to install. Needs node and npm on PATH.
set -euo pipefail

src="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
dest="${SWITCHBOARD_PEERS_DIR:-$HOME/.cache/switchboard/peers}"
stamp="$dest/.package-lock.sha256"

mkdir -p "$dest"

want="$(sha256sum "$src/package-lock.json" | cut -d' ' -f1)"
have="$(cat "$stamp" 2>/dev/null || true)"

if [[ "$want" != "$have" || ! -d "$dest/node_modules" ]]; then
  echo "installing test peers into $dest" >&2
  rm -f "$stamp"
  cp "$src/package.json" "$src/package-lock.json" "$dest/"
  (cd "$dest" && npm ci --no-audit --no-fund --loglevel=error >&2)
  # Written only after a successful install, so a failed one is retried.
  echo "$want" >"$stamp"
fi

# Copy peers.mjs only when it changed (keeps the no-op path free of writes).
if ! cmp -s "$src/peers.mjs" "$dest/peers.mjs"; then
  cp "$src/peers.mjs" "$dest/peers.mjs"
fi

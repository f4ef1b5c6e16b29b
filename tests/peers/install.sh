#!/usr/bin/env bash
# Installs the test peers (peers.mjs, upstream.mjs, gateway-client.mjs, oauth-client.mjs, bearer-proxy.mjs, verify-webhook.mjs and their npm dependencies) outside the repository,
# into ${SWITCHBOARD_PEERS_DIR:-$HOME/.cache/switchboard/peers}. Idempotent; see scripts/npm-cache-install.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec "$here/../../scripts/npm-cache-install" "$here" "${SWITCHBOARD_PEERS_DIR:-$HOME/.cache/switchboard/peers}" peers.mjs verify-webhook.mjs upstream.mjs gateway-client.mjs oauth-client.mjs bearer-proxy.mjs

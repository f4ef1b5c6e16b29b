#!/usr/bin/env bash
# Installs the Python "real peers" (mcp_sdk_as.py, authlib_as.py, smoke.py, biscuit_attenuate.py) outside the repository,
# into a venv at ${SWITCHBOARD_PYPEERS_DIR:-$HOME/.cache/switchboard/pypeers}:
#
#   $DIR/bin/python $DIR/mcp_sdk_as.py
#   $DIR/bin/python $DIR/authlib_as.py
#
# Idempotent and quiet, like scripts/npm-cache-install: the venv is created when missing, and
# `pip install -r requirements.txt` runs only when requirements.txt differs from the one last
# installed successfully (compared by sha256) or the venv's python is gone; the scripts are
# copied when they changed. Prints nothing when there is nothing to do. Needs python3 (3.11+,
# with the venv module; override with SWITCHBOARD_PYPEERS_PYTHON) and access to PyPI on installs.
set -euo pipefail

src="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
dest="${SWITCHBOARD_PYPEERS_DIR:-$HOME/.cache/switchboard/pypeers}"
python="${SWITCHBOARD_PYPEERS_PYTHON:-python3}"
stamp="$dest/.requirements.sha256"

want="$(sha256sum "$src/requirements.txt" | cut -d' ' -f1)"
have="$(cat "$stamp" 2>/dev/null || true)"
if [[ "$want" != "$have" || ! -x "$dest/bin/python" ]]; then
  echo "installing Python peer packages into $dest" >&2
  rm -f "$stamp"
  if [[ ! -x "$dest/bin/python" ]]; then
    mkdir -p "$(dirname "$dest")"
    "$python" -m venv "$dest" >&2
  fi
  "$dest/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
    --require-virtualenv -r "$src/requirements.txt" >&2
  cp "$src/requirements.txt" "$dest/requirements.txt"
  # Written only after a successful install, so a failed one is retried.
  echo "$want" >"$stamp"
fi

for file in mcp_sdk_as.py authlib_as.py smoke.py biscuit_attenuate.py; do
  if ! cmp -s "$src/$file" "$dest/$file"; then cp "$src/$file" "$dest/$file"; fi
done

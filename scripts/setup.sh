#!/usr/bin/env bash
# Installs everything the build and the tests need, idempotently and at pinned versions:
# the wasm32 target, worker-build and wasm-bindgen-cli (into .tools/), the npm dev
# dependencies (wrangler, miniflare, esbuild, binaryen) and, with --python, a venv holding the
# conformance suite. Safe to run on every invocation: each step is skipped when already done.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

WORKER_BUILD_VERSION=0.8.7
SCIM2_TESTER_VERSION=0.5.2
SCIM2_CLIENT_VERSION=0.13.2
want_python=0
for arg in "$@"; do
  case "$arg" in
    --python) want_python=1 ;;
  esac
done

log() { printf '[setup] %s\n' "$*" >&2; }

if ! command -v cargo >/dev/null; then
  echo "cargo is required (install Rust with rustup)" >&2
  exit 1
fi
if ! command -v npm >/dev/null; then
  echo "node and npm are required (Node.js >= 20.3)" >&2
  exit 1
fi

if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
  log "adding the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown
fi

mkdir -p .tools/bin
# wasm-bindgen-cli must match the wasm-bindgen crate in Cargo.lock exactly.
bindgen_version=$(awk '/^name = "wasm-bindgen"$/ {getline; gsub(/version = |"/, ""); print; exit}' Cargo.lock)
installed_bindgen=$(.tools/bin/wasm-bindgen --version 2>/dev/null | awk '{print $2}' || true)
if [ "$installed_bindgen" != "$bindgen_version" ]; then
  log "installing wasm-bindgen-cli $bindgen_version (a few minutes, once)"
  # Not --locked: the crate mirror can lag behind the lock file's dependency versions.
  cargo install wasm-bindgen-cli --version "$bindgen_version" --root .tools --force
fi
installed_wb=$(.tools/bin/worker-build --version 2>/dev/null | awk '{print $NF}' || true)
if [ "$installed_wb" != "$WORKER_BUILD_VERSION" ]; then
  log "installing worker-build $WORKER_BUILD_VERSION (a few minutes, once)"
  cargo install worker-build --version "$WORKER_BUILD_VERSION" --root .tools --force
fi

# npm ci only when the lock file changed since the last install.
stamp=node_modules/.package-lock.sha
lock_sum=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$lock_sum" ]; then
  log "installing npm dev dependencies"
  npm ci --no-audit --no-fund --loglevel=error
  echo "$lock_sum" > "$stamp"
fi

if [ "$want_python" = 1 ]; then
  venv=tests/.venv
  if [ ! -x "$venv/bin/python" ]; then
    log "creating the conformance-suite venv"
    python3 -m venv "$venv"
  fi
  if ! "$venv/bin/python" -c "import importlib.metadata as m; assert m.version('scim2-tester') == '$SCIM2_TESTER_VERSION' and m.version('httpx2')" 2>/dev/null; then
    log "installing scim2-tester $SCIM2_TESTER_VERSION"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "scim2-tester==$SCIM2_TESTER_VERSION" "scim2-client[httpx2]==$SCIM2_CLIENT_VERSION"
  fi
fi

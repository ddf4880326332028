#!/usr/bin/env bash
# Installs everything the build and the tests need, idempotently and at pinned versions:
# the wasm32 target, worker-build and wasm-bindgen-cli (into .tools/), the npm dev
# dependencies (wrangler, miniflare, esbuild, binaryen, playwright-core), with --python a venv
# holding the conformance suite and with --browser Debian's chromium. Safe to run on every invocation: each step is skipped when already done.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

WORKER_BUILD_VERSION=0.8.7
SCIM2_TESTER_VERSION=0.5.2
SCIM2_CLIENT_VERSION=0.13.2
CARGO_FUZZ_VERSION=0.13.2
want_python=0
want_fuzz=0
want_browser=0
for arg in "$@"; do
  case "$arg" in
    --python) want_python=1 ;;
    --fuzz) want_fuzz=1 ;;
    --browser) want_browser=1 ;;
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

# Installed tools live in a per-user cache shared by every checkout (CI's fresh clones
# included), reached through the .tools link; a missing cache only means a slower first run.
tools_cache="${SCIM_TOOLS_DIR:-${HOME:-/tmp}/.cache/scim-edge/tools}"
if [ ! -e .tools ] && [ ! -L .tools ]; then
  mkdir -p "$tools_cache"
  ln -s "$tools_cache" .tools
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

# cargo-fuzz (scripts/fuzz.sh) needs nightly Rust; without it fuzzing is skipped, not installed.
if [ "$want_fuzz" = 1 ] && cargo +nightly --version >/dev/null 2>&1; then
  installed_fuzz=$(.tools/bin/cargo-fuzz --version 2>/dev/null | awk '{print $NF}' || true)
  if [ "$installed_fuzz" != "$CARGO_FUZZ_VERSION" ]; then
    log "installing cargo-fuzz $CARGO_FUZZ_VERSION (about two minutes, once)"
    cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --root .tools --force
  fi
fi

# The browser tests (tests/browser/) drive Debian's chromium with playwright-core, which never
# downloads a browser: install the package once (as root, or through sudo).
if [ "$want_browser" = 1 ] && [ ! -x /usr/bin/chromium ]; then
  if ! command -v apt-get >/dev/null; then
    echo "the browser tests need /usr/bin/chromium (Debian's chromium package); install it" >&2
    exit 1
  fi
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  log "installing Debian's chromium for the browser tests (once)"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
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

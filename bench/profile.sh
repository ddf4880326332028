#!/usr/bin/env bash
# Builds the release worker WITH wasm function names (worker-build --profiling, symbols not
# stripped) into bench/.build/profile/, then profiles operations with bench/profile.mjs:
#   bash bench/profile.sh --ops=get,post,patch --seconds=8
# Same tools as scripts/build.sh (nothing downloaded). Its own target dir by default, since a
# build that keeps symbols would otherwise evict the release build's artefacts.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export WASM_BINDGEN_BIN="$root/.tools/bin/wasm-bindgen"
export WASM_OPT_BIN="$root/node_modules/.bin/wasm-opt"
export ESBUILD_BIN="$root/node_modules/.bin/esbuild"
export CARGO_TARGET_DIR="${PROFILE_TARGET_DIR:-${CARGO_TARGET_DIR:-$root/target}-names}"
# Cargo.toml's release profile strips symbols, which drops wasm's name section.
export CARGO_PROFILE_RELEASE_STRIP=false
if [ "${PROFILE_SKIP_BUILD:-}" != 1 ]; then
  "$root/.tools/bin/worker-build" --profiling -d bench/.build/profile >&2
  cp worker/entry.mjs bench/.build/profile/entry.mjs
fi
exec node bench/profile.mjs --worker=bench/.build/profile "$@"

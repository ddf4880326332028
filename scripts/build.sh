#!/usr/bin/env bash
# Builds the release worker into build/worker/ with tools installed by scripts/setup.sh.
# worker-build would download wasm-bindgen, wasm-opt and esbuild from GitHub; the *_BIN
# overrides point it at the pinned local copies instead, so builds work offline.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export WASM_BINDGEN_BIN="$root/.tools/bin/wasm-bindgen"
export WASM_OPT_BIN="$root/node_modules/.bin/wasm-opt"
export ESBUILD_BIN="$root/node_modules/.bin/esbuild"
# SCIM_BUILD_DIR builds elsewhere (the e2e fault-injection variant: build-faults/).
out="${SCIM_BUILD_DIR:-build}"
# SCIM_PREBUILT=1 (set by `DEV_PREBUILT=1 scripts/dev.sh`): wrangler's [build] step keeps the
# worker already built instead of building it again.
if [ "${SCIM_PREBUILT:-}" = 1 ] && [ -f "$root/$out/entry.mjs" ] && [ -f "$root/$out/index_bg.wasm" ]; then
  echo "using $out/ as built (SCIM_PREBUILT=1)"
  exit 0
fi
"$root/.tools/bin/worker-build" --release -d "$out" "$@"
# The entry module wraps the generated one so a panic still answers a SCIM Error.
cp "$root/worker/entry.mjs" "$root/$out/entry.mjs"
wasm="$root/$out/index_bg.wasm"
[ -f "$wasm" ] || { echo "no wasm produced at $wasm" >&2; exit 1; }
raw=$(stat -c %s "$wasm")
gz=$(gzip -9 -c "$wasm" | wc -c)
echo "worker wasm: $raw bytes raw, $gz bytes gzip ($(basename "$wasm"))"

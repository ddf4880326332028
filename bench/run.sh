#!/usr/bin/env bash
# The benchmark, one command: builds the release scim-edge worker and the three ceiling workers
# (constant; one D1 point query; one Durable Object hop with one SQLite point query),
# installs the load generator (Debian's wrk) and the scim2-server peer (venv under bench/),
# then bench/bench.mjs seeds local D1 databases and the Durable Object backend's tenant object
# (1,000 and 100,000 users), validates each seed through the API, counts D1 round trips,
# object hops and object transactions, and measures every operation on both storage backends,
# then 1,000 tenants of 100 users and a noisy neighbour. Results and the markdown tables go
# to bench/results/<UTC timestamp>/ (bench/results/latest points at it).
#
#   bash bench/run.sh --runners=miniflare --duration=3   # docs/PERFORMANCE.md's run (~40 min on 2 cores)
#   bash bench/run.sh --sizes=1000 --duration=3 --runners=miniflare --peer=0 --tenants=0   # quick look
#
# Options (passed to bench.mjs): --sizes=1000,100000 --duration=5 --warmup=1 --connections=8
#   --runners=miniflare,wrangler --peer=0|1 --ops=get,userName,... --pool=30000
#   --storage=d1,durable-object --tenants=1000 --tenant-users=100 --noisy=0|1
# `wrangler dev` runs measure the D1 backend only. Needs the sqlite3 shell (Debian's sqlite3)
# to seed objects.
# Not part of scripts/test.sh: it takes minutes and its numbers move with the machine's load.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
SCIM2_SERVER_VERSION=0.8.3
log() { printf '[bench] %s\n' "$*" >&2; }

bash scripts/setup.sh

for tool in wrk sqlite3; do
  command -v "$tool" >/dev/null && continue
  if [ "$(id -u)" = 0 ]; then
    log "installing $tool (Debian package)"
    apt-get install -y -qq "$tool" >/dev/null || { apt-get update -qq && apt-get install -y -qq "$tool" >/dev/null; }
  else
    echo "$tool is required: sudo apt-get install $tool" >&2
    exit 1
  fi
done

venv=bench/.venv
if [ ! -x "$venv/bin/python" ]; then
  log "creating the peer venv ($venv)"
  python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c "import importlib.metadata as m; assert m.version('scim2-server') == '$SCIM2_SERVER_VERSION'" 2>/dev/null; then
  log "installing scim2-server $SCIM2_SERVER_VERSION (bench/peer/requirements.txt)"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r bench/peer/requirements.txt
fi

stamp=$(date -u +%Y%m%dT%H%M%SZ)
out="bench/results/$stamp"
mkdir -p "$out/workers"

# Same tools and flags as scripts/build.sh, but into bench/ so build/ (used by others' e2e
# runs) is left alone.
export WASM_BINDGEN_BIN="$root/.tools/bin/wasm-bindgen"
export WASM_OPT_BIN="$root/node_modules/.bin/wasm-opt"
export ESBUILD_BIN="$root/node_modules/.bin/esbuild"
# BENCH_MAIN_SRC: another checkout of the crate to measure (e.g. a before/after comparison).
if [ -n "${BENCH_MAIN_SRC:-}" ]; then
  log "building scim-edge (release) from $BENCH_MAIN_SRC"
  (cd "$BENCH_MAIN_SRC" && "$root/.tools/bin/worker-build" --release) >"$out/build-main.log" 2>&1 ||
    { cat "$out/build-main.log" >&2; exit 1; }
  cp -r "$BENCH_MAIN_SRC/build" "$out/workers/main"
else
  log "building scim-edge (release)"
  "$root/.tools/bin/worker-build" --release --out-dir bench/.build/main >"$out/build-main.log" 2>&1 ||
    { cat "$out/build-main.log" >&2; exit 1; }
  cp -r bench/.build/main "$out/workers/main"
fi
# The deployed entry module wraps worker-build's output (wrangler.toml `main`), when present.
if [ -f "${BENCH_MAIN_SRC:-$root}/worker/entry.mjs" ]; then
  cp "${BENCH_MAIN_SRC:-$root}/worker/entry.mjs" "$out/workers/main/entry.mjs"
fi
for c in ceiling-const ceiling-d1 ceiling-do; do
  log "building $c (release)"
  (cd "bench/$c" && CARGO_TARGET_DIR="$root/bench/target" "$root/.tools/bin/worker-build" --release) \
    >"$out/build-$c.log" 2>&1 || { cat "$out/build-$c.log" >&2; exit 1; }
  cp -r "bench/$c/build" "$out/workers/$c"
done
for w in main ceiling-const ceiling-d1 ceiling-do; do
  wasm="$out/workers/$w/index_bg.wasm"
  log "$w wasm: $(stat -c %s "$wasm") bytes raw, $(gzip -9 -c "$wasm" | wc -c) bytes gzip"
done

ln -sfn "$stamp" bench/results/latest
node bench/bench.mjs --out="$out" "$@"

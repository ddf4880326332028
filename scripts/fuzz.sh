#!/usr/bin/env bash
# Coverage-guided fuzzing of the protocol core with cargo-fuzz (libFuzzer, nightly Rust).
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
#
# Targets: filter, attr_path, patch, resource (all by default); see docs/FUZZING.md. Each runs
# for SECONDS_PER_TARGET (default 8, what scripts/test.sh uses) from the committed seeds in
# fuzz/corpus/<target>/, with new inputs kept in a scratch directory (fuzz/corpus-run/<target>,
# git-ignored) so the committed corpus only changes on purpose. A crash fails the script and
# leaves the input in fuzz/artifacts/<target>/. Without a nightly toolchain it skips, exit 0.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
secs="${1:-8}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(filter attr_path patch resource)

if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "fuzz: skipped (no nightly toolchain; 'rustup toolchain install nightly' enables it)"
  exit 0
fi
export PATH="$root/.tools/bin:$PATH"
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: skipped (cargo-fuzz is not installed; 'bash scripts/setup.sh --fuzz' installs it)"
  exit 0
fi

# No sanitizer: the fuzzed code is safe Rust, so panics (with overflow checks on, from
# --debug-assertions) are what there is to find, and ASan would only slow builds and runs.
flags=(-s none --debug-assertions)
logs=$(mktemp -d -t scim-fuzz.XXXXXX)
cargo +nightly fuzz build "${flags[@]}" >/dev/null 2>"$logs/build.log" || {
  cat "$logs/build.log" >&2
  exit 1
}

total=0
for t in "${targets[@]}"; do
  scratch="fuzz/corpus-run/$t"
  mkdir -p "$scratch" "fuzz/artifacts/$t"
  log="$logs/$t.log"
  if ! cargo +nightly fuzz run "${flags[@]}" "$t" "$scratch" "fuzz/corpus/$t" -- \
    -max_total_time="$secs" -dict=fuzz/dict/scim.dict -max_len=4096 -timeout=10 \
    -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="fuzz/artifacts/$t/" >"$log" 2>&1; then
    grep -a -E "panicked at|ERROR|SUMMARY|Test unit written" -A3 "$log" >&2 || tail -30 "$log" >&2
    echo "fuzz: $t FAILED; the input is in fuzz/artifacts/$t/, the log in $log" >&2
    exit 1
  fi
  execs=$(grep -a 'stat::number_of_executed_units' "$log" | awk '{v = $2} END {print v}')
  rate=$(grep -a 'stat::average_exec_per_sec' "$log" | awk '{v = $2} END {print v}')
  echo "fuzz: $t ok: ${execs:-?} executions in ${secs}s (${rate:-?}/s), no panics"
  total=$((total + ${execs:-0}))
done
echo "fuzz: ${#targets[@]} targets, $total executions, no panics"
rm -rf "$logs"

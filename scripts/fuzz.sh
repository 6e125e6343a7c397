#!/usr/bin/env bash
# Runs each libFuzzer target of fuzz/ for a fixed time (ASan + UBSan build, build-asan) and prints
# executions and crashes per target; exits 1 when any target crashed. The seeds of fuzz/corpus/<t>
# are copied into build-asan/fuzz/corpus-<t> (the working corpus, kept between runs), and a crash
# leaves its input as build-asan/fuzz/crash-<t>-*.
#   scripts/fuzz.sh [seconds per target, default 60] [target ...]   (targets: json safetensors config idx npy image_set)
# FUZZ_RUNS=N stops a target after N executions when that comes first (the by-hand run of
# bench/RESULTS.md: FUZZ_RUNS=10000000 scripts/fuzz.sh 3600).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(json safetensors config idx npy image_set)
# FUZZ_NO_BUILD=1: use the targets as built (e.g. for a second run beside one that built them)
[ -n "${FUZZ_NO_BUILD:-}" ] || scripts/sanitizer-build.sh asan "${targets[@]/#/fuzz_}" > /dev/null
out=build-asan/fuzz
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export ASAN_OPTIONS=detect_leaks=1
failed=0
printf '%-12s %8s %14s %10s %8s %8s\n' target seconds executions 'exec/s' crashes corpus
for t in "${targets[@]}"; do
  corpus="$out/corpus-$t"
  mkdir -p "$corpus"
  cp -n fuzz/corpus/"$t"/* "$corpus"/ 2>/dev/null || true
  log="$out/fuzz-$t.log"
  rc=0
  start=$SECONDS
  "$out/fuzz_$t" -max_total_time="$seconds" -runs="${FUZZ_RUNS:--1}" -print_final_stats=1 -max_len=8192 -timeout=10 -rss_limit_mb=4096 \
    -artifact_prefix="$out/crash-$t-" "$corpus" > "$log" 2>&1 || rc=$?
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)
  crashes=0
  if [ "$rc" -ne 0 ]; then
    crashes=1
    failed=1
  fi
  took=$((SECONDS - start))
  printf '%-12s %8s %14s %10s %8s %8s\n' "$t" "$took" "$execs" "$((execs / (took > 0 ? took : 1)))" "$crashes" "$(ls "$corpus" | wc -l)"
  if [ "$rc" -ne 0 ]; then
    echo "fuzz.sh: $t failed (exit $rc); the end of $log:" >&2
    grep -v '^#' "$log" | tail -40 >&2
  fi
done
exit $failed

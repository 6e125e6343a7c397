#!/usr/bin/env bash
# Sanitizer runs (clang; Debian: apt-get install clang libfuzzer-14-dev libclang-rt-14-dev):
#   scripts/sanitize.sh ctest   ASan + UBSan build of the core and the native tests (build-asan); ctest
#   scripts/sanitize.sh jest    the same with the Node addon; the jest suite in a Node with the ASan
#                               runtime preloaded (LD_PRELOAD; leak detection off: Node itself is not
#                               instrumented and keeps memory until exit)
#   scripts/sanitize.sh tsan    ThreadSanitizer build (build-tsan): the thread pool, the concurrent
#                               trainers and sampler of test_concurrency, and the ops' native tests
#   scripts/sanitize.sh all     all three
# A sanitizer report fails the run (-fno-sanitize-recover=all, halt_on_error). CI runs `ctest`.
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-all}
runtime() { clang -print-file-name="libclang_rt.$1-x86_64.so"; }
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
asan_options=detect_leaks=1:abort_on_error=1:allocator_may_return_null=1:detect_stack_use_after_return=0

asan_ctest() {
  scripts/sanitizer-build.sh asan
  ASAN_OPTIONS=$asan_options ctest --test-dir build-asan --output-on-failure
}

asan_jest() {
  DECOFLOW_ADDON=1 scripts/sanitizer-build.sh asan decoflow
  LD_PRELOAD=$(runtime asan) ASAN_OPTIONS=${asan_options/detect_leaks=1/detect_leaks=0} \
    DECOFLOW_NATIVE_PATH="$PWD/build-asan/Release/decoflow.node" npx jest --runInBand --testTimeout=900000 "$@"
}

tsan() {
  # The async-job side runs natively in test_concurrency (two trainers and a sampler on their own
  # threads, as libuv's workers run them, sharing the pool). Node itself cannot take the TSan
  # runtime by LD_PRELOAD here: clang 14's libclang_rt.tsan crashes any uninstrumented program it is
  # preloaded into (even /bin/true) on this kernel, so jest does not run under TSan.
  local tests=(test_core test_concurrency test_train_batch test_model_ops test_pyramid test_integrator)
  scripts/sanitizer-build.sh tsan "${tests[@]}"
  local regex
  regex="^($(IFS='|'; echo "${tests[*]}"))\$"
  TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 ctest --test-dir build-tsan --output-on-failure -R "$regex"
}

case "$what" in
  ctest) asan_ctest ;;
  jest) shift; asan_jest "$@" ;;
  tsan) tsan ;;
  all) asan_ctest; asan_jest; tsan ;;
  *) echo "usage: scripts/sanitize.sh ctest|jest|tsan|all" >&2; exit 2 ;;
esac
echo "sanitize.sh: $what: no sanitizer report"

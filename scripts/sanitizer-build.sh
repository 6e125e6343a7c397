#!/usr/bin/env bash
# Configures and builds the clang sanitizer build that scripts/sanitize.sh and scripts/fuzz.sh share:
#   scripts/sanitizer-build.sh asan [targets...]   build-asan: ASan + UBSan, with libFuzzer coverage and the fuzz/ targets
#   scripts/sanitizer-build.sh tsan [targets...]   build-tsan: ThreadSanitizer
# With DECOFLOW_ADDON=1 the Node addon is built too (through cmake-js, which supplies Node's headers).
# Needs clang and its sanitizer runtimes (and libfuzzer-14-dev for the fuzz targets):
# apt-get install clang libclang-rt-14-dev libfuzzer-14-dev.
set -euo pipefail
cd "$(dirname "$0")/.."
kind=${1:?usage: sanitizer-build.sh asan|tsan [targets...]}
shift
case "$kind" in
  asan) flags=(-DDECOFLOW_SANITIZE=address,undefined -DDECOFLOW_FUZZ=ON) ;;
  tsan) flags=(-DDECOFLOW_SANITIZE=thread) ;;
  *) echo "sanitizer-build.sh: unknown kind '$kind' (asan or tsan)" >&2; exit 2 ;;
esac
dir="build-$kind"
common=(-DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DDECOFLOW_CUDA=OFF "${flags[@]}")
if [ -n "${DECOFLOW_ADDON:-}" ]; then
  # cmake-js configures the same directory with the Node-API headers, so the addon joins the build.
  cdflags=()
  for f in "${common[@]}"; do cdflags+=("--CD${f#-D}"); done
  node node_modules/cmake-js/bin/cmake-js configure --out "$dir" -G Ninja "${cdflags[@]}" > "$dir.configure.log" 2>&1 \
    || { tail -30 "$dir.configure.log"; exit 1; }
else
  cmake -S . -B "$dir" -G Ninja "${common[@]}" > "$dir.configure.log" 2>&1 || { tail -30 "$dir.configure.log"; exit 1; }
fi
ninja -C "$dir" "$@" > "$dir.build.log" 2>&1 || { grep -A5 -E "error|FAILED" "$dir.build.log" | head -60; exit 1; }
echo "sanitizer-build.sh: $dir built${*:+ ($*)}"

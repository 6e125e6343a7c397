#!/usr/bin/env bash
# The GPU machine's one-shot check of the CUDA backend, most important first: builds with plain CMake
# + Ninja (Node optional), runs every ctest (the CUDA tests must not skip; test_backend_ops checks
# every op of the CUDA op backend, f32 and bf16, against the CPU), the public API's CUDA checks through
# Node (tensors, attention, pyramids, then training, checkpoints and sampling on the GPU against the
# CPU), the DiT training and sampling benchmark against PyTorch (eager and torch.compile), a 64-px
# training run (its sample grid and previews land in $OUT), decoflow bench's other GPU rows,
# compute-sanitizer memcheck on small sizes, the dev/cuda kernel ladder, and the attention and pyramid
# benchmarks of the C ABI on the same card.
# $OUT (default: ./device-out) receives few files, because the device tool returns at most eight:
# summary.txt, the benchmark report and logs.tar.gz with every log and JSON (written on exit, also
# when a step fails). DEADLINE_S (default 480) bounds the whole run: each step's own limit is cut
# to what is left, so the script ends, and packs its logs, before the caller's timeout. SKIP_STEPS is
# a regular expression of step names to leave out (e.g. 'dev_attention_.*|bench-torch.*');
# DECOFLOW_DEV_CUDA=OFF leaves the ladder out of the build. Steps run most important first: the CUDA
# op backend and the model on it, the public API, the model benchmarks, then the older kernels' checks.
# Usage: OUT=/some/dir bash scripts/device-check.sh        (target: under ~8 minutes on an H100)
# Without a GPU it still configures and builds, then reports "no GPU" and exits 0.
set -u
cd "$(dirname "$0")/.."
OUT="${OUT:-$PWD/device-out}"
mkdir -p "$OUT"
RESULTS="$OUT"
OUT="$(mktemp -d "${TMPDIR:-/tmp}/decoflow-device.XXXXXX")"  # the logs; packed into $RESULTS at exit
DEADLINE=$(( $(date +%s) + ${DEADLINE_S:-480} ))
pack() {
  cp "$OUT/summary.txt" "$RESULTS/" 2>/dev/null
  for f in bench_report.md bench_report_flash.md bench_pyramid.md node-bench.log node-bench-model.log; do [ -f "$OUT/$f" ] && cp "$OUT/$f" "$RESULTS/"; done
  tar -czf "$RESULTS/logs.tar.gz" -C "$OUT" . 2>/dev/null
}
trap pack EXIT
BUILD="${BUILD_DIR:-build-gpu}"
ARCHS="${DECOFLOW_CUDA_ARCHS:-80;90a}"
PY="${PYTHON:-python3}"
SUMMARY="$OUT/summary.txt"
: > "$SUMMARY"
start=$(date +%s)
command -v nvcc > /dev/null || export PATH="$PATH:/usr/local/cuda/bin"  # the toolkit's usual home
note() { echo "$*" | tee -a "$SUMMARY"; }
# step NAME TIMEOUT_S CMD...: runs CMD with its output in $OUT/NAME.log, records pass/fail.
failures=0
step() {
  local name=$1 limit=$2; shift 2
  local t0=$(date +%s)
  if [ -n "${SKIP_STEPS:-}" ] && [[ "$name" =~ ^(${SKIP_STEPS})$ ]]; then note "SKIP  $name (SKIP_STEPS)"; return 0; fi
  local left=$(( DEADLINE - t0 - 10 ))
  if [ $left -lt 5 ]; then note "SKIP  $name: out of time (DEADLINE_S)"; failures=$((failures + 1)); return 124; fi
  [ $limit -gt $left ] && limit=$left
  timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
  local rc=$?
  local dt=$(( $(date +%s) - t0 ))
  if [ $rc -eq 0 ]; then note "PASS  $name (${dt}s)"; else note "FAIL  $name (rc $rc, ${dt}s): see $name.log"; failures=$((failures + 1)); fi
  return $rc
}

note "decoflow device check, $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
if command -v nvidia-smi > /dev/null && nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1; then
  cat "$OUT/nvidia-smi.txt"
  HAVE_GPU=1
else
  echo "nvidia-smi: not available or failed" | tee "$OUT/nvidia-smi.txt"
  HAVE_GPU=0
fi
note "nvcc: $(nvcc --version 2>/dev/null | tail -1 || echo missing); cmake: $(cmake --version | head -1); GPU: $HAVE_GPU"

# Node, for the checks through the public API: on the PATH, or carried gzipped in .device-carry/
# (the GPU image has none). With it and the Node-API headers (node_modules/node-api-headers and
# node-addon-api, carried) the addon is built too; dist/ (carried) is the package it loads.
if ! command -v node > /dev/null && [ -f .device-carry/node.gz ]; then
  mkdir -p /tmp/decoflow-node/bin && gunzip -c .device-carry/node.gz > /tmp/decoflow-node/bin/node &&
    chmod +x /tmp/decoflow-node/bin/node && export PATH="/tmp/decoflow-node/bin:$PATH"
fi
ADDON_FLAGS=()
if command -v node > /dev/null && [ -d node_modules/node-api-headers/include ] && [ -d node_modules/node-addon-api ]; then
  ADDON_FLAGS=("-DCMAKE_JS_INC=$PWD/node_modules/node-api-headers/include")
fi
note "node: $(node --version 2>/dev/null || echo none); addon build: ${#ADDON_FLAGS[@]}"

# Build: the backend, the tests, the benchmark and the ladder. cuBLASLt is optional (matmul only).
step configure 300 cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DDECOFLOW_CUDA=ON \
  "-DDECOFLOW_CUDA_ARCHS=$ARCHS" "-DDECOFLOW_DEV_CUDA=${DECOFLOW_DEV_CUDA:-ON}" "${ADDON_FLAGS[@]}" || { note "configure failed"; exit 1; }
step build 420 cmake --build "$BUILD" -j "$(nproc)" || { note "build failed"; tail -40 "$OUT/build.log"; exit 1; }
BIN="$BUILD/Release"
ls -la "$BIN" > "$OUT/binaries.txt" 2>&1

if [ "$HAVE_GPU" != 1 ]; then
  note "no GPU: built only; the CUDA tests below skip"
  step ctest-no-gpu 300 ctest --test-dir "$BUILD" --output-on-failure
  exit 0
fi

export DECOFLOW_CUDA_LIBRARY="$PWD/$BIN/libdecoflow_cuda.so"
export DECOFLOW_REQUIRE_CUDA=1  # a CUDA test that cannot find the device fails instead of skipping

# 1. Correctness: every op of the CUDA op backend against the CPU (f32 and bf16 policies), the DiT on
# it, then the CUDA kernels' own tests; the CPU-only ctests come later (CI runs them as well).
step test_backend_ops 180 "$BIN/test_backend_ops"
step test_model_backends 180 "$BIN/test_model_backends"
step test_cuda_runtime 120 "$BIN/test_cuda_runtime"
step test_cuda_pyramid 120 "$BIN/test_cuda_pyramid"
step test_cuda_integrator 120 "$BIN/test_cuda_integrator"
step test_cuda_attention 180 "$BIN/test_cuda_attention"

# 1b. The public API on the GPU (test/cuda/checks.js and test/cuda/training.js through
# scripts/device-node-check.js): tensors, attention and pyramids on CUDA tensors, then the DiT,
# trainer and sampler on the CUDA op backend against the CPU (f32 steps, a 200-step bf16 curve,
# checkpoints across devices, sampling, memory and the batch loader).
if [ -f "$BIN/decoflow.node" ] && [ -f dist/index.cjs ]; then
  export DECOFLOW_NATIVE_PATH="$PWD/$BIN/decoflow.node"
  step node-check 300 node scripts/device-node-check.js
  BENCH_PEER=()
  "$PY" -c "import torch; assert torch.cuda.is_available()" > /dev/null 2>&1 && BENCH_PEER=(--compare torch --python "$PY")
  # The training step of a 2-stage DFM DiT-S/2 and DiT-B/2 (256 tokens) at batch 32 and 128 and sampling
  # (40 steps, cfg 2), against PyTorch eager (bf16 autocast + SDPA) and torch.compile on the same card.
  step node-bench-model 420 node bin/decoflow.js bench --device cuda --no-progress --budget 2 "${BENCH_PEER[@]}" \
    --json "$OUT/node_bench_model.json" train:S:2:b32 train:S:2:b128 train:B:2:b32 train:B:2:b128 \
    sample:S:2:b32 sample:B:2:b32
  # A 64-px DFM run for a few minutes on the embedded shapes: its sample grid and previews.
  step run-64px 240 node bin/decoflow.js train --device cuda --data shapes --image-size 64 --stages 2 --model S \
    --grid 16 --batch 64 --lr 5e-4 --warmup 200 --ema-decay 0.999 --stage-probs 0.5,0.5 --steps 100000 \
    --time-limit "${RUN_64PX_S:-180}" --checkpoint-every 0 --sample-cfg 3 --out "$OUT/run-64px"
  for f in samples.png samples-previews.png run.json; do
    [ -f "$OUT/run-64px/$f" ] && cp "$OUT/run-64px/$f" "$RESULTS/run-64px-$f"
  done
  # decoflow bench's other GPU rows (ceilings, GEMM, attention, pyramid).
  step node-bench 240 node bin/decoflow.js bench --device cuda --quick --no-progress "${BENCH_PEER[@]}" \
    --json "$OUT/node_bench.json" ceiling gemm attention pyramid
  # torch.compile as the second peer (its compilation takes a minute or more per row).
  step node-bench-compile 300 node bin/decoflow.js bench --device cuda --no-progress --budget 2 "${BENCH_PEER[@]}" \
    --json "$OUT/node_bench_compile.json" train:S:2:b128:compile train:B:2:b128:compile
else
  note "SKIP  node-check: no addon build or no dist/ (carry .device-carry, dist and the Node-API headers)"
fi

# 2. compute-sanitizer memcheck (and racecheck on the attention kernels' shared memory), small sizes.
SAN="$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer 2>/dev/null || true)"
if [ -n "$SAN" ]; then
  export DECOFLOW_TEST_SMALL=1 DECOFLOW_CUDA_EXACT_ALLOC=1  # exact-size blocks: no slack past a tensor's end
  step memcheck-backend-ops 240 "$SAN" --tool memcheck --error-exitcode 9 "$BIN/test_backend_ops"
  step memcheck-attention 240 "$SAN" --tool memcheck --error-exitcode 9 "$BIN/test_cuda_attention"
  step memcheck-integrator 120 "$SAN" --tool memcheck --error-exitcode 9 "$BIN/test_cuda_integrator"
  step memcheck-pyramid 120 "$SAN" --tool memcheck --error-exitcode 9 "$BIN/test_cuda_pyramid"
  step racecheck-attention 240 "$SAN" --tool racecheck --error-exitcode 9 "$BIN/test_cuda_attention"
  unset DECOFLOW_TEST_SMALL DECOFLOW_CUDA_EXACT_ALLOC
else
  note "SKIP  compute-sanitizer: not found"
fi

# 3. The CPU-only ctests, built here with -march=native (CI runs them on its own machine too).
step ctest 300 ctest --test-dir "$BUILD" --output-on-failure -j 8 -E '^test_cuda_|^test_backend_ops$|^test_model_backends$'

# 4. The dev/cuda ladder (each checks itself and prints its timings).
for exe in "$BIN"/dev/dev_attention_*; do
  [ -x "$exe" ] || continue
  step "$(basename "$exe")" 120 "$exe"
done

# 5. Benchmark against PyTorch SDPA on this card, same run.
step bench-decoflow 180 "$BIN/bench_cuda_attention" --json "$OUT/bench_decoflow.json"
step bench-pyramid 120 "$BIN/bench_cuda_pyramid" --json "$OUT/bench_pyramid.json" --md "$OUT/bench_pyramid.md"
if "$PY" -c "import torch; assert torch.cuda.is_available()" > /dev/null 2>&1; then
  step bench-torch 240 "$PY" bench/cuda/attention_torch.py --json "$OUT/bench_torch.json"
  step bench-torch-flash 240 "$PY" bench/cuda/attention_torch.py --backend flash --json "$OUT/bench_torch_flash.json"
  if [ -f "$OUT/bench_decoflow.json" ] && [ -f "$OUT/bench_torch.json" ]; then
    extra=""
    [ -f "$OUT/bench_torch_flash.json" ] && extra="$OUT/bench_torch_flash.json"
    "$PY" bench/cuda/report.py "$OUT/bench_decoflow.json" "$OUT/bench_torch.json" $extra > "$OUT/bench_report.md" 2>&1
    [ -n "$extra" ] && "$PY" bench/cuda/report.py "$OUT/bench_decoflow.json" "$extra" > "$OUT/bench_report_flash.md" 2>&1
  fi
else
  note "SKIP  bench-torch: PyTorch with CUDA not importable by $PY"
fi

echo
echo "==================== summary ===================="
cat "$SUMMARY"
for f in test_backend_ops test_model_backends test_cuda_attention test_cuda_integrator test_cuda_runtime test_cuda_pyramid node-check; do
  [ -f "$OUT/$f.log" ] && { echo "--- $f"; tail -4 "$OUT/$f.log"; }
done
[ -f "$OUT/bench-decoflow.log" ] && { echo "--- decoflow bench"; cat "$OUT/bench-decoflow.log"; }
[ -f "$OUT/bench_report.md" ] && { echo "--- vs PyTorch SDPA (default)"; cat "$OUT/bench_report.md"; }
[ -f "$OUT/bench_report_flash.md" ] && { echo "--- vs PyTorch SDPA (flash)"; cat "$OUT/bench_report_flash.md"; }
[ -f "$OUT/bench_pyramid.md" ] && { echo "--- pyramid bench (vs D2D copy)"; cat "$OUT/bench_pyramid.md"; }
for exe in "$OUT"/dev_attention_*.log; do [ -f "$exe" ] && { echo "--- $(basename "$exe")"; tail -15 "$exe"; }; done
# The end of each failing step's log, so the caller's output shows why without unpacking logs.tar.gz.
for name in $(sed -n 's/^FAIL  \([^ ]*\) .*/\1/p' "$SUMMARY"); do
  echo "--- FAIL $name (last 25 lines)"; tail -25 "$OUT/$name.log"
done
note "total $(( $(date +%s) - start ))s, $failures failing step(s)"
[ $failures -eq 0 ]

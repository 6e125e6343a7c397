// Flash attention on CUDA: argument checks and launches of the kernels in attention_kernels.cuh.
// Forward: one kernel. Backward: D = rowsum(dO * O) (and dq_accum zeroed), the main kernel over key
// blocks (dK, dV written, dQ accumulated in f32 with atomics), then dq = scale * dq_accum.
#include <cmath>
#include <cstdint>
#include <string>

#include "attention_kernels.cuh"
#include "common.cuh"

namespace dfcuda {

namespace {

// Tile choices of the mainline (the ladder in dev/cuda times the alternatives).
constexpr int kForwardWarps = 4;    // 64 queries per CTA
constexpr int kBackwardQueries = 64;  // queries per tile of the backward

int invalid(const char* fn, const std::string& what) { return set_error(DF_CUDA_INVALID, std::string(fn) + ": " + what); }

bool aligned16(const void* p) { return p && reinterpret_cast<uintptr_t>(p) % 16 == 0; }

int check_args(const char* fn, int dtype, const DfCudaAttentionShape* s, float scale,
               std::initializer_list<std::pair<const char*, const void*>> pointers) {
  if (!s) return invalid(fn, "shape: expected a pointer, got null");
  if (s->batch < 1 || s->heads < 1 || s->nq < 1 || s->nk < 1)
    return invalid(fn, "shape: expected positive batch, heads, nq and nk");
  if (s->dim != 32 && s->dim != 64 && s->dim != 128)
    return invalid(fn, "dim: expected 32, 64 or 128 (the CUDA kernels' head dims), got " + std::to_string(s->dim));
  if (dtype != DF_CUDA_BF16 && dtype != DF_CUDA_F16)
    return invalid(fn, "dtype: expected f16 or bf16 (f32 attention runs on the CPU), got code " + std::to_string(dtype));
  if (!std::isfinite(scale)) return invalid(fn, "scale: expected a finite number");
  const int64_t limit = int64_t(1) << 40;  // elements per tensor: far beyond any GPU's memory
  if (s->batch * s->heads > INT32_MAX || s->batch * s->heads * s->nq > limit / s->dim ||
      s->batch * s->heads * s->nk > limit / s->dim)
    return invalid(fn, "shape: too large");
  if ((s->nq + 63) / 64 > 65535 || (s->nk + 63) / 64 > 65535)
    return invalid(fn, "shape: nq and nk must be at most 65535 * 64");
  for (auto& ptr : pointers)
    if (!aligned16(ptr.second)) return invalid(fn, std::string(ptr.first) + ": expected a 16-byte aligned device pointer");
  return DF_CUDA_OK;
}

AttentionParams make_params(const DfCudaAttentionShape* s, float scale, int causal) {
  AttentionParams p{};
  p.nq = s->nq;
  p.nk = s->nk;
  p.offset = s->nk - s->nq;
  p.scale = scale;
  p.scale_log2 = scale * kLog2e;
  p.causal = causal ? 1 : 0;
  return p;
}

template <class T, int D>
int launch_forward(const AttentionParams& p, int64_t heads, cudaStream_t stream) {
  using Tile = ForwardTile<D, kForwardWarps>;
  auto kernel = attention_forward_kernel<T, D, kForwardWarps>;
  const size_t smem = Tile::template smem_bytes<T>();
  DF_CUDA_TRY(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
  const dim3 grid(unsigned(heads), unsigned((p.nq + Tile::kBr - 1) / Tile::kBr));
  kernel<<<grid, Tile::kThreads, smem, stream>>>(p);
  DF_CUDA_LAUNCHED("attention_forward_kernel");
  return DF_CUDA_OK;
}

template <class T, int D>
int launch_backward(AttentionParams p, int device, int64_t heads, cudaStream_t stream) {
  using Tile = BackwardTile<D, kBackwardQueries>;
  const int64_t rows = heads * p.nq;
  Scratch scratch(device);  // dq_accum [rows, D] then delta [rows], f32
  DF_STATUS_TRY(scratch.alloc(size_t(rows) * (D + 1) * sizeof(float)));
  p.dq_accum = scratch.get<float>();
  p.delta = p.dq_accum + rows * D;
  DF_CUDA_TRY(cudaMemsetAsync(p.dq_accum, 0, size_t(rows) * D * sizeof(float), stream));

  attention_backward_delta_kernel<T, D><<<unsigned((rows + 7) / 8), 256, 0, stream>>>(
      static_cast<const T*>(p.o), static_cast<const T*>(p.d_o), const_cast<float*>(p.delta), rows);
  DF_CUDA_LAUNCHED("attention_backward_delta_kernel");

  auto kernel = attention_backward_kernel<T, D, kBackwardQueries>;
  const size_t smem = Tile::template smem_bytes<T>();
  DF_CUDA_TRY(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
  const dim3 grid(unsigned(heads), unsigned((p.nk + Tile::kBc - 1) / Tile::kBc));
  kernel<<<grid, Tile::kThreads, smem, stream>>>(p);
  DF_CUDA_LAUNCHED("attention_backward_kernel");

  const int64_t n = rows * D;
  const unsigned blocks = unsigned(std::min<int64_t>((n + 255) / 256, 1 << 16));
  attention_backward_dq_kernel<T><<<blocks, 256, 0, stream>>>(p.dq_accum, static_cast<T*>(p.out), p.scale, n);
  DF_CUDA_LAUNCHED("attention_backward_dq_kernel");
  return DF_CUDA_OK;  // scratch goes back to the cache: stream-ordered, see common.cuh
}

// The launcher for a runtime dtype and dim (both already checked).
template <template <class, int> class L>
auto pick(int dtype, int64_t dim) {
  if (dtype == DF_CUDA_BF16) return dim == 32 ? L<__nv_bfloat16, 32>::run : dim == 64 ? L<__nv_bfloat16, 64>::run : L<__nv_bfloat16, 128>::run;
  return dim == 32 ? L<__half, 32>::run : dim == 64 ? L<__half, 64>::run : L<__half, 128>::run;
}
template <class T, int D>
struct Forward {
  static int run(const AttentionParams& p, int, int64_t heads, cudaStream_t s) { return launch_forward<T, D>(p, heads, s); }
};
template <class T, int D>
struct Backward {
  static int run(const AttentionParams& p, int device, int64_t heads, cudaStream_t s) {
    return launch_backward<T, D>(p, device, heads, s);
  }
};

}  // namespace

int attention_forward(int device, int dtype, const void* q, const void* k, const void* v, void* o, float* lse,
                      const DfCudaAttentionShape* s, float scale, int causal) {
  const char* fn = "attention_forward";
  DF_STATUS_TRY(check_args(fn, dtype, s, scale, {{"q", q}, {"k", k}, {"v", v}, {"o", o}}));
  if (!lse) return invalid(fn, "lse: expected a device pointer, got null");
  cudaStream_t stream;
  DF_STATUS_TRY(stream_for(device, &stream));
  AttentionParams p = make_params(s, scale, causal);
  p.q = q, p.k = k, p.v = v, p.out = o, p.lse = lse;
  const int64_t heads = s->batch * s->heads;
  return pick<Forward>(dtype, s->dim)(p, device, heads, stream);
}

int attention_backward(int device, int dtype, const void* q, const void* k, const void* v, const void* o,
                       const float* lse, const void* d_o, void* dq, void* dk, void* dv,
                       const DfCudaAttentionShape* s, float scale, int causal) {
  const char* fn = "attention_backward";
  DF_STATUS_TRY(check_args(fn, dtype, s, scale,
                           {{"q", q}, {"k", k}, {"v", v}, {"o", o}, {"dO", d_o}, {"dq", dq}, {"dk", dk}, {"dv", dv}}));
  if (!lse) return invalid(fn, "lse: expected a device pointer, got null");
  cudaStream_t stream;
  DF_STATUS_TRY(stream_for(device, &stream));
  AttentionParams p = make_params(s, scale, causal);
  p.q = q, p.k = k, p.v = v, p.o = o, p.d_o = d_o, p.lse_in = lse, p.out = dq, p.dk = dk, p.dv = dv;
  const int64_t heads = s->batch * s->heads;
  return pick<Backward>(dtype, s->dim)(p, device, heads, stream);
}

}  // namespace dfcuda

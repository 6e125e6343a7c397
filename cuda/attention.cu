// Flash attention on CUDA for tensors (the C ABI's entry points): argument checks, then the launch
// sequences of attention_kernels.cuh (the op backend runs the same ones).
#include <cmath>
#include <cstdint>
#include <string>

#include "attention_kernels.cuh"
#include "common.cuh"
#include "stream_launch.cuh"

namespace dfcuda {

namespace {

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

// Runs a launch sequence on the device's stream; failures become the C ABI's statuses.
template <class F>
int on_stream(int device, F&& f) {
  try {
    StreamLaunch l(device);
    f(l);
    return DF_CUDA_OK;
  } catch (const df::Error& e) {
    return set_error(status_of(e), e.what());
  }
}

template <class F>
void by_dtype(int dtype, F&& f) {
  if (dtype == DF_CUDA_BF16) f(__nv_bfloat16{});
  else f(__half{});
}

}  // namespace

int attention_forward(int device, int dtype, const void* q, const void* k, const void* v, void* o, float* lse,
                      const DfCudaAttentionShape* s, float scale, int causal) {
  const char* fn = "attention_forward";
  DF_STATUS_TRY(check_args(fn, dtype, s, scale, {{"q", q}, {"k", k}, {"v", v}, {"o", o}}));
  if (!lse) return invalid(fn, "lse: expected a device pointer, got null");
  AttentionParams p = make_attention_params(s->nq, s->nk, scale, causal);
  p.q = q, p.k = k, p.v = v, p.out = o, p.lse = lse;
  return on_stream(device, [&](StreamLaunch& l) {
    by_dtype(dtype, [&](auto t) { run_attention_forward_tiles<decltype(t)>(l, p, s->batch * s->heads, s->dim); });
  });
}

int attention_backward(int device, int dtype, const void* q, const void* k, const void* v, const void* o,
                       const float* lse, const void* d_o, void* dq, void* dk, void* dv,
                       const DfCudaAttentionShape* s, float scale, int causal) {
  const char* fn = "attention_backward";
  DF_STATUS_TRY(check_args(fn, dtype, s, scale,
                           {{"q", q}, {"k", k}, {"v", v}, {"o", o}, {"dO", d_o}, {"dq", dq}, {"dk", dk}, {"dv", dv}}));
  if (!lse) return invalid(fn, "lse: expected a device pointer, got null");
  AttentionParams p = make_attention_params(s->nq, s->nk, scale, causal);
  p.q = q, p.k = k, p.v = v, p.o = o, p.d_o = d_o, p.lse_in = lse, p.out = dq, p.dk = dk, p.dv = dv;
  return on_stream(device, [&](StreamLaunch& l) {
    by_dtype(dtype, [&](auto t) { run_attention_backward_tiles<decltype(t)>(l, p, s->batch * s->heads, s->dim); });
  });
}

}  // namespace dfcuda

// Flash attention on the CPU (FlashAttention-2's algorithm): tiles of queries against tiles of
// keys with an online softmax, so the N x N matrix never exists; the per-row log-sum-exp is saved
// for the backward pass, which recomputes P tile by tile.
// Layout: q [B, H, Nq, D], k and v [B, H, Nk, D], o [B, H, Nq, D], lse [B, H, Nq], all f32,
// contiguous. `causal` masks key j > query i (aligned at the end when Nq != Nk, as PyTorch's
// is_causal with Nq == Nk). The model calls the raw-pointer forms directly.
// A query that sees no key (causal with nq > nk) gets o = 0, lse = -inf and zero gradients.
// Scratch memory is O(tile) per thread plus O(N) per call (never N x N), taken from the tensor
// allocator so that memory() counts it; results are the same bits for any thread count.
#pragma once
#include <cstdint>

#include "../core/tensor.h"

namespace df {

struct AttentionShape {
  int64_t batch = 1, heads = 1, nq = 1, nk = 1, dim = 1;
};

constexpr int64_t kMaxAttentionDim = 256;

#ifdef DF_CPU_NS  // the CPU kernels: compiled once per CPU level and seen only there (cpu_level.h)
inline namespace DF_CPU_NS {

void attention_forward(const float* q, const float* k, const float* v, float* o, float* lse,
                       const AttentionShape& s, float scale, bool causal);

// dq, dk, dv are overwritten (not accumulated).
void attention_backward(const float* q, const float* k, const float* v, const float* o, const float* lse,
                        const float* d_o, float* dq, float* dk, float* dv, const AttentionShape& s, float scale,
                        bool causal);

}  // namespace DF_CPU_NS
#endif  // DF_CPU_NS

// Tensor forms: check shapes, dtypes and devices (naming each argument), allocate outputs.
struct AttentionOutput {
  Tensor o, lse;
};
struct AttentionGrads {
  Tensor dq, dk, dv;
};
AttentionOutput attention(const Tensor& q, const Tensor& k, const Tensor& v, float scale, bool causal);
AttentionGrads attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& o,
                                  const Tensor& lse, const Tensor& d_o, float scale, bool causal);

}  // namespace df

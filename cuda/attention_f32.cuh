// Attention in f32 on CUDA, for the backend's f32 policy (checked tightly against the CPU; the
// mixed-precision policy uses the tensor-core flash kernels of attention_kernels.cuh). Plain f32
// arithmetic without tensor cores: one warp per query row for the forward (online softmax, the
// row's accumulator spread over the lanes, D <= 256) and for dQ, one warp per key row for dK and
// dV, each recomputing P from the saved log-sum-exp; no atomics, so results are reproducible.
// Layout and causal alignment as native/ops/attention.h: q, o [heads, nq, D], k, v [heads, nk, D],
// lse [heads, nq] (natural log), key j visible to query i when j <= i + (nk - nq).
#pragma once
#include <cmath>

#include "launch.cuh"
#include "norm.cuh"  // warp_sum

namespace dfcuda {

constexpr int kAttnF32Lanes = 8;  // elements of a row per lane: D <= 32 * 8

// Keys visible to query i.
__device__ __forceinline__ int64_t visible_keys(int64_t i, int64_t nq, int64_t nk, bool causal) {
  if (!causal) return nk;
  const int64_t v = i + nk - nq + 1;
  return v < 0 ? 0 : v > nk ? nk : v;
}

__device__ __forceinline__ float dot_row(const float* a, const float* b, int64_t D, int lane) {
  float s = 0.f;
  for (int64_t d = lane; d < D; d += 32) s += a[d] * b[d];
  return warp_sum(s);
}

DF_KERNEL void attention_f32_forward_kernel(const float* q, const float* k, const float* v, float* o, float* lse,
                                             int64_t heads, int64_t nq, int64_t nk, int64_t D, float scale, bool causal) {
  const int64_t row = int64_t(blockIdx.x) * kRowsPerBlock + threadIdx.x / 32;
  const int lane = int(threadIdx.x % 32);
  if (row >= heads * nq) return;
  const int64_t h = row / nq, i = row % nq, n = visible_keys(i, nq, nk, causal);
  const float* qi = q + row * D;
  const float* kh = k + h * nk * D;
  const float* vh = v + h * nk * D;
  float acc[kAttnF32Lanes];
  for (int e = 0; e < kAttnF32Lanes; e++) acc[e] = 0.f;
  float m = -INFINITY, l = 0.f;
  for (int64_t j = 0; j < n; j++) {
    const float s = dot_row(qi, kh + j * D, D, lane) * scale;
    const float m_new = fmaxf(m, s);
    const float corr = expf(m - m_new), p = expf(s - m_new);
    l = l * corr + p;
    for (int e = 0; e < kAttnF32Lanes; e++) {
      const int64_t d = lane + 32 * e;
      if (d < D) acc[e] = acc[e] * corr + p * vh[j * D + d];
    }
    m = m_new;
  }
  for (int e = 0; e < kAttnF32Lanes; e++) {
    const int64_t d = lane + 32 * e;
    if (d < D) o[row * D + d] = n > 0 ? acc[e] / l : 0.f;
  }
  if (lane == 0) lse[row] = n > 0 ? m + logf(l) : -INFINITY;
}

// delta_i = rowsum(dO_i * O_i).
DF_KERNEL void attention_f32_delta_kernel(const float* o, const float* d_o, float* delta, int64_t rows, int64_t D) {
  const int64_t row = int64_t(blockIdx.x) * kRowsPerBlock + threadIdx.x / 32;
  if (row >= rows) return;
  const float s = dot_row(o + row * D, d_o + row * D, D, int(threadIdx.x % 32));
  if (threadIdx.x % 32 == 0) delta[row] = s;
}

// dq_i = scale sum_j P_ij (dP_ij - delta_i) k_j with P_ij = exp(s_ij - lse_i), dP_ij = dO_i . v_j.
DF_KERNEL void attention_f32_dq_kernel(const float* q, const float* k, const float* v, const float* lse,
                                        const float* d_o, const float* delta, float* dq, int64_t heads, int64_t nq,
                                        int64_t nk, int64_t D, float scale, bool causal) {
  const int64_t row = int64_t(blockIdx.x) * kRowsPerBlock + threadIdx.x / 32;
  const int lane = int(threadIdx.x % 32);
  if (row >= heads * nq) return;
  const int64_t h = row / nq, i = row % nq, n = visible_keys(i, nq, nk, causal);
  const float* kh = k + h * nk * D;
  const float* vh = v + h * nk * D;
  float acc[kAttnF32Lanes];
  for (int e = 0; e < kAttnF32Lanes; e++) acc[e] = 0.f;
  for (int64_t j = 0; j < n; j++) {
    const float p = expf(dot_row(q + row * D, kh + j * D, D, lane) * scale - lse[row]);
    const float ds = p * (dot_row(d_o + row * D, vh + j * D, D, lane) - delta[row]);
    for (int e = 0; e < kAttnF32Lanes; e++) {
      const int64_t d = lane + 32 * e;
      if (d < D) acc[e] += ds * kh[j * D + d];
    }
  }
  for (int e = 0; e < kAttnF32Lanes; e++) {
    const int64_t d = lane + 32 * e;
    if (d < D) dq[row * D + d] = scale * acc[e];
  }
}

// dk_j = scale sum_i P_ij (dP_ij - delta_i) q_i and dv_j = sum_i P_ij dO_i over the queries that see j.
DF_KERNEL void attention_f32_dkdv_kernel(const float* q, const float* k, const float* v, const float* lse,
                                          const float* d_o, const float* delta, float* dk, float* dv, int64_t heads,
                                          int64_t nq, int64_t nk, int64_t D, float scale, bool causal) {
  const int64_t krow = int64_t(blockIdx.x) * kRowsPerBlock + threadIdx.x / 32;
  const int lane = int(threadIdx.x % 32);
  if (krow >= heads * nk) return;
  const int64_t h = krow / nk, j = krow % nk;
  const int64_t first = causal ? (j - (nk - nq) > 0 ? j - (nk - nq) : 0) : 0;  // the first query that sees key j
  float ak[kAttnF32Lanes], av[kAttnF32Lanes];
  for (int e = 0; e < kAttnF32Lanes; e++) ak[e] = av[e] = 0.f;
  for (int64_t i = first; i < nq; i++) {
    const int64_t r = h * nq + i;
    const float p = expf(dot_row(q + r * D, k + krow * D, D, lane) * scale - lse[r]);
    const float ds = p * (dot_row(d_o + r * D, v + krow * D, D, lane) - delta[r]);
    for (int e = 0; e < kAttnF32Lanes; e++) {
      const int64_t d = lane + 32 * e;
      if (d < D) {
        ak[e] += ds * q[r * D + d];
        av[e] += p * d_o[r * D + d];
      }
    }
  }
  for (int e = 0; e < kAttnF32Lanes; e++) {
    const int64_t d = lane + 32 * e;
    if (d < D) dk[krow * D + d] = scale * ak[e], dv[krow * D + d] = av[e];
  }
}

// ---- host sequences (s: df::AttentionShape) ----

inline unsigned warp_rows_grid(int64_t rows) { return unsigned((rows + kRowsPerBlock - 1) / kRowsPerBlock); }

template <class L, class S>
void run_attention_f32_forward(L& l, const float* q, const float* k, const float* v, float* o, float* lse, const S& s,
                               float scale, bool causal) {
  const int64_t heads = s.batch * s.heads;
  l.launch(attention_f32_forward_kernel, dim3(warp_rows_grid(heads * s.nq)), kThreads, 0, q, k, v, o, lse, heads, s.nq,
           s.nk, s.dim, scale, causal);
}

template <class L, class S>
void run_attention_f32_backward(L& l, const float* q, const float* k, const float* v, const float* o, const float* lse,
                                const float* d_o, float* dq, float* dk, float* dv, const S& s, float scale, bool causal) {
  const int64_t heads = s.batch * s.heads, rows = heads * s.nq;
  auto delta = l.scratch(size_t(rows) * sizeof(float));
  float* dl = static_cast<float*>(delta.get());
  l.launch(attention_f32_delta_kernel, dim3(warp_rows_grid(rows)), kThreads, 0, o, d_o, dl, rows, s.dim);
  l.launch(attention_f32_dq_kernel, dim3(warp_rows_grid(rows)), kThreads, 0, q, k, v, lse, d_o, static_cast<const float*>(dl),
           dq, heads, s.nq, s.nk, s.dim, scale, causal);
  l.launch(attention_f32_dkdv_kernel, dim3(warp_rows_grid(heads * s.nk)), kThreads, 0, q, k, v, lse, d_o,
           static_cast<const float*>(dl), dk, dv, heads, s.nq, s.nk, s.dim, scale, causal);
}

}  // namespace dfcuda

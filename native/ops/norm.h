// LayerNorm without affine parameters fused with adaLN's modulation (DiT):
//   y[b, n, :] = (x - mean) * rstd * (1 + scale[b, :]) + shift[b, :]
// x is [B, N, D] (rows of D), shift and scale are one row per batch element read with a row stride
// (they are chunks of the adaLN output [B, k * D]). mean and rstd ([B * N]) are saved for backward.
#pragma once
#include <cstdint>

namespace df {

struct ModulatedNormShape {
  int64_t batch = 1, tokens = 1, dim = 1;
  int64_t mod_stride = 0;  // distance between batch rows of shift/scale (and of their gradients)
  float eps = 1e-6f;
};

#ifdef DF_CPU_NS  // the CPU kernels: compiled once per CPU level and seen only there (cpu_level.h)
inline namespace DF_CPU_NS {

void layernorm_modulate_forward(const float* x, const float* shift, const float* scale, float* y, float* mean,
                                float* rstd, const ModulatedNormShape& s);

// dx is overwritten, or added to when `accumulate_dx` (the residual stream's gradient);
// dshift and dscale are overwritten (per batch row, summed over tokens).
void layernorm_modulate_backward(const float* x, const float* scale, const float* mean, const float* rstd,
                                 const float* dy, float* dx, float* dshift, float* dscale,
                                 const ModulatedNormShape& s, bool accumulate_dx);

}  // namespace DF_CPU_NS
#endif  // DF_CPU_NS

}  // namespace df

namespace df {

// adaLN-Zero's gated residual: out[b, n, :] = x[b, n, :] + gate[b, :] * y[b, n, :] (gate rows read
// with stride s.mod_stride). out may alias x.
#ifdef DF_CPU_NS  // the CPU kernels: compiled once per CPU level and seen only there (cpu_level.h)
inline namespace DF_CPU_NS {

void gated_residual_forward(const float* x, const float* y, const float* gate, float* out,
                            const ModulatedNormShape& s);
// Given dout: dy = gate * dout (overwritten) and dgate[b, :] = sum_n dout * y (overwritten); the
// gradient of x is dout itself, so the caller keeps using dout for it.
void gated_residual_backward(const float* y, const float* gate, const float* dout, float* dy, float* dgate,
                             const ModulatedNormShape& s);

}  // namespace DF_CPU_NS
#endif  // DF_CPU_NS

}  // namespace df

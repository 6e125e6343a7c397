// The DFM loss for one stage: a masked mean squared error,
//   L_s = (1 / (B * n)) * sum_b w[b] * sum_i (g[b, i] - v[b, i])^2,
// with n the elements per sample and w[b] = 0 for samples whose stage is masked (1 otherwise).
// Summed over stages this is the training loss of docs/METHOD.md: per sample, the mean error of each active stage,
// added over stages, then averaged over the batch.
#pragma once
#include <cstdint>

namespace df {

#ifdef DF_CPU_NS  // the CPU kernels: compiled once per CPU level and seen only there (cpu_level.h)
inline namespace DF_CPU_NS {

// Returns L_s (accumulated in double, per sample in order: the same on any thread count) and, when
// dg is not null, writes dL_s/dg = 2 w[b] (g - v) / (B * n) (zero for masked samples).
double masked_mse_forward_backward(const float* g, const float* v, const float* weight, int64_t weight_stride,
                                   int64_t batch, int64_t n, float* dg);

}  // namespace DF_CPU_NS
#endif  // DF_CPU_NS

}  // namespace df

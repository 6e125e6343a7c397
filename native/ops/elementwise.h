// Small elementwise ops of the model, between the big kernels: summing conditioning embeddings,
// broadcasting the position embedding over a batch, and masking or scaling per sample.
#pragma once
#include <cstdint>

namespace df {

#ifdef DF_CPU_NS  // the CPU kernels: compiled once per CPU level and seen only there (cpu_level.h)
inline namespace DF_CPU_NS {

// y += x
void add(const float* x, float* y, int64_t n);

// out[r, :] = row for r < rows.
void broadcast_rows(const float* row, float* out, int64_t rows, int64_t cols);

}  // namespace DF_CPU_NS
#endif  // DF_CPU_NS

// Per-sample scalars: x and y are [batch, per_sample], the scalar of sample b is scale[b * stride].
struct RowScaleShape {
  int64_t batch = 1, per_sample = 1, stride = 1;
};
#ifdef DF_CPU_NS  // the CPU kernels: compiled once per CPU level and seen only there (cpu_level.h)
inline namespace DF_CPU_NS {

// y[b, :] += scale_b * x[b, :], skipping the samples whose scale is 0 (their x is not read: a masked
// stage's tokens may be anything).
void add_scaled_rows(const float* x, float* y, const float* scale, const RowScaleShape& s);
// y[b, :] = scale_b * x[b, :]
void scale_rows(const float* x, float* y, const float* scale, const RowScaleShape& s);

}  // namespace DF_CPU_NS
#endif  // DF_CPU_NS

}  // namespace df

#include "elementwise.h"

#include <cstring>

#include "../core/threadpool.h"

namespace df {
inline namespace DF_CPU_NS {  // compiled once per CPU level (cpu_level.h)

namespace {
constexpr int64_t kGrain = 1 << 14;
}  // namespace

void add(const float* x, float* y, int64_t n) {
  parallel_for(n, kGrain, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; i++) y[i] += x[i];
  });
}

void broadcast_rows(const float* row, float* out, int64_t rows, int64_t cols) {
  parallel_for(rows, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; r++) std::memcpy(out + r * cols, row, size_t(cols) * sizeof(float));
  });
}

// Calls fn(scale, x row, y row) for every sample.
template <class F>
void for_each_sample(const float* x, float* y, const float* scale, const RowScaleShape& s, F&& fn) {
  parallel_for(s.batch, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t b = lo; b < hi; b++) fn(scale[b * s.stride], x + b * s.per_sample, y + b * s.per_sample);
  });
}

void add_scaled_rows(const float* x, float* y, const float* scale, const RowScaleShape& s) {
  for_each_sample(x, y, scale, s, [&](float m, const float* xb, float* yb) {
    if (m != 0.f)
      for (int64_t i = 0; i < s.per_sample; i++) yb[i] += m * xb[i];
  });
}

void scale_rows(const float* x, float* y, const float* scale, const RowScaleShape& s) {
  for_each_sample(x, y, scale, s, [&](float m, const float* xb, float* yb) {
    for (int64_t i = 0; i < s.per_sample; i++) yb[i] = m * xb[i];
  });
}

}  // namespace DF_CPU_NS
}  // namespace df

#include "loss.h"

#include <vector>

#include "../core/threadpool.h"

namespace df {
inline namespace DF_CPU_NS {  // compiled once per CPU level (cpu_level.h)

double masked_mse_forward_backward(const float* g, const float* v, const float* weight, int64_t weight_stride,
                                   int64_t batch, int64_t n, float* dg) {
  thread_local std::vector<double> scratch;  // grows once: no allocation per step
  scratch.assign(size_t(batch), 0.0);
  std::vector<double>& per_sample = scratch;  // the caller's, also inside pool threads
  const double norm = 1.0 / (double(batch) * double(n));
  const float grad_scale = float(2.0 * norm);
  parallel_for(batch, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t b = lo; b < hi; b++) {
      float w = weight[b * weight_stride];
      const float* gb = g + b * n;
      const float* vb = v + b * n;
      double acc = 0.0;
      if (w != 0.f)
        for (int64_t i = 0; i < n; i++) {
          double d = double(gb[i]) - double(vb[i]);
          acc += d * d;
        }
      per_sample[size_t(b)] = double(w) * acc;
      if (dg) {
        float* db = dg + b * n;
        float k = grad_scale * w;
        for (int64_t i = 0; i < n; i++) db[i] = w != 0.f ? k * (gb[i] - vb[i]) : 0.f;
      }
    }
  });
  double total = 0.0;
  for (double x : per_sample) total += x;
  return total * norm;
}

}  // namespace DF_CPU_NS
}  // namespace df

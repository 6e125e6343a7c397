#include "optimizer.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "../core/error.h"
#include "../core/threadpool.h"

namespace df {
inline namespace DF_CPU_NS {  // compiled once per CPU level (cpu_level.h)

namespace {
constexpr int64_t kGrain = 1 << 14;
}  // namespace

double global_grad_norm(const float* g, int64_t n) {
  const int64_t blocks = (n + kGrain - 1) / kGrain;
  thread_local std::vector<double> scratch;  // grows once: no allocation per step
  scratch.assign(size_t(blocks), 0.0);
  std::vector<double>& partial = scratch;  // the caller's, also inside pool threads
  parallel_for(blocks, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t blk = lo; blk < hi; blk++) {
      int64_t i0 = blk * kGrain, i1 = std::min(n, i0 + kGrain);
      double acc = 0.0;
      for (int64_t i = i0; i < i1; i++) acc += double(g[i]) * double(g[i]);
      partial[size_t(blk)] = acc;
    }
  });
  double total = 0.0;
  for (double x : partial) total += x;
  return std::sqrt(total);
}

void adamw_update(float* p, const float* g, float* m, float* v, int64_t n, int64_t step, double lr,
                  const AdamWOptions& o, float grad_scale, float* ema) {
  const float ema_d = float(o.ema_decay), ema_r = float(1.0 - o.ema_decay);
  const float b1 = float(o.beta1), b2 = float(o.beta2), eps = float(o.eps);
  const float decay = float(1.0 - lr * o.weight_decay);
  const double bc1 = 1.0 - std::pow(o.beta1, double(step));
  const double bc2 = 1.0 - std::pow(o.beta2, double(step));
  const float step_size = float(lr / bc1);
  const float sqrt_bc2 = float(std::sqrt(bc2));
  parallel_for(n, kGrain, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; i++) {
      float gi = g[i] * grad_scale;
      float mi = b1 * m[i] + (1.f - b1) * gi;
      float vi = b2 * v[i] + (1.f - b2) * gi * gi;
      m[i] = mi;
      v[i] = vi;
      // The same operation order as torch.optim.AdamW (single-tensor path).
      float denom = std::sqrt(vi) / sqrt_bc2 + eps;
      float pi = p[i] * decay - step_size * (mi / denom);
      p[i] = pi;
      if (ema) ema[i] = ema_d * ema[i] + ema_r * pi;
    }
  });
}

void ema_update(float* ema, const float* p, int64_t n, double decay) {
  const float d = float(decay), r = float(1.0 - decay);
  parallel_for(n, kGrain, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; i++) ema[i] = d * ema[i] + r * p[i];
  });
}

}  // namespace DF_CPU_NS
}  // namespace df

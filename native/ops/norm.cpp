#include "norm.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "../core/threadpool.h"

namespace df {
inline namespace DF_CPU_NS {  // compiled once per CPU level (cpu_level.h)

void layernorm_modulate_forward(const float* x, const float* shift, const float* scale, float* y, float* mean,
                                float* rstd, const ModulatedNormShape& s) {
  const int64_t D = s.dim, rows = s.batch * s.tokens;
  parallel_for(rows, 16, [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; r++) {
      const float* xr = x + r * D;
      int64_t b = r / s.tokens;
      const float* sh = shift + b * s.mod_stride;
      const float* sc = scale + b * s.mod_stride;
      // Mean first, then the variance of the centred row (two passes: stable for large means).
      float sum = 0.f;
      for (int64_t d = 0; d < D; d++) sum += xr[d];
      float mu = sum / float(D);
      float var = 0.f;
      for (int64_t d = 0; d < D; d++) {
        float c = xr[d] - mu;
        var += c * c;
      }
      float rs = 1.f / std::sqrt(var / float(D) + s.eps);
      mean[r] = mu;
      rstd[r] = rs;
      float* yr = y + r * D;
      for (int64_t d = 0; d < D; d++) yr[d] = (xr[d] - mu) * rs * (1.f + sc[d]) + sh[d];
    }
  });
}

void layernorm_modulate_backward(const float* x, const float* scale, const float* mean, const float* rstd,
                                 const float* dy, float* dx, float* dshift, float* dscale,
                                 const ModulatedNormShape& s, bool accumulate_dx) {
  const int64_t D = s.dim, N = s.tokens, rows = s.batch * N;
  // dx per row: with g = dy * (1 + scale) the gradient w.r.t. the normalised row xhat,
  //   dx = rstd * (g - mean(g) - xhat * mean(g * xhat)).
  parallel_for(rows, 16, [&](int64_t lo, int64_t hi) {
    thread_local std::vector<float> g;  // grows once per thread: no allocation per step
    g.resize(static_cast<size_t>(D));
    for (int64_t r = lo; r < hi; r++) {
      const float* xr = x + r * D;
      const float* dyr = dy + r * D;
      const float* sc = scale + (r / N) * s.mod_stride;
      float mu = mean[r], rs = rstd[r];
      float sum_g = 0.f, sum_gx = 0.f;
      for (int64_t d = 0; d < D; d++) {
        float gd = dyr[d] * (1.f + sc[d]);
        g[d] = gd;
        sum_g += gd;
        sum_gx += gd * (xr[d] - mu) * rs;
      }
      float mg = sum_g / float(D), mgx = sum_gx / float(D);
      float* dxr = dx + r * D;
      for (int64_t d = 0; d < D; d++) {
        float v = rs * (g[d] - mg - (xr[d] - mu) * rs * mgx);
        dxr[d] = accumulate_dx ? dxr[d] + v : v;
      }
    }
  });
  // dshift = sum_n dy, dscale = sum_n dy * xhat: per (batch row, column block), tokens in order, so
  // the result does not depend on the thread count.
  constexpr int64_t kCols = 64;
  const int64_t col_blocks = (D + kCols - 1) / kCols;
  parallel_for(s.batch * col_blocks, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t task = lo; task < hi; task++) {
      int64_t b = task / col_blocks, c0 = (task % col_blocks) * kCols, c1 = std::min(D, c0 + kCols);
      float acc_sh[kCols] = {}, acc_sc[kCols] = {};
      for (int64_t n = 0; n < N; n++) {
        int64_t r = b * N + n;
        const float* xr = x + r * D;
        const float* dyr = dy + r * D;
        float mu = mean[r], rs = rstd[r];
        for (int64_t d = c0; d < c1; d++) {
          acc_sh[d - c0] += dyr[d];
          acc_sc[d - c0] += dyr[d] * (xr[d] - mu) * rs;
        }
      }
      for (int64_t d = c0; d < c1; d++) {
        dshift[b * s.mod_stride + d] = acc_sh[d - c0];
        dscale[b * s.mod_stride + d] = acc_sc[d - c0];
      }
    }
  });
}

}  // namespace DF_CPU_NS
}  // namespace df

namespace df {
inline namespace DF_CPU_NS {  // compiled once per CPU level (cpu_level.h)

void gated_residual_forward(const float* x, const float* y, const float* gate, float* out,
                            const ModulatedNormShape& s) {
  const int64_t D = s.dim, rows = s.batch * s.tokens;
  parallel_for(rows, 16, [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; r++) {
      const float* g = gate + (r / s.tokens) * s.mod_stride;
      for (int64_t d = 0; d < D; d++) out[r * D + d] = x[r * D + d] + g[d] * y[r * D + d];
    }
  });
}

void gated_residual_backward(const float* y, const float* gate, const float* dout, float* dy, float* dgate,
                             const ModulatedNormShape& s) {
  const int64_t D = s.dim, N = s.tokens, rows = s.batch * N;
  parallel_for(rows, 16, [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; r++) {
      const float* g = gate + (r / N) * s.mod_stride;
      for (int64_t d = 0; d < D; d++) dy[r * D + d] = g[d] * dout[r * D + d];
    }
  });
  constexpr int64_t kCols = 64;
  const int64_t col_blocks = (D + kCols - 1) / kCols;
  parallel_for(s.batch * col_blocks, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t task = lo; task < hi; task++) {
      int64_t b = task / col_blocks, c0 = (task % col_blocks) * kCols, c1 = std::min(D, c0 + kCols);
      float acc[kCols] = {};
      for (int64_t n = 0; n < N; n++) {
        const float* yr = y + (b * N + n) * D;
        const float* dr = dout + (b * N + n) * D;
        for (int64_t d = c0; d < c1; d++) acc[d - c0] += dr[d] * yr[d];
      }
      for (int64_t d = c0; d < c1; d++) dgate[b * s.mod_stride + d] = acc[d - c0];
    }
  });
}

}  // namespace DF_CPU_NS
}  // namespace df

// The tolerances of the CUDA pyramid tests (test_pyramid_kernels_emulated, test_cuda_pyramid), both
// against the CPU op (native/ops/pyramid.cpp) on the same inputs (bf16 inputs widened to f32):
//   f32:  |got - cpu| <= 1e-5 * max|cpu|, per element
//   bf16: |got - cpu| <= 2^-8 |cpu| + 1e-5 * max|cpu|: the CPU's f32 result rounded once to bf16
//         (half an ulp is at most 2^-8 of the value; the kernels' workspace stays f32), plus the f32
//         slack (the GPU contracts a * b + c into fused multiply-adds).
// Round trip (recompose of decompose): f32 within 1e-5 * max|x|; bf16 within one rounding per stage
// and of the result, 2^-8 (sum_s max|stage s| + max|x|) + 1e-5 max|x| (upsampling never amplifies:
// its weights are positive and sum to 1).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <vector>

#include "test_util.h"

namespace pyrcheck {

inline double max_abs(const float* v, size_t n) {
  double m = 0;
  for (size_t i = 0; i < n; i++) m = std::max(m, double(std::fabs(v[i])));
  return m;
}

// Checks got against the CPU's f32 result; returns max |got - cpu| / max|cpu|. The first bad element
// (a NaN from an unwritten output included) is reported.
inline double expect_close(const char* label, const std::vector<float>& got, const float* cpu, bool bf16) {
  const double m = max_abs(cpu, got.size());
  const double scale = m > 0 ? m : 1.0;
  double worst = 0;
  bool reported = false;
  for (size_t i = 0; i < got.size(); i++) {
    const double err = std::isfinite(got[i]) ? std::fabs(double(got[i]) - cpu[i]) : INFINITY;
    const double tol = 1e-5 * scale + (bf16 ? std::ldexp(std::fabs(double(cpu[i])), -8) : 0.0);
    if (!(err <= tol) && !reported) {
      reported = true;
      CHECK(false, "%s: element %zu: got %.9g, cpu %.9g (tolerance %.3g)", label, i, got[i], cpu[i], tol);
    }
    worst = std::max(worst, err / scale);
  }
  return worst;
}

// The round trip: `back` against the original x, given the stages it went through.
inline void expect_round_trip(const char* label, const std::vector<float>& back, const std::vector<float>& x,
                              const std::vector<std::vector<float>>& stages, bool bf16) {
  const double mx = max_abs(x.data(), x.size());
  double bound = 1e-5 * mx;
  if (bf16) {
    double sum = mx;
    for (const auto& s : stages) sum += max_abs(s.data(), s.size());
    bound += std::ldexp(sum, -8);
  }
  double worst = 0;
  for (size_t i = 0; i < x.size(); i++)
    worst = std::max(worst, std::isfinite(back[i]) ? std::fabs(double(back[i]) - x[i]) : INFINITY);
  CHECK(worst <= bound, "%s: round trip: max |x' - x| %.3g > %.3g", label, worst, bound);
}

}  // namespace pyrcheck

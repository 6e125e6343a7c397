#include "linear.h"

#include <algorithm>
#include <cstring>

#include "../core/threadpool.h"
#include "gemm.h"

namespace df {
inline namespace DF_CPU_NS {  // compiled once per CPU level (cpu_level.h)

void linear_forward(const float* x, const float* w, const float* bias, float* y, const LinearShape& s) {
  // Start y as the bias rows and let the GEMM accumulate onto them (beta = 1): no extra pass.
  float beta = 0.f;
  if (bias) {
    parallel_for(s.rows, 64, [&](int64_t lo, int64_t hi) {
      for (int64_t r = lo; r < hi; r++) std::memcpy(y + r * s.out, bias, size_t(s.out) * sizeof(float));
    });
    beta = 1.f;
  }
  sgemm(false, true, s.rows, s.out, s.in, 1.f, x, s.in, w, s.in, beta, y, s.out);
}

void add_column_sums(const float* dy, float* db, int64_t rows, int64_t cols, bool accumulate) {
  constexpr int64_t kCols = 256;
  int64_t blocks = (cols + kCols - 1) / kCols;
  parallel_for(blocks, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t blk = lo; blk < hi; blk++) {
      int64_t c0 = blk * kCols, c1 = std::min(cols, c0 + kCols);
      float acc[kCols] = {};
      for (int64_t r = 0; r < rows; r++) {
        const float* row = dy + r * cols;
        for (int64_t c = c0; c < c1; c++) acc[c - c0] += row[c];
      }
      for (int64_t c = c0; c < c1; c++) db[c] = accumulate ? db[c] + acc[c - c0] : acc[c - c0];
    }
  });
}

void linear_backward(const float* x, const float* w, const float* dy, float* dx, float* dw, float* db,
                     const LinearShape& s, bool accumulate_dx, bool accumulate_params) {
  if (dx) sgemm(false, false, s.rows, s.in, s.out, 1.f, dy, s.out, w, s.in, accumulate_dx ? 1.f : 0.f, dx, s.in);
  if (dw) sgemm(true, false, s.out, s.in, s.rows, 1.f, dy, s.out, x, s.in, accumulate_params ? 1.f : 0.f, dw, s.in);
  if (db) add_column_sums(dy, db, s.rows, s.out, accumulate_params);
}

}  // namespace DF_CPU_NS
}  // namespace df

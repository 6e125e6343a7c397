// The built-in GEMM (gemm.h), compiled once per CPU level (cpu_level.h): GotoBLAS-style blocking
// around a register-blocked micro-kernel that the compiler vectorises for the level.
#include <algorithm>
#include <cstring>
#include <vector>

#include "../core/threadpool.h"
#include "gemm.h"

namespace df {
inline namespace DF_CPU_NS {

// The built-in kernel: GotoBLAS-style blocking. A is packed into MR-row strips and B into NR-column
// strips per (KC x NC) panel, and a register-blocked MR x NR micro-kernel runs over them.
namespace {

constexpr int MR = 6, NR = 32;
constexpr int64_t MC = 96, KC = 256, NC = 1024;

inline float elem(const float* p, int64_t ld, bool trans, int64_t r, int64_t c) {
  return trans ? p[c * ld + r] : p[r * ld + c];
}

// Packs rows [i0, i0+mc) x cols [p0, p0+kc) of op(A) as MR-row strips, k-major; pads with zeros.
void pack_a(const float* a, int64_t lda, bool ta, int64_t i0, int64_t mc, int64_t p0, int64_t kc, float* out) {
  for (int64_t i = 0; i < mc; i += MR) {
    int64_t rows = std::min<int64_t>(MR, mc - i);
    for (int64_t p = 0; p < kc; p++)
      for (int r = 0; r < MR; r++) *out++ = r < rows ? elem(a, lda, ta, i0 + i + r, p0 + p) : 0.f;
  }
}

// Packs rows [p0, p0+kc) x cols [j0, j0+nc) of op(B) as NR-column strips, k-major; pads with zeros.
void pack_b(const float* b, int64_t ldb, bool tb, int64_t p0, int64_t kc, int64_t j0, int64_t nc, float* out) {
  for (int64_t j = 0; j < nc; j += NR) {
    int64_t cols = std::min<int64_t>(NR, nc - j);
    for (int64_t p = 0; p < kc; p++) {
      if (!tb && cols == NR) {
        std::memcpy(out, b + (p0 + p) * ldb + j0 + j, NR * sizeof(float));
        out += NR;
      } else {
        for (int c = 0; c < NR; c++) *out++ = c < cols ? elem(b, ldb, tb, p0 + p, j0 + j + c) : 0.f;
      }
    }
  }
}

// acc = sum_p Ap[p] (x) Bp[p]; then C[0:rows, 0:cols] (+)= alpha * acc.
void micro_kernel(int64_t kc, const float* __restrict ap, const float* __restrict bp, float alpha,
                  float* c, int64_t ldc, int rows, int cols, bool accumulate) {
  float acc[MR][NR] = {};
  for (int64_t p = 0; p < kc; p++) {
    const float* bv = bp + p * NR;
    for (int r = 0; r < MR; r++) {
      float av = ap[p * MR + r];
      for (int j = 0; j < NR; j++) acc[r][j] += av * bv[j];
    }
  }
  for (int r = 0; r < rows; r++) {
    float* cr = c + r * ldc;
    if (accumulate)
      for (int j = 0; j < cols; j++) cr[j] += alpha * acc[r][j];
    else
      for (int j = 0; j < cols; j++) cr[j] = alpha * acc[r][j];
  }
}

void scale_c(float* c, int64_t ldc, int64_t m0, int64_t m1, int64_t n, float beta) {
  for (int64_t i = m0; i < m1; i++) {
    float* row = c + i * ldc;
    if (beta == 0.f)
      std::fill(row, row + n, 0.f);  // beta = 0 ignores what C held (NaN included), as BLAS does
    else if (beta != 1.f)
      for (int64_t j = 0; j < n; j++) row[j] *= beta;
  }
}

}  // namespace

void sgemm_blocked(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                   int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc,
                   bool parallel) {
  if (m <= 0 || n <= 0) return;
  int64_t m_blocks = (m + MC - 1) / MC, n_blocks = (n + NC - 1) / NC;
  auto block = [&](int64_t t) {
    int64_t i0 = (t % m_blocks) * MC, j0 = (t / m_blocks) * NC;
    int64_t mc = std::min(MC, m - i0), nc = std::min(NC, n - j0);
    thread_local std::vector<float> abuf, bbuf;
    abuf.resize(size_t((MC + MR) * KC));
    bbuf.resize(size_t((NC + NR) * KC));
    // C block starts as beta * C; each K panel then accumulates.
    for (int64_t i = i0; i < i0 + mc; i++) {
      float* row = c + i * ldc + j0;
      if (beta == 0.f)
        std::fill(row, row + nc, 0.f);
      else if (beta != 1.f)
        for (int64_t j = 0; j < nc; j++) row[j] *= beta;
    }
    for (int64_t p0 = 0; p0 < k; p0 += KC) {
      int64_t kc = std::min(KC, k - p0);
      pack_b(b, ldb, tb, p0, kc, j0, nc, bbuf.data());
      pack_a(a, lda, ta, i0, mc, p0, kc, abuf.data());
      for (int64_t j = 0; j < nc; j += NR)
        for (int64_t i = 0; i < mc; i += MR)
          micro_kernel(kc, abuf.data() + i * kc, bbuf.data() + j * kc, alpha, c + (i0 + i) * ldc + j0 + j,
                       ldc, int(std::min<int64_t>(MR, mc - i)), int(std::min<int64_t>(NR, nc - j)), true);
    }
  };
  if (k <= 0) {
    scale_c(c, ldc, 0, m, n, beta);
    return;
  }
  int64_t tasks = m_blocks * n_blocks;
  if (parallel && !in_parallel_region() && tasks > 1)
    parallel_tasks(tasks, block);
  else
    for (int64_t t = 0; t < tasks; t++) block(t);
}

}  // namespace DF_CPU_NS
}  // namespace df

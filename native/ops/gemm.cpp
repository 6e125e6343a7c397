#include "gemm.h"

#include <dlfcn.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <mutex>
#include <vector>

#include "../core/backend.h"
#include "../core/error.h"
#include "../core/threadpool.h"

namespace df {

// ---------------------------------------------------------------------------------------------
// OpenBLAS, loaded at run time.
namespace {

using CblasSgemm = void (*)(int, int, int, int, int, int, float, const float*, int, const float*, int,
                            float, float*, int);
using SetThreads = void (*)(int);
using GetConfig = char* (*)();

struct Blas {
  CblasSgemm sgemm = nullptr;
  SetThreads set_threads = nullptr;
  std::string description;
};

const Blas& blas() {
  static Blas b = [] {
    Blas r;
    const char* names[] = {"libopenblas.so.0", "libopenblas.so", "libopenblasp.so.0"};
    std::string tried;
    for (const char* name : names) {
      void* h = dlopen(name, RTLD_NOW | RTLD_LOCAL);
      if (!h) {
        tried += std::string(tried.empty() ? "" : ", ") + name;
        continue;
      }
      r.sgemm = reinterpret_cast<CblasSgemm>(dlsym(h, "cblas_sgemm"));
      r.set_threads = reinterpret_cast<SetThreads>(dlsym(h, "openblas_set_num_threads"));
      auto config = reinterpret_cast<GetConfig>(dlsym(h, "openblas_get_config"));
      if (!r.sgemm) continue;
      std::string cfg = config ? config() : "OpenBLAS";
      if (cfg.rfind("OpenBLAS", 0) != 0) cfg = "OpenBLAS " + cfg;
      r.description = cfg + " (" + name + ")";
      // OpenBLAS runs single-threaded: sgemm splits a product over decoflow's own pool instead, so
      // one set of threads does all the work (two pools on the same cores spin against each other).
      if (r.set_threads) r.set_threads(1);
      return r;
    }
    r.description = "none: OpenBLAS not found (tried " + tried + "); install libopenblas0 or libopenblas-dev";
    return r;
  }();
  return b;
}

std::atomic<GemmImpl> g_impl{GemmImpl::Auto};

}  // namespace

bool blas_available() { return blas().sgemm != nullptr; }
std::string blas_description() { return blas().description; }


void set_gemm_impl(GemmImpl impl) {
  if (impl == GemmImpl::Blas && !blas_available())
    fail(Code::Backend, "gemm: 'blas' requested but no BLAS is loaded: " + blas_description());
  g_impl = impl;
}

GemmImpl gemm_impl() { return g_impl; }

// ---------------------------------------------------------------------------------------------
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

void sgemm_builtin(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
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

void sgemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
           const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  GemmImpl impl = g_impl;
  bool use_blas = impl != GemmImpl::Builtin && blas_available() && m < INT32_MAX && n < INT32_MAX && k < INT32_MAX;
  if (!use_blas) {
    sgemm_builtin(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, true);
    return;
  }
  if (m <= 0 || n <= 0) return;
  if (k <= 0) {
    scale_c(c, ldc, 0, m, n, beta);
    return;
  }
  auto call = [&](int64_t m1, int64_t n1, const float* a1, const float* b1, float* c1) {
    blas().sgemm(101 /*RowMajor*/, ta ? 112 : 111, tb ? 112 : 111, int(m1), int(n1), int(k), alpha, a1, int(lda), b1,
                 int(ldb), beta, c1, int(ldc));
  };
  // Split the larger of m and n over the pool in blocks of 16 rows or 64 columns; each block is one
  // single-threaded BLAS call. Small products run in one call.
  int threads = in_parallel_region() ? 1 : num_threads();
  bool split_rows = m >= n;
  int64_t extent = split_rows ? m : n, unit = split_rows ? 16 : 64;
  int64_t chunks = std::min<int64_t>(threads, extent / unit);
  if (chunks <= 1 || double(m) * double(n) * double(k) < 262144.0) {
    call(m, n, a, b, c);
    return;
  }
  int64_t per = (extent / chunks + unit - 1) / unit * unit;
  parallel_tasks((extent + per - 1) / per, [&](int64_t t) {
    int64_t lo = t * per, len = std::min(per, extent - lo);
    if (split_rows)
      call(len, n, a + (ta ? lo : lo * lda), b, c + lo * ldc);
    else
      call(m, len, a, b + (tb ? lo * ldb : lo), c + lo);
  });
}

Tensor matmul(const Tensor& a, const Tensor& b) {
  expect_defined(a, "a");
  expect_defined(b, "b");
  expect_dtype(a, DType::F32, "a");
  expect_dtype(b, DType::F32, "b");
  expect_same_device(a, b, "a", "b");
  if (a.rank() < 2 || b.rank() < 2)
    fail(Code::Shape, "matmul: expected a and b of rank >= 2, got " + shape_str(a.shape()) + " and " + shape_str(b.shape()));
  int64_t m = a.dim(-2), k = a.dim(-1), k2 = b.dim(-2), n = b.dim(-1);
  if (k != k2)
    fail(Code::Shape, "matmul: inner dimensions differ: a " + shape_str(a.shape()) + " and b " + shape_str(b.shape()) +
                          " (expected a[..., m, k] and b[..., k, n])");
  Shape batch(a.shape().begin(), a.shape().end() - 2);
  Shape bbatch(b.shape().begin(), b.shape().end() - 2);
  if (b.rank() > 2 && bbatch != batch)
    fail(Code::Shape, "matmul: batch dimensions differ: a " + shape_str(a.shape()) + " and b " + shape_str(b.shape()));
  int64_t batches = 1;
  for (int64_t d : batch) batches *= d;
  Shape out_shape = batch;
  out_shape.push_back(m);
  out_shape.push_back(n);
  Tensor c(out_shape, DType::F32, a.device());
  const float* pa = a.data<float>();
  const float* pb = b.data<float>();
  float* pc = c.data<float>();
  int64_t b_stride = b.rank() > 2 ? k * n : 0;
  for (int64_t i = 0; i < batches; i++) {
    if (a.device().is_cpu()) {
      sgemm(false, false, m, n, k, 1.f, pa + i * m * k, k, pb + i * b_stride, n, 0.f, pc + i * m * n, n);
    } else {
      CudaBackend& cb = cuda_backend();
      cb.check(cb.api().sgemm(a.device().index, 0, 0, m, n, k, 1.f, pa + i * m * k, k, pb + i * b_stride, n, 0.f,
                              pc + i * m * n, n),
               "cuBLASLt matmul");
    }
  }
  return c;
}

}  // namespace df

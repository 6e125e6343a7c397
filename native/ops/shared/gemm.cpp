// Matrix products (gemm.h), compiled once: OpenBLAS loaded at run time, the choice between it and
// the built-in kernel of the CPU level in use (cpu_level.h), the split of a large product over the
// pool, and matmul on tensors of any device.
#include "../gemm.h"

#include <dlfcn.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <string>

#include "../../core/backend.h"
#include "../../core/error.h"
#include "../../core/threadpool.h"

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

void sgemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
           const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  GemmImpl impl = g_impl;
  bool use_blas = impl != GemmImpl::Builtin && blas_available() && m < INT32_MAX && n < INT32_MAX && k < INT32_MAX;
  if (!use_blas) {
    sgemm_builtin(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, true);
    return;
  }
  if (m <= 0 || n <= 0) return;
  if (k <= 0) {  // C = beta C: the built-in kernel's pass
    sgemm_builtin(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, false);
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

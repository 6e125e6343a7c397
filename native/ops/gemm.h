// Matrix products. Row-major, f32: C[m,n] = alpha * op(A)[m,k] op(B)[k,n] + beta * C.
// On the CPU they go to OpenBLAS when it can be loaded (dlopen at first use, so the build never
// needs it), else to the built-in blocked kernel below. OpenBLAS runs single-threaded and a large
// product is split over decoflow's pool; inside a parallel region a product runs on the calling
// thread, so ops may call gemm on tiles from pool threads.
#pragma once
#include <cstdint>
#include <string>

#include "../core/tensor.h"

namespace df {

enum class GemmImpl { Auto, Blas, Builtin };

void sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
           int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc);

// The built-in kernel alone (also the fallback), of the CPU level in use (cpu_level.h); `parallel`
// spreads it over the thread pool.
void sgemm_builtin(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                   const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c,
                   int64_t ldc, bool parallel);

#ifdef DF_CPU_NS  // the CPU kernels: compiled once per CPU level and seen only there (cpu_level.h)
inline namespace DF_CPU_NS {
// The blocked kernel of this level (what sgemm_builtin runs at the level in use).
void sgemm_blocked(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                   int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc, bool parallel);
}  // namespace DF_CPU_NS
#endif  // DF_CPU_NS

// Which implementation sgemm uses on the CPU. Auto: BLAS when loaded. Setting Blas when no BLAS
// could be loaded throws Code::Backend.
void set_gemm_impl(GemmImpl impl);
GemmImpl gemm_impl();
bool blas_available();
std::string blas_description();  // e.g. "OpenBLAS 0.3.21 (libopenblas.so.0)" or why not

// matmul on tensors: a [.., m, k] @ b [.., k, n] -> [.., m, n], f32. Leading dims of a and b must
// match exactly (batched) or b may be 2-D (shared). Any device with a kernel.
Tensor matmul(const Tensor& a, const Tensor& b);

}  // namespace df

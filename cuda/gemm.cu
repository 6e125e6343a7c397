// GEMMs through cuBLASLt (row-major, computed as the column-major transpose): f32 for matmul, and a
// bf16 one (f32 accumulation) that `decoflow bench` times as the card's tensor-core ceiling.
#include <mutex>

#include "common.cuh"

#ifdef DECOFLOW_HAVE_CUBLASLT
#include <cublasLt.h>
#endif

namespace dfcuda {

#ifdef DECOFLOW_HAVE_CUBLASLT

namespace {

#define DF_LT_TRY(call)                                                                         \
  do {                                                                                          \
    cublasStatus_t st_ = (call);                                                                \
    if (st_ != CUBLAS_STATUS_SUCCESS)                                                           \
      return set_error(st_ == CUBLAS_STATUS_ALLOC_FAILED ? DF_CUDA_OUT_OF_MEMORY : DF_CUDA_ERROR, \
                       std::string(#call) + " failed with cuBLAS status " + std::to_string(int(st_))); \
  } while (0)

// One handle per device, created on first use (the caller has checked the index).
int handle_for(int device, cublasLtHandle_t* out) {
  static cublasLtHandle_t handles[kMaxDevices] = {};
  static std::mutex mutex;
  std::lock_guard<std::mutex> lock(mutex);
  if (!handles[device]) DF_LT_TRY(cublasLtCreate(&handles[device]));
  *out = handles[device];
  return DF_CUDA_OK;
}

}  // namespace

int sgemm(int device, int ta, int tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
          const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  cudaStream_t stream;
  DF_STATUS_TRY(stream_for(device, &stream));
  cublasLtHandle_t lt;
  DF_STATUS_TRY(handle_for(device, &lt));
  // Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: swap the operands.
  cublasLtMatmulDesc_t op;
  DF_LT_TRY(cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  cublasOperation_t opb = tb ? CUBLAS_OP_T : CUBLAS_OP_N, opa = ta ? CUBLAS_OP_T : CUBLAS_OP_N;
  cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &opb, sizeof opb);
  cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &opa, sizeof opa);
  cublasLtMatrixLayout_t lb, la, lc;
  DF_LT_TRY(cublasLtMatrixLayoutCreate(&lb, CUDA_R_32F, tb ? k : n, tb ? n : k, ldb));
  DF_LT_TRY(cublasLtMatrixLayoutCreate(&la, CUDA_R_32F, ta ? m : k, ta ? k : m, lda));
  DF_LT_TRY(cublasLtMatrixLayoutCreate(&lc, CUDA_R_32F, n, m, ldc));
  cublasStatus_t st = cublasLtMatmul(lt, op, &alpha, b, lb, a, la, &beta, c, lc, c, lc, nullptr, nullptr, 0, stream);
  cublasLtMatrixLayoutDestroy(lb);
  cublasLtMatrixLayoutDestroy(la);
  cublasLtMatrixLayoutDestroy(lc);
  cublasLtMatmulDescDestroy(op);
  if (st != CUBLAS_STATUS_SUCCESS)
    return set_error(DF_CUDA_ERROR, "cublasLtMatmul failed with cuBLAS status " + std::to_string(int(st)));
  return DF_CUDA_OK;
}

// C[m,n] = A[m,k] B[k,n], bf16 in and out, f32 accumulation; the algorithm cuBLASLt's heuristic
// ranks first with up to 32 MiB of workspace (from the caching allocator).
int gemm_bf16(int device, int64_t m, int64_t n, int64_t k, const void* a, const void* b, void* c) {
  cudaStream_t stream;
  DF_STATUS_TRY(stream_for(device, &stream));
  cublasLtHandle_t lt;
  DF_STATUS_TRY(handle_for(device, &lt));
  constexpr size_t kWorkspace = size_t(32) << 20;
  Scratch workspace(device);
  DF_STATUS_TRY(workspace.alloc(kWorkspace));
  cublasLtMatmulDesc_t op;
  DF_LT_TRY(cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  cublasLtMatrixLayout_t lb, la, lc;
  DF_LT_TRY(cublasLtMatrixLayoutCreate(&lb, CUDA_R_16BF, n, k, n));
  DF_LT_TRY(cublasLtMatrixLayoutCreate(&la, CUDA_R_16BF, k, m, k));
  DF_LT_TRY(cublasLtMatrixLayoutCreate(&lc, CUDA_R_16BF, n, m, n));
  cublasLtMatmulPreference_t pref;
  DF_LT_TRY(cublasLtMatmulPreferenceCreate(&pref));
  cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &kWorkspace, sizeof kWorkspace);
  cublasLtMatmulHeuristicResult_t heuristic{};
  int found = 0;
  cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(lt, op, lb, la, lc, lc, pref, 1, &heuristic, &found);
  const float alpha = 1.f, beta = 0.f;
  if (st == CUBLAS_STATUS_SUCCESS && found > 0)
    st = cublasLtMatmul(lt, op, &alpha, b, lb, a, la, &beta, c, lc, c, lc, &heuristic.algo, workspace.get<void>(),
                        kWorkspace, stream);
  cublasLtMatmulPreferenceDestroy(pref);
  cublasLtMatrixLayoutDestroy(lb);
  cublasLtMatrixLayoutDestroy(la);
  cublasLtMatrixLayoutDestroy(lc);
  cublasLtMatmulDescDestroy(op);
  if (st == CUBLAS_STATUS_SUCCESS && found == 0) return set_error(DF_CUDA_ERROR, "cuBLASLt found no bf16 GEMM algorithm");
  if (st != CUBLAS_STATUS_SUCCESS)
    return set_error(DF_CUDA_ERROR, "bf16 cublasLtMatmul failed with cuBLAS status " + std::to_string(int(st)));
  return DF_CUDA_OK;
}

#else

int gemm_bf16(int, int64_t, int64_t, int64_t, const void*, const void*, void*) {
  return set_error(DF_CUDA_ERROR, "this CUDA backend was built without cuBLASLt, so it has no bf16 GEMM");
}

int sgemm(int, int, int, int64_t, int64_t, int64_t, float, const float*, int64_t, const float*, int64_t, float,
          float*, int64_t) {
  return set_error(DF_CUDA_ERROR, "this CUDA backend was built without cuBLASLt, so matmul has no CUDA kernel");
}

#endif

}  // namespace dfcuda

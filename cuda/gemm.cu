// Matrix products through cuBLASLt (row-major, computed as the column-major transpose): the C ABI's
// f32 sgemm (matmul on tensors) and bf16 GEMM (the tensor-core ceiling `decoflow bench` times), and the
// op backend's GEMMs (StreamLaunch::gemm: the linear layers, f32 with TF32 off or bf16 inputs with f32
// accumulation, an optional bias epilogue).
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <tuple>

#include "common.cuh"
#include "stream_launch.cuh"

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

namespace {

cudaDataType_t lt_type(df::DType t) { return t == df::DType::BF16 ? CUDA_R_16BF : CUDA_R_32F; }

void lt_check(cublasStatus_t st, const char* what) {
  if (st == CUBLAS_STATUS_SUCCESS) return;
  df::fail(st == CUBLAS_STATUS_ALLOC_FAILED ? df::Code::OutOfMemory : df::Code::Backend,
           std::string(what) + " failed with cuBLAS status " + std::to_string(int(st)));
}

// The largest power of two, at most 256, that divides a pointer. cuBLASLt's heuristic assumes
// 256-byte aligned operands unless told otherwise, and the algorithm it then picks refuses
// (CUBLAS_STATUS_NOT_SUPPORTED) operands that are less aligned: the weights are slices of one
// parameter buffer at any element offset, so every product states its operands' alignment.
uint32_t alignment_of(const void* p) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  uint32_t align = 256;
  while (align > 1 && a % align) align /= 2;
  return align;
}

// The bias epilogue needs a 16-byte aligned vector whatever the preferences say.
constexpr uint32_t kBiasAlignment = 16;

// One product's descriptors and the algorithm cuBLASLt's heuristic chose, cached by shape and
// operand alignment: the heuristic query costs more than the product of a small layer.
struct Plan {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulAlgo_t algo{};
  bool has_algo = false;
};
using PlanKey = std::tuple<int, int, int, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int, int, bool,
                           uint32_t, uint32_t, uint32_t>;
constexpr size_t kWorkspaceBytes = size_t(32) << 20;

}  // namespace

void StreamLaunch::gemm(const GemmCall& g) {
  if (g.m == 0 || g.n == 0) return;
  static std::mutex mutex;
  static std::map<PlanKey, Plan> plans;
  cublasLtHandle_t lt;
  status_check(handle_for(device_, &lt), "cuBLASLt handle");
  // Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: cuBLASLt's A is our B.
  const uint32_t align_a = alignment_of(g.a), align_b = alignment_of(g.b), align_c = alignment_of(g.c);
  const PlanKey key{device_, int(g.trans_a), int(g.trans_b), g.m, g.n, g.k, g.lda, g.ldb, g.ldc, int(g.ab),
                    int(g.c_type), g.bias != nullptr, align_a, align_b, align_c};
  std::lock_guard<std::mutex> lock(mutex);
  Plan& p = plans[key];
  if (!p.op) {
    lt_check(cublasLtMatmulDescCreate(&p.op, CUBLAS_COMPUTE_32F, CUDA_R_32F), "cublasLtMatmulDescCreate");
    const cublasOperation_t ta = g.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, tb = g.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta);
    cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb);
    if (g.bias) {
      const cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_BIAS;
      const cudaDataType_t bias_type = lt_type(g.ab);
      cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi);
      cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bias_type, sizeof bias_type);
    }
    lt_check(cublasLtMatrixLayoutCreate(&p.a, lt_type(g.ab), g.trans_b ? g.k : g.n, g.trans_b ? g.n : g.k, g.ldb),
             "cublasLtMatrixLayoutCreate");
    lt_check(cublasLtMatrixLayoutCreate(&p.b, lt_type(g.ab), g.trans_a ? g.m : g.k, g.trans_a ? g.k : g.m, g.lda),
             "cublasLtMatrixLayoutCreate");
    lt_check(cublasLtMatrixLayoutCreate(&p.c, lt_type(g.c_type), g.n, g.m, g.ldc), "cublasLtMatrixLayoutCreate");
    cublasLtMatmulPreference_t pref;
    lt_check(cublasLtMatmulPreferenceCreate(&pref), "cublasLtMatmulPreferenceCreate");
    const size_t ws = kWorkspaceBytes;
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws);
    // cuBLASLt's A is our B, its B our A; C and D are both our C (the product is in place).
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &align_b, sizeof align_b);
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &align_a, sizeof align_a);
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &align_c, sizeof align_c);
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &align_c, sizeof align_c);
    cublasLtMatmulHeuristicResult_t result{};
    int found = 0;
    cublasLtMatmulAlgoGetHeuristic(lt, p.op, p.a, p.b, p.c, p.c, pref, 1, &result, &found);
    cublasLtMatmulPreferenceDestroy(pref);
    if (found > 0) p.algo = result.algo, p.has_algo = true;
  }
  Block workspace = scratch(kWorkspaceBytes);
  // A bias at a less aligned offset of the parameter buffer goes through an aligned scratch copy (a
  // stream-ordered copy of one row: far cheaper than the product it feeds).
  const void* bias = g.bias;
  std::optional<Block> bias_copy;
  if (bias != nullptr && alignment_of(bias) < kBiasAlignment) {
    const size_t bytes = size_t(g.n) * (g.ab == df::DType::BF16 ? 2 : 4);
    bias_copy.emplace(device_, bytes);
    copy(bias_copy->get(), bias, bytes);
    bias = bias_copy->get();
  }
  if (bias) cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias);
  cuda_check(cudaSetDevice(device_), "cudaSetDevice");
  lt_check(cublasLtMatmul(lt, p.op, &g.alpha, g.b, p.a, g.a, p.b, &g.beta, g.c, p.c, g.c, p.c,
                          p.has_algo ? &p.algo : nullptr, workspace.get(), kWorkspaceBytes, stream_),
           "cublasLtMatmul");
}

// C[m,n] = A[m,k] B[k,n], bf16 in and out, f32 accumulation: the backend's GEMM, for the C ABI.
int gemm_bf16(int device, int64_t m, int64_t n, int64_t k, const void* a, const void* b, void* c) {
  try {
    StreamLaunch l(device);
    GemmCall g;
    g.m = m, g.n = n, g.k = k;
    g.a = a, g.lda = k, g.b = b, g.ldb = n, g.c = c, g.ldc = n;
    g.ab = g.c_type = df::DType::BF16;
    l.gemm(g);
    return DF_CUDA_OK;
  } catch (const df::Error& e) {
    return set_error(status_of(e), e.what());
  }
}

#else

int gemm_bf16(int, int64_t, int64_t, int64_t, const void*, const void*, void*) {
  return set_error(DF_CUDA_ERROR, "this CUDA backend was built without cuBLASLt, so it has no bf16 GEMM");
}

int sgemm(int, int, int, int64_t, int64_t, int64_t, float, const float*, int64_t, const float*, int64_t, float,
          float*, int64_t) {
  return set_error(DF_CUDA_ERROR, "this CUDA backend was built without cuBLASLt, so matmul has no CUDA kernel");
}

void StreamLaunch::gemm(const GemmCall&) {
  df::fail(df::Code::Backend, "this CUDA backend was built without cuBLASLt: the linear layers have no CUDA kernel");
}

#endif

}  // namespace dfcuda

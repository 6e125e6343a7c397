// Shared by the CUDA backend's files: status handling, the per-device stream, scratch memory and
// the entry points of every kernel family (collected into the API table by runtime.cu).
#pragma once
#include <cuda_runtime.h>

#include <string>

#include "core/cuda_api.h"

namespace dfcuda {

constexpr int kMaxDevices = 64;

// Records `msg` as the calling thread's last error and returns `status`.
int set_error(int status, const std::string& msg);
const std::string& last_error_text();

// Maps a cudaError_t to a backend status, recording the message (with `what`).
int from_cuda(cudaError_t e, const char* what);

// DF_CUDA_OK when `device` is an index the backend can hold state for; DF_CUDA_INVALID otherwise.
int check_device(int device);

// Selects `device` on this thread and sets *stream to its stream (created on first use). Every
// piece of work the backend does on a device goes to this one stream, which is what makes the
// caching allocator's stream-ordered reuse safe.
int stream_for(int device, cudaStream_t* stream);

// The caching allocator (runtime.cu). A freed block may be handed out again at once: the next
// user's work is queued on the same stream, after the work that used it before.
int alloc_block(int device, size_t bytes, void** out);
int free_block(int device, void* p);

// Scratch memory for one op call, returned to the cache when it goes out of scope.
class Scratch {
 public:
  Scratch(int device) : device_(device) {}
  ~Scratch() {
    if (p_) free_block(device_, p_);
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  int alloc(size_t bytes) { return alloc_block(device_, bytes, &p_); }
  template <class T>
  T* get() const { return static_cast<T*>(p_); }

 private:
  int device_;
  void* p_ = nullptr;
};

// Kernel families (one .cu each), as entered in the API table.
int sgemm(int device, int ta, int tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
          const float* b, int64_t ldb, float beta, float* c, int64_t ldc);
int gemm_bf16(int device, int64_t m, int64_t n, int64_t k, const void* a, const void* b, void* c);
int attention_forward(int device, int dtype, const void* q, const void* k, const void* v, void* o, float* lse,
                      const DfCudaAttentionShape* shape, float scale, int causal);
int attention_backward(int device, int dtype, const void* q, const void* k, const void* v, const void* o,
                       const float* lse, const void* d_o, void* dq, void* dk, void* dv,
                       const DfCudaAttentionShape* shape, float scale, int causal);
int flow_euler_update(int device, const DfCudaGroupedRows* rows, const float* x, const float* v, const float* dt,
                      float* out);
int flow_heun_update(int device, const DfCudaGroupedRows* rows, const float* x, const float* v1, const float* v2,
                     const float* dt, float* out);
int guidance_combine(int device, const DfCudaGroupedRows* rows, const float* v_cond, const float* v_uncond,
                     float w, float* out);
int pyramid_decompose(int device, int kind, int dtype, const void* image, void* const* levels,
                      const DfCudaPyramidShape* shape);
int pyramid_recompose(int device, int kind, int dtype, const void* const* levels, int up_to, void* image,
                      const DfCudaPyramidShape* shape);
int create_ops(int device, int compute, void** out);
int destroy_ops(void* ops);

}  // namespace dfcuda

// Evaluates a CUDA call; on failure returns its status from the enclosing function.
#define DF_CUDA_TRY(call)                                                 \
  do {                                                                    \
    cudaError_t df_err_ = (call);                                         \
    if (df_err_ != cudaSuccess) return dfcuda::from_cuda(df_err_, #call); \
  } while (0)

// Evaluates a call returning a backend status; on failure returns it from the enclosing function.
#define DF_STATUS_TRY(call)              \
  do {                                   \
    int df_status_ = (call);             \
    if (df_status_ != DF_CUDA_OK) return df_status_; \
  } while (0)

// After a kernel launch: the launch error (bad configuration, too much shared memory...), if any.
// Faults inside the kernel surface at the next synchronisation. `name` is a string literal.
#define DF_CUDA_LAUNCHED(name)                                                              \
  do {                                                                                      \
    cudaError_t df_err_ = cudaGetLastError();                                               \
    if (df_err_ != cudaSuccess) return dfcuda::from_cuda(df_err_, "launch of " name);      \
  } while (0)

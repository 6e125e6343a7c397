/* The C ABI between the core and the separately loaded CUDA backend (libdecoflow_cuda.so).
   The core dlopens the library and calls decoflow_cuda_api(); nothing else crosses the boundary, so
   the addon loads on machines with no GPU and no CUDA libraries. Every function returns a status
   (DF_CUDA_OK or an error); last_error() gives the message of the calling thread's last failure. */
#ifndef DECOFLOW_CUDA_API_H
#define DECOFLOW_CUDA_API_H
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DF_CUDA_ABI_VERSION 1

enum {
  DF_CUDA_OK = 0,
  DF_CUDA_OUT_OF_MEMORY = 1,
  DF_CUDA_NO_DRIVER = 2,
  DF_CUDA_NO_DEVICE = 3,
  DF_CUDA_INVALID = 4,
  DF_CUDA_ERROR = 5
};

typedef struct DfCudaApi {
  int abi_version;
  const char* (*last_error)(void);
  int (*device_count)(int* count);
  int (*device_name)(int device, char* name, size_t name_len);
  int (*alloc)(int device, size_t bytes, void** out);
  int (*free)(int device, void* p);
  int (*copy_to_device)(int device, void* dst, const void* src, size_t bytes);
  int (*copy_to_host)(int device, void* dst, const void* src, size_t bytes);
  int (*copy_on_device)(int device, void* dst, const void* src, size_t bytes);
  int (*synchronize)(int device);
  /* Row-major C[m,n] = alpha * op(A) op(B) + beta * C, f32, through cuBLASLt. */
  int (*sgemm)(int device, int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha,
               const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c,
               int64_t ldc);
} DfCudaApi;

typedef const DfCudaApi* (*DfCudaApiFn)(void);
const DfCudaApi* decoflow_cuda_api(void);

#ifdef __cplusplus
}
#endif
#endif

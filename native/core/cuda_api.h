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

#define DF_CUDA_ABI_VERSION 5

/* The version of the C++ op interface (native/ops/ops.h) that create_ops' objects implement; bumped
   with every change of that interface. */
#define DF_OPS_INTERFACE_VERSION 2

enum {
  DF_CUDA_OK = 0,
  DF_CUDA_OUT_OF_MEMORY = 1,
  DF_CUDA_NO_DRIVER = 2,
  DF_CUDA_NO_DEVICE = 3,
  DF_CUDA_INVALID = 4,
  DF_CUDA_ERROR = 5
};

/* Element types of the kernels (the values of df::DType). */
enum { DF_CUDA_F32 = 0, DF_CUDA_F16 = 1, DF_CUDA_BF16 = 2 };

/* Attention: q [batch, heads, nq, dim], k and v [batch, heads, nk, dim], o like q, lse
   [batch, heads, nq] f32, contiguous; causal aligned at the end as in native/ops/attention.h. */
typedef struct DfCudaAttentionShape {
  int64_t batch, heads, nq, nk, dim;
} DfCudaAttentionShape;

/* Pyramid kinds (the values of df::PyramidKind) and an S-stage pyramid of a [batch, channels,
   height, width] image: stage s (0-based, coarse to fine) is [batch, channels, height >> (S-1-s),
   width >> (S-1-s)], contiguous, as native/ops/pyramid.h. */
enum { DF_CUDA_LAPLACIAN = 0, DF_CUDA_HAAR = 1, DF_CUDA_CONSISTENT = 2 };
typedef struct DfCudaPyramidShape {
  int64_t batch, channels, height, width;
  int stages;
} DfCudaPyramidShape;

/* A flat f32 buffer of grouped rows (native/ops/integrator.h's GroupedRows): every sample of a batch
   is split into `groups` groups, group g of per_sample[g] floats, stored group after group (group g as
   [batch, per_sample[g]]); the scalar of (sample b, group g) is coef[b * coef_stride + g]. */
typedef struct DfCudaGroupedRows {
  int64_t batch;
  int groups;
  const int64_t* per_sample; /* host array of `groups` entries */
  int64_t coef_stride;       /* >= groups */
} DfCudaGroupedRows;

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
  /* Flash attention, f16 or bf16 tensors (f32 accumulation), dim 32, 64 or 128; pointers 16-byte
     aligned. The backward overwrites dq, dk and dv (dtype of q) and uses scratch memory from the
     backend's caching allocator. */
  int (*attention_forward)(int device, int dtype, const void* q, const void* k, const void* v, void* o,
                           float* lse, const DfCudaAttentionShape* shape, float scale, int causal);
  int (*attention_backward)(int device, int dtype, const void* q, const void* k, const void* v,
                            const void* o, const float* lse, const void* d_o, void* dq, void* dk, void* dv,
                            const DfCudaAttentionShape* shape, float scale, int causal);
  /* The integrator's fused updates over grouped rows (native/ops/integrator.h), f32, dt the
     [batch, coef_stride] matrix on the device; out may alias x (or either velocity for
     guidance_combine). */
  int (*flow_euler_update)(int device, const DfCudaGroupedRows* rows, const float* x, const float* v,
                           const float* dt, float* out);
  int (*flow_heun_update)(int device, const DfCudaGroupedRows* rows, const float* x, const float* v1,
                          const float* v2, const float* dt, float* out);
  int (*guidance_combine)(int device, const DfCudaGroupedRows* rows, const float* v_cond,
                          const float* v_uncond, float w, float* out);
  /* The pyramid transforms (native/ops/pyramid.h), f32 or bf16 (f32 math; a bf16 pyramid's
     intermediate images stay f32), every pointer 16-byte aligned; `levels` is a host array of
     `stages` device pointers. Recompose brings stages 0 .. up_to-1 to full size as if the later ones
     were zero (up_to == stages: the inverse of decompose); levels[up_to..] are not read. Scratch
     comes from the backend's caching allocator. Outputs must not overlap the inputs. */
  int (*pyramid_decompose)(int device, int kind, int dtype, const void* image, void* const* levels,
                           const DfCudaPyramidShape* shape);
  int (*pyramid_recompose)(int device, int kind, int dtype, const void* const* levels, int up_to, void* image,
                           const DfCudaPyramidShape* shape);
  /* The op backend (native/ops/ops.h) of a device: a df::Ops object for compute dtype DF_CUDA_F32 or
     DF_CUDA_BF16, built against op interface version ops_interface_version, released with
     destroy_ops. Its methods report failures as df::Error exceptions. */
  int ops_interface_version;
  int (*create_ops)(int device, int compute_dtype, void** ops);
  int (*destroy_ops)(void* ops);
  /* Row-major C[m,n] = A[m,k] B[k,n], bf16 operands and result, f32 accumulation, through cuBLASLt:
     the tensor-core ceiling `decoflow bench` measures (cuda/gemm.cu). Queued on the device's stream. */
  int (*gemm_bf16)(int device, int64_t m, int64_t n, int64_t k, const void* a, const void* b, void* c);
} DfCudaApi;

typedef const DfCudaApi* (*DfCudaApiFn)(void);
const DfCudaApi* decoflow_cuda_api(void);

#ifdef __cplusplus
}
#endif
#endif

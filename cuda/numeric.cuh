// The element types of the op backend's kernels: f32, and bf16 for the mixed-precision policy
// (__nv_bfloat16 on the device; a 16-bit struct on the host emulation), with their conversions.
// Every kernel loads through to_f32, computes in f32 (or f64) and stores through from_f32, which
// rounds to nearest even.
#pragma once
#ifdef DFCUDA_HOST_EMULATION
#include "host_emulation.h"
#else
#include <cuda_bf16.h>
#endif
#include <cstdint>

namespace dfcuda {

#ifdef DFCUDA_HOST_EMULATION
inline float sqrtf_rn(float x) { return std::sqrt(x); }
inline float div_rn(float a, float b) { return a / b; }
using bf16 = emu_bf16;
inline float to_f32(float x) { return x; }
inline float to_f32(bf16 x) { return df::bf16_to_f32(x.bits); }
template <class T>
inline T from_f32(float x);
template <>
inline float from_f32<float>(float x) { return x; }
template <>
inline bf16 from_f32<bf16>(float x) { return bf16{df::f32_to_bf16(x)}; }
#else
// Correctly rounded even under --use_fast_math (which makes sqrtf approximate).
__device__ __forceinline__ float sqrtf_rn(float x) { return __fsqrt_rn(x); }
__device__ __forceinline__ float div_rn(float a, float b) { return __fdiv_rn(a, b); }
using bf16 = __nv_bfloat16;
__device__ __forceinline__ float to_f32(float x) { return x; }
__device__ __forceinline__ float to_f32(bf16 x) { return __bfloat162float(x); }
template <class T>
__device__ __forceinline__ T from_f32(float x);
template <>
__device__ __forceinline__ float from_f32<float>(float x) { return x; }
template <>
__device__ __forceinline__ bf16 from_f32<bf16>(float x) { return __float2bfloat16_rn(x); }
#endif

// A kernel of a header shared by several translation units: internal linkage on the device (a
// non-template __global__ defined in two objects would clash), inline on the host emulation.
#ifdef DFCUDA_HOST_EMULATION
#define DF_KERNEL inline
#else
#define DF_KERNEL static __global__
#endif

// Grid-stride loop over [0, n).
#define DF_GRID_LOOP(i, n) \
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); i += int64_t(blockDim.x) * gridDim.x)

}  // namespace dfcuda

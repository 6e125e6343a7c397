// The pyramid transforms on CUDA (twins of native/ops/pyramid.cpp): argument checks, the f32
// workspace from the caching allocator, and the launches of pyramid_kernels.cuh, one per level pair.
#include <atomic>
#include <cstdint>
#include <string>

#include "common.cuh"
#include "pyramid_kernels.cuh"

namespace dfcuda {

namespace {

int invalid(const std::string& what) { return set_error(DF_CUDA_INVALID, what); }

bool aligned16(const void* p) { return p && reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// Launches on the device's stream; every launch checked.
struct StreamLaunch {
  cudaStream_t stream;
  template <class Kernel, class... Args>
  int operator()(Kernel kernel, const PairGeometry& g, Args... args) {
    kernel<<<g.blocks(), kPyramidThreads, 0, stream>>>(args..., g);
    DF_CUDA_LAUNCHED("pyramid kernel");
    return DF_CUDA_OK;
  }
  int copy(void* dst, const void* src, size_t bytes) {
    DF_CUDA_TRY(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream));
    return DF_CUDA_OK;
  }
};

// Warps worth launching per pair: enough for DFCUDA_PYRAMID_WARPS_PER_SM resident warps per SM
// (the memory system's latency needs many loads in flight); fewer make the strips longer and their
// halo rows rarer. Laplacian strips keep at least DFCUDA_PYRAMID_LAPLACIAN_MIN_ROWS rows, so the
// halo re-reads stay a small fraction. (Both macros exist for the tuning runs of the benchmark.)
#ifndef DFCUDA_PYRAMID_WARPS_PER_SM
#define DFCUDA_PYRAMID_WARPS_PER_SM 32
#endif
#ifndef DFCUDA_PYRAMID_LAPLACIAN_MIN_ROWS
#define DFCUDA_PYRAMID_LAPLACIAN_MIN_ROWS 8
#endif
StripSplit strip_split(int device) {
  static std::atomic<int> sms[kMaxDevices];
  int n = sms[device].load();
  if (n == 0) {
    if (cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, device) != cudaSuccess || n < 1) {
      cudaGetLastError();
      n = 132;
    }
    sms[device] = n;
  }
  return StripSplit{int64_t(n) * DFCUDA_PYRAMID_WARPS_PER_SM, DFCUDA_PYRAMID_LAPLACIAN_MIN_ROWS};
}

int check_common(const char* fn, int device, int kind, int dtype, const DfCudaPyramidShape* s) {
  DF_STATUS_TRY(check_device(device));
  return check_pyramid_args(fn, kind, dtype, s, [](const std::string& m) { return invalid(m); });
}

int check_pointer(const char* fn, const std::string& name, const void* p) {
  if (!aligned16(p)) return invalid(std::string(fn) + ": " + name + ": expected a 16-byte aligned device pointer");
  return DF_CUDA_OK;
}

}  // namespace

int pyramid_decompose(int device, int kind, int dtype, const void* image, void* const* levels,
                      const DfCudaPyramidShape* s) {
  const char* fn = "pyramid_decompose";
  DF_STATUS_TRY(check_common(fn, device, kind, dtype, s));
  if (pyramid_level_numel(*s, s->stages - 1) == 0) return DF_CUDA_OK;
  DF_STATUS_TRY(check_pointer(fn, "image", image));
  if (!levels) return invalid(std::string(fn) + ": levels: expected an array of pointers, got null");
  for (int t = 0; t < s->stages; t++) DF_STATUS_TRY(check_pointer(fn, "levels[" + std::to_string(t) + "]", levels[t]));
  cudaStream_t stream;
  DF_STATUS_TRY(stream_for(device, &stream));
  Scratch workspace(device);
  if (pyramid_workspace_bytes(*s, kind) > 0) DF_STATUS_TRY(workspace.alloc(pyramid_workspace_bytes(*s, kind)));
  StreamLaunch launch{stream};
  return run_decompose(launch, kind, dtype, image, levels, workspace.get<void>(), *s, strip_split(device));
}

int pyramid_recompose(int device, int kind, int dtype, const void* const* levels, int up_to, void* image,
                      const DfCudaPyramidShape* s) {
  const char* fn = "pyramid_recompose";
  DF_STATUS_TRY(check_common(fn, device, kind, dtype, s));
  if (up_to < 1 || up_to > s->stages)
    return invalid(std::string(fn) + ": up_to: expected 1 to " + std::to_string(s->stages) + ", got " +
                   std::to_string(up_to));
  if (pyramid_level_numel(*s, s->stages - 1) == 0) return DF_CUDA_OK;
  DF_STATUS_TRY(check_pointer(fn, "image", image));
  if (!levels) return invalid(std::string(fn) + ": levels: expected an array of pointers, got null");
  for (int t = 0; t < up_to; t++) DF_STATUS_TRY(check_pointer(fn, "levels[" + std::to_string(t) + "]", levels[t]));
  cudaStream_t stream;
  DF_STATUS_TRY(stream_for(device, &stream));
  Scratch workspace(device);
  if (pyramid_workspace_bytes(*s, kind) > 0) DF_STATUS_TRY(workspace.alloc(pyramid_workspace_bytes(*s, kind)));
  StreamLaunch launch{stream};
  return run_recompose(launch, kind, dtype, levels, up_to, image, workspace.get<void>(), *s, strip_split(device));
}

}  // namespace dfcuda

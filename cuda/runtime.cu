// The CUDA backend's runtime: devices, a caching allocator, copies and the exported API table.
#include <cstring>
#include <map>
#include <mutex>
#include <vector>

#include "common.cuh"

namespace dfcuda {

namespace {

thread_local std::string t_last_error;

constexpr int kMaxDevices = 64;
cudaStream_t g_streams[kMaxDevices] = {};
std::mutex g_mutex;

// Caching allocator: freed blocks are kept per (device, rounded size) and reused, so ops never pay
// for cudaMalloc on the hot path. Sizes round up to 512 bytes below 1 MiB and to 2 MiB above.
std::multimap<size_t, void*> g_free[kMaxDevices];
std::map<void*, size_t> g_sizes[kMaxDevices];

size_t round_size(size_t bytes) {
  if (bytes < (1u << 20)) return (bytes + 511) / 512 * 512;
  return (bytes + (2u << 20) - 1) / (2u << 20) * (2u << 20);
}

void release_cached(int device) {
  for (auto& kv : g_free[device]) {
    cudaFree(kv.second);
    g_sizes[device].erase(kv.second);
  }
  g_free[device].clear();
}

}  // namespace

int set_error(int status, const std::string& msg) {
  t_last_error = msg;
  return status;
}

int from_cuda(cudaError_t e, const char* what) {
  std::string msg = std::string(what) + ": " + cudaGetErrorName(e) + " (" + cudaGetErrorString(e) + ")";
  cudaGetLastError();  // clear a non-sticky error so later calls are not blamed for it
  if (e == cudaErrorMemoryAllocation) return set_error(DF_CUDA_OUT_OF_MEMORY, msg);
  if (e == cudaErrorInsufficientDriver) return set_error(DF_CUDA_NO_DRIVER, msg);
  if (e == cudaErrorNoDevice) return set_error(DF_CUDA_NO_DEVICE, msg);
  if (e == cudaErrorInvalidValue) return set_error(DF_CUDA_INVALID, msg);
  return set_error(DF_CUDA_ERROR, msg);
}

cudaStream_t stream_for(int device) {
  cudaSetDevice(device);
  std::lock_guard<std::mutex> lock(g_mutex);
  if (!g_streams[device]) cudaStreamCreateWithFlags(&g_streams[device], cudaStreamNonBlocking);
  return g_streams[device];
}

namespace {

const char* last_error() { return t_last_error.c_str(); }

int device_count(int* count) {
  *count = 0;
  cudaError_t e = cudaGetDeviceCount(count);
  if (e == cudaErrorInsufficientDriver || e == cudaErrorInitializationError || e == cudaErrorStubLibrary)
    return set_error(DF_CUDA_NO_DRIVER, std::string("cudaGetDeviceCount: ") + cudaGetErrorString(e));
  if (e == cudaErrorNoDevice) {
    *count = 0;
    return DF_CUDA_OK;
  }
  if (e != cudaSuccess) return from_cuda(e, "cudaGetDeviceCount");
  if (*count > kMaxDevices) *count = kMaxDevices;
  return DF_CUDA_OK;
}

int device_name(int device, char* name, size_t len) {
  cudaDeviceProp prop;
  DF_CUDA_TRY(cudaGetDeviceProperties(&prop, device));
  std::snprintf(name, len, "%s (sm_%d%d, %.0f GiB)", prop.name, prop.major, prop.minor,
                double(prop.totalGlobalMem) / (1024.0 * 1024.0 * 1024.0));
  return DF_CUDA_OK;
}

int alloc(int device, size_t bytes, void** out) {
  size_t size = round_size(bytes ? bytes : 1);
  std::lock_guard<std::mutex> lock(g_mutex);
  auto it = g_free[device].find(size);
  if (it != g_free[device].end()) {
    *out = it->second;
    g_free[device].erase(it);
    return DF_CUDA_OK;
  }
  DF_CUDA_TRY(cudaSetDevice(device));
  cudaError_t e = cudaMalloc(out, size);
  if (e == cudaErrorMemoryAllocation) {  // give the cache back to the driver and try once more
    cudaGetLastError();
    release_cached(device);
    e = cudaMalloc(out, size);
  }
  if (e != cudaSuccess) return from_cuda(e, "cudaMalloc");
  g_sizes[device][*out] = size;
  return DF_CUDA_OK;
}

int free_block(int device, void* p) {
  // Work queued on the stream may still read the block: order reuse after it.
  cudaStreamSynchronize(stream_for(device));
  std::lock_guard<std::mutex> lock(g_mutex);
  auto it = g_sizes[device].find(p);
  if (it == g_sizes[device].end()) return set_error(DF_CUDA_INVALID, "free of an unknown CUDA pointer");
  g_free[device].emplace(it->second, p);
  return DF_CUDA_OK;
}

int copy(int device, void* dst, const void* src, size_t bytes, cudaMemcpyKind kind) {
  cudaStream_t s = stream_for(device);
  DF_CUDA_TRY(cudaMemcpyAsync(dst, src, bytes, kind, s));
  DF_CUDA_TRY(cudaStreamSynchronize(s));
  return DF_CUDA_OK;
}

int copy_to_device(int device, void* dst, const void* src, size_t bytes) {
  return copy(device, dst, src, bytes, cudaMemcpyHostToDevice);
}
int copy_to_host(int device, void* dst, const void* src, size_t bytes) {
  return copy(device, dst, src, bytes, cudaMemcpyDeviceToHost);
}
int copy_on_device(int device, void* dst, const void* src, size_t bytes) {
  return copy(device, dst, src, bytes, cudaMemcpyDeviceToDevice);
}

int synchronize(int device) {
  DF_CUDA_TRY(cudaStreamSynchronize(stream_for(device)));
  return DF_CUDA_OK;
}

}  // namespace

int sgemm(int device, int ta, int tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
          const float* b, int64_t ldb, float beta, float* c, int64_t ldc);

}  // namespace dfcuda

extern "C" const DfCudaApi* decoflow_cuda_api(void) {
  static const DfCudaApi api = {
      DF_CUDA_ABI_VERSION,     dfcuda::last_error,   dfcuda::device_count,   dfcuda::device_name,
      dfcuda::alloc,           dfcuda::free_block,   dfcuda::copy_to_device, dfcuda::copy_to_host,
      dfcuda::copy_on_device,  dfcuda::synchronize,  dfcuda::sgemm,
  };
  return &api;
}

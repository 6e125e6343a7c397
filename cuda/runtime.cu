// The CUDA backend's runtime: devices, a caching allocator, copies and the exported API table.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <vector>

#include "common.cuh"

namespace dfcuda {

namespace {

thread_local std::string t_last_error;

cudaStream_t g_streams[kMaxDevices] = {};
std::mutex g_mutex;

// Caching allocator: freed blocks are kept per (device, rounded size) and reused, so ops never pay
// for cudaMalloc on the hot path. Sizes round up to 512 bytes below 1 MiB and to 2 MiB above.
// Reuse is stream-ordered (see stream_for): a block is handed out again without waiting for the
// work queued on it, because its next user's work is queued after that work on the same stream.
std::multimap<size_t, void*> g_free[kMaxDevices];
std::map<void*, size_t> g_sizes[kMaxDevices];

size_t round_size(size_t bytes) {
  if (bytes < (size_t(1) << 20)) return (bytes + 511) / 512 * 512;
  const size_t two_mib = size_t(2) << 20;
  return (bytes + two_mib - 1) / two_mib * two_mib;
}

// Gives every cached block of `device` back to the driver (cudaFree waits for the device first).
// DECOFLOW_CUDA_EXACT_ALLOC=1 (for compute-sanitizer runs): every block is its own cudaMalloc of
// the exact size, freed at once, so the sanitizer sees an access past a tensor's end.
bool exact_alloc() {
  static const bool exact = [] {
    const char* v = std::getenv("DECOFLOW_CUDA_EXACT_ALLOC");
    return v && *v && std::string(v) != "0";
  }();
  return exact;
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

const std::string& last_error_text() { return t_last_error; }

int from_cuda(cudaError_t e, const char* what) {
  std::string msg = std::string(what) + ": " + cudaGetErrorName(e) + " (" + cudaGetErrorString(e) + ")";
  cudaGetLastError();  // clear a non-sticky error so later calls are not blamed for it
  if (e == cudaErrorMemoryAllocation) return set_error(DF_CUDA_OUT_OF_MEMORY, msg);
  if (e == cudaErrorInsufficientDriver) return set_error(DF_CUDA_NO_DRIVER, msg);
  if (e == cudaErrorNoDevice) return set_error(DF_CUDA_NO_DEVICE, msg);
  if (e == cudaErrorInvalidValue || e == cudaErrorInvalidDevice) return set_error(DF_CUDA_INVALID, msg);
  return set_error(DF_CUDA_ERROR, msg);
}

int check_device(int device) {
  if (device < 0 || device >= kMaxDevices)
    return set_error(DF_CUDA_INVALID, "CUDA device index " + std::to_string(device) + " is out of range");
  return DF_CUDA_OK;
}

int stream_for(int device, cudaStream_t* stream) {
  DF_STATUS_TRY(check_device(device));
  DF_CUDA_TRY(cudaSetDevice(device));
  std::lock_guard<std::mutex> lock(g_mutex);
  if (!g_streams[device]) DF_CUDA_TRY(cudaStreamCreateWithFlags(&g_streams[device], cudaStreamNonBlocking));
  *stream = g_streams[device];
  return DF_CUDA_OK;
}

int alloc_block(int device, size_t bytes, void** out) {
  *out = nullptr;
  DF_STATUS_TRY(check_device(device));
  size_t size = exact_alloc() ? (bytes ? bytes : 1) : round_size(bytes ? bytes : 1);
  std::lock_guard<std::mutex> lock(g_mutex);
  auto it = exact_alloc() ? g_free[device].end() : g_free[device].find(size);
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
  if (e != cudaSuccess) {
    *out = nullptr;
    return from_cuda(e, ("cudaMalloc of " + std::to_string(size) + " bytes").c_str());
  }
  g_sizes[device][*out] = size;
  return DF_CUDA_OK;
}

int free_block(int device, void* p) {
  if (!p) return DF_CUDA_OK;
  DF_STATUS_TRY(check_device(device));
  std::lock_guard<std::mutex> lock(g_mutex);
  auto it = g_sizes[device].find(p);
  if (it == g_sizes[device].end()) return set_error(DF_CUDA_INVALID, "free of an unknown CUDA pointer");
  if (exact_alloc()) {
    g_sizes[device].erase(it);
    DF_CUDA_TRY(cudaFree(p));  // waits for the device: no stream-ordered reuse to reason about
    return DF_CUDA_OK;
  }
  g_free[device].emplace(it->second, p);
  return DF_CUDA_OK;
}

namespace {

const char* last_error() { return t_last_error.c_str(); }

int device_count(int* count) {
  *count = 0;
  cudaError_t e = cudaGetDeviceCount(count);
  if (e == cudaErrorInsufficientDriver || e == cudaErrorInitializationError || e == cudaErrorStubLibrary) {
    *count = 0;
    cudaGetLastError();
    return set_error(DF_CUDA_NO_DRIVER, std::string("cudaGetDeviceCount: ") + cudaGetErrorString(e));
  }
  if (e == cudaErrorNoDevice) {
    *count = 0;
    cudaGetLastError();
    return DF_CUDA_OK;
  }
  if (e != cudaSuccess) {
    *count = 0;
    return from_cuda(e, "cudaGetDeviceCount");
  }
  if (*count > kMaxDevices) *count = kMaxDevices;
  return DF_CUDA_OK;
}

int device_name(int device, char* name, size_t len) {
  DF_STATUS_TRY(check_device(device));
  cudaDeviceProp prop;
  DF_CUDA_TRY(cudaGetDeviceProperties(&prop, device));
  std::snprintf(name, len, "%s (sm_%d%d, %.0f GiB)", prop.name, prop.major, prop.minor,
                double(prop.totalGlobalMem) / (1024.0 * 1024.0 * 1024.0));
  return DF_CUDA_OK;
}

int copy(int device, void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, const char* what) {
  if (bytes == 0) return DF_CUDA_OK;
  cudaStream_t s;
  DF_STATUS_TRY(stream_for(device, &s));
  cudaError_t e = cudaMemcpyAsync(dst, src, bytes, kind, s);
  if (e == cudaSuccess) e = cudaStreamSynchronize(s);  // also surfaces faults of queued kernels
  if (e != cudaSuccess) return from_cuda(e, what);
  return DF_CUDA_OK;
}

int copy_to_device(int device, void* dst, const void* src, size_t bytes) {
  return copy(device, dst, src, bytes, cudaMemcpyHostToDevice, "copy to the device");
}
int copy_to_host(int device, void* dst, const void* src, size_t bytes) {
  return copy(device, dst, src, bytes, cudaMemcpyDeviceToHost, "copy to the host");
}
int copy_on_device(int device, void* dst, const void* src, size_t bytes) {
  return copy(device, dst, src, bytes, cudaMemcpyDeviceToDevice, "copy on the device");
}

int synchronize(int device) {
  cudaStream_t s;
  DF_STATUS_TRY(stream_for(device, &s));
  DF_CUDA_TRY(cudaStreamSynchronize(s));
  return DF_CUDA_OK;
}

}  // namespace

}  // namespace dfcuda

extern "C" const DfCudaApi* decoflow_cuda_api(void) {
  static const DfCudaApi api = {
      DF_CUDA_ABI_VERSION,
      dfcuda::last_error,
      dfcuda::device_count,
      dfcuda::device_name,
      dfcuda::alloc_block,
      dfcuda::free_block,
      dfcuda::copy_to_device,
      dfcuda::copy_to_host,
      dfcuda::copy_on_device,
      dfcuda::synchronize,
      dfcuda::sgemm,
      dfcuda::attention_forward,
      dfcuda::attention_backward,
      dfcuda::flow_euler_update,
      dfcuda::flow_heun_update,
      dfcuda::guidance_combine,
      dfcuda::pyramid_decompose,
      dfcuda::pyramid_recompose,
      DF_OPS_INTERFACE_VERSION,
      dfcuda::create_ops,
      dfcuda::destroy_ops,
      dfcuda::gemm_bf16,
  };
  return &api;
}

// The CUDA backend of the op interface: the stream launcher (cuda/stream_launch.cuh) and the
// factory the core calls through the C ABI (create_ops / destroy_ops in core/cuda_api.h) to get a
// KernelOps<StreamLaunch> (cuda/kernel_ops.cuh) for a device and a compute type.
#include <cstdio>
#include <string>

#include "kernel_ops.cuh"
#include "stream_launch.cuh"

namespace dfcuda {

void throw_cuda(cudaError_t e, const char* what) {
  const std::string msg = std::string(what) + ": " + cudaGetErrorName(e) + " (" + cudaGetErrorString(e) + ")";
  cudaGetLastError();  // clear a non-sticky error so later calls are not blamed for it
  df::fail(e == cudaErrorMemoryAllocation ? df::Code::OutOfMemory : df::Code::Backend, msg);
}

void status_check(int status, const char* what) {
  if (status == DF_CUDA_OK) return;
  const std::string msg = std::string(what) + ": " + last_error_text();
  switch (status) {
    case DF_CUDA_OUT_OF_MEMORY: df::fail(df::Code::OutOfMemory, msg);
    case DF_CUDA_NO_DRIVER:
    case DF_CUDA_NO_DEVICE: df::fail(df::Code::Device, msg);
    case DF_CUDA_INVALID: df::fail(df::Code::ArgValue, msg);
    default: df::fail(df::Code::Backend, msg);
  }
}

int status_of(const df::Error& e) {
  switch (e.code()) {
    case df::Code::OutOfMemory: return DF_CUDA_OUT_OF_MEMORY;
    case df::Code::ArgType:
    case df::Code::ArgValue:
    case df::Code::Shape:
    case df::Code::DType:
    case df::Code::Device: return DF_CUDA_INVALID;
    default: return DF_CUDA_ERROR;
  }
}

StreamLaunch::StreamLaunch(int device) : device_(device) { status_check(stream_for(device, &stream_), "CUDA stream"); }

StreamLaunch::Block::Block(int device, size_t bytes) : device_(device) {
  status_check(alloc_block(device, bytes ? bytes : 1, &p_), "CUDA scratch memory");
}
StreamLaunch::Block::~Block() {
  if (p_) free_block(device_, p_);
}

void StreamLaunch::raise_smem_limit(const void* kernel, size_t bytes) {
  cuda_check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)),
             "cudaFuncSetAttribute(MaxDynamicSharedMemorySize)");
}

void StreamLaunch::upload(void* dst, const void* host, size_t bytes) {
  if (!bytes) return;
  cuda_check(cudaSetDevice(device_), "cudaSetDevice");
  cuda_check(cudaMemcpyAsync(dst, host, bytes, cudaMemcpyHostToDevice, stream_), "copy to the device");
}

void StreamLaunch::download(void* host, const void* src, size_t bytes) {
  cuda_check(cudaSetDevice(device_), "cudaSetDevice");
  if (bytes) cuda_check(cudaMemcpyAsync(host, src, bytes, cudaMemcpyDeviceToHost, stream_), "copy to the host");
  cuda_check(cudaStreamSynchronize(stream_), "synchronize (faults of earlier kernels surface here)");
}

void StreamLaunch::copy(void* dst, const void* src, size_t bytes) {
  if (!bytes || dst == src) return;
  cuda_check(cudaSetDevice(device_), "cudaSetDevice");
  cuda_check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream_), "copy on the device");
}

void StreamLaunch::zero(void* dst, size_t bytes) {
  if (!bytes) return;
  cuda_check(cudaSetDevice(device_), "cudaSetDevice");
  cuda_check(cudaMemsetAsync(dst, 0, bytes, stream_), "cudaMemsetAsync");
}

void StreamLaunch::synchronize() {
  cuda_check(cudaSetDevice(device_), "cudaSetDevice");
  cuda_check(cudaStreamSynchronize(stream_), "synchronize");
}

int64_t StreamLaunch::capacity() const {
  size_t free_bytes = 0, total = 0;
  if (cudaSetDevice(device_) != cudaSuccess || cudaMemGetInfo(&free_bytes, &total) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return int64_t(total);
}

int StreamLaunch::multiprocessors() const {
  int n = 0;
  if (cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, device_) != cudaSuccess || n < 1) {
    cudaGetLastError();
    return 132;
  }
  return n;
}

// The C ABI's factory: a backend object for (device, compute dtype), or null with the reason.
int create_ops(int device, int compute, void** out) {
  *out = nullptr;
  DF_STATUS_TRY(check_device(device));
  try {
    const df::DType dtype = compute == DF_CUDA_BF16 ? df::DType::BF16 : df::DType::F32;
    *out = new KernelOps<StreamLaunch>(df::Device{df::DeviceKind::CUDA, device}, dtype, device);
    return DF_CUDA_OK;
  } catch (const std::exception& e) {
    return set_error(DF_CUDA_ERROR, std::string("creating the CUDA op backend: ") + e.what());
  }
}

int destroy_ops(void* ops) {
  delete static_cast<df::Ops*>(ops);
  return DF_CUDA_OK;
}

}  // namespace dfcuda

// The launcher of the CUDA op backend (the protocol of cuda/launch.cuh) on a device: kernels and
// copies go to the device's one stream (stream_for), scratch comes from the caching allocator, and
// matrix products go to cuBLASLt (cuda/gemm.cu). Failures are df::Error exceptions: Code::OutOfMemory
// for an allocation, Code::Device or Code::ArgValue for a bad device or argument, Code::Backend
// otherwise, naming the call.
#pragma once
#include <string>

#include "common.cuh"
#include "core/error.h"
#include "launch.cuh"

namespace dfcuda {

// Throws the df::Error of a failed CUDA call.
[[noreturn]] void throw_cuda(cudaError_t e, const char* what);
inline void cuda_check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw_cuda(e, what);
}
// Throws for a failed backend status (the C ABI's), with the thread's last error message: a bad
// argument (DF_CUDA_INVALID) stays an argument error, not a backend failure.
void status_check(int status, const char* what);
// The C ABI status of a df::Error caught at the ABI's edge (the inverse of status_check's mapping).
int status_of(const df::Error& e);

class StreamLaunch {
 public:
  explicit StreamLaunch(int device);

  template <class Kernel, class... A>
  void launch(Kernel kernel, dim3 grid, unsigned threads, size_t smem, A... args) {
    if (grid.x == 0 || grid.y == 0) return;
    if (smem > 48 * 1024) raise_smem_limit(reinterpret_cast<const void*>(kernel), smem);
    kernel<<<grid, threads, smem, stream_>>>(args...);
    cuda_check(cudaGetLastError(), "kernel launch");
  }

  // Device memory from the caching allocator for the rest of an op call (stream-ordered reuse).
  class Block {
   public:
    Block(int device, size_t bytes);
    ~Block();
    Block(Block&& o) noexcept : device_(o.device_), p_(o.p_) { o.p_ = nullptr; }
    Block(const Block&) = delete;
    Block& operator=(const Block&) = delete;
    void* get() const { return p_; }

   private:
    int device_;
    void* p_ = nullptr;
  };
  Block scratch(size_t bytes) { return Block(device_, bytes); }

  void upload(void* dst, const void* host, size_t bytes);
  void download(void* host, const void* src, size_t bytes);  // waits for the stream
  void copy(void* dst, const void* src, size_t bytes);
  void zero(void* dst, size_t bytes);
  void synchronize();
  int64_t capacity() const;
  int multiprocessors() const;
  void gemm(const GemmCall& g);  // cuda/gemm.cu

  int device() const { return device_; }
  cudaStream_t stream() const { return stream_; }

 private:
  void raise_smem_limit(const void* kernel, size_t bytes);
  int device_;
  cudaStream_t stream_ = nullptr;
};

}  // namespace dfcuda

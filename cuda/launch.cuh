// How the op backend's host code reaches a device: a "launcher" L, so that the same host code
// (cuda/kernel_ops.cuh) runs the kernels on a CUDA stream in the backend (StreamLaunch,
// cuda/ops.cu) and on the host emulation in the tests (EmuLaunch, below). A launcher provides:
//
//   launch(kernel, grid, threads, smem, args...)  a kernel launch (grid: dim3, threads: 1-D)
//   scratch(bytes)                                device memory until the returned object dies
//   upload / download / copy / zero              memory moves; download waits for the device
//   synchronize(), capacity()                    the device's memory in bytes (0: unknown)
//   multiprocessors()                            for sizing grids
//   gemm(GemmCall)                               a matrix product with cuBLASLt's semantics
//
// Errors are df::Error exceptions (Code::Backend, Code::OutOfMemory) naming what failed.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"

namespace dfcuda {

// A row-major product C[m, n] = alpha * op(A)[m, k] op(B)[k, n] (+ bias[n] on every row) + beta * C,
// A and B in `ab` (f32 or bf16), C in `c` (f32 or bf16), accumulated in f32 (TF32 off).
struct GemmCall {
  bool trans_a = false, trans_b = false;
  int64_t m = 0, n = 0, k = 0;
  const void* a = nullptr;
  int64_t lda = 0;
  const void* b = nullptr;
  int64_t ldb = 0;
  void* c = nullptr;
  int64_t ldc = 0;
  const void* bias = nullptr;  // in `ab`, or null
  float alpha = 1.f, beta = 0.f;
  df::DType ab = df::DType::F32, c_type = df::DType::F32;
};

// Threads per block of the elementwise kernels, and a grid for n items (grid-stride loops cover
// the rest when the grid is capped).
constexpr int kThreads = 256;
inline unsigned grid_for(int64_t n, int threads = kThreads) {
  const int64_t blocks = (n + threads - 1) / threads;
  return unsigned(blocks < 1 ? 1 : blocks > 65535 * 16 ? 65535 * 16 : blocks);
}

}  // namespace dfcuda

#ifdef DFCUDA_HOST_EMULATION
#include "host_emulation.h"

namespace dfcuda {

// The emulation's launcher: host memory, kernels run by dfemu::launch, GEMMs as plain loops with the
// same element types and f32 accumulation.
struct EmuLaunch {
  template <class Kernel, class... A>
  void launch(Kernel kernel, dim3 grid, unsigned threads, size_t smem, A... args) {
    if (grid.x == 0 || grid.y == 0) return;
    dfemu::launch(grid, dim3(threads), [&] { kernel(args...); }, smem);
  }
  struct Block {
    std::vector<unsigned char> bytes;
    void* get() { return bytes.data(); }
  };
  Block scratch(size_t bytes) { return Block{std::vector<unsigned char>(bytes + 16, 0xff)}; }
  void upload(void* d, const void* h, size_t n) { std::memcpy(d, h, n); }
  void download(void* h, const void* d, size_t n) { std::memcpy(h, d, n); }
  void copy(void* d, const void* s, size_t n) { std::memmove(d, s, n); }
  void zero(void* d, size_t n) { std::memset(d, 0, n); }
  void synchronize() {}
  int64_t capacity() const { return 0; }
  int multiprocessors() const { return 4; }  // a small "GPU": grids of a few strips
  void gemm(const GemmCall& g) {
    auto load = [](const void* p, df::DType t, int64_t i) {
      return t == df::DType::F32 ? static_cast<const float*>(p)[i] : df::bf16_to_f32(static_cast<const uint16_t*>(p)[i]);
    };
    for (int64_t i = 0; i < g.m; i++)
      for (int64_t j = 0; j < g.n; j++) {
        float acc = 0.f;
        for (int64_t p = 0; p < g.k; p++) {
          const float x = load(g.a, g.ab, g.trans_a ? p * g.lda + i : i * g.lda + p);
          const float y = load(g.b, g.ab, g.trans_b ? j * g.ldb + p : p * g.ldb + j);
          acc += x * y;
        }
        float r = g.alpha * acc;
        if (g.bias) r += load(g.bias, g.ab, j);
        const int64_t at = i * g.ldc + j;
        if (g.beta != 0.f) r += g.beta * load(g.c, g.c_type, at);
        if (g.c_type == df::DType::F32) static_cast<float*>(g.c)[at] = r;
        else static_cast<uint16_t*>(g.c)[at] = df::f32_to_bf16(r);
      }
  }
};

}  // namespace dfcuda
#endif

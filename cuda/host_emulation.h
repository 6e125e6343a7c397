// A CPU emulation of the CUDA features the attention kernels use, so that the very source of
// cuda/attention_kernels.cuh runs (slowly) on a machine without a GPU: test/native/
// test_attention_kernels_emulated.cpp compiles it with g++ and DFCUDA_HOST_EMULATION defined.
//
// Every CUDA thread of a CTA is an OS thread (kept for the next CTA); CTAs run one after another. __syncthreads is a
// barrier over the CTA's threads. The warp-collective operations (ldmatrix, mma.sync, shuffles)
// are rendezvous of the warp's 32 threads: each lane deposits its operands, a barrier, each lane
// computes its own result from all deposits exactly as the PTX ISA defines the fragments, another
// barrier. cp.async copies at once (waits are no-ops). The 16-bit element types are plain structs
// converted with the core's round-to-nearest-even conversions (core/dtype.h). Products of mma are
// accumulated in f32 in k order. What this cannot find: timing-dependent hazards that the
// emulation's stronger ordering hides (cp.async completing late), and anything arch-specific.
#pragma once
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "core/dtype.h"

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__
#define __align__(n)

struct dim3 {
  unsigned x = 1, y = 1, z = 1;
  dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
inline thread_local dim3 threadIdx, blockIdx;
inline dim3 gridDim, blockDim;

namespace dfemu {

class Barrier {
 public:
  explicit Barrier(int n) : n_(n) {}
  void wait() {
    std::unique_lock<std::mutex> lock(m_);
    const uint64_t gen = gen_;
    if (++count_ == n_) {
      count_ = 0;
      gen_++;
      cv_.notify_all();
    } else {
      cv_.wait(lock, [&] { return gen_ != gen; });
    }
  }

 private:
  std::mutex m_;
  std::condition_variable cv_;
  int n_, count_ = 0;
  uint64_t gen_ = 0;
};

// One warp's meeting point for collective operations.
struct Warp {
  Barrier barrier{32};
  const void* addr[32];
  uint32_t a[32][4], b[32][2];
  float c[32][4];
};

struct Cta {
  explicit Cta(int threads) : barrier(threads), warps(size_t((threads + 31) / 32)) {
    for (auto& w : warps) w = std::make_unique<Warp>();
  }
  Barrier barrier;
  std::vector<std::unique_ptr<Warp>> warps;
};

inline thread_local Cta* t_cta = nullptr;
inline int lane() { return int(threadIdx.x % 32); }
inline Warp& warp() { return *t_cta->warps[threadIdx.x / 32]; }
inline std::mutex g_atomic_mutex;

inline constexpr size_t kSmemBytes = size_t(1) << 18;
inline bool g_smem_overrun = false;

// Runs kernel() over the grid, one CTA at a time, a thread per CUDA thread. Shared memory starts
// every CTA filled with 0xff bytes (NaN as f32, bf16 and f16), so reading what was never written
// shows up in the results; bytes past `smem_bytes` must still be 0xff afterwards, else
// g_smem_overrun is set.
template <class F>
void launch(dim3 grid, dim3 block, F&& kernel, size_t smem_bytes = 0);

inline uint16_t load16(const void* base, int element) {
  uint16_t x;
  std::memcpy(&x, static_cast<const char*>(base) + 2 * element, 2);
  return x;
}
inline uint32_t pack16(uint16_t lo, uint16_t hi) { return uint32_t(lo) | (uint32_t(hi) << 16); }

// ldmatrix .x`count`: matrix i's rows come from lanes 8i .. 8i+7.
inline void ldmatrix(uint32_t* r, const void* row, int count, bool trans) {
  Warp& w = warp();
  const int l = lane();
  w.addr[l] = row;
  w.barrier.wait();
  for (int i = 0; i < count; i++) {
    if (!trans)  // row l / 4, columns 2 (l % 4), +1
      r[i] = pack16(load16(w.addr[8 * i + l / 4], 2 * (l % 4)), load16(w.addr[8 * i + l / 4], 2 * (l % 4) + 1));
    else  // rows 2 (l % 4), +1 of column l / 4
      r[i] = pack16(load16(w.addr[8 * i + 2 * (l % 4)], l / 4), load16(w.addr[8 * i + 2 * (l % 4) + 1], l / 4));
  }
  w.barrier.wait();
}

// mma.m16n8k16 with f32 accumulators; to_f32 widens one 16-bit element.
inline void mma(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1, float (*to_f32)(uint16_t)) {
  Warp& w = warp();
  const int l = lane();
  for (int i = 0; i < 4; i++) w.a[l][i] = a[i], w.c[l][i] = d[i];
  w.b[l][0] = b0, w.b[l][1] = b1;
  w.barrier.wait();
  // Gather A (16 x 16) and B (16 x 8) from the fragments of all lanes.
  float A[16][16], B[16][8];
  for (int ln = 0; ln < 32; ln++) {
    const int g = ln / 4, t = ln % 4;
    for (int i = 0; i < 4; i++) {
      const int row = g + (i % 2) * 8, k = 2 * t + (i / 2) * 8;
      A[row][k] = to_f32(uint16_t(w.a[ln][i] & 0xffff));
      A[row][k + 1] = to_f32(uint16_t(w.a[ln][i] >> 16));
    }
    for (int i = 0; i < 2; i++) {
      const int k = 2 * t + 8 * i;
      B[k][g] = to_f32(uint16_t(w.b[ln][i] & 0xffff));
      B[k + 1][g] = to_f32(uint16_t(w.b[ln][i] >> 16));
    }
  }
  const int g = l / 4, t = l % 4;
  for (int e = 0; e < 4; e++) {
    const int row = g + (e / 2) * 8, col = 2 * t + (e % 2);
    float acc = w.c[l][e];
    for (int k = 0; k < 16; k++) acc += A[row][k] * B[k][col];
    d[e] = acc;
  }
  w.barrier.wait();
}

}  // namespace dfemu

inline void __syncthreads() { dfemu::t_cta->barrier.wait(); }

inline float __shfl_xor_sync(unsigned, float x, int mask) {
  dfemu::Warp& w = dfemu::warp();
  const int l = dfemu::lane();
  std::memcpy(&w.c[l][0], &x, 4);
  w.barrier.wait();
  const float y = w.c[l ^ mask][0];
  w.barrier.wait();
  return y;
}

// Every lane reads `x` of lane src_lane (mod 32).
inline float __shfl_sync(unsigned, float x, int src_lane) {
  dfemu::Warp& w = dfemu::warp();
  const int l = dfemu::lane();
  std::memcpy(&w.c[l][0], &x, 4);
  w.barrier.wait();
  const float y = w.c[src_lane & 31][0];
  w.barrier.wait();
  return y;
}

inline float atomicAdd(float* p, float x) {
  std::lock_guard<std::mutex> lock(dfemu::g_atomic_mutex);
  const float old = *p;
  *p = old + x;
  return old;
}

namespace dfcuda {

// The kernels' dynamic shared memory (block-scope `extern __shared__ ... smem[]` names this).
alignas(16) inline unsigned char smem[dfemu::kSmemBytes];

// 16-bit storage types standing in for __nv_bfloat16 and __half.
struct emu_bf16 {
  uint16_t bits;
};
struct emu_f16 {
  uint16_t bits;
};

template <class T>
struct Mma;

template <>
struct Mma<emu_bf16> {
  static float widen(uint16_t h) { return df::bf16_to_f32(h); }
  static uint32_t pack(float lo, float hi) { return dfemu::pack16(df::f32_to_bf16(lo), df::f32_to_bf16(hi)); }
  static float to_float(emu_bf16 x) { return widen(x.bits); }
  static emu_bf16 from_float(float x) { return emu_bf16{df::f32_to_bf16(x)}; }
  static void mma(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) { dfemu::mma(d, a, b0, b1, widen); }
};

template <>
struct Mma<emu_f16> {
  static float widen(uint16_t h) { return df::f16_to_f32(h); }
  static uint32_t pack(float lo, float hi) { return dfemu::pack16(df::f32_to_f16(lo), df::f32_to_f16(hi)); }
  static float to_float(emu_f16 x) { return widen(x.bits); }
  static emu_f16 from_float(float x) { return emu_f16{df::f32_to_f16(x)}; }
  static void mma(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) { dfemu::mma(d, a, b0, b1, widen); }
};

inline void ldmatrix_x4(uint32_t (&r)[4], const void* row) { dfemu::ldmatrix(r, row, 4, false); }
inline void ldmatrix_x4_trans(uint32_t (&r)[4], const void* row) { dfemu::ldmatrix(r, row, 4, true); }
inline void ldmatrix_x2_trans(uint32_t (&r)[2], const void* row) { dfemu::ldmatrix(r, row, 2, true); }

inline void cp_async_16(void* dst, const void* src, bool valid) {
  if (valid) std::memcpy(dst, src, 16);
  else std::memset(dst, 0, 16);
}
inline void cp_async_commit() {}
template <int n>
inline void cp_async_wait() {}

inline float quad_max(float x) {
  x = std::fmax(x, __shfl_xor_sync(0xffffffffu, x, 1));
  return std::fmax(x, __shfl_xor_sync(0xffffffffu, x, 2));
}
inline float quad_sum(float x) {
  x += __shfl_xor_sync(0xffffffffu, x, 1);
  return x + __shfl_xor_sync(0xffffffffu, x, 2);
}

}  // namespace dfcuda

// Vector types used by the integrator kernel.
struct alignas(16) float4 {
  float x, y, z, w;
};
inline float4 make_float4(float x, float y, float z, float w) { return float4{x, y, z, w}; }

// Vector types used by the pyramid kernels' loads and stores.
struct alignas(8) uint2 {
  unsigned x, y;
};
struct alignas(16) uint4 {
  unsigned x, y, z, w;
};

namespace dfemu {

// Threads that stay for the next launch: a CTA's threads must all run at once (they meet at
// barriers), and starting hundreds of OS threads per CTA was most of the emulation's time.
class ThreadTeam {
 public:
  ~ThreadTeam() {
    for (auto& w : workers_) {
      std::lock_guard<std::mutex> lock(w->m);
      w->quit = true;
      w->cv.notify_one();
    }
    for (auto& w : workers_) w->thread.join();
  }
  // Runs fn(i) for i in [0, n), each on its own thread, and returns when all are done.
  void run(int n, const std::function<void(int)>& fn) {
    while (int(workers_.size()) < n) {
      workers_.push_back(std::make_unique<Worker>());
      Worker* w = workers_.back().get();
      const int i = int(workers_.size()) - 1;
      w->thread = std::thread([this, w, i] { work(*w, i); });
    }
    pending_ = n;
    for (int i = 0; i < n; i++) {  // wake exactly the n threads needed, each on its own signal
      Worker& w = *workers_[size_t(i)];
      std::lock_guard<std::mutex> lock(w.m);
      w.fn = &fn;
      w.cv.notify_one();
    }
    std::unique_lock<std::mutex> lock(done_m_);
    done_.wait(lock, [&] { return pending_ == 0; });
  }

 private:
  struct Worker {
    std::thread thread;
    std::mutex m;
    std::condition_variable cv;
    const std::function<void(int)>* fn = nullptr;
    bool quit = false;
  };
  void work(Worker& w, int i) {
    for (;;) {
      const std::function<void(int)>* fn;
      {
        std::unique_lock<std::mutex> lock(w.m);
        w.cv.wait(lock, [&] { return w.fn != nullptr || w.quit; });
        if (w.quit) return;
        fn = w.fn;
        w.fn = nullptr;
      }
      (*fn)(i);
      std::lock_guard<std::mutex> lock(done_m_);
      if (--pending_ == 0) done_.notify_one();
    }
  }
  std::vector<std::unique_ptr<Worker>> workers_;
  std::mutex done_m_;
  std::condition_variable done_;
  int pending_ = 0;
};

inline ThreadTeam& team() {
  static ThreadTeam t;
  return t;
}

}  // namespace dfemu

template <class F>
void dfemu::launch(dim3 grid, dim3 block, F&& kernel, size_t smem_bytes) {
  gridDim = grid;
  blockDim = block;
  for (unsigned by = 0; by < grid.y; by++)
    for (unsigned bx = 0; bx < grid.x; bx++) {
      std::memset(dfcuda::smem, 0xff, kSmemBytes);
      Cta cta(int(block.x));
      const std::function<void(int)> thread = [&](int t) {
        threadIdx = dim3(unsigned(t));
        blockIdx = dim3(bx, by);
        t_cta = &cta;
        kernel();
      };
      team().run(int(block.x), thread);
      for (size_t i = smem_bytes; i < kSmemBytes; i++)
        if (dfcuda::smem[i] != 0xff) {
          g_smem_overrun = true;
          break;
        }
    }
}

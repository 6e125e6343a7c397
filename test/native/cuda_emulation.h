// The CUDA kernels' own source run on the CPU (cuda/host_emulation.h), launched by the very host
// sequences the backend uses (cuda/launch.cuh's EmuLaunch): shared by the emulated kernel tests and
// by the emulated CUDA backend of the op-parity test. Include only in a translation unit compiled
// with -fno-strict-aliasing (see CMakeLists.txt).
#pragma once
#define DFCUDA_HOST_EMULATION
#include <cstring>
#include <string>
#include <vector>

#include "../../cuda/kernel_ops.cuh"

namespace cudaemu {

using namespace dfcuda;

// Pyramid launches on the emulation: one pass per level pair, copies by memcpy.
struct EmuPyramidLaunch {
  int launches = 0;
  template <class Kernel, class... Args>
  int operator()(Kernel kernel, const PairGeometry& g, Args... args) {
    launches++;
    dfemu::launch(dim3(g.blocks()), dim3(kPyramidThreads), [&] { kernel(args..., g); });
    return DF_CUDA_OK;
  }
  int copy(void* dst, const void* src, size_t bytes) {
    std::memcpy(dst, src, bytes);
    return DF_CUDA_OK;
  }
};

// The CUDA op backend on the emulation: host memory, the backend's own host code and kernels.
using EmulatedOps = KernelOps<EmuLaunch>;

// A tile variant of the attention forward (the mainline is run_attention_forward_tiles). Returns
// false when the kernel wrote shared memory past its size.
template <class T, int D, int kWarps = 4, int kM = 1>
bool attention_forward(const AttentionParams& p, int64_t heads) {
  using Tile = ForwardTile<D, kWarps, kM>;
  dfemu::g_smem_overrun = false;
  dfemu::launch(dim3(unsigned(heads), unsigned((p.nq + Tile::kBr - 1) / Tile::kBr)), dim3(Tile::kThreads),
                [&] { attention_forward_kernel<T, D, kWarps, kM>(p); }, Tile::template smem_bytes<T>());
  return !dfemu::g_smem_overrun;
}

// The backward with a query tile of kBr rows (the mainline's is kBackwardQueries).
template <class T, int D, int kBr = 64>
bool attention_backward(AttentionParams p, int64_t heads) {
  dfemu::g_smem_overrun = false;
  if (kBr == kBackwardQueries) {
    EmuLaunch l;
    run_attention_backward_tiles<T, D>(l, p, heads);
    return !dfemu::g_smem_overrun;
  }
  const int64_t rows = heads * p.nq, nqd = rows * D;
  std::vector<float> accum(size_t(nqd), 0.f), delta(size_t(rows), NAN);
  p.dq_accum = accum.data();
  p.delta = delta.data();
  dfemu::launch(dim3(unsigned((rows + 7) / 8)), dim3(256), [&] {
    attention_backward_delta_kernel<T, D>(static_cast<const T*>(p.o), static_cast<const T*>(p.d_o), delta.data(), rows);
  });
  using Tile = BackwardTile<D, kBr>;
  dfemu::launch(dim3(unsigned(heads), unsigned((p.nk + Tile::kBc - 1) / Tile::kBc)), dim3(Tile::kThreads),
                [&] { attention_backward_kernel<T, D, kBr>(p); }, Tile::template smem_bytes<T>());
  const bool ok = !dfemu::g_smem_overrun;
  dfemu::launch(dim3(2), dim3(256),
                [&] { attention_backward_dq_kernel<T>(accum.data(), static_cast<T*>(p.out), p.scale, nqd); });
  return ok;
}

// One fused integrator update (cuda/integrator.cu's launch, the float4 path when every group size
// is a multiple of 4). Returns the make_table status.
template <Op kOp>
int integrator(const DfCudaGroupedRows& rows, const float* x, const float* a, const float* b, const float* dt,
               float w, float* out, bool* used_vec4 = nullptr) {
  GroupTable t;
  int64_t grid = 0;
  bool vec4 = false;
  std::string error;
  const int status = make_table("integrator", &rows, &t, &grid, &vec4, [&](const std::string& m) {
    error = m;
    return DF_CUDA_INVALID;
  });
  if (status != DF_CUDA_OK || grid == 0) return status;
  if (used_vec4) *used_vec4 = vec4;
  dfemu::launch(dim3(unsigned(grid)), dim3(kIntegratorThreads), [&] {
    if (vec4) integrator_kernel<kOp, true>(t, x, a, b, dt, w, out);
    else integrator_kernel<kOp, false>(t, x, a, b, dt, w, out);
  });
  return DF_CUDA_OK;
}

}  // namespace cudaemu

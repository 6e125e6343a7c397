// The masked per-stage MSE on CUDA (twin of native/ops/loss.cpp): one block per sample sums its
// squared errors in double and writes the gradient; the host adds the per-sample sums in order.
#pragma once
#include <vector>

#include "launch.cuh"
#include "numeric.cuh"

namespace dfcuda {

constexpr int kReduceThreads = 256;

// Sums `acc` over the block in double through shared memory (kReduceThreads doubles); thread 0
// gets the total.
__device__ __forceinline__ double block_sum(double acc) {
  extern __shared__ __align__(16) unsigned char smem[];
  double* part = reinterpret_cast<double*>(smem);
  part[threadIdx.x] = acc;
  __syncthreads();
  for (int s = kReduceThreads / 2; s > 0; s /= 2) {
    if (int(threadIdx.x) < s) part[threadIdx.x] += part[threadIdx.x + s];
    __syncthreads();
  }
  return part[0];
}

DF_KERNEL void masked_mse_kernel(const float* g, const float* v, const float* weight, int64_t stride, int64_t n,
                                  float grad_scale, float grad_weight, float* dg, double* per_sample) {
  const int64_t b = blockIdx.x;
  const float w = weight[b * stride];
  const float* gb = g + b * n;
  const float* vb = v + b * n;
  double acc = 0.0;
  const float k = grad_scale * w;
  for (int64_t i = threadIdx.x; i < n; i += kReduceThreads) {
    if (w != 0.f) {
      const double d = double(gb[i]) - double(vb[i]);
      acc += d * d;
    }
    if (dg) {
      float x = w != 0.f ? k * (gb[i] - vb[i]) : 0.f;
      if (grad_weight != 1.f) x *= grad_weight;
      dg[b * n + i] = x;
    }
  }
  const double total = block_sum(acc);
  if (threadIdx.x == 0) per_sample[b] = double(w) * total;
}

// L = sum_b w_b sum_i (g - v)^2 / (B n); dg (nullable) = grad_weight * dL/dg.
template <class L>
double run_masked_mse(L& l, const float* g, const float* v, const float* weight, int64_t stride, int64_t batch, int64_t n,
                      float* dg, float grad_weight) {
  auto sums = l.scratch(size_t(batch) * sizeof(double));
  const double norm = 1.0 / (double(batch) * double(n));
  l.launch(masked_mse_kernel, dim3(unsigned(batch)), kReduceThreads, kReduceThreads * sizeof(double), g, v, weight, stride,
           n, float(2.0 * norm), grad_weight, dg, static_cast<double*>(sums.get()));
  std::vector<double> host(static_cast<size_t>(batch));
  l.download(host.data(), sums.get(), host.size() * sizeof(double));
  double total = 0.0;
  for (double x : host) total += x;
  return total * norm;
}

}  // namespace dfcuda

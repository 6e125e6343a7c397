// The optimiser on CUDA (twin of native/ops/optimizer.cpp): the global gradient norm (fixed
// blocks of 16384 summed in double, the block sums added on the host in order) and the fused AdamW
// + EMA update over the single parameter buffer, which also writes the compute-type copy of the
// weights under a mixed-precision policy.
#pragma once
#include <cmath>
#include <vector>

#include "loss.cuh"

namespace dfcuda {

constexpr int64_t kNormChunk = 1 << 14;

DF_KERNEL void grad_norm_kernel(const float* g, int64_t n, double* partial) {
  const int64_t i0 = int64_t(blockIdx.x) * kNormChunk, i1 = i0 + kNormChunk < n ? i0 + kNormChunk : n;
  double acc = 0.0;
  for (int64_t i = i0 + threadIdx.x; i < i1; i += kReduceThreads) acc += double(g[i]) * double(g[i]);
  const double total = block_sum(acc);
  if (threadIdx.x == 0) partial[blockIdx.x] = total;
}

template <class L>
double run_grad_norm(L& l, const float* g, int64_t n) {
  const int64_t blocks = (n + kNormChunk - 1) / kNormChunk;
  if (blocks == 0) return 0.0;
  auto partial = l.scratch(size_t(blocks) * sizeof(double));
  l.launch(grad_norm_kernel, dim3(unsigned(blocks)), kReduceThreads, kReduceThreads * sizeof(double), g, n,
           static_cast<double*>(partial.get()));
  std::vector<double> host(static_cast<size_t>(blocks));
  l.download(host.data(), partial.get(), host.size() * sizeof(double));
  double total = 0.0;
  for (double x : host) total += x;
  return std::sqrt(total);
}

struct AdamWConstants {
  float b1, b2, eps, decay, step_size, sqrt_bc2, grad_scale, ema_d, ema_r;
};

// The same operation order as the CPU op (and torch.optim.AdamW's single-tensor path).
template <class T>
DF_KERNEL void adamw_kernel(float* p, const float* g, float* m, float* v, int64_t n, AdamWConstants c, float* ema,
                             T* p_compute) {
  DF_GRID_LOOP(i, n) {
    const float gi = g[i] * c.grad_scale;
    const float mi = c.b1 * m[i] + (1.f - c.b1) * gi;
    const float vi = c.b2 * v[i] + (1.f - c.b2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    const float denom = div_rn(sqrtf_rn(vi), c.sqrt_bc2) + c.eps;
    const float pi = p[i] * c.decay - c.step_size * div_rn(mi, denom);
    p[i] = pi;
    if (ema) ema[i] = c.ema_d * ema[i] + c.ema_r * pi;
    if (p_compute) p_compute[i] = from_f32<T>(pi);
  }
}

// o: df::AdamWOptions.
template <class T, class L, class O>
void run_adamw(L& l, float* p, const float* g, float* m, float* v, int64_t n, int64_t step, double lr, const O& o,
               float grad_scale, float* ema, void* p_compute) {
  AdamWConstants c;
  c.b1 = float(o.beta1), c.b2 = float(o.beta2), c.eps = float(o.eps);
  c.decay = float(1.0 - lr * o.weight_decay);
  const double bc1 = 1.0 - std::pow(o.beta1, double(step)), bc2 = 1.0 - std::pow(o.beta2, double(step));
  c.step_size = float(lr / bc1);
  c.sqrt_bc2 = float(std::sqrt(bc2));
  c.grad_scale = grad_scale;
  c.ema_d = float(o.ema_decay), c.ema_r = float(1.0 - o.ema_decay);
  l.launch(adamw_kernel<T>, dim3(grid_for(n)), kThreads, 0, p, g, m, v, n, c, ema, static_cast<T*>(p_compute));
}

}  // namespace dfcuda

// LayerNorm (no affine) fused with adaLN's modulation, and the gated residual, on CUDA (twins of
// native/ops/norm.cpp). x, dx, out and dout are the f32 residual stream; y, shift, scale, gate and
// their gradients are in the compute type T; mean and rstd f32. Rows are reduced by one warp each;
// the per-batch-row parameter gradients (summed over tokens) by one thread per column, tokens in
// order, so results do not depend on the launch.
#pragma once
#include "launch.cuh"
#include "numeric.cuh"

namespace dfcuda {

__device__ __forceinline__ float warp_sum(float v) {
  for (int s = 16; s > 0; s /= 2) v += __shfl_xor_sync(0xffffffffu, v, s);
  return v;
}

constexpr int kRowsPerBlock = kThreads / 32;  // one warp per row

template <class T>
DF_KERNEL void layernorm_modulate_forward_kernel(const float* x, const T* shift, const T* scale, T* y, float* mean,
                                                  float* rstd, int64_t rows, int64_t tokens, int64_t D,
                                                  int64_t mod_stride, float eps) {
  const int64_t row = int64_t(blockIdx.x) * kRowsPerBlock + threadIdx.x / 32;
  const int lane = int(threadIdx.x % 32);
  if (row >= rows) return;  // the whole warp leaves together
  const float* xr = x + row * D;
  float sum = 0.f;
  for (int64_t d = lane; d < D; d += 32) sum += xr[d];
  const float mu = warp_sum(sum) / float(D);
  float var = 0.f;
  for (int64_t d = lane; d < D; d += 32) {
    const float c = xr[d] - mu;
    var += c * c;
  }
  const float rs = 1.f / sqrtf_rn(warp_sum(var) / float(D) + eps);
  if (lane == 0) mean[row] = mu, rstd[row] = rs;
  const int64_t b = row / tokens;
  const T* sh = shift + b * mod_stride;
  const T* sc = scale + b * mod_stride;
  T* yr = y + row * D;
  for (int64_t d = lane; d < D; d += 32) yr[d] = from_f32<T>((xr[d] - mu) * rs * (1.f + to_f32(sc[d])) + to_f32(sh[d]));
}

// dx = rstd (g - mean(g) - xhat mean(g xhat)) with g = dy (1 + scale), per row.
template <class T>
DF_KERNEL void layernorm_modulate_backward_dx_kernel(const float* x, const T* scale, const float* mean, const float* rstd,
                                                      const T* dy, float* dx, int64_t rows, int64_t tokens, int64_t D,
                                                      int64_t mod_stride, bool accumulate) {
  const int64_t row = int64_t(blockIdx.x) * kRowsPerBlock + threadIdx.x / 32;
  const int lane = int(threadIdx.x % 32);
  if (row >= rows) return;
  const float* xr = x + row * D;
  const T* dyr = dy + row * D;
  const T* sc = scale + (row / tokens) * mod_stride;
  const float mu = mean[row], rs = rstd[row];
  float sg = 0.f, sgx = 0.f;
  for (int64_t d = lane; d < D; d += 32) {
    const float g = to_f32(dyr[d]) * (1.f + to_f32(sc[d]));
    sg += g;
    sgx += g * (xr[d] - mu) * rs;
  }
  const float mg = warp_sum(sg) / float(D), mgx = warp_sum(sgx) / float(D);
  float* dxr = dx + row * D;
  for (int64_t d = lane; d < D; d += 32) {
    const float g = to_f32(dyr[d]) * (1.f + to_f32(sc[d]));
    const float v = rs * (g - mg - (xr[d] - mu) * rs * mgx);
    dxr[d] = accumulate ? dxr[d] + v : v;
  }
}

// dshift[b, d] = sum_n dy[b, n, d], dscale[b, d] = sum_n dy xhat: one thread per (b, d).
template <class T>
DF_KERNEL void layernorm_modulate_backward_params_kernel(const float* x, const float* mean, const float* rstd, const T* dy,
                                                          T* dshift, T* dscale, int64_t batch, int64_t tokens, int64_t D,
                                                          int64_t mod_stride) {
  DF_GRID_LOOP(i, batch * D) {
    const int64_t b = i / D, d = i % D;
    float sh = 0.f, sc = 0.f;
    for (int64_t n = 0; n < tokens; n++) {
      const int64_t r = b * tokens + n;
      const float g = to_f32(dy[r * D + d]);
      sh += g;
      sc += g * (x[r * D + d] - mean[r]) * rstd[r];
    }
    dshift[b * mod_stride + d] = from_f32<T>(sh);
    dscale[b * mod_stride + d] = from_f32<T>(sc);
  }
}

template <class T>
DF_KERNEL void gated_residual_forward_kernel(const float* x, const T* y, const T* gate, float* out, int64_t rows_per_batch,
                                              int64_t D, int64_t mod_stride, int64_t n) {
  DF_GRID_LOOP(i, n) {
    const int64_t b = i / (rows_per_batch * D), d = i % D;
    out[i] = x[i] + to_f32(gate[b * mod_stride + d]) * to_f32(y[i]);
  }
}

template <class T>
DF_KERNEL void gated_residual_backward_dy_kernel(const T* gate, const float* dout, T* dy, int64_t rows_per_batch, int64_t D,
                                                  int64_t mod_stride, int64_t n) {
  DF_GRID_LOOP(i, n) {
    const int64_t b = i / (rows_per_batch * D), d = i % D;
    dy[i] = from_f32<T>(to_f32(gate[b * mod_stride + d]) * dout[i]);
  }
}

template <class T>
DF_KERNEL void gated_residual_backward_gate_kernel(const T* y, const float* dout, T* dgate, int64_t batch, int64_t tokens,
                                                    int64_t D, int64_t mod_stride) {
  DF_GRID_LOOP(i, batch * D) {
    const int64_t b = i / D, d = i % D;
    float acc = 0.f;
    for (int64_t n = 0; n < tokens; n++) acc += dout[(b * tokens + n) * D + d] * to_f32(y[(b * tokens + n) * D + d]);
    dgate[b * mod_stride + d] = from_f32<T>(acc);
  }
}

// ---- host sequences (s: df::ModulatedNormShape) ----

template <class T, class L, class S>
void run_layernorm_modulate_forward(L& l, const float* x, const void* shift, const void* scale, void* y, float* mean,
                                    float* rstd, const S& s) {
  const int64_t rows = s.batch * s.tokens;
  l.launch(layernorm_modulate_forward_kernel<T>, dim3(unsigned((rows + kRowsPerBlock - 1) / kRowsPerBlock)), kThreads, 0,
           x, static_cast<const T*>(shift), static_cast<const T*>(scale), static_cast<T*>(y), mean, rstd, rows, s.tokens,
           s.dim, s.mod_stride, s.eps);
}

template <class T, class L, class S>
void run_layernorm_modulate_backward(L& l, const float* x, const void* scale, const float* mean, const float* rstd,
                                     const void* dy, float* dx, void* dshift, void* dscale, const S& s, bool accumulate) {
  const int64_t rows = s.batch * s.tokens;
  l.launch(layernorm_modulate_backward_dx_kernel<T>, dim3(unsigned((rows + kRowsPerBlock - 1) / kRowsPerBlock)), kThreads,
           0, x, static_cast<const T*>(scale), mean, rstd, static_cast<const T*>(dy), dx, rows, s.tokens, s.dim,
           s.mod_stride, accumulate);
  l.launch(layernorm_modulate_backward_params_kernel<T>, dim3(grid_for(s.batch * s.dim)), kThreads, 0, x, mean, rstd,
           static_cast<const T*>(dy), static_cast<T*>(dshift), static_cast<T*>(dscale), s.batch, s.tokens, s.dim,
           s.mod_stride);
}

template <class T, class L, class S>
void run_gated_residual_forward(L& l, const float* x, const void* y, const void* gate, float* out, const S& s) {
  const int64_t n = s.batch * s.tokens * s.dim;
  l.launch(gated_residual_forward_kernel<T>, dim3(grid_for(n)), kThreads, 0, x, static_cast<const T*>(y),
           static_cast<const T*>(gate), out, s.tokens, s.dim, s.mod_stride, n);
}

template <class T, class L, class S>
void run_gated_residual_backward(L& l, const void* y, const void* gate, const float* dout, void* dy, void* dgate,
                                 const S& s) {
  const int64_t n = s.batch * s.tokens * s.dim;
  l.launch(gated_residual_backward_dy_kernel<T>, dim3(grid_for(n)), kThreads, 0, static_cast<const T*>(gate), dout,
           static_cast<T*>(dy), s.tokens, s.dim, s.mod_stride, n);
  l.launch(gated_residual_backward_gate_kernel<T>, dim3(grid_for(s.batch * s.dim)), kThreads, 0, static_cast<const T*>(y),
           dout, static_cast<T*>(dgate), s.batch, s.tokens, s.dim, s.mod_stride);
}

}  // namespace dfcuda

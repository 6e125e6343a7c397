// The DiT's embeddings and patch layout on CUDA (twins of native/ops/embeddings.cpp): patchify and
// unpatchify (f32 images, compute-type tokens), sinusoidal timestep features (computed in double,
// rounded once, as on the CPU), and embedding-table rows forward and backward (rows accumulated in
// batch order by one thread per column: the same sums on every launch).
#pragma once
#include "launch.cuh"
#include "numeric.cuh"

namespace dfcuda {

// The token element of image element i of [B, C, H, W] with patch size p; channel_first: the
// (c, py, px) order inside a token, else (py, px, c).
__device__ __forceinline__ int64_t patch_token_index(int64_t i, int64_t C, int64_t H, int64_t W, int64_t p,
                                                     bool channel_first) {
  const int64_t x = i % W, y = (i / W) % H, c = (i / (W * H)) % C, b = i / (W * H * C);
  const int64_t gw = W / p, tokens = (H / p) * gw, td = C * p * p;
  const int64_t py = y % p, px = x % p;
  const int64_t k = channel_first ? (c * p + py) * p + px : (py * p + px) * C + c;
  return (b * tokens + (y / p) * gw + x / p) * td + k;
}

template <class T>
DF_KERNEL void patchify_kernel(const float* image, T* tokens, int64_t C, int64_t H, int64_t W, int64_t p,
                                bool channel_first, int64_t n) {
  DF_GRID_LOOP(i, n) tokens[patch_token_index(i, C, H, W, p, channel_first)] = from_f32<T>(image[i]);
}

template <class T>
DF_KERNEL void unpatchify_kernel(const T* tokens, float* image, int64_t C, int64_t H, int64_t W, int64_t p,
                                  bool channel_first, int64_t n) {
  DF_GRID_LOOP(i, n) image[i] = to_f32(tokens[patch_token_index(i, C, H, W, p, channel_first)]);
}

template <class T>
DF_KERNEL void timestep_features_kernel(const float* time, int64_t stride, int64_t batch, float time_scale, int64_t dim,
                                         float max_period, T* out) {
  const int64_t half = dim / 2;
  DF_GRID_LOOP(i, batch * (half + 1)) {
    const int64_t b = i / (half + 1), k = i % (half + 1);
    T* o = out + b * dim;
    if (k == half) {  // the trailing zero of an odd dim
      if (dim % 2) o[dim - 1] = from_f32<T>(0.f);
      continue;
    }
    const double t = double(time[b * stride]) * double(time_scale);
    const double arg = t * exp(-log(double(max_period)) * double(k) / double(half));
    o[k] = from_f32<T>(float(cos(arg)));
    o[half + k] = from_f32<T>(float(sin(arg)));
  }
}

template <class T>
DF_KERNEL void embedding_forward_kernel(const T* table, const int32_t* index, T* out, int64_t dim, int64_t n) {
  DF_GRID_LOOP(i, n) out[i] = table[int64_t(index[i / dim]) * dim + i % dim];
}

template <class T>
DF_KERNEL void embedding_backward_kernel(const T* dout, const int32_t* index, float* dtable, int64_t batch, int64_t dim) {
  DF_GRID_LOOP(d, dim) {
    for (int64_t b = 0; b < batch; b++) dtable[int64_t(index[b]) * dim + d] += to_f32(dout[b * dim + d]);
  }
}

// ---- host sequences (s: df::PatchShape) ----

template <class T, class L, class S>
void run_patchify(L& l, const float* image, void* tokens, const S& s, bool channel_first) {
  const int64_t n = s.batch * s.channels * s.height * s.width;
  l.launch(patchify_kernel<T>, dim3(grid_for(n)), kThreads, 0, image, static_cast<T*>(tokens), s.channels, s.height,
           s.width, s.patch, channel_first, n);
}

template <class T, class L, class S>
void run_unpatchify(L& l, const void* tokens, float* image, const S& s, bool channel_first) {
  const int64_t n = s.batch * s.channels * s.height * s.width;
  l.launch(unpatchify_kernel<T>, dim3(grid_for(n)), kThreads, 0, static_cast<const T*>(tokens), image, s.channels,
           s.height, s.width, s.patch, channel_first, n);
}

template <class T, class L>
void run_timestep_features(L& l, const float* time, int64_t stride, int64_t batch, float time_scale, int64_t dim,
                           float max_period, void* out) {
  l.launch(timestep_features_kernel<T>, dim3(grid_for(batch * (dim / 2 + 1))), kThreads, 0, time, stride, batch,
           time_scale, dim, max_period, static_cast<T*>(out));
}

template <class T, class L>
void run_embedding_forward(L& l, const void* table, const int32_t* index, void* out, int64_t batch, int64_t dim) {
  l.launch(embedding_forward_kernel<T>, dim3(grid_for(batch * dim)), kThreads, 0, static_cast<const T*>(table), index,
           static_cast<T*>(out), dim, batch * dim);
}

template <class T, class L>
void run_embedding_backward(L& l, const void* dout, const int32_t* index, float* dtable, int64_t batch, int64_t dim) {
  l.launch(embedding_backward_kernel<T>, dim3(grid_for(dim)), kThreads, 0, static_cast<const T*>(dout), index, dtable,
           batch, dim);
}

}  // namespace dfcuda

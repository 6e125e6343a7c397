// The layouts around attention on CUDA (twins of native/ops/heads.cpp): qkv [B, N, 3, H, hd] to
// q, k, v [B, H, N, hd], the heads concatenated per token again, and the inverses. One thread per
// element of the head-major side.
#pragma once
#include "launch.cuh"
#include "numeric.cuh"

namespace dfcuda {

// For head-major element i of [B, H, N, hd]: the token-major element of [B, N, H, hd].
__device__ __forceinline__ int64_t token_major(int64_t i, int64_t N, int64_t H, int64_t hd) {
  const int64_t e = i % hd, n = (i / hd) % N, h = (i / (hd * N)) % H, b = i / (hd * N * H);
  return ((b * N + n) * H + h) * hd + e;
}

template <class T>
DF_KERNEL void split_heads_kernel(const T* qkv, T* q, T* k, T* v, int64_t N, int64_t H, int64_t hd, int64_t n,
                                   bool backward) {
  DF_GRID_LOOP(i, n) {
    const int64_t t = token_major(i, N, H, hd), D = H * hd, tok = t / D, inner = t % D;
    T* dst[3] = {q, k, v};
    for (int w = 0; w < 3; w++) {
      T* packed = const_cast<T*>(qkv) + (tok * 3 + w) * D + inner;
      if (backward) *packed = dst[w][i];
      else dst[w][i] = *packed;
    }
  }
}

template <class T>
DF_KERNEL void merge_heads_kernel(const T* src, T* dst, int64_t N, int64_t H, int64_t hd, int64_t n, bool backward) {
  DF_GRID_LOOP(i, n) {
    const int64_t t = token_major(i, N, H, hd);
    if (backward) dst[i] = src[t];  // dcat (token-major) -> d_o (head-major)
    else dst[t] = src[i];           // o (head-major) -> cat (token-major)
  }
}

// ---- host sequences (s: df::HeadsShape) ----

template <class T, class L, class S>
void run_split_heads(L& l, const void* qkv, void* q, void* k, void* v, const S& s, bool backward) {
  const int64_t n = s.batch * s.heads * s.tokens * s.head_dim;
  l.launch(split_heads_kernel<T>, dim3(grid_for(n)), kThreads, 0, static_cast<const T*>(qkv), static_cast<T*>(q),
           static_cast<T*>(k), static_cast<T*>(v), s.tokens, s.heads, s.head_dim, n, backward);
}

template <class T, class L, class S>
void run_merge_heads(L& l, const void* src, void* dst, const S& s, bool backward) {
  const int64_t n = s.batch * s.heads * s.tokens * s.head_dim;
  l.launch(merge_heads_kernel<T>, dim3(grid_for(n)), kThreads, 0, static_cast<const T*>(src), static_cast<T*>(dst),
           s.tokens, s.heads, s.head_dim, n, backward);
}

}  // namespace dfcuda

// The pyramid kernels (the CUDA twins of native/ops/pyramid.cpp) and their host-side driver, shared
// by cuda/pyramid.cu (argument checks, scratch, stream) and the host emulation test (test/native/
// test_pyramid_kernels_emulated.cpp), so that the test runs the very code the GPU runs.
//
// One launch per level pair. Decompose reads the finer image once and writes the coarser image and
// the detail; recompose reads the coarser image and the detail once and writes the finer image. The
// arithmetic is the CPU op's, term for term (down = mean or Haar LL of each 2x2 block; Laplacian up =
// bilinear x2 with half-pixel centres, edges clamped; Haar up = LL / 2 on the block's 4 pixels).
//
// Work split: a lane owns two groups of V = 2 adjacent coarse columns (f32 fine rows) or one of
// V = 4 (bf16 fine rows): 16 bytes of each fine row per group (less where wc is not a multiple of
// V), and walks down a strip of coarse rows. Group g of lane L is the (32 g + L)-th group of its
// warp's span of the flattened [planes * wc] columns, so every vector load or store instruction of
// a warp covers one contiguous span, and narrow images still fill every lane. The Laplacian lane
// keeps a window of three horizontally upsampled coarse rows (k-1, k, k+1) in registers, so every
// fine element is loaded once per strip (plus the halo rows just above and below it); the coarse
// neighbours left and right of a group come from the adjacent lanes by shuffles (the warp's two
// outermost are loaded with the rows). A row's first and last columns take no neighbour (the edge
// clamp), which is also why a warp may straddle planes. Each row's loads are issued one row ahead
// of its arithmetic and stores. With 16-byte aligned bases every vector is naturally aligned.
//
// Element types: f32, or bf16 storage with f32 math. A bf16 pyramid keeps its intermediate images
// (the workspace) in f32, so its stages are the f32 results rounded once.
#pragma once
#include <cstdint>
#include <string>

#ifdef DFCUDA_HOST_EMULATION
#include "host_emulation.h"
#else
#include <cuda_runtime.h>
#endif
#include "core/cuda_api.h"

namespace dfcuda {

constexpr int kPyramidWarps = 4;
// CTAs per SM the register allocation must allow (__launch_bounds__' second argument).
#ifndef DFCUDA_PYRAMID_MIN_CTAS
#define DFCUDA_PYRAMID_MIN_CTAS 1
#endif
constexpr int kPyramidThreads = 32 * kPyramidWarps;
constexpr int kPyramidMaxStages = 16;

enum class Pyr { Laplacian = DF_CUDA_LAPLACIAN, Haar = DF_CUDA_HAAR };  // consistent: Laplacian passes + unblur

// bf16 storage: the high 16 bits of an f32.
struct Bf16 {
  uint16_t bits;
};

__device__ __forceinline__ uint32_t float_bits(float x) {
#ifdef DFCUDA_HOST_EMULATION
  uint32_t u;
  std::memcpy(&u, &x, 4);
  return u;
#else
  return __float_as_uint(x);
#endif
}

__device__ __forceinline__ float bits_float(uint32_t u) {
#ifdef DFCUDA_HOST_EMULATION
  float x;
  std::memcpy(&x, &u, 4);
  return x;
#else
  return __uint_as_float(u);
#endif
}

// Round to nearest even (NaN stays NaN), bit for bit core/dtype.h's f32_to_bf16.
__device__ __forceinline__ uint32_t round_bf16(float x) {
  uint32_t u = float_bits(x);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (u >> 16) | 0x40u;
  u += 0x7fffu + ((u >> 16) & 1u);
  return u >> 16;
}

// A 32-bit word holds one f32 or two bf16 (the lower address in the low half).
template <class T>
struct Words;
template <>
struct Words<float> {
  static constexpr int kPer = 1;
  static __device__ __forceinline__ void unpack(uint32_t w, float* x) { x[0] = bits_float(w); }
  static __device__ __forceinline__ uint32_t pack(const float* x) { return float_bits(x[0]); }
};
template <>
struct Words<Bf16> {
  static constexpr int kPer = 2;
  static __device__ __forceinline__ void unpack(uint32_t w, float* x) {
    x[0] = bits_float(w << 16);
    x[1] = bits_float(w & 0xffff0000u);
  }
  static __device__ __forceinline__ uint32_t pack(const float* x) { return round_bf16(x[0]) | (round_bf16(x[1]) << 16); }
};

// N contiguous elements at p, which is aligned to their total size (a power of two bytes): one
// 16-, 8- or 4-byte access per 16, 8 or 4 bytes, or one 16-bit access for a single bf16.
template <class T, int N>
__device__ __forceinline__ void load_elems(const T* p, float (&x)[N]) {
  constexpr int kBytes = N * int(sizeof(T));
  if constexpr (kBytes == 2) {
    x[0] = bits_float(uint32_t(reinterpret_cast<const uint16_t*>(p)[0]) << 16);
  } else {
    constexpr int kWords = kBytes / 4;
    uint32_t w[kWords];
    if constexpr (kWords % 4 == 0) {
#pragma unroll
      for (int i = 0; i < kWords / 4; i++) {
        const uint4 v = reinterpret_cast<const uint4*>(p)[i];
        w[4 * i] = v.x, w[4 * i + 1] = v.y, w[4 * i + 2] = v.z, w[4 * i + 3] = v.w;
      }
    } else if constexpr (kWords == 2) {
      const uint2 v = *reinterpret_cast<const uint2*>(p);
      w[0] = v.x, w[1] = v.y;
    } else {
      w[0] = *reinterpret_cast<const uint32_t*>(p);
    }
#pragma unroll
    for (int i = 0; i < kWords; i++) Words<T>::unpack(w[i], x + i * Words<T>::kPer);
  }
}

template <class T, int N>
__device__ __forceinline__ void store_elems(T* p, const float (&x)[N]) {
  constexpr int kBytes = N * int(sizeof(T));
  if constexpr (kBytes == 2) {
    reinterpret_cast<uint16_t*>(p)[0] = uint16_t(round_bf16(x[0]));
  } else {
    constexpr int kWords = kBytes / 4;
    uint32_t w[kWords];
#pragma unroll
    for (int i = 0; i < kWords; i++) w[i] = Words<T>::pack(x + i * Words<T>::kPer);
    if constexpr (kWords % 4 == 0) {
#pragma unroll
      for (int i = 0; i < kWords / 4; i++) {
        uint4 v;
        v.x = w[4 * i], v.y = w[4 * i + 1], v.z = w[4 * i + 2], v.w = w[4 * i + 3];
        reinterpret_cast<uint4*>(p)[i] = v;
      }
    } else if constexpr (kWords == 2) {
      uint2 v;
      v.x = w[0], v.y = w[1];
      *reinterpret_cast<uint2*>(p) = v;
    } else {
      *reinterpret_cast<uint32_t*>(p) = w[0];
    }
  }
}

template <class T>
__device__ __forceinline__ float load_one(const T* p) {
  float x[1];
  load_elems<T, 1>(p, x);
  return x[0];
}

// One level pair: coarse [planes, hc, wc], fine and detail [planes, 2 hc, 2 wc].
//
// A lane owns groups_of(V) groups of V adjacent coarse columns; group g of lane L in a warp's chunk is
// the (g * 32 + L)-th V-column group of the chunk, so each group's vector access across the warp is
// one contiguous span (32 x 16 bytes for the fine rows).
constexpr int kGroups = 2;  // the most groups per lane
// Two groups of up to 2 columns, one of 4 (bf16 fine rows): the same registers per lane.
__host__ __device__ constexpr int groups_of(int vec) { return vec >= 4 ? 1 : 2; }

struct PairGeometry {
  int64_t planes, hc, wc;
  int vec;         // V: coarse columns per group (dividing wc), 16 bytes of fine row at most
  int64_t rows;    // coarse rows per strip (one warp's walk)
  int64_t strips;  // ceil(hc / rows)
  int64_t chunks;  // warps across the flattened columns: ceil(planes * wc / (32 G V))
  int64_t units;   // warps in all: strips * chunks
  unsigned blocks() const { return unsigned((units + kPyramidWarps - 1) / kPyramidWarps); }
};

// V is the widest of max_vec, max_vec / 2, ... dividing wc (max_vec: 16 bytes of the fine image's
// row, 2 for f32, 4 for bf16); rows per strip is the largest power of two <= 64 that still gives at
// least `target_warps` warps, but no fewer than min_rows: a Laplacian strip re-reads the rows just
// above and below it (a strip of R rows reads R + 2 row pairs).
inline PairGeometry pair_geometry(int64_t planes, int64_t hc, int64_t wc, int max_vec, int64_t target_warps,
                                  int64_t min_rows = 1) {
  PairGeometry g{};
  g.planes = planes, g.hc = hc, g.wc = wc;
  g.vec = max_vec;
  while (wc % g.vec != 0) g.vec /= 2;
  g.chunks = (planes * wc / g.vec + 32 * groups_of(g.vec) - 1) / (32 * groups_of(g.vec));
  g.rows = 64;
  while (g.rows > 1 && g.rows / 2 >= min_rows && (hc + g.rows - 1) / g.rows * g.chunks < target_warps) g.rows /= 2;
  g.strips = (hc + g.rows - 1) / g.rows;
  g.units = g.strips * g.chunks;
  return g;
}

// One group's columns: plane, first coarse column l; `active` is false past the last column (such
// lanes still take part in the shuffles).
struct Group {
  int64_t plane, l;
  bool active;
};

// Where a lane works: its groups and the strip [k0, k1) of coarse rows.
struct LaneWork {
  Group g[kGroups];
  int64_t k0, k1;
};

template <int G>
__device__ __forceinline__ LaneWork lane_work(const PairGeometry& g, int64_t unit, int lane) {
  const int64_t strip = unit / g.chunks, chunk = unit % g.chunks;
  LaneWork w;
#pragma unroll
  for (int i = 0; i < G; i++) {
    const int64_t column = (chunk * 32 * G + i * 32 + lane) * g.vec;  // of the flattened [planes * wc]
    Group& q = w.g[i];
    q.active = column < g.planes * g.wc;
    q.plane = q.active ? column / g.wc : 0;
    q.l = q.active ? column % g.wc : 0;
  }
  w.k0 = strip * g.rows;
  w.k1 = w.k0 + g.rows < g.hc ? w.k0 + g.rows : g.hc;
  return w;
}

// The horizontal x2 upsampling of V coarse values c (columns l .. l+V-1 of a row of wc), given the
// coarse values just left and right of them: 2V values, exactly the CPU op's `hup` (a row's first
// and last fine columns copy the edge pixel).
template <int V>
__device__ __forceinline__ void hup_bilinear(const float (&c)[V], float left, float right, int64_t l, int64_t wc,
                                             float (&h)[2 * V]) {
#pragma unroll
  for (int j = 0; j < V; j++) {
    const float lm = j == 0 ? left : c[j > 0 ? j - 1 : 0];
    const float rm = j == V - 1 ? right : c[j + 1 < V ? j + 1 : 0];
    h[2 * j] = l + j == 0 ? c[j] : 0.25f * lm + 0.75f * c[j];
    h[2 * j + 1] = l + j == wc - 1 ? c[j] : 0.75f * c[j] + 0.25f * rm;
  }
}

// The coarse column beyond the warp's span whose value this lane supplies: lane 0 the one left of
// its first column, lane 31 the one right of its last, where that column exists in the row (at a
// row's edge no neighbour is used, which is also why groups may straddle planes). Its values are
// loaded with the lane's own rows, so they are in flight together.
struct EdgeColumn {
  bool has;
  int64_t plane, col;
};

template <int V, int G>
__device__ __forceinline__ EdgeColumn edge_column(const LaneWork& w, int lane, int64_t wc) {
  if (lane == 0 && w.g[0].active && w.g[0].l > 0) return {true, w.g[0].plane, w.g[0].l - 1};
  if (lane == 31 && w.g[G - 1].active && w.g[G - 1].l + V < wc) return {true, w.g[G - 1].plane, w.g[G - 1].l + V};
  return {false, 0, 0};
}

// A row of the lane's coarse values, upsampled along the row: the neighbours of each group come from
// the adjacent lanes (lane 0's group g > 0 from lane 31's group g - 1, and the other way round);
// the warp's outermost two are `edge_value` (the row's value at edge.col).
template <int V, int G>
__device__ __forceinline__ void upsample_row(const float (&c)[G][V], int lane, const LaneWork& w, int64_t wc,
                                             const EdgeColumn& edge, float edge_value, float (&h)[G][2 * V]) {
  float from_left[G], from_right[G];
#pragma unroll
  for (int i = 0; i < G; i++) {
    from_left[i] = __shfl_sync(0xffffffffu, c[i][V - 1], (lane + 31) & 31);
    from_right[i] = __shfl_sync(0xffffffffu, c[i][0], (lane + 1) & 31);
  }
#pragma unroll
  for (int i = 0; i < G; i++) {
    float left = lane > 0 ? from_left[i] : i > 0 ? from_left[i > 0 ? i - 1 : 0] : 0.f;
    float right = lane < 31 ? from_right[i] : i + 1 < G ? from_right[i + 1 < G ? i + 1 : 0] : 0.f;
    if (i == 0 && lane == 0 && edge.has) left = edge_value;
    if (i == G - 1 && lane == 31 && edge.has) right = edge_value;
    hup_bilinear<V>(c[i], left, right, w.g[i].l, wc, h[i]);
  }
}

template <int G, int N>
__device__ __forceinline__ void copy_n(float (&dst)[G][N], const float (&src)[G][N]) {
#pragma unroll
  for (int i = 0; i < G; i++)
#pragma unroll
    for (int j = 0; j < N; j++) dst[i][j] = src[i][j];
}

// ---- decompose: fine [planes, 2hc, 2wc] -> coarse [planes, hc, wc] + detail [planes, 2hc, 2wc] ----
//
// The fine rows of coarse row k + 1 are loaded while row k is finished (one row pair in flight
// ahead of the arithmetic), and the Laplacian window holds rows k-1, k, k+1 upsampled.

template <Pyr K, int V, class TF, class TC, class TD>
__global__ void __launch_bounds__(kPyramidThreads, DFCUDA_PYRAMID_MIN_CTAS)
    pyramid_decompose_kernel(const TF* __restrict__ fine, TC* __restrict__ coarse, TD* __restrict__ detail,
                             const PairGeometry g) {
  const int64_t unit = int64_t(blockIdx.x) * kPyramidWarps + threadIdx.x / 32;
  constexpr int G = groups_of(V);
  if (unit >= g.units) return;  // whole warps only
  const int lane = int(threadIdx.x % 32);
  const LaneWork w = lane_work<G>(g, unit, lane);
  const int64_t hc = g.hc, wc = g.wc, wf = 2 * wc;
  const TF* f[G];
  TC* c[G];
  TD* d[G];
#pragma unroll
  for (int i = 0; i < G; i++) {
    f[i] = fine + w.g[i].plane * 2 * hc * wf + 2 * w.g[i].l;
    c[i] = coarse + w.g[i].plane * hc * wc + w.g[i].l;
    d[i] = detail + w.g[i].plane * 2 * hc * wf + 2 * w.g[i].l;
  }
  constexpr float kScale = K == Pyr::Haar ? 0.5f : 0.25f;  // LL of the orthonormal Haar; the block mean
  const EdgeColumn edge = edge_column<V, G>(w, lane, wc);
  const TF* fe = fine + edge.plane * 2 * hc * wf + 2 * edge.col;
  // The coarse value of row k at the edge column, from its 2 x 2 block (loaded by load_edge).
  auto load_edge = [&](int64_t k, float (&x)[4]) {
    if (K == Pyr::Laplacian && edge.has) {
      float a[2], b[2];
      load_elems<TF, 2>(fe + 2 * k * wf, a);
      load_elems<TF, 2>(fe + (2 * k + 1) * wf, b);
      x[0] = a[0], x[1] = a[1], x[2] = b[0], x[3] = b[1];
    }
  };

  // Fine rows 2k, 2k+1 of the lane's columns (zero where inactive).
  auto load_fine = [&](int64_t k, float (&f0)[G][2 * V], float (&f1)[G][2 * V]) {
#pragma unroll
    for (int i = 0; i < G; i++) {
      if (w.g[i].active) {
        load_elems<TF, 2 * V>(f[i] + 2 * k * wf, f0[i]);
        load_elems<TF, 2 * V>(f[i] + (2 * k + 1) * wf, f1[i]);
      } else {
#pragma unroll
        for (int x = 0; x < 2 * V; x++) f0[i][x] = f1[i][x] = 0.f;
      }
    }
  };
  auto reduce = [&](const float (&f0)[G][2 * V], const float (&f1)[G][2 * V], float (&cv)[G][V]) {
#pragma unroll
    for (int i = 0; i < G; i++)
#pragma unroll
      for (int j = 0; j < V; j++)
        cv[i][j] = kScale * ((f0[i][2 * j] + f0[i][2 * j + 1]) + (f1[i][2 * j] + f1[i][2 * j + 1]));
  };
  auto store_coarse = [&](int64_t k, const float (&cv)[G][V]) {
#pragma unroll
    for (int i = 0; i < G; i++)
      if (w.g[i].active) store_elems<TC, V>(c[i] + k * wc, cv[i]);
  };
  auto store_detail = [&](int64_t k, const float (&d0)[G][2 * V], const float (&d1)[G][2 * V]) {
#pragma unroll
    for (int i = 0; i < G; i++)
      if (w.g[i].active) {
        store_elems<TD, 2 * V>(d[i] + 2 * k * wf, d0[i]);
        store_elems<TD, 2 * V>(d[i] + (2 * k + 1) * wf, d1[i]);
      }
  };

  float f0[G][2 * V], f1[G][2 * V], n0[G][2 * V] = {}, n1[G][2 * V] = {}, cv[G][V];
  if constexpr (K == Pyr::Haar) {
    load_fine(w.k0, f0, f1);
    for (int64_t k = w.k0; k < w.k1; k++) {
      const bool more = k + 1 < w.k1;
      if (more) load_fine(k + 1, n0, n1);
      reduce(f0, f1, cv);
      store_coarse(k, cv);
#pragma unroll
      for (int i = 0; i < G; i++)
#pragma unroll
        for (int x = 0; x < 2 * V; x++) {
          const float up = 0.5f * cv[i][x / 2];
          f0[i][x] -= up;
          f1[i][x] -= up;
        }
      store_detail(k, f0, f1);
      if (more) {
        copy_n(f0, n0);
        copy_n(f1, n1);
      }
    }
  } else {
    // A coarse row upsampled along the row, from the lane's part of it (cvk) and its edge block x.
    auto upsampled = [&](const float (&cvk)[G][V], const float (&x)[4], float (&h)[G][2 * V]) {
      upsample_row<V, G>(cvk, lane, w, wc, edge, 0.25f * ((x[0] + x[1]) + (x[2] + x[3])), h);
    };
    float up_prev[G][2 * V], up_cur[G][2 * V], up_next[G][2 * V];
    float xf[4] = {}, xn[4] = {};
    if (w.k0 > 0) {
      load_fine(w.k0 - 1, n0, n1);
      load_edge(w.k0 - 1, xn);
      reduce(n0, n1, cv);
      upsampled(cv, xn, up_prev);
    }
    load_fine(w.k0, f0, f1);
    load_edge(w.k0, xf);
    if (w.k0 + 1 < hc) {
      load_fine(w.k0 + 1, n0, n1);
      load_edge(w.k0 + 1, xn);
    }
    float cc[G][V];
    reduce(f0, f1, cc);
    upsampled(cc, xf, up_cur);
    if (w.k0 == 0) copy_n(up_prev, up_cur);  // row -1 clamps to row 0
    for (int64_t k = w.k0; k < w.k1; k++) {
      // n0, n1: row k + 1 (loaded); start loading row k + 2 where the strip needs it.
      float m0[G][2 * V] = {}, m1[G][2 * V] = {}, xm[4] = {};
      const bool more = k + 2 < hc && k + 2 <= w.k1;
      if (more) {
        load_fine(k + 2, m0, m1);
        load_edge(k + 2, xm);
      }
      float cn[G][V] = {};
      if (k + 1 < hc) {  // uniform across the warp
        reduce(n0, n1, cn);
        upsampled(cn, xn, up_next);
      } else {
        copy_n(up_next, up_cur);  // row hc clamps to row hc - 1
      }
      store_coarse(k, cc);
#pragma unroll
      for (int i = 0; i < G; i++)
#pragma unroll
        for (int x = 0; x < 2 * V; x++) {
          f0[i][x] -= 0.75f * up_cur[i][x] + 0.25f * up_prev[i][x];
          f1[i][x] -= 0.75f * up_cur[i][x] + 0.25f * up_next[i][x];
        }
      store_detail(k, f0, f1);
      copy_n(up_prev, up_cur);
      copy_n(up_cur, up_next);
      copy_n(f0, n0);
      copy_n(f1, n1);
      if (k + 1 < hc) copy_n(cc, cn);
      if (more) {
        copy_n(n0, m0);
        copy_n(n1, m1);
#pragma unroll
        for (int j = 0; j < 4; j++) xn[j] = xm[j];
      }
    }
  }
}

// ---- recompose: coarse [planes, hc, wc] + detail (or none: previews) -> fine [planes, 2hc, 2wc] ----
//
// Coarse row k + 1 and the detail rows of coarse row k are loaded one step ahead of their use.

template <Pyr K, int V, class TF, class TC, class TD>
__global__ void __launch_bounds__(kPyramidThreads, DFCUDA_PYRAMID_MIN_CTAS)
    pyramid_recompose_kernel(const TC* __restrict__ coarse, const TD* __restrict__ detail, TF* __restrict__ fine,
                             const PairGeometry g) {
  const int64_t unit = int64_t(blockIdx.x) * kPyramidWarps + threadIdx.x / 32;
  constexpr int G = groups_of(V);
  if (unit >= g.units) return;
  const int lane = int(threadIdx.x % 32);
  const LaneWork w = lane_work<G>(g, unit, lane);
  const int64_t hc = g.hc, wc = g.wc, wf = 2 * wc;
  const TC* c[G];
  const TD* d[G];
  TF* f[G];
#pragma unroll
  for (int i = 0; i < G; i++) {
    c[i] = coarse + w.g[i].plane * hc * wc + w.g[i].l;
    d[i] = detail ? detail + w.g[i].plane * 2 * hc * wf + 2 * w.g[i].l : nullptr;
    f[i] = fine + w.g[i].plane * 2 * hc * wf + 2 * w.g[i].l;
  }
  const bool has_detail = detail != nullptr;
  const EdgeColumn edge = edge_column<V, G>(w, lane, wc);
  const TC* ce = coarse + edge.plane * hc * wc + edge.col;
  auto load_edge = [&](int64_t k) { return K == Pyr::Laplacian && edge.has ? load_one(ce + k * wc) : 0.f; };

  auto load_coarse = [&](int64_t k, float (&cv)[G][V]) {
#pragma unroll
    for (int i = 0; i < G; i++) {
      if (w.g[i].active) {
        load_elems<TC, V>(c[i] + k * wc, cv[i]);
      } else {
#pragma unroll
        for (int j = 0; j < V; j++) cv[i][j] = 0.f;
      }
    }
  };
  // The detail rows 2k, 2k+1 (zero for previews and inactive groups).
  auto load_detail = [&](int64_t k, float (&d0)[G][2 * V], float (&d1)[G][2 * V]) {
#pragma unroll
    for (int i = 0; i < G; i++) {
      if (has_detail && w.g[i].active) {
        load_elems<TD, 2 * V>(d[i] + 2 * k * wf, d0[i]);
        load_elems<TD, 2 * V>(d[i] + (2 * k + 1) * wf, d1[i]);
      } else {
#pragma unroll
        for (int x = 0; x < 2 * V; x++) d0[i][x] = d1[i][x] = 0.f;
      }
    }
  };
  auto store_fine = [&](int64_t k, const float (&o0)[G][2 * V], const float (&o1)[G][2 * V]) {
#pragma unroll
    for (int i = 0; i < G; i++)
      if (w.g[i].active) {
        store_elems<TF, 2 * V>(f[i] + 2 * k * wf, o0[i]);
        store_elems<TF, 2 * V>(f[i] + (2 * k + 1) * wf, o1[i]);
      }
  };

  float d0[G][2 * V], d1[G][2 * V], e0[G][2 * V] = {}, e1[G][2 * V] = {};
  float o0[G][2 * V], o1[G][2 * V];
  if constexpr (K == Pyr::Haar) {
    float cv[G][V], cn[G][V] = {};
    load_coarse(w.k0, cv);
    load_detail(w.k0, d0, d1);
    for (int64_t k = w.k0; k < w.k1; k++) {
      const bool more = k + 1 < w.k1;
      if (more) {
        load_coarse(k + 1, cn);
        load_detail(k + 1, e0, e1);
      }
#pragma unroll
      for (int i = 0; i < G; i++)
#pragma unroll
        for (int x = 0; x < 2 * V; x++) {
          const float up = 0.5f * cv[i][x / 2];
          o0[i][x] = has_detail ? up + d0[i][x] : up;
          o1[i][x] = has_detail ? up + d1[i][x] : up;
        }
      store_fine(k, o0, o1);
      if (more) {
        copy_n(cv, cn);
        copy_n(d0, e0);
        copy_n(d1, e1);
      }
    }
  } else {
    auto upsampled = [&](const float (&cvk)[G][V], float x, float (&h)[G][2 * V]) {
      upsample_row<V, G>(cvk, lane, w, wc, edge, x, h);
    };
    float up_prev[G][2 * V], up_cur[G][2 * V], up_next[G][2 * V];
    float cv[G][V], cn[G][V] = {}, xn = 0.f;
    if (w.k0 > 0) {
      load_coarse(w.k0 - 1, cv);
      upsampled(cv, load_edge(w.k0 - 1), up_prev);
    }
    load_coarse(w.k0, cv);
    const float xc = load_edge(w.k0);
    if (w.k0 + 1 < hc) {
      load_coarse(w.k0 + 1, cn);
      xn = load_edge(w.k0 + 1);
    }
    load_detail(w.k0, d0, d1);
    upsampled(cv, xc, up_cur);
    if (w.k0 == 0) copy_n(up_prev, up_cur);
    for (int64_t k = w.k0; k < w.k1; k++) {
      // cn: coarse row k + 1 (loaded); d0, d1: the detail of row k (loaded). Load ahead.
      const bool more = k + 1 < w.k1;
      const bool more_coarse = k + 2 < hc && k + 2 <= w.k1;
      float cm[G][V] = {}, xm = 0.f;
      if (more_coarse) {
        load_coarse(k + 2, cm);
        xm = load_edge(k + 2);
      }
      if (more) load_detail(k + 1, e0, e1);
      if (k + 1 < hc) upsampled(cn, xn, up_next);
      else copy_n(up_next, up_cur);
#pragma unroll
      for (int i = 0; i < G; i++)
#pragma unroll
        for (int x = 0; x < 2 * V; x++) {
          const float u0 = 0.75f * up_cur[i][x] + 0.25f * up_prev[i][x];
          const float u1 = 0.75f * up_cur[i][x] + 0.25f * up_next[i][x];
          o0[i][x] = has_detail ? u0 + d0[i][x] : u0;
          o1[i][x] = has_detail ? u1 + d1[i][x] : u1;
        }
      store_fine(k, o0, o1);
      copy_n(up_prev, up_cur);
      copy_n(up_cur, up_next);
      if (more_coarse) {
        copy_n(cn, cm);
        xn = xm;
      }
      if (more) {
        copy_n(d0, e0);
        copy_n(d1, e1);
      }
    }
  }
}

// ---- host side: argument checks and the level loop ----------------------------------------------

// Checks a call's arguments; errors return `invalid(message)`'s status.
template <class Invalid>
int check_pyramid_args(const char* fn, int kind, int dtype, const DfCudaPyramidShape* s, Invalid&& invalid) {
  auto bad = [&](const std::string& what) { return invalid(std::string(fn) + ": " + what); };
  if (!s) return bad("shape: expected a pointer, got null");
  if (kind != DF_CUDA_LAPLACIAN && kind != DF_CUDA_HAAR && kind != DF_CUDA_CONSISTENT)
    return bad("kind: expected laplacian (0), haar (1) or consistent (2), got " + std::to_string(kind));
  if (dtype != DF_CUDA_F32 && dtype != DF_CUDA_BF16)
    return bad("dtype: expected f32 or bf16, got code " + std::to_string(dtype));
  if (s->stages < 1 || s->stages > kPyramidMaxStages)
    return bad("shape: expected 1 to " + std::to_string(kPyramidMaxStages) + " stages, got " + std::to_string(s->stages));
  if (s->batch < 0 || s->channels < 0 || s->height < 0 || s->width < 0)
    return bad("shape: expected non-negative batch, channels, height and width");
  const int64_t factor = int64_t(1) << (s->stages - 1);
  if (s->height % factor != 0 || s->width % factor != 0)
    return bad("shape: " + std::to_string(s->stages) + " stages need height and width divisible by " +
               std::to_string(factor) + ", got " + std::to_string(s->height) + " x " + std::to_string(s->width));
  const int64_t limit = int64_t(1) << 40;  // elements: far beyond any GPU's memory
  if (s->height > limit || s->width > limit || (s->height > 0 && s->width > limit / s->height) ||
      (s->batch > 0 && s->channels > limit / s->batch) ||
      (s->batch * s->channels > 0 && s->height * s->width > limit / (s->batch * s->channels)))
    return bad("shape: too large");
  return DF_CUDA_OK;
}

inline int64_t pyramid_planes(const DfCudaPyramidShape& s) { return s.batch * s.channels; }
inline int64_t pyramid_level_numel(const DfCudaPyramidShape& s, int level) {
  const int shift = s.stages - 1 - level;
  return pyramid_planes(s) * (s.height >> shift) * (s.width >> shift);
}

// The f32 workspace: the intermediate images of levels 1 .. S-2, each at a 256-byte aligned offset.
inline size_t pyramid_workspace_offset(const DfCudaPyramidShape& s, int level) {
  size_t bytes = 0;
  for (int t = 1; t < level; t++) bytes += (size_t(pyramid_level_numel(s, t)) * 4 + 255) / 256 * 256;
  return bytes;
}
// The consistent pyramid also keeps B^-1 of a coarse level (f32) there, the largest coarse level's size.
inline size_t pyramid_unblur_offset(const DfCudaPyramidShape& s) {
  return s.stages > 2 ? pyramid_workspace_offset(s, s.stages - 1) : 0;
}
inline size_t pyramid_workspace_bytes(const DfCudaPyramidShape& s, int kind) {
  const size_t unblur = kind == DF_CUDA_CONSISTENT && s.stages > 1 ? size_t(pyramid_level_numel(s, s.stages - 2)) * 4 : 0;
  return pyramid_unblur_offset(s) + unblur;
}

// How level pairs are cut into strips: see pair_geometry; min_rows applies to the Laplacian.
struct StripSplit {
  int64_t target_warps;
  int64_t laplacian_min_rows;
};

// Coarse columns per group: 16 bytes of the fine image's row.
inline int max_vec(int fine_dtype) { return fine_dtype == DF_CUDA_BF16 ? 4 : 2; }

// Where level t's image lives during a pass: a stage (level 0 and the image itself, dtype `dtype`)
// or the f32 workspace.
struct LevelImage {
  void* p;
  bool f32;
};

template <class TF, class TC, class TD, class Launch>
int decompose_pair_typed(Launch& launch, int kind, const PairGeometry& g, const void* f, void* c, void* d) {
  const TF* fp = static_cast<const TF*>(f);
  TC* cp = static_cast<TC*>(c);
  TD* dp = static_cast<TD*>(d);
  const bool lap = kind == DF_CUDA_LAPLACIAN;
  if (g.vec == 4)
    return lap ? launch(pyramid_decompose_kernel<Pyr::Laplacian, 4, TF, TC, TD>, g, fp, cp, dp)
               : launch(pyramid_decompose_kernel<Pyr::Haar, 4, TF, TC, TD>, g, fp, cp, dp);
  if (g.vec == 2)
    return lap ? launch(pyramid_decompose_kernel<Pyr::Laplacian, 2, TF, TC, TD>, g, fp, cp, dp)
               : launch(pyramid_decompose_kernel<Pyr::Haar, 2, TF, TC, TD>, g, fp, cp, dp);
  return lap ? launch(pyramid_decompose_kernel<Pyr::Laplacian, 1, TF, TC, TD>, g, fp, cp, dp)
             : launch(pyramid_decompose_kernel<Pyr::Haar, 1, TF, TC, TD>, g, fp, cp, dp);
}

template <class TF, class TC, class TD, class Launch>
int recompose_pair_typed(Launch& launch, int kind, const PairGeometry& g, const void* c, const void* d, void* f) {
  const TC* cp = static_cast<const TC*>(c);
  const TD* dp = static_cast<const TD*>(d);
  TF* fp = static_cast<TF*>(f);
  const bool lap = kind == DF_CUDA_LAPLACIAN;
  if (g.vec == 4)
    return lap ? launch(pyramid_recompose_kernel<Pyr::Laplacian, 4, TF, TC, TD>, g, cp, dp, fp)
               : launch(pyramid_recompose_kernel<Pyr::Haar, 4, TF, TC, TD>, g, cp, dp, fp);
  if (g.vec == 2)
    return lap ? launch(pyramid_recompose_kernel<Pyr::Laplacian, 2, TF, TC, TD>, g, cp, dp, fp)
               : launch(pyramid_recompose_kernel<Pyr::Haar, 2, TF, TC, TD>, g, cp, dp, fp);
  return lap ? launch(pyramid_recompose_kernel<Pyr::Laplacian, 1, TF, TC, TD>, g, cp, dp, fp)
             : launch(pyramid_recompose_kernel<Pyr::Haar, 1, TF, TC, TD>, g, cp, dp, fp);
}

// The element types of one pair: the stages' type S (float or Bf16) where an image is a stage, f32
// where it is the workspace.
template <class S, class Launch>
int decompose_pair(Launch& launch, int kind, const PairGeometry& g, LevelImage fine, LevelImage coarse, void* d) {
  if (fine.f32 && coarse.f32) return decompose_pair_typed<float, float, S>(launch, kind, g, fine.p, coarse.p, d);
  if (fine.f32) return decompose_pair_typed<float, S, S>(launch, kind, g, fine.p, coarse.p, d);
  if (coarse.f32) return decompose_pair_typed<S, float, S>(launch, kind, g, fine.p, coarse.p, d);
  return decompose_pair_typed<S, S, S>(launch, kind, g, fine.p, coarse.p, d);
}

template <class S, class Launch>
int recompose_pair(Launch& launch, int kind, const PairGeometry& g, LevelImage coarse, const void* d, LevelImage fine) {
  if (fine.f32 && coarse.f32) return recompose_pair_typed<float, float, S>(launch, kind, g, coarse.p, d, fine.p);
  if (fine.f32) return recompose_pair_typed<float, S, S>(launch, kind, g, coarse.p, d, fine.p);
  if (coarse.f32) return recompose_pair_typed<S, float, S>(launch, kind, g, coarse.p, d, fine.p);
  return recompose_pair_typed<S, S, S>(launch, kind, g, coarse.p, d, fine.p);
}

// ---- the consistent pyramid (native/ops/pyramid.cpp's ConsistentPyramid, step for step) ---------
//
// The Laplacian's passes with a mean-preserving up-sampler U B^-1, B = D U = tridiag(1/8, 3/4, 1/8)
// along each axis (7/8 at the clamped ends, 1 for a single sample):
//   decompose pair: the Laplacian pass (coarse = D fine; its detail is replaced), y = -B^-1 D fine,
//                   then the Laplacian recompose pass writes detail = U y + fine;
//   recompose pair: y = B^-1 (coarse - D detail), then the Laplacian recompose pass fine = U y + detail.
// y (f32, in the workspace) is made by two small launches: Thomas' algorithm along every coarse row
// (one thread a row, which also forms coarse - D detail), then along every column (one thread a
// column, so a warp's accesses are contiguous). D fine is taken from the fine image in f32, not from
// the stored coarse stage, so a bf16 pyramid's details are the f32 ones rounded once, as on the CPU.

// The elimination's coefficients along an axis of n samples depend only on the position k; they
// converge to their interior limits about 30x closer each step, so the first kBlurTable (in float,
// exactly the CPU's) and the limits travel into the kernels by value.
constexpr int kBlurTable = 16;
struct BlurSolve {
  int64_t n;
  float upper[kBlurTable], inv_pivot[kBlurTable];
  float upper_limit, inv_pivot_limit, inv_pivot_last;
  __device__ __forceinline__ float up(int64_t k) const { return k < kBlurTable ? upper[k] : upper_limit; }
  __device__ __forceinline__ float inv(int64_t k) const {
    return k == n - 1 ? inv_pivot_last : k < kBlurTable ? inv_pivot[k] : inv_pivot_limit;
  }
};

inline BlurSolve blur_solve(int64_t n) {
  constexpr double kOff = 0.125;
  constexpr int kSteps = 64;  // far past convergence in double
  BlurSolve b{};
  b.n = n;
  double upper[kSteps], prev = 0;
  for (int k = 0; k < kSteps; k++) {
    const double pivot = (k == 0 ? 0.875 : 0.75) - kOff * prev;
    prev = upper[k] = kOff / pivot;
    if (k < kBlurTable) b.upper[k] = float(upper[k]), b.inv_pivot[k] = float(1 / pivot);
    if (k == kSteps - 1) b.upper_limit = float(upper[k]), b.inv_pivot_limit = float(1 / pivot);
  }
  const double before_last = n < 2 ? 0 : n - 2 < kSteps ? upper[n - 2] : upper[kSteps - 1];
  b.inv_pivot_last = float(1 / ((n == 1 ? 1.0 : 0.875) - kOff * before_last));
  return b;
}

// y[r, :] = B^-1 (coarse[r, :] - D src) along each coarse row r of all planes (coarse or src may be null).
template <class TC, class TS>
__global__ void __launch_bounds__(kPyramidThreads) consistent_rows_kernel(const TC* coarse, const TS* src, float* y,
                                                                          BlurSolve solve, const PairGeometry g) {
  const int64_t r = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (r >= g.planes * g.hc) return;
  const int64_t wc = g.wc, wf = 2 * wc;
  float* out = y + r * wc;
  const TS* f0 = src ? src + 2 * r * wf : nullptr;  // flattened coarse row r covers fine rows 2r, 2r + 1
  float prev = 0;
  for (int64_t l = 0; l < wc; l++) {
    float v = coarse ? load_one(coarse + r * wc + l) : 0.f;
    if (f0) {
      const TS* f1 = f0 + wf;
      v -= 0.25f * ((load_one(f0 + 2 * l) + load_one(f0 + 2 * l + 1)) + (load_one(f1 + 2 * l) + load_one(f1 + 2 * l + 1)));
    }
    prev = (v - (l > 0 ? 0.125f * prev : 0.f)) * solve.inv(l);
    out[l] = prev;
  }
  for (int64_t l = wc - 2; l >= 0; l--) out[l] -= solve.up(l) * out[l + 1];
}

// y = B^-1 y along every coarse column of all planes, in place. (A template, like every kernel in
// this header, so that the two .cu files including it do not both define it.)
template <class T>
__global__ void __launch_bounds__(kPyramidThreads) consistent_columns_kernel(T* y, BlurSolve solve, const PairGeometry g) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= g.planes * g.wc) return;
  const int64_t wc = g.wc;
  T* col = y + (i / wc) * g.hc * wc + i % wc;
  for (int64_t k = 0; k < g.hc; k++) col[k * wc] = (col[k * wc] - (k > 0 ? 0.125f * col[(k - 1) * wc] : 0.f)) * solve.inv(k);
  for (int64_t k = g.hc - 2; k >= 0; k--) col[k * wc] -= solve.up(k) * col[(k + 1) * wc];
}

// A geometry whose launch has a thread for each of `count` items (the kernels above index threads directly).
inline PairGeometry thread_geometry(const PairGeometry& g, int64_t count) {
  PairGeometry t = g;
  t.units = (count + 31) / 32;
  return t;
}

// y = B^-1 (coarse - D src) for one level pair (two launches).
template <class TC, class TS, class Launch>
int unblur(Launch& launch, const PairGeometry& g, const TC* coarse, const TS* src, float* y) {
  const int st = launch(consistent_rows_kernel<TC, TS>, thread_geometry(g, g.planes * g.hc), coarse, src, y, blur_solve(g.wc));
  if (st != DF_CUDA_OK) return st;
  return launch(consistent_columns_kernel<float>, thread_geometry(g, g.planes * g.wc), y, blur_solve(g.hc));
}

template <class S, class Launch>
int consistent_decompose_pair(Launch& launch, const PairGeometry& g, LevelImage fine, LevelImage coarse, void* d, float* y) {
  int st = decompose_pair<S>(launch, DF_CUDA_LAPLACIAN, g, fine, coarse, d);
  if (st != DF_CUDA_OK) return st;
  if (fine.f32) {
    const float* f = static_cast<const float*>(fine.p);
    st = unblur(launch, g, static_cast<const float*>(nullptr), f, y);  // y = -B^-1 D fine
    return st != DF_CUDA_OK ? st : recompose_pair_typed<S, float, float>(launch, DF_CUDA_LAPLACIAN, g, y, f, d);
  }
  const S* f = static_cast<const S*>(fine.p);
  st = unblur(launch, g, static_cast<const float*>(nullptr), f, y);
  return st != DF_CUDA_OK ? st : recompose_pair_typed<S, float, S>(launch, DF_CUDA_LAPLACIAN, g, y, f, d);
}

template <class S, class Launch>
int consistent_recompose_pair(Launch& launch, const PairGeometry& g, LevelImage coarse, const void* d, LevelImage fine, float* y) {
  const S* detail = static_cast<const S*>(d);
  const int st = coarse.f32 ? unblur(launch, g, static_cast<const float*>(coarse.p), detail, y)
                            : unblur(launch, g, static_cast<const S*>(coarse.p), detail, y);
  if (st != DF_CUDA_OK) return st;
  return recompose_pair<S>(launch, DF_CUDA_LAPLACIAN, g, LevelImage{y, true}, d, fine);
}

// The passes of a decomposition, finest pair first, as the CPU op: stage S-1 is the detail of the
// image itself, the reduced image goes to the workspace (or, at the last pair, to stage 0). Arguments
// already checked; `launch(kernel, geometry, args...)` runs one kernel, `launch.copy(dst, src, bytes)`
// copies (a 1-stage pyramid is the image). `split`: how pairs are cut into strips (pair_geometry).
template <class Launch>
int run_decompose(Launch& launch, int kind, int dtype, const void* image, void* const* levels, void* workspace,
                  const DfCudaPyramidShape& s, const StripSplit& split) {
  const int S = s.stages;
  const size_t elem = dtype == DF_CUDA_BF16 ? 2 : 4;
  if (pyramid_level_numel(s, S - 1) == 0) return DF_CUDA_OK;  // an empty image
  if (S == 1) return launch.copy(levels[0], image, size_t(pyramid_level_numel(s, 0)) * elem);
  LevelImage fine{const_cast<void*>(image), false};
  for (int t = S - 1; t >= 1; t--) {
    const LevelImage coarse =
        t == 1 ? LevelImage{levels[0], false}
               : LevelImage{static_cast<char*>(workspace) + pyramid_workspace_offset(s, t - 1), true};
    const int shift = S - t;
    const PairGeometry g = pair_geometry(pyramid_planes(s), s.height >> shift, s.width >> shift,
                                         max_vec(fine.f32 ? DF_CUDA_F32 : dtype), split.target_warps,
                                         kind != DF_CUDA_HAAR ? split.laplacian_min_rows : 1);
    float* y = reinterpret_cast<float*>(static_cast<char*>(workspace) + pyramid_unblur_offset(s));
    const int st = kind == DF_CUDA_CONSISTENT
                       ? (dtype == DF_CUDA_BF16 ? consistent_decompose_pair<Bf16>(launch, g, fine, coarse, levels[t], y)
                                                : consistent_decompose_pair<float>(launch, g, fine, coarse, levels[t], y))
                   : dtype == DF_CUDA_BF16 ? decompose_pair<Bf16>(launch, kind, g, fine, coarse, levels[t])
                                           : decompose_pair<float>(launch, kind, g, fine, coarse, levels[t]);
    if (st != DF_CUDA_OK) return st;
    fine = coarse;
  }
  return DF_CUDA_OK;
}

// Recomposes stages 0 .. up_to-1 (1 <= up_to <= S) to full size as if the later stages were zero
// (up_to == S: recompose); levels[up_to..] are not read.
template <class Launch>
int run_recompose(Launch& launch, int kind, int dtype, const void* const* levels, int up_to, void* image,
                  void* workspace, const DfCudaPyramidShape& s, const StripSplit& split) {
  const int S = s.stages;
  const size_t elem = dtype == DF_CUDA_BF16 ? 2 : 4;
  if (pyramid_level_numel(s, S - 1) == 0) return DF_CUDA_OK;  // an empty image
  if (S == 1) return launch.copy(image, levels[0], size_t(pyramid_level_numel(s, 0)) * elem);
  LevelImage coarse{const_cast<void*>(levels[0]), false};
  for (int t = 1; t < S; t++) {
    const LevelImage fine = t == S - 1 ? LevelImage{image, false}
                                       : LevelImage{static_cast<char*>(workspace) + pyramid_workspace_offset(s, t), true};
    const int shift = S - t;
    const PairGeometry g = pair_geometry(pyramid_planes(s), s.height >> shift, s.width >> shift,
                                         max_vec(fine.f32 ? DF_CUDA_F32 : dtype), split.target_warps,
                                         kind != DF_CUDA_HAAR ? split.laplacian_min_rows : 1);
    const void* d = t < up_to ? levels[t] : nullptr;
    float* y = reinterpret_cast<float*>(static_cast<char*>(workspace) + pyramid_unblur_offset(s));
    const int st = kind == DF_CUDA_CONSISTENT
                       ? (dtype == DF_CUDA_BF16 ? consistent_recompose_pair<Bf16>(launch, g, coarse, d, fine, y)
                                                : consistent_recompose_pair<float>(launch, g, coarse, d, fine, y))
                   : dtype == DF_CUDA_BF16 ? recompose_pair<Bf16>(launch, kind, g, coarse, d, fine)
                                           : recompose_pair<float>(launch, kind, g, coarse, d, fine);
    if (st != DF_CUDA_OK) return st;
    coarse = fine;
  }
  return DF_CUDA_OK;
}

}  // namespace dfcuda

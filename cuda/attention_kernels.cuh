// The flash-attention kernels (FlashAttention-2's algorithm on mma.sync tensor cores), as templates
// over the element type T (__nv_bfloat16 or __half) and the head dim D (32, 64, 128). Launched by
// cuda/attention.cu and by dev/cuda/attention_v3_pipelined.cu (which times the tile variants).
// Layout as the CPU op (native/ops/attention.h): q, o [heads, nq, D], k, v [heads, nk, D], lse
// [heads, nq] f32 (heads = batch * heads), all contiguous. Causal: key j is visible to query i when
// j <= i + (nk - nq).
//
// Shared-memory tiles are rows of D elements padded to D + 8 (16 bytes more), so the 8 row
// addresses of one ldmatrix fall on 8 different groups of 4 banks (the row stride is 4 banks
// modulo 32 for D = 32, 64, 128): no bank conflicts, and every row stays 16-byte aligned for
// cp.async.
#pragma once
#include <cfloat>
#include <cstdint>

#include "mma.cuh"

namespace dfcuda {

constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.69314718055994531f;

__device__ __forceinline__ int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
__device__ __forceinline__ int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

// dst[0] += a, dst[1] += b (dst 8-byte aligned): one vector atomic on sm_90, two before.
__device__ __forceinline__ void atomic_add2(float* dst, float a, float b) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  atomicAdd(reinterpret_cast<float2*>(dst), make_float2(a, b));
#else
  atomicAdd(dst, a);
  atomicAdd(dst + 1, b);
#endif
}

struct AttentionParams {
  const void *q, *k, *v, *o, *d_o;  // o and d_o: backward only
  void* out;                        // forward: o; backward: dq (written by the dq kernel)
  float* lse;                       // forward: written
  const float* lse_in;              // backward: the forward's lse
  const float* delta;               // backward: rowsum(dO * O), [heads, nq]
  float* dq_accum;                  // backward: f32 [heads, nq, D], zeroed, accumulated with atomics
  void *dk, *dv;                    // backward: written
  int64_t nq, nk;
  int64_t offset;     // nk - nq (causal alignment)
  float scale;        // softmax scale
  float scale_log2;   // scale * log2(e): S in base-2 units, so exponentials are exp2
  int causal;
};

// The parameters common to the forward and the backward.
inline AttentionParams make_attention_params(int64_t nq, int64_t nk, float scale, bool causal) {
  AttentionParams p{};
  p.nq = nq;
  p.nk = nk;
  p.offset = nk - nq;
  p.scale = scale;
  p.scale_log2 = scale * kLog2e;
  p.causal = causal ? 1 : 0;
  return p;
}

// Copies rows [row0, row0 + R) of a [n, D] matrix into a padded shared tile [R][D + 8] with
// cp.async (16 bytes per instruction); rows >= n are zero-filled.
template <class T, int D, int R, int kThreads>
__device__ __forceinline__ void load_rows_async(T* tile, const T* src, int64_t row0, int64_t n) {
  constexpr int kChunks = D / 8;  // 16-byte chunks per row
  constexpr int kLd = D + 8;
#pragma unroll
  for (int c = threadIdx.x; c < R * kChunks; c += kThreads) {
    const int r = c / kChunks, col = (c % kChunks) * 8;
    const int64_t row = row0 + r;
    const bool valid = row < n;
    cp_async_16(tile + r * kLd + col, src + (valid ? row : 0) * D + col, valid);
  }
}

// ---------------------------------------------------------------------------------------------
// Forward. One CTA = kWarps warps = 16 * kM * kWarps queries of one head; warp w owns kM blocks of
// 16 query rows (rows 16 (kM w + mi) .. + 15) and keeps their Q fragments, O accumulators (f32),
// running max m and running sum l in registers. Each K or V fragment read from shared memory feeds
// the kM blocks, so kM = 2 halves the shared-memory traffic per MMA (at twice the registers).
// Keys stream through shared memory in blocks of 64, double buffered with cp.async (block j + 1
// loads while block j computes).
// Grid: x = head, y = query tile counted from the last (causal: the longest tiles start first).

template <int D, int kWarps, int kM = 1>
struct ForwardTile {
  static constexpr int kBr = 16 * kM * kWarps, kBc = 64, kLd = D + 8, kThreads = 32 * kWarps;
  template <class T>
  static constexpr size_t smem_bytes() {
    return size_t(kBr + 4 * kBc) * kLd * sizeof(T);  // Q, K x 2, V x 2
  }
};

template <class T, int D, int kWarps, int kM = 1>
__global__ void __launch_bounds__(32 * kWarps) attention_forward_kernel(const AttentionParams p) {
  using Tile = ForwardTile<D, kWarps, kM>;
  constexpr int kBr = Tile::kBr, kBc = Tile::kBc, kLd = Tile::kLd, kThreads = Tile::kThreads;
  static_assert(D % 16 == 0 && D <= 128, "head dim");
  extern __shared__ __align__(16) unsigned char smem[];
  T* s_q = reinterpret_cast<T*>(smem);
  T* s_k = s_q + kBr * kLd;      // [2][kBc][kLd]
  T* s_v = s_k + 2 * kBc * kLd;  // [2][kBc][kLd]

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int64_t head = blockIdx.x;
  const int64_t q0 = int64_t(gridDim.y - 1 - blockIdx.y) * kBr;
  const T* q = static_cast<const T*>(p.q) + head * p.nq * D;
  const T* k = static_cast<const T*>(p.k) + head * p.nk * D;
  const T* v = static_cast<const T*>(p.v) + head * p.nk * D;
  T* o = static_cast<T*>(p.out) + head * p.nq * D;
  float* lse = p.lse + head * p.nq;

  // Keys this tile needs: all, or (causal) up to what its last real query sees.
  int64_t key_end = p.nk;
  if (p.causal) {
    const int64_t last_q = min64(q0 + kBr, p.nq) - 1;
    key_end = max64(0, min64(p.nk, last_q + p.offset + 1));
  }
  const int blocks = int((key_end + kBc - 1) / kBc);

  load_rows_async<T, D, kBr, kThreads>(s_q, q, q0, p.nq);
  if (blocks > 0) {
    load_rows_async<T, D, kBc, kThreads>(s_k, k, 0, p.nk);
    load_rows_async<T, D, kBc, kThreads>(s_v, v, 0, p.nk);
  }
  cp_async_commit();

  uint32_t q_frag[kM][D / 16][4];
  float acc[kM][D / 8][4];
  float m[kM][2], l[kM][2];  // rows g and g + 8 of each block
#pragma unroll
  for (int mi = 0; mi < kM; mi++) {
#pragma unroll
    for (int i = 0; i < D / 8; i++) acc[mi][i][0] = acc[mi][i][1] = acc[mi][i][2] = acc[mi][i][3] = 0.f;
    m[mi][0] = m[mi][1] = -INFINITY;
    l[mi][0] = l[mi][1] = 0.f;
  }
  const int64_t row_base = q0 + 16 * kM * warp + g;  // this lane's first query row (block mi: + 16 mi)

  for (int j = 0; j < blocks; j++) {
    const T* kb = s_k + (j & 1) * kBc * kLd;
    const T* vb = s_v + (j & 1) * kBc * kLd;
    if (j + 1 < blocks) {  // prefetch block j + 1 into the other buffer
      load_rows_async<T, D, kBc, kThreads>(s_k + ((j + 1) & 1) * kBc * kLd, k, int64_t(j + 1) * kBc, p.nk);
      load_rows_async<T, D, kBc, kThreads>(s_v + ((j + 1) & 1) * kBc * kLd, v, int64_t(j + 1) * kBc, p.nk);
    }
    cp_async_commit();  // possibly empty: keeps the group count uniform
    cp_async_wait<1>();  // everything but the prefetch has landed
    __syncthreads();

    if (j == 0) {
#pragma unroll
      for (int mi = 0; mi < kM; mi++)
#pragma unroll
        for (int kk = 0; kk < D / 16; kk++)
          ldmatrix_x4(q_frag[mi][kk], s_q + (16 * (kM * warp + mi) + lane % 16) * kLd + kk * 16 + (lane / 16) * 8);
    }

    // S = Q K^T for this warp's kM x 16 rows x 64 keys.
    float s[kM][kBc / 8][4];
#pragma unroll
    for (int mi = 0; mi < kM; mi++)
#pragma unroll
      for (int i = 0; i < kBc / 8; i++) s[mi][i][0] = s[mi][i][1] = s[mi][i][2] = s[mi][i][3] = 0.f;
#pragma unroll
    for (int kk = 0; kk < D / 16; kk++) {
#pragma unroll
      for (int np = 0; np < kBc / 16; np++) {
        uint32_t b[4];  // keys np*16 .. +15, dims kk*16 .. +15: b0, b1 of two key tiles
        ldmatrix_x4(b, kb + (np * 16 + (lane / 16) * 8 + lane % 8) * kLd + kk * 16 + ((lane / 8) % 2) * 8);
#pragma unroll
        for (int mi = 0; mi < kM; mi++) {
          Mma<T>::mma(s[mi][2 * np], q_frag[mi][kk], b[0], b[1]);
          Mma<T>::mma(s[mi][2 * np + 1], q_frag[mi][kk], b[2], b[3]);
        }
      }
    }

    // Scale to base 2 and mask: keys past nk, and (causal) keys after the query.
    const int64_t k0 = int64_t(j) * kBc;
    const bool edge = k0 + kBc > p.nk || (p.causal && k0 + kBc - 1 > q0 + p.offset);
#pragma unroll
    for (int mi = 0; mi < kM; mi++) {
#pragma unroll
      for (int nt = 0; nt < kBc / 8; nt++) {
#pragma unroll
        for (int e = 0; e < 4; e++) {
          float x = s[mi][nt][e] * p.scale_log2;
          if (edge) {
            const int64_t key = k0 + nt * 8 + 2 * t + (e & 1), row = row_base + 16 * mi + (e >> 1) * 8;
            if (key >= p.nk || (p.causal && key > row + p.offset)) x = -INFINITY;
          }
          s[mi][nt][e] = x;
        }
      }

      // Online softmax, per row (each row lives in the 4 lanes of a quad).
#pragma unroll
      for (int r = 0; r < 2; r++) {
        float mx = m[mi][r];
#pragma unroll
        for (int nt = 0; nt < kBc / 8; nt++) mx = fmaxf(mx, fmaxf(s[mi][nt][2 * r], s[mi][nt][2 * r + 1]));
        mx = quad_max(mx);
        const float m_use = mx == -INFINITY ? 0.f : mx;  // no visible key yet: P = 0, alpha = 0
        const float alpha = exp2f(m[mi][r] - m_use);
        m[mi][r] = mx;
        float sum = 0.f;
#pragma unroll
        for (int nt = 0; nt < kBc / 8; nt++) {
          s[mi][nt][2 * r] = exp2f(s[mi][nt][2 * r] - m_use);
          s[mi][nt][2 * r + 1] = exp2f(s[mi][nt][2 * r + 1] - m_use);
          sum += s[mi][nt][2 * r] + s[mi][nt][2 * r + 1];
        }
        l[mi][r] = l[mi][r] * alpha + sum;  // this lane's share; the quad's shares are summed at the end
#pragma unroll
        for (int dt = 0; dt < D / 8; dt++) acc[mi][dt][2 * r] *= alpha, acc[mi][dt][2 * r + 1] *= alpha;
      }
    }

    // O += P V: P from the S registers (C layout = A layout), V^T fragments by ldmatrix.trans.
#pragma unroll
    for (int kk = 0; kk < kBc / 16; kk++) {
      uint32_t a[kM][4];
#pragma unroll
      for (int mi = 0; mi < kM; mi++) {
        a[mi][0] = Mma<T>::pack(s[mi][2 * kk][0], s[mi][2 * kk][1]);
        a[mi][1] = Mma<T>::pack(s[mi][2 * kk][2], s[mi][2 * kk][3]);
        a[mi][2] = Mma<T>::pack(s[mi][2 * kk + 1][0], s[mi][2 * kk + 1][1]);
        a[mi][3] = Mma<T>::pack(s[mi][2 * kk + 1][2], s[mi][2 * kk + 1][3]);
      }
#pragma unroll
      for (int dp = 0; dp < D / 16; dp++) {
        uint32_t b[4];  // keys kk*16 .. +15, dims dp*16 .. +15
        ldmatrix_x4_trans(b, vb + (kk * 16 + ((lane / 8) % 2) * 8 + lane % 8) * kLd + dp * 16 + (lane / 16) * 8);
#pragma unroll
        for (int mi = 0; mi < kM; mi++) {
          Mma<T>::mma(acc[mi][2 * dp], a[mi], b[0], b[1]);
          Mma<T>::mma(acc[mi][2 * dp + 1], a[mi], b[2], b[3]);
        }
      }
    }
    __syncthreads();  // every warp is done with this buffer before the next prefetch overwrites it
  }
  cp_async_wait<0>();

#pragma unroll
  for (int mi = 0; mi < kM; mi++) {
#pragma unroll
    for (int r = 0; r < 2; r++) {
      const float sum = quad_sum(l[mi][r]);
      const int64_t row = row_base + 16 * mi + 8 * r;
      if (row >= p.nq) continue;
      const float inv = sum > 0.f ? 1.f / sum : 0.f;  // no visible key (causal, nq > nk): O = 0
#pragma unroll
      for (int dt = 0; dt < D / 8; dt++)
        *reinterpret_cast<uint32_t*>(o + row * D + dt * 8 + 2 * t) =
            Mma<T>::pack(acc[mi][dt][2 * r] * inv, acc[mi][dt][2 * r + 1] * inv);
      if (t == 0) lse[row] = sum > 0.f ? m[mi][r] * kLn2 + logf(sum) : -INFINITY;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Backward. One CTA = 4 warps = 64 keys of one head (warp w owns keys 16w .. 16w + 15 and keeps
// their dK, dV accumulators in registers); query tiles of kBr stream through shared memory,
// double buffered. Per query tile, each warp computes for its keys
//   S^T = K Q^T, dP^T = V dO^T                     (16 x kBr, f32)
//   P^T = exp2(S^T scale log2e - LSE log2e)        (the forward's probabilities, recomputed)
//   dS^T = P^T (dP^T - D)                          (D = rowsum(dO * O), per query)
//   dV += P^T dO, dK += dS^T Q                     (P^T, dS^T straight from registers)
// then all warps share dS (through shared memory) for dQ_tile += dS K, split by head-dim columns,
// and add it into the f32 dq_accum with atomics (every key block adds to the same dQ rows).
// dK is scaled by `scale` at the end; dQ is scaled when dq_accum is converted.
// Grid: x = head, y = key block.

template <int D, int kBr>
struct BackwardTile {
  static constexpr int kBc = 64, kWarps = 4, kThreads = 128, kLd = D + 8, kLdS = kBr + 8;
  template <class T>
  static constexpr size_t smem_bytes() {
    return size_t(2 * kBc + 4 * kBr) * kLd * sizeof(T)  // K, V, Q x 2, dO x 2
           + size_t(kBc) * kLdS * sizeof(T)            // dS^T
           + size_t(4 * kBr) * sizeof(float);          // lse2 x 2, delta x 2
  }
};

template <class T, int D, int kBr>
__global__ void __launch_bounds__(128) attention_backward_kernel(const AttentionParams p) {
  using Tile = BackwardTile<D, kBr>;
  constexpr int kBc = Tile::kBc, kLd = Tile::kLd, kLdS = Tile::kLdS, kThreads = Tile::kThreads;
  constexpr int kDT = D / 32;  // dQ: 8-wide column tiles per warp
  static_assert(D % 32 == 0 && D <= 128 && kBr % 16 == 0, "tile shape");
  extern __shared__ __align__(16) unsigned char smem[];
  T* s_k = reinterpret_cast<T*>(smem);
  T* s_v = s_k + kBc * kLd;
  T* s_q = s_v + kBc * kLd;        // [2][kBr][kLd]
  T* s_do = s_q + 2 * kBr * kLd;   // [2][kBr][kLd]
  T* s_ds = s_do + 2 * kBr * kLd;  // [kBc][kLdS]: dS^T (keys x queries)
  float* s_lse2 = reinterpret_cast<float*>(s_ds + kBc * kLdS);  // [2][kBr]
  float* s_delta = s_lse2 + 2 * kBr;                           // [2][kBr]

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int64_t head = blockIdx.x;
  const int64_t k0 = int64_t(blockIdx.y) * kBc;
  const T* q = static_cast<const T*>(p.q) + head * p.nq * D;
  const T* k = static_cast<const T*>(p.k) + head * p.nk * D;
  const T* v = static_cast<const T*>(p.v) + head * p.nk * D;
  const T* d_o = static_cast<const T*>(p.d_o) + head * p.nq * D;
  const float* lse = p.lse_in + head * p.nq;
  const float* delta = p.delta + head * p.nq;
  float* dq = p.dq_accum + head * p.nq * D;

  // Query tiles that see at least one of these keys: (causal) from the first query that sees k0.
  const int64_t q_first = p.causal ? max64(0, k0 - p.offset) : 0;
  const int first_tile = int(q_first / kBr), tiles = int((p.nq + kBr - 1) / kBr);

  auto load_query_tile = [&](int tile, int buf) {
    const int64_t r0 = int64_t(tile) * kBr;
    load_rows_async<T, D, kBr, kThreads>(s_q + buf * kBr * kLd, q, r0, p.nq);
    load_rows_async<T, D, kBr, kThreads>(s_do + buf * kBr * kLd, d_o, r0, p.nq);
    for (int i = threadIdx.x; i < kBr; i += kThreads) {
      const int64_t row = r0 + i;
      s_lse2[buf * kBr + i] = row < p.nq ? lse[row] * kLog2e : 0.f;
      s_delta[buf * kBr + i] = row < p.nq ? delta[row] : 0.f;
    }
  };

  load_rows_async<T, D, kBc, kThreads>(s_k, k, k0, p.nk);
  load_rows_async<T, D, kBc, kThreads>(s_v, v, k0, p.nk);
  if (first_tile < tiles) load_query_tile(first_tile, 0);
  cp_async_commit();

  float dk_acc[D / 8][4], dv_acc[D / 8][4];
#pragma unroll
  for (int i = 0; i < D / 8; i++)
#pragma unroll
    for (int e = 0; e < 4; e++) dk_acc[i][e] = dv_acc[i][e] = 0.f;
  const int64_t key_base = k0 + 16 * warp + g;  // this lane's first key row

  for (int tile = first_tile; tile < tiles; tile++) {
    const int buf = (tile - first_tile) & 1;
    const T* qb = s_q + buf * kBr * kLd;
    const T* dob = s_do + buf * kBr * kLd;
    const float* lse2b = s_lse2 + buf * kBr;
    const float* deltab = s_delta + buf * kBr;
    if (tile + 1 < tiles) load_query_tile(tile + 1, buf ^ 1);
    cp_async_commit();
    cp_async_wait<1>();
    __syncthreads();

    // S^T = K Q^T and dP^T = V dO^T: this warp's 16 keys x kBr queries.
    float st[kBr / 8][4], dpt[kBr / 8][4];
#pragma unroll
    for (int i = 0; i < kBr / 8; i++)
#pragma unroll
      for (int e = 0; e < 4; e++) st[i][e] = dpt[i][e] = 0.f;
#pragma unroll
    for (int kk = 0; kk < D / 16; kk++) {
      uint32_t ka[4], va[4];
      ldmatrix_x4(ka, s_k + (16 * warp + lane % 16) * kLd + kk * 16 + (lane / 16) * 8);
      ldmatrix_x4(va, s_v + (16 * warp + lane % 16) * kLd + kk * 16 + (lane / 16) * 8);
#pragma unroll
      for (int np = 0; np < kBr / 16; np++) {
        const int off = (np * 16 + (lane / 16) * 8 + lane % 8) * kLd + kk * 16 + ((lane / 8) % 2) * 8;
        uint32_t b[4];
        ldmatrix_x4(b, qb + off);
        Mma<T>::mma(st[2 * np], ka, b[0], b[1]);
        Mma<T>::mma(st[2 * np + 1], ka, b[2], b[3]);
        ldmatrix_x4(b, dob + off);
        Mma<T>::mma(dpt[2 * np], va, b[0], b[1]);
        Mma<T>::mma(dpt[2 * np + 1], va, b[2], b[3]);
      }
    }

    // P^T and dS^T in place (st becomes P^T, dpt becomes dS^T).
    const int64_t qt0 = int64_t(tile) * kBr;
    const bool edge = qt0 + kBr > p.nq || k0 + kBc > p.nk || (p.causal && k0 + kBc - 1 > qt0 + p.offset);
#pragma unroll
    for (int nt = 0; nt < kBr / 8; nt++) {
#pragma unroll
      for (int e = 0; e < 4; e++) {
        const int col = nt * 8 + 2 * t + (e & 1);  // query within the tile
        float pv = exp2f(st[nt][e] * p.scale_log2 - lse2b[col]);
        if (edge) {
          const int64_t key = key_base + (e >> 1) * 8, row = qt0 + col;
          if (key >= p.nk || row >= p.nq || (p.causal && key > row + p.offset)) pv = 0.f;
        }
        st[nt][e] = pv;
        dpt[nt][e] = pv * (dpt[nt][e] - deltab[col]);
      }
    }

    // dV += P^T dO and dK += dS^T Q (k = queries; dO and Q as B fragments by ldmatrix.trans).
#pragma unroll
    for (int kk = 0; kk < kBr / 16; kk++) {
      const uint32_t pa[4] = {Mma<T>::pack(st[2 * kk][0], st[2 * kk][1]), Mma<T>::pack(st[2 * kk][2], st[2 * kk][3]),
                              Mma<T>::pack(st[2 * kk + 1][0], st[2 * kk + 1][1]),
                              Mma<T>::pack(st[2 * kk + 1][2], st[2 * kk + 1][3])};
      const uint32_t da[4] = {Mma<T>::pack(dpt[2 * kk][0], dpt[2 * kk][1]),
                              Mma<T>::pack(dpt[2 * kk][2], dpt[2 * kk][3]),
                              Mma<T>::pack(dpt[2 * kk + 1][0], dpt[2 * kk + 1][1]),
                              Mma<T>::pack(dpt[2 * kk + 1][2], dpt[2 * kk + 1][3])};
#pragma unroll
      for (int dp = 0; dp < D / 16; dp++) {
        const int off = (kk * 16 + ((lane / 8) % 2) * 8 + lane % 8) * kLd + dp * 16 + (lane / 16) * 8;
        uint32_t b[4];
        ldmatrix_x4_trans(b, dob + off);
        Mma<T>::mma(dv_acc[2 * dp], pa, b[0], b[1]);
        Mma<T>::mma(dv_acc[2 * dp + 1], pa, b[2], b[3]);
        ldmatrix_x4_trans(b, qb + off);
        Mma<T>::mma(dk_acc[2 * dp], da, b[0], b[1]);
        Mma<T>::mma(dk_acc[2 * dp + 1], da, b[2], b[3]);
      }
      // dS^T rows of this warp to shared memory, for dQ.
#pragma unroll
      for (int half = 0; half < 2; half++) {
        const int nt = 2 * kk + half;
        T* row0 = s_ds + (16 * warp + g) * kLdS + nt * 8 + 2 * t;
        *reinterpret_cast<uint32_t*>(row0) = half ? da[2] : da[0];
        *reinterpret_cast<uint32_t*>(row0 + 8 * kLdS) = half ? da[3] : da[1];
      }
    }
    __syncthreads();

    // dQ_tile (kBr x D) += dS K: warp w computes columns [w D/4, (w+1) D/4) of every query row.
    float dq_acc[kBr / 16][kDT][4];
#pragma unroll
    for (int mt = 0; mt < kBr / 16; mt++)
#pragma unroll
      for (int n = 0; n < kDT; n++) dq_acc[mt][n][0] = dq_acc[mt][n][1] = dq_acc[mt][n][2] = dq_acc[mt][n][3] = 0.f;
#pragma unroll
    for (int kk = 0; kk < kBc / 16; kk++) {
      uint32_t b[kDT][2];  // K rows kk*16 .. +15 (k = keys), 8 columns each
#pragma unroll
      for (int n = 0; n < kDT; n++)
        ldmatrix_x2_trans(b[n], s_k + (kk * 16 + lane % 16) * kLd + (warp * kDT + n) * 8);
#pragma unroll
      for (int mt = 0; mt < kBr / 16; mt++) {
        uint32_t a[4];  // dS rows (queries) mt*16 .. +15, keys kk*16 .. +15, read from dS^T
        ldmatrix_x4_trans(a, s_ds + (kk * 16 + (lane / 16) * 8 + lane % 8) * kLdS + mt * 16 + ((lane / 8) % 2) * 8);
#pragma unroll
        for (int n = 0; n < kDT; n++) Mma<T>::mma(dq_acc[mt][n], a, b[n][0], b[n][1]);
      }
    }
#pragma unroll
    for (int mt = 0; mt < kBr / 16; mt++) {
#pragma unroll
      for (int r = 0; r < 2; r++) {
        const int64_t row = qt0 + mt * 16 + g + 8 * r;
        if (row >= p.nq) continue;
#pragma unroll
        for (int n = 0; n < kDT; n++) {
          atomic_add2(dq + row * D + (warp * kDT + n) * 8 + 2 * t, dq_acc[mt][n][2 * r], dq_acc[mt][n][2 * r + 1]);
        }
      }
    }
    __syncthreads();  // s_ds and this tile's buffers are reused by the next tile
  }
  cp_async_wait<0>();

  T* dk = static_cast<T*>(p.dk) + head * p.nk * D;
  T* dv = static_cast<T*>(p.dv) + head * p.nk * D;
#pragma unroll
  for (int r = 0; r < 2; r++) {
    const int64_t key = key_base + 8 * r;
    if (key >= p.nk) continue;
#pragma unroll
    for (int dt = 0; dt < D / 8; dt++) {
      const int64_t at = key * D + dt * 8 + 2 * t;
      *reinterpret_cast<uint32_t*>(dk + at) = Mma<T>::pack(dk_acc[dt][2 * r] * p.scale, dk_acc[dt][2 * r + 1] * p.scale);
      *reinterpret_cast<uint32_t*>(dv + at) = Mma<T>::pack(dv_acc[dt][2 * r], dv_acc[dt][2 * r + 1]);
    }
  }
}

// D = rowsum(dO * O) in f32, one warp per row.
template <class T, int D>
__global__ void attention_backward_delta_kernel(const T* o, const T* d_o, float* delta, int64_t rows) {
  const int64_t row = int64_t(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= rows) return;
  float acc = 0.f;
#pragma unroll
  for (int d = lane; d < D; d += 32) acc += Mma<T>::to_float(o[row * D + d]) * Mma<T>::to_float(d_o[row * D + d]);
#pragma unroll
  for (int s = 16; s > 0; s /= 2) acc += __shfl_xor_sync(0xffffffffu, acc, s);
  if (lane == 0) delta[row] = acc;
}

// dq = scale * dq_accum, rounded to T.
template <class T>
__global__ void attention_backward_dq_kernel(const float* dq_accum, T* dq, float scale, int64_t n) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    dq[i] = Mma<T>::from_float(dq_accum[i] * scale);
}

// ---------------------------------------------------------------------------------------------
// Host sequences, for cuda/attention.cu and the op backend (cuda/kernel_ops.cuh), through a
// launcher (cuda/launch.cuh). The mainline tiles (dev/cuda times the alternatives):
constexpr int kForwardWarps = 4;      // 64 queries per CTA
constexpr int kBackwardQueries = 64;  // queries per tile of the backward

// p.q, k, v, out (= o), lse, nq, nk, offset, scale, causal set.
template <class T, int D, class L>
void run_attention_forward_tiles(L& l, const AttentionParams& p, int64_t heads) {
  using Tile = ForwardTile<D, kForwardWarps>;
  l.launch(attention_forward_kernel<T, D, kForwardWarps>, dim3(unsigned(heads), unsigned((p.nq + Tile::kBr - 1) / Tile::kBr)),
           Tile::kThreads, Tile::template smem_bytes<T>(), p);
}

// D = rowsum(dO * O) (and dq_accum zeroed), the main kernel over key blocks (dK, dV written, dQ
// accumulated in f32 with atomics), then dq = scale * dq_accum. p.q, k, v, o, d_o, lse_in, dk, dv,
// out (= dq) set; the f32 scratch comes from the launcher.
template <class T, int D, class L>
void run_attention_backward_tiles(L& l, AttentionParams p, int64_t heads) {
  using Tile = BackwardTile<D, kBackwardQueries>;
  const int64_t rows = heads * p.nq, n = rows * D;
  auto scratch = l.scratch(size_t(rows) * (D + 1) * sizeof(float));  // dq_accum [rows, D], then delta [rows]
  p.dq_accum = static_cast<float*>(scratch.get());
  p.delta = p.dq_accum + n;
  l.zero(p.dq_accum, size_t(n) * sizeof(float));
  l.launch(attention_backward_delta_kernel<T, D>, dim3(unsigned((rows + 7) / 8)), 256, 0, static_cast<const T*>(p.o),
           static_cast<const T*>(p.d_o), const_cast<float*>(p.delta), rows);
  l.launch(attention_backward_kernel<T, D, kBackwardQueries>, dim3(unsigned(heads), unsigned((p.nk + Tile::kBc - 1) / Tile::kBc)),
           Tile::kThreads, Tile::template smem_bytes<T>(), p);
  const int64_t blocks = (n + 255) / 256;
  l.launch(attention_backward_dq_kernel<T>, dim3(unsigned(blocks < (1 << 16) ? blocks : (1 << 16))), 256, 0, p.dq_accum,
           static_cast<T*>(p.out), p.scale, n);
}

// The sequences for a runtime head dim (32, 64 or 128; others are the caller's error).
template <class T, class L>
void run_attention_forward_tiles(L& l, const AttentionParams& p, int64_t heads, int64_t dim) {
  if (dim == 32) run_attention_forward_tiles<T, 32>(l, p, heads);
  else if (dim == 64) run_attention_forward_tiles<T, 64>(l, p, heads);
  else run_attention_forward_tiles<T, 128>(l, p, heads);
}
template <class T, class L>
void run_attention_backward_tiles(L& l, const AttentionParams& p, int64_t heads, int64_t dim) {
  if (dim == 32) run_attention_backward_tiles<T, 32>(l, p, heads);
  else if (dim == 64) run_attention_backward_tiles<T, 64>(l, p, heads);
  else run_attention_backward_tiles<T, 128>(l, p, heads);
}

}  // namespace dfcuda

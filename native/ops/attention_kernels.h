// The building blocks of the CPU flash attention (attention.cpp): 16-lane float vectors (AVX-512
// when the build targets it, else plain loops the compiler vectorises), a 2^x good to ~1e-7
// relative, and register-blocked micro-kernels for the small products of one tile pair.
// Internal to native/ops; not part of the public interface.
#pragma once
#include <cmath>
#include <cstdint>
#include <limits>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace df {
inline namespace DF_CPU_NS {  // compiled once per CPU level (cpu_level.h)
namespace attn {

// ---------------------------------------------------------------------------------------------
// 16-lane vectors and lane masks.
using Mask = uint16_t;
constexpr Mask kAllLanes = 0xFFFF;
inline Mask first_lanes(int64_t n) { return n >= 16 ? kAllLanes : n <= 0 ? 0 : Mask((1u << n) - 1); }
// Lanes l with l >= t.
inline Mask lanes_from(int64_t t) { return t <= 0 ? kAllLanes : t >= 16 ? 0 : Mask(~((1u << t) - 1)); }

#if defined(__AVX512F__)
using Vec = __m512;
inline Vec vzero() { return _mm512_setzero_ps(); }
inline Vec vset(float x) { return _mm512_set1_ps(x); }
inline Vec vload(const float* p) { return _mm512_loadu_ps(p); }
inline Vec vload(const float* p, Mask m) { return _mm512_maskz_loadu_ps(m, p); }
inline void vstore(float* p, Vec v) { _mm512_storeu_ps(p, v); }
inline void vstore(float* p, Vec v, Mask m) { _mm512_mask_storeu_ps(p, m, v); }
inline Vec vfma(Vec a, Vec b, Vec c) { return _mm512_fmadd_ps(a, b, c); }
inline Vec vadd(Vec a, Vec b) { return _mm512_add_ps(a, b); }
inline Vec vsub(Vec a, Vec b) { return _mm512_sub_ps(a, b); }
inline Vec vmul(Vec a, Vec b) { return _mm512_mul_ps(a, b); }
inline Vec vmax(Vec a, Vec b) { return _mm512_max_ps(a, b); }
inline Vec vmin(Vec a, Vec b) { return _mm512_min_ps(a, b); }
// max(a, b) in the lanes of m, a elsewhere.
inline Vec vmax_masked(Vec a, Mask m, Vec b) { return _mm512_mask_max_ps(a, m, a, b); }
// v in the lanes of m, 0 elsewhere.
inline Vec vkeep(Mask m, Vec v) { return _mm512_maskz_mov_ps(m, v); }
// x where x is finite, else `fallback` (used for "no key seen yet": max = -inf).
inline Vec vfinite_or(Vec x, float fallback) {
  Mask inf = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-std::numeric_limits<float>::infinity()), _CMP_EQ_OQ);
  return _mm512_mask_mov_ps(x, inf, _mm512_set1_ps(fallback));
}
inline Vec vround(Vec x) { return _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
inline Vec vscale2(Vec p, Vec n) { return _mm512_scalef_ps(p, n); }  // p * 2^n
inline float vsum(Vec v) { return _mm512_reduce_add_ps(v); }
// Keeps v in a register: without it GCC folds the B loads of small register blocks into every
// FMA that uses them (a memory operand per FMA), which halves the speed of blocks of <= 4 rows.
inline void vpin(Vec& v) { __asm__("" : "+v"(v)); }
#else
struct Vec {
  float x[16];
};
#define DF_LANES for (int i = 0; i < 16; i++)
inline Vec vzero() { Vec r; DF_LANES r.x[i] = 0.f; return r; }
inline Vec vset(float a) { Vec r; DF_LANES r.x[i] = a; return r; }
inline Vec vload(const float* p) { Vec r; DF_LANES r.x[i] = p[i]; return r; }
inline Vec vload(const float* p, Mask m) { Vec r; DF_LANES r.x[i] = (m >> i) & 1 ? p[i] : 0.f; return r; }
inline void vstore(float* p, Vec v) { DF_LANES p[i] = v.x[i]; }
inline void vstore(float* p, Vec v, Mask m) { DF_LANES if ((m >> i) & 1) p[i] = v.x[i]; }
#if defined(__FMA__)
inline Vec vfma(Vec a, Vec b, Vec c) { Vec r; DF_LANES r.x[i] = std::fma(a.x[i], b.x[i], c.x[i]); return r; }
#else  // no FMA instruction (the baseline level): std::fma would be a libm call per lane
inline Vec vfma(Vec a, Vec b, Vec c) { Vec r; DF_LANES r.x[i] = a.x[i] * b.x[i] + c.x[i]; return r; }
#endif
inline Vec vadd(Vec a, Vec b) { Vec r; DF_LANES r.x[i] = a.x[i] + b.x[i]; return r; }
inline Vec vsub(Vec a, Vec b) { Vec r; DF_LANES r.x[i] = a.x[i] - b.x[i]; return r; }
inline Vec vmul(Vec a, Vec b) { Vec r; DF_LANES r.x[i] = a.x[i] * b.x[i]; return r; }
inline Vec vmax(Vec a, Vec b) { Vec r; DF_LANES r.x[i] = a.x[i] > b.x[i] ? a.x[i] : b.x[i]; return r; }
inline Vec vmin(Vec a, Vec b) { Vec r; DF_LANES r.x[i] = a.x[i] < b.x[i] ? a.x[i] : b.x[i]; return r; }
inline Vec vmax_masked(Vec a, Mask m, Vec b) { Vec r; DF_LANES r.x[i] = (m >> i) & 1 && b.x[i] > a.x[i] ? b.x[i] : a.x[i]; return r; }
inline Vec vkeep(Mask m, Vec v) { Vec r; DF_LANES r.x[i] = (m >> i) & 1 ? v.x[i] : 0.f; return r; }
inline Vec vfinite_or(Vec x, float fallback) { Vec r; DF_LANES r.x[i] = x.x[i] == -std::numeric_limits<float>::infinity() ? fallback : x.x[i]; return r; }
inline Vec vround(Vec x) { Vec r; DF_LANES r.x[i] = std::nearbyint(x.x[i]); return r; }
inline Vec vscale2(Vec p, Vec n) { Vec r; DF_LANES r.x[i] = std::ldexp(p.x[i], int(n.x[i])); return r; }
inline float vsum(Vec v) { float s = 0.f; DF_LANES s += v.x[i]; return s; }
inline void vpin(Vec&) {}
#undef DF_LANES
#endif

// 2^x for x <= 0 (and a little above): x = n + f with |f| <= 1/2, 2^f by a degree-6 polynomial
// (least-squares fit of the relative error on [-1/2, 1/2]: 4.4e-9, below f32 rounding), then
// scaled by 2^n exactly. Below -150 the result is 0 (also for x = -inf, which the clamp keeps from
// turning into NaN). Above 128 it is inf: the clamp there keeps n a valid int for the portable
// ldexp (a lane that a mask discards afterwards may hold anything, +inf included).
inline Vec vexp2(Vec x) {
  x = vmin(vmax(x, vset(-150.f)), vset(128.f));
  Vec n = vround(x);
  Vec f = vsub(x, n);
  Vec p = vset(1.5332507681144132e-04f);
  p = vfma(p, f, vset(1.3394701155762816e-03f));
  p = vfma(p, f, vset(9.6184910062970580e-03f));
  p = vfma(p, f, vset(5.5503422843959030e-02f));
  p = vfma(p, f, vset(2.4022647364465785e-01f));
  p = vfma(p, f, vset(6.9314719920714110e-01f));
  p = vfma(p, f, vset(1.0000000004120226f));
  return vscale2(p, n);
}

// ---------------------------------------------------------------------------------------------
// dst[d * ldd + r] = src[r * lds + d] for r < rows, d < cols (a tile is packed transposed).
inline void transpose(const float* src, int64_t lds, int64_t rows, int64_t cols, float* dst, int64_t ldd) {
  int64_t r0 = 0;
#if defined(__AVX512F__)
  // 16 x 16 blocks: interleave 32-bit, then 64-bit elements within 128-bit lanes, then the lanes.
  for (; r0 + 16 <= rows; r0 += 16) {
    int64_t d0 = 0;
    for (; d0 + 16 <= cols; d0 += 16) {
      __m512 t[16], u[16];
      for (int i = 0; i < 8; i++) {
        __m512 a = _mm512_loadu_ps(src + (r0 + 2 * i) * lds + d0), b = _mm512_loadu_ps(src + (r0 + 2 * i + 1) * lds + d0);
        t[2 * i] = _mm512_unpacklo_ps(a, b);
        t[2 * i + 1] = _mm512_unpackhi_ps(a, b);
      }
      // u[4i + j], 128-bit lane k: rows 4i..4i+3 of column 4k + j.
      for (int i = 0; i < 4; i++) {
        __m512d a = _mm512_castps_pd(t[4 * i]), b = _mm512_castps_pd(t[4 * i + 1]);
        __m512d c = _mm512_castps_pd(t[4 * i + 2]), d = _mm512_castps_pd(t[4 * i + 3]);
        u[4 * i + 0] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
        u[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
        u[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
        u[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
      }
      for (int j = 0; j < 4; j++) {
        __m512 ab_lo = _mm512_shuffle_f32x4(u[j], u[4 + j], _MM_SHUFFLE(1, 0, 1, 0));
        __m512 ab_hi = _mm512_shuffle_f32x4(u[j], u[4 + j], _MM_SHUFFLE(3, 2, 3, 2));
        __m512 cd_lo = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], _MM_SHUFFLE(1, 0, 1, 0));
        __m512 cd_hi = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], _MM_SHUFFLE(3, 2, 3, 2));
        _mm512_storeu_ps(dst + (d0 + j) * ldd + r0, _mm512_shuffle_f32x4(ab_lo, cd_lo, _MM_SHUFFLE(2, 0, 2, 0)));
        _mm512_storeu_ps(dst + (d0 + 4 + j) * ldd + r0, _mm512_shuffle_f32x4(ab_lo, cd_lo, _MM_SHUFFLE(3, 1, 3, 1)));
        _mm512_storeu_ps(dst + (d0 + 8 + j) * ldd + r0, _mm512_shuffle_f32x4(ab_hi, cd_hi, _MM_SHUFFLE(2, 0, 2, 0)));
        _mm512_storeu_ps(dst + (d0 + 12 + j) * ldd + r0, _mm512_shuffle_f32x4(ab_hi, cd_hi, _MM_SHUFFLE(3, 1, 3, 1)));
      }
    }
    for (int64_t r = r0; r < r0 + 16; r++)
      for (int64_t d = d0; d < cols; d++) dst[d * ldd + r] = src[r * lds + d];
  }
#endif
  for (int64_t r = r0; r < rows; r++)
    for (int64_t d = 0; d < cols; d++) dst[d * ldd + r] = src[r * lds + d];
}

// ---------------------------------------------------------------------------------------------
// Tile products: C[M, N] = alpha * A[M, K] B[K, N] (+ C, or + rowscale[r] * C), row-major B with
// contiguous columns. A is row-major (A(r, k) = a[r * lda + k]) or, with TransA, stored transposed
// (A(r, k) = a[k * lda + r]), which is how P^T and dS^T are read without copying them.
// M, N, K are at most a few hundred (one tile); nothing here is parallel.

enum class Accumulate { No, Add, RowScale };

// One register block: R rows x NV vectors of 16 columns; the last vector is masked by `last`.
template <int R, int NV, bool TransA>
inline void micro_kernel(int64_t K, const float* a, int64_t lda, const float* b, int64_t ldb, float* c,
                         int64_t ldc, float alpha, Accumulate mode, const float* rowscale, Mask last) {
  Vec acc[R][NV];
#pragma GCC unroll 16
  for (int r = 0; r < R; r++)
#pragma GCC unroll 8
    for (int v = 0; v < NV; v++) acc[r][v] = vzero();
  for (int64_t k = 0; k < K; k++) {
    const float* bk = b + k * ldb;
    Vec bv[NV];
#pragma GCC unroll 8
    for (int v = 0; v < NV - 1; v++) bv[v] = vload(bk + 16 * v);
    bv[NV - 1] = vload(bk + 16 * (NV - 1), last);
#pragma GCC unroll 8
    for (int v = 0; v < NV; v++) vpin(bv[v]);
#pragma GCC unroll 16
    for (int r = 0; r < R; r++) {
      Vec ar = vset(TransA ? a[k * lda + r] : a[r * lda + k]);
#pragma GCC unroll 8
      for (int v = 0; v < NV; v++) acc[r][v] = vfma(ar, bv[v], acc[r][v]);
    }
  }
  Vec va = vset(alpha);
#pragma GCC unroll 16
  for (int r = 0; r < R; r++) {
    float* cr = c + r * ldc;
#pragma GCC unroll 8
    for (int v = 0; v < NV; v++) {
      Mask m = v == NV - 1 ? last : kAllLanes;
      Vec res = vmul(acc[r][v], va);
      if (mode == Accumulate::Add) res = vadd(vload(cr + 16 * v, m), res);
      else if (mode == Accumulate::RowScale) res = vfma(vset(rowscale[r]), vload(cr + 16 * v, m), res);
      vstore(cr + 16 * v, res, m);
    }
  }
}

// The rows M - M % R .. M - 1 with a smaller block (R' = rem).
template <int R, int NV, bool TransA>
inline void remainder_rows(int64_t rem, int64_t K, const float* a, int64_t lda, const float* b, int64_t ldb,
                           float* c, int64_t ldc, float alpha, Accumulate mode, const float* rowscale, Mask last) {
  if constexpr (R >= 1) {
    if (rem == R) micro_kernel<R, NV, TransA>(K, a, lda, b, ldb, c, ldc, alpha, mode, rowscale, last);
    else remainder_rows<R - 1, NV, TransA>(rem, K, a, lda, b, ldb, c, ldc, alpha, mode, rowscale, last);
  }
}

// All rows of one column panel of NV vectors.
template <int R, int NV, bool TransA>
inline void panel(int64_t M, int64_t K, const float* a, int64_t lda, const float* b, int64_t ldb, float* c,
                  int64_t ldc, float alpha, Accumulate mode, const float* rowscale, Mask last) {
  int64_t m0 = 0;
  auto a_at = [&](int64_t row) { return TransA ? a + row : a + row * lda; };
  for (; m0 + R <= M; m0 += R)
    micro_kernel<R, NV, TransA>(K, a_at(m0), lda, b, ldb, c + m0 * ldc, ldc, alpha, mode,
                                rowscale ? rowscale + m0 : nullptr, last);
  if (m0 < M)
    remainder_rows<R - 1, NV, TransA>(M - m0, K, a_at(m0), lda, b, ldb, c + m0 * ldc, ldc, alpha, mode,
                                      rowscale ? rowscale + m0 : nullptr, last);
}

// Register blocks: 24 accumulators of the 32 vector registers, the rest for B and the broadcast.
// Without AVX-512 a Vec takes two (AVX2) or four (SSE) of 16 registers: smaller blocks, which
// also keep the code of those levels small.
#if defined(__AVX512F__)
constexpr int kRows4 = 6, kRows3 = 8, kRows2 = 12, kRows1 = 12;
#else
constexpr int kRows4 = 1, kRows3 = 2, kRows2 = 3, kRows1 = 4;
#endif
template <bool TransA>
inline void tile_gemm(int64_t M, int64_t N, int64_t K, const float* a, int64_t lda, const float* b, int64_t ldb,
                      float* c, int64_t ldc, float alpha, Accumulate mode = Accumulate::No,
                      const float* rowscale = nullptr) {
  if (M <= 0 || N <= 0) return;
  for (int64_t n0 = 0, nn; n0 < N; n0 += nn) {
    nn = N - n0 < 64 ? N - n0 : 64;
    // 65..80 columns as 48 + 17..32 rather than 64 + a single vector: one-vector panels need a
    // broadcast per FMA and run at half speed.
    if (N - n0 > 64 && N - n0 <= 80) nn = 48;
    int64_t nv = (nn + 15) / 16;
    Mask last = first_lanes(nn - 16 * (nv - 1));
    const float* bp = b + n0;
    float* cp = c + n0;
    switch (nv) {
      case 4: panel<kRows4, 4, TransA>(M, K, a, lda, bp, ldb, cp, ldc, alpha, mode, rowscale, last); break;
      case 3: panel<kRows3, 3, TransA>(M, K, a, lda, bp, ldb, cp, ldc, alpha, mode, rowscale, last); break;
      case 2: panel<kRows2, 2, TransA>(M, K, a, lda, bp, ldb, cp, ldc, alpha, mode, rowscale, last); break;
      default: panel<kRows1, 1, TransA>(M, K, a, lda, bp, ldb, cp, ldc, alpha, mode, rowscale, last); break;
    }
  }
}

}  // namespace attn
}  // namespace DF_CPU_NS
}  // namespace df

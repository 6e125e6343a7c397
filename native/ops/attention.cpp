// Flash attention on the CPU, FlashAttention-2's algorithm with tiles sized for L1/L2:
//
// Forward, one task per (batch, head, tile of kBr queries): the tile's Q is packed transposed once,
// then for every tile of kBc keys S^T = K_j Q_i^T (keys in rows, queries in columns, so the
// softmax reductions over keys run down columns: vector max/add, no horizontal reductions), an
// online softmax update (running max m and sum l per query, in base-2 units: S is pre-multiplied by
// scale * log2(e) so the exponential is a 2^x), and O_i = alpha * O_i + P V_j accumulated in the
// output rows. LSE = (m ln 2) + ln l.
//
// Backward, one task per (batch, head, set of key tiles) so dK and dV rows have one writer: for
// each key tile, K_j^T and V_j^T are packed once, then for every query tile P = 2^(S' - LSE')
// is recomputed, dV += P^T dO, dP = dO V^T, dS = P (dP - D) with D = rowsum(dO * O) computed
// first, dK += scale dS^T Q, dQ += scale dS K. dQ rows are shared by all key tiles of a head: the
// first key set accumulates into dq, others (only for fewer than 8 heads) into their own O(N D)
// partial buffers, summed in a fixed order at the end. No buffer is ever N x N.
#include "attention.h"

// GCC 12 reports its own AVX-512 intrinsics (the "undefined" passthrough operand of unmasked
// ops) as (maybe-)uninitialized once they are inlined here; the warning is a false positive.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>

#include "../core/allocator.h"
#include "../core/error.h"
#include "../core/threadpool.h"
#include "attention_kernels.h"

namespace df {
inline namespace DF_CPU_NS {

namespace {

using attn::Accumulate;
using attn::Mask;
using attn::Vec;

constexpr int64_t kBr = 64;  // queries per tile
constexpr int64_t kBc = 64;  // keys per tile
// Row strides of the tile workspaces: padded so that they are not a power of two (a 256-byte
// stride maps a tile's column onto a quarter of the L1 sets).
constexpr int64_t kLdR = kBr + 16;
constexpr int64_t kLdC = kBc + 16;
constexpr float kLog2e = 1.4426950408889634f;
constexpr double kLn2 = 0.69314718055994531;
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// Scratch memory from the tensor allocator, so memory() and its peak account for it.
class Workspace {
 public:
  explicit Workspace(size_t floats) : bytes_(std::max<size_t>(floats, 1) * sizeof(float)) {
    data_ = static_cast<float*>(device_alloc(Device{}, bytes_));
    std::memset(data_, 0, bytes_);
  }
  ~Workspace() { device_free(Device{}, data_, bytes_); }
  Workspace(const Workspace&) = delete;
  Workspace& operator=(const Workspace&) = delete;
  float* data() const { return data_; }

 private:
  size_t bytes_;
  float* data_;
};

// Runs fn(task, scratch) for every task in [0, tasks), dynamically scheduled, where `scratch` is
// a private block of slot_floats floats: one per worker, not one per task.
template <class F>
void run_tasks(int64_t tasks, size_t slot_floats, F&& fn) {
  if (tasks <= 0) return;
  int64_t workers = std::min<int64_t>(in_parallel_region() ? 1 : num_threads(), tasks);
  size_t slot = (slot_floats + 15) / 16 * 16;  // 64-byte aligned slots
  Workspace ws(size_t(workers) * slot);
  std::atomic<int64_t> next{0};
  parallel_tasks(workers, [&](int64_t w) {
    float* scratch = ws.data() + size_t(w) * slot;
    for (int64_t t = next.fetch_add(1); t < tasks; t = next.fetch_add(1)) fn(t, scratch);
  });
}

// Transposes rows [r0, r0 + n) of a [*, D] matrix into dst[D][ld].
void pack_transposed(const float* src, int64_t r0, int64_t n, int64_t D, float* dst, int64_t ld) {
  attn::transpose(src + r0 * D, D, n, D, dst, ld);
}

// With causal masking, key j is visible to query i when j <= i + offset (offset = nk - nq: the
// last query sees every key, as with equal lengths).
struct Geometry {
  int64_t nq, nk, dim;
  bool causal;
  int64_t offset() const { return nk - nq; }
  // One past the last key query row i may see.
  int64_t key_end(int64_t i) const { return causal ? std::clamp<int64_t>(i + offset() + 1, 0, nk) : nk; }
};

// ---------------------------------------------------------------------------------------------
// Forward

size_t forward_slot_floats(int64_t dim) { return size_t(dim * kLdR + kBc * kLdR + 3 * kBr); }

// The online-softmax step for one tile of S^T (nc keys x nr queries, base-2 units, row stride
// kLdR): updates m and l, writes P^T over S^T (0 where masked) and the factor alpha that rescales
// each query's accumulator. The kGroups vectors of 16 queries advance together, so the running max
// and sum are kGroups independent dependency chains rather than one.
constexpr int kGroups = int(kBr / 16);
void softmax_step(float* st, int64_t nc, int64_t nr, int64_t k0, int64_t q0, const Geometry& g, float* m,
                  float* l, float* alpha) {
  Mask lanes[kGroups];
  Vec m_old[kGroups], m_new[kGroups], m_use[kGroups], sum[kGroups];
  for (int j = 0; j < kGroups; j++) {
    lanes[j] = attn::first_lanes(nr - 16 * j);
    m_old[j] = m_new[j] = attn::vload(m + 16 * j);
    sum[j] = attn::vzero();
  }
  // Key k0 + c is visible to query q0 + 16 j + lane when lane >= k0 + c - q0 - 16 j - offset; only
  // tiles that cross the diagonal need the per-key masks.
  const int64_t first_lane = k0 - q0 - g.offset();
  const bool diagonal = g.causal && first_lane + nc - 1 > 0;
  auto visible = [&](int64_t c, int j) {
    return diagonal ? Mask(lanes[j] & attn::lanes_from(first_lane + c - 16 * j)) : lanes[j];
  };
  for (int64_t c = 0; c < nc; c++)
    for (int j = 0; j < kGroups; j++)
      m_new[j] = attn::vmax_masked(m_new[j], visible(c, j), attn::vload(st + c * kLdR + 16 * j));
  for (int j = 0; j < kGroups; j++) m_use[j] = attn::vfinite_or(m_new[j], 0.f);  // no key seen yet: P = 0
  for (int64_t c = 0; c < nc; c++)
    for (int j = 0; j < kGroups; j++) {
      float* s = st + c * kLdR + 16 * j;
      Vec p = attn::vkeep(visible(c, j), attn::vexp2(attn::vsub(attn::vload(s), m_use[j])));
      attn::vstore(s, p);
      sum[j] = attn::vadd(sum[j], p);
    }
  for (int j = 0; j < kGroups; j++) {
    Vec a = attn::vexp2(attn::vsub(m_old[j], m_use[j]));  // 0 for a query that had seen no key
    attn::vstore(l + 16 * j, attn::vfma(attn::vload(l + 16 * j), a, sum[j]));
    attn::vstore(m + 16 * j, m_new[j]);
    attn::vstore(alpha + 16 * j, a);
  }
}

// One query tile of one head: q, k, v, o, lse point at that head.
void forward_tile(const float* q, const float* k, const float* v, float* o, float* lse, int64_t q0,
                  const Geometry& g, float scale, float* scratch) {
  const int64_t D = g.dim, nr = std::min(kBr, g.nq - q0);
  float* qt = scratch;          // [D][kLdR]: Q_i^T
  float* st = qt + D * kLdR;    // [kBc][kLdR]: S^T, then P^T
  float* m = st + kBc * kLdR;   // running max per query (base 2)
  float* l = m + kBr;           // running sum per query
  float* alpha = l + kBr;       // this step's rescale factor per query
  pack_transposed(q, q0, nr, D, qt, kLdR);
  for (int64_t r = 0; r < kBr; r++) m[r] = kNegInf, l[r] = 0.f;
  float* oi = o + q0 * D;
  std::memset(oi, 0, size_t(nr * D) * sizeof(float));

  const int64_t key_end = g.key_end(q0 + nr - 1);  // the tile's last query sees the most keys
  for (int64_t k0 = 0; k0 < key_end; k0 += kBc) {
    int64_t nc = std::min(kBc, key_end - k0);
    // Key k0 + c is visible to query q0 + r when r >= c + first: a causal tile with first + nc - 1 > 0
    // crosses the diagonal, and its blocks of 16 keys / 16 queries skip what is all masked.
    const int64_t first = k0 - q0 - g.offset();
    if (!(g.causal && first + nc - 1 > 0)) {
      attn::tile_gemm<false>(nc, nr, D, k + k0 * D, D, qt, kLdR, st, kLdR, scale * kLog2e);
      softmax_step(st, nc, nr, k0, q0, g, m, l, alpha);
      attn::tile_gemm<true>(nr, D, nc, st, kLdR, v + k0 * D, D, oi, D, 1.f, Accumulate::RowScale, alpha);
      continue;
    }
    // S^T rows c0 .. c0 + 15 only for the query columns from (c0 + first) down to a multiple of 16;
    // the columns left of that stay unwritten, and softmax_step masks them before any use.
    for (int64_t c0 = 0; c0 < nc; c0 += 16) {
      const int64_t col0 = std::clamp<int64_t>(c0 + first, 0, nr) / 16 * 16;
      attn::tile_gemm<false>(std::min<int64_t>(16, nc - c0), nr - col0, D, k + (k0 + c0) * D, D, qt + col0, kLdR,
                             st + c0 * kLdR + col0, kLdR, scale * kLog2e);
    }
    softmax_step(st, nc, nr, k0, q0, g, m, l, alpha);
    // O rows r0 .. r0 + 15 only over the keys they can see (P^T is 0 past them); K = 0 still rescales.
    for (int64_t r0 = 0; r0 < nr; r0 += 16) {
      const int64_t keys = std::clamp<int64_t>(r0 + 16 - first, 0, nc);
      attn::tile_gemm<true>(std::min<int64_t>(16, nr - r0), D, keys, st + r0, kLdR, v + k0 * D, D, oi + r0 * D, D, 1.f,
                            Accumulate::RowScale, alpha + r0);
    }
  }
  for (int64_t r = 0; r < nr; r++) {
    float* orow = oi + r * D;
    if (l[r] > 0.f) {
      float inv = 1.f / l[r];
      for (int64_t d = 0; d < D; d++) orow[d] *= inv;
      lse[q0 + r] = float(double(m[r]) * kLn2 + std::log(double(l[r])));
    } else {  // no visible key (causal with nq > nk): output 0
      lse[q0 + r] = kNegInf;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Backward

size_t backward_slot_floats(int64_t dim) { return size_t(2 * dim * kLdC + 2 * kBr * kLdC); }


struct BackwardHead {
  const float *q, *k, *v, *d_o, *lse2, *delta;  // lse2 = LSE * log2(e); delta = rowsum(dO * O)
  float *dq, *dk, *dv;
};

// Key tiles first, first + stride, ... of one head.
void backward_keys(const BackwardHead& h, int64_t first, int64_t stride, bool owns_dq, const Geometry& g,
                   float scale, float* scratch) {
  const int64_t D = g.dim;
  float* kt = scratch;          // [D][kLdC]: K_j^T
  float* vt = kt + D * kLdC;    // [D][kLdC]: V_j^T
  float* p = vt + D * kLdC;     // [kBr][kLdC]: S', then P
  float* ds = p + kBr * kLdC;   // [kBr][kLdC]: dP, then dS
  if (owns_dq) std::memset(h.dq, 0, size_t(g.nq * D) * sizeof(float));
  const int64_t key_tiles = (g.nk + kBc - 1) / kBc;
  for (int64_t j = first; j < key_tiles; j += stride) {
    const int64_t k0 = j * kBc, nc = std::min(kBc, g.nk - k0);
    float* dk = h.dk + k0 * D;
    float* dv = h.dv + k0 * D;
    // The first query that sees key k0.
    const int64_t q_first = g.causal ? std::max<int64_t>(0, k0 - g.offset()) : 0;
    if (q_first >= g.nq) {  // keys that no query sees
      std::memset(dk, 0, size_t(nc * D) * sizeof(float));
      std::memset(dv, 0, size_t(nc * D) * sizeof(float));
      continue;
    }
    pack_transposed(h.k, k0, nc, D, kt, kLdC);
    pack_transposed(h.v, k0, nc, D, vt, kLdC);
    for (int64_t q0 = q_first / kBr * kBr; q0 < g.nq; q0 += kBr) {
      const int64_t nr = std::min(kBr, g.nq - q0);
      // dK and dV rows are written by the first query tile, accumulated by the others.
      const Accumulate kv_mode = q0 == q_first / kBr * kBr ? Accumulate::No : Accumulate::Add;
      const float* qi = h.q + q0 * D;
      const float* doi = h.d_o + q0 * D;
      // Query q0 + r sees keys k0 + c for c < r - first + 1 (a causal tile with first + nc - 1 > 0
      // crosses the diagonal): its blocks of 16 queries / 16 keys skip what is all masked.
      const int64_t first = k0 - q0 - g.offset();
      const bool diagonal = g.causal && first + nc - 1 > 0;
      if (!diagonal) {
        attn::tile_gemm<false>(nr, nc, D, qi, D, kt, kLdC, p, kLdC, scale * kLog2e);
        attn::tile_gemm<false>(nr, nc, D, doi, D, vt, kLdC, ds, kLdC, 1.f);
      } else {  // S and dP rows r0 .. r0 + 15 up to the last key they see; the rest stays unwritten
        for (int64_t r0 = 0; r0 < nr; r0 += 16) {
          const int64_t rows = std::min<int64_t>(16, nr - r0), keys = std::clamp<int64_t>(r0 + 16 - first, 0, nc);
          attn::tile_gemm<false>(rows, keys, D, qi + r0 * D, D, kt, kLdC, p + r0 * kLdC, kLdC, scale * kLog2e);
          attn::tile_gemm<false>(rows, keys, D, doi + r0 * D, D, vt, kLdC, ds + r0 * kLdC, kLdC, 1.f);
        }
      }
      for (int64_t r = 0; r < nr; r++) {
        // Keys c < visible of this tile are visible to query q0 + r.
        const int64_t visible = g.key_end(q0 + r) - k0;
        const Vec lse2 = attn::vset(h.lse2[q0 + r]), delta = attn::vset(h.delta[q0 + r]);
        float* pr = p + r * kLdC;
        float* dsr = ds + r * kLdC;
        for (int64_t c = 0; c < nc; c += 16) {
          Mask cols = attn::first_lanes(nc - c);
          const Mask seen = attn::first_lanes(visible - c);  // also masks the unwritten S and dP
          Vec pv = attn::vkeep(seen, attn::vexp2(attn::vsub(attn::vload(pr + c, cols), lse2)));
          attn::vstore(pr + c, pv, cols);
          attn::vstore(dsr + c, attn::vkeep(seen, attn::vmul(pv, attn::vsub(attn::vload(dsr + c, cols), delta))), cols);
        }
      }
      if (!diagonal) {
        attn::tile_gemm<true>(nc, D, nr, p, kLdC, doi, D, dv, D, 1.f, kv_mode);      // dV += P^T dO
        attn::tile_gemm<true>(nc, D, nr, ds, kLdC, qi, D, dk, D, scale, kv_mode);    // dK += dS^T Q
        attn::tile_gemm<false>(nr, D, nc, ds, kLdC, h.k + k0 * D, D, h.dq + q0 * D, D, scale,
                               Accumulate::Add);                                            // dQ += dS K
        continue;
      }
      // dK and dV rows c0 .. c0 + 15 from the queries that see them (r >= c0 + first); with none,
      // K = 0 still writes (kv_mode No) or keeps (Add) the rows.
      for (int64_t c0 = 0; c0 < nc; c0 += 16) {
        const int64_t keys = std::min<int64_t>(16, nc - c0), r_first = std::clamp<int64_t>(c0 + first, 0, nr);
        attn::tile_gemm<true>(keys, D, nr - r_first, p + r_first * kLdC + c0, kLdC, doi + r_first * D, D,
                              dv + c0 * D, D, 1.f, kv_mode);
        attn::tile_gemm<true>(keys, D, nr - r_first, ds + r_first * kLdC + c0, kLdC, qi + r_first * D, D,
                              dk + c0 * D, D, scale, kv_mode);
      }
      for (int64_t r0 = 0; r0 < nr; r0 += 16) {  // dQ rows over the keys they see
        const int64_t rows = std::min<int64_t>(16, nr - r0), keys = std::clamp<int64_t>(r0 + 16 - first, 0, nc);
        attn::tile_gemm<false>(rows, D, keys, ds + r0 * kLdC, kLdC, h.k + k0 * D, D, h.dq + (q0 + r0) * D, D, scale,
                               Accumulate::Add);
      }
    }
  }
}

void check_raw_shape(const AttentionShape& s, float scale) {
  check(s.batch >= 1 && s.heads >= 1 && s.nq >= 1 && s.nk >= 1 && s.dim >= 1, Code::Shape,
        "attention: expected positive batch, heads, nq, nk and dim");
  check(s.dim <= kMaxAttentionDim, Code::Shape,
        "attention: dim: expected at most " + std::to_string(kMaxAttentionDim) + ", got " + std::to_string(s.dim));
  check(std::isfinite(scale), Code::NonFinite, "attention: scale: expected a finite number, got " + std::to_string(scale));
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Raw forms

void attention_forward(const float* q, const float* k, const float* v, float* o, float* lse,
                       const AttentionShape& s, float scale, bool causal) {
  check_raw_shape(s, scale);
  const Geometry g{s.nq, s.nk, s.dim, causal};
  const int64_t heads = s.batch * s.heads, q_tiles = (s.nq + kBr - 1) / kBr;
  run_tasks(heads * q_tiles, forward_slot_floats(s.dim), [&](int64_t t, float* scratch) {
    const int64_t h = t / q_tiles;
    int64_t i = t % q_tiles;
    if (causal) i = q_tiles - 1 - i;  // the longest tiles first, for load balance
    forward_tile(q + h * s.nq * s.dim, k + h * s.nk * s.dim, v + h * s.nk * s.dim, o + h * s.nq * s.dim,
                 lse + h * s.nq, i * kBr, g, scale, scratch);
  });
}

void attention_backward(const float* q, const float* k, const float* v, const float* o, const float* lse,
                        const float* d_o, float* dq, float* dk, float* dv, const AttentionShape& s, float scale,
                        bool causal) {
  check_raw_shape(s, scale);
  const Geometry g{s.nq, s.nk, s.dim, causal};
  const int64_t heads = s.batch * s.heads, D = s.dim, rows = heads * s.nq;
  const int64_t key_tiles = (s.nk + kBc - 1) / kBc;
  // Key sets per head: one (dq accumulated in place) unless there are fewer than kMinTasks heads,
  // then enough sets for kMinTasks tasks. The split depends on the shape only, never on the thread
  // count, so results are the same bits whatever the threads.
  constexpr int64_t kMinTasks = 8;
  const int64_t sets = heads >= kMinTasks ? 1 : std::min(key_tiles, (kMinTasks + heads - 1) / heads);

  // Per row: LSE in base 2 and D = rowsum(dO * O); then the partial dQ of key sets 1.. .
  Workspace rowstats(size_t(2 * rows));
  float* lse2 = rowstats.data();
  float* delta = lse2 + rows;
  parallel_for(rows, 256, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; r++) {
      Vec acc = attn::vzero();
      for (int64_t d = 0; d < D; d += 16) {
        Mask m = attn::first_lanes(D - d);
        acc = attn::vfma(attn::vload(d_o + r * D + d, m), attn::vload(o + r * D + d, m), acc);
      }
      delta[r] = attn::vsum(acc);
      lse2[r] = float(double(lse[r]) * 1.4426950408889634);
    }
  });
  Workspace partial(sets > 1 ? size_t((sets - 1) * rows * D) : 0);

  run_tasks(heads * sets, backward_slot_floats(D), [&](int64_t t, float* scratch) {
    const int64_t h = t / sets, set = t % sets;
    BackwardHead bh{q + h * s.nq * D,  k + h * s.nk * D,  v + h * s.nk * D,  d_o + h * s.nq * D,
                    lse2 + h * s.nq,   delta + h * s.nq,
                    set == 0 ? dq + h * s.nq * D : partial.data() + ((set - 1) * rows + h * s.nq) * D,
                    dk + h * s.nk * D, dv + h * s.nk * D};
    backward_keys(bh, set, sets, /*owns_dq=*/true, g, scale, scratch);
  });
  if (sets > 1) {
    parallel_for(rows * D, 4096, [&](int64_t begin, int64_t end) {
      for (int64_t set = 1; set < sets; set++) {
        const float* src = partial.data() + (set - 1) * rows * D;
        for (int64_t x = begin; x < end; x++) dq[x] += src[x];
      }
    });
  }
}

}  // namespace DF_CPU_NS
}  // namespace df

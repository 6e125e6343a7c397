// CPU pyramids, compiled once per CPU level (cpu_level.h). A kind is three small row kernels: `down` (two fine rows -> one coarse row),
// `hup` (a coarse row upsampled along the row to fine width) and `vertical` (the blend of the two
// nearest upsampled rows that gives one fine row). One generic driver turns them into fused
// level-pair passes, parallel over planes and rows at once.
//
// Why upsample along rows first: each coarse row is upsampled once into a small ring of rows
// (fine width, in cache) that serves the four fine rows around it, and every fine row is then a
// contiguous blend of two ring rows with the fine input or detail row: no interleaving shuffles
// in the per-pixel loop. It is also the order PyTorch's bilinear kernel uses.
#include "pyramid.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <vector>

#include "../core/threadpool.h"
#include "cpu_level.h"

namespace df {
inline namespace DF_CPU_NS {

namespace {

// ---- row kernels -------------------------------------------------------------------------------

// Bilinear with half-pixel centres (PyTorch's align_corners=False): fine column 2l sits 1/4 of the
// way from coarse column l to l-1, so it takes 3/4 of l and 1/4 of l-1, and a neighbour beyond
// the edge is clamped to the edge pixel itself; rows likewise. The 2x down is the mean of each 2x2
// block (bilinear at exactly half scale, no antialiasing).
struct LaplacianRows {
  static constexpr bool kNeighbours = true;  // `vertical` reads the next-nearest row

  static void down(const float* __restrict f0, const float* __restrict f1, float* __restrict c, int64_t wc) {
    for (int64_t l = 0; l < wc; l++) c[l] = 0.25f * ((f0[2 * l] + f0[2 * l + 1]) + (f1[2 * l] + f1[2 * l + 1]));
  }

  static void hup(const float* __restrict c, float* __restrict h, int64_t wc) {
    h[0] = c[0];
    for (int64_t l = 0; l + 1 < wc; l++) {
      h[2 * l + 1] = 0.75f * c[l] + 0.25f * c[l + 1];
      h[2 * l + 2] = 0.25f * c[l] + 0.75f * c[l + 1];
    }
    h[2 * wc - 1] = c[wc - 1];
  }

  static float vertical(float near, float far) { return 0.75f * near + 0.25f * far; }
};

// Orthonormal Haar: LL = (a + b + c + d) / 2 per 2x2 block; synthesis from LL alone puts LL / 2 on
// each of the block's four pixels, so the detail of a block is each pixel minus the block mean.
struct HaarRows {
  static constexpr bool kNeighbours = false;

  static void down(const float* __restrict f0, const float* __restrict f1, float* __restrict c, int64_t wc) {
    for (int64_t l = 0; l < wc; l++) c[l] = 0.5f * ((f0[2 * l] + f0[2 * l + 1]) + (f1[2 * l] + f1[2 * l + 1]));
  }

  static void hup(const float* __restrict c, float* __restrict h, int64_t wc) {
    for (int64_t l = 0; l < wc; l++) h[2 * l] = h[2 * l + 1] = 0.5f * c[l];
  }

  static float vertical(float near, float /*far*/) { return near; }
};

// detail = fine - upsampled, for one fine row whose nearest upsampled row is `hn` and next-nearest `hf`.
template <class Rows>
void detail_row(const float* __restrict fine, const float* __restrict hn, const float* __restrict hf,
                float* __restrict out, int64_t n) {
  for (int64_t x = 0; x < n; x++) out[x] = fine[x] - Rows::vertical(hn[x], hf[x]);
}

// fine = upsampled + detail (or the upsampled row alone when there is no detail: previews).
template <class Rows>
void upsampled_row(const float* __restrict hn, const float* __restrict hf, const float* __restrict detail,
                   float* __restrict out, int64_t n) {
  if (detail)
    for (int64_t x = 0; x < n; x++) out[x] = Rows::vertical(hn[x], hf[x]) + detail[x];
  else
    for (int64_t x = 0; x < n; x++) out[x] = Rows::vertical(hn[x], hf[x]);
}

// ---- per-thread scratch ------------------------------------------------------------------------

// A thread's scratch rows: grows to the widest level it has seen and is then reused, so steady-state
// calls (the trainer's, the sampler's) never allocate.
float* thread_scratch(size_t floats) {
  thread_local std::vector<float> scratch;
  if (scratch.size() < floats) scratch.resize(floats);
  return scratch.data();
}

// The upsampled coarse rows of one plane, four at a time: fine row 2k+1 needs coarse rows k and
// k+1, fine row 2k rows k and k-1 (clamped at the edges), and the passes upsample one row ahead of
// use (a row read right after it was written stalls on store forwarding). Rows are made on first
// use, and as fine rows go down the plane each coarse row is upsampled once.
template <class Rows>
class UpsampledRing {
 public:
  UpsampledRing(float* storage, int64_t hc, int64_t wc) : storage_(storage), hc_(hc), wc_(wc) {}

  // `coarse(k)` returns coarse row k (0 <= k < hc) and is only called for rows not in the ring.
  template <class Coarse>
  const float* get(int64_t k, const Coarse& coarse) {
    k = std::clamp<int64_t>(k, 0, hc_ - 1);
    const int slot = int(k % kSlots);
    float* row = storage_ + slot * 2 * wc_;
    if (held_[slot] != k) {
      Rows::hup(coarse(k), row, wc_);
      held_[slot] = k;
    }
    return row;
  }

 private:
  float* storage_;
  int64_t hc_, wc_;
  static constexpr int kSlots = 4;
  int64_t held_[kSlots] = {-1, -1, -1, -1};
};

// ---- parallel driver ---------------------------------------------------------------------------

// Runs fn(begin, end) over [0, n) split into at most num_threads() contiguous ranges of at least
// `min_items` items each (fewer ranges when n is small; one range runs on the caller).
template <class Fn>
void parallel_ranges(int64_t n, int64_t min_items, const Fn& fn) {
  if (n <= 0) return;
  int64_t chunks = std::clamp<int64_t>(n / std::max<int64_t>(min_items, 1), 1, num_threads());
  if (chunks == 1) {
    fn(int64_t(0), n);
    return;
  }
  parallel_tasks(chunks, [&](int64_t c) { fn(c * n / chunks, (c + 1) * n / chunks); });
}


// Calls segment(plane, first, end) for the part of each plane that the flattened row range
// [begin, end) covers (rows per plane: `rows`).
template <class Fn>
void for_plane_segments(int64_t begin, int64_t end, int64_t rows, const Fn& segment) {
  for (int64_t p = begin / rows; p * rows < end; p++)
    segment(p, std::max<int64_t>(begin - p * rows, 0), std::min<int64_t>(end - p * rows, rows));
}

// fine [planes, 2hc, 2wc] -> coarse [planes, hc, wc] and detail [planes, 2hc, 2wc], in one pass.
//
// The flattened coarse rows of all planes are split into ranges, so small batches still use every
// thread. Within a plane's segment [j0, j1) of coarse rows, coarse row k is made, row k-1 is
// upsampled, and the fine rows 2(k-3) and 2(k-3)+1 become detail while they are still in cache
// (the lags let each row's stores retire before it is read back). The detail of fine rows 2 j0 and
// 2 j1 - 1 also needs coarse rows j0 - 1 and j1, which belong to a neighbouring range and may not
// exist yet: the segment makes its own copies (same kernel, same bits) in scratch.
template <class Rows>
void decompose_pair(const float* fine, float* coarse, float* detail, int64_t planes, int64_t hc, int64_t wc) {
  const int64_t wf = 2 * wc;
  const int64_t min_rows = std::max<int64_t>(1, pyramid_range_pixels() / (4 * wc));
  parallel_ranges(planes * hc, min_rows, [&](int64_t begin, int64_t end) {
    float* scratch = thread_scratch(size_t(4 * wf + 2 * wc));
    float* above = scratch + 4 * wf;  // coarse row j0 - 1
    float* below = above + wc;        // coarse row j1
    for_plane_segments(begin, end, hc, [&](int64_t p, int64_t j0, int64_t j1) {
      const float* f = fine + p * 2 * hc * wf;
      float* c = coarse + p * hc * wc;
      float* d = detail + p * 2 * hc * wf;
      if (Rows::kNeighbours && j0 > 0) Rows::down(f + (2 * j0 - 2) * wf, f + (2 * j0 - 1) * wf, above, wc);
      if (Rows::kNeighbours && j1 < hc) Rows::down(f + 2 * j1 * wf, f + (2 * j1 + 1) * wf, below, wc);
      auto coarse_row = [&](int64_t k) -> const float* { return k < j0 ? above : k >= j1 ? below : c + k * wc; };
      UpsampledRing<Rows> ring(scratch, hc, wc);
      auto emit_pair = [&](int64_t k) {
        const float* mid = ring.get(k, coarse_row);
        const float* up = Rows::kNeighbours ? ring.get(k - 1, coarse_row) : mid;
        const float* down = Rows::kNeighbours ? ring.get(k + 1, coarse_row) : mid;
        detail_row<Rows>(f + 2 * k * wf, mid, up, d + 2 * k * wf, wf);
        detail_row<Rows>(f + (2 * k + 1) * wf, mid, down, d + (2 * k + 1) * wf, wf);
      };
      for (int64_t k = j0; k < j1; k++) {
        Rows::down(f + 2 * k * wf, f + (2 * k + 1) * wf, c + k * wc, wc);
        if (k - 1 >= j0) ring.get(k - 1, coarse_row);
        if (k - 3 >= j0) emit_pair(k - 3);
      }
      for (int64_t k = std::max(j0, j1 - 3); k < j1; k++) emit_pair(k);
    });
  });
}

// coarse [planes, hc, wc] (+ detail [planes, 2hc, 2wc], or none) -> fine [planes, 2hc, 2wc], in one
// pass: every fine row depends only on inputs, so any split of the rows works.
template <class Rows>
void recompose_pair(const float* coarse, const float* detail, float* fine, int64_t planes, int64_t hc, int64_t wc) {
  const int64_t wf = 2 * wc;
  parallel_ranges(planes * 2 * hc, std::max<int64_t>(1, pyramid_range_pixels() / wf), [&](int64_t begin, int64_t end) {
    float* scratch = thread_scratch(size_t(4 * wf));
    for_plane_segments(begin, end, 2 * hc, [&](int64_t p, int64_t i0, int64_t i1) {
      const float* c = coarse + p * hc * wc;
      auto coarse_row = [&](int64_t k) { return c + k * wc; };
      UpsampledRing<Rows> ring(scratch, hc, wc);
      for (int64_t i = i0; i < i1; i++) {
        const int64_t k = i / 2;
        if (i % 2 == 0 || i == i0) ring.get(k + 2, coarse_row);  // one row ahead of use
        const float* near = ring.get(k, coarse_row);
        const float* far = Rows::kNeighbours ? ring.get(i % 2 ? k + 1 : k - 1, coarse_row) : near;
        const int64_t r = p * 2 * hc + i;
        upsampled_row<Rows>(near, far, detail ? detail + r * wf : nullptr, fine + r * wf, wf);
      }
    });
  });
}

// Where the intermediate image of stage s (1 <= s <= S-2) lives in the workspace.
float* workspace_slot(float* workspace, const PyramidShape& s, int stage) {
  int64_t offset = 0;
  for (int t = 1; t < stage; t++) offset += s.level_numel(t);
  return workspace + offset;
}

// A kind's level-pair passes: the fused row-kernel passes above.
template <class Rows>
struct RowPairs {
  static void decompose(const float* fine, float* coarse, float* detail, int64_t planes, int64_t hc, int64_t wc) {
    decompose_pair<Rows>(fine, coarse, detail, planes, hc, wc);
  }
  static void recompose(const float* coarse, const float* detail, float* fine, int64_t planes, int64_t hc, int64_t wc) {
    recompose_pair<Rows>(coarse, detail, fine, planes, hc, wc);
  }
};

// The level loops of every kind, over its level-pair passes (`Pairs`).
template <class Pairs>
class CpuPyramid final : public Decomposition {
 public:
  explicit CpuPyramid(PyramidKind kind) : kind_(kind) {}
  PyramidKind kind() const override { return kind_; }

  // Stage S-1 is the detail of the image itself; the reduced image goes to the workspace (or, at
  // the last pair, straight into stage 0) and is reduced again.
  void decompose(const float* image, float* const* levels, float* workspace, const PyramidShape& s) const override {
    const int S = s.stages;
    if (S == 1) return parallel_copy(levels[0], image, size_t(s.level_numel(0)) * sizeof(float));
    const float* fine = image;
    for (int t = S - 1; t >= 1; t--) {
      float* coarse = t == 1 ? levels[0] : workspace_slot(workspace, s, t - 1);
      Pairs::decompose(fine, coarse, levels[t], s.planes(), s.level_height(t - 1), s.level_width(t - 1));
      fine = coarse;
    }
  }

  void recompose(const float* const* levels, float* image, float* workspace, const PyramidShape& s) const override {
    preview(levels, s.stages, image, workspace, s);
  }

  void preview(const float* const* levels, int up_to, float* image, float* workspace,
               const PyramidShape& s) const override {
    const int S = s.stages;
    if (S == 1) return parallel_copy(image, levels[0], size_t(s.level_numel(0)) * sizeof(float));
    const float* coarse = levels[0];
    for (int t = 1; t < S; t++) {
      float* fine = t == S - 1 ? image : workspace_slot(workspace, s, t);
      Pairs::recompose(coarse, t < up_to ? levels[t] : nullptr, fine, s.planes(), s.level_height(t - 1),
                       s.level_width(t - 1));
      coarse = fine;
    }
  }

 private:
  PyramidKind kind_;
};

// ---- the consistent pyramid --------------------------------------------------------------------
//
// The Laplacian's down (2x2 means) with a mean-preserving up-sampler U' = U (D U)^-1: bilinear after
// undoing the blur that bilinear up then down applies (D U = B x B, B = tridiag(1/8, 3/4, 1/8) along
// each axis, 7/8 at the clamped ends). So D U' = I: every detail level has zero 2x2 means
// (D detail = 0), up(coarse) alone already reduces to the coarse level, and the recomposition
// puts back only the part of a detail level that D cannot see:
//
//   decompose: coarse = D fine,  detail = fine - U B^-1 coarse
//   recompose: fine = U B^-1 (coarse - D detail) + detail
//
// For real detail levels D detail = 0 and recompose inverts decompose; for generated ones it
// removes their block means, so an image always reduces exactly to its coarser stage. Both reuse
// the Laplacian's fused pair passes; B^-1 is Thomas' algorithm along rows, then along columns.

// B^-1 along one axis of n samples. The elimination's multipliers depend only on n.
class BlurSolve {
 public:
  explicit BlurSolve(int64_t n) : upper_(size_t(n)), inv_pivot_(size_t(n)) {
    double prev = 0;
    for (int64_t k = 0; k < n; k++) {
      const double b = n == 1 ? 1.0 : (k == 0 || k == n - 1) ? 0.875 : 0.75;
      const double pivot = b - kOff * prev;
      inv_pivot_[size_t(k)] = float(1 / pivot);
      prev = kOff / pivot;
      upper_[size_t(k)] = float(prev);
    }
  }

  // x[k * stride + j] for k < n and j < width: `width` independent systems solved side by side
  // (stride 1, width 1: one row; stride = row length: all columns of a plane at once).
  void solve(float* x, int64_t stride, int64_t width) const {
    const int64_t n = int64_t(upper_.size());
    for (int64_t k = 0; k < n; k++) {
      float* r = x + k * stride;
      const float* prev = k > 0 ? r - stride : nullptr;
      const float inv = inv_pivot_[size_t(k)];
      for (int64_t j = 0; j < width; j++) r[j] = (r[j] - (prev ? kOff * prev[j] : 0.f)) * inv;
    }
    for (int64_t k = n - 2; k >= 0; k--) {
      float* r = x + k * stride;
      const float* next = r + stride;
      const float u = upper_[size_t(k)];
      for (int64_t j = 0; j < width; j++) r[j] -= u * next[j];
    }
  }

 private:
  static constexpr float kOff = 0.125f;
  std::vector<float> upper_, inv_pivot_;
};

// y = sign * B^-1 (coarse - D detail) for every plane (no detail: y = sign * B^-1 coarse).
void unblur(const float* coarse, const float* detail, float* y, float sign, int64_t planes, int64_t hc, int64_t wc) {
  const BlurSolve rows(wc), cols(hc);
  parallel_ranges(planes, std::max<int64_t>(1, pyramid_range_pixels() / (4 * hc * wc)), [&](int64_t begin, int64_t end) {
    float* reduced = thread_scratch(size_t(wc));  // free here: the pair passes run before or after
    for (int64_t p = begin; p < end; p++) {
      float* out = y + p * hc * wc;
      const float* c = coarse + p * hc * wc;
      for (int64_t k = 0; k < hc; k++) {
        float* r = out + k * wc;
        if (detail) {
          const float* d = detail + (p * 2 * hc + 2 * k) * 2 * wc;
          LaplacianRows::down(d, d + 2 * wc, reduced, wc);
          for (int64_t l = 0; l < wc; l++) r[l] = sign * (c[k * wc + l] - reduced[l]);
        } else {
          for (int64_t l = 0; l < wc; l++) r[l] = sign * c[k * wc + l];
        }
        rows.solve(r, 1, 1);
      }
      cols.solve(out, wc, wc);
    }
  });
}

// The caller's coarse-sized scratch for B^-1's result (grows, then is reused).
float* unblur_scratch(size_t floats) {
  thread_local std::vector<float> scratch;
  if (scratch.size() < floats) scratch.resize(floats);
  return scratch.data();
}

struct ConsistentPairs {
  static void decompose(const float* fine, float* coarse, float* detail, int64_t planes, int64_t hc, int64_t wc) {
    // coarse = D fine (the Laplacian's detail, written here too, is replaced below)
    decompose_pair<LaplacianRows>(fine, coarse, detail, planes, hc, wc);
    float* y = unblur_scratch(size_t(planes * hc * wc));
    unblur(coarse, nullptr, y, -1.f, planes, hc, wc);
    recompose_pair<LaplacianRows>(y, fine, detail, planes, hc, wc);  // fine - U B^-1 coarse
  }
  static void recompose(const float* coarse, const float* detail, float* fine, int64_t planes, int64_t hc, int64_t wc) {
    float* y = unblur_scratch(size_t(planes * hc * wc));
    unblur(coarse, detail, y, 1.f, planes, hc, wc);  // B^-1 (coarse - D detail)
    recompose_pair<LaplacianRows>(y, detail, fine, planes, hc, wc);
  }
};

}  // namespace

const Decomposition& cpu_pyramid(PyramidKind kind) {
  static const CpuPyramid<RowPairs<LaplacianRows>> laplacian(PyramidKind::Laplacian);
  static const CpuPyramid<RowPairs<HaarRows>> haar(PyramidKind::Haar);
  static const CpuPyramid<ConsistentPairs> consistent(PyramidKind::Consistent);
  if (kind == PyramidKind::Haar) return haar;
  if (kind == PyramidKind::Consistent) return consistent;
  return laplacian;
}

}  // namespace DF_CPU_NS
}  // namespace df

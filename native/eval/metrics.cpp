// Sliced Wasserstein distance on Laplacian-pyramid patches, Frechet distance on pixel and band
// features, and k-NN precision/recall (see metrics.h for the definitions and their sources).
#include "metrics.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "../core/error.h"
#include "../core/philox.h"
#include "../core/threadpool.h"
#include "../ops/gemm.h"
#include "../ops/pyramid.h"

namespace df::eval {

namespace {

constexpr uint64_t kStreamPositions = 1ull << 32;
constexpr uint64_t kStreamDirections = 2ull << 32;

void check_images(const Tensor& t, const std::string& arg) {
  expect_defined(t, arg.c_str());
  expect_dtype(t, DType::F32, arg.c_str());
  expect_rank(t, 4, arg.c_str());
  if (!t.device().is_cpu()) fail(Code::Device, arg + ": expected a CPU tensor, got one on " + t.device().name());
}

void check_finite(const float* p, int64_t n, const std::string& arg) {
  bool ok = true;
  for (int64_t i = 0; i < n && ok; i++) ok = std::isfinite(p[i]);
  if (!ok) fail(Code::NonFinite, arg + ": has a NaN or infinite element");
}

// Number of 2x reductions that keep both sides divisible and the coarsest side >= min_side.
int64_t max_levels(int64_t h, int64_t w, int64_t min_side) {
  int64_t levels = 1;
  while ((std::min(h, w) >> levels) >= min_side && h % (int64_t(1) << levels) == 0 && w % (int64_t(1) << levels) == 0)
    levels++;
  return levels;
}

// Exact Wasserstein-1 distance between two sorted samples (their quantile functions integrated
// over (0, 1)); with n == m it is mean |a_i - b_i|.
double wasserstein1_sorted(const float* a, int64_t n, const float* b, int64_t m) {
  int64_t i = 0, j = 0;
  double u = 0, acc = 0;
  while (i < n && j < m) {
    // next breakpoint: min((i+1)/n, (j+1)/m), compared in integers
    const int64_t lhs = (i + 1) * m, rhs = (j + 1) * n;
    const double next = lhs <= rhs ? double(i + 1) / double(n) : double(j + 1) / double(m);
    acc += (next - u) * std::fabs(double(a[i]) - double(b[j]));
    u = next;
    if (lhs <= rhs) i++;
    if (rhs <= lhs) j++;
  }
  return acc;
}

// Patches of one pyramid level: [N * K, C * P * P], normalised per channel over the set.
std::vector<float> level_descriptors(const float* level, int64_t n, int64_t c, int64_t h, int64_t w, int64_t level_index,
                                     const SwdOptions& opt) {
  const int64_t P = opt.patch, K = opt.descriptors, D = c * P * P;
  std::vector<float> desc(size_t(n * K * D));
  const RandomStream positions{opt.seed, kStreamPositions + uint64_t(level_index)};
  parallel_for(n * K, 64, [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; r++) {
      const int64_t img = r / K;
      const Philox4 bits = positions.block(uint64_t(r));  // depends on (image index, j) only
      const int64_t y0 = int64_t(bits.v[0] % uint32_t(h - P + 1));
      const int64_t x0 = int64_t(bits.v[1] % uint32_t(w - P + 1));
      float* out = desc.data() + r * D;
      for (int64_t ch = 0; ch < c; ch++)
        for (int64_t dy = 0; dy < P; dy++) {
          const float* src = level + ((img * c + ch) * h + y0 + dy) * w + x0;
          std::copy_n(src, P, out + (ch * P + dy) * P);
        }
    }
  });
  // per-channel mean and standard deviation over every descriptor and position (Karras et al.)
  for (int64_t ch = 0; ch < c; ch++) {
    double sum = 0, sq = 0;
    for (int64_t r = 0; r < n * K; r++) {
      const float* p = desc.data() + r * D + ch * P * P;
      for (int64_t q = 0; q < P * P; q++) {
        sum += p[q];
        sq += double(p[q]) * p[q];
      }
    }
    const double count = double(n * K * P * P);
    const double mean = sum / count;
    const double var = std::max(0.0, sq / count - mean * mean);
    const float inv = var > 0 ? float(1 / std::sqrt(var)) : 1.0f;
    parallel_for(n * K, 1024, [&](int64_t lo, int64_t hi) {
      for (int64_t r = lo; r < hi; r++) {
        float* p = desc.data() + r * D + ch * P * P;
        for (int64_t q = 0; q < P * P; q++) p[q] = float((p[q] - mean) * inv);
      }
    });
  }
  return desc;
}

std::vector<Tensor> laplacian_levels(const Tensor& images, int64_t levels, const std::string& fn) {
  return cpu_decomposition(PyramidKind::Laplacian).decompose(images, levels, fn);
}

void dgemm_nn(int64_t n, const double* a, const double* b, double* c) {
  parallel_for(n, 8, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; i++) {
      double* ci = c + i * n;
      std::fill(ci, ci + n, 0.0);
      for (int64_t k = 0; k < n; k++) {
        const double aik = a[i * n + k];
        const double* bk = b + k * n;
        for (int64_t j = 0; j < n; j++) ci[j] += aik * bk[j];
      }
    }
  });
}

// Squared distances between rows [r0, r1) of x and every row of y: out [(r1 - r0), ny].
void squared_distances(const float* x, const std::vector<float>& xnorm, int64_t r0, int64_t r1, const float* y,
                       const std::vector<float>& ynorm, int64_t ny, int64_t d, float* out) {
  sgemm(false, true, r1 - r0, ny, d, -2.0f, x + r0 * d, d, y, d, 0.0f, out, ny);
  parallel_for(r1 - r0, 16, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; i++)
      for (int64_t j = 0; j < ny; j++) out[i * ny + j] = std::max(0.0f, out[i * ny + j] + xnorm[size_t(r0 + i)] + ynorm[size_t(j)]);
  });
}

std::vector<float> row_norms(const float* x, int64_t n, int64_t d) {
  std::vector<float> out(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; i++) {
    double s = 0;
    for (int64_t j = 0; j < d; j++) s += double(x[i * d + j]) * x[i * d + j];
    out[size_t(i)] = float(s);
  }
  return out;
}

constexpr int64_t kRowChunk = 512;

// Squared distance of every row of x to its k-th nearest other row.
std::vector<float> knn_radii(const float* x, int64_t n, int64_t d, int64_t k) {
  std::vector<float> norms = row_norms(x, n, d), radii(static_cast<size_t>(n));
  std::vector<float> dist(size_t(std::min(kRowChunk, n) * n));
  for (int64_t r0 = 0; r0 < n; r0 += kRowChunk) {
    const int64_t r1 = std::min(n, r0 + kRowChunk);
    squared_distances(x, norms, r0, r1, x, norms, n, d, dist.data());
    parallel_for(r1 - r0, 4, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; i++) {
        float* row = dist.data() + i * n;
        row[r0 + i] = INFINITY;  // not its own neighbour
        std::nth_element(row, row + (k - 1), row + n);
        radii[size_t(r0 + i)] = row[k - 1];
      }
    });
  }
  return radii;
}

// Fraction of rows of x inside at least one ball (centre a row of y, squared radius radii).
double coverage(const float* x, int64_t nx, const float* y, int64_t ny, int64_t d, const std::vector<float>& radii) {
  std::vector<float> xn = row_norms(x, nx, d), yn = row_norms(y, ny, d);
  std::vector<float> dist(size_t(std::min(kRowChunk, nx) * ny));
  int64_t inside = 0;
  for (int64_t r0 = 0; r0 < nx; r0 += kRowChunk) {
    const int64_t r1 = std::min(nx, r0 + kRowChunk);
    squared_distances(x, xn, r0, r1, y, yn, ny, d, dist.data());
    for (int64_t i = 0; i < r1 - r0; i++) {
      const float* row = dist.data() + i * ny;
      for (int64_t j = 0; j < ny; j++)
        if (row[j] <= radii[size_t(j)]) {
          inside++;
          break;
        }
    }
  }
  return double(inside) / double(nx);
}

}  // namespace

FeatureKind parse_feature_kind(const std::string& name, const std::string& arg) {
  if (name == "pix8") return FeatureKind::Pix8;
  if (name == "pix16") return FeatureKind::Pix16;
  if (name == "bands") return FeatureKind::Bands;
  fail(Code::ArgValue, arg + ": expected 'pix8', 'pix16' or 'bands', got '" + name + "'");
}

const char* feature_kind_name(FeatureKind kind) {
  switch (kind) {
    case FeatureKind::Pix8: return "pix8";
    case FeatureKind::Pix16: return "pix16";
    case FeatureKind::Bands: return "bands";
  }
  return "?";
}

void check_image_sets(const Tensor& a, const Tensor& b, const std::string& fn) {
  check_images(a, fn + ": generated");
  check_images(b, fn + ": real");
  if (a.dim(1) != b.dim(1) || a.dim(2) != b.dim(2) || a.dim(3) != b.dim(3))
    fail(Code::Shape, fn + ": generated and real images must have the same channels and size, got " + shape_str(a.shape()) +
                          " and " + shape_str(b.shape()));
  check_finite(a.data<float>(), a.numel(), fn + ": generated");
  check_finite(b.data<float>(), b.numel(), fn + ": real");
}

SwdResult sliced_wasserstein(const Tensor& a, const Tensor& b, const SwdOptions& opt, const std::string& fn) {
  check_image_sets(a, b, fn);
  const int64_t c = a.dim(1), h = a.dim(2), w = a.dim(3);
  if (opt.patch < 1 || opt.patch > 64) fail(Code::ArgValue, fn + ": swdPatch: expected 1 to 64, got " + std::to_string(opt.patch));
  if (opt.descriptors < 1 || opt.descriptors > 4096)
    fail(Code::ArgValue, fn + ": swdDescriptors: expected 1 to 4096, got " + std::to_string(opt.descriptors));
  if (opt.projections < 1 || opt.projections > 65536)
    fail(Code::ArgValue, fn + ": swdProjections: expected 1 to 65536, got " + std::to_string(opt.projections));
  if (std::min(h, w) < opt.patch)
    fail(Code::Shape, fn + ": images of " + std::to_string(h) + "x" + std::to_string(w) + " are smaller than the " +
                          std::to_string(opt.patch) + "-pixel neighbourhoods");
  const int64_t possible = max_levels(h, w, opt.patch);
  int64_t levels = opt.levels;
  if (levels == 0) levels = std::min(possible, max_levels(h, w, std::max<int64_t>(8, opt.patch)));
  if (levels < 1 || levels > possible)
    fail(Code::ArgValue, fn + ": swdLevels: expected 1 to " + std::to_string(possible) + " for " + std::to_string(h) + "x" +
                             std::to_string(w) + " images, got " + std::to_string(levels));
  const std::vector<Tensor> la = laplacian_levels(a, levels, fn), lb = laplacian_levels(b, levels, fn);
  const int64_t D = c * opt.patch * opt.patch, na = a.dim(0) * opt.descriptors, nb = b.dim(0) * opt.descriptors;
  constexpr int64_t kChunk = 64;  // directions per GEMM
  SwdResult result;
  for (int64_t l = 0; l < levels; l++) {  // finest first
    const Tensor& xa = la[size_t(levels - 1 - l)];
    const Tensor& xb = lb[size_t(levels - 1 - l)];
    const int64_t lh = xa.dim(2), lw = xa.dim(3);
    std::vector<float> da = level_descriptors(xa.data<float>(), a.dim(0), c, lh, lw, l, opt);
    std::vector<float> db = level_descriptors(xb.data<float>(), b.dim(0), c, lh, lw, l, opt);
    std::vector<float> dirs(size_t(opt.projections * D));
    RandomStream{opt.seed, kStreamDirections + uint64_t(l)}.fill_normal(dirs.data(), int64_t(dirs.size()));
    for (int64_t p = 0; p < opt.projections; p++) {
      double s = 0;
      for (int64_t q = 0; q < D; q++) s += double(dirs[size_t(p * D + q)]) * dirs[size_t(p * D + q)];
      const float inv = float(1 / std::sqrt(s));
      for (int64_t q = 0; q < D; q++) dirs[size_t(p * D + q)] *= inv;
    }
    std::vector<float> pa(size_t(kChunk * na)), pb(size_t(kChunk * nb));
    std::vector<double> dist(size_t(opt.projections));
    for (int64_t p0 = 0; p0 < opt.projections; p0 += kChunk) {
      const int64_t np = std::min(kChunk, opt.projections - p0);
      // rows of pa: one direction's projections of every descriptor
      sgemm(false, true, np, na, D, 1.0f, dirs.data() + p0 * D, D, da.data(), D, 0.0f, pa.data(), na);
      sgemm(false, true, np, nb, D, 1.0f, dirs.data() + p0 * D, D, db.data(), D, 0.0f, pb.data(), nb);
      parallel_for(np, 1, [&](int64_t lo, int64_t hi) {
        for (int64_t p = lo; p < hi; p++) {
          float* ra = pa.data() + p * na;
          float* rb = pb.data() + p * nb;
          std::sort(ra, ra + na);
          std::sort(rb, rb + nb);
          dist[size_t(p0 + p)] = wasserstein1_sorted(ra, na, rb, nb);
        }
      });
    }
    // summed in a fixed order, so the result does not depend on the thread count
    const double mean = std::accumulate(dist.begin(), dist.end(), 0.0) / double(opt.projections);
    result.resolutions.push_back(lh);
    result.per_level.push_back(mean * 1000);
  }
  result.mean = std::accumulate(result.per_level.begin(), result.per_level.end(), 0.0) / double(levels);
  return result;
}

Tensor features(const Tensor& images, FeatureKind kind, const std::string& fn) {
  check_images(images, fn + ": images");
  const int64_t n = images.dim(0), c = images.dim(1), h = images.dim(2), w = images.dim(3);
  const float* x = images.data<float>();
  if (kind == FeatureKind::Pix8 || kind == FeatureKind::Pix16) {
    const int64_t side = kind == FeatureKind::Pix8 ? 8 : 16;
    if (h % side != 0 || w % side != 0)
      fail(Code::Shape, fn + ": " + feature_kind_name(kind) + " features need images whose sides are multiples of " +
                            std::to_string(side) + ", got " + std::to_string(h) + "x" + std::to_string(w));
    const int64_t fy = h / side, fx = w / side, d = c * side * side;
    Tensor out({n, d}, DType::F32);
    float* o = out.data<float>();
    const double inv = 1.0 / double(fy * fx);
    parallel_for(n * c, 4, [&](int64_t lo, int64_t hi) {
      for (int64_t plane = lo; plane < hi; plane++) {
        const float* src = x + plane * h * w;
        float* dst = o + plane * side * side;  // [img][ch][y][x] == plane-major
        for (int64_t by = 0; by < side; by++)
          for (int64_t bx = 0; bx < side; bx++) {
            double s = 0;
            for (int64_t y = by * fy; y < (by + 1) * fy; y++)
              for (int64_t xx = bx * fx; xx < (bx + 1) * fx; xx++) s += src[y * w + xx];
            dst[by * side + bx] = float(s * inv);
          }
      }
    });
    return out;
  }
  // Bands: the pyramid whose coarsest level is >= 8 px; RMS of each detail level in a 4x4 grid.
  const int64_t levels = max_levels(h, w, 8);
  if (levels < 2)
    fail(Code::Shape, fn + ": bands features need images of at least 16x16 pixels with even sides, got " + std::to_string(h) + "x" +
                          std::to_string(w));
  const std::vector<Tensor> lv = laplacian_levels(images, levels, fn);
  const int64_t per_level = c * 16, d = (levels - 1) * per_level;
  Tensor out({n, d}, DType::F32);
  float* o = out.data<float>();
  parallel_for(n, 4, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; i++)
      for (int64_t l = 1; l < levels; l++) {
        const Tensor& t = lv[size_t(levels - l)];  // finest first
        const int64_t lh = t.dim(2), lw = t.dim(3);
        for (int64_t ch = 0; ch < c; ch++) {
          const float* src = t.data<float>() + (i * c + ch) * lh * lw;
          for (int64_t gy = 0; gy < 4; gy++)
            for (int64_t gx = 0; gx < 4; gx++) {
              const int64_t y0 = gy * lh / 4, y1 = (gy + 1) * lh / 4, x0 = gx * lw / 4, x1 = (gx + 1) * lw / 4;
              double s = 0;
              for (int64_t y = y0; y < y1; y++)
                for (int64_t xx = x0; xx < x1; xx++) s += double(src[y * lw + xx]) * src[y * lw + xx];
              o[i * d + (l - 1) * per_level + ch * 16 + gy * 4 + gx] = float(std::sqrt(s / double((y1 - y0) * (x1 - x0))));
            }
        }
      }
  });
  return out;
}

GaussianFit fit_gaussian(const Tensor& f) {
  const int64_t n = f.dim(0), d = f.dim(1);
  if (n < 2) fail(Code::ArgValue, "frechet: a Gaussian fit needs at least 2 images, got " + std::to_string(n));
  const float* x = f.data<float>();
  GaussianFit g;
  g.dim = d;
  g.count = n;
  g.mean.assign(size_t(d), 0.0);
  for (int64_t i = 0; i < n; i++)
    for (int64_t j = 0; j < d; j++) g.mean[size_t(j)] += x[i * d + j];
  for (double& m : g.mean) m /= double(n);
  std::vector<float> centred(size_t(n * d));
  for (int64_t i = 0; i < n; i++)
    for (int64_t j = 0; j < d; j++) centred[size_t(i * d + j)] = float(x[i * d + j] - g.mean[size_t(j)]);
  std::vector<float> cov(size_t(d * d));
  sgemm(true, false, d, d, n, float(1.0 / double(n - 1)), centred.data(), d, centred.data(), d, 0.0f, cov.data(), d);
  g.cov.resize(size_t(d * d));
  for (int64_t i = 0; i < d; i++)
    for (int64_t j = 0; j < d; j++)  // symmetrise the rounding
      g.cov[size_t(i * d + j)] = 0.5 * (double(cov[size_t(i * d + j)]) + double(cov[size_t(j * d + i)]));
  return g;
}

double frechet_distance(const GaussianFit& a, const GaussianFit& b) {
  if (a.dim != b.dim) fail(Code::Shape, "frechet: feature dimensions differ: " + std::to_string(a.dim) + " and " + std::to_string(b.dim));
  const int64_t d = a.dim;
  double mean_term = 0, trace_a = 0, trace_b = 0;
  for (int64_t j = 0; j < d; j++) {
    const double diff = a.mean[size_t(j)] - b.mean[size_t(j)];
    mean_term += diff * diff;
    trace_a += a.cov[size_t(j * d + j)];
    trace_b += b.cov[size_t(j * d + j)];
  }
  // S_a = V^T diag(lambda) V (rows of V: eigenvectors). S_a^1/2 S_b S_a^1/2 is orthogonally similar
  // to M = diag(sqrt lambda) (V S_b V^T) diag(sqrt lambda), symmetric, whose eigenvalues we need.
  std::vector<double> lambda(static_cast<size_t>(d)), V(size_t(d * d)), U(size_t(d * d)), M(size_t(d * d)), mu(static_cast<size_t>(d));
  symmetric_eigen(d, a.cov.data(), lambda.data(), V.data());
  dgemm_nn(d, V.data(), b.cov.data(), U.data());  // U = V S_b
  std::vector<double> root(static_cast<size_t>(d));
  for (int64_t i = 0; i < d; i++) root[size_t(i)] = std::sqrt(std::max(0.0, lambda[size_t(i)]));
  parallel_for(d, 8, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; i++)
      for (int64_t j = 0; j <= i; j++) {  // (U V^T)_ij: rows of U and V
        double s = 0;
        for (int64_t k = 0; k < d; k++) s += U[size_t(i * d + k)] * V[size_t(j * d + k)];
        M[size_t(i * d + j)] = root[size_t(i)] * s * root[size_t(j)];
      }
  });
  symmetric_eigen(d, M.data(), mu.data(), nullptr);  // reads the lower triangle
  double trace_sqrt = 0;
  for (double m : mu) trace_sqrt += std::sqrt(std::max(0.0, m));
  return mean_term + trace_a + trace_b - 2 * trace_sqrt;
}

double frechet_distance(const Tensor& mean_a, const Tensor& cov_a, const Tensor& mean_b, const Tensor& cov_b, const std::string& fn) {
  const Tensor* ts[4] = {&mean_a, &cov_a, &mean_b, &cov_b};
  const char* names[4] = {"meanA", "covA", "meanB", "covB"};
  for (int i = 0; i < 4; i++) {
    const std::string arg = fn + ": " + names[i];
    expect_defined(*ts[i], arg.c_str());
    expect_dtype(*ts[i], DType::F32, arg.c_str());
    if (!ts[i]->device().is_cpu()) fail(Code::Device, arg + ": expected a CPU tensor");
    check_finite(ts[i]->data<float>(), ts[i]->numel(), arg);
  }
  const int64_t d = mean_a.numel();
  if (mean_a.rank() != 1 || mean_b.shape() != mean_a.shape() || cov_a.shape() != Shape{d, d} || cov_b.shape() != Shape{d, d})
    fail(Code::Shape, fn + ": expected means [D] and covariances [D, D] of one D, got " + shape_str(mean_a.shape()) + ", " +
                          shape_str(cov_a.shape()) + ", " + shape_str(mean_b.shape()) + ", " + shape_str(cov_b.shape()));
  auto fit = [d](const Tensor& m, const Tensor& c) {
    GaussianFit g;
    g.dim = d;
    g.mean.assign(m.data<float>(), m.data<float>() + d);
    g.cov.resize(size_t(d * d));
    const float* p = c.data<float>();
    for (int64_t i = 0; i < d; i++)
      for (int64_t j = 0; j <= i; j++) g.cov[size_t(i * d + j)] = g.cov[size_t(j * d + i)] = p[i * d + j];
    return g;
  };
  return frechet_distance(fit(mean_a, cov_a), fit(mean_b, cov_b));
}

PrResult precision_recall(const Tensor& real, const Tensor& generated, int64_t k, const std::string& fn) {
  const int64_t nr = real.dim(0), ng = generated.dim(0), d = real.dim(1);
  if (k < 1 || k >= std::min(nr, ng))
    fail(Code::ArgValue, fn + ": prK: expected 1 to " + std::to_string(std::min(nr, ng) - 1) + " (fewer than the images of each set), got " +
                             std::to_string(k));
  const std::vector<float> rr = knn_radii(real.data<float>(), nr, d, k);
  const std::vector<float> rg = knn_radii(generated.data<float>(), ng, d, k);
  PrResult r;
  r.precision = coverage(generated.data<float>(), ng, real.data<float>(), nr, d, rr);
  r.recall = coverage(real.data<float>(), nr, generated.data<float>(), ng, d, rg);
  return r;
}

BandLevels split_band_levels(const GaussianFit& generated, const GaussianFit& real, int64_t channels, int64_t height) {
  const int64_t per_level = channels * 16, levels = generated.dim / per_level;
  auto block = [&](const GaussianFit& f, int64_t l) {
    GaussianFit b;
    b.dim = per_level;
    b.count = f.count;
    const int64_t lo = l * per_level;
    b.mean.assign(f.mean.begin() + lo, f.mean.begin() + lo + per_level);
    b.cov.resize(size_t(per_level * per_level));
    for (int64_t i = 0; i < per_level; i++)
      for (int64_t j = 0; j < per_level; j++) b.cov[size_t(i * per_level + j)] = f.cov[size_t((lo + i) * f.dim + lo + j)];
    return b;
  };
  auto mean_of = [&](const GaussianFit& b) {
    double m = 0;
    for (double x : b.mean) m += x;
    return m / double(b.dim);
  };
  BandLevels r;
  for (int64_t l = 0; l < levels; l++) {
    const GaussianFit g = block(generated, l), t = block(real, l);
    r.resolutions.push_back(height >> l);
    r.frechet.push_back(frechet_distance(g, t));
    r.rms_generated.push_back(mean_of(g));
    r.rms_real.push_back(mean_of(t));
  }
  return r;
}

EvalResult evaluate(const Tensor& generated, const Tensor& real, const EvalOptions& options, const std::string& fn,
                    const std::function<void(int64_t, int64_t)>& progress) {
  check_image_sets(generated, real, fn);
  if (options.precision_recall && (options.pr_options.k < 1 || options.pr_options.k >= std::min(generated.dim(0), real.dim(0))))
    fail(Code::ArgValue, fn + ": prK: expected 1 to " + std::to_string(std::min(generated.dim(0), real.dim(0)) - 1) +
                             " (fewer than the images of each set), got " + std::to_string(options.pr_options.k));
  if (!options.frechet.empty() && std::min(generated.dim(0), real.dim(0)) < 2)
    fail(Code::ArgValue, fn + ": the Frechet distance needs at least 2 images in each set");
  const int64_t total = int64_t(options.swd) + int64_t(options.frechet.size()) + int64_t(options.precision_recall);
  int64_t done = 0;
  auto tick = [&] {
    if (progress) progress(++done, total);
  };
  EvalResult r;
  if (options.swd) {
    r.swd = sliced_wasserstein(generated, real, options.swd_options, fn);
    r.has_swd = true;
    tick();
  }
  for (FeatureKind kind : options.frechet) {
    const GaussianFit g = fit_gaussian(features(generated, kind, fn));
    const GaussianFit t = fit_gaussian(features(real, kind, fn));
    r.frechet.emplace_back(kind, frechet_distance(g, t));
    if (kind == FeatureKind::Bands) {
      r.band_levels = split_band_levels(g, t, generated.dim(1), generated.dim(2));
      r.has_band_levels = true;
    }
    tick();
  }
  if (options.precision_recall) {
    const FeatureKind kind = options.pr_options.feature;
    r.pr = precision_recall(features(real, kind, fn), features(generated, kind, fn), options.pr_options.k, fn);
    r.has_pr = true;
    tick();
  }
  return r;
}

}  // namespace df::eval

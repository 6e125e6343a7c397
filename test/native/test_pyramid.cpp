// Native checks of the pyramid kernels: every output element written (NaN-poisoned buffers), exact
// reconstruction, float64 references of every kind, the same bits on every thread count (the
// row ranges split planes, so this also proves the neighbour rows at range edges), energy of the
// Haar pyramid, previews, and shape validation.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/philox.h"
#include "core/tensor.h"
#include "core/threadpool.h"
#include "ops/pyramid.h"
#include "test_util.h"

using namespace df;

namespace {

struct Case {
  Shape shape;
  int stages;
};

// Square and not, B*C from 1 (rows split inside one plane) to far more than the threads.
const std::vector<Case> kCases = {
    {{1, 1, 1, 1}, 1},    {{1, 1, 2, 2}, 2},    {{1, 1, 2, 6}, 2},   {{2, 3, 8, 12}, 3},  {{1, 1, 64, 16}, 5},
    {{3, 5, 32, 48}, 5},  {{1, 2, 128, 4}, 3},  {{7, 1, 16, 16}, 4}, {{64, 3, 16, 16}, 2}, {{1, 1, 96, 160}, 4},
    {{2, 1, 6, 10}, 2},   {{1, 3, 40, 8}, 4},   {{5, 2, 4, 4}, 3},   {{1, 1, 256, 2}, 2},  {{4, 4, 32, 32}, 1},
};

Tensor random_image(const Shape& shape, uint64_t seed) {
  Tensor x(shape, DType::F32);
  RandomStream{seed, 7}.fill_normal(x.data<float>(), x.numel());
  return x;
}

// max |a - b| / max |b|; NaN anywhere in a counts as infinitely wrong.
template <class T>
double rel_error(const float* a, const T* b, int64_t n) {
  double worst = 0, big = 0;
  for (int64_t i = 0; i < n; i++) {
    double d = std::fabs(double(a[i]) - double(b[i]));
    if (std::isnan(d)) return INFINITY;
    worst = std::fmax(worst, d);
    big = std::fmax(big, std::fabs(double(b[i])));
  }
  return big == 0 ? worst : worst / big;
}

bool all_finite(const Tensor& t) {
  const float* p = t.data<float>();
  for (int64_t i = 0; i < t.numel(); i++)
    if (!std::isfinite(p[i])) return false;
  return true;
}

// Runs the raw form of decompose into poisoned levels.
std::vector<Tensor> decompose_raw(const Decomposition& d, const Tensor& x, const PyramidShape& s) {
  std::vector<Tensor> levels;
  std::vector<float*> ptrs;
  for (int t = 0; t < s.stages; t++) {
    levels.push_back(Tensor::poisoned(s.level_shape(t), DType::F32));
    ptrs.push_back(levels.back().data<float>());
  }
  Tensor ws = Tensor::poisoned({s.workspace_floats() + 1}, DType::F32);
  d.decompose(x.data<float>(), ptrs.data(), ws.data<float>(), s);
  return levels;
}

Tensor preview_raw(const Decomposition& d, const std::vector<Tensor>& levels, int up_to, const PyramidShape& s) {
  std::vector<const float*> ptrs;
  for (const Tensor& l : levels) ptrs.push_back(l.data<float>());
  Tensor out = Tensor::poisoned(s.image_shape(), DType::F32);
  Tensor ws = Tensor::poisoned({s.workspace_floats() + 1}, DType::F32);
  d.preview(ptrs.data(), up_to, out.data<float>(), ws.data<float>(), s);
  return out;
}

// ---- float64 references, written from the definitions ----------------------------------------

using Plane = std::vector<double>;  // h x w, row-major

Plane down_mean(const Plane& f, int64_t h, int64_t w, double scale) {
  Plane c(size_t(h * w / 4));
  for (int64_t i = 0; i < h / 2; i++)
    for (int64_t j = 0; j < w / 2; j++)
      c[size_t(i * (w / 2) + j)] = scale * (f[size_t(2 * i * w + 2 * j)] + f[size_t(2 * i * w + 2 * j + 1)] +
                                            f[size_t((2 * i + 1) * w + 2 * j)] + f[size_t((2 * i + 1) * w + 2 * j + 1)]);
  return c;
}

// PyTorch's bilinear upsample with align_corners=False, from its source-index formula.
Plane up_bilinear(const Plane& c, int64_t h, int64_t w) {
  auto src = [](int64_t o, int64_t n, int64_t* i0, int64_t* i1, double* lam) {
    double x = std::max(0.0, (o + 0.5) / 2.0 - 0.5);
    *i0 = std::min<int64_t>(int64_t(x), n - 1);
    *i1 = std::min<int64_t>(*i0 + 1, n - 1);
    *lam = x - double(*i0);
  };
  Plane f(size_t(4 * h * w));
  for (int64_t y = 0; y < 2 * h; y++)
    for (int64_t x = 0; x < 2 * w; x++) {
      int64_t y0, y1, x0, x1;
      double ly, lx;
      src(y, h, &y0, &y1, &ly);
      src(x, w, &x0, &x1, &lx);
      auto at = [&](int64_t i, int64_t j) { return c[size_t(i * w + j)]; };
      f[size_t(y * 2 * w + x)] = (1 - ly) * ((1 - lx) * at(y0, x0) + lx * at(y0, x1)) +
                                 ly * ((1 - lx) * at(y1, x0) + lx * at(y1, x1));
    }
  return f;
}

Plane up_nearest_half(const Plane& c, int64_t h, int64_t w) {
  Plane f(size_t(4 * h * w));
  for (int64_t y = 0; y < 2 * h; y++)
    for (int64_t x = 0; x < 2 * w; x++) f[size_t(y * 2 * w + x)] = 0.5 * c[size_t((y / 2) * w + x / 2)];
  return f;
}

// D U along one axis of n coarse samples, measured by passing each basis row through up_bilinear and
// down_mean (not from the tridiagonal formula pyramid.cpp solves), then inverted by Gauss-Jordan.
std::vector<double> inverse_blur(int64_t n) {
  std::vector<double> a(size_t(n * n)), inv(size_t(n * n), 0.0);
  for (int64_t j = 0; j < n; j++) {
    Plane e(size_t(n), 0.0);
    e[size_t(j)] = 1;
    Plane du = down_mean(up_bilinear(e, 1, n), 2, 2 * n, 0.25);  // a 1-row plane: rows clamp to themselves
    for (int64_t i = 0; i < n; i++) a[size_t(i * n + j)] = du[size_t(i)];
    inv[size_t(j * n + j)] = 1;
  }
  for (int64_t k = 0; k < n; k++) {  // diagonally dominant: no pivoting needed
    const double piv = a[size_t(k * n + k)];
    for (int64_t j = 0; j < n; j++) a[size_t(k * n + j)] /= piv, inv[size_t(k * n + j)] /= piv;
    for (int64_t i = 0; i < n; i++) {
      if (i == k) continue;
      const double f = a[size_t(i * n + k)];
      for (int64_t j = 0; j < n; j++) a[size_t(i * n + j)] -= f * a[size_t(k * n + j)], inv[size_t(i * n + j)] -= f * inv[size_t(k * n + j)];
    }
  }
  return inv;
}

// The consistent pyramid's mean-preserving up-sampler: up_bilinear((D U)^-1 c), (D U)^-1 applied
// along the columns and the rows.
Plane up_mean_preserving(const Plane& c, int64_t h, int64_t w) {
  const std::vector<double> ih = inverse_blur(h), iw = inverse_blur(w);
  Plane t(c.size(), 0.0), y(c.size(), 0.0);
  for (int64_t i = 0; i < h; i++)
    for (int64_t j = 0; j < w; j++)
      for (int64_t k = 0; k < w; k++) t[size_t(i * w + j)] += iw[size_t(j * w + k)] * c[size_t(i * w + k)];
  for (int64_t i = 0; i < h; i++)
    for (int64_t j = 0; j < w; j++)
      for (int64_t k = 0; k < h; k++) y[size_t(i * w + j)] += ih[size_t(i * h + k)] * t[size_t(k * w + j)];
  return up_bilinear(y, h, w);
}

// The stages of one plane, coarse to fine, by the definitions in pyramid.h.
std::vector<Plane> reference_levels(PyramidKind kind, const float* plane, int64_t h, int64_t w, int stages) {
  std::vector<Plane> out(static_cast<size_t>(stages));
  Plane cur(plane, plane + h * w);
  for (int t = stages - 1; t >= 1; t--) {
    const int64_t hc = h >> (stages - t), wc = w >> (stages - t);
    Plane c = down_mean(cur, 2 * hc, 2 * wc, kind == PyramidKind::Haar ? 0.5 : 0.25);
    Plane u = kind == PyramidKind::Haar         ? up_nearest_half(c, hc, wc)
              : kind == PyramidKind::Consistent ? up_mean_preserving(c, hc, wc)
                                                : up_bilinear(c, hc, wc);
    for (size_t i = 0; i < cur.size(); i++) cur[i] -= u[i];
    out[size_t(t)] = cur;
    cur = c;
  }
  out[0] = cur;
  return out;
}

// ---- tests -------------------------------------------------------------------------------------

void test_roundtrip_and_reference() {
  for (PyramidKind kind : {PyramidKind::Laplacian, PyramidKind::Haar, PyramidKind::Consistent}) {
    const Decomposition& d = cpu_decomposition(kind);
    uint64_t seed = 1;
    for (const Case& c : kCases) {
      for (int stages = 1; stages <= c.stages; stages++) {
        const PyramidShape s = pyramid_shape(c.shape, stages, "test");
        Tensor x = random_image(c.shape, seed++);
        std::vector<Tensor> levels = decompose_raw(d, x, s);
        std::string what = std::string(d.name()) + " " + shape_str(c.shape) + " stages " + std::to_string(stages);
        for (int t = 0; t < stages; t++) CHECK(all_finite(levels[size_t(t)]), "%s: level %d has unwritten elements", what.c_str(), t);
        // against float64 references, plane by plane
        const int64_t hw = s.height * s.width;
        double worst = 0;
        for (int64_t p = 0; p < s.planes(); p++) {
          std::vector<Plane> ref = reference_levels(kind, x.data<float>() + p * hw, s.height, s.width, stages);
          for (int t = 0; t < stages; t++) {
            const int64_t n = s.level_height(t) * s.level_width(t);
            worst = std::fmax(worst, rel_error(levels[size_t(t)].data<float>() + p * n, ref[size_t(t)].data(), n));
          }
        }
        CHECK(worst <= 1e-6, "%s: levels differ from the float64 reference by %g", what.c_str(), worst);
        Tensor back = preview_raw(d, levels, stages, s);
        double err = rel_error(back.data<float>(), x.data<float>(), x.numel());
        CHECK(err <= 1e-6, "%s: recompose(decompose(x)) rel error %g", what.c_str(), err);
        if (kind == PyramidKind::Haar) {
          double ex = 0, el = 0;
          for (int64_t i = 0; i < x.numel(); i++) ex += double(x.data<float>()[i]) * x.data<float>()[i];
          for (const Tensor& l : levels)
            for (int64_t i = 0; i < l.numel(); i++) el += double(l.data<float>()[i]) * l.data<float>()[i];
          CHECK(std::fabs(el - ex) <= 1e-6 * ex, "%s: energy %g != %g", what.c_str(), el, ex);
        }
      }
    }
  }
}

// Bit-identical outputs on every thread count: the ranges cut planes at different rows.
void test_thread_independent() {
  for (PyramidKind kind : {PyramidKind::Laplacian, PyramidKind::Haar, PyramidKind::Consistent}) {
    const Decomposition& d = cpu_decomposition(kind);
    for (const Case& c : {Case{{1, 1, 512, 64}, 4}, Case{{3, 1, 160, 96}, 3}, Case{{1, 2, 1024, 8}, 2},
                          Case{{1, 1, 52, 8}, 2}, Case{{2, 1, 26, 4}, 2}}) {  // 13 threads: ranges of 2 rows
      const PyramidShape s = pyramid_shape(c.shape, c.stages, "test");
      Tensor x = random_image(c.shape, 99);
      set_num_threads(1);
      std::vector<Tensor> ref = decompose_raw(d, x, s);
      Tensor ref_back = preview_raw(d, ref, c.stages, s);
      for (int threads : {2, 3, 5, 8, 13}) {
        set_num_threads(threads);
        set_pyramid_range_pixels(threads % 2 ? 1 : 0);  // odd: ranges as short as 2 rows
        std::vector<Tensor> levels = decompose_raw(d, x, s);
        for (int t = 0; t < c.stages; t++)
          CHECK(std::memcmp(levels[size_t(t)].raw(), ref[size_t(t)].raw(), levels[size_t(t)].nbytes()) == 0,
                "%s %s: level %d differs on %d threads", d.name(), shape_str(c.shape).c_str(), t, threads);
        Tensor back = preview_raw(d, levels, c.stages, s);
        CHECK(std::memcmp(back.raw(), ref_back.raw(), back.nbytes()) == 0, "%s %s: recompose differs on %d threads",
              d.name(), shape_str(c.shape).c_str(), threads);
      }
    }
  }
  set_num_threads(0);
  set_pyramid_range_pixels(0);
}

// preview(levels, k) == recompose of the first k levels with the later ones zeroed.
void test_preview() {
  for (PyramidKind kind : {PyramidKind::Laplacian, PyramidKind::Haar, PyramidKind::Consistent}) {
    const Decomposition& d = cpu_decomposition(kind);
    const Shape shape = {2, 3, 32, 24};
    const int stages = 4;
    const PyramidShape s = pyramid_shape(shape, stages, "test");
    Tensor x = random_image(shape, 5);
    std::vector<Tensor> levels = decompose_raw(d, x, s);
    for (int up_to = 1; up_to <= stages; up_to++) {
      Tensor p = preview_raw(d, levels, up_to, s);
      std::vector<Tensor> zeroed;
      for (int t = 0; t < stages; t++)
        zeroed.push_back(t < up_to ? levels[size_t(t)] : Tensor::zeros(s.level_shape(t), DType::F32));
      Tensor r = preview_raw(d, zeroed, stages, s);
      CHECK(all_finite(p), "%s preview %d has unwritten elements", d.name(), up_to);
      // (not bit-equal: adding a zero detail lets the compiler fuse the blend differently)
      double err = rel_error(p.data<float>(), r.data<float>(), p.numel());
      CHECK(err <= 1e-6, "%s preview %d differs from recompose with zero details by %g", d.name(), up_to, err);
    }
  }
}

void test_tensor_forms_and_errors() {
  const Decomposition& d = cpu_decomposition(PyramidKind::Laplacian);
  auto code_of = [](auto fn) -> int {
    try {
      fn();
    } catch (const Error& e) {
      return int(e.code());
    }
    return -1;
  };
  Tensor x = random_image({2, 3, 16, 8}, 3);
  std::vector<Tensor> levels = d.decompose(x, 3, "t");
  CHECK(levels.size() == 3 && levels[0].shape() == Shape({2, 3, 4, 2}), "tensor decompose shapes");
  CHECK(rel_error(d.recompose(levels, "t").data<float>(), x.data<float>(), x.numel()) <= 1e-6, "tensor recompose");
  CHECK(code_of([&] { d.decompose(x, 0, "t"); }) == int(Code::ArgValue), "stages 0");
  CHECK(code_of([&] { d.decompose(x, 17, "t"); }) == int(Code::ArgValue), "stages 17");
  CHECK(code_of([&] { d.decompose(x, 5, "t"); }) == int(Code::Shape), "too many stages for W = 8");
  CHECK(code_of([&] { d.decompose(random_image({2, 3, 12, 8}, 1), 4, "t"); }) == int(Code::Shape), "H not divisible by 8");
  CHECK(code_of([&] { d.decompose(random_image({3, 16, 8}, 1), 2, "t"); }) == int(Code::Shape), "rank 3");
  CHECK(code_of([&] { d.decompose(Tensor({1, 1, 4, 4}, DType::I32), 2, "t"); }) == int(Code::DType), "i32");
  CHECK(code_of([&] { d.decompose(Tensor(), 2, "t"); }) == int(Code::Disposed), "undefined tensor");
  CHECK(code_of([&] { d.recompose({}, "t"); }) == int(Code::ArgValue), "no levels");
  CHECK(code_of([&] { d.recompose({levels[0], levels[2]}, "t"); }) == int(Code::Shape), "levels that skip one");
  CHECK(code_of([&] { d.recompose({levels[1], levels[0]}, "t"); }) == int(Code::Shape), "levels fine to coarse");
  CHECK(code_of([&] { d.recompose({levels[0], levels[1].reshape({3, 2, 8, 4})}, "t"); }) == int(Code::Shape),
        "batch and channels differ");
  CHECK(code_of([&] { d.preview(levels, 0, "t"); }) == int(Code::ArgValue), "upTo 0");
  CHECK(code_of([&] { d.preview(levels, 4, "t"); }) == int(Code::ArgValue), "upTo 4 of 3");
  CHECK(code_of([&] { parse_pyramid_kind("dct", "kind"); }) == int(Code::ArgValue), "unknown kind");
  CHECK(parse_pyramid_kind("consistent", "kind") == PyramidKind::Consistent &&
            std::string(pyramid_kind_name(PyramidKind::Consistent)) == "consistent",
        "the consistent kind's name");
}

}  // namespace

int main() {
  test_roundtrip_and_reference();
  // again with rows split into ranges of 2 inside every plane
  set_pyramid_range_pixels(1);
  set_num_threads(3);
  test_roundtrip_and_reference();
  set_num_threads(0);
  set_pyramid_range_pixels(0);
  test_thread_independent();
  test_preview();
  test_tensor_forms_and_errors();
  return test_summary("test_pyramid");
}

// Flash attention (native/ops/attention.cpp) against a naive float64 reference, plus a
// finite-difference check of the backward and the error paths.
//
// Error measure, per output tensor: max_i |got_i - ref_i| / max_i |ref_i| (the largest error
// relative to the tensor's scale, so elements near zero don't blow it up). Tolerance 1e-5 for
// f32 against float64. Outputs are filled with NaN before every call, so an element the kernel
// never writes fails the check.
#include "kernel_level.h"  // first: the kernels are called directly
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/threadpool.h"
#include "attention_reference.h"
#include "ops/attention.h"

using df::AttentionShape;

namespace {

int g_failures = 0;

void expect(bool ok, const std::string& what) {
  if (!ok) {
    std::printf("FAIL: %s\n", what.c_str());
    g_failures++;
  }
}

std::vector<float> randn(size_t n, std::mt19937& rng, float sd = 1.f) {
  std::normal_distribution<float> dist(0.f, sd);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

std::vector<float> poisoned(size_t n) { return std::vector<float>(n, std::numeric_limits<float>::quiet_NaN()); }

// max|a - b| / max|b|; NaN anywhere in a gives infinity. Entries where ref is -inf must match.
// Where the reference is identically zero (the gradients of q and k when nk = 1: the softmax
// of one key is constant) this is the absolute error, and the caller holds it to abs_tol.
double rel_error(const std::vector<float>& a, const std::vector<double>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); i++) {
    if (std::isinf(b[i])) {
      if (a[i] != b[i]) return std::numeric_limits<double>::infinity();
      continue;
    }
    if (!std::isfinite(a[i])) return std::numeric_limits<double>::infinity();
    num = std::max(num, std::fabs(double(a[i]) - b[i]));
    den = std::max(den, std::fabs(b[i]));
  }
  return den > 0 ? num / den : num;
}


void check_case(int64_t batch, int64_t heads, int64_t nq, int64_t nk, int64_t dim, bool causal, uint32_t seed,
                float scale = 0.f) {
  AttentionShape s{batch, heads, nq, nk, dim};
  if (scale == 0.f) scale = float(1.0 / std::sqrt(double(dim)));
  std::mt19937 rng(seed);
  size_t nqd = size_t(batch * heads * nq * dim), nkd = size_t(batch * heads * nk * dim);
  auto q = randn(nqd, rng), k = randn(nkd, rng), v = randn(nkd, rng), d_o = randn(nqd, rng);
  auto o = poisoned(nqd), lse = poisoned(size_t(batch * heads * nq));
  df::attention_forward(q.data(), k.data(), v.data(), o.data(), lse.data(), s, scale, causal);
  auto dq = poisoned(nqd), dk = poisoned(nkd), dv = poisoned(nkd);
  df::attention_backward(q.data(), k.data(), v.data(), o.data(), lse.data(), d_o.data(), dq.data(), dk.data(),
                         dv.data(), s, scale, causal);
  attnref::Reference ref = attnref::reference(q, k, v, d_o, {s.batch, s.heads, s.nq, s.nk, s.dim, causal, float(scale)}, scale);
  char name[160];
  std::snprintf(name, sizeof name, "B%lld H%lld nq%lld nk%lld D%lld %s scale %g", (long long)batch,
                (long long)heads, (long long)nq, (long long)nk, (long long)dim, causal ? "causal" : "full", scale);
  const double tol = 1e-5, abs_tol = 1e-4;
  double e[5] = {rel_error(o, ref.o), rel_error(lse, ref.lse), rel_error(dq, ref.dq), rel_error(dk, ref.dk),
                 rel_error(dv, ref.dv)};
  const char* names[5] = {"o", "lse", "dq", "dk", "dv"};
  double worst = 0;
  for (int i = 0; i < 5; i++) {
    worst = std::max(worst, e[i]);
    const std::vector<double>* refs[5] = {&ref.o, &ref.lse, &ref.dq, &ref.dk, &ref.dv};
    bool all_zero = true;
    for (double x : *refs[i]) all_zero = all_zero && x == 0;
    expect(e[i] <= (all_zero ? abs_tol : tol), std::string(name) + ": " + names[i] + " relative error " + std::to_string(e[i]));
  }
  std::printf("  %-52s max rel err %.2e (o %.1e lse %.1e dq %.1e dk %.1e dv %.1e)\n", name, worst, e[0], e[1],
              e[2], e[3], e[4]);
}

// Central differences of L = sum(o * w) through the f32 kernel, against its backward.
void check_finite_differences(bool causal) {
  AttentionShape s{1, 2, 5, 7, 8};
  const float scale = 0.4f;
  std::mt19937 rng(causal ? 11 : 12);
  size_t nqd = size_t(2 * 5 * 8), nkd = size_t(2 * 7 * 8);
  auto q = randn(nqd, rng), k = randn(nkd, rng), v = randn(nkd, rng), w = randn(nqd, rng);
  auto loss = [&]() {
    std::vector<float> o(nqd), lse(10);
    df::attention_forward(q.data(), k.data(), v.data(), o.data(), lse.data(), s, scale, causal);
    double l = 0;
    for (size_t i = 0; i < nqd; i++) l += double(o[i]) * w[i];
    return l;
  };
  std::vector<float> o(nqd), lse(10), dq(nqd), dk(nkd), dv(nkd);
  df::attention_forward(q.data(), k.data(), v.data(), o.data(), lse.data(), s, scale, causal);
  df::attention_backward(q.data(), k.data(), v.data(), o.data(), lse.data(), w.data(), dq.data(), dk.data(),
                         dv.data(), s, scale, causal);
  const float eps = 1e-2f;
  struct Input {
    const char* name;
    std::vector<float>* x;
    std::vector<float>* grad;
  } inputs[] = {{"q", &q, &dq}, {"k", &k, &dk}, {"v", &v, &dv}};
  for (auto& in : inputs) {
    double num = 0, den = 0;
    for (size_t i = 0; i < in.x->size(); i++) {
      float x0 = (*in.x)[i];
      (*in.x)[i] = x0 + eps;
      double lp = loss();
      (*in.x)[i] = x0 - eps;
      double lm = loss();
      (*in.x)[i] = x0;
      double fd = (lp - lm) / (2.0 * double(eps));
      num = std::max(num, std::fabs(fd - (*in.grad)[i]));
      den = std::max(den, std::fabs(double((*in.grad)[i])));
    }
    double err = num / den;
    std::printf("  finite differences %s d%s: max rel err %.2e\n", causal ? "causal" : "full", in.name, err);
    expect(err <= 2e-3, std::string("finite differences d") + in.name + " relative error " + std::to_string(err));
  }
}

template <class F>
void expect_error(df::Code code, const char* what, F&& fn) {
  try {
    fn();
    expect(false, std::string(what) + ": no error");
  } catch (const df::Error& e) {
    expect(e.code() == code, std::string(what) + ": wrong code, message " + e.what());
  }
}

}  // namespace

int main() {
  std::printf("forward and backward against float64 (max|a-b|/max|b| <= 1e-5):\n");
  uint32_t seed = 1;
  for (int threads : {2, 1}) {
    df::set_num_threads(threads);
    std::printf(" threads %d\n", threads);
    for (int64_t n : {1, 17, 100, 257, 1000})
      for (int64_t dim : {32, 64, 80, 128})
        for (bool causal : {false, true}) {
          if (threads == 1 && (n > 257 || dim != 64)) continue;  // the serial pass: a few sizes
          check_case(1, 2, n, n, dim, causal, seed++);
        }
  }
  df::set_num_threads(0);
  std::printf(" nq != nk, odd head dims, batches, scales, more threads than cores:\n");
  for (bool causal : {false, true}) {
    check_case(2, 3, 17, 100, 64, causal, seed++);
    check_case(2, 3, 100, 17, 64, causal, seed++);  // causal: the first 83 queries see no key
    check_case(1, 1, 257, 1000, 80, causal, seed++);
    check_case(1, 1, 1000, 64, 32, causal, seed++);
    check_case(1, 2, 1, 257, 128, causal, seed++);
    check_case(1, 2, 257, 1, 128, causal, seed++);
    check_case(3, 1, 65, 130, 1, causal, seed++);
    check_case(1, 2, 70, 70, 3, causal, seed++);
    check_case(1, 2, 130, 90, 200, causal, seed++);
    check_case(1, 1, 100, 100, 256, causal, seed++);
    check_case(1, 2, 64, 64, 48, causal, seed++, 1.3f);
  }
  df::set_num_threads(5);
  check_case(1, 1, 300, 700, 64, false, seed++);
  check_case(1, 3, 700, 300, 96, true, seed++);
  df::set_num_threads(0);

  std::printf("the same bits whatever the thread count:\n");
  for (int64_t heads : {1, 3, 9}) {
    AttentionShape s{1, heads, 300, 333, 64};
    std::mt19937 rng(uint32_t(77 + heads));
    size_t nqd = size_t(heads * 300 * 64), nkd = size_t(heads * 333 * 64);
    auto q = randn(nqd, rng), k = randn(nkd, rng), v = randn(nkd, rng), d_o = randn(nqd, rng);
    std::vector<float> out[2][5];
    for (int run = 0; run < 2; run++) {
      df::set_num_threads(run == 0 ? 1 : 3);
      auto& r = out[run];
      r[0] = poisoned(nqd), r[1] = poisoned(size_t(heads * 300)), r[2] = poisoned(nqd), r[3] = poisoned(nkd),
      r[4] = poisoned(nkd);
      df::attention_forward(q.data(), k.data(), v.data(), r[0].data(), r[1].data(), s, 0.125f, heads == 3);
      df::attention_backward(q.data(), k.data(), v.data(), r[0].data(), r[1].data(), d_o.data(), r[2].data(),
                             r[3].data(), r[4].data(), s, 0.125f, heads == 3);
    }
    bool same = true;
    for (int i = 0; i < 5; i++) same = same && std::memcmp(out[0][i].data(), out[1][i].data(), out[0][i].size() * 4) == 0;
    std::printf("  heads %lld: 1 thread vs 3 threads %s\n", (long long)heads, same ? "identical" : "DIFFERENT");
    expect(same, "results depend on the thread count (heads " + std::to_string(heads) + ")");
  }
  df::set_num_threads(0);

  std::printf("finite differences (f32 kernel, eps 1e-2, max rel err <= 2e-3):\n");
  check_finite_differences(false);
  check_finite_differences(true);

  std::printf("errors:\n");
  float x[4] = {0, 0, 0, 0};
  expect_error(df::Code::Shape, "dim too large", [&] {
    df::attention_forward(x, x, x, x, x, AttentionShape{1, 1, 1, 1, 257}, 1.f, false);
  });
  expect_error(df::Code::NonFinite, "NaN scale", [&] {
    df::attention_forward(x, x, x, x, x, AttentionShape{1, 1, 1, 1, 1}, std::nanf(""), false);
  });
  expect_error(df::Code::Shape, "zero length", [&] {
    df::attention_backward(x, x, x, x, x, x, x, x, x, AttentionShape{1, 1, 0, 1, 1}, 1.f, false);
  });
  df::Tensor q({1, 2, 4, 8}, df::DType::F32), k({1, 2, 5, 8}, df::DType::F32), bad({1, 2, 5, 7}, df::DType::F32);
  expect_error(df::Code::Shape, "k head dim", [&] { df::attention(q, bad, bad, 1.f, false); });
  expect_error(df::Code::Shape, "v shape", [&] { df::attention(q, k, q, 1.f, false); });
  expect_error(df::Code::DType, "dtype", [&] { df::attention(q.cast(df::DType::F16), k, k, 1.f, false); });
  expect_error(df::Code::Shape, "rank", [&] { df::attention(q.reshape({2, 4, 8}), k, k, 1.f, false); });

  if (g_failures) {
    std::printf("%d failure(s)\n", g_failures);
    return 1;
  }
  std::printf("all attention checks passed\n");
  return 0;
}

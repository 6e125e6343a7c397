// Finite-difference checks of every hand-written backward the DiT uses (native/ops: activations,
// adaLN norm and gated residual, linear, embeddings, patchify, masked MSE), the optimiser against
// a scalar double-precision transcription of torch.optim.AdamW, the JSON reader on malformed
// input, and a finite-difference check of the whole model's backward on a few parameters.
//
// Method: for a scalar L = sum(r * f(inputs)) with a random r, each input element is moved by +-h
// and (L+ - L-) / 2h (L accumulated in double) is compared with the analytic gradient. Error:
// max |fd - analytic| / max |analytic| per tensor, tolerance 2e-3 (h = 1e-2 in float; the
// truncation error is O(h^2)). Outputs are NaN-poisoned before each call.
#include "kernel_level.h"  // first: the kernels are called directly
#include <cmath>
#include <cstdio>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "io/json.h"
#include "model/dit.h"
#include "ops/activations.h"
#include "ops/embeddings.h"
#include "ops/linear.h"
#include "ops/loss.h"
#include "ops/norm.h"
#include "ops/optimizer.h"

using namespace df;

namespace {

int g_failures = 0;
std::mt19937 g_rng(1234);

void expect(bool ok, const std::string& what) {
  if (!ok) {
    std::printf("FAIL: %s\n", what.c_str());
    g_failures++;
  }
}

using Vec = std::vector<float>;
const float kNaN = std::numeric_limits<float>::quiet_NaN();

Vec randn(size_t n, float sd = 1.f) {
  std::normal_distribution<float> d(0.f, sd);
  Vec v(n);
  for (auto& x : v) x = d(g_rng);
  return v;
}

double dot(const Vec& a, const Vec& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); i++) s += double(a[i]) * double(b[i]);
  return s;
}

// Compares an analytic gradient with central differences of loss() w.r.t. x (perturbed in place).
void check_grad(const std::string& what, Vec& x, const Vec& analytic, const std::function<double()>& loss,
                float h = 1e-2f, double tol = 2e-3) {
  double num = 0, den = 0;
  for (size_t i = 0; i < x.size(); i++) {
    float saved = x[i];
    x[i] = saved + h;
    double lp = loss();
    x[i] = saved - h;
    double lm = loss();
    x[i] = saved;
    double fd = (lp - lm) / (2.0 * double(h));
    if (!std::isfinite(analytic[i])) num = std::numeric_limits<double>::infinity();
    num = std::max(num, std::fabs(fd - double(analytic[i])));
    den = std::max(den, std::fabs(fd));
  }
  double err = den > 0 ? num / den : num;
  std::printf("  %-40s rel err %.2e\n", what.c_str(), err);
  expect(err < tol, what + ": finite-difference error " + std::to_string(err));
}

void test_activations() {
  const int64_t n = 257;
  Vec x = randn(n, 2.f), r = randn(n), y(n), dx(n);
  for (int which = 0; which < 2; which++) {
    auto fwd = [&](const Vec& in, Vec& out) {
      if (which == 0) silu_forward(in.data(), out.data(), n);
      else gelu_tanh_forward(in.data(), out.data(), n);
    };
    std::fill(dx.begin(), dx.end(), kNaN);
    if (which == 0) silu_backward(x.data(), r.data(), dx.data(), n);
    else gelu_tanh_backward(x.data(), r.data(), dx.data(), n);
    check_grad(which == 0 ? "silu dx" : "gelu(tanh) dx", x, dx, [&] {
      fwd(x, y);
      return dot(y, r);
    });
    // accumulate adds onto what dx held.
    Vec acc(n, 1.f);
    if (which == 0) silu_backward(x.data(), r.data(), acc.data(), n, true);
    else gelu_tanh_backward(x.data(), r.data(), acc.data(), n, true);
    bool ok = true;
    for (int64_t i = 0; i < n; i++) ok = ok && std::fabs(acc[i] - 1.f - dx[i]) <= 1e-6f * (1.f + std::fabs(dx[i]));
    expect(ok, "activation backward accumulate");
  }
  // GELU(tanh) forward against its formula in double.
  gelu_tanh_forward(x.data(), y.data(), n);
  double worst = 0;
  for (int64_t i = 0; i < n; i++) {
    double v = x[i], ref = 0.5 * v * (1 + std::tanh(std::sqrt(2 / M_PI) * (v + 0.044715 * v * v * v)));
    worst = std::max(worst, std::fabs(ref - y[i]));
  }
  expect(worst < 1e-6, "gelu forward vs double");
}

void test_layernorm_modulate() {
  const int64_t B = 2, N = 3, D = 8, stride = 3 * D;
  ModulatedNormShape s{B, N, D, stride, 1e-6f};
  Vec x = randn(B * N * D, 1.5f), mod = randn(B * stride, 0.5f), r = randn(B * N * D);
  for (auto& v : x) v += 0.7f;  // a non-zero mean
  Vec y(B * N * D), mean(B * N), rstd(B * N);
  // shift at column 0, scale at column D of each mod row; column 2D is unused padding.
  auto loss = [&] {
    layernorm_modulate_forward(x.data(), mod.data(), mod.data() + D, y.data(), mean.data(), rstd.data(), s);
    return dot(y, r);
  };
  loss();
  Vec dx(x.size(), kNaN), dmod(mod.size(), 0.f);
  layernorm_modulate_backward(x.data(), mod.data() + D, mean.data(), rstd.data(), r.data(), dx.data(), dmod.data(),
                              dmod.data() + D, s, false);
  check_grad("layernorm+modulate dx", x, dx, loss);
  check_grad("layernorm+modulate dshift/dscale", mod, dmod, loss);
  // Forward against the definition in double.
  loss();
  double worst = 0;
  for (int64_t rI = 0; rI < B * N; rI++) {
    double mu = 0, var = 0;
    for (int64_t d = 0; d < D; d++) mu += x[rI * D + d];
    mu /= D;
    for (int64_t d = 0; d < D; d++) var += (x[rI * D + d] - mu) * (x[rI * D + d] - mu);
    var /= D;
    int64_t b = rI / N;
    for (int64_t d = 0; d < D; d++) {
      double ref = (x[rI * D + d] - mu) / std::sqrt(var + 1e-6) * (1 + mod[b * stride + D + d]) + mod[b * stride + d];
      worst = std::max(worst, std::fabs(ref - y[rI * D + d]));
    }
  }
  expect(worst < 1e-5, "layernorm+modulate forward vs double");
}

void test_gated_residual() {
  const int64_t B = 2, N = 3, D = 5, stride = 2 * D;
  ModulatedNormShape s{B, N, D, stride, 1e-6f};
  Vec x = randn(B * N * D), y = randn(B * N * D), gate = randn(B * stride), r = randn(B * N * D), out(B * N * D);
  auto loss = [&] {
    gated_residual_forward(x.data(), y.data(), gate.data(), out.data(), s);
    return dot(out, r);
  };
  Vec dy(y.size(), kNaN), dgate(gate.size(), 0.f);
  gated_residual_backward(y.data(), gate.data(), r.data(), dy.data(), dgate.data(), s);
  check_grad("gated residual dx (= dout)", x, r, loss);
  check_grad("gated residual dy", y, dy, loss);
  check_grad("gated residual dgate", gate, dgate, loss);
}

void test_linear() {
  const int64_t R = 5, in = 7, out = 6;
  LinearShape s{R, in, out};
  Vec x = randn(R * in), w = randn(out * in), b = randn(out), r = randn(R * out), y(R * out);
  auto loss = [&] {
    linear_forward(x.data(), w.data(), b.data(), y.data(), s);
    return dot(y, r);
  };
  Vec dx(x.size(), kNaN), dw(w.size(), 0.f), db(b.size(), 0.f);
  linear_backward(x.data(), w.data(), r.data(), dx.data(), dw.data(), db.data(), s);
  check_grad("linear dx", x, dx, loss);
  check_grad("linear dW", w, dw, loss);
  check_grad("linear db", b, db, loss);
  // dW and db accumulate.
  Vec dw2 = dw, db2 = db;
  linear_backward(x.data(), w.data(), r.data(), nullptr, dw2.data(), db2.data(), s);
  bool ok = true;
  for (size_t i = 0; i < dw.size(); i++) ok = ok && std::fabs(dw2[i] - 2 * dw[i]) <= 1e-5f * (1 + std::fabs(dw[i]));
  for (size_t i = 0; i < db.size(); i++) ok = ok && std::fabs(db2[i] - 2 * db[i]) <= 1e-5f * (1 + std::fabs(db[i]));
  expect(ok, "linear backward accumulates dW and db");
}

void test_patches_and_embeddings() {
  PatchShape ps{2, 3, 8, 4, 2};
  const int64_t n = ps.batch * ps.channels * ps.height * ps.width;
  for (PatchOrder order : {PatchOrder::ChannelFirst, PatchOrder::ChannelLast}) {
    Vec img = randn(n), tok(n, kNaN), back(n, kNaN), other = randn(n), img2(n, kNaN);
    patchify(img.data(), tok.data(), ps, order);
    unpatchify(tok.data(), back.data(), ps, order);
    expect(back == img, "unpatchify(patchify(x)) == x");
    // Adjoint: <patchify(a), b> = <a, unpatchify(b)> (so each is the other's backward).
    unpatchify(other.data(), img2.data(), ps, order);
    expect(std::fabs(dot(tok, other) - dot(img, img2)) < 1e-9 * (1 + std::fabs(dot(tok, other))), "patchify adjoint");
  }
  // ChannelFirst matches a conv weight [D, C, p, p]: token (b, i, j) element (c, py, px).
  Vec img(n), tok(n);
  for (int64_t i = 0; i < n; i++) img[i] = float(i);
  patchify(img.data(), tok.data(), ps, PatchOrder::ChannelFirst);
  int64_t b = 1, i = 2, j = 1, c = 2, py = 1, px = 0;
  int64_t token = b * ps.tokens() + i * (ps.width / 2) + j;
  expect(tok[token * ps.token_dim() + (c * 2 + py) * 2 + px] ==
             img[((b * 3 + c) * 8 + i * 2 + py) * 4 + j * 2 + px],
         "patch layout");

  // Embedding rows with a repeated index: the gradient sums.
  const int64_t rows = 4, D = 3;
  Vec table = randn(rows * D), out(2 * rows * D), r = randn(3 * D);
  std::vector<int32_t> idx = {1, 3, 1};
  Vec outv(3 * D);
  auto loss = [&] {
    embedding_forward(table.data(), idx.data(), outv.data(), 3, D);
    return dot(outv, r);
  };
  Vec dtable(table.size(), 0.f);
  embedding_backward(r.data(), idx.data(), dtable.data(), 3, D);
  check_grad("embedding dtable", table, dtable, loss);

  // Timestep features: [cos, sin] of t * scale * 10000^(-k/half).
  Vec t = {0.25f, 0.5f}, feat(2 * 6);
  timestep_features(t.data(), 1, 2, 1000.f, 6, 10000.f, feat.data());
  double f1 = std::pow(10000.0, -1.0 / 3.0);
  expect(std::fabs(feat[6 + 1] - std::cos(500.0 * f1)) < 1e-6 && std::fabs(feat[6 + 4] - std::sin(500.0 * f1)) < 1e-6,
         "timestep features");
  // Position embedding: column encoding first, row encoding second.
  Vec pos(2 * 3 * 8);
  sincos_pos_embed_2d(pos.data(), 2, 3, 8);
  int64_t tokn = 1 * 3 + 2;  // row 1, column 2
  expect(std::fabs(pos[tokn * 8 + 0] - std::sin(2.0)) < 1e-6 && std::fabs(pos[tokn * 8 + 4] - std::sin(1.0)) < 1e-6 &&
             std::fabs(pos[tokn * 8 + 7] - std::cos(1.0 / 100.0)) < 1e-6,
         "sin-cos position embedding");
}

void test_mse() {
  const int64_t B = 3, n = 10;
  Vec g = randn(B * n), v = randn(B * n), dg(B * n, kNaN);
  float w[3] = {1, 0, 1};
  auto loss = [&] { return masked_mse_forward_backward(g.data(), v.data(), w, 1, B, n, nullptr); };
  double l = masked_mse_forward_backward(g.data(), v.data(), w, 1, B, n, dg.data());
  double ref = 0;
  for (int64_t b = 0; b < B; b++)
    for (int64_t i = 0; i < n; i++) {
      double d = double(g[b * n + i]) - double(v[b * n + i]);
      ref += double(w[b]) * d * d;
    }
  ref /= double(B * n);
  expect(std::fabs(l - ref) < 1e-12 * (1 + ref), "masked mse value");
  check_grad("masked mse dg", g, dg, loss);
}

void test_adamw() {
  AdamWOptions o;
  o.lr = 1e-2;
  o.weight_decay = 0.1;
  o.warmup_steps = 2;
  o.grad_clip = 0.5;
  const int64_t n = 1000;
  Vec p = randn(n), m(n, 0.f), v(n, 0.f);
  std::vector<double> pd(p.begin(), p.end()), md(n, 0), vd(n, 0);
  for (int64_t step = 1; step <= 5; step++) {
    Vec g = randn(n, 0.1f);
    double norm = global_grad_norm(g.data(), n);
    double ref_norm = std::sqrt(dot(g, g));
    expect(std::fabs(norm - ref_norm) < 1e-9 * ref_norm, "grad norm");
    float scale = clip_scale(norm, o.grad_clip);
    double lr = scheduled_lr(o, step);
    expect(std::fabs(lr - o.lr * std::min(1.0, step / 2.0)) < 1e-15, "warm-up");
    adamw_update(p.data(), g.data(), m.data(), v.data(), n, step, lr, o, scale);
    for (int64_t i = 0; i < n; i++) {  // torch.optim.AdamW, single-tensor path, in double
      double gi = double(g[i]) * std::min(1.0, o.grad_clip / (ref_norm + 1e-6));
      pd[i] *= 1 - lr * o.weight_decay;
      md[i] = o.beta1 * md[i] + (1 - o.beta1) * gi;
      vd[i] = o.beta2 * vd[i] + (1 - o.beta2) * gi * gi;
      double denom = std::sqrt(vd[i]) / std::sqrt(1 - std::pow(o.beta2, step)) + o.eps;
      pd[i] -= lr / (1 - std::pow(o.beta1, step)) * md[i] / denom;
    }
  }
  double worst = 0;
  for (int64_t i = 0; i < n; i++) worst = std::max(worst, std::fabs(pd[i] - p[i]));
  expect(worst < 1e-5, "adamw vs double reference: " + std::to_string(worst));
  Vec ema(n, 1.f), q(n, 3.f);
  ema_update(ema.data(), q.data(), n, 0.75);
  expect(std::fabs(ema[7] - 1.5f) < 1e-6f, "ema");
  bool threw = false;
  try {
    AdamWOptions bad;
    bad.beta2 = 1.0;
    validate(bad, "opt");
  } catch (const Error& e) {
    threw = e.code() == Code::ArgValue;
  }
  expect(threw, "adamw options validated");
}

void test_json() {
  const char* bad[] = {"", "{", "{\"a\":}", "[1,]", "{\"a\" 1}", "\"\\x\"", "1e999", "tru", "{\"a\":1}x", "\"\\ud800\""};
  for (const char* s : bad) {
    bool ok = false;
    try {
      json::parse(s, "t");
    } catch (const Error& e) {
      ok = e.code() == Code::Format;
    }
    expect(ok, std::string("json rejects ") + s);
  }
  std::string deep(100000, '[');
  bool ok = false;
  try {
    json::parse(deep, "t");
  } catch (const Error& e) {
    ok = e.code() == Code::Format;
  }
  expect(ok, "json rejects deep nesting without overflowing the stack");
  json::Value v = json::parse("{\"a\":[1,2.5e1,\"x\\u00e9\\n\"],\"b\":{\"c\":true,\"d\":null}}", "t");
  expect(v.find("a")->array[1].number == 25 && v.find("a")->array[2].string == "x\xc3\xa9\n" &&
             v.find("b")->find("c")->boolean,
         "json parse");
}

// The whole model's backward against finite differences of its loss on sampled parameters, with
// per-stage loss weights (the trainer's stageLossWeights); with `predictions`, some stages predict
// their clean level (times near 1 included, where the 1 - t clamp applies).
// Two stages (4 and 8 px, 2 channels), classes, a 16-wide 2-deep DiT: small enough for finite differences.
DiTConfig tiny_two_stage_config() {
  DiTConfig c;
  c.stages = 2;
  c.channels = 2;
  c.height = c.width = 8;
  c.patch_sizes = {1, 2};
  c.hidden = 16;
  c.depth = 2;
  c.heads = 2;
  c.num_classes = 3;
  c.freq_dim = 8;
  return c;
}

// A batch of two samples over the two stages' inputs (the vectors must outlive it).
DiTBatch two_sample_batch(const Vec& x0, const Vec& x1, const Vec& t, const Vec& mask, const std::vector<int32_t>& labels) {
  DiTBatch b;
  b.batch = 2;
  b.x = {x0.data(), x1.data()};
  b.time = t.data();
  b.mask = mask.data();
  b.labels = labels.data();
  return b;
}

void test_model_gradient(std::vector<Prediction> predictions = {}, double clean_min_gap = kCleanMinGap) {
  DiTConfig c = tiny_two_stage_config();
  c.predictions = predictions;
  c.clean_min_gap = clean_min_gap;
  c.stage_embedding = true;
  c.time_scale = 1.0;
  DiT m(c, 2);
  Vec p = randn(size_t(m.num_params()), 0.3f);
  std::copy(p.begin(), p.end(), m.param_data());
  Vec x0 = randn(2 * 2 * 4 * 4), x1 = randn(2 * 2 * 8 * 8), v0 = randn(x0.size()), v1 = randn(x1.size());
  Vec t = {0.3f, 0.99f, 0.6f, 0.f}, mask = {1, 1, 1, 0};
  std::vector<int32_t> labels = {3, 1};
  const DiTBatch b = two_sample_batch(x0, x1, t, mask, labels);
  m.forward(b);
  // Poison the gradient buffer: backward must write every element (no stale or unwritten ones).
  std::fill(m.grad_data(), m.grad_data() + m.num_params(), kNaN);
  const std::vector<double> weights = {0.7, 2.5};
  m.loss({v0.data(), v1.data()}, true, &weights);
  bool all_finite = true;
  for (int64_t i = 0; i < m.num_params(); i++) all_finite = all_finite && std::isfinite(m.grad_data()[i]);
  expect(all_finite, "backward writes every parameter gradient");
  Vec grad(m.grad_data(), m.grad_data() + m.num_params());
  double num = 0, den = 0;
  std::uniform_int_distribution<int64_t> pick(0, m.num_params() - 1);
  for (int k = 0; k < 200; k++) {
    int64_t i = pick(g_rng);
    float saved = m.param_data()[i];
    const float h = 1e-2f;
    m.param_data()[i] = saved + h;
    m.forward(b);
    double lp = m.loss({v0.data(), v1.data()}, false, &weights);
    m.param_data()[i] = saved - h;
    m.forward(b);
    double lm = m.loss({v0.data(), v1.data()}, false, &weights);
    m.param_data()[i] = saved;
    double fd = (lp - lm) / (2 * h);
    num = std::max(num, std::fabs(fd - grad[size_t(i)]));
    den = std::max(den, std::fabs(fd));
  }
  double err = num / den;
  const std::string what = std::string("whole DiT") + (predictions.empty() ? "" : predictions[0] == Prediction::Clean ? ", every stage clean-level" : ", fine stage clean-level") +
                           (float(clean_min_gap) == kCleanMinGap ? "" : ", gap " + std::to_string(clean_min_gap).substr(0, 4)) + ", 200 parameters";
  std::printf("  %-40s rel err %.2e\n", what.c_str(), err);
  expect(err < 1e-2, what + ": finite differences: " + std::to_string(err));
}

// A stage that predicts its clean level returns (X^ - x_t) / max(1 - t, gap), X^ being what the
// same weights output as a velocity model; the other stages are unchanged. Against a float64 hand
// computation, with the fine stage's 1 - t = 0.3 and 0 (both clamped when the gap is 0.5).
void test_clean_prediction(double gap) {
  const DiTConfig c = tiny_two_stage_config();
  DiTConfig cx = c;
  cx.predictions = {Prediction::Velocity, Prediction::Clean};
  cx.clean_min_gap = gap;
  DiT mv(c, 2), mx(cx, 2);
  Vec p = randn(size_t(mv.num_params()), 0.3f);
  std::copy(p.begin(), p.end(), mv.param_data());
  std::copy(p.begin(), p.end(), mx.param_data());
  Vec x0 = randn(2 * 2 * 4 * 4), x1 = randn(2 * 2 * 8 * 8);
  Vec t = {0.4f, 0.7f, 0.9f, 1.f}, mask = {1, 1, 1, 1};
  std::vector<int32_t> labels = {3, 1};
  const DiTBatch b = two_sample_batch(x0, x1, t, mask, labels);
  mv.forward(b);
  mx.forward(b);
  double err0 = 0, err1 = 0;
  const int64_t n1 = c.stage_numel(1);
  for (int64_t i = 0; i < 2 * c.stage_numel(0); i++) err0 = std::max(err0, std::fabs(double(mx.output(0)[i]) - mv.output(0)[i]));
  for (int64_t i = 0; i < 2 * n1; i++) {
    const int64_t s = i / n1;
    const double g = std::max(1.0 - double(t[size_t(s * 2 + 1)]), gap);
    const double want = (double(mv.output(1)[i]) - x1[size_t(i)]) / g;
    const double got = mx.output(1)[i];
    err1 = std::max(err1, std::isfinite(got) ? std::fabs(got - want) / (1 + std::fabs(want)) : INFINITY);
  }
  const std::string gs = std::to_string(gap).substr(0, 4);
  expect(err0 == 0, "a velocity stage of a clean-level model is unchanged: " + std::to_string(err0));
  expect(err1 < 1e-5, "clean-level stage = (X^ - x_t) / max(1 - t, " + gs + "): " + std::to_string(err1));
}

// stagePredictions and cleanMinGap in the config's JSON, and the errors for bad values.
void test_clean_config() {
  const DiTConfig c = tiny_two_stage_config();
  DiTConfig cx = c;
  cx.predictions = {Prediction::Velocity, Prediction::Clean};
  expect(cx.to_json().find("\"stagePredictions\":[\"v\",\"x\"]") != std::string::npos, "to_json writes stagePredictions");
  expect(cx.to_json().find("cleanMinGap") == std::string::npos, "the default gap is not written (older JSON unchanged)");
  expect(c.to_json().find("stagePredictions") == std::string::npos, "a velocity model's JSON has no stagePredictions");
  expect(DiTConfig::from_json(cx.to_json()) == cx, "stagePredictions round-trips through JSON");
  DiTConfig cg = cx;
  cg.clean_min_gap = 0.3;
  expect(cg.to_json().find("\"cleanMinGap\":0.2999") != std::string::npos, "to_json writes a gap other than the default");
  const DiTConfig back = DiTConfig::from_json(cg.to_json());
  expect(back == cg && back.clean_min_gap == 0.3, "cleanMinGap round-trips through JSON");
  auto config_error = [](const DiTConfig& bad, const char* field) {
    try {
      bad.validate();
    } catch (const Error& e) {
      return e.code() == Code::Config && std::string(e.what()).find(field) != std::string::npos;
    }
    return false;
  };
  DiTConfig bad = cx;
  bad.predictions = {Prediction::Clean};
  expect(config_error(bad, "stagePredictions"), "one prediction for two stages is a config error naming stagePredictions");
  for (double g : {0.0, 0.005, 1.5, double(NAN), -0.1}) {
    bad = cx;
    bad.clean_min_gap = g;
    expect(config_error(bad, "cleanMinGap"), "cleanMinGap " + std::to_string(g) + " is a config error naming cleanMinGap");
  }
  bool threw = false;
  try {
    DiTConfig::from_json("{\"stages\":1,\"channels\":1,\"height\":8,\"width\":8,\"patchSizes\":[2],\"hidden\":8,"
                         "\"depth\":1,\"heads\":1,\"stagePredictions\":[\"eps\"]}");
  } catch (const Error& e) {
    threw = e.code() == Code::Config && std::string(e.what()).find("stagePredictions") != std::string::npos;
  }
  expect(threw, "an unknown prediction ('eps') is a config error");
  threw = false;
  try {
    DiTConfig::from_json("{\"stages\":1,\"channels\":1,\"height\":8,\"width\":8,\"patchSizes\":[2],\"hidden\":8,"
                         "\"depth\":1,\"heads\":1,\"stagePredictions\":[\"x\"],\"cleanMinGap\":\"big\"}");
  } catch (const Error& e) {
    threw = e.code() == Code::Config && std::string(e.what()).find("cleanMinGap") != std::string::npos;
  }
  expect(threw, "a cleanMinGap that is not a number is a config error");
}

// A model built for inference (shared activation regions, no backward buffers) computes exactly
// what the training model computes, in a smaller arena, and refuses a backward pass.
void test_inference_model() {
  DiTConfig c;
  c.stages = 2;
  c.channels = 3;
  c.height = c.width = 16;
  c.patch_sizes = {2, 4};
  c.hidden = 32;
  c.depth = 3;
  c.heads = 4;
  c.num_classes = 5;
  c.freq_dim = 16;
  const int64_t B = 3;
  DiT train(c, B), infer(c, B, DiTUse::Inference);
  expect(train.training() && !infer.training(), "training() reports the use");
  expect(infer.grad_data() == nullptr, "an inference model has no gradients");
  expect(infer.arena_bytes() * 2 < train.arena_bytes(),
         "inference arena " + std::to_string(infer.arena_bytes()) + " B is < 1/2 of training's " +
             std::to_string(train.arena_bytes()) + " B");
  Vec p = randn(size_t(train.num_params()), 0.3f);  // random weights everywhere, adaLN-Zero layers too
  std::copy(p.begin(), p.end(), train.param_data());
  std::copy(p.begin(), p.end(), infer.param_data());
  Vec x0 = randn(size_t(B * 3 * 8 * 8)), x1 = randn(size_t(B * 3 * 16 * 16));
  Vec t = {0.2f, 0.f, 1.f, 0.4f, 0.7f, 0.1f}, mask = {1, 0, 1, 1, 1, 1};
  std::vector<int32_t> labels = {0, 5, 2};
  DiTBatch b;
  b.batch = B;
  b.x = {x0.data(), x1.data()};
  b.time = t.data();
  b.mask = mask.data();
  b.labels = labels.data();
  for (int rep = 0; rep < 2; rep++) {  // twice: the shared regions hold the last call's values
    train.forward(b);
    infer.forward(b);
    for (int64_t s = 0; s < 2; s++) {
      const int64_t n = B * c.stage_numel(s);
      bool same = true, finite = true;
      for (int64_t i = 0; i < n; i++) {
        same = same && train.output(s)[i] == infer.output(s)[i];
        finite = finite && std::isfinite(infer.output(s)[i]);
      }
      expect(same && finite, "inference output of stage " + std::to_string(s) + " is bit-identical to training's");
    }
  }
  bool refused = false;
  try {
    infer.loss({x0.data(), x1.data()}, true);
  } catch (const Error& e) {
    refused = std::string(e.what()).find("built for training") != std::string::npos;
  }
  expect(refused, "an inference model refuses backward with a coded error");
  const double l = infer.loss({x0.data(), x1.data()}, false);
  expect(std::isfinite(l) && l == train.loss({x0.data(), x1.data()}, false), "inference loss (no backward) matches");
  std::printf("  %-40s arena %lld KiB vs %lld KiB\n", "inference model", (long long)(infer.arena_bytes() >> 10),
              (long long)(train.arena_bytes() >> 10));
}

}  // namespace

int main() {
  test_activations();
  test_layernorm_modulate();
  test_gated_residual();
  test_linear();
  test_patches_and_embeddings();
  test_mse();
  test_adamw();
  test_json();
  test_model_gradient();
  test_model_gradient({Prediction::Clean, Prediction::Clean});
  test_model_gradient({Prediction::Velocity, Prediction::Clean});
  test_model_gradient({Prediction::Velocity, Prediction::Clean}, 0.5);  // the first sample's fine time is clamped
  test_clean_prediction(kCleanMinGap);
  test_clean_prediction(0.5);
  test_clean_config();
  test_inference_model();
  if (g_failures) {
    std::printf("%d failure(s)\n", g_failures);
    return 1;
  }
  std::printf("all model op checks passed\n");
  return 0;
}

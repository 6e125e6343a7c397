// Every op of the op interface (native/ops/ops.h) from one table of cases, on every backend:
//
//   1. reference  each case on the CPU backend against a float64 reference written here;
//   2. gradients  each backward op against central differences of a float64 forward, also
//                 accumulating onto random contents where the op can;
//   3. parity     each case on every other backend against the CPU backend on the same inputs: a
//                 CUDA device's backend when one is usable, else the CUDA backend's own host code
//                 and kernel source on the host emulation (cuda/kernel_ops.cuh with EmuLaunch), in
//                 its f32 and its bf16 policy; DECOFLOW_REQUIRE_CUDA=1 turns a missing device into a
//                 failure;
//   4. self-check deliberately broken backends (a wrong stride, a dropped term, ...) must fail.
//
// Odd sizes throughout; outputs are NaN-poisoned before every call, so an element an op never
// writes fails. Tolerances (max |got - ref| / max |ref| per output): f32 1e-5 against float64
// (1e-4 where the op sums long rows or runs attention's exp2 polynomial), 3e-7 for Philox normals
// (exact on the CPU; a device rounds its transcendental functions once, libm's f32 ones differ in
// under 1% of the elements by one rounding); bf16 backends 2e-2 against the CPU on the same
// bf16-rounded inputs; finite
// differences 1e-3 (h = 1e-4 |x| in float64; the rest is the f32 gradient's rounding).
#include <cstdlib>
#include <cstring>

#include "attention_reference.h"
#include "backend_ops.h"
#include "core/philox.h"
#include "cuda_emulation.h"
#include "ops/cpu_level.h"

using namespace df;
using bops::Case;
using bops::GradCase;
using bops::Kind;
using bops::Ptrs;
using bops::Vals;

namespace {

// ---------------------------------------------------------------------------------------------
// Backends for the test: a decorator that forwards every op to a target backend (or says the op is
// unavailable when there is none), the emulated CUDA kernels, and the broken ones of the self-check.

class ForwardingOps : public Ops {
 public:
  explicit ForwardingOps(Ops* target, std::string name) : target_(target), name_(std::move(name)) {}
  const std::string& name() const { return name_; }
  Ops& t(const char* op) {
    if (!target_) throw bops::Unavailable{std::string(op) + " has no kernel on " + name_};
    return *target_;
  }
  Device device() const override { return Device{}; }
  DTypePolicy policy() const override { return target_ ? target_->policy() : DTypePolicy{}; }
  void upload(void* d, const void* h, size_t n) override { std::memcpy(d, h, n); }
  void download(void* h, const void* s, size_t n) override { std::memcpy(h, s, n); }
  void copy(void* d, const void* s, size_t n) override { std::memcpy(d, s, n); }
  void zero(void* d, size_t n) override { std::memset(d, 0, n); }
  void synchronize() override {}
  int64_t capacity_bytes() const override { return 0; }
  void convert(const void* src, DType from, void* dst, DType to, int64_t n) override {
    df::convert(src, from, dst, to, size_t(n));
  }
  void fill_normal(float* o, int64_t n, uint64_t seed, uint64_t stream, int64_t first) override {
    t("fill_normal").fill_normal(o, n, seed, stream, first);
  }
  void add(const void* x, void* y, int64_t n) override { t("add").add(x, y, n); }
  void broadcast_rows(const float* row, float* o, int64_t rows, int64_t cols) override {
    t("broadcast_rows").broadcast_rows(row, o, rows, cols);
  }
  void add_scaled_rows(const void* x, float* y, const float* s, const RowScaleShape& sh) override {
    t("add_scaled_rows").add_scaled_rows(x, y, s, sh);
  }
  void scale_rows(const float* x, void* y, const float* s, const RowScaleShape& sh) override {
    t("scale_rows").scale_rows(x, y, s, sh);
  }
  void linear_forward(const void* x, const void* w, const void* b, void* y, const LinearShape& s) override {
    t("linear_forward").linear_forward(x, w, b, y, s);
  }
  void linear_backward(const void* x, const void* w, const void* dy, void* dx, float* dw, float* db,
                       const LinearShape& s, bool ax, bool ap) override {
    t("linear_backward").linear_backward(x, w, dy, dx, dw, db, s, ax, ap);
  }
  void silu_forward(const void* x, void* y, int64_t n) override { t("silu_forward").silu_forward(x, y, n); }
  void silu_backward(const void* x, const void* dy, void* dx, int64_t n, bool a) override {
    t("silu_backward").silu_backward(x, dy, dx, n, a);
  }
  void gelu_tanh_forward(const void* x, void* y, int64_t n) override { t("gelu_tanh_forward").gelu_tanh_forward(x, y, n); }
  void gelu_tanh_backward(const void* x, const void* dy, void* dx, int64_t n, bool a) override {
    t("gelu_tanh_backward").gelu_tanh_backward(x, dy, dx, n, a);
  }
  void layernorm_modulate_forward(const float* x, const void* sh, const void* sc, void* y, float* mean, float* rstd,
                                  const ModulatedNormShape& s) override {
    t("layernorm_modulate_forward").layernorm_modulate_forward(x, sh, sc, y, mean, rstd, s);
  }
  void layernorm_modulate_backward(const float* x, const void* sc, const float* mean, const float* rstd, const void* dy,
                                   float* dx, void* dsh, void* dsc, const ModulatedNormShape& s, bool a) override {
    t("layernorm_modulate_backward").layernorm_modulate_backward(x, sc, mean, rstd, dy, dx, dsh, dsc, s, a);
  }
  void gated_residual_forward(const float* x, const void* y, const void* g, float* o, const ModulatedNormShape& s) override {
    t("gated_residual_forward").gated_residual_forward(x, y, g, o, s);
  }
  void gated_residual_backward(const void* y, const void* g, const float* dout, void* dy, void* dg,
                               const ModulatedNormShape& s) override {
    t("gated_residual_backward").gated_residual_backward(y, g, dout, dy, dg, s);
  }
  void attention_forward(const void* q, const void* k, const void* v, void* o, float* lse, const AttentionShape& s,
                         float scale, bool causal) override {
    t("attention_forward").attention_forward(q, k, v, o, lse, s, scale, causal);
  }
  void attention_backward(const void* q, const void* k, const void* v, const void* o, const float* lse, const void* d_o,
                          void* dq, void* dk, void* dv, const AttentionShape& s, float scale, bool causal) override {
    t("attention_backward").attention_backward(q, k, v, o, lse, d_o, dq, dk, dv, s, scale, causal);
  }
  void split_heads(const void* qkv, void* q, void* k, void* v, const HeadsShape& s) override {
    t("split_heads").split_heads(qkv, q, k, v, s);
  }
  void split_heads_backward(const void* dq, const void* dk, const void* dv, void* dqkv, const HeadsShape& s) override {
    t("split_heads_backward").split_heads_backward(dq, dk, dv, dqkv, s);
  }
  void merge_heads(const void* o, void* cat, const HeadsShape& s) override { t("merge_heads").merge_heads(o, cat, s); }
  void merge_heads_backward(const void* dcat, void* d_o, const HeadsShape& s) override {
    t("merge_heads_backward").merge_heads_backward(dcat, d_o, s);
  }
  void patchify(const float* image, void* tokens, const PatchShape& s, PatchOrder o) override {
    t("patchify").patchify(image, tokens, s, o);
  }
  void unpatchify(const void* tokens, float* image, const PatchShape& s, PatchOrder o) override {
    t("unpatchify").unpatchify(tokens, image, s, o);
  }
  void timestep_features(const float* time, int64_t stride, int64_t batch, float scale, int64_t dim, float period,
                         void* out) override {
    t("timestep_features").timestep_features(time, stride, batch, scale, dim, period, out);
  }
  void embedding_forward(const void* table, const int32_t* idx, void* out, int64_t batch, int64_t dim) override {
    t("embedding_forward").embedding_forward(table, idx, out, batch, dim);
  }
  void embedding_backward(const void* dout, const int32_t* idx, float* dtable, int64_t batch, int64_t dim) override {
    t("embedding_backward").embedding_backward(dout, idx, dtable, batch, dim);
  }
  double masked_mse(const float* g, const float* v, const float* w, int64_t stride, int64_t batch, int64_t n, float* dg,
                    float gw) override {
    return t("masked_mse").masked_mse(g, v, w, stride, batch, n, dg, gw);
  }
  double grad_norm(const float* g, int64_t n) override { return t("grad_norm").grad_norm(g, n); }
  void adamw_update(float* p, const float* g, float* m, float* v, int64_t n, int64_t step, double lr,
                    const AdamWOptions& o, float gs, float* ema, void* pc) override {
    t("adamw_update").adamw_update(p, g, m, v, n, step, lr, o, gs, ema, pc);
  }
  void pyramid_decompose(PyramidKind k, const float* image, float* const* levels, float* ws, const PyramidShape& s) override {
    t("pyramid_decompose").pyramid_decompose(k, image, levels, ws, s);
  }
  void pyramid_preview(PyramidKind k, const float* const* levels, int up_to, float* image, float* ws,
                       const PyramidShape& s) override {
    t("pyramid_preview").pyramid_preview(k, levels, up_to, image, ws, s);
  }
  void flow_euler_update(const GroupedRows& l, const float* x, const float* v, const float* dt, float* o) override {
    t("flow_euler_update").flow_euler_update(l, x, v, dt, o);
  }
  void flow_heun_update(const GroupedRows& l, const float* x, const float* v1, const float* v2, const float* dt,
                        float* o) override {
    t("flow_heun_update").flow_heun_update(l, x, v1, v2, dt, o);
  }
  void guidance_combine(const GroupedRows& l, const float* c, const float* u, float w, float* o) override {
    t("guidance_combine").guidance_combine(l, c, u, w, o);
  }
  void flow_noising(const GroupedRows& l, const float* clean, const float* tt, float* noisy, float* target) override {
    t("flow_noising").flow_noising(l, clean, tt, noisy, target);
  }
  void scaled_difference(const GroupedRows& l, const float* a, const float* b, const float* coef, float* o) override {
    t("scaled_difference").scaled_difference(l, a, b, coef, o);
  }

 private:
  Ops* target_;
  std::string name_;
};

// The CPU backend with one op broken, for the self-check.
class BrokenOps final : public ForwardingOps {
 public:
  explicit BrokenOps(std::string what) : ForwardingOps(&cpu_ops(), "broken: " + what), what_(std::move(what)) {}
  void split_heads(const void* qkv, void* q, void* k, void* v, const HeadsShape& s) override {
    if (what_ != "split_heads: tokens and heads swapped") return ForwardingOps::split_heads(qkv, q, k, v, s);
    cpu_ops().split_heads(qkv, q, k, v, HeadsShape{s.batch, s.heads, s.tokens, s.head_dim});
  }
  void layernorm_modulate_forward(const float* x, const void* sh, const void* sc, void* y, float* mean, float* rstd,
                                  const ModulatedNormShape& s) override {
    ModulatedNormShape b = s;
    if (what_ == "layernorm: modulation row stride ignored") b.mod_stride = s.dim;
    cpu_ops().layernorm_modulate_forward(x, sh, sc, y, mean, rstd, b);
  }
  void linear_forward(const void* x, const void* w, const void* bias, void* y, const LinearShape& s) override {
    cpu_ops().linear_forward(x, w, what_ == "linear: bias dropped" ? nullptr : bias, y, s);
  }
  void flow_euler_update(const GroupedRows& l, const float* x, const float* v, const float* dt, float* o) override {
    GroupedRows b = l;
    if (what_ == "euler: coefficient stride ignored") b.coef_stride = 0;
    cpu_ops().flow_euler_update(b, x, v, dt, o);
  }
  double masked_mse(const float* g, const float* v, const float* w, int64_t stride, int64_t batch, int64_t n, float* dg,
                    float gw) override {
    return cpu_ops().masked_mse(g, v, w, stride, batch, n, dg, what_ == "masked_mse: gradient weight ignored" ? 1.f : gw);
  }
  void fill_normal(float* o, int64_t n, uint64_t seed, uint64_t stream, int64_t first) override {
    cpu_ops().fill_normal(o, n, seed, stream, what_ == "fill_normal: offset ignored" ? 0 : first);
  }
  void attention_backward(const void* q, const void* k, const void* v, const void* o, const float* lse, const void* d_o,
                          void* dq, void* dk, void* dv, const AttentionShape& s, float scale, bool causal) override {
    // dk and dv swapped
    if (what_ == "attention backward: dk and dv swapped") return cpu_ops().attention_backward(q, k, v, o, lse, d_o, dq, dv, dk, s, scale, causal);
    cpu_ops().attention_backward(q, k, v, o, lse, d_o, dq, dk, dv, s, scale, causal);
  }

 private:
  std::string what_;
};

// ---------------------------------------------------------------------------------------------
// Helpers for the cases.

void* at(Ops& ops, void* p, int64_t elements) {  // a compute-type pointer `elements` in
  return static_cast<char*>(p) + elements * int64_t(dtype_size(ops.policy().compute));
}
float* F(void* p) { return static_cast<float*>(p); }
int32_t* I(void* p) { return static_cast<int32_t*>(p); }

double sigmoid(double x) { return 1 / (1 + std::exp(-x)); }
double gelu(double x) { return 0.5 * x * (1 + std::tanh(0.7978845608028654 * (x + 0.044715 * x * x * x))); }

// Float64 linear: y = x W^T + b.
void linear_ref(const std::vector<double>& x, const std::vector<double>& w, const std::vector<double>* b,
                std::vector<double>& y, int64_t rows, int64_t in, int64_t outn) {
  for (int64_t r = 0; r < rows; r++)
    for (int64_t o = 0; o < outn; o++) {
      double acc = b ? (*b)[size_t(o)] : 0.0;
      for (int64_t i = 0; i < in; i++) acc += x[size_t(r * in + i)] * w[size_t(o * in + i)];
      y[size_t(r * outn + o)] = acc;
    }
}

// Float64 layernorm (no affine) + modulation; mod rows of `stride`, shift at 0, scale at `sc_off`.
void layernorm_ref(const std::vector<double>& x, const std::vector<double>& mod, int64_t sc_off, std::vector<double>* y,
                   std::vector<double>* mean, std::vector<double>* rstd, int64_t B, int64_t N, int64_t D, int64_t stride,
                   double eps = 1e-6) {
  for (int64_t r = 0; r < B * N; r++) {
    const int64_t b = r / N;
    double mu = 0, var = 0;
    for (int64_t d = 0; d < D; d++) mu += x[size_t(r * D + d)];
    mu /= double(D);
    for (int64_t d = 0; d < D; d++) var += (x[size_t(r * D + d)] - mu) * (x[size_t(r * D + d)] - mu);
    const double rs = 1 / std::sqrt(var / double(D) + eps);
    if (mean) (*mean)[size_t(r)] = mu;
    if (rstd) (*rstd)[size_t(r)] = rs;
    if (y)
      for (int64_t d = 0; d < D; d++)
        (*y)[size_t(r * D + d)] =
            (x[size_t(r * D + d)] - mu) * rs * (1 + mod[size_t(b * stride + sc_off + d)]) + mod[size_t(b * stride + d)];
  }
}

// [B, N, 3, H, hd] element of (which, b, n, h, e) and [B, H, N, hd] element of (b, h, n, e).
int64_t qkv_at(const HeadsShape& s, int w, int64_t b, int64_t n, int64_t h, int64_t e) {
  return ((((b * s.tokens + n) * 3 + w) * s.heads + h) * s.head_dim) + e;
}
int64_t head_at(const HeadsShape& s, int64_t b, int64_t n, int64_t h, int64_t e) {
  return ((b * s.heads + h) * s.tokens + n) * s.head_dim + e;
}

// Image element (b, c, y, x) and token element for PatchShape s.
int64_t token_at(const PatchShape& s, PatchOrder order, int64_t b, int64_t c, int64_t y, int64_t x) {
  const int64_t p = s.patch, gw = s.width / p, i = y / p, j = x / p, py = y % p, px = x % p;
  const int64_t k = order == PatchOrder::ChannelFirst ? (c * p + py) * p + px : (py * p + px) * s.channels + c;
  return ((b * s.tokens()) + i * gw + j) * s.token_dim() + k;
}

// Float64 pyramid: `down` and `up` of each kind (pyramid.h), levels and previews.
struct PyramidRef {
  PyramidKind kind;
  using Img = std::vector<double>;  // planes x h x w
  Img down(const Img& f, int64_t planes, int64_t h, int64_t w) const {
    Img c(size_t(planes * (h / 2) * (w / 2)));
    const double k = kind == PyramidKind::Haar ? 0.5 : 0.25;
    for (int64_t p = 0; p < planes; p++)
      for (int64_t y = 0; y < h / 2; y++)
        for (int64_t x = 0; x < w / 2; x++) {
          auto F = [&](int64_t yy, int64_t xx) { return f[size_t((p * h + yy) * w + xx)]; };
          c[size_t((p * (h / 2) + y) * (w / 2) + x)] =
              k * (F(2 * y, 2 * x) + F(2 * y, 2 * x + 1) + F(2 * y + 1, 2 * x) + F(2 * y + 1, 2 * x + 1));
        }
    return c;
  }
  Img up(const Img& c, int64_t planes, int64_t hc, int64_t wc) const {
    const int64_t h = 2 * hc, w = 2 * wc;
    Img f(size_t(planes * h * w));
    for (int64_t p = 0; p < planes; p++)
      for (int64_t y = 0; y < h; y++)
        for (int64_t x = 0; x < w; x++) {
          auto C = [&](int64_t yy, int64_t xx) {
            yy = std::clamp<int64_t>(yy, 0, hc - 1), xx = std::clamp<int64_t>(xx, 0, wc - 1);
            return c[size_t((p * hc + yy) * wc + xx)];
          };
          double v;
          if (kind == PyramidKind::Haar) {
            v = 0.5 * C(y / 2, x / 2);
          } else {  // bilinear, half-pixel centres: source coordinate (i + 0.5) / 2 - 0.5
            const double sy = (y + 0.5) / 2 - 0.5, sx = (x + 0.5) / 2 - 0.5;
            const int64_t y0 = int64_t(std::floor(sy)), x0 = int64_t(std::floor(sx));
            const double fy = sy - double(y0), fx = sx - double(x0);
            v = (1 - fy) * ((1 - fx) * C(y0, x0) + fx * C(y0, x0 + 1)) + fy * ((1 - fx) * C(y0 + 1, x0) + fx * C(y0 + 1, x0 + 1));
          }
          f[size_t((p * h + y) * w + x)] = v;
        }
    return f;
  }
  // Consistent kind: (D U)^-1 along both axes of every plane, D U measured per axis by passing basis
  // rows through down(up(.)) and inverted by Gauss-Jordan (not pyramid.cpp's tridiagonal solve).
  static std::vector<double> inverse_blur(int64_t n) {
    const PyramidRef lap{PyramidKind::Laplacian};
    std::vector<double> a(size_t(n * n)), inv(size_t(n * n), 0.0);
    for (int64_t j = 0; j < n; j++) {
      Img e(size_t(n), 0.0);
      e[size_t(j)] = 1;
      const Img du = lap.down(lap.up(e, 1, 1, n), 1, 2, 2 * n);
      for (int64_t i = 0; i < n; i++) a[size_t(i * n + j)] = du[size_t(i)];
      inv[size_t(j * n + j)] = 1;
    }
    for (int64_t k = 0; k < n; k++) {
      const double piv = a[size_t(k * n + k)];
      for (int64_t j = 0; j < n; j++) a[size_t(k * n + j)] /= piv, inv[size_t(k * n + j)] /= piv;
      for (int64_t i = 0; i < n; i++)
        if (i != k) {
          const double f = a[size_t(i * n + k)];
          for (int64_t j = 0; j < n; j++) a[size_t(i * n + j)] -= f * a[size_t(k * n + j)], inv[size_t(i * n + j)] -= f * inv[size_t(k * n + j)];
        }
    }
    return inv;
  }
  Img unblur(const Img& c, int64_t planes, int64_t hc, int64_t wc) const {
    const std::vector<double> ih = inverse_blur(hc), iw = inverse_blur(wc);
    Img y(c.size(), 0.0);
    for (int64_t p = 0; p < planes; p++)
      for (int64_t i = 0; i < hc; i++)
        for (int64_t j = 0; j < wc; j++)
          for (int64_t k = 0; k < hc; k++)
            for (int64_t l = 0; l < wc; l++)
              y[size_t((p * hc + i) * wc + j)] += ih[size_t(i * hc + k)] * iw[size_t(j * wc + l)] * c[size_t((p * hc + k) * wc + l)];
    return y;
  }
  // The finer image from `coarse` and a detail (or none): the kind's up-sampler, and for the
  // consistent kind U (D U)^-1 (coarse - D detail) + detail.
  Img up_plus(const Img& coarse, const Img* detail, int64_t planes, int64_t hc, int64_t wc) const {
    Img u;
    if (kind == PyramidKind::Consistent) {
      Img e = coarse;
      if (detail) {
        const Img dd = down(*detail, planes, 2 * hc, 2 * wc);
        for (size_t i = 0; i < e.size(); i++) e[i] -= dd[i];
      }
      u = up(unblur(e, planes, hc, wc), planes, hc, wc);
    } else {
      u = up(coarse, planes, hc, wc);
    }
    if (detail)
      for (size_t i = 0; i < u.size(); i++) u[i] += (*detail)[i];
    return u;
  }
  std::vector<Img> decompose(const Img& x, const PyramidShape& s) const {
    const int S = s.stages;
    std::vector<Img> at_res(static_cast<size_t>(S));  // the image at each stage's resolution
    at_res[size_t(S - 1)] = x;
    for (int t = S - 2; t >= 0; t--) at_res[size_t(t)] = down(at_res[size_t(t + 1)], s.planes(), s.level_height(t + 1), s.level_width(t + 1));
    std::vector<Img> levels(static_cast<size_t>(S));
    levels[0] = at_res[0];
    for (int t = 1; t < S; t++) {
      const Img u = up_plus(at_res[size_t(t - 1)], nullptr, s.planes(), s.level_height(t - 1), s.level_width(t - 1));
      levels[size_t(t)].resize(u.size());
      for (size_t i = 0; i < u.size(); i++) levels[size_t(t)][i] = at_res[size_t(t)][i] - u[i];
    }
    return levels;
  }
  Img preview(const std::vector<Img>& levels, int up_to, const PyramidShape& s) const {
    Img img = levels[0];
    for (int t = 1; t < s.stages; t++) {
      img = up_plus(img, t < up_to ? &levels[size_t(t)] : nullptr, s.planes(), s.level_height(t - 1), s.level_width(t - 1));
    }
    return img;
  }
};

// ---------------------------------------------------------------------------------------------
// The table of op cases.

std::vector<Case> make_cases() {
  std::vector<Case> cs;
  const Kind C = Kind::Compute, F32 = Kind::F32, I32 = Kind::I32;
  using bops::in;
  using bops::inout;
  using bops::out;

  {  // Philox: element first + i of the stream
    const int64_t n = 1001, first = 37;
    const uint64_t seed = 0x1234567890ull, stream = (uint64_t(5) << 56) | 77;
    cs.push_back({"fill_normal n=1001 first=37", {out("out", F32, n)}, 0,
                  [=](Ops& ops, const Ptrs& p, double*) { ops.fill_normal(F(p[0]), n, seed, stream, first); },
                  [=](Vals& v, double*) {
                    std::vector<float> host(static_cast<size_t>(n));
                    RandomStream{seed, stream}.fill_normal(host.data(), n, first);
                    std::copy(host.begin(), host.end(), v[0].begin());
                  },
                  3e-7, 3e-7});  // on the CPU the same function: exact; elsewhere within one rounding
  }
  {  // f32 -> compute -> f32
    const int64_t n = 777;
    cs.push_back({"convert f32 -> compute -> f32 n=777", {in("x", F32, n, bops::normal(100)), out("mid", C, n), out("back", F32, n)}, 0,
                  [=](Ops& ops, const Ptrs& p, double*) {
                    const DType c = ops.policy().compute;
                    ops.convert(p[0], DType::F32, p[1], c, n);
                    ops.convert(p[1], c, p[2], DType::F32, n);
                  },
                  [](Vals& v, double*) { v[1] = v[2] = v[0]; }, 0.0, 4e-3});
  }
  {  // copy, and zero of a part of a buffer
    const int64_t n = 515;
    cs.push_back({"copy n=515, zero 100 of 515", {in("x", C, n), out("y", C, n), inout("z", C, n)}, 0,
                  [=](Ops& ops, const Ptrs& p, double*) {
                    const size_t elem = dtype_size(ops.policy().compute);
                    ops.copy(p[1], p[0], size_t(n) * elem);
                    ops.zero(at(ops, p[2], 7), 100 * elem);
                  },
                  [](Vals& v, double*) {
                    v[1] = v[0];
                    std::fill(v[2].begin() + 7, v[2].begin() + 107, 0.0);
                  },
                  0.0});
  }
  {
    const int64_t n = 1003;
    cs.push_back({"add n=1003", {in("x", C, n), inout("y", C, n)}, 0,
                  [=](Ops& ops, const Ptrs& p, double*) { ops.add(p[0], p[1], n); },
                  [](Vals& v, double*) {
                    for (size_t i = 0; i < v[1].size(); i++) v[1][i] += v[0][i];
                  }});
  }
  {
    const int64_t rows = 5, cols = 37;
    cs.push_back({"broadcast_rows 5 x 37", {in("row", F32, cols), out("out", F32, rows * cols)}, 0,
                  [=](Ops& ops, const Ptrs& p, double*) { ops.broadcast_rows(F(p[0]), F(p[1]), rows, cols); },
                  [=](Vals& v, double*) {
                    for (int64_t r = 0; r < rows; r++)
                      for (int64_t c = 0; c < cols; c++) v[1][size_t(r * cols + c)] = v[0][size_t(c)];
                  }});
  }
  {  // per-sample scales with zeros; a zero-scale sample's x is NaN and must not be read
    const RowScaleShape s{5, 29, 3};
    auto scale_gen = [](std::mt19937& r, int64_t i) { return (i / 3) % 3 == 1 ? 0.0 : std::normal_distribution<double>(0, 1)(r); };
    auto x_gen = [s](std::mt19937& r, int64_t i) {
      return (i / s.per_sample) % 3 == 1 ? std::nan("") : std::normal_distribution<double>(0, 1)(r);
    };
    cs.push_back({"add_scaled_rows B=5 per_sample=29 stride=3", {in("x", C, 5 * 29, x_gen), inout("y", F32, 5 * 29), in("scale", F32, 15, scale_gen)}, 0,
                  [=](Ops& ops, const Ptrs& p, double*) { ops.add_scaled_rows(p[0], F(p[1]), F(p[2]), s); },
                  [=](Vals& v, double*) {
                    for (int64_t b = 0; b < s.batch; b++) {
                      const double m = v[2][size_t(b * s.stride)];
                      if (m != 0)
                        for (int64_t i = 0; i < s.per_sample; i++) v[1][size_t(b * s.per_sample + i)] += m * v[0][size_t(b * s.per_sample + i)];
                    }
                  }});
    cs.push_back({"scale_rows B=5 per_sample=29 stride=3", {in("x", F32, 5 * 29), out("y", C, 5 * 29), in("scale", F32, 15, scale_gen)}, 0,
                  [=](Ops& ops, const Ptrs& p, double*) { ops.scale_rows(F(p[0]), p[1], F(p[2]), s); },
                  [=](Vals& v, double*) {
                    for (int64_t i = 0; i < s.batch * s.per_sample; i++) v[1][size_t(i)] = v[2][size_t(i / s.per_sample * s.stride)] * v[0][size_t(i)];
                  }});
  }
  for (bool bias : {true, false})
    for (LinearShape s : {LinearShape{37, 19, 23}, LinearShape{1, 64, 48}}) {
      std::vector<bops::Buf> b = {in("x", C, s.rows * s.in), in("w", C, s.out * s.in), out("y", C, s.rows * s.out)};
      if (bias) b.push_back(in("bias", C, s.out));
      char name[96];
      std::snprintf(name, sizeof name, "linear_forward rows=%lld in=%lld out=%lld%s", (long long)s.rows, (long long)s.in,
                    (long long)s.out, bias ? " bias" : "");
      cs.push_back({name, b, 0,
                    [=](Ops& ops, const Ptrs& p, double*) { ops.linear_forward(p[0], p[1], bias ? p[3] : nullptr, p[2], s); },
                    [=](Vals& v, double*) { linear_ref(v[0], v[1], bias ? &v[3] : nullptr, v[2], s.rows, s.in, s.out); }, 1e-5});
    }
  {  // every operand one element past an aligned address, as the parameter buffer's slices can be: a
     // GEMM library must not assume more alignment than the pointers have (cuBLASLt refused these)
    const LinearShape s{33, 40, 24};
    cs.push_back({"linear_forward rows=33 in=40 out=24 bias, operands 1 element off",
                  {in("x", C, s.rows * s.in + 1), in("w", C, s.out * s.in + 1), inout("y", C, s.rows * s.out + 1),
                   in("bias", C, s.out + 1)}, 0,
                  [=](Ops& ops, const Ptrs& p, double*) {
                    const size_t e = df::dtype_size(ops.policy().compute);
                    auto off = [e](void* q) { return static_cast<char*>(q) + e; };
                    ops.linear_forward(off(p[0]), off(p[1]), off(p[3]), off(p[2]), s);
                  },
                  [=](Vals& v, double*) {
                    auto tail = [](const std::vector<double>& a) { return std::vector<double>(a.begin() + 1, a.end()); };
                    const std::vector<double> x = tail(v[0]), w = tail(v[1]), b = tail(v[3]);
                    std::vector<double> y(size_t(s.rows * s.out));
                    linear_ref(x, w, &b, y, s.rows, s.in, s.out);
                    std::copy(y.begin(), y.end(), v[2].begin() + 1);
                  }, 1e-5});
  }
  {
    const int64_t n = 1001;
    cs.push_back({"silu_forward n=1001", {in("x", C, n, bops::normal(3)), out("y", C, n)}, 0,
                  [=](Ops& ops, const Ptrs& p, double*) { ops.silu_forward(p[0], p[1], n); },
                  [](Vals& v, double*) {
                    for (size_t i = 0; i < v[0].size(); i++) v[1][i] = v[0][i] * sigmoid(v[0][i]);
                  }});
    cs.push_back({"gelu_tanh_forward n=1001", {in("x", C, n, bops::normal(3)), out("y", C, n)}, 0,
                  [=](Ops& ops, const Ptrs& p, double*) { ops.gelu_tanh_forward(p[0], p[1], n); },
                  [](Vals& v, double*) {
                    for (size_t i = 0; i < v[0].size(); i++) v[1][i] = gelu(v[0][i]);
                  }});
  }
  {  // modulation rows wider than 2D (adaLN's [B, 6D] chunks), x with a large mean
    const int64_t B = 3, N = 7, D = 29, stride = 3 * D + 5;
    const ModulatedNormShape s{B, N, D, stride, 1e-6f};
    cs.push_back({"layernorm_modulate_forward B=3 N=7 D=29 stride=92",
                  {in("x", F32, B * N * D, [](std::mt19937& r, int64_t) { return 3 + 2 * std::normal_distribution<double>(0, 1)(r); }),
                   in("mod", C, B * stride), out("y", C, B * N * D), out("mean", F32, B * N), out("rstd", F32, B * N)},
                  0,
                  [=](Ops& ops, const Ptrs& p, double*) {
                    ops.layernorm_modulate_forward(F(p[0]), at(ops, p[1], 5), at(ops, p[1], 5 + D), p[2], F(p[3]), F(p[4]), s);
                  },
                  [=](Vals& v, double*) {
                    std::vector<double> mod(v[1].begin() + 5, v[1].end());
                    mod.resize(v[1].size(), 0.0);
                    layernorm_ref(v[0], mod, D, &v[2], &v[3], &v[4], B, N, D, stride);
                  },
                  1e-5});
    cs.push_back({"gated_residual_forward B=3 N=7 D=29 stride=92",
                  {in("x", F32, B * N * D), in("y", C, B * N * D), in("mod", C, B * stride), out("out", F32, B * N * D)}, 0,
                  [=](Ops& ops, const Ptrs& p, double*) { ops.gated_residual_forward(F(p[0]), p[1], at(ops, p[2], 2 * D), F(p[3]), s); },
                  [=](Vals& v, double*) {
                    for (int64_t r = 0; r < B * N; r++)
                      for (int64_t d = 0; d < D; d++)
                        v[3][size_t(r * D + d)] = v[0][size_t(r * D + d)] + v[2][size_t((r / N) * stride + 2 * D + d)] * v[1][size_t(r * D + d)];
                  }});
  }
  for (auto shape : std::vector<std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t, bool>>{
           {2, 3, 37, 53, 32, false}, {1, 2, 45, 45, 32, true}, {1, 1, 40, 21, 32, true}, {1, 2, 19, 70, 64, false}}) {
    // Plain copies, not structured bindings: C++17 lambdas cannot capture those (clang refuses).
    int64_t B, H, nq, nk, D;
    bool causal;
    std::tie(B, H, nq, nk, D, causal) = shape;
    const AttentionShape s{B, H, nq, nk, D};
    const float scale = 1.f / std::sqrt(float(D));
    const int64_t nqd = B * H * nq * D, nkd = B * H * nk * D;
    char name[96];
    std::snprintf(name, sizeof name, "attention_forward B%lld H%lld nq%lld nk%lld D%lld%s", (long long)B, (long long)H,
                  (long long)nq, (long long)nk, (long long)D, causal ? " causal" : "");
    const attnref::Case rc{B, H, nq, nk, D, causal, scale};
    cs.push_back({name, {in("q", C, nqd), in("k", C, nkd), in("v", C, nkd), out("o", C, nqd), out("lse", F32, B * H * nq)}, 0,
                  [=](Ops& ops, const Ptrs& p, double*) { ops.attention_forward(p[0], p[1], p[2], p[3], F(p[4]), s, scale, causal); },
                  [=](Vals& v, double*) {
                    std::vector<float> q(v[0].begin(), v[0].end()), k(v[1].begin(), v[1].end()), vv(v[2].begin(), v[2].end());
                    const attnref::Reference r = attnref::reference(q, k, vv, q, rc, scale);
                    v[3] = r.o;
                    v[4] = r.lse;
                  },
                  1e-4});
  }
  {
    const HeadsShape s{2, 7, 3, 5};
    const int64_t n = s.batch * s.tokens * s.heads * s.head_dim;
    auto each = [s](auto&& fn) {
      for (int64_t b = 0; b < s.batch; b++)
        for (int64_t t = 0; t < s.tokens; t++)
          for (int64_t h = 0; h < s.heads; h++)
            for (int64_t e = 0; e < s.head_dim; e++) fn(b, t, h, e);
    };
    cs.push_back({"split_heads B=2 N=7 H=3 hd=5", {in("qkv", C, 3 * n), out("q", C, n), out("k", C, n), out("v", C, n)}, 0,
                  [=](Ops& ops, const Ptrs& p, double*) { ops.split_heads(p[0], p[1], p[2], p[3], s); },
                  [=](Vals& v, double*) {
                    each([&](int64_t b, int64_t t, int64_t h, int64_t e) {
                      for (int w = 0; w < 3; w++) v[size_t(1 + w)][size_t(head_at(s, b, t, h, e))] = v[0][size_t(qkv_at(s, w, b, t, h, e))];
                    });
                  },
                  0.0});
    cs.push_back({"split_heads_backward B=2 N=7 H=3 hd=5", {in("dq", C, n), in("dk", C, n), in("dv", C, n), out("dqkv", C, 3 * n)}, 0,
                  [=](Ops& ops, const Ptrs& p, double*) { ops.split_heads_backward(p[0], p[1], p[2], p[3], s); },
                  [=](Vals& v, double*) {
                    each([&](int64_t b, int64_t t, int64_t h, int64_t e) {
                      for (int w = 0; w < 3; w++) v[3][size_t(qkv_at(s, w, b, t, h, e))] = v[size_t(w)][size_t(head_at(s, b, t, h, e))];
                    });
                  },
                  0.0});
    cs.push_back({"merge_heads B=2 N=7 H=3 hd=5", {in("o", C, n), out("cat", C, n)}, 0,
                  [=](Ops& ops, const Ptrs& p, double*) { ops.merge_heads(p[0], p[1], s); },
                  [=](Vals& v, double*) {
                    each([&](int64_t b, int64_t t, int64_t h, int64_t e) {
                      v[1][size_t(((b * s.tokens + t) * s.heads + h) * s.head_dim + e)] = v[0][size_t(head_at(s, b, t, h, e))];
                    });
                  },
                  0.0});
    cs.push_back({"merge_heads_backward B=2 N=7 H=3 hd=5", {in("dcat", C, n), out("do", C, n)}, 0,
                  [=](Ops& ops, const Ptrs& p, double*) { ops.merge_heads_backward(p[0], p[1], s); },
                  [=](Vals& v, double*) {
                    each([&](int64_t b, int64_t t, int64_t h, int64_t e) {
                      v[1][size_t(head_at(s, b, t, h, e))] = v[0][size_t(((b * s.tokens + t) * s.heads + h) * s.head_dim + e)];
                    });
                  },
                  0.0});
  }
  for (PatchOrder order : {PatchOrder::ChannelFirst, PatchOrder::ChannelLast}) {
    const PatchShape s{2, 3, 8, 12, 2};
    const int64_t n = s.batch * s.channels * s.height * s.width;
    const char* o = order == PatchOrder::ChannelFirst ? "channel-first" : "channel-last";
    auto each = [s](auto&& fn) {
      for (int64_t b = 0; b < s.batch; b++)
        for (int64_t c = 0; c < s.channels; c++)
          for (int64_t y = 0; y < s.height; y++)
            for (int64_t x = 0; x < s.width; x++) fn(((b * s.channels + c) * s.height + y) * s.width + x, b, c, y, x);
    };
    cs.push_back({std::string("patchify [2,3,8,12] p=2 ") + o, {in("image", F32, n), out("tokens", C, n)}, 0,
                  [=](Ops& ops, const Ptrs& p, double*) { ops.patchify(F(p[0]), p[1], s, order); },
                  [=](Vals& v, double*) {
                    each([&](int64_t i, int64_t b, int64_t c, int64_t y, int64_t x) { v[1][size_t(token_at(s, order, b, c, y, x))] = v[0][size_t(i)]; });
                  },
                  0.0});
    cs.push_back({std::string("unpatchify [2,3,8,12] p=2 ") + o, {in("tokens", C, n), out("image", F32, n)}, 0,
                  [=](Ops& ops, const Ptrs& p, double*) { ops.unpatchify(p[0], F(p[1]), s, order); },
                  [=](Vals& v, double*) {
                    each([&](int64_t i, int64_t b, int64_t c, int64_t y, int64_t x) { v[1][size_t(i)] = v[0][size_t(token_at(s, order, b, c, y, x))]; });
                  },
                  0.0});
  }
  {  // times read with a stride (one column of [B, S]); an odd dim leaves a trailing zero
    const int64_t B = 5, stride = 3, dim = 31;
    cs.push_back({"timestep_features B=5 stride=3 dim=31", {in("t", F32, B * stride, bops::uniform(0, 1)), out("features", C, B * dim)}, 0,
                  [=](Ops& ops, const Ptrs& p, double*) { ops.timestep_features(F(p[0]) + 1, stride, B, 1000.f, dim, 10000.f, p[1]); },
                  [=](Vals& v, double*) {
                    const int64_t half = dim / 2;
                    for (int64_t b = 0; b < B; b++) {
                      const double t = v[0][size_t(b * stride + 1)] * 1000.0;
                      for (int64_t k = 0; k < half; k++) {
                        const double arg = t * std::exp(-std::log(10000.0) * double(k) / double(half));
                        v[1][size_t(b * dim + k)] = std::cos(arg);
                        v[1][size_t(b * dim + half + k)] = std::sin(arg);
                      }
                      v[1][size_t(b * dim + dim - 1)] = 0;
                    }
                  },
                  1e-6});
  }
  {
    const int64_t rows = 7, dim = 13, batch = 9;
    cs.push_back({"embedding_forward rows=7 dim=13 batch=9", {in("table", C, rows * dim), in("index", I32, batch, bops::integers(0, 6)), out("out", C, batch * dim)}, 0,
                  [=](Ops& ops, const Ptrs& p, double*) { ops.embedding_forward(p[0], I(p[1]), p[2], batch, dim); },
                  [=](Vals& v, double*) {
                    for (int64_t b = 0; b < batch; b++)
                      for (int64_t d = 0; d < dim; d++) v[2][size_t(b * dim + d)] = v[0][size_t(int64_t(v[1][size_t(b)]) * dim + d)];
                  },
                  0.0});
  }
  {  // masked samples (weight 0) contribute nothing; the gradient is scaled by the stage weight
    const int64_t B = 5, n = 37, stride = 2;
    const float w = 2.5f;
    cs.push_back({"masked_mse B=5 n=37 stride=2 weight=2.5",
                  {in("g", F32, B * n), in("v", F32, B * n), in("mask", F32, B * stride, [](std::mt19937&, int64_t i) { return i % 4 == 2 ? 0.0 : 1.0; }),
                   out("dg", F32, B * n)},
                  1,
                  [=](Ops& ops, const Ptrs& p, double* sc) { sc[0] = ops.masked_mse(F(p[0]), F(p[1]), F(p[2]) + 1, stride, B, n, F(p[3]), w); },
                  [=](Vals& v, double* sc) {
                    double l = 0;
                    for (int64_t b = 0; b < B; b++) {
                      const double m = v[2][size_t(b * stride + 1)];
                      for (int64_t i = 0; i < n; i++) {
                        const double d = v[0][size_t(b * n + i)] - v[1][size_t(b * n + i)];
                        l += m * d * d;
                        v[3][size_t(b * n + i)] = w * m * 2 * d / double(B * n);
                      }
                    }
                    sc[0] = l / double(B * n);
                  },
                  1e-5});
  }
  {
    const int64_t n = 70001;  // several of the CPU's 16384-element blocks
    cs.push_back({"grad_norm n=70001", {in("g", F32, n)}, 1,
                  [=](Ops& ops, const Ptrs& p, double* sc) { sc[0] = ops.grad_norm(F(p[0]), n); },
                  [](Vals& v, double* sc) {
                    double s = 0;
                    for (double x : v[0]) s += x * x;
                    sc[0] = std::sqrt(s);
                  },
                  1e-9});
  }
  {  // AdamW step 3 with clipping and EMA, against torch.optim.AdamW's order of operations in float64
    const int64_t n = 1001;
    AdamWOptions o;
    o.lr = 1e-2, o.weight_decay = 0.1, o.ema_decay = 0.9;
    const int64_t step = 3;
    const float gs = 0.7f;
    cs.push_back({"adamw_update n=1001 step=3 clip=0.7 ema",
                  {inout("p", F32, n), in("g", F32, n), inout("m", F32, n, bops::normal(0.1)), inout("v", F32, n, bops::uniform(0, 0.05)),
                   inout("ema", F32, n)},
                  0,
                  [=](Ops& ops, const Ptrs& p, double*) {
                    ops.adamw_update(F(p[0]), F(p[1]), F(p[2]), F(p[3]), n, step, o.lr, o, gs, F(p[4]), nullptr);
                  },
                  [=](Vals& v, double*) {
                    for (int64_t i = 0; i < n; i++) {
                      const double g = v[1][size_t(i)] * double(gs);
                      double& p = v[0][size_t(i)];
                      double& m = v[2][size_t(i)];
                      double& s = v[3][size_t(i)];
                      m = o.beta1 * m + (1 - o.beta1) * g;
                      s = o.beta2 * s + (1 - o.beta2) * g * g;
                      const double denom = std::sqrt(s) / std::sqrt(1 - std::pow(o.beta2, step)) + o.eps;
                      p = p * (1 - o.lr * o.weight_decay) - o.lr / (1 - std::pow(o.beta1, step)) * m / denom;
                      v[4][size_t(i)] = o.ema_decay * v[4][size_t(i)] + (1 - o.ema_decay) * p;
                    }
                  },
                  2e-6});
  }
  for (PyramidKind kind : {PyramidKind::Laplacian, PyramidKind::Haar, PyramidKind::Consistent})
    for (PyramidShape s : {PyramidShape{2, 3, 16, 24, 2}, PyramidShape{1, 2, 12, 20, 3}, PyramidShape{3, 1, 8, 8, 1}}) {
      char name[96];
      std::snprintf(name, sizeof name, "pyramid_decompose %s [%lld,%lld,%lld,%lld] S=%d", pyramid_kind_name(kind),
                    (long long)s.batch, (long long)s.channels, (long long)s.height, (long long)s.width, s.stages);
      // the workspace holds garbage on entry; its contents afterwards are the op's own business
      std::vector<bops::Buf> bufs = {in("image", F32, s.level_numel(s.stages - 1)), in("workspace", F32, s.workspace_floats(), bops::normal(1e6))};
      for (int t = 0; t < s.stages; t++) bufs.push_back(out("level" + std::to_string(t), F32, s.level_numel(t)));
      const PyramidRef ref{kind};
      cs.push_back({name, bufs, 0,
                    [=](Ops& ops, const Ptrs& p, double*) {
                      std::vector<float*> lv;
                      for (int t = 0; t < s.stages; t++) lv.push_back(F(p[size_t(2 + t)]));
                      ops.pyramid_decompose(kind, F(p[0]), lv.data(), F(p[1]), s);
                    },
                    [=](Vals& v, double*) {
                      const auto levels = ref.decompose(v[0], s);
                      for (int t = 0; t < s.stages; t++) v[size_t(2 + t)] = levels[size_t(t)];
                    },
                    1e-5});
      for (int up_to = 1; up_to <= s.stages; up_to++) {
        std::snprintf(name, sizeof name, "pyramid_preview %s [%lld,%lld,%lld,%lld] S=%d up_to=%d", pyramid_kind_name(kind),
                      (long long)s.batch, (long long)s.channels, (long long)s.height, (long long)s.width, s.stages, up_to);
        std::vector<bops::Buf> pb = {in("workspace", F32, s.workspace_floats(), bops::normal(1e6)), out("image", F32, s.level_numel(s.stages - 1))};
        for (int t = 0; t < s.stages; t++)  // levels past up_to are NaN: they must not be read
          pb.push_back(in("level" + std::to_string(t), F32, s.level_numel(t),
                          t < up_to ? bops::Gen(nullptr) : bops::Gen([](std::mt19937&, int64_t) { return std::nan(""); })));
        cs.push_back({name, pb, 0,
                      [=](Ops& ops, const Ptrs& p, double*) {
                        std::vector<const float*> lv;
                        for (int t = 0; t < s.stages; t++) lv.push_back(F(p[size_t(2 + t)]));
                        ops.pyramid_preview(kind, lv.data(), up_to, F(p[1]), F(p[0]), s);
                      },
                      [=](Vals& v, double*) {
                        std::vector<std::vector<double>> lv(v.begin() + 2, v.end());
                        v[1] = ref.preview(lv, up_to, s);
                      },
                      1e-5});
      }
    }
  {  // the flow's updates over grouped rows: group sizes with and without a multiple of 4, rows whose
     // dt is 0 (their velocities NaN: never read), and a prefix of the groups with the whole matrix
    for (int prefix : {3, 2}) {
      GroupedRows l{3, {7, 28, 116}, 0};
      l = l.prefix(prefix);
      l.coef_stride = 3;
      const int64_t total = l.total(), rows = l.batch * 3;
      auto dt_gen = [](std::mt19937& r, int64_t i) { return i % 4 == 3 ? 0.0 : std::uniform_real_distribution<double>(-0.2, 0.2)(r); };
      // v is NaN where the row's dt is 0
      auto v_gen = [l](std::mt19937& r, int64_t i) {
        int g = 0;
        while (g + 1 < l.groups() && l.offset(g + 1) <= i) g++;
        const int64_t b = (i - l.offset(g)) / l.per_sample[size_t(g)];
        return (b * 3 + g) % 4 == 3 ? std::nan("") : std::normal_distribution<double>(0, 1)(r);
      };
      auto row_of = [l](int64_t i, int64_t* b, int* g) {
        *g = 0;
        while (*g + 1 < l.groups() && l.offset(*g + 1) <= i) ++*g;
        *b = (i - l.offset(*g)) / l.per_sample[size_t(*g)];
      };
      const std::string tag = " groups " + std::to_string(prefix) + " of 3, B=3";
      cs.push_back({"flow_euler_update" + tag, {in("x", F32, total), in("v", F32, total, v_gen), in("dt", F32, rows, dt_gen), out("out", F32, total)}, 0,
                    [=](Ops& ops, const Ptrs& p, double*) { ops.flow_euler_update(l, F(p[0]), F(p[1]), F(p[2]), F(p[3])); },
                    [=](Vals& v, double*) {
                      for (int64_t i = 0; i < total; i++) {
                        int64_t b;
                        int g;
                        row_of(i, &b, &g);
                        const double h = v[2][size_t(b * 3 + g)];
                        v[3][size_t(i)] = h == 0 ? v[0][size_t(i)] : v[0][size_t(i)] + h * v[1][size_t(i)];
                      }
                    }});
      cs.push_back({"flow_heun_update" + tag,
                    {in("x", F32, total), in("v1", F32, total, v_gen), in("v2", F32, total, v_gen), in("dt", F32, rows, dt_gen), out("out", F32, total)}, 0,
                    [=](Ops& ops, const Ptrs& p, double*) { ops.flow_heun_update(l, F(p[0]), F(p[1]), F(p[2]), F(p[3]), F(p[4])); },
                    [=](Vals& v, double*) {
                      for (int64_t i = 0; i < total; i++) {
                        int64_t b;
                        int g;
                        row_of(i, &b, &g);
                        const double h = v[3][size_t(b * 3 + g)];
                        v[4][size_t(i)] = h == 0 ? v[0][size_t(i)] : v[0][size_t(i)] + 0.5 * h * (v[1][size_t(i)] + v[2][size_t(i)]);
                      }
                    }});
      cs.push_back({"guidance_combine w=2.5" + tag, {in("cond", F32, total), in("uncond", F32, total), out("out", F32, total)}, 0,
                    [=](Ops& ops, const Ptrs& p, double*) { ops.guidance_combine(l, F(p[0]), F(p[1]), 2.5f, F(p[2])); },
                    [=](Vals& v, double*) {
                      for (int64_t i = 0; i < total; i++) v[2][size_t(i)] = v[1][size_t(i)] + 2.5 * (v[0][size_t(i)] - v[1][size_t(i)]);
                    }});
      cs.push_back({"flow_noising" + tag,
                    {in("clean", F32, total), in("t", F32, rows, bops::uniform(0, 1)), out("noisy", F32, total), inout("target", F32, total)}, 0,
                    [=](Ops& ops, const Ptrs& p, double*) { ops.flow_noising(l, F(p[0]), F(p[1]), F(p[2]), F(p[3])); },
                    [=](Vals& v, double*) {
                      for (int64_t i = 0; i < total; i++) {
                        int64_t b;
                        int g;
                        row_of(i, &b, &g);
                        const double t = v[1][size_t(b * 3 + g)], noise = v[3][size_t(i)];
                        v[2][size_t(i)] = t * v[0][size_t(i)] + (1 - t) * noise;
                        v[3][size_t(i)] = v[0][size_t(i)] - noise;
                      }
                    }});
      for (bool with_b : {true, false})
        cs.push_back({std::string(with_b ? "scaled_difference" : "scaled_difference b=null") + tag,
                      {in("a", F32, total), in("b", F32, total), in("coef", F32, rows, bops::uniform(1, 20)), out("out", F32, total)}, 0,
                      [=](Ops& ops, const Ptrs& p, double*) { ops.scaled_difference(l, F(p[0]), with_b ? F(p[1]) : nullptr, F(p[2]), F(p[3])); },
                      [=](Vals& v, double*) {
                        for (int64_t i = 0; i < total; i++) {
                          int64_t b;
                          int g;
                          row_of(i, &b, &g);
                          v[3][size_t(i)] = v[2][size_t(b * 3 + g)] * (v[0][size_t(i)] - (with_b ? v[1][size_t(i)] : 0.0));
                        }
                      }});
    }
  }
  return cs;
}

// ---------------------------------------------------------------------------------------------
// The backward ops, against central differences of float64 forwards.

std::vector<GradCase> make_grad_cases() {
  std::vector<GradCase> gs;
  const Kind C = Kind::Compute, F32 = Kind::F32, I32 = Kind::I32;
  using bops::in;
  for (LinearShape s : {LinearShape{11, 7, 5}, LinearShape{300, 3, 4}}) {  // 300 rows: several partial sums of db
    char name[80];
    std::snprintf(name, sizeof name, "linear_backward rows=%lld in=%lld out=%lld", (long long)s.rows, (long long)s.in,
                  (long long)s.out);
    gs.push_back({name, {in("x", C, s.rows * s.in), in("w", C, s.out * s.in), in("b", C, s.out)}, {0, 1, 2}, {C, F32, F32},
                  {true, true, true}, C, s.rows * s.out,
                  [=](const Vals& v, std::vector<double>& f) { linear_ref(v[0], v[1], &v[2], f, s.rows, s.in, s.out); },
                  [=](Ops& ops, const Ptrs& p, const void* r, const Ptrs& g, bool acc) {
                    ops.linear_backward(p[0], p[1], r, g[0], F(g[1]), F(g[2]), s, acc, acc);
                  }});
  }
  {
    const int64_t n = 301;
    gs.push_back({"silu_backward n=301", {in("x", C, n, bops::normal(3))}, {0}, {C}, {true}, C, n,
                  [](const Vals& v, std::vector<double>& f) {
                    for (size_t i = 0; i < f.size(); i++) f[i] = v[0][i] * sigmoid(v[0][i]);
                  },
                  [=](Ops& ops, const Ptrs& p, const void* r, const Ptrs& g, bool acc) { ops.silu_backward(p[0], r, g[0], n, acc); }});
    gs.push_back({"gelu_tanh_backward n=301", {in("x", C, n, bops::normal(3))}, {0}, {C}, {true}, C, n,
                  [](const Vals& v, std::vector<double>& f) {
                    for (size_t i = 0; i < f.size(); i++) f[i] = gelu(v[0][i]);
                  },
                  [=](Ops& ops, const Ptrs& p, const void* r, const Ptrs& g, bool acc) { ops.gelu_tanh_backward(p[0], r, g[0], n, acc); }});
  }
  {  // shift and scale are the two halves of each [2D] modulation row
    const int64_t B = 2, N = 5, D = 13;
    const ModulatedNormShape s{B, N, D, 2 * D, 1e-6f};
    gs.push_back({"layernorm_modulate_backward B=2 N=5 D=13", {in("x", F32, B * N * D), in("mod", C, B * 2 * D, bops::normal(0.5))}, {0, 1}, {F32, C},
                  {true, false}, C, B * N * D,
                  [=](const Vals& v, std::vector<double>& f) { layernorm_ref(v[0], v[1], D, &f, nullptr, nullptr, B, N, D, 2 * D); },
                  [=](Ops& ops, const Ptrs& p, const void* r, const Ptrs& g, bool acc) {
                    df::Tensor y({B * N * D}, ops.policy().compute, ops.device()), mean({B * N}, DType::F32, ops.device()),
                        rstd({B * N}, DType::F32, ops.device());
                    ops.layernorm_modulate_forward(F(p[0]), p[1], at(ops, p[1], D), y.raw(), mean.data<float>(), rstd.data<float>(), s);
                    ops.layernorm_modulate_backward(F(p[0]), at(ops, p[1], D), mean.data<float>(), rstd.data<float>(), r, F(g[0]), g[1],
                                                    at(ops, g[1], D), s, acc);
                  }});
    gs.push_back({"gated_residual_backward B=2 N=5 D=13", {in("y", C, B * N * D), in("gate", C, B * D)}, {0, 1}, {C, C}, {false, false}, F32,
                  B * N * D,
                  [=](const Vals& v, std::vector<double>& f) {
                    for (int64_t r = 0; r < B * N; r++)
                      for (int64_t d = 0; d < D; d++) f[size_t(r * D + d)] = v[1][size_t((r / N) * D + d)] * v[0][size_t(r * D + d)];
                  },
                  [=](Ops& ops, const Ptrs& p, const void* r, const Ptrs& g, bool) {
                    ops.gated_residual_backward(p[0], p[1], static_cast<const float*>(r), g[0], g[1], ModulatedNormShape{B, N, D, D, 1e-6f});
                  }});
  }
  for (bool causal : {false, true}) {
    const AttentionShape s{1, 2, 19, 23, 32};
    const float scale = 1.f / std::sqrt(32.f);
    const int64_t nqd = 2 * 19 * 32, nkd = 2 * 23 * 32;
    const attnref::Case rc{1, 2, 19, 23, 32, causal, scale};
    gs.push_back({std::string("attention_backward B1 H2 nq19 nk23 D32") + (causal ? " causal" : ""), {in("q", C, nqd), in("k", C, nkd), in("v", C, nkd)},
                  {0, 1, 2}, {C, C, C}, {false, false, false}, C, nqd,
                  [=](const Vals& v, std::vector<double>& f) {
                    std::vector<float> q(v[0].begin(), v[0].end()), k(v[1].begin(), v[1].end()), vv(v[2].begin(), v[2].end());
                    f = attnref::reference(q, k, vv, q, rc, scale).o;
                  },
                  [=](Ops& ops, const Ptrs& p, const void* r, const Ptrs& g, bool) {
                    df::Tensor o({nqd}, ops.policy().compute, ops.device()), lse({2 * 19}, DType::F32, ops.device());
                    ops.attention_forward(p[0], p[1], p[2], o.raw(), lse.data<float>(), s, scale, causal);
                    ops.attention_backward(p[0], p[1], p[2], o.raw(), lse.data<float>(), r, g[0], g[1], g[2], s, scale, causal);
                  },
                  2e-3, 5e-2});
  }
  {
    const HeadsShape s{2, 3, 2, 4};
    const int64_t n = 48;
    gs.push_back({"split_heads (its backward) B=2 N=3 H=2 hd=4", {in("qkv", C, 3 * n)}, {0}, {C}, {false}, C, 3 * n,
                  [=](const Vals& v, std::vector<double>& f) {
                    for (int64_t b = 0; b < 2; b++)
                      for (int64_t t = 0; t < 3; t++)
                        for (int64_t h = 0; h < 2; h++)
                          for (int64_t e = 0; e < 4; e++)
                            for (int w = 0; w < 3; w++) f[size_t(w * n + head_at(s, b, t, h, e))] = v[0][size_t(qkv_at(s, w, b, t, h, e))];
                  },
                  [=](Ops& ops, const Ptrs&, const void* r, const Ptrs& g, bool) {
                    void* rr = const_cast<void*>(r);
                    ops.split_heads_backward(rr, at(ops, rr, n), at(ops, rr, 2 * n), g[0], s);
                  }});
    gs.push_back({"merge_heads (its backward) B=2 N=3 H=2 hd=4", {in("o", C, n)}, {0}, {C}, {false}, C, n,
                  [=](const Vals& v, std::vector<double>& f) {
                    for (int64_t b = 0; b < 2; b++)
                      for (int64_t t = 0; t < 3; t++)
                        for (int64_t h = 0; h < 2; h++)
                          for (int64_t e = 0; e < 4; e++) f[size_t(((b * 3 + t) * 2 + h) * 4 + e)] = v[0][size_t(head_at(s, b, t, h, e))];
                  },
                  [=](Ops& ops, const Ptrs&, const void* r, const Ptrs& g, bool) { ops.merge_heads_backward(r, g[0], s); }});
  }
  {
    const PatchShape s{2, 2, 4, 6, 2};
    const int64_t n = 96;
    gs.push_back({"patchify (its backward: unpatchify) channel-first", {in("image", F32, n)}, {0}, {F32}, {false}, C, n,
                  [=](const Vals& v, std::vector<double>& f) {
                    for (int64_t i = 0; i < n; i++) {
                      const int64_t x = i % 6, y = (i / 6) % 4, c = (i / 24) % 2, b = i / 48;
                      f[size_t(token_at(s, PatchOrder::ChannelFirst, b, c, y, x))] = v[0][size_t(i)];
                    }
                  },
                  [=](Ops& ops, const Ptrs&, const void* r, const Ptrs& g, bool) { ops.unpatchify(r, F(g[0]), s, PatchOrder::ChannelFirst); }});
    gs.push_back({"unpatchify (its backward: patchify) channel-last", {in("tokens", C, n)}, {0}, {C}, {false}, F32, n,
                  [=](const Vals& v, std::vector<double>& f) {
                    for (int64_t i = 0; i < n; i++) {
                      const int64_t x = i % 6, y = (i / 6) % 4, c = (i / 24) % 2, b = i / 48;
                      f[size_t(i)] = v[0][size_t(token_at(s, PatchOrder::ChannelLast, b, c, y, x))];
                    }
                  },
                  [=](Ops& ops, const Ptrs&, const void* r, const Ptrs& g, bool) {
                    ops.patchify(static_cast<const float*>(r), g[0], s, PatchOrder::ChannelLast);
                  }});
  }
  {  // repeated indices accumulate, in order
    const int64_t rows = 4, dim = 5, batch = 9;
    gs.push_back({"embedding_backward rows=4 dim=5 batch=9", {in("table", C, rows * dim), in("index", I32, batch, bops::integers(0, 3))}, {0}, {F32},
                  {true}, C, batch * dim,
                  [=](const Vals& v, std::vector<double>& f) {
                    for (int64_t b = 0; b < batch; b++)
                      for (int64_t d = 0; d < dim; d++) f[size_t(b * dim + d)] = v[0][size_t(int64_t(v[1][size_t(b)]) * dim + d)];
                  },
                  [=](Ops& ops, const Ptrs& p, const void* r, const Ptrs& g, bool acc) {
                    if (!acc) ops.zero(g[0], size_t(rows * dim) * 4);
                    ops.embedding_backward(r, I(p[1]), F(g[0]), batch, dim);
                  }});
  }
  {
    const int64_t B = 4, n = 9;
    const float w = 1.5f;
    gs.push_back({"masked_mse (dg) B=4 n=9 weight=1.5",
                  {in("g", F32, B * n), in("v", F32, B * n), in("mask", F32, B, [](std::mt19937&, int64_t i) { return i == 2 ? 0.0 : 1.0; })}, {0}, {F32},
                  {false}, F32, 1,
                  [=](const Vals& v, std::vector<double>& f) {
                    double l = 0;
                    for (int64_t i = 0; i < B * n; i++) l += v[2][size_t(i / n)] * (v[0][size_t(i)] - v[1][size_t(i)]) * (v[0][size_t(i)] - v[1][size_t(i)]);
                    f[0] = w * l / double(B * n);
                  },
                  [=](Ops& ops, const Ptrs& p, const void* r, const Ptrs& g, bool) {
                    float r0;
                    ops.download(&r0, r, 4);
                    ops.masked_mse(F(p[0]), F(p[1]), F(p[2]), 1, B, n, F(g[0]), w * r0);
                  }});
  }
  {
    const RowScaleShape s{3, 10, 2};
    gs.push_back({"add_scaled_rows (its backward: scale_rows)", {in("x", C, 30), in("scale", F32, 6)}, {0}, {C}, {false}, F32, 30,
                  [=](const Vals& v, std::vector<double>& f) {
                    for (int64_t i = 0; i < 30; i++) f[size_t(i)] = v[1][size_t(i / 10 * 2)] * v[0][size_t(i)];
                  },
                  [=](Ops& ops, const Ptrs& p, const void* r, const Ptrs& g, bool) { ops.scale_rows(static_cast<const float*>(r), g[0], F(p[1]), s); }});
  }
  return gs;
}

// ---------------------------------------------------------------------------------------------

struct Totals {
  int failed = 0, skipped = 0, run = 0;
};

// Runs every case on `ops` against the CPU backend, or (a CPU level itself) the float64 reference.
Totals check_backend(const std::string& label, Ops& ops, const std::vector<Case>& cases, const std::vector<GradCase>& grads,
                     bool is_cpu = false) {
  Totals t;
  const DType compute = ops.policy().compute;
  uint32_t seed = 100;
  for (const Case& c : cases) {
    const Vals inputs = bops::generate(c.bufs, seed++, compute);
    Vals want = inputs;
    std::vector<double> want_scalars(size_t(c.scalars));
    if (is_cpu) {
      c.reference(want, want_scalars.data());
    } else {
      bops::Result cpu = bops::run_case(c, cpu_ops(), inputs);
      want = cpu.outputs;
      want_scalars = cpu.scalars;
    }
    bops::Result got = bops::run_case(c, ops, inputs);
    if (got.skipped) {
      t.skipped++;
      if (!bops::quiet) std::printf("  %-12s %-58s skipped (%s)\n", label.c_str(), c.name.c_str(), got.why.c_str());
      continue;
    }
    t.run++;
    const double tol = compute == DType::F32 ? c.tol : c.tol_bf16;
    t.failed += bops::compare(label, c, got, want, want_scalars, tol) > 0;
  }
  for (const GradCase& g : grads)
    for (bool acc : {false, true}) {
      if (acc && std::none_of(g.accumulates.begin(), g.accumulates.end(), [](bool a) { return a; })) continue;
      const int f = bops::run_grad_case(label, g, ops, seed++, acc, compute == DType::F32 ? g.tol : g.tol_bf16);
      if (f < 0) {
        t.skipped++;
      } else {
        t.failed += f > 0;
        t.run++;
      }
    }
  return t;
}

}  // namespace

int main() {
  const std::vector<Case> cases = make_cases();
  const std::vector<GradCase> grads = make_grad_cases();
  std::printf("op cases: %zu, backward cases: %zu\n", cases.size(), grads.size());

  // Every CPU level that this machine can run (native/ops/cpu_level.h), each on its own.
  std::printf("cpu (level in use: %s)\n", cpu_level_description().c_str());
  int levels = 0;
  for (CpuLevel level : compiled_cpu_levels()) {
    const std::string label = std::string("cpu:") + cpu_level_name(level);
    if (!cpu_supports(level)) {
      std::printf("%s: this CPU cannot run it; skipped\n", label.c_str());
      continue;
    }
    std::printf("%s: every op against float64 references, backward ops against finite differences\n", label.c_str());
    Totals t = check_backend(label, *cpu_kernels_at(level).ops, cases, grads, true);
    CHECK(t.failed == 0 && t.skipped == 0, "%s backend: %d failed, %d skipped", label.c_str(), t.failed, t.skipped);
    levels++;
  }
  CHECK(levels >= 1 && cpu_supports(CpuLevel::Baseline), "no CPU level ran");

  // The CUDA backend: a device's when one is usable, else the kernels on the host emulation.
  const bool require = [] {
    const char* v = std::getenv("DECOFLOW_REQUIRE_CUDA");
    return v && *v && std::string(v) != "0";
  }();
  std::string why;
  std::vector<Ops*> cuda;
  try {
    for (DType compute : {DType::F32, DType::BF16}) cuda.push_back(&ops_for(Device{DeviceKind::CUDA, 0}, compute));
  } catch (const Error& e) {
    why = e.what();
  }
  if (cuda.size() == 2) {
    for (Ops* ops : cuda) {
      const std::string label = std::string("cuda ") + dtype_name(ops->policy().compute);
      std::printf("%s: every op against the cpu backend\n", label.c_str());
      Totals t = check_backend(label, *ops, cases, grads);
      CHECK(t.failed == 0 && t.skipped == 0, "%s: %d failed, %d skipped", label.c_str(), t.failed, t.skipped);
    }
  } else {
    CHECK(!require, "DECOFLOW_REQUIRE_CUDA is set but no CUDA backend is usable: %s", why.c_str());
    std::printf("cuda: no usable backend (%s); the CUDA backend's host code and kernels on the host emulation instead\n",
                why.c_str());
    for (DType compute : {DType::F32, DType::BF16}) {
      cudaemu::EmulatedOps emu(Device{}, compute);
      const std::string label = std::string("cuda-emu ") + dtype_name(compute);
      std::printf("%s: every op against the cpu backend\n", label.c_str());
      Totals t = check_backend(label, emu, cases, grads);
      CHECK(t.failed == 0 && t.skipped == 0, "%s: %d cases failed, %d skipped", label.c_str(), t.failed, t.skipped);
    }
  }

  // Self-check: each broken backend must fail at least one case.
  std::printf("self-check: broken backends must fail\n");
  bops::quiet = true;
  for (const char* what : {"split_heads: tokens and heads swapped", "layernorm: modulation row stride ignored", "linear: bias dropped",
                           "euler: coefficient stride ignored", "masked_mse: gradient weight ignored", "fill_normal: offset ignored",
                           "attention backward: dk and dv swapped"}) {
    BrokenOps broken(what);
    // Judge the broken backend by the float64 references and the finite differences, as the CPU is.
    Totals t;
    uint32_t seed = 100;
    for (const Case& c : cases) {
      Vals inputs = bops::generate(c.bufs, seed++, DType::F32), want = inputs;
      std::vector<double> ws(size_t(c.scalars));
      c.reference(want, ws.data());
      bops::Result got = bops::run_case(c, broken, inputs);
      t.failed += bops::compare(what, c, got, want, ws, c.tol) > 0;
    }
    for (const GradCase& g : grads) t.failed += bops::run_grad_case(what, g, broken, seed++, false, g.tol) > 0;
    std::printf("  %-45s %d failing cases\n", what, t.failed);
    CHECK(t.failed > 0, "the broken backend '%s' passed every case", what);
  }
  return test_summary("test_backend_ops");
}

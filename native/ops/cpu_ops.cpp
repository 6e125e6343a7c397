// The CPU backend of the op interface (ops.h): f32 everywhere, each op the kernel of its family in
// native/ops, device pointers are host pointers. Compiled once per CPU level (cpu_level.h): this
// file's table is one level's op set, pyramids and GEMM.
#include <unistd.h>

#include <cstring>

#include "../core/error.h"
#include "../core/philox.h"
#include "activations.h"
#include "cpu_level.h"
#include "gemm.h"
#include "loss.h"
#include "ops.h"

namespace df {
inline namespace DF_CPU_NS {

namespace {

const float* F(const void* p) { return static_cast<const float*>(p); }
float* F(void* p) { return static_cast<float*>(p); }

class CpuOps final : public Ops {
 public:
  Device device() const override { return Device{}; }
  DTypePolicy policy() const override { return DTypePolicy{DType::F32}; }

  void upload(void* dst, const void* host, size_t bytes) override { std::memcpy(dst, host, bytes); }
  void download(void* host, const void* src, size_t bytes) override { std::memcpy(host, src, bytes); }
  void copy(void* dst, const void* src, size_t bytes) override { std::memcpy(dst, src, bytes); }
  void zero(void* dst, size_t bytes) override { std::memset(dst, 0, bytes); }
  void synchronize() override {}
  int64_t capacity_bytes() const override {
    return int64_t(sysconf(_SC_PHYS_PAGES)) * int64_t(sysconf(_SC_PAGESIZE));
  }
  void convert(const void* src, DType from, void* dst, DType to, int64_t n) override {
    df::convert(src, from, dst, to, size_t(n));
  }

  void fill_normal(float* out, int64_t n, uint64_t seed, uint64_t stream, int64_t first) override {
    RandomStream{seed, stream}.fill_normal(out, n, first);
  }

  void add(const void* x, void* y, int64_t n) override { df::add(F(x), F(y), n); }
  void broadcast_rows(const float* row, float* out, int64_t rows, int64_t cols) override {
    df::broadcast_rows(row, out, rows, cols);
  }
  void add_scaled_rows(const void* x, float* y, const float* scale, const RowScaleShape& s) override {
    df::add_scaled_rows(F(x), y, scale, s);
  }
  void scale_rows(const float* x, void* y, const float* scale, const RowScaleShape& s) override {
    df::scale_rows(x, F(y), scale, s);
  }

  void linear_forward(const void* x, const void* w, const void* bias, void* y, const LinearShape& s) override {
    df::linear_forward(F(x), F(w), F(bias), F(y), s);
  }
  void linear_backward(const void* x, const void* w, const void* dy, void* dx, float* dw, float* db,
                       const LinearShape& s, bool accumulate_dx, bool accumulate_params) override {
    df::linear_backward(F(x), F(w), F(dy), F(dx), dw, db, s, accumulate_dx, accumulate_params);
  }

  void silu_forward(const void* x, void* y, int64_t n) override { df::silu_forward(F(x), F(y), n); }
  void silu_backward(const void* x, const void* dy, void* dx, int64_t n, bool accumulate) override {
    df::silu_backward(F(x), F(dy), F(dx), n, accumulate);
  }
  void gelu_tanh_forward(const void* x, void* y, int64_t n) override { df::gelu_tanh_forward(F(x), F(y), n); }
  void gelu_tanh_backward(const void* x, const void* dy, void* dx, int64_t n, bool accumulate) override {
    df::gelu_tanh_backward(F(x), F(dy), F(dx), n, accumulate);
  }

  void layernorm_modulate_forward(const float* x, const void* shift, const void* scale, void* y, float* mean,
                                  float* rstd, const ModulatedNormShape& s) override {
    df::layernorm_modulate_forward(x, F(shift), F(scale), F(y), mean, rstd, s);
  }
  void layernorm_modulate_backward(const float* x, const void* scale, const float* mean, const float* rstd,
                                   const void* dy, float* dx, void* dshift, void* dscale, const ModulatedNormShape& s,
                                   bool accumulate_dx) override {
    df::layernorm_modulate_backward(x, F(scale), mean, rstd, F(dy), dx, F(dshift), F(dscale), s, accumulate_dx);
  }
  void gated_residual_forward(const float* x, const void* y, const void* gate, float* out,
                              const ModulatedNormShape& s) override {
    df::gated_residual_forward(x, F(y), F(gate), out, s);
  }
  void gated_residual_backward(const void* y, const void* gate, const float* dout, void* dy, void* dgate,
                               const ModulatedNormShape& s) override {
    df::gated_residual_backward(F(y), F(gate), dout, F(dy), F(dgate), s);
  }

  void attention_forward(const void* q, const void* k, const void* v, void* o, float* lse, const AttentionShape& s,
                         float scale, bool causal) override {
    df::attention_forward(F(q), F(k), F(v), F(o), lse, s, scale, causal);
  }
  void attention_backward(const void* q, const void* k, const void* v, const void* o, const float* lse,
                          const void* d_o, void* dq, void* dk, void* dv, const AttentionShape& s, float scale,
                          bool causal) override {
    df::attention_backward(F(q), F(k), F(v), F(o), lse, F(d_o), F(dq), F(dk), F(dv), s, scale, causal);
  }
  void split_heads(const void* qkv, void* q, void* k, void* v, const HeadsShape& s) override {
    df::split_heads(F(qkv), F(q), F(k), F(v), s);
  }
  void split_heads_backward(const void* dq, const void* dk, const void* dv, void* dqkv, const HeadsShape& s) override {
    df::split_heads_backward(F(dq), F(dk), F(dv), F(dqkv), s);
  }
  void merge_heads(const void* o, void* cat, const HeadsShape& s) override { df::merge_heads(F(o), F(cat), s); }
  void merge_heads_backward(const void* dcat, void* d_o, const HeadsShape& s) override {
    df::merge_heads_backward(F(dcat), F(d_o), s);
  }

  void patchify(const float* image, void* tokens, const PatchShape& s, PatchOrder order) override {
    df::patchify(image, F(tokens), s, order);
  }
  void unpatchify(const void* tokens, float* image, const PatchShape& s, PatchOrder order) override {
    df::unpatchify(F(tokens), image, s, order);
  }
  void timestep_features(const float* time, int64_t time_stride, int64_t batch, float time_scale, int64_t dim,
                         float max_period, void* out) override {
    df::timestep_features(time, time_stride, batch, time_scale, dim, max_period, F(out));
  }
  void embedding_forward(const void* table, const int32_t* index, void* out, int64_t batch, int64_t dim) override {
    df::embedding_forward(F(table), index, F(out), batch, dim);
  }
  void embedding_backward(const void* dout, const int32_t* index, float* dtable, int64_t batch, int64_t dim) override {
    df::embedding_backward(F(dout), index, dtable, batch, dim);
  }

  double masked_mse(const float* g, const float* v, const float* weight, int64_t weight_stride, int64_t batch,
                    int64_t n, float* dg, float grad_weight) override {
    const double l = masked_mse_forward_backward(g, v, weight, weight_stride, batch, n, dg);
    if (dg && grad_weight != 1.f)
      for (int64_t i = 0; i < batch * n; i++) dg[i] *= grad_weight;
    return l;
  }

  double grad_norm(const float* g, int64_t n) override { return global_grad_norm(g, n); }
  void adamw_update(float* p, const float* g, float* m, float* v, int64_t n, int64_t step, double lr,
                    const AdamWOptions& o, float grad_scale, float* ema, void* p_compute) override {
    if (p_compute) fail(Code::Internal, "adamw_update: the CPU backend computes in f32; no compute copy to write");
    df::adamw_update(p, g, m, v, n, step, lr, o, grad_scale, ema);
  }

  void pyramid_decompose(PyramidKind kind, const float* image, float* const* levels, float* workspace,
                         const PyramidShape& s) override {
    cpu_pyramid(kind).decompose(image, levels, workspace, s);
  }
  void pyramid_preview(PyramidKind kind, const float* const* levels, int up_to, float* image, float* workspace,
                       const PyramidShape& s) override {
    cpu_pyramid(kind).preview(levels, up_to, image, workspace, s);
  }

  void flow_euler_update(const GroupedRows& l, const float* x, const float* v, const float* dt, float* out) override {
    df::flow_euler_update(l, x, v, dt, out);
  }
  void flow_heun_update(const GroupedRows& l, const float* x, const float* v1, const float* v2, const float* dt,
                        float* out) override {
    df::flow_heun_update(l, x, v1, v2, dt, out);
  }
  void guidance_combine(const GroupedRows& l, const float* v_cond, const float* v_uncond, float w, float* out) override {
    df::guidance_combine(l, v_cond, v_uncond, w, out);
  }
  void flow_noising(const GroupedRows& l, const float* clean, const float* t, float* noisy, float* target) override {
    df::flow_noising(l, clean, t, noisy, target);
  }
  void scaled_difference(const GroupedRows& l, const float* a, const float* b, const float* coef, float* out) override {
    df::scaled_difference(l, a, b, coef, out);
  }
};

}  // namespace

const CpuKernels& level_kernels() {
  static CpuOps ops;
  static const CpuKernels k{CpuLevel(DF_CPU_LEVEL), &ops, &cpu_pyramid, &sgemm_blocked};
  return k;
}

}  // namespace DF_CPU_NS
}  // namespace df

// The CUDA backend of the op interface (native/ops/ops.h), written once over a launcher L
// (cuda/launch.cuh): with StreamLaunch it is the backend in libdecoflow_cuda.so (cuda/ops.cu), with
// EmuLaunch the same host code and kernel source run on the CPU's host emulation in the tests. Each
// op is its family's host sequence (cuda/<family>.cuh); linear layers go to L's GEMM (cuBLASLt).
//
// Policies: compute f32 (TF32 off: every product in full f32, for checking against the CPU) or
// bf16 (activations and the weights' copy in bf16, f32 accumulation, f32 masters, gradients of the
// parameters and optimiser state).
#pragma once
#include <string>
#include <vector>

#include "activations.cuh"
#include "attention_f32.cuh"
#include "attention_kernels.cuh"
#include "elementwise.cuh"
#include "embeddings.cuh"
#include "heads.cuh"
#include "integrator_kernels.cuh"
#include "launch.cuh"
#include "loss.cuh"
#include "norm.cuh"
#include "ops/ops.h"
#include "optimizer.cuh"
#include "pyramid_kernels.cuh"

namespace dfcuda {

template <class L>
class KernelOps final : public df::Ops {
 public:
  template <class... Args>
  KernelOps(df::Device device, df::DType compute, Args&&... launcher_args)
      : l_(std::forward<Args>(launcher_args)...), device_(device), compute_(compute) {
    if (compute != df::DType::F32 && compute != df::DType::BF16)
      df::fail(df::Code::DType, "the CUDA backend computes in f32 or bf16");
  }
  L& launcher() { return l_; }

  df::Device device() const override { return device_; }
  df::DTypePolicy policy() const override { return df::DTypePolicy{compute_}; }

  void upload(void* dst, const void* host, size_t bytes) override { l_.upload(dst, host, bytes); }
  void download(void* host, const void* src, size_t bytes) override { l_.download(host, src, bytes); }
  void copy(void* dst, const void* src, size_t bytes) override { l_.copy(dst, src, bytes); }
  void zero(void* dst, size_t bytes) override { l_.zero(dst, bytes); }
  void synchronize() override { l_.synchronize(); }
  int64_t capacity_bytes() const override { return l_.capacity(); }
  void convert(const void* src, df::DType from, void* dst, df::DType to, int64_t n) override {
    run_convert(l_, src, from, dst, to, n);
  }

  void fill_normal(float* out, int64_t n, uint64_t seed, uint64_t stream, int64_t first) override {
    run_fill_normal(l_, out, n, seed, stream, first);
  }

  void add(const void* x, void* y, int64_t n) override {
    typed([&](auto t) { run_add<decltype(t)>(l_, x, y, n); });
  }
  void broadcast_rows(const float* row, float* out, int64_t rows, int64_t cols) override {
    run_broadcast_rows(l_, row, out, rows, cols);
  }
  void add_scaled_rows(const void* x, float* y, const float* scale, const df::RowScaleShape& s) override {
    typed([&](auto t) { run_add_scaled_rows<decltype(t)>(l_, x, y, scale, s.batch, s.per_sample, s.stride); });
  }
  void scale_rows(const float* x, void* y, const float* scale, const df::RowScaleShape& s) override {
    typed([&](auto t) { run_scale_rows<decltype(t)>(l_, x, y, scale, s.batch, s.per_sample, s.stride); });
  }

  // y = x W^T + b (row-major), dx = dy W, dW = dy^T x (f32), db = column sums of dy (f32).
  void linear_forward(const void* x, const void* w, const void* bias, void* y, const df::LinearShape& s) override {
    GemmCall g;
    g.m = s.rows, g.n = s.out, g.k = s.in;
    g.a = x, g.lda = s.in;
    g.trans_b = true, g.b = w, g.ldb = s.in;
    g.c = y, g.ldc = s.out, g.bias = bias;
    g.ab = g.c_type = compute_;
    l_.gemm(g);
  }
  void linear_backward(const void* x, const void* w, const void* dy, void* dx, float* dw, float* db,
                       const df::LinearShape& s, bool accumulate_dx, bool accumulate_params) override {
    if (dx) {
      GemmCall g;
      g.m = s.rows, g.n = s.in, g.k = s.out;
      g.a = dy, g.lda = s.out, g.b = w, g.ldb = s.in;
      g.c = dx, g.ldc = s.in, g.beta = accumulate_dx ? 1.f : 0.f;
      g.ab = g.c_type = compute_;
      l_.gemm(g);
    }
    if (dw) {
      GemmCall g;
      g.m = s.out, g.n = s.in, g.k = s.rows;
      g.trans_a = true, g.a = dy, g.lda = s.out, g.b = x, g.ldb = s.in;
      g.c = dw, g.ldc = s.in, g.beta = accumulate_params ? 1.f : 0.f;
      g.ab = compute_, g.c_type = df::DType::F32;
      l_.gemm(g);
    }
    if (db) typed([&](auto t) { run_column_sums<decltype(t)>(l_, dy, db, s.rows, s.out, accumulate_params); });
  }

  void silu_forward(const void* x, void* y, int64_t n) override {
    typed([&](auto t) { run_activation_forward<Silu, decltype(t)>(l_, x, y, n); });
  }
  void silu_backward(const void* x, const void* dy, void* dx, int64_t n, bool accumulate) override {
    typed([&](auto t) { run_activation_backward<Silu, decltype(t)>(l_, x, dy, dx, n, accumulate); });
  }
  void gelu_tanh_forward(const void* x, void* y, int64_t n) override {
    typed([&](auto t) { run_activation_forward<GeluTanh, decltype(t)>(l_, x, y, n); });
  }
  void gelu_tanh_backward(const void* x, const void* dy, void* dx, int64_t n, bool accumulate) override {
    typed([&](auto t) { run_activation_backward<GeluTanh, decltype(t)>(l_, x, dy, dx, n, accumulate); });
  }

  void layernorm_modulate_forward(const float* x, const void* shift, const void* scale, void* y, float* mean,
                                  float* rstd, const df::ModulatedNormShape& s) override {
    typed([&](auto t) { run_layernorm_modulate_forward<decltype(t)>(l_, x, shift, scale, y, mean, rstd, s); });
  }
  void layernorm_modulate_backward(const float* x, const void* scale, const float* mean, const float* rstd,
                                   const void* dy, float* dx, void* dshift, void* dscale,
                                   const df::ModulatedNormShape& s, bool accumulate_dx) override {
    typed([&](auto t) {
      run_layernorm_modulate_backward<decltype(t)>(l_, x, scale, mean, rstd, dy, dx, dshift, dscale, s, accumulate_dx);
    });
  }
  void gated_residual_forward(const float* x, const void* y, const void* gate, float* out,
                              const df::ModulatedNormShape& s) override {
    typed([&](auto t) { run_gated_residual_forward<decltype(t)>(l_, x, y, gate, out, s); });
  }
  void gated_residual_backward(const void* y, const void* gate, const float* dout, void* dy, void* dgate,
                               const df::ModulatedNormShape& s) override {
    typed([&](auto t) { run_gated_residual_backward<decltype(t)>(l_, y, gate, dout, dy, dgate, s); });
  }

  void attention_forward(const void* q, const void* k, const void* v, void* o, float* lse, const df::AttentionShape& s,
                         float scale, bool causal) override {
    if (compute_ == df::DType::F32)
      return run_attention_f32_forward(l_, F(q), F(k), F(v), F(o), lse, s, scale, causal);
    check_tile_dim(s.dim);
    AttentionParams p = make_attention_params(s.nq, s.nk, scale, causal);
    p.q = q, p.k = k, p.v = v, p.out = o, p.lse = lse;
    run_attention_forward_tiles<bf16>(l_, p, s.batch * s.heads, s.dim);
  }
  void attention_backward(const void* q, const void* k, const void* v, const void* o, const float* lse,
                          const void* d_o, void* dq, void* dk, void* dv, const df::AttentionShape& s, float scale,
                          bool causal) override {
    if (compute_ == df::DType::F32)
      return run_attention_f32_backward(l_, F(q), F(k), F(v), F(o), lse, F(d_o), F(dq), F(dk), F(dv), s, scale, causal);
    check_tile_dim(s.dim);
    AttentionParams p = make_attention_params(s.nq, s.nk, scale, causal);
    p.q = q, p.k = k, p.v = v, p.o = o, p.d_o = d_o, p.lse_in = lse, p.out = dq, p.dk = dk, p.dv = dv;
    run_attention_backward_tiles<bf16>(l_, p, s.batch * s.heads, s.dim);
  }
  void split_heads(const void* qkv, void* q, void* k, void* v, const df::HeadsShape& s) override {
    typed([&](auto t) { run_split_heads<decltype(t)>(l_, qkv, q, k, v, s, false); });
  }
  void split_heads_backward(const void* dq, const void* dk, const void* dv, void* dqkv, const df::HeadsShape& s) override {
    typed([&](auto t) {
      run_split_heads<decltype(t)>(l_, dqkv, const_cast<void*>(dq), const_cast<void*>(dk), const_cast<void*>(dv), s, true);
    });
  }
  void merge_heads(const void* o, void* cat, const df::HeadsShape& s) override {
    typed([&](auto t) { run_merge_heads<decltype(t)>(l_, o, cat, s, false); });
  }
  void merge_heads_backward(const void* dcat, void* d_o, const df::HeadsShape& s) override {
    typed([&](auto t) { run_merge_heads<decltype(t)>(l_, dcat, d_o, s, true); });
  }

  void patchify(const float* image, void* tokens, const df::PatchShape& s, df::PatchOrder order) override {
    typed([&](auto t) { run_patchify<decltype(t)>(l_, image, tokens, s, order == df::PatchOrder::ChannelFirst); });
  }
  void unpatchify(const void* tokens, float* image, const df::PatchShape& s, df::PatchOrder order) override {
    typed([&](auto t) { run_unpatchify<decltype(t)>(l_, tokens, image, s, order == df::PatchOrder::ChannelFirst); });
  }
  void timestep_features(const float* time, int64_t time_stride, int64_t batch, float time_scale, int64_t dim,
                         float max_period, void* out) override {
    typed([&](auto t) { run_timestep_features<decltype(t)>(l_, time, time_stride, batch, time_scale, dim, max_period, out); });
  }
  void embedding_forward(const void* table, const int32_t* index, void* out, int64_t batch, int64_t dim) override {
    typed([&](auto t) { run_embedding_forward<decltype(t)>(l_, table, index, out, batch, dim); });
  }
  void embedding_backward(const void* dout, const int32_t* index, float* dtable, int64_t batch, int64_t dim) override {
    typed([&](auto t) { run_embedding_backward<decltype(t)>(l_, dout, index, dtable, batch, dim); });
  }

  double masked_mse(const float* g, const float* v, const float* weight, int64_t weight_stride, int64_t batch, int64_t n,
                    float* dg, float grad_weight) override {
    return run_masked_mse(l_, g, v, weight, weight_stride, batch, n, dg, grad_weight);
  }
  double grad_norm(const float* g, int64_t n) override { return run_grad_norm(l_, g, n); }
  void adamw_update(float* p, const float* g, float* m, float* v, int64_t n, int64_t step, double lr,
                    const df::AdamWOptions& o, float grad_scale, float* ema, void* p_compute) override {
    if (compute_ == df::DType::F32 && p_compute)
      df::fail(df::Code::Internal, "adamw_update: the f32 policy keeps no compute copy of the weights");
    typed([&](auto t) { run_adamw<decltype(t)>(l_, p, g, m, v, n, step, lr, o, grad_scale, ema, p_compute); });
  }

  void pyramid_decompose(df::PyramidKind kind, const float* image, float* const* levels, float*,
                         const df::PyramidShape& s) override {
    const DfCudaPyramidShape cs = pyramid_shape(s);
    auto workspace = l_.scratch(pyramid_workspace_bytes(cs, pyramid_kind(kind)) + 16);
    std::vector<void*> lv(levels, levels + s.stages);
    PyramidLaunch pl{l_};
    check_status(run_decompose(pl, pyramid_kind(kind), DF_CUDA_F32, image, lv.data(), workspace.get(), cs, strip_split()),
                 "pyramid_decompose");
  }
  void pyramid_preview(df::PyramidKind kind, const float* const* levels, int up_to, float* image, float*,
                       const df::PyramidShape& s) override {
    const DfCudaPyramidShape cs = pyramid_shape(s);
    auto workspace = l_.scratch(pyramid_workspace_bytes(cs, pyramid_kind(kind)) + 16);
    std::vector<const void*> lv(levels, levels + s.stages);
    PyramidLaunch pl{l_};
    check_status(run_recompose(pl, pyramid_kind(kind), DF_CUDA_F32, lv.data(), up_to, image, workspace.get(), cs,
                               strip_split()),
                 "pyramid_preview");
  }

  void flow_euler_update(const df::GroupedRows& r, const float* x, const float* v, const float* dt, float* out) override {
    run_integrator<Op::Euler>(l_, r, x, v, nullptr, dt, 0.f, out);
  }
  void flow_heun_update(const df::GroupedRows& r, const float* x, const float* v1, const float* v2, const float* dt,
                        float* out) override {
    run_integrator<Op::Heun>(l_, r, x, v1, v2, dt, 0.f, out);
  }
  void guidance_combine(const df::GroupedRows& r, const float* v_cond, const float* v_uncond, float w, float* out) override {
    run_integrator<Op::Guidance>(l_, r, nullptr, v_cond, v_uncond, nullptr, w, out);
  }
  void flow_noising(const df::GroupedRows& r, const float* clean, const float* t, float* noisy, float* target) override {
    run_noising(l_, r, clean, t, noisy, target);
  }
  void scaled_difference(const df::GroupedRows& r, const float* a, const float* b, const float* coef, float* out) override {
    run_scaled_difference(l_, r, a, b, coef, out);
  }

 private:
  template <class F>
  void typed(F&& f) {
    if (compute_ == df::DType::BF16) f(bf16{});
    else f(float{});
  }
  static const float* F(const void* p) { return static_cast<const float*>(p); }
  static float* F(void* p) { return static_cast<float*>(p); }
  static void check_tile_dim(int64_t dim) {
    if (dim != 32 && dim != 64 && dim != 128)
      df::fail(df::Code::Shape, "attention on CUDA in bf16: the head dim must be 32, 64 or 128 (the tensor-core "
                                "kernels), got " + std::to_string(dim));
  }
  static void check_status(int status, const char* what) {
    if (status != DF_CUDA_OK) df::fail(df::Code::Backend, std::string(what) + " failed with status " + std::to_string(status));
  }
  static int pyramid_kind(df::PyramidKind k) {
    return k == df::PyramidKind::Haar ? DF_CUDA_HAAR : k == df::PyramidKind::Consistent ? DF_CUDA_CONSISTENT : DF_CUDA_LAPLACIAN;
  }
  static DfCudaPyramidShape pyramid_shape(const df::PyramidShape& s) {
    return DfCudaPyramidShape{s.batch, s.channels, s.height, s.width, s.stages};
  }
  // Enough resident warps per multiprocessor, and Laplacian strips of at least 8 rows (as cuda/pyramid.cu).
  StripSplit strip_split() const { return StripSplit{int64_t(l_.multiprocessors()) * 32, 8}; }
  // The pyramid's level loop launches through this.
  struct PyramidLaunch {
    L& l;
    template <class Kernel, class... A>
    int operator()(Kernel kernel, const PairGeometry& g, A... args) {
      l.launch(kernel, dim3(g.blocks()), kPyramidThreads, 0, args..., g);
      return DF_CUDA_OK;
    }
    int copy(void* dst, const void* src, size_t bytes) {
      l.copy(dst, src, bytes);
      return DF_CUDA_OK;
    }
  };

  mutable L l_;
  df::Device device_;
  df::DType compute_;
};

}  // namespace dfcuda

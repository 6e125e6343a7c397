// The op interface: every operation the DiT, the trainer and the sampler need, as one table per
// device (a "backend", in the spirit of ggml's backends). The model, the trainer and the sampler are
// written once against it and never ask which device they run on; a backend supplies the kernels.
//
// Conventions of every op:
//   - Pointers are device pointers of the backend's device (memory of a Tensor on that device), the
//     sizes plain shape structs; nothing is checked (the callers validated their inputs), nothing is
//     allocated on the caller's behalf beyond a kernel's own scratch.
//   - Element types follow the backend's DTypePolicy: activations, their gradients and the weights
//     the kernels read are `void*` in policy().compute; parameters ("master" weights), parameter
//     gradients, optimiser state, the transformer's residual stream and its gradient, times, masks,
//     normalisation statistics, log-sum-exps, model inputs and outputs and the sampler's state are
//     f32 (`float*`) on every backend (as under PyTorch's autocast).
//   - Ops run in order on the backend's one stream: a later op sees an earlier op's results. Only
//     download() and the ops that return a host value (masked_mse, grad_norm) wait for the device.
//   - Results do not depend on the thread count (CPU) and are the same on every backend up to the
//     tolerances of test/native/test_backend_ops.cpp.
#pragma once
#include <cstddef>
#include <cstdint>

#include "../core/device.h"
#include "../core/dtype.h"
#include "attention.h"
#include "elementwise.h"
#include "embeddings.h"
#include "heads.h"
#include "integrator.h"
#include "linear.h"
#include "norm.h"
#include "optimizer.h"
#include "pyramid.h"

namespace df {

// The element types a backend computes in. Master weights, gradients and optimiser state are f32
// everywhere; `compute` is f32 on the CPU (and in the CUDA backend's f32 mode), bf16 in its
// mixed-precision mode, where the model keeps a compute-dtype copy of the weights that AdamW
// refreshes in the same pass as it updates the f32 masters.
struct DTypePolicy {
  DType compute = DType::F32;
};

// Every change of this interface bumps DF_OPS_INTERFACE_VERSION (core/cuda_api.h): the CUDA backend
// library implements it across a dlopen boundary and is refused when built against another version.
class Ops {
 public:
  virtual ~Ops() = default;
  virtual Device device() const = 0;
  virtual DTypePolicy policy() const = 0;

  // ---- memory: copies between the host and this device, and on it ----
  virtual void upload(void* dst, const void* host, size_t bytes) = 0;
  virtual void download(void* host, const void* src, size_t bytes) = 0;  // waits for the device
  virtual void copy(void* dst, const void* src, size_t bytes) = 0;
  virtual void zero(void* dst, size_t bytes) = 0;
  virtual void synchronize() = 0;
  // The device's memory in bytes (0: unknown), for refusing what cannot fit before allocating it.
  virtual int64_t capacity_bytes() const = 0;
  // dst = src converted elementwise (f32 <-> the compute type; the same type is a copy).
  virtual void convert(const void* src, DType from, void* dst, DType to, int64_t n) = 0;

  // ---- random numbers (Philox, core/philox.h): out[i] is normal number first + i of the stream
  // (seed, stream), the same bits on every backend ----
  virtual void fill_normal(float* out, int64_t n, uint64_t seed, uint64_t stream, int64_t first) = 0;

  // ---- elementwise (elementwise.h) ----
  virtual void add(const void* x, void* y, int64_t n) = 0;  // y += x, compute type
  virtual void broadcast_rows(const float* row, float* out, int64_t rows, int64_t cols) = 0;
  // y (f32) += scale_b * x (compute), per sample, skipping samples whose scale is 0
  virtual void add_scaled_rows(const void* x, float* y, const float* scale, const RowScaleShape& s) = 0;
  // y (compute) = scale_b * x (f32), per sample
  virtual void scale_rows(const float* x, void* y, const float* scale, const RowScaleShape& s) = 0;

  // ---- linear layers (linear.h): x, w, bias, y, dy, dx compute; dw, db f32 ----
  virtual void linear_forward(const void* x, const void* w, const void* bias, void* y, const LinearShape& s) = 0;
  virtual void linear_backward(const void* x, const void* w, const void* dy, void* dx, float* dw, float* db,
                               const LinearShape& s, bool accumulate_dx, bool accumulate_params) = 0;

  // ---- activations (activations.h), compute type ----
  virtual void silu_forward(const void* x, void* y, int64_t n) = 0;
  virtual void silu_backward(const void* x, const void* dy, void* dx, int64_t n, bool accumulate) = 0;
  virtual void gelu_tanh_forward(const void* x, void* y, int64_t n) = 0;
  virtual void gelu_tanh_backward(const void* x, const void* dy, void* dx, int64_t n, bool accumulate) = 0;

  // ---- LayerNorm + adaLN modulation and the gated residual (norm.h): x, dx, out and dout are the
  // f32 residual stream, mean and rstd f32, the rest compute ----
  virtual void layernorm_modulate_forward(const float* x, const void* shift, const void* scale, void* y, float* mean,
                                          float* rstd, const ModulatedNormShape& s) = 0;
  virtual void layernorm_modulate_backward(const float* x, const void* scale, const float* mean, const float* rstd,
                                           const void* dy, float* dx, void* dshift, void* dscale,
                                           const ModulatedNormShape& s, bool accumulate_dx) = 0;
  virtual void gated_residual_forward(const float* x, const void* y, const void* gate, float* out,
                                      const ModulatedNormShape& s) = 0;
  virtual void gated_residual_backward(const void* y, const void* gate, const float* dout, void* dy, void* dgate,
                                       const ModulatedNormShape& s) = 0;

  // ---- attention (attention.h) and the head layouts around it (heads.h); lse f32 ----
  virtual void attention_forward(const void* q, const void* k, const void* v, void* o, float* lse,
                                 const AttentionShape& s, float scale, bool causal) = 0;
  virtual void attention_backward(const void* q, const void* k, const void* v, const void* o, const float* lse,
                                  const void* d_o, void* dq, void* dk, void* dv, const AttentionShape& s, float scale,
                                  bool causal) = 0;
  virtual void split_heads(const void* qkv, void* q, void* k, void* v, const HeadsShape& s) = 0;
  virtual void split_heads_backward(const void* dq, const void* dk, const void* dv, void* dqkv, const HeadsShape& s) = 0;
  virtual void merge_heads(const void* o, void* cat, const HeadsShape& s) = 0;
  virtual void merge_heads_backward(const void* dcat, void* d_o, const HeadsShape& s) = 0;

  // ---- patches and embeddings (embeddings.h) ----
  // patchify reads an f32 image (a model input, or the gradient of an output) and writes compute
  // tokens; unpatchify reads compute tokens and writes an f32 image (a model output).
  virtual void patchify(const float* image, void* tokens, const PatchShape& s, PatchOrder order) = 0;
  virtual void unpatchify(const void* tokens, float* image, const PatchShape& s, PatchOrder order) = 0;
  virtual void timestep_features(const float* time, int64_t time_stride, int64_t batch, float time_scale, int64_t dim,
                                 float max_period, void* out) = 0;
  virtual void embedding_forward(const void* table, const int32_t* index, void* out, int64_t batch, int64_t dim) = 0;
  virtual void embedding_backward(const void* dout, const int32_t* index, float* dtable, int64_t batch, int64_t dim) = 0;

  // ---- the masked per-stage loss (loss.h): returns L_s; dg (nullable) = grad_weight * dL_s/dg ----
  virtual double masked_mse(const float* g, const float* v, const float* weight, int64_t weight_stride, int64_t batch,
                            int64_t n, float* dg, float grad_weight) = 0;

  // ---- the optimiser over the single parameter buffer (optimizer.h) ----
  virtual double grad_norm(const float* g, int64_t n) = 0;
  // AdamW with the gradient scaled by grad_scale, then (when ema) the EMA; when p_compute is given
  // (a mixed-precision policy) the new weights are also written there in the compute type.
  virtual void adamw_update(float* p, const float* g, float* m, float* v, int64_t n, int64_t step, double lr,
                            const AdamWOptions& o, float grad_scale, float* ema, void* p_compute) = 0;

  // ---- pyramid transforms (pyramid.h), f32; workspace has s.workspace_floats() floats ----
  virtual void pyramid_decompose(PyramidKind kind, const float* image, float* const* levels, float* workspace,
                                 const PyramidShape& s) = 0;
  virtual void pyramid_preview(PyramidKind kind, const float* const* levels, int up_to, float* image, float* workspace,
                               const PyramidShape& s) = 0;

  // ---- the flow's elementwise updates over grouped rows (integrator.h), f32 ----
  virtual void flow_euler_update(const GroupedRows& l, const float* x, const float* v, const float* dt, float* out) = 0;
  virtual void flow_heun_update(const GroupedRows& l, const float* x, const float* v1, const float* v2, const float* dt,
                                float* out) = 0;
  virtual void guidance_combine(const GroupedRows& l, const float* v_cond, const float* v_uncond, float w,
                                float* out) = 0;
  virtual void flow_noising(const GroupedRows& l, const float* clean, const float* t, float* noisy, float* target) = 0;
  // out = coef_row * (a - b), b nullable (zero); out may alias a
  virtual void scaled_difference(const GroupedRows& l, const float* a, const float* b, const float* coef,
                                 float* out) = 0;
};

// The backend of a device computing in `compute`: the CPU's (f32 only) always; a CUDA device's (f32 or
// bf16) when the CUDA backend library is present and the device usable, otherwise Code::Device
// saying why. Backends live as long as the process.
Ops& ops_for(Device device, DType compute);
// What a device computes in unless told otherwise: f32 on the CPU, bf16 on a CUDA device.
DType default_compute(Device device);
Ops& cpu_ops();

}  // namespace df

#include "dit.h"

#include <unistd.h>

#include <cmath>
#include <cstring>

#include "../core/error.h"
#include "../core/philox.h"
#include "../core/threadpool.h"
#include "../ops/activations.h"
#include "../ops/attention.h"
#include "../ops/embeddings.h"
#include "../ops/linear.h"
#include "../ops/loss.h"
#include "../ops/norm.h"

namespace df {

namespace {

// [B, N, 3, H, hd] (the qkv linear's output) -> q, k, v [B, H, N, hd] (the attention op's layout).
void split_heads(const float* qkv, float* q, float* k, float* v, int64_t B, int64_t N, int64_t H, int64_t hd) {
  const int64_t D = H * hd;
  parallel_for(B * N, 16, [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; r++) {
      int64_t b = r / N, n = r % N;
      float* dst[3] = {q, k, v};
      for (int w = 0; w < 3; w++)
        for (int64_t h = 0; h < H; h++)
          std::memcpy(dst[w] + ((b * H + h) * N + n) * hd, qkv + (r * 3 + w) * D + h * hd, size_t(hd) * sizeof(float));
    }
  });
}

// The adjoint of split_heads: dq, dk, dv [B, H, N, hd] -> dqkv [B, N, 3, H, hd].
void split_heads_backward(const float* dq, const float* dk, const float* dv, float* dqkv, int64_t B, int64_t N,
                          int64_t H, int64_t hd) {
  const int64_t D = H * hd;
  parallel_for(B * N, 16, [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; r++) {
      int64_t b = r / N, n = r % N;
      const float* src[3] = {dq, dk, dv};
      for (int w = 0; w < 3; w++)
        for (int64_t h = 0; h < H; h++)
          std::memcpy(dqkv + (r * 3 + w) * D + h * hd, src[w] + ((b * H + h) * N + n) * hd, size_t(hd) * sizeof(float));
    }
  });
}

// o [B, H, N, hd] -> [B, N, H * hd] (heads concatenated per token); `inverse` goes back.
void merge_heads(const float* src, float* dst, int64_t B, int64_t N, int64_t H, int64_t hd, bool inverse) {
  const int64_t D = H * hd;
  parallel_for(B * N, 16, [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; r++) {
      int64_t b = r / N, n = r % N;
      for (int64_t h = 0; h < H; h++) {
        int64_t head = ((b * H + h) * N + n) * hd, tok = r * D + h * hd;
        if (inverse) std::memcpy(dst + head, src + tok, size_t(hd) * sizeof(float));
        else std::memcpy(dst + tok, src + head, size_t(hd) * sizeof(float));
      }
    }
  });
}

}  // namespace

int64_t DiT::add_param(const std::string& name, const Shape& shape, ParamInit init, int64_t fan_in, int64_t fan_out) {
  ParamInfo p;
  p.name = name;
  p.shape = shape;
  p.numel = checked_numel(shape, DType::F32, name.c_str());
  p.offset = num_params_;
  p.init = init;
  p.fan_in = fan_in;
  p.fan_out = fan_out;
  num_params_ += p.numel;
  params_.push_back(p);
  return p.offset;
}

DiT::Slot DiT::slot(int64_t floats) {
  Slot s;
  s.offset = arena_floats_;
  // 16-float (64-byte) alignment for every region.
  arena_floats_ += (floats + 15) / 16 * 16;
  return s;
}

const ParamInfo* DiT::find_param(const std::string& name) const {
  for (const auto& p : params_)
    if (p.name == name) return &p;
  return nullptr;
}

DiT::DiT(const DiTConfig& config, int64_t max_batch, DiTUse use)
    : cfg_(config), max_batch_(max_batch), training_(use == DiTUse::Training) {
  cfg_.validate();
  if (max_batch < 1 || max_batch > (1 << 20))
    fail(Code::ArgValue, "model: maxBatch: expected an integer from 1 to 1048576, got " + std::to_string(max_batch));
  const int64_t S = cfg_.stages, C = cfg_.channels, D = cfg_.hidden, M = cfg_.mlp_hidden(), F = cfg_.freq_dim;
  const int64_t N = cfg_.tokens(), Bm = max_batch, R = Bm * N, hd = cfg_.head_dim(), H = cfg_.heads;

  // Parameters, in the reference's state_dict order.
  stage_params_.resize(size_t(S));
  for (int64_t s = 0; s < S; s++) {
    int64_t p = cfg_.patch_sizes[size_t(s)];
    std::string pre = "x_embedders." + std::to_string(s) + ".proj.";
    stage_params_[size_t(s)].embed_w = add_param(pre + "weight", {D, C, p, p}, ParamInit::Xavier, C * p * p, D);
    stage_params_[size_t(s)].embed_b = add_param(pre + "bias", {D}, ParamInit::Zero);
  }
  for (int64_t s = 0; s < S; s++) {
    std::string pre = "t_embedders." + std::to_string(s) + ".mlp.";
    stage_params_[size_t(s)].t0_w = add_param(pre + "0.weight", {D, F}, ParamInit::Normal);
    stage_params_[size_t(s)].t0_b = add_param(pre + "0.bias", {D}, ParamInit::Zero);
    stage_params_[size_t(s)].t2_w = add_param(pre + "2.weight", {D, D}, ParamInit::Normal);
    stage_params_[size_t(s)].t2_b = add_param(pre + "2.bias", {D}, ParamInit::Zero);
  }
  if (cfg_.num_classes > 0)
    y_table_ = add_param("y_embedder.embedding_table.weight", {cfg_.num_classes + 1, D}, ParamInit::Normal);
  if (cfg_.stage_embedding) s_table_ = add_param("s_embedder.embedding_table.weight", {S, D}, ParamInit::Normal);
  for (int64_t i = 0; i < cfg_.depth; i++) {
    std::string pre = "blocks." + std::to_string(i) + ".";
    BlockParams b;
    b.qkv_w = add_param(pre + "attn.qkv.weight", {3 * D, D}, ParamInit::Xavier, D, 3 * D);
    b.qkv_b = add_param(pre + "attn.qkv.bias", {3 * D}, ParamInit::Zero);
    b.proj_w = add_param(pre + "attn.proj.weight", {D, D}, ParamInit::Xavier, D, D);
    b.proj_b = add_param(pre + "attn.proj.bias", {D}, ParamInit::Zero);
    b.fc1_w = add_param(pre + "mlp.fc1.weight", {M, D}, ParamInit::Xavier, D, M);
    b.fc1_b = add_param(pre + "mlp.fc1.bias", {M}, ParamInit::Zero);
    b.fc2_w = add_param(pre + "mlp.fc2.weight", {D, M}, ParamInit::Xavier, M, D);
    b.fc2_b = add_param(pre + "mlp.fc2.bias", {D}, ParamInit::Zero);
    b.ada_w = add_param(pre + "adaLN_modulation.1.weight", {6 * D, D}, ParamInit::Zero);
    b.ada_b = add_param(pre + "adaLN_modulation.1.bias", {6 * D}, ParamInit::Zero);
    block_params_.push_back(b);
  }
  for (int64_t s = 0; s < S; s++) {
    int64_t p = cfg_.patch_sizes[size_t(s)];
    std::string pre = "final_layers." + std::to_string(s) + ".";
    stage_params_[size_t(s)].fada_w = add_param(pre + "adaLN_modulation.1.weight", {2 * D, D}, ParamInit::Zero);
    stage_params_[size_t(s)].fada_b = add_param(pre + "adaLN_modulation.1.bias", {2 * D}, ParamInit::Zero);
    stage_params_[size_t(s)].flin_w = add_param(pre + "linear.weight", {p * p * C, D}, ParamInit::Zero);
    stage_params_[size_t(s)].flin_b = add_param(pre + "linear.bias", {p * p * C}, ParamInit::Zero);
  }

  // Activations (kept for backward) and scratch, all in one arena. A model for inference keeps no
  // activation past its use: all blocks share one set of regions (block i's output overwrites its
  // own input, which it no longer reads), and nothing of the backward is allocated.
  auto train_slot = [&](int64_t floats) { return training_ ? slot(floats) : Slot{}; };
  int64_t max_td = 0;
  stage_acts_.resize(size_t(S));
  for (int64_t s = 0; s < S; s++) {
    int64_t td = C * cfg_.patch_sizes[size_t(s)] * cfg_.patch_sizes[size_t(s)];
    max_td = std::max(max_td, td);
    StageActs& a = stage_acts_[size_t(s)];
    a.patches = slot(R * td);
    a.tfeat = slot(Bm * F);
    a.th = slot(Bm * D);
    a.ta = slot(Bm * D);
    a.fmod = slot(Bm * 2 * D);
    a.fmean = slot(R);
    a.frstd = slot(R);
    a.fy = slot(R * D);
    a.fout = slot(R * td);
    a.out = slot(Bm * cfg_.stage_numel(s));
    a.dout = train_slot(Bm * cfg_.stage_numel(s));
  }
  pos_ = slot(N * D);
  c_ = slot(Bm * D);
  silu_c_ = slot(Bm * D);
  tmp_td_ = slot(R * D);
  qkv_tmp_ = slot(R * 3 * D);
  for (int64_t i = 0; i < cfg_.depth; i++) {
    if (!training_ && i > 0) {
      block_acts_.push_back(block_acts_[0]);
      continue;
    }
    BlockActs a;
    a.x_in = slot(R * D);
    a.mean1 = slot(R);
    a.rstd1 = slot(R);
    a.xmod1 = slot(R * D);
    a.q = slot(R * D);
    a.k = slot(R * D);
    a.v = slot(R * D);
    a.o = slot(R * D);
    a.lse = slot(Bm * H * N);
    a.attn_cat = slot(R * D);
    a.proj_out = slot(R * D);
    a.x_mid = slot(R * D);
    a.mean2 = slot(R);
    a.rstd2 = slot(R);
    a.xmod2 = slot(R * D);
    a.h = slot(R * M);
    a.gelu = slot(R * M);
    a.fc2_out = slot(R * D);
    a.mod = slot(Bm * 6 * D);
    block_acts_.push_back(a);
  }
  x_final_ = slot(R * D);
  dx_ = train_slot(R * D);
  dtmp_ = train_slot(R * D);
  dattn_ = train_slot(R * D);
  dqkv_ = train_slot(R * 3 * D);
  dq_ = train_slot(R * D);
  dk_ = train_slot(R * D);
  dv_ = train_slot(R * D);
  do_ = train_slot(R * D);
  dh_ = train_slot(R * M);
  dmod_ = train_slot(Bm * 6 * D);
  dsilu_c_ = train_slot(Bm * D);
  dc_ = train_slot(Bm * D);
  dfout_ = train_slot(R * max_td);
  dfy_ = train_slot(R * D);
  dbd_ = slot(Bm * D);  // also the forward's scratch for the conditioning sums
  dbd2_ = train_slot(Bm * D);
  (void)hd;
  // Refuse what cannot fit instead of letting the first touch of an overcommitted mapping kill the
  // process: parameters, gradients, optimiser state (3 more copies) and activations; for inference
  // the parameters and the activations.
  double need = 4.0 * ((training_ ? 5.0 : 1.0) * double(num_params_) + double(arena_floats_));
  double phys = double(sysconf(_SC_PHYS_PAGES)) * double(sysconf(_SC_PAGESIZE));
  if (phys > 0 && need > phys)
    fail(Code::OutOfMemory, "model: config and maxBatch " + std::to_string(max_batch) + " need " +
                                std::to_string(int64_t(need / 1048576)) + " MiB, more than the machine's " +
                                std::to_string(int64_t(phys / 1048576)) + " MiB");
  weights_ = Tensor::zeros({num_params_}, DType::F32);
  if (training_) grads_ = Tensor::zeros({num_params_}, DType::F32);
  arena_ = Tensor::zeros({arena_floats_}, DType::F32);
  if (cfg_.pos_embedding) sincos_pos_embed_2d(A(pos_), cfg_.grid_h(), cfg_.grid_w(), D);
  active_stage_.resize(size_t(Bm));
  mask_.resize(size_t(Bm * S));
  time_.resize(size_t(Bm * S));
  labels_.resize(size_t(Bm));
  stage_loss_.resize(size_t(S));
}

void DiT::init(uint64_t seed) {
  float* w = weights_.data<float>();
  for (size_t i = 0; i < params_.size(); i++) {
    const ParamInfo& p = params_[i];
    float* dst = w + p.offset;
    RandomStream rng{seed, uint64_t(i)};
    switch (p.init) {
      case ParamInit::Zero:
        std::memset(dst, 0, size_t(p.numel) * sizeof(float));
        break;
      case ParamInit::Normal:
        rng.fill_normal(dst, p.numel);
        for (int64_t j = 0; j < p.numel; j++) dst[j] *= 0.02f;
        break;
      case ParamInit::Xavier: {
        // U(-a, a) with a = sqrt(6 / (fan_in + fan_out)); uniform_from_u32 gives (0, 1].
        float a = float(std::sqrt(6.0 / double(p.fan_in + p.fan_out)));
        rng.fill_uniform(dst, p.numel);
        for (int64_t j = 0; j < p.numel; j++) dst[j] = (2.f * dst[j] - 1.f) * a;
        break;
      }
    }
  }
}

void DiT::validate_batch(const DiTBatch& b) const {
  const int64_t S = cfg_.stages;
  if (b.batch < 1 || b.batch > max_batch_)
    fail(Code::Shape, "model: batch: expected 1 to maxBatch = " + std::to_string(max_batch_) + " samples, got " +
                          std::to_string(b.batch));
  if (int64_t(b.x.size()) != S)
    fail(Code::Shape, "model: x: expected one input per stage (" + std::to_string(S) + "), got " + std::to_string(b.x.size()));
  for (int64_t i = 0; i < b.batch * S; i++) {
    if (!std::isfinite(b.time[i]))
      fail(Code::NonFinite, "model: t: expected finite times, got " + std::to_string(b.time[i]) + " at " + std::to_string(i));
    if (b.mask && b.mask[i] != 0.f && b.mask[i] != 1.f)
      fail(Code::ArgValue, "model: mask: expected 0 or 1, got " + std::to_string(b.mask[i]) + " at " + std::to_string(i));
  }
  if (cfg_.num_classes > 0) {
    if (!b.labels) fail(Code::ArgValue, "model: labels: required by a class-conditional model (numClasses > 0)");
    for (int64_t i = 0; i < b.batch; i++)
      if (b.labels[i] < 0 || b.labels[i] > cfg_.num_classes)
        fail(Code::ArgValue, "model: labels[" + std::to_string(i) + "]: expected a class from 0 to " +
                                 std::to_string(cfg_.num_classes) + " (the null class), got " + std::to_string(b.labels[i]));
  }
}

const float* DiT::output(int64_t s) const {
  return arena_.data<float>() + stage_acts_[size_t(s)].out.offset;
}

void DiT::forward(const DiTBatch& in) {
  validate_batch(in);
  const int64_t S = cfg_.stages, C = cfg_.channels, D = cfg_.hidden, M = cfg_.mlp_hidden(), F = cfg_.freq_dim;
  const int64_t B = in.batch, N = cfg_.tokens(), R = B * N, H = cfg_.heads, hd = cfg_.head_dim();
  batch_ = B;
  for (int64_t i = 0; i < B * S; i++) {
    mask_[size_t(i)] = in.mask ? in.mask[i] : 1.f;
    time_[size_t(i)] = in.time[i];
  }
  for (int64_t b = 0; b < B; b++) {
    int32_t q = 0;
    for (int64_t s = 0; s < S; s++)
      if (mask_[size_t(b * S + s)] != 0.f) q = int32_t(s);
    active_stage_[size_t(b)] = q;
    labels_[size_t(b)] = cfg_.num_classes > 0 ? in.labels[b] : 0;
  }

  // Tokens: the position embedding plus each unmasked stage's patch embedding.
  float* x = A(block_acts_[0].x_in);
  if (cfg_.pos_embedding)
    for (int64_t b = 0; b < B; b++) std::memcpy(x + b * N * D, A(pos_), size_t(N * D) * sizeof(float));
  else
    std::memset(x, 0, size_t(R * D) * sizeof(float));
  float* tmp = A(tmp_td_);
  for (int64_t s = 0; s < S; s++) {
    const StageParams& sp = stage_params_[size_t(s)];
    StageActs& sa = stage_acts_[size_t(s)];
    int64_t p = cfg_.patch_sizes[size_t(s)];
    PatchShape ps{B, C, cfg_.stage_height(s), cfg_.stage_width(s), p};
    patchify(in.x[size_t(s)], A(sa.patches), ps, PatchOrder::ChannelFirst);
    linear_forward(A(sa.patches), P(sp.embed_w), P(sp.embed_b), tmp, {R, ps.token_dim(), D});
    parallel_for(R, 16, [&](int64_t lo, int64_t hi) {
      for (int64_t r = lo; r < hi; r++) {
        float m = mask_[size_t((r / N) * S + s)];
        if (m != 0.f)
          for (int64_t d = 0; d < D; d++) x[r * D + d] += m * tmp[r * D + d];
      }
    });
  }

  // Conditioning c = sum_s TimestepEmbed_s(t_s) + class + active stage; the blocks see SiLU(c).
  float* c = A(c_);
  std::memset(c, 0, size_t(B * D) * sizeof(float));
  for (int64_t s = 0; s < S; s++) {
    const StageParams& sp = stage_params_[size_t(s)];
    StageActs& sa = stage_acts_[size_t(s)];
    timestep_features(time_.data() + s, S, B, float(cfg_.time_scale), F, 10000.f, A(sa.tfeat));
    linear_forward(A(sa.tfeat), P(sp.t0_w), P(sp.t0_b), A(sa.th), {B, F, D});
    silu_forward(A(sa.th), A(sa.ta), B * D);
    linear_forward(A(sa.ta), P(sp.t2_w), P(sp.t2_b), A(dbd_), {B, D, D});
    for (int64_t i = 0; i < B * D; i++) c[i] += A(dbd_)[i];
  }
  if (y_table_ >= 0) {
    embedding_forward(P(y_table_), labels_.data(), A(dbd_), B, D);
    for (int64_t i = 0; i < B * D; i++) c[i] += A(dbd_)[i];
  }
  if (s_table_ >= 0) {
    embedding_forward(P(s_table_), active_stage_.data(), A(dbd_), B, D);
    for (int64_t i = 0; i < B * D; i++) c[i] += A(dbd_)[i];
  }
  silu_forward(c, A(silu_c_), B * D);

  AttentionShape ash{B, H, N, N, hd};
  const float scale = 1.f / std::sqrt(float(hd));
  for (int64_t i = 0; i < cfg_.depth; i++) {
    const BlockParams& bp = block_params_[size_t(i)];
    BlockActs& a = block_acts_[size_t(i)];
    float* mod = A(a.mod);
    linear_forward(A(silu_c_), P(bp.ada_w), P(bp.ada_b), mod, {B, D, 6 * D});
    ModulatedNormShape ns{B, N, D, 6 * D, 1e-6f};
    // Attention half: x_mid = x + gate_msa * proj(attn(modulate(norm(x), shift_msa, scale_msa))).
    layernorm_modulate_forward(A(a.x_in), mod, mod + D, A(a.xmod1), A(a.mean1), A(a.rstd1), ns);
    linear_forward(A(a.xmod1), P(bp.qkv_w), P(bp.qkv_b), A(qkv_tmp_), {R, D, 3 * D});
    split_heads(A(qkv_tmp_), A(a.q), A(a.k), A(a.v), B, N, H, hd);
    attention_forward(A(a.q), A(a.k), A(a.v), A(a.o), A(a.lse), ash, scale, false);
    merge_heads(A(a.o), A(a.attn_cat), B, N, H, hd, false);
    linear_forward(A(a.attn_cat), P(bp.proj_w), P(bp.proj_b), A(a.proj_out), {R, D, D});
    gated_residual_forward(A(a.x_in), A(a.proj_out), mod + 2 * D, A(a.x_mid), ns);
    // MLP half: x_out = x_mid + gate_mlp * fc2(gelu(fc1(modulate(norm(x_mid), shift_mlp, scale_mlp)))).
    layernorm_modulate_forward(A(a.x_mid), mod + 3 * D, mod + 4 * D, A(a.xmod2), A(a.mean2), A(a.rstd2), ns);
    linear_forward(A(a.xmod2), P(bp.fc1_w), P(bp.fc1_b), A(a.h), {R, D, M});
    gelu_tanh_forward(A(a.h), A(a.gelu), R * M);
    linear_forward(A(a.gelu), P(bp.fc2_w), P(bp.fc2_b), A(a.fc2_out), {R, M, D});
    float* x_out = i + 1 < cfg_.depth ? A(block_acts_[size_t(i + 1)].x_in) : A(x_final_);
    gated_residual_forward(A(a.x_mid), A(a.fc2_out), mod + 5 * D, x_out, ns);
  }

  // Per-stage final layers: adaLN (shift, scale), linear to p*p*C per token, unpatchify.
  for (int64_t s = 0; s < S; s++) {
    const StageParams& sp = stage_params_[size_t(s)];
    StageActs& sa = stage_acts_[size_t(s)];
    int64_t p = cfg_.patch_sizes[size_t(s)];
    PatchShape ps{B, C, cfg_.stage_height(s), cfg_.stage_width(s), p};
    float* fmod = A(sa.fmod);
    linear_forward(A(silu_c_), P(sp.fada_w), P(sp.fada_b), fmod, {B, D, 2 * D});
    ModulatedNormShape ns{B, N, D, 2 * D, 1e-6f};
    layernorm_modulate_forward(A(x_final_), fmod, fmod + D, A(sa.fy), A(sa.fmean), A(sa.frstd), ns);
    linear_forward(A(sa.fy), P(sp.flin_w), P(sp.flin_b), A(sa.fout), {R, D, ps.token_dim()});
    unpatchify(A(sa.fout), A(sa.out), ps, PatchOrder::ChannelLast);
  }
  have_forward_ = true;
}

double DiT::loss(const std::vector<const float*>& targets, bool with_backward, const std::vector<double>* stage_weights) {
  if (!have_forward_) fail(Code::ArgValue, "model: loss: call forward first");
  if (with_backward && !training_) fail(Code::ArgValue, "model: loss: backward needs a model built for training");
  const int64_t S = cfg_.stages, B = batch_;
  if (int64_t(targets.size()) != S)
    fail(Code::Shape, "model: targets: expected one per stage (" + std::to_string(S) + "), got " +
                          std::to_string(targets.size()));
  if (stage_weights && int64_t(stage_weights->size()) != S)
    fail(Code::Shape, "model: stage weights: expected one per stage (" + std::to_string(S) + "), got " +
                          std::to_string(stage_weights->size()));
  double total = 0;
  for (int64_t s = 0; s < S; s++) {
    StageActs& sa = stage_acts_[size_t(s)];
    const int64_t n = cfg_.stage_numel(s);
    double l = masked_mse_forward_backward(A(sa.out), targets[size_t(s)], mask_.data() + s, S, B, n,
                                           with_backward ? A(sa.dout) : nullptr);
    stage_loss_[size_t(s)] = l;
    const double w = stage_weights ? (*stage_weights)[size_t(s)] : 1.0;
    total += w * l;
    if (with_backward && w != 1.0) {  // d(w l)/dG = w dl/dG
      float* d = A(sa.dout);
      const float wf = float(w);
      for (int64_t i = 0; i < B * n; i++) d[i] *= wf;
    }
  }
  if (with_backward) backward();
  return total;
}

void DiT::backward() {
  const int64_t S = cfg_.stages, C = cfg_.channels, D = cfg_.hidden, M = cfg_.mlp_hidden(), F = cfg_.freq_dim;
  const int64_t B = batch_, N = cfg_.tokens(), R = B * N, H = cfg_.heads, hd = cfg_.head_dim();
  // Every linear writes its parameters' gradients exactly once (overwrite, no zeroing pass); only
  // the embedding tables, whose rows accumulate, start from zero.
  if (y_table_ >= 0) std::memset(G(y_table_), 0, size_t((cfg_.num_classes + 1) * D) * sizeof(float));
  if (s_table_ >= 0) std::memset(G(s_table_), 0, size_t(S * D) * sizeof(float));
  float* dx = A(dx_);
  float* dsilu_c = A(dsilu_c_);

  // Final layers: each stage's output gradient flows into the last residual stream and into SiLU(c).
  for (int64_t s = 0; s < S; s++) {
    const StageParams& sp = stage_params_[size_t(s)];
    StageActs& sa = stage_acts_[size_t(s)];
    int64_t p = cfg_.patch_sizes[size_t(s)];
    PatchShape ps{B, C, cfg_.stage_height(s), cfg_.stage_width(s), p};
    float* fmod = A(sa.fmod);
    float* dfmod = A(dmod_);
    patchify(A(sa.dout), A(dfout_), ps, PatchOrder::ChannelLast);
    linear_backward(A(sa.fy), P(sp.flin_w), A(dfout_), A(dfy_), G(sp.flin_w), G(sp.flin_b), {R, D, ps.token_dim()}, false, false);
    ModulatedNormShape ns{B, N, D, 2 * D, 1e-6f};
    layernorm_modulate_backward(A(x_final_), fmod + D, A(sa.fmean), A(sa.frstd), A(dfy_), dx, dfmod, dfmod + D, ns,
                                s > 0);
    linear_backward(A(silu_c_), P(sp.fada_w), dfmod, dsilu_c, G(sp.fada_w), G(sp.fada_b), {B, D, 2 * D}, s > 0, false);
  }

  AttentionShape ash{B, H, N, N, hd};
  const float scale = 1.f / std::sqrt(float(hd));
  for (int64_t i = cfg_.depth - 1; i >= 0; i--) {
    const BlockParams& bp = block_params_[size_t(i)];
    BlockActs& a = block_acts_[size_t(i)];
    float* mod = A(a.mod);
    float* dmod = A(dmod_);
    ModulatedNormShape ns{B, N, D, 6 * D, 1e-6f};
    // MLP half; dx holds dL/dx_out and becomes dL/dx_mid in place.
    gated_residual_backward(A(a.fc2_out), mod + 5 * D, dx, A(dtmp_), dmod + 5 * D, ns);
    linear_backward(A(a.gelu), P(bp.fc2_w), A(dtmp_), A(dh_), G(bp.fc2_w), G(bp.fc2_b), {R, M, D}, false, false);
    gelu_tanh_backward(A(a.h), A(dh_), A(dh_), R * M);
    linear_backward(A(a.xmod2), P(bp.fc1_w), A(dh_), A(dattn_), G(bp.fc1_w), G(bp.fc1_b), {R, D, M}, false, false);
    layernorm_modulate_backward(A(a.x_mid), mod + 4 * D, A(a.mean2), A(a.rstd2), A(dattn_), dx, dmod + 3 * D,
                                dmod + 4 * D, ns, true);
    // Attention half; dx becomes dL/dx_in.
    gated_residual_backward(A(a.proj_out), mod + 2 * D, dx, A(dtmp_), dmod + 2 * D, ns);
    linear_backward(A(a.attn_cat), P(bp.proj_w), A(dtmp_), A(dattn_), G(bp.proj_w), G(bp.proj_b), {R, D, D}, false, false);
    merge_heads(A(dattn_), A(do_), B, N, H, hd, true);
    attention_backward(A(a.q), A(a.k), A(a.v), A(a.o), A(a.lse), A(do_), A(dq_), A(dk_), A(dv_), ash, scale, false);
    split_heads_backward(A(dq_), A(dk_), A(dv_), A(dqkv_), B, N, H, hd);
    linear_backward(A(a.xmod1), P(bp.qkv_w), A(dqkv_), A(dattn_), G(bp.qkv_w), G(bp.qkv_b), {R, D, 3 * D}, false, false);
    layernorm_modulate_backward(A(a.x_in), mod + D, A(a.mean1), A(a.rstd1), A(dattn_), dx, dmod, dmod + D, ns, true);
    // The block's modulation came from SiLU(c).
    linear_backward(A(silu_c_), P(bp.ada_w), dmod, dsilu_c, G(bp.ada_w), G(bp.ada_b), {B, D, 6 * D}, true, false);
  }

  // Patch embeddings: a masked stage received no gradient.
  float* dtok = A(dtmp_);
  for (int64_t s = 0; s < S; s++) {
    const StageParams& sp = stage_params_[size_t(s)];
    StageActs& sa = stage_acts_[size_t(s)];
    int64_t td = C * cfg_.patch_sizes[size_t(s)] * cfg_.patch_sizes[size_t(s)];
    parallel_for(R, 16, [&](int64_t lo, int64_t hi) {
      for (int64_t r = lo; r < hi; r++) {
        float m = mask_[size_t((r / N) * S + s)];
        for (int64_t d = 0; d < D; d++) dtok[r * D + d] = m * dx[r * D + d];
      }
    });
    linear_backward(A(sa.patches), P(sp.embed_w), dtok, nullptr, G(sp.embed_w), G(sp.embed_b), {R, td, D}, false, false);
  }

  // Conditioning.
  float* dc = A(dc_);
  silu_backward(A(c_), dsilu_c, dc, B * D);
  for (int64_t s = 0; s < S; s++) {
    const StageParams& sp = stage_params_[size_t(s)];
    StageActs& sa = stage_acts_[size_t(s)];
    linear_backward(A(sa.ta), P(sp.t2_w), dc, A(dbd_), G(sp.t2_w), G(sp.t2_b), {B, D, D}, false, false);
    silu_backward(A(sa.th), A(dbd_), A(dbd2_), B * D);
    linear_backward(A(sa.tfeat), P(sp.t0_w), A(dbd2_), nullptr, G(sp.t0_w), G(sp.t0_b), {B, F, D}, false, false);
  }
  if (y_table_ >= 0) embedding_backward(dc, labels_.data(), G(y_table_), B, D);
  if (s_table_ >= 0) embedding_backward(dc, active_stage_.data(), G(s_table_), B, D);
}

}  // namespace df

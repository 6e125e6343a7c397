#include "dit.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "../core/error.h"
#include "../core/philox.h"

namespace df {

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

DiT::Slot DiT::slot(int64_t elements, DType dtype) {
  Slot s;
  s.offset = arena_bytes_;
  // 64-byte alignment for every region.
  arena_bytes_ += (elements * int64_t(dtype_size(dtype)) + 63) / 64 * 64;
  return s;
}

const void* DiT::W(int64_t offset) const {
  if (compute_weights_.defined()) return compute_weights_.data<char>() + offset * csize_;
  return weights_.data<float>() + offset;
}

void DiT::weights_changed() {
  if (compute_weights_.defined()) ops_.convert(weights_.raw(), DType::F32, compute_weights_.raw(), compute_, num_params_);
}

const ParamInfo* DiT::find_param(const std::string& name) const {
  for (const auto& p : params_)
    if (p.name == name) return &p;
  return nullptr;
}

DiT::DiT(const DiTConfig& config, int64_t max_batch, DiTUse use, Ops& ops)
    : cfg_(config),
      max_batch_(max_batch),
      training_(use == DiTUse::Training),
      ops_(ops),
      compute_(ops_.policy().compute),
      csize_(int64_t(dtype_size(compute_))) {
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
  const DType c = compute_, f32 = DType::F32;
  auto train_slot = [&](int64_t elements, DType dtype) { return training_ ? slot(elements, dtype) : Slot{}; };
  int64_t max_td = 0;
  stage_acts_.resize(size_t(S));
  for (int64_t s = 0; s < S; s++) {
    int64_t td = C * cfg_.patch_sizes[size_t(s)] * cfg_.patch_sizes[size_t(s)];
    max_td = std::max(max_td, td);
    StageActs& a = stage_acts_[size_t(s)];
    a.patches = slot(R * td, c);
    a.tfeat = slot(Bm * F, c);
    a.th = slot(Bm * D, c);
    a.ta = slot(Bm * D, c);
    a.fmod = slot(Bm * 2 * D, c);
    a.fmean = slot(R, f32);
    a.frstd = slot(R, f32);
    a.fy = slot(R * D, c);
    a.fout = slot(R * td, c);
    a.out = slot(Bm * cfg_.stage_numel(s), f32);
    a.dout = train_slot(Bm * cfg_.stage_numel(s), f32);
  }
  pos_ = slot(N * D, f32);
  c_ = slot(Bm * D, c);
  silu_c_ = slot(Bm * D, c);
  tmp_td_ = slot(R * D, c);
  qkv_tmp_ = slot(R * 3 * D, c);
  for (int64_t i = 0; i < cfg_.depth; i++) {
    if (!training_ && i > 0) {
      block_acts_.push_back(block_acts_[0]);
      continue;
    }
    BlockActs a;
    a.x_in = slot(R * D, f32);
    a.mean1 = slot(R, f32);
    a.rstd1 = slot(R, f32);
    a.xmod1 = slot(R * D, c);
    a.q = slot(R * D, c);
    a.k = slot(R * D, c);
    a.v = slot(R * D, c);
    a.o = slot(R * D, c);
    a.lse = slot(Bm * H * N, f32);
    a.attn_cat = slot(R * D, c);
    a.proj_out = slot(R * D, c);
    a.x_mid = slot(R * D, f32);
    a.mean2 = slot(R, f32);
    a.rstd2 = slot(R, f32);
    a.xmod2 = slot(R * D, c);
    a.h = slot(R * M, c);
    a.gelu = slot(R * M, c);
    a.fc2_out = slot(R * D, c);
    a.mod = slot(Bm * 6 * D, c);
    block_acts_.push_back(a);
  }
  x_final_ = slot(R * D, f32);
  dx_ = train_slot(R * D, f32);
  dtmp_ = train_slot(R * D, c);
  dattn_ = train_slot(R * D, c);
  dqkv_ = train_slot(R * 3 * D, c);
  dq_ = train_slot(R * D, c);
  dk_ = train_slot(R * D, c);
  dv_ = train_slot(R * D, c);
  do_ = train_slot(R * D, c);
  dh_ = train_slot(R * M, c);
  dmod_ = train_slot(Bm * 6 * D, c);
  dsilu_c_ = train_slot(Bm * D, c);
  dc_ = train_slot(Bm * D, c);
  dfout_ = train_slot(R * max_td, c);
  dfy_ = train_slot(R * D, c);
  dbd_ = slot(Bm * D, c);  // also the forward's scratch for the conditioning sums
  dbd2_ = train_slot(Bm * D, c);
  (void)hd;
  // Refuse what cannot fit instead of letting the first touch of an overcommitted mapping kill the
  // process: parameters, gradients, optimiser state (3 more copies), a compute copy of the weights
  // and the activations; for inference the parameters and the activations.
  const double copies = (training_ ? 5.0 : 1.0) * 4.0 + (compute_ != DType::F32 ? double(csize_) : 0.0);
  const double need = copies * double(num_params_) + double(arena_bytes_);
  const double capacity = double(ops_.capacity_bytes());
  if (capacity > 0 && need > capacity)
    fail(Code::OutOfMemory, "model: config and maxBatch " + std::to_string(max_batch) + " need " +
                                std::to_string(int64_t(need / 1048576)) + " MiB, more than the " +
                                std::to_string(int64_t(capacity / 1048576)) + " MiB of " + ops_.device().name());
  const Device dev = ops_.device();
  weights_ = Tensor::zeros({num_params_}, DType::F32, dev);
  if (compute_ != DType::F32) compute_weights_ = Tensor::zeros({num_params_}, compute_, dev);
  if (training_) grads_ = Tensor::zeros({num_params_}, DType::F32, dev);
  arena_ = Tensor::zeros({(arena_bytes_ + 3) / 4}, DType::F32, dev);
  if (cfg_.pos_embedding) {
    std::vector<float> pos(size_t(N * D));
    sincos_pos_embed_2d(pos.data(), cfg_.grid_h(), cfg_.grid_w(), D);
    ops_.upload(A32(pos_), pos.data(), pos.size() * sizeof(float));
  }
  active_stage_.resize(size_t(Bm));
  mask_.resize(size_t(Bm * S));
  time_.resize(size_t(Bm * S));
  labels_.resize(size_t(Bm));
  time_dev_ = Tensor::zeros({Bm * S}, DType::F32, dev);
  mask_dev_ = Tensor::zeros({Bm * S}, DType::F32, dev);
  clean_scale_.resize(size_t(Bm * S));
  clean_scale_dev_ = Tensor::zeros({Bm * S}, DType::F32, dev);
  labels_dev_ = Tensor::zeros({Bm}, DType::I32, dev);
  active_dev_ = Tensor::zeros({Bm}, DType::I32, dev);
  stage_loss_.resize(size_t(S));
}

void DiT::init(uint64_t seed) {
  // Drawn on the host and uploaded: the same weights on every device.
  std::vector<float> host(static_cast<size_t>(num_params_));
  for (size_t i = 0; i < params_.size(); i++) {
    const ParamInfo& p = params_[i];
    float* dst = host.data() + p.offset;
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
  ops_.upload(weights_.raw(), host.data(), host.size() * sizeof(float));
  weights_changed();
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
  return reinterpret_cast<const float*>(arena_.data<char>() + stage_acts_[size_t(s)].out.offset);
}

void DiT::forward(const DiTBatch& in) {
  validate_batch(in);
  const int64_t S = cfg_.stages, C = cfg_.channels, D = cfg_.hidden, M = cfg_.mlp_hidden(), F = cfg_.freq_dim;
  const int64_t B = in.batch, N = cfg_.tokens(), R = B * N, H = cfg_.heads, hd = cfg_.head_dim();
  Ops& ops = ops_;
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
  const float* mask = mask_dev_.data<float>();
  const float* time = time_dev_.data<float>();
  const int32_t* labels = labels_dev_.data<int32_t>();
  const int32_t* active = active_dev_.data<int32_t>();
  ops.upload(mask_dev_.raw(), mask_.data(), size_t(B * S) * sizeof(float));
  ops.upload(time_dev_.raw(), time_.data(), size_t(B * S) * sizeof(float));
  if (cfg_.any_clean()) {
    for (int64_t i = 0; i < B * S; i++) clean_scale_[size_t(i)] = 1.f / std::max(1.f - time_[size_t(i)], float(cfg_.clean_min_gap));
    ops.upload(clean_scale_dev_.raw(), clean_scale_.data(), size_t(B * S) * sizeof(float));
  }
  ops.upload(labels_dev_.raw(), labels_.data(), size_t(B) * sizeof(int32_t));
  ops.upload(active_dev_.raw(), active_stage_.data(), size_t(B) * sizeof(int32_t));

  // Tokens (the f32 residual stream): the position embedding plus each unmasked stage's patch embedding.
  float* x = A32(block_acts_[0].x_in);
  if (cfg_.pos_embedding) ops.broadcast_rows(A32(pos_), x, B, N * D);
  else ops.zero(x, size_t(R * D) * sizeof(float));
  void* tmp = A(tmp_td_);
  for (int64_t s = 0; s < S; s++) {
    const StageParams& sp = stage_params_[size_t(s)];
    StageActs& sa = stage_acts_[size_t(s)];
    int64_t p = cfg_.patch_sizes[size_t(s)];
    PatchShape ps{B, C, cfg_.stage_height(s), cfg_.stage_width(s), p};
    ops.patchify(in.x[size_t(s)], A(sa.patches), ps, PatchOrder::ChannelFirst);
    ops.linear_forward(A(sa.patches), W(sp.embed_w), W(sp.embed_b), tmp, {R, ps.token_dim(), D});
    ops.add_scaled_rows(tmp, x, mask + s, {B, N * D, S});
  }

  // Conditioning c = sum_s TimestepEmbed_s(t_s) + class + active stage; the blocks see SiLU(c).
  void* c = A(c_);
  ops.zero(c, size_t(B * D * csize_));
  for (int64_t s = 0; s < S; s++) {
    const StageParams& sp = stage_params_[size_t(s)];
    StageActs& sa = stage_acts_[size_t(s)];
    ops.timestep_features(time + s, S, B, float(cfg_.time_scale), F, 10000.f, A(sa.tfeat));
    ops.linear_forward(A(sa.tfeat), W(sp.t0_w), W(sp.t0_b), A(sa.th), {B, F, D});
    ops.silu_forward(A(sa.th), A(sa.ta), B * D);
    ops.linear_forward(A(sa.ta), W(sp.t2_w), W(sp.t2_b), A(dbd_), {B, D, D});
    ops.add(A(dbd_), c, B * D);
  }
  if (y_table_ >= 0) {
    ops.embedding_forward(W(y_table_), labels, A(dbd_), B, D);
    ops.add(A(dbd_), c, B * D);
  }
  if (s_table_ >= 0) {
    ops.embedding_forward(W(s_table_), active, A(dbd_), B, D);
    ops.add(A(dbd_), c, B * D);
  }
  ops.silu_forward(c, A(silu_c_), B * D);

  AttentionShape ash{B, H, N, N, hd};
  HeadsShape hs{B, N, H, hd};
  const float scale = 1.f / std::sqrt(float(hd));
  for (int64_t i = 0; i < cfg_.depth; i++) {
    const BlockParams& bp = block_params_[size_t(i)];
    BlockActs& a = block_acts_[size_t(i)];
    ops.linear_forward(A(silu_c_), W(bp.ada_w), W(bp.ada_b), A(a.mod), {B, D, 6 * D});
    ModulatedNormShape ns{B, N, D, 6 * D, 1e-6f};
    // Attention half: x_mid = x + gate_msa * proj(attn(modulate(norm(x), shift_msa, scale_msa))).
    ops.layernorm_modulate_forward(A32(a.x_in), A(a.mod), A(a.mod, D), A(a.xmod1), A32(a.mean1), A32(a.rstd1), ns);
    ops.linear_forward(A(a.xmod1), W(bp.qkv_w), W(bp.qkv_b), A(qkv_tmp_), {R, D, 3 * D});
    ops.split_heads(A(qkv_tmp_), A(a.q), A(a.k), A(a.v), hs);
    ops.attention_forward(A(a.q), A(a.k), A(a.v), A(a.o), A32(a.lse), ash, scale, false);
    ops.merge_heads(A(a.o), A(a.attn_cat), hs);
    ops.linear_forward(A(a.attn_cat), W(bp.proj_w), W(bp.proj_b), A(a.proj_out), {R, D, D});
    ops.gated_residual_forward(A32(a.x_in), A(a.proj_out), A(a.mod, 2 * D), A32(a.x_mid), ns);
    // MLP half: x_out = x_mid + gate_mlp * fc2(gelu(fc1(modulate(norm(x_mid), shift_mlp, scale_mlp)))).
    ops.layernorm_modulate_forward(A32(a.x_mid), A(a.mod, 3 * D), A(a.mod, 4 * D), A(a.xmod2), A32(a.mean2), A32(a.rstd2), ns);
    ops.linear_forward(A(a.xmod2), W(bp.fc1_w), W(bp.fc1_b), A(a.h), {R, D, M});
    ops.gelu_tanh_forward(A(a.h), A(a.gelu), R * M);
    ops.linear_forward(A(a.gelu), W(bp.fc2_w), W(bp.fc2_b), A(a.fc2_out), {R, M, D});
    float* x_out = i + 1 < cfg_.depth ? A32(block_acts_[size_t(i + 1)].x_in) : A32(x_final_);
    ops.gated_residual_forward(A32(a.x_mid), A(a.fc2_out), A(a.mod, 5 * D), x_out, ns);
  }

  // Per-stage final layers: adaLN (shift, scale), linear to p*p*C per token, unpatchify.
  for (int64_t s = 0; s < S; s++) {
    const StageParams& sp = stage_params_[size_t(s)];
    StageActs& sa = stage_acts_[size_t(s)];
    int64_t p = cfg_.patch_sizes[size_t(s)];
    PatchShape ps{B, C, cfg_.stage_height(s), cfg_.stage_width(s), p};
    ops.linear_forward(A(silu_c_), W(sp.fada_w), W(sp.fada_b), A(sa.fmod), {B, D, 2 * D});
    ModulatedNormShape ns{B, N, D, 2 * D, 1e-6f};
    ops.layernorm_modulate_forward(A32(x_final_), A(sa.fmod), A(sa.fmod, D), A(sa.fy), A32(sa.fmean), A32(sa.frstd), ns);
    ops.linear_forward(A(sa.fy), W(sp.flin_w), W(sp.flin_b), A(sa.fout), {R, D, ps.token_dim()});
    ops.unpatchify(A(sa.fout), A32(sa.out), ps, PatchOrder::ChannelLast);
    // A clean-level prediction X^ becomes the velocity (X^ - x_t) / max(1 - t, gap).
    if (cfg_.predicts_clean(s))
      ops.scaled_difference(stage_rows(s), A32(sa.out), in.x[size_t(s)], clean_scale_dev_.data<float>() + s, A32(sa.out));
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
    const double w = stage_weights ? (*stage_weights)[size_t(s)] : 1.0;
    // d(w l)/dG = w dl/dG
    double l = ops_.masked_mse(A32(sa.out), targets[size_t(s)], mask_dev_.data<float>() + s, S, B, cfg_.stage_numel(s),
                               with_backward ? A32(sa.dout) : nullptr, float(w));
    stage_loss_[size_t(s)] = l;
    total += w * l;
  }
  if (with_backward) backward();
  return total;
}

void DiT::backward() {
  const int64_t S = cfg_.stages, C = cfg_.channels, D = cfg_.hidden, M = cfg_.mlp_hidden(), F = cfg_.freq_dim;
  const int64_t B = batch_, N = cfg_.tokens(), R = B * N, H = cfg_.heads, hd = cfg_.head_dim();
  Ops& ops = ops_;
  const float* mask = mask_dev_.data<float>();
  // Every linear writes its parameters' gradients exactly once (overwrite, no zeroing pass); only
  // the embedding tables, whose rows accumulate, start from zero.
  if (y_table_ >= 0) ops.zero(G(y_table_), size_t((cfg_.num_classes + 1) * D) * sizeof(float));
  if (s_table_ >= 0) ops.zero(G(s_table_), size_t(S * D) * sizeof(float));
  float* dx = A32(dx_);
  void* dsilu_c = A(dsilu_c_);

  // Final layers: each stage's output gradient flows into the last residual stream and into SiLU(c).
  for (int64_t s = 0; s < S; s++) {
    const StageParams& sp = stage_params_[size_t(s)];
    StageActs& sa = stage_acts_[size_t(s)];
    int64_t p = cfg_.patch_sizes[size_t(s)];
    PatchShape ps{B, C, cfg_.stage_height(s), cfg_.stage_width(s), p};
    void* dfmod = A(dmod_);
    if (cfg_.predicts_clean(s))  // dL/dX^ = dL/dv / max(1 - t, gap)
      ops.scaled_difference(stage_rows(s), A32(sa.dout), nullptr, clean_scale_dev_.data<float>() + s, A32(sa.dout));
    ops.patchify(A32(sa.dout), A(dfout_), ps, PatchOrder::ChannelLast);
    ops.linear_backward(A(sa.fy), W(sp.flin_w), A(dfout_), A(dfy_), G(sp.flin_w), G(sp.flin_b), {R, D, ps.token_dim()},
                        false, false);
    ModulatedNormShape ns{B, N, D, 2 * D, 1e-6f};
    ops.layernorm_modulate_backward(A32(x_final_), A(sa.fmod, D), A32(sa.fmean), A32(sa.frstd), A(dfy_), dx, dfmod,
                                    A(dmod_, D), ns, s > 0);
    ops.linear_backward(A(silu_c_), W(sp.fada_w), dfmod, dsilu_c, G(sp.fada_w), G(sp.fada_b), {B, D, 2 * D}, s > 0,
                        false);
  }

  AttentionShape ash{B, H, N, N, hd};
  HeadsShape hs{B, N, H, hd};
  const float scale = 1.f / std::sqrt(float(hd));
  for (int64_t i = cfg_.depth - 1; i >= 0; i--) {
    const BlockParams& bp = block_params_[size_t(i)];
    BlockActs& a = block_acts_[size_t(i)];
    ModulatedNormShape ns{B, N, D, 6 * D, 1e-6f};
    // MLP half; dx holds dL/dx_out and becomes dL/dx_mid in place.
    ops.gated_residual_backward(A(a.fc2_out), A(a.mod, 5 * D), dx, A(dtmp_), A(dmod_, 5 * D), ns);
    ops.linear_backward(A(a.gelu), W(bp.fc2_w), A(dtmp_), A(dh_), G(bp.fc2_w), G(bp.fc2_b), {R, M, D}, false, false);
    ops.gelu_tanh_backward(A(a.h), A(dh_), A(dh_), R * M, false);
    ops.linear_backward(A(a.xmod2), W(bp.fc1_w), A(dh_), A(dattn_), G(bp.fc1_w), G(bp.fc1_b), {R, D, M}, false, false);
    ops.layernorm_modulate_backward(A32(a.x_mid), A(a.mod, 4 * D), A32(a.mean2), A32(a.rstd2), A(dattn_), dx,
                                    A(dmod_, 3 * D), A(dmod_, 4 * D), ns, true);
    // Attention half; dx becomes dL/dx_in.
    ops.gated_residual_backward(A(a.proj_out), A(a.mod, 2 * D), dx, A(dtmp_), A(dmod_, 2 * D), ns);
    ops.linear_backward(A(a.attn_cat), W(bp.proj_w), A(dtmp_), A(dattn_), G(bp.proj_w), G(bp.proj_b), {R, D, D}, false,
                        false);
    ops.merge_heads_backward(A(dattn_), A(do_), hs);
    ops.attention_backward(A(a.q), A(a.k), A(a.v), A(a.o), A32(a.lse), A(do_), A(dq_), A(dk_), A(dv_), ash, scale, false);
    ops.split_heads_backward(A(dq_), A(dk_), A(dv_), A(dqkv_), hs);
    ops.linear_backward(A(a.xmod1), W(bp.qkv_w), A(dqkv_), A(dattn_), G(bp.qkv_w), G(bp.qkv_b), {R, D, 3 * D}, false,
                        false);
    ops.layernorm_modulate_backward(A32(a.x_in), A(a.mod, D), A32(a.mean1), A32(a.rstd1), A(dattn_), dx, A(dmod_),
                                    A(dmod_, D), ns, true);
    // The block's modulation came from SiLU(c).
    ops.linear_backward(A(silu_c_), W(bp.ada_w), A(dmod_), dsilu_c, G(bp.ada_w), G(bp.ada_b), {B, D, 6 * D}, true,
                        false);
  }

  // Patch embeddings: a masked stage received no gradient.
  void* dtok = A(dtmp_);
  for (int64_t s = 0; s < S; s++) {
    const StageParams& sp = stage_params_[size_t(s)];
    StageActs& sa = stage_acts_[size_t(s)];
    int64_t td = C * cfg_.patch_sizes[size_t(s)] * cfg_.patch_sizes[size_t(s)];
    ops.scale_rows(dx, dtok, mask + s, {B, N * D, S});
    ops.linear_backward(A(sa.patches), W(sp.embed_w), dtok, nullptr, G(sp.embed_w), G(sp.embed_b), {R, td, D}, false,
                        false);
  }

  // Conditioning.
  void* dc = A(dc_);
  ops.silu_backward(A(c_), dsilu_c, dc, B * D, false);
  for (int64_t s = 0; s < S; s++) {
    const StageParams& sp = stage_params_[size_t(s)];
    StageActs& sa = stage_acts_[size_t(s)];
    ops.linear_backward(A(sa.ta), W(sp.t2_w), dc, A(dbd_), G(sp.t2_w), G(sp.t2_b), {B, D, D}, false, false);
    ops.silu_backward(A(sa.th), A(dbd_), A(dbd2_), B * D, false);
    ops.linear_backward(A(sa.tfeat), W(sp.t0_w), A(dbd2_), nullptr, G(sp.t0_w), G(sp.t0_b), {B, F, D}, false, false);
  }
  if (y_table_ >= 0) ops.embedding_backward(dc, labels_dev_.data<int32_t>(), G(y_table_), B, D);
  if (s_table_ >= 0) ops.embedding_backward(dc, active_dev_.data<int32_t>(), G(s_table_), B, D);
}

}  // namespace df

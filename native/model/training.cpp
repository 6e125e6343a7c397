#include "training.h"

#include <cmath>
#include <cstdio>
#include <cstring>

#include "../core/error.h"
#include "../io/json.h"
#include "../io/safetensors.h"
#include "checkpoint_checks.h"

namespace df {

DiTOptimizer::DiTOptimizer(const DiT& model, const AdamWOptions& options) : options_(options), n_(model.num_params()) {
  validate(options_, "optimizer");
  const Device d = model.device();
  m_ = Tensor::zeros({n_}, DType::F32, d);
  v_ = Tensor::zeros({n_}, DType::F32, d);
  ema_ = Tensor({n_}, DType::F32, d);
  model.ops().copy(ema_.raw(), model.param_data(), size_t(n_) * sizeof(float));
}

void DiTOptimizer::set_options(const AdamWOptions& o) {
  validate(o, "optimizer");
  options_ = o;
}

OptimizerStepStats DiTOptimizer::step(DiT& model) {
  if (model.num_params() != n_) fail(Code::Internal, "optimizer: the model does not match its optimizer");
  Ops& ops = model.ops();
  OptimizerStepStats st;
  st.grad_norm = ops.grad_norm(model.grad_data(), n_);
  if (!std::isfinite(st.grad_norm))
    fail(Code::NonFinite, "optimizer: the gradient norm is not finite (" + std::to_string(st.grad_norm) +
                              "); the step was skipped");
  float scale = clip_scale(st.grad_norm, options_.grad_clip);
  st.clip_scale = scale;
  step_++;
  st.lr = scheduled_lr(options_, step_);
  // The kernels read one decay; the warm-up or power rule decides it per step here.
  AdamWOptions this_step = options_;
  this_step.ema_decay = ema_decay_at(options_, step_);
  st.ema_decay = this_step.ema_decay;
  ops.adamw_update(model.param_data(), model.grad_data(), m(), v(), n_, step_, st.lr, this_step, scale, ema(),
                   model.compute_weights());
  return st;
}

BatchLoss train_on_batch(DiT& model, DiTOptimizer& optimizer, const DiTBatch& batch,
                         const std::vector<const float*>& targets, const std::vector<double>* stage_weights,
                         TrainMode mode) {
  BatchLoss r;
  model.forward(batch);
  r.loss = model.loss(targets, mode != TrainMode::Loss, stage_weights);
  for (int64_t s = 0; s < model.config().stages; s++) r.stage_loss.push_back(model.loss_stage(s));
  if (mode == TrainMode::Step) {
    if (!std::isfinite(r.loss))
      fail(Code::NonFinite, "train step: the loss is not finite (" + std::to_string(r.loss) + "); weights left unchanged");
    r.optimizer = optimizer.step(model);
    r.stepped = true;
  }
  r.step = optimizer.steps();
  return r;
}

std::vector<float> download_floats(Ops& ops, const float* src, int64_t n) {
  std::vector<float> host(static_cast<size_t>(n));
  ops.download(host.data(), src, host.size() * sizeof(float));
  return host;
}

namespace {
std::string num(double x) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.17g", x);
  return buf;
}
}  // namespace

std::string adamw_options_json(const AdamWOptions& o) {
  return "{\"lr\":" + num(o.lr) + ",\"beta1\":" + num(o.beta1) + ",\"beta2\":" + num(o.beta2) + ",\"eps\":" + num(o.eps) +
         ",\"weightDecay\":" + num(o.weight_decay) + ",\"warmupSteps\":" + std::to_string(o.warmup_steps) +
         ",\"gradClip\":" + num(o.grad_clip) + ",\"emaDecay\":" + num(o.ema_decay) +
         ",\"emaWarmup\":" + (o.ema_warmup ? "true" : "false") + ",\"emaPower\":" + num(o.ema_power) + "}";
}

void save_checkpoint(const std::string& path, const DiT& model, DiTOptimizer* opt, const CheckpointParts& parts) {
  Ops& ops = model.ops();
  std::vector<std::vector<float>> host;  // the parts on the host, as the file stores them
  host.reserve(4);
  std::vector<SafetensorsTensor> tensors;
  auto add_part = [&](const std::string& prefix, const float* device_data) {
    host.push_back(download_floats(ops, device_data, model.num_params()));
    for (const auto& p : model.params()) tensors.push_back({prefix + p.name, p.shape, DType::F32, host.back().data() + p.offset});
  };
  add_part("", model.param_data());
  std::map<std::string, std::string> meta;
  meta["format"] = "decoflow-dit/1";
  meta["config"] = model.config().to_json();
  if (opt && parts.ema) add_part("ema.", opt->ema());
  if (opt && parts.optimizer) {
    add_part("adam.m.", opt->m());
    add_part("adam.v.", opt->v());
    meta["optimizer"] = adamw_options_json(opt->options());
    meta["step"] = std::to_string(opt->steps());
  }
  write_safetensors(path, tensors, meta);
}

namespace {

AdamWOptions parse_options(const std::string& text, const std::string& path) {
  json::Value v = json::parse(text, "checkpoint " + path + ": optimizer metadata");
  AdamWOptions o;
  auto get = [&](const char* key, double& out) {
    const json::Value* f = v.find(key);
    if (!f || !f->is_number()) fail(Code::Format, "checkpoint " + path + ": optimizer metadata: " + key + " missing");
    out = f->number;
  };
  double warmup = 0;
  get("lr", o.lr);
  get("beta1", o.beta1);
  get("beta2", o.beta2);
  get("eps", o.eps);
  get("weightDecay", o.weight_decay);
  get("warmupSteps", warmup);
  get("gradClip", o.grad_clip);
  get("emaDecay", o.ema_decay);
  // Checkpoints written before the EMA warm-up existed lack these; their EMA ran without it, so
  // resuming keeps that rule.
  const json::Value* warm = v.find("emaWarmup");
  if (warm && !warm->is_bool()) fail(Code::Format, "checkpoint " + path + ": optimizer metadata: emaWarmup is not a boolean");
  o.ema_warmup = warm && warm->boolean;
  if (const json::Value* pw = v.find("emaPower")) {
    if (!pw->is_number()) fail(Code::Format, "checkpoint " + path + ": optimizer metadata: emaPower is not a number");
    o.ema_power = pw->number;
  }
  if (!(warmup >= 0 && warmup < 1e15)) fail(Code::Format, "checkpoint " + path + ": warmupSteps out of range");
  o.warmup_steps = int64_t(warmup);
  validate(o, ("checkpoint " + path + ": optimizer").c_str());
  return o;
}

// Copies the tensor `name` into dst (on the device of `ops`) after checking it exists as F32 with the
// expected shape.
bool copy_tensor(const SafetensorsFile& f, const std::string& name, const Shape& shape, Ops& ops, float* dst,
                 bool required) {
  const SafetensorsEntry* e = f.find(name);
  if (!e) {
    if (required) fail(Code::Format, "checkpoint " + f.path() + ": tensor '" + name + "' is missing");
    return false;
  }
  if (e->dtype != DType::F32) fail(Code::Format, "checkpoint " + f.path() + ": tensor '" + name + "' is not F32");
  if (e->shape != shape)
    fail(Code::Format, "checkpoint " + f.path() + ": tensor '" + name + "' has shape " + shape_str(e->shape) +
                           ", the config needs " + shape_str(shape));
  ops.upload(dst, f.bytes(*e), size_t(e->end - e->begin));
  return true;
}

}  // namespace

LoadedCheckpoint load_checkpoint(const std::string& path, int64_t max_batch, const AdamWOptions& fallback,
                                 const DiTConfig* expect, Ops& ops_in, bool allow_non_finite) {
  SafetensorsFile f = SafetensorsFile::read(path);
  auto cfg_it = f.metadata().find("config");
  if (cfg_it == f.metadata().end()) fail(Code::Format, "checkpoint " + path + ": no 'config' in the metadata");
  DiTConfig cfg = DiTConfig::from_json(cfg_it->second);
  if (expect && !(*expect == cfg))
    fail(Code::Config, "checkpoint " + path + ": its config " + cfg.to_json() + " differs from the expected " +
                           expect->to_json());
  LoadedCheckpoint out;
  out.model = std::make_unique<DiT>(cfg, max_batch, DiTUse::Training, ops_in);
  DiT& m = *out.model;
  Ops& ops = m.ops();
  for (const auto& p : m.params()) copy_tensor(f, p.name, p.shape, ops, m.param_data() + p.offset, true);
  m.weights_changed();
  auto opt_it = f.metadata().find("optimizer");
  AdamWOptions opts = opt_it != f.metadata().end() ? parse_options(opt_it->second, path) : fallback;
  out.optimizer = std::make_unique<DiTOptimizer>(m, opts);
  DiTOptimizer& o = *out.optimizer;
  const auto& ps = m.params();
  if (!ps.empty() && f.find("ema." + ps[0].name)) {
    for (const auto& p : ps) copy_tensor(f, "ema." + p.name, p.shape, ops, o.ema() + p.offset, true);
    out.had_ema = true;
  }
  if (!ps.empty() && f.find("adam.m." + ps[0].name)) {
    for (const auto& p : ps) {
      copy_tensor(f, "adam.m." + p.name, p.shape, ops, o.m() + p.offset, true);
      copy_tensor(f, "adam.v." + p.name, p.shape, ops, o.v() + p.offset, true);
    }
    auto step_it = f.metadata().find("step");
    if (step_it == f.metadata().end()) fail(Code::Format, "checkpoint " + path + ": optimizer state without 'step'");
    char* end = nullptr;
    long long s = std::strtoll(step_it->second.c_str(), &end, 10);
    if (step_it->second.empty() || *end != '\0' || s < 0) fail(Code::Format, "checkpoint " + path + ": bad 'step'");
    o.set_steps(int64_t(s));
    out.had_optimizer = true;
  }
  if (!allow_non_finite) check_checkpoint_finite(out, path);
  return out;
}

}  // namespace df

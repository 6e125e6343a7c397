// The DiT model, its optimiser and checkpoints. A model is an External handle to a ModelHandle that
// async jobs share, so disposing it while a job runs is safe (the job finishes first, then frees).
// One call at a time per model: a second one while a job runs is an error, not a race.
#include <atomic>
#include <cstring>
#include <memory>
#include <mutex>

#include "../core/error.h"
#include "../model/training.h"
#include "addon_data.h"
#include "async_job.h"
#include "bindings.h"
#include "model_handle.h"
#include "tensor_binding.h"

namespace df::addon {

namespace {

Napi::Value wrap_model(Napi::Env env, std::unique_ptr<DiT> model, std::unique_ptr<DiTOptimizer> opt) {
  auto h = std::make_shared<ModelHandle>();
  h->model = std::move(model);
  h->optimizer = std::move(opt);
  auto* box = new ModelBox{h};
  return Napi::External<ModelBox>::New(env, box, [](Napi::Env, ModelBox* b) { delete b; });
}

AdamWOptions read_adamw(const Napi::Value& v, const AdamWOptions& base, const std::string& ctx) {
  Napi::Object o = arg_object(v, ctx, true);
  AdamWOptions r = base;
  r.lr = opt_number(o, "lr", r.lr, ctx);
  r.beta1 = opt_number(o, "beta1", r.beta1, ctx);
  r.beta2 = opt_number(o, "beta2", r.beta2, ctx);
  r.eps = opt_number(o, "eps", r.eps, ctx);
  r.weight_decay = opt_number(o, "weightDecay", r.weight_decay, ctx);
  r.warmup_steps = opt_int(o, "warmupSteps", r.warmup_steps, 0, int64_t(1) << 50, ctx);
  r.grad_clip = opt_number(o, "gradClip", r.grad_clip, ctx);
  r.ema_decay = opt_number(o, "emaDecay", r.ema_decay, ctx);
  r.ema_warmup = opt_bool(o, "emaWarmup", r.ema_warmup, ctx);
  r.ema_power = opt_number(o, "emaPower", r.ema_power, ctx);
  validate(r, ctx.c_str());
  return r;
}

// A batch held by value (tensors share storage), so an async job keeps it alive.
struct HeldBatch {
  std::vector<Tensor> x, targets;
  Tensor t, mask, labels;
  int64_t batch = 0;
  DiTBatch view() const {
    DiTBatch b;
    b.batch = batch;
    for (const auto& xi : x) b.x.push_back(xi.data<float>());
    b.time = t.data<float>();
    b.mask = mask.defined() ? mask.data<float>() : nullptr;
    b.labels = labels.defined() ? labels.data<int32_t>() : nullptr;
    return b;
  }
  std::vector<const float*> target_ptrs() const {
    std::vector<const float*> r;
    for (const auto& v : targets) r.push_back(v.data<float>());
    return r;
  }
};

// An f32 input of the model: on the model's device, with the expected shape.
void expect_input(const Tensor& t, const Shape& shape, const DiT& m, const std::string& name) {
  if (t.device() != m.device())
    fail(Code::Device, name + ": expected a tensor on " + m.device().name() + " (the model's device), got one on " +
                           t.device().name());
  expect_dtype(t, DType::F32, name.c_str());
  if (t.shape() != shape) fail(Code::Shape, name + ": expected shape " + shape_str(shape) + ", got " + shape_str(t.shape()));
}

// A small per-sample input (times, mask, labels) that the model reads on the host.
Tensor on_host(const Tensor& t) { return t.device().is_cpu() ? t : t.to(Device{}); }

std::vector<Tensor> read_stage_list(const Napi::Object& o, const char* key, const DiT& m, int64_t B,
                                    const std::string& fn) {
  const DiTConfig& cfg = m.config();
  std::string name = fn + ": " + key;
  if (!has_option(o, key) || !o.Get(key).IsArray()) fail(Code::ArgType, name + ": expected an array of one tensor per stage");
  Napi::Array a = o.Get(key).As<Napi::Array>();
  if (int64_t(a.Length()) != cfg.stages)
    fail(Code::Shape, name + ": expected " + std::to_string(cfg.stages) + " tensors (one per stage), got " +
                          std::to_string(a.Length()));
  std::vector<Tensor> r;
  for (int64_t s = 0; s < cfg.stages; s++) {
    std::string n = name + "[" + std::to_string(s) + "]";
    Tensor t = unwrap_tensor(a.Get(uint32_t(s)), n);
    expect_input(t, {B, cfg.channels, cfg.stage_height(s), cfg.stage_width(s)}, m, n);
    r.push_back(t);
  }
  return r;
}

HeldBatch read_batch(const Napi::Value& v, const DiT& m, bool need_targets, const std::string& fn) {
  const DiTConfig& cfg = m.config();
  Napi::Object o = arg_object(v, fn + ": batch");
  HeldBatch b;
  if (!has_option(o, "t")) fail(Code::ArgType, fn + ": batch.t: expected a tensor [B, stages]");
  b.t = on_host(unwrap_tensor(o.Get("t"), fn + ": batch.t"));
  if (b.t.rank() != 2 || b.t.dim(1) != cfg.stages)
    fail(Code::Shape, fn + ": batch.t: expected shape [B, " + std::to_string(cfg.stages) + "], got " + shape_str(b.t.shape()));
  b.batch = b.t.dim(0);
  if (b.batch > m.max_batch())
    fail(Code::Shape, fn + ": batch.t: batch " + std::to_string(b.batch) + " exceeds the model's maxBatch " +
                          std::to_string(m.max_batch()));
  expect_dtype(b.t, DType::F32, (fn + ": batch.t").c_str());
  b.x = read_stage_list(o, "x", m, b.batch, fn + ": batch");
  if (has_option(o, "mask")) {
    b.mask = on_host(unwrap_tensor(o.Get("mask"), fn + ": batch.mask"));
    expect_dtype(b.mask, DType::F32, (fn + ": batch.mask").c_str());
    if (b.mask.shape() != Shape{b.batch, cfg.stages})
      fail(Code::Shape, fn + ": batch.mask: expected shape " + shape_str({b.batch, cfg.stages}) + ", got " +
                            shape_str(b.mask.shape()));
  }
  if (has_option(o, "labels")) {
    b.labels = on_host(unwrap_tensor(o.Get("labels"), fn + ": batch.labels"));
    expect_dtype(b.labels, DType::I32, (fn + ": batch.labels").c_str());
    if (b.labels.shape() != Shape{b.batch})
      fail(Code::Shape, fn + ": batch.labels: expected shape [" + std::to_string(b.batch) + "], got " +
                            shape_str(b.labels.shape()));
  }
  if (need_targets) b.targets = read_stage_list(o, "targets", m, b.batch, fn + ": batch");
  m.validate_batch(b.view());
  return b;
}

BatchLoss run_loss(ModelHandle& h, const HeldBatch& b, TrainMode mode) {
  return train_on_batch(*h.model, *h.optimizer, b.view(), b.target_ptrs(), nullptr, mode);
}

Napi::Object loss_to_js(Napi::Env env, const BatchLoss& r) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("loss", r.loss);
  Napi::Array sl = numbers_to_js(env, r.stage_loss);
  o.Set("stageLosses", sl);
  if (r.stepped) {
    o.Set("lr", r.optimizer.lr);
    o.Set("gradNorm", r.optimizer.grad_norm);
    o.Set("clipScale", r.optimizer.clip_scale);
    o.Set("emaDecay", r.optimizer.ema_decay);
  }
  o.Set("step", double(r.step));
  return o;
}

// The backend of options.device ('cpu', 'cuda', 'cuda:N'; default cpu) in options.precision ('f32'
// or 'bf16'; default: the device's, f32 on the CPU, bf16 on CUDA).
Ops& read_backend(const Napi::Object& o, const std::string& ctx) {
  const Device device = parse_device(opt_string(o, "device", "cpu", ctx), (ctx + ".device").c_str());
  const std::string precision = opt_string(o, "precision", "", ctx);
  const DType compute = precision.empty() ? default_compute(device) : parse_dtype(precision, (ctx + ".precision").c_str());
  return ops_for(device, compute);
}

// ---------------------------------------------------------------------------------------------

Napi::Value model_create(const Napi::CallbackInfo& info) {
  DiTConfig cfg = DiTConfig::from_json(arg_string(info[0], "Model.create: config"));
  Napi::Object o = arg_object(info[1], "Model.create: options", true);
  int64_t max_batch = opt_int(o, "maxBatch", 1, 1, 1 << 20, "Model.create: options");
  int64_t seed = opt_int(o, "seed", 0, 0, (int64_t(1) << 53) - 1, "Model.create: options");
  AdamWOptions adam = read_adamw(has_option(o, "optimizer") ? o.Get("optimizer") : info.Env().Undefined(),
                                 AdamWOptions{}, "Model.create: options.optimizer");
  auto model = std::make_unique<DiT>(cfg, max_batch, DiTUse::Training, read_backend(o, "Model.create: options"));
  model->init(uint64_t(seed));
  auto opt = std::make_unique<DiTOptimizer>(*model, adam);
  return wrap_model(info.Env(), std::move(model), std::move(opt));
}

Napi::Value model_load(const Napi::CallbackInfo& info) {
  std::string path = arg_string(info[0], "Model.load: path");
  Napi::Object o = arg_object(info[1], "Model.load: options", true);
  int64_t max_batch = opt_int(o, "maxBatch", 1, 1, 1 << 20, "Model.load: options");
  AdamWOptions adam = read_adamw(has_option(o, "optimizer") ? o.Get("optimizer") : info.Env().Undefined(),
                                 AdamWOptions{}, "Model.load: options.optimizer");
  std::unique_ptr<DiTConfig> expect;
  if (has_option(o, "expectConfig"))
    expect = std::make_unique<DiTConfig>(DiTConfig::from_json(arg_string(o.Get("expectConfig"), "Model.load: options.expectConfig")));
  bool allow_non_finite = opt_bool(o, "allowNonFinite", false, "Model.load: options");
  LoadedCheckpoint ck = load_checkpoint(path, max_batch, adam, expect.get(), read_backend(o, "Model.load: options"),
                                        allow_non_finite);
  return wrap_model(info.Env(), std::move(ck.model), std::move(ck.optimizer));
}

Napi::Value model_info(const Napi::CallbackInfo& info) {
  ModelPtr h = model_of(info[0], "Model.info");
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("config", h->model->config().to_json());
  o.Set("maxBatch", double(h->model->max_batch()));
  o.Set("device", h->model->device().name());
  o.Set("precision", dtype_name(h->model->ops().policy().compute));
  o.Set("numParameters", double(h->model->num_params()));
  o.Set("step", double(h->optimizer->steps()));
  o.Set("optimizer", adamw_options_json(h->optimizer->options()));
  Napi::Array ps = Napi::Array::New(env, h->model->params().size());
  uint32_t i = 0;
  for (const auto& p : h->model->params()) {
    Napi::Object e = Napi::Object::New(env);
    e.Set("name", p.name);
    e.Set("shape", shape_to_js(env, p.shape));
    ps.Set(i++, e);
  }
  o.Set("parameters", ps);
  return o;
}

// which: "param" | "grad" | "ema" | "adam.m" | "adam.v"
Napi::Value model_get(const Napi::CallbackInfo& info) {
  ModelPtr h = model_of(info[0], "Model.get");
  BusyGuard busy(h, "Model.get");
  std::string which = arg_string(info[1], "Model.get: which");
  std::string name = arg_string(info[2], "Model.get: name");
  const ParamInfo* p = h->model->find_param(name);
  if (!p) fail(Code::ArgValue, "Model.get: name: no parameter named '" + name + "'");
  const float* base = which == "param"   ? h->model->param_data()
                      : which == "grad"  ? h->model->grad_data()
                      : which == "ema"   ? h->optimizer->ema()
                      : which == "adam.m" ? h->optimizer->m()
                      : which == "adam.v" ? h->optimizer->v()
                                          : nullptr;
  if (!base) fail(Code::ArgValue, "Model.get: which: expected param, grad, ema, adam.m or adam.v, got '" + which + "'");
  Tensor t(p->shape, DType::F32);
  h->model->ops().download(t.raw(), base + p->offset, t.nbytes());
  return wrap_tensor(info.Env(), t);
}

Napi::Value model_set_parameter(const Napi::CallbackInfo& info) {
  ModelPtr h = model_of(info[0], "Model.setParameter");
  BusyGuard busy(h, "Model.setParameter");
  std::string name = arg_string(info[1], "Model.setParameter: name");
  const ParamInfo* p = h->model->find_param(name);
  if (!p) fail(Code::ArgValue, "Model.setParameter: name: no parameter named '" + name + "'");
  const Tensor t = on_host(unwrap_tensor(info[2], "Model.setParameter: value"));
  expect_dtype(t, DType::F32, "Model.setParameter: value");
  if (t.shape() != p->shape)
    fail(Code::Shape, "Model.setParameter: value: expected shape " + shape_str(p->shape) + ", got " + shape_str(t.shape()));
  h->model->ops().upload(h->model->param_data() + p->offset, t.raw(), t.nbytes());
  h->model->weights_changed();
  return info.Env().Undefined();
}

// Runs the forward pass and copies the per-stage outputs into new tensors.
std::vector<Tensor> run_forward(ModelHandle& h, const HeldBatch& b) {
  h.model->forward(b.view());
  const DiTConfig& cfg = h.model->config();
  std::vector<Tensor> outs;
  for (int64_t s = 0; s < cfg.stages; s++) {
    Tensor t({b.batch, cfg.channels, cfg.stage_height(s), cfg.stage_width(s)}, DType::F32, h.model->device());
    h.model->ops().copy(t.raw(), h.model->output(s), t.nbytes());
    outs.push_back(t);
  }
  return outs;
}

Napi::Value tensors_to_js(Napi::Env env, const std::vector<Tensor>& ts) {
  Napi::Array out = Napi::Array::New(env, ts.size());
  for (size_t i = 0; i < ts.size(); i++) out.Set(uint32_t(i), wrap_tensor(env, ts[i]));
  return out;
}

Napi::Value model_forward_sync(const Napi::CallbackInfo& info) {
  ModelPtr h = model_of(info[0], "Model.forwardSync");
  BusyGuard busy(h, "Model.forwardSync");
  HeldBatch b = read_batch(info[1], *h->model, false, "Model.forwardSync");
  return tensors_to_js(info.Env(), run_forward(*h, b));
}

Napi::Value model_forward_async(const Napi::CallbackInfo& info) {
  ModelPtr h = model_of(info[0], "Model.forward");
  auto busy = std::make_shared<BusyGuard>(h, "Model.forward");
  HeldBatch b = read_batch(info[1], *h->model, false, "Model.forward");
  auto outs = std::make_shared<std::vector<Tensor>>();
  return start_job(
      info.Env(), [h, b, outs, busy](JobContext&) { *outs = run_forward(*h, b); },
      [outs, busy](Napi::Env env) mutable {
        busy.reset();
        return tensors_to_js(env, *outs);
      },
      info.Env().Undefined());
}

// Mode: 0 = loss only, 1 = loss and gradients, 2 = a whole training step (gradients + optimizer).
constexpr TrainMode kTrainModes[3] = {TrainMode::Loss, TrainMode::LossAndGrad, TrainMode::Step};
template <int Mode>
Napi::Value model_loss_sync(const Napi::CallbackInfo& info) {
  const char* fn = Mode == 0 ? "Model.lossSync" : Mode == 1 ? "Model.lossAndGradSync" : "Model.trainStepSync";
  ModelPtr h = model_of(info[0], fn);
  BusyGuard busy(h, fn);
  HeldBatch b = read_batch(info[1], *h->model, true, fn);
  return loss_to_js(info.Env(), run_loss(*h, b, kTrainModes[Mode]));
}

template <int Mode>
Napi::Value model_loss_async(const Napi::CallbackInfo& info) {
  const char* fn = Mode == 1 ? "Model.lossAndGrad" : "Model.trainStep";
  ModelPtr h = model_of(info[0], fn);
  auto busy = std::make_shared<BusyGuard>(h, fn);
  HeldBatch b = read_batch(info[1], *h->model, true, fn);
  auto result = std::make_shared<BatchLoss>();
  return start_job(
      info.Env(), [h, b, result, busy](JobContext&) { *result = run_loss(*h, b, kTrainModes[Mode]); },
      [result, busy](Napi::Env env) mutable {
        busy.reset();
        return loss_to_js(env, *result);
      },
      info.Env().Undefined());
}

Napi::Value model_step_sync(const Napi::CallbackInfo& info) {
  ModelPtr h = model_of(info[0], "Model.stepSync");
  BusyGuard busy(h, "Model.stepSync");
  OptimizerStepStats st = h->optimizer->step(*h->model);
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("lr", st.lr);
  o.Set("gradNorm", st.grad_norm);
  o.Set("clipScale", st.clip_scale);
  o.Set("emaDecay", st.ema_decay);
  o.Set("step", double(h->optimizer->steps()));
  return o;
}

Napi::Value model_set_optimizer(const Napi::CallbackInfo& info) {
  ModelPtr h = model_of(info[0], "Model.setOptimizer");
  BusyGuard busy(h, "Model.setOptimizer");
  h->optimizer->set_options(read_adamw(info[1], h->optimizer->options(), "Model.setOptimizer: options"));
  return info.Env().Undefined();
}

Napi::Value model_save(const Napi::CallbackInfo& info) {
  ModelPtr h = model_of(info[0], "Model.save");
  BusyGuard busy(h, "Model.save");
  std::string path = arg_string(info[1], "Model.save: path");
  Napi::Object o = arg_object(info[2], "Model.save: options", true);
  CheckpointParts parts;
  parts.optimizer = opt_bool(o, "optimizer", true, "Model.save: options");
  parts.ema = opt_bool(o, "ema", true, "Model.save: options");
  save_checkpoint(path, *h->model, h->optimizer.get(), parts);
  return info.Env().Undefined();
}

Napi::Value model_dispose(const Napi::CallbackInfo& info) {
  if (!info[0].IsExternal()) fail(Code::ArgType, "Model.dispose: model: expected a model handle");
  ModelBox* box = info[0].As<Napi::External<ModelBox>>().Data();
  if (box) box->ptr.reset();  // a running job holds its own reference and frees the model when done
  return info.Env().Undefined();
}

}  // namespace

void init_model(Napi::Env env, Napi::Object exports) {
  exports.Set("modelCreate", Napi::Function::New<guarded<model_create>>(env, "modelCreate"));
  exports.Set("modelLoad", Napi::Function::New<guarded<model_load>>(env, "modelLoad"));
  exports.Set("modelInfo", Napi::Function::New<guarded<model_info>>(env, "modelInfo"));
  exports.Set("modelGet", Napi::Function::New<guarded<model_get>>(env, "modelGet"));
  exports.Set("modelSetParameter", Napi::Function::New<guarded<model_set_parameter>>(env, "modelSetParameter"));
  exports.Set("modelForwardSync", Napi::Function::New<guarded<model_forward_sync>>(env, "modelForwardSync"));
  exports.Set("modelForward", Napi::Function::New<guarded<model_forward_async>>(env, "modelForward"));
  exports.Set("modelLossSync", Napi::Function::New<guarded<model_loss_sync<0>>>(env, "modelLossSync"));
  exports.Set("modelLossAndGradSync", Napi::Function::New<guarded<model_loss_sync<1>>>(env, "modelLossAndGradSync"));
  exports.Set("modelLossAndGrad", Napi::Function::New<guarded<model_loss_async<1>>>(env, "modelLossAndGrad"));
  exports.Set("modelTrainStepSync", Napi::Function::New<guarded<model_loss_sync<2>>>(env, "modelTrainStepSync"));
  exports.Set("modelTrainStep", Napi::Function::New<guarded<model_loss_async<2>>>(env, "modelTrainStep"));
  exports.Set("modelStepSync", Napi::Function::New<guarded<model_step_sync>>(env, "modelStepSync"));
  exports.Set("modelSetOptimizer", Napi::Function::New<guarded<model_set_optimizer>>(env, "modelSetOptimizer"));
  exports.Set("modelSave", Napi::Function::New<guarded<model_save>>(env, "modelSave"));
  exports.Set("modelDispose", Napi::Function::New<guarded<model_dispose>>(env, "modelDispose"));
}

}  // namespace df::addon

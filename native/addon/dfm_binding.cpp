// The DFM trainer and sampler over a Model handle, and the sampling schedule. A trainer keeps the
// model handle alive and takes the model's busy flag for each step, so a step never races another
// call on the same model.
#include <algorithm>
#include <memory>

#include "../dfm/dit_sampler.h"
#include "../dfm/schedule.h"
#include "../dfm/trainer.h"
#include "addon_data.h"
#include "async_job.h"
#include "bindings.h"
#include "model_handle.h"
#include "tensor_binding.h"

namespace df::addon {

namespace {

struct TrainerHandle {
  ModelPtr model;
  std::unique_ptr<Trainer> trainer;
};
struct TrainerBox {
  std::shared_ptr<TrainerHandle> ptr;
};

std::shared_ptr<TrainerHandle>& trainer_of(const Napi::Value& v, const char* fn) {
  if (!v.IsExternal()) fail(Code::ArgType, std::string(fn) + ": trainer: expected a trainer handle");
  TrainerBox* box = v.As<Napi::External<TrainerBox>>().Data();
  if (!box || !box->ptr) fail(Code::Disposed, std::string(fn) + ": the trainer has been disposed");
  return box->ptr;
}

std::vector<double> read_numbers(const Napi::Value& v, const std::string& name) {
  if (!v.IsArray()) fail(Code::Config, name + ": expected an array of numbers");
  Napi::Array a = v.As<Napi::Array>();
  std::vector<double> out;
  for (uint32_t i = 0; i < a.Length(); i++) {
    Napi::Value x = a.Get(i);
    if (!x.IsNumber()) fail(Code::Config, name + "[" + std::to_string(i) + "]: expected a number");
    out.push_back(x.As<Napi::Number>().DoubleValue());
  }
  return out;
}

std::vector<int> read_ints(const Napi::Value& v, const std::string& name) {
  std::vector<int> out;
  for (double d : read_numbers(v, name)) {
    if (d != double(int(d))) fail(Code::Config, name + ": expected integers, got " + std::to_string(d));
    out.push_back(int(d));
  }
  return out;
}

// The pyramid of a trainer or sampler: the model's own (its config records it) unless given; another
// one would decompose or recompose stages the model was not trained on, so it is refused.
PyramidKind read_decomposition(const Napi::Object& o, const DiTConfig& c, const std::string& ctx) {
  if (!has_option(o, "decomposition")) return c.decomposition;
  const std::string arg = ctx + ".decomposition";
  const PyramidKind k = parse_pyramid_kind(opt_string(o, "decomposition", "laplacian", ctx), arg.c_str());
  if (k != c.decomposition)
    fail(Code::ArgValue, arg + ": the model's stages come from the '" + pyramid_kind_name(c.decomposition) +
                             "' pyramid (its config's decomposition), got '" + pyramid_kind_name(k) + "'");
  return k;
}

TrainerOptions read_trainer_options(const Napi::Value& v, const DiTConfig& c) {
  const std::string ctx = "Trainer: options";
  Napi::Object o = arg_object(v, ctx, true);
  TrainerOptions r;
  r.decomposition = read_decomposition(o, c, ctx);
  if (has_option(o, "stageProbs")) r.batch.stage_probs = read_numbers(o.Get("stageProbs"), ctx + ".stageProbs");
  if (has_option(o, "stageProbsFinal"))
    r.batch.stage_probs_final = read_numbers(o.Get("stageProbsFinal"), ctx + ".stageProbsFinal");
  r.batch.stage_probs_steps = opt_int(o, "stageProbsSteps", 0, 0, int64_t(1) << 50, ctx);
  r.batch.time_loc = opt_number(o, "timeLocation", r.batch.time_loc, ctx);
  r.batch.time_scale = opt_number(o, "timeScale", r.batch.time_scale, ctx);
  r.batch.prior_loc = opt_number(o, "priorLocation", r.batch.prior_loc, ctx);
  r.batch.prior_scale = opt_number(o, "priorScale", r.batch.prior_scale, ctx);
  r.batch.label_dropout = opt_number(o, "labelDropout", r.batch.label_dropout, ctx);
  if (has_option(o, "stageLossWeights"))
    r.batch.stage_loss_weights = read_numbers(o.Get("stageLossWeights"), ctx + ".stageLossWeights");
  if (has_option(o, "stageTimeShifts"))
    r.batch.stage_time_shifts = read_numbers(o.Get("stageTimeShifts"), ctx + ".stageTimeShifts");
  const std::string choice = opt_string(o, "stageChoice", r.batch.stage_per_sample ? "sample" : "batch", ctx);
  if (choice != "batch" && choice != "sample")
    fail(Code::ArgValue, ctx + ".stageChoice: expected 'batch' (one active stage per batch) or 'sample' (one per sample), got '" +
                             choice + "'");
  r.batch.stage_per_sample = choice == "sample";
  r.seed = uint64_t(opt_int(o, "seed", 0, 0, (int64_t(1) << 53) - 1, ctx));
  return r;
}

Napi::Value trainer_create(const Napi::CallbackInfo& info) {
  ModelPtr model = model_of(info[0], "Trainer");
  TrainerOptions opts = read_trainer_options(info[1], model->model->config());
  BusyGuard busy(model, "Trainer");
  auto h = std::make_shared<TrainerHandle>();
  h->model = model;
  h->trainer = std::make_unique<Trainer>(*model->model, *model->optimizer, opts);
  return Napi::External<TrainerBox>::New(info.Env(), new TrainerBox{h}, [](Napi::Env, TrainerBox* b) { delete b; });
}

Napi::Object trainer_options_to_js(Napi::Env env, const TrainerOptions& o) {
  Napi::Object r = Napi::Object::New(env);
  r.Set("decomposition", pyramid_kind_name(o.decomposition));
  r.Set("stageProbs", numbers_to_js(env, o.batch.stage_probs));
  if (!o.batch.stage_probs_final.empty()) {
    r.Set("stageProbsFinal", numbers_to_js(env, o.batch.stage_probs_final));
    r.Set("stageProbsSteps", double(o.batch.stage_probs_steps));
  }
  r.Set("timeLocation", o.batch.time_loc);
  r.Set("timeScale", o.batch.time_scale);
  r.Set("priorLocation", o.batch.prior_loc);
  r.Set("priorScale", o.batch.prior_scale);
  r.Set("labelDropout", o.batch.label_dropout);
  std::vector<double> weights = o.batch.stage_loss_weights;
  if (weights.empty()) weights.assign(o.batch.stage_probs.size(), 1.0);
  r.Set("stageLossWeights", numbers_to_js(env, weights));
  std::vector<double> shifts = o.batch.stage_time_shifts;
  if (shifts.empty()) shifts.assign(o.batch.stage_probs.size(), 0.0);
  r.Set("stageTimeShifts", numbers_to_js(env, shifts));
  r.Set("stageChoice", o.batch.stage_per_sample ? "sample" : "batch");
  r.Set("seed", double(o.seed));
  return r;
}

Napi::Value trainer_options(const Napi::CallbackInfo& info) {
  return trainer_options_to_js(info.Env(), trainer_of(info[0], "Trainer.options")->trainer->options());
}

// trainerDefaults(stages): the options a Trainer uses when given none, for a model of `stages` stages.
Napi::Value trainer_defaults(const Napi::CallbackInfo& info) {
  const int stages = int(arg_int(info[0], "trainer defaults: stages", 1, 8));
  return trainer_options_to_js(info.Env(), resolve_trainer_options(TrainerOptions{}, stages, -1));
}

// The inputs of a step, held by value so the async job keeps them alive.
struct StepInputs {
  Tensor images, labels;
};

StepInputs read_step(const Napi::Value& images, const Napi::Value& labels, const DiT& m, const std::string& fn) {
  const DiTConfig& c = m.config();
  StepInputs in;
  in.images = unwrap_tensor(images, fn + ": images");
  expect_dtype(in.images, DType::F32, (fn + ": images").c_str());
  if (in.images.device() != m.device())
    fail(Code::Device, fn + ": images: expected a tensor on " + m.device().name() + " (the model's device), got one on " +
                           in.images.device().name());
  Shape want = {in.images.shape().empty() ? 0 : in.images.dim(0), c.channels, c.height, c.width};
  if (in.images.shape() != want)
    fail(Code::Shape, fn + ": images: expected [B, " + std::to_string(c.channels) + ", " + std::to_string(c.height) + ", " +
                          std::to_string(c.width) + "], got " + shape_str(in.images.shape()));
  if (c.num_classes > 0) {
    in.labels = unwrap_tensor(labels, fn + ": labels");
    expect_dtype(in.labels, DType::I32, (fn + ": labels").c_str());
    if (in.labels.shape() != Shape{in.images.dim(0)})
      fail(Code::Shape, fn + ": labels: expected [" + std::to_string(in.images.dim(0)) + "], got " + shape_str(in.labels.shape()));
    if (!in.labels.device().is_cpu()) in.labels = in.labels.to(Device{});  // the draws read them on the host
  }
  return in;
}

Napi::Object stats_to_js(Napi::Env env, const TrainStepStats& s) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("step", double(s.step));
  o.Set("activeStage", s.active_stage);
  o.Set("loss", s.loss);
  Napi::Array per = numbers_to_js(env, s.stage_loss);
  o.Set("stageLoss", per);
  o.Set("gradNorm", s.grad_norm);
  o.Set("lr", s.lr);
  return o;
}

TrainStepStats step_held(TrainerHandle& h, const StepInputs& in) {  // the caller holds the busy flag
  return h.trainer->step(in.images.data<float>(), in.labels.defined() ? in.labels.data<int32_t>() : nullptr, in.images.dim(0));
}

TrainStepStats run_step(TrainerHandle& h, const StepInputs& in) {
  BusyGuard busy(h.model, "trainer.step");
  return step_held(h, in);
}

Napi::Value trainer_step_sync(const Napi::CallbackInfo& info) {
  auto h = trainer_of(info[0], "trainer.stepSync");
  StepInputs in = read_step(info[1], info[2], h->trainer->model(), "trainer.stepSync");
  return stats_to_js(info.Env(), run_step(*h, in));
}

Napi::Value trainer_step(const Napi::CallbackInfo& info) {
  auto h = trainer_of(info[0], "trainer.step");
  StepInputs in = read_step(info[1], info[2], h->trainer->model(), "trainer.step");
  // The model's busy flag from the call until the result is back (as Model.trainStep), so a call made
  // while this step runs is the one refused, at once, with ERR_DECOFLOW_BUSY.
  auto busy = std::make_shared<BusyGuard>(h->model, "trainer.step");
  auto stats = std::make_shared<TrainStepStats>();
  return start_job(info.Env(), [h, in, stats](JobContext&) { *stats = step_held(*h, in); },
                   [stats, busy](Napi::Env env) mutable {
                     busy.reset();
                     return stats_to_js(env, *stats);
                   },
                   info.Env().Undefined());
}

Napi::Value trainer_dispose(const Napi::CallbackInfo& info) {
  if (info[0].IsExternal()) {
    TrainerBox* box = info[0].As<Napi::External<TrainerBox>>().Data();
    if (box) box->ptr.reset();
  }
  return info.Env().Undefined();
}

// trainerDraws(trainer, step, images, labels?): what the trainer draws at optimiser step `step` for
// these images (for tests and for users who inspect training), by the trainer's own code path.
Napi::Value trainer_draws(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto h = trainer_of(info[0], "trainer.draws");
  const uint64_t step = uint64_t(arg_int(info[1], "trainer.draws: step", 0, (int64_t(1) << 53) - 1));
  StepInputs in = read_step(info[2], info[3], h->trainer->model(), "trainer.draws");
  BusyGuard busy(h->model, "trainer.draws");
  TrainingDraws d = h->trainer->draws(step, in.images.data<float>(),
                                      in.labels.defined() ? in.labels.data<int32_t>() : nullptr, in.images.dim(0));
  auto list = [&](const std::vector<Tensor>& ts) {
    Napi::Array a = Napi::Array::New(env, ts.size());
    for (size_t i = 0; i < ts.size(); i++) a.Set(uint32_t(i), wrap_tensor(env, ts[i]));
    return a;
  };
  Napi::Object o = Napi::Object::New(env);
  o.Set("levels", list(d.levels));
  o.Set("noise", list(d.noise));
  o.Set("t", wrap_tensor(env, d.t));
  o.Set("mask", wrap_tensor(env, d.mask));
  o.Set("labels", wrap_tensor(env, d.labels));
  o.Set("activeStage", d.active_stage);
  return o;
}

// ---------------------------------------------------------------------------------------------
// Sampling from a model: its EMA weights (default) or its raw parameters.

SampleRequest read_sample_request(const Napi::Value& v, const DiTConfig& c) {
  const std::string ctx = "sample: options";
  Napi::Object o = arg_object(v, ctx, true);
  SampleRequest r;
  r.options = default_sampler_options(int(c.stages));
  r.count = opt_int(o, "n", 1, 1, 65536, ctx);
  if (has_option(o, "stepsPerStage")) r.options.steps = read_ints(o.Get("stepsPerStage"), "sample: stepsPerStage");
  if (has_option(o, "thresholds")) r.options.thresholds = read_numbers(o.Get("thresholds"), "sample: thresholds");
  if (has_option(o, "stageTimeShifts"))
    r.options.time_shifts = read_numbers(o.Get("stageTimeShifts"), "sample: stageTimeShifts");
  if (has_option(o, "stageEta")) r.options.eta = read_numbers(o.Get("stageEta"), "sample: stageEta");
  std::string solver = opt_string(o, "solver", "euler", ctx);
  if (solver == "euler") r.options.solver = Solver::Euler;
  else if (solver == "heun") r.options.solver = Solver::Heun;
  else if (solver == "midpoint") r.options.solver = Solver::Midpoint;
  else fail(Code::Config, "sample: solver: expected 'euler', 'heun' or 'midpoint', got '" + solver + "'");
  r.options.cfg = float(opt_number(o, "cfg", 1.0, ctx));
  if (has_option(o, "guidanceInterval")) {
    std::vector<double> gi = read_numbers(o.Get("guidanceInterval"), "sample: guidanceInterval");
    if (gi.size() != 2) fail(Code::Config, "sample: guidanceInterval: expected [lo, hi]");
    r.options.guidance_lo = gi[0];
    r.options.guidance_hi = gi[1];
  }
  r.options.seed = uint64_t(opt_int(o, "seed", 0, 0, (int64_t(1) << 53) - 1, ctx));
  if (has_option(o, "labels")) {
    for (double d : read_numbers(o.Get("labels"), "sample: labels")) {
      if (d != double(int32_t(d))) fail(Code::ArgValue, "sample: labels: expected integers");
      r.labels.push_back(int32_t(d));
    }
  }
  r.decomposition = read_decomposition(o, c, "sample: options");
  r.previews = opt_bool(o, "previews", false, ctx);
  r.intermediates = opt_bool(o, "intermediates", false, ctx);
  validate_sample_request(c, r);
  return r;
}

Napi::Value result_to_js(Napi::Env env, const SampleResult& r) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("images", wrap_tensor(env, r.images));
  auto list = [&](const std::vector<Tensor>& ts) {
    Napi::Array a = Napi::Array::New(env, ts.size());
    for (size_t i = 0; i < ts.size(); i++) a.Set(uint32_t(i), wrap_tensor(env, ts[i]));
    return a;
  };
  o.Set("levels", list(r.levels));
  o.Set("previews", list(r.previews));
  o.Set("intermediates", list(r.intermediates));
  return o;
}

struct CancelBox {
  std::shared_ptr<std::atomic<bool>> flag;
};

// sample(model, options, onProgress) -> { promise, cancel }: cancel is a handle for cancelJob().
Napi::Value model_sample(const Napi::CallbackInfo& info) {
  ModelPtr m = model_of(info[0], "sample");
  const DiTConfig cfg = m->model->config();
  SampleRequest req = read_sample_request(info[1], cfg);
  Napi::Object o = arg_object(info[1], "sample: options", true);
  bool use_ema = opt_bool(o, "ema", true, "sample: options");
  // Snapshot the weights now (on the main thread): training may continue while sampling runs.
  auto weights = std::make_shared<Tensor>();
  Ops* ops = &m->model->ops();
  {
    BusyGuard busy(m, "sample");
    const float* src = use_ema ? m->optimizer->ema() : m->model->param_data();
    *weights = Tensor({m->model->num_params()}, DType::F32, ops->device());
    m->model->ops().copy(weights->raw(), src, weights->nbytes());
  }
  Napi::Value on_progress = info[2].IsFunction() ? info[2] : info.Env().Undefined();
  auto result = std::make_shared<SampleResult>();
  std::shared_ptr<std::atomic<bool>> cancel;
  Napi::Promise p = start_job(
      info.Env(),
      [cfg, weights, req, result, ops](JobContext& ctx) {
        SamplerHooks hooks;
        hooks.progress = [&ctx](int step, int total) { ctx.report(Progress{step, total, {}}); };
        hooks.check_cancelled = [&ctx] { ctx.check_cancelled(); };
        *result = sample_images(cfg, weights->data<float>(), req, hooks, *ops);
      },
      [result](Napi::Env env) { return result_to_js(env, *result); }, on_progress, &cancel);
  Napi::Object out = Napi::Object::New(info.Env());
  out.Set("promise", p);
  out.Set("cancel", Napi::External<CancelBox>::New(info.Env(), new CancelBox{cancel}, [](Napi::Env, CancelBox* b) { delete b; }));
  return out;
}

Napi::Value cancel_job(const Napi::CallbackInfo& info) {
  if (!info[0].IsExternal()) fail(Code::ArgType, "cancelJob: expected a cancel handle");
  CancelBox* box = info[0].As<Napi::External<CancelBox>>().Data();
  if (box && box->flag) box->flag->store(true);
  return info.Env().Undefined();
}

// flowSchedule(stages, stepsPerStage, thresholds, stageTimeShifts) -> { times: number[][], newestStage: number[] }
Napi::Value flow_schedule(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int stages = int(arg_int(info[0], "schedule: stages", 1, 8));
  std::vector<int> steps = read_ints(info[1], "schedule: stepsPerStage");
  std::vector<double> taus = info[2].IsUndefined() ? std::vector<double>{} : read_numbers(info[2], "schedule: thresholds");
  std::vector<double> shifts =
      info[3].IsUndefined() ? std::vector<double>{} : read_numbers(info[3], "schedule: stageTimeShifts");
  SamplingSchedule s = make_sampling_schedule(stages, steps, taus, shifts);
  Napi::Array times = Napi::Array::New(env, size_t(s.total_steps + 1));
  for (int i = 0; i <= s.total_steps; i++) {
    Napi::Array row = Napi::Array::New(env, size_t(stages));
    for (int k = 0; k < stages; k++) row.Set(uint32_t(k), s.t(i, k));
    times.Set(uint32_t(i), row);
  }
  Napi::Array newest = numbers_to_js(env, s.newest);
  Napi::Object o = Napi::Object::New(env);
  o.Set("times", times);
  o.Set("newestStage", newest);
  return o;
}

Napi::Value sampler_defaults(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  SamplerOptions d = default_sampler_options(int(arg_int(info[0], "sampler defaults: stages", 1, 8)));
  Napi::Object o = Napi::Object::New(env);
  Napi::Array steps = numbers_to_js(env, d.steps);
  Napi::Array taus = numbers_to_js(env, d.thresholds);
  o.Set("stepsPerStage", steps);
  o.Set("thresholds", taus);
  return o;
}

}  // namespace

void init_dfm(Napi::Env env, Napi::Object exports) {
  exports.Set("trainerCreate", Napi::Function::New<guarded<trainer_create>>(env, "trainerCreate"));
  exports.Set("trainerOptions", Napi::Function::New<guarded<trainer_options>>(env, "trainerOptions"));
  exports.Set("trainerStep", Napi::Function::New<guarded<trainer_step>>(env, "trainerStep"));
  exports.Set("trainerStepSync", Napi::Function::New<guarded<trainer_step_sync>>(env, "trainerStepSync"));
  exports.Set("trainerDispose", Napi::Function::New<guarded<trainer_dispose>>(env, "trainerDispose"));
  exports.Set("trainerDraws", Napi::Function::New<guarded<trainer_draws>>(env, "trainerDraws"));
  exports.Set("trainerDefaults", Napi::Function::New<guarded<trainer_defaults>>(env, "trainerDefaults"));
  exports.Set("modelSample", Napi::Function::New<guarded<model_sample>>(env, "modelSample"));
  exports.Set("cancelJob", Napi::Function::New<guarded<cancel_job>>(env, "cancelJob"));
  exports.Set("flowSchedule", Napi::Function::New<guarded<flow_schedule>>(env, "flowSchedule"));
  exports.Set("samplerDefaults", Napi::Function::New<guarded<sampler_defaults>>(env, "samplerDefaults"));
}

}  // namespace df::addon

#include "sampler.h"

#include <cmath>
#include <string>

#include "../core/error.h"
#include "../core/philox.h"
#include "../core/tensor.h"
#include "../core/random_streams.h"

namespace df {

void validate_sampler_options(const SamplerOptions& opt, int stages) {
  make_sampling_schedule(stages, opt.steps, opt.thresholds, opt.time_shifts);  // checks steps, taus, shifts
  if (!(std::isfinite(opt.cfg) && opt.cfg >= 0 && opt.cfg <= 100))
    fail(Code::Config, "sample: cfg: expected a number from 0 to 100, got " + std::to_string(opt.cfg));
  if (!(opt.guidance_lo >= 0 && opt.guidance_lo <= opt.guidance_hi && opt.guidance_hi <= 1))
    fail(Code::Config, "sample: guidanceInterval: expected [lo, hi] with 0 <= lo <= hi <= 1");
}

int sampler_evaluations(const SamplerOptions& opt, bool guided) {
  int steps = 0;
  for (int n : opt.steps) steps += n;
  int per_step = opt.solver == Solver::Euler ? 1 : 2;
  return steps * per_step * (guided ? 2 : 1);
}

void sampler_initial_noise(const StageLayout& layout, uint64_t seed, float* x, Ops& ops) {
  // Element i of stage s's stream is element i of the stage (sample b starts at b * per_sample).
  for (int s = 0; s < layout.groups(); s++)
    ops.fill_normal(x + layout.offset(s), layout.group_size(s), seed, stream_id(Purpose::SampleNoise, 0, uint32_t(s)), 0);
}

namespace {

// Evaluates the (possibly guided) velocity into v, using a device buffer for the second branch.
class GuidedVelocity {
 public:
  GuidedVelocity(VelocityModel& model, const StageLayout& layout, const SamplerOptions& opt, const int32_t* labels)
      : model_(model), layout_(layout), opt_(opt), labels_(labels) {
    if (labels && opt.cfg != 1.0f) {
      uncond_ = Tensor({layout.total()}, DType::F32, model.ops().device());
      null_labels_.assign(size_t(layout.batch), opt.null_label);
    }
  }

  void operator()(const float* x, const float* t, const float* mask, double t_newest, float* v) {
    model_.velocity(layout_, x, t, mask, labels_, v);
    bool guide = uncond_.defined() && t_newest >= opt_.guidance_lo && t_newest <= opt_.guidance_hi;
    if (!guide) return;
    model_.velocity(layout_, x, t, mask, null_labels_.data(), uncond_.data<float>());
    model_.ops().guidance_combine(layout_, v, uncond_.data<float>(), opt_.cfg, v);
  }

 private:
  VelocityModel& model_;
  const StageLayout& layout_;
  const SamplerOptions& opt_;
  const int32_t* labels_;
  Tensor uncond_;
  std::vector<int32_t> null_labels_;
};

}  // namespace

void run_sampler(VelocityModel& model, const StageLayout& layout, const SamplerOptions& opt, const int32_t* labels,
                 float* x, const SamplerHooks& hooks) {
  const int S = layout.groups();
  const int64_t B = layout.batch;
  validate_sampler_options(opt, S);
  SamplingSchedule sch = make_sampling_schedule(S, opt.steps, opt.thresholds, opt.time_shifts);
  Ops& ops = model.ops();
  sampler_initial_noise(layout, opt.seed, x, ops);

  // Every buffer is allocated once here, before the loop: the states on the device, and the whole
  // schedule's per-step tables, the times and masks the model reads (host) and the steps the updates
  // read (device, uploaded once).
  const Device d = ops.device();
  const int64_t total = layout.total(), BS = B * S, steps = sch.total_steps;
  Tensor v1({total}, DType::F32, d), v2, xt;
  if (opt.solver != Solver::Euler) {
    v2 = Tensor({total}, DType::F32, d);
    xt = Tensor({total}, DType::F32, d);
  }
  std::vector<float> t0(size_t(steps * BS)), t1(t0.size()), tm(t0.size()), mask(t0.size()), dt(t0.size()),
      half_dt(t0.size());
  for (int i = 0; i < steps; i++) {
    const int k = sch.newest[size_t(i)];
    for (int64_t b = 0; b < B; b++)
      for (int s = 0; s < S; s++) {
        const size_t j = size_t(i * BS + b * S + s);
        t0[j] = float(sch.t(i, s));
        t1[j] = float(sch.t(i + 1, s));
        tm[j] = float(0.5 * (sch.t(i, s) + sch.t(i + 1, s)));
        dt[j] = float(sch.t(i + 1, s) - sch.t(i, s));
        half_dt[j] = 0.5f * dt[j];
        mask[j] = s <= k ? 1.f : 0.f;
      }
  }
  Tensor dt_dev({steps * BS}, DType::F32, d), half_dt_dev({steps * BS}, DType::F32, d);
  ops.upload(dt_dev.raw(), dt.data(), dt.size() * sizeof(float));
  ops.upload(half_dt_dev.raw(), half_dt.data(), half_dt.size() * sizeof(float));
  GuidedVelocity velocity(model, layout, opt, labels);

  for (int i = 0; i < steps; i++) {
    if (hooks.check_cancelled) hooks.check_cancelled();
    const int k = sch.newest[size_t(i)];
    const int64_t row = i * BS;
    const float* h = dt_dev.data<float>() + row;
    double tk0 = sch.t(i, k), tk1 = sch.t(i + 1, k);
    switch (opt.solver) {
      case Solver::Euler:
        velocity(x, &t0[size_t(row)], &mask[size_t(row)], tk0, v1.data<float>());
        ops.flow_euler_update(layout, x, v1.data<float>(), h, x);
        break;
      case Solver::Midpoint:
        velocity(x, &t0[size_t(row)], &mask[size_t(row)], tk0, v1.data<float>());
        ops.flow_euler_update(layout, x, v1.data<float>(), half_dt_dev.data<float>() + row, xt.data<float>());
        velocity(xt.data<float>(), &tm[size_t(row)], &mask[size_t(row)], 0.5 * (tk0 + tk1), v2.data<float>());
        ops.flow_euler_update(layout, x, v2.data<float>(), h, x);
        break;
      case Solver::Heun:
        velocity(x, &t0[size_t(row)], &mask[size_t(row)], tk0, v1.data<float>());
        ops.flow_euler_update(layout, x, v1.data<float>(), h, xt.data<float>());
        velocity(xt.data<float>(), &t1[size_t(row)], &mask[size_t(row)], tk1, v2.data<float>());
        ops.flow_heun_update(layout, x, v1.data<float>(), v2.data<float>(), h, x);
        break;
    }
    if (hooks.on_step) hooks.on_step(i, x);
    if (hooks.progress) hooks.progress(i + 1, sch.total_steps);
  }
}

}  // namespace df

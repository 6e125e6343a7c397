#include "sampler.h"

#include <algorithm>
#include <cstring>

#include "../core/error.h"
#include "../core/philox.h"
#include "../ops/integrator.h"
#include "random_streams.h"

namespace df {

int sampler_evaluations(const SamplerOptions& opt, bool guided) {
  int steps = 0;
  for (int n : opt.steps) steps += n;
  int per_step = opt.solver == Solver::Euler ? 1 : 2;
  return steps * per_step * (guided ? 2 : 1);
}

void sampler_initial_noise(const StageLayout& layout, uint64_t seed, float* x) {
  for (int s = 0; s < layout.stages(); s++) {
    RandomStream rs{seed, stream_id(Purpose::SampleNoise, 0, uint32_t(s))};
    int64_t n = layout.per_sample[size_t(s)];
    for (int64_t b = 0; b < layout.batch; b++) rs.fill_normal(x + layout.offset(s) + b * n, n, b * n);
  }
}

namespace {

// Evaluates the (possibly guided) velocity into v, using scratch for the second branch.
class GuidedVelocity {
 public:
  GuidedVelocity(VelocityModel& model, const StageLayout& layout, const SamplerOptions& opt, const int32_t* labels)
      : model_(model), layout_(layout), opt_(opt), labels_(labels) {
    if (labels && opt.cfg != 1.0f) {
      uncond_.assign(size_t(layout.total()), 0.f);
      null_labels_.assign(size_t(layout.batch), opt.null_label);
    }
  }

  void operator()(const float* x, const float* t, const float* mask, double t_newest, float* v) {
    model_.velocity(layout_, x, t, mask, labels_, v);
    bool guide = !uncond_.empty() && t_newest >= opt_.guidance_lo && t_newest <= opt_.guidance_hi;
    if (!guide) return;
    model_.velocity(layout_, x, t, mask, null_labels_.data(), uncond_.data());
    guidance_combine(layout_, v, uncond_.data(), opt_.cfg, v);
  }

 private:
  VelocityModel& model_;
  const StageLayout& layout_;
  const SamplerOptions& opt_;
  const int32_t* labels_;
  std::vector<float> uncond_;
  std::vector<int32_t> null_labels_;
};

}  // namespace

void run_sampler(VelocityModel& model, const StageLayout& layout, const SamplerOptions& opt, const int32_t* labels,
                 float* x, const SamplerHooks& hooks) {
  const int S = layout.stages();
  const int64_t B = layout.batch;
  SamplingSchedule sch = make_sampling_schedule(S, opt.steps, opt.thresholds);
  if (!(opt.cfg >= 0.f && opt.cfg < 1e4f)) fail(Code::Config, "sample: cfg: expected a finite number >= 0");
  sampler_initial_noise(layout, opt.seed, x);

  // Every buffer is allocated once here, before the loop.
  size_t total = size_t(layout.total());
  std::vector<float> v1(total), v2, xt;
  if (opt.solver != Solver::Euler) {
    v2.resize(total);
    xt.resize(total);
  }
  std::vector<float> t0(size_t(B * S)), t1(size_t(B * S)), tm(size_t(B * S)), mask(size_t(B * S)),
      dt(size_t(B * S)), half_dt(size_t(B * S));
  GuidedVelocity velocity(model, layout, opt, labels);

  for (int i = 0; i < sch.total_steps; i++) {
    if (hooks.check_cancelled) hooks.check_cancelled();
    int k = sch.newest[size_t(i)];
    for (int64_t b = 0; b < B; b++)
      for (int s = 0; s < S; s++) {
        size_t j = size_t(b * S + s);
        t0[j] = float(sch.t(i, s));
        t1[j] = float(sch.t(i + 1, s));
        tm[j] = float(0.5 * (sch.t(i, s) + sch.t(i + 1, s)));
        dt[j] = float(sch.t(i + 1, s) - sch.t(i, s));
        half_dt[j] = 0.5f * dt[j];
        mask[j] = s <= k ? 1.f : 0.f;
      }
    double tk0 = sch.t(i, k), tk1 = sch.t(i + 1, k);
    switch (opt.solver) {
      case Solver::Euler:
        velocity(x, t0.data(), mask.data(), tk0, v1.data());
        flow_euler_update(layout, x, v1.data(), dt.data(), x);
        break;
      case Solver::Midpoint:
        velocity(x, t0.data(), mask.data(), tk0, v1.data());
        flow_euler_update(layout, x, v1.data(), half_dt.data(), xt.data());
        velocity(xt.data(), tm.data(), mask.data(), 0.5 * (tk0 + tk1), v2.data());
        flow_euler_update(layout, x, v2.data(), dt.data(), x);
        break;
      case Solver::Heun:
        velocity(x, t0.data(), mask.data(), tk0, v1.data());
        flow_euler_update(layout, x, v1.data(), dt.data(), xt.data());
        velocity(xt.data(), t1.data(), mask.data(), tk1, v2.data());
        flow_heun_update(layout, x, v1.data(), v2.data(), dt.data(), x);
        break;
    }
    if (hooks.on_step) hooks.on_step(i, x);
    if (hooks.progress) hooks.progress(i + 1, sch.total_steps);
  }
}

}  // namespace df

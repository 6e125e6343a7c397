#include "sampler.h"

#include <algorithm>
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
  if (opt.eta.empty()) return;
  if (int(opt.eta.size()) != stages)
    fail(Code::Config, "sample: stageEta: expected " + std::to_string(stages) + " numbers (one per stage), got " +
                           std::to_string(opt.eta.size()));
  bool stochastic = false;
  for (size_t s = 0; s < opt.eta.size(); s++) {
    if (!(std::isfinite(opt.eta[s]) && opt.eta[s] >= 0 && opt.eta[s] <= 1))
      fail(Code::Config, "sample: stageEta[" + std::to_string(s) + "]: expected a number from 0 to 1, got " +
                             std::to_string(opt.eta[s]));
    stochastic = stochastic || opt.eta[s] > 0;
  }
  if (stochastic && opt.solver != Solver::Euler)
    fail(Code::Config, "sample: stageEta: stochastic steps need solver 'euler' (set stageEta to zeros for heun or midpoint)");
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

// One stochastic Euler step of a stage from t to t1 > t, as x1 = c x + cv v + cz z with z ~ N(0, 1).
// With the clean estimate X = x + (1 - t) v and the noise estimate N = x - t v, the step lands on
// t1 X + (1 - t1) (a N + e z): the Gaussian posterior of x_t1 given x_t and a clean level X widened
// by eta (e = eta * its standard deviation / (1 - t1), a^2 + e^2 = 1), so every t1 keeps the noise
// level 1 - t1. eta = 0 gives c = 1, cv = t1 - t: the plain Euler step; eta = 1 is ancestral sampling.
struct StochasticStep {
  double c, cv, cz;
};
StochasticStep stochastic_step(double t, double t1, double eta) {
  const double r = t / t1, beta2 = std::max(0.0, (1 - t) * (1 - t) - r * r * (1 - t1) * (1 - t1));
  const double post = std::sqrt(beta2) / (1 - t);  // the posterior's std / (1 - t1), in [0, 1]
  const double a = std::sqrt(std::max(0.0, 1 - eta * eta * post * post));
  const double c = t1 + (1 - t1) * a;
  return {c, t1 - c * t, eta * (1 - t1) * post};
}

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
  // Stochastic Euler steps (stageEta): per-row coefficients of x, v and fresh noise z, uploaded once.
  const bool stochastic = std::any_of(opt.eta.begin(), opt.eta.end(), [](double e) { return e > 0; });
  Tensor coef_dev, z;
  if (stochastic) {
    std::vector<float> coef(size_t(3 * steps * BS));  // [c | cv | cz], each steps * BS
    for (size_t j = 0; j < dt.size(); j++) {
      const double eta = opt.eta[j % size_t(S)];
      StochasticStep st = eta > 0 && dt[j] > 0 ? stochastic_step(t0[j], t1[j], eta) : StochasticStep{1, dt[j], 0};
      coef[j] = float(st.c);
      coef[dt.size() + j] = float(st.cv);
      coef[2 * dt.size() + j] = float(st.cz);
    }
    coef_dev = Tensor({3 * steps * BS}, DType::F32, d);
    ops.upload(coef_dev.raw(), coef.data(), coef.size() * sizeof(float));
    z = Tensor({total}, DType::F32, d);
    ops.zero(z.raw(), z.nbytes());
  }
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
        if (!stochastic) {
          ops.flow_euler_update(layout, x, v1.data<float>(), h, x);
          break;
        }
        {
          const float* c = coef_dev.data<float>() + row;
          ops.scaled_difference(layout, x, nullptr, c, x);                        // c x
          ops.flow_euler_update(layout, x, v1.data<float>(), c + steps * BS, x);  // + cv v
          for (int s = 0; s < S; s++)  // fresh noise for the stages that move with eta > 0
            if (opt.eta[size_t(s)] > 0 && dt[size_t(row + s)] > 0)
              ops.fill_normal(z.data<float>() + layout.offset(s), layout.group_size(s), opt.seed,
                              stream_id(Purpose::SampleNoise, uint64_t(i) + 1, uint32_t(s)), 0);
          ops.flow_euler_update(layout, x, z.data<float>(), c + 2 * steps * BS, x);  // + cz z
        }
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

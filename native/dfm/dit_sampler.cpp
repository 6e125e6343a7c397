#include "dit_sampler.h"

#include <cmath>
#include <cstring>
#include <string>

#include "../core/error.h"
#include "trainer.h"

namespace df {

SamplerOptions default_sampler_options(int stages) {
  SamplerOptions o;
  if (stages == 1) {
    o.steps = {40};
  } else if (stages == 2) {
    o.steps = {30, 10};
    o.thresholds = {0.7};
  } else {
    o.steps.assign(size_t(stages), 10);
    o.thresholds.assign(size_t(stages - 1), 0.7);
  }
  return o;
}

namespace {

// The DiT as a velocity field: per-stage inputs straight from the flat state, outputs copied out.
class DiTVelocity : public VelocityModel {
 public:
  explicit DiTVelocity(DiT& model) : model_(model) {}
  void velocity(const StageLayout& l, const float* x, const float* t, const float* mask, const int32_t* labels,
                float* v) override {
    DiTBatch b;
    b.batch = l.batch;
    for (int s = 0; s < l.stages(); s++) b.x.push_back(x + l.offset(s));
    b.time = t;
    b.mask = mask;
    b.labels = model_.config().num_classes > 0 ? labels : nullptr;
    model_.forward(b);
    for (int s = 0; s < l.stages(); s++)
      std::memcpy(v + l.offset(s), model_.output(s), size_t(l.stage_size(s)) * sizeof(float));
  }

 private:
  DiT& model_;
};

}  // namespace

void validate_sample_request(const DiTConfig& c, const SampleRequest& r) {
  make_sampling_schedule(int(c.stages), r.options.steps, r.options.thresholds);  // checks steps and taus
  if (r.count < 1 || r.count > 65536) fail(Code::Config, "sample: n: expected an integer from 1 to 65536, got " + std::to_string(r.count));
  if (!(std::isfinite(r.options.cfg) && r.options.cfg >= 0 && r.options.cfg <= 100))
    fail(Code::Config, "sample: cfg: expected a number from 0 to 100, got " + std::to_string(r.options.cfg));
  if (!(r.options.guidance_lo >= 0 && r.options.guidance_lo <= r.options.guidance_hi && r.options.guidance_hi <= 1))
    fail(Code::Config, "sample: guidanceInterval: expected [lo, hi] with 0 <= lo <= hi <= 1");
  if (c.num_classes > 0) {
    if (int64_t(r.labels.size()) != r.count)
      fail(Code::ArgValue, "sample: labels: expected " + std::to_string(r.count) + " labels (one per sample), got " +
                               std::to_string(r.labels.size()));
    for (size_t i = 0; i < r.labels.size(); i++)
      if (r.labels[i] < 0 || r.labels[i] > c.num_classes)
        fail(Code::ArgValue, "sample: labels[" + std::to_string(i) + "] = " + std::to_string(r.labels[i]) +
                                 " is outside [0, " + std::to_string(c.num_classes) + "] (" + std::to_string(c.num_classes) +
                                 " is the null class)");
  } else if (!r.labels.empty()) {
    fail(Code::ArgValue, "sample: labels: the model is unconditional; pass no labels");
  }
}

SampleResult sample_images(const DiTConfig& c, const float* weights, const SampleRequest& r, const SamplerHooks& hooks) {
  validate_sample_request(c, r);
  const int S = int(c.stages);
  DiT model(c, r.count, DiTUse::Inference);  // forward only: no backward buffers
  std::memcpy(model.param_data(), weights, size_t(model.num_params()) * sizeof(float));
  StageLayout l = stage_layout(c, r.count);
  PyramidShape ps = pyramid_geometry(c, r.count);
  const Decomposition& dec = cpu_decomposition(r.decomposition);
  std::vector<float> x(size_t(l.total())), workspace(size_t(std::max<int64_t>(ps.workspace_floats(), 1)));
  auto level_ptrs = [&](const float* base) {
    std::vector<const float*> p;
    for (int s = 0; s < S; s++) p.push_back(base + l.offset(s));
    return p;
  };
  SampleResult out;
  SamplerOptions opt = r.options;
  opt.null_label = int32_t(c.num_classes);
  SamplingSchedule sch = make_sampling_schedule(S, opt.steps, opt.thresholds);
  SamplerHooks h = hooks;
  if (r.intermediates) {
    h.on_step = [&](int step, const float* state) {
      // the end of a phase: the last step whose newest stage is k
      if (step + 1 < sch.total_steps && sch.newest[size_t(step + 1)] == sch.newest[size_t(step)]) return;
      Tensor img(ps.image_shape(), DType::F32);
      dec.recompose(level_ptrs(state).data(), img.data<float>(), workspace.data(), ps);
      out.intermediates.push_back(img);
      if (hooks.on_step) hooks.on_step(step, state);
    };
  }
  DiTVelocity field(model);
  run_sampler(field, l, opt, c.num_classes > 0 ? r.labels.data() : nullptr, x.data(), h);

  out.images = Tensor(ps.image_shape(), DType::F32);
  dec.recompose(level_ptrs(x.data()).data(), out.images.data<float>(), workspace.data(), ps);
  for (int s = 0; s < S; s++) {
    Tensor level(ps.level_shape(s), DType::F32);
    std::memcpy(level.raw(), x.data() + l.offset(s), level.nbytes());
    out.levels.push_back(level);
  }
  if (r.previews)
    for (int k = 1; k <= S; k++) {
      Tensor img(ps.image_shape(), DType::F32);
      dec.preview(level_ptrs(x.data()).data(), k, img.data<float>(), workspace.data(), ps);
      out.previews.push_back(img);
    }
  return out;
}

}  // namespace df

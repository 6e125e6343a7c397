#include "dit_sampler.h"

#include <algorithm>
#include <string>

#include "../core/error.h"

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
  Ops& ops() override { return model_.ops(); }
  void velocity(const StageLayout& l, const float* x, const float* t, const float* mask, const int32_t* labels,
                float* v) override {
    DiTBatch b;
    b.batch = l.batch;
    for (int s = 0; s < l.groups(); s++) b.x.push_back(x + l.offset(s));
    b.time = t;
    b.mask = mask;
    b.labels = model_.config().num_classes > 0 ? labels : nullptr;
    model_.forward(b);
    for (int s = 0; s < l.groups(); s++)
      model_.ops().copy(v + l.offset(s), model_.output(s), size_t(l.group_size(s)) * sizeof(float));
  }

 private:
  DiT& model_;
};

}  // namespace

void validate_sample_request(const DiTConfig& c, const SampleRequest& r) {
  validate_sampler_options(r.options, int(c.stages));
  if (r.count < 1 || r.count > 65536) fail(Code::Config, "sample: n: expected an integer from 1 to 65536, got " + std::to_string(r.count));
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

SampleResult sample_images(const DiTConfig& c, const float* weights, const SampleRequest& r, const SamplerHooks& hooks,
                           Ops& ops) {
  validate_sample_request(c, r);
  const int S = int(c.stages);
  DiT model(c, r.count, DiTUse::Inference, ops);  // forward only: no backward buffers
  const Device device = ops.device();
  ops.copy(model.param_data(), weights, size_t(model.num_params()) * sizeof(float));
  model.weights_changed();
  const StageLayout l = stage_layout(c, r.count);
  const PyramidShape ps = pyramid_geometry(c, r.count);
  Tensor x({l.total()}, DType::F32, device), workspace({std::max<int64_t>(ps.workspace_floats(), 1)}, DType::F32, device);
  auto level_ptrs = [&](const float* base) {
    std::vector<const float*> p;
    for (int s = 0; s < S; s++) p.push_back(base + l.offset(s));
    return p;
  };
  // The image of stages 1..up_to recomposed at full size.
  auto recomposed = [&](const float* state, int up_to) {
    Tensor img(ps.image_shape(), DType::F32, device);
    ops.pyramid_preview(r.decomposition, level_ptrs(state).data(), up_to, img.data<float>(), workspace.data<float>(), ps);
    return img;
  };
  SampleResult out;
  SamplerOptions opt = r.options;
  opt.null_label = int32_t(c.num_classes);
  SamplingSchedule sch = make_sampling_schedule(S, opt.steps, opt.thresholds, opt.time_shifts);
  SamplerHooks h = hooks;
  if (r.intermediates) {
    h.on_step = [&](int step, const float* state) {
      // the end of a phase: the last step whose newest stage is k
      if (step + 1 < sch.total_steps && sch.newest[size_t(step + 1)] == sch.newest[size_t(step)]) return;
      out.intermediates.push_back(recomposed(state, S));
      if (hooks.on_step) hooks.on_step(step, state);
    };
  }
  DiTVelocity field(model);
  run_sampler(field, l, opt, c.num_classes > 0 ? r.labels.data() : nullptr, x.data<float>(), h);

  out.images = recomposed(x.data<float>(), S);
  for (int s = 0; s < S; s++) {
    Tensor level(ps.level_shape(s), DType::F32, device);
    ops.copy(level.raw(), x.data<float>() + l.offset(s), level.nbytes());
    out.levels.push_back(level);
  }
  if (r.previews)
    for (int k = 1; k <= S; k++) out.previews.push_back(recomposed(x.data<float>(), k));
  return out;
}

}  // namespace df

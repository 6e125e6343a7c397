#include "trainer.h"

#include <cmath>

#include "../core/error.h"

namespace df {

std::vector<double> default_stage_probs(int stages) {
  if (stages == 1) return {1.0};
  std::vector<double> p(size_t(stages), 0.1 / double(stages - 1));
  p[0] = 0.9;
  return p;
}

StageLayout stage_layout(const DiTConfig& c, int64_t batch) {
  StageLayout l;
  l.batch = batch;
  for (int64_t s = 0; s < c.stages; s++) l.per_sample.push_back(c.stage_numel(s));
  return l;
}

PyramidShape pyramid_geometry(const DiTConfig& c, int64_t batch) {
  PyramidShape p;
  p.batch = batch;
  p.channels = c.channels;
  p.height = c.height;
  p.width = c.width;
  p.stages = int(c.stages);
  return p;
}

Trainer::Trainer(DiT& model, DiTOptimizer& optimizer, const TrainerOptions& options)
    : model_(model), optimizer_(optimizer), options_(options) {
  const DiTConfig& c = model_.config();
  if (options_.batch.stage_probs.empty()) options_.batch.stage_probs = default_stage_probs(int(c.stages));
  options_.batch.null_label = c.num_classes > 0 ? int32_t(c.num_classes) : -1;
  validate_batch_config(options_.batch, int(c.stages));
  decomposition_ = &cpu_decomposition(options_.decomposition);
  int64_t B = model_.max_batch();
  StageLayout l = stage_layout(c, B);
  size_t total = size_t(l.total());
  clean_.assign(total, 0.f);
  noisy_.assign(total, 0.f);
  target_.assign(total, 0.f);
  t_.assign(size_t(B * c.stages), 0.f);
  mask_.assign(size_t(B * c.stages), 0.f);
  labels_.assign(size_t(B), 0);
  workspace_.assign(size_t(std::max<int64_t>(pyramid_geometry(c, B).workspace_floats(), 1)), 0.f);
}

TrainStepStats Trainer::step(const float* images, const int32_t* labels, int64_t batch) {
  const DiTConfig& c = model_.config();
  if (batch < 1 || batch > model_.max_batch())
    fail(Code::Shape, "trainer.step: images: batch of " + std::to_string(batch) + " but the trainer was made for 1 to " +
                          std::to_string(model_.max_batch()));
  if (c.num_classes > 0 && !labels) fail(Code::ArgValue, "trainer.step: labels: the model is class-conditional; pass labels");
  const int S = int(c.stages);
  StageLayout l = stage_layout(c, batch);
  PyramidShape ps = pyramid_geometry(c, batch);
  std::vector<float*> levels(static_cast<size_t>(S));
  for (int s = 0; s < S; s++) levels[size_t(s)] = clean_.data() + l.offset(s);
  decomposition_->decompose(images, levels.data(), workspace_.data(), ps);

  if (labels) {
    for (int64_t b = 0; b < batch; b++) {
      if (labels[b] < 0 || labels[b] >= c.num_classes)
        fail(Code::ArgValue, "trainer.step: labels[" + std::to_string(b) + "] = " + std::to_string(labels[b]) +
                                 " is outside [0, " + std::to_string(c.num_classes) + ")");
      labels_[size_t(b)] = labels[b];
    }
  }
  const uint64_t step = uint64_t(optimizer_.steps());
  TrainStepStats stats;
  stats.active_stage = prepare_dfm_batch(l, options_.batch, options_.seed, step, clean_.data(), noisy_.data(),
                                         target_.data(), t_.data(), mask_.data(), labels ? labels_.data() : nullptr);
  DiTBatch b;
  b.batch = batch;
  std::vector<const float*> targets(static_cast<size_t>(S));
  for (int s = 0; s < S; s++) {
    b.x.push_back(noisy_.data() + l.offset(s));
    targets[size_t(s)] = target_.data() + l.offset(s);
  }
  b.time = t_.data();
  b.mask = mask_.data();
  b.labels = c.num_classes > 0 ? labels_.data() : nullptr;
  model_.forward(b);
  const std::vector<double>& weights = options_.batch.stage_loss_weights;
  stats.loss = model_.loss(targets, true, weights.empty() ? nullptr : &weights);
  if (!std::isfinite(stats.loss)) fail(Code::NonFinite, "trainer.step: the loss is not finite (" + std::to_string(stats.loss) + "); weights left unchanged");
  for (int s = 0; s < S; s++) stats.stage_loss.push_back(model_.loss_stage(s));
  OptimizerStepStats o = optimizer_.step(model_);
  stats.grad_norm = o.grad_norm;
  stats.lr = o.lr;
  stats.step = optimizer_.steps();
  return stats;
}

}  // namespace df

#include "trainer.h"

#include <algorithm>
#include <cmath>

#include "../core/error.h"

namespace df {

std::vector<double> default_stage_probs(int stages) {
  if (stages == 1) return {1.0};
  std::vector<double> p(size_t(stages), 0.1 / double(stages - 1));
  p[0] = 0.9;
  return p;
}

TrainerOptions resolve_trainer_options(TrainerOptions o, int stages, int32_t null_label) {
  if (o.batch.stage_probs.empty()) o.batch.stage_probs = default_stage_probs(stages);
  o.batch.null_label = null_label;
  validate_batch_config(o.batch, stages);
  return o;
}

Trainer::Trainer(DiT& model, DiTOptimizer& optimizer, const TrainerOptions& options)
    : model_(model), optimizer_(optimizer) {
  const DiTConfig& c = model_.config();
  options_ = resolve_trainer_options(options, int(c.stages), c.num_classes > 0 ? int32_t(c.num_classes) : -1);
  const int64_t B = model_.max_batch(), S = c.stages;
  const Device d = model_.device();
  const int64_t total = stage_layout(c, B).total();
  clean_ = Tensor::zeros({total}, DType::F32, d);
  noisy_ = Tensor::zeros({total}, DType::F32, d);
  target_ = Tensor::zeros({total}, DType::F32, d);
  t_dev_ = Tensor::zeros({B * S}, DType::F32, d);
  workspace_ = Tensor::zeros({std::max<int64_t>(pyramid_geometry(c, B).workspace_floats(), 1)}, DType::F32, d);
  t_.assign(size_t(B * S), 0.f);
  mask_.assign(size_t(B * S), 0.f);
  labels_.assign(size_t(B), 0);
}

int Trainer::prepare(uint64_t step, const float* images, const int32_t* labels, int64_t batch) {
  const DiTConfig& c = model_.config();
  if (batch < 1 || batch > model_.max_batch())
    fail(Code::Shape, "trainer.step: images: batch of " + std::to_string(batch) + " but the trainer was made for 1 to " +
                          std::to_string(model_.max_batch()));
  if (c.num_classes > 0 && !labels) fail(Code::ArgValue, "trainer.step: labels: the model is class-conditional; pass labels");
  if (labels) {
    for (int64_t b = 0; b < batch; b++) {
      if (labels[b] < 0 || labels[b] >= c.num_classes)
        fail(Code::ArgValue, "trainer.step: labels[" + std::to_string(b) + "] = " + std::to_string(labels[b]) +
                                 " is outside [0, " + std::to_string(c.num_classes) + ")");
      labels_[size_t(b)] = labels[b];
    }
  }
  Ops& ops = model_.ops();
  const int S = int(c.stages);
  const StageLayout l = stage_layout(c, batch);
  std::vector<float*> levels(static_cast<size_t>(S));
  for (int s = 0; s < S; s++) levels[size_t(s)] = clean_.data<float>() + l.offset(s);
  ops.pyramid_decompose(options_.decomposition, images, levels.data(), workspace_.data<float>(), pyramid_geometry(c, batch));
  const int Q = draw_dfm_batch(options_.batch, S, batch, options_.seed, step, t_.data(), mask_.data(),
                               labels ? labels_.data() : nullptr);
  ops.upload(t_dev_.raw(), t_.data(), size_t(batch * S) * sizeof(float));
  noise_dfm_batch(ops, l, Q, options_.seed, step, clean_.data<float>(), t_dev_.data<float>(), mask_.data(), noisy_.data<float>(),
                  target_.data<float>());
  return Q;
}

TrainStepStats Trainer::step(const float* images, const int32_t* labels, int64_t batch) {
  const DiTConfig& c = model_.config();
  TrainStepStats stats;
  stats.active_stage = prepare(uint64_t(optimizer_.steps()), images, labels, batch);
  const StageLayout l = stage_layout(c, batch);
  DiTBatch b;
  b.batch = batch;
  std::vector<const float*> targets;
  for (int s = 0; s < int(c.stages); s++) {
    b.x.push_back(noisy_.data<float>() + l.offset(s));
    targets.push_back(target_.data<float>() + l.offset(s));
  }
  b.time = t_.data();
  b.mask = mask_.data();
  b.labels = c.num_classes > 0 ? labels_.data() : nullptr;
  const std::vector<double>& weights = options_.batch.stage_loss_weights;
  BatchLoss r = train_on_batch(model_, optimizer_, b, targets, weights.empty() ? nullptr : &weights, TrainMode::Step);
  stats.loss = r.loss;
  stats.stage_loss = r.stage_loss;
  stats.grad_norm = r.optimizer.grad_norm;
  stats.lr = r.optimizer.lr;
  stats.step = r.step;
  return stats;
}

TrainingDraws Trainer::draws(uint64_t step, const float* images, const int32_t* labels, int64_t batch) {
  const DiTConfig& c = model_.config();
  const int S = int(c.stages);
  TrainingDraws d;
  d.active_stage = prepare(step, images, labels, batch);
  Ops& ops = model_.ops();
  const StageLayout l = stage_layout(c, batch);
  const PyramidShape ps = pyramid_geometry(c, batch);
  std::vector<float> clean = download_floats(ops, clean_.data<float>(), l.total());
  std::vector<float> target = download_floats(ops, target_.data<float>(), l.total());
  for (int s = 0; s < S; s++) {
    Tensor level(ps.level_shape(s), DType::F32), noise(ps.level_shape(s), DType::F32);
    const float* cs = clean.data() + l.offset(s);
    const float* vs = target.data() + l.offset(s);
    std::copy(cs, cs + l.group_size(s), level.data<float>());
    const int64_t n = l.per_sample[size_t(s)];
    for (int64_t i = 0; i < l.group_size(s); i++)  // N = X - v where the stage is active
      noise.data<float>()[i] = mask_[size_t((i / n) * S + s)] != 0.f ? cs[i] - vs[i] : 0.f;
    d.levels.push_back(level);
    d.noise.push_back(noise);
  }
  auto host_tensor = [&](const std::vector<float>& v) {
    Tensor x({batch, int64_t(S)}, DType::F32);
    std::copy(v.begin(), v.begin() + batch * S, x.data<float>());
    return x;
  };
  d.t = host_tensor(t_);
  d.mask = host_tensor(mask_);
  d.labels = Tensor({batch}, DType::I32);
  for (int64_t b = 0; b < batch; b++) d.labels.data<int32_t>()[b] = c.num_classes > 0 ? labels_[size_t(b)] : 0;
  return d;
}

}  // namespace df

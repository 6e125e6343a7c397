// The DFM training step (the paper's Algorithm 1) entirely in native code, on the model's device:
// decompose the batch, draw the active stage and the per-stage times, add noise, run the DiT forward,
// the masked per-stage loss and the backward, clip, AdamW and EMA (model/training.h's one
// train-step path). All buffers are allocated once for (config, max batch); a step allocates
// nothing. Every random number comes from Philox keyed by (seed, step, purpose), so a run resumed
// from a checkpoint continues bit for bit, on any backend.
#pragma once
#include <cstdint>
#include <vector>

#include "../model/training.h"
#include "../ops/pyramid.h"
#include "layout.h"
#include "train_batch.h"

namespace df {

struct TrainerOptions {
  PyramidKind decomposition = PyramidKind::Laplacian;
  DfmBatchConfig batch;  // stage_probs empty: the default for S stages (default_stage_probs)
  uint64_t seed = 0;     // the data side's randomness (times, noise, label dropout)
};

// The paper's [0.9, 0.1] for 2 stages; for S stages, 0.9 on the first and the rest shared by the
// others; [1] for plain flow matching.
std::vector<double> default_stage_probs(int stages);

// The options with every default filled in for a model of `stages` stages (and its null class, or
// -1 when unconditional), checked: Code::Config naming the bad field. What a Trainer uses, and what
// the TypeScript API reports as the defaults.
TrainerOptions resolve_trainer_options(TrainerOptions options, int stages, int32_t null_label);

struct TrainStepStats {
  int64_t step = 0;  // the optimiser's step count after this step
  int active_stage = 0;
  double loss = 0;
  std::vector<double> stage_loss;
  double grad_norm = 0, lr = 0;
};

// The draws of one step, on the host: the clean levels, the noise (zero for masked stages), the
// times and mask [B, S], the labels after dropout and the active stage.
struct TrainingDraws {
  std::vector<Tensor> levels, noise;
  Tensor t, mask, labels;
  int active_stage = 0;
};

class Trainer {
 public:
  // Works on a model and its optimiser (fresh or loaded from a checkpoint), which must outlive it.
  Trainer(DiT& model, DiTOptimizer& optimizer, const TrainerOptions& options);

  // One step on images [B, C, H, W] (f32, on the model's device) in the model's size (B <= max
  // batch) and labels [B] (host; null when the model is unconditional). Code::Shape / Code::ArgValue
  // for bad inputs, Code::NonFinite when the loss or the gradient is not finite (the weights are then
  // left untouched).
  TrainStepStats step(const float* images, const int32_t* labels, int64_t batch);

  // What step() would draw at optimiser step `step` for these images, without training.
  TrainingDraws draws(uint64_t step, const float* images, const int32_t* labels, int64_t batch);

  DiT& model() { return model_; }
  DiTOptimizer& optimizer() { return optimizer_; }
  const TrainerOptions& options() const { return options_; }

 private:
  // Decomposes the images and makes the draws of `step` into the buffers below; returns Q.
  int prepare(uint64_t step, const float* images, const int32_t* labels, int64_t batch);

  DiT& model_;
  DiTOptimizer& optimizer_;
  TrainerOptions options_;
  // On the device, for max batch: clean levels, noisy inputs and targets (the flat multi-stage
  // layout), the times [B, S] the kernels read, the pyramid's workspace. On the host: the times,
  // masks and labels of the batch.
  Tensor clean_, noisy_, target_, t_dev_, workspace_;
  std::vector<float> t_, mask_;
  std::vector<int32_t> labels_;
};

}  // namespace df

// The DFM training step (the paper's Algorithm 1) entirely in native code: decompose the batch,
// draw the active stage and the per-stage times, add noise, run the DiT forward, the masked
// per-stage loss and the backward, clip, AdamW and EMA. All buffers are allocated once for
// (config, max batch); a step allocates nothing. Every random number comes from Philox keyed by
// (seed, step, purpose), so a run resumed from a checkpoint continues bit for bit.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
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

// The flat multi-stage layout and the pyramid geometry of `batch` images of a model's size.
StageLayout stage_layout(const DiTConfig& c, int64_t batch);
PyramidShape pyramid_geometry(const DiTConfig& c, int64_t batch);

// The paper's [0.9, 0.1] for 2 stages; for S stages, 0.9 on the first and the rest shared by the
// others; [1] for plain flow matching.
std::vector<double> default_stage_probs(int stages);

struct TrainStepStats {
  int64_t step = 0;  // the optimiser's step count after this step
  int active_stage = 0;
  double loss = 0;
  std::vector<double> stage_loss;
  double grad_norm = 0, lr = 0;
};

class Trainer {
 public:
  // Works on a model and its optimiser (fresh or loaded from a checkpoint), which must outlive it.
  Trainer(DiT& model, DiTOptimizer& optimizer, const TrainerOptions& options);

  // One step on images [B, C, H, W] in the model's size (B <= max batch) and labels [B] (null when
  // the model is unconditional). Code::Shape / Code::ArgValue for bad inputs, Code::NonFinite when
  // the loss or the gradient is not finite (the weights are then left untouched).
  TrainStepStats step(const float* images, const int32_t* labels, int64_t batch);

  DiT& model() { return model_; }
  DiTOptimizer& optimizer() { return optimizer_; }
  const TrainerOptions& options() const { return options_; }
  const Decomposition& decomposition() const { return *decomposition_; }

 private:
  DiT& model_;
  DiTOptimizer& optimizer_;
  TrainerOptions options_;
  const Decomposition* decomposition_;
  // Buffers for max batch: clean levels, noisy inputs and targets (flat multi-stage layout),
  // times and masks [B, S], labels, the pyramid's workspace.
  std::vector<float> clean_, noisy_, target_, t_, mask_, workspace_;
  std::vector<int32_t> labels_;
};

}  // namespace df

// Training a DiT: the optimiser state (AdamW moments, EMA weights, step count) on the model's
// device, the one path that turns a batch into a loss, gradients and an optimiser step, and the
// checkpoints.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "../core/tensor.h"
#include "../ops/optimizer.h"
#include "dit.h"

namespace df {

struct OptimizerStepStats {
  double lr = 0;          // the learning rate used (after warm-up)
  double grad_norm = 0;   // before clipping
  double clip_scale = 1;  // the factor applied to the gradient
  double ema_decay = 0;   // the EMA decay used (ema_decay_at)
};

class DiTOptimizer {
 public:
  // Moments start at zero and the EMA at the model's current weights.
  DiTOptimizer(const DiT& model, const AdamWOptions& options);

  // One step on model.grad_data(): clip, AdamW, then EMA. Code::NonFinite when the gradient norm is
  // not finite (the weights are left untouched).
  OptimizerStepStats step(DiT& model);

  const AdamWOptions& options() const { return options_; }
  void set_options(const AdamWOptions& o);
  int64_t steps() const { return step_; }
  void set_steps(int64_t s) { step_ = s; }
  // f32 state on the model's device.
  float* m() { return m_.data<float>(); }
  float* v() { return v_.data<float>(); }
  float* ema() { return ema_.data<float>(); }

 private:
  AdamWOptions options_;
  int64_t n_;
  Tensor m_, v_, ema_;
  int64_t step_ = 0;
};

// What train_on_batch does after the forward pass.
enum class TrainMode { Loss, LossAndGrad, Step };

struct BatchLoss {
  double loss = 0;                  // sum_s w_s mse_s
  std::vector<double> stage_loss;   // mse_s, unweighted
  bool stepped = false;
  OptimizerStepStats optimizer;     // when stepped
  int64_t step = 0;                 // the optimiser's step count afterwards
};

// Forward, the loss against `targets` (f32, on the device) with per-stage weights (null: all 1),
// and for LossAndGrad/Step the backward; Step then clips and applies AdamW and the EMA. A loss that
// is not finite is Code::NonFinite before anything changes.
BatchLoss train_on_batch(DiT& model, DiTOptimizer& optimizer, const DiTBatch& batch,
                         const std::vector<const float*>& targets, const std::vector<double>* stage_weights,
                         TrainMode mode);

struct CheckpointParts {
  bool optimizer = true;  // AdamW moments and step count ("adam.m.<name>", "adam.v.<name>")
  bool ema = true;        // "ema.<name>"
};

// Writes parameters under their state_dict names, plus the optional parts, with the config (JSON),
// the optimiser options and step in the metadata, all f32 whatever the model's device. Atomic.
void save_checkpoint(const std::string& path, const DiT& model, DiTOptimizer* optimizer, const CheckpointParts& parts);

// Reads a checkpoint onto the device of `ops`: the model (config from the metadata) and, when the file has
// them, the optimiser state and EMA (else the optimizer starts fresh with `fallback` options).
// Code::Format for a corrupt file or missing/mis-shaped tensors, Code::Config for a bad config, or
// when `expect` is given and differs from the file's config, Code::NonFinite when a weight, EMA weight
// or moment is NaN or infinite unless allow_non_finite (checkpoint_checks.h).
struct LoadedCheckpoint {
  std::unique_ptr<DiT> model;
  std::unique_ptr<DiTOptimizer> optimizer;
  bool had_optimizer = false, had_ema = false;
};
LoadedCheckpoint load_checkpoint(const std::string& path, int64_t max_batch, const AdamWOptions& fallback,
                                 const DiTConfig* expect = nullptr, Ops& ops = cpu_ops(),
                                 bool allow_non_finite = false);

std::string adamw_options_json(const AdamWOptions& o);

// A copy on the host of `n` f32 values of the model's device starting at `src` (checkpoints, the
// JS getters).
std::vector<float> download_floats(Ops& ops, const float* src, int64_t n);

}  // namespace df

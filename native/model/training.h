// The optimiser state of a DiT (AdamW moments, EMA weights, step count) and its checkpoints.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "../core/tensor.h"
#include "../ops/optimizer.h"
#include "dit.h"

namespace df {

struct OptimizerStepStats {
  double lr = 0;          // the learning rate used (after warm-up)
  double grad_norm = 0;   // before clipping
  double clip_scale = 1;  // the factor applied to the gradient
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
  float* m() { return m_.data<float>(); }
  float* v() { return v_.data<float>(); }
  float* ema() { return ema_.data<float>(); }

 private:
  AdamWOptions options_;
  int64_t n_;
  Tensor m_, v_, ema_;
  int64_t step_ = 0;
};

struct CheckpointParts {
  bool optimizer = true;  // AdamW moments and step count ("adam.m.<name>", "adam.v.<name>")
  bool ema = true;        // "ema.<name>"
};

// Writes parameters under their state_dict names, plus the optional parts, with the config (JSON),
// the optimiser options and step in the metadata. Atomic.
void save_checkpoint(const std::string& path, const DiT& model, DiTOptimizer* optimizer, const CheckpointParts& parts);

// Reads a checkpoint: the model (config from the metadata) and, when the file has them, the
// optimiser state and EMA (else the optimizer starts fresh with `fallback` options).
// Code::Format for a corrupt file or missing/mis-shaped tensors, Code::Config for a bad config, or
// when `expect` is given and differs from the file's config, Code::NonFinite when a weight, EMA weight
// or moment is NaN or infinite unless allow_non_finite (checkpoint_checks.h).
struct LoadedCheckpoint {
  std::unique_ptr<DiT> model;
  std::unique_ptr<DiTOptimizer> optimizer;
  bool had_optimizer = false, had_ema = false;
};
LoadedCheckpoint load_checkpoint(const std::string& path, int64_t max_batch, const AdamWOptions& fallback,
                                 const DiTConfig* expect = nullptr, bool allow_non_finite = false);

std::string adamw_options_json(const AdamWOptions& o);

}  // namespace df

// The data side of a DFM training step (the paper's Algorithm 1, steps 1-4 and 6): from the clean
// per-stage levels X_s of a batch, draw the active stage Q, the per-stage times, the noise, and make
// the model inputs x_s = t_s X_s + (1 - t_s) N_s and targets v_s = X_s - N_s. Every draw comes
// from Philox keyed by (seed, step, purpose), so a step is reproducible for any thread count and
// on any backend. The small draws (Q, times, mask, label dropout) are made on the host; the noise
// and the forward process run on the device of the levels.
#pragma once
#include <cstdint>
#include <vector>

#include "../ops/ops.h"
#include "layout.h"

namespace df {

struct DfmBatchConfig {
  std::vector<double> stage_probs;  // p_q, one per stage, summing to 1
  // A schedule of p_q (coarse first, then finer): when stage_probs_final is given, step k draws with
  // stage_probs + min(1, k / stage_probs_steps) (stage_probs_final - stage_probs), so the
  // probabilities move linearly to stage_probs_final over stage_probs_steps steps and stay there.
  std::vector<double> stage_probs_final;
  int64_t stage_probs_steps = 0;
  // true (default): each sample draws its own Q from p_q; false: one Q for the whole batch (the
  // paper's Algorithm 1). The expected loss is the same; a mixed batch gives every step gradients of
  // every stage, so no step is spent on one stage alone. Measured (bench/RESULTS.md, "one active
  // stage per sample"): with the paper's p_q the per-sample draw is 8-79 % better on every measure
  // at 1x and 3x the experiment's budget.
  bool stage_per_sample = true;
  double time_loc = 0.0, time_scale = 1.0;    // t_Q ~ LogitNormal(loc, scale)
  double prior_loc = 1.5, prior_scale = 1.0;  // t_s for s < Q ~ LogitNormal(prior_loc, prior_scale)
  // Per stage, added to time_loc when that stage is the active one: t_Q ~ LogitNormal(time_loc +
  // shift_Q, time_scale). A finer level carries less signal than the noise it is mixed with (a
  // Laplacian band of a 32 px image has a quarter of the coarse level's RMS), so at the same t it is
  // buried deeper; a positive shift moves its training times towards the data end, where its detail
  // is decided. Empty: 0 for every stage (the paper's single distribution).
  std::vector<double> stage_time_shifts;
  double label_dropout = 0.1;                 // labels replaced by null_label with this probability
  int32_t null_label = -1;                    // < 0: unconditional (no dropout)
  // The loss is sum_s w_s * mse_s over the unmasked stages; empty: every w_s = 1 (the paper's loss).
  std::vector<double> stage_loss_weights;
};

// Throws Code::Config naming the bad field.
void validate_batch_config(const DfmBatchConfig& c, int stages);

// p_q at optimiser step `step` (the schedule above; stage_probs when there is none).
std::vector<double> stage_probs_at(const DfmBatchConfig& c, uint64_t step);

// Draws Q (0-based) for a step (with stage_per_sample, the first sample's).
int draw_active_stage(const DfmBatchConfig& c, uint64_t seed, uint64_t step);

// The host draws of a step for `batch` samples of `stages` stages: t and mask ([B, S]), label
// dropout applied in place (labels may be null). A sample's stages after its Q get t = 0 and mask
// 0. Returns the finest active stage of the batch (Q itself when Q is drawn per batch).
int draw_dfm_batch(const DfmBatchConfig& c, int stages, int64_t batch, uint64_t seed, uint64_t step, float* t,
                   float* mask, int32_t* labels);

// On the device of `ops`: the noise of the stages s <= Q (Philox, the same bits on every backend)
// and the forward process into noisy and target; stages after Q get zero input and zero target.
// t is the [B, S] matrix of times on that device; mask is the host [B, S] mask of draw_dfm_batch,
// which zeroes the (sample, stage) rows a per-sample Q leaves inactive below the batch's Q.
void noise_dfm_batch(Ops& ops, const StageLayout& l, int active_stage, uint64_t seed, uint64_t step, const float* clean,
                     const float* t, const float* mask, float* noisy, float* target);

// Both, on host buffers with the CPU backend (for tests and references).
int prepare_dfm_batch(const StageLayout& l, const DfmBatchConfig& c, uint64_t seed, uint64_t step, const float* clean,
                      float* noisy, float* target, float* t, float* mask, int32_t* labels);

}  // namespace df

#include "train_batch.h"

#include <cmath>
#include <algorithm>
#include <string>

#include "../core/error.h"
#include "../core/philox.h"
#include "../core/random_streams.h"
#include "schedule.h"

namespace df {

namespace {
void validate_probs(const std::vector<double>& probs, int stages, const std::string& name) {
  if (int(probs.size()) != stages)
    fail(Code::Config, name + ": expected " + std::to_string(stages) + " probabilities (one per stage), got " +
                           std::to_string(probs.size()));
  double sum = 0;
  for (size_t i = 0; i < probs.size(); i++) {
    double p = probs[i];
    if (!(p >= 0 && p <= 1)) fail(Code::Config, name + "[" + std::to_string(i) + "]: expected a probability in [0, 1], got " + std::to_string(p));
    sum += p;
  }
  if (std::fabs(sum - 1) > 1e-6) fail(Code::Config, name + ": expected probabilities summing to 1, got a sum of " + std::to_string(sum));
}
}  // namespace

void validate_batch_config(const DfmBatchConfig& c, int stages) {
  validate_probs(c.stage_probs, stages, "stageProbs");
  if (!c.stage_probs_final.empty()) {
    validate_probs(c.stage_probs_final, stages, "stageProbsFinal");
    if (c.stage_probs_steps < 1)
      fail(Code::Config, "stageProbsSteps: expected the number of steps (>= 1) over which stageProbs moves to stageProbsFinal, got " +
                             std::to_string(c.stage_probs_steps));
  } else if (c.stage_probs_steps != 0) {
    fail(Code::Config, "stageProbsSteps: given without stageProbsFinal");
  }
  auto finite = [](double x, const char* name, bool positive) {
    if (!std::isfinite(x) || (positive && !(x > 0)))
      fail(Code::Config, std::string(name) + ": expected a finite number" + (positive ? " > 0" : "") + ", got " + std::to_string(x));
  };
  finite(c.time_loc, "timeLocation", false);
  finite(c.time_scale, "timeScale", true);
  finite(c.prior_loc, "priorLocation", false);
  finite(c.prior_scale, "priorScale", true);
  if (!c.stage_loss_weights.empty()) {
    if (int(c.stage_loss_weights.size()) != stages)
      fail(Code::Config, "stageLossWeights: expected " + std::to_string(stages) + " weights (one per stage), got " +
                             std::to_string(c.stage_loss_weights.size()));
    double total = 0;
    for (size_t i = 0; i < c.stage_loss_weights.size(); i++) {
      double w = c.stage_loss_weights[i];
      if (!(std::isfinite(w) && w >= 0))
        fail(Code::Config, "stageLossWeights[" + std::to_string(i) + "]: expected a finite number >= 0, got " + std::to_string(w));
      total += w;
    }
    if (!(total > 0)) fail(Code::Config, "stageLossWeights: expected at least one weight > 0");
  }
  validate_time_shifts(c.stage_time_shifts, stages, "stageTimeShifts");
  if (!(c.label_dropout >= 0 && c.label_dropout <= 1))
    fail(Code::Config, "labelDropout: expected a probability in [0, 1], got " + std::to_string(c.label_dropout));
}

std::vector<double> stage_probs_at(const DfmBatchConfig& c, uint64_t step) {
  if (c.stage_probs_final.empty()) return c.stage_probs;
  const double f = std::min(1.0, double(step) / double(c.stage_probs_steps));
  std::vector<double> p(c.stage_probs.size());
  for (size_t s = 0; s < p.size(); s++) p[s] = c.stage_probs[s] + f * (c.stage_probs_final[s] - c.stage_probs[s]);
  return p;
}

namespace {
// The stage a uniform u in [0, 1) picks under probabilities p (the last stage with mass when
// rounding leaves u above the running sum).
int stage_for(double u, const std::vector<double>& probs) {
  const int S = int(probs.size());
  double acc = 0;
  for (int s = 0; s < S; s++) {
    acc += probs[size_t(s)];
    if (u <= acc && probs[size_t(s)] > 0) return s;
  }
  for (int s = S - 1; s >= 0; s--)
    if (probs[size_t(s)] > 0) return s;
  return S - 1;
}
}  // namespace

int draw_active_stage(const DfmBatchConfig& c, uint64_t seed, uint64_t step) {
  float u;
  RandomStream{seed, stream_id(Purpose::StageChoice, step)}.fill_uniform(&u, 1);
  return stage_for(double(u), stage_probs_at(c, step));
}

static float sigmoid(double x) { return float(1.0 / (1.0 + std::exp(-x))); }

int draw_dfm_batch(const DfmBatchConfig& c, int S, int64_t B, uint64_t seed, uint64_t step, float* t, float* mask,
                   int32_t* labels) {
  // Q per sample: one uniform each from the stage-choice stream (per batch: its first, for all).
  std::vector<float> u(size_t(c.stage_per_sample ? B : 1));
  RandomStream{seed, stream_id(Purpose::StageChoice, step)}.fill_uniform(u.data(), int64_t(u.size()));
  const std::vector<double> probs = stage_probs_at(c, step);
  std::vector<float> z(size_t(B * S));
  RandomStream{seed, stream_id(Purpose::Times, step)}.fill_normal(z.data(), B * S);
  int finest = 0;
  for (int64_t b = 0; b < B; b++) {
    const int Q = stage_for(double(u[c.stage_per_sample ? size_t(b) : 0]), probs);
    finest = std::max(finest, Q);
    const double loc = c.time_loc + (c.stage_time_shifts.empty() ? 0.0 : c.stage_time_shifts[size_t(Q)]);
    for (int s = 0; s < S; s++) {
      size_t j = size_t(b * S + s);
      if (s == Q) t[j] = sigmoid(loc + c.time_scale * z[j]);
      else if (s < Q) t[j] = sigmoid(c.prior_loc + c.prior_scale * z[j]);
      else t[j] = 0.f;
      mask[j] = s <= Q ? 1.f : 0.f;
    }
  }
  if (labels && c.null_label >= 0 && c.label_dropout > 0) {
    std::vector<float> u(static_cast<size_t>(B));
    RandomStream{seed, stream_id(Purpose::LabelDropout, step)}.fill_uniform(u.data(), B);
    for (int64_t b = 0; b < B; b++)
      if (u[size_t(b)] <= c.label_dropout) labels[b] = c.null_label;
  }
  return finest;
}

void noise_dfm_batch(Ops& ops, const StageLayout& l, int Q, uint64_t seed, uint64_t step, const float* clean,
                     const float* t, const float* mask, float* noisy, float* target) {
  for (int s = 0; s < l.groups(); s++) {
    const int64_t off = l.offset(s);
    if (s > Q) {
      ops.zero(noisy + off, size_t(l.group_size(s)) * sizeof(float));
      ops.zero(target + off, size_t(l.group_size(s)) * sizeof(float));
    } else {  // the noise, turned into the target by flow_noising
      ops.fill_normal(target + off, l.group_size(s), seed, stream_id(Purpose::TrainNoise, step, uint32_t(s)), 0);
    }
  }
  ops.flow_noising(l.prefix(Q + 1), clean, t, noisy, target);
  const int S = l.groups();
  for (int s = 1; s <= Q; s++)  // stage 0 is active in every sample
    for (int64_t b = 0; b < l.batch; b++)
      if (mask[b * S + s] == 0.f) {
        const int64_t row = l.offset(s) + b * l.per_sample[size_t(s)];
        ops.zero(noisy + row, size_t(l.per_sample[size_t(s)]) * sizeof(float));
        ops.zero(target + row, size_t(l.per_sample[size_t(s)]) * sizeof(float));
      }
}

int prepare_dfm_batch(const StageLayout& l, const DfmBatchConfig& c, uint64_t seed, uint64_t step, const float* clean,
                      float* noisy, float* target, float* t, float* mask, int32_t* labels) {
  const int Q = draw_dfm_batch(c, l.groups(), l.batch, seed, step, t, mask, labels);
  noise_dfm_batch(cpu_ops(), l, Q, seed, step, clean, t, mask, noisy, target);
  return Q;
}

}  // namespace df

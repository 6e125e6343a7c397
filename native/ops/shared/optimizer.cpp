// The optimiser's options and schedule (optimizer.h), compiled once; its kernels (AdamW, EMA, the
// gradient norm) are compiled per CPU level in native/ops/optimizer.cpp.
#include "../optimizer.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "../../core/error.h"

namespace df {

namespace {
void check_field(bool ok, const char* ctx, const char* field, double value, const char* expected) {
  if (!ok)
    fail(Code::ArgValue, std::string(ctx) + ": " + field + ": expected " + expected + ", got " + std::to_string(value));
}
}  // namespace

void validate(const AdamWOptions& o, const char* ctx) {
  auto finite = [](double x) { return std::isfinite(x); };
  check_field(finite(o.lr) && o.lr >= 0, ctx, "lr", o.lr, "a finite number >= 0");
  check_field(finite(o.beta1) && o.beta1 >= 0 && o.beta1 < 1, ctx, "beta1", o.beta1, "a number in [0, 1)");
  check_field(finite(o.beta2) && o.beta2 >= 0 && o.beta2 < 1, ctx, "beta2", o.beta2, "a number in [0, 1)");
  check_field(finite(o.eps) && o.eps > 0, ctx, "eps", o.eps, "a finite number > 0");
  check_field(finite(o.weight_decay) && o.weight_decay >= 0, ctx, "weightDecay", o.weight_decay, "a finite number >= 0");
  check_field(o.warmup_steps >= 0, ctx, "warmupSteps", double(o.warmup_steps), "an integer >= 0");
  check_field(finite(o.grad_clip) && o.grad_clip >= 0, ctx, "gradClip", o.grad_clip, "a finite number >= 0 (0: off)");
  check_field(finite(o.ema_decay) && o.ema_decay >= 0 && o.ema_decay <= 1, ctx, "emaDecay", o.ema_decay,
              "a number in [0, 1]");
  check_field(finite(o.ema_power) && o.ema_power >= 0 && o.ema_power <= 1e6, ctx, "emaPower", o.ema_power,
              "a number in [0, 1e6] (0: off)");
}

double scheduled_lr(const AdamWOptions& o, int64_t step) {
  if (o.warmup_steps <= 0) return o.lr;
  return o.lr * std::min(1.0, double(step) / double(o.warmup_steps));
}

double ema_decay_at(const AdamWOptions& o, int64_t step) {
  const double n = double(std::max<int64_t>(step, 1));
  if (o.ema_power > 0) return std::pow(1.0 - 1.0 / n, o.ema_power + 1.0);
  if (o.ema_warmup) return std::min(o.ema_decay, (1.0 + n) / (10.0 + n));
  return o.ema_decay;
}

float clip_scale(double norm, double max_norm) {
  if (max_norm <= 0) return 1.f;
  return float(std::min(1.0, max_norm / (norm + 1e-6)));
}

}  // namespace df

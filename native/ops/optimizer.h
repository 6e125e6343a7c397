// AdamW with linear learning-rate warm-up, global gradient-norm clipping and an EMA of the weights,
// on flat buffers (the model keeps parameters, gradients and optimiser state in one buffer each).
// Matches torch.optim.AdamW (decoupled weight decay) and torch.nn.utils.clip_grad_norm_.
#pragma once
#include <cstdint>

namespace df {

struct AdamWOptions {
  double lr = 1e-4;
  double beta1 = 0.9, beta2 = 0.99;
  double eps = 1e-8;
  double weight_decay = 0.01;
  int64_t warmup_steps = 0;  // lr ramps linearly: lr * min(1, step / warmup_steps), step from 1
  double grad_clip = 1.0;    // max global L2 norm; 0 disables clipping
  double ema_decay = 0.9999;
  // The EMA's warm-up (on by default): the decay of step n (1-based) is min(ema_decay, (1 + n) / (10 + n)),
  // so the average forgets the random initial weights within the first few hundred steps instead of
  // dragging them along for ~1/(1 - ema_decay) steps.
  bool ema_warmup = true;
  // > 0: the power-function EMA of Karras et al. (EDM2) instead: decay_n = (1 - 1/n)^(ema_power + 1),
  // an average over the last fixed fraction of the run whatever its length (ema_power 6.94 is their
  // sigma_rel 0.10, 16.97 is 0.05); ema_decay and ema_warmup are then unused.
  double ema_power = 0;
};

// Checks every field (finite, in range); Code::ArgValue naming `ctx` and the field otherwise.
void validate(const AdamWOptions& o, const char* ctx);

// The learning rate of step `step` (1-based) after warm-up.
double scheduled_lr(const AdamWOptions& o, int64_t step);

// The EMA decay that step `step` (1-based) uses: the power-function rule when ema_power > 0, else
// ema_decay, capped by the warm-up when ema_warmup.
double ema_decay_at(const AdamWOptions& o, int64_t step);

#ifdef DF_CPU_NS  // the CPU kernels: compiled once per CPU level and seen only there (cpu_level.h)
inline namespace DF_CPU_NS {

// sqrt(sum g^2), accumulated in double over fixed blocks summed in order: the same result on any
// thread count.
double global_grad_norm(const float* g, int64_t n);

// One AdamW step number `step` (1-based) with learning rate lr; the gradient is multiplied by
// grad_scale first (the clipping factor). Updates p, m (first moment) and v (second moment), and,
// when ema is given, the EMA of the new weights in the same pass (ema_decay from o).
void adamw_update(float* p, const float* g, float* m, float* v, int64_t n, int64_t step, double lr,
                  const AdamWOptions& o, float grad_scale, float* ema = nullptr);

// ema = decay * ema + (1 - decay) * p
void ema_update(float* ema, const float* p, int64_t n, double decay);

}  // namespace DF_CPU_NS
#endif  // DF_CPU_NS

// The clipping factor of torch's clip_grad_norm_: min(1, max_norm / (norm + 1e-6)); 1 when disabled.
float clip_scale(double norm, double max_norm);

}  // namespace df

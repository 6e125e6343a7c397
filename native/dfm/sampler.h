// The multi-stage flow integrator: runs the whole sampling schedule (dfm/schedule.h) against any
// velocity model, with Euler, Heun or midpoint steps and classifier-free guidance, on the velocity
// model's device (its op backend). The model is the DiT in practice; tests plug in exact velocity
// fields.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "../ops/ops.h"
#include "layout.h"
#include "schedule.h"

namespace df {

class VelocityModel {
 public:
  virtual ~VelocityModel() = default;
  // v = G(x, t) for every stage. x and v use `layout` and live on the device of ops(); t and mask
  // are [batch, S] host arrays (mask 1 = active, 0 = a later stage that must contribute nothing);
  // labels [batch] (host) or null when unconditional.
  virtual void velocity(const StageLayout& layout, const float* x, const float* t, const float* mask,
                        const int32_t* labels, float* v) = 0;
  // The backend whose device holds x and v (the CPU unless the model says otherwise).
  virtual Ops& ops() { return cpu_ops(); }
};

enum class Solver { Euler, Heun, Midpoint };

struct SamplerOptions {
  std::vector<int> steps;          // per stage
  std::vector<double> thresholds;  // tau per stage but the last
  std::vector<double> time_shifts; // per stage, the spacing of its steps (schedule.h); empty: even in t
  // Per stage, how much of the noise each Euler step re-draws (DDIM's eta): 0 keeps the ODE (the
  // default; empty = all 0), 1 is ancestral sampling (each step draws from the exact Gaussian
  // posterior around its clean-level estimate). Euler only; each in [0, 1].
  std::vector<double> eta;
  Solver solver = Solver::Euler;
  float cfg = 1.0f;                // guidance scale; 1 = none
  double guidance_lo = 0.0;        // guidance applies while the newest stage's t is in [lo, hi]
  double guidance_hi = 1.0;
  int32_t null_label = -1;         // the null class for the unconditional branch
  uint64_t seed = 0;
};

struct SamplerHooks {
  std::function<void(int step, int total)> progress;  // after each step
  std::function<void()> check_cancelled;              // throws to stop
  std::function<void(int step, const float* x)> on_step;  // the state (on the device) after each step
};

// Checks steps, thresholds, time shifts, cfg and the guidance interval for `stages` stages: Code::Config naming
// the option. The one set of bounds of the sampler's options.
void validate_sampler_options(const SamplerOptions& opt, int stages);

// Number of model evaluations a run makes (per sample, counting guidance's two branches).
int sampler_evaluations(const SamplerOptions& opt, bool guided);

// Fills x (layout, on the device of ops) with the initial noise for `seed`: sample b's noise does not
// depend on the batch size.
void sampler_initial_noise(const StageLayout& layout, uint64_t seed, float* x, Ops& ops = cpu_ops());

// Runs the schedule from fresh noise; x (on the model's device) receives the final per-stage levels.
void run_sampler(VelocityModel& model, const StageLayout& layout, const SamplerOptions& opt, const int32_t* labels,
                 float* x, const SamplerHooks& hooks = {});

}  // namespace df

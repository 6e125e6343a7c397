// Time schedules of DFM (docs/METHOD.md), t = 0 noise, t = 1 data.
//
// Sampling: S phases; phase k takes steps[k] steps. In phase k the newest stage k ramps linearly
// from 0 to tau_k (to 1 in the last phase), stages after k sit at t = 0 (masked), and every earlier
// stage j < k follows in lockstep: t_j = tau_j + (1 - tau_j) * t_(j+1). Every stage reaches 1 at
// the end and no time ever decreases. For 2 stages this is the paper's schedule.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace df {

struct SamplingSchedule {
  int stages = 1;
  int total_steps = 0;
  std::vector<double> times;  // [(total_steps + 1) * stages]: row i = times before step i
  std::vector<int> newest;    // [total_steps]: the newest active stage during step i (stages > it are masked)

  double t(int row, int stage) const { return times[size_t(row) * size_t(stages) + size_t(stage)]; }
};

// steps: one count >= 1 per stage; thresholds: tau_1..tau_(S-1), each in (0, 1). Throws Code::Config.
SamplingSchedule make_sampling_schedule(int stages, const std::vector<int>& steps, const std::vector<double>& thresholds);

// The times of every stage when the newest stage `k` is at time `tk` (the lockstep rule).
void lockstep_times(int stages, int k, double tk, const std::vector<double>& thresholds, double* out);

}  // namespace df

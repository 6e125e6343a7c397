// Time schedules of DFM (docs/METHOD.md), t = 0 noise, t = 1 data.
//
// Sampling: S phases; phase k takes steps[k] steps. In phase k the newest stage k ramps linearly
// from 0 to tau_k (to 1 in the last phase), stages after k sit at t = 0 (masked), and every earlier
// stage j < k follows in lockstep: t_j = tau_j + (1 - tau_j) * t_(j+1). Every stage reaches 1 at
// the end and no time ever decreases. For 2 stages this is the paper's schedule.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace df {

struct SamplingSchedule {
  int stages = 1;
  int total_steps = 0;
  std::vector<double> times;  // [(total_steps + 1) * stages]: row i = times before step i
  std::vector<int> newest;    // [total_steps]: the newest active stage during step i (stages > it are masked)

  double t(int row, int stage) const { return times[size_t(row) * size_t(stages) + size_t(stage)]; }
};

// steps: one count >= 1 per stage; thresholds: tau_1..tau_(S-1), each in (0, 1); time_shifts: per
// stage, how its ramp is spaced (empty or 0: evenly in t). With shift m the newest stage's steps are
// even in the coordinate logit(t) - m, i.e. t = warp(u, m) = e^m u / (1 + (e^m - 1) u) for evenly
// spaced u ending at warp(end, -m): a positive m packs the steps towards the data end (t = 1), where
// a low-amplitude level (a fine Laplacian band) is resolved; the ramp still ends exactly at tau_k
// (at 1 in the last phase). The trainer's stageTimeShifts is the training-side counterpart (the
// values need not match). Throws Code::Config.
SamplingSchedule make_sampling_schedule(int stages, const std::vector<int>& steps, const std::vector<double>& thresholds,
                                        const std::vector<double>& time_shifts = {});

// t = e^m u / (1 + (e^m - 1) u): 0 -> 0, 1 -> 1, increasing; warp(warp(u, m), -m) = u.
double warp_time(double u, double m);

// The one set of bounds of per-stage time shifts (sampler and trainer): empty, or one per stage,
// each in [-10, 10]. Throws Code::Config naming `name` (e.g. "stageTimeShifts") and the index.
void validate_time_shifts(const std::vector<double>& shifts, int stages, const std::string& name);

// The times of every stage when the newest stage `k` is at time `tk` (the lockstep rule).
void lockstep_times(int stages, int k, double tk, const std::vector<double>& thresholds, double* out);

}  // namespace df

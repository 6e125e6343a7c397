#include "schedule.h"

#include <cmath>
#include <string>

#include "../core/error.h"

namespace df {

void lockstep_times(int stages, int k, double tk, const std::vector<double>& thresholds, double* out) {
  for (int s = 0; s < stages; s++) out[s] = 0.0;
  out[k] = tk;
  for (int j = k - 1; j >= 0; j--) {
    double tau = thresholds[size_t(j)];
    out[j] = tau + (1.0 - tau) * out[j + 1];
  }
}

double warp_time(double u, double m) {
  if (m == 0.0) return u;
  const double a = std::exp(m);
  return a * u / (1.0 + (a - 1.0) * u);
}

void validate_time_shifts(const std::vector<double>& shifts, int stages, const std::string& name) {
  if (!shifts.empty() && int(shifts.size()) != stages)
    fail(Code::Config, name + ": expected " + std::to_string(stages) + " shifts (one per stage), got " + std::to_string(shifts.size()));
  for (size_t i = 0; i < shifts.size(); i++)
    if (!(std::fabs(shifts[i]) <= 10))
      fail(Code::Config, name + "[" + std::to_string(i) + "]: expected a number in [-10, 10], got " + std::to_string(shifts[i]));
}

SamplingSchedule make_sampling_schedule(int stages, const std::vector<int>& steps, const std::vector<double>& thresholds,
                                        const std::vector<double>& time_shifts) {
  if (stages < 1 || stages > 8) fail(Code::Config, "schedule: stages: expected 1 to 8, got " + std::to_string(stages));
  if (int(steps.size()) != stages)
    fail(Code::Config, "schedule: stepsPerStage: expected " + std::to_string(stages) + " counts (one per stage), got " +
                           std::to_string(steps.size()));
  if (int(thresholds.size()) != stages - 1)
    fail(Code::Config, "schedule: thresholds: expected " + std::to_string(stages - 1) +
                           " values (one per stage but the last), got " + std::to_string(thresholds.size()));
  for (size_t i = 0; i < steps.size(); i++)
    if (steps[i] < 1 || steps[i] > 100000)
      fail(Code::Config, "schedule: stepsPerStage[" + std::to_string(i) + "]: expected an integer from 1 to 100000, got " +
                             std::to_string(steps[i]));
  for (size_t i = 0; i < thresholds.size(); i++)
    if (!(thresholds[i] > 0.0 && thresholds[i] < 1.0))
      fail(Code::Config, "schedule: thresholds[" + std::to_string(i) + "]: expected a number in (0, 1), got " +
                             std::to_string(thresholds[i]));
  validate_time_shifts(time_shifts, stages, "schedule: stageTimeShifts");
  SamplingSchedule sch;
  sch.stages = stages;
  for (int n : steps) sch.total_steps += n;
  sch.times.assign(size_t(sch.total_steps + 1) * size_t(stages), 0.0);
  int row = 0;
  for (int k = 0; k < stages; k++) {
    double end = k == stages - 1 ? 1.0 : thresholds[size_t(k)];
    const double m = time_shifts.empty() ? 0.0 : time_shifts[size_t(k)];
    const double u_end = warp_time(end, -m);
    for (int i = 1; i <= steps[size_t(k)]; i++) {
      sch.newest.push_back(k);
      row++;
      // the last row of a phase is set exactly, so no rounding drift crosses phases
      double tk = i == steps[size_t(k)] ? end : warp_time(u_end * double(i) / double(steps[size_t(k)]), m);
      lockstep_times(stages, k, tk, thresholds, &sch.times[size_t(row) * size_t(stages)]);
    }
  }
  return sch;
}

}  // namespace df

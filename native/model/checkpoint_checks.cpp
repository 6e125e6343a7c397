#include "checkpoint_checks.h"

#include <cmath>
#include <cstdint>
#include <vector>

#include "../core/error.h"
#include "training.h"

namespace df {

namespace {

// The first non-finite value of each parameter's slice of `device_data` (on the model's device),
// under the name prefix + p.name.
void check_part(const DiT& model, const float* device_data, const std::string& prefix, const std::string& path) {
  const std::vector<float> host = download_floats(model.ops(), device_data, model.num_params());
  const float* data = host.data();
  for (const auto& p : model.params()) {
    int64_t n = 1;
    for (int64_t d : p.shape) n *= d;
    const float* x = data + p.offset;
    for (int64_t i = 0; i < n; i++)
      if (!std::isfinite(x[i]))
        fail(Code::NonFinite, "checkpoint " + path + ": tensor '" + prefix + p.name + "' holds " +
                                  (std::isnan(x[i]) ? "NaN" : "infinity") + " at element " + std::to_string(i) +
                                  " (a diverged or corrupted checkpoint; pass allowNonFinite to load it anyway)");
  }
}

}  // namespace

void check_checkpoint_finite(const LoadedCheckpoint& ck, const std::string& path) {
  const DiT& m = *ck.model;
  check_part(m, m.param_data(), "", path);
  if (ck.had_ema) check_part(m, ck.optimizer->ema(), "ema.", path);
  if (ck.had_optimizer) {
    check_part(m, ck.optimizer->m(), "adam.m.", path);
    check_part(m, ck.optimizer->v(), "adam.v.", path);
  }
}

}  // namespace df

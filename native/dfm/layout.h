// How a batch of multi-stage images is laid out in one flat f32 buffer: stage s occupies
// [offset(s), offset(s) + batch * per_sample(s)), as [B, C, H_s, W_s]. Every state the trainer and
// the sampler keep (x, v, noise, targets) uses this layout, so each fused update is one loop (one
// CUDA launch) over all stages.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace df {

struct StageLayout {
  int64_t batch = 0;
  std::vector<int64_t> per_sample;  // C * H_s * W_s per stage, coarse to fine

  int stages() const { return int(per_sample.size()); }
  int64_t offset(int s) const {
    int64_t o = 0;
    for (int r = 0; r < s; r++) o += batch * per_sample[size_t(r)];
    return o;
  }
  int64_t stage_size(int s) const { return batch * per_sample[size_t(s)]; }
  int64_t total() const { return offset(stages()); }
};

}  // namespace df

// How a batch of multi-stage images is laid out in one flat f32 buffer: the ops' grouped rows with
// one group per stage, so stage s occupies [offset(s), offset(s) + batch * per_sample[s]) as
// [B, C, H_s, W_s] and the per-(sample, stage) times or steps form a [B, S] matrix. Every state the
// trainer and the sampler keep (x, v, noise, targets) uses this layout, so each fused update is one
// loop (one CUDA launch) over all stages.
#pragma once
#include <cstdint>

#include "../model/dit.h"
#include "../ops/integrator.h"
#include "../ops/pyramid.h"

namespace df {

using StageLayout = GroupedRows;

// The layout and the pyramid geometry of `batch` images of a model's size.
StageLayout stage_layout(const DiTConfig& c, int64_t batch);
PyramidShape pyramid_geometry(const DiTConfig& c, int64_t batch);

}  // namespace df

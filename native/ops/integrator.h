// The integrator's fused updates over all stages of a flat multi-stage batch (dfm/layout.h), one
// pass (one CUDA launch) per update. dt is per sample and stage: [B, S].
#pragma once
#include <cstdint>

#include "../dfm/layout.h"

namespace df {

// out = x + dt * v  (Euler; also the first half of Heun and midpoint). out may alias x. Rows whose
// dt is 0 (stages waiting at t = 0, masked) are copied without reading v.
void flow_euler_update(const StageLayout& l, const float* x, const float* v, const float* dt, float* out);

// out = x + dt * (v1 + v2) / 2  (Heun's corrector). out may alias x.
void flow_heun_update(const StageLayout& l, const float* x, const float* v1, const float* v2, const float* dt, float* out);

// Classifier-free guidance: out = v_uncond + w * (v_cond - v_uncond). out may alias either input.
void guidance_combine(const StageLayout& l, const float* v_cond, const float* v_uncond, float w, float* out);

}  // namespace df

// Sampling images from a DiT: the multi-stage integrator (dfm/sampler.h) with the model as the
// velocity field, then the recomposition of the pyramid, all on the device of the weights. Also
// makes the coarse-to-fine previews (partial recompositions) and the image at the end of each phase.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "../core/tensor.h"
#include "../model/dit.h"
#include "../ops/pyramid.h"
#include "layout.h"
#include "sampler.h"

namespace df {

struct SampleRequest {
  int64_t count = 1;
  std::vector<int32_t> labels;  // [count] when the model has classes (null label allowed)
  SamplerOptions options;
  PyramidKind decomposition = PyramidKind::Laplacian;
  bool previews = false;        // partial recompositions of stages 1..k, k = 1..S
  bool intermediates = false;   // the recomposed image at the end of every phase
};

struct SampleResult {  // tensors on the device of the weights
  Tensor images;                    // [count, C, H, W]
  std::vector<Tensor> levels;       // per stage [count, C, H_s, W_s]
  std::vector<Tensor> previews;     // S tensors [count, C, H, W] when requested
  std::vector<Tensor> intermediates;  // S tensors [count, C, H, W] when requested
};

// `weights` (num_params floats on the device of `ops`) are copied into a model made for `count`
// samples on that backend: pass the EMA or the raw parameters. Code::Config for bad options,
// Code::ArgValue for labels out of range.
SampleResult sample_images(const DiTConfig& config, const float* weights, const SampleRequest& request,
                           const SamplerHooks& hooks, Ops& ops = cpu_ops());

// Checks the options (validate_sampler_options), the count and the labels against the config (what
// sample_images checks first).
void validate_sample_request(const DiTConfig& config, const SampleRequest& request);

// The default options for S stages: the paper's [30, 10] steps and tau 0.7 for 2 stages; 40 steps
// for 1; for S > 2, 10 steps per earlier stage and 10 for the last, tau 0.7 each.
SamplerOptions default_sampler_options(int stages);

}  // namespace df

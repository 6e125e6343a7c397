#include "embeddings.h"

#include <cmath>

#include "../core/threadpool.h"

namespace df {
inline namespace DF_CPU_NS {  // compiled once per CPU level (cpu_level.h)

namespace {
// Calls fn(image offset, token offset) for every element; one task per (batch, patch row).
template <class F>
void for_each_patch_element(const PatchShape& s, PatchOrder order, F&& fn) {
  const int64_t p = s.patch, gh = s.height / p, gw = s.width / p, C = s.channels;
  const int64_t td = s.token_dim(), T = gh * gw;
  parallel_for(s.batch * gh, 4, [&](int64_t lo, int64_t hi) {
    for (int64_t task = lo; task < hi; task++) {
      int64_t b = task / gh, i = task % gh;
      for (int64_t j = 0; j < gw; j++) {
        int64_t tok = (b * T + i * gw + j) * td;
        for (int64_t c = 0; c < C; c++)
          for (int64_t py = 0; py < p; py++)
            for (int64_t px = 0; px < p; px++) {
              int64_t img = ((b * C + c) * s.height + i * p + py) * s.width + j * p + px;
              int64_t k = order == PatchOrder::ChannelFirst ? (c * p + py) * p + px : (py * p + px) * C + c;
              fn(img, tok + k);
            }
      }
    }
  });
}
}  // namespace

void patchify(const float* image, float* tokens, const PatchShape& s, PatchOrder order) {
  for_each_patch_element(s, order, [&](int64_t img, int64_t tok) { tokens[tok] = image[img]; });
}

void unpatchify(const float* tokens, float* image, const PatchShape& s, PatchOrder order) {
  for_each_patch_element(s, order, [&](int64_t img, int64_t tok) { image[img] = tokens[tok]; });
}

void timestep_features(const float* time, int64_t time_stride, int64_t batch, float time_scale, int64_t dim,
                       float max_period, float* out) {
  const int64_t half = dim / 2;
  for (int64_t b = 0; b < batch; b++) {
    // In double, rounded once at the end: with t scaled to ~1000 a float argument would already be
    // off by ~1e-4, and the features are cheap (B x dim per step).
    double t = double(time[b * time_stride]) * double(time_scale);
    float* o = out + b * dim;
    for (int64_t k = 0; k < half; k++) {
      double arg = t * std::exp(-std::log(double(max_period)) * double(k) / double(half));
      o[k] = float(std::cos(arg));
      o[half + k] = float(std::sin(arg));
    }
    if (dim % 2) o[dim - 1] = 0.f;
  }
}

void embedding_forward(const float* table, const int32_t* index, float* out, int64_t batch, int64_t dim) {
  for (int64_t b = 0; b < batch; b++) {
    const float* row = table + int64_t(index[b]) * dim;
    for (int64_t d = 0; d < dim; d++) out[b * dim + d] = row[d];
  }
}

void embedding_backward(const float* dout, const int32_t* index, float* dtable, int64_t batch, int64_t dim) {
  for (int64_t b = 0; b < batch; b++) {
    float* row = dtable + int64_t(index[b]) * dim;
    for (int64_t d = 0; d < dim; d++) row[d] += dout[b * dim + d];
  }
}

}  // namespace DF_CPU_NS
}  // namespace df

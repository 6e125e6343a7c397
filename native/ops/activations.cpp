#include "activations.h"

#include <cmath>

#include "../core/threadpool.h"

namespace df {

namespace {
constexpr int64_t kGrain = 16384;
constexpr float kSqrt2OverPi = 0.7978845608028654f;
constexpr float kGeluCubic = 0.044715f;

inline float sigmoid(float x) { return 1.f / (1.f + std::exp(-x)); }
}  // namespace

void silu_forward(const float* x, float* y, int64_t n) {
  parallel_for(n, kGrain, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; i++) y[i] = x[i] * sigmoid(x[i]);
  });
}

void silu_backward(const float* x, const float* dy, float* dx, int64_t n, bool accumulate) {
  parallel_for(n, kGrain, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; i++) {
      float s = sigmoid(x[i]);
      float g = dy[i] * s * (1.f + x[i] * (1.f - s));
      dx[i] = accumulate ? dx[i] + g : g;
    }
  });
}

void gelu_tanh_forward(const float* x, float* y, int64_t n) {
  parallel_for(n, kGrain, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; i++) {
      float v = x[i];
      float u = kSqrt2OverPi * (v + kGeluCubic * v * v * v);
      y[i] = 0.5f * v * (1.f + std::tanh(u));
    }
  });
}

void gelu_tanh_backward(const float* x, const float* dy, float* dx, int64_t n, bool accumulate) {
  parallel_for(n, kGrain, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; i++) {
      float v = x[i];
      float u = kSqrt2OverPi * (v + kGeluCubic * v * v * v);
      float th = std::tanh(u);
      float du = kSqrt2OverPi * (1.f + 3.f * kGeluCubic * v * v);
      float g = dy[i] * (0.5f * (1.f + th) + 0.5f * v * (1.f - th * th) * du);
      dx[i] = accumulate ? dx[i] + g : g;
    }
  });
}

}  // namespace df

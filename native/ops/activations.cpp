#include "activations.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "../core/threadpool.h"

namespace df {
inline namespace DF_CPU_NS {  // compiled once per CPU level (cpu_level.h)

namespace {
constexpr int64_t kGrain = 16384;
constexpr float kSqrt2OverPi = 0.7978845608028654f;
constexpr float kGeluCubic = 0.044715f;

// exp(x) without libm, written once for a scalar and for a 16-lane GCC vector (the compiler
// lowers the vector type to AVX-512, AVX2 or SSE, whatever the target has): libm's expf/tanhf are
// scalar and were a fifth of a training step. x = k ln2 + r with |r| <= ln2/2; e^r by its
// degree-6 Taylor polynomial (truncation < 1.3e-7 relative); k rounded with the 1.5 * 2^23 trick,
// whose low mantissa bits then hold k, and 2^k built in the exponent bits. Inputs are clamped to
// [-87, 88], where the result is still a normal float.
typedef float f32x16 __attribute__((vector_size(64)));
typedef int32_t i32x16 __attribute__((vector_size(64)));

// The bits of a float (or of 16) as integers and back.
template <class To, class From>
inline To same_bits(From x) {
  static_assert(sizeof(To) == sizeof(From));
  To t;
  std::memcpy(&t, &x, sizeof t);
  return t;
}
inline int32_t bits_of(float x) { return same_bits<int32_t>(x); }
inline float float_of(int32_t i) { return same_bits<float>(i); }
inline i32x16 bits_of(f32x16 x) { return same_bits<i32x16>(x); }
inline f32x16 float_of(i32x16 i) { return same_bits<f32x16>(i); }

template <class V>
inline V exp_poly(V x) {
  const V lo = V{} - 87.f, hi = V{} + 88.f;
  x = x < lo ? lo : x;
  x = x > hi ? hi : x;
  const float kRound = 12582912.f;  // 1.5 * 2^23
  V t = x * 1.44269504088896341f + kRound;
  V k = t - kRound;
  V r = x - k * 0.693145751953125f - k * 1.428606765330187e-06f;  // ln2 split hi + lo
  V p = V{} + 1.f / 720.f;
  p = p * r + 1.f / 120.f;
  p = p * r + 1.f / 24.f;
  p = p * r + 1.f / 6.f;
  p = p * r + 0.5f;
  p = p * r + 1.f;
  p = p * r + 1.f;
  auto kbits = bits_of(t) - bits_of(kRound);  // k as an integer
  return p * float_of((kbits + 127) << 23);
}

template <class V>
inline V sigmoid(V x) { return 1.f / (1.f + exp_poly(V{} - x)); }

// tanh(u) = 1 - 2 / (1 + e^(2u)): absolute error ~1e-7, which is all GELU needs (it adds 1).
template <class V>
inline V tanh_poly(V u) { return 1.f - 2.f / (1.f + exp_poly(u * 2.f)); }

inline f32x16 load16(const float* p) {
  f32x16 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline void store16(float* p, f32x16 v) { std::memcpy(p, &v, sizeof v); }

// Runs f over [lo, hi) 16 lanes at a time, then the tail one by one (same maths).
template <class F>
inline void for_lanes(int64_t lo, int64_t hi, F&& f) {
  int64_t i = lo;
  for (; i + 16 <= hi; i += 16) f(i, f32x16{});
  for (; i < hi; i++) f(i, 0.f);
}
}  // namespace

void silu_forward(const float* x, float* y, int64_t n) {
  parallel_for(n, kGrain, [&](int64_t lo, int64_t hi) {
    for_lanes(lo, hi, [&](int64_t i, auto tag) {
      using V = decltype(tag);
      auto run = [&](V v) { return v * sigmoid(v); };
      if constexpr (std::is_same_v<V, float>) y[i] = run(x[i]);
      else store16(y + i, run(load16(x + i)));
    });
  });
}

void silu_backward(const float* x, const float* dy, float* dx, int64_t n, bool accumulate) {
  parallel_for(n, kGrain, [&](int64_t lo, int64_t hi) {
    for_lanes(lo, hi, [&](int64_t i, auto tag) {
      using V = decltype(tag);
      auto run = [&](V v, V g) {
        V s = sigmoid(v);
        return g * s * (1.f + v * (1.f - s));
      };
      if constexpr (std::is_same_v<V, float>) dx[i] = accumulate ? dx[i] + run(x[i], dy[i]) : run(x[i], dy[i]);
      else {
        V d = run(load16(x + i), load16(dy + i));
        store16(dx + i, accumulate ? load16(dx + i) + d : d);
      }
    });
  });
}

void gelu_tanh_forward(const float* x, float* y, int64_t n) {
  parallel_for(n, kGrain, [&](int64_t lo, int64_t hi) {
    for_lanes(lo, hi, [&](int64_t i, auto tag) {
      using V = decltype(tag);
      auto run = [&](V v) {
        V u = kSqrt2OverPi * (v + kGeluCubic * v * v * v);
        return 0.5f * v * (1.f + tanh_poly(u));
      };
      if constexpr (std::is_same_v<V, float>) y[i] = run(x[i]);
      else store16(y + i, run(load16(x + i)));
    });
  });
}

void gelu_tanh_backward(const float* x, const float* dy, float* dx, int64_t n, bool accumulate) {
  parallel_for(n, kGrain, [&](int64_t lo, int64_t hi) {
    for_lanes(lo, hi, [&](int64_t i, auto tag) {
      using V = decltype(tag);
      auto run = [&](V v, V g) {
        V u = kSqrt2OverPi * (v + kGeluCubic * v * v * v);
        V th = tanh_poly(u);
        V du = kSqrt2OverPi * (1.f + 3.f * kGeluCubic * v * v);
        return g * (0.5f * (1.f + th) + 0.5f * v * (1.f - th * th) * du);
      };
      if constexpr (std::is_same_v<V, float>) dx[i] = accumulate ? dx[i] + run(x[i], dy[i]) : run(x[i], dy[i]);
      else {
        V d = run(load16(x + i), load16(dy + i));
        store16(dx + i, accumulate ? load16(dx + i) + d : d);
      }
    });
  });
}

}  // namespace DF_CPU_NS
}  // namespace df

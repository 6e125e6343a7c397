#include "integrator.h"

#include <algorithm>

#include "../core/threadpool.h"

namespace df {
inline namespace DF_CPU_NS {  // compiled once per CPU level (cpu_level.h)

namespace {

// Calls fn(group, sample, begin, count) over every (group, sample) row in parallel.
template <class F>
void for_each_row(const GroupedRows& l, F&& fn) {
  int64_t rows = int64_t(l.groups()) * l.batch;
  parallel_for(rows, 8, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      int s = int(r / l.batch);
      int64_t b = r % l.batch;
      int64_t n = l.per_sample[size_t(s)];
      fn(s, b, l.offset(s) + b * n, n);
    }
  });
}

}  // namespace

void flow_euler_update(const GroupedRows& l, const float* x, const float* v, const float* dt, float* out) {
  const int64_t S = l.stride();
  for_each_row(l, [&](int s, int64_t b, int64_t begin, int64_t n) {
    float h = dt[b * S + s];
    const float* xs = x + begin;
    const float* vs = v + begin;
    float* os = out + begin;
    if (h == 0.f) {  // e.g. a waiting (masked) stage: its velocity is meaningless and must not be read
      if (os != xs) std::copy(xs, xs + n, os);
      return;
    }
    for (int64_t i = 0; i < n; i++) os[i] = xs[i] + h * vs[i];
  });
}

void flow_heun_update(const GroupedRows& l, const float* x, const float* v1, const float* v2, const float* dt, float* out) {
  const int64_t S = l.stride();
  for_each_row(l, [&](int s, int64_t b, int64_t begin, int64_t n) {
    float h = 0.5f * dt[b * S + s];
    const float* xs = x + begin;
    const float* a = v1 + begin;
    const float* c = v2 + begin;
    float* os = out + begin;
    if (h == 0.f) {
      if (os != xs) std::copy(xs, xs + n, os);
      return;
    }
    for (int64_t i = 0; i < n; i++) os[i] = xs[i] + h * (a[i] + c[i]);
  });
}

void guidance_combine(const GroupedRows& l, const float* v_cond, const float* v_uncond, float w, float* out) {
  for_each_row(l, [&](int, int64_t, int64_t begin, int64_t n) {
    const float* c = v_cond + begin;
    const float* u = v_uncond + begin;
    float* os = out + begin;
    for (int64_t i = 0; i < n; i++) os[i] = u[i] + w * (c[i] - u[i]);
  });
}

void flow_noising(const GroupedRows& l, const float* clean, const float* t, float* noisy, float* target) {
  const int64_t S = l.stride();
  for_each_row(l, [&](int s, int64_t b, int64_t begin, int64_t n) {
    const float ts = t[b * S + s];
    const float* xs = clean + begin;
    float* in = noisy + begin;
    float* v = target + begin;
    for (int64_t i = 0; i < n; i++) {
      const float noise = v[i];
      in[i] = ts * xs[i] + (1.f - ts) * noise;
      v[i] = xs[i] - noise;
    }
  });
}

void scaled_difference(const GroupedRows& l, const float* a, const float* b, const float* coef, float* out) {
  const int64_t S = l.stride();
  for_each_row(l, [&](int s, int64_t r, int64_t begin, int64_t n) {
    const float k = coef[r * S + s];
    const float* as = a + begin;
    float* os = out + begin;
    if (b) {
      const float* bs = b + begin;
      for (int64_t i = 0; i < n; i++) os[i] = k * (as[i] - bs[i]);
    } else {
      for (int64_t i = 0; i < n; i++) os[i] = k * as[i];
    }
  });
}

}  // namespace DF_CPU_NS
}  // namespace df

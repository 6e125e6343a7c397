// The integrator kernel (the CUDA twin of native/ops/integrator.cpp) and its CTA table, shared by
// cuda/integrator.cu (launches) and the host emulation test (test/native/
// test_integrator_kernels_emulated.cpp). One launch covers every group of a grouped-rows buffer
// (ops/integrator.h: a stage of the sampler's state, in practice); each CTA handles one chunk of one
// (group, sample) row, so dt is uniform within a CTA and a row whose dt is 0 is copied without
// reading its velocity.
#pragma once
#include <cstdint>
#include <string>

#ifdef DFCUDA_HOST_EMULATION
#include "host_emulation.h"
#else
#include "common.cuh"
#endif
#include "core/cuda_api.h"
#include "core/error.h"
#include "numeric.cuh"

namespace dfcuda {

constexpr int kIntegratorMaxGroups = 16;
constexpr int kIntegratorThreads = 256;
constexpr int64_t kIntegratorChunk = 4096;  // floats per CTA

// Where each group's CTAs start: CTA c belongs to the last group s with first_cta[s] <= c.
struct GroupTable {
  int groups;
  int64_t coef_stride;  // columns of the dt matrix
  int64_t batch;
  int64_t per_sample[kIntegratorMaxGroups];
  int64_t offset[kIntegratorMaxGroups];         // first float of the group
  int64_t chunks[kIntegratorMaxGroups];         // CTAs per row
  int64_t first_cta[kIntegratorMaxGroups + 1];  // first_cta[groups] = the grid size
};

enum class Op { Euler, Heun, Guidance };

struct Row {
  int group;
  int64_t sample, begin, end;  // [begin, end): this CTA's floats in the flat buffer
};

__device__ __forceinline__ Row locate(const GroupTable& t) {
  const int64_t cta = blockIdx.x;
  int s = 0;
  while (s + 1 < t.groups && t.first_cta[s + 1] <= cta) s++;
  const int64_t local = cta - t.first_cta[s];
  const int64_t sample = local / t.chunks[s], chunk = local % t.chunks[s];
  const int64_t row = t.offset[s] + sample * t.per_sample[s];
  const int64_t begin = row + chunk * kIntegratorChunk;
  const int64_t end = row + (t.per_sample[s] < (chunk + 1) * kIntegratorChunk ? t.per_sample[s] : (chunk + 1) * kIntegratorChunk);
  return Row{s, sample, begin, end};
}

// Euler: out = x + h a (h = dt). Heun: out = x + h (a + b) (h = dt / 2). Guidance: out = b + w (a - b)
// (a = v_cond, b = v_uncond; x, dt unused). kVec4: every row starts and ends on a multiple of 4
// floats and every pointer is 16-byte aligned, so the loop moves float4s.
template <Op kOp, bool kVec4>
DF_KERNEL void __launch_bounds__(kIntegratorThreads) integrator_kernel(const GroupTable t, const float* x, const float* a,
                                                               const float* b, const float* dt, float w,
                                                               float* out) {
  const Row r = locate(t);
  float h = 0.f;
  if (kOp != Op::Guidance) {
    h = dt[r.sample * t.coef_stride + r.group];
    if (kOp == Op::Heun) h *= 0.5f;
    if (h == 0.f) {  // e.g. a waiting stage: copy, never read the velocity
      if (out == x) return;
      if (kVec4) {
        for (int64_t i = r.begin + 4 * threadIdx.x; i < r.end; i += 4 * kIntegratorThreads)
          *reinterpret_cast<float4*>(out + i) = *reinterpret_cast<const float4*>(x + i);
      } else {
        for (int64_t i = r.begin + threadIdx.x; i < r.end; i += kIntegratorThreads) out[i] = x[i];
      }
      return;
    }
  }
  auto f = [&](float xi, float ai, float bi) {
    if (kOp == Op::Euler) return xi + h * ai;
    if (kOp == Op::Heun) return xi + h * (ai + bi);
    return bi + w * (ai - bi);
  };
  if (kVec4) {
    for (int64_t i = r.begin + 4 * threadIdx.x; i < r.end; i += 4 * kIntegratorThreads) {
      const float4 av = *reinterpret_cast<const float4*>(a + i);
      const float4 bv = kOp == Op::Euler ? av : *reinterpret_cast<const float4*>(b + i);
      const float4 xv = kOp == Op::Guidance ? av : *reinterpret_cast<const float4*>(x + i);
      *reinterpret_cast<float4*>(out + i) =
          make_float4(f(xv.x, av.x, bv.x), f(xv.y, av.y, bv.y), f(xv.z, av.z, bv.z), f(xv.w, av.w, bv.w));
    }
  } else {
    for (int64_t i = r.begin + threadIdx.x; i < r.end; i += kIntegratorThreads) {
      const float ai = a[i];
      const float bi = kOp == Op::Euler ? 0.f : b[i];
      const float xi = kOp == Op::Guidance ? 0.f : x[i];
      out[i] = f(xi, ai, bi);
    }
  }
}

// Checks the layout and builds the CTA table; *grid = 0 when there is nothing to do. *all_vec4:
// every group size is a multiple of 4 (the caller also checks the pointers' alignment). Errors
// return `invalid(message)`'s status.
template <class Invalid>
int make_table(const char* fn, const DfCudaGroupedRows* l, GroupTable* t, int64_t* grid, bool* all_vec4,
               Invalid&& invalid) {
  auto bad = [&](const std::string& what) { return invalid(std::string(fn) + ": " + what); };
  if (!l) return bad("layout: expected a pointer, got null");
  if (l->groups < 1 || l->groups > kIntegratorMaxGroups)
    return bad("layout: expected 1 to " + std::to_string(kIntegratorMaxGroups) + " groups, got " + std::to_string(l->groups));
  if (l->coef_stride < l->groups)
    return bad("layout: coef_stride: expected >= groups (" + std::to_string(l->groups) + "), got " +
               std::to_string(l->coef_stride));
  if (l->batch < 0) return bad("layout: expected batch >= 0, got " + std::to_string(l->batch));
  if (!l->per_sample) return bad("layout: per_sample: expected a pointer, got null");
  *t = GroupTable{};
  t->groups = l->groups;
  t->coef_stride = l->coef_stride;
  t->batch = l->batch;
  *all_vec4 = true;
  int64_t offset = 0, ctas = 0;
  for (int s = 0; s < l->groups; s++) {
    const int64_t n = l->per_sample[s];
    if (n < 1) return bad("layout: per_sample[" + std::to_string(s) + "]: expected >= 1, got " + std::to_string(n));
    if (n > (int64_t(1) << 40) || (l->batch > 0 && n > (int64_t(1) << 40) / l->batch))
      return bad("layout: group " + std::to_string(s) + " is too large");
    t->per_sample[s] = n;
    t->offset[s] = offset;
    t->chunks[s] = (n + kIntegratorChunk - 1) / kIntegratorChunk;
    t->first_cta[s] = ctas;
    offset += l->batch * n;
    ctas += l->batch * t->chunks[s];
    if (n % 4 != 0) *all_vec4 = false;
  }
  t->first_cta[l->groups] = ctas;
  if (ctas > INT32_MAX) return bad("layout: too large");
  *grid = ctas;
  return DF_CUDA_OK;
}

// The forward process of a training batch (twin of ops/integrator.h's flow_noising): with t the row's
// time and N the noise `target` holds, noisy = t clean + (1 - t) N and target = clean - N.
DF_KERNEL void __launch_bounds__(kIntegratorThreads) noising_kernel(const GroupTable t, const float* clean,
                                                                     const float* time, float* noisy, float* target) {
  const Row r = locate(t);
  const float ts = time[r.sample * t.coef_stride + r.group];
  for (int64_t i = r.begin + threadIdx.x; i < r.end; i += kIntegratorThreads) {
    const float noise = target[i];
    noisy[i] = ts * clean[i] + (1.f - ts) * noise;
    target[i] = clean[i] - noise;
  }
}

// out = coef * (a - b) per row, b nullable (zero) (twin of ops/integrator.h's scaled_difference): the
// model's clean-level parameterisation and its backward. out may alias a.
DF_KERNEL void __launch_bounds__(kIntegratorThreads) scaled_difference_kernel(const GroupTable t, const float* a,
                                                                               const float* b, const float* coef,
                                                                               float* out) {
  const Row r = locate(t);
  const float k = coef[r.sample * t.coef_stride + r.group];
  for (int64_t i = r.begin + threadIdx.x; i < r.end; i += kIntegratorThreads) out[i] = k * (a[i] - (b ? b[i] : 0.f));
}

// ---- host sequences for the op backend (cuda/kernel_ops.cuh); errors are df::Error ----

inline bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// The CTA table of a grouped-rows buffer (rows: df::GroupedRows); false when there is nothing to do.
template <class Rows>
bool group_table(const char* fn, const Rows& rows, GroupTable* t, int64_t* grid, bool* vec4) {
  const DfCudaGroupedRows dl{rows.batch, rows.groups(), rows.per_sample.data(), rows.stride()};
  std::string error;
  make_table(fn, &dl, t, grid, vec4, [&](const std::string& m) {
    error = m;
    return DF_CUDA_INVALID;
  });
  if (!error.empty()) df::fail(df::Code::ArgValue, error);
  return *grid > 0;
}

template <Op kOp, class L, class Rows>
void run_integrator(L& l, const Rows& rows, const float* x, const float* a, const float* b, const float* dt, float w,
                    float* out) {
  GroupTable t;
  int64_t grid = 0;
  bool vec4 = false;
  if (!group_table("integrator", rows, &t, &grid, &vec4)) return;
  vec4 = vec4 && aligned16(a) && aligned16(out) && (kOp == Op::Euler || aligned16(b)) && (kOp == Op::Guidance || aligned16(x));
  if (vec4) l.launch(integrator_kernel<kOp, true>, dim3(unsigned(grid)), kIntegratorThreads, 0, t, x, a, b, dt, w, out);
  else l.launch(integrator_kernel<kOp, false>, dim3(unsigned(grid)), kIntegratorThreads, 0, t, x, a, b, dt, w, out);
}

template <class L, class Rows>
void run_noising(L& l, const Rows& rows, const float* clean, const float* time, float* noisy, float* target) {
  GroupTable t;
  int64_t grid = 0;
  bool vec4 = false;
  if (!group_table("flow_noising", rows, &t, &grid, &vec4)) return;
  l.launch(noising_kernel, dim3(unsigned(grid)), kIntegratorThreads, 0, t, clean, time, noisy, target);
}

template <class L, class Rows>
void run_scaled_difference(L& l, const Rows& rows, const float* a, const float* b, const float* coef, float* out) {
  GroupTable t;
  int64_t grid = 0;
  bool vec4 = false;
  if (!group_table("scaled_difference", rows, &t, &grid, &vec4)) return;
  l.launch(scaled_difference_kernel, dim3(unsigned(grid)), kIntegratorThreads, 0, t, a, b, coef, out);
}

}  // namespace dfcuda

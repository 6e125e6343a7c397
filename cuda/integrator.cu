// The integrator's fused updates on CUDA (twins of native/ops/integrator.cpp): one launch covers
// every group of a grouped-rows buffer (ops/integrator.h). Each CTA handles one chunk of one
// (group, sample) row, so dt is uniform within a CTA and a row whose dt is 0 is copied without
// reading its velocity (e.g. a waiting stage's velocity is meaningless, maybe never written).
#include <cmath>
#include <cstdint>
#include <string>

#include "common.cuh"
#include "integrator_kernels.cuh"

namespace dfcuda {

namespace {

int invalid(const char* fn, const std::string& what) { return set_error(DF_CUDA_INVALID, std::string(fn) + ": " + what); }

template <Op kOp>
int launch(const char* fn, int device, const DfCudaGroupedRows* l, const float* x, const float* a, const float* b,
           const float* dt, float w, float* out) {
  GroupTable t;
  int64_t grid = 0;
  bool vec4 = false;
  DF_STATUS_TRY(make_table(fn, l, &t, &grid, &vec4, [](const std::string& msg) { return set_error(DF_CUDA_INVALID, msg); }));
  if (grid == 0) return DF_CUDA_OK;
  if (!a || !out || (kOp != Op::Euler && !b) || (kOp != Op::Guidance && (!x || !dt)))
    return invalid(fn, "expected device pointers, got null");
  cudaStream_t stream;
  DF_STATUS_TRY(stream_for(device, &stream));
  vec4 = vec4 && aligned16(a) && aligned16(out) && (kOp == Op::Euler || aligned16(b)) &&
         (kOp == Op::Guidance || aligned16(x));
  if (vec4)
    integrator_kernel<kOp, true><<<unsigned(grid), kIntegratorThreads, 0, stream>>>(t, x, a, b, dt, w, out);
  else
    integrator_kernel<kOp, false><<<unsigned(grid), kIntegratorThreads, 0, stream>>>(t, x, a, b, dt, w, out);
  DF_CUDA_LAUNCHED("integrator_kernel");
  return DF_CUDA_OK;
}

}  // namespace

int flow_euler_update(int device, const DfCudaGroupedRows* l, const float* x, const float* v, const float* dt,
                      float* out) {
  return launch<Op::Euler>("flow_euler_update", device, l, x, v, nullptr, dt, 0.f, out);
}

int flow_heun_update(int device, const DfCudaGroupedRows* l, const float* x, const float* v1, const float* v2,
                     const float* dt, float* out) {
  return launch<Op::Heun>("flow_heun_update", device, l, x, v1, v2, dt, 0.f, out);
}

int guidance_combine(int device, const DfCudaGroupedRows* l, const float* v_cond, const float* v_uncond, float w,
                     float* out) {
  if (!std::isfinite(w)) return invalid("guidance_combine", "w: expected a finite number");
  return launch<Op::Guidance>("guidance_combine", device, l, nullptr, v_cond, v_uncond, nullptr, w, out);
}

}  // namespace dfcuda

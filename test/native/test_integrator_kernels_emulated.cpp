// The CUDA integrator kernel (cuda/integrator_kernels.cuh), its own source run on the CPU by the
// host emulation (cuda/host_emulation.h), against the CPU op (native/ops/integrator.cpp): the CTA
// table (stage lookup, rows split in chunks), both the float4 and the scalar paths, in-place
// updates, and rows whose dt is 0, whose velocities are NaN so that reading them fails the
// comparison. Tolerance: max |got - cpu| / max |cpu| <= 1e-5; copied rows exact. test_cuda_integrator
// checks the same on the device.
#include "kernel_level.h"  // first: the kernels are called directly
#include "cuda_emulation.h"

#include <cstdio>
#include <random>

#include "ops/integrator.h"
#include "test_util.h"

using namespace dfcuda;

namespace {

template <Op kOp>
void run(const df::GroupedRows& l, bool vec4, bool in_place, uint32_t seed) {
  const int S = l.groups();
  const size_t n = size_t(l.total());
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.f, 1.f);
  std::vector<float> x(n), a(n), b(n), dt(size_t(l.batch * S));
  for (size_t i = 0; i < n; i++) x[i] = dist(rng), a[i] = dist(rng), b[i] = dist(rng);
  for (auto& h : dt) h = 0.1f * dist(rng);
  for (int64_t s = 0; s < l.batch; s++) dt[size_t(s * S + S - 1)] = 0.f;  // the last stage waits
  if (kOp != Op::Guidance)
    for (int64_t s = 0; s < l.batch; s++)
      for (int64_t i = 0; i < l.per_sample.back(); i++) {
        const size_t at = size_t(l.offset(S - 1) + s * l.per_sample.back() + i);
        a[at] = b[at] = NAN;
      }
  std::vector<float> cpu(n);
  const float w = 2.5f;
  if (kOp == Op::Euler) df::flow_euler_update(l, x.data(), a.data(), dt.data(), cpu.data());
  if (kOp == Op::Heun) df::flow_heun_update(l, x.data(), a.data(), b.data(), dt.data(), cpu.data());
  if (kOp == Op::Guidance) df::guidance_combine(l, a.data(), b.data(), w, cpu.data());

  const DfCudaGroupedRows dl{l.batch, S, l.per_sample.data(), S};
  std::vector<float> got(n, NAN);
  float* out = in_place ? (kOp == Op::Guidance ? a.data() : x.data()) : got.data();
  const std::vector<float> x0 = x;
  bool used_vec4 = false;
  const int status = cudaemu::integrator<kOp>(dl, x.data(), a.data(), b.data(), dt.data(), w, out, &used_vec4);
  CHECK(status == DF_CUDA_OK, "make_table failed");
  CHECK(used_vec4 == vec4, "float4 eligibility %d, expected %d", int(used_vec4), int(vec4));
  if (in_place) got.assign(out, out + n);
  double num = 0, den = 0;
  long long first_bad = -1, copies_wrong = 0;
  for (size_t i = 0; i < n; i++) {
    const double e = std::isfinite(got[i]) ? std::fabs(double(got[i]) - cpu[i]) : INFINITY;
    if (e > 1e-5 * std::max(1.0, std::fabs(double(cpu[i]))) && first_bad < 0) first_bad = (long long)i;
    num = std::max(num, e);
    den = std::max(den, std::fabs(double(cpu[i])));
  }
  if (kOp != Op::Guidance)
    for (int64_t s = 0; s < l.batch; s++)
      for (int64_t i = 0; i < l.per_sample.back(); i++) {
        const size_t at = size_t(l.offset(S - 1) + s * l.per_sample.back() + i);
        copies_wrong += got[at] != x0[at];
      }
  const char* name = kOp == Op::Euler ? "euler" : kOp == Op::Heun ? "heun" : "guidance";
  CHECK(num / den <= 1e-5, "%s B%lld S%d: max rel err %.3e, first bad element %lld", name, (long long)l.batch, S,
        num / den, first_bad);
  CHECK(copies_wrong == 0, "%s: %lld elements of waiting rows are not copies of x", name, copies_wrong);
  std::printf("  %-8s B%lld groups %d %s%s: max rel err %.1e\n", name, (long long)l.batch, S,
              vec4 ? "float4" : "scalar", in_place ? " in place" : "", num / den);
}

}  // namespace

int main() {
  const df::GroupedRows vec = {3, {12, 4100 * 4}};    // rows of several 4096-float chunks, float4
  const df::GroupedRows odd = {2, {105, 4097, 7}};    // scalar path, a row of 2 chunks
  uint32_t seed = 1;
  for (bool in_place : {false, true}) {
    run<Op::Euler>(vec, true, in_place, seed++);
    run<Op::Euler>(odd, false, in_place, seed++);
    run<Op::Heun>(vec, true, in_place, seed++);
    run<Op::Heun>(odd, false, in_place, seed++);
    run<Op::Guidance>(vec, true, in_place, seed++);
    run<Op::Guidance>(odd, false, in_place, seed++);
  }
  return test_summary("test_integrator_kernels_emulated");
}

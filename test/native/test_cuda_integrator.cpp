// CUDA integrator kernels (cuda/integrator.cu) against the CPU op (native/ops/integrator.cpp) on
// random multi-stage layouts: stage sizes that are and are not multiples of 4 (the vectorised and
// scalar paths), rows longer than one CTA's chunk, misaligned pointers, in-place updates, and rows
// whose dt is 0, whose velocities are NaN so that reading them would fail the comparison.
// Tolerance: max |got - cpu| / max |cpu| <= 1e-5 (f32 both sides); copied rows must match exactly.
// Outputs are poisoned with NaN before every launch. DECOFLOW_TEST_SMALL=1: small layouts only.
#include "kernel_level.h"  // first: the kernels are called directly
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "cuda_test_util.h"
#include "ops/integrator.h"

using cudatest::compare;
using cudatest::DeviceBuffer;
using cudatest::g_api;

namespace {

enum class Kind { Euler, Heun, Guidance };
const char* kind_name(Kind k) { return k == Kind::Euler ? "euler" : k == Kind::Heun ? "heun" : "guidance"; }

std::vector<float> randn(size_t n, std::mt19937& rng) {
  std::normal_distribution<float> dist(0.f, 1.f);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

void expect_close(const std::string& label, const std::vector<float>& got, const std::vector<float>& cpu) {
  std::vector<double> ref(cpu.begin(), cpu.end());
  cudatest::ErrorReport r = compare(got, ref, 1e-5);
  CHECK(r.rel <= 1e-5, "%s: max rel err %.3e; first bad element %lld: got %g, expected %g", label.c_str(), r.rel,
        (long long)r.first_bad, r.got_at_bad, r.ref_at_bad);
}

// `shift` floats of offset on every pointer (1: misaligned, the scalar path); in_place: out = x
// (Euler, Heun) or out = v_cond (guidance).
void run(Kind kind, const df::GroupedRows& l, int shift, bool in_place, uint32_t seed) {
  const int S = l.groups();
  const size_t n = size_t(l.total()), rows = size_t(l.batch * S);
  std::mt19937 rng(seed);
  std::vector<float> x = randn(n, rng), a = randn(n, rng), b = randn(n, rng), dt(rows);
  std::uniform_real_distribution<float> u(-0.2f, 0.2f);
  for (auto& h : dt) h = u(rng);
  // Waiting stages: the last stage of every sample, and one more (sample 0, stage 0) when S > 1.
  for (int64_t s = 0; s < l.batch; s++) dt[size_t(s * S + S - 1)] = 0.f;
  if (S > 1) dt[0] = 0.f;
  if (kind != Kind::Guidance)
    for (int st = 0; st < S; st++)
      for (int64_t s = 0; s < l.batch; s++)
        if (dt[size_t(s * S + st)] == 0.f)
          for (int64_t i = 0; i < l.per_sample[size_t(st)]; i++) {
            const size_t at = size_t(l.offset(st) + s * l.per_sample[size_t(st)] + i);
            a[at] = b[at] = NAN;  // must never be read
          }

  std::vector<float> cpu(n);
  const float w = 1.75f;
  if (kind == Kind::Euler) df::flow_euler_update(l, x.data(), a.data(), dt.data(), cpu.data());
  if (kind == Kind::Heun) df::flow_heun_update(l, x.data(), a.data(), b.data(), dt.data(), cpu.data());
  if (kind == Kind::Guidance) df::guidance_combine(l, a.data(), b.data(), w, cpu.data());

  const size_t bytes = (n + 4) * sizeof(float);
  DeviceBuffer xd(bytes), ad(bytes), bd(bytes), dtd(rows * sizeof(float)), outd(bytes);
  auto shifted = [&](const std::vector<float>& h) {
    std::vector<float> s(n + 4, NAN);
    std::copy(h.begin(), h.end(), s.begin() + shift);
    return s;
  };
  xd.upload(shifted(x));
  ad.upload(shifted(a));
  bd.upload(shifted(b));
  dtd.upload(dt);
  outd.upload(std::vector<float>(n + 4, NAN));
  float* x_ptr = xd.as<float>() + shift;
  float* a_ptr = ad.as<float>() + shift;
  float* b_ptr = bd.as<float>() + shift;
  float* out_ptr = in_place ? (kind == Kind::Guidance ? a_ptr : x_ptr) : outd.as<float>() + shift;
  const DfCudaGroupedRows dl{l.batch, S, l.per_sample.data(), S};
  int status = DF_CUDA_OK;
  if (kind == Kind::Euler) status = g_api->flow_euler_update(0, &dl, x_ptr, a_ptr, dtd.as<float>(), out_ptr);
  if (kind == Kind::Heun) status = g_api->flow_heun_update(0, &dl, x_ptr, a_ptr, b_ptr, dtd.as<float>(), out_ptr);
  if (kind == Kind::Guidance) status = g_api->guidance_combine(0, &dl, a_ptr, b_ptr, w, out_ptr);
  CHECK(status == DF_CUDA_OK, "%s launch: status %d: %s", kind_name(kind), status, g_api->last_error());
  if (!CUDA_OK(g_api->synchronize(0))) return;
  std::vector<float> all(n + 4);
  CUDA_OK(g_api->copy_to_host(0, all.data(), static_cast<void*>(out_ptr - shift), (n + 4) * sizeof(float)));
  std::vector<float> got(all.begin() + shift, all.begin() + shift + long(n));

  std::string label = std::string(kind_name(kind)) + " B" + std::to_string(l.batch) + " per_sample [";
  for (int st = 0; st < S; st++) label += (st ? "," : "") + std::to_string(l.per_sample[size_t(st)]);
  label += "]" + std::string(shift ? " misaligned" : "") + (in_place ? " in place" : "");
  expect_close(label, got, cpu);
  // Copied rows are exact copies.
  if (kind != Kind::Guidance) {
    int64_t mismatches = 0;
    for (int st = 0; st < S; st++)
      for (int64_t s = 0; s < l.batch; s++)
        if (dt[size_t(s * S + st)] == 0.f)
          for (int64_t i = 0; i < l.per_sample[size_t(st)]; i++) {
            const size_t at = size_t(l.offset(st) + s * l.per_sample[size_t(st)] + i);
            mismatches += got[at] != x[at];
          }
    CHECK(mismatches == 0, "%s: %lld elements of dt = 0 rows are not exact copies of x", label.c_str(),
          (long long)mismatches);
  }
  std::printf("  %-70s ok\n", label.c_str());
}

void check_errors() {
  DeviceBuffer buf(4096);
  float* p = buf.as<float>();
  auto expect_invalid = [&](int status, const char* needle, const char* what) {
    const std::string msg = g_api->last_error();
    CHECK(status == DF_CUDA_INVALID, "%s: expected DF_CUDA_INVALID, got %d (%s)", what, status, msg.c_str());
    CHECK(msg.find(needle) != std::string::npos, "%s: message '%s' does not mention '%s'", what, msg.c_str(), needle);
  };
  int64_t ok[1] = {8}, zero[1] = {0};
  DfCudaGroupedRows no_groups{2, 0, ok, 1}, bad_size{2, 1, zero, 1}, good{2, 1, ok, 1}, negative{-1, 1, ok, 1}, narrow{2, 1, ok, 0};
  expect_invalid(g_api->flow_euler_update(0, &no_groups, p, p, p, p), "groups", "0 groups");
  expect_invalid(g_api->flow_euler_update(0, &narrow, p, p, p, p), "coef_stride", "coef_stride 0");
  expect_invalid(g_api->flow_euler_update(0, &bad_size, p, p, p, p), "per_sample", "per_sample 0");
  expect_invalid(g_api->flow_euler_update(0, &negative, p, p, p, p), "batch", "batch -1");
  expect_invalid(g_api->flow_heun_update(0, &good, p, p, nullptr, p, p), "pointers", "null v2");
  expect_invalid(g_api->guidance_combine(0, &good, p, p, NAN, p), "w", "NaN w");
  expect_invalid(g_api->flow_euler_update(0, nullptr, p, p, p, p), "layout", "null layout");
  DfCudaGroupedRows empty{0, 1, ok, 1};
  CUDA_OK(g_api->flow_euler_update(0, &empty, p, p, p, p));  // batch 0: nothing to do
  CUDA_OK(g_api->synchronize(0));
}

}  // namespace

int main() {
  int exit_code = 0;
  g_api = cudatest::api_or_skip("test_cuda_integrator", &exit_code);
  if (!g_api) return exit_code;

  std::vector<df::GroupedRows> layouts = {
      {3, {12, 48}},               // multiples of 4: float4 path
      {2, {105, 420, 1680}},       // 3x5x7 ... : scalar path
      {1, {1}},                    // one element
  };
  if (!cudatest::small_mode()) {
    layouts.push_back({5, {8196, 16}});                     // rows of several chunks
    layouts.push_back({4, {3 * 64 * 64, 3 * 128 * 128}});   // image-like, float4
    layouts.push_back({3, {4 * 33 * 33, 4 * 66 * 66, 4 * 131 * 131, 7}});
  }
  uint32_t seed = 1;
  for (Kind kind : {Kind::Euler, Kind::Heun, Kind::Guidance})
    for (const auto& l : layouts)
      for (int shift : {0, 1})
        for (bool in_place : {false, true}) run(kind, l, shift, in_place, seed++);
  check_errors();
  return test_summary("test_cuda_integrator");
}

// CUDA flash attention (cuda/attention.cu) against a float64 reference computed on the same
// bf16/f16-rounded inputs, and against the CPU op (native/ops/attention.cpp) on those inputs.
// Shapes include sizes that are not multiples of the tiles (64 queries, 64 keys), nq != nk,
// causal with nq > nk (rows that see no key), one key, and a non-default scale.
//
// Error measure, per output: max_i |got_i - ref_i| / max_i |ref_i|; tolerance 1e-2 for the 16-bit
// types (inputs, outputs and P are rounded to 8 or 11 significant bits; accumulation is f32).
// Outputs are filled with NaN before every launch, so an element never written fails. Every backend
// call's status is checked, and the stream is synchronised (surfacing kernel faults) after each op.
// DECOFLOW_TEST_SMALL=1 runs only small shapes (for compute-sanitizer).
#include "kernel_level.h"  // first: the kernels are called directly
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "cuda_test_util.h"
#include "ops/attention.h"
#include "attention_reference.h"

using cudatest::compare;
using cudatest::DeviceBuffer;
using cudatest::ErrorReport;
using cudatest::g_api;
using attnref::Case;
using attnref::Reference;
using attnref::reference;

namespace {

uint16_t to_16(float x, int dtype) { return dtype == DF_CUDA_BF16 ? df::f32_to_bf16(x) : df::f32_to_f16(x); }
float from_16(uint16_t x, int dtype) { return dtype == DF_CUDA_BF16 ? df::bf16_to_f32(x) : df::f16_to_f32(x); }

// Random N(0, 1) values rounded to the 16-bit type: the bits for the device, the rounded floats
// for the references.
void random_16(size_t n, int dtype, std::mt19937& rng, std::vector<uint16_t>* bits, std::vector<float>* rounded) {
  std::normal_distribution<float> dist(0.f, 1.f);
  bits->resize(n);
  rounded->resize(n);
  for (size_t i = 0; i < n; i++) {
    (*bits)[i] = to_16(dist(rng), dtype);
    (*rounded)[i] = from_16((*bits)[i], dtype);
  }
}

std::vector<float> widen(const std::vector<uint16_t>& bits, int dtype) {
  std::vector<float> out(bits.size());
  for (size_t i = 0; i < bits.size(); i++) out[i] = from_16(bits[i], dtype);
  return out;
}

std::vector<double> to_double(const std::vector<float>& x) { return std::vector<double>(x.begin(), x.end()); }

// Checks one output against the reference (tolerance tol relative to max|ref|, or abs_tol when
// the exact result is all zero) and prints the error and, when it fails, the first bad element.
// `exact` is the float64 reference of the same output: where it is all zero (dq and dk with a
// single key: softmax is then constant, so dS = dP - D = 0), the CPU op's f32 result is rounding
// noise of ~1e-8, and an error relative to that noise measures nothing; the comparison is then
// absolute, as it is against the float64 reference.
double expect_close(const char* label, const char* what, const std::vector<float>& got, const std::vector<double>& ref,
                    double tol, double abs_tol, const std::vector<double>* exact = nullptr) {
  bool exact_zero = true;
  for (double x : exact ? *exact : ref) exact_zero = exact_zero && x == 0;
  // Against an all-zero exact result the error is absolute: compare() then divides by 1.
  const ErrorReport r = exact_zero ? compare(got, std::vector<double>(ref.size(), 0.0), abs_tol) : compare(got, ref, tol);
  const double limit = exact_zero ? abs_tol : tol;
  CHECK(r.rel <= limit, "%s: %s: max rel err %.3e > %.1e; first bad element %lld: got %g, expected %g", label, what,
        r.rel, limit, (long long)r.first_bad, r.got_at_bad, r.ref_at_bad);
  return r.rel;
}

void run_case(const Case& c, int dtype, uint32_t seed) {
  const float scale = c.scale > 0 ? c.scale : float(1.0 / std::sqrt(double(c.dim)));
  const DfCudaAttentionShape shape{c.batch, c.heads, c.nq, c.nk, c.dim};
  const size_t nqd = size_t(c.batch * c.heads * c.nq * c.dim), nkd = size_t(c.batch * c.heads * c.nk * c.dim);
  const size_t rows = size_t(c.batch * c.heads * c.nq);
  char label[200];
  std::snprintf(label, sizeof label, "%s B%lld H%lld nq%lld nk%lld D%lld %s scale %.3g",
                dtype == DF_CUDA_BF16 ? "bf16" : "f16", (long long)c.batch, (long long)c.heads, (long long)c.nq,
                (long long)c.nk, (long long)c.dim, c.causal ? "causal" : "full", scale);

  std::mt19937 rng(seed);
  std::vector<uint16_t> qb, kb, vb, dob;
  std::vector<float> q, k, v, d_o;
  random_16(nqd, dtype, rng, &qb, &q);
  random_16(nkd, dtype, rng, &kb, &k);
  random_16(nkd, dtype, rng, &vb, &v);
  random_16(nqd, dtype, rng, &dob, &d_o);
  const Reference ref = reference(q, k, v, d_o, c, scale);

  const std::vector<uint16_t> nan16(std::max(nqd, nkd), dtype == DF_CUDA_BF16 ? 0x7fc0 : 0x7e00);
  const std::vector<float> nan32(rows, std::nanf(""));
  DeviceBuffer q_dev(nqd * 2), k_dev(nkd * 2), v_dev(nkd * 2), d_o_dev(nqd * 2), o_dev(nqd * 2), lse_dev(rows * 4);
  DeviceBuffer dq_dev(nqd * 2), dk_dev(nkd * 2), dv_dev(nkd * 2);
  q_dev.upload(qb);
  k_dev.upload(kb);
  v_dev.upload(vb);
  d_o_dev.upload(dob);

  // Forward.
  o_dev.upload(std::vector<uint16_t>(nan16.begin(), nan16.begin() + long(nqd)));
  lse_dev.upload(nan32);
  if (!CUDA_OK(g_api->attention_forward(0, dtype, q_dev.get(), k_dev.get(), v_dev.get(), o_dev.get(),
                                        lse_dev.as<float>(), &shape, scale, c.causal)))
    return;
  if (!CUDA_OK(g_api->synchronize(0))) return;
  const std::vector<uint16_t> o_bits = o_dev.download<uint16_t>(nqd);
  const std::vector<float> o = widen(o_bits, dtype), lse = lse_dev.download<float>(rows);

  // Backward, from the device's own o and lse (as training uses it).
  dq_dev.upload(std::vector<uint16_t>(nan16.begin(), nan16.begin() + long(nqd)));
  dk_dev.upload(std::vector<uint16_t>(nan16.begin(), nan16.begin() + long(nkd)));
  dv_dev.upload(std::vector<uint16_t>(nan16.begin(), nan16.begin() + long(nkd)));
  if (!CUDA_OK(g_api->attention_backward(0, dtype, q_dev.get(), k_dev.get(), v_dev.get(), o_dev.get(),
                                         lse_dev.as<float>(), d_o_dev.get(), dq_dev.get(), dk_dev.get(), dv_dev.get(),
                                         &shape, scale, c.causal)))
    return;
  if (!CUDA_OK(g_api->synchronize(0))) return;
  const std::vector<float> dq = widen(dq_dev.download<uint16_t>(nqd), dtype);
  const std::vector<float> dk = widen(dk_dev.download<uint16_t>(nkd), dtype);
  const std::vector<float> dv = widen(dv_dev.download<uint16_t>(nkd), dtype);

  // The CPU op on the same rounded inputs (f32).
  const df::AttentionShape cs{c.batch, c.heads, c.nq, c.nk, c.dim};
  std::vector<float> co(nqd), clse(rows), cdq(nqd), cdk(nkd), cdv(nkd);
  df::attention_forward(q.data(), k.data(), v.data(), co.data(), clse.data(), cs, scale, c.causal);
  df::attention_backward(q.data(), k.data(), v.data(), co.data(), clse.data(), d_o.data(), cdq.data(), cdk.data(),
                         cdv.data(), cs, scale, c.causal);

  const double tol = 1e-2, abs_tol = 1e-3;
  double e[5] = {expect_close(label, "o", o, ref.o, tol, abs_tol), expect_close(label, "lse", lse, ref.lse, tol, abs_tol),
                 expect_close(label, "dq", dq, ref.dq, tol, abs_tol), expect_close(label, "dk", dk, ref.dk, tol, abs_tol),
                 expect_close(label, "dv", dv, ref.dv, tol, abs_tol)};
  double ec[5] = {expect_close(label, "o vs cpu", o, to_double(co), tol, abs_tol),
                  expect_close(label, "lse vs cpu", lse, to_double(clse), tol, abs_tol),
                  expect_close(label, "dq vs cpu", dq, to_double(cdq), tol, abs_tol, &ref.dq),
                  expect_close(label, "dk vs cpu", dk, to_double(cdk), tol, abs_tol, &ref.dk),
                  expect_close(label, "dv vs cpu", dv, to_double(cdv), tol, abs_tol)};
  std::printf("  %-52s vs f64: o %.1e lse %.1e dq %.1e dk %.1e dv %.1e | vs cpu: o %.1e lse %.1e dq %.1e dk %.1e dv %.1e\n",
              label, e[0], e[1], e[2], e[3], e[4], ec[0], ec[1], ec[2], ec[3], ec[4]);
}

// Bad arguments come back as DF_CUDA_INVALID with a message naming the argument, never a crash.
void check_errors() {
  DeviceBuffer buf(1 << 16);
  char* p = buf.as<char>();
  float* lse = buf.as<float>();
  auto expect_invalid = [&](int status, const char* needle, const char* what) {
    const std::string msg = g_api->last_error();
    CHECK(status == DF_CUDA_INVALID, "%s: expected DF_CUDA_INVALID, got %d (%s)", what, status, msg.c_str());
    CHECK(msg.find(needle) != std::string::npos, "%s: message '%s' does not mention '%s'", what, msg.c_str(), needle);
  };
  DfCudaAttentionShape s{1, 1, 8, 8, 64};
  DfCudaAttentionShape bad_dim{1, 1, 8, 8, 48};
  DfCudaAttentionShape zero{1, 0, 8, 8, 64};
  expect_invalid(g_api->attention_forward(0, DF_CUDA_BF16, p, p, p, p, lse, &bad_dim, 0.1f, 0), "dim", "dim 48");
  expect_invalid(g_api->attention_forward(0, DF_CUDA_F32, p, p, p, p, lse, &s, 0.1f, 0), "dtype", "f32");
  expect_invalid(g_api->attention_forward(0, DF_CUDA_BF16, p + 2, p, p, p, lse, &s, 0.1f, 0), "q", "misaligned q");
  expect_invalid(g_api->attention_forward(0, DF_CUDA_BF16, p, p, p, p, lse, &zero, 0.1f, 0), "shape", "zero heads");
  expect_invalid(g_api->attention_forward(0, DF_CUDA_BF16, p, p, p, p, lse, nullptr, 0.1f, 0), "shape", "null shape");
  expect_invalid(g_api->attention_forward(0, DF_CUDA_BF16, p, p, p, p, lse, &s, NAN, 0), "scale", "NaN scale");
  expect_invalid(g_api->attention_backward(0, DF_CUDA_F16, p, p, p, p, lse, p, nullptr, p, p, &s, 0.1f, 0), "dq",
                 "null dq");
  expect_invalid(g_api->attention_forward(-1, DF_CUDA_BF16, p, p, p, p, lse, &s, 0.1f, 0), "device", "device -1");
  CUDA_OK(g_api->synchronize(0));  // nothing was launched; the stream is healthy
}

}  // namespace

int main() {
  int exit_code = 0;
  g_api = cudatest::api_or_skip("test_cuda_attention", &exit_code);
  if (!g_api) return exit_code;

  const std::vector<Case> small = {{1, 1, 1, 1, 64, false, 0}, {1, 2, 17, 33, 64, true, 0}, {1, 1, 65, 70, 128, false, 0},
             {1, 1, 40, 20, 32, true, 0}};
  const std::vector<Case> full = {{1, 1, 1, 1, 64, false, 0},     {1, 1, 1, 1, 64, true, 0},      {2, 3, 17, 33, 64, false, 0},
             {2, 3, 17, 33, 64, true, 0},    {1, 2, 100, 100, 128, false, 0}, {1, 2, 100, 100, 128, true, 0},
             {1, 2, 65, 130, 32, false, 0},  {1, 2, 65, 130, 32, true, 0},   {2, 1, 130, 65, 64, true, 0},
             {1, 1, 256, 256, 128, true, 0}, {1, 4, 64, 64, 64, false, 0},   {1, 2, 300, 200, 128, false, 0},
             {1, 1, 257, 513, 32, true, 0},  {1, 2, 77, 91, 64, false, 0.3f}, {1, 1, 200, 72, 128, true, 0}};
  const std::vector<Case>& cases = cudatest::small_mode() ? small : full;
  uint32_t seed = 1;
  for (int dtype : {DF_CUDA_BF16, DF_CUDA_F16})
    for (const Case& c : cases) run_case(c, dtype, seed++);
  check_errors();
  return test_summary("test_cuda_attention");
}

// Shared by the dev/cuda attention ladder (attention_v1_naive.cu, v2, v3...): each version is a
// standalone program (its own main) that checks its kernels against a CPU reference and times them.
// Build: cmake -DDECOFLOW_DEV_CUDA=ON (targets dev_attention_*), or by hand:
//   nvcc -O3 --use_fast_math -std=c++17 -arch=sm_90a -Icuda -Idev/cuda dev/cuda/attention_v2_mma.cu
// Layout as the mainline: q, o [heads, N, D], k, v [heads, N, D] (heads = batch * heads), bf16,
// lse [heads, N] f32; causal with nq == nk here.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#define CUDA_CHECK(call)                                                                              \
  do {                                                                                                \
    cudaError_t e_ = (call);                                                                          \
    if (e_ != cudaSuccess) {                                                                          \
      std::fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #call, cudaGetErrorString(e_));     \
      std::exit(2);                                                                                   \
    }                                                                                                 \
  } while (0)

namespace dev {

using bf16 = __nv_bfloat16;

struct Problem {
  int heads, n, dim;  // heads = batch * heads
  bool causal;
  size_t elems() const { return size_t(heads) * n * dim; }
  size_t rows() const { return size_t(heads) * n; }
  float scale() const { return 1.f / std::sqrt(float(dim)); }
  double forward_flop() const { return 4.0 * heads * double(n) * n * dim * (causal ? 0.5 : 1.0); }
};

// Host and device copies of the inputs (bf16; the host keeps the rounded floats).
struct Inputs {
  std::vector<float> q, k, v, d_o;
  bf16 *dq_in = nullptr, *dk_in = nullptr, *dv_in = nullptr, *dd_o = nullptr;
  explicit Inputs(const Problem& p, unsigned seed = 1) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> dist(0.f, 1.f);
    for (auto* t : {&q, &k, &v, &d_o}) {
      t->resize(p.elems());
      std::vector<bf16> bits(p.elems());
      for (size_t i = 0; i < p.elems(); i++) {
        bits[i] = __float2bfloat16_rn(dist(rng));
        (*t)[i] = __bfloat162float(bits[i]);
      }
      bf16** dst = t == &q ? &dq_in : t == &k ? &dk_in : t == &v ? &dv_in : &dd_o;
      CUDA_CHECK(cudaMalloc(dst, p.elems() * sizeof(bf16)));
      CUDA_CHECK(cudaMemcpy(*dst, bits.data(), p.elems() * sizeof(bf16), cudaMemcpyHostToDevice));
    }
  }
  ~Inputs() {
    for (bf16* p : {dq_in, dk_in, dv_in, dd_o}) cudaFree(p);
  }
};

// One query row of the reference, in double: o row, lse, and (with want_grad) the row's
// contributions to dq (written) and dk, dv (accumulated).
inline void reference_row(const Problem& p, const Inputs& in, int h, int i, double* o, double* lse, double* dq,
                          std::vector<double>* dk, std::vector<double>* dv) {
  const int D = p.dim, n = p.causal ? i + 1 : p.n;
  const size_t base = size_t(h) * p.n * D;
  std::vector<double> s(static_cast<size_t>(n)), dp(static_cast<size_t>(n));
  double m = -INFINITY;
  for (int j = 0; j < n; j++) {
    double acc = 0;
    for (int d = 0; d < D; d++) acc += double(in.q[base + size_t(i) * D + d]) * in.k[base + size_t(j) * D + d];
    s[size_t(j)] = acc * p.scale();
    m = std::max(m, s[size_t(j)]);
  }
  double l = 0;
  for (int j = 0; j < n; j++) l += std::exp(s[size_t(j)] - m);
  *lse = m + std::log(l);
  for (int d = 0; d < D; d++) o[d] = 0;
  double delta = 0;
  for (int j = 0; j < n; j++) {
    s[size_t(j)] = std::exp(s[size_t(j)] - *lse);
    double acc = 0;
    for (int d = 0; d < D; d++) {
      o[d] += s[size_t(j)] * in.v[base + size_t(j) * D + d];
      acc += double(in.d_o[base + size_t(i) * D + d]) * in.v[base + size_t(j) * D + d];
    }
    dp[size_t(j)] = acc;
    delta += s[size_t(j)] * acc;
  }
  if (!dq) return;
  for (int d = 0; d < D; d++) dq[d] = 0;
  for (int j = 0; j < n; j++) {
    const double ds = s[size_t(j)] * (dp[size_t(j)] - delta) * p.scale();
    for (int d = 0; d < D; d++) {
      dq[d] += ds * in.k[base + size_t(j) * D + d];
      (*dk)[base + size_t(j) * D + d] += ds * in.q[base + size_t(i) * D + d];
      (*dv)[base + size_t(j) * D + d] += s[size_t(j)] * in.d_o[base + size_t(i) * D + d];
    }
  }
}

inline std::vector<float> download_bf16(const bf16* d, size_t n) {
  std::vector<bf16> bits(n);
  CUDA_CHECK(cudaMemcpy(bits.data(), d, n * sizeof(bf16), cudaMemcpyDeviceToHost));
  std::vector<float> out(n);
  for (size_t i = 0; i < n; i++) out[i] = __bfloat162float(bits[i]);
  return out;
}

inline std::vector<float> download_f32(const float* d, size_t n) {
  std::vector<float> out(n);
  CUDA_CHECK(cudaMemcpy(out.data(), d, n * sizeof(float), cudaMemcpyDeviceToHost));
  return out;
}

// Tracks max |got - ref| / max |ref| over the checked elements; NaN counts as infinite.
struct ErrorMax {
  double num = 0, den = 0;
  long long first_bad = -1;
  void add(long long index, float got, double ref) {
    const double e = std::isfinite(got) ? std::fabs(got - ref) : INFINITY;
    if (!(e <= num)) num = std::isnan(e) ? INFINITY : e;
    if (!std::isfinite(got) && first_bad < 0) first_bad = index;
    den = std::max(den, std::fabs(ref));
  }
  double rel() const { return den > 0 ? num / den : num; }
};

// Forward check on `sample` query rows per head (all rows when sample <= 0).
inline bool check_forward(const char* name, const Problem& p, const Inputs& in, const std::vector<float>& o,
                          const std::vector<float>& lse, int sample) {
  ErrorMax eo, el;
  std::vector<double> ro(size_t(p.dim));
  std::mt19937 rng(7);
  for (int h = 0; h < p.heads; h++) {
    const int rows = sample > 0 ? std::min(sample, p.n) : p.n;
    for (int r = 0; r < rows; r++) {
      const int i = sample > 0 ? int(rng() % unsigned(p.n)) : r;
      double rl;
      reference_row(p, in, h, i, ro.data(), &rl, nullptr, nullptr, nullptr);
      const size_t at = (size_t(h) * p.n + i) * p.dim;
      for (int d = 0; d < p.dim; d++) eo.add((long long)(at + d), o[at + d], ro[size_t(d)]);
      el.add((long long)(size_t(h) * p.n + i), lse[size_t(h) * p.n + i], rl);
    }
  }
  const bool ok = eo.rel() <= 1e-2 && el.rel() <= 1e-2;
  std::printf("  %-34s check H%d N%d D%d %s: o err %.2e lse err %.2e%s%s\n", name, p.heads, p.n, p.dim,
              p.causal ? "causal" : "full", eo.rel(), el.rel(), ok ? "" : "  FAIL",
              eo.first_bad >= 0 ? " (non-finite output)" : "");
  return ok;
}

// Backward check over all rows (small problems only).
inline bool check_backward(const char* name, const Problem& p, const Inputs& in, const std::vector<float>& dq,
                           const std::vector<float>& dk, const std::vector<float>& dv) {
  std::vector<double> rdk(p.elems(), 0.0), rdv(p.elems(), 0.0), rdq(size_t(p.dim)), ro(size_t(p.dim));
  ErrorMax eq, ek, ev;
  for (int h = 0; h < p.heads; h++)
    for (int i = 0; i < p.n; i++) {
      double rl;
      reference_row(p, in, h, i, ro.data(), &rl, rdq.data(), &rdk, &rdv);
      const size_t at = (size_t(h) * p.n + i) * p.dim;
      for (int d = 0; d < p.dim; d++) eq.add((long long)(at + d), dq[at + d], rdq[size_t(d)]);
    }
  for (size_t i = 0; i < p.elems(); i++) ek.add((long long)i, dk[i], rdk[i]), ev.add((long long)i, dv[i], rdv[i]);
  const bool ok = eq.rel() <= 1e-2 && ek.rel() <= 1e-2 && ev.rel() <= 1e-2;
  std::printf("  %-34s check H%d N%d D%d %s: dq err %.2e dk err %.2e dv err %.2e%s\n", name, p.heads, p.n, p.dim,
              p.causal ? "causal" : "full", eq.rel(), ek.rel(), ev.rel(), ok ? "" : "  FAIL");
  return ok;
}

// Median time of `run` in ms (CUDA events over batches of back-to-back launches).
template <class F>
double time_ms(F&& run) {
  cudaEvent_t a, b;
  CUDA_CHECK(cudaEventCreate(&a));
  CUDA_CHECK(cudaEventCreate(&b));
  run();
  CUDA_CHECK(cudaEventRecord(a));
  run();
  CUDA_CHECK(cudaEventRecord(b));
  CUDA_CHECK(cudaEventSynchronize(b));
  float once = 0;
  CUDA_CHECK(cudaEventElapsedTime(&once, a, b));
  const int per_batch = std::max(1, int(20.f / std::max(once, 1e-3f)));
  std::vector<float> samples;
  for (int s = 0; s < 5; s++) {
    CUDA_CHECK(cudaEventRecord(a));
    for (int i = 0; i < per_batch; i++) run();
    CUDA_CHECK(cudaEventRecord(b));
    CUDA_CHECK(cudaEventSynchronize(b));
    float ms = 0;
    CUDA_CHECK(cudaEventElapsedTime(&ms, a, b));
    samples.push_back(ms / per_batch);
  }
  CUDA_CHECK(cudaGetLastError());
  std::sort(samples.begin(), samples.end());
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  return samples[2];
}

inline void report_time(const char* name, const Problem& p, double ms, double flop) {
  std::printf("  %-34s time  H%d N%d D%d %s: %8.3f ms %7.1f TFLOP/s\n", name, p.heads, p.n, p.dim,
              p.causal ? "causal" : "full", ms, flop / (ms * 1e-3) / 1e12);
}

// The problems every version runs: small ones checked in full (N not a multiple of 64), and the
// benchmark's N = 4096 shapes (hidden 2048, batch 4) timed and checked on sampled rows.
inline std::vector<Problem> check_problems() {
  return {{2, 200, 64, false}, {2, 200, 64, true}, {2, 130, 128, false}, {2, 130, 128, true}};
}
inline std::vector<Problem> timing_problems() {
  return {{4 * 32, 4096, 64, false}, {4 * 16, 4096, 128, false}, {4 * 32, 4096, 64, true}, {4 * 16, 4096, 128, true}};
}

inline bool device_or_skip(const char* program) {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
    std::printf("%s: skipped: no CUDA device\n", program);
    return false;
  }
  cudaDeviceProp prop;
  CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
  std::printf("%s on %s (sm_%d%d)\n", program, prop.name, prop.major, prop.minor);
  return true;
}

}  // namespace dev

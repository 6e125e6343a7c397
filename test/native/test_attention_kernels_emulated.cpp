// The CUDA flash-attention kernels (cuda/attention_kernels.cuh), the very source the GPU runs,
// executed on the CPU by the host emulation in cuda/host_emulation.h (a thread per CUDA thread,
// warp collectives - ldmatrix, mma.sync, shuffles - emulated from the PTX fragment layouts), and
// compared with the float64 reference on 16-bit-rounded inputs. This checks the fragment and
// address arithmetic, the masking, the online softmax and the backward's accumulation on machines
// without a GPU; test_cuda_attention checks the same on the device. Small shapes (the emulation is
// slow), including sizes that are not multiples of the tiles, nq != nk and causal with nq > nk.
// Tolerance as on the GPU: max |got - ref| / max |ref| <= 1e-2. Outputs start as NaN.
#include "cuda_emulation.h"

#include <cstdio>
#include <random>
#include <string>

#include "attention_reference.h"
#include "test_util.h"

using namespace dfcuda;

namespace {

constexpr uint16_t kNaN16 = 0x7fc0;  // a NaN in bf16 and in f16 (0x7fc0: f16 NaN too)

template <class T>
struct Tensor16 {
  std::vector<T> bits;
  std::vector<float> values;  // the rounded values, for the reference
};

template <class T>
Tensor16<T> random16(size_t n, std::mt19937& rng) {
  std::normal_distribution<float> dist(0.f, 1.f);
  Tensor16<T> t;
  t.bits.resize(n);
  t.values.resize(n);
  for (size_t i = 0; i < n; i++) {
    t.bits[i] = Mma<T>::from_float(dist(rng));
    t.values[i] = Mma<T>::to_float(t.bits[i]);
  }
  return t;
}

template <class T>
std::vector<float> widen(const std::vector<T>& x) {
  std::vector<float> out(x.size());
  for (size_t i = 0; i < x.size(); i++) out[i] = Mma<T>::to_float(x[i]);
  return out;
}

double rel_error(const std::vector<float>& got, const std::vector<double>& ref, long long* first_bad, double tol) {
  double num = 0, den = 0;
  for (double r : ref)
    if (std::isfinite(r)) den = std::max(den, std::fabs(r));
  *first_bad = -1;
  for (size_t i = 0; i < got.size(); i++) {
    double e;
    if (std::isinf(ref[i])) e = got[i] == ref[i] ? 0 : INFINITY;
    else e = std::isfinite(got[i]) ? std::fabs(got[i] - ref[i]) : INFINITY;
    if (e > tol * (den > 0 ? den : 1) && *first_bad < 0) *first_bad = (long long)i;
    num = std::max(num, e);
  }
  return den > 0 ? num / den : num;
}

template <class T, int D, int kWarps, int kBr, int kM = 1>
void run_case(const attnref::Case& c, const char* type, uint32_t seed) {
  const float scale = c.scale > 0 ? c.scale : 1.f / std::sqrt(float(D));
  const int64_t heads = c.batch * c.heads, nqd = heads * c.nq * D, nkd = heads * c.nk * D, rows = heads * c.nq;
  std::mt19937 rng(seed);
  auto q = random16<T>(size_t(nqd), rng), k = random16<T>(size_t(nkd), rng), v = random16<T>(size_t(nkd), rng);
  auto d_o = random16<T>(size_t(nqd), rng);
  const attnref::Reference ref = attnref::reference(q.values, k.values, v.values, d_o.values, c, scale);

  std::vector<T> o(size_t(nqd), T{kNaN16}), dq(size_t(nqd), T{kNaN16}), dk(size_t(nkd), T{kNaN16}),
      dv(size_t(nkd), T{kNaN16});
  std::vector<float> lse(size_t(rows), NAN);

  AttentionParams p = dfcuda::make_attention_params(c.nq, c.nk, scale, c.causal);
  p.q = q.bits.data(), p.k = k.bits.data(), p.v = v.bits.data(), p.out = o.data(), p.lse = lse.data();
  using FTile = ForwardTile<D, kWarps, kM>;
  CHECK((cudaemu::attention_forward<T, D, kWarps, kM>(p, heads)), "forward wrote shared memory past its %zu bytes",
        FTile::template smem_bytes<T>());

  p.o = o.data(), p.d_o = d_o.bits.data(), p.lse_in = lse.data();
  p.dk = dk.data(), p.dv = dv.data(), p.out = dq.data();
  using BTile = BackwardTile<D, kBr>;
  CHECK((cudaemu::attention_backward<T, D, kBr>(p, heads)), "backward wrote shared memory past its %zu bytes",
        BTile::template smem_bytes<T>());

  char label[160];
  std::snprintf(label, sizeof label, "%s B%lld H%lld nq%lld nk%lld D%d %s warps %d x %d qtile %d", type,
                (long long)c.batch, (long long)c.heads, (long long)c.nq, (long long)c.nk, D, c.causal ? "causal" : "full",
                kWarps, kM, kBr);
  const char* names[5] = {"o", "lse", "dq", "dk", "dv"};
  const std::vector<float> got[5] = {widen(o), lse, widen(dq), widen(dk), widen(dv)};
  const std::vector<double>* refs[5] = {&ref.o, &ref.lse, &ref.dq, &ref.dk, &ref.dv};
  std::printf("  %-60s", label);
  for (int i = 0; i < 5; i++) {
    long long bad;
    const double e = rel_error(got[i], *refs[i], &bad, 1e-2);
    std::printf(" %s %.1e", names[i], e);
    CHECK(e <= 1e-2, "%s: %s: max rel err %.3e; first bad element %lld: got %g, expected %g", label, names[i], e, bad,
          bad >= 0 ? double(got[i][size_t(bad)]) : 0.0, bad >= 0 ? (*refs[i])[size_t(bad)] : 0.0);
  }
  std::printf("\n");
}

}  // namespace

int main() {
  uint32_t seed = 1;
  run_case<emu_bf16, 64, 4, 64>({1, 1, 70, 70, 64, false, 0}, "bf16", seed++);
  run_case<emu_bf16, 64, 4, 64>({1, 1, 70, 70, 64, true, 0}, "bf16", seed++);
  run_case<emu_bf16, 32, 4, 64>({1, 2, 33, 90, 32, true, 0}, "bf16", seed++);
  run_case<emu_bf16, 128, 4, 64>({1, 1, 100, 40, 128, true, 0}, "bf16", seed++);  // rows that see no key
  run_case<emu_bf16, 128, 4, 64>({1, 1, 20, 130, 128, false, 0.3f}, "bf16", seed++);
  run_case<emu_f16, 64, 4, 64>({1, 1, 65, 65, 64, true, 0}, "f16", seed++);
  run_case<emu_f16, 32, 4, 64>({2, 1, 1, 1, 32, false, 0}, "f16", seed++);
  // The ladder's alternative tiles (dev/cuda/attention_v3_pipelined.cu).
  run_case<emu_bf16, 64, 8, 32>({1, 1, 150, 129, 64, true, 0}, "bf16", seed++);
  // Two blocks of 16 query rows per warp (128 queries per CTA of 4 warps).
  run_case<emu_bf16, 64, 4, 64, 2>({1, 1, 150, 129, 64, true, 0}, "bf16", seed++);
  run_case<emu_bf16, 64, 4, 64, 2>({1, 2, 200, 70, 64, false, 0}, "bf16", seed++);
  run_case<emu_f16, 32, 4, 64, 2>({1, 1, 140, 33, 32, true, 0}, "f16", seed++);  // rows that see no key
  run_case<emu_bf16, 128, 4, 64, 2>({1, 1, 130, 64, 128, false, 0}, "bf16", seed++);
  return test_summary("test_attention_kernels_emulated");
}

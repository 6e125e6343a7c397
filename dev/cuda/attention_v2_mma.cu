// Attention ladder, version 2: the forward on tensor cores (mma.sync m16n8k16, bf16 in, f32
// accumulate), one CTA of 4 warps per 64 queries, each warp 16 query rows; K and V tiles of 64 keys
// loaded into shared memory with plain 16-byte loads and a barrier (no overlap of loads and math:
// version 3, the mainline, adds the cp.async double buffer). P stays in registers between the two
// products (the C fragment of S is the A fragment of P V). The backward is the mainline's (v3).
#include "attention_common.cuh"
#include "mma.cuh"

using dev::bf16;
using dfcuda::ldmatrix_x4;
using dfcuda::ldmatrix_x4_trans;
using Mma = dfcuda::Mma<bf16>;

constexpr int kBr = 64, kBc = 64;

// rows [row0, row0 + R) of [n, D] into a padded tile [R][D + 8]; rows past n are zeros.
template <int D, int R>
__device__ void load_rows(bf16* tile, const bf16* src, int row0, int n) {
  for (int c = threadIdx.x; c < R * D / 8; c += 128) {
    const int r = c / (D / 8), col = (c % (D / 8)) * 8;
    uint4 x = make_uint4(0, 0, 0, 0);
    if (row0 + r < n) x = *reinterpret_cast<const uint4*>(src + size_t(row0 + r) * D + col);
    *reinterpret_cast<uint4*>(tile + r * (D + 8) + col) = x;
  }
}

template <int D>
__global__ void __launch_bounds__(128) forward_mma(const bf16* q, const bf16* k, const bf16* v, bf16* o, float* lse,
                                                   int n, float scale_log2, bool causal) {
  constexpr int kLd = D + 8;
  extern __shared__ __align__(16) unsigned char smem[];  // Q, K, V tiles: 52 KiB at D = 128
  bf16* s_q = reinterpret_cast<bf16*>(smem);
  bf16* s_k = s_q + kBr * kLd;
  bf16* s_v = s_k + kBc * kLd;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int q0 = blockIdx.x * kBr;
  const size_t base = size_t(blockIdx.y) * n * D;
  q += base, k += base, v += base, o += base, lse += size_t(blockIdx.y) * n;

  load_rows<D, kBr>(s_q, q, q0, n);
  __syncthreads();
  uint32_t qf[D / 16][4];
  for (int kk = 0; kk < D / 16; kk++) ldmatrix_x4(qf[kk], s_q + (16 * warp + lane % 16) * kLd + kk * 16 + (lane / 16) * 8);

  float acc[D / 8][4] = {};
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};
  const int key_end = causal ? min(n, q0 + kBr) : n;
  for (int k0 = 0; k0 < key_end; k0 += kBc) {
    __syncthreads();
    load_rows<D, kBc>(s_k, k, k0, n);
    load_rows<D, kBc>(s_v, v, k0, n);
    __syncthreads();
    float s[kBc / 8][4] = {};
    for (int kk = 0; kk < D / 16; kk++)
      for (int np = 0; np < kBc / 16; np++) {
        uint32_t b[4];
        ldmatrix_x4(b, s_k + (np * 16 + (lane / 16) * 8 + lane % 8) * kLd + kk * 16 + ((lane / 8) % 2) * 8);
        Mma::mma(s[2 * np], qf[kk], b[0], b[1]);
        Mma::mma(s[2 * np + 1], qf[kk], b[2], b[3]);
      }
    for (int nt = 0; nt < kBc / 8; nt++)
      for (int e = 0; e < 4; e++) {
        const int key = k0 + nt * 8 + 2 * t + (e & 1), row = q0 + 16 * warp + g + (e >> 1) * 8;
        s[nt][e] = (key >= n || (causal && key > row)) ? -INFINITY : s[nt][e] * scale_log2;
      }
    for (int r = 0; r < 2; r++) {
      float mx = m[r];
      for (int nt = 0; nt < kBc / 8; nt++) mx = fmaxf(mx, fmaxf(s[nt][2 * r], s[nt][2 * r + 1]));
      mx = dfcuda::quad_max(mx);
      const float m_use = mx == -INFINITY ? 0.f : mx, alpha = exp2f(m[r] - m_use);
      m[r] = mx;
      float sum = 0.f;
      for (int nt = 0; nt < kBc / 8; nt++)
        for (int c = 0; c < 2; c++) sum += (s[nt][2 * r + c] = exp2f(s[nt][2 * r + c] - m_use));
      l[r] = l[r] * alpha + sum;
      for (int dt = 0; dt < D / 8; dt++) acc[dt][2 * r] *= alpha, acc[dt][2 * r + 1] *= alpha;
    }
    for (int kk = 0; kk < kBc / 16; kk++) {
      const uint32_t a[4] = {Mma::pack(s[2 * kk][0], s[2 * kk][1]), Mma::pack(s[2 * kk][2], s[2 * kk][3]),
                             Mma::pack(s[2 * kk + 1][0], s[2 * kk + 1][1]), Mma::pack(s[2 * kk + 1][2], s[2 * kk + 1][3])};
      for (int dp = 0; dp < D / 16; dp++) {
        uint32_t b[4];
        ldmatrix_x4_trans(b, s_v + (kk * 16 + ((lane / 8) % 2) * 8 + lane % 8) * kLd + dp * 16 + (lane / 16) * 8);
        Mma::mma(acc[2 * dp], a, b[0], b[1]);
        Mma::mma(acc[2 * dp + 1], a, b[2], b[3]);
      }
    }
  }
  for (int r = 0; r < 2; r++) {
    const float sum = dfcuda::quad_sum(l[r]);
    const int row = q0 + 16 * warp + g + 8 * r;
    if (row >= n) continue;
    for (int dt = 0; dt < D / 8; dt++)
      *reinterpret_cast<uint32_t*>(o + size_t(row) * D + dt * 8 + 2 * t) = Mma::pack(acc[dt][2 * r] / sum, acc[dt][2 * r + 1] / sum);
    if (t == 0) lse[row] = m[r] * 0.69314718055994531f + logf(sum);
  }
}

template <int D>
bool run(const dev::Problem& p, bool timing) {
  dev::Inputs in(p);
  bf16* o;
  float* lse;
  CUDA_CHECK(cudaMalloc(&o, p.elems() * sizeof(bf16)));
  CUDA_CHECK(cudaMemset(o, 0xff, p.elems() * sizeof(bf16)));
  CUDA_CHECK(cudaMalloc(&lse, p.rows() * sizeof(float)));
  CUDA_CHECK(cudaMemset(lse, 0xff, p.rows() * sizeof(float)));
  const int smem = (kBr + 2 * kBc) * (D + 8) * int(sizeof(bf16));
  CUDA_CHECK(cudaFuncSetAttribute(forward_mma<D>, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
  auto forward = [&] {
    forward_mma<D><<<dim3((p.n + kBr - 1) / kBr, p.heads), 128, smem>>>(in.dq_in, in.dk_in, in.dv_in, o, lse, p.n,
                                                                  p.scale() * 1.4426950408889634f, p.causal);
  };
  forward();
  CUDA_CHECK(cudaGetLastError());
  CUDA_CHECK(cudaDeviceSynchronize());
  bool ok = dev::check_forward("v2 mma forward", p, in, dev::download_bf16(o, p.elems()), dev::download_f32(lse, p.rows()),
                               timing ? 4 : 0);
  if (timing) dev::report_time("v2 mma forward", p, dev::time_ms(forward), p.forward_flop());
  cudaFree(o);
  cudaFree(lse);
  return ok;
}

int main() {
  if (!dev::device_or_skip("attention_v2_mma")) return 0;
  bool ok = true;
  for (const auto& p : dev::check_problems()) ok = (p.dim == 64 ? run<64>(p, false) : run<128>(p, false)) && ok;
  for (const auto& p : dev::timing_problems()) ok = (p.dim == 64 ? run<64>(p, true) : run<128>(p, true)) && ok;
  std::printf("attention_v2_mma: %s\n", ok ? "all checks passed" : "CHECKS FAILED");
  return ok ? 0 : 1;
}

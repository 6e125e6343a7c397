// Attention ladder, version 1: the naive kernels, one thread per row, f32 math on bf16 inputs.
// Forward: one thread per query, an online softmax over all keys, O in registers.
// Backward: one thread per query (D = rowsum(dO O), dQ), then one thread per key (dK, dV),
// both recomputing P from the saved LSE. Slow, but clearly correct: the baseline of the ladder.
#include "attention_common.cuh"

using dev::bf16;

template <int D>
__global__ void forward_naive(const bf16* q, const bf16* k, const bf16* v, bf16* o, float* lse, int n, float scale,
                              bool causal) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x, h = blockIdx.y;
  if (i >= n) return;
  const size_t base = size_t(h) * n * D;
  float qi[D], acc[D];
  for (int d = 0; d < D; d++) qi[d] = __bfloat162float(q[base + size_t(i) * D + d]) * scale, acc[d] = 0.f;
  float m = -INFINITY, l = 0.f;
  const int end = causal ? i + 1 : n;
  for (int j = 0; j < end; j++) {
    float s = 0.f;
    for (int d = 0; d < D; d++) s += qi[d] * __bfloat162float(k[base + size_t(j) * D + d]);
    const float m_new = fmaxf(m, s), alpha = expf(m - m_new), pj = expf(s - m_new);
    l = l * alpha + pj;
    for (int d = 0; d < D; d++) acc[d] = acc[d] * alpha + pj * __bfloat162float(v[base + size_t(j) * D + d]);
    m = m_new;
  }
  for (int d = 0; d < D; d++) o[base + size_t(i) * D + d] = __float2bfloat16_rn(acc[d] / l);
  lse[size_t(h) * n + i] = m + logf(l);
}

// Per query: delta = rowsum(dO * O) and dQ = scale * sum_j P_ij (dP_ij - delta) K_j.
template <int D>
__global__ void backward_dq_naive(const bf16* q, const bf16* k, const bf16* v, const bf16* o, const float* lse,
                                  const bf16* d_o, float* delta, bf16* dq, int n, float scale, bool causal) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x, h = blockIdx.y;
  if (i >= n) return;
  const size_t base = size_t(h) * n * D, row = size_t(h) * n + i;
  float dl = 0.f, acc[D];
  for (int d = 0; d < D; d++) {
    dl += __bfloat162float(d_o[base + size_t(i) * D + d]) * __bfloat162float(o[base + size_t(i) * D + d]);
    acc[d] = 0.f;
  }
  delta[row] = dl;
  const int end = causal ? i + 1 : n;
  for (int j = 0; j < end; j++) {
    float s = 0.f, dp = 0.f;
    for (int d = 0; d < D; d++) {
      s += __bfloat162float(q[base + size_t(i) * D + d]) * __bfloat162float(k[base + size_t(j) * D + d]);
      dp += __bfloat162float(d_o[base + size_t(i) * D + d]) * __bfloat162float(v[base + size_t(j) * D + d]);
    }
    const float ds = expf(s * scale - lse[row]) * (dp - dl);
    for (int d = 0; d < D; d++) acc[d] += ds * __bfloat162float(k[base + size_t(j) * D + d]);
  }
  for (int d = 0; d < D; d++) dq[base + size_t(i) * D + d] = __float2bfloat16_rn(acc[d] * scale);
}

// Per key: dV = sum_i P_ij dO_i, dK = scale * sum_i dS_ij Q_i.
template <int D>
__global__ void backward_dkdv_naive(const bf16* q, const bf16* k, const bf16* v, const float* lse, const bf16* d_o,
                                    const float* delta, bf16* dk, bf16* dv, int n, float scale, bool causal) {
  const int j = blockIdx.x * blockDim.x + threadIdx.x, h = blockIdx.y;
  if (j >= n) return;
  const size_t base = size_t(h) * n * D;
  float ak[D], av[D];
  for (int d = 0; d < D; d++) ak[d] = av[d] = 0.f;
  for (int i = causal ? j : 0; i < n; i++) {
    const size_t row = size_t(h) * n + i;
    float s = 0.f, dp = 0.f;
    for (int d = 0; d < D; d++) {
      s += __bfloat162float(q[base + size_t(i) * D + d]) * __bfloat162float(k[base + size_t(j) * D + d]);
      dp += __bfloat162float(d_o[base + size_t(i) * D + d]) * __bfloat162float(v[base + size_t(j) * D + d]);
    }
    const float pij = expf(s * scale - lse[row]), ds = pij * (dp - delta[row]);
    for (int d = 0; d < D; d++) {
      av[d] += pij * __bfloat162float(d_o[base + size_t(i) * D + d]);
      ak[d] += ds * __bfloat162float(q[base + size_t(i) * D + d]);
    }
  }
  for (int d = 0; d < D; d++) {
    dk[base + size_t(j) * D + d] = __float2bfloat16_rn(ak[d] * scale);
    dv[base + size_t(j) * D + d] = __float2bfloat16_rn(av[d]);
  }
}

template <int D>
bool run(const dev::Problem& p, bool timing) {
  dev::Inputs in(p);
  bf16 *o, *dq, *dk, *dv;
  float *lse, *delta;
  for (bf16** b : {&o, &dq, &dk, &dv}) {
    CUDA_CHECK(cudaMalloc(b, p.elems() * sizeof(bf16)));
    CUDA_CHECK(cudaMemset(*b, 0xff, p.elems() * sizeof(bf16)));  // NaN poison
  }
  CUDA_CHECK(cudaMalloc(&lse, p.rows() * sizeof(float)));
  CUDA_CHECK(cudaMalloc(&delta, p.rows() * sizeof(float)));
  const dim3 grid((p.n + 127) / 128, p.heads);
  auto forward = [&] {
    forward_naive<D><<<grid, 128>>>(in.dq_in, in.dk_in, in.dv_in, o, lse, p.n, p.scale(), p.causal);
  };
  auto backward = [&] {
    backward_dq_naive<D><<<grid, 128>>>(in.dq_in, in.dk_in, in.dv_in, o, lse, in.dd_o, delta, dq, p.n, p.scale(), p.causal);
    backward_dkdv_naive<D><<<grid, 128>>>(in.dq_in, in.dk_in, in.dv_in, lse, in.dd_o, delta, dk, dv, p.n, p.scale(), p.causal);
  };
  forward();
  CUDA_CHECK(cudaGetLastError());
  CUDA_CHECK(cudaDeviceSynchronize());
  bool ok = dev::check_forward("v1 naive forward", p, in, dev::download_bf16(o, p.elems()),
                               dev::download_f32(lse, p.rows()), timing ? 4 : 0);
  backward();
  CUDA_CHECK(cudaGetLastError());
  CUDA_CHECK(cudaDeviceSynchronize());
  if (!timing)
    ok = dev::check_backward("v1 naive backward", p, in, dev::download_bf16(dq, p.elems()),
                             dev::download_bf16(dk, p.elems()), dev::download_bf16(dv, p.elems())) && ok;
  if (timing) {
    dev::report_time("v1 naive forward", p, dev::time_ms(forward), p.forward_flop());
    dev::report_time("v1 naive backward", p, dev::time_ms(backward), 2.5 * p.forward_flop());
  }
  for (void* b : {(void*)o, (void*)dq, (void*)dk, (void*)dv, (void*)lse, (void*)delta}) cudaFree(b);
  return ok;
}

int main() {
  if (!dev::device_or_skip("attention_v1_naive")) return 0;
  bool ok = true;
  for (const auto& p : dev::check_problems()) ok = (p.dim == 64 ? run<64>(p, false) : run<128>(p, false)) && ok;
  // One timing shape only: the naive kernels take seconds at the benchmark sizes.
  dev::Problem t{32, 4096, 64, false};
  ok = run<64>(t, true) && ok;
  std::printf("attention_v1_naive: %s\n", ok ? "all checks passed" : "CHECKS FAILED");
  return ok ? 0 : 1;
}

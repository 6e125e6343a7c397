// The float64 attention reference shared by the attention tests (test_attention on the CPU op,
// test_cuda_attention and the host emulation of the kernels): softmax(Q K^T scale + mask) V and its gradients, one query row at
// a time, causal aligned at the end (key j visible to query i when j <= i + nk - nq).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace attnref {

struct Case {
  int64_t batch, heads, nq, nk, dim;
  bool causal;
  float scale;  // 0: 1 / sqrt(dim)
};

struct Reference {
  std::vector<double> o, lse, dq, dk, dv;
};

inline Reference reference(const std::vector<float>& q, const std::vector<float>& k, const std::vector<float>& v,
                    const std::vector<float>& d_o, const Case& c, double scale) {
  const int64_t D = c.dim, heads = c.batch * c.heads, off = c.nk - c.nq;
  Reference r;
  r.o.assign(q.size(), 0);
  r.lse.assign(size_t(heads * c.nq), 0);
  r.dq.assign(q.size(), 0);
  r.dk.assign(k.size(), 0);
  r.dv.assign(v.size(), 0);
  std::vector<double> p(size_t(c.nk)), dp(size_t(c.nk));
  for (int64_t h = 0; h < heads; h++) {
    const float *qh = &q[size_t(h * c.nq * D)], *kh = &k[size_t(h * c.nk * D)], *vh = &v[size_t(h * c.nk * D)];
    const float* doh = &d_o[size_t(h * c.nq * D)];
    for (int64_t i = 0; i < c.nq; i++) {
      const int64_t n = c.causal ? std::min<int64_t>(std::max<int64_t>(i + off + 1, 0), c.nk) : c.nk;
      if (n == 0) {
        r.lse[size_t(h * c.nq + i)] = -INFINITY;
        continue;
      }
      double m = -INFINITY;
      for (int64_t j = 0; j < n; j++) {
        double acc = 0;
        for (int64_t d = 0; d < D; d++) acc += double(qh[i * D + d]) * kh[j * D + d];
        p[size_t(j)] = acc * scale;
        m = std::max(m, p[size_t(j)]);
      }
      double l = 0;
      for (int64_t j = 0; j < n; j++) l += std::exp(p[size_t(j)] - m);
      const double lse = m + std::log(l);
      r.lse[size_t(h * c.nq + i)] = lse;
      double* orow = &r.o[size_t((h * c.nq + i) * D)];
      double delta = 0;
      for (int64_t j = 0; j < n; j++) {
        p[size_t(j)] = std::exp(p[size_t(j)] - lse);
        double acc = 0;
        for (int64_t d = 0; d < D; d++) {
          orow[d] += p[size_t(j)] * vh[j * D + d];
          acc += double(doh[i * D + d]) * vh[j * D + d];
        }
        dp[size_t(j)] = acc;
        delta += p[size_t(j)] * acc;
      }
      for (int64_t j = 0; j < n; j++) {
        const double ds = p[size_t(j)] * (dp[size_t(j)] - delta) * scale;
        for (int64_t d = 0; d < D; d++) {
          r.dv[size_t((h * c.nk + j) * D + d)] += p[size_t(j)] * doh[i * D + d];
          r.dq[size_t((h * c.nq + i) * D + d)] += ds * kh[j * D + d];
          r.dk[size_t((h * c.nk + j) * D + d)] += ds * qh[i * D + d];
        }
      }
    }
  }
  return r;
}

}  // namespace attnref

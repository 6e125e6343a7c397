// The symmetric eigensolver behind the Frechet distance (Golub & Van Loan, "Matrix Computations",
// 4th ed., 8.3): Householder reduction to tridiagonal form, then implicit symmetric QR steps with
// Wilkinson shifts, chasing the bulge with Givens rotations. All in float64: the Frechet distance
// subtracts traces of similar size, so rounding in the square root shows up directly.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "../core/error.h"
#include "../core/threadpool.h"
#include "metrics.h"

namespace df::eval {

namespace {

// [c s; -s c]^T [a; b] = [r; 0]
void givens(double a, double b, double* c, double* s) {
  if (b == 0) {
    *c = 1;
    *s = 0;
  } else if (std::fabs(b) > std::fabs(a)) {
    double tau = -a / b;
    *s = 1 / std::sqrt(1 + tau * tau);
    *c = *s * tau;
  } else {
    double tau = -b / a;
    *c = 1 / std::sqrt(1 + tau * tau);
    *s = *c * tau;
  }
}

// Reduces the full symmetric A (n x n, overwritten) to tridiagonal d, e; when z is given it
// receives Q^T (row i of z = column i of Q) with A = Q T Q^T.
void tridiagonalize(int64_t n, std::vector<double>& A, std::vector<double>& d, std::vector<double>& e, double* z) {
  std::vector<std::vector<double>> vs(size_t(std::max<int64_t>(n - 2, 0)));
  std::vector<double> betas(vs.size(), 0.0);
  std::vector<double> p(static_cast<size_t>(n)), w(static_cast<size_t>(n));
  for (int64_t k = 0; k + 2 < n; k++) {
    const int64_t m = n - k - 1;
    std::vector<double>& v = vs[size_t(k)];
    v.resize(static_cast<size_t>(m));
    double norm2 = 0;
    for (int64_t i = 0; i < m; i++) {
      v[size_t(i)] = A[size_t((k + 1 + i) * n + k)];
      norm2 += v[size_t(i)] * v[size_t(i)];
    }
    // Nothing below the subdiagonal to annihilate: H_k = I.
    double below = norm2 - v[0] * v[0];
    if (below == 0) continue;
    const double norm = std::sqrt(norm2);
    const double alpha = v[0] >= 0 ? -norm : norm;
    v[0] -= alpha;
    const double beta = 1 / (norm2 - alpha * (v[0] + alpha));  // 2 / v^T v
    betas[size_t(k)] = beta;
    double* B = A.data() + (k + 1) * n + (k + 1);  // the trailing m x m block, row stride n
    parallel_for(m, 32, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; i++) {
        const double* row = B + i * n;
        double acc = 0;
        for (int64_t j = 0; j < m; j++) acc += row[j] * v[size_t(j)];
        p[size_t(i)] = beta * acc;
      }
    });
    double pv = 0;
    for (int64_t i = 0; i < m; i++) pv += p[size_t(i)] * v[size_t(i)];
    const double K = 0.5 * beta * pv;
    for (int64_t i = 0; i < m; i++) w[size_t(i)] = p[size_t(i)] - K * v[size_t(i)];
    parallel_for(m, 32, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; i++) {
        double* row = B + i * n;
        const double vi = v[size_t(i)], wi = w[size_t(i)];
        for (int64_t j = 0; j < m; j++) row[j] -= vi * w[size_t(j)] + wi * v[size_t(j)];
      }
    });
    A[size_t((k + 1) * n + k)] = A[size_t(k * n + k + 1)] = alpha;
    for (int64_t i = 1; i < m; i++) A[size_t((k + 1 + i) * n + k)] = A[size_t(k * n + k + 1 + i)] = 0;
  }
  for (int64_t i = 0; i < n; i++) d[size_t(i)] = A[size_t(i * n + i)];
  for (int64_t i = 0; i + 1 < n; i++) e[size_t(i)] = A[size_t((i + 1) * n + i)];
  if (!z) return;
  // Q = H_0 H_1 ... H_{n-3}: start from I and multiply by H_k on the right for k = 0, 1, ...
  // (columns k+1.. of every row, rows in parallel), then transpose.
  std::fill(z, z + n * n, 0.0);
  for (int64_t i = 0; i < n; i++) z[i * n + i] = 1;
  for (int64_t k = 0; k + 2 < n; k++) {
    const double beta = betas[size_t(k)];
    if (beta == 0) continue;
    const std::vector<double>& v = vs[size_t(k)];
    const int64_t m = n - k - 1;
    parallel_for(n, 32, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; i++) {
        double* row = z + i * n + k + 1;
        double s = 0;
        for (int64_t j = 0; j < m; j++) s += row[j] * v[size_t(j)];
        s *= beta;
        for (int64_t j = 0; j < m; j++) row[j] -= s * v[size_t(j)];
      }
    });
  }
  for (int64_t i = 0; i < n; i++)
    for (int64_t j = 0; j < i; j++) std::swap(z[i * n + j], z[j * n + i]);
}

// One implicit QR step with a Wilkinson shift on the unreduced block [lo, hi] of (d, e).
void qr_step(int64_t lo, int64_t hi, std::vector<double>& d, std::vector<double>& e, double* z, int64_t n) {
  const double dd = 0.5 * (d[size_t(hi - 1)] - d[size_t(hi)]);
  const double ee = e[size_t(hi - 1)];
  const double mu = d[size_t(hi)] - ee * ee / (dd + std::copysign(std::hypot(dd, ee), dd));
  double x = d[size_t(lo)] - mu, y = e[size_t(lo)], bulge = 0;
  for (int64_t k = lo; k < hi; k++) {
    double c, s;
    givens(x, y, &c, &s);
    if (k > lo) e[size_t(k - 1)] = c * e[size_t(k - 1)] - s * bulge;  // T[k+1][k-1] becomes 0
    const double a = d[size_t(k)], b = e[size_t(k)], f = d[size_t(k + 1)];
    d[size_t(k)] = c * c * a - 2 * c * s * b + s * s * f;
    d[size_t(k + 1)] = s * s * a + 2 * c * s * b + c * c * f;
    e[size_t(k)] = c * s * (a - f) + (c * c - s * s) * b;
    if (k + 1 < hi) {
      bulge = -s * e[size_t(k + 1)];
      e[size_t(k + 1)] *= c;
      x = e[size_t(k)];
      y = bulge;
    }
    if (z) {
      double* zk = z + k * n;
      double* zk1 = zk + n;
      for (int64_t j = 0; j < n; j++) {
        const double u = zk[j], v = zk1[j];
        zk[j] = c * u - s * v;
        zk1[j] = s * u + c * v;
      }
    }
  }
}

}  // namespace

void symmetric_eigen(int64_t n, const double* a, double* values, double* vectors) {
  if (n <= 0) return;
  std::vector<double> A(size_t(n * n));
  for (int64_t i = 0; i < n; i++)
    for (int64_t j = 0; j <= i; j++) A[size_t(i * n + j)] = A[size_t(j * n + i)] = a[i * n + j];
  for (double x : A)
    if (!std::isfinite(x)) fail(Code::NonFinite, "symmetric_eigen: the matrix has a NaN or infinite element");
  std::vector<double> d(static_cast<size_t>(n)), e(size_t(n), 0.0);
  std::vector<double> z(vectors ? size_t(n * n) : 0);
  tridiagonalize(n, A, d, e, vectors ? z.data() : nullptr);
  const double eps = 2.220446049250313e-16;
  int64_t hi = n - 1, iterations = 0;
  while (hi > 0) {
    // Deflate: a negligible subdiagonal splits the matrix.
    for (int64_t i = 0; i < hi; i++)
      if (std::fabs(e[size_t(i)]) <= eps * (std::fabs(d[size_t(i)]) + std::fabs(d[size_t(i + 1)])) ||
          std::fabs(e[size_t(i)]) < 1e-300)
        e[size_t(i)] = 0;
    while (hi > 0 && e[size_t(hi - 1)] == 0) hi--;
    if (hi == 0) break;
    int64_t lo = hi - 1;
    while (lo > 0 && e[size_t(lo - 1)] != 0) lo--;
    if (++iterations > 60 * n) fail(Code::Internal, "symmetric_eigen: the QR iteration did not converge");
    qr_step(lo, hi, d, e, vectors ? z.data() : nullptr, n);
  }
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t i, int64_t j) { return d[size_t(i)] < d[size_t(j)]; });
  for (int64_t i = 0; i < n; i++) {
    values[i] = d[size_t(order[size_t(i)])];
    if (vectors) std::copy_n(z.data() + order[size_t(i)] * n, n, vectors + i * n);
  }
}

}  // namespace df::eval

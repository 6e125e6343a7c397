// The harness of the op-parity test (test_backend_ops.cpp): op cases described as data, run on any
// backend of the op interface (native/ops/ops.h), and three ways to judge them.
//
//   Case      an op call on buffers: inputs drawn at random, outputs NaN-poisoned before the call,
//             a float64 reference computing the outputs from the inputs.
//   GradCase  a backward op: a float64 forward f(inputs) and the backend's gradients of
//             L = sum(r * f(inputs)) for a random r, checked against central differences of the
//             float64 forward (and, where the op can accumulate, added onto random contents).
//
// Buffers have a kind: Compute (the backend's compute type: f32, or bf16 on a mixed-precision
// backend), F32 or I32. Inputs are generated once in f32 (rounded to the compute type when a
// backend computes in bf16, for every backend compared) and uploaded through the backend's own
// copy and convert ops; outputs are downloaded and widened to f64.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/tensor.h"
#include "ops/ops.h"
#include "test_util.h"

namespace bops {

using df::DType;
using df::Ops;

// Set by the self-check: print nothing per case.
inline bool quiet = false;

// Thrown by a backend for an op it does not provide (the case is skipped on that backend).
struct Unavailable {
  std::string why;
};

enum class Kind { Compute, F32, I32 };
enum class Role { In, Out, InOut };

using Gen = std::function<double(std::mt19937&, int64_t)>;

struct Buf {
  std::string name;
  Kind kind;
  int64_t n;
  Role role = Role::In;
  Gen gen;  // null: N(0, 1)
};

inline Buf in(std::string name, Kind k, int64_t n, Gen g = nullptr) { return {std::move(name), k, n, Role::In, std::move(g)}; }
inline Buf out(std::string name, Kind k, int64_t n) { return {std::move(name), k, n, Role::Out, nullptr}; }
inline Buf inout(std::string name, Kind k, int64_t n, Gen g = nullptr) {
  return {std::move(name), k, n, Role::InOut, std::move(g)};
}

// Generators.
inline Gen uniform(double lo, double hi) {
  return [=](std::mt19937& r, int64_t) { return std::uniform_real_distribution<double>(lo, hi)(r); };
}
inline Gen integers(int lo, int hi) {
  return [=](std::mt19937& r, int64_t) { return double(std::uniform_int_distribution<int>(lo, hi)(r)); };
}
inline Gen normal(double sd) {
  return [=](std::mt19937& r, int64_t) { return sd * std::normal_distribution<double>(0, 1)(r); };
}
// 0 or 1, with probability p of 1.
inline Gen bits(double p) {
  return [=](std::mt19937& r, int64_t) { return std::uniform_real_distribution<double>(0, 1)(r) < p ? 1.0 : 0.0; };
}

using Vals = std::vector<std::vector<double>>;  // per buffer
using Ptrs = std::vector<void*>;                 // per buffer, on the backend's device

struct Case {
  std::string name;
  std::vector<Buf> bufs;
  int scalars = 0;  // host values the op returns (masked_mse, grad_norm)
  std::function<void(Ops&, const Ptrs&, double* scalars)> run;
  std::function<void(Vals&, double* scalars)> reference;  // reads In/InOut, writes Out/InOut
  double tol = 1e-5;        // max |got - ref| / max |ref|, per output
  double tol_bf16 = 2e-2;   // on a bf16 backend, against the CPU on the same rounded inputs
};

struct GradCase {
  std::string name;
  std::vector<Buf> inputs;        // all Role::In
  std::vector<int> wrt;           // the inputs with a gradient
  std::vector<Kind> grad_kinds;   // the kind of each gradient buffer
  std::vector<bool> accumulates;  // whether each gradient honours the `accumulate` flag
  Kind r_kind;                    // the kind of the upstream gradient r
  int64_t out_n;                  // elements of f
  std::function<void(const Vals& in, std::vector<double>& f)> forward;
  std::function<void(Ops&, const Ptrs& in, const void* r, const Ptrs& grads, bool accumulate)> backward;
  double tol = 1e-3;
  double tol_bf16 = 3e-2;
};

// ---------------------------------------------------------------------------------------------
// Moving buffers to and from a backend.

inline DType dtype_of(Kind k, const Ops& ops) {
  return k == Kind::Compute ? ops.policy().compute : k == Kind::F32 ? DType::F32 : DType::I32;
}

// The values a buffer of kind k holds on a backend computing in `compute`: f32, or rounded once to bf16.
inline double representable(double x, Kind k, DType compute) {
  if (k == Kind::I32) return x;
  const float f = float(x);
  if (k == Kind::Compute && compute == DType::BF16) return df::bf16_to_f32(df::f32_to_bf16(f));
  return f;
}

inline Vals generate(const std::vector<Buf>& bufs, uint32_t seed, DType compute) {
  std::mt19937 rng(seed);
  Vals v(bufs.size());
  for (size_t b = 0; b < bufs.size(); b++) {
    v[b].resize(size_t(bufs[b].n));
    if (bufs[b].role == Role::Out) continue;
    for (int64_t i = 0; i < bufs[b].n; i++) {
      const double x = bufs[b].gen ? bufs[b].gen(rng, i) : std::normal_distribution<double>(0, 1)(rng);
      v[b][size_t(i)] = representable(x, bufs[b].kind, compute);
    }
  }
  return v;
}

class Device {
 public:
  Device(Ops& ops, const std::vector<Buf>& bufs) : ops_(ops), bufs_(bufs) {
    for (const Buf& b : bufs) {
      tensors_.emplace_back(df::Shape{std::max<int64_t>(b.n, 1)}, dtype_of(b.kind, ops), ops.device());
      ptrs_.push_back(tensors_.back().raw());
    }
  }
  const Ptrs& ptrs() const { return ptrs_; }

  // Uploads the In/InOut values and poisons the Out buffers (NaN; INT32_MIN for integers).
  void load(const Vals& v) {
    for (size_t b = 0; b < bufs_.size(); b++) {
      const bool poison = bufs_[b].role == Role::Out;
      put(b, poison ? std::vector<double>(size_t(bufs_[b].n), std::numeric_limits<double>::quiet_NaN()) : v[b]);
    }
  }
  void put(size_t b, const std::vector<double>& values) {
    const Buf& buf = bufs_[b];
    if (buf.n == 0) return;
    if (buf.kind == Kind::I32) {
      std::vector<int32_t> host(size_t(buf.n));
      for (size_t i = 0; i < host.size(); i++) host[i] = std::isnan(values[i]) ? INT32_MIN : int32_t(values[i]);
      ops_.upload(ptrs_[b], host.data(), host.size() * 4);
      return;
    }
    std::vector<float> host(values.begin(), values.end());
    const DType dt = dtype_of(buf.kind, ops_);
    if (dt == DType::F32) {
      ops_.upload(ptrs_[b], host.data(), host.size() * 4);
    } else {
      std::vector<uint16_t> narrow(host.size());
      df::convert(host.data(), DType::F32, narrow.data(), dt, host.size());
      ops_.upload(ptrs_[b], narrow.data(), narrow.size() * 2);
    }
  }
  std::vector<double> get(size_t b) {
    const Buf& buf = bufs_[b];
    std::vector<double> out(size_t(buf.n));
    if (buf.n == 0) return out;
    if (buf.kind == Kind::I32) {
      std::vector<int32_t> host(size_t(buf.n));
      ops_.download(host.data(), ptrs_[b], host.size() * 4);
      std::copy(host.begin(), host.end(), out.begin());
      return out;
    }
    std::vector<float> host(size_t(buf.n));
    const DType dt = dtype_of(buf.kind, ops_);
    if (dt == DType::F32) {
      ops_.download(host.data(), ptrs_[b], host.size() * 4);
    } else {
      std::vector<uint16_t> narrow(host.size());
      ops_.download(narrow.data(), ptrs_[b], narrow.size() * 2);
      df::convert(narrow.data(), dt, host.data(), DType::F32, host.size());
    }
    std::copy(host.begin(), host.end(), out.begin());
    return out;
  }

 private:
  Ops& ops_;
  const std::vector<Buf>& bufs_;
  std::vector<df::Tensor> tensors_;
  Ptrs ptrs_;
};

// ---------------------------------------------------------------------------------------------
// Comparing.

// max |got - ref| / max |ref| (a NaN or an infinity that the reference does not have counts as
// infinite); `first_bad` is the first element off by more than tol.
inline double rel_error(const std::vector<double>& got, const std::vector<double>& ref, double tol, int64_t* first_bad) {
  double den = 0;
  for (double r : ref)
    if (std::isfinite(r)) den = std::max(den, std::fabs(r));
  if (den == 0) den = 1;
  double worst = 0;
  *first_bad = -1;
  for (size_t i = 0; i < got.size(); i++) {
    double e;
    if (std::isinf(ref[i]) || std::isnan(ref[i])) e = (got[i] == ref[i] || (std::isnan(got[i]) && std::isnan(ref[i]))) ? 0 : INFINITY;
    else e = std::isfinite(got[i]) ? std::fabs(got[i] - ref[i]) / den : INFINITY;
    if (e > tol && *first_bad < 0) *first_bad = int64_t(i);
    worst = std::max(worst, e);
  }
  return worst;
}

// What one case did on one backend: its outputs (the Out/InOut buffers, others empty) and scalars.
struct Result {
  bool skipped = false;
  std::string why;
  Vals outputs;
  std::vector<double> scalars;
};

inline Result run_case(const Case& c, Ops& ops, const Vals& inputs) {
  Result r;
  try {
    Device dev(ops, c.bufs);
    dev.load(inputs);
    r.scalars.assign(size_t(c.scalars), std::numeric_limits<double>::quiet_NaN());
    c.run(ops, dev.ptrs(), r.scalars.data());
    r.outputs.resize(c.bufs.size());
    for (size_t b = 0; b < c.bufs.size(); b++)
      if (c.bufs[b].role != Role::In) r.outputs[b] = dev.get(b);
  } catch (const Unavailable& u) {
    r.skipped = true;
    r.why = u.why;
  }
  return r;
}

// Compares every output (and scalar) of `got` with `want`; prints one line; returns failures.
inline int compare(const std::string& label, const Case& c, const Result& got, const Vals& want_outputs,
                   const std::vector<double>& want_scalars, double tol) {
  int failed = 0;
  double worst = 0;
  std::string detail;
  for (size_t b = 0; b < c.bufs.size(); b++) {
    if (c.bufs[b].role == Role::In) continue;
    int64_t bad;
    const double e = rel_error(got.outputs[b], want_outputs[b], tol, &bad);
    worst = std::max(worst, e);
    if (bad >= 0) {
      failed++;
      char line[320];
      std::snprintf(line, sizeof line, "%s: %s: %s: max rel err %.3g > %.1g; element %lld: got %.9g, expected %.9g",
                    label.c_str(), c.name.c_str(), c.bufs[b].name.c_str(), e, tol, (long long)bad,
                    got.outputs[b][size_t(bad)], want_outputs[b][size_t(bad)]);
      detail += std::string("\n    ") + line;
    }
  }
  for (int k = 0; k < c.scalars; k++) {
    const double ref = want_scalars[size_t(k)];
    const double e = std::fabs(got.scalars[size_t(k)] - ref) / std::max(std::fabs(ref), 1e-30);
    worst = std::max(worst, std::isnan(e) ? INFINITY : e);
    if (!(e <= tol)) {
      failed++;
      char line[256];
      std::snprintf(line, sizeof line, "%s: %s: scalar %d: got %.12g, expected %.12g", label.c_str(), c.name.c_str(), k,
                    got.scalars[size_t(k)], ref);
      detail += std::string("\n    ") + line;
    }
  }
  if (!quiet) std::printf("  %-12s %-58s %s %.1e%s\n", label.c_str(), c.name.c_str(), failed ? "FAIL" : "ok  ", worst, detail.c_str());
  return failed;
}

// ---------------------------------------------------------------------------------------------
// Gradients by central differences of the float64 forward.

// The gradient of L = sum(r * f(in)) w.r.t. element i of input `w`, by central differences.
inline double fd_gradient(const GradCase& g, Vals& in, const std::vector<double>& r, int w, int64_t i) {
  std::vector<double> f(size_t(g.out_n));
  double& x = in[size_t(w)][size_t(i)];
  const double saved = x, h = 1e-4 * std::max(1.0, std::fabs(saved));
  auto loss = [&] {
    g.forward(in, f);
    double l = 0;
    for (size_t j = 0; j < f.size(); j++) l += r[j] * f[j];
    return l;
  };
  x = saved + h;
  const double lp = loss();
  x = saved - h;
  const double lm = loss();
  x = saved;
  return (lp - lm) / (2 * h);
}

// Runs a gradient case on a backend (accumulating onto random contents when `accumulate`) and
// checks up to `samples` elements of each gradient; prints one line; returns failures, or -1 when
// the backend lacks an op of the case.
inline int run_grad_case(const std::string& label, const GradCase& g, Ops& ops, uint32_t seed, bool accumulate,
                         double tol, int samples = 24) {
  const DType compute = ops.policy().compute;
  Vals in = generate(g.inputs, seed, compute);
  std::vector<Buf> rbuf = {bops::in("r", g.r_kind, g.out_n)};
  const std::vector<double> r = generate(rbuf, seed + 1, compute)[0];
  std::vector<Buf> gbufs;
  for (size_t k = 0; k < g.wrt.size(); k++) {
    const bool acc = accumulate && g.accumulates[k];
    gbufs.push_back({"d" + g.inputs[size_t(g.wrt[k])].name, g.grad_kinds[k], g.inputs[size_t(g.wrt[k])].n,
                     acc ? Role::InOut : Role::Out, nullptr});
  }
  const Vals prefill = generate(gbufs, seed + 2, compute);
  std::vector<std::vector<double>> grads;
  std::string name = g.name + (accumulate ? " (accumulating)" : "");
  try {
    Device din(ops, g.inputs), dr(ops, rbuf), dg(ops, gbufs);
    din.load(in);
    dr.load({r});
    dg.load(prefill);
    g.backward(ops, din.ptrs(), dr.ptrs()[0], dg.ptrs(), accumulate);
    for (size_t k = 0; k < gbufs.size(); k++) {
      grads.push_back(dg.get(k));
      if (gbufs[k].role == Role::InOut)
        for (size_t i = 0; i < grads[k].size(); i++) grads[k][i] -= prefill[k][i];
    }
  } catch (const Unavailable& u) {
    if (!quiet) std::printf("  %-12s %-58s skipped (%s)\n", label.c_str(), name.c_str(), u.why.c_str());
    return -1;
  }
  int failed = 0;
  double worst = 0;
  std::string detail;
  std::mt19937 pick(seed + 3);
  for (size_t k = 0; k < g.wrt.size(); k++) {
    const int w = g.wrt[k];
    const int64_t n = g.inputs[size_t(w)].n;
    std::vector<int64_t> idx;
    if (n <= samples) {
      for (int64_t i = 0; i < n; i++) idx.push_back(i);
    } else {
      for (int s = 0; s < samples; s++) idx.push_back(std::uniform_int_distribution<int64_t>(0, n - 1)(pick));
    }
    double num = 0, den = 0;
    int64_t bad = -1;
    double bad_fd = 0, bad_got = 0;
    std::vector<double> fds;
    for (int64_t i : idx) fds.push_back(fd_gradient(g, in, r, w, i));
    for (double fd : fds) den = std::max(den, std::fabs(fd));
    if (den == 0) den = 1;
    for (size_t j = 0; j < idx.size(); j++) {
      const double got = grads[k][size_t(idx[j])];
      const double e = std::isfinite(got) ? std::fabs(got - fds[j]) / den : INFINITY;
      if (e > tol && bad < 0) bad = idx[j], bad_fd = fds[j], bad_got = got;
      num = std::max(num, e);
    }
    // An element never written (still NaN) anywhere in the gradient fails too.
    for (double x : grads[k])
      if (!std::isfinite(x)) num = INFINITY;
    worst = std::max(worst, num);
    if (num > tol) {
      failed++;
      char line[320];
      std::snprintf(line, sizeof line, "%s: %s: d%s: max rel err %.3g > %.1g (element %lld: got %.9g, finite difference %.9g)",
                    label.c_str(), name.c_str(), g.inputs[size_t(w)].name.c_str(), num, tol, (long long)bad, bad_got,
                    bad_fd);
      detail += std::string("\n    ") + line;
    }
  }
  if (!quiet) std::printf("  %-12s %-58s %s %.1e%s\n", label.c_str(), name.c_str(), failed ? "FAIL" : "ok  ", worst, detail.c_str());
  return failed;
}

}  // namespace bops

// The sampling schedule and the multi-stage integrator, checked against exact answers:
// - the schedule table against the formulas of docs/METHOD.md for 1, 2 and 3 stages;
// - on Gaussian data per stage, whose exact velocity field and flow map are known in closed form,
//   the sampler reproduces the data's mean and variance, and its error against the exact flow map
//   shrinks linearly with steps for Euler and quadratically for Heun (at least quadratically for
//   midpoint: on this linear field its second-order error term nearly cancels, ratio ~8);
// - classifier-free guidance combines the two branches exactly;
// - stochastic Euler steps (eta): one run against a hand computation of the Gaussian posterior,
//   eta 0 bit-identical to the ODE, the data's moments kept at eta 0.5 and 1, noise independent of
//   the batch size, bad settings refused.
#include "kernel_level.h"  // first: the kernels are called directly
#include <cmath>
#include <cstdio>
#include <vector>

#include "core/error.h"
#include "core/philox.h"
#include "core/random_streams.h"
#include "dfm/sampler.h"
#include "dfm/schedule.h"
#include "ops/integrator.h"
#include "test_util.h"

using namespace df;

static void test_schedule_formulas() {
  // 2 stages: the paper's schedule.
  for (double tau : {0.5, 0.7, 0.9}) {
    int n1 = 30, n2 = 10;
    SamplingSchedule s = make_sampling_schedule(2, {n1, n2}, {tau});
    CHECK(s.total_steps == 40, "total steps %d", s.total_steps);
    for (int i = 0; i <= n1; i++) {
      CHECK(std::fabs(s.t(i, 0) - tau * i / n1) < 1e-12, "tau %g row %d t1 %g", tau, i, s.t(i, 0));
      CHECK(s.t(i, 1) == 0.0, "stage 2 waits at 0 in phase 1");
    }
    for (int i = 0; i <= n2; i++) {
      double t2 = double(i) / n2;
      CHECK(std::fabs(s.t(n1 + i, 1) - t2) < 1e-12, "phase 2 t2");
      CHECK(std::fabs(s.t(n1 + i, 0) - (tau + (1 - tau) * t2)) < 1e-12, "phase 2 lockstep t1");
    }
    for (int i = 0; i < 40; i++) CHECK(s.newest[size_t(i)] == (i < n1 ? 0 : 1), "newest stage of step %d", i);
  }
  // 3 stages: the lockstep rule, continuity at phase boundaries, monotone, all end at 1.
  std::vector<double> taus = {0.6, 0.8};
  SamplingSchedule s = make_sampling_schedule(3, {5, 7, 4}, taus);
  CHECK(s.total_steps == 16, "3-stage total");
  for (int i = 0; i <= 5; i++) {
    CHECK(std::fabs(s.t(i, 0) - 0.6 * i / 5) < 1e-12, "phase 1 stage 1");
    CHECK(s.t(i, 1) == 0 && s.t(i, 2) == 0, "phase 1 later stages at 0");
  }
  for (int i = 0; i <= 7; i++) {
    double t2 = 0.8 * i / 7;
    CHECK(std::fabs(s.t(5 + i, 1) - t2) < 1e-12, "phase 2 stage 2");
    CHECK(std::fabs(s.t(5 + i, 0) - (0.6 + 0.4 * t2)) < 1e-12, "phase 2 stage 1 lockstep");
    CHECK(s.t(5 + i, 2) == 0, "phase 2 stage 3 waits");
  }
  for (int i = 0; i <= 4; i++) {
    double t3 = double(i) / 4;
    double t2 = 0.8 + 0.2 * t3;
    CHECK(std::fabs(s.t(12 + i, 2) - t3) < 1e-12, "phase 3 stage 3");
    CHECK(std::fabs(s.t(12 + i, 1) - t2) < 1e-12, "phase 3 stage 2 lockstep");
    CHECK(std::fabs(s.t(12 + i, 0) - (0.6 + 0.4 * t2)) < 1e-12, "phase 3 stage 1 lockstep");
  }
  for (int i = 0; i < 16; i++)
    for (int st = 0; st < 3; st++) CHECK(s.t(i + 1, st) >= s.t(i, st), "time decreased at row %d stage %d", i, st);
  for (int st = 0; st < 3; st++) CHECK(s.t(16, st) == 1.0, "stage %d ends at %g", st, s.t(16, st));
  // 1 stage: plain flow matching.
  SamplingSchedule one = make_sampling_schedule(1, {8}, {});
  for (int i = 0; i <= 8; i++) CHECK(std::fabs(one.t(i, 0) - i / 8.0) < 1e-12, "1-stage row %d", i);
  // Bad configurations are Config errors.
  int errors = 0;
  auto expect_config = [&](auto fn) {
    try {
      fn();
    } catch (const Error& e) {
      if (e.code() == Code::Config) errors++;
    }
  };
  expect_config([] { make_sampling_schedule(2, {10}, {0.5}); });
  expect_config([] { make_sampling_schedule(2, {10, 0}, {0.5}); });
  expect_config([] { make_sampling_schedule(2, {10, 10}, {1.0}); });
  expect_config([] { make_sampling_schedule(2, {10, 10}, {}); });
  expect_config([] { make_sampling_schedule(3, {1, 1, 1}, {0.5, NAN}); });
  expect_config([] { make_sampling_schedule(2, {10, 10}, {0.5}, {0.0}); });
  expect_config([] { make_sampling_schedule(2, {10, 10}, {0.5}, {0.0, 10.5}); });
  expect_config([] { make_sampling_schedule(2, {10, 10}, {0.5}, {NAN, 0.0}); });
  CHECK(errors == 8, "bad schedules rejected: %d of 8", errors);
}

// stageTimeShifts: stage k's steps are even in logit(t) - m_k (t = e^m u / (1 + (e^m - 1) u) for
// evenly spaced u), its ramp still ends exactly at tau_k (1 in the last phase), earlier stages follow
// in lockstep, and zero shifts give the unshifted table bit for bit.
static void test_schedule_time_shifts() {
  const double tau = 0.8, m0 = -0.5, m1 = 1.5;
  SamplingSchedule plain = make_sampling_schedule(2, {6, 5}, {tau});
  SamplingSchedule zero = make_sampling_schedule(2, {6, 5}, {tau}, {0.0, 0.0});
  CHECK(plain.times == zero.times, "zero shifts changed the schedule");
  SamplingSchedule s = make_sampling_schedule(2, {6, 5}, {tau}, {m0, m1});
  auto warp = [](double u, double m) { return std::exp(m) * u / (1 + (std::exp(m) - 1) * u); };
  // phase 1: stage 0 from 0 to tau, even in u = warp(t, -m0)
  const double u_end = warp(tau, -m0);
  for (int i = 0; i <= 6; i++) {
    double expect = warp(u_end * i / 6.0, m0);
    CHECK(std::fabs(s.t(i, 0) - expect) < 1e-12, "phase 1 row %d: %g vs %g", i, s.t(i, 0), expect);
    CHECK(s.t(i, 1) == 0.0, "stage 1 waits");
  }
  CHECK(s.t(6, 0) == tau, "phase 1 ends exactly at tau");
  // phase 2: stage 1 from 0 to 1, even in logit(t) - m1 (u = i / 5), stage 0 in lockstep
  for (int i = 0; i <= 5; i++) {
    double t1 = warp(i / 5.0, m1);
    CHECK(std::fabs(s.t(6 + i, 1) - t1) < 1e-12, "phase 2 row %d: %g vs %g", i, s.t(6 + i, 1), t1);
    CHECK(std::fabs(s.t(6 + i, 0) - (tau + (1 - tau) * s.t(6 + i, 1))) < 1e-12, "phase 2 lockstep row %d", i);
    if (i > 0 && i < 5) {
      double l = std::log(t1 / (1 - t1)) - m1, u = i / 5.0;
      CHECK(std::fabs(l - std::log(u / (1 - u))) < 1e-9, "row %d not even in logit(t) - m", i);
    }
  }
  CHECK(s.t(11, 0) == 1.0 && s.t(11, 1) == 1.0, "both stages end at 1");
  // a positive shift packs the steps towards t = 1: the first step covers more than 1/5 of the ramp
  CHECK(s.t(7, 1) > 0.5, "shifted first fine step %g", s.t(7, 1));
  for (int i = 0; i < 11; i++)
    for (int st = 0; st < 2; st++) CHECK(s.t(i + 1, st) > s.t(i, st) || (st == 1 && i < 6), "not increasing at row %d", i);
}

// Independent Gaussian data per element: X_j ~ N(mu_j, sigma_j^2). With x_t = t X + (1 - t) N the
// exact velocity is E[X - N | x_t] and the flow map from t = 0 to 1 is x -> mu + sigma x.
struct GaussianField : VelocityModel {
  std::vector<std::vector<double>> mu, sigma;  // per stage, per element of a sample
  int evaluations = 0;
  void velocity(const StageLayout& l, const float* x, const float* t, const float* mask, const int32_t*, float* v) override {
    evaluations++;
    int S = l.groups();
    for (int s = 0; s < S; s++) {
      int64_t n = l.per_sample[size_t(s)];
      for (int64_t b = 0; b < l.batch; b++) {
        double ts = t[b * S + s];
        const float* xs = x + l.offset(s) + b * n;
        float* vs = v + l.offset(s) + b * n;
        for (int64_t j = 0; j < n; j++) {
          double m = mu[size_t(s)][size_t(j)], sg = sigma[size_t(s)][size_t(j)];
          double var = ts * ts * sg * sg + (1 - ts) * (1 - ts);
          vs[j] = float(m + (ts * sg * sg - (1 - ts)) / var * (xs[j] - ts * m));
          if (mask[b * S + s] == 0.f) vs[j] = NAN;  // a masked stage's velocity must never be used
        }
      }
    }
  }
};

static GaussianField make_field(const StageLayout& l) {
  GaussianField f;
  for (int s = 0; s < l.groups(); s++) {
    std::vector<double> m, sg;
    for (int64_t j = 0; j < l.per_sample[size_t(s)]; j++) {
      m.push_back(0.8 * std::sin(1.0 + j + 3.0 * s));
      sg.push_back(0.2 + 0.5 * (1 + std::cos(2.0 * j + s)) / 2);
    }
    f.mu.push_back(m);
    f.sigma.push_back(sg);
  }
  return f;
}

// Max error of a sampler run against the exact flow map of its own initial noise.
static double flow_error(GaussianField& f, const StageLayout& l, Solver solver, std::vector<int> steps, std::vector<double> taus) {
  SamplerOptions opt;
  opt.steps = steps;
  opt.thresholds = taus;
  opt.solver = solver;
  opt.seed = 11;
  std::vector<float> x0(size_t(l.total())), x(size_t(l.total()));
  sampler_initial_noise(l, opt.seed, x0.data());
  run_sampler(f, l, opt, nullptr, x.data());
  double worst = 0;
  for (int s = 0; s < l.groups(); s++)
    for (int64_t b = 0; b < l.batch; b++)
      for (int64_t j = 0; j < l.per_sample[size_t(s)]; j++) {
        int64_t i = l.offset(s) + b * l.per_sample[size_t(s)] + j;
        double exact = f.mu[size_t(s)][size_t(j)] + f.sigma[size_t(s)][size_t(j)] * x0[size_t(i)];
        double err = std::fabs(x[size_t(i)] - exact);
        worst = std::isnan(err) ? INFINITY : std::fmax(worst, err);
      }
  return worst;
}

static void test_convergence_orders() {
  for (int S : {1, 2, 3}) {
    StageLayout l;
    l.batch = 3;
    for (int s = 0; s < S; s++) l.per_sample.push_back(4 << s);
    GaussianField f = make_field(l);
    std::vector<double> taus(size_t(S - 1), 0.7);
    struct Case { Solver solver; const char* name; double lo, hi; };
    for (Case c : {Case{Solver::Euler, "euler", 1.6, 2.4}, Case{Solver::Heun, "heun", 3.2, 4.8},
                   Case{Solver::Midpoint, "midpoint", 3.2, 12.0}}) {
      std::vector<int> n1(size_t(S), 16), n2(size_t(S), 32);
      double e1 = flow_error(f, l, c.solver, n1, taus), e2 = flow_error(f, l, c.solver, n2, taus);
      double ratio = e1 / e2;
      std::printf("S=%d %-8s error %.3e -> %.3e with twice the steps (ratio %.2f)\n", S, c.name, e1, e2, ratio);
      CHECK(ratio > c.lo && ratio < c.hi, "S=%d %s: error ratio %g for doubled steps", S, c.name, ratio);
      CHECK(e2 < (c.solver == Solver::Euler ? 0.1 : 2e-3), "S=%d %s error %g", S, c.name, e2);
    }
  }
}

// Each element's sample mean and variance over the batch against the field's: 5 standard errors (a
// false failure has probability ~1e-6 per element), the variance's ratio also within var_bias.
static void check_moments(const GaussianField& f, const StageLayout& l, const std::vector<float>& x, double var_bias,
                          const char* what) {
  for (int s = 0; s < l.groups(); s++)
    for (int64_t j = 0; j < l.per_sample[size_t(s)]; j++) {
      double sum = 0, sq = 0;
      for (int64_t b = 0; b < l.batch; b++) {
        double v = x[size_t(l.offset(s) + b * l.per_sample[size_t(s)] + j)];
        sum += v;
        sq += v * v;
      }
      double mean = sum / l.batch, var = sq / l.batch - mean * mean;
      double m = f.mu[size_t(s)][size_t(j)], sg = f.sigma[size_t(s)][size_t(j)];
      CHECK(std::fabs(mean - m) < 5 * sg / std::sqrt(double(l.batch)), "%s: stage %d elem %lld mean %g vs %g", what, s, (long long)j, mean, m);
      CHECK(std::fabs(var / (sg * sg) - 1) < var_bias + 5 * std::sqrt(2.0 / l.batch), "%s: stage %d elem %lld var %g vs %g", what, s,
            (long long)j, var, sg * sg);
    }
}

static void test_moments() {
  // Many samples through the 2-stage schedule reproduce each element's mean and variance.
  StageLayout l;
  l.batch = 4000;
  l.per_sample = {3, 5};
  GaussianField f = make_field(l);
  SamplerOptions opt;
  opt.steps = {20, 20};
  opt.thresholds = {0.7};
  opt.solver = Solver::Heun;
  opt.seed = 3;
  std::vector<float> x(size_t(l.total()));
  run_sampler(f, l, opt, nullptr, x.data());
  CHECK(f.evaluations == sampler_evaluations(opt, false), "evaluations %d", f.evaluations);
  check_moments(f, l, x, 0, "heun");
}

// v = a constant per label: 1 for the class, -1 for the null class.
struct LabelField : VelocityModel {
  void velocity(const StageLayout& l, const float*, const float*, const float*, const int32_t* labels, float* v) override {
    for (int s = 0; s < l.groups(); s++)
      for (int64_t b = 0; b < l.batch; b++)
        for (int64_t j = 0; j < l.per_sample[size_t(s)]; j++)
          v[l.offset(s) + b * l.per_sample[size_t(s)] + j] = labels[b] == 9 ? -1.f : 1.f;
  }
};

static void test_guidance() {
  StageLayout l;
  l.batch = 2;
  l.per_sample = {4, 16};
  std::vector<float> c(size_t(l.total())), u(size_t(l.total())), out(size_t(l.total()), NAN);
  for (size_t i = 0; i < c.size(); i++) {
    c[i] = float(std::sin(double(i)));
    u[i] = float(std::cos(double(i)));
  }
  guidance_combine(l, c.data(), u.data(), 2.5f, out.data());
  double worst = 0;
  for (size_t i = 0; i < c.size(); i++) worst = std::fmax(worst, std::fabs(out[i] - (u[i] + 2.5 * (c[i] - u[i]))));
  CHECK(worst < 1e-6, "guidance combine error %g", worst);
  // Through the sampler: every stage moves by total dt * (u + w (c - u)) = 1 * (-1 + 3 * 2) = 5.
  LabelField field;
  SamplerOptions opt;
  opt.steps = {3, 2};
  opt.thresholds = {0.5};
  opt.cfg = 3.f;
  opt.null_label = 9;
  opt.seed = 4;
  std::vector<int32_t> labels = {0, 1};
  std::vector<float> x0(size_t(l.total())), x(size_t(l.total()));
  sampler_initial_noise(l, opt.seed, x0.data());
  run_sampler(field, l, opt, labels.data(), x.data());
  worst = 0;
  for (size_t i = 0; i < x.size(); i++) worst = std::fmax(worst, std::fabs(x[i] - (x0[i] + 5.f)));
  CHECK(worst < 1e-5, "guided sampler moved by the wrong amount: error %g", worst);
}

// v = a fixed value per element of a sample (no dependence on x or t), so a run is easy to follow by hand.
struct ConstantField : VelocityModel {
  void velocity(const StageLayout& l, const float*, const float*, const float*, const int32_t*, float* v) override {
    for (int s = 0; s < l.groups(); s++)
      for (int64_t i = 0; i < l.group_size(s); i++) v[l.offset(s) + i] = value(s, i % l.per_sample[size_t(s)]);
  }
  static float value(int s, int64_t j) { return float(0.3 * std::sin(0.7 * double(j) + s)); }
};

static std::vector<float> run(VelocityModel& f, const StageLayout& l, const SamplerOptions& opt) {
  std::vector<float> x(size_t(l.total()), NAN);
  run_sampler(f, l, opt, nullptr, x.data());
  return x;
}

static void test_stochastic_by_hand() {
  // One stage, 3 Euler steps t = 0, 1/3, 2/3, 1 with eta 0.6. The step t -> t1 lands on
  // t1 X + sqrt((1 - t1)^2 - s^2) N + s z with X = x + (1 - t) v, N = x - t v, and s = eta times the
  // std of x_t1 given x_t and X: x_t1 | X ~ N(t1 X, (1 - t1)^2) and x_t | x_t1 ~ N(r x_t1, q) with
  // r = t / t1, q = (1 - t)^2 - r^2 (1 - t1)^2, so the posterior's precision is 1/(1 - t1)^2 + r^2/q.
  StageLayout l;
  l.batch = 3;
  l.per_sample = {6};
  ConstantField f;
  SamplerOptions opt;
  opt.steps = {3};
  opt.eta = {0.6};
  opt.seed = 21;
  std::vector<float> x = run(f, l, opt);
  std::vector<double> want(size_t(l.total()));
  std::vector<float> x0(want.size()), z(want.size());
  sampler_initial_noise(l, opt.seed, x0.data());
  for (size_t i = 0; i < want.size(); i++) want[i] = x0[i];
  const double ts[] = {0, 1.0 / 3, 2.0 / 3, 1};
  for (int k = 0; k < 3; k++) {
    double t = ts[k], t1 = ts[k + 1];
    double sd = 0;
    if (t1 < 1) {
      double r = t / t1, q = (1 - t) * (1 - t) - r * r * (1 - t1) * (1 - t1);
      sd = 0.6 * std::sqrt(1 / (1 / ((1 - t1) * (1 - t1)) + (q > 0 ? r * r / q : 0)));
    }
    RandomStream{opt.seed, stream_id(Purpose::SampleNoise, uint64_t(k) + 1, 0)}.fill_normal(z.data(), int64_t(z.size()));
    for (size_t i = 0; i < want.size(); i++) {
      double v = ConstantField::value(0, int64_t(i) % 6), clean = want[i] + (1 - t) * v, noise = want[i] - t * v;
      want[i] = t1 * clean + std::sqrt((1 - t1) * (1 - t1) - sd * sd) * noise + (t1 < 1 ? sd * z[i] : 0);
    }
  }
  double worst = 0;
  for (size_t i = 0; i < want.size(); i++) worst = std::isnan(x[i]) ? INFINITY : std::fmax(worst, std::fabs(x[i] - want[i]));
  CHECK(worst < 2e-6, "stochastic Euler against the hand computation: error %g", worst);
  // eta 0 everywhere is the ODE, bit for bit; eta > 0 moves the samples.
  SamplerOptions plain = opt;
  plain.eta.clear();
  std::vector<float> ode = run(f, l, plain);
  SamplerOptions zero = opt;
  zero.eta = {0};
  CHECK(run(f, l, zero) == ode, "eta 0 differs from the ODE");
  double moved = 0;
  for (size_t i = 0; i < x.size(); i++) moved = std::fmax(moved, std::fabs(x[i] - ode[i]));
  CHECK(moved > 0.1, "eta 0.6 barely moved the samples (%g)", moved);
}

static void test_stochastic_moments() {
  // Ancestral (eta 1) and half-stochastic steps through the 2-stage schedule keep each element's mean
  // and variance. With a point estimate of the clean level each stochastic step loses a little
  // variance, an O(1/steps) bias like Euler's own (measured at 25 / 100 / 400 steps per stage, eta 1:
  // variance ratios down to 0.68 / 0.89 / 0.965; eta 0: 0.81 / 0.94 / 0.978), so 400 steps and an
  // allowance of 0.045 besides 5 standard errors. A wrong noise scale or a lost term is off by far more.
  StageLayout l;
  l.batch = 20000;
  l.per_sample = {3, 5};
  GaussianField f = make_field(l);
  for (std::vector<double> eta : {std::vector<double>{1, 1}, std::vector<double>{0, 0.5}}) {
    SamplerOptions opt;
    opt.steps = {400, 400};
    opt.thresholds = {0.7};
    opt.eta = eta;
    opt.seed = 5;
    std::vector<float> x = run(f, l, opt);
    char what[32];
    std::snprintf(what, sizeof what, "eta %g, %g", eta[0], eta[1]);
    check_moments(f, l, x, 0.045, what);
  }
}

static void test_stochastic_batch_and_errors() {
  // Sample b's noise does not depend on the batch size.
  ConstantField f;
  SamplerOptions opt;
  opt.steps = {4, 3};
  opt.thresholds = {0.6};
  opt.eta = {0.3, 1};
  opt.seed = 8;
  StageLayout small, big;
  small.batch = 2;
  big.batch = 5;
  small.per_sample = big.per_sample = {4, 16};
  std::vector<float> a = run(f, small, opt), b = run(f, big, opt);
  double worst = 0;
  for (int s = 0; s < 2; s++)
    for (int64_t i = 0; i < small.group_size(s); i++)
      worst = std::fmax(worst, std::fabs(a[size_t(small.offset(s) + i)] - b[size_t(big.offset(s) + i)]));
  CHECK(worst == 0, "batch 2 vs 5: stochastic samples differ by %g", worst);
  struct Bad { std::vector<double> eta; Solver solver; const char* says; };
  for (const Bad& bad : {Bad{{0.5}, Solver::Euler, "expected 2 numbers"}, Bad{{0, 1.5}, Solver::Euler, "stageEta[1]"},
                         Bad{{-0.1, 0}, Solver::Euler, "stageEta[0]"}, Bad{{0, NAN}, Solver::Euler, "stageEta[1]"},
                         Bad{{0, 0.5}, Solver::Heun, "solver 'euler'"}}) {
    SamplerOptions o = opt;
    o.eta = bad.eta;
    o.solver = bad.solver;
    CaughtError e = caught_error([&] { run(f, small, o); });
    CHECK(e.thrown && e.code == Code::Config && e.message.find(bad.says) != std::string::npos, "bad eta: got '%s'", e.message.c_str());
  }
  SamplerOptions heun = opt;  // eta all 0 is fine with any solver
  heun.eta = {0, 0};
  heun.solver = Solver::Heun;
  CHECK(!caught_error([&] { run(f, small, heun); }).thrown, "eta 0 refused with heun");
}

int main() {
  test_schedule_formulas();
  test_schedule_time_shifts();
  test_convergence_orders();
  test_moments();
  test_guidance();
  test_stochastic_by_hand();
  test_stochastic_moments();
  test_stochastic_batch_and_errors();
  return test_summary("test_integrator");
}

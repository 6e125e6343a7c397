// Algorithm 1's data side: the active stage follows p_q, times follow their logit-normals, later
// stages are zeroed and masked, x and v follow their formulas exactly, and everything is a pure
// function of (seed, step).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "core/threadpool.h"
#include "dfm/train_batch.h"
#include "test_util.h"

using namespace df;

static double logit(double p) { return std::log(p / (1 - p)); }

static void test_stage_frequencies() {
  DfmBatchConfig c;
  c.stage_probs = {0.2, 0.5, 0.3};
  int counts[3] = {0, 0, 0};
  const int n = 20000;
  for (int step = 0; step < n; step++) counts[draw_active_stage(c, 42, uint64_t(step))]++;
  for (int s = 0; s < 3; s++) {
    double p = c.stage_probs[size_t(s)], f = double(counts[s]) / n;
    CHECK(std::fabs(f - p) < 5 * std::sqrt(p * (1 - p) / n), "stage %d frequency %g vs %g", s, f, p);
  }
  c.stage_probs = {0.0, 1.0};
  for (int step = 0; step < 100; step++) CHECK(draw_active_stage(c, 1, uint64_t(step)) == 1, "p = 0 stage drawn");
}

static void test_batch_formulas() {
  StageLayout l;
  l.batch = 512;
  l.per_sample = {3, 12, 48};
  DfmBatchConfig c;
  c.stage_probs = {0.0, 1.0, 0.0};  // Q = stage 2 (index 1): one earlier stage, one later
  c.time_loc = 0.3;
  c.prior_loc = 1.5;
  c.null_label = 10;
  c.label_dropout = 0.25;
  std::vector<float> clean(size_t(l.total()));
  for (size_t i = 0; i < clean.size(); i++) clean[i] = float(std::sin(0.37 * double(i)));
  std::vector<float> noisy(clean.size(), NAN), target(clean.size(), NAN), t(size_t(l.batch * 3), NAN), mask(t.size(), NAN);
  std::vector<int32_t> labels(size_t(l.batch), 3);
  int Q = prepare_dfm_batch(l, c, 7, 99, clean.data(), noisy.data(), target.data(), t.data(), mask.data(), labels.data());
  CHECK(Q == 1, "Q %d", Q);
  // Times: logit(t) of the active stage ~ N(0.3, 1), of earlier stages ~ N(1.5, 1); later at 0.
  double m0 = 0, m1 = 0, v1 = 0;
  for (int64_t b = 0; b < l.batch; b++) {
    m0 += logit(t[size_t(b * 3)]);
    double z = logit(t[size_t(b * 3 + 1)]);
    m1 += z;
    v1 += z * z;
    CHECK(t[size_t(b * 3 + 2)] == 0.f && mask[size_t(b * 3 + 2)] == 0.f, "later stage not zeroed/masked");
    CHECK(mask[size_t(b * 3)] == 1.f && mask[size_t(b * 3 + 1)] == 1.f, "active stages masked");
  }
  m0 /= double(l.batch);
  m1 /= double(l.batch);
  v1 = v1 / double(l.batch) - m1 * m1;
  double se = 5 / std::sqrt(double(l.batch));
  CHECK(std::fabs(m0 - 1.5) < se, "prior stage logit mean %g", m0);
  CHECK(std::fabs(m1 - 0.3) < se, "active stage logit mean %g", m1);
  CHECK(std::fabs(v1 - 1.0) < 0.2, "active stage logit variance %g", v1);
  // x = t X + (1 - t) N and v = X - N: so N = X - v and x = X - (1 - t) v exactly.
  double worst = 0;
  for (int s = 0; s < 2; s++)
    for (int64_t b = 0; b < l.batch; b++)
      for (int64_t i = 0; i < l.per_sample[size_t(s)]; i++) {
        size_t j = size_t(l.offset(s) + b * l.per_sample[size_t(s)] + i);
        float ts = t[size_t(b * 3 + s)];
        worst = std::fmax(worst, std::fabs(noisy[j] - (clean[j] - (1 - ts) * target[j])));
        CHECK(std::isfinite(noisy[j]) && std::isfinite(target[j]), "unwritten element");
      }
  CHECK(worst < 1e-5, "x/v formula error %g", worst);
  for (int64_t j = l.offset(2); j < l.total(); j++) CHECK(noisy[size_t(j)] == 0.f && target[size_t(j)] == 0.f, "later stage input not zero");
  // Noise is standard normal: N = X - v.
  double nm = 0, nv = 0;
  int64_t count = l.group_size(1);
  for (int64_t j = l.offset(1); j < l.offset(2); j++) {
    double noise = clean[size_t(j)] - target[size_t(j)];
    nm += noise;
    nv += noise * noise;
  }
  nm /= double(count);
  nv = nv / double(count) - nm * nm;
  CHECK(std::fabs(nm) < 0.02 && std::fabs(nv - 1) < 0.03, "noise mean %g var %g", nm, nv);
  int dropped = 0;
  for (int32_t y : labels) dropped += y == 10;
  CHECK(std::fabs(dropped / 512.0 - 0.25) < 5 * std::sqrt(0.25 * 0.75 / 512), "label dropout rate %g", dropped / 512.0);
}

static void test_reproducible_any_threads() {
  StageLayout l;
  l.batch = 33;
  l.per_sample = {16, 64};
  DfmBatchConfig c;
  c.stage_probs = {0.5, 0.5};
  std::vector<float> clean(size_t(l.total()), 0.5f);
  std::vector<float> a(clean.size()), at(clean.size()), b(clean.size()), bt(clean.size()), t1(66), t2(66), m(66);
  set_num_threads(1);
  prepare_dfm_batch(l, c, 5, 17, clean.data(), a.data(), at.data(), t1.data(), m.data(), nullptr);
  set_num_threads(4);
  prepare_dfm_batch(l, c, 5, 17, clean.data(), b.data(), bt.data(), t2.data(), m.data(), nullptr);
  set_num_threads(0);
  CHECK(std::memcmp(a.data(), b.data(), a.size() * 4) == 0 && std::memcmp(t1.data(), t2.data(), 66 * 4) == 0,
        "batch differs across thread counts");
  prepare_dfm_batch(l, c, 5, 18, clean.data(), b.data(), bt.data(), t2.data(), m.data(), nullptr);
  CHECK(std::memcmp(a.data(), b.data(), a.size() * 4) != 0, "different steps gave the same batch");
}

// stageTimeShifts moves only the active stage's logit-normal: with the same (seed, step) the
// active stage's logit(t) moves by exactly its shift, earlier stages keep theirs.
static void test_stage_time_shifts() {
  StageLayout l;
  l.batch = 64;
  l.per_sample = {4, 16, 64};
  std::vector<float> clean(size_t(l.total()));
  for (size_t i = 0; i < clean.size(); i++) clean[i] = float(std::cos(0.11 * double(i)));
  std::vector<float> noisy(clean.size()), target(clean.size());
  auto times = [&](const std::vector<double>& shifts) {
    DfmBatchConfig c;
    c.stage_probs = {0.0, 0.0, 1.0};  // Q = the last stage; stages 0 and 1 draw from the prior
    c.time_loc = 0.2;
    c.stage_time_shifts = shifts;
    std::vector<float> t(size_t(l.batch * 3), NAN), mask(t.size(), NAN);
    prepare_dfm_batch(l, c, 11, 5, clean.data(), noisy.data(), target.data(), t.data(), mask.data(), nullptr);
    return t;
  };
  std::vector<float> base = times({}), zero = times({0, 0, 0}), shifted = times({-2.0, 0.7, 1.5});
  CHECK(std::memcmp(base.data(), zero.data(), base.size() * 4) == 0, "zero shifts changed the draws");
  double worst = 0;
  for (int64_t b = 0; b < l.batch; b++) {
    for (int s = 0; s < 2; s++)
      CHECK(shifted[size_t(b * 3 + s)] == base[size_t(b * 3 + s)], "an inactive stage's time moved (sample %d stage %d)", int(b), s);
    double d = logit(shifted[size_t(b * 3 + 2)]) - logit(base[size_t(b * 3 + 2)]);
    worst = std::max(worst, std::fabs(d - 1.5));
  }
  CHECK(worst < 2e-3, "active stage's logit(t) moved by 1.5 +- %g", worst);  // t is stored as float
}

// stage_per_sample: each sample draws its own Q from p_q. Its stages after Q are masked, zero-timed
// and zero in input and target; its stages up to Q follow the formulas and the noise bits of a
// batch-wide draw (the noise streams do not depend on Q); the returned stage is the batch's finest.
static void test_stage_per_sample() {
  StageLayout l;
  l.batch = 600;
  l.per_sample = {4, 16, 64};
  std::vector<float> clean(size_t(l.total()));
  for (size_t i = 0; i < clean.size(); i++) clean[i] = float(std::sin(0.23 * double(i)) + 0.1);
  DfmBatchConfig c;
  c.stage_probs = {0.5, 0.3, 0.2};
  c.stage_time_shifts = {0.0, 1.0, 2.0};
  c.stage_per_sample = true;
  const size_t n = clean.size(), nt = size_t(l.batch * 3);
  std::vector<float> noisy(n, NAN), target(n, NAN), t(nt, NAN), mask(nt, NAN);
  const int finest = prepare_dfm_batch(l, c, 3, 21, clean.data(), noisy.data(), target.data(), t.data(), mask.data(), nullptr);
  // Every stage as the active one for the whole batch: the reference rows of each Q.
  std::vector<std::vector<float>> ref_x(3, std::vector<float>(n)), ref_v(3, std::vector<float>(n)), ref_t(3, std::vector<float>(nt));
  std::vector<float> ref_mask(nt);
  for (int q = 0; q < 3; q++) {
    DfmBatchConfig r = c;
    r.stage_per_sample = false;
    r.stage_probs = {q == 0 ? 1.0 : 0.0, q == 1 ? 1.0 : 0.0, q == 2 ? 1.0 : 0.0};
    prepare_dfm_batch(l, r, 3, 21, clean.data(), ref_x[size_t(q)].data(), ref_v[size_t(q)].data(), ref_t[size_t(q)].data(), ref_mask.data(), nullptr);
  }
  int counts[3] = {0, 0, 0}, most = 0;
  for (int64_t b = 0; b < l.batch; b++) {
    int Q = -1;
    for (int s = 0; s < 3; s++) {
      const float m = mask[size_t(b * 3 + s)];
      CHECK(m == 0.f || m == 1.f, "mask value %g", double(m));
      if (m == 1.f) {
        CHECK(Q == s - 1, "sample %d: masks not a prefix of stages", int(b));
        Q = s;
      }
    }
    CHECK(Q >= 0, "sample %d: no active stage", int(b));
    counts[Q]++;
    most = std::max(most, Q);
    for (int s = 0; s < 3; s++) {
      const size_t k = size_t(b * 3 + s);
      CHECK(t[k] == ref_t[size_t(Q)][k], "sample %d stage %d: time %g, the batch-wide draw of Q %d gives %g", int(b), s,
            double(t[k]), Q, double(ref_t[size_t(Q)][k]));
      for (int64_t i = 0; i < l.per_sample[size_t(s)]; i++) {
        const size_t j = size_t(l.offset(s) + b * l.per_sample[size_t(s)] + i);
        const float x = s <= Q ? ref_x[size_t(Q)][j] : 0.f, v = s <= Q ? ref_v[size_t(Q)][j] : 0.f;
        CHECK(noisy[j] == x && target[j] == v, "sample %d stage %d element %d: (%g, %g), expected (%g, %g)", int(b), s,
              int(i), double(noisy[j]), double(target[j]), double(x), double(v));
      }
    }
  }
  CHECK(finest == most, "returned stage %d, the batch's finest is %d", finest, most);
  for (int s = 0; s < 3; s++) {
    const double p = c.stage_probs[size_t(s)], f = double(counts[s]) / double(l.batch);
    CHECK(std::fabs(f - p) < 5 * std::sqrt(p * (1 - p) / double(l.batch)), "per-sample stage %d frequency %g vs %g", s, f, p);
  }
  CHECK(counts[0] > 0 && counts[1] > 0 && counts[2] > 0, "a batch of 600 did not mix the stages");
}

static void test_bad_configs() {
  int rejected = 0;
  auto expect = [&](DfmBatchConfig c, int S) {
    try {
      validate_batch_config(c, S);
    } catch (const Error& e) {
      rejected += e.code() == Code::Config;
    }
  };
  DfmBatchConfig c;
  c.stage_probs = {0.9, 0.2};
  expect(c, 2);
  c.stage_probs = {0.9, 0.1};
  expect(c, 3);
  c.stage_probs = {1.5, -0.5};
  expect(c, 2);
  c.stage_probs = {0.5, 0.5};
  c.time_scale = 0;
  expect(c, 2);
  c.time_scale = 1;
  c.label_dropout = 2;
  expect(c, 2);
  c.label_dropout = 0.1;
  c.stage_time_shifts = {0.5};  // one per stage
  expect(c, 2);
  c.stage_time_shifts = {0.0, NAN};
  expect(c, 2);
  c.stage_time_shifts = {0.0, 11.0};
  expect(c, 2);
  c.stage_time_shifts = {0.0, 1.5};
  validate_batch_config(c, 2);
  c.stage_time_shifts.clear();
  CHECK(rejected == 8, "bad configs rejected: %d of 8", rejected);
  c.label_dropout = 0.1;
  validate_batch_config(c, 2);  // and a good one passes
}

int main() {
  test_stage_frequencies();
  test_batch_formulas();
  test_reproducible_any_threads();
  test_stage_time_shifts();
  test_stage_per_sample();
  test_bad_configs();
  return test_summary("test_train_batch");
}

// What two async jobs do at once, without Node: two trainers on two models and a sampler on a third,
// each on its own thread (as libuv's workers run them) while the main thread runs parallel_for
// loops, all sharing decoflow's thread pool. Every result must equal the same work done alone (the
// pool's callers take turns and nothing is shared). Built under ThreadSanitizer by
// scripts/sanitize.sh tsan, where a data race is a report.
#include <cstring>
#include <thread>
#include <vector>

#include "core/threadpool.h"
#include "dfm/dit_sampler.h"
#include "dfm/trainer.h"
#include "test_util.h"

using namespace df;

namespace {

DiTConfig small_config() {
  DiTConfig c;
  c.stages = 2;
  c.channels = 3;
  c.height = c.width = 16;
  c.patch_sizes = {2, 4};
  c.hidden = 32;
  c.depth = 1;
  c.heads = 2;
  c.num_classes = 4;
  c.validate();
  return c;
}

// The weights after `steps` training steps of a model seeded with `seed`.
std::vector<float> train(uint64_t seed, int steps) {
  DiTConfig c = small_config();
  DiT model(c, 4);
  model.init(seed);
  AdamWOptions adam;
  adam.lr = 1e-3;
  DiTOptimizer opt(model, adam);
  TrainerOptions to;
  to.seed = seed;
  to.batch.stage_probs = {0.5, 0.5};
  Trainer trainer(model, opt, to);
  std::vector<float> images(size_t(4 * 3 * 16 * 16));
  for (size_t i = 0; i < images.size(); i++) images[i] = float((i * 7919 + seed) % 200) / 100.f - 1.f;
  std::vector<int32_t> labels = {0, 1, 2, 3};
  for (int s = 0; s < steps; s++) trainer.step(images.data(), labels.data(), 4);
  return std::vector<float>(model.param_data(), model.param_data() + model.num_params());
}

std::vector<float> sample(uint64_t seed) {
  DiTConfig c = small_config();
  DiT model(c, 2);
  model.init(seed);
  SampleRequest r;
  r.count = 2;
  r.labels = {1, 3};
  r.options = default_sampler_options(2);
  r.options.steps = {3, 2};
  r.options.seed = seed;
  r.previews = true;
  int progressed = 0;
  SamplerHooks hooks;
  hooks.progress = [&](int, int) { progressed++; };
  SampleResult out = sample_images(c, model.param_data(), r, hooks);
  CHECK(progressed > 0, "the sampler reported progress");
  return std::vector<float>(out.images.data<float>(), out.images.data<float>() + out.images.numel());
}

double pool_sum(int64_t n) {
  std::vector<double> part(size_t(n), 0);
  parallel_for(n, 64, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; i++) part[size_t(i)] = double(i) * 0.5;
  });
  double s = 0;
  for (double x : part) s += x;
  return s;
}

}  // namespace

int main() {
  set_num_threads(2);
  // Alone, one after the other.
  std::vector<float> a0 = train(1, 3), b0 = train(2, 3), s0 = sample(5);
  // At once.
  std::vector<float> a1, b1, s1;
  std::thread ta([&] { a1 = train(1, 3); });
  std::thread tb([&] { b1 = train(2, 3); });
  std::thread ts([&] { s1 = sample(5); });
  double sums = 0;
  for (int i = 0; i < 50; i++) sums += pool_sum(10000);
  ta.join();
  tb.join();
  ts.join();
  CHECK(a1 == a0, "trainer 1 alone and alongside others give the same weights");
  CHECK(b1 == b0, "trainer 2 alone and alongside others give the same weights");
  CHECK(s1 == s0, "the sampler alone and alongside trainers gives the same images");
  CHECK(sums == 50 * 0.5 * (10000.0 * 9999.0 / 2), "parallel_for from the main thread meanwhile: %g", sums);
  return test_summary("test_concurrency");
}

// Native checks of the core that need no Node: dtype conversions, the thread pool, Philox, GEMM.
// Run by ctest (also on the GPU machine, where the CUDA twins get their own test files).
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <vector>

#include "core/dtype.h"
#include "core/philox.h"
#include "core/tensor.h"
#include "core/threadpool.h"
#include "ops/gemm.h"
#include "test_util.h"

using namespace df;

static void test_f16_exhaustive() {
  // Every finite half survives f16 -> f32 -> f16 exactly.
  for (uint32_t h = 0; h < 65536; h++) {
    uint16_t bits = uint16_t(h);
    if ((bits & 0x7c00) == 0x7c00 && (bits & 0x3ff)) continue;  // NaN payloads may change
    CHECK(f32_to_f16(f16_to_f32(bits)) == bits, "f16 round trip of 0x%04x", h);
  }
  CHECK(f32_to_f16(65520.f) == 0x7c00, "65520 rounds to infinity");
  CHECK(f32_to_f16(65519.f) == 0x7bff, "65519 rounds to 65504");
  CHECK(std::isnan(f16_to_f32(f32_to_f16(NAN))), "NaN stays NaN");
  CHECK(bf16_to_f32(f32_to_bf16(1.00390625f)) == 1.0f, "bf16 ties to even (down)");
  CHECK(bf16_to_f32(f32_to_bf16(1.01171875f)) == 1.015625f, "bf16 ties to even (up)");
}

static void test_parallel_for_covers_once() {
  for (int threads : {1, 2, 3, 7}) {
    set_num_threads(threads);
    for (int64_t n : {1, 5, 64, 1001}) {
      std::vector<int> hits(size_t(n), 0);
      parallel_for(n, 3, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; i++) hits[size_t(i)]++;
      });
      for (int64_t i = 0; i < n; i++) CHECK(hits[size_t(i)] == 1, "threads %d n %lld: index %lld hit %d times", threads, (long long)n, (long long)i, hits[size_t(i)]);
    }
  }
  set_num_threads(0);
}

// Resizing the pool between jobs, many times: a new worker must not take the previous job for a new
// one (it used to run nothing, count itself done twice and leave the caller waiting forever).
static void test_pool_resize_between_jobs() {
  int64_t done = 0;
  for (int round = 0; round < 300; round++) {
    set_num_threads(2 + round % 3);
    for (int job = 0; job < 3; job++) {
      std::atomic<int64_t> count{0};
      parallel_tasks(16, [&](int64_t) { count++; });
      CHECK(count.load() == 16, "round %d job %d: %lld of 16 tasks ran", round, job, (long long)count.load());
      done += count.load();
    }
  }
  CHECK(done == 300 * 3 * 16, "%lld tasks ran", (long long)done);
  set_num_threads(0);
}

static void test_philox_thread_independent() {
  RandomStream rs{1234, 5};
  std::vector<float> a(1003), b(1003);
  set_num_threads(1);
  rs.fill_normal(a.data(), 1003);
  set_num_threads(4);
  rs.fill_normal(b.data(), 1003);
  set_num_threads(0);
  CHECK(std::memcmp(a.data(), b.data(), a.size() * 4) == 0, "normals differ across thread counts");
  std::vector<float> tail(10);
  rs.fill_normal(tail.data(), 10, 500);  // an offset window gives the same elements
  CHECK(std::memcmp(tail.data(), a.data() + 500, 40) == 0, "offset window differs");
}

static void test_gemm_transposes() {
  // All four transpose combinations of the built-in kernel against a float64 loop.
  const int64_t m = 37, n = 45, k = 70;
  std::vector<float> a(size_t(m * k)), b(size_t(k * n));
  RandomStream{1, 1}.fill_normal(a.data(), int64_t(a.size()));
  RandomStream{2, 1}.fill_normal(b.data(), int64_t(b.size()));
  for (int ta = 0; ta < 2; ta++)
    for (int tb = 0; tb < 2; tb++) {
      int64_t lda = ta ? m : k, ldb = tb ? k : n;
      std::vector<float> c(size_t(m * n), NAN);
      sgemm_builtin(ta, tb, m, n, k, 0.5f, a.data(), lda, b.data(), ldb, 0.f, c.data(), n, true);
      double worst = 0, big = 0;
      for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
          double ref = 0;
          for (int64_t p = 0; p < k; p++)
            ref += double(ta ? a[size_t(p * m + i)] : a[size_t(i * k + p)]) * double(tb ? b[size_t(j * k + p)] : b[size_t(p * n + j)]);
          ref *= 0.5;
          worst = std::fmax(worst, std::fabs(ref - c[size_t(i * n + j)]));
          big = std::fmax(big, std::fabs(ref));
        }
      CHECK(worst / big < 1e-5, "gemm ta=%d tb=%d rel err %g", ta, tb, worst / big);
    }
}

int main() {
  test_f16_exhaustive();
  test_parallel_for_covers_once();
  test_pool_resize_between_jobs();
  test_philox_thread_independent();
  test_gemm_transposes();
  return test_summary("test_core");
}

#include "ceilings.h"

#include <algorithm>
#include <cstring>
#include <thread>
#include <vector>

#include "threadpool.h"

namespace df {

namespace {

#if defined(__AVX512F__)
constexpr int kLanes = 16;
#elif defined(__AVX__)
constexpr int kLanes = 8;
#else
constexpr int kLanes = 4;
#endif
typedef float vec __attribute__((vector_size(kLanes * 4)));

// Twelve independent accumulators cover the FMA latency (4-5 cycles) times two FMA pipes.
constexpr int kChains = 12;

float run_chains(int64_t iterations, float seed) {
  vec acc[kChains], mul, add;
  for (int i = 0; i < kLanes; i++) {
    mul[i] = 0.999999f;
    add[i] = seed * 1e-7f;
  }
  for (int c = 0; c < kChains; c++)
    for (int i = 0; i < kLanes; i++) acc[c][i] = seed + float(c);
  for (int64_t k = 0; k < iterations; k++)
    for (int c = 0; c < kChains; c++) acc[c] = acc[c] * mul + add;
  float sink = 0;
  for (int c = 0; c < kChains; c++) sink += acc[c][0];
  return sink;
}

}  // namespace

int fma_lanes() { return kLanes; }
int fma_chains() { return kChains; }

const char* isa_path() {
#if defined(__AVX512F__)
  return "avx512f";
#elif defined(__AVX2__) && defined(__FMA__)
  return "avx2+fma";
#elif defined(__AVX__)
  return "avx";
#elif defined(__aarch64__)
  return "neon";
#else
  return "sse2";
#endif
}

void fma_chains_run(int threads, int64_t iterations) {
  std::vector<float> sinks(size_t(threads), 0.f);
  std::vector<std::thread> pool;
  pool.reserve(size_t(threads));
  for (int t = 0; t < threads; t++)
    pool.emplace_back([&sinks, t, iterations] { sinks[size_t(t)] = run_chains(iterations, 1.f + float(t)); });
  for (auto& th : pool) th.join();
  // The sums are read through a volatile so the chains cannot be optimised away.
  volatile float keep = 0;
  for (float s : sinks) keep = keep + s;
}

void parallel_copy_bytes(void* dst, const void* src, size_t bytes) {
  constexpr int64_t kChunk = int64_t(1) << 16;
  const int64_t chunks = int64_t((bytes + kChunk - 1) / kChunk);
  auto* d = static_cast<char*>(dst);
  const auto* s = static_cast<const char*>(src);
  parallel_for(chunks, 16, [&](int64_t begin, int64_t end) {
    const size_t from = size_t(begin * kChunk);
    const size_t to = std::min(bytes, size_t(end * kChunk));
    std::memcpy(d + from, s + from, to - from);
  });
}

}  // namespace df

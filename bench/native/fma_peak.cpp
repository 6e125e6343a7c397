// The machine's single-precision FMA peak, measured: each of T threads runs independent chains of
// fused multiply-adds on the widest vectors the compiler targets (-march=native) for about
// 300 ms, and the program prints the total GFLOP/s (2 per lane per FMA) as JSON. Benchmarks print
// their rates as a share of this, so "x% of peak" is a measurement of the same machine and run,
// not a number from a data sheet.
//   bench_fma_peak [threads]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

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
constexpr long kInner = 1 << 16;

double run_thread(double seconds, float seed) {
  vec acc[kChains], mul, add;
  for (int i = 0; i < kLanes; i++) {
    mul[i] = 0.999999f;
    add[i] = seed * 1e-7f;
  }
  for (int c = 0; c < kChains; c++)
    for (int i = 0; i < kLanes; i++) acc[c][i] = seed + float(c);
  const auto start = std::chrono::steady_clock::now();
  long iterations = 0;
  double elapsed = 0;
  do {
    for (long k = 0; k < kInner; k++)
      for (int c = 0; c < kChains; c++) acc[c] = acc[c] * mul + add;
    iterations += kInner;
    elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  } while (elapsed < seconds);
  float sink = 0;
  for (int c = 0; c < kChains; c++) sink += acc[c][0];
  if (sink == 12345.f) std::puts("");  // keeps the chains alive
  return double(iterations) * kChains * kLanes * 2 / elapsed;
}

}  // namespace

int main(int argc, char** argv) {
  const int threads = argc > 1 ? std::atoi(argv[1]) : int(std::thread::hardware_concurrency());
  if (threads < 1 || threads > 1024) {
    std::fprintf(stderr, "bench_fma_peak: threads: expected 1..1024, got %s\n", argv[1]);
    return 2;
  }
  std::vector<double> rates(size_t(threads), 0);
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; t++) pool.emplace_back([&, t] { rates[size_t(t)] = run_thread(0.3, 1.f + float(t)); });
  for (auto& th : pool) th.join();
  double total = 0;
  for (double r : rates) total += r;
  std::printf("{\"threads\": %d, \"lanes\": %d, \"gflops\": %.1f, \"per_thread_gflops\": %.1f}\n", threads, kLanes,
              total / 1e9, total / 1e9 / threads);
  return 0;
}

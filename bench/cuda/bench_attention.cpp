// Attention forward and backward throughput of the CUDA backend (bf16), at hidden size 2048
// (32 heads x 64, 16 heads x 128) and N = 1024, 4096, 16384 with batch = 16384 / N, full and causal.
// FLOPs: forward 4 B H N^2 D (half of it when causal), backward 2.5x the forward. The kernels are
// called through the backend's C ABI, as the addon does; a run is timed from launch to stream
// synchronisation, as the median over batches of back-to-back runs.
// Usage: bench_cuda_attention [--quick] [--json FILE]. bench/cuda/attention_torch.py measures
// PyTorch on the same shapes; bench/cuda/report.py prints the two side by side.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "core/backend.h"
#include "core/dtype.h"

namespace {

const DfCudaApi* g_api;

void must(int status, const char* what) {
  if (status != DF_CUDA_OK) {
    std::fprintf(stderr, "bench_cuda_attention: %s failed (status %d): %s\n", what, status, g_api->last_error());
    std::exit(1);
  }
}

double now_ms() {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Median over 5 batches of the per-run time; a batch lasts >= ~25 ms (>= 1 run).
template <class F>
double time_ms(F&& run, bool quick) {
  run();
  must(g_api->synchronize(0), "synchronize");
  double t0 = now_ms();
  run();
  must(g_api->synchronize(0), "synchronize");
  const double once = std::max(now_ms() - t0, 1e-3);
  const int per_batch = std::max(1, int((quick ? 10.0 : 25.0) / once));
  std::vector<double> samples;
  for (int b = 0; b < (quick ? 3 : 5); b++) {
    t0 = now_ms();
    for (int i = 0; i < per_batch; i++) run();
    must(g_api->synchronize(0), "synchronize");
    samples.push_back((now_ms() - t0) / per_batch);
  }
  std::sort(samples.begin(), samples.end());
  return samples[samples.size() / 2];
}

struct Buffer {
  void* p = nullptr;
  explicit Buffer(size_t bytes) { must(g_api->alloc(0, bytes, &p), "alloc"); }
  ~Buffer() { g_api->free(0, p); }
};

}  // namespace

int main(int argc, char** argv) {
  bool quick = false;
  std::string json_path;
  for (int i = 1; i < argc; i++) {
    if (!std::strcmp(argv[i], "--quick")) quick = true;
    else if (!std::strcmp(argv[i], "--json") && i + 1 < argc) json_path = argv[++i];
  }
  df::CudaBackend& backend = df::cuda_backend();
  if (!backend.available()) {
    std::printf("bench_cuda_attention: skipped: no CUDA device (%s)\n", backend.reason().c_str());
    return 0;
  }
  g_api = &backend.api();
  const std::string device = backend.device_name(0);
  std::printf("bench_cuda_attention on %s (bf16, f32 accumulation)\n", device.c_str());
  std::printf("%-6s %-5s %-6s %-6s %-7s %10s %10s %10s %10s\n", "heads", "dim", "N", "batch", "mask", "fwd ms",
              "fwd TF/s", "bwd ms", "bwd TF/s");

  std::string rows;
  const int64_t tokens = 16384;
  for (auto hd : {std::pair<int64_t, int64_t>{32, 64}, {16, 128}}) {
    for (int64_t n : {1024, 4096, 16384}) {
      for (int causal : {0, 1}) {
        const int64_t batch = tokens / n, heads = hd.first, dim = hd.second;
        const DfCudaAttentionShape s{batch, heads, n, n, dim};
        const size_t elems = size_t(batch * heads * n * dim), rows_n = size_t(batch * heads * n);
        Buffer q(elems * 2), k(elems * 2), v(elems * 2), o(elems * 2), d_o(elems * 2), lse(rows_n * 4);
        Buffer dq(elems * 2), dk(elems * 2), dv(elems * 2);
        {  // inputs: a pseudo-random pattern in [-2, 2), rounded to bf16
          std::vector<uint16_t> h(elems);
          uint32_t state = 12345;
          for (size_t i = 0; i < elems; i++) {
            state = state * 1664525u + 1013904223u;
            h[i] = df::f32_to_bf16(float(state >> 8) / float(1 << 24) * 4.f - 2.f);
          }
          for (void* p : {q.p, k.p, v.p, d_o.p}) must(g_api->copy_to_device(0, p, h.data(), elems * 2), "upload");
        }
        const float scale = 1.f / std::sqrt(float(dim));
        auto forward = [&] {
          must(g_api->attention_forward(0, DF_CUDA_BF16, q.p, k.p, v.p, o.p, static_cast<float*>(lse.p), &s, scale,
                                        causal),
               "attention_forward");
        };
        auto backward = [&] {
          must(g_api->attention_backward(0, DF_CUDA_BF16, q.p, k.p, v.p, o.p, static_cast<float*>(lse.p), d_o.p,
                                         dq.p, dk.p, dv.p, &s, scale, causal),
               "attention_backward");
        };
        const double fwd_ms = time_ms(forward, quick);
        forward();
        const double bwd_ms = time_ms(backward, quick);
        const double fwd_flop = 4.0 * double(batch * heads) * double(n) * double(n) * double(dim) * (causal ? 0.5 : 1.0);
        const double fwd_tf = fwd_flop / (fwd_ms * 1e-3) / 1e12, bwd_tf = 2.5 * fwd_flop / (bwd_ms * 1e-3) / 1e12;
        std::printf("%-6lld %-5lld %-6lld %-6lld %-7s %10.3f %10.1f %10.3f %10.1f\n", (long long)heads,
                    (long long)dim, (long long)n, (long long)batch, causal ? "causal" : "full", fwd_ms, fwd_tf,
                    bwd_ms, bwd_tf);
        std::fflush(stdout);
        char row[400];
        std::snprintf(row, sizeof row,
                      "%s{\"heads\": %lld, \"dim\": %lld, \"n\": %lld, \"batch\": %lld, \"causal\": %s, "
                      "\"forward_ms\": %.5f, \"backward_ms\": %.5f, \"forward_tflops\": %.3f, \"backward_tflops\": %.3f}",
                      rows.empty() ? "" : ",\n  ", (long long)heads, (long long)dim, (long long)n, (long long)batch,
                      causal ? "true" : "false", fwd_ms, bwd_ms, fwd_tf, bwd_tf);
        rows += row;
      }
    }
  }
  if (!json_path.empty()) {
    FILE* f = std::fopen(json_path.c_str(), "w");
    if (!f) {
      std::fprintf(stderr, "bench_cuda_attention: cannot write %s\n", json_path.c_str());
      return 1;
    }
    std::fprintf(f, "{\"device\": \"%s\", \"dtype\": \"bf16\", \"rows\": [\n  %s\n]}\n", device.c_str(), rows.c_str());
    std::fclose(f);
  }
  return 0;
}

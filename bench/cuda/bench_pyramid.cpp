// Bandwidth of the CUDA pyramid (decompose and recompose, Laplacian and Haar, f32 and bf16) against
// a device-to-device cudaMemcpyAsync moving the same bytes, timed in the same run on the same card.
//
// Bytes: what the kernels read and write, pair by pair: the finer image, the coarser image and the
// detail (a bf16 pyramid's intermediate images are f32). A copy of N bytes reads N and writes N, so
// the yardstick copies half the op's bytes; the ratio is op GB/s / copy GB/s (target >= 0.8). The
// ops are called through the backend's C ABI, as the addon does; a run is timed from launch to
// stream synchronisation, as the median over batches of back-to-back runs.
// Usage: bench_cuda_pyramid [--quick] [--json FILE] [--md FILE]
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "core/backend.h"
#include "core/dtype.h"

namespace {

const DfCudaApi* g_api;

void must(int status, const char* what) {
  if (status != DF_CUDA_OK) {
    std::fprintf(stderr, "bench_cuda_pyramid: %s failed (status %d): %s\n", what, status, g_api->last_error());
    std::exit(1);
  }
}

void must_cuda(cudaError_t e, const char* what) {
  if (e != cudaSuccess) {
    std::fprintf(stderr, "bench_cuda_pyramid: %s failed: %s\n", what, cudaGetErrorString(e));
    std::exit(1);
  }
}

double now_ms() {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Median over batches of the per-run time; a batch lasts >= ~20 ms (>= 1 run).
template <class F, class Sync>
double time_ms(F&& run, Sync&& sync, bool quick) {
  run();
  sync();
  double t0 = now_ms();
  run();
  sync();
  const double once = std::max(now_ms() - t0, 1e-3);
  const int per_batch = std::max(1, int((quick ? 8.0 : 20.0) / once));
  std::vector<double> samples;
  for (int b = 0; b < (quick ? 3 : 7); b++) {
    t0 = now_ms();
    for (int i = 0; i < per_batch; i++) run();
    sync();
    samples.push_back((now_ms() - t0) / per_batch);
  }
  std::sort(samples.begin(), samples.end());
  return samples[samples.size() / 2];
}

struct Buffer {
  void* p = nullptr;
  explicit Buffer(size_t bytes) { must(g_api->alloc(0, std::max<size_t>(bytes, 16), &p), "alloc"); }
  ~Buffer() { g_api->free(0, p); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
};

struct Config {
  int64_t batch, channels, size;
  int stages;
};

int64_t level_numel(const Config& c, int level) {
  const int shift = c.stages - 1 - level;
  return c.batch * c.channels * (c.size >> shift) * (c.size >> shift);
}

// Bytes the kernels move: each pair reads or writes its fine image, coarse image and detail once;
// images in the workspace are f32. One stage: a copy of the image.
double kernel_bytes(const Config& c, size_t elem) {
  const int S = c.stages;
  if (S == 1) return 2.0 * double(level_numel(c, 0)) * double(elem);
  double bytes = 0;
  for (int t = S - 1; t >= 1; t--) {
    const double fine = double(level_numel(c, t)), coarse = double(level_numel(c, t - 1));
    bytes += fine * double(t == S - 1 ? elem : 4) + coarse * double(t == 1 ? elem : 4) + fine * double(elem);
  }
  return bytes;
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = false;
  std::string json_path, md_path;
  for (int i = 1; i < argc; i++) {
    if (!std::strcmp(argv[i], "--quick")) quick = true;
    else if (!std::strcmp(argv[i], "--json") && i + 1 < argc) json_path = argv[++i];
    else if (!std::strcmp(argv[i], "--md") && i + 1 < argc) md_path = argv[++i];
  }
  df::CudaBackend& backend = df::cuda_backend();
  if (!backend.available()) {
    std::printf("bench_cuda_pyramid: skipped: no CUDA device (%s)\n", backend.reason().c_str());
    return 0;
  }
  g_api = &backend.api();
  const std::string device = backend.device_name(0);
  cudaStream_t copy_stream;
  must_cuda(cudaSetDevice(0), "cudaSetDevice");
  must_cuda(cudaStreamCreateWithFlags(&copy_stream, cudaStreamNonBlocking), "cudaStreamCreate");

  std::string md = "bench_cuda_pyramid on " + device +
                   ": GB/s = bytes the kernels read + write / time; copy = cudaMemcpyAsync D2D of half those "
                   "bytes (read + write the same total)\n\n"
                   "| op | kind | dtype | shape | stages | MB | ms | GB/s | copy GB/s | ratio |\n"
                   "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n";
  std::printf("%s", md.c_str());
  std::fflush(stdout);
  std::string rows;
  const std::vector<Config> configs = {{64, 3, 256, 3}, {16, 3, 1024, 4}, {256, 4, 64, 2}};
  int misses = 0;
  for (const Config& c : configs) {
    for (int dtype : {DF_CUDA_F32, DF_CUDA_BF16}) {
      const size_t elem = dtype == DF_CUDA_BF16 ? 2 : 4;
      const DfCudaPyramidShape shape{c.batch, c.channels, c.size, c.size, c.stages};
      const size_t n = size_t(level_numel(c, c.stages - 1));
      Buffer image(n * elem), back(n * elem);
      std::vector<std::unique_ptr<Buffer>> levels;
      std::vector<void*> ptrs;
      for (int t = 0; t < c.stages; t++) {
        levels.push_back(std::make_unique<Buffer>(size_t(level_numel(c, t)) * elem));
        ptrs.push_back(levels.back()->p);
      }
      const std::vector<const void*> cptrs(ptrs.begin(), ptrs.end());
      {  // the image: a pseudo-random pattern in [-2, 2)
        std::vector<uint16_t> h16(dtype == DF_CUDA_BF16 ? n : 0);
        std::vector<float> h32(dtype == DF_CUDA_BF16 ? 0 : n);
        uint32_t state = 12345;
        for (size_t i = 0; i < n; i++) {
          state = state * 1664525u + 1013904223u;
          const float x = float(state >> 8) / float(1 << 24) * 4.f - 2.f;
          if (dtype == DF_CUDA_BF16) h16[i] = df::f32_to_bf16(x);
          else h32[i] = x;
        }
        must(g_api->copy_to_device(0, image.p, dtype == DF_CUDA_BF16 ? static_cast<const void*>(h16.data()) : h32.data(),
                                   n * elem),
             "upload");
      }
      const double bytes = kernel_bytes(c, elem);
      const size_t copy_bytes = size_t(bytes / 2);
      Buffer copy_src(copy_bytes), copy_dst(copy_bytes);
      auto sync = [] { must(g_api->synchronize(0), "synchronize"); };
      auto copy_sync = [&] { must_cuda(cudaStreamSynchronize(copy_stream), "cudaStreamSynchronize"); };
      const double copy_ms = time_ms(
          [&] { must_cuda(cudaMemcpyAsync(copy_dst.p, copy_src.p, copy_bytes, cudaMemcpyDeviceToDevice, copy_stream), "copy"); },
          copy_sync, quick);
      const double copy_gbs = 2.0 * double(copy_bytes) / (copy_ms * 1e-3) / 1e9;
      for (int kind : {DF_CUDA_LAPLACIAN, DF_CUDA_HAAR}) {
        for (int op = 0; op < 2; op++) {
          const double ms = time_ms(
              [&] {
                if (op == 0) must(g_api->pyramid_decompose(0, kind, dtype, image.p, ptrs.data(), &shape), "pyramid_decompose");
                else must(g_api->pyramid_recompose(0, kind, dtype, cptrs.data(), c.stages, back.p, &shape), "pyramid_recompose");
              },
              sync, quick);
          const double gbs = bytes / (ms * 1e-3) / 1e9, ratio = gbs / copy_gbs;
          misses += ratio < 0.8;
          char shape_s[64], line[400];
          std::snprintf(shape_s, sizeof shape_s, "[%lld,%lld,%lld,%lld]", (long long)c.batch, (long long)c.channels,
                        (long long)c.size, (long long)c.size);
          const char* op_s = op == 0 ? "decompose" : "recompose";
          const char* kind_s = kind == DF_CUDA_HAAR ? "haar" : "laplacian";
          const char* dtype_s = dtype == DF_CUDA_BF16 ? "bf16" : "f32";
          std::snprintf(line, sizeof line, "| %s | %s | %s | %s | %d | %.1f | %.4f | %.0f | %.0f | %.2f%s |\n", op_s,
                        kind_s, dtype_s, shape_s, c.stages, bytes / 1e6, ms, gbs, copy_gbs, ratio,
                        ratio < 0.8 ? " (< 0.8)" : "");
          md += line;
          std::printf("%s", line);
          std::fflush(stdout);
          char row[500];
          std::snprintf(row, sizeof row,
                        "%s{\"op\": \"%s\", \"kind\": \"%s\", \"dtype\": \"%s\", \"shape\": %s, \"stages\": %d, "
                        "\"bytes\": %.0f, \"ms\": %.5f, \"gbs\": %.1f, \"copy_ms\": %.5f, \"copy_gbs\": %.1f, \"ratio\": %.3f}",
                        rows.empty() ? "" : ",\n  ", op_s, kind_s, dtype_s, shape_s, c.stages, bytes, ms, gbs, copy_ms,
                        copy_gbs, ratio);
          rows += row;
        }
      }
    }
  }
  const std::string verdict = misses == 0 ? "\nEvery row reaches 0.8 of the copy.\n"
                                          : "\n" + std::to_string(misses) + " row(s) below 0.8 of the copy.\n";
  md += verdict;
  std::printf("%s", verdict.c_str());
  if (!md_path.empty()) {
    FILE* f = std::fopen(md_path.c_str(), "w");
    if (f) std::fputs(md.c_str(), f), std::fclose(f);
  }
  if (!json_path.empty()) {
    FILE* f = std::fopen(json_path.c_str(), "w");
    if (!f) {
      std::fprintf(stderr, "bench_cuda_pyramid: cannot write %s\n", json_path.c_str());
      return 1;
    }
    std::fprintf(f, "{\"device\": \"%s\", \"rows\": [\n  %s\n]}\n", device.c_str(), rows.c_str());
    std::fclose(f);
  }
  cudaStreamDestroy(copy_stream);
  return 0;
}

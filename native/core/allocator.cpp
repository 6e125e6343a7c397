#include "allocator.h"

#include <cstdlib>
#include <map>
#include <mutex>
#include <string>

#include "backend.h"
#include "error.h"

namespace df {

namespace {

std::mutex g_mutex;
std::vector<MemoryStats> g_stats;  // one entry per device seen

MemoryStats& stats_for(Device d) {
  for (auto& s : g_stats)
    if (s.device == d) return s;
  g_stats.push_back(MemoryStats{d});
  return g_stats.back();
}

void count(Device d, int64_t tensors, int64_t bytes) {
  std::lock_guard<std::mutex> lock(g_mutex);
  MemoryStats& s = stats_for(d);
  s.live_tensors += tensors;
  s.live_bytes += bytes;
  if (s.live_bytes > s.peak_bytes) s.peak_bytes = s.live_bytes;
}

// A cache of freed large CPU blocks. glibc returns big blocks to the system on free (they are
// mmap'ed), so an op that allocates its outputs each call pays page faults on every byte; keeping
// freed blocks of the same rounded size avoids that. Small blocks are left to malloc's own bins.
// The cache is bounded; memory() counts live tensors only, cached bytes separately.
constexpr size_t kCacheMinBytes = size_t(64) << 10;
size_t cache_limit() {
  static const size_t limit = [] {
    const char* env = std::getenv("DECOFLOW_CPU_CACHE_MB");
    long mb = env ? std::strtol(env, nullptr, 10) : 1024;
    return size_t(mb < 0 ? 0 : mb) << 20;
  }();
  return limit;
}
std::multimap<size_t, void*> g_cpu_cache;  // rounded size -> block
size_t g_cpu_cached = 0;
// Destroyed before the cache (defined after it): frees the cached blocks at exit, so a leak checker
// does not see them as lost when the multimap holding them goes.
struct ReleaseCacheAtExit {
  ~ReleaseCacheAtExit();
} g_release_cache_at_exit;

size_t round_cpu(size_t bytes) {
  if (bytes < kCacheMinBytes) return (bytes + 63) / 64 * 64;
  return (bytes + 4095) / 4096 * 4096;
}

void* cpu_alloc(size_t bytes) {
  size_t rounded = round_cpu(bytes ? bytes : 1);
  if (rounded >= kCacheMinBytes) {
    std::lock_guard<std::mutex> lock(g_mutex);
    auto it = g_cpu_cache.find(rounded);
    if (it != g_cpu_cache.end()) {
      void* p = it->second;
      g_cpu_cache.erase(it);
      g_cpu_cached -= rounded;
      return p;
    }
  }
  void* p = std::aligned_alloc(64, rounded);
  if (!p) {
    release_cpu_cache();  // give the cache back and try once more
    p = std::aligned_alloc(64, rounded);
  }
  if (!p) fail(Code::OutOfMemory, "out of memory allocating " + std::to_string(bytes) + " bytes on cpu");
  return p;
}

void cpu_free(void* p, size_t bytes) {
  size_t rounded = round_cpu(bytes ? bytes : 1);
  if (rounded >= kCacheMinBytes && rounded <= cache_limit()) {
    std::lock_guard<std::mutex> lock(g_mutex);
    // evict the largest blocks until this one fits under the limit
    while (g_cpu_cached + rounded > cache_limit() && !g_cpu_cache.empty()) {
      auto last = std::prev(g_cpu_cache.end());
      std::free(last->second);
      g_cpu_cached -= last->first;
      g_cpu_cache.erase(last);
    }
    g_cpu_cache.emplace(rounded, p);
    g_cpu_cached += rounded;
    return;
  }
  std::free(p);
}

ReleaseCacheAtExit::~ReleaseCacheAtExit() { release_cpu_cache(); }

}  // namespace

void release_cpu_cache() {
  std::lock_guard<std::mutex> lock(g_mutex);
  for (auto& kv : g_cpu_cache) std::free(kv.second);
  g_cpu_cache.clear();
  g_cpu_cached = 0;
}

int64_t cpu_cached_bytes() {
  std::lock_guard<std::mutex> lock(g_mutex);
  return int64_t(g_cpu_cached);
}

void* device_alloc(Device device, size_t bytes) {
  if (bytes > kMaxAllocBytes)
    fail(Code::ArgValue, "allocation of " + std::to_string(bytes) + " bytes on " + device.name() +
                             " exceeds the limit of 1 TiB");
  void* p = nullptr;
  if (device.is_cpu()) {
    p = cpu_alloc(bytes);
  } else {
    p = cuda_backend().alloc(device, bytes);
  }
  count(device, 1, int64_t(bytes));
  return p;
}

void device_free(Device device, void* p, size_t bytes) {
  if (!p) return;
  if (device.is_cpu())
    cpu_free(p, bytes);
  else
    cuda_backend().free(device, p);
  count(device, -1, -int64_t(bytes));
}

std::vector<MemoryStats> memory_stats() {
  std::lock_guard<std::mutex> lock(g_mutex);
  stats_for(Device{});  // the CPU is always listed
  return g_stats;
}

MemoryStats memory_stats(Device device) {
  std::lock_guard<std::mutex> lock(g_mutex);
  return stats_for(device);
}

void reset_peak(Device device) {
  std::lock_guard<std::mutex> lock(g_mutex);
  MemoryStats& s = stats_for(device);
  s.peak_bytes = s.live_bytes;
}

Device parse_device(const std::string& s, const char* arg) {
  if (s == "cpu") return Device{};
  if (s == "cuda") return Device{DeviceKind::CUDA, 0};
  if (s.rfind("cuda:", 0) == 0 && s.size() > 5 && s.size() < 9) {
    int index = 0;
    for (size_t i = 5; i < s.size(); i++) {
      if (s[i] < '0' || s[i] > '9') index = -1;
      if (index >= 0) index = index * 10 + (s[i] - '0');
    }
    if (index >= 0) return Device{DeviceKind::CUDA, index};
  }
  fail(Code::Device, std::string(arg) + ": expected 'cpu', 'cuda' or 'cuda:N', got '" + s + "'");
}

}  // namespace df

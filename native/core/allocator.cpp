#include "allocator.h"

#include <cstdlib>
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

}  // namespace

void* device_alloc(Device device, size_t bytes) {
  if (bytes > kMaxAllocBytes)
    fail(Code::ArgValue, "allocation of " + std::to_string(bytes) + " bytes on " + device.name() +
                             " exceeds the limit of 1 TiB");
  void* p = nullptr;
  if (device.is_cpu()) {
    size_t rounded = (bytes + 63) / 64 * 64;
    p = std::aligned_alloc(64, rounded ? rounded : 64);
    if (!p)
      fail(Code::OutOfMemory, "out of memory allocating " + std::to_string(bytes) + " bytes on cpu");
  } else {
    p = cuda_backend().alloc(device, bytes);
  }
  count(device, 1, int64_t(bytes));
  return p;
}

void device_free(Device device, void* p, size_t bytes) {
  if (!p) return;
  if (device.is_cpu())
    std::free(p);
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

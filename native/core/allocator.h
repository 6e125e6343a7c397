// Allocation of tensor storage, with per-device counters of live allocations and bytes, so that
// leaks are visible from JS (memory()) and tests can prove that an op allocates what it should.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "device.h"

namespace df {

struct MemoryStats {
  Device device;
  int64_t live_tensors = 0;  // live storages
  int64_t live_bytes = 0;
  int64_t peak_bytes = 0;    // since the last reset_peak()
};

// Allocates `bytes` on `device` (64-byte aligned on the CPU). Throws Code::OutOfMemory on failure.
void* device_alloc(Device device, size_t bytes);
void device_free(Device device, void* p, size_t bytes);

std::vector<MemoryStats> memory_stats();
MemoryStats memory_stats(Device device);
void reset_peak(Device device);

// Freed large CPU blocks kept for reuse (bounded by DECOFLOW_CPU_CACHE_MB, default 1024; 0 turns
// the cache off), and how to give them back to the system.
int64_t cpu_cached_bytes();
void release_cpu_cache();

// Upper bound on one allocation: a request above it is an absurd size, not an out-of-memory.
constexpr uint64_t kMaxAllocBytes = uint64_t(1) << 40;

}  // namespace df

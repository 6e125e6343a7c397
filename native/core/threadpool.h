// A fixed pool of worker threads for data-parallel loops. The calling thread takes part; a
// parallel_for issued from inside a worker runs serially (no nested oversubscription); two callers
// from different threads (e.g. two async jobs) take turns.
#pragma once
#include <cstdint>
#include <functional>

namespace df {

int num_threads();
void set_num_threads(int n);  // 1..1024; 0 means the machine's hardware concurrency
int hardware_threads();

// Calls fn(begin, end) over [0, n) in chunks of at least `grain` items, in parallel. Chunks are
// contiguous and their boundaries depend only on n, grain and the thread count.
void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

// Runs fn(task) for task in [0, tasks), each task on one thread, dynamically scheduled.
void parallel_tasks(int64_t tasks, const std::function<void(int64_t)>& fn);

// True on a pool worker (or on the caller while it runs a chunk).
bool in_parallel_region();

}  // namespace df

#include "threadpool.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "error.h"

namespace df {

namespace {

thread_local bool t_in_region = false;

class Pool {
 public:
  Pool() { resize(hardware_threads()); }
  ~Pool() { stop_workers(); }

  int size() const { return threads_.load(); }

  void resize(int n) {
    std::lock_guard<std::mutex> lock(caller_mutex_);
    stop_workers();
    threads_ = n;
    stopping_ = false;
    // A new worker has seen every job so far: without this it would take the last job's generation
    // for a new one, run nothing and decrement pending_workers_ once too often, which could leave
    // the next run() waiting for a count that went past zero (a hang after setThreads).
    const uint64_t seen = generation_;
    for (int i = 1; i < n; i++) workers_.emplace_back([this, seen] { worker_loop(seen); });
  }

  // Runs fn(task) for every task in [0, tasks), dynamically scheduled over all threads.
  void run(int64_t tasks, const std::function<void(int64_t)>& fn) {
    std::lock_guard<std::mutex> caller(caller_mutex_);
    if (threads_ == 1 || tasks == 1) {
      run_serial(tasks, fn);
      return;
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      job_ = &fn;
      tasks_ = tasks;
      next_.store(0);
      pending_workers_ = int(workers_.size());
      error_ = nullptr;
      generation_++;
    }
    wake_.notify_all();
    work();
    std::unique_lock<std::mutex> lock(mutex_);
    done_.wait(lock, [this] { return pending_workers_ == 0; });
    job_ = nullptr;
    if (error_) std::rethrow_exception(error_);
  }

 private:
  void run_serial(int64_t tasks, const std::function<void(int64_t)>& fn) {
    t_in_region = true;
    try {
      for (int64_t i = 0; i < tasks; i++) fn(i);
    } catch (...) {
      t_in_region = false;
      throw;
    }
    t_in_region = false;
  }

  void work() {
    t_in_region = true;
    for (;;) {
      int64_t i = next_.fetch_add(1);
      if (i >= tasks_) break;
      try {
        (*job_)(i);
      } catch (...) {
        std::lock_guard<std::mutex> lock(mutex_);
        if (!error_) error_ = std::current_exception();
        next_.store(tasks_);  // stop handing out work
      }
    }
    t_in_region = false;
  }

  void worker_loop(uint64_t seen) {
    for (;;) {
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [&] { return stopping_ || generation_ != seen; });
        if (stopping_) return;
        seen = generation_;
      }
      work();
      std::lock_guard<std::mutex> lock(mutex_);
      if (--pending_workers_ == 0) done_.notify_all();
    }
  }

  void stop_workers() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    for (auto& w : workers_) w.join();
    workers_.clear();
  }

  std::mutex caller_mutex_;  // one parallel job at a time
  std::mutex mutex_;
  std::condition_variable wake_, done_;
  std::vector<std::thread> workers_;
  std::atomic<int> threads_{1};
  bool stopping_ = false;
  uint64_t generation_ = 0;
  const std::function<void(int64_t)>* job_ = nullptr;
  int64_t tasks_ = 0;
  std::atomic<int64_t> next_{0};
  int pending_workers_ = 0;
  std::exception_ptr error_;
};

Pool& pool() {
  static Pool p;
  return p;
}

}  // namespace

int hardware_threads() {
  unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : int(std::min(n, 256u));
}

int num_threads() { return pool().size(); }

void set_num_threads(int n) {
  if (n < 0 || n > 1024)
    fail(Code::ArgValue, "threads: expected an integer from 1 to 1024 (or 0 for all cores), got " + std::to_string(n));
  if (t_in_region) fail(Code::Internal, "setThreads called from inside a parallel region");
  pool().resize(n == 0 ? hardware_threads() : n);
}

bool in_parallel_region() { return t_in_region; }

void parallel_tasks(int64_t tasks, const std::function<void(int64_t)>& fn) {
  if (tasks <= 0) return;
  if (t_in_region) {
    for (int64_t i = 0; i < tasks; i++) fn(i);
    return;
  }
  pool().run(tasks, fn);
}

void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(grain, 1);
  int threads = t_in_region ? 1 : num_threads();
  int64_t chunks = std::min<int64_t>(threads, (n + grain - 1) / grain);
  if (chunks <= 1) {
    fn(0, n);
    return;
  }
  int64_t base = n / chunks, extra = n % chunks;
  parallel_tasks(chunks, [&](int64_t c) {
    int64_t begin = c * base + std::min(c, extra);
    int64_t end = begin + base + (c < extra ? 1 : 0);
    fn(begin, end);
  });
}

}  // namespace df

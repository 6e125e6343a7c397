// Long native work off the event loop: AsyncJob runs `work` on a libuv worker thread and settles a
// Promise on the main thread; progress events reach an optional JS callback through a
// thread-safe function; a cancel flag lets an AbortSignal stop the work between steps.
#pragma once
#include <napi.h>

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "../core/error.h"

namespace df::addon {

struct Progress {
  int64_t step = 0;
  int64_t total = 0;
  std::vector<std::pair<std::string, double>> values;  // e.g. {"loss", 0.31}
};

// Passed to work: report progress (never blocks the worker) and check for cancellation.
class JobContext {
 public:
  std::function<void(const Progress&)> report;
  std::shared_ptr<std::atomic<bool>> cancelled = std::make_shared<std::atomic<bool>>(false);
  // Throws an AbortError (Code::Aborted) when the caller aborted.
  void check_cancelled() const {
    if (cancelled->load()) fail(Code::Aborted, "the operation was aborted");
  }
};

using JobWork = std::function<void(JobContext&)>;
using JobFinish = std::function<Napi::Value(Napi::Env)>;

// Starts the job. `on_progress` may be undefined. Returns the Promise that `finish` resolves.
// If `cancel_out` is given, it receives the flag that aborts the job when set.
Napi::Promise start_job(Napi::Env env, JobWork work, JobFinish finish, Napi::Value on_progress,
                        std::shared_ptr<std::atomic<bool>>* cancel_out = nullptr);

}  // namespace df::addon

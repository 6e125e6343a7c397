// The native side of a JS Model: the DiT and its optimiser behind an External handle that async
// jobs share, so disposing a model while a job runs is safe (the job finishes first, then frees).
// One call at a time per model: a second one while a job runs is an ERR_DECOFLOW_BUSY error (wait
// for the first and retry), not a race. Shared by
// the model binding and the trainer/sampler binding, which works on a Model.
#pragma once
#include <napi.h>

#include <atomic>
#include <memory>
#include <string>

#include "../core/error.h"
#include "../model/training.h"

namespace df::addon {

struct ModelHandle {
  std::unique_ptr<DiT> model;
  std::unique_ptr<DiTOptimizer> optimizer;
  std::atomic<bool> busy{false};
};
using ModelPtr = std::shared_ptr<ModelHandle>;
struct ModelBox {
  ModelPtr ptr;
};

// Marks the model busy for the lifetime of the guard; a second user gets a Code::Busy error.
class BusyGuard {
 public:
  BusyGuard(ModelPtr m, const char* fn) : m_(std::move(m)) {
    bool expected = false;
    if (!m_->busy.compare_exchange_strong(expected, true))
      fail(Code::Busy, std::string(fn) + ": the model is busy with another call (await it first)");
  }
  ~BusyGuard() { m_->busy = false; }
  BusyGuard(const BusyGuard&) = delete;
  BusyGuard& operator=(const BusyGuard&) = delete;

 private:
  ModelPtr m_;
};

inline ModelPtr& model_of(const Napi::Value& v, const char* fn) {
  if (!v.IsExternal()) fail(Code::ArgType, std::string(fn) + ": model: expected a model handle");
  ModelBox* box = v.As<Napi::External<ModelBox>>().Data();
  if (!box || !box->ptr) fail(Code::Disposed, std::string(fn) + ": the model has been disposed");
  return box->ptr;
}

}  // namespace df::addon

#include "async_job.h"

#include "napi_util.h"

namespace df::addon {

namespace {

void deliver_progress(Napi::Env env, Napi::Function callback, Progress* p) {
  if (env != nullptr && callback != nullptr) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("step", Napi::Number::New(env, double(p->step)));
    o.Set("total", Napi::Number::New(env, double(p->total)));
    for (auto& kv : p->values) o.Set(kv.first, Napi::Number::New(env, kv.second));
    callback.Call({o});  // an exception thrown by the callback surfaces as an uncaught exception
  }
  delete p;
}

// What settles the Promise; shared with the progress function's finalizer so that, when progress is
// reported, the Promise settles only after the last progress event has been delivered.
struct Settlement {
  Napi::Promise::Deferred deferred;
  JobFinish finish;
  std::string error_code, error_message;

  explicit Settlement(Napi::Env env) : deferred(Napi::Promise::Deferred::New(env)) {}

  void settle(Napi::Env env) {
    Napi::HandleScope scope(env);
    if (!error_code.empty()) {
      deferred.Reject(make_js_error(env, error_code.c_str(), error_message).Value());
      return;
    }
    try {
      deferred.Resolve(guard(env, [&] { return finish(env); }));
    } catch (const Napi::Error& e) {
      deferred.Reject(e.Value());
    }
  }
};

class Job : public Napi::AsyncWorker {
 public:
  Job(Napi::Env env, JobWork work, JobFinish finish, Napi::Value on_progress)
      : Napi::AsyncWorker(env, "decoflow:job"), work_(std::move(work)), settlement_(new Settlement(env)) {
    settlement_->finish = std::move(finish);
    if (on_progress.IsFunction()) {
      tsfn_ = Napi::ThreadSafeFunction::New(
          env, on_progress.As<Napi::Function>(), "decoflow:progress", 0, 1, settlement_,
          [](Napi::Env env, void*, Settlement* s) {  // runs after every queued event was delivered
            s->settle(env);
            delete s;
          },
          static_cast<void*>(nullptr));
      has_tsfn_ = true;
      auto tsfn = tsfn_;
      context_.report = [tsfn](const Progress& p) mutable {
        auto* copy = new Progress(p);
        if (tsfn.NonBlockingCall(copy, deliver_progress) != napi_ok) delete copy;
      };
    } else {
      context_.report = [](const Progress&) {};
    }
  }

  Napi::Promise promise() { return settlement_->deferred.Promise(); }
  std::shared_ptr<std::atomic<bool>> cancel_flag() { return context_.cancelled; }

 protected:
  void Execute() override {
    try {
      work_(context_);
    } catch (const Error& e) {
      fail_with(code_name(e.code()), e.what());
    } catch (const std::bad_alloc&) {
      fail_with(code_name(Code::OutOfMemory), "out of memory");
    } catch (const std::exception& e) {
      fail_with(code_name(Code::Internal), e.what());
    }
  }

  void OnOK() override { finish(); }
  void OnError(const Napi::Error& e) override {  // only if node-addon-api itself failed
    fail_with(code_name(Code::Internal), e.Message());
    finish();
  }

 private:
  void fail_with(const char* code, const std::string& message) {
    settlement_->error_code = code;
    settlement_->error_message = message;
  }

  void finish() {
    if (has_tsfn_) {
      tsfn_.Release();  // the finalizer settles and frees the settlement
    } else {
      settlement_->settle(Env());
      delete settlement_;
    }
    settlement_ = nullptr;
  }

  JobWork work_;
  Settlement* settlement_;
  JobContext context_;
  Napi::ThreadSafeFunction tsfn_;
  bool has_tsfn_ = false;
};

}  // namespace

Napi::Promise start_job(Napi::Env env, JobWork work, JobFinish finish, Napi::Value on_progress,
                        std::shared_ptr<std::atomic<bool>>* cancel_out) {
  auto* job = new Job(env, std::move(work), std::move(finish), on_progress);
  Napi::Promise p = job->promise();
  if (cancel_out) *cancel_out = job->cancel_flag();
  job->Queue();  // the worker deletes itself when done
  return p;
}

}  // namespace df::addon

// pyramid.decompose / recompose / preview (sync and async), and benchCopy, the memory-bandwidth
// yardstick of bench/pyramid.js.
#include <algorithm>
#include <chrono>
#include <vector>

#include "../ops/pyramid.h"
#include "addon_data.h"
#include "async_job.h"
#include "bindings.h"
#include "tensor_binding.h"

namespace df::addon {

namespace {

const Decomposition& kind_option(const Napi::Object& opts, const std::string& fn) {
  std::string kind = opt_string(opts, "kind", "laplacian", fn + ": options");
  return cpu_decomposition(parse_pyramid_kind(kind, (fn + ": options.kind").c_str()));
}

// stages is range-checked by the core, which knows the limit and the image size.
int64_t stages_option(const Napi::Object& opts, const std::string& fn) {
  return opt_int(opts, "stages", 2, INT32_MIN, INT32_MAX, fn + ": options");
}

// An array of tensors named `<fn><name>` in errors (default ": levels").
std::vector<Tensor> levels_arg(const Napi::Value& v, const std::string& fn, const std::string& name = ": levels") {
  if (!v.IsArray()) fail(Code::ArgType, fn + name + ": expected an array of Tensors");
  Napi::Array a = v.As<Napi::Array>();
  std::vector<Tensor> levels;
  for (uint32_t i = 0; i < a.Length(); i++)
    levels.push_back(unwrap_tensor(a.Get(i), fn + name + "[" + std::to_string(i) + "]"));
  return levels;
}

// options.out: the caller's output tensors (none: allocate).
std::vector<Tensor> out_levels_option(const Napi::Object& opts, const std::string& fn) {
  if (!has_option(opts, "out")) return {};
  std::vector<Tensor> out = levels_arg(opts.Get("out"), fn, ": options.out");
  if (out.empty()) fail(Code::Shape, fn + ": options.out: expected one tensor per stage, got none");
  return out;
}

Tensor out_option(const Napi::Object& opts, const std::string& fn) {
  return has_option(opts, "out") ? unwrap_tensor(opts.Get("out"), fn + ": options.out") : Tensor();
}

Napi::Value wrap_levels(Napi::Env env, const std::vector<Tensor>& levels) {
  Napi::Array out = Napi::Array::New(env, levels.size());
  for (size_t i = 0; i < levels.size(); i++) out.Set(uint32_t(i), wrap_tensor(env, levels[i]));
  return out;
}

Napi::Value decompose_sync(const Napi::CallbackInfo& info) {
  const std::string fn = "pyramid.decomposeSync";
  const Tensor& x = unwrap_tensor(info[0], fn + ": x");
  Napi::Object opts = arg_object(info[1], fn + ": options", true);
  const Decomposition& d = kind_option(opts, fn);
  return wrap_levels(info.Env(), d.decompose(x, stages_option(opts, fn), fn, out_levels_option(opts, fn)));
}

// The inputs are held by the job, so disposing them meanwhile is safe. Arguments are checked here,
// before the job starts, so bad input rejects the promise without a worker.
Napi::Value decompose_async(const Napi::CallbackInfo& info) {
  const std::string fn = "pyramid.decompose";
  Tensor x = unwrap_tensor(info[0], fn + ": x");
  Napi::Object opts = arg_object(info[1], fn + ": options", true);
  const Decomposition* d = &kind_option(opts, fn);
  int64_t stages = stages_option(opts, fn);
  std::vector<Tensor> given = out_levels_option(opts, fn);
  auto out = std::make_shared<std::vector<Tensor>>();
  return start_job(
      info.Env(), [d, x, stages, fn, given, out](JobContext&) { *out = d->decompose(x, stages, fn, given); },
      [out](Napi::Env env) { return wrap_levels(env, *out); }, info.Env().Undefined());
}

Napi::Value recompose_sync(const Napi::CallbackInfo& info) {
  const std::string fn = "pyramid.recomposeSync";
  std::vector<Tensor> levels = levels_arg(info[0], fn);
  Napi::Object opts = arg_object(info[1], fn + ": options", true);
  return wrap_tensor(info.Env(), kind_option(opts, fn).recompose(levels, fn, out_option(opts, fn)));
}

Napi::Value recompose_async(const Napi::CallbackInfo& info) {
  const std::string fn = "pyramid.recompose";
  std::vector<Tensor> levels = levels_arg(info[0], fn);
  Napi::Object opts = arg_object(info[1], fn + ": options", true);
  const Decomposition* d = &kind_option(opts, fn);
  Tensor given = out_option(opts, fn);
  auto out = std::make_shared<Tensor>();
  return start_job(
      info.Env(), [d, levels, fn, given, out](JobContext&) { *out = d->recompose(levels, fn, given); },
      [out](Napi::Env env) { return wrap_tensor(env, *out); }, info.Env().Undefined());
}

Napi::Value preview_sync(const Napi::CallbackInfo& info) {
  const std::string fn = "pyramid.previewSync";
  std::vector<Tensor> levels = levels_arg(info[0], fn);
  int64_t up_to = arg_int(info[1], fn + ": upTo", INT32_MIN, INT32_MAX);
  Napi::Object opts = arg_object(info[2], fn + ": options", true);
  return wrap_tensor(info.Env(), kind_option(opts, fn).preview(levels, up_to, fn, out_option(opts, fn)));
}

Napi::Value preview_async(const Napi::CallbackInfo& info) {
  const std::string fn = "pyramid.preview";
  std::vector<Tensor> levels = levels_arg(info[0], fn);
  int64_t up_to = arg_int(info[1], fn + ": upTo", INT32_MIN, INT32_MAX);
  Napi::Object opts = arg_object(info[2], fn + ": options", true);
  const Decomposition* d = &kind_option(opts, fn);
  Tensor given = out_option(opts, fn);
  auto out = std::make_shared<Tensor>();
  return start_job(
      info.Env(), [d, levels, up_to, fn, given, out](JobContext&) { *out = d->preview(levels, up_to, fn, given); },
      [out](Napi::Env env) { return wrap_tensor(env, *out); }, info.Env().Undefined());
}

// Median milliseconds of a multithreaded memcpy of `bytes` (between two buffers, warmed first).
Napi::Value bench_copy(const Napi::CallbackInfo& info) {
  const int64_t bytes = arg_int(info[0], "benchCopy: bytes", 1, int64_t(1) << 34);
  const int64_t reps = arg_int(info[1], "benchCopy: reps", 1, 100000);
  std::vector<char> src(size_t(bytes), 1), dst(size_t(bytes), 0);
  parallel_copy(dst.data(), src.data(), size_t(bytes));
  std::vector<double> ms;
  for (int64_t r = 0; r < reps; r++) {
    auto t0 = std::chrono::steady_clock::now();
    parallel_copy(dst.data(), src.data(), size_t(bytes));
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  return Napi::Number::New(info.Env(), ms[ms.size() / 2]);
}

}  // namespace

void init_pyramid(Napi::Env env, Napi::Object exports) {
  exports.Set("pyramidDecomposeSync", Napi::Function::New<guarded<decompose_sync>>(env, "pyramidDecomposeSync"));
  exports.Set("pyramidDecompose", Napi::Function::New<guarded<decompose_async>>(env, "pyramidDecompose"));
  exports.Set("pyramidRecomposeSync", Napi::Function::New<guarded<recompose_sync>>(env, "pyramidRecomposeSync"));
  exports.Set("pyramidRecompose", Napi::Function::New<guarded<recompose_async>>(env, "pyramidRecompose"));
  exports.Set("pyramidPreviewSync", Napi::Function::New<guarded<preview_sync>>(env, "pyramidPreviewSync"));
  exports.Set("pyramidPreview", Napi::Function::New<guarded<preview_async>>(env, "pyramidPreview"));
  exports.Set("benchCopy", Napi::Function::New<guarded<bench_copy>>(env, "benchCopy"));
}

}  // namespace df::addon

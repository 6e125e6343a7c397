// attention / attentionSync and attentionBackward / attentionBackwardSync: flash attention on
// [batch, heads, n, dim] f32 tensors. Options: scale (default 1/sqrt(dim)), causal (default false).
#include "../ops/attention.h"

#include <cmath>
#include <memory>
#include <string>

#include "addon_data.h"
#include "async_job.h"
#include "bindings.h"
#include "napi_util.h"
#include "tensor_binding.h"

namespace df::addon {

namespace {

struct AttentionOptions {
  float scale;
  bool causal;
};

// The default scale needs q's head dim; a q of the wrong rank is reported by the op itself.
AttentionOptions read_options(const Napi::Value& v, const Tensor& q, const std::string& fn) {
  Napi::Object opts = arg_object(v, fn + ": options", true);
  double fallback = q.rank() >= 1 ? 1.0 / std::sqrt(double(q.dim(-1))) : 1.0;
  double scale = opt_number(opts, "scale", fallback, fn + ": options");
  if (!std::isfinite(scale) || !std::isfinite(float(scale)))
    fail(Code::NonFinite, fn + ": options.scale: expected a finite number, got " + std::to_string(scale));
  bool causal = opt_bool(opts, "causal", false, fn + ": options");
  return {float(scale), causal};
}

Napi::Object wrap_output(Napi::Env env, const AttentionOutput& r) {
  Napi::Object out = Napi::Object::New(env);
  out.Set("o", wrap_tensor(env, r.o));
  out.Set("lse", wrap_tensor(env, r.lse));
  return out;
}

Napi::Object wrap_grads(Napi::Env env, const AttentionGrads& g) {
  Napi::Object out = Napi::Object::New(env);
  out.Set("dq", wrap_tensor(env, g.dq));
  out.Set("dk", wrap_tensor(env, g.dk));
  out.Set("dv", wrap_tensor(env, g.dv));
  return out;
}

Napi::Value attention_sync(const Napi::CallbackInfo& info) {
  const char* fn = "attentionSync";
  const Tensor& q = unwrap_tensor(info[0], std::string(fn) + ": q");
  const Tensor& k = unwrap_tensor(info[1], std::string(fn) + ": k");
  const Tensor& v = unwrap_tensor(info[2], std::string(fn) + ": v");
  AttentionOptions o = read_options(info[3], q, fn);
  return wrap_output(info.Env(), attention(q, k, v, o.scale, o.causal));
}

// The inputs are held by the job, so disposing them while it runs is safe.
Napi::Value attention_async(const Napi::CallbackInfo& info) {
  const char* fn = "attention";
  Tensor q = unwrap_tensor(info[0], std::string(fn) + ": q");
  Tensor k = unwrap_tensor(info[1], std::string(fn) + ": k");
  Tensor v = unwrap_tensor(info[2], std::string(fn) + ": v");
  AttentionOptions o = read_options(info[3], q, fn);
  auto out = std::make_shared<AttentionOutput>();
  return start_job(
      info.Env(), [q, k, v, o, out](JobContext&) { *out = attention(q, k, v, o.scale, o.causal); },
      [out](Napi::Env env) { return wrap_output(env, *out); }, info.Env().Undefined());
}

struct BackwardArgs {
  Tensor q, k, v, o, lse, d_o;
};

BackwardArgs backward_args(const Napi::CallbackInfo& info, const std::string& fn) {
  return {unwrap_tensor(info[0], fn + ": q"), unwrap_tensor(info[1], fn + ": k"), unwrap_tensor(info[2], fn + ": v"),
          unwrap_tensor(info[3], fn + ": o"), unwrap_tensor(info[4], fn + ": lse"),
          unwrap_tensor(info[5], fn + ": dO")};
}

Napi::Value attention_backward_sync(const Napi::CallbackInfo& info) {
  BackwardArgs a = backward_args(info, "attentionBackwardSync");
  AttentionOptions o = read_options(info[6], a.q, "attentionBackwardSync");
  return wrap_grads(info.Env(), attention_backward(a.q, a.k, a.v, a.o, a.lse, a.d_o, o.scale, o.causal));
}

Napi::Value attention_backward_async(const Napi::CallbackInfo& info) {
  BackwardArgs a = backward_args(info, "attentionBackward");
  AttentionOptions o = read_options(info[6], a.q, "attentionBackward");
  auto out = std::make_shared<AttentionGrads>();
  return start_job(
      info.Env(),
      [a, o, out](JobContext&) { *out = attention_backward(a.q, a.k, a.v, a.o, a.lse, a.d_o, o.scale, o.causal); },
      [out](Napi::Env env) { return wrap_grads(env, *out); }, info.Env().Undefined());
}

}  // namespace

void init_attention(Napi::Env env, Napi::Object exports) {
  exports.Set("attentionSync", Napi::Function::New<guarded<attention_sync>>(env, "attentionSync"));
  exports.Set("attention", Napi::Function::New<guarded<attention_async>>(env, "attention"));
  exports.Set("attentionBackwardSync",
              Napi::Function::New<guarded<attention_backward_sync>>(env, "attentionBackwardSync"));
  exports.Set("attentionBackward", Napi::Function::New<guarded<attention_backward_async>>(env, "attentionBackward"));
}

}  // namespace df::addon

// matmul / matmulSync and the choice of GEMM implementation.
#include "../ops/gemm.h"

#include "addon_data.h"
#include "async_job.h"
#include "bindings.h"
#include "tensor_binding.h"

namespace df::addon {

namespace {

Napi::Value matmul_sync(const Napi::CallbackInfo& info) {
  const Tensor& a = unwrap_tensor(info[0], "matmul: a");
  const Tensor& b = unwrap_tensor(info[1], "matmul: b");
  return wrap_tensor(info.Env(), matmul(a, b));
}

// The product runs on a worker; the inputs are held by the job, so disposing them meanwhile is safe.
Napi::Value matmul_async(const Napi::CallbackInfo& info) {
  Tensor a = unwrap_tensor(info[0], "matmul: a");
  Tensor b = unwrap_tensor(info[1], "matmul: b");
  Napi::Object opts = arg_object(info[2], "matmul: options", true);
  Napi::Value on_progress = has_option(opts, "onProgress") ? Napi::Value(arg_function(opts.Get("onProgress"), "matmul: options.onProgress"))
                                                          : info.Env().Undefined();
  auto out = std::make_shared<Tensor>();
  return start_job(
      info.Env(),
      [a, b, out](JobContext& ctx) {
        ctx.report(Progress{0, 1, {}});
        *out = matmul(a, b);
        ctx.report(Progress{1, 1, {}});
      },
      [out](Napi::Env env) { return wrap_tensor(env, *out); }, on_progress);
}

Napi::Value set_gemm(const Napi::CallbackInfo& info) {
  std::string s = arg_string(info[0], "setGemm: impl");
  if (s == "auto") set_gemm_impl(GemmImpl::Auto);
  else if (s == "blas") set_gemm_impl(GemmImpl::Blas);
  else if (s == "builtin") set_gemm_impl(GemmImpl::Builtin);
  else fail(Code::ArgValue, "setGemm: impl: expected 'auto', 'blas' or 'builtin', got '" + s + "'");
  return info.Env().Undefined();
}

Napi::Value get_gemm(const Napi::CallbackInfo& info) {
  GemmImpl g = gemm_impl();
  const char* s = g == GemmImpl::Blas ? "blas" : g == GemmImpl::Builtin ? "builtin" : "auto";
  return Napi::String::New(info.Env(), s);
}

}  // namespace

void init_gemm(Napi::Env env, Napi::Object exports) {
  exports.Set("matmulSync", Napi::Function::New<guarded<matmul_sync>>(env, "matmulSync"));
  exports.Set("matmul", Napi::Function::New<guarded<matmul_async>>(env, "matmul"));
  exports.Set("setGemm", Napi::Function::New<guarded<set_gemm>>(env, "setGemm"));
  exports.Set("getGemm", Napi::Function::New<guarded<get_gemm>>(env, "getGemm"));
}

}  // namespace df::addon

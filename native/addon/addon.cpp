// Module entry: registers every binding. Each binding file owns one op family.
#include <napi.h>

#include "addon_data.h"
#include "bindings.h"
#include "tensor_binding.h"

namespace df::addon {

AddonData& addon_data(Napi::Env env) { return *env.GetInstanceData<AddonData>(); }

Napi::Object init(Napi::Env env, Napi::Object exports) {
  env.SetInstanceData(new AddonData());
  NativeTensor::init(env, exports);
  init_runtime(env, exports);
  init_gemm(env, exports);
  init_data(env, exports);
  init_dfm(env, exports);
  init_model(env, exports);
  init_safetensors(env, exports);
  init_pyramid(env, exports);
  init_attention(env, exports);
  init_eval(env, exports);
  init_io(env, exports);
  init_bench(env, exports);
  return exports;
}

}  // namespace df::addon

static Napi::Object init_module(Napi::Env env, Napi::Object exports) { return df::addon::init(env, exports); }

NODE_API_MODULE(decoflow, init_module)

// Per-environment state of the addon (one per Node.js worker thread that loads it), and the
// wrapper that routes every binding through guard() so no C++ exception escapes into Node.
#pragma once
#include <napi.h>

#include "napi_util.h"

namespace df::addon {

struct AddonData {
  Napi::FunctionReference tensor_ctor;
};

AddonData& addon_data(Napi::Env env);

template <Napi::Value (*F)(const Napi::CallbackInfo&)>
Napi::Value guarded(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&] { return F(info); });
}

}  // namespace df::addon

// The native Tensor handle seen from JS. The TypeScript Tensor (lib/tensor.ts) wraps it.
#pragma once
#include <napi.h>

#include "../core/tensor.h"

namespace df::addon {

class NativeTensor : public Napi::ObjectWrap<NativeTensor> {
 public:
  static void init(Napi::Env env, Napi::Object exports);
  explicit NativeTensor(const Napi::CallbackInfo& info);

  const Tensor& tensor() const { return tensor_; }

 private:
  Napi::Value shape(const Napi::CallbackInfo& info);
  Napi::Value dtype(const Napi::CallbackInfo& info);
  Napi::Value device(const Napi::CallbackInfo& info);
  Napi::Value size(const Napi::CallbackInfo& info);
  Napi::Value disposed(const Napi::CallbackInfo& info);
  Napi::Value data_sync(const Napi::CallbackInfo& info);
  Napi::Value data(const Napi::CallbackInfo& info);
  Napi::Value to(const Napi::CallbackInfo& info);
  Napi::Value to_async(const Napi::CallbackInfo& info);
  Napi::Value reshape(const Napi::CallbackInfo& info);
  Napi::Value cast(const Napi::CallbackInfo& info);
  Napi::Value dispose(const Napi::CallbackInfo& info);
  const Tensor& live(const char* what) const;

  Tensor tensor_;
};

// Wraps a core tensor in a new JS handle.
Napi::Object wrap_tensor(Napi::Env env, const Tensor& t);
// Reads a JS handle; throws ArgType for anything else and Disposed for a disposed one.
const Tensor& unwrap_tensor(const Napi::Value& v, const std::string& name);
// A typed array holding a copy of a CPU tensor's elements.
Napi::Value to_typed_array(Napi::Env env, const Tensor& cpu);

}  // namespace df::addon

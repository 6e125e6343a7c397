// readSafetensors / writeSafetensors: tensors by name plus string metadata (CPU, f32 and i32).
#include "../io/safetensors.h"

#include "addon_data.h"
#include "bindings.h"
#include "tensor_binding.h"

namespace df::addon {

namespace {

Napi::Value read_safetensors_js(const Napi::CallbackInfo& info) {
  SafetensorsFile f = SafetensorsFile::read(arg_string(info[0], "readSafetensors: path"));
  Napi::Env env = info.Env();
  Napi::Object tensors = Napi::Object::New(env);
  for (const auto& e : f.entries()) tensors.Set(e.name, wrap_tensor(env, f.tensor(e)));
  Napi::Object meta = Napi::Object::New(env);
  for (const auto& kv : f.metadata()) meta.Set(kv.first, kv.second);
  Napi::Object out = Napi::Object::New(env);
  out.Set("tensors", tensors);
  out.Set("metadata", meta);
  return out;
}

Napi::Value write_safetensors_js(const Napi::CallbackInfo& info) {
  std::string path = arg_string(info[0], "writeSafetensors: path");
  Napi::Object obj = arg_object(info[1], "writeSafetensors: tensors");
  Napi::Object meta_obj = arg_object(info[2], "writeSafetensors: metadata", true);
  std::vector<Tensor> held;
  std::vector<SafetensorsTensor> list;
  Napi::Array names = obj.GetPropertyNames();
  for (uint32_t i = 0; i < names.Length(); i++) {
    std::string name = names.Get(i).As<Napi::String>().Utf8Value();
    Tensor t = unwrap_tensor(obj.Get(name), "writeSafetensors: tensors." + name);
    if (!t.device().is_cpu()) t = t.to(Device{});
    if (t.dtype() != DType::F32 && t.dtype() != DType::I32)
      fail(Code::DType, "writeSafetensors: tensors." + name + ": expected f32 or i32, got " + dtype_name(t.dtype()));
    held.push_back(t);
    list.push_back({name, t.shape(), t.dtype(), t.raw()});
  }
  std::map<std::string, std::string> meta;
  Napi::Array keys = meta_obj.GetPropertyNames();
  for (uint32_t i = 0; i < keys.Length(); i++) {
    std::string k = keys.Get(i).As<Napi::String>().Utf8Value();
    meta[k] = arg_string(meta_obj.Get(k), "writeSafetensors: metadata." + k);
  }
  write_safetensors(path, list, meta);
  return info.Env().Undefined();
}

}  // namespace

void init_safetensors(Napi::Env env, Napi::Object exports) {
  exports.Set("readSafetensors", Napi::Function::New<guarded<read_safetensors_js>>(env, "readSafetensors"));
  exports.Set("writeSafetensors", Napi::Function::New<guarded<write_safetensors_js>>(env, "writeSafetensors"));
}

}  // namespace df::addon

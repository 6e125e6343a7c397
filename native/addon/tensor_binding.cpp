#include "tensor_binding.h"

#include <cstring>

#include "../core/philox.h"
#include "addon_data.h"
#include "async_job.h"
#include "napi_util.h"

namespace df::addon {

namespace {

// The typed array each dtype is exchanged through (f16 and bf16 as raw bits, like onnxruntime-node).
const char* typed_array_for(DType d) {
  switch (d) {
    case DType::F32: return "Float32Array";
    case DType::I32: return "Int32Array";
    case DType::F16:
    case DType::BF16: return "Uint16Array";
  }
  return "?";
}

napi_typedarray_type napi_type_for(DType d) {
  switch (d) {
    case DType::F32: return napi_float32_array;
    case DType::I32: return napi_int32_array;
    default: return napi_uint16_array;
  }
}

const char* typed_array_name(napi_typedarray_type t) {
  switch (t) {
    case napi_int8_array: return "Int8Array";
    case napi_uint8_array: return "Uint8Array";
    case napi_uint8_clamped_array: return "Uint8ClampedArray";
    case napi_int16_array: return "Int16Array";
    case napi_uint16_array: return "Uint16Array";
    case napi_int32_array: return "Int32Array";
    case napi_uint32_array: return "Uint32Array";
    case napi_float32_array: return "Float32Array";
    case napi_float64_array: return "Float64Array";
    case napi_bigint64_array: return "BigInt64Array";
    case napi_biguint64_array: return "BigUint64Array";
    default: return "a typed array";
  }
}

DType opt_dtype(const Napi::Object& o, const std::string& ctx, DType fallback) {
  if (!has_option(o, "dtype")) return fallback;
  return parse_dtype(arg_string(o.Get("dtype"), ctx + ".dtype"), (ctx + ".dtype").c_str());
}

Device opt_device(const Napi::Object& o, const std::string& ctx) {
  if (!has_option(o, "device")) return Device{};
  return parse_device(arg_string(o.Get("device"), ctx + ".device"), (ctx + ".device").c_str());
}

// from(typedArray, shape, {dtype, device}): copies the array's elements.
Napi::Value from_typed(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsTypedArray())
    fail(Code::ArgType, "Tensor.from: data: expected a Float32Array, Int32Array or Uint16Array");
  Napi::TypedArray arr = info[0].As<Napi::TypedArray>();
  Shape shape = arg_shape(info[1], "Tensor.from: shape");
  Napi::Object opts = arg_object(info[2], "Tensor.from: options", true);
  DType dtype = opt_dtype(opts, "Tensor.from: options", DType::F32);
  Device device = opt_device(opts, "Tensor.from: options");
  if (arr.TypedArrayType() != napi_type_for(dtype))
    fail(Code::DType, std::string("Tensor.from: data: dtype '") + dtype_name(dtype) + "' expects a " +
                          typed_array_for(dtype) + ", got a " + typed_array_name(arr.TypedArrayType()));
  int64_t n = checked_numel(shape, dtype, "Tensor.from: shape");
  if (int64_t(arr.ElementLength()) != n)
    fail(Code::Shape, "Tensor.from: data has " + std::to_string(arr.ElementLength()) + " elements but shape " +
                          shape_str(shape) + " needs " + std::to_string(n));
  const uint8_t* src = static_cast<const uint8_t*>(arr.ArrayBuffer().Data()) + arr.ByteOffset();
  Tensor t(shape, dtype);
  std::memcpy(t.raw(), src, t.nbytes());
  return wrap_tensor(env, device.is_cpu() ? t : t.to(device));
}

Napi::Value zeros(const Napi::CallbackInfo& info) {
  Shape shape = arg_shape(info[0], "Tensor.zeros: shape");
  Napi::Object opts = arg_object(info[1], "Tensor.zeros: options", true);
  DType dtype = opt_dtype(opts, "Tensor.zeros: options", DType::F32);
  Device device = opt_device(opts, "Tensor.zeros: options");
  return wrap_tensor(info.Env(), Tensor::zeros(shape, dtype, device));
}

// randn(shape, {seed, dtype, device}): standard normals from Philox, element i fixed by (seed, i).
Napi::Value randn(const Napi::CallbackInfo& info) {
  Shape shape = arg_shape(info[0], "Tensor.randn: shape");
  Napi::Object opts = arg_object(info[1], "Tensor.randn: options", true);
  DType dtype = opt_dtype(opts, "Tensor.randn: options", DType::F32);
  if (dtype == DType::I32) fail(Code::DType, "Tensor.randn: options.dtype: expected a floating dtype, got 'i32'");
  Device device = opt_device(opts, "Tensor.randn: options");
  int64_t seed = opt_int(opts, "seed", 0, 0, 9007199254740991LL, "Tensor.randn: options");
  Tensor t(shape, DType::F32);
  RandomStream{uint64_t(seed), 0}.fill_normal(t.data<float>(), t.numel());
  if (dtype != DType::F32) t = t.cast(dtype);
  return wrap_tensor(info.Env(), device.is_cpu() ? t : t.to(device));
}

}  // namespace

void NativeTensor::init(Napi::Env env, Napi::Object exports) {
  Napi::Function ctor = DefineClass(
      env, "NativeTensor",
      {
          InstanceMethod<&NativeTensor::shape>("shape"),
          InstanceMethod<&NativeTensor::dtype>("dtype"),
          InstanceMethod<&NativeTensor::device>("device"),
          InstanceMethod<&NativeTensor::size>("size"),
          InstanceMethod<&NativeTensor::disposed>("disposed"),
          InstanceMethod<&NativeTensor::data_sync>("dataSync"),
          InstanceMethod<&NativeTensor::data>("data"),
          InstanceMethod<&NativeTensor::to>("to"),
          InstanceMethod<&NativeTensor::to_async>("toAsync"),
          InstanceMethod<&NativeTensor::reshape>("reshape"),
          InstanceMethod<&NativeTensor::cast>("cast"),
          InstanceMethod<&NativeTensor::dispose>("dispose"),
      });
  addon_data(env).tensor_ctor = Napi::Persistent(ctor);
  exports.Set("NativeTensor", ctor);
  exports.Set("tensorFrom", Napi::Function::New<guarded<from_typed>>(env, "tensorFrom"));
  exports.Set("tensorZeros", Napi::Function::New<guarded<zeros>>(env, "tensorZeros"));
  exports.Set("tensorRandn", Napi::Function::New<guarded<randn>>(env, "tensorRandn"));
}

NativeTensor::NativeTensor(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeTensor>(info) {
  if (info.Length() != 1 || !info[0].IsExternal())
    throw make_js_error(info.Env(), code_name(Code::ArgType),
                        "NativeTensor cannot be constructed directly: use Tensor.from, zeros or randn");
  tensor_ = *info[0].As<Napi::External<Tensor>>().Data();
}

const Tensor& NativeTensor::live(const char* what) const {
  if (!tensor_.defined()) fail(Code::Disposed, std::string(what) + ": the tensor has been disposed");
  return tensor_;
}

Napi::Value NativeTensor::shape(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value { return shape_to_js(info.Env(), live("shape").shape()); });
}

Napi::Value NativeTensor::dtype(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value { return Napi::String::New(info.Env(), dtype_name(live("dtype").dtype())); });
}

Napi::Value NativeTensor::device(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value { return Napi::String::New(info.Env(), live("device").device().name()); });
}

Napi::Value NativeTensor::size(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value { return Napi::Number::New(info.Env(), double(live("size").numel())); });
}

Napi::Value NativeTensor::disposed(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), !tensor_.defined());
}

Napi::Value to_typed_array(Napi::Env env, const Tensor& cpu) {
  Napi::ArrayBuffer buf = Napi::ArrayBuffer::New(env, cpu.nbytes());
  std::memcpy(buf.Data(), cpu.raw(), cpu.nbytes());
  size_t n = size_t(cpu.numel());
  switch (cpu.dtype()) {
    case DType::F32: return Napi::Float32Array::New(env, n, buf, 0);
    case DType::I32: return Napi::Int32Array::New(env, n, buf, 0);
    default: return Napi::Uint16Array::New(env, n, buf, 0);
  }
}

Napi::Value NativeTensor::data_sync(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    const Tensor& t = live("dataSync");
    return to_typed_array(info.Env(), t.device().is_cpu() ? t : t.to(Device{}));
  });
}

// data(): copies on a worker thread (device to host for CUDA), resolves with a typed array.
Napi::Value NativeTensor::data(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    Tensor t = live("data");  // holds the storage alive even if the tensor is disposed meanwhile
    auto host = std::make_shared<Tensor>();
    return start_job(
        info.Env(), [t, host](JobContext&) { *host = t.device().is_cpu() ? t : t.to(Device{}); },
        [host](Napi::Env env) { return to_typed_array(env, *host); }, info.Env().Undefined());
  });
}

Napi::Value NativeTensor::to(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    Device d = parse_device(arg_string(info[0], "to: device"), "to: device");
    return wrap_tensor(info.Env(), live("to").to(d));
  });
}

// toAsync(device): the copy on a worker thread (host to device, device to host, or on the device).
Napi::Value NativeTensor::to_async(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    Device d = parse_device(arg_string(info[0], "toAsync: device"), "toAsync: device");
    Tensor t = live("toAsync");  // holds the storage alive even if the tensor is disposed meanwhile
    auto out = std::make_shared<Tensor>();
    return start_job(
        info.Env(), [t, d, out](JobContext&) { *out = t.to(d); }, [out](Napi::Env env) { return wrap_tensor(env, *out); },
        info.Env().Undefined());
  });
}

Napi::Value NativeTensor::reshape(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    if (!info[0].IsArray()) fail(Code::ArgType, "reshape: shape: expected an array of dimensions");
    Napi::Array a = info[0].As<Napi::Array>();
    Shape s;
    for (uint32_t i = 0; i < a.Length(); i++) {
      std::string what = "reshape: shape[" + std::to_string(i) + "]";
      s.push_back(arg_int(a.Get(i), what, -1, 9007199254740991LL));
      if (s.back() == 0) fail(Code::Shape, what + ": expected a positive integer or -1, got 0");
    }
    return wrap_tensor(info.Env(), live("reshape").reshape(s));
  });
}

Napi::Value NativeTensor::cast(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    DType d = parse_dtype(arg_string(info[0], "cast: dtype"), "cast: dtype");
    const Tensor& t = live("cast");
    Tensor host = t.device().is_cpu() ? t : t.to(Device{});
    Tensor out = host.cast(d);
    return wrap_tensor(info.Env(), t.device().is_cpu() ? out : out.to(t.device()));
  });
}

// Releases this handle's reference; the storage is freed when no view or running job holds it.
Napi::Value NativeTensor::dispose(const Napi::CallbackInfo& info) {
  tensor_ = Tensor();
  return info.Env().Undefined();
}

Napi::Object wrap_tensor(Napi::Env env, const Tensor& t) {
  Tensor copy = t;
  return addon_data(env).tensor_ctor.New({Napi::External<Tensor>::New(env, &copy)});
}

const Tensor& unwrap_tensor(const Napi::Value& v, const std::string& name) {
  Napi::Env env = v.Env();
  if (!v.IsObject() || !v.As<Napi::Object>().InstanceOf(addon_data(env).tensor_ctor.Value()))
    fail(Code::ArgType, name + ": expected a Tensor");
  NativeTensor* nt = NativeTensor::Unwrap(v.As<Napi::Object>());
  if (!nt->tensor().defined()) fail(Code::Disposed, name + ": the tensor has been disposed");
  return nt->tensor();
}

}  // namespace df::addon

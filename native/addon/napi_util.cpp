#include "napi_util.h"

#include <cmath>

namespace df::addon {

Napi::Error make_js_error(Napi::Env env, const char* code_name, const std::string& message) {
  std::string code = code_name;
  Napi::Error e = code == "ERR_DECOFLOW_ARG_TYPE" ? Napi::TypeError::New(env, message)
                                                  : Napi::Error::New(env, message);
  e.Set("code", Napi::String::New(env, code));
  if (code == "ABORT_ERR") e.Set("name", Napi::String::New(env, "AbortError"));
  return e;
}

void throw_js(Napi::Env env, Code code, const std::string& message) {
  throw make_js_error(env, code_name(code), message);
}

static std::string type_of(const Napi::Value& v) {
  if (v.IsUndefined()) return "undefined";
  if (v.IsNull()) return "null";
  if (v.IsArray()) return "an array";
  if (v.IsTypedArray()) return "a typed array";
  if (v.IsNumber()) return "a number";
  if (v.IsString()) return "a string";
  if (v.IsBoolean()) return "a boolean";
  if (v.IsFunction()) return "a function";
  return "an object";
}

Napi::Object arg_object(const Napi::Value& v, const std::string& name, bool optional) {
  if (optional && (v.IsUndefined() || v.IsNull())) return Napi::Object::New(v.Env());
  if (!v.IsObject() || v.IsArray()) fail(Code::ArgType, name + ": expected an object, got " + type_of(v));
  return v.As<Napi::Object>();
}

double arg_number(const Napi::Value& v, const std::string& name) {
  if (!v.IsNumber()) fail(Code::ArgType, name + ": expected a number, got " + type_of(v));
  return v.As<Napi::Number>().DoubleValue();
}

int64_t arg_int(const Napi::Value& v, const std::string& name, int64_t min, int64_t max) {
  double d = arg_number(v, name);
  if (!std::isfinite(d) || d != std::floor(d) || d < double(min) || d > double(max))
    fail(Code::ArgValue, name + ": expected an integer from " + std::to_string(min) + " to " + std::to_string(max) +
                             ", got " + (std::isfinite(d) ? std::to_string(d) : std::string(std::isnan(d) ? "NaN" : "Infinity")));
  return int64_t(d);
}

bool arg_bool(const Napi::Value& v, const std::string& name) {
  if (!v.IsBoolean()) fail(Code::ArgType, name + ": expected a boolean, got " + type_of(v));
  return v.As<Napi::Boolean>().Value();
}

std::string arg_string(const Napi::Value& v, const std::string& name) {
  if (!v.IsString()) fail(Code::ArgType, name + ": expected a string, got " + type_of(v));
  return v.As<Napi::String>().Utf8Value();
}

Napi::Function arg_function(const Napi::Value& v, const std::string& name) {
  if (!v.IsFunction()) fail(Code::ArgType, name + ": expected a function, got " + type_of(v));
  return v.As<Napi::Function>();
}

Shape arg_shape(const Napi::Value& v, const std::string& name) {
  if (!v.IsArray()) fail(Code::ArgType, name + ": expected an array of dimensions, got " + type_of(v));
  Napi::Array a = v.As<Napi::Array>();
  if (a.Length() < 1 || a.Length() > uint32_t(kMaxRank))
    fail(Code::Shape, name + ": expected 1 to " + std::to_string(kMaxRank) + " dimensions, got " + std::to_string(a.Length()));
  Shape s;
  for (uint32_t i = 0; i < a.Length(); i++) {
    Napi::Value d = a.Get(i);
    std::string what = name + "[" + std::to_string(i) + "]";
    if (!d.IsNumber()) fail(Code::ArgType, what + ": expected a positive integer, got " + type_of(d));
    double x = d.As<Napi::Number>().DoubleValue();
    if (!std::isfinite(x) || x != std::floor(x) || x < 1)
      fail(Code::Shape, what + ": expected a positive integer, got " + Napi::Value(d).ToString().Utf8Value());
    if (x > 9007199254740991.0) fail(Code::Shape, what + ": dimension too large");
    s.push_back(int64_t(x));
  }
  return s;
}

bool has_option(const Napi::Object& o, const char* key) {
  if (!o.Has(key)) return false;
  Napi::Value v = o.Get(key);
  return !v.IsUndefined();
}

int64_t opt_int(const Napi::Object& o, const char* key, int64_t fallback, int64_t min, int64_t max, const std::string& ctx) {
  return has_option(o, key) ? arg_int(o.Get(key), ctx + "." + key, min, max) : fallback;
}

double opt_number(const Napi::Object& o, const char* key, double fallback, const std::string& ctx) {
  return has_option(o, key) ? arg_number(o.Get(key), ctx + "." + key) : fallback;
}

std::string opt_string(const Napi::Object& o, const char* key, const std::string& fallback, const std::string& ctx) {
  return has_option(o, key) ? arg_string(o.Get(key), ctx + "." + key) : fallback;
}

bool opt_bool(const Napi::Object& o, const char* key, bool fallback, const std::string& ctx) {
  return has_option(o, key) ? arg_bool(o.Get(key), ctx + "." + key) : fallback;
}

Napi::Array shape_to_js(Napi::Env env, const Shape& shape) {
  Napi::Array a = Napi::Array::New(env, shape.size());
  for (size_t i = 0; i < shape.size(); i++) a.Set(uint32_t(i), Napi::Number::New(env, double(shape[i])));
  return a;
}

}  // namespace df::addon

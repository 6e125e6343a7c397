// Helpers shared by every binding: turning df::Error into JS errors with a code, and reading
// arguments with messages that name the argument and what was expected.
#pragma once
#include <napi.h>

#include <functional>
#include <string>
#include <vector>

#include "../core/error.h"
#include "../core/tensor.h"

namespace df::addon {

// Throws a JS Error (TypeError for ArgType) carrying `code` as its `code` property.
[[noreturn]] void throw_js(Napi::Env env, Code code, const std::string& message);
Napi::Error make_js_error(Napi::Env env, const char* code_name, const std::string& message);

// Runs fn, translating df::Error, std::bad_alloc and other C++ exceptions into JS errors.
template <class F>
auto guard(Napi::Env env, F&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const Napi::Error&) {
    throw;
  } catch (const Error& e) {
    throw_js(env, e.code(), e.what());
  } catch (const std::bad_alloc&) {
    throw_js(env, Code::OutOfMemory, "out of memory");
  } catch (const std::exception& e) {
    throw_js(env, Code::Internal, e.what());
  }
}

// Argument readers: `name` appears in the error message, e.g. "matmul: a".
Napi::Object arg_object(const Napi::Value& v, const std::string& name, bool optional = false);
double arg_number(const Napi::Value& v, const std::string& name);
int64_t arg_int(const Napi::Value& v, const std::string& name, int64_t min, int64_t max);
bool arg_bool(const Napi::Value& v, const std::string& name);
std::string arg_string(const Napi::Value& v, const std::string& name);
Shape arg_shape(const Napi::Value& v, const std::string& name);
Napi::Function arg_function(const Napi::Value& v, const std::string& name);

// Options object fields; each returns `fallback` when the field is absent or undefined.
bool has_option(const Napi::Object& o, const char* key);
int64_t opt_int(const Napi::Object& o, const char* key, int64_t fallback, int64_t min, int64_t max, const std::string& ctx);
double opt_number(const Napi::Object& o, const char* key, double fallback, const std::string& ctx);
std::string opt_string(const Napi::Object& o, const char* key, const std::string& fallback, const std::string& ctx);
bool opt_bool(const Napi::Object& o, const char* key, bool fallback, const std::string& ctx);

Napi::Array shape_to_js(Napi::Env env, const Shape& shape);

// A JS array of the numbers in `values` (any arithmetic element type).
template <class T>
Napi::Array numbers_to_js(Napi::Env env, const std::vector<T>& values) {
  Napi::Array a = Napi::Array::New(env, values.size());
  for (size_t i = 0; i < values.size(); i++) a.Set(uint32_t(i), Napi::Number::New(env, double(values[i])));
  return a;
}

}  // namespace df::addon

// Backends, build information, threads and memory accounting.
#include "../core/allocator.h"
#include "../core/backend.h"
#include "../core/threadpool.h"
#include "../ops/cpu_level.h"
#include "../ops/gemm.h"
#include "addon_data.h"
#include "bindings.h"

namespace df::addon {

namespace {

Napi::Value backends(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Array out = Napi::Array::New(env);
  Napi::Object cpu = Napi::Object::New(env);
  cpu.Set("name", "cpu");
  cpu.Set("available", true);
  cpu.Set("devices", Napi::Number::New(env, 1));
  cpu.Set("detail", std::to_string(num_threads()) + " threads; BLAS: " + blas_description());
  out.Set(0u, cpu);
  CudaBackend& cuda = cuda_backend();
  Napi::Object gpu = Napi::Object::New(env);
  gpu.Set("name", "cuda");
  gpu.Set("available", cuda.available());
  gpu.Set("devices", Napi::Number::New(env, cuda.device_count()));
  if (cuda.available()) {
    std::string names;
    for (int i = 0; i < cuda.device_count(); i++) names += (i ? ", " : "") + cuda.device_name(i);
    gpu.Set("detail", names);
    gpu.Set("library", cuda.library());
  } else {
    gpu.Set("reason", cuda.reason());
  }
  out.Set(1u, gpu);
  return out;
}

Napi::Value build_info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("blas", blas_description());
  o.Set("blasAvailable", blas_available());
  o.Set("threads", Napi::Number::New(env, num_threads()));
  o.Set("hardwareThreads", Napi::Number::New(env, hardware_threads()));
#ifdef __VERSION__
  o.Set("compiler", __VERSION__);
#endif
#ifdef DECOFLOW_NATIVE_ARCH
  o.Set("nativeArch", true);
#else
  o.Set("nativeArch", false);
#endif
  // The CPU levels (ops/cpu_level.h): the one in use (null when DECOFLOW_CPU_LEVEL asks for one
  // that cannot run here), why, the compiled ones and those this CPU supports.
  const std::string level = cpu_level_description();
  o.Set("cpuLevel", level.rfind("none:", 0) == 0 ? env.Null() : Napi::String::New(env, cpu_level_name(cpu_level())));
  o.Set("cpuLevelDetail", level);
  Napi::Array compiled = Napi::Array::New(env), supported = Napi::Array::New(env);
  for (CpuLevel l : compiled_cpu_levels()) {
    compiled.Set(compiled.Length(), cpu_level_name(l));
    if (cpu_supports(l)) supported.Set(supported.Length(), cpu_level_name(l));
  }
  o.Set("cpuLevels", compiled);
  o.Set("cpuLevelsSupported", supported);
  return o;
}

// setCudaLibraryCandidates(paths): where else to look for libdecoflow_cuda.so (backend.h), before
// the first use of the CUDA backend.
Napi::Value set_cuda_library_candidates(const Napi::CallbackInfo& info) {
  std::vector<std::string> paths;
  if (!info[0].IsArray()) fail(Code::ArgType, "setCudaLibraryCandidates: paths: expected an array of strings");
  Napi::Array a = info[0].As<Napi::Array>();
  for (uint32_t i = 0; i < a.Length(); i++)
    paths.push_back(arg_string(a.Get(i), "setCudaLibraryCandidates: paths[" + std::to_string(i) + "]"));
  cuda_backend().set_library_candidates(std::move(paths));
  return info.Env().Undefined();
}

Napi::Value set_threads(const Napi::CallbackInfo& info) {
  int n = int(arg_int(info[0], "setThreads: n", 0, 1024));
  set_num_threads(n);
  return info.Env().Undefined();
}

Napi::Value get_threads(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), num_threads()); }

Napi::Value memory(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);
  for (const MemoryStats& s : memory_stats()) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("tensors", Napi::Number::New(env, double(s.live_tensors)));
    o.Set("bytes", Napi::Number::New(env, double(s.live_bytes)));
    o.Set("peakBytes", Napi::Number::New(env, double(s.peak_bytes)));
    if (s.device.is_cpu()) o.Set("cachedBytes", Napi::Number::New(env, double(cpu_cached_bytes())));
    out.Set(s.device.name(), o);
  }
  return out;
}

Napi::Value release_cached_memory(const Napi::CallbackInfo& info) {
  release_cpu_cache();
  return info.Env().Undefined();
}

Napi::Value reset_peak_memory(const Napi::CallbackInfo& info) {
  std::string d = info[0].IsUndefined() ? "cpu" : arg_string(info[0], "resetPeakMemory: device");
  reset_peak(parse_device(d, "resetPeakMemory: device"));
  return info.Env().Undefined();
}

}  // namespace

void init_runtime(Napi::Env env, Napi::Object exports) {
  exports.Set("backends", Napi::Function::New<guarded<backends>>(env, "backends"));
  exports.Set("buildInfo", Napi::Function::New<guarded<build_info>>(env, "buildInfo"));
  exports.Set("setThreads", Napi::Function::New<guarded<set_threads>>(env, "setThreads"));
  exports.Set("setCudaLibraryCandidates",
              Napi::Function::New<guarded<set_cuda_library_candidates>>(env, "setCudaLibraryCandidates"));
  exports.Set("getThreads", Napi::Function::New<guarded<get_threads>>(env, "getThreads"));
  exports.Set("memory", Napi::Function::New<guarded<memory>>(env, "memory"));
  exports.Set("releaseCachedMemory", Napi::Function::New<guarded<release_cached_memory>>(env, "releaseCachedMemory"));
  exports.Set("resetPeakMemory", Napi::Function::New<guarded<reset_peak_memory>>(env, "resetPeakMemory"));
}

}  // namespace df::addon

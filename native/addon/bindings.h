// One init function per binding file; addon.cpp calls them all.
#pragma once
#include <napi.h>

namespace df::addon {

void init_runtime(Napi::Env env, Napi::Object exports);
void init_gemm(Napi::Env env, Napi::Object exports);
void init_data(Napi::Env env, Napi::Object exports);
void init_dfm(Napi::Env env, Napi::Object exports);
void init_model(Napi::Env env, Napi::Object exports);
void init_safetensors(Napi::Env env, Napi::Object exports);
void init_pyramid(Napi::Env env, Napi::Object exports);
void init_attention(Napi::Env env, Napi::Object exports);
void init_eval(Napi::Env env, Napi::Object exports);
void init_io(Napi::Env env, Napi::Object exports);
void init_bench(Napi::Env env, Napi::Object exports);

}  // namespace df::addon

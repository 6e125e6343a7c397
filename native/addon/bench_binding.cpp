// The measurements `decoflow bench` cannot make through the public ops: the machine's ceilings (FMA
// peak of the threads in use, copy bandwidth on the CPU or a CUDA device, a cuBLASLt bf16 GEMM) and a
// device synchronisation so that asynchronous CUDA work is inside the timed interval.
#include "../core/backend.h"
#include "../core/ceilings.h"
#include "addon_data.h"
#include "bindings.h"
#include "tensor_binding.h"

namespace df::addon {

namespace {

Napi::Value bench_info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("lanes", Napi::Number::New(env, fma_lanes()));
  o.Set("chains", Napi::Number::New(env, fma_chains()));
  o.Set("isa", isa_path());
  return o;
}

// benchFma(threads, iterations): blocks until every thread has run its chains.
Napi::Value bench_fma(const Napi::CallbackInfo& info) {
  const int threads = int(arg_int(info[0], "benchFma: threads", 1, 1024));
  const int64_t iterations = arg_int(info[1], "benchFma: iterations", 1, int64_t(1) << 40);
  fma_chains_run(threads, iterations);
  return info.Env().Undefined();
}

// benchCopyTensor(dst, src): copies src's bytes into dst (same byte size, same device): split over the
// thread pool on the CPU, one device-to-device copy (waited for) on a CUDA device.
Napi::Value bench_copy_tensor(const Napi::CallbackInfo& info) {
  const Tensor& dst = unwrap_tensor(info[0], "benchCopyTensor: dst");
  const Tensor& src = unwrap_tensor(info[1], "benchCopyTensor: src");
  expect_same_device(dst, src, "benchCopyTensor: dst", "benchCopyTensor: src");
  if (dst.nbytes() != src.nbytes())
    fail(Code::Shape, "benchCopyTensor: dst holds " + std::to_string(dst.nbytes()) + " bytes, src " +
                          std::to_string(src.nbytes()));
  if (dst.device().is_cpu())
    parallel_copy_bytes(dst.raw(), src.raw(), dst.nbytes());
  else
    cuda_backend().copy_on_device(dst.device(), dst.raw(), src.raw(), dst.nbytes());
  return info.Env().Undefined();
}

// benchSynchronize(device): waits for the work queued on a CUDA device; nothing to do on the CPU.
Napi::Value bench_synchronize(const Napi::CallbackInfo& info) {
  Device d = parse_device(arg_string(info[0], "benchSynchronize: device"), "benchSynchronize: device");
  if (!d.is_cpu()) cuda_backend().synchronize(d);
  return info.Env().Undefined();
}

// benchGemmBf16(a, b, c): c[m,n] = a[m,k] b[k,n] on a CUDA device, bf16, through cuBLASLt (queued).
Napi::Value bench_gemm_bf16(const Napi::CallbackInfo& info) {
  const char* names[3] = {"benchGemmBf16: a", "benchGemmBf16: b", "benchGemmBf16: c"};
  const Tensor* t[3];
  for (int i = 0; i < 3; i++) {
    t[i] = &unwrap_tensor(info[i], names[i]);
    expect_dtype(*t[i], DType::BF16, names[i]);
    expect_rank(*t[i], 2, names[i]);
    expect_same_device(*t[i], *t[0], names[i], names[0]);
  }
  const Tensor &a = *t[0], &b = *t[1], &c = *t[2];
  if (a.device().is_cpu()) fail(Code::Device, "benchGemmBf16: expected tensors on a CUDA device, got cpu");
  const int64_t m = a.dim(0), k = a.dim(1), n = b.dim(1);
  if (b.dim(0) != k || c.dim(0) != m || c.dim(1) != n)
    fail(Code::Shape, "benchGemmBf16: expected a [m, k], b [k, n], c [m, n], got " + shape_str(a.shape()) + ", " +
                          shape_str(b.shape()) + ", " + shape_str(c.shape()));
  CudaBackend& cuda = cuda_backend();
  cuda.check(cuda.api().gemm_bf16(a.device().index, m, n, k, a.raw(), b.raw(), c.raw()), "bf16 GEMM");
  return info.Env().Undefined();
}

}  // namespace

void init_bench(Napi::Env env, Napi::Object exports) {
  exports.Set("benchInfo", Napi::Function::New<guarded<bench_info>>(env, "benchInfo"));
  exports.Set("benchFma", Napi::Function::New<guarded<bench_fma>>(env, "benchFma"));
  exports.Set("benchCopyTensor", Napi::Function::New<guarded<bench_copy_tensor>>(env, "benchCopyTensor"));
  exports.Set("benchSynchronize", Napi::Function::New<guarded<bench_synchronize>>(env, "benchSynchronize"));
  exports.Set("benchGemmBf16", Napi::Function::New<guarded<bench_gemm_bf16>>(env, "benchGemmBf16"));
}

}  // namespace df::addon

// The CUDA runtime through the core's Tensor API (what Tensor.to('cuda') uses): round trips of every
// dtype, zeros and poisoned tensors on the device, device-to-device copies, the caching allocator's
// accounting, and errors: an out-of-memory is a df::Error with Code::OutOfMemory (never an abort)
// after which the device still works, and a missing device index is Code::Device.
#include <cstring>
#include <random>
#include <vector>

#include "core/allocator.h"
#include "core/error.h"
#include "core/tensor.h"
#include "cuda_test_util.h"

using df::Code;
using df::Device;
using df::DeviceKind;
using df::DType;
using df::Tensor;

namespace {

const Device kCuda{DeviceKind::CUDA, 0};

Tensor random_tensor(const df::Shape& shape, DType dtype, uint32_t seed) {
  Tensor t(shape, dtype);
  std::mt19937 rng(seed);
  auto* bytes = static_cast<unsigned char*>(t.raw());
  for (size_t i = 0; i < t.nbytes(); i++) bytes[i] = static_cast<unsigned char>(rng());
  return t;
}

template <class F>
void expect_code(Code code, const char* what, F&& fn) {
  try {
    fn();
    CHECK(false, "%s: no error", what);
  } catch (const df::Error& e) {
    CHECK(e.code() == code, "%s: code %d, message %s", what, int(e.code()), e.what());
    std::printf("  %s -> %s\n", what, e.what());
  }
}

}  // namespace

int main() {
  int exit_code = 0;
  cudatest::g_api = cudatest::api_or_skip("test_cuda_runtime", &exit_code);
  if (!cudatest::g_api) return exit_code;

  const int64_t live0 = df::memory_stats(kCuda).live_bytes;
  uint32_t seed = 1;
  for (DType dt : {DType::F32, DType::F16, DType::BF16, DType::I32})
    for (const df::Shape& shape : std::vector<df::Shape>{{1}, {3, 5, 7}, {2, 1000, 513}}) {
      Tensor host = random_tensor(shape, dt, seed++);
      Tensor dev = host.to(kCuda);
      CHECK(dev.device() == kCuda, "to(cuda) device");
      Tensor dev2 = dev.clone();  // device to device
      Tensor back = dev2.to(Device{});
      CHECK(std::memcmp(back.raw(), host.raw(), host.nbytes()) == 0, "round trip of %s %s differs",
            df::dtype_name(dt), df::shape_str(shape).c_str());
    }
  {
    Tensor z = Tensor::zeros({1000, 3}, DType::F32, kCuda).to(Device{});
    bool all_zero = true;
    for (int64_t i = 0; i < z.numel(); i++) all_zero = all_zero && z.data<float>()[i] == 0.f;
    CHECK(all_zero, "zeros on cuda");
    Tensor p = Tensor::poisoned({77}, DType::BF16, kCuda).to(Device{});
    bool all_nan = true;
    for (int64_t i = 0; i < p.numel(); i++) all_nan = all_nan && p.data<uint16_t>()[i] == 0x7fc0;
    CHECK(all_nan, "poisoned bf16 on cuda");
  }
  CHECK(df::memory_stats(kCuda).live_bytes == live0, "live cuda bytes %lld after freeing everything, expected %lld",
        (long long)df::memory_stats(kCuda).live_bytes, (long long)live0);

  // 512 GiB: more than any single GPU has.
  expect_code(Code::OutOfMemory, "a 512 GiB cuda tensor", [] { Tensor t({int64_t(1) << 37}, DType::F32, kCuda); });
  Tensor after = random_tensor({4096}, DType::F32, 99);
  CHECK(std::memcmp(after.to(kCuda).to(Device{}).raw(), after.raw(), after.nbytes()) == 0,
        "the device works after an out-of-memory");
  expect_code(Code::Device, "cuda:63", [] { Tensor t({4}, DType::F32, Device{DeviceKind::CUDA, 63}); });
  return test_summary("test_cuda_runtime");
}

// Shared by the CUDA test executables: the skip rule, device buffers through the backend's C ABI
// (the same dlopen path users take), status checks that print the backend's message, and error
// measures that name the first bad element.
//
// Without a usable CUDA device a test prints "skipped: no CUDA device (<reason>)" and exits 0
// (ctest reports it as skipped). With DECOFLOW_REQUIRE_CUDA=1 (the GPU machine's script) the same
// situation is a failure, so a broken driver cannot pass as a skip. A library that was built but
// does not load for an undefined symbol fails everywhere.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <string>
#include <vector>

#include "core/backend.h"
#include "test_util.h"

namespace cudatest {

inline bool env_flag(const char* name) {
  const char* v = std::getenv(name);
  return v && *v && std::string(v) != "0";
}

// Small sizes only (for compute-sanitizer, which is slow).
inline bool small_mode() { return env_flag("DECOFLOW_TEST_SMALL"); }

// The API table, or null after printing why the test is skipped (or failed, when required).
inline const DfCudaApi* api_or_skip(const char* test, int* exit_code) {
  df::CudaBackend& b = df::cuda_backend();
  if (b.available()) {
    std::printf("%s: on %s\n", test, b.device_name(0).c_str());
    return &b.api();
  }
  // A library that links against a symbol it does not carry is a broken build, not a missing
  // device: that fails here too, on machines without a GPU, instead of hiding behind the skip.
  if (b.reason().find("undefined symbol") != std::string::npos) {
    std::printf("FAIL %s: the CUDA backend library was built but does not load (%s)\n", test, b.reason().c_str());
    *exit_code = 1;
  } else if (env_flag("DECOFLOW_REQUIRE_CUDA")) {
    std::printf("FAIL %s: DECOFLOW_REQUIRE_CUDA is set but no CUDA device is usable (%s)\n", test, b.reason().c_str());
    *exit_code = 1;
  } else {
    std::printf("%s: skipped: no CUDA device (%s)\n", test, b.reason().c_str());
    *exit_code = 0;
  }
  return nullptr;
}

inline const DfCudaApi* g_api = nullptr;

// Runs a backend call; on failure records it with the backend's message and returns false.
#define CUDA_OK(call)                                                                                  \
  ([&]() {                                                                                              \
    int st_ = (call);                                                                                   \
    CHECK(st_ == DF_CUDA_OK, "%s -> status %d: %s", #call, st_, cudatest::g_api->last_error());         \
    return st_ == DF_CUDA_OK;                                                                           \
  }())

// A device allocation of `bytes`, freed at scope exit.
class DeviceBuffer {
 public:
  explicit DeviceBuffer(size_t bytes) : bytes_(bytes) { CUDA_OK(g_api->alloc(0, bytes, &p_)); }
  ~DeviceBuffer() {
    if (p_) g_api->free(0, p_);
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  template <class T>
  T* as() const { return static_cast<T*>(p_); }
  void* get() const { return p_; }
  template <class T>
  void upload(const std::vector<T>& host) {
    CHECK(host.size() * sizeof(T) <= bytes_, "upload larger than the buffer");
    CUDA_OK(g_api->copy_to_device(0, p_, host.data(), host.size() * sizeof(T)));
  }
  template <class T>
  std::vector<T> download(size_t n) const {
    std::vector<T> host(n);
    CUDA_OK(g_api->copy_to_host(0, host.data(), p_, n * sizeof(T)));
    return host;
  }

 private:
  size_t bytes_;
  void* p_ = nullptr;
};

// max_i |got_i - ref_i| / max_i |ref_i| (the absolute error where the reference is all zero).
// Infinite entries of ref must match exactly; a non-finite got elsewhere gives infinity. `first_bad`
// is the first index whose error exceeds tol * max|ref| (or is non-finite), -1 if none.
struct ErrorReport {
  double rel = 0, max_ref = 0;
  int64_t first_bad = -1;
  double got_at_bad = 0, ref_at_bad = 0;
};

inline ErrorReport compare(const std::vector<float>& got, const std::vector<double>& ref, double tol) {
  ErrorReport r;
  for (double x : ref)
    if (std::isfinite(x)) r.max_ref = std::max(r.max_ref, std::fabs(x));
  const double scale = r.max_ref > 0 ? r.max_ref : 1.0;
  double worst = 0;
  for (size_t i = 0; i < got.size(); i++) {
    double err;
    if (std::isinf(ref[i])) err = got[i] == ref[i] ? 0 : std::numeric_limits<double>::infinity();
    else if (!std::isfinite(got[i])) err = std::numeric_limits<double>::infinity();
    else err = std::fabs(double(got[i]) - ref[i]) / scale;
    if (err > worst || std::isnan(err)) worst = std::isnan(err) ? std::numeric_limits<double>::infinity() : err;
    if ((err > tol || std::isnan(err)) && r.first_bad < 0) {
      r.first_bad = int64_t(i);
      r.got_at_bad = got[i];
      r.ref_at_bad = ref[i];
    }
  }
  r.rel = worst;
  return r;
}

}  // namespace cudatest

// The CUDA backend as the core sees it: loaded lazily with dlopen, so a CPU-only machine never
// touches CUDA. When it is unusable every call throws Code::Device with the reason.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "cuda_api.h"
#include "device.h"

namespace df {

struct BackendInfo {
  std::string name;      // "cpu" or "cuda"
  bool available = false;
  std::string reason;    // why not, when unavailable
  std::string detail;    // e.g. device names, BLAS in use
};

class CudaBackend {
 public:
  // Where libdecoflow_cuda.so is looked for, in order: DECOFLOW_CUDA_LIBRARY (alone, when set);
  // next to the addon (a build from source with nvcc); then these paths (the JavaScript side passes
  // the optional package @decoflow/linux-x64-cuda's library when it is installed). Must be called
  // before the first use.
  void set_library_candidates(std::vector<std::string> paths);
  std::vector<std::string> library_candidates() const;
  // Loads the library on first use; cheap afterwards.
  bool available();
  const std::string& reason();  // why it is unavailable ("" when available)
  const std::string& library();  // the file loaded ("" when none)
  int device_count();
  std::string device_name(int index);

  void* alloc(Device d, size_t bytes);
  void free(Device d, void* p);
  void copy_to_device(Device d, void* dst, const void* src, size_t bytes);
  void copy_to_host(Device d, void* dst, const void* src, size_t bytes);
  void copy_on_device(Device d, void* dst, const void* src, size_t bytes);
  void synchronize(Device d);
  const DfCudaApi& api();  // throws when unavailable; for ops with CUDA kernels
  // A new op backend object (a df::Ops, see ops/ops.h) for device d computing in DF_CUDA_F32 or
  // DF_CUDA_BF16; Code::Device when the library cannot provide one.
  void* create_ops(Device d, int compute_dtype);
  void check(int status, const char* what);  // turns a status into a df::Error

 private:
  void load();
  void require(Device d);
  bool loaded_ = false;
  std::vector<std::string> extra_paths_;
  std::string path_;  // the library in use
  const DfCudaApi* api_ = nullptr;
  std::string reason_;
  int count_ = 0;
};

CudaBackend& cuda_backend();

// Directory of the loaded addon (where libdecoflow_cuda.so is looked for).
std::string module_directory();

}  // namespace df

#include "backend.h"

#include <dlfcn.h>

#include <cstdlib>
#include <mutex>
#include <vector>

#include "error.h"

namespace df {

namespace {
std::mutex g_load_mutex;
}

std::string module_directory() {
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(&module_directory), &info) == 0 || !info.dli_fname) return ".";
  std::string path = info.dli_fname;
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

CudaBackend& cuda_backend() {
  static CudaBackend backend;
  return backend;
}

void CudaBackend::set_library_candidates(std::vector<std::string> paths) {
  std::lock_guard<std::mutex> lock(g_load_mutex);
  extra_paths_ = std::move(paths);
}

std::vector<std::string> CudaBackend::library_candidates() const {
  const char* env = std::getenv("DECOFLOW_CUDA_LIBRARY");
  if (env && *env) return {env};
  std::vector<std::string> paths = {module_directory() + "/libdecoflow_cuda.so"};
  paths.insert(paths.end(), extra_paths_.begin(), extra_paths_.end());
  return paths;
}

namespace {

// cuBLASLt is not shipped with the CUDA backend (it is NVIDIA's, and large): the library needs
// libcublasLt.so.13 at run time, from the dynamic linker's search path (LD_LIBRARY_PATH, ldconfig),
// its RUNPATH ($ORIGIN, /usr/local/cuda/lib64), or loaded here first from DECOFLOW_CUBLASLT_DIR
// (e.g. the lib folder of the nvidia-cublas Python wheel) or the CUDA library's own folder: a loaded
// library satisfies the dependency by its soname. Returns what was loaded, or "".
std::string preload_cublaslt(const std::string& cuda_library) {
  std::vector<std::string> dirs;
  const char* env = std::getenv("DECOFLOW_CUBLASLT_DIR");
  if (env && *env) dirs.push_back(env);
  size_t slash = cuda_library.rfind('/');
  if (slash != std::string::npos) dirs.push_back(cuda_library.substr(0, slash));
  for (const std::string& dir : dirs)
    for (const char* name : {"libcublasLt.so.13", "libcublasLt.so.12"}) {
      std::string path = dir + "/" + name;
      if (dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL)) return path;
    }
  return "";
}

}  // namespace

void CudaBackend::load() {
  std::lock_guard<std::mutex> lock(g_load_mutex);
  if (loaded_) return;
  loaded_ = true;
  // The first candidate that exists is the one meant; one that exists but fails to load says why.
  void* handle = nullptr;
  std::string path, tried;
  for (const std::string& candidate : library_candidates()) {
    preload_cublaslt(candidate);
    handle = dlopen(candidate.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (handle) {
      path = candidate;
      break;
    }
    const char* why = dlerror();
    tried += (tried.empty() ? "" : "; ") + candidate + ": " + (why ? why : "unknown error");
  }
  if (!handle) {
    reason_ = "the CUDA backend library could not be loaded (" + tried +
              "). It comes with the optional package @decoflow/linux-x64-cuda (npm install @decoflow/linux-x64-cuda), or "
              "from a build from source where nvcc is found; it needs cuBLASLt (libcublasLt.so.13: the CUDA 13 "
              "toolkit, or the nvidia-cublas wheel with DECOFLOW_CUBLASLT_DIR; see README, 'CUDA backend')";
    return;
  }
  path_ = path;
  auto fn = reinterpret_cast<DfCudaApiFn>(dlsym(handle, "decoflow_cuda_api"));
  const DfCudaApi* api = fn ? fn() : nullptr;
  if (!api || api->abi_version != DF_CUDA_ABI_VERSION) {
    reason_ = "the CUDA backend library at " + path + " does not match this addon (ABI version " +
              (api ? std::to_string(api->abi_version) : std::string("unknown")) + ", expected " +
              std::to_string(DF_CUDA_ABI_VERSION) + ")";
    return;
  }
  int count = 0;
  int status = api->device_count(&count);
  if (status == DF_CUDA_NO_DRIVER) {
    reason_ = std::string("no NVIDIA driver: ") + api->last_error();
    return;
  }
  if (status != DF_CUDA_OK || count == 0) {
    reason_ = status == DF_CUDA_OK ? "no CUDA device found" : std::string("no CUDA device: ") + api->last_error();
    return;
  }
  api_ = api;
  count_ = count;
}

bool CudaBackend::available() {
  load();
  return api_ != nullptr;
}

const std::string& CudaBackend::reason() {
  load();
  return reason_;
}

const std::string& CudaBackend::library() {
  load();
  return path_;
}

int CudaBackend::device_count() { return available() ? count_ : 0; }

std::string CudaBackend::device_name(int index) {
  char name[256] = {0};
  check(api().device_name(index, name, sizeof name), "cudaGetDeviceProperties");
  return name;
}

const DfCudaApi& CudaBackend::api() {
  if (!available()) fail(Code::Device, "device 'cuda' is not available: " + reason_);
  return *api_;
}

void CudaBackend::require(Device d) {
  const DfCudaApi& a = api();
  (void)a;
  if (d.index < 0 || d.index >= count_)
    fail(Code::Device, "device '" + d.name() + "' does not exist: " + std::to_string(count_) +
                           " CUDA device(s) found");
}

void* CudaBackend::create_ops(Device d, int compute_dtype) {
  require(d);
  if (api_->ops_interface_version != DF_OPS_INTERFACE_VERSION || !api_->create_ops)
    fail(Code::Device, "the CUDA backend library implements op interface version " +
                           std::to_string(api_->ops_interface_version) + ", this addon needs " +
                           std::to_string(DF_OPS_INTERFACE_VERSION) + ": rebuild or reinstall it");
  void* ops = nullptr;
  check(api_->create_ops(d.index, compute_dtype, &ops), "creating the CUDA op backend");
  return ops;
}

void CudaBackend::check(int status, const char* what) {
  if (status == DF_CUDA_OK) return;
  std::string msg = std::string(what) + " failed: " + (api_ ? api_->last_error() : "backend unavailable");
  if (status == DF_CUDA_OUT_OF_MEMORY) fail(Code::OutOfMemory, msg);
  if (status == DF_CUDA_INVALID) fail(Code::ArgValue, msg);
  fail(Code::Backend, msg);
}

void* CudaBackend::alloc(Device d, size_t bytes) {
  require(d);
  void* p = nullptr;
  check(api_->alloc(d.index, bytes, &p), "CUDA allocation");
  return p;
}

void CudaBackend::free(Device d, void* p) {
  if (api_) api_->free(d.index, p);  // never throws: called from destructors
}

void CudaBackend::copy_to_device(Device d, void* dst, const void* src, size_t bytes) {
  require(d);
  check(api_->copy_to_device(d.index, dst, src, bytes), "copy to CUDA device");
}

void CudaBackend::copy_to_host(Device d, void* dst, const void* src, size_t bytes) {
  require(d);
  check(api_->copy_to_host(d.index, dst, src, bytes), "copy from CUDA device");
}

void CudaBackend::copy_on_device(Device d, void* dst, const void* src, size_t bytes) {
  require(d);
  check(api_->copy_on_device(d.index, dst, src, bytes), "copy on CUDA device");
}

void CudaBackend::synchronize(Device d) {
  require(d);
  check(api_->synchronize(d.index), "CUDA synchronize");
}

}  // namespace df

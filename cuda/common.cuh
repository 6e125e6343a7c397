// Shared by the CUDA backend's files: status handling and the per-device stream.
#pragma once
#include <cuda_runtime.h>

#include <string>

#include "core/cuda_api.h"

namespace dfcuda {

// Records `msg` as the calling thread's last error and returns `status`.
int set_error(int status, const std::string& msg);

// Maps a cudaError_t to a backend status, recording the message (with `what`).
int from_cuda(cudaError_t e, const char* what);

// Selects `device` on this thread and returns its stream (created on first use).
cudaStream_t stream_for(int device);

}  // namespace dfcuda

// Evaluates a CUDA call; on failure returns its status from the enclosing function.
#define DF_CUDA_TRY(call)                                        \
  do {                                                           \
    cudaError_t df_err_ = (call);                                \
    if (df_err_ != cudaSuccess) return dfcuda::from_cuda(df_err_, #call); \
  } while (0)

// After a kernel launch: the launch error, if any.
#define DF_CUDA_LAUNCHED(name) DF_CUDA_TRY(cudaGetLastError())

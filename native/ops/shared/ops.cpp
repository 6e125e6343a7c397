#include "../ops.h"

#include <map>
#include <mutex>
#include <utility>

#include "../../core/backend.h"
#include "../../core/error.h"

namespace df {

DType default_compute(Device device) { return device.is_cpu() ? DType::F32 : DType::BF16; }

Ops& ops_for(Device device, DType compute) {
  if (device.is_cpu()) {
    if (compute != DType::F32)
      fail(Code::DType, std::string("precision: the cpu computes in f32, got ") + dtype_name(compute));
    return cpu_ops();
  }
  if (compute != DType::F32 && compute != DType::BF16)
    fail(Code::DType, "precision: " + device.name() + " computes in f32 or bf16, got " + dtype_name(compute));
  // One backend object per (device, compute type), made on first use and kept for the process.
  static std::mutex mutex;
  static std::map<std::pair<int, DType>, Ops*> made;
  std::lock_guard<std::mutex> lock(mutex);
  Ops*& ops = made[{device.index, compute}];
  if (!ops) ops = static_cast<Ops*>(cuda_backend().create_ops(device, compute == DType::BF16 ? DF_CUDA_BF16 : DF_CUDA_F32));
  return *ops;
}

}  // namespace df

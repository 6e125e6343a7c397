#include "tensor.h"

#include <cmath>
#include <cstring>
#include <limits>

#include "allocator.h"
#include "backend.h"
#include "error.h"

namespace df {

Storage::Storage(Device device, size_t bytes)
    : device_(device), bytes_(bytes), data_(device_alloc(device, bytes)) {}

Storage::~Storage() { device_free(device_, data_, bytes_); }

std::string shape_str(const Shape& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); i++) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

int64_t checked_numel(const Shape& shape, DType dtype, const char* arg) {
  if (shape.empty() || int(shape.size()) > kMaxRank)
    fail(Code::Shape, std::string(arg) + ": expected a shape of rank 1 to " + std::to_string(kMaxRank) +
                          ", got rank " + std::to_string(shape.size()));
  uint64_t n = 1;
  const uint64_t limit = kMaxAllocBytes / dtype_size(dtype);
  for (size_t i = 0; i < shape.size(); i++) {
    if (shape[i] < 1)
      fail(Code::Shape, std::string(arg) + ": expected every dimension to be a positive integer, got " +
                            shape_str(shape));
    n *= uint64_t(shape[i]);
    if (n > limit)
      fail(Code::Shape, std::string(arg) + ": shape " + shape_str(shape) + " of " + dtype_name(dtype) +
                            " needs more than the 1 TiB limit");
  }
  return int64_t(n);
}

Tensor::Tensor(const Shape& shape, DType dtype, Device device)
    : shape_(shape), numel_(checked_numel(shape, dtype, "shape")), dtype_(dtype) {
  storage_ = std::make_shared<Storage>(device, nbytes());
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) {
  Tensor t(shape, dtype, device);
  if (device.is_cpu()) {
    std::memset(t.raw(), 0, t.nbytes());
  } else {
    std::vector<char> z(t.nbytes(), 0);
    cuda_backend().copy_to_device(device, t.raw(), z.data(), t.nbytes());
  }
  return t;
}

Tensor Tensor::poisoned(const Shape& shape, DType dtype, Device device) {
  Tensor host(shape, dtype);
  size_t n = size_t(host.numel());
  switch (dtype) {
    case DType::F32: {
      float* p = host.data<float>();
      for (size_t i = 0; i < n; i++) p[i] = std::numeric_limits<float>::quiet_NaN();
      break;
    }
    case DType::F16:
    case DType::BF16: {
      uint16_t nan = dtype == DType::F16 ? 0x7e00 : 0x7fc0;
      uint16_t* p = host.data<uint16_t>();
      for (size_t i = 0; i < n; i++) p[i] = nan;
      break;
    }
    case DType::I32: {
      int32_t* p = host.data<int32_t>();
      for (size_t i = 0; i < n; i++) p[i] = std::numeric_limits<int32_t>::min();
      break;
    }
  }
  return device.is_cpu() ? host : host.to(device);
}

Tensor Tensor::reshape(const Shape& shape) const {
  Shape s = shape;
  int infer = -1;
  int64_t known = 1;
  for (size_t i = 0; i < s.size(); i++) {
    if (s[i] == -1) {
      if (infer >= 0) fail(Code::Shape, "reshape: shape: at most one dimension may be -1");
      infer = int(i);
    } else {
      if (s[i] < 1) fail(Code::Shape, "reshape: shape: expected positive dimensions or -1, got " + shape_str(s));
      known *= s[i];
    }
  }
  if (infer >= 0) {
    if (known == 0 || numel_ % known != 0)
      fail(Code::Shape, "reshape: cannot infer -1 in " + shape_str(s) + " for " + std::to_string(numel_) + " elements");
    s[infer] = numel_ / known;
  }
  if (checked_numel(s, dtype_, "reshape: shape") != numel_)
    fail(Code::Shape, "reshape: shape " + shape_str(s) + " has a different number of elements than " +
                          shape_str(shape_) + " (" + std::to_string(numel_) + ")");
  Tensor t = *this;
  t.shape_ = s;
  return t;
}

void Tensor::copy_from(const Tensor& src) {
  if (src.shape_ != shape_ || src.dtype_ != dtype_)
    fail(Code::Shape, "copy: source " + shape_str(src.shape_) + " " + dtype_name(src.dtype_) +
                          " does not match destination " + shape_str(shape_) + " " + dtype_name(dtype_));
  Device from = src.device(), to = device();
  if (from.is_cpu() && to.is_cpu())
    std::memcpy(raw(), src.raw(), nbytes());
  else if (from.is_cpu())
    cuda_backend().copy_to_device(to, raw(), src.raw(), nbytes());
  else if (to.is_cpu())
    cuda_backend().copy_to_host(from, raw(), src.raw(), nbytes());
  else if (from == to)
    cuda_backend().copy_on_device(to, raw(), src.raw(), nbytes());
  else {
    Tensor host = src.to(Device{});  // between GPUs through the host: rare, simple
    copy_from(host);
  }
}

Tensor Tensor::to(Device device) const {
  Tensor t(shape_, dtype_, device);
  t.copy_from(*this);
  return t;
}

Tensor Tensor::cast(DType dtype) const {
  if (!device().is_cpu()) fail(Code::Device, "cast: expected a cpu tensor, got " + device().name());
  Tensor t(shape_, dtype, device());
  convert(raw(), dtype_, t.raw(), dtype, size_t(numel_));
  return t;
}

void expect_defined(const Tensor& t, const char* arg) {
  if (!t.defined()) fail(Code::Disposed, std::string(arg) + ": the tensor has been disposed");
}

void expect_dtype(const Tensor& t, DType dtype, const char* arg) {
  if (t.dtype() != dtype)
    fail(Code::DType, std::string(arg) + ": expected dtype " + dtype_name(dtype) + ", got " + dtype_name(t.dtype()));
}

void expect_rank(const Tensor& t, int rank, const char* arg) {
  if (t.rank() != rank)
    fail(Code::Shape, std::string(arg) + ": expected rank " + std::to_string(rank) + ", got shape " + shape_str(t.shape()));
}

void expect_same_device(const Tensor& a, const Tensor& b, const char* arg_a, const char* arg_b) {
  if (a.device() != b.device())
    fail(Code::Device, std::string(arg_a) + " is on " + a.device().name() + " but " + arg_b + " is on " +
                           b.device().name() + ": expected both on the same device");
}

}  // namespace df

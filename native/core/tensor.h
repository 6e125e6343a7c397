// A dense, contiguous, row-major tensor. Storage is reference counted: reshape() and copies of a
// Tensor share it; to() and clone() copy. Rank 1-5 (rank 0 is not used by decoflow).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "device.h"
#include "dtype.h"

namespace df {

using Shape = std::vector<int64_t>;

constexpr int kMaxRank = 5;

class Storage {
 public:
  Storage(Device device, size_t bytes);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }
  Device device() const { return device_; }

 private:
  Device device_;
  size_t bytes_;
  void* data_;
};

class Tensor {
 public:
  Tensor() = default;
  // Allocates uninitialised storage.
  Tensor(const Shape& shape, DType dtype, Device device = Device{});

  static Tensor zeros(const Shape& shape, DType dtype, Device device = Device{});
  // Filled with NaN (floats) or INT32_MIN: used by tests to catch elements a kernel never writes.
  static Tensor poisoned(const Shape& shape, DType dtype, Device device = Device{});

  bool defined() const { return storage_ != nullptr; }
  const Shape& shape() const { return shape_; }
  int rank() const { return int(shape_.size()); }
  int64_t dim(int i) const { return shape_[i < 0 ? i + rank() : i]; }
  int64_t numel() const { return numel_; }
  DType dtype() const { return dtype_; }
  Device device() const { return storage_ ? storage_->device() : Device{}; }
  size_t nbytes() const { return size_t(numel_) * dtype_size(dtype_); }
  void* raw() const { return storage_ ? storage_->data() : nullptr; }
  template <class T>
  T* data() const { return static_cast<T*>(raw()); }
  const std::shared_ptr<Storage>& storage() const { return storage_; }

  Tensor reshape(const Shape& shape) const;  // shares storage; one dim may be -1
  Tensor to(Device device) const;            // always copies (also to the same device)
  Tensor cast(DType dtype) const;            // copies; CPU only
  Tensor clone() const { return to(device()); }
  void copy_from(const Tensor& src);         // same shape and dtype, any devices

 private:
  std::shared_ptr<Storage> storage_;
  Shape shape_;
  int64_t numel_ = 0;
  DType dtype_ = DType::F32;
};

// Checks a shape (rank 1-5, every dim a positive integer, total size sane) and returns its size.
// Error messages name `arg`.
int64_t checked_numel(const Shape& shape, DType dtype, const char* arg);
std::string shape_str(const Shape& shape);

// Argument checks used by every op; each names the argument in its error.
void expect_dtype(const Tensor& t, DType dtype, const char* arg);
void expect_rank(const Tensor& t, int rank, const char* arg);
void expect_same_device(const Tensor& a, const Tensor& b, const char* arg_a, const char* arg_b);
void expect_defined(const Tensor& t, const char* arg);

}  // namespace df

// Pyramids on tensors (pyramid.h), compiled once: the geometry and its checks, and the tensor forms
// that run on their tensors' device (the CPU level in use through the virtual raw forms, or the
// CUDA backend's kernels); the range size of the CPU passes; the multithreaded copy.
#include "../pyramid.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <vector>

#include "../../core/backend.h"
#include "../../core/error.h"
#include "../../core/threadpool.h"

namespace df {

namespace {

// Work per range of the CPU passes: about this many fine pixels, so tiny levels don't pay for
// waking threads.
constexpr int64_t kDefaultRangePixels = 16384;
std::atomic<int64_t> g_range_pixels{kDefaultRangePixels};

// Undefined (null data) when the pyramid needs no workspace.
Tensor make_workspace(const PyramidShape& s) {
  const int64_t n = s.workspace_floats();
  return n > 0 ? Tensor({n}, DType::F32) : Tensor();
}

// Where a call runs and on what: the device and dtype of its first tensor (x, or levels[0]), which
// every other tensor must share. The CPU op is f32; the CUDA kernels take f32 or bf16.
struct Placement {
  Device device;
  DType dtype;
};

Placement placement_of(const Tensor& t, const std::string& arg) {
  expect_defined(t, arg.c_str());
  if (t.device().is_cpu()) expect_dtype(t, DType::F32, arg.c_str());
  else if (t.dtype() != DType::F32 && t.dtype() != DType::BF16)
    fail(Code::DType, arg + ": expected dtype f32 or bf16 (on " + t.device().name() + "), got " + dtype_name(t.dtype()));
  return {t.device(), t.dtype()};
}

void check_placed(const Tensor& t, const Placement& p, const std::string& arg, const std::string& first) {
  expect_defined(t, arg.c_str());
  if (t.device() != p.device)
    fail(Code::Device, arg + ": expected a tensor on " + p.device.name() + " (like " + first + "), got one on " +
                           t.device().name());
  if (t.dtype() != p.dtype)
    fail(Code::DType, arg + ": expected dtype " + dtype_name(p.dtype) + " (like " + first + "), got " +
                          dtype_name(t.dtype()));
}

DfCudaPyramidShape cuda_shape(const PyramidShape& s) {
  return DfCudaPyramidShape{s.batch, s.channels, s.height, s.width, s.stages};
}

int cuda_kind(PyramidKind kind) {
  return kind == PyramidKind::Haar ? DF_CUDA_HAAR : kind == PyramidKind::Consistent ? DF_CUDA_CONSISTENT : DF_CUDA_LAPLACIAN;
}
int cuda_dtype(DType d) { return d == DType::BF16 ? DF_CUDA_BF16 : DF_CUDA_F32; }

}  // namespace

int64_t PyramidShape::workspace_floats() const {
  int64_t n = 0;
  for (int t = 1; t + 1 < stages; t++) n += level_numel(t);
  return n;
}

PyramidShape pyramid_shape(const Shape& image, int64_t stages, const std::string& fn) {
  if (stages < 1 || stages > kMaxPyramidStages)
    fail(Code::ArgValue, fn + ": stages: expected an integer from 1 to " + std::to_string(kMaxPyramidStages) +
                             ", got " + std::to_string(stages));
  if (image.size() != 4)
    fail(Code::Shape, fn + ": x: expected a [batch, channels, height, width] tensor (rank 4), got shape " +
                          shape_str(image));
  const int64_t factor = int64_t(1) << (stages - 1);
  if (image[2] % factor != 0 || image[3] % factor != 0)
    fail(Code::Shape, fn + ": x: " + std::to_string(stages) + " stages need height and width divisible by " +
                          std::to_string(factor) + " (2^(stages-1)), got shape " + shape_str(image));
  PyramidShape s;
  s.batch = image[0];
  s.channels = image[1];
  s.height = image[2];
  s.width = image[3];
  s.stages = int(stages);
  return s;
}

PyramidShape pyramid_shape_of_levels(const std::vector<Shape>& levels, const std::string& fn) {
  if (levels.empty()) fail(Code::ArgValue, fn + ": levels: expected at least one level, got none");
  if (levels.size() > size_t(kMaxPyramidStages))
    fail(Code::ArgValue, fn + ": levels: expected at most " + std::to_string(kMaxPyramidStages) + " levels, got " +
                             std::to_string(levels.size()));
  for (size_t i = 0; i < levels.size(); i++) {
    const std::string arg = fn + ": levels[" + std::to_string(i) + "]";
    if (levels[i].size() != 4)
      fail(Code::Shape, arg + ": expected a [batch, channels, height, width] tensor (rank 4), got shape " +
                            shape_str(levels[i]));
    if (i == 0) continue;
    const Shape& prev = levels[i - 1];
    Shape want = {prev[0], prev[1], 2 * prev[2], 2 * prev[3]};
    if (levels[i] != want)
      fail(Code::Shape, arg + ": expected shape " + shape_str(want) + " (levels[" + std::to_string(i - 1) + "] " +
                            shape_str(prev) + " at twice the height and width), got " + shape_str(levels[i]));
  }
  const Shape& fine = levels.back();
  return pyramid_shape(fine, int64_t(levels.size()), fn);
}

PyramidKind parse_pyramid_kind(const std::string& name, const char* arg) {
  if (name == "laplacian") return PyramidKind::Laplacian;
  if (name == "haar") return PyramidKind::Haar;
  if (name == "consistent") return PyramidKind::Consistent;
  fail(Code::ArgValue, std::string(arg) + ": expected 'laplacian', 'haar' or 'consistent', got '" + name + "'");
}

const char* pyramid_kind_name(PyramidKind kind) {
  switch (kind) {
    case PyramidKind::Haar: return "haar";
    case PyramidKind::Consistent: return "consistent";
    default: return "laplacian";
  }
}


namespace {

bool overlap(const Tensor& a, const Tensor& b) {
  auto p = static_cast<const char*>(a.raw()), q = static_cast<const char*>(b.raw());
  return p < q + b.nbytes() && q < p + a.nbytes();
}

// A caller's output: the right shape, device and dtype, and sharing no memory with `inputs`.
void check_out(const Tensor& out, const Shape& shape, const Placement& p, const std::string& first,
               const std::vector<Tensor>& inputs, const std::vector<std::string>& input_names, const std::string& arg) {
  check_placed(out, p, arg, first);
  if (out.shape() != shape)
    fail(Code::Shape, arg + ": expected shape " + shape_str(shape) + ", got " + shape_str(out.shape()));
  for (size_t i = 0; i < inputs.size(); i++)
    if (overlap(out, inputs[i])) fail(Code::ArgValue, arg + ": shares memory with " + input_names[i]);
}

PyramidShape checked_levels(const std::vector<Tensor>& levels, const std::string& fn, Placement* p,
                            std::vector<const void*>& ptrs) {
  std::vector<Shape> shapes;
  for (size_t i = 0; i < levels.size(); i++) {
    const std::string arg = fn + ": levels[" + std::to_string(i) + "]";
    if (i == 0) *p = placement_of(levels[i], arg);
    else check_placed(levels[i], *p, arg, "levels[0]");
    shapes.push_back(levels[i].shape());
    ptrs.push_back(levels[i].raw());
  }
  return pyramid_shape_of_levels(shapes, fn);
}

}  // namespace

std::vector<Tensor> Decomposition::decompose(const Tensor& image, int64_t stages, const std::string& fn,
                                             const std::vector<Tensor>& out) const {
  const Placement p = placement_of(image, fn + ": x");
  const PyramidShape s = pyramid_shape(image.shape(), stages, fn);
  std::vector<Tensor> levels;
  if (out.empty()) {
    for (int t = 0; t < s.stages; t++) levels.emplace_back(s.level_shape(t), p.dtype, p.device);
  } else {
    if (int64_t(out.size()) != s.stages)
      fail(Code::Shape, fn + ": options.out: expected " + std::to_string(s.stages) + " tensors (one per stage), got " +
                            std::to_string(out.size()));
    std::vector<Tensor> taken = {image};
    std::vector<std::string> names = {"x"};
    for (int t = 0; t < s.stages; t++) {
      const std::string arg = fn + ": options.out[" + std::to_string(t) + "]";
      check_out(out[size_t(t)], s.level_shape(t), p, "x", taken, names, arg);
      taken.push_back(out[size_t(t)]);
      names.push_back("options.out[" + std::to_string(t) + "]");
    }
    levels = out;
  }
  if (!p.device.is_cpu()) {
    std::vector<void*> ptrs;
    for (const Tensor& l : levels) ptrs.push_back(l.raw());
    CudaBackend& cb = cuda_backend();
    const DfCudaPyramidShape cs = cuda_shape(s);
    cb.check(cb.api().pyramid_decompose(p.device.index, cuda_kind(kind()), cuda_dtype(p.dtype), image.raw(),
                                        ptrs.data(), &cs),
             (fn + ": CUDA pyramid decompose").c_str());
    return levels;
  }
  std::vector<float*> ptrs;
  for (const Tensor& l : levels) ptrs.push_back(l.data<float>());
  Tensor workspace = make_workspace(s);
  decompose(image.data<float>(), ptrs.data(), workspace.data<float>(), s);
  return levels;
}

Tensor Decomposition::recompose(const std::vector<Tensor>& levels, const std::string& fn, const Tensor& out) const {
  return preview(levels, int64_t(levels.size()), fn, out);
}

Tensor Decomposition::preview(const std::vector<Tensor>& levels, int64_t up_to, const std::string& fn,
                              const Tensor& out) const {
  std::vector<const void*> ptrs;
  Placement p;
  const PyramidShape s = checked_levels(levels, fn, &p, ptrs);
  if (up_to < 1 || up_to > s.stages)
    fail(Code::ArgValue, fn + ": upTo: expected an integer from 1 to " + std::to_string(s.stages) +
                             " (the number of levels), got " + std::to_string(up_to));
  Tensor image = out;
  if (out.defined()) {
    std::vector<std::string> names;
    for (size_t i = 0; i < levels.size(); i++) names.push_back("levels[" + std::to_string(i) + "]");
    check_out(out, s.image_shape(), p, "levels[0]", levels, names, fn + ": options.out");
  } else {
    image = Tensor(s.image_shape(), p.dtype, p.device);
  }
  if (!p.device.is_cpu()) {
    CudaBackend& cb = cuda_backend();
    const DfCudaPyramidShape cs = cuda_shape(s);
    cb.check(cb.api().pyramid_recompose(p.device.index, cuda_kind(kind()), cuda_dtype(p.dtype), ptrs.data(),
                                        int(up_to), image.raw(), &cs),
             (fn + ": CUDA pyramid recompose").c_str());
    return image;
  }
  std::vector<const float*> fptrs;
  for (const void* q : ptrs) fptrs.push_back(static_cast<const float*>(q));
  Tensor workspace = make_workspace(s);
  preview(fptrs.data(), int(up_to), image.data<float>(), workspace.data<float>(), s);
  return image;
}

void set_pyramid_range_pixels(int64_t pixels) { g_range_pixels = pixels > 0 ? pixels : kDefaultRangePixels; }
int64_t pyramid_range_pixels() { return g_range_pixels.load(); }

void parallel_copy(void* dst, const void* src, size_t bytes) {
  constexpr int64_t kBlock = 1 << 16;  // copy in 64 KiB blocks, so the ranges split evenly
  const int64_t blocks = int64_t((bytes + kBlock - 1) / kBlock);
  parallel_for(blocks, 4, [&](int64_t begin, int64_t end) {
    size_t from = size_t(begin) * kBlock, to = std::min(bytes, size_t(end) * kBlock);
    std::memcpy(static_cast<char*>(dst) + from, static_cast<const char*>(src) + from, to - from);
  });
}

}  // namespace df

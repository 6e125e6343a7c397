// Multi-scale decompositions of images (docs/METHOD.md): an image x [B, C, H, W] becomes S stages,
// coarse to fine. Stage 0 (the paper's X_1) is x reduced S-1 times; stage s > 0 is the detail lost
// between the resolutions of stages s-1 and s; stage s has resolution H / 2^(S-1-s).
//
//   Laplacian: down = the mean of each 2x2 block, up = bilinear x2 with half-pixel centres and edge
//              clamping; exactly PyTorch's F.interpolate(mode='bilinear', align_corners=False).
//   Haar:      the orthonormal Haar wavelet. Stage 0 holds the low band (LL) of the coarsest level;
//              stage s > 0 holds that level's three detail bands synthesised back onto the stage's
//              own grid (the inverse transform of the detail bands alone: each 2x2 block minus its
//              mean, in the units of that level's LL). The map x -> stages preserves energy.
//   Consistent: the Laplacian's down with the mean-preserving up-sampler U B^-1 (B = D U, the blur
//              that bilinear up then 2x2 means apply): stage 0 is the Laplacian's, detail levels
//              have zero 2x2 means, and recompose removes the 2x2 means of whatever detail it is
//              given, so any levels recompose to an image that reduces exactly to its coarser stages
//              (pyramid.cpp says how; built from the Laplacian's passes and a tridiagonal solve).
//
// Every level pair is one fused pass: decompose reads the finer image once and writes the coarser
// image and the detail together (the upsampled image never exists in memory, only a few of its
// rows in cache); recompose reads the coarser image and the detail once and writes the finer image.
//
// The trainer and the sampler call the raw-pointer forms: buffers and workspace are theirs, and
// once each pool thread's scratch rows (10 x the widest coarse row) have grown, calls never allocate
// (but for the consistent kind's two coefficient tables of a level's height and width).
// Users go through the Tensor forms, which check everything and allocate, and run where their
// tensors live: f32 on the CPU; f32 or bf16 on a CUDA device, through the CUDA backend's kernels
// (cuda/pyramid.cu, one launch per level pair; a bf16 pyramid computes and keeps its intermediate
// images in f32, so each stage is the f32 result rounded once).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "../core/tensor.h"

namespace df {

enum class PyramidKind { Laplacian, Haar, Consistent };

constexpr int kMaxPyramidStages = 16;

// The geometry of an S-stage pyramid of a [batch, channels, height, width] image. Level (stage) s,
// 0-based coarse to fine, is [batch, channels, height >> (S-1-s), width >> (S-1-s)].
struct PyramidShape {
  int64_t batch = 1, channels = 1, height = 1, width = 1;
  int stages = 1;

  int64_t planes() const { return batch * channels; }
  int64_t level_height(int s) const { return height >> (stages - 1 - s); }
  int64_t level_width(int s) const { return width >> (stages - 1 - s); }
  int64_t level_numel(int s) const { return planes() * level_height(s) * level_width(s); }
  Shape level_shape(int s) const { return {batch, channels, level_height(s), level_width(s)}; }
  Shape image_shape() const { return {batch, channels, height, width}; }
  // Floats of scratch that decompose, recompose and preview need: the intermediate images of
  // stages 1 .. S-2 (about a third of the image).
  int64_t workspace_floats() const;
};

// Checks `stages` (1..kMaxPyramidStages) and an image shape (rank 4, H and W divisible by
// 2^(stages-1)); errors start with `fn`.
PyramidShape pyramid_shape(const Shape& image, int64_t stages, const std::string& fn);
// Checks that `levels` chain (same batch and channels, each level twice its predecessor's size)
// and returns their pyramid's geometry.
PyramidShape pyramid_shape_of_levels(const std::vector<Shape>& levels, const std::string& fn);

PyramidKind parse_pyramid_kind(const std::string& name, const char* arg);
const char* pyramid_kind_name(PyramidKind kind);

class Decomposition {
 public:
  virtual ~Decomposition() = default;
  virtual PyramidKind kind() const = 0;
  const char* name() const { return pyramid_kind_name(kind()); }

  // Raw forms, f32, contiguous, on this decomposition's device. `levels[s]` has s.level_numel(s)
  // floats, `workspace` s.workspace_floats() (may be null when that is 0). No argument is checked.
  // Levels, image and workspace must not overlap.
  virtual void decompose(const float* image, float* const* levels, float* workspace, const PyramidShape& s) const = 0;
  virtual void recompose(const float* const* levels, float* image, float* workspace, const PyramidShape& s) const = 0;
  // Recomposes stages 0 .. up_to-1 (1 <= up_to <= S) and brings the result to full size as if the
  // later stages were zero; levels[up_to..] are not read. up_to == S is recompose.
  virtual void preview(const float* const* levels, int up_to, float* image, float* workspace,
                       const PyramidShape& s) const = 0;

  // Tensor forms (CPU: f32; CUDA: f32 or bf16, every tensor on x's (levels[0]'s) device with its
  // dtype): check rank, dtype, device and shapes (errors name `fn` and the argument) and
  // allocate the workspace, and the outputs unless `out` gives them (then they are checked, must
  // not overlap the inputs or each other, are overwritten and returned).
  std::vector<Tensor> decompose(const Tensor& image, int64_t stages, const std::string& fn,
                                const std::vector<Tensor>& out = {}) const;
  Tensor recompose(const std::vector<Tensor>& levels, const std::string& fn, const Tensor& out = Tensor()) const;
  Tensor preview(const std::vector<Tensor>& levels, int64_t up_to, const std::string& fn,
                 const Tensor& out = Tensor()) const;
};

// The CPU implementation of each kind (stateless singletons) at the CPU level in use (cpu_level.h).
const Decomposition& cpu_decomposition(PyramidKind kind);

// The least work (fine pixels) that gets its own thread; 0 restores the default. Tests set 1 so
// that rows split into ranges of 2 inside every plane.
void set_pyramid_range_pixels(int64_t pixels);
int64_t pyramid_range_pixels();

// Multithreaded memcpy, the bandwidth yardstick of the pyramid benchmark.
void parallel_copy(void* dst, const void* src, size_t bytes);

}  // namespace df

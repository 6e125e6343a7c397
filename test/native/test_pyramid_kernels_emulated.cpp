// The CUDA pyramid kernels and their level loop (cuda/pyramid_kernels.cuh), their own source run on
// the CPU by the host emulation (cuda/host_emulation.h), against the CPU op (native/ops/pyramid.cpp):
// Laplacian, Haar and consistent, decompose, recompose and previews, 1 to 5 stages, shapes whose coarse levels
// have odd sizes (down to 1 pixel), widths giving each vector width (4, 2, 1 coarse columns per
// group), rows that span both column groups of a lane and several warps, several planes per warp,
// and strips of 1 to 64 rows (the halo rows), also with a minimum of 4 rows.
// Outputs and the workspace are filled with NaN before each run, so an element never written, or a
// workspace element read before it is written, fails.
//
// Tolerances: pyramid_check.h. test_cuda_pyramid checks the same on a GPU.
#include "cuda_emulation.h"

#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "core/dtype.h"
#include "core/tensor.h"
#include "ops/pyramid.h"
#include "pyramid_check.h"
#include "test_util.h"

using namespace dfcuda;

namespace {



// A buffer of n elements of dtype, NaN-filled, with 16-byte aligned storage.
struct Buf {
  std::vector<uint32_t> words;
  int dtype;
  size_t n;
  Buf(size_t n_, int dtype_) : words((n_ * (dtype_ == DF_CUDA_BF16 ? 2 : 4) + 15) / 16 * 4 + 4), dtype(dtype_), n(n_) {
    poison();
  }
  void* p() { return words.data(); }
  void poison() {
    for (auto& w : words) w = dtype == DF_CUDA_BF16 ? 0x7fc07fc0u : 0x7fc00000u;
  }
  float get(size_t i) const {
    if (dtype == DF_CUDA_BF16) return df::bf16_to_f32(reinterpret_cast<const uint16_t*>(words.data())[i]);
    return reinterpret_cast<const float*>(words.data())[i];
  }
  void set(size_t i, float x) {
    if (dtype == DF_CUDA_BF16) reinterpret_cast<uint16_t*>(words.data())[i] = df::f32_to_bf16(x);
    else reinterpret_cast<float*>(words.data())[i] = x;
  }
  std::vector<float> values() const {
    std::vector<float> v(n);
    for (size_t i = 0; i < n; i++) v[i] = get(i);
    return v;
  }
};

// Random N(0, 1) values, stored in dtype (so bf16 values are exactly representable).
Buf random_buf(size_t n, int dtype, std::mt19937& rng) {
  std::normal_distribution<float> dist(0.f, 1.f);
  Buf b(n, dtype);
  for (size_t i = 0; i < n; i++) b.set(i, dist(rng));
  return b;
}

df::Tensor tensor_of(const std::vector<float>& v, const df::Shape& shape) {
  df::Tensor t(shape, df::DType::F32);
  std::memcpy(t.data<float>(), v.data(), v.size() * 4);
  return t;
}

const char* dtype_name(int dtype) { return dtype == DF_CUDA_BF16 ? "bf16" : "f32"; }

void run_case(const DfCudaPyramidShape& s, int kind, int dtype, const StripSplit& split, uint32_t seed) {
  const int S = s.stages;
  const df::PyramidKind pk = kind == DF_CUDA_HAAR         ? df::PyramidKind::Haar
                            : kind == DF_CUDA_CONSISTENT ? df::PyramidKind::Consistent
                                                         : df::PyramidKind::Laplacian;
  const df::Decomposition& cpu = df::cpu_decomposition(pk);
  const df::Shape image_shape = {s.batch, s.channels, s.height, s.width};
  char label[160];
  std::snprintf(label, sizeof label, "%s %s [%lld,%lld,%lld,%lld] S%d warps>=%lld rows>=%lld", df::pyramid_kind_name(pk),
                dtype_name(dtype), (long long)s.batch, (long long)s.channels, (long long)s.height,
                (long long)s.width, S, (long long)split.target_warps,
                (long long)split.laplacian_min_rows);
  std::mt19937 rng(seed);
  const size_t n_image = size_t(pyramid_level_numel(s, S - 1));
  Buf image = random_buf(n_image, dtype, rng);
  const std::vector<float> x = image.values();

  // Decompose.
  std::vector<Buf> levels;
  for (int t = 0; t < S; t++) levels.emplace_back(size_t(pyramid_level_numel(s, t)), dtype);
  std::vector<void*> level_ptrs;
  for (auto& l : levels) level_ptrs.push_back(l.p());
  Buf workspace(pyramid_workspace_bytes(s, kind) / 4 + 1, DF_CUDA_F32);
  cudaemu::EmuPyramidLaunch launch;
  int st = run_decompose(launch, kind, dtype, image.p(), level_ptrs.data(), workspace.p(), s, split);
  CHECK(st == DF_CUDA_OK, "%s: run_decompose returned %d", label, st);
  // the consistent kind: per pair the Laplacian pass, two unblur launches and a recompose pass
  const int per_pair = kind == DF_CUDA_CONSISTENT ? 4 : 1;
  CHECK(launch.launches == per_pair * (S - 1), "%s: %d launches for %d stages", label, launch.launches, S);
  const std::vector<df::Tensor> ref = cpu.decompose(tensor_of(x, image_shape), S, "test");
  double dec_err = 0;
  for (int t = 0; t < S; t++) {
    char what[200];
    std::snprintf(what, sizeof what, "%s: decompose stage %d", label, t);
    dec_err = std::max(dec_err, pyrcheck::expect_close(what, levels[size_t(t)].values(), ref[size_t(t)].data<float>(),
                                                       dtype == DF_CUDA_BF16));
  }

  // Round trip: recompose this pyramid.
  Buf back(n_image, dtype);
  workspace.poison();
  std::vector<const void*> const_ptrs(level_ptrs.begin(), level_ptrs.end());
  st = run_recompose(launch, kind, dtype, const_ptrs.data(), S, back.p(), workspace.p(), s, split);
  CHECK(st == DF_CUDA_OK, "%s: run_recompose returned %d", label, st);
  {
    std::vector<std::vector<float>> stages;
    for (auto& l : levels) stages.push_back(l.values());
    pyrcheck::expect_round_trip(label, back.values(), x, stages, dtype == DF_CUDA_BF16);
  }

  // Recompose and every preview of fresh random stages (not a decomposition of anything).
  std::vector<Buf> fresh;
  std::vector<const void*> fresh_ptrs;
  std::vector<df::Tensor> fresh_cpu;
  for (int t = 0; t < S; t++) {
    fresh.push_back(random_buf(size_t(pyramid_level_numel(s, t)), dtype, rng));
    const int shift = S - 1 - t;
    fresh_cpu.push_back(tensor_of(fresh.back().values(), {s.batch, s.channels, s.height >> shift, s.width >> shift}));
  }
  for (auto& f : fresh) fresh_ptrs.push_back(f.p());
  double rec_err = 0;
  for (int up_to = 1; up_to <= S; up_to++) {
    Buf out(n_image, dtype);
    workspace.poison();
    std::vector<const void*> ptrs = fresh_ptrs;
    for (int t = up_to; t < S; t++) ptrs[size_t(t)] = nullptr;  // must not be read
    st = run_recompose(launch, kind, dtype, ptrs.data(), up_to, out.p(), workspace.p(), s, split);
    CHECK(st == DF_CUDA_OK, "%s: run_recompose(up_to %d) returned %d", label, up_to, st);
    const df::Tensor want = cpu.preview(fresh_cpu, up_to, "test");
    char what[200];
    std::snprintf(what, sizeof what, "%s: recompose up_to %d", label, up_to);
    rec_err = std::max(rec_err, pyrcheck::expect_close(what, out.values(), want.data<float>(), dtype == DF_CUDA_BF16));
  }
  std::printf("  %-62s decompose %.1e  recompose %.1e\n", label, dec_err, rec_err);
}

// Bad arguments come back as DF_CUDA_INVALID with a message naming the argument.
void check_errors() {
  auto expect_invalid = [](const DfCudaPyramidShape* s, int kind, int dtype, const char* needle) {
    std::string msg;
    const int st = check_pyramid_args("test", kind, dtype, s, [&](const std::string& m) {
      msg = m;
      return DF_CUDA_INVALID;
    });
    CHECK(st == DF_CUDA_INVALID && msg.find(needle) != std::string::npos, "expected an error naming '%s', got %d '%s'",
          needle, st, msg.c_str());
  };
  const DfCudaPyramidShape ok{1, 1, 8, 8, 3}, odd{1, 1, 6, 8, 3}, zero_stages{1, 1, 8, 8, 0}, many{1, 1, 8, 8, 17},
      negative{-1, 1, 8, 8, 1}, huge{1 << 20, 1 << 20, 1 << 20, 1 << 20, 1};
  expect_invalid(nullptr, DF_CUDA_LAPLACIAN, DF_CUDA_F32, "shape");
  expect_invalid(&ok, 3, DF_CUDA_F32, "kind");
  expect_invalid(&ok, DF_CUDA_HAAR, DF_CUDA_F16, "dtype");
  expect_invalid(&odd, DF_CUDA_HAAR, DF_CUDA_F32, "divisible by 4");
  expect_invalid(&zero_stages, DF_CUDA_HAAR, DF_CUDA_F32, "stages");
  expect_invalid(&many, DF_CUDA_HAAR, DF_CUDA_F32, "stages");
  expect_invalid(&negative, DF_CUDA_HAAR, DF_CUDA_F32, "non-negative");
  expect_invalid(&huge, DF_CUDA_HAAR, DF_CUDA_F32, "too large");
  const int st = check_pyramid_args("test", DF_CUDA_HAAR, DF_CUDA_BF16, &ok, [](const std::string&) { return 9; });
  CHECK(st == DF_CUDA_OK, "a good call was refused (%d)", st);
}

}  // namespace

int main() {
  df::set_pyramid_range_pixels(1);  // the CPU reference splits rows too: its own seams are covered
  const std::vector<DfCudaPyramidShape> shapes = {
      {1, 1, 2, 2, 2},      // a 1-pixel coarse level
      {2, 3, 6, 10, 2},     // coarse 3 x 5: one column per lane, planes sharing a warp
      {1, 2, 12, 20, 3},    // 3 x 5, 6 x 10, 12 x 20
      {2, 1, 16, 24, 4},    // 2 x 3 up to 16 x 24
      {1, 1, 32, 48, 5},    // five stages, coarsest 2 x 3
      {1, 2, 8, 264, 2},    // coarse width 132: 33 (bf16) or 66 (f32) groups, over both groups and two warps
      {1, 3, 6, 140, 2},    // coarse width 70: 2 columns per group
      {1, 1, 4, 520, 2},    // coarse width 260: a row over three warps (f32)
      {1, 1, 136, 8, 2},    // 68 coarse rows: strips of 64 and 4
      {3, 1, 1, 1, 1},      // one stage: a copy
  };
  uint32_t seed = 1;
  for (int dtype : {DF_CUDA_F32, DF_CUDA_BF16})
    for (int kind : {DF_CUDA_LAPLACIAN, DF_CUDA_HAAR, DF_CUDA_CONSISTENT})
      for (const auto& s : shapes)
        for (const StripSplit& split : {StripSplit{1, 1}, StripSplit{int64_t(1) << 40, 1}, StripSplit{int64_t(1) << 40, 4}})
          run_case(s, kind, dtype, split, seed++);
  check_errors();
  {  // an empty image (only the raw ABI can express one): nothing runs, nothing is touched
    cudaemu::EmuPyramidLaunch launch;
    const DfCudaPyramidShape empty{1, 1, 0, 8, 2};
    void* none[2] = {nullptr, nullptr};
    CHECK(run_decompose(launch, DF_CUDA_LAPLACIAN, DF_CUDA_F32, nullptr, none, nullptr, empty, StripSplit{1, 1}) == DF_CUDA_OK &&
              launch.launches == 0,
          "empty decompose");
  }
  return test_summary("test_pyramid_kernels_emulated");
}

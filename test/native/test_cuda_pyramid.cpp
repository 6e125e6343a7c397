// The CUDA pyramid (cuda/pyramid.cu) against the CPU op (native/ops/pyramid.cpp) on fresh random
// inputs: Laplacian, Haar and consistent, f32 and bf16, 1 to 5 stages, shapes whose widths are not multiples of
// the vector width (4 coarse columns per lane) or of a warp's columns, odd coarse sizes. Per case:
// decompose vs the CPU op, the round trip (recompose of the device's own stages), and recompose and
// every preview of fresh random stages vs the CPU op. Then the Tensor-level ops on CUDA tensors
// (the core's dispatch) against the raw calls, and bad arguments. Tolerances: pyramid_check.h.
//
// Outputs are filled with NaN before every call, so an element never written fails. Every backend
// call's status is checked (the backend checks cudaGetLastError after each launch) and the stream
// is synchronised after each op, surfacing kernel faults there. DECOFLOW_TEST_SMALL=1 runs small
// shapes only (for compute-sanitizer).
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "core/tensor.h"
#include "cuda_test_util.h"
#include "ops/pyramid.h"
#include "pyramid_check.h"

using cudatest::DeviceBuffer;
using cudatest::g_api;

namespace {

struct Case {
  int64_t batch, channels, height, width;
  int stages;
};

size_t elem_size(int dtype) { return dtype == DF_CUDA_BF16 ? 2 : 4; }

// Host values in a dtype's storage, and the same values as f32.
struct HostData {
  std::vector<uint16_t> bits;  // bf16
  std::vector<float> values;   // f32, or the bf16 values widened
  const void* storage() const { return bits.empty() ? static_cast<const void*>(values.data()) : bits.data(); }
};

HostData random_data(size_t n, int dtype, std::mt19937& rng) {
  std::normal_distribution<float> dist(0.f, 1.f);
  HostData h;
  h.values.resize(n);
  if (dtype == DF_CUDA_BF16) h.bits.resize(n);
  for (size_t i = 0; i < n; i++) {
    const float x = dist(rng);
    if (dtype == DF_CUDA_BF16) {
      h.bits[i] = df::f32_to_bf16(x);
      h.values[i] = df::bf16_to_f32(h.bits[i]);
    } else {
      h.values[i] = x;
    }
  }
  return h;
}

// A device buffer of n elements filled with NaN.
std::unique_ptr<DeviceBuffer> poisoned(size_t n, int dtype) {
  auto b = std::make_unique<DeviceBuffer>(std::max<size_t>(n * elem_size(dtype), 16));
  if (dtype == DF_CUDA_BF16) b->upload(std::vector<uint16_t>(n, 0x7fc0));
  else b->upload(std::vector<float>(n, NAN));
  return b;
}

std::unique_ptr<DeviceBuffer> uploaded(const HostData& h, int dtype) {
  auto b = std::make_unique<DeviceBuffer>(std::max<size_t>(h.values.size() * elem_size(dtype), 16));
  if (dtype == DF_CUDA_BF16) b->upload(h.bits);
  else b->upload(h.values);
  return b;
}

std::vector<float> download(const DeviceBuffer& b, size_t n, int dtype) {
  if (dtype != DF_CUDA_BF16) return b.download<float>(n);
  const std::vector<uint16_t> bits = b.download<uint16_t>(n);
  std::vector<float> v(n);
  for (size_t i = 0; i < n; i++) v[i] = df::bf16_to_f32(bits[i]);
  return v;
}

df::Tensor cpu_tensor(const std::vector<float>& v, const df::Shape& shape) {
  df::Tensor t(shape, df::DType::F32);
  std::memcpy(t.data<float>(), v.data(), v.size() * 4);
  return t;
}

void run_case(const Case& c, int kind, int dtype, uint32_t seed) {
  const df::PyramidKind pk = kind == DF_CUDA_HAAR         ? df::PyramidKind::Haar
                            : kind == DF_CUDA_CONSISTENT ? df::PyramidKind::Consistent
                                                         : df::PyramidKind::Laplacian;
  const df::Decomposition& cpu = df::cpu_decomposition(pk);
  const df::PyramidShape ps = df::pyramid_shape({c.batch, c.channels, c.height, c.width}, c.stages, "test");
  const DfCudaPyramidShape shape{c.batch, c.channels, c.height, c.width, c.stages};
  const int S = c.stages;
  const bool bf16 = dtype == DF_CUDA_BF16;
  char label[160];
  std::snprintf(label, sizeof label, "%s %s [%lld,%lld,%lld,%lld] S%d", df::pyramid_kind_name(pk),
                bf16 ? "bf16" : "f32", (long long)c.batch, (long long)c.channels, (long long)c.height,
                (long long)c.width, S);
  std::mt19937 rng(seed);
  const size_t n_image = size_t(ps.level_numel(S - 1));
  const HostData x = random_data(n_image, dtype, rng);
  auto x_dev = uploaded(x, dtype);

  // Decompose.
  std::vector<std::unique_ptr<DeviceBuffer>> levels;
  std::vector<void*> level_ptrs;
  for (int t = 0; t < S; t++) {
    levels.push_back(poisoned(size_t(ps.level_numel(t)), dtype));
    level_ptrs.push_back(levels.back()->get());
  }
  if (!CUDA_OK(g_api->pyramid_decompose(0, kind, dtype, x_dev->get(), level_ptrs.data(), &shape))) return;
  if (!CUDA_OK(g_api->synchronize(0))) return;
  const std::vector<df::Tensor> ref = cpu.decompose(cpu_tensor(x.values, ps.image_shape()), S, "test");
  std::vector<std::vector<float>> stages;
  double dec_err = 0;
  for (int t = 0; t < S; t++) {
    stages.push_back(download(*levels[size_t(t)], size_t(ps.level_numel(t)), dtype));
    char what[200];
    std::snprintf(what, sizeof what, "%s: decompose stage %d", label, t);
    dec_err = std::max(dec_err, pyrcheck::expect_close(what, stages.back(), ref[size_t(t)].data<float>(), bf16));
  }

  // Round trip, from the device's own stages.
  {
    auto back = poisoned(n_image, dtype);
    std::vector<const void*> ptrs(level_ptrs.begin(), level_ptrs.end());
    if (!CUDA_OK(g_api->pyramid_recompose(0, kind, dtype, ptrs.data(), S, back->get(), &shape))) return;
    if (!CUDA_OK(g_api->synchronize(0))) return;
    pyrcheck::expect_round_trip(label, download(*back, n_image, dtype), x.values, stages, bf16);
  }

  // Recompose and every preview of fresh random stages.
  std::vector<HostData> fresh;
  std::vector<std::unique_ptr<DeviceBuffer>> fresh_dev;
  std::vector<df::Tensor> fresh_cpu;
  for (int t = 0; t < S; t++) {
    fresh.push_back(random_data(size_t(ps.level_numel(t)), dtype, rng));
    fresh_dev.push_back(uploaded(fresh.back(), dtype));
    fresh_cpu.push_back(cpu_tensor(fresh.back().values, ps.level_shape(t)));
  }
  double rec_err = 0;
  for (int up_to = 1; up_to <= S; up_to++) {
    auto out = poisoned(n_image, dtype);
    std::vector<const void*> ptrs;
    for (int t = 0; t < S; t++) ptrs.push_back(t < up_to ? fresh_dev[size_t(t)]->get() : nullptr);  // never read
    if (!CUDA_OK(g_api->pyramid_recompose(0, kind, dtype, ptrs.data(), up_to, out->get(), &shape))) return;
    if (!CUDA_OK(g_api->synchronize(0))) return;
    const df::Tensor want = cpu.preview(fresh_cpu, up_to, "test");
    char what[200];
    std::snprintf(what, sizeof what, "%s: recompose up_to %d", label, up_to);
    rec_err = std::max(rec_err, pyrcheck::expect_close(what, download(*out, n_image, dtype), want.data<float>(), bf16));
  }
  std::printf("  %-44s decompose %.1e  recompose %.1e\n", label, dec_err, rec_err);
}

// The Tensor forms on CUDA tensors run the same kernels as the raw calls (bit for bit), allocate on
// the device, and refuse mixed devices and unsupported dtypes.
void check_tensor_dispatch() {
  const df::Device cuda{df::DeviceKind::CUDA, 0};
  std::mt19937 rng(77);
  const df::Shape shape = {2, 3, 24, 40};
  const HostData x = random_data(size_t(2 * 3 * 24 * 40), DF_CUDA_F32, rng);
  const df::Tensor x_cpu = cpu_tensor(x.values, shape);
  for (df::DType dt : {df::DType::F32, df::DType::BF16}) {
    const int dtype = dt == df::DType::BF16 ? DF_CUDA_BF16 : DF_CUDA_F32;
    const df::Tensor x_dev = (dt == df::DType::F32 ? x_cpu : x_cpu.cast(dt)).to(cuda);
    for (auto pk : {df::PyramidKind::Laplacian, df::PyramidKind::Haar, df::PyramidKind::Consistent}) {
      const df::Decomposition& d = df::cpu_decomposition(pk);
      const std::vector<df::Tensor> levels = d.decompose(x_dev, 3, "test");
      CHECK(levels.size() == 3 && levels[0].device() == cuda && levels[0].dtype() == dt, "decompose: outputs on %s",
            levels.empty() ? "?" : levels[0].device().name().c_str());
      const df::Tensor back = d.recompose(levels, "test");
      const df::Tensor preview = d.preview(levels, 2, "test");
      CHECK(back.device() == cuda && back.dtype() == dt && back.shape() == shape, "recompose: output placement");

      // The same through the raw ABI.
      const DfCudaPyramidShape s{2, 3, 24, 40, 3};
      const int kind = pk == df::PyramidKind::Haar ? DF_CUDA_HAAR : pk == df::PyramidKind::Consistent ? DF_CUDA_CONSISTENT : DF_CUDA_LAPLACIAN;
      const size_t bytes = back.nbytes();
      std::vector<std::unique_ptr<DeviceBuffer>> raw;
      std::vector<void*> ptrs;
      for (const auto& l : levels) {
        raw.push_back(std::make_unique<DeviceBuffer>(l.nbytes()));
        ptrs.push_back(raw.back()->get());
      }
      DeviceBuffer raw_back(bytes), raw_preview(bytes);
      CUDA_OK(g_api->pyramid_decompose(0, kind, dtype, x_dev.raw(), ptrs.data(), &s));
      std::vector<const void*> cptrs(ptrs.begin(), ptrs.end());
      CUDA_OK(g_api->pyramid_recompose(0, kind, dtype, cptrs.data(), 3, raw_back.get(), &s));
      CUDA_OK(g_api->pyramid_recompose(0, kind, dtype, cptrs.data(), 2, raw_preview.get(), &s));
      CUDA_OK(g_api->synchronize(0));
      auto same = [&](const df::Tensor& t, const DeviceBuffer& b, const char* what) {
        const df::Tensor h = t.to(df::Device{});
        const std::vector<uint8_t> got = b.download<uint8_t>(t.nbytes());
        CHECK(std::memcmp(h.raw(), got.data(), t.nbytes()) == 0, "%s %s %s: Tensor form differs from the raw call",
              df::pyramid_kind_name(pk), df::dtype_name(dt), what);
      };
      for (size_t t = 0; t < levels.size(); t++) same(levels[t], *raw[t], "decompose");
      same(back, raw_back, "recompose");
      same(preview, raw_preview, "preview");
    }
  }
  auto expect_error = [](df::Code code, const char* needle, const char* what, auto&& f) {
    try {
      f();
      CHECK(false, "%s: no error", what);
    } catch (const df::Error& e) {
      CHECK(e.code() == code && std::string(e.what()).find(needle) != std::string::npos, "%s: got '%s'", what,
            e.what());
    }
  };
  const df::Decomposition& d = df::cpu_decomposition(df::PyramidKind::Laplacian);
  const df::Tensor x_dev = x_cpu.to(cuda);
  const std::vector<df::Tensor> levels = d.decompose(x_dev, 2, "test");
  expect_error(df::Code::Device, "levels[1]", "mixed devices", [&] { d.recompose({levels[0], levels[1].to(df::Device{})}, "test"); });
  expect_error(df::Code::DType, "f32 or bf16", "f16 on CUDA", [&] { d.decompose(x_cpu.cast(df::DType::F16).to(cuda), 2, "test"); });
  expect_error(df::Code::Device, "options.out[0]", "output on the CPU",
               [&] { d.decompose(x_dev, 2, "test", {levels[0].to(df::Device{}), levels[1]}); });
  expect_error(df::Code::DType, "options.out", "bf16 output for f32 levels",
               [&] { d.recompose(levels, "test", x_cpu.cast(df::DType::BF16).to(cuda)); });
}

// Bad arguments come back as DF_CUDA_INVALID with a message naming the argument, never a crash.
void check_errors() {
  DeviceBuffer buf(1 << 16);
  char* p = buf.as<char>();
  auto expect_invalid = [&](int status, const char* needle, const char* what) {
    const std::string msg = g_api->last_error();
    CHECK(status == DF_CUDA_INVALID, "%s: expected DF_CUDA_INVALID, got %d (%s)", what, status, msg.c_str());
    CHECK(msg.find(needle) != std::string::npos, "%s: message '%s' does not mention '%s'", what, msg.c_str(), needle);
  };
  const DfCudaPyramidShape s{1, 1, 8, 8, 2}, odd{1, 1, 6, 8, 3};
  void* levels[2] = {p, p + 4096};
  void* misaligned[2] = {p, p + 4100};
  const void* clevels[2] = {p, p + 4096};
  expect_invalid(g_api->pyramid_decompose(0, 3, DF_CUDA_F32, p + 8192, levels, &s), "kind", "kind 3");
  expect_invalid(g_api->pyramid_decompose(0, DF_CUDA_HAAR, DF_CUDA_F16, p + 8192, levels, &s), "dtype", "f16");
  expect_invalid(g_api->pyramid_decompose(0, DF_CUDA_HAAR, DF_CUDA_F32, p + 8192, levels, &odd), "divisible", "6 x 8 in 3 stages");
  expect_invalid(g_api->pyramid_decompose(0, DF_CUDA_HAAR, DF_CUDA_F32, p + 8192, levels, nullptr), "shape", "null shape");
  expect_invalid(g_api->pyramid_decompose(0, DF_CUDA_HAAR, DF_CUDA_F32, p + 8194, levels, &s), "image", "misaligned image");
  expect_invalid(g_api->pyramid_decompose(0, DF_CUDA_HAAR, DF_CUDA_F32, p + 8192, misaligned, &s), "levels[1]",
                 "misaligned level");
  expect_invalid(g_api->pyramid_decompose(0, DF_CUDA_HAAR, DF_CUDA_F32, p + 8192, nullptr, &s), "levels", "null levels");
  expect_invalid(g_api->pyramid_recompose(0, DF_CUDA_HAAR, DF_CUDA_F32, clevels, 0, p + 8192, &s), "up_to", "up_to 0");
  expect_invalid(g_api->pyramid_recompose(0, DF_CUDA_HAAR, DF_CUDA_F32, clevels, 3, p + 8192, &s), "up_to", "up_to 3");
  expect_invalid(g_api->pyramid_recompose(-1, DF_CUDA_HAAR, DF_CUDA_F32, clevels, 2, p + 8192, &s), "device", "device -1");
  CUDA_OK(g_api->synchronize(0));  // nothing was launched; the stream is healthy
}

}  // namespace

int main() {
  int exit_code = 0;
  g_api = cudatest::api_or_skip("test_cuda_pyramid", &exit_code);
  if (!g_api) return exit_code;

  const std::vector<Case> small = {{2, 3, 16, 16, 3}, {1, 1, 54, 130, 2}, {1, 2, 24, 40, 4}, {2, 1, 8, 8, 1},
                                   {1, 1, 2, 2, 2}};
  const std::vector<Case> full = {
      {2, 1, 8, 8, 1},        // one stage: a copy
      {1, 1, 2, 2, 2},        // a 1-pixel coarse level
      {2, 3, 64, 64, 3},      // 16 x 16 .. 64 x 64
      {1, 3, 96, 160, 4},     // coarse 12 x 20
      {3, 2, 36, 100, 2},     // coarse width 50: 2 columns per lane
      {1, 1, 54, 130, 2},     // coarse 27 x 65: 1 column per lane
      {1, 2, 80, 48, 5},      // five stages, coarsest 5 x 3
      {1, 3, 520, 776, 4},    // coarse 65 x 97; 388-wide rows (4 columns per lane, not a multiple of 128)
      {16, 3, 128, 128, 3},   // many planes
      {2, 4, 1024, 1000, 4},  // large, coarse width 125
  };
  const std::vector<Case>& cases = cudatest::small_mode() ? small : full;
  uint32_t seed = 1;
  for (int dtype : {DF_CUDA_F32, DF_CUDA_BF16})
    for (int kind : {DF_CUDA_LAPLACIAN, DF_CUDA_HAAR, DF_CUDA_CONSISTENT})
      for (const Case& c : cases) run_case(c, kind, dtype, seed++);
  check_tensor_dispatch();
  check_errors();
  return test_summary("test_cuda_pyramid");
}

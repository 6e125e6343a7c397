// CPU levels: the CPU kernels (every .cpp directly in native/ops: the GEMM micro-kernel, the
// attention tiles, the pyramid passes, the elementwise, activation, norm, loss and optimiser
// kernels, and the CpuOps that calls them) are compiled once per x86-64 level, each copy in its own
// namespace df::cpu_<level> (the build defines DF_CPU_NS), and the best level that this CPU supports
// is chosen once, at first use, by CPUID. Everything else (native/ops/shared, the model, the
// trainer, the addon) is compiled once and reaches the kernels only through the chosen level:
// cpu_ops(), cpu_decomposition(), sgemm() and sgemm_builtin().
//
//   baseline  x86-64 (SSE2): any 64-bit x86 CPU
//   avx2      x86-64-v3: AVX2, FMA, BMI1/2, F16C, MOVBE (Haswell, Zen 1 and later)
//   avx512    x86-64-v4: AVX-512 F/BW/CD/DQ/VL (Skylake-SP, Ice Lake, Zen 4 and later)
//
// DECOFLOW_CPU_LEVEL=baseline|avx2|avx512 (read once, at first use) asks for a lower level, for
// tests and comparisons; a level above what the CPU supports, or one not compiled, is refused with
// Code::Backend. The levels compute the same things within the tolerances of the op tests; only a
// level's own bits are reproducible (FMA contraction and vector widths differ between levels).
//
// The kernel headers declare their functions inside `#ifdef DF_CPU_NS ... inline namespace
// DF_CPU_NS`, so only the per-level sources see them: code compiled once cannot call a kernel of
// some level by accident.
#pragma once
#include <string>
#include <vector>

#include "ops.h"
#include "pyramid.h"

namespace df {

enum class CpuLevel { Baseline = 0, Avx2 = 1, Avx512 = 2 };
constexpr int kCpuLevels = 3;

const char* cpu_level_name(CpuLevel level);  // "baseline", "avx2", "avx512"

// What one level provides: its op set, its pyramids and its built-in GEMM.
struct CpuKernels {
  CpuLevel level;
  Ops* ops;
  const Decomposition& (*pyramid)(PyramidKind kind);
  void (*sgemm_blocked)(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                        int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc, bool parallel);
};

// The level in use (the best supported one, or DECOFLOW_CPU_LEVEL's); chosen at the first call.
// Throws Code::Backend when DECOFLOW_CPU_LEVEL names a level that cannot run here.
const CpuKernels& cpu_kernels();
CpuLevel cpu_level();

// The levels compiled into this build, lowest first, and whether this CPU (and its OS, which must
// save the AVX and AVX-512 registers) can run a level.
std::vector<CpuLevel> compiled_cpu_levels();
bool cpu_supports(CpuLevel level);
// One level's kernels, for tests that compare the levels side by side (Code::Backend when the level
// is not compiled or this CPU cannot run it).
const CpuKernels& cpu_kernels_at(CpuLevel level);

// "avx512 (best of baseline, avx2, avx512 on this CPU)" or "avx2 (forced by DECOFLOW_CPU_LEVEL; ...)".
std::string cpu_level_description();

#ifdef DF_CPU_NS
inline namespace DF_CPU_NS {
// This level's table (defined by its cpu_ops.cpp).
const CpuKernels& level_kernels();
// This level's pyramid of each kind (stateless singletons; cpu_decomposition() picks the level).
const Decomposition& cpu_pyramid(PyramidKind kind);
}  // namespace DF_CPU_NS
#endif  // DF_CPU_NS

}  // namespace df

// The choice of CPU level (cpu_level.h): CPUID and XGETBV say what this CPU and its OS can run,
// DECOFLOW_CPU_LEVEL may ask for less, and the chosen level's kernels serve cpu_ops(),
// cpu_decomposition(), sgemm_builtin() (and through them the tensor forms, the model, the trainer
// and the metrics).
#include "../cpu_level.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <cpuid.h>
#define DF_X86_64 1
#endif

#include <cstdlib>

#include "../../core/error.h"
#include "../gemm.h"

namespace df {

// Every level's table, from its own copy of the kernels (the build compiles native/ops/*.cpp once
// per level with DF_CPU_NS set to these names; on other architectures only the baseline).
namespace cpu_baseline {
const CpuKernels& level_kernels();
}
#ifdef DF_X86_64
namespace cpu_avx2 {
const CpuKernels& level_kernels();
}
namespace cpu_avx512 {
const CpuKernels& level_kernels();
}
#endif

namespace {

const CpuKernels* compiled(CpuLevel level) {
  switch (level) {
    case CpuLevel::Baseline: return &cpu_baseline::level_kernels();
#ifdef DF_X86_64
    case CpuLevel::Avx2: return &cpu_avx2::level_kernels();
    case CpuLevel::Avx512: return &cpu_avx512::level_kernels();
#endif
    default: return nullptr;
  }
}

#ifdef DF_X86_64
struct CpuFeatures {
  bool v3 = false, v4 = false;
};

// x86-64-v3 and -v4 as the psABI defines them, and the OS saving the registers they use.
CpuFeatures detect() {
  CpuFeatures f;
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  const bool v2 = (c & bit_SSE3) && (c & bit_SSSE3) && (c & bit_SSE4_1) && (c & bit_SSE4_2) && (c & bit_POPCNT) &&
                  (c & bit_CMPXCHG16B);
  const bool v3_leaf1 = (c & bit_FMA) && (c & bit_MOVBE) && (c & bit_F16C) && (c & bit_AVX) && (c & bit_OSXSAVE);
  if (!v2 || !v3_leaf1) return f;
  unsigned xcr0_lo, xcr0_hi;
  __asm__ volatile("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
  const bool os_avx = (xcr0_lo & 0x6) == 0x6;        // XMM and YMM state
  const bool os_avx512 = (xcr0_lo & 0xE6) == 0xE6;   // and opmask, ZMM_Hi256, Hi16_ZMM
  unsigned a7, b7, c7, d7;
  if (!__get_cpuid_count(7, 0, &a7, &b7, &c7, &d7)) return f;
  unsigned ae, be, ce, de;
  const bool lzcnt = __get_cpuid(0x80000001, &ae, &be, &ce, &de) && (ce & bit_LZCNT) && (ce & bit_LAHF_LM);
  f.v3 = os_avx && lzcnt && (b7 & bit_AVX2) && (b7 & bit_BMI) && (b7 & bit_BMI2);
  f.v4 = f.v3 && os_avx512 && (b7 & bit_AVX512F) && (b7 & bit_AVX512BW) && (b7 & bit_AVX512CD) &&
         (b7 & bit_AVX512DQ) && (b7 & bit_AVX512VL);
  return f;
}
#endif

bool parse_level(const std::string& name, CpuLevel* out) {
  for (int i = 0; i < kCpuLevels; i++)
    if (name == cpu_level_name(CpuLevel(i))) {
      *out = CpuLevel(i);
      return true;
    }
  return false;
}

struct Choice {
  const CpuKernels* kernels = nullptr;
  std::string description, error;
};

std::string level_list(const std::vector<CpuLevel>& levels) {
  std::string s;
  for (CpuLevel l : levels) s += std::string(s.empty() ? "" : ", ") + cpu_level_name(l);
  return s;
}

const Choice& choice() {
  static const Choice c = [] {
    Choice r;
    CpuLevel best = CpuLevel::Baseline;
    for (CpuLevel l : compiled_cpu_levels())
      if (cpu_supports(l)) best = l;
    const std::string names = level_list(compiled_cpu_levels());
    const char* env = std::getenv("DECOFLOW_CPU_LEVEL");
    if (env && *env) {
      CpuLevel want;
      if (!parse_level(env, &want)) {
        r.error = std::string("DECOFLOW_CPU_LEVEL: expected one of baseline, avx2, avx512, got '") + env + "'";
      } else if (!compiled(want)) {
        r.error = std::string("DECOFLOW_CPU_LEVEL=") + env + ": this build has the levels " + names;
      } else if (!cpu_supports(want)) {
        r.error = std::string("DECOFLOW_CPU_LEVEL=") + env + ": this CPU supports at most " + cpu_level_name(best);
      } else {
        r.kernels = compiled(want);
        r.description = std::string(cpu_level_name(want)) + " (forced by DECOFLOW_CPU_LEVEL; this CPU's best of " +
                        names + ": " + cpu_level_name(best) + ")";
      }
      return r;
    }
    r.kernels = compiled(best);
    r.description = std::string(cpu_level_name(best)) + " (the best of " + names + " on this CPU)";
    return r;
  }();
  return c;
}

}  // namespace

const char* cpu_level_name(CpuLevel level) {
  switch (level) {
    case CpuLevel::Baseline: return "baseline";
    case CpuLevel::Avx2: return "avx2";
    case CpuLevel::Avx512: return "avx512";
  }
  return "?";
}

std::vector<CpuLevel> compiled_cpu_levels() {
  std::vector<CpuLevel> out;
  for (int i = 0; i < kCpuLevels; i++)
    if (compiled(CpuLevel(i))) out.push_back(CpuLevel(i));
  return out;
}

bool cpu_supports(CpuLevel level) {
#ifdef DF_X86_64
  static const CpuFeatures f = detect();
  switch (level) {
    case CpuLevel::Baseline: return true;
    case CpuLevel::Avx2: return f.v3;
    case CpuLevel::Avx512: return f.v4;
  }
  return false;
#else
  return level == CpuLevel::Baseline;
#endif
}

const CpuKernels& cpu_kernels_at(CpuLevel level) {
  const CpuKernels* k = compiled(level);
  if (!k) fail(Code::Backend, std::string("cpu level ") + cpu_level_name(level) + ": not compiled into this build");
  if (!cpu_supports(level))
    fail(Code::Backend, std::string("cpu level ") + cpu_level_name(level) + ": this CPU cannot run it");
  return *k;
}

const CpuKernels& cpu_kernels() {
  const Choice& c = choice();
  if (!c.kernels) fail(Code::Backend, c.error);
  return *c.kernels;
}

CpuLevel cpu_level() { return cpu_kernels().level; }

std::string cpu_level_description() {
  const Choice& c = choice();
  return c.kernels ? c.description : "none: " + c.error;
}

Ops& cpu_ops() { return *cpu_kernels().ops; }

const Decomposition& cpu_decomposition(PyramidKind kind) { return cpu_kernels().pyramid(kind); }

void sgemm_builtin(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
                   const float* b, int64_t ldb, float beta, float* c, int64_t ldc, bool parallel) {
  cpu_kernels().sgemm_blocked(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, parallel);
}

}  // namespace df

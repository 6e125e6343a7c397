// White-box tests of the CPU kernels call them directly, at the CPU level that their own compiler
// flags allow (native/ops/cpu_level.h): the build machine's best level in a native build (where
// -march=native defines the AVX macros), the baseline in a portable one. Include before any ops
// header. test_backend_ops checks every level through the op tables.
#pragma once
#ifndef DF_CPU_NS
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512CD__) && defined(__AVX512DQ__) && \
    defined(__AVX512VL__)
#define DF_CPU_NS cpu_avx512
#elif defined(__AVX2__) && defined(__FMA__) && defined(__BMI2__)
#define DF_CPU_NS cpu_avx2
#else
#define DF_CPU_NS cpu_baseline
#endif
#endif

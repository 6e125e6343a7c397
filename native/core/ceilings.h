// The machine's own ceilings, measured by `decoflow bench` before its rows: the single-precision FMA
// peak of the threads in use and the multithreaded memory copy bandwidth. Benchmarks print their
// rates as a share of these, so "x% of peak" is a measurement of the same machine and run, not a
// number from a data sheet.
#pragma once
#include <cstddef>
#include <cstdint>

namespace df {

// The vector width the FMA chains use (the widest the build targets: 16 lanes with AVX-512, 8 with
// AVX, else 4) and the number of independent chains each thread runs.
int fma_lanes();
int fma_chains();
// The instruction-set path the native kernels were compiled for, e.g. "avx512f" or "avx2+fma".
const char* isa_path();

// Runs `iterations` rounds of fma_chains() independent fused multiply-adds on fma_lanes()-wide
// vectors on each of `threads` threads (plain threads, started together) and returns once all are
// done. FLOPs done: threads * iterations * fma_chains() * fma_lanes() * 2.
void fma_chains_run(int threads, int64_t iterations);

// memcpy of `bytes` split over the thread pool in contiguous chunks.
void parallel_copy_bytes(void* dst, const void* src, size_t bytes);

}  // namespace df

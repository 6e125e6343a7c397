// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11): a
// counter-based generator, so element i of a stream is a pure function of (key, counter) and the
// same on any thread count and on the GPU. Normals come from Box-Muller on pairs of uniforms.
#pragma once
#include <cmath>
#include <cstdint>

// The generator itself (not the normals, whose libm calls differ) also compiles for CUDA devices.
#if defined(__CUDACC__)
#define DF_HOST_DEVICE __host__ __device__
#else
#define DF_HOST_DEVICE
#endif

namespace df {

struct Philox4 {
  uint32_t v[4];
};

DF_HOST_DEVICE inline uint32_t mulhilo(uint32_t a, uint32_t b, uint32_t* hi) {
  uint64_t p = uint64_t(a) * uint64_t(b);
  *hi = uint32_t(p >> 32);
  return uint32_t(p);
}

// One block of four 32-bit outputs for a 128-bit counter and a 64-bit key.
DF_HOST_DEVICE inline Philox4 philox4x32_10(Philox4 ctr, uint32_t key0, uint32_t key1) {
  for (int round = 0; round < 10; round++) {
    uint32_t hi0, hi1;
    uint32_t lo0 = mulhilo(0xD2511F53u, ctr.v[0], &hi0);
    uint32_t lo1 = mulhilo(0xCD9E8D57u, ctr.v[2], &hi1);
    ctr = Philox4{{hi1 ^ ctr.v[1] ^ key0, lo1, hi0 ^ ctr.v[3] ^ key1, lo0}};
    key0 += 0x9E3779B9u;
    key1 += 0xBB67AE85u;
  }
  return ctr;
}

// Uniform in (0, 1], never 0, so log() is finite.
DF_HOST_DEVICE inline float uniform_from_u32(uint32_t x) { return (float(x >> 8) + 1.0f) * (1.0f / 16777216.0f); }

// A stream of numbers identified by (seed, stream); block b gives elements 4b..4b+3.
struct RandomStream {
  uint64_t seed = 0;
  uint64_t stream = 0;  // e.g. (step, purpose) packed by the caller

  DF_HOST_DEVICE Philox4 block(uint64_t b) const {
    Philox4 ctr{{uint32_t(b), uint32_t(b >> 32), uint32_t(stream), uint32_t(stream >> 32)}};
    return philox4x32_10(ctr, uint32_t(seed), uint32_t(seed >> 32));
  }

  // Four standard normals for block b (Box-Muller on two pairs of uniforms).
  void normal4(uint64_t b, float out[4]) const {
    Philox4 r = block(b);
    for (int pair = 0; pair < 2; pair++) {
      float u1 = uniform_from_u32(r.v[2 * pair]);
      float u2 = uniform_from_u32(r.v[2 * pair + 1]);
      float radius = std::sqrt(-2.0f * std::log(u1));
      float angle = 6.283185307179586f * u2;
      out[2 * pair] = radius * std::cos(angle);
      out[2 * pair + 1] = radius * std::sin(angle);
    }
  }

  // Fills out[0..n) with normals: element i is the same whatever n or the thread count.
  void fill_normal(float* out, int64_t n, int64_t first = 0) const;
  void fill_uniform(float* out, int64_t n, int64_t first = 0) const;
};

}  // namespace df

#include "philox.h"

#include "threadpool.h"

namespace df {

void RandomStream::fill_normal(float* out, int64_t n, int64_t first) const {
  // Blocks of 4 elements in parallel; element i always comes from block (first+i)/4.
  int64_t b0 = first / 4, b1 = (first + n + 3) / 4;
  parallel_for(b1 - b0, 4096, [&](int64_t lo, int64_t hi) {
    float v[4];
    for (int64_t b = b0 + lo; b < b0 + hi; b++) {
      normal4(uint64_t(b), v);
      for (int j = 0; j < 4; j++) {
        int64_t i = b * 4 + j - first;
        if (i >= 0 && i < n) out[i] = v[j];
      }
    }
  });
}

void RandomStream::fill_uniform(float* out, int64_t n, int64_t first) const {
  int64_t b0 = first / 4, b1 = (first + n + 3) / 4;
  parallel_for(b1 - b0, 4096, [&](int64_t lo, int64_t hi) {
    for (int64_t b = b0 + lo; b < b0 + hi; b++) {
      Philox4 r = block(uint64_t(b));
      for (int j = 0; j < 4; j++) {
        int64_t i = b * 4 + j - first;
        if (i >= 0 && i < n) out[i] = uniform_from_u32(r.v[j]);
      }
    }
  });
}

}  // namespace df

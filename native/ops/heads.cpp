#include "heads.h"

#include <cstring>

#include "../core/threadpool.h"

namespace df {
inline namespace DF_CPU_NS {  // compiled once per CPU level (cpu_level.h)

namespace {

// Calls fn(token row offset, head offset) for every (b, n, h): the token-major element
// ((b * N + n) * H + h) * hd and the head-major element ((b * H + h) * N + n) * hd, hd floats each.
template <class F>
void for_each_head_row(const HeadsShape& s, F&& fn) {
  const int64_t N = s.tokens, H = s.heads, hd = s.head_dim;
  parallel_for(s.batch * N, 16, [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; r++) {
      const int64_t b = r / N, n = r % N;
      for (int64_t h = 0; h < H; h++) fn(r, h, ((b * H + h) * N + n) * hd);
    }
  });
}

constexpr size_t bytes(int64_t hd) { return size_t(hd) * sizeof(float); }

}  // namespace

void split_heads(const float* qkv, float* q, float* k, float* v, const HeadsShape& s) {
  const int64_t D = s.heads * s.head_dim;
  float* dst[3] = {q, k, v};
  for_each_head_row(s, [&](int64_t r, int64_t h, int64_t head) {
    for (int w = 0; w < 3; w++) std::memcpy(dst[w] + head, qkv + (r * 3 + w) * D + h * s.head_dim, bytes(s.head_dim));
  });
}

void split_heads_backward(const float* dq, const float* dk, const float* dv, float* dqkv, const HeadsShape& s) {
  const int64_t D = s.heads * s.head_dim;
  const float* src[3] = {dq, dk, dv};
  for_each_head_row(s, [&](int64_t r, int64_t h, int64_t head) {
    for (int w = 0; w < 3; w++) std::memcpy(dqkv + (r * 3 + w) * D + h * s.head_dim, src[w] + head, bytes(s.head_dim));
  });
}

void merge_heads(const float* o, float* cat, const HeadsShape& s) {
  const int64_t D = s.heads * s.head_dim;
  for_each_head_row(s, [&](int64_t r, int64_t h, int64_t head) {
    std::memcpy(cat + r * D + h * s.head_dim, o + head, bytes(s.head_dim));
  });
}

void merge_heads_backward(const float* dcat, float* d_o, const HeadsShape& s) {
  const int64_t D = s.heads * s.head_dim;
  for_each_head_row(s, [&](int64_t r, int64_t h, int64_t head) {
    std::memcpy(d_o + head, dcat + r * D + h * s.head_dim, bytes(s.head_dim));
  });
}

}  // namespace DF_CPU_NS
}  // namespace df

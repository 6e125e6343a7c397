// The layouts around attention. The qkv linear writes [B, N, 3, H, hd] (per token: q, k, v, each
// the heads side by side) and the attention kernels read [B, H, N, hd]; after attention the heads
// are concatenated per token again, [B, N, H * hd], for the output projection. Each permutation's
// backward is its inverse.
#pragma once
#include <cstdint>

namespace df {

struct HeadsShape {
  int64_t batch = 1, tokens = 1, heads = 1, head_dim = 1;
};

#ifdef DF_CPU_NS  // the CPU kernels: compiled once per CPU level and seen only there (cpu_level.h)
inline namespace DF_CPU_NS {

// qkv [B, N, 3, H, hd] -> q, k, v [B, H, N, hd]
void split_heads(const float* qkv, float* q, float* k, float* v, const HeadsShape& s);
// dq, dk, dv [B, H, N, hd] -> dqkv [B, N, 3, H, hd]
void split_heads_backward(const float* dq, const float* dk, const float* dv, float* dqkv, const HeadsShape& s);
// o [B, H, N, hd] -> cat [B, N, H * hd]
void merge_heads(const float* o, float* cat, const HeadsShape& s);
// dcat [B, N, H * hd] -> d_o [B, H, N, hd]
void merge_heads_backward(const float* dcat, float* d_o, const HeadsShape& s);

}  // namespace DF_CPU_NS
#endif  // DF_CPU_NS

}  // namespace df

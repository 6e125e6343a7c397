// The DiT's embeddings and the patch layout.
//
// Patches: an image x [B, C, H, W] with patch size p gives tokens [B, (H/p) * (W/p), C * p * p],
// token n = i * (W/p) + j for the patch at row i, column j. Two element orders inside a token:
//   PatchOrder::ChannelFirst (c, py, px): a Conv2d(kernel = stride = p) weight [D, C, p, p] read as
//     a [D, C*p*p] matrix, i.e. the patch embedding;
//   PatchOrder::ChannelLast (py, px, c): DiT's final layer output, which unpatchify turns into an image.
// patchify and unpatchify are inverse permutations, so each is the other's backward.
#pragma once
#include <cstdint>

namespace df {

enum class PatchOrder { ChannelFirst, ChannelLast };

struct PatchShape {
  int64_t batch = 1, channels = 1, height = 1, width = 1, patch = 1;
  int64_t tokens() const { return (height / patch) * (width / patch); }
  int64_t token_dim() const { return channels * patch * patch; }
};

#ifdef DF_CPU_NS  // the CPU kernels: compiled once per CPU level and seen only there (cpu_level.h)
inline namespace DF_CPU_NS {

void patchify(const float* image, float* tokens, const PatchShape& s, PatchOrder order);
void unpatchify(const float* tokens, float* image, const PatchShape& s, PatchOrder order);

// Sinusoidal features of scalar times (DiT's TimestepEmbedder): for k < dim/2,
//   freq_k = max_period^(-k / (dim/2)), out[b] = [cos(t_b freq_k)..., sin(t_b freq_k)...] with
//   t_b = time[b * time_stride] * time_scale (computed in double); an odd dim leaves a trailing zero.
void timestep_features(const float* time, int64_t time_stride, int64_t batch, float time_scale, int64_t dim,
                       float max_period, float* out);

}  // namespace DF_CPU_NS
#endif  // DF_CPU_NS

// Fixed 2-D sin-cos position embedding [gh * gw, dim] (MAE/DiT): the first dim/2 features encode the
// column j, the last dim/2 the row i, each as [sin(pos w_k)..., cos(pos w_k)...] with
// w_k = 10000^(-k / (dim/4)), k < dim/4. dim must be a multiple of 4.
void sincos_pos_embed_2d(float* out, int64_t gh, int64_t gw, int64_t dim);

#ifdef DF_CPU_NS  // the CPU kernels: compiled once per CPU level and seen only there (cpu_level.h)
inline namespace DF_CPU_NS {

// Rows of a table: out[b] = table[index[b]] (indices already validated by the caller).
void embedding_forward(const float* table, const int32_t* index, float* out, int64_t batch, int64_t dim);
// dtable[index[b]] += dout[b], batch rows in order (deterministic when indices repeat).
void embedding_backward(const float* dout, const int32_t* index, float* dtable, int64_t batch, int64_t dim);

}  // namespace DF_CPU_NS
#endif  // DF_CPU_NS

}  // namespace df

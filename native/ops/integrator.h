// The flow's elementwise updates over a flat buffer of grouped rows, one pass (one CUDA launch)
// per update: the sampler's Euler/Heun steps and guidance, and the training batch's forward
// process. The per-(row, group) scalars (dt, t) come as a row-major [batch, coef_stride] matrix.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace df {

// Every sample of a batch is split into groups of per_sample[g] elements, and the buffer holds the
// groups one after another, group g as [batch, per_sample[g]]: group g of sample b starts at
// offset(g) + b * per_sample[g]. Its scalar is coef[b * stride() + g], so a prefix of the groups
// can be updated with the coefficients of all of them (coef_stride > groups()).
struct GroupedRows {
  int64_t batch = 0;
  std::vector<int64_t> per_sample;  // elements of one sample in each group
  int64_t coef_stride = 0;          // columns of the coefficient matrix; 0: groups()

  int groups() const { return int(per_sample.size()); }
  int64_t stride() const { return coef_stride > 0 ? coef_stride : int64_t(per_sample.size()); }
  int64_t offset(int g) const {
    int64_t o = 0;
    for (int r = 0; r < g; r++) o += batch * per_sample[size_t(r)];
    return o;
  }
  int64_t group_size(int g) const { return batch * per_sample[size_t(g)]; }
  int64_t total() const { return offset(groups()); }
  // The first `n` groups, with this buffer's coefficient matrix.
  GroupedRows prefix(int n) const {
    GroupedRows p{batch, std::vector<int64_t>(per_sample.begin(), per_sample.begin() + n), stride()};
    return p;
  }
};

#ifdef DF_CPU_NS  // the CPU kernels: compiled once per CPU level and seen only there (cpu_level.h)
inline namespace DF_CPU_NS {

// out = x + dt * v  (Euler; also the first half of Heun and midpoint). out may alias x. Rows whose
// dt is 0 (e.g. stages waiting at t = 0, masked) are copied without reading v.
void flow_euler_update(const GroupedRows& l, const float* x, const float* v, const float* dt, float* out);

// out = x + dt * (v1 + v2) / 2  (Heun's corrector). out may alias x.
void flow_heun_update(const GroupedRows& l, const float* x, const float* v1, const float* v2, const float* dt, float* out);

// Classifier-free guidance: out = v_uncond + w * (v_cond - v_uncond). out may alias either input.
void guidance_combine(const GroupedRows& l, const float* v_cond, const float* v_uncond, float w, float* out);

// The forward process of flow matching: with t the row's time and N the noise that `target` holds
// on entry, noisy = t * clean + (1 - t) * N and target = clean - N (the velocity).
void flow_noising(const GroupedRows& l, const float* clean, const float* t, float* noisy, float* target);

// out = coef * (a - b) with coef the row's scalar; b may be null (then out = coef * a), out may alias
// a. The model's clean-level parameterisation: v = (x_pred - x_t) / (1 - t), and its backward.
void scaled_difference(const GroupedRows& l, const float* a, const float* b, const float* coef, float* out);

}  // namespace DF_CPU_NS
#endif  // DF_CPU_NS

}  // namespace df

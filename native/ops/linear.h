// The affine layer y = x W^T + b of PyTorch's nn.Linear (W is [out, in], row-major), on rows of
// x [rows, in]; the GEMMs go to sgemm (OpenBLAS when loaded).
#pragma once
#include <cstdint>

namespace df {

struct LinearShape {
  int64_t rows = 1, in = 1, out = 1;
};

#ifdef DF_CPU_NS  // the CPU kernels: compiled once per CPU level and seen only there (cpu_level.h)
inline namespace DF_CPU_NS {

// y [rows, out] is overwritten. bias may be null.
void linear_forward(const float* x, const float* w, const float* bias, float* y, const LinearShape& s);

// dx [rows, in] (may be null: not needed) is overwritten, or added to when `accumulate_dx`.
// dw [out, in] and db [out] (may be null) are added to when `accumulate_params` (a layer used
// several times), else overwritten (the model's usual case: no separate zeroing pass).
void linear_backward(const float* x, const float* w, const float* dy, float* dx, float* dw, float* db,
                     const LinearShape& s, bool accumulate_dx = false, bool accumulate_params = true);

// db[j] (+)= sum_r dy[r, j], rows summed in order (the same result on any thread count).
void add_column_sums(const float* dy, float* db, int64_t rows, int64_t cols, bool accumulate = true);

}  // namespace DF_CPU_NS
#endif  // DF_CPU_NS

}  // namespace df

// Pointwise activations of the DiT: SiLU (conditioning path) and GELU with the tanh approximation
// (MLP). Forward and backward side by side; the backward takes the forward's input, not its output,
// so nothing else has to be kept.
#pragma once
#include <cstdint>

namespace df {

#ifdef DF_CPU_NS  // the CPU kernels: compiled once per CPU level and seen only there (cpu_level.h)
inline namespace DF_CPU_NS {

// y = x * sigmoid(x)
void silu_forward(const float* x, float* y, int64_t n);
// dx = dy * sigmoid(x) * (1 + x * (1 - sigmoid(x))); overwrites dx, or adds to it when `accumulate`.
void silu_backward(const float* x, const float* dy, float* dx, int64_t n, bool accumulate = false);

// y = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))  (PyTorch's gelu(approximate='tanh'))
void gelu_tanh_forward(const float* x, float* y, int64_t n);
void gelu_tanh_backward(const float* x, const float* dy, float* dx, int64_t n, bool accumulate = false);

}  // namespace DF_CPU_NS
#endif  // DF_CPU_NS

}  // namespace df

// SiLU and GELU (tanh) on CUDA, twins of native/ops/activations.cpp: forward and backward, the
// backward from the forward's input, overwriting dx or adding to it.
#pragma once
#include "launch.cuh"
#include "numeric.cuh"

namespace dfcuda {

struct Silu {
  static __host__ __device__ float f(float x) { return x / (1.f + expf(-x)); }
  static __host__ __device__ float df(float x) {
    const float s = 1.f / (1.f + expf(-x));
    return s * (1.f + x * (1.f - s));
  }
};

struct GeluTanh {
  static constexpr float kA = 0.7978845608028654f, kB = 0.044715f;
  static __host__ __device__ float f(float x) { return 0.5f * x * (1.f + tanhf(kA * (x + kB * x * x * x))); }
  static __host__ __device__ float df(float x) {
    const float u = kA * (x + kB * x * x * x), t = tanhf(u);
    return 0.5f * (1.f + t) + 0.5f * x * (1.f - t * t) * kA * (1.f + 3.f * kB * x * x);
  }
};

template <class A, class T>
DF_KERNEL void activation_forward_kernel(const T* x, T* y, int64_t n) {
  DF_GRID_LOOP(i, n) y[i] = from_f32<T>(A::f(to_f32(x[i])));
}

template <class A, class T>
DF_KERNEL void activation_backward_kernel(const T* x, const T* dy, T* dx, int64_t n, bool accumulate) {
  DF_GRID_LOOP(i, n) {
    const float g = to_f32(dy[i]) * A::df(to_f32(x[i]));
    dx[i] = from_f32<T>(accumulate ? to_f32(dx[i]) + g : g);
  }
}

template <class A, class T, class L>
void run_activation_forward(L& l, const void* x, void* y, int64_t n) {
  l.launch(activation_forward_kernel<A, T>, dim3(grid_for(n)), kThreads, 0, static_cast<const T*>(x), static_cast<T*>(y), n);
}

template <class A, class T, class L>
void run_activation_backward(L& l, const void* x, const void* dy, void* dx, int64_t n, bool accumulate) {
  l.launch(activation_backward_kernel<A, T>, dim3(grid_for(n)), kThreads, 0, static_cast<const T*>(x),
           static_cast<const T*>(dy), static_cast<T*>(dx), n, accumulate);
}

}  // namespace dfcuda

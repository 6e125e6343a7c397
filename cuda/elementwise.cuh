// The small elementwise ops of the model on CUDA (twins of native/ops/elementwise.cpp), the
// conversions between f32 and the compute type, and Philox normals (core/philox.h). Kernels and
// their host sequences; the latter take a launcher (cuda/launch.cuh).
#pragma once
#include "core/philox.h"
#include "launch.cuh"
#include "numeric.cuh"

namespace dfcuda {

template <class T>
DF_KERNEL void add_kernel(const T* x, T* y, int64_t n) {
  DF_GRID_LOOP(i, n) y[i] = from_f32<T>(to_f32(y[i]) + to_f32(x[i]));
}

DF_KERNEL void broadcast_rows_kernel(const float* row, float* out, int64_t cols, int64_t n) {
  DF_GRID_LOOP(i, n) out[i] = row[i % cols];
}

// y (f32) += s_b x (compute), skipping samples whose scale is 0.
template <class T>
DF_KERNEL void add_scaled_rows_kernel(const T* x, float* y, const float* scale, int64_t per_sample, int64_t stride,
                                       int64_t n) {
  DF_GRID_LOOP(i, n) {
    const float m = scale[(i / per_sample) * stride];
    if (m != 0.f) y[i] += m * to_f32(x[i]);
  }
}

// y (compute) = s_b x (f32).
template <class T>
DF_KERNEL void scale_rows_kernel(const float* x, T* y, const float* scale, int64_t per_sample, int64_t stride, int64_t n) {
  DF_GRID_LOOP(i, n) y[i] = from_f32<T>(scale[(i / per_sample) * stride] * x[i]);
}

template <class S, class D>
DF_KERNEL void convert_kernel(const S* x, D* y, int64_t n) {
  DF_GRID_LOOP(i, n) y[i] = from_f32<D>(to_f32(x[i]));
}

// Philox normals: thread b makes block b of four (Box-Muller on two pairs of uniforms) and writes
// the elements of it that fall in [first, first + n). The transcendental functions are evaluated in
// double and rounded once, which gives the correctly rounded f32 result; the CPU uses its libm's f32
// functions, which agree but for one rounding in under 1% of the elements.
DF_KERNEL void fill_normal_kernel(float* out, int64_t n, uint64_t seed, uint64_t stream, int64_t first) {
  const int64_t b0 = first / 4, blocks = (first + n + 3) / 4 - b0;
  DF_GRID_LOOP(t, blocks) {
    const int64_t b = b0 + t;
    const df::Philox4 r = df::RandomStream{seed, stream}.block(uint64_t(b));
    float v[4];
    for (int pair = 0; pair < 2; pair++) {
      const float u1 = df::uniform_from_u32(r.v[2 * pair]), u2 = df::uniform_from_u32(r.v[2 * pair + 1]);
      const float radius = sqrtf_rn(-2.0f * float(log(double(u1))));
      const float angle = 6.283185307179586f * u2;
      v[2 * pair] = radius * float(cos(double(angle)));
      v[2 * pair + 1] = radius * float(sin(double(angle)));
    }
    for (int j = 0; j < 4; j++) {
      const int64_t i = b * 4 + j - first;
      if (i >= 0 && i < n) out[i] = v[j];
    }
  }
}

// db[c] (+)= sum_r dy[r, c] in two deterministic passes, so that a tall dy (the batch's tokens x a
// layer's width) keeps the whole device busy: chunks of rows summed per column into partials
// [chunks, cols], then the chunks summed in order.
constexpr int64_t kColumnSumRows = 128;

template <class T>
DF_KERNEL void column_partial_sums_kernel(const T* dy, float* partial, int64_t rows, int64_t cols) {
  const int64_t c = int64_t(blockIdx.x) * blockDim.x + threadIdx.x, chunk = blockIdx.y;
  if (c >= cols) return;
  const int64_t r0 = chunk * kColumnSumRows, r1 = r0 + kColumnSumRows < rows ? r0 + kColumnSumRows : rows;
  float acc = 0.f;
  for (int64_t r = r0; r < r1; r++) acc += to_f32(dy[r * cols + c]);
  partial[chunk * cols + c] = acc;
}

DF_KERNEL void column_sums_kernel(const float* partial, float* db, int64_t chunks, int64_t cols, bool accumulate) {
  DF_GRID_LOOP(c, cols) {
    float acc = 0.f;
    for (int64_t k = 0; k < chunks; k++) acc += partial[k * cols + c];
    db[c] = accumulate ? db[c] + acc : acc;
  }
}

// ---- host sequences ----

template <class T, class L>
void run_column_sums(L& l, const void* dy, float* db, int64_t rows, int64_t cols, bool accumulate) {
  const int64_t chunks = (rows + kColumnSumRows - 1) / kColumnSumRows;
  auto partial = l.scratch(size_t(chunks * cols) * sizeof(float));
  float* p = static_cast<float*>(partial.get());
  l.launch(column_partial_sums_kernel<T>, dim3(unsigned((cols + kThreads - 1) / kThreads), unsigned(chunks)), kThreads, 0,
           static_cast<const T*>(dy), p, rows, cols);
  l.launch(column_sums_kernel, dim3(grid_for(cols)), kThreads, 0, static_cast<const float*>(p), db, chunks, cols, accumulate);
}

template <class T, class L>
void run_add(L& l, const void* x, void* y, int64_t n) {
  l.launch(add_kernel<T>, dim3(grid_for(n)), kThreads, 0, static_cast<const T*>(x), static_cast<T*>(y), n);
}

template <class L>
void run_broadcast_rows(L& l, const float* row, float* out, int64_t rows, int64_t cols) {
  l.launch(broadcast_rows_kernel, dim3(grid_for(rows * cols)), kThreads, 0, row, out, cols, rows * cols);
}

template <class T, class L>
void run_add_scaled_rows(L& l, const void* x, float* y, const float* scale, int64_t batch, int64_t per_sample,
                         int64_t stride) {
  const int64_t n = batch * per_sample;
  l.launch(add_scaled_rows_kernel<T>, dim3(grid_for(n)), kThreads, 0, static_cast<const T*>(x), y, scale, per_sample,
           stride, n);
}

template <class T, class L>
void run_scale_rows(L& l, const float* x, void* y, const float* scale, int64_t batch, int64_t per_sample, int64_t stride) {
  const int64_t n = batch * per_sample;
  l.launch(scale_rows_kernel<T>, dim3(grid_for(n)), kThreads, 0, x, static_cast<T*>(y), scale, per_sample, stride, n);
}

template <class L>
void run_convert(L& l, const void* x, df::DType from, void* y, df::DType to, int64_t n) {
  using df::DType;
  if (from == to) return l.copy(y, x, size_t(n) * (from == DType::F32 ? 4 : 2));
  if (from == DType::F32 && to == DType::BF16)
    return l.launch(convert_kernel<float, bf16>, dim3(grid_for(n)), kThreads, 0, static_cast<const float*>(x),
                    static_cast<bf16*>(y), n);
  if (from == DType::BF16 && to == DType::F32)
    return l.launch(convert_kernel<bf16, float>, dim3(grid_for(n)), kThreads, 0, static_cast<const bf16*>(x),
                    static_cast<float*>(y), n);
  df::fail(df::Code::DType, "convert: the CUDA backend converts between f32 and bf16 only");
}

template <class L>
void run_fill_normal(L& l, float* out, int64_t n, uint64_t seed, uint64_t stream, int64_t first) {
  const int64_t blocks = (first + n + 3) / 4 - first / 4;
  l.launch(fill_normal_kernel, dim3(grid_for(blocks)), kThreads, 0, out, n, seed, stream, first);
}

}  // namespace dfcuda

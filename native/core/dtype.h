// Element types and the conversions between them. f16 and bf16 are stored as raw 16-bit patterns.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

namespace df {

enum class DType { F32, F16, BF16, I32 };

size_t dtype_size(DType d);
const char* dtype_name(DType d);
DType parse_dtype(const std::string& name, const char* arg);  // throws Code::DType naming `arg`

inline float bf16_to_f32(uint16_t h) {
  uint32_t bits = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// Round to nearest even, as PyTorch and CUDA do; NaN stays NaN.
inline uint16_t f32_to_bf16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return uint16_t((bits >> 16) | 0x40);
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return uint16_t(bits >> 16);
}

float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);  // round to nearest even, overflow to infinity

// Converts n elements between any two dtypes (i32 <-> float rounds toward zero like a C cast).
void convert(const void* src, DType from, void* dst, DType to, size_t n);

}  // namespace df

#include "dtype.h"

#include <cmath>

#include "error.h"

namespace df {

size_t dtype_size(DType d) {
  switch (d) {
    case DType::F32: return 4;
    case DType::I32: return 4;
    case DType::F16: return 2;
    case DType::BF16: return 2;
  }
  return 0;
}

const char* dtype_name(DType d) {
  switch (d) {
    case DType::F32: return "f32";
    case DType::F16: return "f16";
    case DType::BF16: return "bf16";
    case DType::I32: return "i32";
  }
  return "?";
}

DType parse_dtype(const std::string& s, const char* arg) {
  if (s == "f32" || s == "float32") return DType::F32;
  if (s == "f16" || s == "float16") return DType::F16;
  if (s == "bf16" || s == "bfloat16") return DType::BF16;
  if (s == "i32" || s == "int32") return DType::I32;
  fail(Code::DType, std::string(arg) + ": expected one of 'f32', 'f16', 'bf16', 'i32', got '" + s + "'");
}

float f16_to_f32(uint16_t h) {
  uint32_t sign = uint32_t(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: normalise
      int e = -1;
      do {
        e++;
        mant <<= 1;
      } while ((mant & 0x400u) == 0);
      bits = sign | uint32_t(127 - 15 - e) << 23 | (mant & 0x3ffu) << 13;
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | mant << 13;
  } else {
    bits = sign | (exp + 127 - 15) << 23 | mant << 13;
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint16_t f32_to_f16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  uint16_t sign = uint16_t((bits >> 16) & 0x8000u);
  uint32_t absb = bits & 0x7fffffffu;
  if (absb > 0x7f800000u) return sign | 0x7e00u;   // NaN
  if (absb >= 0x477ff000u) return sign | 0x7c00u;  // rounds to >= 65520: infinity
  if (absb < 0x38800000u) {                        // below the smallest normal half: subnormal or 0
    if (absb < 0x33000000u) return sign;           // < 2^-25 rounds to zero
    uint32_t exp = absb >> 23;
    uint32_t mant = (absb & 0x7fffffu) | 0x800000u;
    // value = mant * 2^(exp-150); in half-subnormal units of 2^-24 that is mant >> (126 - exp)
    uint32_t sh = 126 - exp;  // >= 14
    uint32_t q = mant >> sh;
    uint32_t rem = mant & ((1u << sh) - 1);
    uint32_t halfway = 1u << (sh - 1);
    if (rem > halfway || (rem == halfway && (q & 1u))) q++;
    return sign | uint16_t(q);
  }
  uint32_t r = absb + 0xfffu + ((absb >> 13) & 1u);  // round mantissa to 10 bits, ties to even
  return sign | uint16_t(((r >> 13) - ((127 - 15) << 10)) & 0x7fffu);
}

void convert(const void* src, DType from, void* dst, DType to, size_t n) {
  if (from == to) {
    std::memcpy(dst, src, n * dtype_size(from));
    return;
  }
  auto load = [&](size_t i) -> double {
    switch (from) {
      case DType::F32: return static_cast<const float*>(src)[i];
      case DType::I32: return static_cast<const int32_t*>(src)[i];
      case DType::F16: return f16_to_f32(static_cast<const uint16_t*>(src)[i]);
      case DType::BF16: return bf16_to_f32(static_cast<const uint16_t*>(src)[i]);
    }
    return 0;
  };
  for (size_t i = 0; i < n; i++) {
    double v = load(i);
    switch (to) {
      case DType::F32: static_cast<float*>(dst)[i] = float(v); break;
      case DType::I32: {
        int32_t r = 0;
        if (std::isfinite(v)) r = v >= 2147483647.0 ? INT32_MAX : v <= -2147483648.0 ? INT32_MIN : int32_t(v);
        static_cast<int32_t*>(dst)[i] = r;
        break;
      }
      case DType::F16: static_cast<uint16_t*>(dst)[i] = f32_to_f16(float(v)); break;
      case DType::BF16: static_cast<uint16_t*>(dst)[i] = f32_to_bf16(float(v)); break;
    }
  }
}

}  // namespace df

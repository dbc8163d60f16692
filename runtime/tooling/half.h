//===- half.h - f16 and bf16 conversions ------------------------*- C++ -*-===//
//
// IEEE half and bfloat16 to and from float, rounding to nearest even. Header
// only and free of the runtime, because the npu simulator computes with the
// same conversions the tools print and parse with.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_RUNTIME_TOOLING_HALF_H
#define KILN_RUNTIME_TOOLING_HALF_H

#include <cmath>
#include <cstdint>
#include <cstring>

namespace kiln::tooling {

inline float halfToFloat(uint16_t h) {
  uint32_t sign = uint32_t(h >> 15) << 31, exp = (h >> 10) & 0x1f,
           mant = h & 0x3ff, bits;
  if (exp == 0x1f)
    bits = sign | 0x7f800000u | (mant << 13);
  else if (exp)
    bits = sign | ((exp + 112) << 23) | (mant << 13);
  else if (!mant)
    bits = sign;
  else { // Subnormal: renormalize.
    exp = 113;
    while (!(mant & 0x400)) {
      mant <<= 1;
      --exp;
    }
    bits = sign | (exp << 23) | ((mant & 0x3ff) << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

inline uint16_t floatToHalf(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  uint16_t sign = (x >> 16) & 0x8000;
  uint32_t absx = x & 0x7fffffff;
  if (absx >= 0x7f800000) // Inf or NaN.
    return sign | 0x7c00 | (absx > 0x7f800000 ? 0x200 : 0);
  if (absx >= 0x477ff000) // Rounds to >= 65520: overflow.
    return sign | 0x7c00;
  if (absx < 0x38800000) { // Subnormal or zero in half.
    float a;
    std::memcpy(&a, &absx, 4);
    return sign | static_cast<uint16_t>(std::nearbyint(a * 16777216.0f));
  }
  uint32_t r = absx + 0xc8000fff + ((absx >> 13) & 1); // Round to nearest even.
  return sign | static_cast<uint16_t>(r >> 13);
}

inline float bf16ToFloat(uint16_t v) {
  uint32_t bits = uint32_t(v) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

/// Keeps a NaN a NaN (a quiet one, with its sign).
inline uint16_t floatToBf16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  if (std::isnan(f))
    return static_cast<uint16_t>(0x7fc0 | (bits >> 31 << 15));
  return static_cast<uint16_t>((bits + 0x7fff + ((bits >> 16) & 1)) >> 16);
}

} // namespace kiln::tooling

#endif // KILN_RUNTIME_TOOLING_HALF_H

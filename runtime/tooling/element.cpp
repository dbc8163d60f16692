//===- element.cpp - Reading and writing single tensor elements -----------===//
#include "element.h"
#include "half.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <optional>
#include <utility>

namespace kiln::tooling {
namespace {

/// The one-byte float formats.
struct SmallFloat {
  unsigned expBits, mantBits;
  int bias;
  enum Kind { Ieee, FiniteNan, Fnuz, Finite, ExpOnly } kind;
};

std::optional<SmallFloat> smallFloat(kiln_dtype t) {
  switch (t) {
  case KILN_DTYPE_F8E4M3FN: return SmallFloat{4, 3, 7, SmallFloat::FiniteNan};
  case KILN_DTYPE_F8E4M3FNUZ: return SmallFloat{4, 3, 8, SmallFloat::Fnuz};
  case KILN_DTYPE_F8E5M2: return SmallFloat{5, 2, 15, SmallFloat::Ieee};
  case KILN_DTYPE_F8E5M2FNUZ: return SmallFloat{5, 2, 16, SmallFloat::Fnuz};
  case KILN_DTYPE_F4E2M1: return SmallFloat{2, 1, 1, SmallFloat::Finite};
  case KILN_DTYPE_F8E8M0: return SmallFloat{8, 0, 127, SmallFloat::ExpOnly};
  default: return std::nullopt;
  }
}

double decodeSmallFloat(const SmallFloat &f, uint32_t bits) {
  uint32_t expMask = (1u << f.expBits) - 1, mantMask = (1u << f.mantBits) - 1;
  uint32_t exp = (bits >> f.mantBits) & expMask, mant = bits & mantMask;
  bool neg = f.kind != SmallFloat::ExpOnly && (bits >> (f.expBits + f.mantBits)) & 1;
  double nan = std::numeric_limits<double>::quiet_NaN();
  switch (f.kind) {
  case SmallFloat::Ieee:
    if (exp == expMask)
      return mant ? nan : neg ? -INFINITY : INFINITY;
    break;
  case SmallFloat::FiniteNan:
    if (exp == expMask && mant == mantMask)
      return nan;
    break;
  case SmallFloat::Fnuz:
    if (bits == 0x80)
      return nan;
    break;
  case SmallFloat::ExpOnly:
    return exp == expMask ? nan : std::ldexp(1.0, int(exp) - f.bias);
  case SmallFloat::Finite:
    break;
  }
  double v = exp ? std::ldexp(1.0 + std::ldexp(double(mant), -int(f.mantBits)),
                              int(exp) - f.bias)
                 : std::ldexp(double(mant), 1 - f.bias - int(f.mantBits));
  return neg ? -v : v;
}

/// The code nearest to `v` (ties to the even code), by trying them all:
/// there are at most 256.
uint8_t encodeSmallFloat(const SmallFloat &f, double v) {
  unsigned codes = 1u << (f.expBits + f.mantBits + (f.kind != SmallFloat::ExpOnly));
  int best = -1;
  double bestErr = 0;
  for (unsigned c = 0; c < codes; ++c) {
    double d = decodeSmallFloat(f, c);
    if (std::isnan(v) || std::isnan(d)) {
      if (std::isnan(v) && std::isnan(d))
        return static_cast<uint8_t>(c);
      continue;
    }
    double err = d == v ? 0 : std::fabs(d - v);
    if (best < 0 || err < bestErr || (err == bestErr && !(c & 1) && (best & 1))) {
      best = int(c);
      bestErr = err;
    }
  }
  return static_cast<uint8_t>(best);
}

/// i4, u4, i2, u2: their width and signedness.
std::optional<std::pair<unsigned, bool>> smallInt(kiln_dtype t) {
  switch (t) {
  case KILN_DTYPE_I4: return std::make_pair(4u, true);
  case KILN_DTYPE_U4: return std::make_pair(4u, false);
  case KILN_DTYPE_I2: return std::make_pair(2u, true);
  case KILN_DTYPE_U2: return std::make_pair(2u, false);
  default: return std::nullopt;
  }
}

} // namespace

bool isFloat(kiln_dtype t) {
  return t == KILN_DTYPE_F16 || t == KILN_DTYPE_F32 || t == KILN_DTYPE_F64 ||
         t == KILN_DTYPE_BF16 || smallFloat(t);
}

bool isSmallInt(kiln_dtype t) { return smallInt(t).has_value(); }

double loadElement(kiln_dtype t, const uint8_t *p) {
  if (auto f = smallFloat(t))
    return decodeSmallFloat(*f, *p);
  if (auto si = smallInt(t)) {
    unsigned bits = si->first;
    int v = *p & ((1 << bits) - 1);
    return si->second && v >> (bits - 1) ? v - (1 << bits) : v;
  }
  auto get = [&](auto v) {
    std::memcpy(&v, p, sizeof(v));
    return v;
  };
  switch (t) {
  case KILN_DTYPE_F32: return get(float());
  case KILN_DTYPE_F64: return get(double());
  case KILN_DTYPE_F16: return halfToFloat(get(uint16_t()));
  case KILN_DTYPE_BF16: return bf16ToFloat(get(uint16_t()));
  case KILN_DTYPE_I8: return get(int8_t());
  case KILN_DTYPE_I16: return get(int16_t());
  case KILN_DTYPE_I32: return get(int32_t());
  case KILN_DTYPE_I64: return static_cast<double>(get(int64_t()));
  case KILN_DTYPE_U8: return get(uint8_t());
  case KILN_DTYPE_BOOL: return get(uint8_t()) != 0;
  case KILN_DTYPE_U16: return get(uint16_t());
  case KILN_DTYPE_U32: return get(uint32_t());
  case KILN_DTYPE_U64: return static_cast<double>(get(uint64_t()));
  default: return 0; // The small types, handled above.
  }
}

bool storeLiteral(kiln_dtype t, uint8_t *p, const std::string &tok) {
  if (tok.empty())
    return false;
  auto put = [&](auto v) { std::memcpy(p, &v, sizeof(v)); };
  char *end = nullptr;
  errno = 0;
  if (isFloat(t)) {
    double v = std::strtod(tok.c_str(), &end);
    if (*end)
      return false;
    float f = static_cast<float>(v);
    if (auto sf = smallFloat(t))
      return put(encodeSmallFloat(*sf, v)), true;
    switch (t) {
    case KILN_DTYPE_F64: put(v); break;
    case KILN_DTYPE_F32: put(f); break;
    case KILN_DTYPE_F16: put(floatToHalf(f)); break;
    default: put(floatToBf16(f));
    }
    return true;
  }
  if (t == KILN_DTYPE_BOOL) {
    if (tok == "1" || tok == "true" || tok == "True")
      return put(uint8_t(1)), true;
    if (tok == "0" || tok == "false" || tok == "False")
      return put(uint8_t(0)), true;
    return false;
  }
  bool isUnsigned = t == KILN_DTYPE_U8 || t == KILN_DTYPE_U16 ||
                    t == KILN_DTYPE_U32 || t == KILN_DTYPE_U64;
  if (isUnsigned) {
    if (tok[0] == '-')
      return false;
    unsigned long long v = std::strtoull(tok.c_str(), &end, 0);
    if (*end || errno)
      return false;
    size_t bits = kiln_dtype_size(t) * 8;
    if (bits < 64 && v >> bits)
      return false;
    switch (t) {
    case KILN_DTYPE_U8: put(uint8_t(v)); break;
    case KILN_DTYPE_U16: put(uint16_t(v)); break;
    case KILN_DTYPE_U32: put(uint32_t(v)); break;
    default: put(uint64_t(v));
    }
    return true;
  }
  if (auto si = smallInt(t)) {
    long long v = std::strtoll(tok.c_str(), &end, 0);
    long long lo = si->second ? -(1ll << (si->first - 1)) : 0;
    long long hi = si->second ? (1ll << (si->first - 1)) - 1 : (1ll << si->first) - 1;
    if (*end || errno || v < lo || v > hi)
      return false;
    return put(uint8_t(v & ((1 << si->first) - 1))), true;
  }
  long long v = std::strtoll(tok.c_str(), &end, 0);
  if (*end || errno)
    return false;
  size_t bits = kiln_dtype_size(t) * 8;
  if (bits < 64 && (v < -(1ll << (bits - 1)) || v >= (1ll << (bits - 1))))
    return false;
  switch (t) {
  case KILN_DTYPE_I8: put(int8_t(v)); break;
  case KILN_DTYPE_I16: put(int16_t(v)); break;
  case KILN_DTYPE_I32: put(int32_t(v)); break;
  default: put(int64_t(v));
  }
  return true;
}

} // namespace kiln::tooling

//===- element.h - Reading and writing single tensor elements ---*- C++ -*-===//
//
// Every element type of the C API to and from double, for printing values
// and parsing literals: the IEEE floats, bf16, the one-byte floats
// (float8 e4m3fn/e4m3fnuz/e5m2/e5m2fnuz/e8m0, float4e2m1), the integers
// (sub-byte ones one per byte, as buffers hold them) and bool.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_RUNTIME_TOOLING_ELEMENT_H
#define KILN_RUNTIME_TOOLING_ELEMENT_H

#include "kiln/runtime.h"

#include <cstdint>
#include <string>

namespace kiln::tooling {

/// Floating-point types, small floats included.
bool isFloat(kiln_dtype t);

/// Integers of fewer than 8 bits: i4, u4, i2, u2.
bool isSmallInt(kiln_dtype t);

/// The element of type `t` at `p`, as a double (i64/u64 beyond 2^53 round).
double loadElement(kiln_dtype t, const uint8_t *p);

/// Parses one literal element of type `t` ("1.5", "-3", "0x10", "true")
/// into `p`, rounding floats to nearest even; false when `text` is not a
/// number of that type or does not fit it.
bool storeLiteral(kiln_dtype t, uint8_t *p, const std::string &text);

} // namespace kiln::tooling

#endif // KILN_RUNTIME_TOOLING_ELEMENT_H

//===- npy.h - NumPy .npy files for kiln-run and tests ----------*- C++ -*-===//
//
// C-order, little-endian arrays only: that is what the runtime consumes, and
// anything else gets an error naming the file rather than a silent copy.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_RUNTIME_NPY_H
#define KILN_RUNTIME_NPY_H

#include "kiln/runtime.h"

#include <cstdint>
#include <string>
#include <vector>

namespace kiln::npy {

struct Array {
  kiln_dtype dtype = KILN_DTYPE_F32;
  std::vector<int64_t> shape;
  std::vector<uint8_t> data;
};

/// Reads versions 1.0, 2.0 and 3.0. Returns "" or an error naming `path`.
std::string read(const std::string &path, Array &out);
/// Writes version 1.0 (2.0 if the header needs it) atomically: temporary
/// file in the same directory, then rename. Returns "" or an error.
std::string write(const std::string &path, const Array &array);

} // namespace kiln::npy

#endif // KILN_RUNTIME_NPY_H

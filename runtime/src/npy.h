//===- npy.h - NumPy .npy files for kiln-run and tests ----------*- C++ -*-===//
//
// C-order, little-endian arrays only: that is what the runtime consumes, and
// anything else gets an error naming the file rather than a silent copy.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_RUNTIME_NPY_H
#define KILN_RUNTIME_NPY_H

#include "kiln/runtime.h"

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

namespace kiln::npy {

struct Array {
  kiln_dtype dtype = KILN_DTYPE_F32;
  std::vector<int64_t> shape;
  std::vector<uint8_t> data;
};

/// Whether `t` numbers an element type the runtime has (a kiln_dtype, as
/// ONNX numbers them). Check before storing a number read from a file as a
/// kiln_dtype: any other value is undefined behaviour in C++.
bool isKilnDtype(int64_t t);

/// Whole-file helpers shared by the tensor file codecs (.npy, ONNX .pb).
/// Both return "" or an error naming `path`.
std::string readFile(const std::string &path, std::vector<uint8_t> &bytes);
/// Writes the pieces in order through a temporary file in the same
/// directory and a rename, so a failure leaves any existing file intact.
struct Piece {
  const void *data;
  size_t size;
};
std::string writeFileAtomically(const std::string &path, std::initializer_list<Piece> pieces);

/// Reads versions 1.0, 2.0 and 3.0. Returns "" or an error naming `path`.
std::string read(const std::string &path, Array &out);
/// Writes version 1.0 (2.0 if the header needs it) atomically: temporary
/// file in the same directory, then rename. Returns "" or an error.
std::string write(const std::string &path, const Array &array);

} // namespace kiln::npy

#endif // KILN_RUNTIME_NPY_H

//===- tensor_proto.h - ONNX TensorProto files for kiln-run -----*- C++ -*-===//
//
// Decodes a serialized onnx.TensorProto (the input_N.pb / output_N.pb files of
// ONNX's backend test data) straight from the protobuf wire format, so that
// kiln-run and the runtime stay free of libprotobuf. Only dense, in-file
// tensors of the element types the runtime has are accepted; anything else
// gets an error naming the file and the reason.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_RUNTIME_TENSOR_PROTO_H
#define KILN_RUNTIME_TENSOR_PROTO_H

#include "npy.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace kiln::tensor_proto {

/// Decodes `size` bytes holding one TensorProto into `out` (row-major,
/// little-endian elements) and its name into `name` (may be empty). Returns ""
/// or an error message (without a file name).
std::string decode(const uint8_t *bytes, size_t size, npy::Array &out,
                   std::string &name);

/// Reads and decodes the file at `path`. Returns "" or an error naming `path`.
std::string read(const std::string &path, npy::Array &out,
                 std::string *name = nullptr);

/// Encodes `array` as a TensorProto (dims, data_type, name, raw_data).
std::vector<uint8_t> encode(const npy::Array &array, const std::string &name);

/// Writes encode(array, name) to `path` atomically (see npy::writeFileAtomically).
/// Returns "" or an error naming `path`.
std::string write(const std::string &path, const npy::Array &array,
                  const std::string &name);

/// True if `path` names a TensorProto file by extension (.pb, .onnxtensor).
bool hasTensorProtoExtension(const std::string &path);

} // namespace kiln::tensor_proto

#endif // KILN_RUNTIME_TENSOR_PROTO_H

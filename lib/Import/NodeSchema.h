//===- NodeSchema.h - Nodes checked against onnx's op schemas ---*- C++ -*-===//
//
// Before a handler sees a node, its shape is checked against the schema
// onnx defines for its op at the model's opset (OnnxSchemas.inc, generated
// from onnx by gen_onnx_schemas.py): how many inputs and outputs, which
// inputs may be left empty, which attributes exist, their kinds, which are
// required, and the element types each input may have. Handlers can then index inputs and read attributes without
// guarding against malformed nodes.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_LIB_IMPORT_NODESCHEMA_H
#define KILN_LIB_IMPORT_NODESCHEMA_H

#include "onnx.pb.h"

#include "llvm/ADT/STLFunctionalExtras.h"
#include "llvm/ADT/StringRef.h"

#include <cstdint>
#include <optional>
#include <string>

namespace kiln::detail {

/// Why `node` does not fit the schema of its op (domain "" is ai.onnx) at
/// `opset`, or "" when it fits or onnx defines no such op at that opset
/// (the registry then reports the op as unsupported). `typeOf(i)` is input
/// i's TensorProto data type, or nothing where it is not a plain tensor or
/// not known; those inputs' types are not checked.
std::string checkNodeSchema(const onnx::NodeProto &node, llvm::StringRef domain, int64_t opset,
                            llvm::function_ref<std::optional<int>(unsigned)> typeOf);

} // namespace kiln::detail

#endif // KILN_LIB_IMPORT_NODESCHEMA_H

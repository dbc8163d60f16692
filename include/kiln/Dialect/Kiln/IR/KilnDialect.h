//===- KilnDialect.h - Kiln dialect -----------------------------*- C++ -*-===//
#ifndef KILN_DIALECT_KILN_IR_KILNDIALECT_H
#define KILN_DIALECT_KILN_IR_KILNDIALECT_H

#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Dialect.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/IR/SymbolTable.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#include "kiln/Dialect/Kiln/IR/KilnOpsDialect.h.inc"

#define GET_OP_CLASSES
#include "kiln/Dialect/Kiln/IR/KilnOps.h.inc"

namespace kiln {
/// Attribute names shared by the passes and the artifact builder.
inline constexpr llvm::StringLiteral kExecutableAttr = "kiln.executable";
inline constexpr llvm::StringLiteral kWorkgroupsAttr = "kiln.workgroups";
/// On a kernel: the ONNX nodes it computes, "Conv(conv1) + Relu(relu1)"
/// (dispatch formation; the artifact carries it for profiles).
inline constexpr llvm::StringLiteral kOnnxOpsAttr = "kiln.onnx_ops";
} // namespace kiln

#endif // KILN_DIALECT_KILN_IR_KILNDIALECT_H

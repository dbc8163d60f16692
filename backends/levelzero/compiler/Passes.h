//===- Passes.h - the levelzero backend's passes ----------------*- C++ -*-===//
#ifndef KILN_BACKENDS_LEVELZERO_PASSES_H
#define KILN_BACKENDS_LEVELZERO_PASSES_H

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/SPIRV/IR/SPIRVDialect.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/Pass.h"

namespace kiln {
#define GEN_PASS_DECL
#define GEN_PASS_REGISTRATION
#include "backends/levelzero/compiler/Passes.h.inc"
} // namespace kiln

#endif // KILN_BACKENDS_LEVELZERO_PASSES_H

//===- Passes.h - the cpu backend's passes ----------------------*- C++ -*-===//
#ifndef KILN_BACKENDS_CPU_COMPILER_PASSES_H
#define KILN_BACKENDS_CPU_COMPILER_PASSES_H

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/Pass.h"

namespace kiln {
#define GEN_PASS_DECL
#include "backends/cpu/compiler/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "backends/cpu/compiler/Passes.h.inc"
} // namespace kiln

#endif // KILN_BACKENDS_CPU_COMPILER_PASSES_H

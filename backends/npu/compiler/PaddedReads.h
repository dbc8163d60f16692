//===- PaddedReads.h - Padding fused into a consumer, as plain operands ---===//
#ifndef KILN_BACKENDS_NPU_COMPILER_PADDEDREADS_H
#define KILN_BACKENDS_NPU_COMPILER_PADDEDREADS_H

#include "mlir/Dialect/Func/IR/FuncOps.h"

#include <vector>

namespace kiln::npu {

/// An input operand whose indexing map may leave its memref's bounds; reads
/// outside give `pad`.
struct PaddedOperand {
  mlir::Operation *op;
  unsigned operand;
  float pad;
};

/// Rewrites the bounds-checked reads padding leaves in generic bodies of
/// `fn` (in place) into input operands, and lists them.
std::vector<PaddedOperand> exposePaddedReads(mlir::func::FuncOp fn);

} // namespace kiln::npu

#endif

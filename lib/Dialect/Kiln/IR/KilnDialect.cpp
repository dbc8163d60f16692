//===- KilnDialect.cpp - Kiln dialect ---------------------------*- C++ -*-===//
#include "kiln/Dialect/Kiln/IR/KilnDialect.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/OpImplementation.h"

using namespace mlir;
using namespace kiln;

#include "kiln/Dialect/Kiln/IR/KilnOpsDialect.cpp.inc"

void KilnDialect::initialize() {
  addOperations<
#define GET_OP_LIST
#include "kiln/Dialect/Kiln/IR/KilnOps.cpp.inc"
      >();
}

LogicalResult DispatchOp::verifySymbolUses(SymbolTableCollection &symbolTable) {
  Operation *symbol = symbolTable.lookupNearestSymbolFrom(*this, getKernelAttr());
  if (!symbol)
    return emitOpError() << "kernel " << getKernelAttr() << " not found";
  // Once a backend has lowered the kernel it is no longer a func.func; its
  // signature was checked before.
  auto kernel = dyn_cast<func::FuncOp>(symbol);
  if (!kernel)
    return success();
  FunctionType type = kernel.getFunctionType();
  // Before bufferization a kernel maps inputs to results; after it, results
  // are trailing out-parameters and the kernel returns nothing.
  if (type.getNumResults() == 0) {
    if (type.getNumInputs() != getInputs().size() + getResults().size())
      return emitOpError() << "kernel takes " << type.getNumInputs()
                           << " buffers, dispatch binds "
                           << getInputs().size() + getResults().size();
    return success();
  }
  if (TypeRange(type.getInputs()) != getInputs().getTypes() ||
      TypeRange(type.getResults()) != getResults().getTypes())
    return emitOpError() << "type mismatch with kernel " << getKernelAttr()
                         << " of type " << type;
  return success();
}

#define GET_OP_CLASSES
#include "kiln/Dialect/Kiln/IR/KilnOps.cpp.inc"

//===- BufferizeKernels.cpp - kernels onto caller-owned buffers -----------===//
#include "kiln/Transforms/Passes.h"

#include "mlir/Dialect/Bufferization/IR/BufferizableOpInterface.h"
#include "mlir/Dialect/Bufferization/Transforms/OneShotAnalysis.h"
#include "mlir/Dialect/Bufferization/Transforms/Transforms.h"
#include "mlir/Dialect/Arith/Transforms/BufferizableOpInterfaceImpl.h"
#include "mlir/Dialect/Linalg/Transforms/BufferizableOpInterfaceImpl.h"
#include "mlir/Dialect/SCF/Transforms/BufferizableOpInterfaceImpl.h"
#include "mlir/Dialect/Tensor/Transforms/BufferizableOpInterfaceImpl.h"
#include "mlir/IR/PatternMatch.h"

namespace kiln {
#define GEN_PASS_DEF_BUFFERIZEKERNELS
#include "kiln/Transforms/Passes.h.inc"
} // namespace kiln

using namespace mlir;

namespace {

MemRefType bufferType(Type t) {
  auto tt = cast<RankedTensorType>(t);
  return MemRefType::get(tt.getShape(), tt.getElementType());
}

/// (tensor inputs) -> results  ==>  (memref inputs, memref outputs) -> ().
void rewriteSignature(func::FuncOp kernel) {
  Block &entry = kernel.getBody().front();
  auto ret = cast<func::ReturnOp>(entry.getTerminator());
  OpBuilder b(kernel.getContext());
  b.setInsertionPointToStart(&entry);
  unsigned numInputs = entry.getNumArguments();
  for (unsigned i = 0; i < numInputs; ++i) {
    BlockArgument old = entry.getArgument(i);
    BlockArgument buf = entry.addArgument(bufferType(old.getType()), old.getLoc());
    // Inputs are never written and never alias an output: `restrict`.
    Value t = bufferization::ToTensorOp::create(b, old.getLoc(), old.getType(), buf,
                                                /*restrict=*/true, /*writable=*/false);
    old.replaceAllUsesWith(t);
  }
  b.setInsertionPoint(ret);
  for (Value v : ret.getOperands()) {
    BlockArgument out = entry.addArgument(bufferType(v.getType()), ret.getLoc());
    bufferization::MaterializeInDestinationOp::create(b, ret.getLoc(), TypeRange{}, v, out,
                                                      /*restrict=*/true, /*writable=*/true);
  }
  func::ReturnOp::create(b, ret.getLoc());
  ret.erase();
  entry.eraseArguments(0, numInputs);
  kernel.setType(b.getFunctionType(entry.getArgumentTypes(), {}));
}

struct BufferizeKernelsPass : kiln::impl::BufferizeKernelsBase<BufferizeKernelsPass> {
  void getDependentDialects(DialectRegistry &registry) const override {
    BufferizeKernelsBase::getDependentDialects(registry);
    arith::registerBufferizableOpInterfaceExternalModels(registry);
    linalg::registerBufferizableOpInterfaceExternalModels(registry);
    scf::registerBufferizableOpInterfaceExternalModels(registry);
    tensor::registerBufferizableOpInterfaceExternalModels(registry);
    registry.insert<linalg::LinalgDialect>();
  }

  void runOnOperation() override {
    ModuleOp module = getOperation();
    if (!module->hasAttr(kiln::kExecutableAttr))
      return;
    for (auto kernel : module.getOps<func::FuncOp>())
      if (kernel.getNumResults() > 0)
        rewriteSignature(kernel);

    IRRewriter rewriter(module.getContext());
    if (failed(bufferization::eliminateEmptyTensors(rewriter, module)))
      return signalPassFailure();

    bufferization::OneShotBufferizationOptions options;
    options.setFunctionBoundaryTypeConversion(
        bufferization::LayoutMapOption::IdentityLayoutMap);
    // Temporaries are per-workgroup tiles: the stack is the right home and
    // needs no free.
    options.allocationFn = [](OpBuilder &b, Location loc, MemRefType type,
                              ValueRange dynShape, unsigned alignment) -> FailureOr<Value> {
      return memref::AllocaOp::create(b, loc, type, dynShape, b.getI64IntegerAttr(64))
          .getResult();
    };
    // A linalg copy lowers to plain loops on every target (memref.copy of a
    // strided view would need a runtime library).
    options.memCpyFn = [](OpBuilder &b, Location loc, Value from, Value to) {
      linalg::CopyOp::create(b, loc, from, to);
      return success();
    };
    bufferization::BufferizationState state;
    if (failed(bufferization::runOneShotBufferize(module, options, state)))
      return signalPassFailure();
  }
};

} // namespace

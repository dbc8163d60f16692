//===- ApproximateMath.cpp - vectorizable exp, tanh, erf, log -------------===//
//
// kiln-cpu-approximate-math: math.exp, tanh, erf, log (and their f32
// relatives) become upstream's polynomial approximations, made of arith ops
// and FMAs. As libm calls they would stay scalar calls inside every loop
// (one per element of a GELU or a softmax) and split the micro-kernel's
// vectors back into lanes; as arithmetic LLVM vectorizes them. Upstream
// documents these as accurate to a few ulp over f32; the conformance and
// end-to-end suites check them against onnxruntime at the usual tolerances.
// Functions without an approximation, or not listed here, stay libm calls.
//
//===----------------------------------------------------------------------===//
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Math/Transforms/Passes.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/Pass/Pass.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

using namespace mlir;

namespace {

struct ApproximateMathPass : PassWrapper<ApproximateMathPass, OperationPass<func::FuncOp>> {
  MLIR_DEFINE_EXPLICIT_INTERNAL_INLINE_TYPE_ID(ApproximateMathPass)
  StringRef getArgument() const final { return "kiln-cpu-approximate-math"; }
  StringRef getDescription() const final {
    return "Replace exp/tanh/erf/log by vectorizable polynomial approximations";
  }
  void getDependentDialects(DialectRegistry &registry) const override {
    registry.insert<arith::ArithDialect, math::MathDialect, vector::VectorDialect>();
  }

  void runOnOperation() override {
    auto approximated = [](StringRef name) {
      return llvm::is_contained({math::ExpOp::getOperationName(),
                                 math::ExpM1Op::getOperationName(),
                                 math::TanhOp::getOperationName(),
                                 math::ErfOp::getOperationName(),
                                 math::LogOp::getOperationName(),
                                 math::Log1pOp::getOperationName(),
                                 math::Log2Op::getOperationName()},
                                name);
    };
    RewritePatternSet patterns(&getContext());
    populateMathPolynomialApproximationPatterns(patterns, approximated);
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      return signalPassFailure();
  }
};

} // namespace

void registerCpuApproximateMath() { static PassRegistration<ApproximateMathPass> p; }

//===- ApproximateMath.cpp - vectorizable exp, tanh, erf, log -------------===//
//
// kiln-cpu-approximate-math: math.exp, tanh, erf, log (and their f32
// relatives) become upstream's polynomial approximations, made of arith ops
// and FMAs. As libm calls they would stay scalar calls inside every loop
// (one per element of a GELU or a softmax) and split the micro-kernel's
// vectors back into lanes; as arithmetic LLVM vectorizes them. Upstream
// documents these as accurate to a few ulp over f32; the conformance and
// end-to-end suites check them against onnxruntime at the usual tolerances.
// Functions without an approximation, or not listed here, stay libm calls,
// except powf by a small integer or one half (GPT-2's GELU cubes its input),
// which becomes multiplications or a square root.
//
//===----------------------------------------------------------------------===//
#include "Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Math/Transforms/Passes.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/Matchers.h"
#include "mlir/Pass/Pass.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

#include <cmath>

namespace kiln {
#define GEN_PASS_DEF_CPUAPPROXIMATEMATH
#include "backends/cpu/compiler/Passes.h.inc"
} // namespace kiln

using namespace mlir;

namespace {

/// x^n for a constant integer |n| <= 4 as multiplications (a reciprocal for
/// n < 0), x^0.5 as sqrt. Looks through the broadcast that puts a constant
/// exponent into a vector.
struct PowByConstant : OpRewritePattern<math::PowFOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(math::PowFOp op, PatternRewriter &rewriter) const override {
    Value e = op.getRhs();
    if (auto bcast = e.getDefiningOp<vector::BroadcastOp>())
      e = bcast.getSource();
    Attribute value;
    if (!matchPattern(e, m_Constant(&value)))
      return failure();
    if (auto splat = dyn_cast<SplatElementsAttr>(value))
      value = splat.getSplatValue<Attribute>();
    auto attr = dyn_cast<FloatAttr>(value);
    if (!attr)
      return failure();
    double n = attr.getValueAsDouble();
    Location loc = op.getLoc();
    Value x = op.getLhs();
    if (n == 0.5) {
      rewriter.replaceOpWithNewOp<math::SqrtOp>(op, x);
      return success();
    }
    if (n != std::floor(n) || std::abs(n) > 4 || n == 0)
      return failure();
    Value r = x;
    for (int i = 1; i < (int)std::abs(n); ++i)
      r = arith::MulFOp::create(rewriter, loc, r, x);
    if (n < 0) {
      Value one = arith::ConstantOp::create(rewriter, loc, x.getType(),
                                            rewriter.getOneAttr(x.getType()));
      r = arith::DivFOp::create(rewriter, loc, one, r);
    }
    rewriter.replaceOp(op, r);
    return success();
  }
};

struct ApproximateMathPass : kiln::impl::CpuApproximateMathBase<ApproximateMathPass> {

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
    patterns.add<PowByConstant>(&getContext());
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      return signalPassFailure();
  }
};

} // namespace

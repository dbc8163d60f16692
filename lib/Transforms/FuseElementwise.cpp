//===- FuseElementwise.cpp - elementwise fusion that keeps vector layouts --===//
#include "kiln/Transforms/Passes.h"

#include "mlir/Dialect/Linalg/Transforms/Transforms.h"
#include "mlir/Dialect/Tensor/Transforms/Transforms.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace kiln {
#define GEN_PASS_DEF_FUSEELEMENTWISE
#include "kiln/Transforms/Passes.h.inc"
} // namespace kiln

using namespace mlir;

namespace {

/// A generic that copies its one input through a non-identity permutation.
bool isTranspose(Operation *op) {
  auto g = dyn_cast_or_null<linalg::GenericOp>(op);
  if (!g || g.getNumDpsInputs() != 1 || g.getNumDpsInits() != 1 ||
      g.getNumParallelLoops() != g.getNumLoops())
    return false;
  auto yield = cast<linalg::YieldOp>(g.getRegion().front().getTerminator());
  if (yield.getNumOperands() != 1 || yield.getOperand(0) != g.getRegion().front().getArgument(0))
    return false;
  AffineMap in = g.getIndexingMapsArray()[0], out = g.getIndexingMapsArray()[1];
  return in.isPermutation() && out.isPermutation() && in != out;
}

/// A generic whose body indexes memory itself (Pad's bounds-checked loads,
/// Gather): fused into a contraction its operand would no longer be an
/// affine load that a vector micro-kernel can issue.
bool isGather(Operation *op) {
  auto g = dyn_cast_or_null<linalg::GenericOp>(op);
  if (!g)
    return false;
  WalkResult r = g.getRegion().walk([](Operation *inner) {
    return isa<linalg::IndexOp, tensor::ExtractOp>(inner) ? WalkResult::interrupt()
                                                          : WalkResult::advance();
  });
  return r.wasInterrupted();
}

/// A producer a contraction may recompute: it reads each operand element
/// once per tile of the other operand (N / Nr times for lhs), so only data
/// movement and casts (f16 -> f32, i8 -> i32) pay for themselves. A GELU
/// fused into a down-projection's lhs is evaluated 24 times per element at
/// BERT's sizes; materialized it is one pass, usually an epilogue of the
/// contraction before.
bool isCheap(Operation *op) {
  auto g = dyn_cast_or_null<linalg::GenericOp>(op);
  if (!g || isGather(op))
    return false;
  Block &body = g.getRegion().front();
  return llvm::all_of(body.without_terminator(), [](Operation &inner) {
    return isa<arith::ExtFOp, arith::TruncFOp, arith::ExtSIOp, arith::ExtUIOp, arith::SIToFPOp,
               arith::UIToFPOp, arith::BitcastOp>(inner);
  });
}

bool multiplies(linalg::LinalgOp op) {
  return llvm::any_of(op.getBlock()->getOperations(),
                      [](Operation &inner) { return isa<arith::MulFOp, arith::MulIOp>(inner); });
}

struct FuseElementwisePass : kiln::impl::FuseElementwiseBase<FuseElementwisePass> {
  void runOnOperation() override {
    MLIRContext *ctx = &getContext();
    // Upstream's rule (a producer with one use); into a contraction only
    // cheap producers that are not transposes.
    linalg::ControlFusionFn control = [](OpOperand *fused) {
      Operation *producer = fused->get().getDefiningOp();
      if (!producer || !producer->hasOneUse())
        return false;
      auto consumer = dyn_cast<linalg::LinalgOp>(fused->getOwner());
      // Contractions only: a pooling window keeps its bounds-checked reads.
      if (!consumer || consumer.getNumReductionLoops() == 0 || !multiplies(consumer))
        return true;
      return !isTranspose(producer) && isCheap(producer);
    };
    // The pattern set of upstream's linalg-fuse-elementwise-ops.
    RewritePatternSet patterns(ctx);
    linalg::populateElementwiseOpsFusionPatterns(patterns, control);
    linalg::populateFoldReshapeOpsByExpansionPatterns(patterns, control);
    tensor::populateBubbleUpExpandShapePatterns(patterns);
    affine::AffineApplyOp::getCanonicalizationPatterns(patterns, ctx);
    linalg::GenericOp::getCanonicalizationPatterns(patterns, ctx);
    tensor::ExpandShapeOp::getCanonicalizationPatterns(patterns, ctx);
    tensor::CollapseShapeOp::getCanonicalizationPatterns(patterns, ctx);
    ctx->getLoadedDialect<linalg::LinalgDialect>()->getCanonicalizationPatterns(patterns);
    linalg::populateConstantFoldLinalgOperations(patterns, control);
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns),
                                     GreedyRewriteConfig().setUseTopDownTraversal(true))))
      return signalPassFailure();
  }
};

} // namespace

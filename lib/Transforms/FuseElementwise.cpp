//===- FuseElementwise.cpp - elementwise fusion that keeps vector layouts --===//
#include "kiln/Transforms/Passes.h"

#include "mlir/Dialect/Linalg/Transforms/Transforms.h"
#include "mlir/Dialect/Tensor/Transforms/Transforms.h"
#include "mlir/Dialect/Utils/ReshapeOpsUtils.h"
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

bool isContraction(Operation *op) {
  auto g = dyn_cast_or_null<linalg::LinalgOp>(op);
  return g && g.getNumReductionLoops() > 0;
}

/// An op that reads a contraction's result as its only user: the
/// contraction's epilogue once FormDispatches puts them in one kernel.
bool isEpilogue(Operation *op) {
  auto g = dyn_cast_or_null<linalg::LinalgOp>(op);
  return g && llvm::any_of(g.getDpsInputs(), [](Value v) {
           return isContraction(v.getDefiningOp()) && v.hasOneUse();
         });
}

/// `v` viewed as `shape` (same element count) through its flat 1-D form;
/// both steps are views of a contiguous tensor.
Value reshapeTo(PatternRewriter &rewriter, Location loc, Value v, ArrayRef<int64_t> shape) {
  auto type = cast<RankedTensorType>(v.getType());
  if (type.getShape() == shape)
    return v;
  auto all = [](int64_t rank) {
    ReassociationIndices r = llvm::to_vector(llvm::seq<int64_t>(0, rank));
    return SmallVector<ReassociationIndices>{r};
  };
  auto flatType = RankedTensorType::get({type.getNumElements()}, type.getElementType());
  Value flat = type.getRank() == 1
                   ? v
                   : tensor::CollapseShapeOp::create(rewriter, loc, flatType, v, all(type.getRank()));
  if (shape.size() == 1)
    return flat;
  return tensor::ExpandShapeOp::create(rewriter, loc, type.clone(shape), flat, all(shape.size()));
}

/// Elementwise code reading a linalg op's result through reshapes that no
/// single view expresses (a 1x1 convolution computed as a matmul over the
/// flattened image, viewed back as [N, F, H, W]) runs in the producer's
/// shape instead, its other operands viewed that way too: it then reads the
/// result directly, so it fuses with an elementwise producer or becomes a
/// contraction's epilogue (FormDispatches, the cpu micro-kernel) instead of
/// another pass over memory. Only identity maps: an elementwise op on
/// row-major tensors does not care how their elements are grouped into
/// dims, a broadcast does.
struct ElementwiseInContractionShape : OpRewritePattern<linalg::GenericOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(linalg::GenericOp op, PatternRewriter &rewriter) const override {
    Block &body = op.getRegion().front();
    if (!op.hasPureTensorSemantics() || op.getNumDpsInits() != 1 ||
        op.getNumLoops() != op.getNumParallelLoops() || isGather(op) ||
        !llvm::all_of(op.getIndexingMapsArray(), [](AffineMap m) { return m.isIdentity(); }) ||
        !body.getArgument(op.getNumDpsInputs()).use_empty())
      return failure();
    // Already reading a producer it can fuse with directly (of two, only one
    // can be fused): moving on would undo that, and the expansion patterns
    // would move it back.
    if (llvm::any_of(op.getDpsInputs(), [](Value v) {
          return v.getDefiningOp<linalg::LinalgOp>() && v.hasOneUse();
        }))
      return failure();
    Value source;
    OpOperand *reshaped = nullptr;
    for (OpOperand *in : op.getDpsInputOperands()) {
      Value v = in->get();
      Operation *def = v.getDefiningOp();
      while (def && isa<tensor::CollapseShapeOp, tensor::ExpandShapeOp>(def) && def->hasOneUse()) {
        v = def->getOperand(0);
        def = v.getDefiningOp();
      }
      auto producer = dyn_cast_or_null<linalg::LinalgOp>(def);
      if (v != in->get() && producer && v.hasOneUse() &&
          cast<RankedTensorType>(v.getType()).hasStaticShape()) {
        source = v;
        reshaped = in;
        break;
      }
    }
    auto resultType = cast<RankedTensorType>(op->getResult(0).getType());
    if (!source || !resultType.hasStaticShape() || resultType.getRank() == 0 ||
        cast<RankedTensorType>(source.getType()).getRank() == 0)
      return failure(); // a scalar has no flat 1-D form to go through
    ArrayRef<int64_t> shape = cast<RankedTensorType>(source.getType()).getShape();
    // One collapse or expand of an elementwise result is upstream's to fold
    // (by expanding the consumer or the producer); moving here would undo
    // that. Contractions and their epilogues are not expanded (the vector
    // dim would shrink), so their consumers move whatever the reshapes.
    Operation *producer = source.getDefiningOp();
    if (!isContraction(producer) && !isEpilogue(producer) &&
        getReassociationIndicesForReshape(cast<ShapedType>(source.getType()), resultType))
      return failure();

    Location loc = op.getLoc();
    SmallVector<Value> inputs;
    for (OpOperand *in : op.getDpsInputOperands())
      inputs.push_back(in == reshaped ? source : reshapeTo(rewriter, loc, in->get(), shape));
    Value init = tensor::EmptyOp::create(rewriter, loc, shape, resultType.getElementType());
    AffineMap id = rewriter.getMultiDimIdentityMap(shape.size());
    auto moved = linalg::GenericOp::create(
        rewriter, loc, TypeRange{init.getType()}, inputs, ValueRange{init},
        SmallVector<AffineMap>(inputs.size() + 1, id),
        SmallVector<utils::IteratorType>(shape.size(), utils::IteratorType::parallel));
    rewriter.inlineRegionBefore(op.getRegion(), moved.getRegion(), moved.getRegion().begin());
    rewriter.replaceOp(op, reshapeTo(rewriter, loc, moved->getResult(0), resultType.getShape()));
    return success();
  }
};

struct FuseElementwisePass : kiln::impl::FuseElementwiseBase<FuseElementwisePass> {
  using FuseElementwiseBase::FuseElementwiseBase;

  void runOnOperation() override {
    MLIRContext *ctx = &getContext();
    // Upstream's rule (a producer with one use); into a contraction only
    // cheap producers that are not transposes.
    linalg::ControlFusionFn control = [pools = poolsReadPadding.getValue()](OpOperand *fused) {
      Operation *producer = fused->get().getDefiningOp();
      if (!producer || !producer->hasOneUse())
        return false;
      auto consumer = dyn_cast<linalg::LinalgOp>(fused->getOwner());
      // Folding a reshape by expanding an epilogue (the consumer of a
      // collapse, the producer of an expand) would have it read its
      // contraction through a reshape (ElementwiseInContractionShape put it
      // where it reads it directly).
      if ((isa<tensor::CollapseShapeOp>(producer) && isEpilogue(consumer)) ||
          (isa<tensor::ExpandShapeOp>(fused->getOwner()) && isEpilogue(producer)))
        return false;
      // Contractions only: a pooling window keeps its bounds-checked reads,
      // unless the target pads in the pool's kernel (then the pool is a
      // register-tiled reduction over a plain view, like a convolution).
      if (!consumer || consumer.getNumReductionLoops() == 0 || (!multiplies(consumer) && !pools))
        return true;
      return !isTranspose(producer) && isCheap(producer);
    };
    // The pattern set of upstream's linalg-fuse-elementwise-ops.
    RewritePatternSet patterns(ctx);
    linalg::populateElementwiseOpsFusionPatterns(patterns, control);
    linalg::populateFoldReshapeOpsByExpansionPatterns(patterns, control);
    tensor::populateBubbleUpExpandShapePatterns(patterns);
    patterns.add<ElementwiseInContractionShape>(ctx);
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

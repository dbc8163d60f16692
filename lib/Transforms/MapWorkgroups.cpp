//===- MapWorkgroups.cpp - scf.forall over workgroups -> gpu.block_id -----===//
#include "kiln/Transforms/Passes.h"

#include "mlir/IR/PatternMatch.h"

namespace kiln {
#define GEN_PASS_DEF_MAPWORKGROUPS
#include "kiln/Transforms/Passes.h.inc"
} // namespace kiln

using namespace mlir;

namespace {

struct MapWorkgroupsPass : kiln::impl::MapWorkgroupsBase<MapWorkgroupsPass> {
  void runOnOperation() override {
    func::FuncOp kernel = getOperation();
    if (kernel.isExternal())
      return;
    SmallVector<scf::ForallOp> loops;
    for (auto forall : kernel.getBody().front().getOps<scf::ForallOp>())
      loops.push_back(forall);
    if (loops.empty())
      return;
    if (loops.size() > 1) {
      kernel.emitError("expected one workgroup scf.forall, found ") << loops.size();
      return signalPassFailure();
    }
    scf::ForallOp forall = loops.front();
    if (forall.getRank() > 3 || forall.getNumResults() != 0) {
      forall.emitError("workgroup loop must be a bufferized scf.forall of rank <= 3");
      return signalPassFailure();
    }
    IRRewriter rewriter(kernel.getContext());
    rewriter.setInsertionPoint(forall);
    Location loc = forall.getLoc();
    const gpu::Dimension dims[] = {gpu::Dimension::x, gpu::Dimension::y, gpu::Dimension::z};
    SmallVector<Value> ivs;
    for (int64_t i = 0; i < forall.getRank(); ++i) {
      Value id = gpu::BlockIdOp::create(rewriter, loc, dims[i]);
      Value lb = getValueOrCreateConstantIndexOp(rewriter, loc, forall.getMixedLowerBound()[i]);
      Value step = getValueOrCreateConstantIndexOp(rewriter, loc, forall.getMixedStep()[i]);
      Value offset = arith::MulIOp::create(rewriter, loc, id, step);
      ivs.push_back(arith::AddIOp::create(rewriter, loc, lb, offset));
    }
    Block *body = forall.getBody();
    rewriter.eraseOp(body->getTerminator());
    rewriter.inlineBlockBefore(body, forall, ivs);
    rewriter.eraseOp(forall);
  }
};

} // namespace

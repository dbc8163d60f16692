//===- GuardPaddedReads.cpp - padding reads as conditional loads -----------===//
//
// kiln-cpu-guard-padded-reads: the importer writes padding (Conv and pool
// `pads`, Pad) as `select(inBounds(s), B[clamp(s)], pad)`. The clamp keeps
// the load inside B on every iteration, but it also makes the address of
// consecutive iterations non-consecutive, so LLVM's loop vectorizer can only
// gather, and a padding kernel runs at scalar speed (a fifth of
// mobilenet_v2's time). Where the condition checks an index against both
// ends of its dim, the clamp does nothing whenever the load's value is
// used: the load moves under an `scf.if` of the condition with the index
// unclamped. LLVM if-converts that into masked vector loads of consecutive
// elements.
//
//===----------------------------------------------------------------------===//
#include "Passes.h"
#include "kiln/Transforms/PaddingReads.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"
#include "mlir/IR/Builders.h"
#include "mlir/Pass/Pass.h"

namespace kiln {
#define GEN_PASS_DEF_CPUGUARDPADDEDREADS
#include "backends/cpu/compiler/Passes.h.inc"
} // namespace kiln

using namespace mlir;

namespace {

/// Whether `leaves` (all true) include `s >= 0` and `s < size`.
bool checksBothEnds(ArrayRef<Value> leaves, Value s, int64_t size) {
  bool lo = false, hi = false;
  for (Value leaf : leaves) {
    auto cmp = leaf.getDefiningOp<arith::CmpIOp>();
    if (!cmp || cmp.getLhs() != s)
      continue;
    std::optional<int64_t> rhs = getConstantIntValue(cmp.getRhs());
    lo |= cmp.getPredicate() == arith::CmpIPredicate::sge && rhs == 0;
    hi |= cmp.getPredicate() == arith::CmpIPredicate::slt && rhs == size;
  }
  return lo && hi;
}

/// Rewrites `select(c, load B[clamped], other)` when c bounds at least one
/// clamped index at both ends; indices it does not bound stay clamped.
void guard(arith::SelectOp sel) {
  auto load = sel.getTrueValue().getDefiningOp<memref::LoadOp>();
  if (!load || !load->hasOneUse() || !sel.getCondition().getType().isInteger(1))
    return;
  MemRefType type = load.getMemRefType();
  SmallVector<Value> leaves;
  kiln::conjuncts(sel.getCondition(), leaves);
  SmallVector<Value> indices;
  bool any = false;
  for (auto [d, idx] : llvm::enumerate(load.getIndices())) {
    int64_t size = type.getDimSize(d);
    Value s = ShapedType::isDynamic(size) ? Value() : kiln::unclampedIndex(idx, size - 1);
    if (s && checksBothEnds(leaves, s, size)) {
      indices.push_back(s);
      any = true;
    } else {
      indices.push_back(idx);
    }
  }
  if (!any)
    return;
  OpBuilder b(sel);
  auto ifOp = scf::IfOp::create(
      b, sel.getLoc(), sel.getCondition(),
      [&](OpBuilder &tb, Location loc) {
        Value v = memref::LoadOp::create(tb, loc, load.getMemRef(), indices);
        scf::YieldOp::create(tb, loc, v);
      },
      [&](OpBuilder &eb, Location loc) { scf::YieldOp::create(eb, loc, sel.getFalseValue()); });
  sel.replaceAllUsesWith(ifOp.getResult(0));
  sel.erase();
  load.erase();
}

struct GuardPaddedReadsPass : kiln::impl::CpuGuardPaddedReadsBase<GuardPaddedReadsPass> {

  void runOnOperation() override {
    SmallVector<arith::SelectOp> selects;
    getOperation().walk([&](arith::SelectOp sel) { selects.push_back(sel); });
    for (arith::SelectOp sel : selects)
      guard(sel);
  }
};

} // namespace

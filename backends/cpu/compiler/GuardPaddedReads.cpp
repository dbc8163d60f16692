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

#include "mlir/Dialect/Affine/IR/AffineOps.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Analysis/SliceAnalysis.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/Matchers.h"
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

/// `v` as the iv plus or minus values defined outside `loop` (none: `v` is
/// the iv), as the importer writes a window's index: `(ow + kw) - pad`.
struct IvOffset {
  SmallVector<std::pair<Value, bool>> terms; // (value, subtracted)
};
std::optional<IvOffset> offsetFromIv(Value v, scf::ForOp loop) {
  if (v == loop.getInductionVar())
    return IvOffset{};
  auto outside = [&](Value x) { return !loop->isAncestor(x.getParentBlock()->getParentOp()); };
  auto plus = [&](Value inner, Value term, bool subtracted) -> std::optional<IvOffset> {
    if (!outside(term))
      return std::nullopt;
    std::optional<IvOffset> o = offsetFromIv(inner, loop);
    if (o)
      o->terms.push_back({term, subtracted});
    return o;
  };
  if (auto add = v.getDefiningOp<arith::AddIOp>()) {
    if (std::optional<IvOffset> o = plus(add.getLhs(), add.getRhs(), false))
      return o;
    return plus(add.getRhs(), add.getLhs(), false);
  }
  if (auto sub = v.getDefiningOp<arith::SubIOp>())
    return plus(sub.getLhs(), sub.getRhs(), true);
  // `affine.apply (a + b)`, a and b dims or symbols: a window's ow + kw.
  if (auto apply = v.getDefiningOp<affine::AffineApplyOp>()) {
    auto sum = dyn_cast<AffineBinaryOpExpr>(apply.getAffineMap().getResult(0));
    if (!sum || sum.getKind() != AffineExprKind::Add)
      return std::nullopt;
    auto operand = [&](AffineExpr e) -> Value {
      if (auto d = dyn_cast<AffineDimExpr>(e))
        return apply.getMapOperands()[d.getPosition()];
      if (auto sym = dyn_cast<AffineSymbolExpr>(e))
        return apply.getMapOperands()[apply.getAffineMap().getNumDims() + sym.getPosition()];
      return Value();
    };
    Value a = operand(sum.getLHS()), b = operand(sum.getRHS());
    if (!a || !b)
      return std::nullopt;
    if (std::optional<IvOffset> o = plus(a, b, false))
      return o;
    return plus(b, a, false);
  }
  return std::nullopt;
}

/// `j` moved by `o`.
Value atOffset(OpBuilder &b, Location loc, Value j, const IvOffset &o) {
  for (auto [term, subtracted] : o.terms)
    j = subtracted ? arith::SubIOp::create(b, loc, j, term).getResult()
                   : arith::AddIOp::create(b, loc, j, term).getResult();
  return j;
}

/// Rows up to this long are vectorized here (`vectorizeRow`).
constexpr int64_t kShortRow = 64;

/// A padding row after guard(): `scf.for j { v = scf.if c { B[.., s] } else
/// { pad }; out[.., j] = v }` with s = j + offset and c a conjunction of
/// bounds on s (`s >= 0`, `s < size`) and of conditions that do not depend
/// on j. LLVM fully unrolls such a row when it is short (a 30-wide padded
/// row in a depthwise convolution's kernel) and then copies it element by
/// element; here it becomes vector-width steps of one masked load (the
/// lanes whose s is in bounds, the others `pad`) and one store.
void vectorizeRow(scf::ForOp loop, int64_t lanes) {
  // Longer rows LLVM vectorizes itself, better (an unmasked body, the
  // masks only at the ends: mobilenet_v2's 226-wide padding took 29 us that
  // way and 45 us this way).
  std::optional<int64_t> width = getConstantIntValue(loop.getUpperBound());
  if (!matchPattern(loop.getLowerBound(), m_Zero()) || !matchPattern(loop.getStep(), m_One()) ||
      !width || *width > kShortRow)
    return;
  Block *body = loop.getBody();
  scf::IfOp guarded;
  memref::StoreOp store;
  for (Operation &op : body->without_terminator()) {
    if (auto i = dyn_cast<scf::IfOp>(op); i && !guarded)
      guarded = i;
    else if (auto st = dyn_cast<memref::StoreOp>(op); st && !store)
      store = st;
    else if (!isPure(&op))
      return;
  }
  if (!guarded || !store || guarded->getNumResults() != 1 || !guarded.elseBlock() ||
      store.getValueToStore() != guarded.getResult(0) || store.getIndices().empty() ||
      store.getIndices().back() != loop.getInductionVar() || store->isBeforeInBlock(guarded))
    return;
  Type elem = guarded.getResult(0).getType();
  if (!elem.isIntOrFloat())
    return;
  auto outside = [&](Value x) { return !loop->isAncestor(x.getParentBlock()->getParentOp()); };
  if (!llvm::all_of(store.getIndices().drop_back(), outside) || !outside(store.getMemRef()))
    return;
  auto load = dyn_cast<memref::LoadOp>(&guarded.thenBlock()->front());
  Value pad = guarded.elseYield().getOperand(0);
  if (!load || guarded.thenYield().getOperand(0) != load.getResult() || !outside(pad) ||
      !outside(load.getMemRef()) || load.getIndices().empty())
    return;
  std::optional<IvOffset> offset = offsetFromIv(load.getIndices().back(), loop);
  if (!offset)
    return;
  // Each conjunct: independent of j, or a bound on some j + offset.
  SmallVector<Value> leaves;
  kiln::conjuncts(guarded.getCondition(), leaves);
  struct LaneBound {
    arith::CmpIPredicate pred;
    IvOffset offset;
    Value bound;
  };
  SmallVector<LaneBound> laneBounds;
  SmallVector<Value> scalarLeaves;
  auto dependsOnIv = [&](Value v) {
    SetVector<Operation *> slice;
    if (Operation *def = v.getDefiningOp())
      (void)getBackwardSlice(def, &slice);
    slice.insert(v.getDefiningOp());
    return v == loop.getInductionVar() ||
           llvm::any_of(slice, [&](Operation *o) {
             return o && llvm::is_contained(o->getOperands(), loop.getInductionVar());
           });
  };
  for (Value leaf : leaves) {
    if (!dependsOnIv(leaf)) {
      scalarLeaves.push_back(leaf);
      continue;
    }
    auto cmp = leaf.getDefiningOp<arith::CmpIOp>();
    if (!cmp || (cmp.getPredicate() != arith::CmpIPredicate::sge &&
                 cmp.getPredicate() != arith::CmpIPredicate::slt) ||
        dependsOnIv(cmp.getRhs()))
      return;
    std::optional<IvOffset> off = offsetFromIv(cmp.getLhs(), loop);
    if (!off)
      return;
    laneBounds.push_back({cmp.getPredicate(), *off, cmp.getRhs()});
  }

  OpBuilder b(loop);
  Location loc = loop.getLoc();
  auto vecOf = [&](Type t) { return VectorType::get({lanes}, t); };
  auto splat = [&](OpBuilder &ob, Value v) {
    return vector::BroadcastOp::create(ob, loc, vecOf(v.getType()), v).getResult();
  };
  auto vec = scf::ForOp::create(b, loc, loop.getLowerBound(), loop.getUpperBound(),
                                arith::ConstantIndexOp::create(b, loc, lanes));
  OpBuilder ib = OpBuilder::atBlockBegin(vec.getBody());
  IRMapping map;
  map.map(loop.getInductionVar(), vec.getInductionVar());
  // The row's scalar code at j0: the invariant conditions and indices.
  for (Operation &op : body->without_terminator())
    if (&op != guarded.getOperation() && &op != store.getOperation())
      ib.clone(op, map);
  Value j0 = vec.getInductionVar();
  // Lane masks from `vector.create_mask` (lanes [0, n)), whose lowering
  // compares 32-bit lane numbers: s + l >= 0 is the complement of lanes
  // [0, -s), s + l < size is lanes [0, size - s).
  VectorType maskType = vecOf(ib.getI1Type());
  auto lanesBelow = [&](Value n) {
    return vector::CreateMaskOp::create(ib, loc, maskType, ValueRange{n}).getResult();
  };
  Value inRow = lanesBelow(arith::SubIOp::create(ib, loc, loop.getUpperBound(), j0));
  Value mask = inRow;
  for (Value leaf : scalarLeaves)
    mask = arith::AndIOp::create(ib, loc, mask, splat(ib, map.lookupOrDefault(leaf)));
  Value allLanes = arith::ConstantOp::create(ib, loc, DenseElementsAttr::get(maskType, true));
  for (const LaneBound &lb : laneBounds) {
    Value s = atOffset(ib, loc, j0, lb.offset);
    Value m = lb.pred == arith::CmpIPredicate::slt
                  ? lanesBelow(arith::SubIOp::create(ib, loc, lb.bound, s))
                  : arith::XOrIOp::create(
                        ib, loc,
                        lanesBelow(arith::SubIOp::create(ib, loc, lb.bound, s)), allLanes)
                        .getResult();
    mask = arith::AndIOp::create(ib, loc, mask, m);
  }
  SmallVector<Value> from = llvm::map_to_vector(load.getIndices(), [&](Value v) {
    return map.lookupOrDefault(v);
  });
  from.back() = atOffset(ib, loc, j0, *offset);
  Value row = vector::MaskedLoadOp::create(ib, loc, vecOf(elem), load.getMemRef(), from, mask,
                                           splat(ib, pad));
  SmallVector<Value> to(store.getIndices().begin(), store.getIndices().end());
  to.back() = j0;
  vector::MaskedStoreOp::create(ib, loc, store.getMemRef(), to, inRow, row);
  loop.erase();
}

struct GuardPaddedReadsPass : kiln::impl::CpuGuardPaddedReadsBase<GuardPaddedReadsPass> {
  using CpuGuardPaddedReadsBase::CpuGuardPaddedReadsBase;

  void runOnOperation() override {
    SmallVector<arith::SelectOp> selects;
    getOperation().walk([&](arith::SelectOp sel) { selects.push_back(sel); });
    for (arith::SelectOp sel : selects)
      guard(sel);
    if (vectorBits <= 0)
      return;
    SmallVector<scf::ForOp> loops;
    getOperation().walk([&](scf::ForOp loop) { loops.push_back(loop); });
    for (scf::ForOp loop : loops) {
      Type t;
      loop.getBody()->walk([&](memref::StoreOp st) { t = st.getValueToStore().getType(); });
      if (t && t.isIntOrFloat() && t.getIntOrFloatBitWidth() >= 8)
        vectorizeRow(loop, std::max<int64_t>(1, vectorBits / t.getIntOrFloatBitWidth()));
    }
  }
};

} // namespace

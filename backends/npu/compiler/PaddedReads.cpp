//===- PaddedReads.cpp - Padding fused into a consumer, as plain operands --===//
//
// The importer writes padding (Conv and pooling `pads`, Pad) as a generic
// that reads its source with `select(inBounds(s), load(B[clamp(s)]), pad)`,
// and elementwise fusion folds that into the consumer's body. The npu
// lowering follows operands through their indexing maps and DMAs tiles, so
// a read hidden in the body is out of its reach. This rewrite turns each
// such read back into an ordinary input operand of B whose map is `s`
// (which may leave B's bounds) and records the pad value; the lowering
// then fills a tile with the pad value and DMAs only the part inside B.
//
//===----------------------------------------------------------------------===//
#include "PaddedReads.h"

#include "kiln/Transforms/PaddingReads.h"

#include "mlir/Dialect/Affine/IR/AffineOps.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"
#include "mlir/IR/AffineExpr.h"

using namespace mlir;

namespace {

/// `v` as an affine expression of the generic's loop indices.
std::optional<AffineExpr> indexExpr(Value v) {
  MLIRContext *ctx = v.getContext();
  if (auto i = v.getDefiningOp<linalg::IndexOp>())
    return getAffineDimExpr(i.getDim(), ctx);
  if (auto c = getConstantIntValue(v))
    return getAffineConstantExpr(*c, ctx);
  if (auto ap = v.getDefiningOp<affine::AffineApplyOp>()) {
    AffineMap m = ap.getAffineMap();
    SmallVector<AffineExpr> dims, syms;
    for (auto [k, operand] : llvm::enumerate(ap.getMapOperands())) {
      auto e = indexExpr(operand);
      if (!e)
        return std::nullopt;
      (k < m.getNumDims() ? dims : syms).push_back(*e);
    }
    return m.getResult(0).replaceDimsAndSymbols(dims, syms);
  }
  Operation *def = v.getDefiningOp();
  if (!isa_and_nonnull<arith::AddIOp, arith::SubIOp, arith::MulIOp>(def))
    return std::nullopt;
  auto l = indexExpr(def->getOperand(0)), r = indexExpr(def->getOperand(1));
  if (!l || !r)
    return std::nullopt;
  if (isa<arith::AddIOp>(def))
    return *l + *r;
  if (isa<arith::SubIOp>(def))
    return *l - *r;
  if (!isa<AffineConstantExpr>(*l) && !isa<AffineConstantExpr>(*r))
    return std::nullopt;
  return *l * *r;
}

/// Smallest and largest value of `e` over the loop ranges.
std::pair<int64_t, int64_t> bounds(AffineExpr e, ArrayRef<int64_t> ranges) {
  std::pair<int64_t, int64_t> r{0, 0};
  std::function<bool(AffineExpr, int64_t)> walk = [&](AffineExpr x, int64_t c) {
    if (auto d = dyn_cast<AffineDimExpr>(x)) {
      int64_t span = c * (ranges[d.getPosition()] - 1);
      (span < 0 ? r.first : r.second) += span;
      return true;
    }
    if (auto k = dyn_cast<AffineConstantExpr>(x)) {
      r.first += c * k.getValue();
      r.second += c * k.getValue();
      return true;
    }
    auto bin = dyn_cast<AffineBinaryOpExpr>(x);
    if (!bin)
      return false;
    if (x.getKind() == AffineExprKind::Add)
      return walk(bin.getLHS(), c) && walk(bin.getRHS(), c);
    if (x.getKind() == AffineExprKind::Mul)
      if (auto k = dyn_cast<AffineConstantExpr>(bin.getRHS()))
        return walk(bin.getLHS(), c * k.getValue());
    return false;
  };
  if (!walk(e, 1))
    return {INT64_MIN, INT64_MAX};
  return r;
}

struct GuardedRead {
  arith::SelectOp select;
  Value source;
  SmallVector<AffineExpr> index;
  float pad;
};

/// Whether `sel` is exactly `inBounds(s) ? B[clamp(s)] : constant`.
std::optional<GuardedRead> matchGuardedRead(arith::SelectOp sel,
                                            ArrayRef<int64_t> ranges) {
  auto load = sel.getTrueValue().getDefiningOp<memref::LoadOp>();
  auto padConst = sel.getFalseValue().getDefiningOp<arith::ConstantOp>();
  auto padAttr = padConst ? dyn_cast<FloatAttr>(padConst.getValue()) : FloatAttr();
  if (!load || !padAttr)
    return std::nullopt;
  MemRefType type = load.getMemRefType();
  GuardedRead r{sel, load.getMemRef(), {},
                  static_cast<float>(padAttr.getValueAsDouble())};
  SmallVector<Value> unclampedIdx;
  for (auto [j, idx] : llvm::enumerate(load.getIndices())) {
    // A constant index (a clamp of a size-1 dim folds to one) reads the
    // same element whatever the condition: no bound of its own.
    if (auto c = getConstantIntValue(idx); c && *c >= 0 && *c < type.getDimSize(j)) {
      unclampedIdx.push_back(idx);
      r.index.push_back(getAffineConstantExpr(*c, sel.getContext()));
      continue;
    }
    Value s = kiln::unclampedIndex(idx, type.getDimSize(j) - 1);
    auto e = s ? indexExpr(s) : std::nullopt;
    if (!e)
      return std::nullopt;
    unclampedIdx.push_back(s);
    r.index.push_back(*e);
  }
  // Every conjunct must be one of the bound checks, and every bound check
  // the loop ranges cannot prove must be present.
  SmallVector<Value> leaves;
  kiln::conjuncts(sel.getCondition(), leaves);
  SmallVector<bool> hasLo(unclampedIdx.size()), hasHi(unclampedIdx.size());
  for (Value leaf : leaves) {
    auto cmp = leaf.getDefiningOp<arith::CmpIOp>();
    if (!cmp)
      return std::nullopt;
    auto it = llvm::find(unclampedIdx, cmp.getLhs());
    if (it == unclampedIdx.end())
      return std::nullopt;
    size_t j = it - unclampedIdx.begin();
    auto rhs = getConstantIntValue(cmp.getRhs());
    if (cmp.getPredicate() == arith::CmpIPredicate::sge && rhs == 0)
      hasLo[j] = true;
    else if (cmp.getPredicate() == arith::CmpIPredicate::slt &&
             rhs == type.getDimSize(j))
      hasHi[j] = true;
    else
      return std::nullopt;
  }
  for (size_t j = 0; j < r.index.size(); ++j) {
    auto [lo, hi] = bounds(r.index[j], ranges);
    if ((!hasLo[j] && lo < 0) || (!hasHi[j] && hi >= type.getDimSize(j)))
      return std::nullopt;
  }
  return r;
}

void eraseDead(Block &body) {
  bool changed = true;
  while (changed) {
    changed = false;
    for (Operation &op : llvm::make_early_inc_range(llvm::reverse(body))) {
      if (op.hasTrait<OpTrait::IsTerminator>() || !op.use_empty())
        continue;
      if (isMemoryEffectFree(&op) || isa<memref::LoadOp>(op)) {
        op.erase();
        changed = true;
      }
    }
  }
}

} // namespace

std::vector<kiln::npu::PaddedOperand> kiln::npu::exposePaddedReads(func::FuncOp fn) {
  std::vector<PaddedOperand> padded;
  SmallVector<linalg::GenericOp> generics;
  fn.walk([&](linalg::GenericOp g) { generics.push_back(g); });
  for (linalg::GenericOp g : generics) {
    SmallVector<int64_t> ranges = g.getStaticLoopRanges();
    if (llvm::any_of(ranges, ShapedType::isDynamic))
      continue;
    SmallVector<GuardedRead> reads;
    g.getRegion().walk([&](arith::SelectOp sel) {
      if (auto r = matchGuardedRead(sel, ranges))
        reads.push_back(*r);
    });
    if (reads.empty())
      continue;
    MLIRContext *ctx = g.getContext();
    unsigned numLoops = g.getNumLoops(), numInputs = g.getNumDpsInputs();
    SmallVector<Value> inputs(g.getDpsInputs());
    SmallVector<AffineMap> maps;
    for (OpOperand *o : g.getDpsInputOperands())
      maps.push_back(g.getMatchingIndexingMap(o));
    for (GuardedRead &r : reads) {
      inputs.push_back(r.source);
      maps.push_back(AffineMap::get(numLoops, 0, r.index, ctx));
    }
    for (OpOperand &o : g.getDpsInitsMutable())
      maps.push_back(g.getMatchingIndexingMap(&o));
    OpBuilder b(g);
    auto ng = linalg::GenericOp::create(b, g.getLoc(), g->getResultTypes(), inputs,
                                        g.getDpsInits(), maps,
                                        g.getIteratorTypesArray());
    ng.getRegion().takeBody(g.getRegion());
    Block &body = ng.getRegion().front();
    for (auto [k, r] : llvm::enumerate(reads)) {
      BlockArgument a = body.insertArgument(numInputs + k, r.select.getType(), r.select.getLoc());
      r.select.replaceAllUsesWith(a);
      r.select.erase();
      padded.push_back({ng, static_cast<unsigned>(numInputs + k), r.pad});
    }
    eraseDead(body);
    g->replaceAllUsesWith(ng);
    g.erase();
  }
  return padded;
}

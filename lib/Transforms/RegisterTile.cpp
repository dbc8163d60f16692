//===- RegisterTile.cpp - contractions as broadcast x vector outer products ===//
#include "kiln/Transforms/RegisterTile.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/IR/AffineExprVisitor.h"

using namespace mlir;

std::optional<int64_t> kiln::linearCoefficient(AffineExpr e, unsigned d) {
  if (auto dim = dyn_cast<AffineDimExpr>(e))
    return dim.getPosition() == d ? 1 : 0;
  if (isa<AffineConstantExpr>(e))
    return 0;
  auto bin = dyn_cast<AffineBinaryOpExpr>(e);
  if (!bin)
    return std::nullopt;
  if (bin.getKind() == AffineExprKind::Add) {
    auto l = linearCoefficient(bin.getLHS(), d), r = linearCoefficient(bin.getRHS(), d);
    if (!l || !r)
      return std::nullopt;
    return *l + *r;
  }
  if (bin.getKind() == AffineExprKind::Mul) {
    auto c = dyn_cast<AffineConstantExpr>(bin.getRHS());
    if (!c)
      return std::nullopt;
    auto l = linearCoefficient(bin.getLHS(), d);
    if (!l)
      return std::nullopt;
    return *l * c.getValue();
  }
  return std::nullopt;
}

bool kiln::isVectorizableBody(Block &body) {
  for (Operation &op : body.without_terminator()) {
    if (!isa<arith::ArithDialect, math::MathDialect>(op.getDialect()))
      return false;
    if (op.getNumRegions() != 0 || op.getNumResults() != 1)
      return false;
    if (!isa<arith::ConstantOp>(op) && !op.hasTrait<OpTrait::Elementwise>())
      return false;
    for (Value v : op.getOperands())
      if (!v.getType().isIntOrIndexOrFloat())
        return false;
    if (!op.getResult(0).getType().isIntOrFloat())
      return false;
  }
  return true;
}

std::optional<kiln::ContractionTiling>
kiln::matchRegisterTileContraction(linalg::LinalgOp op) {
  auto generic = dyn_cast<linalg::GenericOp>(op.getOperation());
  if (!generic || generic.getNumDpsInputs() != 2 || generic.getNumDpsInits() != 1 ||
      generic.getNumReductionLoops() == 0)
    return std::nullopt;
  OpOperand *init = generic.getDpsInitOperand(0);
  Type outElem = getElementTypeOrSelf(init->get().getType());
  if (!outElem.isF32() && !outElem.isF64())
    return std::nullopt;
  for (OpOperand *in : generic.getDpsInputOperands())
    if (!isa<ShapedType>(in->get().getType()))
      return std::nullopt;
  Block &body = generic.getRegion().front();
  if (!kiln::isVectorizableBody(body) || body.getArgument(2).use_empty())
    return std::nullopt;

  AffineMap outMap = generic.getMatchingIndexingMap(init);
  if (outMap.getNumResults() == 0 || !outMap.isProjectedPermutation())
    return std::nullopt;
  unsigned n = cast<AffineDimExpr>(outMap.getResults().back()).getPosition();

  // rhs: the input that runs along n, in its last index only, with step 1.
  auto runsAlongN = [&](unsigned i) {
    AffineMap map = generic.getIndexingMapsArray()[i];
    return llvm::any_of(map.getResults(), [&](AffineExpr e) { return e.isFunctionOfDim(n); });
  };
  bool a = runsAlongN(0), b = runsAlongN(1);
  if (a == b)
    return std::nullopt;
  ContractionTiling t;
  t.n = n;
  t.rhs = a ? 0 : 1;
  t.lhs = 1 - t.rhs;
  AffineMap rhsMap = generic.getIndexingMapsArray()[t.rhs];
  if (rhsMap.getNumResults() == 0)
    return std::nullopt;
  // Column panels: `n floordiv P` first, `n mod P` last.
  AffineExpr dn = getAffineDimExpr(n, generic.getContext());
  if (auto mod = dyn_cast<AffineBinaryOpExpr>(rhsMap.getResults().back());
      mod && mod.getKind() == AffineExprKind::Mod && mod.getLHS() == dn) {
    auto p = dyn_cast<AffineConstantExpr>(mod.getRHS());
    if (!p || rhsMap.getResult(0) != dn.floorDiv(p.getValue()))
      return std::nullopt;
    t.rhsPanel = p.getValue();
  }
  for (AffineExpr e : rhsMap.getResults().drop_back().drop_front(t.rhsPanel ? 1 : 0))
    if (e.isFunctionOfDim(n))
      return std::nullopt;
  std::optional<int64_t> stride =
      t.rhsPanel ? 1 : linearCoefficient(rhsMap.getResults().back(), n);
  if (stride != 1 && stride != 2)
    return std::nullopt;
  t.rhsStride = *stride;
  AffineMap lhsMap = generic.getIndexingMapsArray()[t.lhs];

  // m: the output's innermost other dim that lhs reads and rhs does not (a
  // matmul's rows, a convolution's filters): one rhs vector serves all rows.
  // Failing that, its innermost other dim of more than one element (a
  // depthwise convolution's output rows): each row loads its own rhs, but
  // the rows still give the tile independent accumulators.
  auto outerDims = llvm::reverse(outMap.getResults().drop_back());
  SmallVector<int64_t> ranges = generic.getStaticLoopRanges();
  for (AffineExpr e : outerDims) {
    unsigned d = cast<AffineDimExpr>(e).getPosition();
    if (ranges[d] != 1 && lhsMap.isFunctionOfDim(d) && !rhsMap.isFunctionOfDim(d)) {
      t.m = d;
      return t;
    }
  }
  for (AffineExpr e : outerDims) {
    unsigned d = cast<AffineDimExpr>(e).getPosition();
    if (ranges[d] != 1) {
      t.m = d;
      break;
    }
  }
  return t;
}

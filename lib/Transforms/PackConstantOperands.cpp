//===- PackConstantOperands.cpp - constant rhs as column panels -----------===//
#include "kiln/Transforms/Passes.h"
#include "kiln/Transforms/RegisterTile.h"

#include "mlir/Dialect/Arith/IR/Arith.h"

namespace kiln {
#define GEN_PASS_DEF_PACKCONSTANTOPERANDS
#include "kiln/Transforms/Passes.h.inc"
} // namespace kiln

using namespace mlir;

namespace {

/// `values` [..., N] as [ceil(N/p), ..., p], zeros past column N. Raw bytes,
/// so any element type of whole bytes packs the same way.
DenseElementsAttr packColumns(DenseElementsAttr values, int64_t p) {
  auto type = cast<RankedTensorType>(values.getType());
  int64_t n = type.getShape().back(), panels = llvm::divideCeil(n, p);
  int64_t rows = type.getNumElements() / n;
  size_t bytes = type.getElementTypeBitWidth() / 8;
  ArrayRef<char> from = values.getRawData();
  std::vector<char> to(panels * rows * p * bytes, 0);
  for (int64_t panel = 0; panel < panels; ++panel)
    for (int64_t r = 0; r < rows; ++r) {
      int64_t cols = std::min(p, n - panel * p);
      std::memcpy(&to[((panel * rows + r) * p) * bytes], &from[(r * n + panel * p) * bytes],
                  cols * bytes);
    }
  SmallVector<int64_t> shape = {panels};
  shape.append(type.getShape().begin(), type.getShape().end() - 1);
  shape.push_back(p);
  return DenseElementsAttr::getFromRawBuffer(RankedTensorType::get(shape, type.getElementType()),
                                             to);
}

struct PackConstantOperandsPass
    : kiln::impl::PackConstantOperandsBase<PackConstantOperandsPass> {
  using PackConstantOperandsBase::PackConstantOperandsBase;

  void runOnOperation() override {
    if (panelWidth <= 0)
      return;
    SmallVector<Operation *> unused;
    getOperation().walk([&](linalg::GenericOp op) {
      auto t = kiln::matchRegisterTileContraction(op);
      if (!t || t->rhsStride != 1 || t->rhsPanel)
        return;
      OpOperand &rhs = op->getOpOperand(t->rhs);
      auto cst = rhs.get().getDefiningOp<arith::ConstantOp>();
      auto values = cst ? dyn_cast<DenseElementsAttr>(cst.getValue()) : DenseElementsAttr();
      if (!values || values.isSplat() || values.getType().getRank() < 2)
        return;
      unsigned bits = values.getType().getElementTypeBitWidth();
      AffineMap map = op.getMatchingIndexingMap(&rhs);
      // Rows close together are read fine as they are (and only rows 1 KB
      // or more apart were worth the cpu's copy).
      int64_t n = values.getType().getShape().back();
      if (bits % 8 || n * bits / 8 < 1024 || map.getResults().back() != getAffineDimExpr(t->n, op.getContext()))
        return;
      OpBuilder b(op);
      Value packed = arith::ConstantOp::create(b, cst.getLoc(), packColumns(values, panelWidth));
      AffineExpr d = getAffineDimExpr(t->n, op.getContext());
      SmallVector<AffineExpr> results = {d.floorDiv(panelWidth)};
      results.append(map.getResults().begin(), map.getResults().end() - 1);
      results.push_back(d % panelWidth);
      SmallVector<AffineMap> maps = op.getIndexingMapsArray();
      maps[t->rhs] = AffineMap::get(map.getNumDims(), 0, results, op.getContext());
      op.setIndexingMapsAttr(b.getAffineMapArrayAttr(maps));
      rhs.set(packed);
      unused.push_back(cst);
    });
    for (Operation *cst : unused)
      if (cst->use_empty())
        cst->erase();
  }
};

} // namespace

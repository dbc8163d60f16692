//===- GpuCooperation.cpp - helpers for cooperative GPU kernels ----------===//
#include "GpuCooperation.h"

#include "mlir/Dialect/Affine/IR/AffineOps.h"
#include "mlir/Interfaces/ViewLikeInterface.h"

using namespace mlir;

namespace kiln::gpu {

ThreadCoords threadCoords(OpBuilder &b, Location loc, const CooperativeShape &shape) {
  auto cst = [&](int64_t v) { return arith::ConstantIndexOp::create(b, loc, v).getResult(); };
  Value tid = mlir::gpu::ThreadIdOp::create(b, loc, mlir::gpu::Dimension::x);
  ThreadCoords c;
  c.lane = arith::RemUIOp::create(b, loc, tid, cst(shape.lanes));
  Value w = arith::DivUIOp::create(b, loc, tid, cst(shape.lanes));
  c.local[2] = arith::RemUIOp::create(b, loc, w, cst(shape.tile[2]));
  w = arith::DivUIOp::create(b, loc, w, cst(shape.tile[2]));
  c.local[1] = arith::RemUIOp::create(b, loc, w, cst(shape.tile[1]));
  c.local[0] = arith::DivUIOp::create(b, loc, w, cst(shape.tile[1]));
  return c;
}

Value allocWorkgroupBuffer(func::FuncOp kernel, ArrayRef<int64_t> shape, Type element) {
  OpBuilder b = OpBuilder::atBlockBegin(&kernel.getBody().front());
  auto space = mlir::gpu::AddressSpaceAttr::get(kernel.getContext(),
                                                mlir::gpu::AddressSpace::Workgroup);
  auto type = MemRefType::get(shape, element, MemRefLayoutAttrInterface(), space);
  return memref::AllocaOp::create(b, kernel.getLoc(), type);
}

bool isVisibleToAllThreads(Value view) {
  while (Operation *def = view.getDefiningOp()) {
    if (isa<memref::GetGlobalOp>(def))
      return true;
    auto viewLike = dyn_cast<ViewLikeOpInterface>(def);
    if (!viewLike)
      return false;
    view = viewLike.getViewSource();
  }
  return isa<BlockArgument>(view);
}

SmallVector<bool, 3> blockIdDependence(Value value) {
  SmallVector<bool, 3> dims(3, false);
  SmallVector<Value> work = {value};
  DenseSet<Value> seen;
  while (!work.empty()) {
    Value v = work.pop_back_val();
    if (!seen.insert(v).second)
      continue;
    Operation *def = v.getDefiningOp();
    if (!def)
      continue;
    if (auto id = dyn_cast<mlir::gpu::BlockIdOp>(def)) {
      dims[(int)id.getDimension()] = true;
      continue;
    }
    llvm::append_range(work, def->getOperands());
  }
  return dims;
}

SmallVector<Value> applyIndexingMap(OpBuilder &b, Location loc, AffineMap map,
                                    ValueRange dims) {
  SmallVector<Value> indices;
  for (AffineExpr expr : map.getResults())
    indices.push_back(affine::AffineApplyOp::create(
        b, loc, AffineMap::get(map.getNumDims(), 0, expr), dims));
  return indices;
}

} // namespace kiln::gpu

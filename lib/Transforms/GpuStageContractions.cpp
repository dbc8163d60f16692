//===- GpuStageContractions.cpp - matmul tiles in workgroup memory --------===//
//
// After the shared pipeline a GPU contraction (MatMul, Gemm, batched and
// transposed variants, unpadded convolutions) is one thread per output
// element running the whole reduction (K elements, several reduction loops
// linearized) on global memory: every A element is read N times, every B element
// M times. This pass makes a block of T x T such threads one output tile:
// per K chunk each thread loads one element of A's T x T slice and one of
// B's into workgroup memory, the block synchronizes, and each thread runs
// the chunk from workgroup memory. Global traffic drops by a factor of T.
//
// Thread (i, j) of the tile owns output row i, column j. A row's A view is
// the same for every thread of the row (it does not depend on the column's
// workgroup id) and a column's B view the same down the column, so thread
// (i, j) loads A[row i][k0 + j] and B[k0 + i][column j] through its own
// views. The chunk's last partial part is clamped on load and left out of
// the multiply-add, so any combining body stays exact.
//
//===----------------------------------------------------------------------===//
#include "GpuCooperation.h"
#include "kiln/Transforms/Passes.h"

namespace kiln {
#define GEN_PASS_DEF_GPUSTAGECONTRACTIONS
#include "kiln/Transforms/Passes.h.inc"
} // namespace kiln

using namespace mlir;

namespace {

struct Plan {
  linalg::LinalgOp op;
  int gm, gn; // grid dimensions of output rows and columns
  int64_t tile;
  int64_t k;
};

/// A contraction this pass can stage: two shared inputs, one output element
/// per workgroup, one reduction loop, and inputs whose views each leave out
/// the other's grid dimension.
std::optional<Plan> plan(func::FuncOp kernel, linalg::LinalgOp op, int64_t minK) {
  if (op.getNumDpsInputs() != 2 || op.getNumDpsInits() != 1 || !op.hasPureBufferSemantics() ||
      op.getNumReductionLoops() == 0)
    return std::nullopt;
  SmallVector<int64_t> ranges = op.getStaticLoopRanges();
  int64_t k = 1;
  for (auto [range, it] : llvm::zip(ranges, op.getIteratorTypesArray())) {
    if (ShapedType::isDynamic(range))
      return std::nullopt;
    if (it == utils::IteratorType::reduction)
      k *= range;
    else if (range != 1)
      return std::nullopt;
  }
  if (k < minK)
    return std::nullopt;
  Value a = op.getDpsInputs()[0], b = op.getDpsInputs()[1];
  if (!kiln::gpu::isVisibleToAllThreads(a) || !kiln::gpu::isVisibleToAllThreads(b))
    return std::nullopt;
  if (llvm::any_of(op.getBlock()->without_terminator(),
                   [](Operation &inner) { return !isPure(&inner); }))
    return std::nullopt;
  SmallVector<bool, 3> depA = kiln::gpu::blockIdDependence(a);
  SmallVector<bool, 3> depB = kiln::gpu::blockIdDependence(b);
  std::array<int64_t, 3> grid = kiln::gpu::workgroupGrid(kernel);
  int gm = -1, gn = -1;
  for (int d = 0; d < 3; ++d) {
    if (depA[d] && !depB[d])
      gm = d;
    if (depB[d] && !depA[d])
      gn = d;
  }
  if (gm < 0 || gn < 0)
    return std::nullopt;
  int64_t extent = std::min(grid[gm], grid[gn]);
  int64_t tile = extent >= 16 ? 16 : extent >= 8 ? 8 : 0;
  if (!tile)
    return std::nullopt;
  return Plan{op, gm, gn, tile, k};
}

struct GpuStageContractionsPass
    : kiln::impl::GpuStageContractionsBase<GpuStageContractionsPass> {
  using GpuStageContractionsBase::GpuStageContractionsBase;

  void runOnOperation() override {
    func::FuncOp kernel = getOperation();
    if (kernel.isExternal() || kiln::gpu::getCooperativeShape(kernel))
      return;
    SmallVector<Plan> plans;
    for (auto op : kernel.getBody().front().getOps<linalg::LinalgOp>())
      if (std::optional<Plan> p = plan(kernel, op, minK))
        plans.push_back(*p);
    // Two contractions in one kernel would each want their own block shape.
    if (plans.size() != 1)
      return;
    stage(kernel, plans.front());
  }

  void stage(func::FuncOp kernel, const Plan &p) {
    linalg::LinalgOp op = p.op;
    Location loc = op.getLoc();
    int64_t t = p.tile, k = p.k;
    kiln::gpu::CooperativeShape shape;
    shape.tile[p.gm] = t;
    shape.tile[p.gn] = t;
    kiln::gpu::setCooperativeShape(kernel, shape);

    Value a = op.getDpsInputs()[0], b = op.getDpsInputs()[1];
    Value out = op.getDpsInits()[0];
    Type ea = getElementTypeOrSelf(a.getType()), eb = getElementTypeOrSelf(b.getType());
    Value shA = kiln::gpu::allocWorkgroupBuffer(kernel, {t, t}, ea);
    Value shB = kiln::gpu::allocWorkgroupBuffer(kernel, {t, t}, eb);

    OpBuilder builder(op);
    auto cst = [&](int64_t v) { return arith::ConstantIndexOp::create(builder, loc, v).getResult(); };
    kiln::gpu::ThreadCoords coords = kiln::gpu::threadCoords(builder, loc, shape);
    Value row = coords.local[p.gm], col = coords.local[p.gn];
    SmallVector<int64_t> ranges = op.getStaticLoopRanges();
    SmallVector<unsigned> reductionDims;
    op.getReductionDims(reductionDims);
    // The loop indices at linear reduction index `kk` (reduction loops
    // row-major, the last fastest): every parallel loop is 0.
    auto loopIndices = [&](OpBuilder &bb, Value kk) {
      auto c = [&](int64_t v) { return arith::ConstantIndexOp::create(bb, loc, v).getResult(); };
      SmallVector<Value> dims(op.getNumLoops(), c(0));
      for (unsigned d : llvm::reverse(reductionDims)) {
        if (d == reductionDims.front()) {
          dims[d] = kk;
          break;
        }
        dims[d] = arith::RemUIOp::create(bb, loc, kk, c(ranges[d]));
        kk = arith::DivUIOp::create(bb, loc, kk, c(ranges[d]));
      }
      return dims;
    };
    auto load = [&](OpBuilder &bb, Value source, AffineMap map, Value kk) -> Value {
      return memref::LoadOp::create(bb, loc, source,
                                    kiln::gpu::applyIndexingMap(bb, loc, map, loopIndices(bb, kk)));
    };
    AffineMap mapA = op.getMatchingIndexingMap(op.getDpsInputOperand(0));
    AffineMap mapB = op.getMatchingIndexingMap(op.getDpsInputOperand(1));
    AffineMap mapOut = op.getMatchingIndexingMap(op.getDpsInitOperand(0));
    SmallVector<Value> outIndices =
        kiln::gpu::applyIndexingMap(builder, loc, mapOut, loopIndices(builder, cst(0)));
    Value init = memref::LoadOp::create(builder, loc, out, outIndices);

    auto chunks = scf::ForOp::create(builder, loc, cst(0), cst(k), cst(t), ValueRange{init});
    {
      OpBuilder::InsertionGuard guard(builder);
      builder.setInsertionPointToStart(chunks.getBody());
      Value k0 = chunks.getInductionVar();
      Value last = cst(k - 1);
      Value ka = arith::MinUIOp::create(builder, loc, arith::AddIOp::create(builder, loc, k0, col), last);
      Value kb = arith::MinUIOp::create(builder, loc, arith::AddIOp::create(builder, loc, k0, row), last);
      memref::StoreOp::create(builder, loc, load(builder, a, mapA, ka), shA, ValueRange{row, col});
      memref::StoreOp::create(builder, loc, load(builder, b, mapB, kb), shB, ValueRange{row, col});
      mlir::gpu::BarrierOp::create(builder, loc);
      Value count = k % t == 0
                        ? cst(t)
                        : arith::MinUIOp::create(builder, loc, cst(t),
                                                 arith::SubIOp::create(builder, loc, cst(k), k0))
                              .getResult();
      auto inner = scf::ForOp::create(
          builder, loc, cst(0), count, cst(1), ValueRange{chunks.getRegionIterArgs()[0]},
          [&](OpBuilder &ib, Location, Value kk, ValueRange acc) {
            Value va = memref::LoadOp::create(ib, loc, shA, ValueRange{row, kk});
            Value vb = memref::LoadOp::create(ib, loc, shB, ValueRange{kk, col});
            Value kIndex = arith::AddIOp::create(ib, loc, k0, kk);
            Value next = kiln::gpu::inlineLinalgBody(ib, op, {va, vb, acc[0]}, loopIndices(ib, kIndex));
            scf::YieldOp::create(ib, loc, next);
          });
      // Nobody overwrites the chunk before everybody has used it.
      mlir::gpu::BarrierOp::create(builder, loc);
      scf::YieldOp::create(builder, loc, inner.getResult(0));
    }
    memref::StoreOp::create(builder, loc, chunks.getResult(0), out, outIndices);
    op->erase();
  }
};

} // namespace

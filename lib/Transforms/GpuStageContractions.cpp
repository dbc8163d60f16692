//===- GpuStageContractions.cpp - matmul/conv tiles in workgroup memory ---===//
//
// After the shared pipeline a GPU contraction (MatMul, Gemm, batched and
// transposed variants, convolutions) is one thread per output element
// running the whole reduction (K elements; several reduction loops are
// linearized) on global memory: every A element is read N times, every B
// element M times. This pass makes a block of T x T such threads one output
// tile: per K chunk each thread computes one A value and one B value into
// workgroup memory, the block synchronizes, and each thread runs the chunk
// from workgroup memory. Global traffic drops by a factor of T.
//
// The body is read as  acc' = tail(acc, m(a(k), b(k)))  where `a` depends
// on the row's workgroup id but not the column's, `b` the other way round,
// and neither on the accumulator: for a matmul a and b are the two inputs
// and m the multiply; for a padded convolution b is the bounds-checked load
// of the input the importer fused into the body. Thread (i, j) owns output
// row i, column j; it computes a(k0 + j) with its own ids (the same for the
// whole row) and b(k0 + i) (the same for the whole column). The chunk's
// partial last part is clamped on evaluation and left out of the tail, so
// any tail stays exact.
//
//===----------------------------------------------------------------------===//
#include "GpuCooperation.h"
#include "kiln/Transforms/Passes.h"

#include "mlir/Analysis/TopologicalSortUtils.h"
#include "mlir/IR/IRMapping.h"

namespace kiln {
#define GEN_PASS_DEF_GPUSTAGECONTRACTIONS
#include "kiln/Transforms/Passes.h.inc"
} // namespace kiln

using namespace mlir;

namespace {

/// Most output elements one thread computes (the workgroup's tile along
/// parallel loops the grid does not cover, e.g. a convolution's batch).
constexpr int64_t kMaxOutputsPerThread = 64;

struct Plan {
  linalg::LinalgOp op;
  int gm, gn; // grid dimensions of output rows and columns
  int64_t tile;
  int64_t k;
  Operation *multiply; // operand 0 is the row side, operand 1 the column side
};

/// What a body value depends on: grid dimensions, the accumulator.
struct Dependence {
  std::array<bool, 3> dims = {false, false, false};
  bool acc = false;
  void merge(const Dependence &o) {
    for (int d = 0; d < 3; ++d)
      dims[d] |= o.dims[d];
    acc |= o.acc;
  }
};

/// The body values `v` is computed from, in body order (empty for block
/// arguments and values from outside the body).
SetVector<Operation *> bodySlice(Block *body, Value v) {
  SetVector<Operation *> slice;
  SmallVector<Value> work = {v};
  while (!work.empty()) {
    Operation *def = work.pop_back_val().getDefiningOp();
    if (!def || def->getBlock() != body || !slice.insert(def))
      continue;
    llvm::append_range(work, def->getOperands());
  }
  return topologicalSort(slice);
}

std::optional<Plan> plan(func::FuncOp kernel, linalg::LinalgOp op, int64_t minK) {
  if (op.getNumDpsInits() != 1 || !op.hasPureBufferSemantics() ||
      op.getNumReductionLoops() == 0)
    return std::nullopt;
  int64_t k = 1, outputs = 1;
  for (auto [range, it] : llvm::zip(op.getStaticLoopRanges(), op.getIteratorTypesArray())) {
    if (ShapedType::isDynamic(range))
      return std::nullopt;
    (it == utils::IteratorType::reduction ? k : outputs) *= range;
  }
  if (k < minK || outputs > kMaxOutputsPerThread)
    return std::nullopt;
  if (!llvm::all_of(op.getDpsInputs(), kiln::gpu::isVisibleToAllThreads))
    return std::nullopt;

  Block *body = op.getBlock();
  Value acc = body->getArguments().back();
  DenseMap<Value, Dependence> deps;
  auto depOf = [&](Value v) -> Dependence {
    if (auto it = deps.find(v); it != deps.end())
      return it->second;
    Dependence d; // defined outside the body
    SmallVector<bool, 3> dims = kiln::gpu::blockIdDependence(v);
    for (int i = 0; i < 3; ++i)
      d.dims[i] = dims[i];
    return d;
  };
  for (OpOperand *input : op.getDpsInputOperands())
    deps[body->getArgument(input->getOperandNumber())] = depOf(input->get());
  deps[acc].acc = true;
  for (Operation &inner : body->without_terminator()) {
    // Loads every thread can make alike are the only effects allowed.
    if (auto load = dyn_cast<memref::LoadOp>(inner)) {
      if (!kiln::gpu::isVisibleToAllThreads(load.getMemRef()))
        return std::nullopt;
    } else if (!isPure(&inner)) {
      return std::nullopt;
    }
    Dependence d;
    for (Value operand : inner.getOperands())
      d.merge(depOf(operand));
    for (Value result : inner.getResults())
      deps[result] = d;
  }

  std::array<int64_t, 3> grid = kiln::gpu::workgroupGrid(kernel);
  Value yielded = body->getTerminator()->getOperand(0);
  for (Operation &m : body->without_terminator()) {
    if (m.getNumOperands() != 2 || m.getNumResults() != 1)
      continue;
    Dependence d0 = depOf(m.getOperand(0)), d1 = depOf(m.getOperand(1));
    if (d0.acc || d1.acc)
      continue;
    int gm = -1, gn = -1;
    for (int d = 0; d < 3; ++d) {
      if (d0.dims[d] && !d1.dims[d])
        gm = d;
      if (d1.dims[d] && !d0.dims[d])
        gn = d;
    }
    if (gm < 0 || gn < 0)
      continue;
    // Everything after m must be a function of m's result, the accumulator
    // and values from outside the body.
    SetVector<Operation *> staged = bodySlice(body, m.getOperand(0));
    staged.insert_range(bodySlice(body, m.getOperand(1)));
    staged.insert(&m);
    bool tailOk = true;
    for (Operation &t : body->without_terminator()) {
      if (staged.contains(&t))
        continue;
      for (Value operand : t.getOperands()) {
        bool fromTail = operand.getDefiningOp() && operand.getDefiningOp()->getBlock() == body &&
                        !staged.contains(operand.getDefiningOp());
        bool outside = operand.getParentBlock() != body;
        if (operand != m.getResult(0) && operand != acc && !fromTail && !outside)
          tailOk = false;
      }
    }
    if (!tailOk || !depOf(yielded).acc || staged.contains(yielded.getDefiningOp()))
      continue;
    int64_t extent = std::min(grid[gm], grid[gn]);
    int64_t tile = extent >= 16 ? 16 : extent >= 8 ? 8 : 0;
    if (!tile)
      return std::nullopt;
    return Plan{op, gm, gn, tile, k, &m};
  }
  return std::nullopt;
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
    Block *body = op.getBlock();
    Location loc = op.getLoc();
    int64_t t = p.tile, k = p.k;
    kiln::gpu::CooperativeShape shape;
    shape.tile[p.gm] = t;
    shape.tile[p.gn] = t;
    kiln::gpu::setCooperativeShape(kernel, shape);

    Value aValue = p.multiply->getOperand(0), bValue = p.multiply->getOperand(1);
    Value shA = kiln::gpu::allocWorkgroupBuffer(kernel, {t, t}, aValue.getType());
    Value shB = kiln::gpu::allocWorkgroupBuffer(kernel, {t, t}, bValue.getType());
    Value out = op.getDpsInits()[0];
    Value acc = body->getArguments().back();
    // Ops computing the two staged values; the rest of the body (the
    // multiply and the tail) runs from workgroup memory.
    SetVector<Operation *> staged = bodySlice(body, aValue);
    staged.insert_range(bodySlice(body, bValue));

    OpBuilder builder(op);
    auto cst = [&](OpBuilder &bb, int64_t v) {
      return arith::ConstantIndexOp::create(bb, loc, v).getResult();
    };
    kiln::gpu::ThreadCoords coords = kiln::gpu::threadCoords(builder, loc, shape);
    Value row = coords.local[p.gm], col = coords.local[p.gn];

    SmallVector<int64_t> ranges = op.getStaticLoopRanges();
    SmallVector<unsigned> reductionDims, extraDims;
    op.getReductionDims(reductionDims);
    int64_t outputs = 1;
    for (auto [d, it] : llvm::enumerate(op.getIteratorTypesArray()))
      if (it == utils::IteratorType::parallel && ranges[d] > 1) {
        extraDims.push_back(d);
        outputs *= ranges[d];
      }
    // Linear indices -> loop indices, row-major with the last loop fastest.
    auto delinearize = [&](OpBuilder &bb, Value linear, ArrayRef<unsigned> loops,
                           SmallVector<Value> &dims) {
      for (unsigned d : llvm::reverse(loops)) {
        if (d == loops.front()) {
          dims[d] = linear;
          break;
        }
        dims[d] = arith::RemUIOp::create(bb, loc, linear, cst(bb, ranges[d]));
        linear = arith::DivUIOp::create(bb, loc, linear, cst(bb, ranges[d]));
      }
    };

    // One staged reduction per output element this thread owns.
    auto perOutput = scf::ForOp::create(builder, loc, cst(builder, 0), cst(builder, outputs),
                                        cst(builder, 1));
    builder.setInsertionPoint(perOutput.getBody()->getTerminator());
    SmallVector<Value> outDims(op.getNumLoops(), cst(builder, 0));
    if (!extraDims.empty())
      delinearize(builder, perOutput.getInductionVar(), extraDims, outDims);
    auto loopIndices = [&](OpBuilder &bb, Value kk) {
      SmallVector<Value> dims(outDims);
      delinearize(bb, kk, reductionDims, dims);
      return dims;
    };
    // The body's `value` at linear reduction index `kk`.
    auto evaluate = [&](OpBuilder &bb, Value value, Value kk) -> Value {
      SmallVector<Value> dims = loopIndices(bb, kk);
      SetVector<Operation *> slice = bodySlice(body, value);
      IRMapping map;
      for (OpOperand *input : op.getDpsInputOperands()) {
        BlockArgument arg = body->getArgument(input->getOperandNumber());
        bool used = value == arg || llvm::any_of(slice, [&](Operation *inner) {
                      return llvm::is_contained(inner->getOperands(), arg);
                    });
        if (!used)
          continue;
        map.map(arg, memref::LoadOp::create(bb, loc, input->get(),
                                            kiln::gpu::applyIndexingMap(
                                                bb, loc, op.getMatchingIndexingMap(input), dims))
                         .getResult());
      }
      for (Operation *inner : slice) {
        if (auto index = dyn_cast<linalg::IndexOp>(inner)) {
          map.map(index.getResult(), dims[index.getDim()]);
          continue;
        }
        bb.clone(*inner, map);
      }
      return map.lookupOrDefault(value);
    };

    SmallVector<Value> outIndices = kiln::gpu::applyIndexingMap(
        builder, loc, op.getMatchingIndexingMap(op.getDpsInitOperand(0)), outDims);
    Value init = memref::LoadOp::create(builder, loc, out, outIndices);
    auto chunks = scf::ForOp::create(builder, loc, cst(builder, 0), cst(builder, k),
                                     cst(builder, t), ValueRange{init});
    {
      OpBuilder::InsertionGuard guard(builder);
      builder.setInsertionPointToStart(chunks.getBody());
      Value k0 = chunks.getInductionVar();
      Value last = cst(builder, k - 1);
      Value ka = arith::MinUIOp::create(builder, loc,
                                        arith::AddIOp::create(builder, loc, k0, col), last);
      Value kb = arith::MinUIOp::create(builder, loc,
                                        arith::AddIOp::create(builder, loc, k0, row), last);
      memref::StoreOp::create(builder, loc, evaluate(builder, aValue, ka), shA,
                              ValueRange{row, col});
      memref::StoreOp::create(builder, loc, evaluate(builder, bValue, kb), shB,
                              ValueRange{row, col});
      mlir::gpu::BarrierOp::create(builder, loc);
      Value count = k % t == 0 ? cst(builder, t)
                               : arith::MinUIOp::create(
                                     builder, loc, cst(builder, t),
                                     arith::SubIOp::create(builder, loc, cst(builder, k), k0))
                                     .getResult();
      auto inner = scf::ForOp::create(
          builder, loc, cst(builder, 0), count, cst(builder, 1),
          ValueRange{chunks.getRegionIterArgs()[0]},
          [&](OpBuilder &ib, Location, Value kk, ValueRange accs) {
            IRMapping map;
            map.map(aValue, memref::LoadOp::create(ib, loc, shA, ValueRange{row, kk}).getResult());
            map.map(bValue, memref::LoadOp::create(ib, loc, shB, ValueRange{kk, col}).getResult());
            map.map(acc, accs[0]);
            for (Operation &inner : body->without_terminator())
              if (!staged.contains(&inner))
                ib.clone(inner, map);
            scf::YieldOp::create(ib, loc, map.lookup(body->getTerminator()->getOperand(0)));
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

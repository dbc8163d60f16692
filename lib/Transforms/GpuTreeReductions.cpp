//===- GpuTreeReductions.cpp - reductions across a block of threads -------===//
//
// After the shared pipeline a GPU reduction is one thread per output element
// walking the whole reduced extent K alone. This pass gives each such
// workgroup L threads (lanes, L a power of two <= K): lane l folds elements
// l, l + L, l + 2L, ... into a partial, the partials meet in workgroup
// memory and halve log2(L) times, and the first lane combines the total into
// the output. The combining op must be associative (add, mul, min, max,
// and, or, xor); floating-point sums are reassociated as any parallel
// reduction is.
//
//===----------------------------------------------------------------------===//
#include "GpuCooperation.h"
#include "kiln/Transforms/Passes.h"

#include "mlir/IR/IRMapping.h"
#include "llvm/ADT/bit.h"

namespace kiln {
#define GEN_PASS_DEF_GPUTREEREDUCTIONS
#include "kiln/Transforms/Passes.h.inc"
} // namespace kiln

using namespace mlir;

namespace {

/// The body's combining op when it yields combine(accumulator, x) with x
/// independent of the accumulator.
Operation *combiner(linalg::LinalgOp op) {
  Block *body = op.getBlock();
  Value acc = body->getArguments().back();
  Operation *yielded = body->getTerminator()->getOperand(0).getDefiningOp();
  if (!yielded || yielded->getBlock() != body || yielded->getNumOperands() != 2 ||
      !acc.hasOneUse() || *acc.getUsers().begin() != yielded)
    return nullptr;
  if (!isa<arith::AddFOp, arith::MulFOp, arith::MaximumFOp, arith::MinimumFOp, arith::MaxNumFOp,
           arith::MinNumFOp, arith::AddIOp, arith::MulIOp, arith::MaxSIOp, arith::MinSIOp,
           arith::MaxUIOp, arith::MinUIOp, arith::AndIOp, arith::OrIOp, arith::XOrIOp>(yielded))
    return nullptr;
  return yielded;
}

/// The number of elements reduced into each output element (the product of
/// the reduction loops), or nullopt unless every parallel loop has extent 1
/// and every extent is static.
std::optional<int64_t> reducedExtent(linalg::LinalgOp op) {
  int64_t k = 1;
  for (auto [range, it] : llvm::zip(op.getStaticLoopRanges(), op.getIteratorTypesArray())) {
    if (ShapedType::isDynamic(range))
      return std::nullopt;
    if (it == utils::IteratorType::reduction)
      k *= range;
    else if (range != 1)
      return std::nullopt;
  }
  return k;
}

/// A reduction with one output element per workgroup over K >= minK
/// elements of memory every lane can read.
bool qualifies(linalg::LinalgOp op, int64_t minK) {
  if (op.getNumDpsInits() != 1 || !op.hasPureBufferSemantics() || op.getNumReductionLoops() == 0)
    return false;
  std::optional<int64_t> k = reducedExtent(op);
  if (!k || *k < minK)
    return false;
  if (!llvm::all_of(op.getDpsInputs(), kiln::gpu::isVisibleToAllThreads))
    return false;
  if (llvm::any_of(op.getBlock()->without_terminator(),
                   [](Operation &inner) { return !isPure(&inner); }))
    return false;
  return combiner(op) != nullptr;
}

struct GpuTreeReductionsPass : kiln::impl::GpuTreeReductionsBase<GpuTreeReductionsPass> {
  using GpuTreeReductionsBase::GpuTreeReductionsBase;

  void runOnOperation() override {
    func::FuncOp kernel = getOperation();
    if (kernel.isExternal() || kiln::gpu::getCooperativeShape(kernel))
      return;
    SmallVector<linalg::LinalgOp> reductions;
    int64_t lanes = maxLanes;
    for (auto op : kernel.getBody().front().getOps<linalg::LinalgOp>()) {
      if (!qualifies(op, minK))
        continue;
      reductions.push_back(op);
      lanes = std::min<int64_t>(lanes, llvm::bit_floor(uint64_t(*reducedExtent(op))));
    }
    if (reductions.empty())
      return;
    kiln::gpu::CooperativeShape shape;
    shape.lanes = lanes;
    kiln::gpu::setCooperativeShape(kernel, shape);
    for (linalg::LinalgOp op : reductions)
      reduce(kernel, op, shape);
  }

  void reduce(func::FuncOp kernel, linalg::LinalgOp op, const kiln::gpu::CooperativeShape &shape) {
    Location loc = op.getLoc();
    int64_t lanes = shape.lanes;
    Operation *combine = combiner(op);
    Value accArg = op.getBlock()->getArguments().back();
    unsigned accPos = combine->getOperand(0) == accArg ? 0 : 1;
    Value out = op.getDpsInits()[0];
    Type element = getElementTypeOrSelf(out.getType());
    Value partials = kiln::gpu::allocWorkgroupBuffer(kernel, {lanes}, element);

    OpBuilder b(op);
    auto cst = [&](int64_t v) { return arith::ConstantIndexOp::create(b, loc, v).getResult(); };
    Value lane = kiln::gpu::threadCoords(b, loc, shape).lane;

    SmallVector<int64_t> ranges = op.getStaticLoopRanges();
    SmallVector<unsigned> reductionDims;
    op.getReductionDims(reductionDims);
    // The element `x` of the combine at linear reduction index `r`
    // (reduction loops row-major, the last fastest; parallel loops are 0).
    auto elementAt = [&](OpBuilder &bb, Value r) {
      SmallVector<Value> dims(op.getNumLoops());
      for (Value &d : dims)
        d = arith::ConstantIndexOp::create(bb, loc, 0);
      for (unsigned d : llvm::reverse(reductionDims)) {
        Value size = arith::ConstantIndexOp::create(bb, loc, ranges[d]);
        dims[d] = arith::RemUIOp::create(bb, loc, r, size);
        r = arith::DivUIOp::create(bb, loc, r, size);
      }
      SmallVector<Value> args;
      for (OpOperand *input : op.getDpsInputOperands())
        args.push_back(memref::LoadOp::create(
            bb, loc, input->get(),
            kiln::gpu::applyIndexingMap(bb, loc, op.getMatchingIndexingMap(input), dims)));
      // The body up to the combine gives x; the combine itself is applied by
      // the caller, so feed the accumulator a placeholder and read the
      // combine's other operand.
      IRMapping map;
      map.map(op.getBlock()->getArguments().drop_back(), args);
      for (Operation &inner : op.getBlock()->without_terminator()) {
        if (&inner == combine)
          break;
        if (auto index = dyn_cast<linalg::IndexOp>(inner)) {
          map.map(index.getResult(), dims[index.getDim()]);
          continue;
        }
        bb.clone(inner, map);
      }
      return map.lookupOrDefault(combine->getOperand(1 - accPos));
    };
    auto combineWith = [&](OpBuilder &bb, Value acc, Value x) -> Value {
      IRMapping map;
      map.map(combine->getOperand(accPos), acc);
      map.map(combine->getOperand(1 - accPos), x);
      return bb.clone(*combine, map)->getResult(0);
    };

    int64_t k = *reducedExtent(op);
    Value first = elementAt(b, lane);
    auto strided = scf::ForOp::create(
        b, loc, arith::AddIOp::create(b, loc, lane, cst(lanes)), cst(k), cst(lanes),
        ValueRange{first}, [&](OpBuilder &lb, Location, Value r, ValueRange acc) {
          scf::YieldOp::create(lb, loc, combineWith(lb, acc[0], elementAt(lb, r)));
        });
    memref::StoreOp::create(b, loc, strided.getResult(0), partials, lane);
    mlir::gpu::BarrierOp::create(b, loc);
    for (int64_t half = lanes / 2; half >= 1; half /= 2) {
      Value halfIndex = cst(half);
      Value active = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ult, lane, halfIndex);
      auto step = scf::IfOp::create(b, loc, active, /*withElseRegion=*/false);
      OpBuilder sb = step.getThenBodyBuilder();
      Value mine = memref::LoadOp::create(sb, loc, partials, lane);
      Value other = memref::LoadOp::create(
          sb, loc, partials, ValueRange{arith::AddIOp::create(sb, loc, lane, halfIndex)});
      memref::StoreOp::create(sb, loc, combineWith(sb, mine, other), partials, lane);
      mlir::gpu::BarrierOp::create(b, loc);
    }
    Value total = memref::LoadOp::create(b, loc, partials, ValueRange{cst(0)});
    SmallVector<Value> zeros(op.getNumLoops(), cst(0));
    SmallVector<Value> outIndices = kiln::gpu::applyIndexingMap(
        b, loc, op.getMatchingIndexingMap(op.getDpsInitOperand(0)), zeros);
    Value init = memref::LoadOp::create(b, loc, out, outIndices);
    memref::StoreOp::create(b, loc, combineWith(b, init, total), out, outIndices);
    op->erase();
  }
};

} // namespace

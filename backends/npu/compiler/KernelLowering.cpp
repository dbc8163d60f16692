//===- KernelLowering.cpp - sinks, their tiling, the driver ---------------===//
//
// Part of the npu kernel lowering (KernelLowering.h, design in NpuTarget.cpp):
// run() analyzes the kernel and lowers its sinks tile by tile.
//
//===----------------------------------------------------------------------===//
#include "KernelLowering.h"

namespace kiln::npu::lowering {

llvm::Expected<npu::Program> KernelLowering::run() {
  if (!analyze() || !emitSinks())
    return llvm::createStringError(llvm::inconvertibleErrorCode(), error);
  npu::Program p = e.finish();
  std::string v = npu::verify(p);
  if (!v.empty())
    return llvm::createStringError(
        llvm::inconvertibleErrorCode(),
        "npu: internal error: kernel " + fn.getSymName().str() + ": " + v);
  return p;
}

//===----------------------------------------------------------------------===//
// Sinks
//===----------------------------------------------------------------------===//

/// The contraction or reduction a sink's value is built around, found
/// through identity-mapped temporaries.
Operation *KernelLowering::anchorOf(Operation *op) {
  if (isContraction(op) || isReduction(op))
    return op;
  auto g = dyn_cast<linalg::GenericOp>(op);
  if (!g)
    return nullptr;
  for (OpOperand &o : g->getOpOperands()) {
    if (!isa<MemRefType>(o.get().getType()))
      continue;
    Value root = rootOf(o.get());
    Operation *p = versionAt.lookup({op, root});
    if (!p || isBinding(root) || isFill(p) || !g.getMatchingIndexingMap(&o).isIdentity())
      continue;
    if (Operation *a = anchorOf(p))
      return a;
  }
  return nullptr;
}

/// Chooses partition and free dims for a sink's iteration space.
bool KernelLowering::chooseTiling(Operation *sink, SmallVector<int64_t> &ranges, Box &shape,
                                  SmallVector<int64_t> &chunk) {
  if (auto c = dyn_cast<memref::CopyOp>(sink))
    ranges = llvm::to_vector(cast<MemRefType>(c.getTarget().getType()).getShape());
  else
    ranges = cast<linalg::LinalgOp>(sink).getStaticLoopRanges();
  unsigned n = ranges.size();
  chunk.assign(n, 1);
  shape = Box();
  Operation *anchor = anchorOf(sink);
  auto largest = [&](ArrayRef<unsigned> dims) {
    int best = -1;
    for (unsigned d : dims)
      if (best < 0 || ranges[d] > ranges[best])
        best = static_cast<int>(d);
    return best;
  };
  if (anchor) {
    auto g = cast<linalg::GenericOp>(anchor);
    AffineMap om = g.getMatchingIndexingMap(g.getDpsInitOperand(0));
    // Sink dim j is anchor output dim j (identity maps in between).
    auto toSink = [&](int ad) -> int {
      if (ad < 0 || anchor == sink)
        return ad;
      for (unsigned j = 0; j < om.getNumResults(); ++j)
        if (om.getResult(j) == getAffineDimExpr(ad, sink->getContext()))
          return static_cast<int>(j);
      return -1;
    };
    auto iters = g.getIteratorTypesArray();
    SmallVector<unsigned> mdims, ndims, pdims;
    for (unsigned d = 0; d < iters.size(); ++d) {
      if (iters[d] != utils::IteratorType::parallel)
        continue;
      pdims.push_back(d);
      if (isContraction(anchor)) {
        auto [x, z] = factors(g);
        llvm::SmallPtrSet<Value, 4> xa, za;
        argsOf(x, xa);
        argsOf(z, za);
        bool inA = sideUses(g, xa, static_cast<int>(d));
        bool inB = sideUses(g, za, static_cast<int>(d));
        if (inA && !inB)
          mdims.push_back(d);
        if (inB && !inA)
          ndims.push_back(d);
      }
    }
    int p = isContraction(anchor) ? largest(mdims) : largest(pdims);
    shape.pdim = toSink(p);
    if (p >= 0 && shape.pdim < 0)
      return fail(sink, "internal: cannot relate the tile to its anchor");
    if (shape.pdim >= 0)
      chunk[shape.pdim] = 128;
    if (isContraction(anchor)) {
      int nd = toSink(largest(ndims));
      if (nd >= 0) {
        shape.fdims.push_back(static_cast<unsigned>(nd));
        chunk[nd] = 512;
      }
    }
  } else if (n > 0) {
    SmallVector<unsigned> outer;
    for (unsigned d = 0; d + 1 < n; ++d)
      outer.push_back(d);
    shape.pdim = n == 1 ? 0 : largest(outer);
    chunk[shape.pdim] = 128;
    int64_t budget = kFreeBudget;
    for (int d = static_cast<int>(n) - 1; d >= 0 && shape.fdims.size() < 3; --d) {
      if (d == shape.pdim || budget <= 1)
        continue;
      if (ranges[d] <= budget) {
        chunk[d] = ranges[d];
        budget /= ranges[d];
        shape.fdims.insert(shape.fdims.begin(), static_cast<unsigned>(d));
      } else {
        if (shape.fdims.empty()) {
          chunk[d] = budget;
          shape.fdims.push_back(static_cast<unsigned>(d));
        }
        break;
      }
    }
  }
  return true;
}

bool KernelLowering::emitSinks() {
  for (Operation *sink : sinks) {
    SmallVector<int64_t> ranges, chunk;
    Box shape;
    if (!chooseTiling(sink, ranges, shape, chunk))
      return false;
    Value outV = outputOf(sink);
    AffineMap om;
    if (auto g = dyn_cast<linalg::LinalgOp>(sink))
      om = g.getMatchingIndexingMap(g.getDpsInitOperand(0));
    else
      om = AffineMap::getMultiDimIdentityMap(ranges.size(), sink->getContext());
    // Reduction dims of the sink itself are covered whole by each tile.
    SmallVector<bool> reduced(ranges.size(), false);
    if (auto g = dyn_cast<linalg::GenericOp>(sink)) {
      auto iters = g.getIteratorTypesArray();
      for (unsigned d = 0; d < iters.size(); ++d)
        reduced[d] = iters[d] == utils::IteratorType::reduction;
    }
    SmallVector<int64_t> counts(ranges.size(), 1);
    int64_t tiles = 1;
    for (unsigned d = 0; d < ranges.size(); ++d)
      if (!reduced[d]) {
        counts[d] = (ranges[d] + chunk[d] - 1) / chunk[d];
        tiles *= counts[d];
      }
    Region *dstHbm = hbm[rootOf(outV)];
    for (int64_t t = 0; t < tiles; ++t) {
      Box box = shape;
      box.lo.assign(ranges.size(), 0);
      box.size = ranges;
      int64_t rem = t;
      for (int d = static_cast<int>(ranges.size()) - 1; d >= 0; --d) {
        if (reduced[d])
          continue;
        int64_t i = rem % counts[d];
        rem /= counts[d];
        box.lo[d] = i * chunk[d];
        box.size[d] = std::min(chunk[d], ranges[d] - box.lo[d]);
      }
      Val v;
      if (!evalOp(sink, box, v))
        return false;
      Box obox = box;
      // The stored tile covers the output dims only.
      if (!broadcast(sink, v, obox) || !materializeSbuf(sink, v))
        return false;
      AccessPattern dst;
      if (!hbmPattern(sink, outV, om, obox, false, dst))
        return false;
      AccessPattern src = v.ap;
      e.emit(e.nextQueue(), {v.reg}, {dstHbm},
             [&](auto &s) { s.dmaCopy(dst, src); });
      releaseTiles(tileRegions);
    }
    releaseTiles(tileRegions);
    releaseTiles(residentTiles);
    operandCache.clear();
    residentBytes = 0;
  }
  return true;
}

/// DMA cannot read PSUM: evacuate on the Scalar Engine first.
bool KernelLowering::materializeSbuf(Operation *op, Val &v) {
  if (v.ap.space == Space::Sbuf)
    return true;
  return activation(op, v, ActFunc::Identity);
}

} // namespace kiln::npu::lowering

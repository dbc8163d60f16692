//===- Tiles.cpp - operand tiles and their DMAs ---------------------------===//
//
// Part of the npu kernel lowering (KernelLowering.h, design in NpuTarget.cpp):
// access patterns from indexing maps, operand tiles DMAed in from bindings
// (padding included), and pending activations applied to tiles.
//
//===----------------------------------------------------------------------===//
#include "KernelLowering.h"

#include "mlir/IR/AffineExpr.h"

#include <functional>

namespace kiln::npu::lowering {

//===----------------------------------------------------------------------===//
// Maps and views
//===----------------------------------------------------------------------===//

std::optional<LinearExpr> KernelLowering::linear(AffineExpr e, unsigned numDims) {
  LinearExpr r;
  r.coeff.assign(numDims, 0);
  std::function<bool(AffineExpr, int64_t)> walk = [&](AffineExpr x, int64_t c) {
    if (auto d = dyn_cast<AffineDimExpr>(x)) {
      r.coeff[d.getPosition()] += c;
      return true;
    }
    if (auto k = dyn_cast<AffineConstantExpr>(x)) {
      r.constant += c * k.getValue();
      return true;
    }
    auto bin = dyn_cast<AffineBinaryOpExpr>(x);
    if (!bin)
      return false;
    if (x.getKind() == AffineExprKind::Add)
      return walk(bin.getLHS(), c) && walk(bin.getRHS(), c);
    if (x.getKind() == AffineExprKind::Mul) {
      if (auto k = dyn_cast<AffineConstantExpr>(bin.getRHS()))
        return walk(bin.getLHS(), c * k.getValue());
      if (auto k = dyn_cast<AffineConstantExpr>(bin.getLHS()))
        return walk(bin.getRHS(), c * k.getValue());
    }
    return false;
  };
  if (!walk(e, 1))
    return std::nullopt;
  return r;
}

std::optional<HbmView> KernelLowering::viewOf(Operation *user, Value v) {
  Value root = rootOf(v);
  auto type = cast<MemRefType>(v.getType());
  HbmView h;
  h.binding = cast<BlockArgument>(root).getArgNumber();
  h.bindingElems = cast<MemRefType>(root.getType()).getNumElements();
  if (failed(type.getStridesAndOffset(h.strides, h.offset)) ||
      ShapedType::isDynamic(h.offset) ||
      llvm::any_of(h.strides, ShapedType::isDynamic)) {
    fail(user, "reads a memref with a dynamic layout");
    return std::nullopt;
  }
  return h;
}

/// HBM and on-chip access patterns of `box` of `op`'s operand `v` read
/// through `map`. With `perPart` the free dims are dropped (the operand
/// does not vary along them).
bool KernelLowering::hbmPattern(Operation *op, Value v, AffineMap map, const Box &box,
                                bool perPart, AccessPattern &out) {
  auto view = viewOf(op, v);
  if (!view)
    return false;
  unsigned n = map.getNumDims();
  int64_t offset = view->offset;
  SmallVector<int64_t> dimStride(n, 0);
  for (unsigned j = 0; j < map.getNumResults(); ++j) {
    auto l = linear(map.getResult(j), n);
    if (!l)
      return fail(op, "has a non-linear indexing map the npu DMA cannot follow");
    offset += view->strides[j] * l->constant;
    for (unsigned d = 0; d < n; ++d) {
      offset += view->strides[j] * l->coeff[d] * box.lo[d];
      dimStride[d] += view->strides[j] * l->coeff[d];
    }
  }
  SmallVector<npu::Dim> dims;
  if (box.pdim >= 0)
    dims.push_back({dimStride[box.pdim], box.size[box.pdim]});
  if (!perPart)
    for (unsigned d : box.fdims)
      dims.push_back({dimStride[d], box.size[d]});
  if (dims.empty())
    dims.push_back({1, 1});
  // Windows with padding would read outside the binding: not expressible.
  int64_t lo = offset, hi = offset;
  for (auto &d : dims) {
    (d.stride < 0 ? lo : hi) += d.stride * (d.size - 1);
  }
  if (lo < 0 || hi >= view->bindingElems)
    return fail(op, "reads outside its operand (padding?) at elements [" +
                        llvm::Twine(lo) + ", " + llvm::Twine(hi) + "]");
  out = AccessPattern();
  out.space = Space::Hbm;
  out.dtype = DType::F32;
  out.tensor = view->binding;
  out.offset = npu::Affine(offset);
  out.rank = static_cast<uint8_t>(dims.size());
  for (size_t i = 0; i < dims.size(); ++i)
    out.dims[i] = dims[i];
  return true;
}

//===----------------------------------------------------------------------===//
// Tiles
//===----------------------------------------------------------------------===//

/// The pad value of a padded operand (PaddedReads.h), or nullopt.
std::optional<float> KernelLowering::padOf(Operation *op, Value v, AffineMap map) {
  auto g = dyn_cast<linalg::LinalgOp>(op);
  for (const npu::PaddedOperand &p : padded)
    if (p.op == op && op->getOperand(p.operand) == v &&
        g.getMatchingIndexingMap(&op->getOpOperand(p.operand)) == map)
      return p.pad;
  return std::nullopt;
}

/// The sub-boxes of `box` whose reads of `v` through `map` fall inside
/// it, along the dims the tile spans. A bound that involves several tile
/// dims (a window: output + kernel offset) splits the box along one of
/// them until each piece is a box.
bool KernelLowering::clipToOperand(Operation *op, Value v, AffineMap map, const Box &box,
                                   bool perPart, std::vector<Box> &parts) {
  SmallVector<unsigned> tileDims;
  if (box.pdim >= 0)
    tileDims.push_back(static_cast<unsigned>(box.pdim));
  if (!perPart)
    tileDims.append(box.fdims.begin(), box.fdims.end());
  auto type = cast<MemRefType>(v.getType());
  unsigned n = map.getNumDims();
  Box inside = box;
  for (unsigned j = 0; j < map.getNumResults(); ++j) {
    auto l = linear(map.getResult(j), n);
    if (!l)
      return fail(op, "has a non-linear indexing map the npu DMA cannot follow");
    int64_t extent = type.getDimSize(j), base = l->constant, lo = 0, hi = 0;
    SmallVector<unsigned> along;
    for (unsigned d = 0; d < n; ++d) {
      if (!l->coeff[d])
        continue;
      base += l->coeff[d] * inside.lo[d];
      if (llvm::is_contained(tileDims, d) && inside.size[d] > 1)
        along.push_back(d);
      int64_t span = l->coeff[d] * (inside.size[d] - 1);
      (span < 0 ? lo : hi) += span;
    }
    if (base + lo >= 0 && base + hi < extent)
      continue;
    if (along.empty() || base + hi < 0 || base + lo >= extent)
      return true; // Nothing of this piece is inside.
    if (along.size() > 1) {
      unsigned split = *llvm::min_element(
          along, [&](unsigned x, unsigned y) { return inside.size[x] < inside.size[y]; });
      if (parts.size() + inside.size[split] > kMaxPadPieces)
        return fail(op, "pads a tile into more than " + llvm::Twine(kMaxPadPieces) +
                            " pieces; the npu lowering does not split it further");
      for (int64_t t = 0; t < inside.size[split]; ++t) {
        Box piece = inside;
        piece.lo[split] = inside.lo[split] + t;
        piece.size[split] = 1;
        if (!clipToOperand(op, v, map, piece, perPart, parts))
          return false;
      }
      return true;
    }
    // 0 <= base + c*t < extent, for t in [0, size).
    unsigned d = along.front();
    int64_t c = l->coeff[d];
    int64_t first = c > 0 ? llvm::divideCeilSigned(-base, c)
                          : llvm::divideCeilSigned(extent - 1 - base, c);
    int64_t last = c > 0 ? llvm::divideFloorSigned(extent - 1 - base, c)
                         : llvm::divideFloorSigned(-base, c);
    int64_t t0 = std::max<int64_t>(0, first);
    int64_t t1 = std::min(inside.size[d], last + 1);
    if (t1 <= t0)
      return true;
    inside.lo[d] += t0;
    inside.size[d] = t1 - t0;
  }
  parts.push_back(inside);
  return true;
}

/// DMAs the box of an operand read from a binding into a new tile. A
/// padded operand's tile is first filled with its pad value, then gets
/// the pieces inside the binding.
bool KernelLowering::loadTile(Operation *op, Value v, AffineMap map, const Box &box,
                              bool perPart, Val &out, bool resident) {
  std::optional<float> pad = padOf(op, v, map);
  std::vector<Box> parts;
  if (!pad)
    parts.push_back(box);
  else if (!clipToOperand(op, v, map, box, perPart, parts))
    return false;
  bool whole = parts.size() == 1 && parts[0].lo == box.lo && parts[0].size == box.size;
  SmallVector<int64_t> free = perPart ? SmallVector<int64_t>{1} : freeShape(box);
  Region *r = allocTile(op, Space::Sbuf, box.partitions(), free, DType::F32,
                        out.ap, resident);
  if (!r)
    return false;
  out.reg = r;
  out.perPart = perPart && !box.fdims.empty();
  Region *h = hbm[rootOf(v)];
  if (!whole) {
    AccessPattern dst = out.ap;
    float value = *pad;
    e.emit(gpsimd(), {}, {r}, [&](auto &s) { s.memset(dst, value); });
    if (!parts.empty() && !perPart && dst.rank != box.fdims.size())
      return fail(op, "pads a tile with more than " + llvm::Twine(npu::kMaxFreeDims) +
                          " free dims");
  }
  for (const Box &part : parts) {
    AccessPattern src, dst = out.ap;
    if (!hbmPattern(op, v, map, part, perPart, src))
      return false;
    if (box.pdim >= 0) {
      dst.partition = static_cast<uint32_t>(part.lo[box.pdim] - box.lo[box.pdim]);
      dst.partitions = static_cast<uint32_t>(part.size[box.pdim]);
    }
    if (!perPart && !whole)
      for (auto [i, d] : llvm::enumerate(box.fdims)) {
        dst.offset.base +=
            (part.lo[d] - box.lo[d]) * dst.dims[i].stride * npu::dtypeSize(DType::F32);
        dst.dims[i].size = part.size[d];
      }
    e.emit(e.nextQueue(), {h}, {r}, [&](auto &s) { s.dmaCopy(dst, src); });
  }
  return true;
}

/// Applies a pending function/affine: the value as a plain tile.
bool KernelLowering::materialize(Operation *op, Val &v, const Box &box) {
  if (v.isImm) {
    AccessPattern ap;
    Region *r = allocTile(op, Space::Sbuf, box.partitions(), {1}, DType::F32, ap);
    if (!r)
      return false;
    float x = v.imm;
    e.emit(gpsimd(), {}, {r}, [&](auto &s) { s.memset(ap, x); });
    v = Val();
    v.reg = r;
    v.ap = ap;
    v.perPart = !box.fdims.empty();
    return true;
  }
  if (!v.pending())
    return true;
  return activation(op, v, v.func);
}

/// v = func(v.src * scale + bias) as one Scalar Engine instruction.
bool KernelLowering::activation(Operation *op, Val &v, ActFunc func) {
  AccessPattern dst;
  SmallVector<int64_t> free;
  for (unsigned i = 0; i < v.ap.rank; ++i)
    free.push_back(v.ap.dims[i].size);
  Region *r = allocTile(op, Space::Sbuf, v.ap.partitions, free, DType::F32, dst);
  if (!r)
    return false;
  SmallVector<Region *> reads = {v.reg};
  npu::ScalarOperand bias(v.biasImm);
  if (v.biasIsAp) {
    reads.push_back(v.biasReg);
    bias = npu::ScalarOperand(v.biasAp);
  }
  AccessPattern src = v.ap;
  float scale = v.scale;
  e.emit(scalar(), reads, {r}, [&](auto &s) {
    s.activation(dst, src, func, npu::ScalarOperand(scale), bias);
  });
  bool pp = v.perPart;
  v = Val();
  v.reg = r;
  v.ap = dst;
  v.perPart = pp;
  return true;
}

/// An immediate or per-partition tile as a tile of the full box.
bool KernelLowering::broadcast(Operation *op, Val &v, const Box &box) {
  if (!materialize(op, v, box))
    return false;
  if (!v.perPart)
    return true;
  AccessPattern dst;
  Region *r = allocTile(op, Space::Sbuf, box.partitions(), freeShape(box),
                        DType::F32, dst);
  if (!r)
    return false;
  // 0 * x would turn inf into NaN: clear the tile, then add.
  e.emit(gpsimd(), {}, {r}, [&](auto &s) { s.memset(dst, 0.0f); });
  AccessPattern pp = v.ap;
  e.emit(vector(), {v.reg}, {r}, [&](auto &s) {
    s.tensorScalar(dst, dst, AluOp::Add, npu::ScalarOperand(pp));
  });
  v = Val();
  v.reg = r;
  v.ap = dst;
  return true;
}

} // namespace kiln::npu::lowering

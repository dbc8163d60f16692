//===- Allocation.cpp - SBUF and PSUM -------------------------------------===//
//
// Part of the npu kernel lowering (KernelLowering.h, design in NpuTarget.cpp):
// SBUF and PSUM are handed out round robin by a next-fit allocator, so that
// consecutive tiles land in different places; a region is reused only after
// its last readers are done.
//
//===----------------------------------------------------------------------===//
#include "KernelLowering.h"

#include <algorithm>

namespace kiln::npu::lowering {

//===----------------------------------------------------------------------===//
// The allocator
//===----------------------------------------------------------------------===//

int64_t Allocator::alloc(int64_t bytes, Deps &deps) {
  bytes = (bytes + align - 1) / align * align;
  for (int pass = 0; pass < 2; ++pass)
    for (size_t i = 0; i < free.size(); ++i) {
      Free &f = free[i];
      int64_t lo = std::max(f.lo, pass == 0 ? cursor : f.lo);
      if (lo + bytes > f.hi)
        continue;
      deps = f.deps;
      Free after{lo + bytes, f.hi, f.deps};
      f.hi = lo;
      if (after.hi > after.lo)
        free.insert(free.begin() + i + 1, after);
      if (free[i].hi <= free[i].lo)
        free.erase(free.begin() + i);
      cursor = lo + bytes >= capacity ? 0 : lo + bytes;
      return lo;
    }
  return -1;
}

void Allocator::release(int64_t lo, int64_t bytes, const Deps &deps) {
  bytes = (bytes + align - 1) / align * align;
  auto it = std::lower_bound(free.begin(), free.end(), lo,
                             [](const Free &f, int64_t v) { return f.lo < v; });
  it = free.insert(it, {lo, lo + bytes, deps});
  // Merge neighbours; the merged range waits for all their users.
  size_t i = it - free.begin();
  if (i + 1 < free.size() && free[i].hi == free[i + 1].lo) {
    free[i].hi = free[i + 1].hi;
    join(free[i].deps, free[i + 1].deps);
    free.erase(free.begin() + i + 1);
  }
  if (i > 0 && free[i - 1].hi == free[i].lo) {
    free[i - 1].hi = free[i].hi;
    join(free[i - 1].deps, free[i].deps);
    free.erase(free.begin() + i);
  }
}

//===----------------------------------------------------------------------===//
// Tiles
//===----------------------------------------------------------------------===//

/// A fresh tile [partitions, free...] in SBUF (or PSUM), freed with the
/// current output tile unless `resident`.
Region *KernelLowering::allocTile(Operation *op, Space space, int64_t partitions,
                                  ArrayRef<int64_t> free, DType t, AccessPattern &ap,
                                  bool resident) {
  int64_t elems = 1;
  for (int64_t f : free)
    elems *= f;
  int64_t bytes = elems * npu::dtypeSize(t);
  Deps prev{};
  Allocator &a = space == Space::Sbuf ? sbuf : psum;
  int64_t off = a.alloc(bytes, prev);
  if (off < 0) {
    fail(op, "needs " + llvm::Twine(bytes) + " more bytes per partition of " +
                 (space == Space::Sbuf ? "SBUF" : "PSUM") +
                 " than are free (a tile of " + llvm::Twine(partitions) +
                 " x " + llvm::Twine(elems) + ")");
    return nullptr;
  }
  Region &r = regions.emplace_back();
  r.space = space;
  r.lo = off;
  r.size = bytes;
  r.reads = prev;
  (resident ? residentTiles : tileRegions).push_back(&r);
  ap = AccessPattern();
  ap.space = space;
  ap.dtype = t;
  ap.partition = 0;
  ap.partitions = static_cast<uint32_t>(partitions);
  ap.offset = npu::Affine(off);
  SmallVector<npu::Dim> dims;
  int64_t stride = elems;
  for (int64_t f : free) {
    stride /= f;
    dims.push_back({stride, f});
  }
  // More than 3 free dims: the innermost ones are contiguous, merge them.
  while (dims.size() > npu::kMaxFreeDims) {
    npu::Dim inner = dims.pop_back_val();
    dims.back() = {inner.stride, dims.back().size * inner.size};
  }
  if (dims.empty())
    dims.push_back({1, 1});
  ap.rank = static_cast<uint8_t>(dims.size());
  for (size_t i = 0; i < dims.size(); ++i)
    ap.dims[i] = dims[i];
  return &r;
}

void KernelLowering::releaseTiles(std::vector<Region *> &list) {
  for (Region *r : list) {
    Deps d = r->write;
    join(d, r->reads);
    (r->space == Space::Sbuf ? sbuf : psum).release(r->lo, r->size, d);
  }
  list.clear();
}

SmallVector<int64_t> KernelLowering::freeShape(const Box &box) {
  SmallVector<int64_t> s;
  for (unsigned d : box.fdims)
    s.push_back(box.size[d]);
  return s;
}

} // namespace kiln::npu::lowering

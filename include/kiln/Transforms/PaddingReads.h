//===- PaddingReads.h - matching the importer's padding reads --*- C++ -*-===//
//
// The importer writes padding (Conv and pool `pads`, Pad) as
// `select(inBounds(s), B[clamp(s)], pad)`, with each clamp
// `minsi(maxsi(s, 0), hi)` or `maxsi(minsi(s, hi), 0)` and the bound checks
// `s >= 0`, `s < size` joined by `arith.andi`. Backends that read such a
// load another way (the npu as a padded operand, the cpu as a conditional
// load) take it apart with these.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_TRANSFORMS_PADDINGREADS_H
#define KILN_TRANSFORMS_PADDINGREADS_H

#include "mlir/IR/Value.h"
#include "llvm/ADT/SmallVector.h"

namespace kiln {

/// `s` where `v` clamps it to [0, hi], else a null value.
mlir::Value unclampedIndex(mlir::Value v, int64_t hi);

/// The conjuncts of an `arith.andi` tree rooted at `v` (`v` itself if it is
/// no `andi`).
void conjuncts(mlir::Value v, llvm::SmallVectorImpl<mlir::Value> &leaves);

} // namespace kiln

#endif // KILN_TRANSFORMS_PADDINGREADS_H

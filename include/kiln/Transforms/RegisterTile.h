//===- RegisterTile.h - contractions as broadcast x vector outer products -*- C++ -*-===//
//
// The register-tile strategy every target grows into (docs/design.md, "Register
// tiles"): a contraction `out[.., m, n] += f(lhs(.., m, k..), rhs(.., k.., n))`
// is computed as an Mr x Nr tile of accumulators held in registers; per step
// of the reduction, Mr scalars of `lhs` are broadcast, Nr/VL vectors of `rhs`
// are loaded along `n`, and the tile takes Mr x Nr/VL fused multiply-adds.
// `n` must be the output's contiguous dim and enter `rhs`'s last index with
// coefficient 1 (or 2: every other element of two vectors), so both are read
// and written as whole vectors.
//
// The workgroup tiler uses the match to hand each workgroup whole register
// tiles; the cpu backend uses it to emit the micro-kernel.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_TRANSFORMS_REGISTERTILE_H
#define KILN_TRANSFORMS_REGISTERTILE_H

#include "mlir/Dialect/Linalg/IR/Linalg.h"

#include <optional>

namespace kiln {

struct ContractionTiling {
  /// Loop of the output's contiguous (vector) dimension.
  unsigned n;
  /// Loop along the tile's rows, if any: one `lhs` reads and `rhs` does not
  /// where there is one, else another of the output's parallel loops.
  std::optional<unsigned> m;
  /// Input operand indices: `lhs` is read as scalars, `rhs` as vectors.
  unsigned lhs, rhs;
  /// Step of rhs's last index per step of `n`: 1, or 2 (a strided convolution).
  int64_t rhsStride;
  /// Columns per panel when rhs is stored as column panels (kiln-pack-
  /// constant-operands: its indices `n floordiv P` and last `n mod P`), else 0.
  /// A tile's columns must then start at a multiple of P and fit in P.
  int64_t rhsPanel = 0;
};

/// Matches a linalg.generic with two inputs, one init and at least one
/// reduction loop whose body is elementwise arith/math code (so it can run on
/// vectors). Layout is checked on the indexing maps only; a caller on buffers
/// also checks that the output's and `rhs`'s last strides are 1.
std::optional<ContractionTiling> matchRegisterTileContraction(mlir::linalg::LinalgOp op);

/// Coefficient of dim `d` in `e` when `e` is a sum of dims times constants
/// (plus a constant); nullopt for anything else (mod, floordiv, products of dims).
std::optional<int64_t> linearCoefficient(mlir::AffineExpr e, unsigned d);

/// The body only computes with elementwise arith/math ops on its arguments
/// and values from above: cloning it with vector types vectorizes it.
bool isVectorizableBody(mlir::Block &body);

} // namespace kiln

#endif // KILN_TRANSFORMS_REGISTERTILE_H

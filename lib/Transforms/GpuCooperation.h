//===- GpuCooperation.h - threads of a block sharing Kiln workgroups -----===//
//
// By default a GPU thread runs one Kiln workgroup on its own. Kernels that
// stage operands in workgroup memory or reduce in a tree need the threads of
// a block to work together; such a kernel says how with a shape:
//
//   kiln.gpu_cooperative = array<i64: tx, ty, tz, lanes>
//
// A block covers a tx x ty x tz tile of the workgroup grid with `lanes`
// threads per workgroup. Every thread computes the ids of its workgroup
// (clamped into the grid, so threads past the edge still reach every
// barrier with valid addresses); only the first lane of an in-range
// workgroup writes memory other than workgroup memory (kiln-gpu-distribute
// guards those writes).
//
//===----------------------------------------------------------------------===//
#ifndef KILN_LIB_TRANSFORMS_GPUCOOPERATION_H
#define KILN_LIB_TRANSFORMS_GPUCOOPERATION_H

#include "kiln/Dialect/Kiln/IR/KilnDialect.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"

#include <array>
#include <optional>

namespace kiln::gpu {

constexpr llvm::StringLiteral kCooperativeAttr = "kiln.gpu_cooperative";

struct CooperativeShape {
  std::array<int64_t, 3> tile = {1, 1, 1};
  int64_t lanes = 1;
  int64_t threads() const { return tile[0] * tile[1] * tile[2] * lanes; }
};

inline std::optional<CooperativeShape> getCooperativeShape(mlir::func::FuncOp kernel) {
  auto attr = kernel->getAttrOfType<mlir::DenseI64ArrayAttr>(kCooperativeAttr);
  if (!attr || attr.size() != 4)
    return std::nullopt;
  return CooperativeShape{{attr[0], attr[1], attr[2]}, attr[3]};
}

inline void setCooperativeShape(mlir::func::FuncOp kernel, const CooperativeShape &shape) {
  mlir::Builder b(kernel.getContext());
  kernel->setAttr(kCooperativeAttr, b.getDenseI64ArrayAttr({shape.tile[0], shape.tile[1],
                                                            shape.tile[2], shape.lanes}));
}

/// The Kiln workgroup grid of a kernel, [x, y, z].
inline std::array<int64_t, 3> workgroupGrid(mlir::func::FuncOp kernel) {
  std::array<int64_t, 3> grid = {1, 1, 1};
  if (auto wg = kernel->getAttrOfType<mlir::DenseI64ArrayAttr>(kiln::kWorkgroupsAttr))
    for (int i = 0; i < 3 && i < (int)wg.size(); ++i)
      grid[i] = std::max<int64_t>(wg[i], 1);
  return grid;
}

/// Where a thread sits in its block: its lane within its workgroup and the
/// position of that workgroup in the block's tile. The block is
/// one-dimensional; lanes vary fastest, then tile dimension z, y, x (the
/// innermost tiled loop on neighbouring threads, so loads coalesce).
struct ThreadCoords {
  mlir::Value lane;
  std::array<mlir::Value, 3> local;
};

ThreadCoords threadCoords(mlir::OpBuilder &b, mlir::Location loc, const CooperativeShape &shape);

/// A buffer in workgroup memory, allocated at the top of the kernel (where
/// kiln-gpu-distribute turns it into a gpu.func workgroup attribution).
mlir::Value allocWorkgroupBuffer(mlir::func::FuncOp kernel, llvm::ArrayRef<int64_t> shape,
                                 mlir::Type element);

/// Whether every thread of a block sees the same contents at `view`: a view
/// of a kernel binding or a constant, not of a thread's private temporary.
bool isVisibleToAllThreads(mlir::Value view);

/// The grid dimensions (gpu.block_id x/y/z) that `value` depends on.
llvm::SmallVector<bool, 3> blockIdDependence(mlir::Value value);

/// The indices `map` gives for the loop indices `dims`.
llvm::SmallVector<mlir::Value> applyIndexingMap(mlir::OpBuilder &b, mlir::Location loc,
                                                mlir::AffineMap map, mlir::ValueRange dims);

} // namespace kiln::gpu

#endif // KILN_LIB_TRANSFORMS_GPUCOOPERATION_H

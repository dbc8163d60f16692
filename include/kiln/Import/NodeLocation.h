//===- NodeLocation.h - Which ONNX node an op came from ---------*- C++ -*-===//
//
// The importer locates every op it creates for an ONNX node at
//
//   NameLoc(<node name, else its first output>, NameLoc(<op type>, <model>:0:0))
//
// printed `loc("conv1"("Conv"("model.onnx":0:0)))`: diagnostics name the
// node first, and later passes can still tell which nodes (and op types) an
// op computes after fusion has merged locations into FusedLocs (dispatch
// formation records them on each kernel for profiles). Header-only, so the
// passes need not link the importer.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_IMPORT_NODELOCATION_H
#define KILN_IMPORT_NODELOCATION_H

#include "mlir/IR/Location.h"

#include <optional>

namespace kiln {

inline mlir::Location onnxNodeLoc(mlir::StringAttr name, mlir::StringAttr opType,
                                  mlir::Location file) {
  return mlir::NameLoc::get(name, mlir::NameLoc::get(opType, file));
}

struct OnnxNode {
  mlir::StringAttr name;
  mlir::StringAttr opType; // null when the location does not say (older IR)
};

/// The node a single (unfused) location names, if any. A NameLoc over a file
/// location without the op type (IR printed before types were recorded)
/// gives the name alone; names over unknown locations (the importer's
/// initializers) are not nodes.
inline std::optional<OnnxNode> getOnnxNode(mlir::Location loc) {
  auto outer = llvm::dyn_cast<mlir::NameLoc>(loc);
  if (!outer)
    return std::nullopt;
  mlir::Location child = outer.getChildLoc();
  if (auto type = llvm::dyn_cast<mlir::NameLoc>(child);
      type && llvm::isa<mlir::FileLineColLoc>(type.getChildLoc()))
    return OnnxNode{outer.getName(), type.getName()};
  if (llvm::isa<mlir::FileLineColLoc>(child))
    return OnnxNode{outer.getName(), {}};
  return std::nullopt;
}

} // namespace kiln

#endif // KILN_IMPORT_NODELOCATION_H

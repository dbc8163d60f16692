//===- OpRegistry.h - ONNX op handlers by domain, name, opset ---*- C++ -*-===//
//
// Every op file registers its handlers beside their bodies with
// onOp(domain, name, sinceVersion, handler), the way torch-mlir's
// TorchOnnxToTorch patterns do. For a node, the importer asks for the
// handler of its domain and op type at the model's opset of that domain and
// gets the registration with the greatest sinceVersion <= that opset. A
// handler registered since 1 covers every version up to the newest one Kiln
// supports; an op whose inputs or attributes changed at some opset has one
// registration per form, so handlers never read the opset. Every
// sinceVersion is one of the op's since_versions in ONNX's schemas
// (`kiln-compile --list-ops`, checked by test/Import/op-versions.test).
//
// Files: DefaultDomainAtoC.cpp ... DefaultDomainTtoZ.cpp hold the default
// (ai.onnx) domain by the op's first letter; MlDomain.cpp, PreviewDomain.cpp
// and PreviewTrainingDomain.cpp one other domain each. Code several of them
// share lives in Builders.cpp (builders) and OpFamilies.cpp (ops of one
// family spread over several letters: pooling, resize, recurrent layers...).
//
//===----------------------------------------------------------------------===//
#ifndef KILN_LIB_IMPORT_OPREGISTRY_H
#define KILN_LIB_IMPORT_OPREGISTRY_H

#include "kiln/Import/OnnxImporter.h"

#include "mlir/Support/LLVM.h"
#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/StringMap.h"

#include <cstdint>
#include <optional>

namespace kiln::detail {
using namespace mlir;

class OpContext;

/// Builds the current node's outputs, or reports why it cannot.
using Handler = mlir::LogicalResult (*)(OpContext &);

class OpRegistry {
public:
  /// Registers `handler` for op `name` of `domain` ("" is the default
  /// domain, also spelled "ai.onnx") from opset `sinceVersion` on.
  void onOp(StringRef domain, StringRef name, int64_t sinceVersion, Handler handler);

  /// The handler for `name` of `domain` at opset `version`: the
  /// registration with the greatest sinceVersion <= `version`, or null.
  Handler lookup(StringRef domain, StringRef name, int64_t version) const;
  /// The first opset `name` of `domain` is registered for, if it is.
  std::optional<int64_t> firstVersion(StringRef domain, StringRef name) const;
  /// Every registration, by domain, name and version.
  std::vector<ImportedOp> list() const;
  /// The default domain's canonical name ("").
  static StringRef canonicalDomain(StringRef domain);

private:
  struct Entry {
    int64_t since;
    Handler handler;
  };
  static std::string key(StringRef domain, StringRef name);
  /// Sorted by `since`, one entry per version.
  llvm::StringMap<SmallVector<Entry, 1>> ops;
};

/// Every op Kiln imports.
const OpRegistry &opRegistry();

/// One per op file (see the file comment above).
void registerDefaultDomainAtoC(OpRegistry &r);
void registerDefaultDomainDtoG(OpRegistry &r);
void registerDefaultDomainHtoM(OpRegistry &r);
void registerDefaultDomainNtoQ(OpRegistry &r);
void registerDefaultDomainRtoS(OpRegistry &r);
void registerDefaultDomainTtoZ(OpRegistry &r);
void registerMlDomain(OpRegistry &r);
void registerPreviewDomain(OpRegistry &r);
void registerPreviewTrainingDomain(OpRegistry &r);

} // namespace kiln::detail

#endif // KILN_LIB_IMPORT_OPREGISTRY_H

//===- OnnxImporter.h - ONNX protobuf to MLIR -------------------*- C++ -*-===//
//
// Reads an .onnx file (and external-data files beside it) and builds a module
// with one `func.func @main` on tensors in upstream dialects (linalg, tensor,
// arith, math). Shapes are inferred while importing and must be static: a
// symbolic input dimension has to be pinned with ImportOptions::inputShapes.
// Subgraphs that only compute on constants (Shape -> Gather -> Concat ...)
// are folded to constants.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_IMPORT_ONNXIMPORTER_H
#define KILN_IMPORT_ONNXIMPORTER_H

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OwningOpRef.h"
#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/Support/Error.h"

#include <string>
#include <vector>

namespace kiln {

struct ImportOptions {
  /// Input name -> full static shape, overriding the model's (symbolic) one.
  llvm::StringMap<llvm::SmallVector<int64_t>> inputShapes;
  /// Input name -> compile-time value ("@file.pb" holding an ONNX
  /// TensorProto, or "v1,v2,..." in the input's declared element type).
  /// Specialization: the input becomes a constant of the model and leaves
  /// the compiled signature, so shape-like inputs (Reshape's shape, Reduce*
  /// axes, Pad's pads, ...) given as graph inputs can be folded.
  llvm::StringMap<std::string> inputValues;
  /// Sequence input name (also inside an optional) -> element count. Kiln
  /// keeps sequences as compile-time lists, so such an input becomes one
  /// tensor input per element, named "NAME[i]" (pin a symbolic element shape
  /// with inputShapes["NAME[i]"]); sequence outputs come out the same way.
  llvm::StringMap<int64_t> inputSequenceLengths;
  /// Optional inputs that are empty; a present optional input is passed as
  /// its contents, under its own name.
  llvm::StringMap<bool> absentInputs;
  /// Limits that stop a hostile or mistaken model with a clear error before
  /// it exhausts memory or time (kiln-compile's --max-* flags): the bytes of
  /// any one tensor with a static shape, the iterations of one unrolled Loop
  /// or Scan, and the nodes imported in all (an unrolled body counts once
  /// per iteration, so nested loops cannot multiply past it).
  uint64_t maxTensorBytes = uint64_t(16) << 30;
  int64_t maxLoopIterations = 4096;
  int64_t maxNodes = 200000;
};

/// Parses a byte count with an optional K, M, G or T suffix (powers of 1024).
llvm::Expected<uint64_t> parseByteCount(llvm::StringRef text);

/// Parses "name=N" (a sequence input's length) into `options`.
llvm::Error parseInputSequenceLength(llvm::StringRef spec, ImportOptions &options);

/// Parses "name=@file.pb" or "name=v1,v2,..." into `options`.
llvm::Error parseInputValue(llvm::StringRef spec, ImportOptions &options);

/// Parses "name=1x3x224x224" into `options`; returns an error naming the
/// malformed text.
llvm::Error parseInputShape(llvm::StringRef spec, ImportOptions &options);

/// The import failed for want of what only a run knows: graph inputs with
/// symbolic dimensions (ImportOptions::inputShapes pins them), or a node
/// that needs, at compile time, values that come from graph inputs
/// (Reshape's shape, Reduce* axes, a Loop's trip count...; inputValues binds
/// them). Giving them may let it through; more may be needed after that:
/// values once shapes are known, and one failing node at a time.
class SpecializationNeeded : public llvm::ErrorInfo<SpecializationNeeded> {
public:
  static char ID;
  struct Input {
    std::string name;
    int onnxType;                     // TensorProto.DataType
    unsigned elementBytes;            // in buffers (a byte for small types)
    llvm::SmallVector<int64_t> shape; // -1 for a symbolic dimension
  };
  std::string message;                        // the importer's error
  llvm::SmallVector<std::string> valueInputs; // to bind, in graph order
  llvm::SmallVector<std::string> shapeInputs; // to pin, in signature order
  std::vector<Input> signature;               // every (flattened) graph input
  bool externalData = false;                  // the model reads external data files

  void log(llvm::raw_ostream &os) const override { os << message; }
  std::error_code convertToErrorCode() const override {
    return llvm::inconvertibleErrorCode();
  }
};

/// Imports the model at `path`. Errors name the file, and for node-level
/// problems the node, its op type and the opset in use; a
/// SpecializationNeeded when graph inputs must be bound or pinned first.
llvm::Expected<mlir::OwningOpRef<mlir::ModuleOp>>
importOnnxFile(mlir::MLIRContext &context, llvm::StringRef path,
               const ImportOptions &options);

/// One registration of an op importer: ONNX op `name` of `domain` (the
/// default domain is spelled "ai.onnx") imported from opset `sinceVersion`
/// until the op's next registration, if any.
struct ImportedOp {
  std::string domain, name;
  int64_t sinceVersion;
};

/// Every op registration, by domain, name and version.
std::vector<ImportedOp> importedOps();

/// Dialects the imported IR uses; load them before importing.
void registerImportDialects(mlir::DialectRegistry &registry);

} // namespace kiln

#endif // KILN_IMPORT_ONNXIMPORTER_H

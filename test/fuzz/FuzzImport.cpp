//===- FuzzImport.cpp - libFuzzer target: the ONNX importer ---------------===//
//
// Any bytes as an .onnx file: kiln::importOnnxFile must return an error or a
// module that verifies. Needs the compiler (KILN_BUILD_COMPILER=ON); only
// KilnImport and MLIR are linked, not the passes or the backends.
//
//===----------------------------------------------------------------------===//
#include "FuzzUtil.h"

#include "kiln/Import/OnnxImporter.h"

#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  // A context per input: one shared by all would grow with every input's
  // types and attributes, and hide a use of one import's IR by the next.
  mlir::DialectRegistry registry;
  kiln::registerImportDialects(registry);
  mlir::MLIRContext context(registry, mlir::MLIRContext::Threading::DISABLED);
  context.loadAllAvailableDialects();
  // Errors come back as llvm::Error; diagnostics on the side are dropped.
  mlir::ScopedDiagnosticHandler quiet(&context, [](mlir::Diagnostic &) {
    return mlir::success();
  });
  kiln::fuzz::MemFile file(data, size);
  auto imported = kiln::importOnnxFile(context, file.path, kiln::ImportOptions{});
  if (!imported) {
    llvm::consumeError(imported.takeError());
    return 0;
  }
  if (mlir::failed(mlir::verify(**imported)))
    std::abort(); // the importer built invalid IR
  return 0;
}

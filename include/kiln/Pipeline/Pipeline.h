//===- Pipeline.h - the compiler's stages, top to bottom --------*- C++ -*-===//
#ifndef KILN_PIPELINE_PIPELINE_H
#define KILN_PIPELINE_PIPELINE_H

#include "kiln/Artifact/ArtifactWriter.h"
#include "kiln/Target/TargetBackend.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/PassManager.h"

#include <deque>

namespace kiln {

struct CompileOptions {
  int64_t maxWorkgroups = 64;
  int64_t minTileElements = 4096;
};

/// Registers every dialect, pass and interface the compiler uses, plus the
/// backends (kiln-opt and kiln-compile share this).
void registerKilnCompiler(mlir::DialectRegistry &registry);

/// Imported IR -> fused linalg on tensors.
void buildLinalgPipeline(mlir::OpPassManager &pm);
/// Fused linalg -> host function of kiln.dispatch + executable module of
/// bufferized kernels over gpu.block_id workgroups.
void buildDispatchPipeline(mlir::OpPassManager &pm, const CompileOptions &options);
/// Runs `backend`'s codegen pipeline on the executable module.
void buildCodegenPipeline(mlir::OpPassManager &pm, const TargetBackend &backend,
                          const TargetOptions &options);

/// The executable module (kernels) of a module after the dispatch pipeline.
mlir::ModuleOp getExecutableModule(mlir::ModuleOp module);

/// The host side of the artifact: signature, buffers, constants, schedule.
/// Constant bytes point into `storage` or into the module's attributes, so
/// both must outlive the write.
struct Schedule {
  artifact::Module module;
  std::vector<std::string> dispatchKernels; // kernel symbol of each dispatch
  std::deque<std::vector<uint8_t>> storage;
};
llvm::Expected<Schedule> buildSchedule(mlir::ModuleOp module);

/// Adds the executable and resolves each dispatch's entry index.
llvm::Error attachExecutable(Schedule &schedule, artifact::Executable executable);

} // namespace kiln

#endif // KILN_PIPELINE_PIPELINE_H

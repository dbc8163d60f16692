//===- Pipeline.h - the compiler's stages, top to bottom --------*- C++ -*-===//
#ifndef KILN_PIPELINE_PIPELINE_H
#define KILN_PIPELINE_PIPELINE_H

#include "kiln/Artifact/ArtifactWriter.h"
#include "kiln/Target/TargetBackend.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/PassManager.h"

#include <deque>

namespace kiln {

/// Registers every dialect, pass and interface the compiler uses, plus the
/// backends (kiln-opt and kiln-compile share this).
void registerKilnCompiler(mlir::DialectRegistry &registry);

/// Imported IR -> fused linalg on tensors.
/// `padInConsumerKernels` as for buildDispatchPipeline's `fusePadding`:
/// padding stays out of pools too.
void buildLinalgPipeline(mlir::OpPassManager &pm, bool padInConsumerKernels = false);
/// Fused linalg -> host function of kiln.dispatch + executable module of
/// kernels on tensors. The schedule is built from this, one for every target
/// of an artifact: `fusePadding` only when all of them can
/// (TargetBackend::fusesPaddingIntoConsumers).
/// `panelWidth` (TargetBackend::constantPanelWidth, the same for all of
/// them, else 0) packs constant contraction operands first.
void buildDispatchPipeline(mlir::OpPassManager &pm, bool fusePadding = false,
                           int64_t panelWidth = 0);
/// On an executable module: tile kernels onto workgroups, bufferize, and map
/// the workgroup loop to gpu.block_id. Each target runs it on its own copy.
void buildKernelPipeline(mlir::OpPassManager &pm, const KernelOptions &options);
/// The grids the kernel pipeline recorded on the kernels.
KernelGrids collectKernelGrids(mlir::ModuleOp executable);
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
  std::vector<std::string> kernels; // dispatch.kernel indexes this
  std::deque<std::vector<uint8_t>> storage;
};
llvm::Expected<Schedule> buildSchedule(mlir::ModuleOp module);

/// Lets transient buffers whose lifetimes (first to last dispatch binding
/// them) do not overlap share one buffer, renumbering the module's buffers.
void planTransientBuffers(artifact::Module &m);

/// Adds the executable with its entries in the schedule's kernel order.
llvm::Error attachExecutable(Schedule &schedule, artifact::Executable executable);

} // namespace kiln

#endif // KILN_PIPELINE_PIPELINE_H

//===- GpuTarget.h - what the cuda, hip and levelzero backends share -*- C++ -*-===//
//
// GPU backends differ only in the tail of their pipelines: all of them tile
// kernels the same way, map Kiln workgroups onto threads with
// kiln-gpu-distribute, and hand a gpu.module to MLIR's own serialization
// (gpu-module-to-binary) with their target attributes attached.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_TARGET_GPUTARGET_H
#define KILN_TARGET_GPUTARGET_H

#include "kiln/Target/TargetBackend.h"

namespace kiln::gpu {

/// One Kiln workgroup per thread: tile as finely as the grid allows.
KernelOptions kernelOptions(const TargetOptions &options);

/// The shared head of every GPU codegen pipeline: loops inside kernels,
/// workgroups onto threads, kernels into `gpu.module @kiln_kernels`.
void buildDistributionPipeline(mlir::OpPassManager &pm);

/// Entries of the gpu.module's kernels with their block and launch grid.
std::vector<artifact::Entry> kernelEntries(mlir::ModuleOp executable);

/// One serialized object per target attribute of the gpu.module, in order.
struct Object {
  std::string target; // the target attribute, printed
  std::string bytes;
};
/// Runs gpu-module-to-binary on a copy of `executable` with `format`
/// ("isa", "bin", "llvm", ...), returning the objects it produced.
llvm::Expected<std::vector<Object>> serializeGpuModule(mlir::ModuleOp executable,
                                                       llvm::StringRef format,
                                                       llvm::StringRef toolkit);

llvm::Error makeError(const llvm::Twine &message);

/// The archs the user gave (a backend's own --<target>-arch option), or the
/// defaults when there are none.
std::vector<std::string> archsOrDefault(llvm::ArrayRef<std::string> given,
                                        llvm::ArrayRef<std::string> defaults);

} // namespace kiln::gpu

#endif // KILN_TARGET_GPUTARGET_H

//===- TargetBackend.h - one class per compilation target -------*- C++ -*-===//
//
// The target-independent pipeline hands every backend the same thing: an
// executable module of bufferized kernels whose workgroup is `gpu.block_id`.
// A backend lowers that to its code object. Backends live in backends/<name>/
// and register themselves; the core never names one. A backend also owns its
// command-line options (cl options in targetOptionCategory(), defined in its
// own files) and the --emit stages that only it has (emitStages()), which
// kiln-compile lists from the registry.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_TARGET_TARGETBACKEND_H
#define KILN_TARGET_TARGETBACKEND_H

#include "kiln/Artifact/ArtifactWriter.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/PassManager.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/Error.h"

#include <array>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace kiln {

struct TargetOptions {
  /// LLVM target triple; empty means the backend's default (cpu: the host).
  std::string triple;
  /// CPU / chip name; empty means the backend's default (cpu: the host CPU).
  std::string cpu;
  /// Upper bound on workgroups per dispatch; 0 means the backend's default.
  int64_t maxWorkgroups = 0;
};

/// How the shared kernel pipeline tiles one target's kernels.
struct KernelOptions {
  int64_t maxWorkgroups = 64;
  /// Smallest number of output elements a workgroup should compute.
  int64_t minTileElements = 4096;
  /// Tile the innermost parallel loops first (GPU threads want neighbouring
  /// workgroups on neighbouring addresses); else the outermost first.
  bool innermostFirst = false;
  /// Register tile (rows x columns) of contractions (kiln/Transforms/RegisterTile.h):
  /// workgroups get whole tiles. 1 x 1 when the target has none.
  int64_t registerTileRows = 1, registerTileCols = 1;
};

/// Each kernel's grid of workgroups after tiling, by kernel name.
using KernelGrids = std::map<std::string, std::array<int64_t, 3>>;

/// A value of kiln-compile --emit that one backend adds to the stages every
/// target has (onnx-mlir, linalg, dispatch, codegen, llvm, asm, artifact).
struct EmitStage {
  enum class Kind {
    /// Text of the lowered kernels: TargetBackend::emitText with this
    /// stage's name, written to -o (default stdout).
    Text,
    /// Binaries: the executables serialize() returns whose format starts
    /// with `formatPrefix`, each written into the -o folder as
    /// <model>.<format>.<extension>.
    Files,
  };
  std::string name;        ///< The --emit value, e.g. "ptx".
  std::string description; ///< Its line in kiln-compile --help.
  Kind kind = Kind::Text;
  std::string formatPrefix, extension; ///< Files only.
};

class TargetBackend {
public:
  virtual ~TargetBackend() = default;
  /// The name users pass to --target and the runtime driver's name.
  virtual llvm::StringRef name() const = 0;
  /// The runtime driver that runs this target's executables, when it is not
  /// the target's own name (a testing target running on the host).
  virtual llvm::StringRef driverName() const { return name(); }
  virtual llvm::StringRef description() const = 0;
  /// Whether every kernel writes all of its results. Transient buffers are
  /// shared between tensors (planTransientBuffers) only when every target
  /// of an artifact says so: a kernel that leaves part of its result to the
  /// zero-filled buffer would read another tensor's data.
  virtual bool writesWholeResults() const { return true; }
  /// Whether its kernels can compute a padding producer per workgroup
  /// (kiln-form-dispatches' fuse-padding): dispatches are formed once for
  /// every target of an artifact, so only when all of them can.
  virtual bool fusesPaddingIntoConsumers() const { return false; }
  /// Columns per panel its contractions read constant operands in
  /// (kiln-pack-constant-operands); 0 for none. Constants are shared by all
  /// targets of an artifact: packed only when all of them agree.
  virtual int64_t constantPanelWidth(const TargetOptions &) const { return 0; }
  /// How this target wants kernels tiled onto workgroups.
  virtual KernelOptions kernelOptions(const TargetOptions &options) const = 0;
  /// Passes from the shared kernel form to the backend's final dialects.
  virtual void buildCodegenPipeline(mlir::OpPassManager &pm,
                                    const TargetOptions &options) const = 0;
  /// The --emit stages only this backend has (kiln-compile --help lists
  /// them under --emit, after the shared stages).
  virtual std::vector<EmitStage> emitStages() const { return {}; }
  /// Textual forms of the lowered executable: "llvm" (IR), "asm", or the
  /// name of one of the backend's own Text stages.
  virtual llvm::Expected<std::string> emitText(mlir::ModuleOp executable,
                                               llvm::StringRef stage,
                                               const TargetOptions &options) const = 0;
  /// The code objects that go into the artifact (several for several chips,
  /// in the order the runtime should try them). `grids` gives each kernel's
  /// workgroup grid as tiled; a backend maps it onto its launch grid.
  virtual llvm::Expected<std::vector<artifact::Executable>>
  serialize(mlir::ModuleOp executable, const TargetOptions &options,
            const KernelGrids &grids) const = 0;
};

void registerTargetBackend(std::unique_ptr<TargetBackend> backend);
/// Command-line options a backend defines for itself go in this category so
/// that kiln-compile --help lists them.
llvm::cl::OptionCategory &targetOptionCategory();
const TargetBackend *lookupTargetBackend(llvm::StringRef name);
std::vector<std::string> registeredTargetNames();
/// Calls every backend's registration function (generated by CMake).
void registerAllTargetBackends();

} // namespace kiln

#endif // KILN_TARGET_TARGETBACKEND_H

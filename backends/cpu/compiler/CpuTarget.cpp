//===- CpuTarget.cpp - host CPU code generation ---------------------------===//
//
// Kernels become functions `void k(void *const *bindings, i64 wg_x, i64 wg_y,
// i64 wg_z)` in one ELF shared object (kiln/Target/HostCodegen.h); the
// runtime's cpu driver dlopens it from memory and runs each workgroup as a
// thread-pool task.
//
//===----------------------------------------------------------------------===//
#include "Passes.h"
#include "kiln/Dialect/Kiln/IR/KilnDialect.h"
#include "kiln/Target/HostCodegen.h"
#include "kiln/Target/TargetBackend.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/InitAllPasses.h"
#include "mlir/Pass/Pass.h"
#include "mlir/Pass/PassRegistry.h"

#include "llvm/Support/FormatVariadic.h"

using namespace mlir;

namespace {

/// The contraction micro-kernel's shape for the target CPU: about 2/3 of the
/// vector registers hold accumulators, the rest rhs vectors and a broadcast.
struct RegisterTile {
  int64_t lanes32, rows, vectors;
};

RegisterTile registerTile(const kiln::TargetOptions &options) {
  auto bits = kiln::host::vectorRegisterBits(options);
  if (!bits) {
    llvm::consumeError(bits.takeError()); // serialize() reports a bad target
    return {4, 6, 2};
  }
  if (*bits == 512)
    return {16, 8, 2}; // 16 of 32 zmm
  if (*bits == 256)
    return {8, 6, 2}; // 12 of 16 ymm
  return {4, 6, 2};   // 12 of 16 xmm (SSE) or of 32 NEON registers
}

class CpuTarget : public kiln::TargetBackend {
public:
  llvm::StringRef name() const override { return "cpu"; }
  llvm::StringRef description() const override {
    return "host CPU through LLVM (x86-64, aarch64); workgroups on a thread pool";
  }

  bool fusesPaddingIntoConsumers() const override { return true; }
  int64_t constantPanelWidth(const kiln::TargetOptions &options) const override {
    RegisterTile rt = registerTile(options);
    return rt.vectors * rt.lanes32;
  }

  kiln::KernelOptions kernelOptions(const kiln::TargetOptions &options) const override {
    kiln::KernelOptions k;
    if (options.maxWorkgroups > 0)
      k.maxWorkgroups = options.maxWorkgroups;
    RegisterTile rt = registerTile(options);
    k.registerTileRows = rt.rows;
    k.registerTileCols = rt.vectors * rt.lanes32;
    return k;
  }

  void buildCodegenPipeline(OpPassManager &pm, const kiln::TargetOptions &options) const override {
    RegisterTile rt = registerTile(options);
    // Written as text so the stage list reads top to bottom.
    std::string pipeline = llvm::formatv(
        "func.func(kiln-cpu-vectorize-contractions{{vector-bits={0} rows={1} vectors={2}},"
        "kiln-cpu-reassociate-reductions, convert-linalg-to-loops, kiln-cpu-guard-padded-reads{{vector-bits={0}},"
        "kiln-cpu-approximate-math,"
        "canonicalize, cse),"
        "kiln-cpu-lower-abi,"
        "expand-strided-metadata,"
        "lower-affine,"
        "convert-scf-to-cf,"
        "convert-math-to-llvm,"
        "convert-math-to-libm," // scalarizes vector math: vector lowering after it
        "convert-vector-to-llvm,"
        "convert-arith-to-llvm,"
        "convert-index-to-llvm,"
        "finalize-memref-to-llvm,"
        "convert-func-to-llvm,"
        "convert-cf-to-llvm,"
        "reconcile-unrealized-casts,"
        "canonicalize",
        rt.lanes32 * 32, rt.rows, rt.vectors);
    if (failed(parsePassPipeline(pipeline, pm, llvm::errs())))
      llvm::report_fatal_error("kiln: invalid cpu codegen pipeline");
  }

  llvm::Expected<std::string> emitText(ModuleOp executable, llvm::StringRef stage,
                                       const kiln::TargetOptions &options) const override {
    return kiln::host::emitText(executable, stage, options);
  }

  llvm::Expected<std::vector<kiln::artifact::Executable>>
  serialize(ModuleOp executable, const kiln::TargetOptions &options,
            const kiln::KernelGrids &grids) const override {
    auto built = kiln::host::buildSharedObject(executable, options);
    if (!built)
      return built.takeError();
    kiln::artifact::Executable exe = std::move(*built);
    for (auto kernel : executable.getOps<LLVM::LLVMFuncOp>()) {
      // Bodies are inlined into their ABI functions: not entries.
      if (kernel.isExternal() || kernel.getLinkage() == LLVM::Linkage::Internal)
        continue;
      kiln::artifact::Entry entry;
      entry.name = kernel.getSymName().str();
      // A cpu workgroup is one task: the tiled grid is the launch grid.
      if (auto it = grids.find(entry.name); it != grids.end())
        for (int i = 0; i < 3; ++i)
          entry.workgroupCount[i] = it->second[i];
      exe.entries.push_back(std::move(entry));
    }
    std::vector<kiln::artifact::Executable> exes;
    exes.push_back(std::move(exe));
    return exes;
  }
};

} // namespace

void registerCpuTarget() {
  kiln::registerKilnCpuPasses();
  kiln::registerTargetBackend(std::make_unique<CpuTarget>());
}

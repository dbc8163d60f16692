//===- LevelZeroTarget.cpp - Intel GPUs: SPIR-V kernels for Level Zero ----===//
//
// Level Zero consumes SPIR-V in the OpenCL (Kernel) execution model: buffers
// are CrossWorkgroup pointers passed as kernel arguments, 64-bit physical
// addressing. MLIR's GPU -> SPIR-V conversion does the lowering and its
// SPIR-V target serializes the module.
//
//===----------------------------------------------------------------------===//
#include "Passes.h"
#include "kiln/Target/GpuTarget.h"

#include "mlir/Conversion/MemRefToSPIRV/MemRefToSPIRV.h"
#include "mlir/Dialect/Arith/Transforms/Passes.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/SPIRV/IR/SPIRVAttributes.h"
#include "mlir/Dialect/SPIRV/IR/SPIRVDialect.h"
#include "mlir/Dialect/SPIRV/IR/SPIRVOps.h"
#include "mlir/Dialect/SPIRV/IR/TargetAndABI.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/Pass.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

using namespace mlir;
using kiln::gpu::makeError;

namespace {

class LevelZeroTarget : public kiln::TargetBackend {
public:
  llvm::StringRef name() const override { return "levelzero"; }
  llvm::StringRef description() const override {
    return "Intel GPUs through Level Zero: SPIR-V (OpenCL kernels) through MLIR's SPIR-V "
           "conversion";
  }

  std::vector<kiln::EmitStage> emitStages() const override {
    return {{"spirv", "write the levelzero SPIR-V into the -o folder",
             kiln::EmitStage::Kind::Files, "spirv", "spv"}};
  }

  kiln::KernelOptions kernelOptions(const kiln::TargetOptions &options) const override {
    return kiln::gpu::kernelOptions(options);
  }

  void buildCodegenPipeline(OpPassManager &pm, const kiln::TargetOptions &) const override {
    kiln::gpu::buildDistributionPipeline(pm);
    // SPIR-V has no strided views: subviews fold into the indices of loads
    // and stores first. Math ops are converted on their own because the GPU
    // conversion leaves them out.
    static const char *pipeline =
        "spirv-attach-target{ver=v1.2 client_api=OpenCL "
        "caps=Addresses,Kernel,Int64,Int16,Int8,Float16,Float64,Int64Atomics},"
        "gpu.module(fold-memref-alias-ops, lower-affine, arith-expand, canonicalize, math-expand-ops{ops=rsqrt},"
        "kiln-spirv-prepare, convert-math-to-spirv),"
        "convert-gpu-to-spirv{use-64bit-index=true},"
        "gpu.module(spirv.module(spirv-lower-abi-attrs, spirv-update-vce))";
    if (failed(parsePassPipeline(pipeline, pm, llvm::errs())))
      llvm::report_fatal_error("kiln: invalid levelzero codegen pipeline");
  }

  llvm::Expected<std::string> emitText(ModuleOp executable, llvm::StringRef stage,
                                       const kiln::TargetOptions &) const override {
    if (stage != "asm")
      return makeError("--emit=llvm is not available for levelzero; use --emit=asm (the "
                       "spirv.module) or --emit=spirv -o DIR");
    std::string text;
    llvm::raw_string_ostream os(text);
    // The pass pipeline verified the module already.
    executable.walk([&](spirv::ModuleOp m) { m.print(os, OpPrintingFlags().assumeVerified()); });
    return text;
  }

  llvm::Expected<std::vector<kiln::artifact::Executable>>
  serialize(ModuleOp executable, const kiln::TargetOptions &,
            const kiln::KernelGrids &) const override {
    auto objects = kiln::gpu::serializeGpuModule(executable, "bin", "");
    if (!objects)
      return objects.takeError();
    kiln::artifact::Executable exe;
    exe.target = "levelzero";
    exe.format = "spirv";
    exe.image.assign(objects->front().bytes.begin(), objects->front().bytes.end());
    exe.entries = kiln::gpu::kernelEntries(executable);
    std::vector<kiln::artifact::Executable> exes;
    exes.push_back(std::move(exe));
    return exes;
  }
};

} // namespace

void registerLevelZeroTarget() {
  kiln::registerLevelZeroPrepareSpirv();
  kiln::registerTargetBackend(std::make_unique<LevelZeroTarget>());
}

//===- GpuTarget.cpp - the shared part of the GPU backends ----------------===//
#include "kiln/Target/GpuTarget.h"

#include "kiln/Transforms/Passes.h"

#include "mlir/Conversion/Passes.h"
#include "mlir/Dialect/Linalg/Passes.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/GPU/Transforms/Passes.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Target/LLVMIR/Dialect/All.h"
#include "mlir/Transforms/Passes.h"

using namespace mlir;

llvm::Error kiln::gpu::makeError(const llvm::Twine &message) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), message);
}

kiln::KernelOptions kiln::gpu::kernelOptions(const TargetOptions &options) {
  KernelOptions k;
  // A thread per output element up to ~4M threads; larger tensors give each
  // thread a short row.
  k.maxWorkgroups = options.maxWorkgroups > 0 ? options.maxWorkgroups : (int64_t(1) << 22);
  k.minTileElements = 1;
  k.innermostFirst = true;
  return k;
}

void kiln::gpu::buildDistributionPipeline(OpPassManager &pm) {
  OpPassManager &kernels = pm.nest<func::FuncOp>();
  kernels.addPass(kiln::createGpuStageContractions());
  kernels.addPass(kiln::createGpuTreeReductions());
  kernels.addPass(createConvertLinalgToLoopsPass());
  kernels.addPass(createCanonicalizerPass());
  pm.addPass(kiln::createGpuDistribute());
}

std::vector<kiln::artifact::Entry> kiln::gpu::kernelEntries(ModuleOp executable) {
  std::vector<artifact::Entry> entries;
  auto launches = executable->getAttrOfType<DictionaryAttr>("kiln.gpu_launches");
  if (!launches)
    return entries;
  for (NamedAttribute kernel : launches) {
    auto shape = cast<ArrayAttr>(kernel.getValue());
    auto block = cast<DenseI32ArrayAttr>(shape[0]);
    auto launch = cast<DenseI32ArrayAttr>(shape[1]);
    artifact::Entry e;
    e.name = kernel.getName().str();
    for (int i = 0; i < 3; ++i) {
      e.workgroupSize[i] = block[i];
      e.workgroupCount[i] = launch[i];
    }
    entries.push_back(std::move(e));
  }
  return entries;
}

llvm::Expected<std::vector<kiln::gpu::Object>>
kiln::gpu::serializeGpuModule(ModuleOp executable, llvm::StringRef format,
                              llvm::StringRef toolkit) {
  MLIRContext *ctx = executable.getContext();
  DialectRegistry registry;
  registerAllGPUToLLVMIRTranslations(registry);
  registerAllToLLVMIRTranslations(registry);
  ctx->appendDialectRegistry(registry);

  OwningOpRef<ModuleOp> copy = executable.clone();
  std::string diagnostics;
  ScopedDiagnosticHandler handler(ctx, [&](Diagnostic &d) {
    diagnostics += (diagnostics.empty() ? "" : "\n") + d.str();
    return success();
  });
  PassManager pm(ctx, ModuleOp::getOperationName());
  GpuModuleToBinaryPassOptions options;
  options.compilationTarget = format.str();
  options.toolkitPath = toolkit.str();
  pm.addPass(createGpuModuleToBinaryPass(options));
  if (failed(pm.run(*copy)))
    return makeError("serializing the GPU kernels (" + format + ") failed" +
                     (diagnostics.empty() ? "" : ":\n" + diagnostics));
  std::vector<Object> objects;
  copy->walk([&](mlir::gpu::BinaryOp binary) {
    for (Attribute a : binary.getObjects()) {
      auto object = cast<mlir::gpu::ObjectAttr>(a);
      std::string target;
      llvm::raw_string_ostream os(target);
      object.getTarget().print(os);
      objects.push_back({target, object.getObject().str()});
    }
  });
  if (objects.empty())
    return makeError("serializing the GPU kernels produced no object");
  return objects;
}

std::vector<std::string> kiln::gpu::archsOrDefault(llvm::ArrayRef<std::string> given,
                                                   llvm::ArrayRef<std::string> defaults) {
  if (!given.empty())
    return given.vec();
  return defaults.vec();
}

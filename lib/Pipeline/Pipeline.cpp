//===- Pipeline.cpp - the compiler's stages -------------------------------===//
#include "kiln/Pipeline/Pipeline.h"

#include "kiln/Dialect/Kiln/IR/KilnDialect.h"
#include "kiln/Transforms/Passes.h"

#include "mlir/InitAllDialects.h"
#include "mlir/InitAllExtensions.h"
#include "mlir/InitAllPasses.h"
#include "mlir/Transforms/Passes.h"
#include "mlir/Dialect/Linalg/Passes.h"

#include <mutex>

using namespace mlir;

void kiln::registerKilnCompiler(DialectRegistry &registry) {
  registerAllDialects(registry);
  registerAllExtensions(registry);
  registry.insert<kiln::KilnDialect>();
  static std::once_flag once;
  std::call_once(once, [] {
    registerAllPasses();
    kiln::registerKilnPasses();
    kiln::registerAllTargetBackends();
  });
}

void kiln::buildLinalgPipeline(OpPassManager &pm) {
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());
  pm.addPass(createLinalgElementwiseOpFusionPass());
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());
}

void kiln::buildDispatchPipeline(OpPassManager &pm, const CompileOptions &options) {
  pm.addPass(kiln::createFormDispatches());
  OpPassManager &exe = pm.nest<ModuleOp>();
  kiln::TileWorkgroupsOptions tile;
  tile.maxWorkgroups = options.maxWorkgroups;
  tile.minTileElements = options.minTileElements;
  exe.addPass(kiln::createTileWorkgroups(tile));
  exe.addPass(createCanonicalizerPass());
  exe.addPass(kiln::createBufferizeKernels());
  exe.addNestedPass<func::FuncOp>(kiln::createMapWorkgroups());
  exe.addPass(createCanonicalizerPass());
  exe.addPass(createCSEPass());
}

void kiln::buildCodegenPipeline(OpPassManager &pm, const TargetBackend &backend,
                                const TargetOptions &options) {
  backend.buildCodegenPipeline(pm.nest<ModuleOp>(), options);
}

ModuleOp kiln::getExecutableModule(ModuleOp module) {
  for (auto nested : module.getOps<ModuleOp>())
    if (nested->hasAttr(kiln::kExecutableAttr))
      return nested;
  return {};
}

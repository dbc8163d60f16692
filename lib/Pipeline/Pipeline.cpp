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

void kiln::buildLinalgPipeline(OpPassManager &pm, bool padInConsumerKernels) {
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());
  pm.addPass(kiln::createFuseElementwise({padInConsumerKernels}));
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());
}

void kiln::buildDispatchPipeline(OpPassManager &pm, bool fusePadding, int64_t panelWidth) {
  if (panelWidth > 0)
    pm.addNestedPass<func::FuncOp>(kiln::createPackConstantOperands({panelWidth}));
  kiln::FormDispatchesOptions options;
  options.fusePadding = fusePadding;
  pm.addPass(kiln::createFormDispatches(options));
}

void kiln::buildKernelPipeline(OpPassManager &pm, const KernelOptions &options) {
  kiln::TileWorkgroupsOptions tile;
  tile.maxWorkgroups = options.maxWorkgroups;
  tile.minTileElements = options.minTileElements;
  tile.innermostFirst = options.innermostFirst;
  tile.registerTileRows = options.registerTileRows;
  tile.registerTileCols = options.registerTileCols;
  pm.addPass(kiln::createTileWorkgroups(tile));
  pm.addPass(createCanonicalizerPass());
  pm.addPass(kiln::createBufferizeKernels());
  pm.addNestedPass<func::FuncOp>(kiln::createMapWorkgroups());
  pm.addNestedPass<func::FuncOp>(kiln::createExpandSmallFloats());
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());
}

kiln::KernelGrids kiln::collectKernelGrids(ModuleOp executable) {
  KernelGrids grids;
  for (auto kernel : executable.getOps<func::FuncOp>())
    if (auto wg = kernel->getAttrOfType<DenseI64ArrayAttr>(kiln::kWorkgroupsAttr);
        wg && wg.size() == 3)
      grids[kernel.getSymName().str()] = {wg[0], wg[1], wg[2]};
  return grids;
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

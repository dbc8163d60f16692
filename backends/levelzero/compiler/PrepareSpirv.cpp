//===- PrepareSpirv.cpp - kiln-spirv-prepare -------------------------------===//
//
// Readies the kernels of a gpu.module for MLIR's SPIR-V lowering in the
// OpenCL (Kernel) execution model that Level Zero consumes.
//
//===----------------------------------------------------------------------===//
#include "Passes.h"

#include "mlir/Conversion/MemRefToSPIRV/MemRefToSPIRV.h"
#include "mlir/Dialect/Arith/Transforms/Passes.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/SPIRV/IR/SPIRVAttributes.h"
#include "mlir/Dialect/SPIRV/IR/SPIRVDialect.h"
#include "mlir/Dialect/SPIRV/IR/SPIRVOps.h"
#include "mlir/Dialect/SPIRV/IR/TargetAndABI.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace kiln {
#define GEN_PASS_DEF_LEVELZEROPREPARESPIRV
#include "backends/levelzero/compiler/Passes.h.inc"
} // namespace kiln

using namespace mlir;

namespace {

/// Readies kernels for MLIR's SPIR-V lowering, which takes the workgroup
/// size from an entry-point ABI attribute and whose OpenCL memory-space map
/// knows no gpu.address_space: buffers become CrossWorkgroup, a thread's
/// temporaries Function storage.
struct PrepareSpirvPass : kiln::impl::LevelZeroPrepareSpirvBase<PrepareSpirvPass> {
  /// MLIR's SCF to SPIR-V conversion returns a loop's results through
  /// Function variables that only the loop body stores: a loop that runs zero
  /// times leaves them undefined. Carry the values in private memory instead,
  /// stored before the loop, loaded and stored back by each iteration.
  static void loopResultsToMemory(mlir::gpu::GPUFuncOp func) {
    SmallVector<scf::ForOp> loops;
    func.walk([&](scf::ForOp loop) {
      if (loop.getNumResults() != 0)
        loops.push_back(loop);
    });
    auto privateSpace = mlir::gpu::AddressSpaceAttr::get(func.getContext(),
                                                         mlir::gpu::AddressSpace::Private);
    for (scf::ForOp loop : loops) {
      Location loc = loop.getLoc();
      OpBuilder b(loop);
      Value zero = arith::ConstantIndexOp::create(b, loc, 0);
      SmallVector<Value> slots;
      for (Value init : loop.getInitArgs()) {
        auto type = MemRefType::get({1}, init.getType(), MemRefLayoutAttrInterface(), privateSpace);
        slots.push_back(memref::AllocaOp::create(b, loc, type));
        memref::StoreOp::create(b, loc, init, slots.back(), zero);
      }
      auto carried = scf::ForOp::create(b, loc, loop.getLowerBound(), loop.getUpperBound(),
                                        loop.getStep());
      Block *body = carried.getBody();
      b.setInsertionPointToStart(body);
      for (auto [arg, slot] : llvm::zip(loop.getRegionIterArgs(), slots))
        arg.replaceAllUsesWith(memref::LoadOp::create(b, loc, slot, zero).getResult());
      loop.getInductionVar().replaceAllUsesWith(carried.getInductionVar());
      auto yield = cast<scf::YieldOp>(loop.getBody()->getTerminator());
      b.setInsertionPoint(yield);
      for (auto [value, slot] : llvm::zip(yield.getOperands(), slots))
        memref::StoreOp::create(b, loc, value, slot, zero);
      yield.erase();
      body->getOperations().splice(body->getTerminator()->getIterator(),
                                   loop.getBody()->getOperations());
      b.setInsertionPointAfter(carried);
      for (auto [result, slot] : llvm::zip(loop.getResults(), slots))
        result.replaceAllUsesWith(memref::LoadOp::create(b, loc, slot, zero).getResult());
      loop.erase();
    }
  }

  /// MLIR's GPU to SPIR-V conversion takes workgroup memory as Workgroup
  /// allocs (which become module-scope variables), not as attributions.
  static void workgroupAttributionsToAllocs(mlir::gpu::GPUFuncOp func) {
    unsigned count = func.getNumWorkgroupAttributions();
    if (count == 0)
      return;
    Block &entry = func.getBody().front();
    OpBuilder b = OpBuilder::atBlockBegin(&entry);
    unsigned first = func.getFirstWorkgroupAttributionIndex();
    for (unsigned i = 0; i < count; ++i) {
      BlockArgument arg = entry.getArgument(first + i);
      arg.replaceAllUsesWith(
          memref::AllocOp::create(b, arg.getLoc(), cast<MemRefType>(arg.getType())));
    }
    entry.eraseArguments(first, count);
    func->setAttr(mlir::gpu::GPUFuncOp::getNumWorkgroupAttributionsAttrName(),
                  b.getI64IntegerAttr(0));
  }

  void runOnOperation() override {
    mlir::gpu::GPUModuleOp module = getOperation();
    // convert-math-to-spirv reads the environment from this attribute.
    if (ArrayAttr targets = module.getTargetsAttr())
      for (Attribute t : targets)
        if (auto env = dyn_cast<spirv::TargetEnvAttr>(t))
          module->setAttr(spirv::getTargetEnvAttrName(), env);
    // MLIR's SPIR-V type conversion widens bf16 to f32, which would read
    // bf16 buffers as packed f32, and has no sub-byte element types (f4,
    // i4, i2; 8-bit floats are stored as i8, which works): refuse with the
    // type named rather than compute garbage or fail in the conversion.
    WalkResult unsupported = module.walk([](Operation *op) {
      for (Type t : llvm::concat<const Type>(op->getOperandTypes(), op->getResultTypes())) {
        Type e = getElementTypeOrSelf(t);
        if (e.isBF16()) {
          op->emitError("bf16 tensors are not supported by the levelzero target yet (SPIR-V "
                        "has no bf16 type without SPV_KHR_bfloat16)");
          return WalkResult::interrupt();
        }
        bool smallFloat = isa<FloatType>(e) && e.getIntOrFloatBitWidth() < 8;
        bool smallInt = e.isInteger() && e.getIntOrFloatBitWidth() > 1 &&
                        e.getIntOrFloatBitWidth() < 8;
        if (smallFloat || smallInt) {
          std::string name;
          llvm::raw_string_ostream os(name);
          e.print(os);
          op->emitError(name + " tensors are not supported by the levelzero target yet "
                               "(SPIR-V's OpenCL model has no sub-byte element type)");
          return WalkResult::interrupt();
        }
      }
      return WalkResult::advance();
    });
    if (unsupported.wasInterrupted())
      return signalPassFailure();
    for (auto func : module.getOps<mlir::gpu::GPUFuncOp>()) {
      if (!func.isKernel())
        continue;
      workgroupAttributionsToAllocs(func);
      loopResultsToMemory(func);
      DenseI32ArrayAttr block = func.getKnownBlockSizeAttr();
      SmallVector<int32_t> size = block ? SmallVector<int32_t>(block.asArrayRef())
                                        : SmallVector<int32_t>{1, 1, 1};
      func->setAttr(spirv::getEntryPointABIAttrName(),
                    spirv::getEntryPointABIAttr(func.getContext(), size));
    }
    spirv::MemorySpaceToStorageClassConverter converter(
        [](Attribute space) -> std::optional<spirv::StorageClass> {
          if (!space)
            return spirv::StorageClass::CrossWorkgroup;
          auto gpuSpace = dyn_cast<mlir::gpu::AddressSpaceAttr>(space);
          if (!gpuSpace)
            return std::nullopt;
          switch (gpuSpace.getValue()) {
          case mlir::gpu::AddressSpace::Global:
            return spirv::StorageClass::CrossWorkgroup;
          case mlir::gpu::AddressSpace::Workgroup:
            return spirv::StorageClass::Workgroup;
          case mlir::gpu::AddressSpace::Private:
            return spirv::StorageClass::Function;
          }
          return std::nullopt;
        });
    spirv::convertMemRefTypesAndAttrs(getOperation(), converter);
    // arith-to-spirv has no ceildivsi/ceildivui/floordivsi (AveragePool with
    // ceil_mode or dilations uses them): expand them to plain arithmetic.
    RewritePatternSet divs(module.getContext());
    arith::populateCeilFloorDivExpandOpsPatterns(divs);
    if (failed(applyPatternsGreedily(module, std::move(divs))))
      return signalPassFailure();
  }
};

} // namespace

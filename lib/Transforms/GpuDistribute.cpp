//===- GpuDistribute.cpp - Kiln workgroups onto GPU threads ---------------===//
//
// The shared pipeline tiles GPU kernels so finely that one Kiln workgroup is
// a thread's worth of work. This pass packs those workgroups into blocks of
// threads and outlines the kernels into a gpu.module that NVVM, ROCDL and
// SPIR-V lowerings all accept.
//
//===----------------------------------------------------------------------===//
#include "kiln/Transforms/Passes.h"

#include "mlir/IR/PatternMatch.h"
#include "mlir/Interfaces/ViewLikeInterface.h"

namespace kiln {
#define GEN_PASS_DEF_GPUDISTRIBUTE
#include "kiln/Transforms/Passes.h.inc"
} // namespace kiln

using namespace mlir;

namespace {

/// Allocas hold one thread's temporaries: they belong in private memory
/// (AMDGPU needs allocas in address space 5; SPIR-V needs Function storage).
void makeAllocasPrivate(func::FuncOp kernel) {
  auto space = gpu::AddressSpaceAttr::get(kernel.getContext(), gpu::AddressSpace::Private);
  auto retype = [&](Value v) {
    auto t = cast<MemRefType>(v.getType());
    v.setType(MemRefType::get(t.getShape(), t.getElementType(), t.getLayout(), space));
  };
  SmallVector<Value> work;
  kernel.walk([&](memref::AllocaOp a) {
    if (!a.getType().getMemorySpace())
      work.push_back(a.getResult());
  });
  while (!work.empty()) {
    Value v = work.pop_back_val();
    retype(v);
    // Views of a private buffer are private too.
    for (Operation *user : v.getUsers())
      if (auto view = dyn_cast<ViewLikeOpInterface>(user); view && view.getViewSource() == v)
        for (Value r : user->getResults())
          if (isa<MemRefType>(r.getType()))
            work.push_back(r);
  }
}

struct GpuDistributePass : kiln::impl::GpuDistributeBase<GpuDistributePass> {
  using GpuDistributeBase::GpuDistributeBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    if (!module->hasAttr(kiln::kExecutableAttr))
      return;
    SmallVector<func::FuncOp> kernels(module.getOps<func::FuncOp>());
    if (kernels.empty())
      return;
    OpBuilder b(module.getBodyRegion());
    b.setInsertionPointToEnd(module.getBody());
    auto gpuModule = gpu::GPUModuleOp::create(b, module.getLoc(), "kiln_kernels");
    module->setAttr(gpu::GPUDialect::getContainerModuleAttrName(), b.getUnitAttr());
    // The launch shapes also go on the executable module: vendor lowerings
    // rewrite the gpu.funcs but leave the module's attributes alone.
    SmallVector<NamedAttribute> launches;
    for (func::FuncOp kernel : kernels) {
      if (kernel.isExternal() || kernel.getNumResults() != 0) {
        kernel.emitError("expected a bufferized kernel with no results");
        return signalPassFailure();
      }
      auto [block, launch] = distribute(kernel);
      SmallVector<Attribute> shape = {b.getDenseI32ArrayAttr({block, 1, 1}),
                                      b.getDenseI32ArrayAttr({launch, 1, 1})};
      launches.push_back(b.getNamedAttr(kernel.getSymName(), b.getArrayAttr(shape)));
      outline(kernel, gpuModule, block);
    }
    module->setAttr("kiln.gpu_launches", b.getDictionaryAttr(launches));
    // Constants the kernels read (bufferized to memref.global) must live
    // beside them on the device.
    OpBuilder inGpu = OpBuilder::atBlockBegin(gpuModule.getBody());
    for (auto global : llvm::make_early_inc_range(module.getOps<memref::GlobalOp>()))
      global->moveBefore(inGpu.getInsertionBlock(), inGpu.getInsertionPoint());
  }

  /// Replaces gpu.block_id (Kiln workgroups) by a guarded global thread id.
  /// Returns the threads per block and the number of blocks.
  std::pair<int32_t, int32_t> distribute(func::FuncOp kernel) {
    int64_t grid[3] = {1, 1, 1};
    if (auto wg = kernel->getAttrOfType<DenseI64ArrayAttr>(kiln::kWorkgroupsAttr))
      for (int i = 0; i < 3 && i < (int)wg.size(); ++i)
        grid[i] = std::max<int64_t>(wg[i], 1);
    int64_t total = grid[0] * grid[1] * grid[2];
    // Small grids get a block of whole warps rather than idle threads.
    int64_t block = std::min<int64_t>(blockSize, (total + 31) / 32 * 32);
    int64_t launch = (total + block - 1) / block;

    SmallVector<gpu::BlockIdOp> workgroupIds;
    kernel.walk([&](gpu::BlockIdOp id) { workgroupIds.push_back(id); });
    makeAllocasPrivate(kernel);

    Block &entry = kernel.getBody().front();
    Location loc = kernel.getLoc();
    OpBuilder b = OpBuilder::atBlockBegin(&entry);
    auto cst = [&](int64_t v) { return arith::ConstantIndexOp::create(b, loc, v).getResult(); };
    Value tid = gpu::ThreadIdOp::create(b, loc, gpu::Dimension::x);
    Value bid = gpu::BlockIdOp::create(b, loc, gpu::Dimension::x);
    Value linear = arith::AddIOp::create(b, loc, arith::MulIOp::create(b, loc, bid, cst(block)), tid);
    Value inRange =
        arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ult, linear, cst(total));
    // z varies fastest: it holds the innermost tiled loop.
    Value ids[3];
    ids[2] = arith::RemUIOp::create(b, loc, linear, cst(grid[2]));
    Value rest = arith::DivUIOp::create(b, loc, linear, cst(grid[2]));
    ids[1] = arith::RemUIOp::create(b, loc, rest, cst(grid[1]));
    ids[0] = arith::DivUIOp::create(b, loc, rest, cst(grid[1]));
    auto guard = scf::IfOp::create(b, loc, inRange, /*withElseRegion=*/false);
    Operation *yield = guard.thenBlock()->getTerminator();
    for (Operation &op : llvm::make_early_inc_range(
             llvm::make_range(std::next(guard->getIterator()), entry.getTerminator()->getIterator())))
      op.moveBefore(yield);

    for (gpu::BlockIdOp id : workgroupIds) {
      id.replaceAllUsesWith(ids[(int)id.getDimension()]);
      id.erase();
    }
    return {(int32_t)block, (int32_t)launch};
  }

  void outline(func::FuncOp kernel, gpu::GPUModuleOp gpuModule, int32_t block) {
    OpBuilder b = OpBuilder::atBlockEnd(gpuModule.getBody());
    auto func = gpu::GPUFuncOp::create(b, kernel.getLoc(), kernel.getSymName(),
                                       kernel.getFunctionType());
    for (NamedAttribute attr : kernel->getDiscardableAttrs())
      func->setAttr(attr.getName(), attr.getValue());
    func->setAttr(gpu::GPUDialect::getKernelFuncAttrName(), b.getUnitAttr());
    func.setKnownBlockSizeAttr(b.getDenseI32ArrayAttr({block, 1, 1}));
    // Bindings never overlap a buffer the kernel writes (outputs are fresh
    // buffers), so loads may be cached and accumulators kept in registers.
    for (unsigned i = 0; i < func.getNumArguments(); ++i)
      func.setArgAttr(i, "llvm.noalias", b.getUnitAttr());
    func.getBody().takeBody(kernel.getBody());
    auto ret = cast<func::ReturnOp>(func.getBody().front().getTerminator());
    b.setInsertionPoint(ret);
    gpu::ReturnOp::create(b, ret.getLoc());
    ret.erase();
    kernel.erase();
  }
};

} // namespace

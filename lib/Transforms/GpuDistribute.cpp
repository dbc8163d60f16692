//===- GpuDistribute.cpp - Kiln workgroups onto GPU threads ---------------===//
//
// The shared pipeline tiles GPU kernels so finely that one Kiln workgroup is
// a thread's worth of work. This pass packs those workgroups into blocks of
// threads and outlines the kernels into a gpu.module that NVVM, ROCDL and
// SPIR-V lowerings all accept. Cooperative kernels (GpuCooperation.h) get
// the block shape they asked for instead.
//
//===----------------------------------------------------------------------===//
#include "GpuCooperation.h"
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
      if (block < 0)
        return signalPassFailure();
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
    if (std::optional<kiln::gpu::CooperativeShape> shape = kiln::gpu::getCooperativeShape(kernel))
      return distributeCooperative(kernel, *shape);
    std::array<int64_t, 3> grid = kiln::gpu::workgroupGrid(kernel);
    int64_t total = grid[0] * grid[1] * grid[2];
    int64_t perThread = workgroupsPerThread(grid);
    int64_t threads = total / perThread;
    // Small grids get a block of whole warps rather than idle threads.
    int64_t block = std::min<int64_t>(blockSize, (threads + 31) / 32 * 32);
    int64_t launch = (threads + block - 1) / block;

    SmallVector<gpu::BlockIdOp> workgroupIds;
    kernel.walk([&](gpu::BlockIdOp id) { workgroupIds.push_back(id); });
    makeAllocasPrivate(kernel);

    Block &entry = kernel.getBody().front();
    Location loc = kernel.getLoc();
    // A thread's temporaries are written before they are read in every
    // workgroup, so one allocation serves all of a thread's workgroups (and
    // NVPTX wants allocas in the entry block).
    for (auto alloca : llvm::make_early_inc_range(entry.getOps<memref::AllocaOp>()))
      if (alloca.getDynamicSizes().empty())
        alloca->moveBefore(&entry, entry.begin());
    OpBuilder b(kernel.getContext());
    b.setInsertionPointToStart(&entry);
    for (auto alloca : entry.getOps<memref::AllocaOp>())
      b.setInsertionPointAfter(alloca);
    auto cst = [&](int64_t v) { return arith::ConstantIndexOp::create(b, loc, v).getResult(); };
    Value tid = gpu::ThreadIdOp::create(b, loc, gpu::Dimension::x);
    Value bid = gpu::BlockIdOp::create(b, loc, gpu::Dimension::x);
    Value linear = arith::AddIOp::create(b, loc, arith::MulIOp::create(b, loc, bid, cst(block)), tid);
    Value inRange =
        arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ult, linear, cst(threads));
    auto guard = scf::IfOp::create(b, loc, inRange, /*withElseRegion=*/false);
    b.setInsertionPoint(guard.thenBlock()->getTerminator());
    // Consecutive workgroups of one thread share every id but the fastest,
    // so their loads and stores are adjacent: once LLVM unrolls the loop
    // below its load-store vectorizer makes them 16-byte accesses.
    Value first = perThread > 1 ? arith::MulIOp::create(b, loc, linear, cst(perThread)).getResult()
                                : linear;
    // z varies fastest: it holds the innermost tiled loop.
    Value ids[3];
    ids[2] = arith::RemUIOp::create(b, loc, first, cst(grid[2]));
    Value rest = arith::DivUIOp::create(b, loc, first, cst(grid[2]));
    ids[1] = arith::RemUIOp::create(b, loc, rest, cst(grid[1]));
    ids[0] = arith::DivUIOp::create(b, loc, rest, cst(grid[1]));
    if (perThread > 1) {
      // The thread's workgroups differ only in the fastest id; spelling it
      // base + i lets LLVM see the accesses are adjacent.
      int fastest = fastestGridDim(grid);
      auto loop = scf::ForOp::create(b, loc, cst(0), cst(perThread), cst(1));
      b.setInsertionPoint(loop.getBody()->getTerminator());
      ids[fastest] = arith::AddIOp::create(b, loc, ids[fastest], loop.getInductionVar());
    }
    Operation *end = b.getInsertionBlock()->getTerminator();
    for (Operation &op : llvm::make_early_inc_range(
             llvm::make_range(std::next(guard->getIterator()), entry.getTerminator()->getIterator())))
      op.moveBefore(end);

    for (gpu::BlockIdOp id : workgroupIds) {
      id.replaceAllUsesWith(ids[(int)id.getDimension()]);
      id.erase();
    }
    return {(int32_t)block, (int32_t)launch};
  }

  /// The grid dimension whose neighbours are adjacent workgroups.
  static int fastestGridDim(const std::array<int64_t, 3> &grid) {
    return grid[2] > 1 ? 2 : grid[1] > 1 ? 1 : 0;
  }

  /// Workgroups per thread: 4 consecutive ones along the fastest grid
  /// dimension when it divides by 4 and the grid is large enough to keep
  /// every SM busy with a quarter of the threads.
  int64_t workgroupsPerThread(const std::array<int64_t, 3> &grid) {
    int64_t total = grid[0] * grid[1] * grid[2];
    int fastest = fastestGridDim(grid);
    if (vectorWidth <= 1 || grid[fastest] % vectorWidth != 0 ||
        total < vectorWidth * minVectorThreads)
      return 1;
    return vectorWidth;
  }

  /// A block covers `shape.tile` workgroups with `shape.lanes` threads each.
  /// Every thread runs the whole body (barriers must be reached by all) on
  /// clamped ids; writes outside workgroup memory are left to the first lane
  /// of an in-range workgroup.
  std::pair<int32_t, int32_t> distributeCooperative(func::FuncOp kernel,
                                                    const kiln::gpu::CooperativeShape &shape) {
    std::array<int64_t, 3> grid = kiln::gpu::workgroupGrid(kernel);
    int64_t counts[3], launch = 1;
    for (int d = 0; d < 3; ++d) {
      counts[d] = (grid[d] + shape.tile[d] - 1) / shape.tile[d];
      launch *= counts[d];
    }
    SmallVector<gpu::BlockIdOp> workgroupIds;
    kernel.walk([&](gpu::BlockIdOp id) { workgroupIds.push_back(id); });
    makeAllocasPrivate(kernel);

    Block &entry = kernel.getBody().front();
    Location loc = kernel.getLoc();
    // After the workgroup-memory allocas, which must stay at the top.
    OpBuilder b(kernel.getContext());
    b.setInsertionPointToStart(&entry);
    for (Operation &op : entry)
      if (auto alloca = dyn_cast<memref::AllocaOp>(op); alloca && isWorkgroupMemory(alloca))
        b.setInsertionPointAfter(alloca);
    auto cst = [&](int64_t v) { return arith::ConstantIndexOp::create(b, loc, v).getResult(); };
    kiln::gpu::ThreadCoords coords = kiln::gpu::threadCoords(b, loc, shape);
    Value rest = gpu::BlockIdOp::create(b, loc, gpu::Dimension::x);
    Value tileIds[3];
    tileIds[2] = arith::RemUIOp::create(b, loc, rest, cst(counts[2]));
    rest = arith::DivUIOp::create(b, loc, rest, cst(counts[2]));
    tileIds[1] = arith::RemUIOp::create(b, loc, rest, cst(counts[1]));
    tileIds[0] = arith::DivUIOp::create(b, loc, rest, cst(counts[1]));
    Value leader = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq, coords.lane, cst(0));
    Value ids[3];
    for (int d = 0; d < 3; ++d) {
      Value id = arith::AddIOp::create(
          b, loc, arith::MulIOp::create(b, loc, tileIds[d], cst(shape.tile[d])), coords.local[d]);
      if (grid[d] % shape.tile[d] == 0) {
        ids[d] = id;
        continue;
      }
      Value in = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ult, id, cst(grid[d]));
      leader = arith::AndIOp::create(b, loc, leader, in);
      ids[d] = arith::MinUIOp::create(b, loc, id, cst(grid[d] - 1));
    }
    for (gpu::BlockIdOp id : workgroupIds) {
      id.replaceAllUsesWith(ids[(int)id.getDimension()]);
      id.erase();
    }
    if (failed(guardWrites(llvm::make_range(std::next(leader.getDefiningOp()->getIterator()),
                                            entry.getTerminator()->getIterator()),
                           leader)))
      return {-1, -1};
    return {(int32_t)shape.threads(), (int32_t)launch};
  }

  /// Wraps each write outside workgroup memory in `if (leader)`; ops that
  /// hold barriers are entered instead (every thread must reach those).
  static LogicalResult guardWrites(llvm::iterator_range<Block::iterator> ops, Value leader) {
    for (Operation &op : llvm::make_early_inc_range(ops)) {
      if (!writesThreadVisibleMemory(&op))
        continue;
      if (containsBarrier(&op)) {
        if (!isa<scf::ForOp>(op))
          return op.emitError("a cooperative kernel synchronizes inside an op that is not a loop");
        Block *body = cast<scf::ForOp>(op).getBody();
        if (failed(guardWrites(body->without_terminator(), leader)))
          return failure();
        continue;
      }
      if (op.getNumResults() != 0)
        return op.emitError("a cooperative kernel writes global memory in an op with results");
      OpBuilder b(&op);
      auto guard = scf::IfOp::create(b, op.getLoc(), leader, /*withElseRegion=*/false);
      op.moveBefore(guard.thenBlock()->getTerminator());
    }
    return success();
  }

  static bool isWorkgroupMemory(memref::AllocaOp alloca) {
    auto space = dyn_cast_or_null<gpu::AddressSpaceAttr>(alloca.getType().getMemorySpace());
    return space && space.getValue() == gpu::AddressSpace::Workgroup;
  }

  static bool containsBarrier(Operation *op) {
    return op->walk([](gpu::BarrierOp) { return WalkResult::interrupt(); }).wasInterrupted();
  }

  /// Whether `op` writes memory outside workgroup memory (global buffers or
  /// the thread's own temporaries), or might.
  static bool writesThreadVisibleMemory(Operation *op) {
    WalkResult r = op->walk([](Operation *inner) {
      auto effects = dyn_cast<MemoryEffectOpInterface>(inner);
      if (isa<gpu::BarrierOp>(inner))
        return WalkResult::advance();
      if (!effects) {
        bool opaque = !inner->hasTrait<OpTrait::HasRecursiveMemoryEffects>() &&
                      !isMemoryEffectFree(inner);
        return opaque ? WalkResult::interrupt() : WalkResult::advance();
      }
      SmallVector<MemoryEffects::EffectInstance> list;
      effects.getEffects(list);
      for (auto &e : list) {
        if (!isa<MemoryEffects::Write>(e.getEffect()))
          continue;
        Value v = e.getValue();
        auto type = v ? dyn_cast<MemRefType>(v.getType()) : MemRefType();
        auto space = type ? dyn_cast_or_null<gpu::AddressSpaceAttr>(type.getMemorySpace())
                          : gpu::AddressSpaceAttr();
        if (!space || space.getValue() != gpu::AddressSpace::Workgroup)
          return WalkResult::interrupt();
      }
      return WalkResult::advance();
    });
    return r.wasInterrupted();
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
    // Every binding starts a device allocation (binding offsets are 0;
    // vendor allocators align to 256 bytes): vector accesses may assume 16.
    for (unsigned i = 0; i < func.getNumArguments(); ++i) {
      func.setArgAttr(i, "llvm.noalias", b.getUnitAttr());
      func.setArgAttr(i, "llvm.align", b.getI64IntegerAttr(16));
    }
    func.getBody().takeBody(kernel.getBody());
    SmallVector<memref::AllocaOp> shared;
    func.walk([&](memref::AllocaOp a) {
      if (isWorkgroupMemory(a))
        shared.push_back(a);
    });
    for (memref::AllocaOp a : shared) {
      a.replaceAllUsesWith(func.addWorkgroupAttribution(a.getType(), a.getLoc()));
      a.erase();
    }
    auto ret = cast<func::ReturnOp>(func.getBody().front().getTerminator());
    b.setInsertionPoint(ret);
    gpu::ReturnOp::create(b, ret.getLoc());
    ret.erase();
    kernel.erase();
  }
};

} // namespace

//===- CpuTarget.cpp - host CPU code generation ---------------------------===//
//
// Kernels become functions `void k(void *const *bindings, i64 wg_x, i64 wg_y,
// i64 wg_z)` in one ELF shared object (kiln/Target/HostCodegen.h); the
// runtime's cpu driver dlopens it from memory and runs each workgroup as a
// thread-pool task.
//
//===----------------------------------------------------------------------===//
#include "kiln/Dialect/Kiln/IR/KilnDialect.h"
#include "kiln/Target/HostCodegen.h"
#include "kiln/Target/TargetBackend.h"

#include "mlir/Conversion/LLVMCommon/MemRefBuilder.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/InitAllPasses.h"
#include "mlir/Pass/Pass.h"
#include "mlir/Pass/PassRegistry.h"

#include "llvm/Support/FormatVariadic.h"

using namespace mlir;

namespace {

//===----------------------------------------------------------------------===//
// kiln-cpu-lower-abi
//===----------------------------------------------------------------------===//

/// Gives kernels the cpu ABI: buffers come as an array of base pointers, the
/// workgroup id as three integers. The kernel's body moves to an internal,
/// always-inlined `<name>.body(memref {llvm.noalias}..., wg_x, wg_y, wg_z)`
/// that the ABI function calls: pointers loaded from an array carry no alias
/// facts, and without them LLVM keeps a reduction's accumulator in memory and
/// guards every vectorized loop with run-time overlap checks. Bindings are
/// distinct buffers (an output never shares storage with an input: the
/// schedule copies such outputs), and LLVM keeps `noalias` as scoped alias
/// metadata when it inlines the body.
struct LowerCpuAbiPass : PassWrapper<LowerCpuAbiPass, OperationPass<ModuleOp>> {
  MLIR_DEFINE_EXPLICIT_INTERNAL_INLINE_TYPE_ID(LowerCpuAbiPass)
  StringRef getArgument() const final { return "kiln-cpu-lower-abi"; }
  StringRef getDescription() const final {
    return "Give cpu kernels the (bindings, wg_x, wg_y, wg_z) ABI";
  }
  void getDependentDialects(DialectRegistry &registry) const override {
    registry.insert<LLVM::LLVMDialect>();
  }

  void runOnOperation() override {
    SmallVector<func::FuncOp> kernels;
    for (auto kernel : getOperation().getOps<func::FuncOp>())
      if (!kernel.isExternal())
        kernels.push_back(kernel);
    for (func::FuncOp kernel : kernels)
      lower(kernel);
  }

  void lower(func::FuncOp body) {
    MLIRContext *ctx = body.getContext();
    Location loc = body.getLoc();
    std::string name = body.getSymName().str();
    OpBuilder b(ctx);

    // The body: workgroup ids become arguments, buffers noalias.
    Block &entry = body.getBody().front();
    unsigned numBuffers = entry.getNumArguments();
    Value wg[3];
    for (Value &v : wg)
      v = entry.addArgument(b.getIndexType(), loc);
    body.walk([&](gpu::BlockIdOp id) {
      id.replaceAllUsesWith(wg[(int)id.getDimension()]);
      id.erase();
    });
    body.setType(FunctionType::get(ctx, entry.getArgumentTypes(), {}));
    for (unsigned i = 0; i < numBuffers; ++i)
      body.setArgAttr(i, LLVM::LLVMDialect::getNoAliasAttrName(), b.getUnitAttr());
    body.setSymName(name + ".body");
    body->setAttr("llvm.linkage", LLVM::LinkageAttr::get(ctx, LLVM::Linkage::Internal));
    body->setAttr("passthrough", b.getArrayAttr({b.getStringAttr("alwaysinline")}));

    // The ABI function.
    b.setInsertionPointAfter(body);
    auto ptrTy = LLVM::LLVMPointerType::get(ctx);
    auto i64 = b.getI64Type();
    auto kernel = func::FuncOp::create(
        b, loc, name, FunctionType::get(ctx, {ptrTy, b.getIndexType(), b.getIndexType(),
                                              b.getIndexType()}, {}));
    for (NamedAttribute attr : body->getDiscardableAttrs())
      if (attr.getName() != "llvm.linkage" && attr.getName() != "passthrough")
        kernel->setAttr(attr.getName(), attr.getValue());
    Block *abi = kernel.addEntryBlock();
    b.setInsertionPointToStart(abi);
    Value bindings = abi->getArgument(0);
    SmallVector<Value> operands;
    for (unsigned i = 0; i < numBuffers; ++i) {
      auto type = cast<MemRefType>(entry.getArgument(i).getType());
      Value slot = LLVM::GEPOp::create(b, loc, ptrTy, ptrTy, bindings,
                                       ArrayRef<LLVM::GEPArg>{(int32_t)i});
      Value base = LLVM::LoadOp::create(b, loc, ptrTy, slot);
      // Static shapes: the descriptor is the pointer plus constants.
      SmallVector<Type> fields = {ptrTy, ptrTy, i64};
      int64_t rank = type.getRank();
      if (rank > 0) {
        fields.push_back(LLVM::LLVMArrayType::get(i64, rank));
        fields.push_back(LLVM::LLVMArrayType::get(i64, rank));
      }
      auto descTy = LLVM::LLVMStructType::getLiteral(ctx, fields);
      Value desc = LLVM::PoisonOp::create(b, loc, descTy);
      desc = LLVM::InsertValueOp::create(b, loc, desc, base, ArrayRef<int64_t>{0});
      desc = LLVM::InsertValueOp::create(b, loc, desc, base, ArrayRef<int64_t>{1});
      auto c = [&](int64_t v) {
        return LLVM::ConstantOp::create(b, loc, i64, b.getI64IntegerAttr(v));
      };
      desc = LLVM::InsertValueOp::create(b, loc, desc, c(0), ArrayRef<int64_t>{2});
      int64_t stride = 1;
      for (int64_t d = rank - 1; d >= 0; --d) {
        desc = LLVM::InsertValueOp::create(b, loc, desc, c(type.getDimSize(d)),
                                           ArrayRef<int64_t>{3, d});
        desc = LLVM::InsertValueOp::create(b, loc, desc, c(stride), ArrayRef<int64_t>{4, d});
        stride *= type.getDimSize(d);
      }
      operands.push_back(UnrealizedConversionCastOp::create(b, loc, type, desc).getResult(0));
    }
    operands.append(abi->getArguments().begin() + 1, abi->getArguments().end());
    func::CallOp::create(b, loc, body, operands);
    func::ReturnOp::create(b, loc);
  }
};

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

void registerCpuVectorizeContractions();
void registerCpuApproximateMath();
void registerCpuReassociateReductions();
void registerCpuGuardPaddedReads();

void registerCpuTarget() {
  static PassRegistration<LowerCpuAbiPass> abi;
  registerCpuVectorizeContractions();
  registerCpuApproximateMath();
  registerCpuReassociateReductions();
  registerCpuGuardPaddedReads();
  kiln::registerTargetBackend(std::make_unique<CpuTarget>());
}

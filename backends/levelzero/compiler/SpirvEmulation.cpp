//===- SpirvEmulation.cpp - levelzero's SPIR-V kernels on the host CPU ----===//
//
// `levelzero-cpu` is a testing target: it runs the levelzero codegen pipeline
// unchanged (the very pass list of the levelzero backend, looked up in the
// registry, so the two cannot drift apart) up to the `spirv.module` that goes
// to Intel GPUs, then lowers that module with MLIR's SPIR-V -> LLVM
// conversion and wraps every SPIR-V kernel into the cpu ABI
//
//   void k(void *const *bindings, int64_t wg_x, int64_t wg_y, int64_t wg_z)
//
// whose body loops over the kernel's local invocation ids and calls the
// lowered kernel once per invocation. The result is linked like the cpu
// backend's kernels (kiln/Target/HostCodegen.h) and runs on the cpu driver,
// one task per GPU workgroup (the entries' workgroup_count is the GPU launch
// grid, their workgroup_size 1x1x1: the wrapper iterates the threads).
//
// SPIR-V builtins (WorkgroupId, LocalInvocationId, ...) become extra
// arguments of the lowered kernel that the wrapper passes per call, instead
// of thread_local globals it would store before each call: arguments keep
// the kernel a pure function of its inputs, need no TLS in a dlopen'ed object
// and let LLVM inline the kernel into the loop and fold the ids.
//
// Running a workgroup's invocations one after another is exact only because
// Kiln's GPU kernels have no barriers and no workgroup memory (every thread
// is independent). A kernel with spirv.ControlBarrier or Workgroup storage
// would need every invocation to run up to the barrier before any continues
// (fibers or loop fission at barriers); this backend rejects such kernels.
//
// MLIR's SPIR-V -> LLVM conversion covers the core and GLSL ops but not the
// OpenCL extended instruction set nor SNegate/IsNan/IsInf, which the Kernel model
// produces; those are converted here to LLVM intrinsics or libm calls.
//
//===----------------------------------------------------------------------===//
#include "kiln/Target/GpuTarget.h"
#include "kiln/Target/HostCodegen.h"

#include "mlir/Conversion/LLVMCommon/TypeConverter.h"
#include "mlir/Conversion/SPIRVToLLVM/SPIRVToLLVM.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/SPIRV/IR/SPIRVDialect.h"
#include "mlir/Dialect/SPIRV/IR/SPIRVOps.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/SymbolTable.h"
#include "mlir/Pass/Pass.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Transforms/DialectConversion.h"

#include "llvm/ADT/StringMap.h"
#include "llvm/ADT/StringSet.h"

using namespace mlir;
using kiln::gpu::makeError;

namespace {

/// The builtins a wrapper can provide, in the order they are appended to a
/// kernel's arguments.
const spirv::BuiltIn kSupportedBuiltins[] = {
    spirv::BuiltIn::WorkgroupId,   spirv::BuiltIn::LocalInvocationId,
    spirv::BuiltIn::GlobalInvocationId, spirv::BuiltIn::WorkgroupSize,
    spirv::BuiltIn::NumWorkgroups, spirv::BuiltIn::GlobalSize,
    spirv::BuiltIn::GlobalOffset,
};

constexpr llvm::StringLiteral kLoweredSuffix = ".spirv";

//===----------------------------------------------------------------------===//
// OpenCL extended instructions and the few core ops the upstream conversion
// lacks.
//===----------------------------------------------------------------------===//

/// spirv.CL.<name> -> an LLVM intrinsic (element-wise, scalars or vectors) or,
/// for functions LLVM has no intrinsic for, a libm call (scalars).
struct ClOpLowering {
  const char *intrinsic; // "llvm.exp"; null if libm
  const char *libm;      // "erf" (f64) / "erff" (f32); null if intrinsic
};

const llvm::StringMap<ClOpLowering> &clOpTable() {
  static const llvm::StringMap<ClOpLowering> table = {
      {"exp", {"llvm.exp", nullptr}},      {"log", {"llvm.log", nullptr}},
      {"sqrt", {"llvm.sqrt", nullptr}},    {"fabs", {"llvm.fabs", nullptr}},
      {"floor", {"llvm.floor", nullptr}},  {"ceil", {"llvm.ceil", nullptr}},
      {"sin", {"llvm.sin", nullptr}},      {"cos", {"llvm.cos", nullptr}},
      {"tan", {"llvm.tan", nullptr}},      {"tanh", {"llvm.tanh", nullptr}},
      {"asin", {"llvm.asin", nullptr}},    {"acos", {"llvm.acos", nullptr}},
      {"atan", {"llvm.atan", nullptr}},    {"sinh", {"llvm.sinh", nullptr}},
      {"cosh", {"llvm.cosh", nullptr}},    {"atan2", {"llvm.atan2", nullptr}},
      {"pow", {"llvm.pow", nullptr}},      {"fma", {"llvm.fma", nullptr}},
      {"fmax", {"llvm.maxnum", nullptr}},  {"fmin", {"llvm.minnum", nullptr}},
      {"round", {"llvm.round", nullptr}},  {"rint", {"llvm.rint", nullptr}},
      {"s_max", {"llvm.smax", nullptr}},   {"s_min", {"llvm.smin", nullptr}},
      {"u_max", {"llvm.umax", nullptr}},   {"u_min", {"llvm.umin", nullptr}},
      {"log2", {"llvm.log2", nullptr}},    {"log10", {"llvm.log10", nullptr}},
      {"exp2", {"llvm.exp2", nullptr}},    {"trunc", {"llvm.trunc", nullptr}},
      {"copysign", {"llvm.copysign", nullptr}},
      {"erf", {nullptr, "erf"}},           {"asinh", {nullptr, "asinh"}},
      {"acosh", {nullptr, "acosh"}},       {"atanh", {nullptr, "atanh"}},
      {"cbrt", {nullptr, "cbrt"}},         {"expm1", {nullptr, "expm1"}},
      {"log1p", {nullptr, "log1p"}},       {"fmod", {nullptr, "fmod"}},
  };
  return table;
}

/// Matches every op (the root name is checked in matchAndRewrite): the table
/// above is keyed by the CL mnemonic.
struct ClOpPattern : ConversionPattern {
  ClOpPattern(const TypeConverter &converter, MLIRContext *ctx, ModuleOp executable)
      : ConversionPattern(converter, MatchAnyOpTypeTag(), /*benefit=*/1, ctx),
        executable(executable) {}
  /// libm declarations go here, next to the wrappers.
  mutable ModuleOp executable;

  LogicalResult matchAndRewrite(Operation *op, ArrayRef<Value> operands,
                                ConversionPatternRewriter &rewriter) const override {
    StringRef name = op->getName().getStringRef();
    if (!name.consume_front("spirv.CL.") || op->getNumResults() != 1)
      return failure();
    Type type = getTypeConverter()->convertType(op->getResult(0).getType());
    if (!type)
      return failure();
    Location loc = op->getLoc();
    if (name == "rsqrt") {
      Value s = LLVM::CallIntrinsicOp::create(rewriter, loc, type,
                                              rewriter.getStringAttr("llvm.sqrt"),
                                              ValueRange{operands[0]})
                    .getResult(0);
      Value one = LLVM::ConstantOp::create(rewriter, loc, type, rewriter.getFloatAttr(type, 1.0));
      rewriter.replaceOpWithNewOp<LLVM::FDivOp>(op, one, s);
      return success();
    }
    if (name == "s_abs") {
      Value poison = LLVM::ConstantOp::create(rewriter, loc, rewriter.getI1Type(),
                                              rewriter.getBoolAttr(false));
      rewriter.replaceOpWithNewOp<LLVM::CallIntrinsicOp>(
          op, type, rewriter.getStringAttr("llvm.abs"),
          ValueRange{operands[0], poison});
      return success();
    }
    auto it = clOpTable().find(name);
    if (it == clOpTable().end())
      return rewriter.notifyMatchFailure(op, "no host lowering for this OpenCL instruction");
    if (it->second.intrinsic) {
      rewriter.replaceOpWithNewOp<LLVM::CallIntrinsicOp>(
          op, type, rewriter.getStringAttr(it->second.intrinsic), operands);
      return success();
    }
    if (!type.isF32() && !type.isF64())
      return rewriter.notifyMatchFailure(op, "libm functions take f32 or f64 scalars");
    std::string fn = std::string(it->second.libm) + (type.isF32() ? "f" : "");
    auto fnType = LLVM::LLVMFunctionType::get(type, SmallVector<Type>(operands.size(), type));
    if (!SymbolTable::lookupSymbolIn(executable, fn)) {
      OpBuilder::InsertionGuard guard(rewriter);
      rewriter.setInsertionPointToStart(executable.getBody());
      LLVM::LLVMFuncOp::create(rewriter, loc, fn, fnType);
    }
    rewriter.replaceOpWithNewOp<LLVM::CallOp>(op, fnType, fn, operands);
    return success();
  }
};

/// spirv.SNegate, spirv.IsNan / spirv.IsInf / spirv.Ordered / spirv.Unordered.
struct FloatClassPattern : ConversionPattern {
  FloatClassPattern(const TypeConverter &converter, MLIRContext *ctx)
      : ConversionPattern(converter, MatchAnyOpTypeTag(), /*benefit=*/1, ctx) {}

  LogicalResult matchAndRewrite(Operation *op, ArrayRef<Value> operands,
                                ConversionPatternRewriter &rewriter) const override {
    Location loc = op->getLoc();
    if (isa<spirv::SNegateOp>(op)) {
      Type type = operands[0].getType();
      Value zero = LLVM::ZeroOp::create(rewriter, loc, type);
      rewriter.replaceOpWithNewOp<LLVM::SubOp>(op, zero, operands[0]);
      return success();
    }
    if (isa<spirv::IsNanOp>(op)) {
      rewriter.replaceOpWithNewOp<LLVM::FCmpOp>(op, LLVM::FCmpPredicate::uno, operands[0],
                                                operands[0]);
      return success();
    }
    if (isa<spirv::OrderedOp, spirv::UnorderedOp>(op)) {
      rewriter.replaceOpWithNewOp<LLVM::FCmpOp>(
          op, isa<spirv::OrderedOp>(op) ? LLVM::FCmpPredicate::ord : LLVM::FCmpPredicate::uno,
          operands[0], operands[1]);
      return success();
    }
    if (isa<spirv::IsInfOp>(op)) {
      Type type = operands[0].getType();
      Value abs = LLVM::FAbsOp::create(rewriter, loc, operands[0]);
      Type scalar = getElementTypeOrSelf(type);
      TypedAttr infAttr = rewriter.getFloatAttr(
          scalar, APFloat::getInf(cast<FloatType>(scalar).getFloatSemantics()));
      if (auto vec = dyn_cast<VectorType>(type))
        infAttr = DenseElementsAttr::get(vec, infAttr);
      Value inf = LLVM::ConstantOp::create(rewriter, loc, type, infAttr);
      rewriter.replaceOpWithNewOp<LLVM::FCmpOp>(op, LLVM::FCmpPredicate::oeq, abs, inf);
      return success();
    }
    return failure();
  }
};

//===----------------------------------------------------------------------===//
// kiln-spirv-to-host
//===----------------------------------------------------------------------===//

/// What the wrapper of one kernel needs to know.
struct KernelInfo {
  std::string name;
  unsigned numBuffers = 0;
  SmallVector<spirv::BuiltIn> builtins; // appended arguments, in order
  std::array<int64_t, 3> block = {1, 1, 1};
  std::array<int64_t, 3> launch = {1, 1, 1};
};

/// Lowers the executable's spirv.module to LLVM-dialect functions in the cpu
/// ABI, one wrapper per SPIR-V kernel.
struct SpirvToHostPass : PassWrapper<SpirvToHostPass, OperationPass<ModuleOp>> {
  MLIR_DEFINE_EXPLICIT_INTERNAL_INLINE_TYPE_ID(SpirvToHostPass)
  StringRef getArgument() const final { return "kiln-spirv-to-host"; }
  StringRef getDescription() const final {
    return "Lower levelzero's spirv.module to LLVM and wrap its kernels in the cpu ABI";
  }
  void getDependentDialects(DialectRegistry &registry) const override {
    registry.insert<LLVM::LLVMDialect>();
  }

  void runOnOperation() override {
    ModuleOp executable = getOperation();
    auto launches = executable->getAttrOfType<DictionaryAttr>("kiln.gpu_launches");
    SmallVector<spirv::ModuleOp> spirvModules;
    executable.walk([&](spirv::ModuleOp m) { spirvModules.push_back(m); });
    if (spirvModules.empty())
      return;
    if (spirvModules.size() != 1 || !launches) {
      executable.emitError("expected one spirv.module and kiln.gpu_launches from the levelzero "
                           "pipeline");
      return signalPassFailure();
    }
    spirv::ModuleOp spirvModule = spirvModules.front();
    if (failed(rejectBarriers(spirvModule)))
      return signalPassFailure();
    // Builtin loads become kernel arguments while the module is still SPIR-V.
    SmallVector<KernelInfo> kernels;
    if (failed(builtinsToArguments(spirvModule, launches, kernels)))
      return signalPassFailure();
    hoistVariables(spirvModule);

    // The spirv.module replaces the gpu.module it sits in.
    Operation *gpuModule = spirvModule->getParentOp();
    spirvModule->moveBefore(gpuModule);
    if (isa<gpu::GPUModuleOp>(gpuModule))
      gpuModule->erase();
    executable->removeAttr(gpu::GPUDialect::getContainerModuleAttrName());

    if (failed(convertToLLVM(executable)))
      return signalPassFailure();

    // The conversion turned the spirv.module into a nested builtin.module:
    // its functions join the executable.
    for (ModuleOp nested : llvm::make_early_inc_range(executable.getOps<ModuleOp>())) {
      Block *body = nested.getBody();
      for (Operation &op : llvm::make_early_inc_range(*body))
        op.moveBefore(nested);
      nested.erase();
    }
    for (const KernelInfo &kernel : kernels)
      if (failed(wrap(executable, kernel)))
        return signalPassFailure();
  }

  LogicalResult rejectBarriers(spirv::ModuleOp module) {
    WalkResult r = module.walk([&](Operation *op) {
      auto fail = [&](StringRef what) {
        op->emitError() << "levelzero-cpu: " << what
                        << ": the emulation runs a workgroup's invocations one after another, "
                           "which is exact only for kernels without barriers or workgroup "
                           "memory; a kernel with barriers needs a different emulation "
                           "(invocations as fibers, or loops split at barriers)";
        return WalkResult::interrupt();
      };
      if (isa<spirv::ControlBarrierOp>(op))
        return fail("the kernel uses spirv.ControlBarrier");
      if (auto var = dyn_cast<spirv::GlobalVariableOp>(op))
        if (auto ptr = dyn_cast<spirv::PointerType>(var.getType());
            ptr && ptr.getStorageClass() == spirv::StorageClass::Workgroup)
          return fail("the kernel uses Workgroup (shared) memory");
      return WalkResult::advance();
    });
    return failure(r.wasInterrupted());
  }

  LogicalResult builtinsToArguments(spirv::ModuleOp module, DictionaryAttr launches,
                                    SmallVector<KernelInfo> &kernels) {
    // Builtin variables by symbol.
    llvm::StringMap<spirv::GlobalVariableOp> builtinVars;
    llvm::StringMap<spirv::BuiltIn> builtinKind;
    for (auto var : module.getOps<spirv::GlobalVariableOp>()) {
      std::optional<StringRef> builtin = var.getBuiltIn();
      if (!builtin)
        continue;
      std::optional<spirv::BuiltIn> kind = spirv::symbolizeBuiltIn(*builtin);
      if (!kind || !llvm::is_contained(kSupportedBuiltins, *kind))
        return var.emitError() << "levelzero-cpu: the SPIR-V builtin " << *builtin
                               << " cannot be emulated on the host";
      builtinVars[var.getSymName()] = var;
      builtinKind[var.getSymName()] = *kind;
    }

    llvm::StringSet<> entryPoints;
    for (auto ep : module.getOps<spirv::EntryPointOp>())
      entryPoints.insert(ep.getFn());

    for (auto func : module.getOps<spirv::FuncOp>()) {
      SmallVector<spirv::AddressOfOp> uses;
      func.walk([&](spirv::AddressOfOp a) {
        if (builtinVars.count(a.getVariable()))
          uses.push_back(a);
      });
      bool isKernel = entryPoints.contains(func.getSymName());
      if (!isKernel) {
        if (!uses.empty())
          return func.emitError("levelzero-cpu: builtins are only supported in entry points");
        continue;
      }
      KernelInfo info;
      info.name = func.getSymName().str();
      info.numBuffers = func.getNumArguments();
      auto shape = dyn_cast_or_null<ArrayAttr>(launches.get(info.name));
      if (!shape || shape.size() != 2)
        return func.emitError("levelzero-cpu: no launch shape in kiln.gpu_launches");
      for (int i = 0; i < 3; ++i) {
        info.block[i] = cast<DenseI32ArrayAttr>(shape[0])[i];
        info.launch[i] = cast<DenseI32ArrayAttr>(shape[1])[i];
      }
      // One argument per builtin used, in kSupportedBuiltins order.
      llvm::DenseMap<unsigned, Value> argOf;
      Block &entry = func.getBody().front();
      for (spirv::BuiltIn kind : kSupportedBuiltins) {
        for (spirv::AddressOfOp a : uses) {
          if (builtinKind[a.getVariable()] != kind)
            continue;
          Type type = cast<spirv::PointerType>(a.getType()).getPointeeType();
          auto vec = dyn_cast<VectorType>(type);
          if (!vec || vec.getNumElements() != 3 || !vec.getElementType().isInteger())
            return a.emitError() << "levelzero-cpu: expected the builtin "
                                 << spirv::stringifyBuiltIn(kind) << " as vector<3 x iN>";
          if (!argOf.count((unsigned)kind)) {
            func.insertArgument(func.getNumArguments(), type, {}, func.getLoc());
            argOf[(unsigned)kind] = entry.getArgument(entry.getNumArguments() - 1);
            info.builtins.push_back(kind);
          }
          break;
        }
      }
      for (spirv::AddressOfOp a : uses) {
        Value arg = argOf[(unsigned)builtinKind[a.getVariable()]];
        for (Operation *user : llvm::make_early_inc_range(a->getUsers())) {
          auto load = dyn_cast<spirv::LoadOp>(user);
          if (!load)
            return user->emitError("levelzero-cpu: a builtin is used other than by spirv.Load");
          load.getResult().replaceAllUsesWith(arg);
          load.erase();
        }
        a.erase();
      }
      kernels.push_back(std::move(info));
    }
    // The wrapper takes the workgroup size from kiln.gpu_launches; the
    // LocalSize execution mode must agree. Execution modes have no meaning on
    // the host (the conversion would export them as globals): they go.
    for (auto mode : llvm::make_early_inc_range(module.getOps<spirv::ExecutionModeOp>())) {
      if (mode.getExecutionMode() == spirv::ExecutionMode::LocalSize) {
        auto it = llvm::find_if(kernels, [&](const KernelInfo &k) { return k.name == mode.getFn(); });
        ArrayAttr values = mode.getValues();
        if (it != kernels.end())
          for (int i = 0; i < 3 && i < (int)values.size(); ++i)
            if (cast<IntegerAttr>(values[i]).getInt() != it->block[i])
              return mode.emitError("levelzero-cpu: LocalSize disagrees with kiln.gpu_launches");
      }
      mode.erase();
    }
    // Entry points no longer name the builtins; the variables go.
    for (auto ep : module.getOps<spirv::EntryPointOp>()) {
      SmallVector<Attribute> kept;
      for (Attribute a : ep.getInterface())
        if (!builtinVars.count(cast<FlatSymbolRefAttr>(a).getValue()))
          kept.push_back(a);
      ep.setInterfaceAttr(ArrayAttr::get(module.getContext(), kept));
    }
    for (auto &var : builtinVars)
      var.second.erase();
    return success();
  }

  /// Function-storage variables are a thread's temporaries: all of them go to
  /// the entry block (where SPIR-V wants them anyway), so they become static
  /// allocas rather than stack growth inside loops once lowered.
  void hoistVariables(spirv::ModuleOp module) {
    for (auto func : module.getOps<spirv::FuncOp>()) {
      if (func.isExternal())
        continue;
      Block &entry = func.getBody().front();
      SmallVector<spirv::VariableOp> vars;
      func.walk([&](spirv::VariableOp v) {
        if (!v.getInitializer() && v->getBlock() != &entry)
          vars.push_back(v);
      });
      for (spirv::VariableOp v : vars)
        v->moveBefore(&entry, entry.begin());
    }
  }

  LogicalResult convertToLLVM(ModuleOp executable) {
    MLIRContext *ctx = executable.getContext();
    LLVMTypeConverter converter(ctx);
    populateSPIRVToLLVMTypeConversion(converter, spirv::ClientAPI::OpenCL);
    RewritePatternSet patterns(ctx);
    populateSPIRVToLLVMConversionPatterns(converter, patterns, spirv::ClientAPI::OpenCL);
    populateSPIRVToLLVMFunctionConversionPatterns(converter, patterns);
    populateSPIRVToLLVMModuleConversionPatterns(converter, patterns);
    patterns.add<ClOpPattern>(converter, ctx, executable);
    patterns.add<FloatClassPattern>(converter, ctx);
    ConversionTarget target(*ctx);
    target.addIllegalDialect<spirv::SPIRVDialect>();
    target.addLegalDialect<LLVM::LLVMDialect>();
    target.addLegalOp<ModuleOp>();
    return applyPartialConversion(executable, target, std::move(patterns));
  }

  /// `void name(ptr bindings, i64 wg_x, i64 wg_y, i64 wg_z)`: calls the
  /// lowered kernel once per local invocation of workgroup (wg_x, wg_y, wg_z).
  LogicalResult wrap(ModuleOp executable, const KernelInfo &info) {
    MLIRContext *ctx = executable.getContext();
    auto lowered = executable.lookupSymbol<LLVM::LLVMFuncOp>(info.name);
    if (!lowered)
      return executable.emitError() << "levelzero-cpu: the lowered kernel @" << info.name
                                    << " is missing";
    lowered.setSymName(info.name + kLoweredSuffix.str());
    lowered.setLinkage(LLVM::Linkage::Internal);
    LLVM::LLVMFunctionType kernelType = lowered.getFunctionType();
    if (kernelType.getNumParams() != info.numBuffers + info.builtins.size())
      return lowered.emitError("levelzero-cpu: unexpected lowered kernel signature");

    OpBuilder b = OpBuilder::atBlockEnd(executable.getBody());
    Location loc = lowered.getLoc();
    auto ptrTy = LLVM::LLVMPointerType::get(ctx);
    auto i64 = b.getI64Type();
    auto wrapperType = LLVM::LLVMFunctionType::get(LLVM::LLVMVoidType::get(ctx),
                                                   {ptrTy, i64, i64, i64});
    auto wrapper = LLVM::LLVMFuncOp::create(b, loc, info.name, wrapperType);
    Block *entry = wrapper.addEntryBlock(b);
    Block *header = b.createBlock(&wrapper.getBody(), {}, {i64}, {loc});
    Block *body = b.createBlock(&wrapper.getBody());
    Block *exit = b.createBlock(&wrapper.getBody());
    auto c = [&](int64_t v) { return LLVM::ConstantOp::create(b, loc, i64, v).getResult(); };

    // Entry: the buffer pointers, in the kernel's address space.
    b.setInsertionPointToStart(entry);
    SmallVector<Value> args;
    for (unsigned i = 0; i < info.numBuffers; ++i) {
      auto paramTy = dyn_cast<LLVM::LLVMPointerType>(kernelType.getParamType(i));
      if (!paramTy)
        return lowered.emitError("levelzero-cpu: expected only pointer (buffer) arguments");
      Value slot = LLVM::GEPOp::create(b, loc, ptrTy, ptrTy, entry->getArgument(0),
                                       ArrayRef<LLVM::GEPArg>{(int32_t)i});
      Value base = LLVM::LoadOp::create(b, loc, ptrTy, slot);
      if (paramTy != ptrTy)
        base = LLVM::AddrSpaceCastOp::create(b, loc, paramTy, base);
      args.push_back(base);
    }
    int64_t total = info.block[0] * info.block[1] * info.block[2];
    LLVM::BrOp::create(b, loc, ValueRange{c(0)}, header);

    // Header: for (i = 0; i < block size; ++i)
    b.setInsertionPointToStart(header);
    Value i = header->getArgument(0);
    Value more = LLVM::ICmpOp::create(b, loc, LLVM::ICmpPredicate::ult, i, c(total));
    LLVM::CondBrOp::create(b, loc, more, body, exit);

    // Body: local id from i (x fastest), the builtins, the call.
    b.setInsertionPointToStart(body);
    Value local[3];
    local[0] = LLVM::URemOp::create(b, loc, i, c(info.block[0]));
    Value rest = LLVM::UDivOp::create(b, loc, i, c(info.block[0]));
    local[1] = LLVM::URemOp::create(b, loc, rest, c(info.block[1]));
    local[2] = LLVM::UDivOp::create(b, loc, rest, c(info.block[1]));
    Value group[3] = {entry->getArgument(1), entry->getArgument(2), entry->getArgument(3)};
    for (auto [k, kind] : llvm::enumerate(info.builtins)) {
      auto vecTy = cast<VectorType>(kernelType.getParamType(info.numBuffers + k));
      Value comps[3];
      for (int d = 0; d < 3; ++d) {
        switch (kind) {
        case spirv::BuiltIn::WorkgroupId:
          comps[d] = group[d];
          break;
        case spirv::BuiltIn::LocalInvocationId:
          comps[d] = local[d];
          break;
        case spirv::BuiltIn::GlobalInvocationId:
          comps[d] = LLVM::AddOp::create(
              b, loc, LLVM::MulOp::create(b, loc, group[d], c(info.block[d])), local[d]);
          break;
        case spirv::BuiltIn::WorkgroupSize:
          comps[d] = c(info.block[d]);
          break;
        case spirv::BuiltIn::NumWorkgroups:
          comps[d] = c(info.launch[d]);
          break;
        case spirv::BuiltIn::GlobalSize:
          comps[d] = c(info.launch[d] * info.block[d]);
          break;
        default: // GlobalOffset
          comps[d] = c(0);
          break;
        }
      }
      Value vec = LLVM::PoisonOp::create(b, loc, vecTy);
      for (int d = 0; d < 3; ++d) {
        Value v = comps[d];
        if (vecTy.getElementType() != i64)
          v = LLVM::TruncOp::create(b, loc, vecTy.getElementType(), v);
        vec = LLVM::InsertElementOp::create(b, loc, vec, v, c(d));
      }
      args.push_back(vec);
    }
    LLVM::CallOp::create(b, loc, lowered, args);
    Value next = LLVM::AddOp::create(b, loc, i, c(1));
    LLVM::BrOp::create(b, loc, ValueRange{next}, header);

    b.setInsertionPointToStart(exit);
    LLVM::ReturnOp::create(b, loc, ValueRange{});
    return success();
  }
};

class LevelZeroCpuTarget : public kiln::TargetBackend {
public:
  llvm::StringRef name() const override { return "levelzero-cpu"; }
  llvm::StringRef description() const override {
    return "levelzero's SPIR-V kernels run on the host CPU through MLIR's SPIR-V to LLVM "
           "conversion (testing)";
  }

  /// The levelzero backend itself: its tiling and its codegen pipeline are
  /// used as they are.
  static const kiln::TargetBackend &device() {
    const kiln::TargetBackend *levelzero = kiln::lookupTargetBackend("levelzero");
    if (!levelzero)
      llvm::report_fatal_error("kiln: levelzero-cpu needs the levelzero backend");
    return *levelzero;
  }

  kiln::KernelOptions kernelOptions(const kiln::TargetOptions &options) const override {
    return device().kernelOptions(options);
  }

  void buildCodegenPipeline(OpPassManager &pm, const kiln::TargetOptions &options) const override {
    device().buildCodegenPipeline(pm, options);
    pm.addPass(std::make_unique<SpirvToHostPass>());
    if (failed(parsePassPipeline("canonicalize", pm, llvm::errs())))
      llvm::report_fatal_error("kiln: invalid levelzero-cpu codegen pipeline");
  }

  llvm::Expected<std::string> emitText(ModuleOp executable, llvm::StringRef stage,
                                       const kiln::TargetOptions &options) const override {
    return kiln::host::emitText(executable, stage, options);
  }

  llvm::Expected<std::vector<kiln::artifact::Executable>>
  serialize(ModuleOp executable, const kiln::TargetOptions &options,
            const kiln::KernelGrids &) const override {
    std::vector<kiln::artifact::Entry> entries = kiln::gpu::kernelEntries(executable);
    if (entries.empty())
      return makeError("levelzero-cpu: the executable has no kiln.gpu_launches");
    auto exe = kiln::host::buildSharedObject(executable, options);
    if (!exe)
      return exe.takeError();
    // One cpu task per GPU workgroup; the wrapper runs its threads.
    for (kiln::artifact::Entry &e : entries)
      for (int i = 0; i < 3; ++i)
        e.workgroupSize[i] = 1;
    exe->entries = std::move(entries);
    std::vector<kiln::artifact::Executable> exes;
    exes.push_back(std::move(*exe));
    return exes;
  }
};

} // namespace

void registerLevelZeroCpuTarget() {
  static PassRegistration<SpirvToHostPass> pass;
  kiln::registerTargetBackend(std::make_unique<LevelZeroCpuTarget>());
}

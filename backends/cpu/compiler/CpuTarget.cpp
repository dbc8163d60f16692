//===- CpuTarget.cpp - host CPU code generation ---------------------------===//
//
// Kernels become functions `void k(void *const *bindings, i64 wg_x, i64 wg_y,
// i64 wg_z)` in one ELF shared object; the runtime's cpu driver dlopens it
// from memory and runs each workgroup as a thread-pool task.
//
//===----------------------------------------------------------------------===//
#include "kiln/Dialect/Kiln/IR/KilnDialect.h"
#include "kiln/Target/TargetBackend.h"

#include "mlir/Conversion/LLVMCommon/MemRefBuilder.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/ExecutionEngine/OptUtils.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/InitAllPasses.h"
#include "mlir/Pass/Pass.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Target/LLVMIR/Dialect/Builtin/BuiltinToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/LLVMIR/LLVMToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Export.h"

#include "llvm/IR/LegacyPassManager.h"
#include "llvm/IR/Module.h"
#include "llvm/MC/TargetRegistry.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Program.h"
#include "llvm/Support/TargetSelect.h"
#include "llvm/Target/TargetMachine.h"
#include "llvm/TargetParser/Host.h"

#include <mutex>

using namespace mlir;

namespace {

//===----------------------------------------------------------------------===//
// kiln-cpu-lower-abi
//===----------------------------------------------------------------------===//

/// Rewrites `(memref..., )` kernels to the cpu ABI: buffers come as an array
/// of base pointers, the workgroup id as three integers.
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
    for (auto kernel : getOperation().getOps<func::FuncOp>())
      if (!kernel.isExternal())
        lower(kernel);
  }

  void lower(func::FuncOp kernel) {
    MLIRContext *ctx = kernel.getContext();
    Block &entry = kernel.getBody().front();
    OpBuilder b(ctx);
    b.setInsertionPointToStart(&entry);
    Location loc = kernel.getLoc();
    auto ptrTy = LLVM::LLVMPointerType::get(ctx);
    auto i64 = b.getI64Type();
    unsigned numBuffers = entry.getNumArguments();
    Value bindings = entry.addArgument(ptrTy, loc);
    Value wg[3];
    for (Value &v : wg)
      v = entry.addArgument(b.getIndexType(), loc);

    for (unsigned i = 0; i < numBuffers; ++i) {
      BlockArgument old = entry.getArgument(i);
      auto type = cast<MemRefType>(old.getType());
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
      Value m = UnrealizedConversionCastOp::create(b, loc, type, desc).getResult(0);
      old.replaceAllUsesWith(m);
    }
    kernel.walk([&](gpu::BlockIdOp id) {
      id.replaceAllUsesWith(wg[(int)id.getDimension()]);
      id.erase();
    });
    entry.eraseArguments(0, numBuffers);
    kernel.setType(FunctionType::get(ctx, entry.getArgumentTypes(), {}));
  }
};

//===----------------------------------------------------------------------===//
// LLVM IR, objects, shared objects
//===----------------------------------------------------------------------===//

void initLLVM() {
  static std::once_flag once;
  std::call_once(once, [] {
    llvm::InitializeAllTargetInfos();
    llvm::InitializeAllTargets();
    llvm::InitializeAllTargetMCs();
    llvm::InitializeAllAsmPrinters();
  });
}

llvm::Error error(const llvm::Twine &msg) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), msg);
}

std::string hostTriple() { return llvm::sys::getDefaultTargetTriple(); }

llvm::Expected<std::unique_ptr<llvm::TargetMachine>>
makeTargetMachine(const kiln::TargetOptions &options) {
  initLLVM();
  llvm::Triple triple(options.triple.empty() ? hostTriple() : options.triple);
  std::string err;
  const llvm::Target *target = llvm::TargetRegistry::lookupTarget(triple, err);
  if (!target)
    return error("unknown target triple '" + triple.str() + "': " + err);
  std::string cpu = options.cpu, features;
  bool native = options.triple.empty() || triple.getArch() == llvm::Triple(hostTriple()).getArch();
  if ((cpu.empty() || cpu == "native") && native) {
    cpu = llvm::sys::getHostCPUName().str();
    for (const auto &f : llvm::sys::getHostCPUFeatures())
      features += (features.empty() ? "" : ",") + std::string(f.second ? "+" : "-") +
                  f.first().str();
  } else if (cpu.empty() || cpu == "native") {
    cpu = "generic";
  }
  llvm::TargetOptions to;
  std::unique_ptr<llvm::TargetMachine> tm(target->createTargetMachine(
      triple, cpu, features, to, llvm::Reloc::PIC_, std::nullopt,
      llvm::CodeGenOptLevel::Aggressive));
  if (!tm)
    return error("cannot create a target machine for " + triple.str() + " / " + cpu);
  return tm;
}

llvm::Expected<std::unique_ptr<llvm::Module>>
toOptimizedLLVM(ModuleOp executable, llvm::LLVMContext &llctx, llvm::TargetMachine &tm) {
  DialectRegistry registry;
  registerBuiltinDialectTranslation(registry);
  registerLLVMDialectTranslation(registry);
  executable->getContext()->appendDialectRegistry(registry);
  std::unique_ptr<llvm::Module> mod = translateModuleToLLVMIR(executable, llctx, "kiln_kernels");
  if (!mod)
    return error("translation of the kernels to LLVM IR failed");
  mod->setDataLayout(tm.createDataLayout());
  mod->setTargetTriple(tm.getTargetTriple());
  if (llvm::Error e = makeOptimizingTransformer(3, 0, &tm)(mod.get()))
    return std::move(e);
  return mod;
}

/// The kernels as optimized LLVM IR, with the target machine that made it.
struct Lowered {
  std::unique_ptr<llvm::TargetMachine> tm;
  std::unique_ptr<llvm::LLVMContext> ctx;
  std::unique_ptr<llvm::Module> mod;
};

llvm::Expected<Lowered> lowerToLLVM(ModuleOp executable, const kiln::TargetOptions &options) {
  Lowered l;
  auto tm = makeTargetMachine(options);
  if (!tm)
    return tm.takeError();
  l.tm = std::move(*tm);
  l.ctx = std::make_unique<llvm::LLVMContext>();
  auto mod = toOptimizedLLVM(executable, *l.ctx, *l.tm);
  if (!mod)
    return mod.takeError();
  l.mod = std::move(*mod);
  return l;
}

llvm::Expected<std::string> emitMachineCode(llvm::Module &mod, llvm::TargetMachine &tm,
                                            llvm::CodeGenFileType type) {
  llvm::SmallVector<char, 0> buf;
  llvm::raw_svector_ostream os(buf);
  llvm::legacy::PassManager pm;
  if (tm.addPassesToEmitFile(pm, os, nullptr, type))
    return error("the target cannot emit this file type");
  pm.run(mod);
  return std::string(buf.begin(), buf.end());
}

/// Links one relocatable object into a shared object with ld.lld.
llvm::Expected<std::vector<uint8_t>> linkSharedObject(llvm::StringRef object) {
  std::string lld = KILN_LD_LLD;
  if (const char *env = getenv("KILN_LD_LLD"))
    lld = env;
  llvm::SmallString<128> objPath, soPath;
  int fd;
  if (auto ec = llvm::sys::fs::createTemporaryFile("kiln-kernels", "o", fd, objPath))
    return error("cannot create a temporary file: " + ec.message());
  {
    llvm::raw_fd_ostream os(fd, /*shouldClose=*/true);
    os << object;
  }
  if (auto ec = llvm::sys::fs::createTemporaryFile("kiln-kernels", "so", soPath))
    return error("cannot create a temporary file: " + ec.message());
  std::string errMsg;
  llvm::SmallString<128> logPath;
  llvm::sys::fs::createTemporaryFile("kiln-lld", "log", logPath);
  std::optional<llvm::StringRef> redirects[] = {std::nullopt, logPath.str(), logPath.str()};
  llvm::StringRef args[] = {lld, "-shared", "--hash-style=gnu", "-o", soPath, objPath};
  int rc = llvm::sys::ExecuteAndWait(lld, args, std::nullopt, redirects, 0, 0, &errMsg);
  auto log = llvm::MemoryBuffer::getFile(logPath);
  std::string logText = log ? (*log)->getBuffer().str() : "";
  llvm::sys::fs::remove(objPath);
  llvm::sys::fs::remove(logPath);
  if (rc != 0) {
    llvm::sys::fs::remove(soPath);
    return error("linking kernels with '" + lld + "' failed" +
                 (errMsg.empty() ? "" : ": " + errMsg) + (logText.empty() ? "" : "\n" + logText));
  }
  auto so = llvm::MemoryBuffer::getFile(soPath, false, false);
  llvm::sys::fs::remove(soPath);
  if (!so)
    return error("cannot read linked kernels: " + so.getError().message());
  return std::vector<uint8_t>((*so)->getBufferStart(), (*so)->getBufferEnd());
}

class CpuTarget : public kiln::TargetBackend {
public:
  llvm::StringRef name() const override { return "cpu"; }
  llvm::StringRef description() const override {
    return "host CPU through LLVM (x86-64, aarch64); workgroups on a thread pool";
  }

  kiln::KernelOptions kernelOptions(const kiln::TargetOptions &options) const override {
    kiln::KernelOptions k;
    if (options.maxWorkgroups > 0)
      k.maxWorkgroups = options.maxWorkgroups;
    return k;
  }

  void buildCodegenPipeline(OpPassManager &pm, const kiln::TargetOptions &) const override {
    // Written as text so the stage list reads top to bottom.
    static const char *pipeline =
        "func.func(convert-linalg-to-loops, canonicalize),"
        "kiln-cpu-lower-abi,"
        "expand-strided-metadata,"
        "lower-affine,"
        "convert-scf-to-cf,"
        "convert-math-to-llvm,"
        "convert-math-to-libm,"
        "convert-arith-to-llvm,"
        "convert-index-to-llvm,"
        "finalize-memref-to-llvm,"
        "convert-func-to-llvm,"
        "convert-cf-to-llvm,"
        "reconcile-unrealized-casts,"
        "canonicalize";
    if (failed(parsePassPipeline(pipeline, pm, llvm::errs())))
      llvm::report_fatal_error("kiln: invalid cpu codegen pipeline");
  }

  llvm::Expected<std::string> emitText(ModuleOp executable, llvm::StringRef stage,
                                       const kiln::TargetOptions &options) const override {
    auto lowered = lowerToLLVM(executable, options);
    if (!lowered)
      return lowered.takeError();
    if (stage == "llvm") {
      std::string s;
      llvm::raw_string_ostream os(s);
      lowered->mod->print(os, nullptr);
      return s;
    }
    return emitMachineCode(*lowered->mod, *lowered->tm, llvm::CodeGenFileType::AssemblyFile);
  }

  llvm::Expected<std::vector<kiln::artifact::Executable>>
  serialize(ModuleOp executable, const kiln::TargetOptions &options,
            const kiln::KernelGrids &grids) const override {
    auto lowered = lowerToLLVM(executable, options);
    if (!lowered)
      return lowered.takeError();
    auto &tm = lowered->tm;
    auto &mod = lowered->mod;
    auto obj = emitMachineCode(*mod, *tm, llvm::CodeGenFileType::ObjectFile);
    if (!obj)
      return obj.takeError();
    auto so = linkSharedObject(*obj);
    if (!so)
      return so.takeError();
    kiln::artifact::Executable exe;
    exe.target = "cpu";
    llvm::Triple triple = tm->getTargetTriple();
    exe.format = "elf-" + std::string(triple.getArchName()) + "-so";
    exe.image = std::move(*so);
    for (auto kernel : executable.getOps<LLVM::LLVMFuncOp>()) {
      if (kernel.isExternal())
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
  static PassRegistration<LowerCpuAbiPass> abi;
  kiln::registerTargetBackend(std::make_unique<CpuTarget>());
}

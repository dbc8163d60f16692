//===- HostCodegen.cpp - LLVM-dialect kernels to a host shared object -----===//
//
// Moved here from backends/cpu/compiler/CpuTarget.cpp so that every backend
// whose kernels end as host code (cpu, levelzero-cpu) links them the same way.
//
//===----------------------------------------------------------------------===//
#include "kiln/Target/HostCodegen.h"

#include "mlir/ExecutionEngine/OptUtils.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/Target/LLVMIR/Dialect/Builtin/BuiltinToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/LLVMIR/LLVMToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Export.h"

#include "llvm/IR/LegacyPassManager.h"
#include "llvm/IR/Module.h"
#include "llvm/MC/MCSubtargetInfo.h"
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

/// Links one relocatable object into a shared object with ld.lld. For the
/// build machine's architecture, compiler-rt's builtins are linked in: LLVM
/// calls them for conversions the target CPU lacks (`__truncsfbf2` below
/// AVX512-BF16, `__extendhfsf2` below F16C), and the runtime that dlopens the
/// kernels does not export them. Only the members the kernels use are pulled.
llvm::Expected<std::vector<uint8_t>> linkSharedObject(llvm::StringRef object,
                                                      const llvm::Triple &triple) {
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
  llvm::SmallVector<llvm::StringRef> args = {lld, "-shared", "--hash-style=gnu", "-o", soPath,
                                             objPath};
  if (triple.getArch() == llvm::Triple(hostTriple()).getArch())
    args.push_back(KILN_RT_BUILTINS);
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

} // namespace

llvm::Expected<std::string> kiln::host::emitText(ModuleOp executable, llvm::StringRef stage,
                                                 const TargetOptions &options) {
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

llvm::Expected<kiln::artifact::Executable>
kiln::host::buildSharedObject(ModuleOp executable, const TargetOptions &options) {
  auto lowered = lowerToLLVM(executable, options);
  if (!lowered)
    return lowered.takeError();
  auto obj = emitMachineCode(*lowered->mod, *lowered->tm, llvm::CodeGenFileType::ObjectFile);
  if (!obj)
    return obj.takeError();
  llvm::Triple triple = lowered->tm->getTargetTriple();
  auto so = linkSharedObject(*obj, triple);
  if (!so)
    return so.takeError();
  artifact::Executable exe;
  exe.target = "cpu";
  exe.format = "elf-" + std::string(triple.getArchName()) + "-so";
  exe.image = std::move(*so);
  return exe;
}

llvm::Expected<unsigned> kiln::host::vectorRegisterBits(const TargetOptions &options) {
  auto tm = makeTargetMachine(options);
  if (!tm)
    return tm.takeError();
  const llvm::MCSubtargetInfo *sti = (*tm)->getMCSubtargetInfo();
  if (!(*tm)->getTargetTriple().isX86())
    return 128;
  if (sti->checkFeatures("+avx512f"))
    return 512;
  return sti->checkFeatures("+avx") ? 256 : 128;
}

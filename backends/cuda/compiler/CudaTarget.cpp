//===- CudaTarget.cpp - NVIDIA GPUs: NVVM -> PTX -> cubin -----------------===//
//
// Kernels go through MLIR's NVVM lowering and LLVM's NVPTX backend to PTX
// (libdevice from the CUDA toolkit supplies math functions); ptxas, when
// the toolkit is present, turns each arch's PTX into a cubin. The artifact
// holds the cubins first and then the PTX, newest arch first, so the
// runtime loads an exact cubin or JIT-compiles the newest PTX it can.
//
//===----------------------------------------------------------------------===//
#include "kiln/Target/GpuTarget.h"

#include "mlir/Pass/PassRegistry.h"
#include "mlir/IR/BuiltinOps.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Bitcode/BitcodeReader.h"
#include "llvm/IR/Module.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Program.h"

using namespace mlir;
using kiln::gpu::makeError;

namespace {

const std::string kDefaultArchs[] = {"sm_80", "sm_90"};

llvm::cl::list<std::string> cudaArchs(
    "cuda-arch",
    llvm::cl::desc("cuda: GPU archs to build cubins for; PTX of the lowest is kept for newer "
                   "GPUs (default: sm_80,sm_90)"),
    llvm::cl::CommaSeparated, llvm::cl::value_desc("sm_XY,..."),
    llvm::cl::cat(kiln::targetOptionCategory()));

/// The archs to build for: --cuda-arch or the defaults.
std::vector<std::string> chosenArchs() {
  return kiln::gpu::archsOrDefault(cudaArchs, kDefaultArchs);
}

std::string cudaToolkit() {
  for (const char *var : {"KILN_CUDA_PATH", "CUDA_HOME", "CUDA_PATH"})
    if (const char *v = getenv(var); v && *v)
      return v;
  return "/usr/local/cuda";
}

/// ptxas from KILN_PTXAS, the toolkit or PATH; empty when there is none.
std::string findPtxas() {
  if (const char *v = getenv("KILN_PTXAS"); v && *v)
    return v;
  std::string inToolkit = cudaToolkit() + "/bin/ptxas";
  if (llvm::sys::fs::can_execute(inToolkit))
    return inToolkit;
  auto onPath = llvm::sys::findProgramByName("ptxas");
  return onPath ? *onPath : "";
}

llvm::Expected<std::vector<uint8_t>> runPtxas(const std::string &ptxas, llvm::StringRef ptx,
                                              llvm::StringRef arch) {
  llvm::SmallString<128> in, out, log;
  int fd;
  if (auto ec = llvm::sys::fs::createTemporaryFile("kiln-cuda", "ptx", fd, in))
    return makeError("cannot create a temporary file: " + ec.message());
  {
    llvm::raw_fd_ostream os(fd, /*shouldClose=*/true);
    os << ptx;
  }
  llvm::sys::fs::createTemporaryFile("kiln-cuda", "cubin", out);
  llvm::sys::fs::createTemporaryFile("kiln-ptxas", "log", log);
  std::string archFlag = ("-arch=" + arch).str();
  llvm::StringRef args[] = {ptxas, archFlag, "-O3", "-o", out, in};
  std::optional<llvm::StringRef> redirects[] = {std::nullopt, log.str(), log.str()};
  std::string err;
  int rc = llvm::sys::ExecuteAndWait(ptxas, args, std::nullopt, redirects, 0, 0, &err);
  auto logText = llvm::MemoryBuffer::getFile(log);
  auto cubin = llvm::MemoryBuffer::getFile(out, false, false);
  llvm::sys::fs::remove(in);
  llvm::sys::fs::remove(out);
  llvm::sys::fs::remove(log);
  if (rc != 0 || !cubin)
    return makeError("ptxas (" + ptxas + ") failed for " + arch + (err.empty() ? "" : ": " + err) +
                     (logText ? "\n" + (*logText)->getBuffer().str() : ""));
  return std::vector<uint8_t>((*cubin)->getBufferStart(), (*cubin)->getBufferEnd());
}

class CudaTarget : public kiln::TargetBackend {
public:
  llvm::StringRef name() const override { return "cuda"; }
  llvm::StringRef description() const override {
    return "NVIDIA GPUs: PTX through NVVM and LLVM NVPTX, cubins through ptxas "
           "(--cuda-arch, default sm_80,sm_90)";
  }

  std::vector<kiln::EmitStage> emitStages() const override {
    using Kind = kiln::EmitStage::Kind;
    return {{"ptx", "write each cuda arch's PTX into the -o folder", Kind::Files, "ptx", "ptx"},
            {"cubin", "write each cuda arch's cubin into the -o folder", Kind::Files, "cubin",
             "cubin"}};
  }

  kiln::KernelOptions kernelOptions(const kiln::TargetOptions &options) const override {
    return kiln::gpu::kernelOptions(options);
  }

  void buildCodegenPipeline(OpPassManager &pm, const kiln::TargetOptions &) const override {
    kiln::gpu::buildDistributionPipeline(pm);
    std::string pipeline = "gpu.module(expand-strided-metadata, lower-affine, convert-scf-to-cf,"
                           "convert-gpu-to-nvvm{use-bare-ptr-memref-call-conv=true}),"
                           "reconcile-unrealized-casts";
    for (const std::string &arch : chosenArchs())
      pipeline += ",nvvm-attach-target{chip=" + arch + " O=3}";
    if (failed(parsePassPipeline(pipeline, pm, llvm::errs())))
      llvm::report_fatal_error("kiln: invalid cuda codegen pipeline");
  }

  llvm::Expected<std::string> emitText(ModuleOp executable, llvm::StringRef stage,
                                       const kiln::TargetOptions &) const override {
    if (stage == "asm") {
      auto ptx = kiln::gpu::serializeGpuModule(executable, "isa", cudaToolkit());
      if (!ptx)
        return ptx.takeError();
      return ptx->front().bytes;
    }
    auto bitcode = kiln::gpu::serializeGpuModule(executable, "llvm", cudaToolkit());
    if (!bitcode)
      return bitcode.takeError();
    llvm::LLVMContext llctx;
    auto mod = llvm::parseBitcodeFile(
        llvm::MemoryBufferRef(bitcode->front().bytes, "kernels"), llctx);
    if (!mod)
      return mod.takeError();
    std::string text;
    llvm::raw_string_ostream os(text);
    (*mod)->print(os, nullptr);
    return text;
  }

  llvm::Expected<std::vector<kiln::artifact::Executable>>
  serialize(ModuleOp executable, const kiln::TargetOptions &,
            const kiln::KernelGrids &) const override {
    std::vector<std::string> archs = chosenArchs();
    auto ptxs = kiln::gpu::serializeGpuModule(executable, "isa", cudaToolkit());
    if (!ptxs)
      return ptxs.takeError();
    if (ptxs->size() != archs.size())
      return makeError("expected one PTX per arch");
    std::vector<kiln::artifact::Entry> entries = kiln::gpu::kernelEntries(executable);
    auto make = [&](std::string format, std::vector<uint8_t> image) {
      kiln::artifact::Executable exe;
      exe.target = "cuda";
      exe.format = std::move(format);
      exe.image = std::move(image);
      exe.entries = entries;
      return exe;
    };
    std::vector<kiln::artifact::Executable> exes;
    if (std::string ptxas = findPtxas(); !ptxas.empty()) {
      for (size_t i = 0; i < archs.size(); ++i) {
        auto cubin = runPtxas(ptxas, (*ptxs)[i].bytes, archs[i]);
        if (!cubin)
          return cubin.takeError();
        exes.push_back(make("cubin-" + archs[i], std::move(*cubin)));
      }
    }
    // Newest PTX first: the runtime JITs the first one the device can run.
    std::vector<size_t> order(archs.size());
    for (size_t i = 0; i < order.size(); ++i)
      order[i] = i;
    auto smNumber = [](llvm::StringRef arch) {
      unsigned n = 0;
      arch.drop_front(3).consumeInteger(10, n);
      return n;
    };
    llvm::stable_sort(order, [&](size_t a, size_t b) {
      return smNumber(archs[a]) > smNumber(archs[b]);
    });
    for (size_t i : order) {
      const std::string &ptx = (*ptxs)[i].bytes;
      exes.push_back(make("ptx-" + archs[i], std::vector<uint8_t>(ptx.begin(), ptx.end())));
    }
    return exes;
  }
};

} // namespace

void registerCudaTarget() { kiln::registerTargetBackend(std::make_unique<CudaTarget>()); }

//===- HipTarget.cpp - AMD GPUs: ROCDL -> AMDGPU code objects -------------===//
//
// Kernels go through MLIR's ROCDL lowering and LLVM's AMDGPU backend; MLIR's
// ROCDL serializer links the ROCm device libraries (ocml, ockl, ...) and
// links the object into an HSA code object with ld.lld. It expects a ROCm
// install laid out as <root>/amdgcn/bitcode and <root>/llvm/bin/ld.lld;
// Debian ships the bitcode elsewhere and no ROCm tree, so a small one is
// assembled in a temporary folder from Debian's files.
//
//===----------------------------------------------------------------------===//
#include "kiln/Target/GpuTarget.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/PassRegistry.h"
#include "llvm/Bitcode/BitcodeWriter.h"
#include "llvm/IR/Constants.h"
#include "llvm/IR/GlobalVariable.h"
#include "llvm/IR/LLVMContext.h"
#include "llvm/IR/Module.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"
#include "llvm/TargetParser/TargetParser.h"

using namespace mlir;
using kiln::gpu::makeError;

namespace {

const std::string kDefaultArchs[] = {"gfx90a", "gfx942", "gfx1100"};

llvm::cl::list<std::string> hipArchs("hip-arch",
                                     llvm::cl::desc("hip: AMDGPU archs to build code objects "
                                                    "for (default: gfx90a,gfx942,gfx1100)"),
                                     llvm::cl::CommaSeparated, llvm::cl::value_desc("gfxN,..."),
                                     llvm::cl::cat(kiln::targetOptionCategory()));

/// The archs to build for: --hip-arch or the defaults.
std::vector<std::string> chosenArchs() {
  return kiln::gpu::archsOrDefault(hipArchs, kDefaultArchs);
}

std::string envOr(const char *var, const char *fallback) {
  const char *v = getenv(var);
  return v && *v ? v : fallback;
}

/// Writes oclc_isa_version_<N>.bc, the one-constant library the device
/// libraries read the ISA version from, for chips Debian's set predates.
llvm::Error writeIsaVersion(llvm::StringRef chip, llvm::StringRef path) {
  llvm::AMDGPU::IsaVersion isa = llvm::AMDGPU::getIsaVersion(chip);
  if (isa.Major == 0)
    return makeError("unknown AMDGPU chip '" + chip + "'");
  llvm::LLVMContext ctx;
  llvm::Module mod("oclc_isa_version", ctx);
  auto *i32 = llvm::Type::getInt32Ty(ctx);
  auto *gv = new llvm::GlobalVariable(
      mod, i32, /*isConstant=*/true, llvm::GlobalValue::LinkOnceODRLinkage,
      llvm::ConstantInt::get(i32, isa.Major * 1000 + isa.Minor * 100 + isa.Stepping),
      "__oclc_ISA_version", nullptr, llvm::GlobalValue::NotThreadLocal, /*AddressSpace=*/4);
  gv->setVisibility(llvm::GlobalValue::ProtectedVisibility);
  gv->setAlignment(llvm::Align(4));
  std::error_code ec;
  llvm::raw_fd_ostream os(path, ec);
  if (ec)
    return makeError("cannot write '" + path + "': " + ec.message());
  llvm::WriteBitcodeToFile(mod, os);
  return llvm::Error::success();
}

/// A ROCm-shaped folder for MLIR's serializer; removed on destruction.
class RocmTree {
public:
  static llvm::Expected<std::unique_ptr<RocmTree>> create(llvm::ArrayRef<std::string> chips) {
    std::string real = envOr("KILN_ROCM_PATH", envOr("ROCM_PATH", "").c_str());
    auto tree = std::make_unique<RocmTree>();
    if (!real.empty()) {
      tree->path = real;
      return tree;
    }
    std::string bitcode = envOr("KILN_ROCM_DEVICE_LIBS", KILN_ROCM_DEVICE_LIBS);
    if (!llvm::sys::fs::is_directory(bitcode))
      return makeError("the ROCm device libraries are not at '" + bitcode +
                       "' (install Debian's rocm-device-libs, or set KILN_ROCM_DEVICE_LIBS or "
                       "ROCM_PATH)");
    llvm::SmallString<128> root;
    if (auto ec = llvm::sys::fs::createUniqueDirectory("kiln-rocm", root))
      return makeError("cannot create a temporary folder: " + ec.message());
    tree->path = root.str().str();
    tree->owned = true;
    std::string libs = tree->path + "/amdgcn/bitcode", bin = tree->path + "/llvm/bin";
    llvm::sys::fs::create_directories(libs);
    llvm::sys::fs::create_directories(bin);
    std::error_code ec;
    for (llvm::sys::fs::directory_iterator it(bitcode, ec), end; it != end && !ec;
         it.increment(ec))
      llvm::sys::fs::create_link(it->path(),
                                 libs + "/" + llvm::sys::path::filename(it->path()).str());
    std::string lld = envOr("KILN_LD_LLD", KILN_LD_LLD);
    if (auto e = llvm::sys::fs::create_link(lld, bin + "/ld.lld"))
      return makeError("cannot link ld.lld into the ROCm folder: " + e.message());
    for (const std::string &chip : chips) {
      std::string version = llvm::AMDGPU::getArchNameAMDGCN(llvm::AMDGPU::parseArchAMDGCN(chip))
                                .drop_front(3)
                                .str();
      std::string file = libs + "/oclc_isa_version_" + version + ".bc";
      if (!llvm::sys::fs::exists(file))
        if (llvm::Error e = writeIsaVersion(chip, file))
          return std::move(e);
    }
    return tree;
  }
  ~RocmTree() {
    if (owned)
      llvm::sys::fs::remove_directories(path);
  }
  std::string path;
  bool owned = false;
};

class HipTarget : public kiln::TargetBackend {
public:
  llvm::StringRef name() const override { return "hip"; }
  llvm::StringRef description() const override {
    return "AMD GPUs: HSA code objects through ROCDL and LLVM AMDGPU, linked with ld.lld "
           "(--hip-arch, default gfx90a,gfx942,gfx1100)";
  }

  std::vector<kiln::EmitStage> emitStages() const override {
    return {{"hsaco", "write each hip arch's code object into the -o folder",
             kiln::EmitStage::Kind::Files, "hsaco", "hsaco"}};
  }

  kiln::KernelOptions kernelOptions(const kiln::TargetOptions &options) const override {
    return kiln::gpu::kernelOptions(options);
  }

  void buildCodegenPipeline(OpPassManager &pm, const kiln::TargetOptions &) const override {
    std::vector<std::string> archs = chosenArchs();
    kiln::gpu::buildDistributionPipeline(pm);
    // Math goes to the device libraries (__ocml_*) first: left to the GPU
    // conversion, tanh and friends become LLVM intrinsics AMDGPU cannot lower.
    std::string pipeline = "convert-math-to-rocdl{chipset=" + archs.front() +
                           "},"
                           "gpu.module(expand-strided-metadata, lower-affine, convert-scf-to-cf,"
                           "convert-gpu-to-rocdl{chipset=" +
                           archs.front() +
                           " runtime=HIP use-bare-ptr-memref-call-conv=true}),"
                           "reconcile-unrealized-casts";
    // Code object v5 is what current HIP runtimes load by default.
    for (const std::string &arch : archs)
      pipeline += ",rocdl-attach-target{chip=" + arch + " O=3 abi=500" +
                  (llvm::StringRef(arch).starts_with("gfx9") ? " wave64=true" : " wave64=false") +
                  "}";
    if (failed(parsePassPipeline(pipeline, pm, llvm::errs())))
      llvm::report_fatal_error("kiln: invalid hip codegen pipeline");
  }

  llvm::Expected<std::string> emitText(ModuleOp executable, llvm::StringRef stage,
                                       const kiln::TargetOptions &) const override {
    auto tree = RocmTree::create(chosenArchs());
    if (!tree)
      return tree.takeError();
    auto objects = kiln::gpu::serializeGpuModule(executable, stage == "asm" ? "isa" : "llvm",
                                                 (*tree)->path);
    if (!objects)
      return objects.takeError();
    if (stage == "asm")
      return objects->front().bytes;
    return makeError("--emit=llvm is not available for hip; use --emit=asm or --emit=codegen");
  }

  llvm::Expected<std::vector<kiln::artifact::Executable>>
  serialize(ModuleOp executable, const kiln::TargetOptions &,
            const kiln::KernelGrids &) const override {
    std::vector<std::string> archs = chosenArchs();
    auto tree = RocmTree::create(archs);
    if (!tree)
      return tree.takeError();
    auto objects = kiln::gpu::serializeGpuModule(executable, "bin", (*tree)->path);
    if (!objects)
      return objects.takeError();
    if (objects->size() != archs.size())
      return makeError("expected one code object per arch");
    std::vector<kiln::artifact::Entry> entries = kiln::gpu::kernelEntries(executable);
    std::vector<kiln::artifact::Executable> exes;
    for (size_t i = 0; i < archs.size(); ++i) {
      kiln::artifact::Executable exe;
      exe.target = "hip";
      exe.format = "hsaco-" + archs[i];
      exe.image.assign((*objects)[i].bytes.begin(), (*objects)[i].bytes.end());
      exe.entries = entries;
      exes.push_back(std::move(exe));
    }
    return exes;
  }
};

} // namespace

void registerHipTarget() { kiln::registerTargetBackend(std::make_unique<HipTarget>()); }

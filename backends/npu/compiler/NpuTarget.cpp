//===- NpuTarget.cpp - Kiln kernels as programs for the simulated NPU -----===//
//
// Every kernel (a func.func over memrefs holding linalg ops, one workgroup)
// becomes one npu Program (backends/npu/isa/Isa.h). The lowering is a C++
// walk over the kernel, not an MLIR conversion: the ISA is tile-level, so
// what matters is choosing tiles, placing them in SBUF/PSUM and ordering the
// engines, none of which MLIR's dialects model.
//
// How a kernel lowers:
//  - Every op that writes a binding (HBM) is a *sink*. A sink's iteration
//    space is cut into tiles of up to 128 partitions x a free box; for each
//    tile its value is computed on chip and DMAed back.
//  - Operands read from bindings are DMAed in with strided access patterns
//    built from the (linear) indexing maps, so transposes, broadcasts,
//    windows (pooling, convolution) need no data movement of their own.
//  - Temporaries (memref.alloca) are never materialized whole: their
//    producer is re-evaluated on the consumer's tile (fusion), which needs
//    identity maps between the two.
//  - Contractions (mul/add bodies) run on the Tensor Engine: the
//    contraction dim on partitions, the stationary an A^T tile [K, M<=128],
//    the moving a B tile [K, N<=512], accumulated over K in one PSUM bank.
//    f32 operands are rounded to bf16 on GpSimd unless --npu-autocast=none.
//    A kernel that is one plain large matmul instead takes the hand-tuned
//    schedule of backends/npu/gemm (lowerPlainMatmul).
//  - Elementwise bodies become Vector (tensor_tensor / tensor_scalar) and
//    Scalar (activation) instructions; x*s+b followed by a function folds
//    into one activation, which is also how PSUM is evacuated.
//  - Reductions reduce the innermost free dims with tensor_reduce, or with
//    activation's accumulate when a function or affine precedes them.
//  - Engines hand data over through one semaphore per stream: a consumer
//    waits for the count its producer's stream reached. SBUF and PSUM are
//    handed out round robin, so consecutive tiles land in different places
//    and DMA of one tile overlaps compute of the previous (multi-buffering
//    without a separate schedule); a region is reused only after its last
//    readers are done.
//
// Where it lives: KernelLowering.h declares the lowering of one kernel,
// split by concern into Analysis.cpp (buffers, versions, sinks), Tiles.cpp
// (access patterns, operand DMAs, padding), Allocation.cpp and Allocator.h
// (SBUF/PSUM), Emitter.{h,cpp} (instructions and semaphores),
// Elementwise.cpp, Reduction.cpp, Contraction.cpp (with the GEMM schedule)
// and KernelLowering.cpp (sinks and their tiling). This file holds the
// options and the TargetBackend.
//
//===----------------------------------------------------------------------===//
#include "KernelLowering.h"

#include "kiln/Target/TargetBackend.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/PassRegistry.h"

#include "llvm/Support/CommandLine.h"

using namespace mlir;
namespace npu = kiln::npu;
using npu::DType;
using npu::lowering::KernelLowering;
using npu::lowering::lowerPlainMatmul;

namespace {

enum class Autocast { Matmul, None };
llvm::cl::opt<Autocast> autocast(
    "npu-autocast",
    llvm::cl::desc("npu: run f32 matmuls in bf16 (f32 accumulation in PSUM)"),
    llvm::cl::values(clEnumValN(Autocast::Matmul, "matmul",
                                "bf16 operands for f32 matmuls (default)"),
                     clEnumValN(Autocast::None, "none",
                                "keep f32 operands (quarter rate)")),
    llvm::cl::init(Autocast::Matmul), llvm::cl::cat(kiln::targetOptionCategory()));
llvm::cl::opt<bool> gemmSchedule(
    "npu-gemm-schedule",
    llvm::cl::desc("npu: lower kernels that are one plain large matmul with "
                   "the hand-tuned GEMM schedule (backends/npu/gemm)"),
    llvm::cl::init(true), llvm::cl::cat(kiln::targetOptionCategory()));

llvm::Expected<npu::Module> lowerExecutable(ModuleOp executable) {
  npu::Module m;
  DType mmType = autocast == Autocast::Matmul ? DType::BF16 : DType::F32;
  for (auto fn : executable.getOps<func::FuncOp>()) {
    if (fn.isExternal())
      continue;
    if (gemmSchedule)
      if (auto p = lowerPlainMatmul(fn, npu::defaultMachineModel(), mmType)) {
        m.kernels.push_back(std::move(*p));
        continue;
      }
    // Padding rewrites the kernel's body: work on a copy.
    OwningOpRef<func::FuncOp> copy(fn.clone());
    std::vector<npu::PaddedOperand> padded = npu::exposePaddedReads(*copy);
    KernelLowering l(*copy, npu::defaultMachineModel(), mmType, std::move(padded));
    auto p = l.run();
    if (!p)
      return p.takeError();
    m.kernels.push_back(std::move(*p));
  }
  return m;
}

class NpuTarget : public kiln::TargetBackend {
public:
  llvm::StringRef name() const override { return "npu"; }
  llvm::StringRef description() const override {
    return "simulated NeuronCore (backends/npu): one npu-isa-v1 program per kernel";
  }
  // A padding kernel with padding only past the end (SAME_UPPER) DMAs the
  // input's part and leaves the rest to the zero-filled buffer.
  bool writesWholeResults() const override { return false; }
  std::vector<kiln::EmitStage> emitStages() const override {
    return {{"npu-asm", "npu: the kernels' programs in text form"}};
  }
  kiln::KernelOptions kernelOptions(const kiln::TargetOptions &) const override {
    // A program spreads a dispatch over partitions and engines itself: one
    // workgroup holding the whole iteration space.
    kiln::KernelOptions k;
    k.maxWorkgroups = 1;
    k.minTileElements = INT64_MAX / 4;
    return k;
  }
  void buildCodegenPipeline(OpPassManager &pm, const kiln::TargetOptions &) const override {
    // The lowering reads linalg.generic only.
    if (failed(parsePassPipeline("func.func(linalg-generalize-named-ops)", pm,
                                 llvm::errs())))
      llvm::report_fatal_error("kiln: invalid npu codegen pipeline");
  }
  llvm::Expected<std::string> emitText(ModuleOp executable, llvm::StringRef stage,
                                       const kiln::TargetOptions &) const override {
    if (stage != "asm" && stage != "npu-asm")
      return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                     "--emit=llvm is not available for npu; use "
                                     "--emit=npu-asm (or --emit=asm)");
    auto m = lowerExecutable(executable);
    if (!m)
      return m.takeError();
    return npu::printModule(*m);
  }
  llvm::Expected<std::vector<kiln::artifact::Executable>>
  serialize(ModuleOp executable, const kiln::TargetOptions &,
            const kiln::KernelGrids &) const override {
    auto m = lowerExecutable(executable);
    if (!m)
      return m.takeError();
    kiln::artifact::Executable exe;
    exe.target = "npu";
    exe.format = npu::kBinaryFormat;
    exe.image = npu::encodeModule(*m);
    for (const npu::Program &p : m->kernels) {
      kiln::artifact::Entry entry;
      entry.name = p.name;
      exe.entries.push_back(std::move(entry));
    }
    std::vector<kiln::artifact::Executable> exes;
    exes.push_back(std::move(exe));
    return exes;
  }
};

} // namespace

void registerNpuTarget() {
  kiln::registerTargetBackend(std::make_unique<NpuTarget>());
}

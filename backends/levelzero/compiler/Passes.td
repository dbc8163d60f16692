//===- Passes.td - the levelzero backend's passes ----------*- tablegen -*-===//
//
// Passes of the levelzero codegen pipeline and of levelzero-cpu, its testing
// target (LevelZeroTarget and LevelZeroCpuTarget run them by name).
//
//===----------------------------------------------------------------------===//
#ifndef KILN_LEVELZERO_PASSES
#define KILN_LEVELZERO_PASSES

include "mlir/Pass/PassBase.td"

def LevelZeroPrepareSpirv : Pass<"kiln-spirv-prepare", "mlir::gpu::GPUModuleOp"> {
  let summary = "Give GPU kernels entry-point ABIs, OpenCL storage classes and the target env";
  let description = [{
    Readies kernels for MLIR's SPIR-V lowering, which takes the workgroup
    size from an entry-point ABI attribute and whose OpenCL memory-space map
    knows no gpu.address_space: buffers become CrossWorkgroup, a thread's
    temporaries Function storage. Loop results move to private memory (MLIR's
    SCF to SPIR-V conversion leaves them undefined for loops that run zero
    times), and element types SPIR-V cannot hold are refused.
  }];
  let dependentDialects = ["mlir::spirv::SPIRVDialect"];
}

def LevelZeroSpirvToHost : Pass<"kiln-spirv-to-host", "mlir::ModuleOp"> {
  let summary = "Lower levelzero's spirv.module to LLVM and wrap its kernels in the cpu ABI";
  let description = [{
    levelzero-cpu (docs/design.md, "Checking GPU kernels without a GPU"):
    the executable's spirv.module becomes LLVM-dialect functions through
    MLIR's SPIR-V to LLVM conversion, with builtins, workgroup memory and
    barriers turned into kernel arguments, and one wrapper per SPIR-V kernel
    runs a workgroup's invocations in the cpu driver's ABI.
  }];
  let dependentDialects = ["mlir::LLVM::LLVMDialect"];
}

#endif // KILN_LEVELZERO_PASSES

//===- Passes.td - the cpu backend's passes ----------------*- tablegen -*-===//
//
// Passes of the host CPU codegen pipeline (CpuTarget::buildCodegenPipeline
// runs them by name). Registered with the backend by registerCpuTarget.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_CPU_PASSES
#define KILN_CPU_PASSES

include "mlir/Pass/PassBase.td"

def CpuVectorizeContractions
    : Pass<"kiln-cpu-vectorize-contractions", "mlir::func::FuncOp"> {
  let summary = "Compute contractions in register tiles of vector accumulators";
  let description = [{
    Every contraction the register-tile matcher accepts becomes loops over
    Mr x (NV * VL) tiles whose accumulators are vectors carried through the
    reduction loops in registers; the kernel's elementwise epilogue runs on
    the accumulators before the only store.
  }];
  let options = [
    Option<"vectorBits", "vector-bits", "int64_t", "256", "Vector register width">,
    Option<"rows", "rows", "int64_t", "6", "Rows (Mr) of a register tile">,
    Option<"vectors", "vectors", "int64_t", "2",
           "Vectors per row (Nr / VL) of a register tile">,
  ];
  let dependentDialects = ["mlir::affine::AffineDialect", "mlir::arith::ArithDialect",
                           "mlir::memref::MemRefDialect", "mlir::scf::SCFDialect",
                           "mlir::vector::VectorDialect"];
}

def CpuReassociateReductions
    : Pass<"kiln-cpu-reassociate-reductions", "mlir::func::FuncOp"> {
  let summary = "Mark the combining op of float reductions reassoc so loops vectorize";
  let description = [{
    In a linalg op with reduction loops, the float op that folds an element
    into the accumulator is marked `reassoc`, so LLVM's loop vectorizer may
    split the reduction into vector lanes.
  }];
}

def CpuGuardPaddedReads : Pass<"kiln-cpu-guard-padded-reads", "mlir::func::FuncOp"> {
  let summary = "Turn bounds-checked clamped loads into conditional loads LLVM can vectorize";
  let description = [{
    `select(inBounds(s), B[clamp(s)], pad)` where the condition checks an
    index against both ends of its dim becomes a load of `B[s]` under an
    `scf.if` of the condition, which LLVM if-converts into masked vector
    loads of consecutive elements. With `vector-bits`, a row of 64 or fewer
    such elements (which LLVM would unroll fully and copy element by
    element) becomes vector-width steps of one masked load and one masked
    store.
  }];
  let options = [
    Option<"vectorBits", "vector-bits", "int64_t", "0",
           "Vector register width for padding rows (0: none)">,
  ];
  let dependentDialects = ["mlir::scf::SCFDialect", "mlir::vector::VectorDialect"];
}

def CpuApproximateMath : Pass<"kiln-cpu-approximate-math", "mlir::func::FuncOp"> {
  let summary = "Replace exp/tanh/erf/log by vectorizable polynomial approximations";
  let description = [{
    math.exp, expm1, tanh, erf, log, log1p and log2 become upstream's
    polynomial approximations (arith ops and FMAs) that LLVM vectorizes;
    powf by a small integer or one half becomes multiplications or a sqrt.
  }];
  let dependentDialects = ["mlir::arith::ArithDialect", "mlir::math::MathDialect",
                           "mlir::vector::VectorDialect"];
}

def CpuLowerAbi : Pass<"kiln-cpu-lower-abi", "mlir::ModuleOp"> {
  let summary = "Give cpu kernels the (bindings, wg_x, wg_y, wg_z) ABI";
  let description = [{
    Buffers come as an array of base pointers, the workgroup id as three
    integers; the kernel's body moves to an internal, always-inlined
    `<name>.body` whose buffer arguments are `llvm.noalias`. Workgroup ids
    outside the grid the kernel was compiled for (`kiln.workgroups`) return
    at once, so that a damaged artifact's grid cannot index past a buffer.
  }];
  let dependentDialects = ["mlir::LLVM::LLVMDialect", "mlir::arith::ArithDialect",
                           "mlir::scf::SCFDialect"];
}

#endif // KILN_CPU_PASSES

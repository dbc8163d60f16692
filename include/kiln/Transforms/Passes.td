//===- Passes.td - Kiln's target-independent passes --------*- tablegen -*-===//
#ifndef KILN_TRANSFORMS_PASSES
#define KILN_TRANSFORMS_PASSES

include "mlir/Pass/PassBase.td"

def FuseElementwise : Pass<"kiln-fuse-elementwise", "mlir::ModuleOp"> {
  let summary = "Upstream elementwise fusion, keeping transposes out of contractions";
  let description = [{
    `linalg-fuse-elementwise-ops` with one more rule for contractions (ops
    with reduction loops that multiply): only producers that move data or
    cast are fused into them, and not transposes. A fused transpose makes the
    contraction read across its contiguous dimension; a fused Pad or Gather
    reads through computed indices, so no vector micro-kernel can load the
    operand; and a fused computation (a GELU, a softmax) is redone for every
    tile of the other operand. Left alone each is one pass over memory (a
    transpose of a constant folds away), usually an epilogue of the kernel
    before. And one pattern more: an elementwise op (identity maps) reading
    a contraction's result through reshapes no single view expresses (a 1x1
    convolution computed as a matmul over pixels, viewed back as an image)
    runs in the contraction's shape instead, so it becomes its epilogue.
  }];
  let options = [
    Option<"poolsReadPadding", "pools-read-padding", "bool", "false",
           "Keep padding out of pools too, as out of contractions (for targets "
           "that compute it in the pool's kernel, kiln-form-dispatches' fuse-padding)">,
  ];
  let dependentDialects = ["mlir::linalg::LinalgDialect", "mlir::tensor::TensorDialect",
                           "mlir::affine::AffineDialect", "mlir::arith::ArithDialect"];
}

def FormDispatches : Pass<"kiln-form-dispatches", "mlir::ModuleOp"> {
  let summary = "Group linalg ops into dispatches and outline them as kernels";
  let description = [{
    Every linalg op of the host function becomes the root of one dispatch.
    A dispatch also takes the elementwise ops that initialise the root's
    outputs (fills, bias broadcasts) and the chain of elementwise consumers
    that read only the root's result, so they run in the same kernel. Each
    dispatch is outlined into a `func.func` of a nested `builtin.module`
    marked `kiln.executable` and replaced by `kiln.dispatch`. Reshapes and
    constants stay on the host: they cost no kernel. Outputs that would alias
    an input, a constant or another output get a copy kernel, so every output
    owns its buffer.

    ```mlir
    %0 = kiln.dispatch @kernels::@main_dispatch_0(%x, %w)
        : (tensor<4x8xf32>, tensor<8x16xf32>) -> tensor<4x16xf32>
    ```
  }];
  let dependentDialects = ["kiln::KilnDialect", "mlir::func::FuncDialect",
                           "mlir::linalg::LinalgDialect"];
  let options = [
    Option<"fusePadding", "fuse-padding", "bool", "false",
           "Put padding that feeds a depthwise contraction in its kernel">,
  ];
}

def PackConstantOperands : Pass<"kiln-pack-constant-operands", "mlir::func::FuncOp"> {
  let summary = "Store a contraction's constant vector operand as column panels";
  let description = [{
    A register-tiled contraction (kiln/Transforms/RegisterTile.h) streams its
    `rhs` one tile of columns at a time; when `rhs` is a wide constant (a
    MatMul's weights, rows 1 KB or more apart), the constant is rewritten at
    compile time into panels of `panel-width` columns, `[ceil(N/P), ..., P]`,
    zero past the last column, and the contraction reads it through
    `(n floordiv P, ..., n mod P)`. Each column tile then streams contiguous
    memory, with no copy at run time (the cpu's `makePanel` copied such
    columns into a stack panel per workgroup, a pass over the weights each
    run). `panel-width` must be the target's register tile width, which
    also quantizes the workgroup tiles, so no tile straddles a panel.
    0 disables the pass.
  }];
  let options = [
    Option<"panelWidth", "panel-width", "int64_t", "0", "Columns per panel">,
  ];
  let dependentDialects = ["mlir::arith::ArithDialect", "mlir::linalg::LinalgDialect"];
}

def TileWorkgroups : Pass<"kiln-tile-workgroups", "mlir::ModuleOp"> {
  let summary = "Tile each kernel into an scf.forall over workgroups";
  let description = [{
    Runs on an executable module. Tiles the last op of each kernel along its
    outer parallel loops (at most three) with `scf.forall`, fusing the
    kernel's other ops into the loop body, and records the grid on the kernel
    as `kiln.workgroups = [x, y, z]`. Tile sizes aim at `max-workgroups`
    workgroups with at least `min-tile-elements` outputs each, so small ops do
    not drown in scheduling overhead. A contraction that the target computes in
    register tiles (kiln/Transforms/RegisterTile.h) is cut in whole tiles.
  }];
  let options = [
    Option<"maxWorkgroups", "max-workgroups", "int64_t", "64",
           "Upper bound on the number of workgroups of one dispatch">,
    Option<"minTileElements", "min-tile-elements", "int64_t", "4096",
           "Smallest number of output elements one workgroup should compute">,
    Option<"innermostFirst", "innermost-first", "bool", "false",
           "Tile the innermost parallel loops first (for GPU coalescing)">,
    Option<"registerTileRows", "register-tile-rows", "int64_t", "1",
           "Rows of a contraction's register tile: its m loop is cut in multiples">,
    Option<"registerTileCols", "register-tile-cols", "int64_t", "1",
           "Columns of a contraction's register tile: its n loop is cut in multiples">,
  ];
  let dependentDialects = ["mlir::scf::SCFDialect", "mlir::tensor::TensorDialect",
                           "mlir::affine::AffineDialect"];
}

def BufferizeKernels : Pass<"kiln-bufferize-kernels", "mlir::ModuleOp"> {
  let summary = "Give kernels buffer arguments and bufferize their bodies";
  let description = [{
    Runs on an executable module. Rewrites each kernel from
    `(tensor inputs) -> tensor results` to `(memref inputs, memref outputs)`
    with no results, then bufferizes in place so each workgroup writes its
    tile straight into the output buffer (empty tensors are replaced by the
    output, no temporaries or copies for the usual cases).
  }];
  let dependentDialects = ["mlir::bufferization::BufferizationDialect",
                           "mlir::memref::MemRefDialect"];
}

def MapWorkgroups : Pass<"kiln-map-workgroups", "mlir::func::FuncOp"> {
  let summary = "Replace the workgroup scf.forall by gpu.block_id";
  let description = [{
    After bufferization, the kernel body's single top-level `scf.forall` is
    inlined: induction variable i becomes `lb_i + gpu.block_id(i) * step_i`.
    Every target then maps `gpu.block_id` to its own notion of workgroup
    (a thread-pool task on cpu, a block on GPUs).
  }];
  let dependentDialects = ["mlir::gpu::GPUDialect", "mlir::arith::ArithDialect"];
}

def ExpandSmallFloats : Pass<"kiln-expand-small-floats", "mlir::func::FuncOp"> {
  let summary = "Expand extf/truncf of 8- and 4-bit floats into integer code";
  let description = [{
    LLVM has no f8 or f4 arithmetic; its type converter stores them as i8/i4.
    This rewrites `arith.extf` from f8E4M3FN, f8E4M3FNUZ, f8E5M2, f8E5M2FNUZ,
    f8E8M0FNU and f4E2M1FN and `arith.truncf` to all but f8E8M0FNU into
    integer bit manipulation, generic over each format's exponent and
    mantissa width, bias and special values. truncf rounds to nearest even;
    overflow gives infinity where the format has one, else NaN, except for
    f4E2M1FN (no NaN or infinity), which saturates and maps NaN to zero of
    the opposite sign, as ONNX's reference (ml_dtypes) does. Saturating
    casts clamp before truncf.
  }];
  let dependentDialects = ["mlir::arith::ArithDialect"];
}

def GpuStageContractions : Pass<"kiln-gpu-stage-contractions", "mlir::func::FuncOp"> {
  let summary = "Stage a kernel's contraction operands in workgroup memory, T x T output tiles per block";
  let description = [{
    Runs on bufferized GPU kernels before they become loops. A contraction
    computing one output element per Kiln workgroup (one reduction loop, two
    inputs readable by every thread) becomes a cooperative kernel: a block
    of T x T threads (T = 16, or 8 for small grids) covers a tile of rows
    and columns; per K chunk each thread copies one element of A and one of
    B into workgroup memory, the block synchronizes with gpu.barrier and
    every thread accumulates its element from workgroup memory. The kernel
    is marked `kiln.gpu_cooperative` for kiln-gpu-distribute.
  }];
  let options = [
    Option<"minK", "min-k", "int64_t", "8", "Smallest reduced extent worth staging">,
  ];
  let dependentDialects = ["mlir::gpu::GPUDialect", "mlir::scf::SCFDialect",
                           "mlir::affine::AffineDialect", "mlir::memref::MemRefDialect"];
}

def GpuTreeReductions : Pass<"kiln-gpu-tree-reductions", "mlir::func::FuncOp"> {
  let summary = "Reduce across the threads of a block: strided partials, then a tree in workgroup memory";
  let description = [{
    Runs on bufferized GPU kernels before they become loops. A reduction
    with one output element per Kiln workgroup over K >= min-k elements
    (an associative combining op, inputs readable by every thread) gets L
    lanes per workgroup (a power of two <= min(K, max-lanes)): strided
    partial reductions, then log2(L) halving steps in workgroup memory
    separated by gpu.barrier; the first lane writes the result. The kernel
    is marked `kiln.gpu_cooperative` for kiln-gpu-distribute.
  }];
  let options = [
    Option<"minK", "min-k", "int64_t", "32", "Smallest reduced extent worth a tree">,
    Option<"maxLanes", "max-lanes", "int64_t", "256", "Most threads per reduction">,
  ];
  let dependentDialects = ["mlir::gpu::GPUDialect", "mlir::scf::SCFDialect",
                           "mlir::affine::AffineDialect", "mlir::memref::MemRefDialect"];
}

def GpuDistribute : Pass<"kiln-gpu-distribute", "mlir::ModuleOp"> {
  let summary = "Map each kernel's workgroup grid onto GPU threads; outline into a gpu.module";
  let description = [{
    Runs on an executable module after the shared kernel pipeline (kernels
    over `gpu.block_id`, tiled finely for GPUs). A GPU thread runs one Kiln
    workgroup: the grid `kiln.workgroups = [x, y, z]` is linearized with z
    fastest (innermost tiles on neighbouring threads, so loads coalesce),
    packed into blocks of `kiln.block` threads, and the body is guarded for
    the last, partial block. On large grids whose fastest dimension divides
    by `vector-width`, a thread runs that many consecutive workgroups, so
    its global accesses are adjacent and LLVM's load-store vectorizer turns
    them into 16-byte loads and stores (buffers are 16-byte aligned:
    bindings start at offset 0 of device allocations). Per-workgroup temporaries move to private
    memory. Kernels become `gpu.func` kernels of one `gpu.module
    @kiln_kernels`; the executable module records each kernel's block size
    and launch grid as `kiln.gpu_launches = {name = [block, launch]}`. Every GPU vendor shares this; only the lowering of
    the gpu.module differs.
  }];
  let options = [
    Option<"blockSize", "block-size", "int64_t", "128",
           "Threads per block when the grid is large enough">,
    Option<"vectorWidth", "vector-width", "int64_t", "4",
           "Consecutive workgroups per thread along the fastest grid dimension (1: one)">,
    Option<"minVectorThreads", "min-vector-threads", "int64_t", "1024",
           "Fewest threads a grid must keep to run several workgroups per thread">,
  ];
  let dependentDialects = ["mlir::gpu::GPUDialect", "mlir::scf::SCFDialect",
                           "mlir::arith::ArithDialect", "mlir::memref::MemRefDialect"];
}

#endif // KILN_TRANSFORMS_PASSES

//===- KilnOps.td - Kiln dialect ---------------------------*- tablegen -*-===//
//
// Kiln keeps to upstream dialects wherever one fits; this dialect holds only
// what they lack: the host-side launch of a compiled kernel.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_DIALECT_KILN_IR_KILNOPS
#define KILN_DIALECT_KILN_IR_KILNOPS

include "mlir/IR/OpBase.td"
include "mlir/IR/SymbolInterfaces.td"
include "mlir/Interfaces/SideEffectInterfaces.td"

def Kiln_Dialect : Dialect {
  let name = "kiln";
  let cppNamespace = "::kiln";
  let summary = "Kiln's host-side glue between dispatch kernels";
  let description = [{
    The model's host function is a sequence of `kiln.dispatch` launches and
    metadata-only tensor ops (reshapes, constants). Kernels are `func.func`s
    in a nested `builtin.module` marked `kiln.executable`; every one of them
    runs over a grid of workgroups on every target.
  }];
}

class Kiln_Op<string mnemonic, list<Trait> traits = []>
    : Op<Kiln_Dialect, mnemonic, traits>;

def Kiln_DispatchOp : Kiln_Op<"dispatch", [
    Pure, DeclareOpInterfaceMethods<SymbolUserOpInterface>]> {
  let summary = "launch a kernel over a grid of workgroups";
  let description = [{
    Calls `kernel`, a function of the nested executable module, with the
    operands as its read-only inputs; each result is a fresh tensor the kernel
    writes. The kernel's workgroup grid is fixed when it is tiled
    (`kiln-tile-workgroups`) and recorded on the kernel.

    Example:

    ```mlir
    %0 = kiln.dispatch @kernels::@main_dispatch_0(%a, %b)
        : (tensor<4x8xf32>, tensor<8xf32>) -> tensor<4x8xf32>
    ```
  }];
  let arguments = (ins SymbolRefAttr:$kernel, Variadic<AnyRankedTensor>:$inputs);
  let results = (outs Variadic<AnyRankedTensor>:$results);
  let assemblyFormat = [{
    $kernel `(` $inputs `)` attr-dict `:` functional-type($inputs, $results)
  }];
}

#endif // KILN_DIALECT_KILN_IR_KILNOPS

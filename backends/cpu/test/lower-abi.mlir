// RUN: kiln-opt %s --kiln-cpu-lower-abi | FileCheck %s

// cpu kernels take (bindings, wg_x, wg_y, wg_z): the body moves to an
// internal, always-inlined function whose buffers are noalias and whose
// workgroup ids are arguments; the ABI function loads each buffer from the
// bindings array, wraps it in a static descriptor and calls the body.
// CHECK-LABEL: func.func @k.body(
// CHECK-SAME: %{{.+}}: memref<8xf32> {llvm.noalias}, %[[OUT:.+]]: memref<8xf32> {llvm.noalias}, %[[X:.+]]: index, %{{.+}}: index, %{{.+}}: index)
// CHECK-SAME: llvm.linkage = #llvm.linkage<internal>
// CHECK-SAME: passthrough = ["alwaysinline"]
// CHECK-NOT: gpu.block_id
// CHECK: memref.load %{{.+}}[%[[X]]]
// CHECK-LABEL: func.func @k(
// CHECK-SAME: %[[B:.+]]: !llvm.ptr, %[[WX:.+]]: index, %[[WY:.+]]: index, %[[WZ:.+]]: index)
// CHECK-SAME: kiln.workgroups = array<i64: 8, 1, 1>
// A grid past the compiled one (a damaged artifact) does nothing.
// CHECK: %[[C8:.+]] = arith.constant 8 : index
// CHECK: %[[INX:.+]] = arith.cmpi ult, %[[WX]], %[[C8]] : index
// CHECK: %[[INY:.+]] = arith.cmpi ult, %[[WY]], %{{.+}} : index
// CHECK: %[[XY:.+]] = arith.andi %[[INX]], %[[INY]] : i1
// CHECK: %[[INZ:.+]] = arith.cmpi ult, %[[WZ]], %{{.+}} : index
// CHECK: %[[ALL:.+]] = arith.andi %[[XY]], %[[INZ]] : i1
// CHECK: scf.if %[[ALL]] {
// CHECK: %[[SLOT1:.+]] = llvm.getelementptr %[[B]][1] : (!llvm.ptr) -> !llvm.ptr, !llvm.ptr
// CHECK: llvm.load %[[SLOT1]] : !llvm.ptr -> !llvm.ptr
// CHECK: %[[M1:.+]] = builtin.unrealized_conversion_cast %{{.+}} : !llvm.struct<(ptr, ptr, i64, array<1 x i64>, array<1 x i64>)> to memref<8xf32>
// CHECK: call @k.body(%{{.+}}, %[[M1]], %[[WX]], %[[WY]], %[[WZ]])
// CHECK-NEXT: }
// CHECK-NEXT: return
// What each binding reaches, in bytes, for the driver to hold against the
// artifact; i1 and i4 elements take a byte each, as buffers hold them.
// CHECK: llvm.mlir.global external constant @kiln_extents_k(dense<[2, 32, 32]> : tensor<3xi64>)
// CHECK-LABEL: func.func @small(
// CHECK: llvm.mlir.global external constant @kiln_extents_small(dense<[3, 6, 12, 0]> : tensor<4xi64>)
// The image says that its kernels describe themselves.
// CHECK: llvm.mlir.global external constant @kiln_kernel_extents(2 : i32)
func.func @k(%in: memref<8xf32>, %out: memref<8xf32>) attributes {kiln.workgroups = array<i64: 8, 1, 1>} {
  %i = gpu.block_id x
  %v = memref.load %in[%i] : memref<8xf32>
  memref.store %v, %out[%i] : memref<8xf32>
  return
}

func.func @small(%a: memref<2x3xi1>, %b: memref<12xi4>, %c: memref<0xf32>) {
  return
}

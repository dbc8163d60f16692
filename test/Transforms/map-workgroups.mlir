// RUN: kiln-opt %s --pass-pipeline='builtin.module(func.func(kiln-map-workgroups))' | FileCheck %s

// The workgroup loop disappears: each induction variable is
// lb + block_id * step.
// CHECK-LABEL: func.func @k
// CHECK-NOT: scf.forall
// CHECK: %[[BX:.+]] = gpu.block_id x
// CHECK: arith.muli %[[BX]], %{{.+}} : index
// CHECK: %[[BY:.+]] = gpu.block_id y
// CHECK: arith.muli %[[BY]], %{{.+}} : index
// CHECK: memref.subview %{{.+}}[%{{.+}}, %{{.+}}] [4, 8] [1, 1]
func.func @k(%m: memref<16x32xf32>) {
  %c = arith.constant 0.0 : f32
  scf.forall (%i, %j) = (0, 0) to (16, 32) step (4, 8) {
    %s = memref.subview %m[%i, %j] [4, 8] [1, 1] : memref<16x32xf32> to memref<4x8xf32, strided<[32, 1], offset: ?>>
    linalg.fill ins(%c : f32) outs(%s : memref<4x8xf32, strided<[32, 1], offset: ?>>)
  }
  return
}

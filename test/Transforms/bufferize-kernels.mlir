// RUN: kiln-opt %s --pass-pipeline='builtin.module(builtin.module(kiln-bufferize-kernels))' | FileCheck %s

#id = affine_map<(d0) -> (d0)>
// Inputs become read-only buffers, the result an out-parameter written in
// place: no allocation, no copy.
// CHECK-LABEL: func.func @k
// CHECK-SAME: (%[[IN:.+]]: memref<16xf32>, %[[OUT:.+]]: memref<16xf32>)
// CHECK-NOT: memref.alloc
// CHECK-NOT: copy
// CHECK: linalg.generic {{.+}} ins(%[[IN]] : memref<16xf32>) outs(%[[OUT]] : memref<16xf32>)
// CHECK: return
module {
  module @kernels attributes {kiln.executable} {
    func.func @k(%a: tensor<16xf32>) -> tensor<16xf32> {
      %e = tensor.empty() : tensor<16xf32>
      %r = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel"]}
          ins(%a : tensor<16xf32>) outs(%e : tensor<16xf32>) {
        ^bb0(%x: f32, %o: f32):
          %n = arith.negf %x : f32
          linalg.yield %n : f32
      } -> tensor<16xf32>
      return %r : tensor<16xf32>
    }
  }
}

// RUN: kiln-opt %s --pass-pipeline='builtin.module(builtin.module(kiln-tile-workgroups{max-workgroups=8 min-tile-elements=1}))' | FileCheck %s

#id = affine_map<(d0, d1) -> (d0, d1)>
// A 64x32 elementwise kernel asked for 8 workgroups gets 8 row blocks of 8;
// the fill producer is fused into the loop body.
// CHECK-LABEL: func.func @k
// CHECK-SAME: kiln.workgroups = array<i64: 8, 1, 1>
// CHECK: scf.forall (%[[I:.+]]) = (0) to (64) step (8) shared_outs
// CHECK: linalg.fill
// CHECK: linalg.generic
// CHECK: tensor.parallel_insert_slice
module {
  module @kernels attributes {kiln.executable} {
    func.func @k(%a: tensor<64x32xf32>) -> tensor<64x32xf32> {
      %c = arith.constant 1.0 : f32
      %e = tensor.empty() : tensor<64x32xf32>
      %f = linalg.fill ins(%c : f32) outs(%e : tensor<64x32xf32>) -> tensor<64x32xf32>
      %r = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel"]}
          ins(%a : tensor<64x32xf32>) outs(%f : tensor<64x32xf32>) {
        ^bb0(%x: f32, %o: f32):
          %s = arith.addf %x, %o : f32
          linalg.yield %s : f32
      } -> tensor<64x32xf32>
      return %r : tensor<64x32xf32>
    }

    // Too little work for more than one workgroup: no loop, grid 1x1x1.
    // CHECK-LABEL: func.func @small
    // CHECK-SAME: kiln.workgroups = array<i64: 1, 1, 1>
    // CHECK-NOT: scf.forall
    func.func @small(%a: tensor<1x1xf32>) -> tensor<1x1xf32> {
      %e = tensor.empty() : tensor<1x1xf32>
      %r = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel"]}
          ins(%a : tensor<1x1xf32>) outs(%e : tensor<1x1xf32>) {
        ^bb0(%x: f32, %o: f32):
          linalg.yield %x : f32
      } -> tensor<1x1xf32>
      return %r : tensor<1x1xf32>
    }
  }
}

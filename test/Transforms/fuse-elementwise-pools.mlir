// RUN: kiln-opt %s --kiln-fuse-elementwise | FileCheck %s
// RUN: kiln-opt %s --kiln-fuse-elementwise="pools-read-padding=true" | FileCheck %s --check-prefix=KEEP

// A pool fuses its padding (reads through clamped indices, bounds-checked)
// unless the targets pad in the pool's kernel: then, as for contractions,
// the padding stays an op of its own and the pool reads it through a plain
// strided view.
// CHECK-LABEL: func.func @maxpool
// CHECK: linalg.generic
// CHECK-SAME: iterator_types = ["parallel", "reduction", "parallel"]
// CHECK: tensor.extract
// CHECK: arith.maximumf
// CHECK-NOT: linalg.generic
// KEEP-LABEL: func.func @maxpool
// KEEP: %[[P:.+]] = linalg.generic
// KEEP: tensor.extract
// KEEP: linalg.generic {{.+}} iterator_types = ["parallel", "reduction", "parallel"]} ins(%[[P]], %{{.+}} :
// KEEP-NOT: tensor.extract
// KEEP: arith.maximumf
func.func @maxpool(%x: tensor<4x6xf32>) -> tensor<4x3xf32> {
  %lowest = arith.constant 0xFF800000 : f32
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c5 = arith.constant 5 : index
  %c6 = arith.constant 6 : index
  %pad = tensor.empty() : tensor<4x8xf32>
  %xp = linalg.generic {indexing_maps = [affine_map<(c, j) -> (c, j)>], iterator_types = ["parallel", "parallel"]}
      outs(%pad : tensor<4x8xf32>) {
    ^bb0(%o: f32):
      %c = linalg.index 0 : index
      %j = linalg.index 1 : index
      %s = arith.subi %j, %c1 : index
      %lo = arith.cmpi sge, %s, %c0 : index
      %hi = arith.cmpi slt, %s, %c6 : index
      %in = arith.andi %lo, %hi : i1
      %m = arith.maxsi %s, %c0 : index
      %cl = arith.minsi %m, %c5 : index
      %v = tensor.extract %x[%c, %cl] : tensor<4x6xf32>
      %r = arith.select %in, %v, %lowest : f32
      linalg.yield %r : f32
  } -> tensor<4x8xf32>
  %window = tensor.empty() : tensor<3xf32>
  %e = tensor.empty() : tensor<4x3xf32>
  %init = linalg.fill ins(%lowest : f32) outs(%e : tensor<4x3xf32>) -> tensor<4x3xf32>
  %y = linalg.generic {indexing_maps = [affine_map<(c, k, o) -> (c, o * 2 + k)>, affine_map<(c, k, o) -> (k)>,
                                        affine_map<(c, k, o) -> (c, o)>],
                       iterator_types = ["parallel", "reduction", "parallel"]}
      ins(%xp, %window : tensor<4x8xf32>, tensor<3xf32>) outs(%init : tensor<4x3xf32>) {
    ^bb0(%a: f32, %w: f32, %acc: f32):
      %r = arith.maximumf %acc, %a : f32
      linalg.yield %r : f32
  } -> tensor<4x3xf32>
  return %y : tensor<4x3xf32>
}

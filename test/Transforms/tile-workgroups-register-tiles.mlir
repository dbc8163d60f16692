// RUN: kiln-opt %s --pass-pipeline='builtin.module(builtin.module(kiln-tile-workgroups{max-workgroups=64 register-tile-rows=8 register-tile-cols=32}))' | FileCheck %s

#a = affine_map<(m, n, k) -> (m, k)>
#b = affine_map<(m, n, k) -> (k, n)>
#c = affine_map<(m, n, k) -> (m, n)>
module {
  module @kernels attributes {kiln.executable} {
    // A contraction with register tiles of 8 x 32: 64 workgroups as 8 x 8
    // square blocks of 128 x 128 (whole tiles), not 64 strips of 16 rows
    // that would each read all of B.
    // CHECK-LABEL: func.func @square
    // CHECK-SAME: kiln.workgroups = array<i64: 8, 8, 1>
    // CHECK: scf.forall (%{{.+}}, %{{.+}}) = (0, 0) to (1024, 1024) step (128, 128)
    func.func @square(%x: tensor<1024x1024xf32>, %y: tensor<1024x1024xf32>) -> tensor<1024x1024xf32> {
      %z = arith.constant 0.0 : f32
      %e = tensor.empty() : tensor<1024x1024xf32>
      %f = linalg.fill ins(%z : f32) outs(%e : tensor<1024x1024xf32>) -> tensor<1024x1024xf32>
      %r = linalg.generic {indexing_maps = [#a, #b, #c], iterator_types = ["parallel", "parallel", "reduction"]}
          ins(%x, %y : tensor<1024x1024xf32>, tensor<1024x1024xf32>) outs(%f : tensor<1024x1024xf32>) {
        ^bb0(%p: f32, %q: f32, %o: f32):
          %m = arith.mulf %p, %q : f32
          %s = arith.addf %o, %m : f32
          linalg.yield %s : f32
      } -> tensor<1024x1024xf32>
      return %r : tensor<1024x1024xf32>
    }

    // 30000 outputs make 7 workgroups of at least 4096: 3 x 3 blocks whose
    // rows are a multiple of 8 and columns of 32 (the last ones partial).
    // CHECK-LABEL: func.func @ragged
    // CHECK-SAME: kiln.workgroups = array<i64: 3, 3, 1>
    // CHECK: scf.forall (%{{.+}}, %{{.+}}) = (0, 0) to (100, 300) step (40, 128)
    func.func @ragged(%x: tensor<100x64xf32>, %y: tensor<64x300xf32>) -> tensor<100x300xf32> {
      %z = arith.constant 0.0 : f32
      %e = tensor.empty() : tensor<100x300xf32>
      %f = linalg.fill ins(%z : f32) outs(%e : tensor<100x300xf32>) -> tensor<100x300xf32>
      %r = linalg.generic {indexing_maps = [#a, #b, #c], iterator_types = ["parallel", "parallel", "reduction"]}
          ins(%x, %y : tensor<100x64xf32>, tensor<64x300xf32>) outs(%f : tensor<100x300xf32>) {
        ^bb0(%p: f32, %q: f32, %o: f32):
          %m = arith.mulf %p, %q : f32
          %s = arith.addf %o, %m : f32
          linalg.yield %s : f32
      } -> tensor<100x300xf32>
      return %r : tensor<100x300xf32>
    }
    // Few rows, a wide B over 768 steps (BERT's up-projection): blocks keep
    // 64 rows (8 register tiles, which then share a packed B panel), 2 x 32
    // blocks, rather than 8 x 8 blocks of 16 rows that each stream their
    // B strip.
    // CHECK-LABEL: func.func @short_wide
    // CHECK-SAME: kiln.workgroups = array<i64: 2, 32, 1>
    // CHECK: scf.forall (%{{.+}}, %{{.+}}) = (0, 0) to (128, 3072) step (64, 96)
    func.func @short_wide(%x: tensor<128x768xf32>, %y: tensor<768x3072xf32>) -> tensor<128x3072xf32> {
      %z = arith.constant 0.0 : f32
      %e = tensor.empty() : tensor<128x3072xf32>
      %f = linalg.fill ins(%z : f32) outs(%e : tensor<128x3072xf32>) -> tensor<128x3072xf32>
      %r = linalg.generic {indexing_maps = [#a, #b, #c], iterator_types = ["parallel", "parallel", "reduction"]}
          ins(%x, %y : tensor<128x768xf32>, tensor<768x3072xf32>) outs(%f : tensor<128x3072xf32>) {
        ^bb0(%p: f32, %q: f32, %o: f32):
          %m = arith.mulf %p, %q : f32
          %s = arith.addf %o, %m : f32
          linalg.yield %s : f32
      } -> tensor<128x3072xf32>
      return %r : tensor<128x3072xf32>
    }

    // The same shape over 3072 steps (the down-projection's panel would
    // outgrow L2): square-ish in count again, 8 x 8 blocks of 16 rows.
    // CHECK-LABEL: func.func @short_wide_long_reduction
    // CHECK-SAME: kiln.workgroups = array<i64: 8, 8, 1>
    func.func @short_wide_long_reduction(%x: tensor<128x3072xf32>, %y: tensor<3072x3072xf32>) -> tensor<128x3072xf32> {
      %z = arith.constant 0.0 : f32
      %e = tensor.empty() : tensor<128x3072xf32>
      %f = linalg.fill ins(%z : f32) outs(%e : tensor<128x3072xf32>) -> tensor<128x3072xf32>
      %r = linalg.generic {indexing_maps = [#a, #b, #c], iterator_types = ["parallel", "parallel", "reduction"]}
          ins(%x, %y : tensor<128x3072xf32>, tensor<3072x3072xf32>) outs(%f : tensor<128x3072xf32>) {
        ^bb0(%p: f32, %q: f32, %o: f32):
          %m = arith.mulf %p, %q : f32
          %s = arith.addf %o, %m : f32
          linalg.yield %s : f32
      } -> tensor<128x3072xf32>
      return %r : tensor<128x3072xf32>
    }
    // 7840 outputs (one workgroup by their count) over 960 steps: 7.5M
    // multiply-adds, so about seven workgroups share them (3 x 2 blocks).
    // CHECK-LABEL: func.func @few_outputs_long_reduction
    // CHECK-SAME: kiln.workgroups = array<i64: 3, 2, 1>
    // CHECK: scf.forall (%{{.+}}, %{{.+}}) = (0, 0) to (160, 49) step (56, 32)
    func.func @few_outputs_long_reduction(%x: tensor<160x960xf32>, %y: tensor<960x49xf32>) -> tensor<160x49xf32> {
      %z = arith.constant 0.0 : f32
      %e = tensor.empty() : tensor<160x49xf32>
      %f = linalg.fill ins(%z : f32) outs(%e : tensor<160x49xf32>) -> tensor<160x49xf32>
      %r = linalg.generic {indexing_maps = [#a, #b, #c], iterator_types = ["parallel", "parallel", "reduction"]}
          ins(%x, %y : tensor<160x960xf32>, tensor<960x49xf32>) outs(%f : tensor<160x49xf32>) {
        ^bb0(%p: f32, %q: f32, %o: f32):
          %m = arith.mulf %p, %q : f32
          %s = arith.addf %o, %m : f32
          linalg.yield %s : f32
      } -> tensor<160x49xf32>
      return %r : tensor<160x49xf32>
    }
  }
}

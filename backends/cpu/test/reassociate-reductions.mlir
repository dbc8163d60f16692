// RUN: kiln-opt %s --pass-pipeline='builtin.module(func.func(kiln-cpu-reassociate-reductions))' | FileCheck %s

// The op folding into the accumulator becomes reassoc (the loop vectorizer
// may then split the sum into lanes); the body's other ops are untouched.
// CHECK-LABEL: func.func @row_sum_of_squares
// CHECK: %[[SQ:.+]] = arith.mulf %{{.+}}, %{{.+}} : f32
// CHECK: arith.addf %{{.+}}, %[[SQ]] fastmath<reassoc> : f32
func.func @row_sum_of_squares(%x: memref<4x128xf32>, %out: memref<4xf32>) {
  linalg.generic {indexing_maps = [affine_map<(i, k) -> (i, k)>, affine_map<(i, k) -> (i)>],
                  iterator_types = ["parallel", "reduction"]}
      ins(%x : memref<4x128xf32>) outs(%out : memref<4xf32>) {
  ^bb0(%v: f32, %o: f32):
    %sq = arith.mulf %v, %v : f32
    %s = arith.addf %o, %sq : f32
    linalg.yield %s : f32
  }
  return
}

// A row max keeps its NaN semantics (maximumf) and gains reassoc.
// CHECK-LABEL: func.func @row_max
// CHECK: arith.maximumf %{{.+}}, %{{.+}} fastmath<reassoc> : f32
func.func @row_max(%x: memref<4x128xf32>, %out: memref<4xf32>) {
  linalg.generic {indexing_maps = [affine_map<(i, k) -> (i, k)>, affine_map<(i, k) -> (i)>],
                  iterator_types = ["parallel", "reduction"]}
      ins(%x : memref<4x128xf32>) outs(%out : memref<4xf32>) {
  ^bb0(%v: f32, %o: f32):
    %m = arith.maximumf %o, %v : f32
    linalg.yield %m : f32
  }
  return
}

// Elementwise ops have nothing to reassociate.
// CHECK-LABEL: func.func @elementwise
// CHECK-NOT: reassoc
func.func @elementwise(%x: memref<128xf32>, %out: memref<128xf32>) {
  linalg.generic {indexing_maps = [affine_map<(i) -> (i)>, affine_map<(i) -> (i)>],
                  iterator_types = ["parallel"]}
      ins(%x : memref<128xf32>) outs(%out : memref<128xf32>) {
  ^bb0(%v: f32, %o: f32):
    %s = arith.addf %v, %o : f32
    linalg.yield %s : f32
  }
  return
}

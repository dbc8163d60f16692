// RUN: kiln-opt %s --pass-pipeline='builtin.module(func.func(kiln-gpu-tree-reductions),canonicalize)' | FileCheck %s

#in = affine_map<(i, r, s) -> (i, r, s)>
#out = affine_map<(i, r, s) -> (i)>

// A max over 10x10 = 100 elements per workgroup: 64 lanes (the largest
// power of two <= 100). Lane l starts at element l, strides by 64, and the
// partials halve six times in workgroup memory; the total is combined into
// the output after the last barrier.
// CHECK-LABEL: func.func @max
// CHECK-SAME: kiln.gpu_cooperative = array<i64: 1, 1, 1, 64>
// CHECK: %[[SH:.+]] = memref.alloca() : memref<64xf32, #gpu.address_space<workgroup>>
// CHECK: %[[TID:.+]] = gpu.thread_id x
// CHECK: %[[LANE:.+]] = arith.remui %[[TID]], %c64
// CHECK: %[[FIRST:.+]] = memref.load
// CHECK: %[[START:.+]] = arith.addi %[[LANE]], %c64
// CHECK: %[[PART:.+]] = scf.for %{{.+}} = %[[START]] to %c100 step %c64 iter_args(%[[ACC:.+]] = %[[FIRST]])
// CHECK: arith.maximumf %[[ACC]]
// CHECK: memref.store %[[PART]], %[[SH]][%[[LANE]]]
// CHECK: gpu.barrier
// CHECK: arith.cmpi ult, %[[LANE]], %c32
// CHECK: scf.if
// CHECK: arith.maximumf
// CHECK: gpu.barrier
// CHECK-COUNT-5: gpu.barrier
// CHECK: %[[TOTAL:.+]] = memref.load %[[SH]][%c0]
// CHECK: %[[OLD:.+]] = memref.load %{{.+}}[%c0]
// CHECK: %[[NEW:.+]] = arith.maximumf %[[OLD]], %[[TOTAL]]
// CHECK: memref.store %[[NEW]]
// CHECK-NOT: linalg.generic
func.func @max(%x: memref<8x10x10xf32>, %y: memref<8xf32>)
    attributes {kiln.workgroups = array<i64: 8, 1, 1>} {
  %i = gpu.block_id x
  %xa = memref.subview %x[%i, 0, 0] [1, 10, 10] [1, 1, 1] : memref<8x10x10xf32> to memref<1x10x10xf32, strided<[100, 10, 1], offset: ?>>
  %ya = memref.subview %y[%i] [1] [1] : memref<8xf32> to memref<1xf32, strided<[1], offset: ?>>
  linalg.generic {indexing_maps = [#in, #out], iterator_types = ["parallel", "reduction", "reduction"]}
      ins(%xa : memref<1x10x10xf32, strided<[100, 10, 1], offset: ?>>)
      outs(%ya : memref<1xf32, strided<[1], offset: ?>>) {
  ^bb0(%v: f32, %o: f32):
    %m = arith.maximumf %o, %v : f32
    linalg.yield %m : f32
  }
  return
}

// A body that is not acc = combine(acc, x) (here a mean's running update)
// stays serial, and so does a short reduction.
// CHECK-LABEL: func.func @not_associative
// CHECK-NOT: kiln.gpu_cooperative
// CHECK: linalg.generic
func.func @not_associative(%x: memref<8x100xf32>, %y: memref<8xf32>)
    attributes {kiln.workgroups = array<i64: 8, 1, 1>} {
  %half = arith.constant 0.5 : f32
  %i = gpu.block_id x
  %xa = memref.subview %x[%i, 0] [1, 100] [1, 1] : memref<8x100xf32> to memref<1x100xf32, strided<[100, 1], offset: ?>>
  %ya = memref.subview %y[%i] [1] [1] : memref<8xf32> to memref<1xf32, strided<[1], offset: ?>>
  linalg.generic {indexing_maps = [affine_map<(i, r) -> (i, r)>, affine_map<(i, r) -> (i)>], iterator_types = ["parallel", "reduction"]}
      ins(%xa : memref<1x100xf32, strided<[100, 1], offset: ?>>)
      outs(%ya : memref<1xf32, strided<[1], offset: ?>>) {
  ^bb0(%v: f32, %o: f32):
    %s = arith.addf %o, %v : f32
    %m = arith.mulf %s, %half : f32
    linalg.yield %m : f32
  }
  return
}

// CHECK-LABEL: func.func @short
// CHECK-NOT: kiln.gpu_cooperative
// CHECK: linalg.generic
func.func @short(%x: memref<8x16xf32>, %y: memref<8xf32>)
    attributes {kiln.workgroups = array<i64: 8, 1, 1>} {
  %i = gpu.block_id x
  %xa = memref.subview %x[%i, 0] [1, 16] [1, 1] : memref<8x16xf32> to memref<1x16xf32, strided<[16, 1], offset: ?>>
  %ya = memref.subview %y[%i] [1] [1] : memref<8xf32> to memref<1xf32, strided<[1], offset: ?>>
  linalg.generic {indexing_maps = [affine_map<(i, r) -> (i, r)>, affine_map<(i, r) -> (i)>], iterator_types = ["parallel", "reduction"]}
      ins(%xa : memref<1x16xf32, strided<[16, 1], offset: ?>>)
      outs(%ya : memref<1xf32, strided<[1], offset: ?>>) {
  ^bb0(%v: f32, %o: f32):
    %s = arith.addf %o, %v : f32
    linalg.yield %s : f32
  }
  return
}

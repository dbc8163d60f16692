// RUN: kiln-opt %s --pass-pipeline='builtin.module(func.func(kiln-gpu-stage-contractions),canonicalize)' | FileCheck %s

#a = affine_map<(m, k, n) -> (m, k)>
#b = affine_map<(m, k, n) -> (k, n)>
#c = affine_map<(m, k, n) -> (m, n)>

// One output element per workgroup over a 40x24 grid: blocks of 16x16
// threads. K = 20 is one full chunk of 16 and a partial one of 4: loads
// clamp to k < 20 and the multiply-add runs min(16, 20 - k0) times.
// CHECK-LABEL: func.func @matmul
// CHECK-SAME: kiln.gpu_cooperative = array<i64: 16, 16, 1, 1>
// CHECK: %[[SHB:.+]] = memref.alloca() : memref<16x16xf32, #gpu.address_space<workgroup>>
// CHECK: %[[SHA:.+]] = memref.alloca() : memref<16x16xf32, #gpu.address_space<workgroup>>
// CHECK: linalg.fill
// CHECK: %[[TID:.+]] = gpu.thread_id x
// CHECK-DAG: %[[COL:.+]] = arith.remui %[[TID]], %c16
// CHECK-DAG: %[[ROW:.+]] = arith.divui %[[TID]], %c16
// CHECK: %[[INIT:.+]] = memref.load %[[ACC:.+]][%c0, %c0]
// CHECK: %[[SUM:.+]] = scf.for %[[K0:.+]] = %c0 to %c20 step %c16 iter_args(%[[A:.+]] = %[[INIT]])
// CHECK: %[[KA:.+]] = arith.minui %{{.+}}, %c19
// CHECK: %[[KB:.+]] = arith.minui %{{.+}}, %c19
// CHECK: %[[VA:.+]] = memref.load %{{.+}}[%c0, %[[KA]]]
// CHECK: memref.store %[[VA]], %[[SHA]][%[[ROW]], %[[COL]]]
// CHECK: %[[VB:.+]] = memref.load %{{.+}}[%[[KB]], %c0]
// CHECK: memref.store %[[VB]], %[[SHB]][%[[ROW]], %[[COL]]]
// CHECK: gpu.barrier
// CHECK: %[[LEFT:.+]] = arith.subi %c20, %[[K0]]
// CHECK: %[[N:.+]] = arith.minui %[[LEFT]], %c16
// CHECK: scf.for %[[KK:.+]] = %c0 to %[[N]] step %c1
// CHECK: memref.load %[[SHA]][%[[ROW]], %[[KK]]]
// CHECK: memref.load %[[SHB]][%[[KK]], %[[COL]]]
// CHECK: arith.mulf
// CHECK: arith.addf
// CHECK: gpu.barrier
// CHECK: memref.store %[[SUM]], %[[ACC]][%c0, %c0]
// CHECK-NOT: linalg.generic {{.+}}reduction
// CHECK: return
func.func @matmul(%x: memref<40x20xf32>, %w: memref<20x24xf32>, %y: memref<40x24xf32>)
    attributes {kiln.workgroups = array<i64: 40, 24, 1>} {
  %zero = arith.constant 0.0 : f32
  %i = gpu.block_id x
  %j = gpu.block_id y
  %xa = memref.subview %x[%i, 0] [1, 20] [1, 1] : memref<40x20xf32> to memref<1x20xf32, strided<[20, 1], offset: ?>>
  %wb = memref.subview %w[0, %j] [20, 1] [1, 1] : memref<20x24xf32> to memref<20x1xf32, strided<[24, 1], offset: ?>>
  %acc = memref.alloca() : memref<1x1xf32>
  linalg.fill ins(%zero : f32) outs(%acc : memref<1x1xf32>)
  linalg.generic {indexing_maps = [#a, #b, #c], iterator_types = ["parallel", "reduction", "parallel"]}
      ins(%xa, %wb : memref<1x20xf32, strided<[20, 1], offset: ?>>, memref<20x1xf32, strided<[24, 1], offset: ?>>)
      outs(%acc : memref<1x1xf32>) {
  ^bb0(%p: f32, %q: f32, %o: f32):
    %m = arith.mulf %p, %q : f32
    %s = arith.addf %o, %m : f32
    linalg.yield %s : f32
  }
  %out = memref.subview %y[%i, %j] [1, 1] [1, 1] : memref<40x24xf32> to memref<1x1xf32, strided<[24, 1], offset: ?>>
  memref.copy %acc, %out : memref<1x1xf32> to memref<1x1xf32, strided<[24, 1], offset: ?>>
  return
}

// A grid narrower than 8 columns is left alone.
// CHECK-LABEL: func.func @narrow
// CHECK-NOT: kiln.gpu_cooperative
// CHECK: linalg.generic
func.func @narrow(%x: memref<40x20xf32>, %w: memref<20x4xf32>, %y: memref<40x4xf32>)
    attributes {kiln.workgroups = array<i64: 40, 4, 1>} {
  %i = gpu.block_id x
  %j = gpu.block_id y
  %xa = memref.subview %x[%i, 0] [1, 20] [1, 1] : memref<40x20xf32> to memref<1x20xf32, strided<[20, 1], offset: ?>>
  %wb = memref.subview %w[0, %j] [20, 1] [1, 1] : memref<20x4xf32> to memref<20x1xf32, strided<[4, 1], offset: ?>>
  %out = memref.subview %y[%i, %j] [1, 1] [1, 1] : memref<40x4xf32> to memref<1x1xf32, strided<[4, 1], offset: ?>>
  linalg.generic {indexing_maps = [#a, #b, #c], iterator_types = ["parallel", "reduction", "parallel"]}
      ins(%xa, %wb : memref<1x20xf32, strided<[20, 1], offset: ?>>, memref<20x1xf32, strided<[4, 1], offset: ?>>)
      outs(%out : memref<1x1xf32, strided<[4, 1], offset: ?>>) {
  ^bb0(%p: f32, %q: f32, %o: f32):
    %m = arith.mulf %p, %q : f32
    %s = arith.addf %o, %m : f32
    linalg.yield %s : f32
  }
  return
}

// An operand in a thread's private temporary cannot be shared.
// CHECK-LABEL: func.func @private_operand
// CHECK-NOT: kiln.gpu_cooperative
// CHECK: linalg.generic
func.func @private_operand(%w: memref<20x24xf32>, %y: memref<40x24xf32>)
    attributes {kiln.workgroups = array<i64: 40, 24, 1>} {
  %i = gpu.block_id x
  %j = gpu.block_id y
  %xa = memref.alloca() : memref<1x20xf32>
  %wb = memref.subview %w[0, %j] [20, 1] [1, 1] : memref<20x24xf32> to memref<20x1xf32, strided<[24, 1], offset: ?>>
  %out = memref.subview %y[%i, %j] [1, 1] [1, 1] : memref<40x24xf32> to memref<1x1xf32, strided<[24, 1], offset: ?>>
  linalg.generic {indexing_maps = [#a, #b, #c], iterator_types = ["parallel", "reduction", "parallel"]}
      ins(%xa, %wb : memref<1x20xf32>, memref<20x1xf32, strided<[24, 1], offset: ?>>)
      outs(%out : memref<1x1xf32, strided<[24, 1], offset: ?>>) {
  ^bb0(%p: f32, %q: f32, %o: f32):
    %m = arith.mulf %p, %q : f32
    %s = arith.addf %o, %m : f32
    linalg.yield %s : f32
  }
  return
}

// A convolution: two reduction loops (c, kw) linearized into K = 4 * 5 = 20
// (c = k / 5, kw = k % 5). The input view depends on the output column,
// the filter view on the output row (the filter), so both stage.
// CHECK-LABEL: func.func @conv1d
// CHECK-SAME: kiln.gpu_cooperative = array<i64: 16, 16, 1, 1>
// CHECK: scf.for %{{.+}} = %c0 to %c20 step %c16
// CHECK: %[[K:.+]] = arith.minui %{{.+}}, %c19
// CHECK: %[[KW:.+]] = arith.remui %[[K]], %c5
// CHECK: %[[C:.+]] = arith.divui %[[K]], %c5
// CHECK: memref.load %{{.+}}[%[[C]], %[[KW]]]
// CHECK: gpu.barrier
// CHECK: gpu.barrier
func.func @conv1d(%x: memref<4x36xf32>, %w: memref<16x4x5xf32>, %y: memref<16x32xf32>)
    attributes {kiln.workgroups = array<i64: 16, 32, 1>} {
  %f = gpu.block_id x
  %o = gpu.block_id y
  %xa = memref.subview %x[0, %o] [4, 5] [1, 1] : memref<4x36xf32> to memref<4x5xf32, strided<[36, 1], offset: ?>>
  %wa = memref.subview %w[%f, 0, 0] [1, 4, 5] [1, 1, 1] : memref<16x4x5xf32> to memref<1x4x5xf32, strided<[20, 5, 1], offset: ?>>
  %out = memref.subview %y[%f, %o] [1, 1] [1, 1] : memref<16x32xf32> to memref<1x1xf32, strided<[32, 1], offset: ?>>
  linalg.generic {indexing_maps = [affine_map<(f, o, c, k) -> (c, o + k)>, affine_map<(f, o, c, k) -> (f, c, k)>, affine_map<(f, o, c, k) -> (f, o)>],
                  iterator_types = ["parallel", "parallel", "reduction", "reduction"]}
      ins(%xa, %wa : memref<4x5xf32, strided<[36, 1], offset: ?>>, memref<1x4x5xf32, strided<[20, 5, 1], offset: ?>>)
      outs(%out : memref<1x1xf32, strided<[32, 1], offset: ?>>) {
  ^bb0(%p: f32, %q: f32, %acc: f32):
    %m = arith.mulf %p, %q : f32
    %s = arith.addf %acc, %m : f32
    linalg.yield %s : f32
  }
  return
}

// A padded convolution: the input is read inside the body, bounds-checked
// (select(in bounds, load, 0)). That computation depends on the output
// column's id, not the filter's, so it is what each thread evaluates into
// the column-side tile; the filter value goes to the row side.
// CHECK-LABEL: func.func @padded
// CHECK-SAME: kiln.gpu_cooperative = array<i64: 16, 16, 1, 1>
// CHECK: %[[SHB:.+]] = memref.alloca() : memref<16x16xf32, #gpu.address_space<workgroup>>
// CHECK: %[[SHA:.+]] = memref.alloca() : memref<16x16xf32, #gpu.address_space<workgroup>>
// K = 12 is a single chunk (that loop folds away).
// CHECK: %[[W:.+]] = memref.load %{{.+}} : memref<1x4x3xf32
// CHECK: memref.store %[[W]], %[[SHA]]
// CHECK: %[[X:.+]] = memref.load %arg0
// CHECK: %[[S:.+]] = arith.select %{{.+}}, %[[X]], %cst
// CHECK: memref.store %[[S]], %[[SHB]]
// CHECK: gpu.barrier
// CHECK: scf.for
// CHECK: memref.load %[[SHA]]
// CHECK: memref.load %[[SHB]]
// CHECK: arith.mulf
// CHECK: arith.addf
// CHECK: gpu.barrier
func.func @padded(%x: memref<4x32xf32>, %w: memref<16x4x3xf32>, %y: memref<16x32xf32>)
    attributes {kiln.workgroups = array<i64: 16, 32, 1>} {
  %f = gpu.block_id x
  %o = gpu.block_id y
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c31 = arith.constant 31 : index
  %c32 = arith.constant 32 : index
  %zero = arith.constant 0.0 : f32
  %wa = memref.subview %w[%f, 0, 0] [1, 4, 3] [1, 1, 1] : memref<16x4x3xf32> to memref<1x4x3xf32, strided<[12, 3, 1], offset: ?>>
  %out = memref.subview %y[%f, %o] [1, 1] [1, 1] : memref<16x32xf32> to memref<1x1xf32, strided<[32, 1], offset: ?>>
  linalg.generic {indexing_maps = [affine_map<(f, o, c, k) -> (f, c, k)>, affine_map<(f, o, c, k) -> (f, o)>],
                  iterator_types = ["parallel", "parallel", "reduction", "reduction"]}
      ins(%wa : memref<1x4x3xf32, strided<[12, 3, 1], offset: ?>>)
      outs(%out : memref<1x1xf32, strided<[32, 1], offset: ?>>) {
  ^bb0(%q: f32, %acc: f32):
    %c = linalg.index 2 : index
    %k = linalg.index 3 : index
    %p0 = arith.addi %o, %k : index
    %p = arith.subi %p0, %c1 : index
    %ge = arith.cmpi sge, %p, %c0 : index
    %lt = arith.cmpi slt, %p, %c32 : index
    %in = arith.andi %ge, %lt : i1
    %pc = arith.maxsi %p, %c0 : index
    %pcc = arith.minsi %pc, %c31 : index
    %v = memref.load %x[%c, %pcc] : memref<4x32xf32>
    %s = arith.select %in, %v, %zero : f32
    %m = arith.mulf %q, %s : f32
    %r = arith.addf %acc, %m : f32
    linalg.yield %r : f32
  }
  return
}

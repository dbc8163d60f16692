// RUN: kiln-opt %s --pass-pipeline='builtin.module(func.func(kiln-cpu-guard-padded-reads{vector-bits=512},canonicalize,cse))' | FileCheck %s

// A short padded row (30 columns, one of padding each side) after the load
// is guarded: vector-width steps of one masked load (the lanes whose source
// column is in bounds, the rest the pad value) and one store masked to the
// row. The row's own bound (`%r` in range) is a scalar condition of all
// lanes.
// CHECK-LABEL: func.func @short_row
// CHECK-SAME: (%[[X:.+]]: memref<4x28xf32>, %[[OUT:.+]]: memref<30xf32>, %[[R:.+]]: index)
// CHECK: %[[PAD:.+]] = arith.constant dense<0.000000e+00> : vector<16xf32>
// CHECK: scf.for %[[J:.+]] = %c0 to %c30 step %c16
// CHECK:   %[[TAIL:.+]] = vector.create_mask %{{.+}} : vector<16xi1>
// CHECK:   vector.create_mask
// CHECK:   arith.xori
// CHECK:   %[[S:.+]] = arith.subi %[[J]], %c1
// CHECK:   vector.maskedload %[[X]][%{{.+}}, %[[S]]], %{{.+}}, %[[PAD]]
// CHECK:   vector.maskedstore %[[OUT]][%[[J]]], %[[TAIL]]
// CHECK-NOT: memref.store
func.func @short_row(%x: memref<4x28xf32>, %out: memref<30xf32>, %r: index) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c3 = arith.constant 3 : index
  %c4 = arith.constant 4 : index
  %c27 = arith.constant 27 : index
  %c28 = arith.constant 28 : index
  %c30 = arith.constant 30 : index
  %zero = arith.constant 0.0 : f32
  scf.for %j = %c0 to %c30 step %c1 {
    %rge = arith.cmpi sge, %r, %c0 : index
    %rlt = arith.cmpi slt, %r, %c4 : index
    %rok = arith.andi %rge, %rlt : i1
    %rm = arith.maxsi %r, %c0 : index
    %ri = arith.minsi %rm, %c3 : index
    %s = arith.subi %j, %c1 : index
    %ge = arith.cmpi sge, %s, %c0 : index
    %lt = arith.cmpi slt, %s, %c28 : index
    %sok = arith.andi %ge, %lt : i1
    %ok = arith.andi %rok, %sok : i1
    %lo = arith.maxsi %s, %c0 : index
    %i = arith.minsi %lo, %c27 : index
    %v = memref.load %x[%ri, %i] : memref<4x28xf32>
    %p = arith.select %ok, %v, %zero : f32
    memref.store %p, %out[%j] : memref<30xf32>
  }
  return
}

// An im2col row: the source column is the window's (ow + kw) - 1, the
// affine.apply of the importer's index map, with kw from an outer loop.
// CHECK-LABEL: func.func @window_row
// CHECK-SAME: (%[[X:.+]]: memref<30xf32>, %[[OUT:.+]]: memref<30xf32>, %[[KW:.+]]: index)
// CHECK: scf.for %[[J:.+]] = %c0 to %c30 step %c16
// CHECK:   %[[W:.+]] = arith.addi %[[J]], %[[KW]]
// CHECK:   %[[S:.+]] = arith.subi %[[W]], %c1
// CHECK:   vector.maskedload %[[X]][%[[S]]]
// CHECK:   vector.maskedstore %[[OUT]][%[[J]]]
// CHECK-NOT: memref.store
func.func @window_row(%x: memref<30xf32>, %out: memref<30xf32>, %kw: index) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c29 = arith.constant 29 : index
  %c30 = arith.constant 30 : index
  %zero = arith.constant 0.0 : f32
  scf.for %j = %c0 to %c30 step %c1 {
    %w = affine.apply affine_map<()[s0, s1] -> (s0 + s1)>()[%kw, %j]
    %s = arith.subi %w, %c1 : index
    %ge = arith.cmpi sge, %s, %c0 : index
    %lt = arith.cmpi slt, %s, %c30 : index
    %ok = arith.andi %ge, %lt : i1
    %lo = arith.maxsi %s, %c0 : index
    %i = arith.minsi %lo, %c29 : index
    %v = memref.load %x[%i] : memref<30xf32>
    %p = arith.select %ok, %v, %zero : f32
    memref.store %p, %out[%j] : memref<30xf32>
  }
  return
}

// A row longer than 64 stays a loop of conditional loads: LLVM's loop
// vectorizer does better on it (an unmasked body between the ends).
// CHECK-LABEL: func.func @long_row
// CHECK: scf.for %{{.+}} = %c0 to %c100 step %c1
// CHECK: scf.if
// CHECK-NOT: vector.maskedload
func.func @long_row(%x: memref<98xf32>, %out: memref<100xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c97 = arith.constant 97 : index
  %c98 = arith.constant 98 : index
  %c100 = arith.constant 100 : index
  %zero = arith.constant 0.0 : f32
  scf.for %j = %c0 to %c100 step %c1 {
    %s = arith.subi %j, %c1 : index
    %ge = arith.cmpi sge, %s, %c0 : index
    %lt = arith.cmpi slt, %s, %c98 : index
    %ok = arith.andi %ge, %lt : i1
    %lo = arith.maxsi %s, %c0 : index
    %i = arith.minsi %lo, %c97 : index
    %v = memref.load %x[%i] : memref<98xf32>
    %p = arith.select %ok, %v, %zero : f32
    memref.store %p, %out[%j] : memref<100xf32>
  }
  return
}

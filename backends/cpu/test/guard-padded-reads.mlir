// RUN: kiln-opt %s --pass-pipeline='builtin.module(func.func(kiln-cpu-guard-padded-reads))' | FileCheck %s

// A padding read: `inBounds(s) ? B[clamp(s)] : 0`. The load moves under an
// scf.if of the same condition and reads B[s] unclamped (consecutive
// addresses for the loop vectorizer); the pad value is the else branch.
// CHECK-LABEL: func.func @pad_row
// CHECK-SAME: (%[[B:.*]]: memref<8xf32>, %{{.*}}: index)
// CHECK: %[[S:.*]] = arith.subi
// CHECK: %[[OK:.*]] = arith.andi
// CHECK: %[[V:.*]] = scf.if %[[OK]] -> (f32) {
// CHECK-NEXT: %[[L:.*]] = memref.load %[[B]][%[[S]]] : memref<8xf32>
// CHECK-NEXT: scf.yield %[[L]] : f32
// CHECK-NEXT: } else {
// CHECK-NEXT: scf.yield %{{.*}} : f32
// CHECK-NOT: arith.select
// CHECK: return %[[V]]
func.func @pad_row(%b: memref<8xf32>, %w: index) -> f32 {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c7 = arith.constant 7 : index
  %c8 = arith.constant 8 : index
  %zero = arith.constant 0.0 : f32
  %s = arith.subi %w, %c1 : index
  %ge = arith.cmpi sge, %s, %c0 : index
  %lt = arith.cmpi slt, %s, %c8 : index
  %ok = arith.andi %ge, %lt : i1
  %lo = arith.maxsi %s, %c0 : index
  %i = arith.minsi %lo, %c7 : index
  %v = memref.load %b[%i] : memref<8xf32>
  %r = arith.select %ok, %v, %zero : f32
  return %r : f32
}

// Only the dims the condition bounds at both ends lose their clamp: the
// row index here is checked below only, so it stays clamped.
// CHECK-LABEL: func.func @one_dim_checked
// CHECK: %[[ROW:.*]] = arith.minsi
// CHECK: %[[COL:.*]] = arith.subi %{{.*}}, %{{.*}} : index
// CHECK: scf.if
// CHECK-NEXT: memref.load %{{.*}}[%[[ROW]], %[[COL]]]
func.func @one_dim_checked(%b: memref<4x8xf32>, %h: index, %w: index) -> f32 {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c3 = arith.constant 3 : index
  %c7 = arith.constant 7 : index
  %c8 = arith.constant 8 : index
  %pad = arith.constant -1.0 : f32
  %r0 = arith.maxsi %h, %c0 : index
  %row = arith.minsi %r0, %c3 : index
  %rge = arith.cmpi sge, %h, %c0 : index
  %s = arith.subi %w, %c1 : index
  %ge = arith.cmpi sge, %s, %c0 : index
  %lt = arith.cmpi slt, %s, %c8 : index
  %ok0 = arith.andi %ge, %lt : i1
  %ok = arith.andi %rge, %ok0 : i1
  %lo = arith.maxsi %s, %c0 : index
  %col = arith.minsi %lo, %c7 : index
  %v = memref.load %b[%row, %col] : memref<4x8xf32>
  %r = arith.select %ok, %v, %pad : f32
  return %r : f32
}

// A select whose condition does not bound the clamped index is left alone.
// CHECK-LABEL: func.func @unchecked
// CHECK: arith.select
// CHECK-NOT: scf.if
func.func @unchecked(%b: memref<8xf32>, %w: index, %c: i1) -> f32 {
  %c0 = arith.constant 0 : index
  %c7 = arith.constant 7 : index
  %zero = arith.constant 0.0 : f32
  %lo = arith.maxsi %w, %c0 : index
  %i = arith.minsi %lo, %c7 : index
  %v = memref.load %b[%i] : memref<8xf32>
  %r = arith.select %c, %v, %zero : f32
  return %r : f32
}

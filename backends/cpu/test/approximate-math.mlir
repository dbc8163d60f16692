// RUN: kiln-opt %s --pass-pipeline='builtin.module(func.func(kiln-cpu-approximate-math))' | FileCheck %s

// exp, tanh and erf become arithmetic (no libm call left to scalarize a
// vector); pow by a small integer becomes multiplications, by one half sqrt.
// CHECK-LABEL: func.func @gelu_tanh
// CHECK-NOT: math.powf
// CHECK: %[[X2:.+]] = arith.mulf %arg0, %arg0 : vector<16xf32>
// CHECK: arith.mulf %[[X2]], %arg0 : vector<16xf32>
// CHECK-NOT: math.tanh
// CHECK: math.fma
func.func @gelu_tanh(%x: vector<16xf32>) -> vector<16xf32> {
  %c3 = arith.constant 3.0 : f32
  %three = vector.broadcast %c3 : f32 to vector<16xf32>
  %cube = math.powf %x, %three : vector<16xf32>
  %t = math.tanh %cube : vector<16xf32>
  return %t : vector<16xf32>
}

// CHECK-LABEL: func.func @scalar_forms
// CHECK-NOT: math.exp
// CHECK-NOT: math.erf
// CHECK-DAG: %[[ONE:.+]] = arith.constant 1.000000e+00 : f32
// CHECK: math.sqrt %arg0 : f32
// CHECK: %[[SQ:.+]] = arith.mulf %arg0, %arg0 : f32
// CHECK: arith.divf %[[ONE]], %[[SQ]] : f32
// A non-integer exponent stays a call.
// CHECK: math.powf %arg0, %{{.+}} : f32
func.func @scalar_forms(%x: f32) -> (f32, f32, f32, f32, f32) {
  %e = math.exp %x : f32
  %r = math.erf %x : f32
  %half = arith.constant 0.5 : f32
  %s = math.powf %x, %half : f32
  %m2 = arith.constant -2.0 : f32
  %inv = math.powf %x, %m2 : f32
  %p = arith.constant 2.5 : f32
  %other = math.powf %x, %p : f32
  return %e, %r, %s, %inv, %other : f32, f32, f32, f32, f32
}

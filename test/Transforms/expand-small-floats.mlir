// RUN: kiln-opt %s --pass-pipeline='builtin.module(func.func(kiln-expand-small-floats))' | FileCheck %s

// truncf to f8E4M3FN becomes integer code on the f32 bits: round to nearest
// even by adding half minus one plus the kept lowest bit, then overflow to
// NaN (0x7f, as it has no infinity) and the sign in bit 7.
// CHECK-LABEL: func.func @trunc_e4m3fn
// CHECK: arith.bitcast %{{.+}} : f32 to i32
// CHECK: arith.constant 2139095040 : i32
// CHECK: arith.minui
// CHECK: arith.constant 126 : i32
// CHECK: arith.constant 127 : i32
// CHECK: arith.trunci %{{.+}} : i32 to i8
// CHECK: arith.bitcast %{{.+}} : i8 to f8E4M3FN
// CHECK-NOT: arith.truncf
func.func @trunc_e4m3fn(%x: f32) -> f8E4M3FN {
  %y = arith.truncf %x : f32 to f8E4M3FN
  return %y : f8E4M3FN
}

// f16 widens to f32 first; the FNUZ NaN is 0x80 (-128 as i32 constant 128).
// CHECK-LABEL: func.func @trunc_e5m2fnuz_f16
// CHECK: arith.extf %{{.+}} : f16 to f32
// CHECK: arith.constant 128 : i32
// CHECK: arith.bitcast %{{.+}} : i8 to f8E5M2FNUZ
func.func @trunc_e5m2fnuz_f16(%x: f16) -> f8E5M2FNUZ {
  %y = arith.truncf %x : f16 to f8E5M2FNUZ
  return %y : f8E5M2FNUZ
}

// extf decodes to f32 (subnormals as mantissa * 2^-9 for E4M3FN), then
// narrows exactly to f16.
// CHECK-LABEL: func.func @ext_e4m3fn_f16
// CHECK: arith.bitcast %{{.+}} : f8E4M3FN to i8
// CHECK: arith.extui %{{.+}} : i8 to i32
// CHECK: arith.constant 0.001953125 : f32
// CHECK: arith.constant 2143289344 : i32
// CHECK: arith.truncf %{{.+}} : f32 to f16
func.func @ext_e4m3fn_f16(%x: f8E4M3FN) -> f16 {
  %y = arith.extf %x : f8E4M3FN to f16
  return %y : f16
}

// f4E2M1FN: 4-bit codes; vectors work elementwise.
// CHECK-LABEL: func.func @f4_vector
// CHECK: arith.bitcast %{{.+}} : vector<4xf32> to vector<4xi32>
// CHECK: arith.trunci %{{.+}} : vector<4xi32> to vector<4xi4>
// CHECK: arith.bitcast %{{.+}} : vector<4xi4> to vector<4xf4E2M1FN>
func.func @f4_vector(%x: vector<4xf32>) -> vector<4xf4E2M1FN> {
  %y = arith.truncf %x : vector<4xf32> to vector<4xf4E2M1FN>
  return %y : vector<4xf4E2M1FN>
}

// Other float types are left alone.
// CHECK-LABEL: func.func @f16
// CHECK: arith.truncf %{{.+}} : f32 to f16
func.func @f16(%x: f32) -> f16 {
  %y = arith.truncf %x : f32 to f16
  return %y : f16
}

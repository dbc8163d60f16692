// RUN: kiln-opt %s --split-input-file --verify-diagnostics | FileCheck %s

// CHECK-LABEL: func.func @ok
// CHECK: kiln.dispatch @kernels::@k(%{{.+}}) : (tensor<4xf32>) -> tensor<4xf32>
func.func @ok(%x: tensor<4xf32>) -> tensor<4xf32> {
  %0 = kiln.dispatch @kernels::@k(%x) : (tensor<4xf32>) -> tensor<4xf32>
  return %0 : tensor<4xf32>
}
module @kernels attributes {kiln.executable} {
  func.func @k(%a: tensor<4xf32>) -> tensor<4xf32> {
    return %a : tensor<4xf32>
  }
}

// -----

func.func @missing(%x: tensor<4xf32>) -> tensor<4xf32> {
  // expected-error @+1 {{kernel @kernels::@nope not found}}
  %0 = kiln.dispatch @kernels::@nope(%x) : (tensor<4xf32>) -> tensor<4xf32>
  return %0 : tensor<4xf32>
}
module @kernels attributes {kiln.executable} {
}

// -----

func.func @mismatch(%x: tensor<4xf32>) -> tensor<8xf32> {
  // expected-error @+1 {{type mismatch with kernel @kernels::@k}}
  %0 = kiln.dispatch @kernels::@k(%x) : (tensor<4xf32>) -> tensor<8xf32>
  return %0 : tensor<8xf32>
}
module @kernels attributes {kiln.executable} {
  func.func @k(%a: tensor<4xf32>) -> tensor<4xf32> {
    return %a : tensor<4xf32>
  }
}

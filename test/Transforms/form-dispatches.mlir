// RUN: kiln-opt %s --kiln-form-dispatches --split-input-file | FileCheck %s

// A contraction takes its fill (init producer) and its elementwise consumer
// into one kernel; tensors from outside become bindings.
#mk = affine_map<(d0, d1, d2) -> (d0, d1)>
#kn = affine_map<(d0, d1, d2) -> (d1, d2)>
#mn = affine_map<(d0, d1, d2) -> (d0, d2)>
#id = affine_map<(d0, d1) -> (d0, d1)>
// CHECK-LABEL: func.func @main(
// CHECK-SAME: %[[X:.+]]: tensor<4x8xf32>, %[[W:.+]]: tensor<8x16xf32>)
// CHECK: %[[D:.+]] = kiln.dispatch @kernels::@main_dispatch_0(%[[X]], %[[W]]) : (tensor<4x8xf32>, tensor<8x16xf32>) -> tensor<4x16xf32>
// CHECK: return %[[D]]
// CHECK: module @kernels attributes {kiln.executable}
// CHECK: func.func @main_dispatch_0(%{{.+}}: tensor<4x8xf32>, %{{.+}}: tensor<8x16xf32>) -> tensor<4x16xf32>
// The splat scalar is rebuilt inside the kernel rather than bound.
// CHECK: arith.constant 0.000000e+00 : f32
// CHECK: linalg.fill
// CHECK: linalg.generic {{.+}} iterator_types = ["parallel", "reduction", "parallel"]
// CHECK: arith.maximumf
// CHECK: return
func.func @main(%x: tensor<4x8xf32>, %w: tensor<8x16xf32>) -> tensor<4x16xf32> {
  %zero = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<4x16xf32>
  %f = linalg.fill ins(%zero : f32) outs(%e : tensor<4x16xf32>) -> tensor<4x16xf32>
  %mm = linalg.generic {indexing_maps = [#mk, #kn, #mn], iterator_types = ["parallel", "reduction", "parallel"]}
      ins(%x, %w : tensor<4x8xf32>, tensor<8x16xf32>) outs(%f : tensor<4x16xf32>) {
    ^bb0(%a: f32, %b: f32, %acc: f32):
      %p = arith.mulf %a, %b : f32
      %s = arith.addf %acc, %p : f32
      linalg.yield %s : f32
  } -> tensor<4x16xf32>
  %e2 = tensor.empty() : tensor<4x16xf32>
  %r = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel"]}
      ins(%mm : tensor<4x16xf32>) outs(%e2 : tensor<4x16xf32>) {
    ^bb0(%a: f32, %o: f32):
      %m = arith.maximumf %a, %zero : f32
      linalg.yield %m : f32
  } -> tensor<4x16xf32>
  return %r : tensor<4x16xf32>
}

// -----

// An output that is a graph input gets a copy kernel, so it owns its buffer.
// CHECK-LABEL: func.func @main(
// CHECK-SAME: %[[X:.+]]: tensor<3xf32>)
// CHECK: %[[C:.+]] = kiln.dispatch @kernels::@main_dispatch_0(%[[X]]) : (tensor<3xf32>) -> tensor<3xf32>
// CHECK: return %[[C]]
// CHECK: func.func @main_dispatch_0
// CHECK: linalg.generic
// CHECK-NEXT: ^bb0(%[[IN:.+]]: f32, %{{.+}}: f32):
// CHECK-NEXT: linalg.yield %[[IN]]
func.func @main(%x: tensor<3xf32>) -> tensor<3xf32> {
  return %x : tensor<3xf32>
}

// -----

// Each kernel records the ONNX nodes it computes, read from the importer's
// locations NameLoc(node, NameLoc(op type, file)): through fused locations
// and the ops' bodies, once each, in program order. A name over a file
// location alone (IR from before op types were recorded) is the node's
// name; other locations (the initializer "w") name no node.
#add = loc("a"("Add"("m.onnx":0:0)))
#mul = loc("m"("Mul"("m.onnx":0:0)))
#relu = loc("r"("Relu"("m.onnx":0:0)))
#total = loc("total"("m.onnx":0:0))
#v = affine_map<(d0) -> (d0)>
#s = affine_map<(d0) -> ()>
// CHECK-LABEL: func.func @main(
// CHECK-LABEL: func.func @main_dispatch_0(
// CHECK-SAME: attributes {kiln.onnx_ops = "Add(a) + Mul(m) + Relu(r)"}
// CHECK-LABEL: func.func @main_dispatch_1(
// CHECK-SAME: attributes {kiln.onnx_ops = "total"}
func.func @main(%x: tensor<8xf32>) -> tensor<f32> {
  %zero = arith.constant 0.0 : f32 loc("w")
  %e = tensor.empty() : tensor<8xf32> loc(#relu)
  %am = linalg.generic {indexing_maps = [#v, #v], iterator_types = ["parallel"]}
      ins(%x : tensor<8xf32>) outs(%e : tensor<8xf32>) {
    ^bb0(%a: f32, %o: f32):
      %sum = arith.addf %a, %a : f32 loc(#add)
      %p = arith.mulf %sum, %sum : f32 loc(#mul)
      linalg.yield %p : f32 loc(#mul)
  } -> tensor<8xf32> loc(fused[#add, #mul])
  %r = linalg.generic {indexing_maps = [#v, #v], iterator_types = ["parallel"]}
      ins(%am : tensor<8xf32>) outs(%e : tensor<8xf32>) {
    ^bb0(%a: f32, %o: f32):
      %m = arith.maximumf %a, %zero : f32 loc(#relu)
      linalg.yield %m : f32 loc(#relu)
  } -> tensor<8xf32> loc(#relu)
  %e0 = tensor.empty() : tensor<f32> loc(#total)
  %init = linalg.fill ins(%zero : f32) outs(%e0 : tensor<f32>) -> tensor<f32> loc(#total)
  %t = linalg.generic {indexing_maps = [#v, #s], iterator_types = ["reduction"]}
      ins(%r : tensor<8xf32>) outs(%init : tensor<f32>) {
    ^bb0(%a: f32, %acc: f32):
      %n = arith.addf %a, %acc : f32 loc(#total)
      linalg.yield %n : f32 loc(#total)
  } -> tensor<f32> loc(#total)
  return %t : tensor<f32>
}

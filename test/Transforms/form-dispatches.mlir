// RUN: kiln-opt %s --kiln-form-dispatches="fuse-padding=true" --split-input-file | FileCheck %s

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

// -----

// Padding feeding a depthwise contraction (every parallel loop reads the
// padded tensor) joins its kernel, so each workgroup pads only what it
// reads; feeding a convolution whose filters do not read it (each filter
// block would pad the whole input again), it stays a dispatch of its own.
#pad = affine_map<(c, j) -> (c, j)>
// CHECK-LABEL: func.func @main(
// CHECK: %[[DW:.+]] = kiln.dispatch @kernels::@main_dispatch_0(%arg0, %arg1)
// CHECK: %[[P:.+]] = kiln.dispatch @kernels::@main_dispatch_1(%[[DW]])
// CHECK: kiln.dispatch @kernels::@main_dispatch_2(%[[P]], %arg2)
// CHECK-LABEL: func.func @main_dispatch_0(
// CHECK: tensor.extract
// CHECK: arith.select
// CHECK: iterator_types = ["parallel", "parallel", "reduction"]
// CHECK: return
// CHECK-LABEL: func.func @main_dispatch_1(
// CHECK: tensor.extract
// CHECK: return
// CHECK-LABEL: func.func @main_dispatch_2(
// CHECK-NOT: tensor.extract
// CHECK: iterator_types = ["parallel", "parallel", "reduction", "reduction"]
func.func @main(%x: tensor<4x6xf32>, %w: tensor<4x3xf32>, %w2: tensor<5x4x3xf32>) -> tensor<5x6xf32> {
  %zero = arith.constant 0.0 : f32
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c5 = arith.constant 5 : index
  %c6 = arith.constant 6 : index
  %pad = tensor.empty() : tensor<4x8xf32>
  %xp = linalg.generic {indexing_maps = [#pad], iterator_types = ["parallel", "parallel"]}
      outs(%pad : tensor<4x8xf32>) {
    ^bb0(%o: f32):
      %c = linalg.index 0 : index
      %j = linalg.index 1 : index
      %s = arith.subi %j, %c1 : index
      %lo = arith.cmpi sge, %s, %c0 : index
      %hi = arith.cmpi slt, %s, %c6 : index
      %in = arith.andi %lo, %hi : i1
      %m = arith.maxsi %s, %c0 : index
      %cl = arith.minsi %m, %c5 : index
      %v = tensor.extract %x[%c, %cl] : tensor<4x6xf32>
      %r = arith.select %in, %v, %zero : f32
      linalg.yield %r : f32
  } -> tensor<4x8xf32>
  %e = tensor.empty() : tensor<4x6xf32>
  %f = linalg.fill ins(%zero : f32) outs(%e : tensor<4x6xf32>) -> tensor<4x6xf32>
  %dw = linalg.generic {indexing_maps = [affine_map<(c, o, k) -> (c, o + k)>, affine_map<(c, o, k) -> (c, k)>,
                                         affine_map<(c, o, k) -> (c, o)>],
                        iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%xp, %w : tensor<4x8xf32>, tensor<4x3xf32>) outs(%f : tensor<4x6xf32>) {
    ^bb0(%a: f32, %b: f32, %acc: f32):
      %p = arith.mulf %a, %b : f32
      %s = arith.addf %acc, %p : f32
      linalg.yield %s : f32
  } -> tensor<4x6xf32>
  %pad2 = tensor.empty() : tensor<4x8xf32>
  %dp = linalg.generic {indexing_maps = [#pad], iterator_types = ["parallel", "parallel"]}
      outs(%pad2 : tensor<4x8xf32>) {
    ^bb0(%o: f32):
      %c = linalg.index 0 : index
      %j = linalg.index 1 : index
      %s = arith.subi %j, %c1 : index
      %lo = arith.cmpi sge, %s, %c0 : index
      %hi = arith.cmpi slt, %s, %c6 : index
      %in = arith.andi %lo, %hi : i1
      %m = arith.maxsi %s, %c0 : index
      %cl = arith.minsi %m, %c5 : index
      %v = tensor.extract %dw[%c, %cl] : tensor<4x6xf32>
      %r = arith.select %in, %v, %zero : f32
      linalg.yield %r : f32
  } -> tensor<4x8xf32>
  %e2 = tensor.empty() : tensor<5x6xf32>
  %f2 = linalg.fill ins(%zero : f32) outs(%e2 : tensor<5x6xf32>) -> tensor<5x6xf32>
  %conv = linalg.generic {indexing_maps = [affine_map<(f, o, c, k) -> (c, o + k)>, affine_map<(f, o, c, k) -> (f, c, k)>,
                                           affine_map<(f, o, c, k) -> (f, o)>],
                          iterator_types = ["parallel", "parallel", "reduction", "reduction"]}
      ins(%dp, %w2 : tensor<4x8xf32>, tensor<5x4x3xf32>) outs(%f2 : tensor<5x6xf32>) {
    ^bb0(%a: f32, %b: f32, %acc: f32):
      %p = arith.mulf %a, %b : f32
      %s = arith.addf %acc, %p : f32
      linalg.yield %s : f32
  } -> tensor<5x6xf32>
  return %conv : tensor<5x6xf32>
}

// RUN: kiln-opt %s --kiln-cpu-lower-abi | FileCheck %s

// cpu kernels take (bindings, wg_x, wg_y, wg_z): each buffer is loaded from
// the bindings array and wrapped in a static descriptor; gpu.block_id reads
// the workgroup arguments.
// CHECK-LABEL: func.func @k
// CHECK-SAME: (%[[B:.+]]: !llvm.ptr, %[[X:.+]]: index, %{{.+}}: index, %{{.+}}: index)
// CHECK: %[[SLOT1:.+]] = llvm.getelementptr %[[B]][1] : (!llvm.ptr) -> !llvm.ptr, !llvm.ptr
// CHECK: llvm.load %[[SLOT1]] : !llvm.ptr -> !llvm.ptr
// CHECK: builtin.unrealized_conversion_cast %{{.+}} : !llvm.struct<(ptr, ptr, i64, array<1 x i64>, array<1 x i64>)> to memref<8xf32>
// CHECK-NOT: gpu.block_id
// CHECK: memref.load %{{.+}}[%[[X]]]
func.func @k(%in: memref<8xf32>, %out: memref<8xf32>) {
  %i = gpu.block_id x
  %v = memref.load %in[%i] : memref<8xf32>
  memref.store %v, %out[%i] : memref<8xf32>
  return
}

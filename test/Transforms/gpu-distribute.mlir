// RUN: kiln-opt %s --pass-pipeline='builtin.module(builtin.module(kiln-gpu-distribute))' | FileCheck %s

// A 4x300 grid of Kiln workgroups is 1200 threads: 10 blocks of 128, the
// last one partial and guarded. The second grid dimension varies fastest
// (it is the innermost tiled loop), so neighbouring threads touch
// neighbouring addresses.
// CHECK-LABEL: module @kernels
// CHECK-SAME: gpu.container_module
// CHECK-SAME: kiln.gpu_launches = {coarse = [array<i32: 128, 1, 1>, array<i32: 32, 1, 1>], coop = [array<i32: 256, 1, 1>, array<i32: 4, 1, 1>], k = [array<i32: 128, 1, 1>, array<i32: 10, 1, 1>], small = [array<i32: 32, 1, 1>, array<i32: 1, 1, 1>]}
// CHECK: gpu.module @kiln_kernels
// CHECK: memref.global "private" constant @table
// Buffers never alias and start 16-byte aligned; temporaries are per
// thread: private memory, allocated once at the top.
// CHECK: gpu.func @k(%[[A:.+]]: memref<4x300xf32> {llvm.align = 16 : i64, llvm.noalias}, %[[B:.+]]: memref<4x300xf32> {llvm.align = 16 : i64, llvm.noalias}) kernel
// CHECK-SAME: known_block_size = array<i32: 128, 1, 1>
// CHECK: memref.alloca() {{.+}} : memref<1xf32, #gpu.address_space<private>>
// CHECK-DAG: %[[TID:.+]] = gpu.thread_id x
// CHECK-DAG: %[[BID:.+]] = gpu.block_id x
// CHECK: %[[MUL:.+]] = arith.muli %[[BID]], %c128
// CHECK: %[[LIN:.+]] = arith.addi %[[MUL]], %[[TID]]
// CHECK: %[[IN:.+]] = arith.cmpi ult, %[[LIN]], %c1200
// CHECK: scf.if %[[IN]] {
// CHECK: %[[Y:.+]] = arith.remui %{{.+}}, %c300
// CHECK: %[[X:.+]] = arith.divui %{{.+}}, %c300
// CHECK: memref.load %[[A]][%[[X]], %[[Y]]]
// CHECK: memref.store %{{.+}}, %[[B]][%[[X]], %[[Y]]]
// CHECK: }
// CHECK: gpu.return
// A 64x256 grid is large enough for 4 consecutive workgroups per thread
// (4096 threads, 32 blocks): thread t runs workgroups 4t .. 4t+3, which
// differ only in the fastest id (base + i), so its accesses are adjacent.
// CHECK: gpu.func @coarse
// CHECK: %[[CIN:.+]] = arith.cmpi ult, %{{.+}}, %c4096
// CHECK: scf.if %[[CIN]] {
// CHECK: %[[FIRST:.+]] = arith.muli %{{.+}}, %c4
// CHECK: %[[BASE:.+]] = arith.remui %{{.+}}, %c256
// CHECK: %[[ROW:.+]] = arith.divui %{{.+}}, %c256
// CHECK: scf.for %[[I:.+]] = %c0 to %c4
// CHECK: %[[COL:.+]] = arith.addi %[[BASE]], %[[I]]
// CHECK: memref.load %{{.+}}[%[[ROW]], %[[COL]]]
// CHECK: memref.store %{{.+}}[%[[ROW]], %[[COL]]]
// A cooperative kernel: blocks of 16x16 threads over a 20x24 grid, 2x2
// blocks. Every thread reaches the barrier with clamped ids; only in-range
// threads write the output. Workgroup memory becomes an attribution.
// CHECK: gpu.func @coop(%[[X:.+]]: memref<20x24xf32> {{{.+}}}, %[[Y:.+]]: memref<20x24xf32> {{{.+}}}) workgroup(%[[SH:.+]] : memref<16x16xf32, #gpu.address_space<workgroup>>) kernel
// CHECK-SAME: known_block_size = array<i32: 256, 1, 1>
// CHECK: %[[TID:.+]] = gpu.thread_id x
// CHECK: %[[BID:.+]] = gpu.block_id x
// CHECK: %[[IN0:.+]] = arith.cmpi ult, %{{.+}}, %c20
// CHECK: %[[LEAD:.+]] = arith.andi %{{.+}}, %[[IN0]]
// CHECK: %[[I:.+]] = arith.minui %{{.+}}, %c19
// CHECK: %[[IN1:.+]] = arith.cmpi ult, %{{.+}}, %c24
// CHECK: %[[LEAD2:.+]] = arith.andi %[[LEAD]], %[[IN1]]
// CHECK: %[[J:.+]] = arith.minui %{{.+}}, %c23
// CHECK: %[[V:.+]] = memref.load %[[X]][%[[I]], %[[J]]]
// CHECK: memref.store %[[V]], %[[SH]]
// CHECK-NEXT: gpu.barrier
// CHECK: scf.if %[[LEAD2]] {
// CHECK-NEXT: memref.store %{{.+}}, %[[Y]][%[[I]], %[[J]]]
// CHECK-NEXT: }
// A grid smaller than a block gets whole warps.
// CHECK: gpu.func @small
// CHECK-SAME: known_block_size = array<i32: 32, 1, 1>
// CHECK-NOT: func.func
module {
  module @kernels attributes {kiln.executable} {
    memref.global "private" constant @table : memref<2xf32> = dense<[1.0, 2.0]>
    func.func @k(%a: memref<4x300xf32>, %b: memref<4x300xf32>) attributes {kiln.workgroups = array<i64: 4, 300, 1>} {
      %x = gpu.block_id x
      %y = gpu.block_id y
      %c0 = arith.constant 0 : index
      %t = memref.alloca() {alignment = 64 : i64} : memref<1xf32>
      %v = memref.load %a[%x, %y] : memref<4x300xf32>
      memref.store %v, %t[%c0] : memref<1xf32>
      %w = memref.load %t[%c0] : memref<1xf32>
      memref.store %w, %b[%x, %y] : memref<4x300xf32>
      return
    }
    func.func @coarse(%a: memref<64x256xf32>, %b: memref<64x256xf32>) attributes {kiln.workgroups = array<i64: 64, 256, 1>} {
      %x = gpu.block_id x
      %y = gpu.block_id y
      %v = memref.load %a[%x, %y] : memref<64x256xf32>
      memref.store %v, %b[%x, %y] : memref<64x256xf32>
      return
    }
    func.func @coop(%x: memref<20x24xf32>, %y: memref<20x24xf32>) attributes {kiln.workgroups = array<i64: 20, 24, 1>, kiln.gpu_cooperative = array<i64: 16, 16, 1, 1>} {
      %sh = memref.alloca() : memref<16x16xf32, #gpu.address_space<workgroup>>
      %i = gpu.block_id x
      %j = gpu.block_id y
      %c0 = arith.constant 0 : index
      %v = memref.load %x[%i, %j] : memref<20x24xf32>
      memref.store %v, %sh[%c0, %c0] : memref<16x16xf32, #gpu.address_space<workgroup>>
      gpu.barrier
      %w = memref.load %sh[%c0, %c0] : memref<16x16xf32, #gpu.address_space<workgroup>>
      memref.store %w, %y[%i, %j] : memref<20x24xf32>
      return
    }
    func.func @small(%a: memref<2xf32>) attributes {kiln.workgroups = array<i64: 2, 1, 1>} {
      %x = gpu.block_id x
      %g = memref.get_global @table : memref<2xf32>
      %v = memref.load %g[%x] : memref<2xf32>
      memref.store %v, %a[%x] : memref<2xf32>
      return
    }
  }
}

// Kernels that need levelzero-cpu's barrier emulation to be exact, for
// test_spirv_emulation.py: the invocations of a workgroup exchange values
// through workgroup memory, so running them one after another, or without
// waiting at the barriers, gives wrong results. Launched as 64 invocations
// per workgroup over 64-element slices of x.
module attributes {gpu.container_module, kiln.executable, kiln.gpu_launches = {
    reverse = [array<i32: 64, 1, 1>, array<i32: 8, 1, 1>],
    tree_sum = [array<i32: 64, 1, 1>, array<i32: 8, 1, 1>],
    broadcast_racy = [array<i32: 64, 1, 1>, array<i32: 8, 1, 1>]}} {
  gpu.module @kiln_kernels {
    // y[64 g + t] = x[64 g + 63 - t]
    gpu.func @reverse(%x: memref<512xf32>, %y: memref<512xf32>) kernel
        attributes {known_block_size = array<i32: 64, 1, 1>} {
      %c63 = arith.constant 63 : index
      %c64 = arith.constant 64 : index
      %sh = memref.alloc() : memref<64xf32, #gpu.address_space<workgroup>>
      %t = gpu.thread_id x
      %g = gpu.block_id x
      %base = arith.muli %g, %c64 : index
      %i = arith.addi %base, %t : index
      %v = memref.load %x[%i] : memref<512xf32>
      memref.store %v, %sh[%t] : memref<64xf32, #gpu.address_space<workgroup>>
      gpu.barrier
      %r = arith.subi %c63, %t : index
      %w = memref.load %sh[%r] : memref<64xf32, #gpu.address_space<workgroup>>
      memref.store %w, %y[%i] : memref<512xf32>
      gpu.return
    }

    // sum[g] = x[64 g] + ... + x[64 g + 63], as a tree: at step s = 32, 16,
    // ..., 1, invocation t < s adds sh[t + s] into sh[t].
    gpu.func @tree_sum(%x: memref<512xf32>, %sum: memref<8xf32>) kernel
        attributes {known_block_size = array<i32: 64, 1, 1>} {
      %c0 = arith.constant 0 : index
      %c1 = arith.constant 1 : index
      %c6 = arith.constant 6 : index
      %c32 = arith.constant 32 : index
      %c64 = arith.constant 64 : index
      %sh = memref.alloc() : memref<64xf32, #gpu.address_space<workgroup>>
      %t = gpu.thread_id x
      %g = gpu.block_id x
      %base = arith.muli %g, %c64 : index
      %i = arith.addi %base, %t : index
      %v = memref.load %x[%i] : memref<512xf32>
      memref.store %v, %sh[%t] : memref<64xf32, #gpu.address_space<workgroup>>
      scf.for %k = %c0 to %c6 step %c1 {
        %s = arith.shrui %c32, %k : index
        gpu.barrier
        %active = arith.cmpi ult, %t, %s : index
        scf.if %active {
          %j = arith.addi %t, %s : index
          %a = memref.load %sh[%t] : memref<64xf32, #gpu.address_space<workgroup>>
          %b = memref.load %sh[%j] : memref<64xf32, #gpu.address_space<workgroup>>
          %ab = arith.addf %a, %b : f32
          memref.store %ab, %sh[%t] : memref<64xf32, #gpu.address_space<workgroup>>
        }
      }
      %first = arith.cmpi eq, %t, %c0 : index
      scf.if %first {
        %total = memref.load %sh[%c0] : memref<64xf32, #gpu.address_space<workgroup>>
        memref.store %total, %sum[%g] : memref<8xf32>
      }
      gpu.return
    }

    // A bug on purpose: y[64 g + t] = x[64 g] through workgroup memory that
    // invocation 0 writes, with no barrier before the others read it. A
    // GPU may or may not give x[64 g]; the emulation must not hide the race.
    gpu.func @broadcast_racy(%x: memref<512xf32>, %y: memref<512xf32>) kernel
        attributes {known_block_size = array<i32: 64, 1, 1>} {
      %c0 = arith.constant 0 : index
      %c64 = arith.constant 64 : index
      %sh = memref.alloc() : memref<1xf32, #gpu.address_space<workgroup>>
      %t = gpu.thread_id x
      %g = gpu.block_id x
      %base = arith.muli %g, %c64 : index
      %first = arith.cmpi eq, %t, %c0 : index
      scf.if %first {
        %v = memref.load %x[%base] : memref<512xf32>
        memref.store %v, %sh[%c0] : memref<1xf32, #gpu.address_space<workgroup>>
      }
      %w = memref.load %sh[%c0] : memref<1xf32, #gpu.address_space<workgroup>>
      %i = arith.addi %base, %t : index
      memref.store %w, %y[%i] : memref<512xf32>
      gpu.return
    }
  }
}

// REQUIRES: target-levelzero-cpu
// RUN: kiln-opt %s --kiln-spirv-to-host | FileCheck %s \
// RUN:   --implicit-check-not=__workgroup_mem__ --implicit-check-not=__spirv_ControlBarrier

// Workgroup memory and barriers in levelzero-cpu. A Workgroup variable
// becomes a pointer argument of the lowered kernel, backed by a stack
// allocation of the wrapper per workgroup; a kernel with Workgroup barriers
// runs each invocation on a thread of its own and waits on a pthread barrier
// that the wrapper passes last.
module @kernels attributes {kiln.executable, kiln.gpu_launches = {
    reverse = [array<i32: 4, 1, 1>, array<i32: 2, 1, 1>],
    scratch = [array<i32: 4, 1, 1>, array<i32: 1, 1, 1>],
    fence = [array<i32: 4, 1, 1>, array<i32: 1, 1, 1>]}} {
  gpu.module @kiln_kernels {
    spirv.module Physical64 OpenCL requires #spirv.vce<v1.0, [Kernel, Addresses, Int64], []> {
      spirv.GlobalVariable @__builtin__LocalInvocationId__ built_in("LocalInvocationId") : !spirv.ptr<vector<3xi64>, Input>
      spirv.GlobalVariable @__workgroup_mem__0 : !spirv.ptr<!spirv.array<4 x f32>, Workgroup>

      // y[t] = x[3 - t] through workgroup memory.
      spirv.func @reverse(%x: !spirv.ptr<!spirv.array<4 x f32>, CrossWorkgroup>, %y: !spirv.ptr<!spirv.array<4 x f32>, CrossWorkgroup>) "None" {
        %c3 = spirv.Constant 3 : i64
        %sh = spirv.mlir.addressof @__workgroup_mem__0 : !spirv.ptr<!spirv.array<4 x f32>, Workgroup>
        %ids = spirv.mlir.addressof @__builtin__LocalInvocationId__ : !spirv.ptr<vector<3xi64>, Input>
        %id = spirv.Load "Input" %ids : vector<3xi64>
        %t = spirv.CompositeExtract %id[0 : i32] : vector<3xi64>
        %xp = spirv.AccessChain %x[%t] : !spirv.ptr<!spirv.array<4 x f32>, CrossWorkgroup>, i64 -> !spirv.ptr<f32, CrossWorkgroup>
        %v = spirv.Load "CrossWorkgroup" %xp : f32
        %shp = spirv.AccessChain %sh[%t] : !spirv.ptr<!spirv.array<4 x f32>, Workgroup>, i64 -> !spirv.ptr<f32, Workgroup>
        spirv.Store "Workgroup" %shp, %v : f32
        spirv.ControlBarrier <Workgroup>, <Workgroup>, <AcquireRelease|WorkgroupMemory>
        %r = spirv.ISub %c3, %t : i64
        %shr = spirv.AccessChain %sh[%r] : !spirv.ptr<!spirv.array<4 x f32>, Workgroup>, i64 -> !spirv.ptr<f32, Workgroup>
        %w = spirv.Load "Workgroup" %shr : f32
        %yp = spirv.AccessChain %y[%t] : !spirv.ptr<!spirv.array<4 x f32>, CrossWorkgroup>, i64 -> !spirv.ptr<f32, CrossWorkgroup>
        spirv.Store "CrossWorkgroup" %yp, %w : f32
        spirv.Return
      }

      // Workgroup memory without a barrier keeps the serial loop.
      spirv.func @scratch(%x: !spirv.ptr<!spirv.array<4 x f32>, CrossWorkgroup>) "None" {
        %c0 = spirv.Constant 0 : i64
        %sh = spirv.mlir.addressof @__workgroup_mem__0 : !spirv.ptr<!spirv.array<4 x f32>, Workgroup>
        %xp = spirv.AccessChain %x[%c0] : !spirv.ptr<!spirv.array<4 x f32>, CrossWorkgroup>, i64 -> !spirv.ptr<f32, CrossWorkgroup>
        %v = spirv.Load "CrossWorkgroup" %xp : f32
        %shp = spirv.AccessChain %sh[%c0] : !spirv.ptr<!spirv.array<4 x f32>, Workgroup>, i64 -> !spirv.ptr<f32, Workgroup>
        spirv.Store "Workgroup" %shp, %v : f32
        spirv.Return
      }

      // Subgroups are single invocations: a Subgroup barrier is a fence.
      spirv.func @fence(%x: !spirv.ptr<!spirv.array<4 x f32>, CrossWorkgroup>) "None" {
        spirv.ControlBarrier <Subgroup>, <Workgroup>, <AcquireRelease|WorkgroupMemory>
        spirv.Return
      }

      spirv.EntryPoint "Kernel" @reverse, @__builtin__LocalInvocationId__
      spirv.EntryPoint "Kernel" @scratch
      spirv.EntryPoint "Kernel" @fence
    }
  }
}

// CHECK-DAG: llvm.func @pthread_barrier_wait(!llvm.ptr) -> i32
// CHECK-DAG: llvm.func @pthread_create(!llvm.ptr, !llvm.ptr, !llvm.ptr, !llvm.ptr) -> i32
// CHECK-DAG: llvm.func @pthread_join(i64, !llvm.ptr) -> i32
// CHECK-DAG: llvm.func @pthread_barrier_init(!llvm.ptr, !llvm.ptr, i32) -> i32

// The workgroup variable is argument 3, the barrier argument 4.
// CHECK-LABEL: llvm.func internal @reverse.spirv(
// CHECK-SAME:    %{{.+}}: !llvm.ptr<1>, %{{.+}}: !llvm.ptr<1>, %{{.+}}: vector<3xi64>, %[[SH:.+]]: !llvm.ptr<3>, %[[BARRIER:.+]]: !llvm.ptr)
// CHECK:         llvm.getelementptr %[[SH]][
// CHECK:         llvm.store {{.*}} : f32, !llvm.ptr<3>
// CHECK:         llvm.call @pthread_barrier_wait(%[[BARRIER]])
// CHECK:         llvm.getelementptr %[[SH]][
// CHECK:         llvm.load {{.*}} : !llvm.ptr<3> -> f32

// CHECK-LABEL: llvm.func internal @scratch.spirv(
// CHECK-SAME:    %{{.+}}: !llvm.ptr<1>, %{{.+}}: !llvm.ptr<3>)

// CHECK-LABEL: llvm.func internal @fence.spirv(
// CHECK:         llvm.fence acq_rel
// CHECK-NOT:     llvm.call

// One thread per invocation: the context it reads, its index, the call.
// CHECK-LABEL: llvm.func internal @reverse.invocation(
// CHECK-SAME:    %{{.+}}: !llvm.ptr) -> !llvm.ptr
// CHECK:         llvm.call @reverse.spirv(

// The wrapper: the barrier and memory of its workgroup, a thread per
// invocation but the first, which runs on the calling thread; a failed
// pthread_create aborts rather than leave the others at the barrier.
// CHECK-LABEL: llvm.func @reverse(
// CHECK-SAME:    %{{.+}}: !llvm.ptr, %{{.+}}: i64, %{{.+}}: i64, %{{.+}}: i64)
// CHECK:         %[[B:.+]] = llvm.alloca %{{.+}} x !llvm.array<64 x i8> {alignment = 16 : i64}
// CHECK:         llvm.alloca %{{.+}} x !llvm.array<4 x f32> {alignment = 64 : i64}
// CHECK:         llvm.call @pthread_barrier_init(%[[B]], %{{.+}}, %{{.+}})
// CHECK:         llvm.mlir.addressof @reverse.invocation
// CHECK:         %[[RC:.+]] = llvm.call @pthread_create(
// CHECK:         llvm.icmp "eq" %[[RC]]
// CHECK:         llvm.call @write(
// CHECK-NEXT:    llvm.call @abort()
// CHECK-NEXT:    llvm.unreachable
// CHECK:         llvm.call @reverse.invocation(
// CHECK:         llvm.call @pthread_join(
// CHECK:         llvm.call @pthread_barrier_destroy(%[[B]])

// CHECK-LABEL: llvm.func @scratch(
// CHECK:         %[[MEM:.+]] = llvm.alloca %{{.+}} x !llvm.array<4 x f32> {alignment = 64 : i64}
// CHECK:         llvm.icmp "ult"
// CHECK:         %[[CAST:.+]] = llvm.addrspacecast %[[MEM]] : !llvm.ptr to !llvm.ptr<3>
// CHECK:         llvm.call @scratch.spirv(%{{.+}}, %[[CAST]])
// CHECK-NOT:     pthread

// CHECK-LABEL: llvm.func @fence(
// CHECK-NOT:     pthread
// CHECK:         llvm.call @fence.spirv(
// CHECK-NOT:     pthread

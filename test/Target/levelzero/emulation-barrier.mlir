// REQUIRES: target-levelzero-cpu
// RUN: not kiln-opt %s --kiln-spirv-to-host 2>&1 | FileCheck %s

// Running a workgroup's invocations one after another is exact only without
// barriers: levelzero-cpu refuses kernels that synchronize.
// CHECK: error: levelzero-cpu: the kernel uses spirv.ControlBarrier
module @kernels attributes {kiln.executable, kiln.gpu_launches = {k = [array<i32: 32, 1, 1>, array<i32: 1, 1, 1>]}} {
  gpu.module @kiln_kernels {
    spirv.module Physical64 OpenCL requires #spirv.vce<v1.0, [Kernel, Addresses, Int64], []> {
      spirv.func @k(%arg0: !spirv.ptr<!spirv.array<8 x f32>, CrossWorkgroup>) "None" {
        spirv.ControlBarrier <Workgroup>, <Workgroup>, <AcquireRelease|WorkgroupMemory>
        spirv.Return
      }
      spirv.EntryPoint "Kernel" @k
    }
  }
}

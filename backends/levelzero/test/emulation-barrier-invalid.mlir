// REQUIRES: target-levelzero-cpu
// RUN: kiln-opt %s --kiln-spirv-to-host --split-input-file --verify-diagnostics

// What levelzero-cpu cannot emulate: barriers that synchronize more than a
// workgroup, and workgroup state outside entry points (the wrapper passes it
// to the kernel only).
module attributes {kiln.executable, kiln.gpu_launches = {k = [array<i32: 4, 1, 1>, array<i32: 1, 1, 1>]}} {
  gpu.module @kiln_kernels {
    spirv.module Physical64 OpenCL requires #spirv.vce<v1.0, [Kernel, Addresses, Int64], []> {
      spirv.func @k(%arg0: !spirv.ptr<!spirv.array<4 x f32>, CrossWorkgroup>) "None" {
        // expected-error @+1 {{levelzero-cpu: a barrier of Device execution scope cannot be emulated (only Workgroup and Subgroup)}}
        spirv.ControlBarrier <Device>, <Device>, <AcquireRelease|CrossWorkgroupMemory>
        spirv.Return
      }
      spirv.EntryPoint "Kernel" @k
    }
  }
}

// -----

module attributes {kiln.executable, kiln.gpu_launches = {k = [array<i32: 4, 1, 1>, array<i32: 1, 1, 1>]}} {
  gpu.module @kiln_kernels {
    spirv.module Physical64 OpenCL requires #spirv.vce<v1.0, [Kernel, Addresses, Int64], []> {
      spirv.func @sync() "None" {
        // expected-error @+1 {{levelzero-cpu: Workgroup barriers are only supported in entry points}}
        spirv.ControlBarrier <Workgroup>, <Workgroup>, <AcquireRelease|WorkgroupMemory>
        spirv.Return
      }
      spirv.func @k(%arg0: !spirv.ptr<!spirv.array<4 x f32>, CrossWorkgroup>) "None" {
        spirv.FunctionCall @sync() : () -> ()
        spirv.Return
      }
      spirv.EntryPoint "Kernel" @k
    }
  }
}

// -----

module attributes {kiln.executable, kiln.gpu_launches = {k = [array<i32: 4, 1, 1>, array<i32: 1, 1, 1>]}} {
  gpu.module @kiln_kernels {
    spirv.module Physical64 OpenCL requires #spirv.vce<v1.0, [Kernel, Addresses, Int64], []> {
      spirv.GlobalVariable @__workgroup_mem__0 : !spirv.ptr<!spirv.array<4 x f32>, Workgroup>
      spirv.func @clear() "None" {
        %c0 = spirv.Constant 0 : i64
        %zero = spirv.Constant 0.0 : f32
        // expected-error @+1 {{levelzero-cpu: Workgroup memory is only supported in entry points}}
        %sh = spirv.mlir.addressof @__workgroup_mem__0 : !spirv.ptr<!spirv.array<4 x f32>, Workgroup>
        %p = spirv.AccessChain %sh[%c0] : !spirv.ptr<!spirv.array<4 x f32>, Workgroup>, i64 -> !spirv.ptr<f32, Workgroup>
        spirv.Store "Workgroup" %p, %zero : f32
        spirv.Return
      }
      spirv.func @k(%arg0: !spirv.ptr<!spirv.array<4 x f32>, CrossWorkgroup>) "None" {
        spirv.FunctionCall @clear() : () -> ()
        spirv.Return
      }
      spirv.EntryPoint "Kernel" @k
    }
  }
}

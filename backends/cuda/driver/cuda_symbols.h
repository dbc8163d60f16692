//===- cuda_symbols.h - The CUDA driver API entry points Kiln uses -*- C++ -*-===//
//
// The types, constants and entry points of libcuda the cuda driver uses,
// declared here rather than taken from cuda.h so that nothing needs the
// toolkit. KILN_CUDA_SYMBOLS is the one list of entry points
// (symbol_table.h): the driver's table and loader and the test mock's
// prototypes come from it.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_BACKENDS_CUDA_DRIVER_CUDA_SYMBOLS_H
#define KILN_BACKENDS_CUDA_DRIVER_CUDA_SYMBOLS_H

#include "symbol_table.h"

#include <cstddef>

namespace kiln::cuda {

using CUresult = int;
using CUdevice = int;
using CUdeviceptr = unsigned long long;
using CUcontext = struct CUctx_st *;
using CUmodule = struct CUmod_st *;
using CUfunction = struct CUfunc_st *;
using CUstream = struct CUstream_st *;

constexpr CUresult CUDA_SUCCESS = 0;
constexpr CUresult CUDA_ERROR_NOT_FOUND = 500;
constexpr CUresult CUDA_ERROR_UNSUPPORTED_PTX_VERSION = 222;
constexpr int CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75;
constexpr int CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 76;
constexpr int CU_JIT_ERROR_LOG_BUFFER = 5;
constexpr int CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES = 6;

// The _v2 symbols are what cuda.h maps the plain names to; the unversioned
// ones keep 32-bit sizes or older ABIs.
#define KILN_CUDA_SYMBOLS(X)                                                  \
  X(cuInit, , CUresult, (unsigned))                                           \
  X(cuGetErrorName, , CUresult, (CUresult, const char **))                    \
  X(cuGetErrorString, , CUresult, (CUresult, const char **))                  \
  X(cuDeviceGetCount, , CUresult, (int *))                                    \
  X(cuDeviceGet, , CUresult, (CUdevice *, int))                               \
  X(cuDeviceGetName, , CUresult, (char *, int, CUdevice))                     \
  X(cuDeviceGetAttribute, , CUresult, (int *, int, CUdevice))                 \
  X(cuDeviceTotalMem, _v2, CUresult, (size_t *, CUdevice))                    \
  X(cuDevicePrimaryCtxRetain, , CUresult, (CUcontext *, CUdevice))            \
  X(cuDevicePrimaryCtxRelease, _v2, CUresult, (CUdevice))                     \
  X(cuCtxSetCurrent, , CUresult, (CUcontext))                                 \
  X(cuStreamCreate, , CUresult, (CUstream *, unsigned))                       \
  X(cuStreamDestroy, _v2, CUresult, (CUstream))                               \
  X(cuStreamSynchronize, , CUresult, (CUstream))                              \
  X(cuMemAlloc, _v2, CUresult, (CUdeviceptr *, size_t))                       \
  X(cuMemFree, _v2, CUresult, (CUdeviceptr))                                  \
  X(cuMemsetD8Async, , CUresult,                                              \
    (CUdeviceptr, unsigned char, size_t, CUstream))                           \
  X(cuMemcpyHtoDAsync, _v2, CUresult,                                         \
    (CUdeviceptr, const void *, size_t, CUstream))                            \
  X(cuMemcpyDtoHAsync, _v2, CUresult,                                         \
    (void *, CUdeviceptr, size_t, CUstream))                                  \
  X(cuModuleLoadData, , CUresult, (CUmodule *, const void *))                 \
  X(cuModuleLoadDataEx, , CUresult,                                           \
    (CUmodule *, const void *, unsigned, int *, void **))                     \
  X(cuModuleGetFunction, , CUresult, (CUfunction *, CUmodule, const char *))  \
  X(cuModuleUnload, , CUresult, (CUmodule))                                   \
  X(cuLaunchKernel, , CUresult,                                               \
    (CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned,  \
     unsigned, CUstream, void **, void **))

KILN_DEFINE_SYMBOL_TABLE(CudaSymbols, KILN_CUDA_SYMBOLS);

} // namespace kiln::cuda

#endif // KILN_BACKENDS_CUDA_DRIVER_CUDA_SYMBOLS_H

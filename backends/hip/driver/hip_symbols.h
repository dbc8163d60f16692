//===- hip_symbols.h - The HIP entry points Kiln uses -----------*- C++ -*-===//
//
// The types, constants and entry points of libamdhip64 the hip driver uses,
// declared here rather than taken from the HIP headers. KILN_HIP_SYMBOLS is
// the one list of entry points (symbol_table.h): the driver's table and
// loader and the test mock's prototypes come from it.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_BACKENDS_HIP_DRIVER_HIP_SYMBOLS_H
#define KILN_BACKENDS_HIP_DRIVER_HIP_SYMBOLS_H

#include "symbol_table.h"

#include <cstddef>

namespace kiln::hip {

using hipError_t = int;
using hipDevice_t = int;
using hipModule_t = struct ihipModule_t *;
using hipFunction_t = struct ihipModuleSymbol_t *;
using hipStream_t = struct ihipStream_t *;

constexpr hipError_t hipSuccess = 0;
constexpr hipError_t hipErrorNotFound = 500;

// hipDeviceProp_t changed layout in ROCm 6 (hipGetDevicePropertiesR0600);
// gcnArchName is the only field read, at these offsets (as LLVM's
// amdgpu-arch reads it).
constexpr size_t kArchNameOffsetR0600 = 1160;
constexpr size_t kArchNameOffsetR0000 = 396;
constexpr size_t kPropertiesSize = 4096; // Either layout, with room to grow.

#define KILN_HIP_SYMBOLS(X)                                                   \
  X(hipInit, , hipError_t, (unsigned))                                        \
  X(hipGetErrorName, , const char *, (hipError_t))                            \
  X(hipGetErrorString, , const char *, (hipError_t))                          \
  X(hipGetDeviceCount, , hipError_t, (int *))                                 \
  X(hipDeviceGetName, , hipError_t, (char *, int, hipDevice_t))               \
  X(hipDeviceTotalMem, , hipError_t, (size_t *, hipDevice_t))                 \
  X(hipSetDevice, , hipError_t, (int))                                        \
  X(hipStreamCreate, , hipError_t, (hipStream_t *))                           \
  X(hipStreamDestroy, , hipError_t, (hipStream_t))                            \
  X(hipStreamSynchronize, , hipError_t, (hipStream_t))                        \
  X(hipMalloc, , hipError_t, (void **, size_t))                               \
  X(hipFree, , hipError_t, (void *))                                          \
  X(hipMemsetAsync, , hipError_t, (void *, int, size_t, hipStream_t))         \
  X(hipMemcpyHtoDAsync, , hipError_t, (void *, void *, size_t, hipStream_t))  \
  X(hipMemcpyDtoHAsync, , hipError_t, (void *, void *, size_t, hipStream_t))  \
  X(hipModuleLoadData, , hipError_t, (hipModule_t *, const void *))           \
  X(hipModuleGetFunction, , hipError_t,                                       \
    (hipFunction_t *, hipModule_t, const char *))                             \
  X(hipModuleUnload, , hipError_t, (hipModule_t))                             \
  X(hipModuleLaunchKernel, , hipError_t,                                      \
    (hipFunction_t, unsigned, unsigned, unsigned, unsigned, unsigned,         \
     unsigned, unsigned, hipStream_t, void **, void **))

KILN_DEFINE_SYMBOL_TABLE(HipSymbols, KILN_HIP_SYMBOLS);

/// hipGetDevicePropertiesR0600 (ROCm 6 layout), else hipGetDeviceProperties:
/// one of the two, so not in the list of required entry points.
using GetDeviceProperties = hipError_t (*)(void *, int);

} // namespace kiln::hip

#endif // KILN_BACKENDS_HIP_DRIVER_HIP_SYMBOLS_H

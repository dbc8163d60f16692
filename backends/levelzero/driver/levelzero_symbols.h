//===- levelzero_symbols.h - The Level Zero entry points Kiln uses -*- C++ -*-===//
//
// The types, constants and entry points of libze_loader the levelzero
// driver uses, with the layouts of ze_api.h 1.0, declared here so that
// nothing needs the headers; only 1.0 entry points, so older loaders work
// too. KILN_LEVEL_ZERO_SYMBOLS is the one list of entry points
// (symbol_table.h): the driver's table and loader and the test mock's
// prototypes come from it.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_BACKENDS_LEVELZERO_DRIVER_LEVELZERO_SYMBOLS_H
#define KILN_BACKENDS_LEVELZERO_DRIVER_LEVELZERO_SYMBOLS_H

#include "symbol_table.h"

#include <cstddef>
#include <cstdint>

namespace kiln::levelzero {

using ze_result_t = uint32_t;
using Handle = void *; // Drivers, devices, contexts, queues, lists, ...
constexpr ze_result_t ZE_RESULT_SUCCESS = 0;
constexpr ze_result_t ZE_RESULT_ERROR_INVALID_KERNEL_NAME = 0x78000011;

// ze_structure_type_t values.
constexpr uint32_t kDeviceProperties = 0x3, kCommandQueueGroupProperties = 0x6,
                   kDeviceMemoryProperties = 0x7, kContextDesc = 0xd,
                   kCommandQueueDesc = 0xe, kCommandListDesc = 0xf,
                   kFenceDesc = 0x12, kDeviceMemAllocDesc = 0x15,
                   kHostMemAllocDesc = 0x16, kModuleDesc = 0x1b,
                   kKernelDesc = 0x1d;
constexpr uint32_t ZE_INIT_FLAG_GPU_ONLY = 1;
constexpr uint32_t ZE_DEVICE_TYPE_GPU = 1;
constexpr uint32_t ZE_COMMAND_QUEUE_GROUP_PROPERTY_FLAG_COMPUTE = 1;
constexpr uint32_t ZE_COMMAND_QUEUE_MODE_ASYNCHRONOUS = 2;
constexpr uint32_t ZE_MODULE_FORMAT_IL_SPIRV = 0;

struct DeviceProperties {
  uint32_t stype;
  void *pNext;
  uint32_t type, vendorId, deviceId, flags, subdeviceId, coreClockRate;
  uint64_t maxMemAllocSize;
  uint32_t maxHardwareContexts, maxCommandQueuePriority, numThreadsPerEU,
      physicalEUSimdWidth, numEUsPerSubslice, numSubslicesPerSlice, numSlices;
  uint64_t timerResolution;
  uint32_t timestampValidBits, kernelTimestampValidBits;
  uint8_t uuid[16];
  char name[256];
};
static_assert(offsetof(DeviceProperties, name) == 112 &&
                  sizeof(DeviceProperties) == 368,
              "layout of ze_device_properties_t");

struct MemoryProperties {
  uint32_t stype;
  void *pNext;
  uint32_t flags, maxClockRate, maxBusWidth;
  uint64_t totalSize;
  char name[256];
};
static_assert(offsetof(MemoryProperties, totalSize) == 32 &&
                  sizeof(MemoryProperties) == 296,
              "layout of ze_device_memory_properties_t");

struct QueueGroupProperties {
  uint32_t stype;
  void *pNext;
  uint32_t flags;
  size_t maxMemoryFillPatternSize;
  uint32_t numQueues;
};

struct Desc { // ze_context_desc_t, ze_fence_desc_t, ze_command_list_desc_t.
  uint32_t stype;
  const void *pNext;
  uint32_t a, b;
};
struct QueueDesc {
  uint32_t stype;
  const void *pNext;
  uint32_t ordinal, index, flags, mode, priority;
};
struct ModuleDesc {
  uint32_t stype;
  const void *pNext;
  uint32_t format;
  size_t inputSize;
  const uint8_t *pInputModule;
  const char *pBuildFlags;
  const void *pConstants;
};
struct KernelDesc {
  uint32_t stype;
  const void *pNext;
  uint32_t flags;
  const char *pKernelName;
};
struct GroupCount {
  uint32_t x, y, z;
};

#define KILN_LEVEL_ZERO_SYMBOLS(X)                                            \
  X(zeInit, , ze_result_t, (uint32_t))                                        \
  X(zeDriverGet, , ze_result_t, (uint32_t *, Handle *))                       \
  X(zeDeviceGet, , ze_result_t, (Handle, uint32_t *, Handle *))               \
  X(zeDeviceGetProperties, , ze_result_t, (Handle, DeviceProperties *))       \
  X(zeDeviceGetMemoryProperties, , ze_result_t,                               \
    (Handle, uint32_t *, MemoryProperties *))                                 \
  X(zeDeviceGetCommandQueueGroupProperties, , ze_result_t,                    \
    (Handle, uint32_t *, QueueGroupProperties *))                             \
  X(zeContextCreate, , ze_result_t, (Handle, const Desc *, Handle *))         \
  X(zeContextDestroy, , ze_result_t, (Handle))                                \
  X(zeCommandQueueCreate, , ze_result_t,                                      \
    (Handle, Handle, const QueueDesc *, Handle *))                            \
  X(zeCommandQueueDestroy, , ze_result_t, (Handle))                           \
  X(zeCommandQueueExecuteCommandLists, , ze_result_t,                         \
    (Handle, uint32_t, Handle *, Handle))                                     \
  X(zeCommandListCreate, , ze_result_t,                                       \
    (Handle, Handle, const Desc *, Handle *))                                 \
  X(zeCommandListDestroy, , ze_result_t, (Handle))                            \
  X(zeCommandListClose, , ze_result_t, (Handle))                              \
  X(zeCommandListReset, , ze_result_t, (Handle))                              \
  X(zeCommandListAppendBarrier, , ze_result_t,                                \
    (Handle, Handle, uint32_t, Handle *))                                     \
  X(zeCommandListAppendMemoryCopy, , ze_result_t,                             \
    (Handle, void *, const void *, size_t, Handle, uint32_t, Handle *))       \
  X(zeCommandListAppendMemoryFill, , ze_result_t,                             \
    (Handle, void *, const void *, size_t, size_t, Handle, uint32_t,          \
     Handle *))                                                               \
  X(zeCommandListAppendLaunchKernel, , ze_result_t,                           \
    (Handle, Handle, const GroupCount *, Handle, uint32_t, Handle *))         \
  X(zeFenceCreate, , ze_result_t, (Handle, const Desc *, Handle *))           \
  X(zeFenceDestroy, , ze_result_t, (Handle))                                  \
  X(zeFenceHostSynchronize, , ze_result_t, (Handle, uint64_t))                \
  X(zeFenceReset, , ze_result_t, (Handle))                                    \
  X(zeMemAllocDevice, , ze_result_t,                                          \
    (Handle, const Desc *, size_t, size_t, Handle, void **))                  \
  X(zeMemAllocHost, , ze_result_t,                                            \
    (Handle, const Desc *, size_t, size_t, void **))                          \
  X(zeMemFree, , ze_result_t, (Handle, void *))                               \
  X(zeModuleCreate, , ze_result_t,                                            \
    (Handle, Handle, const ModuleDesc *, Handle *, Handle *))                 \
  X(zeModuleDestroy, , ze_result_t, (Handle))                                 \
  X(zeModuleBuildLogGetString, , ze_result_t, (Handle, size_t *, char *))     \
  X(zeModuleBuildLogDestroy, , ze_result_t, (Handle))                         \
  X(zeKernelCreate, , ze_result_t, (Handle, const KernelDesc *, Handle *))    \
  X(zeKernelDestroy, , ze_result_t, (Handle))                                 \
  X(zeKernelSetGroupSize, , ze_result_t,                                      \
    (Handle, uint32_t, uint32_t, uint32_t))                                   \
  X(zeKernelSetArgumentValue, , ze_result_t,                                  \
    (Handle, uint32_t, size_t, const void *))

KILN_DEFINE_SYMBOL_TABLE(LevelZeroSymbols, KILN_LEVEL_ZERO_SYMBOLS);

} // namespace kiln::levelzero

#endif // KILN_BACKENDS_LEVELZERO_DRIVER_LEVELZERO_SYMBOLS_H

//===- mock_levelzero.cpp - A libze_loader stand-in for the driver tests --===//
//
// Exports the Level Zero 1.0 entry points the levelzero driver dlsyms,
// backed by test/unit/MockGpu.h: one driver with one GPU, "Kiln Mock GPU", two memory
// regions of 8 GiB, a copy-only queue group before the compute one.
// Command lists record commands; they run when the list is executed on a
// queue, so a driver that never submits sees no results. A command that
// follows another without a barrier is counted in kiln_mock_unordered.
// KILN_MOCK_INIT_ERROR=1 makes zeInit fail with ZE_RESULT_ERROR_UNINITIALIZED.
// A module is the SPIR-V magic, " spirv\n", then .entry lines; one that
// contains "syntax error" fails to build with a log.
//
//===----------------------------------------------------------------------===//
#define KILN_MOCK_DEFINE_RECORD
#include "MockGpu.h"

#include "levelzero_symbols.h"

#include <cstdio>
#include <functional>
#include <memory>

using namespace kiln::levelzero;
using namespace kiln::mock;

extern "C" {
KILN_LEVEL_ZERO_SYMBOLS(KILN_SYMBOL_EXPORT)
}

// What the levelzero driver should make of this library
// (test/unit/MockGpus.h).
const KilnMockVendor kiln::mock::vendor = {
    "levelzero", "KILN_LEVEL_ZERO_LIBRARY", "libze_loader.so.1",
    "Kiln Mock GPU, 16 GiB",
    "zeInit failed: ZE_RESULT_ERROR_UNINITIALIZED (0x78000001)",
    "spirv", "\x03\x02\x23\x07 spirv"};

namespace {
constexpr ze_result_t kSuccess = 0, kUninitialized = 0x78000001,
                      kInvalidArgument = 0x78000004,
                      kBuildFailure = 0x70000004,
                      kInvalidKernelName = 0x78000011,
                      kInvalidNullHandle = 0x78000005,
                      kDeviceLost = 0x70000001;
bool initialized = false;
int driverTag, deviceTag;

struct MockKernel {
  const Kernel *kernel;
  unsigned group[3] = {0, 0, 0};
  uint64_t args[8] = {};
};
struct List {
  int ordinal;
  bool closed = false;
  bool barrierPending = true; // Nothing before the first command.
  std::vector<std::function<bool()>> commands;
};
struct Log {
  std::string text;
};

ze_result_t append(void *list, std::function<bool()> command) {
  auto *l = static_cast<List *>(list);
  if (!l || l->closed)
    return kInvalidArgument;
  if (!l->barrierPending) {
    std::lock_guard<std::mutex> lock(state().mutex);
    ++state().unordered;
  }
  l->barrierPending = false;
  l->commands.push_back(std::move(command));
  return kSuccess;
}

struct Stype {
  uint32_t stype;
  void *pNext;
};
} // namespace

extern "C" {
#define API __attribute__((visibility("default")))

API ze_result_t zeInit(uint32_t flags) {
  if (flags != 1) // The driver asks for GPUs only.
    return kInvalidArgument;
  if (initFails())
    return kUninitialized;
  initialized = true;
  return kSuccess;
}

API ze_result_t zeDriverGet(uint32_t *count, void **drivers) {
  if (!initialized)
    return kUninitialized;
  if (drivers && *count >= 1)
    drivers[0] = &driverTag;
  *count = 1;
  return kSuccess;
}

API ze_result_t zeDeviceGet(void *driver, uint32_t *count, void **devices) {
  if (driver != &driverTag)
    return kInvalidNullHandle;
  if (devices && *count >= 1)
    devices[0] = &deviceTag;
  *count = 1;
  return kSuccess;
}

// Properties and descriptors are read and written at ze_api.h's offsets, not
// through the driver's declarations, so a wrong declaration shows.
API ze_result_t zeDeviceGetProperties(void *device, DeviceProperties *props) {
  char *p = reinterpret_cast<char *>(props);
  if (device != &deviceTag || reinterpret_cast<Stype *>(p)->stype != 0x3)
    return kInvalidArgument;
  std::memset(p + 16, 0, 368 - 16);
  uint32_t type = 1; // GPU
  std::memcpy(p + 16, &type, 4);
  std::snprintf(p + 112, 256, "%s", kDeviceName);
  return kSuccess;
}

API ze_result_t zeDeviceGetMemoryProperties(void *device, uint32_t *count,
                                            MemoryProperties *props) {
  if (device != &deviceTag)
    return kInvalidNullHandle;
  if (props)
    for (uint32_t i = 0; i < *count && i < 2; ++i) {
      char *p = reinterpret_cast<char *>(props) + i * 296;
      if (reinterpret_cast<Stype *>(p)->stype != 0x7)
        return kInvalidArgument;
      uint64_t size = 8ull << 30;
      std::memcpy(p + 32, &size, 8);
    }
  *count = 2;
  return kSuccess;
}

API ze_result_t zeDeviceGetCommandQueueGroupProperties(void *device,
                                                       uint32_t *count,
                                                       QueueGroupProperties *props) {
  if (device != &deviceTag)
    return kInvalidNullHandle;
  struct Group {
    uint32_t stype;
    void *pNext;
    uint32_t flags;
    size_t fill;
    uint32_t queues;
  };
  if (props)
    for (uint32_t i = 0; i < *count && i < 2; ++i) {
      auto *g = reinterpret_cast<Group *>(props) + i;
      if (g->stype != 0x6)
        return kInvalidArgument;
      g->flags = i == 0 ? 2 /* copy */ : 1 | 2 /* compute, copy */;
      g->fill = 16;
      g->queues = 1;
    }
  *count = 2;
  return kSuccess;
}

API ze_result_t zeContextCreate(void *driver, const Desc *, void **context) {
  if (driver != &driverTag)
    return kInvalidNullHandle;
  *context = new int(0);
  return kSuccess;
}

API ze_result_t zeContextDestroy(void *context) {
  delete static_cast<int *>(context);
  return kSuccess;
}

API ze_result_t zeCommandQueueCreate(void *context, void *device,
                                     const QueueDesc *queueDesc, void **queue) {
  // desc: stype, pad, pNext (2 words), ordinal, index, flags, mode, priority.
  auto *desc = reinterpret_cast<const uint32_t *>(queueDesc);
  if (!context || device != &deviceTag || desc[0] != 0xe || desc[4] != 1)
    return kInvalidArgument;
  *queue = new int(desc[4]);
  return kSuccess;
}

API ze_result_t zeCommandQueueDestroy(void *queue) {
  delete static_cast<int *>(queue);
  return kSuccess;
}

API ze_result_t zeCommandListCreate(void *context, void *device,
                                    const Desc *listDesc, void **list) {
  auto *desc = reinterpret_cast<const uint32_t *>(listDesc);
  if (!context || device != &deviceTag || desc[0] != 0xf || desc[4] != 1)
    return kInvalidArgument;
  *list = new List{static_cast<int>(desc[4])};
  return kSuccess;
}

API ze_result_t zeCommandListDestroy(void *list) {
  delete static_cast<List *>(list);
  return kSuccess;
}

API ze_result_t zeCommandListClose(void *list) {
  static_cast<List *>(list)->closed = true;
  return kSuccess;
}

API ze_result_t zeCommandListReset(void *list) {
  auto *l = static_cast<List *>(list);
  l->closed = false;
  l->barrierPending = true;
  l->commands.clear();
  return kSuccess;
}

API ze_result_t zeCommandListAppendBarrier(void *list, void *, uint32_t,
                                          void **) {
  auto *l = static_cast<List *>(list);
  if (!l || l->closed)
    return kInvalidArgument;
  l->barrierPending = true;
  return kSuccess;
}

API ze_result_t zeCommandListAppendMemoryCopy(void *list, void *dst,
                                             const void *src, size_t n, void *,
                                             uint32_t, void **) {
  return append(list, [=] {
    if (!inRange(dst, n) && !inRange(src, n))
      return false; // One side must be device memory.
    std::memcpy(dst, src, n);
    return true;
  });
}

API ze_result_t zeCommandListAppendMemoryFill(void *list, void *p,
                                             const void *pattern, size_t size,
                                             size_t n, void *, uint32_t,
                                             void **) {
  if (size != 1)
    return kInvalidArgument;
  uint8_t v = *static_cast<const uint8_t *>(pattern);
  return append(list, [=] {
    if (!inRange(p, n))
      return false;
    std::memset(p, v, n);
    return true;
  });
}

API ze_result_t zeCommandListAppendLaunchKernel(void *list, void *kernel,
                                               const GroupCount *groupCount,
                                               void *, uint32_t, void **) {
  auto *groups = reinterpret_cast<const uint32_t *>(groupCount);
  MockKernel k = *static_cast<MockKernel *>(kernel); // Arguments captured.
  if (!k.group[0] || !groups[0] || !groups[1] || !groups[2])
    return kInvalidArgument;
  unsigned grid[3] = {groups[0], groups[1], groups[2]};
  return append(list,
                [=] { return launch(*k.kernel, grid, k.group, 0, k.args); });
}

API ze_result_t zeCommandQueueExecuteCommandLists(void *queue, uint32_t count,
                                                  void **lists, void *fence) {
  if (!queue || !fence)
    return kInvalidArgument;
  for (uint32_t i = 0; i < count; ++i) {
    auto *l = static_cast<List *>(lists[i]);
    if (!l->closed)
      return kInvalidArgument;
    for (auto &command : l->commands)
      if (!command())
        return kDeviceLost;
  }
  *static_cast<int *>(fence) = 1;
  return kSuccess;
}

API ze_result_t zeFenceCreate(void *queue, const Desc *, void **fence) {
  if (!queue)
    return kInvalidNullHandle;
  *fence = new int(0);
  return kSuccess;
}

API ze_result_t zeFenceDestroy(void *fence) {
  delete static_cast<int *>(fence);
  return kSuccess;
}

API ze_result_t zeFenceHostSynchronize(void *fence, uint64_t) {
  if (*static_cast<int *>(fence) != 1)
    return kInvalidArgument; // Would wait forever.
  sync();
  return kSuccess;
}

API ze_result_t zeFenceReset(void *fence) {
  *static_cast<int *>(fence) = 0;
  return kSuccess;
}

API ze_result_t zeMemAllocDevice(void *context, const Desc *, size_t size,
                                 size_t alignment, void *device, void **p) {
  if (!context || device != &deviceTag || size == 0 || alignment > 64)
    return kInvalidArgument;
  *p = allocate(size);
  return kSuccess;
}

API ze_result_t zeMemAllocHost(void *context, const Desc *, size_t size,
                               size_t, void **p) {
  if (!context || size == 0)
    return kInvalidArgument;
  *p = std::malloc(size);
  return kSuccess;
}

API ze_result_t zeMemFree(void *context, void *p) {
  if (!context)
    return kInvalidNullHandle;
  if (!release(p))
    std::free(p); // A host allocation.
  return kSuccess;
}

API ze_result_t zeModuleCreate(void *context, void *device,
                               const ModuleDesc *desc, void **module,
                               void **log) {
  struct Layout {
    uint32_t stype;
    const void *pNext;
    uint32_t format;
    size_t size;
    const uint8_t *input;
    const char *flags;
    const void *constants;
  };
  auto *d = reinterpret_cast<const Layout *>(desc);
  if (!context || device != &deviceTag || d->stype != 0x1b || d->format != 0)
    return kInvalidArgument;
  std::string text(reinterpret_cast<const char *>(d->input), d->size);
  if (log)
    *log = new Log();
  if (text.find("syntax error") != std::string::npos) {
    if (log)
      static_cast<Log *>(*log)->text = "error: mock syntax error in kernel";
    return kBuildFailure;
  }
  Module *m = parseModule(text);
  if (!m)
    return kBuildFailure;
  *module = m;
  return kSuccess;
}

API ze_result_t zeModuleDestroy(void *module) {
  freeModule(static_cast<Module *>(module));
  return kSuccess;
}

API ze_result_t zeModuleBuildLogGetString(void *log, size_t *size, char *out) {
  const std::string &text = static_cast<Log *>(log)->text;
  if (out)
    std::memcpy(out, text.c_str(), std::min(*size, text.size() + 1));
  *size = text.size() + 1;
  return kSuccess;
}

API ze_result_t zeModuleBuildLogDestroy(void *log) {
  delete static_cast<Log *>(log);
  return kSuccess;
}

API ze_result_t zeKernelCreate(void *module, const KernelDesc *desc,
                               void **kernel) {
  struct Layout {
    uint32_t stype;
    const void *pNext;
    uint32_t flags;
    const char *name;
  };
  auto *d = reinterpret_cast<const Layout *>(desc);
  if (d->stype != 0x1d)
    return kInvalidArgument;
  const Kernel *k = findKernel(static_cast<Module *>(module), d->name);
  if (!k)
    return kInvalidKernelName;
  *kernel = new MockKernel{k};
  return kSuccess;
}

API ze_result_t zeKernelDestroy(void *kernel) {
  delete static_cast<MockKernel *>(kernel);
  return kSuccess;
}

API ze_result_t zeKernelSetGroupSize(void *kernel, uint32_t x, uint32_t y,
                                     uint32_t z) {
  if (!x || !y || !z || x * y * z > 1024)
    return kInvalidArgument;
  auto *k = static_cast<MockKernel *>(kernel);
  k->group[0] = x;
  k->group[1] = y;
  k->group[2] = z;
  return kSuccess;
}

API ze_result_t zeKernelSetArgumentValue(void *kernel, uint32_t index,
                                         size_t size, const void *value) {
  auto *k = static_cast<MockKernel *>(kernel);
  if (index >= k->kernel->params || size != 8 || !value)
    return kInvalidArgument;
  std::memcpy(&k->args[index], value, 8);
  return kSuccess;
}
}

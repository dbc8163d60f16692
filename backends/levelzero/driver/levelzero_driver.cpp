//===- levelzero_driver.cpp - Kiln runtime driver for Level Zero GPUs -----===//
//
// Runs SPIR-V kernels (format "spirv") through the Level Zero loader,
// libze_loader.so.1 (or $KILN_LEVEL_ZERO_LIBRARY), opened with dlopen on
// first use. The types and entry points used are declared here, with the
// layouts of ze_api.h 1.0, so the driver builds without the headers.
//
// Kernel ABI as for cuda: one device pointer argument per binding (buffer
// base + offset, in binding order); group size = the entry's
// workgroup_size, group count = the dispatch's workgroups.
//
// Work is recorded into one command list per device, with a barrier after
// every command so each dispatch sees what the previous one wrote, and
// submitted to the device's queue when the host needs a result: on
// synchronize, on copies (host memory is staged through a host allocation
// the device can read) and before anything is freed. Only 1.0 entry points
// are used, so older loaders work too.
//
//===----------------------------------------------------------------------===//
#include "kiln/driver.h"

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dlfcn.h>
#include <string>
#include <vector>

namespace {

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

struct Api {
  ze_result_t (*init)(uint32_t);
  ze_result_t (*driverGet)(uint32_t *, Handle *);
  ze_result_t (*deviceGet)(Handle, uint32_t *, Handle *);
  ze_result_t (*deviceGetProperties)(Handle, DeviceProperties *);
  ze_result_t (*deviceGetMemoryProperties)(Handle, uint32_t *,
                                           MemoryProperties *);
  ze_result_t (*deviceGetCommandQueueGroupProperties)(Handle, uint32_t *,
                                                      QueueGroupProperties *);
  ze_result_t (*contextCreate)(Handle, const Desc *, Handle *);
  ze_result_t (*contextDestroy)(Handle);
  ze_result_t (*commandQueueCreate)(Handle, Handle, const QueueDesc *, Handle *);
  ze_result_t (*commandQueueDestroy)(Handle);
  ze_result_t (*commandQueueExecuteCommandLists)(Handle, uint32_t, Handle *,
                                                 Handle);
  ze_result_t (*commandListCreate)(Handle, Handle, const Desc *, Handle *);
  ze_result_t (*commandListDestroy)(Handle);
  ze_result_t (*commandListClose)(Handle);
  ze_result_t (*commandListReset)(Handle);
  ze_result_t (*appendBarrier)(Handle, Handle, uint32_t, Handle *);
  ze_result_t (*appendMemoryCopy)(Handle, void *, const void *, size_t, Handle,
                                  uint32_t, Handle *);
  ze_result_t (*appendMemoryFill)(Handle, void *, const void *, size_t, size_t,
                                  Handle, uint32_t, Handle *);
  ze_result_t (*appendLaunchKernel)(Handle, Handle, const GroupCount *, Handle,
                                    uint32_t, Handle *);
  ze_result_t (*fenceCreate)(Handle, const Desc *, Handle *);
  ze_result_t (*fenceDestroy)(Handle);
  ze_result_t (*fenceHostSynchronize)(Handle, uint64_t);
  ze_result_t (*fenceReset)(Handle);
  ze_result_t (*memAllocDevice)(Handle, const Desc *, size_t, size_t, Handle,
                                void **);
  ze_result_t (*memAllocHost)(Handle, const Desc *, size_t, size_t, void **);
  ze_result_t (*memFree)(Handle, void *);
  ze_result_t (*moduleCreate)(Handle, Handle, const ModuleDesc *, Handle *,
                              Handle *);
  ze_result_t (*moduleDestroy)(Handle);
  ze_result_t (*moduleBuildLogGetString)(Handle, size_t *, char *);
  ze_result_t (*moduleBuildLogDestroy)(Handle);
  ze_result_t (*kernelCreate)(Handle, const KernelDesc *, Handle *);
  ze_result_t (*kernelDestroy)(Handle);
  ze_result_t (*kernelSetGroupSize)(Handle, uint32_t, uint32_t, uint32_t);
  ze_result_t (*kernelSetArgumentValue)(Handle, uint32_t, size_t, const void *);
};

struct Gpu {
  Handle driver, device;
  uint32_t queueOrdinal; // A command queue group that can run kernels.
  std::string description;
};

struct State {
  Api api{};
  std::string error;
  std::vector<Gpu> gpus;
};

template <typename Fn>
void bind(void *lib, const char *symbol, Fn &fn, std::string &missing) {
  fn = reinterpret_cast<Fn>(::dlsym(lib, symbol));
  if (!fn && missing.empty())
    missing = symbol;
}

/// Level Zero has no error-name query; these are the results worth naming.
std::string errorText(ze_result_t r, const char *what) {
  static const struct {
    ze_result_t code;
    const char *name;
  } names[] = {
      {0x70000001, "ZE_RESULT_ERROR_DEVICE_LOST"},
      {0x70000002, "ZE_RESULT_ERROR_OUT_OF_HOST_MEMORY"},
      {0x70000003, "ZE_RESULT_ERROR_OUT_OF_DEVICE_MEMORY"},
      {0x70000004, "ZE_RESULT_ERROR_MODULE_BUILD_FAILURE"},
      {0x70010000, "ZE_RESULT_ERROR_INSUFFICIENT_PERMISSIONS"},
      {0x70010001, "ZE_RESULT_ERROR_NOT_AVAILABLE"},
      {0x70020000, "ZE_RESULT_ERROR_DEPENDENCY_UNAVAILABLE"},
      {0x78000001, "ZE_RESULT_ERROR_UNINITIALIZED"},
      {0x78000002, "ZE_RESULT_ERROR_UNSUPPORTED_VERSION"},
      {0x78000003, "ZE_RESULT_ERROR_UNSUPPORTED_FEATURE"},
      {0x78000004, "ZE_RESULT_ERROR_INVALID_ARGUMENT"},
      {0x78000008, "ZE_RESULT_ERROR_INVALID_SIZE"},
      {0x78000011, "ZE_RESULT_ERROR_INVALID_KERNEL_NAME"},
      {0x78000013, "ZE_RESULT_ERROR_INVALID_GROUP_SIZE_DIMENSION"},
      {0x7ffffffe, "ZE_RESULT_ERROR_UNKNOWN"},
  };
  const char *name = "ze_result_t";
  for (const auto &n : names)
    if (n.code == r)
      name = n.name;
  char code[16];
  std::snprintf(code, sizeof(code), "0x%x", r);
  return std::string(what) + " failed: " + name + " (" + code + ")";
}

kiln_status fail(ze_result_t r, const char *what) {
  return kiln_driver_error(KILN_ERROR_INTERNAL, "%s",
                           errorText(r, what).c_str());
}

std::string formatBytes(uint64_t bytes) {
  constexpr uint64_t mib = 1ull << 20, gib = 1ull << 30;
  return bytes >= gib ? std::to_string((bytes + gib / 2) / gib) + " GiB"
                      : std::to_string((bytes + mib / 2) / mib) + " MiB";
}

State load() {
  State s;
  const char *env = std::getenv("KILN_LEVEL_ZERO_LIBRARY");
  std::string path = env && *env ? env : "libze_loader.so.1";
  void *lib = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    const char *err = ::dlerror();
    if (!err || std::strstr(err, "No such file"))
      s.error = path + " not found";
    else
      s.error = "cannot load " + path + ": " + err;
    if (env && *env)
      s.error += " (from KILN_LEVEL_ZERO_LIBRARY)";
    return s;
  }
  Api &a = s.api;
  std::string missing;
  bind(lib, "zeInit", a.init, missing);
  bind(lib, "zeDriverGet", a.driverGet, missing);
  bind(lib, "zeDeviceGet", a.deviceGet, missing);
  bind(lib, "zeDeviceGetProperties", a.deviceGetProperties, missing);
  bind(lib, "zeDeviceGetMemoryProperties", a.deviceGetMemoryProperties, missing);
  bind(lib, "zeDeviceGetCommandQueueGroupProperties",
       a.deviceGetCommandQueueGroupProperties, missing);
  bind(lib, "zeContextCreate", a.contextCreate, missing);
  bind(lib, "zeContextDestroy", a.contextDestroy, missing);
  bind(lib, "zeCommandQueueCreate", a.commandQueueCreate, missing);
  bind(lib, "zeCommandQueueDestroy", a.commandQueueDestroy, missing);
  bind(lib, "zeCommandQueueExecuteCommandLists",
       a.commandQueueExecuteCommandLists, missing);
  bind(lib, "zeCommandListCreate", a.commandListCreate, missing);
  bind(lib, "zeCommandListDestroy", a.commandListDestroy, missing);
  bind(lib, "zeCommandListClose", a.commandListClose, missing);
  bind(lib, "zeCommandListReset", a.commandListReset, missing);
  bind(lib, "zeCommandListAppendBarrier", a.appendBarrier, missing);
  bind(lib, "zeCommandListAppendMemoryCopy", a.appendMemoryCopy, missing);
  bind(lib, "zeCommandListAppendMemoryFill", a.appendMemoryFill, missing);
  bind(lib, "zeCommandListAppendLaunchKernel", a.appendLaunchKernel, missing);
  bind(lib, "zeFenceCreate", a.fenceCreate, missing);
  bind(lib, "zeFenceDestroy", a.fenceDestroy, missing);
  bind(lib, "zeFenceHostSynchronize", a.fenceHostSynchronize, missing);
  bind(lib, "zeFenceReset", a.fenceReset, missing);
  bind(lib, "zeMemAllocDevice", a.memAllocDevice, missing);
  bind(lib, "zeMemAllocHost", a.memAllocHost, missing);
  bind(lib, "zeMemFree", a.memFree, missing);
  bind(lib, "zeModuleCreate", a.moduleCreate, missing);
  bind(lib, "zeModuleDestroy", a.moduleDestroy, missing);
  bind(lib, "zeModuleBuildLogGetString", a.moduleBuildLogGetString, missing);
  bind(lib, "zeModuleBuildLogDestroy", a.moduleBuildLogDestroy, missing);
  bind(lib, "zeKernelCreate", a.kernelCreate, missing);
  bind(lib, "zeKernelDestroy", a.kernelDestroy, missing);
  bind(lib, "zeKernelSetGroupSize", a.kernelSetGroupSize, missing);
  bind(lib, "zeKernelSetArgumentValue", a.kernelSetArgumentValue, missing);
  if (!missing.empty()) {
    s.error = path + " has no " + missing;
    return s;
  }
  if (ze_result_t r = a.init(ZE_INIT_FLAG_GPU_ONLY); r != ZE_RESULT_SUCCESS) {
    s.error = errorText(r, "zeInit");
    return s;
  }
  uint32_t driverCount = 0;
  std::vector<Handle> drivers;
  ze_result_t r = a.driverGet(&driverCount, nullptr);
  if (r == ZE_RESULT_SUCCESS) {
    drivers.resize(driverCount);
    r = a.driverGet(&driverCount, drivers.data());
  }
  if (r != ZE_RESULT_SUCCESS) {
    s.error = errorText(r, "zeDriverGet");
    return s;
  }
  for (Handle driver : drivers) {
    uint32_t n = 0;
    if (a.deviceGet(driver, &n, nullptr) != ZE_RESULT_SUCCESS)
      continue;
    std::vector<Handle> devices(n);
    if (a.deviceGet(driver, &n, devices.data()) != ZE_RESULT_SUCCESS)
      continue;
    for (Handle device : devices) {
      DeviceProperties props{};
      props.stype = kDeviceProperties;
      if (a.deviceGetProperties(device, &props) != ZE_RESULT_SUCCESS ||
          props.type != ZE_DEVICE_TYPE_GPU)
        continue;
      uint32_t groups = 0;
      a.deviceGetCommandQueueGroupProperties(device, &groups, nullptr);
      std::vector<QueueGroupProperties> gp(groups);
      for (QueueGroupProperties &g : gp)
        g.stype = kCommandQueueGroupProperties;
      if (groups &&
          a.deviceGetCommandQueueGroupProperties(device, &groups, gp.data()) !=
              ZE_RESULT_SUCCESS)
        continue;
      uint32_t ordinal = 0;
      while (ordinal < groups &&
             !(gp[ordinal].flags & ZE_COMMAND_QUEUE_GROUP_PROPERTY_FLAG_COMPUTE))
        ++ordinal;
      if (ordinal == groups)
        continue; // Cannot run kernels.
      uint32_t memCount = 0;
      uint64_t memory = 0;
      a.deviceGetMemoryProperties(device, &memCount, nullptr);
      std::vector<MemoryProperties> mp(memCount);
      for (MemoryProperties &m : mp)
        m.stype = kDeviceMemoryProperties;
      if (memCount && a.deviceGetMemoryProperties(device, &memCount,
                                                  mp.data()) == ZE_RESULT_SUCCESS)
        for (const MemoryProperties &m : mp)
          memory += m.totalSize;
      props.name[sizeof(props.name) - 1] = '\0';
      s.gpus.push_back({driver, device, ordinal,
                        std::string(props.name) + ", " + formatBytes(memory)});
    }
  }
  if (s.gpus.empty())
    s.error = "no Level Zero GPU can run kernels";
  return s;
}

const State &state() {
  static const State s = load();
  return s;
}

struct Device {
  const Api *api;
  Handle context = nullptr, queue = nullptr, list = nullptr, fence = nullptr;
  Handle gpu = nullptr;
  bool pending = false; // The list holds commands not yet submitted.
  void *staging = nullptr;
  size_t stagingSize = 0;
};

struct Executable {
  Handle module = nullptr;
  std::vector<Handle> kernels;
};

uint32_t deviceCount() {
  size_t n = state().gpus.size();
  return n ? static_cast<uint32_t>(n) : 1;
}

kiln_status deviceDescribe(uint32_t index, kiln_driver_device_desc *desc) {
  const State &s = state();
  if (s.gpus.empty() && index == 0) {
    static const std::string text = "unavailable: " + s.error;
    desc->description = text.c_str();
    desc->available = 0;
    return KILN_OK;
  }
  if (index >= s.gpus.size())
    return kiln_driver_error(KILN_ERROR_NOT_FOUND, "no levelzero device %u",
                             index);
  desc->description = s.gpus[index].description.c_str();
  desc->available = 1;
  return KILN_OK;
}

/// Appends a barrier so the next command sees this one's results.
kiln_status ordered(Device *d, ze_result_t r, const char *what) {
  if (r != ZE_RESULT_SUCCESS)
    return fail(r, what);
  d->pending = true;
  if (ze_result_t b = d->api->appendBarrier(d->list, nullptr, 0, nullptr);
      b != ZE_RESULT_SUCCESS)
    return fail(b, "zeCommandListAppendBarrier");
  return KILN_OK;
}

/// Submits the recorded commands and waits for them.
kiln_status flush(Device *d) {
  if (!d->pending)
    return KILN_OK;
  const Api &a = *d->api;
  d->pending = false;
  ze_result_t r = a.commandListClose(d->list);
  if (r != ZE_RESULT_SUCCESS)
    return fail(r, "zeCommandListClose");
  r = a.commandQueueExecuteCommandLists(d->queue, 1, &d->list, d->fence);
  if (r != ZE_RESULT_SUCCESS) {
    a.commandListReset(d->list);
    return fail(r, "zeCommandQueueExecuteCommandLists");
  }
  r = a.fenceHostSynchronize(d->fence, UINT64_MAX);
  if (r != ZE_RESULT_SUCCESS)
    return fail(r, "zeFenceHostSynchronize");
  if ((r = a.fenceReset(d->fence)) != ZE_RESULT_SUCCESS)
    return fail(r, "zeFenceReset");
  if ((r = a.commandListReset(d->list)) != ZE_RESULT_SUCCESS)
    return fail(r, "zeCommandListReset");
  return KILN_OK;
}

void deviceClose(void *device) {
  auto *d = static_cast<Device *>(device);
  const Api &a = *d->api;
  if (d->list)
    flush(d);
  if (d->staging)
    a.memFree(d->context, d->staging);
  if (d->fence)
    a.fenceDestroy(d->fence);
  if (d->list)
    a.commandListDestroy(d->list);
  if (d->queue)
    a.commandQueueDestroy(d->queue);
  if (d->context)
    a.contextDestroy(d->context);
  delete d;
}

kiln_status deviceOpen(uint32_t index, const kiln_driver_device_options *,
                       void **device) {
  const State &s = state();
  if (s.gpus.empty())
    return kiln_driver_error(KILN_ERROR_UNAVAILABLE, "%s", s.error.c_str());
  if (index >= s.gpus.size())
    return kiln_driver_error(KILN_ERROR_NOT_FOUND, "no levelzero device %u",
                             index);
  const Gpu &g = s.gpus[index];
  const Api &a = s.api;
  auto *d = new Device{&a};
  d->gpu = g.device;
  Desc contextDesc{kContextDesc, nullptr, 0, 0};
  QueueDesc queueDesc{kCommandQueueDesc, nullptr, g.queueOrdinal, 0, 0,
                      ZE_COMMAND_QUEUE_MODE_ASYNCHRONOUS, 0};
  Desc listDesc{kCommandListDesc, nullptr, g.queueOrdinal, 0};
  Desc fenceDesc{kFenceDesc, nullptr, 0, 0};
  const char *what = "zeContextCreate";
  ze_result_t r = a.contextCreate(g.driver, &contextDesc, &d->context);
  if (r == ZE_RESULT_SUCCESS) {
    what = "zeCommandQueueCreate";
    r = a.commandQueueCreate(d->context, g.device, &queueDesc, &d->queue);
  }
  if (r == ZE_RESULT_SUCCESS) {
    what = "zeCommandListCreate";
    r = a.commandListCreate(d->context, g.device, &listDesc, &d->list);
  }
  if (r == ZE_RESULT_SUCCESS) {
    what = "zeFenceCreate";
    r = a.fenceCreate(d->queue, &fenceDesc, &d->fence);
  }
  if (r != ZE_RESULT_SUCCESS) {
    deviceClose(d);
    return fail(r, what);
  }
  *device = d;
  return KILN_OK;
}

kiln_status bufferAlloc(void *device, uint64_t size, void **buffer) {
  auto *d = static_cast<Device *>(device);
  Desc desc{kDeviceMemAllocDesc, nullptr, 0, 0};
  void *p = nullptr;
  if (ze_result_t r = d->api->memAllocDevice(d->context, &desc, size ? size : 1,
                                             64, d->gpu, &p);
      r != ZE_RESULT_SUCCESS)
    return fail(r, ("zeMemAllocDevice of " + std::to_string(size) + " bytes")
                       .c_str());
  static const uint8_t zero = 0;
  if (size)
    if (kiln_status st = ordered(
            d, d->api->appendMemoryFill(d->list, p, &zero, 1, size, nullptr, 0,
                                        nullptr),
            "zeCommandListAppendMemoryFill");
        st != KILN_OK) {
      d->api->memFree(d->context, p);
      return st;
    }
  *buffer = p;
  return KILN_OK;
}

void bufferFree(void *device, void *buffer) {
  auto *d = static_cast<Device *>(device);
  flush(d); // Recorded commands may still use it.
  d->api->memFree(d->context, buffer);
}

/// Host memory the device can copy from and to, at least `size` bytes.
kiln_status staging(Device *d, uint64_t size) {
  if (d->stagingSize >= size)
    return KILN_OK;
  if (kiln_status st = flush(d); st != KILN_OK)
    return st;
  if (d->staging)
    d->api->memFree(d->context, d->staging);
  d->staging = nullptr;
  d->stagingSize = 0;
  Desc desc{kHostMemAllocDesc, nullptr, 0, 0};
  if (ze_result_t r = d->api->memAllocHost(d->context, &desc, size, 64,
                                           &d->staging);
      r != ZE_RESULT_SUCCESS)
    return fail(r, "zeMemAllocHost");
  d->stagingSize = size;
  return KILN_OK;
}

kiln_status bufferWrite(void *device, void *buffer, uint64_t offset,
                        const void *src, uint64_t size) {
  auto *d = static_cast<Device *>(device);
  if (!size)
    return KILN_OK;
  if (kiln_status st = staging(d, size); st != KILN_OK)
    return st;
  std::memcpy(d->staging, src, size);
  if (kiln_status st = ordered(
          d, d->api->appendMemoryCopy(d->list, static_cast<char *>(buffer) + offset,
                                      d->staging, size, nullptr, 0, nullptr),
          "zeCommandListAppendMemoryCopy");
      st != KILN_OK)
    return st;
  // The staging memory is reused by the next copy.
  return flush(d);
}

kiln_status bufferRead(void *device, void *buffer, uint64_t offset, void *dst,
                       uint64_t size) {
  auto *d = static_cast<Device *>(device);
  if (!size)
    return KILN_OK;
  if (kiln_status st = staging(d, size); st != KILN_OK)
    return st;
  if (kiln_status st = ordered(
          d, d->api->appendMemoryCopy(d->list, d->staging,
                                      static_cast<char *>(buffer) + offset,
                                      size, nullptr, 0, nullptr),
          "zeCommandListAppendMemoryCopy");
      st != KILN_OK)
    return st;
  if (kiln_status st = flush(d); st != KILN_OK)
    return st;
  std::memcpy(dst, d->staging, size);
  return KILN_OK;
}

void executableUnload(void *device, void *executable) {
  auto *d = static_cast<Device *>(device);
  auto *exe = static_cast<Executable *>(executable);
  flush(d);
  for (Handle k : exe->kernels)
    d->api->kernelDestroy(k);
  if (exe->module)
    d->api->moduleDestroy(exe->module);
  delete exe;
}

kiln_status executableLoad(void *device, const char *format, const void *image,
                           uint64_t size, const kiln_driver_entry *entries,
                           uint32_t entryCount, void **executable) {
  auto *d = static_cast<Device *>(device);
  const Api &a = *d->api;
  if (std::strcmp(format, "spirv") != 0)
    return kiln_driver_error(KILN_ERROR_UNAVAILABLE,
                             "levelzero driver cannot load format '%s' (it "
                             "loads 'spirv')",
                             format);
  const uint8_t magic[4] = {0x03, 0x02, 0x23, 0x07}; // 0x07230203, LE.
  if (size < 20 || std::memcmp(image, magic, 4) != 0)
    return kiln_driver_error(KILN_ERROR_CORRUPT,
                             "SPIR-V image (%llu bytes) lacks the SPIR-V magic "
                             "number",
                             static_cast<unsigned long long>(size));
  ModuleDesc desc{kModuleDesc, nullptr, ZE_MODULE_FORMAT_IL_SPIRV, size,
                  static_cast<const uint8_t *>(image), "", nullptr};
  auto *exe = new Executable();
  Handle log = nullptr;
  ze_result_t r = a.moduleCreate(d->context, d->gpu, &desc, &exe->module, &log);
  if (r != ZE_RESULT_SUCCESS) {
    std::string msg = errorText(r, "zeModuleCreate");
    size_t logSize = 0;
    if (log && a.moduleBuildLogGetString(log, &logSize, nullptr) ==
                   ZE_RESULT_SUCCESS && logSize > 1) {
      std::string text(logSize, '\0');
      if (a.moduleBuildLogGetString(log, &logSize, text.data()) ==
          ZE_RESULT_SUCCESS)
        msg += "; build log: " + std::string(text.c_str());
    }
    if (log)
      a.moduleBuildLogDestroy(log);
    delete exe;
    return kiln_driver_error(KILN_ERROR_INTERNAL, "%s", msg.c_str());
  }
  if (log)
    a.moduleBuildLogDestroy(log);
  for (uint32_t i = 0; i < entryCount; ++i) {
    KernelDesc kd{kKernelDesc, nullptr, 0, entries[i].name};
    Handle k = nullptr;
    r = a.kernelCreate(exe->module, &kd, &k);
    if (r != ZE_RESULT_SUCCESS) {
      executableUnload(d, exe);
      if (r == ZE_RESULT_ERROR_INVALID_KERNEL_NAME)
        return kiln_driver_error(KILN_ERROR_NOT_FOUND,
                                 "executable has no entry point '%s'",
                                 entries[i].name);
      return fail(r, "zeKernelCreate");
    }
    exe->kernels.push_back(k);
    const uint32_t *g = entries[i].workgroup_size;
    if ((r = a.kernelSetGroupSize(k, g[0], g[1], g[2])) != ZE_RESULT_SUCCESS) {
      executableUnload(d, exe);
      return fail(r, ("zeKernelSetGroupSize for '" +
                      std::string(entries[i].name) + "'")
                         .c_str());
    }
  }
  *executable = exe;
  return KILN_OK;
}

kiln_status dispatch(void *device, void *executable, uint32_t entry,
                     const uint32_t workgroups[3],
                     const kiln_driver_binding *bindings, uint32_t count) {
  auto *d = static_cast<Device *>(device);
  auto *exe = static_cast<Executable *>(executable);
  if (entry >= exe->kernels.size())
    return kiln_driver_error(KILN_ERROR_INVALID_ARGUMENT,
                             "entry %u out of range", entry);
  if (!workgroups[0] || !workgroups[1] || !workgroups[2])
    return KILN_OK;
  Handle k = exe->kernels[entry];
  // Arguments are captured when the launch is appended.
  for (uint32_t i = 0; i < count; ++i) {
    void *p = static_cast<char *>(bindings[i].buffer) + bindings[i].offset;
    if (ze_result_t r = d->api->kernelSetArgumentValue(k, i, sizeof(p), &p);
        r != ZE_RESULT_SUCCESS)
      return fail(r, "zeKernelSetArgumentValue");
  }
  GroupCount groups{workgroups[0], workgroups[1], workgroups[2]};
  return ordered(d,
                 d->api->appendLaunchKernel(d->list, k, &groups, nullptr, 0,
                                            nullptr),
                 "zeCommandListAppendLaunchKernel");
}

kiln_status synchronize(void *device) {
  return flush(static_cast<Device *>(device));
}

const kiln_driver levelZeroDriver = {
    KILN_DRIVER_ABI_VERSION,
    "levelzero",
    deviceCount,
    deviceDescribe,
    deviceOpen,
    deviceClose,
    bufferAlloc,
    bufferFree,
    bufferWrite,
    bufferRead,
    executableLoad,
    executableUnload,
    dispatch,
    synchronize,
    nullptr, // dispatch_times: no profiling.
};

} // namespace

extern "C" const kiln_driver *kiln_driver_levelzero_entry(void) {
  return &levelZeroDriver;
}

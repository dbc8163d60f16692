//===- levelzero_driver.cpp - Kiln runtime driver for Level Zero GPUs -----===//
//
// Runs SPIR-V kernels (format "spirv") through the Level Zero loader,
// libze_loader.so.1 (or $KILN_LEVEL_ZERO_LIBRARY), opened with dlopen on
// first use; the types and entry points used are declared in
// levelzero_symbols.h, so the driver builds without the headers.
//
// Kernel ABI as for cuda: one device pointer argument per binding (buffer
// base + offset, in binding order); group size = the entry's
// workgroup_size, group count = the dispatch's workgroups.
//
// Work is recorded into one command list per device, with a barrier after
// every command so each dispatch sees what the previous one wrote, and
// submitted to the device's queue when the host needs a result: on
// synchronize, on copies (host memory is staged through a host allocation
// the device can read) and before anything is freed.
//
//===----------------------------------------------------------------------===//
#include "levelzero_symbols.h"
#include "driver_util.h"

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

namespace {

using namespace kiln::levelzero;
using kiln::driver::DeviceList;

struct Gpu {
  Handle driver, device;
  uint32_t queueOrdinal; // A command queue group that can run kernels.
  std::string description;
};

struct State {
  LevelZeroSymbols api;
  DeviceList<Gpu> devices;
};

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

/// Why there is no usable GPU, or "" with `gpus` filled.
std::string findGpus(const LevelZeroSymbols &a, std::vector<Gpu> &gpus) {
  if (ze_result_t r = a.zeInit(ZE_INIT_FLAG_GPU_ONLY); r != ZE_RESULT_SUCCESS)
    return errorText(r, "zeInit");
  uint32_t driverCount = 0;
  std::vector<Handle> drivers;
  ze_result_t r = a.zeDriverGet(&driverCount, nullptr);
  if (r == ZE_RESULT_SUCCESS) {
    drivers.resize(driverCount);
    r = a.zeDriverGet(&driverCount, drivers.data());
  }
  if (r != ZE_RESULT_SUCCESS)
    return errorText(r, "zeDriverGet");
  for (Handle driver : drivers) {
    uint32_t n = 0;
    if (a.zeDeviceGet(driver, &n, nullptr) != ZE_RESULT_SUCCESS)
      continue;
    std::vector<Handle> devices(n);
    if (a.zeDeviceGet(driver, &n, devices.data()) != ZE_RESULT_SUCCESS)
      continue;
    for (Handle device : devices) {
      DeviceProperties props{};
      props.stype = kDeviceProperties;
      if (a.zeDeviceGetProperties(device, &props) != ZE_RESULT_SUCCESS ||
          props.type != ZE_DEVICE_TYPE_GPU)
        continue;
      uint32_t groups = 0;
      a.zeDeviceGetCommandQueueGroupProperties(device, &groups, nullptr);
      std::vector<QueueGroupProperties> gp(groups);
      for (QueueGroupProperties &g : gp)
        g.stype = kCommandQueueGroupProperties;
      if (groups &&
          a.zeDeviceGetCommandQueueGroupProperties(device, &groups, gp.data()) !=
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
      a.zeDeviceGetMemoryProperties(device, &memCount, nullptr);
      std::vector<MemoryProperties> mp(memCount);
      for (MemoryProperties &m : mp)
        m.stype = kDeviceMemoryProperties;
      if (memCount && a.zeDeviceGetMemoryProperties(device, &memCount,
                                                  mp.data()) == ZE_RESULT_SUCCESS)
        for (const MemoryProperties &m : mp)
          memory += m.totalSize;
      props.name[sizeof(props.name) - 1] = '\0';
      gpus.push_back({driver, device, ordinal,
                        std::string(props.name) + ", " + kiln::driver::formatBytes(memory)});
    }
  }
  return gpus.empty() ? "no Level Zero GPU can run kernels" : "";
}


const State &state() {
  static const State s = kiln::driver::loadGpus<State>(
      "KILN_LEVEL_ZERO_LIBRARY", {"libze_loader.so.1"}, "", findGpus);
  return s;
}

struct Device {
  const LevelZeroSymbols *api;
  Handle context = nullptr, queue = nullptr, list = nullptr, fence = nullptr;
  Handle gpu = nullptr;
  bool pending = false; // The list holds commands not yet submitted.
  void *staging = nullptr;
  size_t stagingSize = 0;
  kiln::driver::KernelArgs args;
};

struct Executable {
  Handle module = nullptr;
  std::vector<Handle> kernels;
};

constexpr const char *kName = "levelzero";

uint32_t deviceCount() { return state().devices.count(); }

kiln_status deviceDescribe(uint32_t index, kiln_driver_device_desc *desc) {
  return state().devices.describe(kName, index, desc);
}

/// Appends a barrier so the next command sees this one's results.
kiln_status ordered(Device *d, ze_result_t r, const char *what) {
  if (r != ZE_RESULT_SUCCESS)
    return fail(r, what);
  d->pending = true;
  if (ze_result_t b = d->api->zeCommandListAppendBarrier(d->list, nullptr, 0, nullptr);
      b != ZE_RESULT_SUCCESS)
    return fail(b, "zeCommandListAppendBarrier");
  return KILN_OK;
}

/// Submits the recorded commands and waits for them.
kiln_status flush(Device *d) {
  if (!d->pending)
    return KILN_OK;
  const LevelZeroSymbols &a = *d->api;
  d->pending = false;
  ze_result_t r = a.zeCommandListClose(d->list);
  if (r != ZE_RESULT_SUCCESS)
    return fail(r, "zeCommandListClose");
  r = a.zeCommandQueueExecuteCommandLists(d->queue, 1, &d->list, d->fence);
  if (r != ZE_RESULT_SUCCESS) {
    a.zeCommandListReset(d->list);
    return fail(r, "zeCommandQueueExecuteCommandLists");
  }
  r = a.zeFenceHostSynchronize(d->fence, UINT64_MAX);
  if (r != ZE_RESULT_SUCCESS)
    return fail(r, "zeFenceHostSynchronize");
  if ((r = a.zeFenceReset(d->fence)) != ZE_RESULT_SUCCESS)
    return fail(r, "zeFenceReset");
  if ((r = a.zeCommandListReset(d->list)) != ZE_RESULT_SUCCESS)
    return fail(r, "zeCommandListReset");
  return KILN_OK;
}

void deviceClose(void *device) {
  auto *d = static_cast<Device *>(device);
  const LevelZeroSymbols &a = *d->api;
  if (d->list)
    flush(d);
  if (d->staging)
    a.zeMemFree(d->context, d->staging);
  if (d->fence)
    a.zeFenceDestroy(d->fence);
  if (d->list)
    a.zeCommandListDestroy(d->list);
  if (d->queue)
    a.zeCommandQueueDestroy(d->queue);
  if (d->context)
    a.zeContextDestroy(d->context);
  delete d;
}

kiln_status deviceOpen(uint32_t index, const kiln_driver_device_options *,
                       void **device) {
  const State &s = state();
  const Gpu *gpu = nullptr;
  if (kiln_status st = s.devices.find(kName, index, gpu); st != KILN_OK)
    return st;
  const Gpu &g = *gpu;
  const LevelZeroSymbols &a = s.api;
  auto *d = new Device{&a};
  d->gpu = g.device;
  Desc contextDesc{kContextDesc, nullptr, 0, 0};
  QueueDesc queueDesc{kCommandQueueDesc, nullptr, g.queueOrdinal, 0, 0,
                      ZE_COMMAND_QUEUE_MODE_ASYNCHRONOUS, 0};
  Desc listDesc{kCommandListDesc, nullptr, g.queueOrdinal, 0};
  Desc fenceDesc{kFenceDesc, nullptr, 0, 0};
  const char *what = "zeContextCreate";
  ze_result_t r = a.zeContextCreate(g.driver, &contextDesc, &d->context);
  if (r == ZE_RESULT_SUCCESS) {
    what = "zeCommandQueueCreate";
    r = a.zeCommandQueueCreate(d->context, g.device, &queueDesc, &d->queue);
  }
  if (r == ZE_RESULT_SUCCESS) {
    what = "zeCommandListCreate";
    r = a.zeCommandListCreate(d->context, g.device, &listDesc, &d->list);
  }
  if (r == ZE_RESULT_SUCCESS) {
    what = "zeFenceCreate";
    r = a.zeFenceCreate(d->queue, &fenceDesc, &d->fence);
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
  if (ze_result_t r = d->api->zeMemAllocDevice(d->context, &desc, size ? size : 1,
                                             64, d->gpu, &p);
      r != ZE_RESULT_SUCCESS)
    return fail(r, ("zeMemAllocDevice of " + std::to_string(size) + " bytes")
                       .c_str());
  static const uint8_t zero = 0;
  if (size)
    if (kiln_status st = ordered(
            d, d->api->zeCommandListAppendMemoryFill(d->list, p, &zero, 1, size, nullptr, 0,
                                        nullptr),
            "zeCommandListAppendMemoryFill");
        st != KILN_OK) {
      d->api->zeMemFree(d->context, p);
      return st;
    }
  *buffer = p;
  return KILN_OK;
}

void bufferFree(void *device, void *buffer) {
  auto *d = static_cast<Device *>(device);
  flush(d); // Recorded commands may still use it.
  d->api->zeMemFree(d->context, buffer);
}

/// Host memory the device can copy from and to, at least `size` bytes.
kiln_status staging(Device *d, uint64_t size) {
  if (d->stagingSize >= size)
    return KILN_OK;
  if (kiln_status st = flush(d); st != KILN_OK)
    return st;
  if (d->staging)
    d->api->zeMemFree(d->context, d->staging);
  d->staging = nullptr;
  d->stagingSize = 0;
  Desc desc{kHostMemAllocDesc, nullptr, 0, 0};
  if (ze_result_t r = d->api->zeMemAllocHost(d->context, &desc, size, 64,
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
          d, d->api->zeCommandListAppendMemoryCopy(d->list, static_cast<char *>(buffer) + offset,
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
          d, d->api->zeCommandListAppendMemoryCopy(d->list, d->staging,
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
    d->api->zeKernelDestroy(k);
  if (exe->module)
    d->api->zeModuleDestroy(exe->module);
  delete exe;
}

kiln_status executableLoad(void *device, const char *format, const void *image,
                           uint64_t size, const kiln_driver_entry *entries,
                           uint32_t entryCount, void **executable) {
  auto *d = static_cast<Device *>(device);
  const LevelZeroSymbols &a = *d->api;
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
  ze_result_t r = a.zeModuleCreate(d->context, d->gpu, &desc, &exe->module, &log);
  if (r != ZE_RESULT_SUCCESS) {
    std::string msg = errorText(r, "zeModuleCreate");
    size_t logSize = 0;
    if (log && a.zeModuleBuildLogGetString(log, &logSize, nullptr) ==
                   ZE_RESULT_SUCCESS && logSize > 1) {
      std::string text(logSize, '\0');
      if (a.zeModuleBuildLogGetString(log, &logSize, text.data()) ==
          ZE_RESULT_SUCCESS)
        msg += "; build log: " + std::string(text.c_str());
    }
    if (log)
      a.zeModuleBuildLogDestroy(log);
    delete exe;
    return kiln_driver_error(KILN_ERROR_INTERNAL, "%s", msg.c_str());
  }
  if (log)
    a.zeModuleBuildLogDestroy(log);
  for (uint32_t i = 0; i < entryCount; ++i) {
    KernelDesc kd{kKernelDesc, nullptr, 0, entries[i].name};
    Handle k = nullptr;
    r = a.zeKernelCreate(exe->module, &kd, &k);
    if (r != ZE_RESULT_SUCCESS) {
      executableUnload(d, exe);
      if (r == ZE_RESULT_ERROR_INVALID_KERNEL_NAME)
        return kiln::driver::missingEntry(entries[i].name);
      return fail(r, "zeKernelCreate");
    }
    exe->kernels.push_back(k);
    const uint32_t *g = entries[i].workgroup_size;
    if ((r = a.zeKernelSetGroupSize(k, g[0], g[1], g[2])) != ZE_RESULT_SUCCESS) {
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
  bool launch = false;
  if (kiln_status st = kiln::driver::checkDispatch(
          entry, exe->kernels.size(), workgroups, launch);
      st != KILN_OK || !launch)
    return st;
  Handle k = exe->kernels[entry];
  // Arguments are captured when the launch is appended.
  const std::vector<uint64_t> &args = d->args.marshal(bindings, count);
  for (uint32_t i = 0; i < count; ++i)
    if (ze_result_t r = d->api->zeKernelSetArgumentValue(
            k, i, sizeof(args[i]), &args[i]);
        r != ZE_RESULT_SUCCESS)
      return fail(r, "zeKernelSetArgumentValue");
  GroupCount groups{workgroups[0], workgroups[1], workgroups[2]};
  return ordered(d,
                 d->api->zeCommandListAppendLaunchKernel(d->list, k, &groups, nullptr, 0,
                                            nullptr),
                 "zeCommandListAppendLaunchKernel");
}

kiln_status synchronize(void *device) {
  return flush(static_cast<Device *>(device));
}

// No profiling: no dispatch_times.
const kiln_driver levelZeroDriver = KILN_DRIVER_VTABLE("levelzero", nullptr, nullptr);

} // namespace

extern "C" const kiln_driver *kiln_driver_levelzero_entry(void) {
  return &levelZeroDriver;
}

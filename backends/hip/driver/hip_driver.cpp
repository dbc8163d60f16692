//===- hip_driver.cpp - Kiln runtime driver for AMD GPUs ------------------===//
//
// Uses the HIP module API from libamdhip64 (.so.6, .so.5, then .so; or
// $KILN_HIP_LIBRARY), opened with dlopen on first use; the entry points are
// listed in hip_symbols.h. Buffers, copies, launches and streams are
// StreamDriver's (stream_driver.h, shared with cuda); this file finds
// devices and their architectures and loads code objects.
//
// Kernel ABI as for cuda: one 64-bit device pointer per binding (buffer base
// + offset, in binding order); grid = the dispatch's workgroups, block = the
// entry's workgroup_size; no dynamic shared memory. Format "hsaco-gfxNNN"
// loads only on a device whose gcnArchName, without its ":feature" suffix,
// is gfxNNN.
//
//===----------------------------------------------------------------------===//
#include "hip_symbols.h"
#include "stream_driver.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <dlfcn.h>
#include <string>
#include <vector>

namespace {

using namespace kiln::hip;
using kiln::driver::DeviceList;

struct Gpu {
  int ordinal;
  std::string arch; // "gfx90a", without feature flags.
  std::string description;
};

struct State {
  HipSymbols api;
  GetDeviceProperties getDeviceProperties = nullptr;
  size_t archOffset = kArchNameOffsetR0600; // Of the properties' layout.
  DeviceList<Gpu> devices;
};

std::string errorText(const HipSymbols &api, hipError_t r, const char *what) {
  const char *name = api.hipGetErrorName(r);
  const char *text = api.hipGetErrorString(r);
  std::string s = std::string(what) + " failed: " +
                  (name ? name : "unknown HIP error") + " (" +
                  std::to_string(r) + ")";
  // Some HIP versions return the name as the string.
  return text && *text && (!name || std::strcmp(name, text) != 0)
             ? s + ": " + text
             : s;
}

/// Binds the entry points; returns the first missing, or "".
std::string bind(void *lib, State &s) {
  std::string missing = kiln::driver::bindSymbols(lib, s.api);
  s.getDeviceProperties = reinterpret_cast<GetDeviceProperties>(
      ::dlsym(lib, "hipGetDevicePropertiesR0600"));
  if (!s.getDeviceProperties) {
    s.archOffset = kArchNameOffsetR0000;
    s.getDeviceProperties = reinterpret_cast<GetDeviceProperties>(
        ::dlsym(lib, "hipGetDeviceProperties"));
    if (!s.getDeviceProperties && missing.empty())
      missing = "hipGetDeviceProperties";
  }
  return missing;
}

/// Why there is no usable GPU, or "" with `gpus` filled.
std::string findGpus(const State &s, std::vector<Gpu> &gpus) {
  const HipSymbols &a = s.api;
  if (hipError_t r = a.hipInit(0); r != hipSuccess)
    return errorText(a, r, "hipInit");
  int count = 0;
  if (hipError_t r = a.hipGetDeviceCount(&count); r != hipSuccess)
    return errorText(a, r, "hipGetDeviceCount");
  std::vector<char> props(kPropertiesSize);
  for (int i = 0; i < count; ++i) {
    char name[256] = {};
    size_t memory = 0;
    std::fill(props.begin(), props.end(), 0);
    hipError_t r = a.hipDeviceGetName(name, sizeof(name) - 1, i);
    if (r == hipSuccess)
      r = a.hipDeviceTotalMem(&memory, i);
    if (r == hipSuccess)
      r = s.getDeviceProperties(props.data(), i);
    if (r != hipSuccess) {
      gpus.clear();
      return errorText(a, r, ("querying device " + std::to_string(i)).c_str());
    }
    const char *field = props.data() + s.archOffset;
    std::string arch(field, strnlen(field, 255));
    arch = arch.substr(0, arch.find(':'));
    gpus.push_back({i, arch,
                    std::string(name) + ", " + arch + ", " +
                        kiln::driver::formatBytes(memory)});
  }
  return gpus.empty() ? "hipGetDeviceCount found no devices" : "";
}

State load() {
  State s;
  std::string &error = s.devices.error;
  kiln::driver::Library lib = kiln::driver::openLibrary(
      "KILN_HIP_LIBRARY",
      {"libamdhip64.so.6", "libamdhip64.so.5", "libamdhip64.so"},
      "libamdhip64.so not found (tried .so.6, .so.5, .so)");
  if (!lib.handle)
    error = lib.error;
  else if (std::string missing = bind(lib.handle, s); !missing.empty())
    error = "the HIP library has no " + missing;
  else
    error = findGpus(s, s.devices.gpus);
  return s;
}

const State &state() {
  static const State s = load();
  return s;
}

struct Hip {
  using Api = HipSymbols;
  using Result = hipError_t;
  using Pointer = void *;
  using Stream = hipStream_t;
  using Module = hipModule_t;
  using Function = hipFunction_t;
  static constexpr Result kSuccess = hipSuccess;
  static constexpr Result kNotFound = hipErrorNotFound;
  static constexpr const char *kName = "hip";
  KILN_STREAM_CALL(memAlloc, hipMalloc);
  KILN_STREAM_CALL(memFree, hipFree);
  KILN_STREAM_CALL(memsetAsync, hipMemsetAsync);
  KILN_STREAM_CALL(memcpyHtoDAsync, hipMemcpyHtoDAsync);
  KILN_STREAM_CALL(memcpyDtoHAsync, hipMemcpyDtoHAsync);
  KILN_STREAM_CALL(streamSynchronize, hipStreamSynchronize);
  KILN_STREAM_CALL(streamDestroy, hipStreamDestroy);
  KILN_STREAM_CALL(moduleGetFunction, hipModuleGetFunction);
  KILN_STREAM_CALL(moduleUnload, hipModuleUnload);
  KILN_STREAM_CALL(launchKernel, hipModuleLaunchKernel);

  struct Device : kiln::driver::StreamDevice<Hip> {
    int ordinal = 0;
    std::string arch;
  };

  static const DeviceList<Gpu> &devices() { return state().devices; }

  static kiln_status fail(const Api &api, hipError_t r, const char *what) {
    return kiln_driver_error(KILN_ERROR_INTERNAL, "%s",
                             errorText(api, r, what).c_str());
  }

  /// The runtime may call from any thread; HIP's current device is per
  /// thread.
  static kiln_status enter(const Device *d) {
    hipError_t r = d->api->hipSetDevice(d->ordinal);
    return r == hipSuccess ? KILN_OK : fail(*d->api, r, "hipSetDevice");
  }
};

using Driver = kiln::driver::StreamDriver<Hip>;

void deviceClose(void *device) {
  auto *d = static_cast<Hip::Device *>(device);
  Driver::closeStream(d);
  delete d;
}

kiln_status deviceOpen(uint32_t index, const kiln_driver_device_options *,
                       void **device) {
  const State &s = state();
  const Gpu *g = nullptr;
  if (kiln_status st = s.devices.find(Hip::kName, index, g); st != KILN_OK)
    return st;
  auto *d = new Hip::Device();
  d->api = &s.api;
  d->ordinal = g->ordinal;
  d->arch = g->arch;
  if (kiln_status st = Hip::enter(d); st != KILN_OK) {
    delete d;
    return st;
  }
  if (hipError_t r = s.api.hipStreamCreate(&d->stream); r != hipSuccess) {
    d->stream = nullptr;
    deviceClose(d);
    return Hip::fail(s.api, r, "hipStreamCreate");
  }
  *device = d;
  return KILN_OK;
}

kiln_status executableLoad(void *device, const char *format, const void *image,
                           uint64_t size, const kiln_driver_entry *entries,
                           uint32_t entryCount, void **executable) {
  auto *d = static_cast<Hip::Device *>(device);
  if (std::strncmp(format, "hsaco-gfx", 9) != 0)
    return kiln_driver_error(KILN_ERROR_UNAVAILABLE,
                             "hip driver cannot load format '%s' (it loads "
                             "'hsaco-gfxNNN')",
                             format);
  // Code objects are built for one GPU architecture.
  if (d->arch != format + 6)
    return kiln_driver_error(KILN_ERROR_UNAVAILABLE,
                             "code object is for %s, device is %s", format + 6,
                             d->arch.c_str());
  if (size < 4 || std::memcmp(image, "\x7f" "ELF", 4) != 0)
    return kiln_driver_error(KILN_ERROR_CORRUPT,
                             "code object (%llu bytes) is not an ELF file",
                             static_cast<unsigned long long>(size));
  if (kiln_status st = Hip::enter(d); st != KILN_OK)
    return st;
  auto *exe = new Driver::Executable();
  if (hipError_t r = d->api->hipModuleLoadData(&exe->module, image);
      r != hipSuccess) {
    delete exe;
    return Hip::fail(*d->api, r, "hipModuleLoadData");
  }
  if (kiln_status st = Driver::resolveEntries(d, exe, entries, entryCount);
      st != KILN_OK)
    return st;
  *executable = exe;
  return KILN_OK;
}

} // namespace

extern "C" const kiln_driver *kiln_driver_hip_entry(void) {
  static const kiln_driver driver =
      Driver::vtable(deviceOpen, deviceClose, executableLoad);
  return &driver;
}

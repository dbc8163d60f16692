//===- hip_driver.cpp - Kiln runtime driver for AMD GPUs ------------------===//
//
// Uses the HIP module API from libamdhip64 (.so.6, .so.5, then .so; or
// $KILN_HIP_LIBRARY), opened with dlopen on first use. The types and entry
// points used are declared here, not taken from the HIP headers.
//
// Kernel ABI as for cuda: one 64-bit device pointer per binding (buffer base
// + offset, in binding order); grid = the dispatch's workgroups, block = the
// entry's workgroup_size; no dynamic shared memory. Format "hsaco-gfxNNN"
// loads only on a device whose gcnArchName, without its ":feature" suffix,
// is gfxNNN.
//
//===----------------------------------------------------------------------===//
#include "kiln/driver.h"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <dlfcn.h>
#include <string>
#include <vector>

namespace {

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

struct Api {
  hipError_t (*init)(unsigned);
  const char *(*getErrorName)(hipError_t);
  const char *(*getErrorString)(hipError_t);
  hipError_t (*getDeviceCount)(int *);
  hipError_t (*deviceGetName)(char *, int, hipDevice_t);
  hipError_t (*deviceTotalMem)(size_t *, hipDevice_t);
  hipError_t (*getDeviceProperties)(void *, int);
  hipError_t (*setDevice)(int);
  hipError_t (*streamCreate)(hipStream_t *);
  hipError_t (*streamDestroy)(hipStream_t);
  hipError_t (*streamSynchronize)(hipStream_t);
  hipError_t (*malloc)(void **, size_t);
  hipError_t (*free)(void *);
  hipError_t (*memsetAsync)(void *, int, size_t, hipStream_t);
  hipError_t (*memcpyHtoDAsync)(void *, void *, size_t, hipStream_t);
  hipError_t (*memcpyDtoHAsync)(void *, void *, size_t, hipStream_t);
  hipError_t (*moduleLoadData)(hipModule_t *, const void *);
  hipError_t (*moduleGetFunction)(hipFunction_t *, hipModule_t, const char *);
  hipError_t (*moduleUnload)(hipModule_t);
  hipError_t (*moduleLaunchKernel)(hipFunction_t, unsigned, unsigned, unsigned,
                                   unsigned, unsigned, unsigned, unsigned,
                                   hipStream_t, void **, void **);
};

struct Gpu {
  int ordinal;
  std::string arch; // "gfx90a", without feature flags.
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

std::string errorText(const Api &api, hipError_t r, const char *what) {
  const char *name = api.getErrorName(r);
  const char *text = api.getErrorString(r);
  std::string s = std::string(what) + " failed: " +
                  (name ? name : "unknown HIP error") + " (" +
                  std::to_string(r) + ")";
  // Some HIP versions return the name as the string.
  return text && *text && (!name || std::strcmp(name, text) != 0)
             ? s + ": " + text
             : s;
}

kiln_status fail(const Api &api, hipError_t r, const char *what) {
  return kiln_driver_error(KILN_ERROR_INTERNAL, "%s",
                           errorText(api, r, what).c_str());
}

std::string formatBytes(uint64_t bytes) {
  constexpr uint64_t mib = 1ull << 20, gib = 1ull << 30;
  return bytes >= gib ? std::to_string((bytes + gib / 2) / gib) + " GiB"
                      : std::to_string((bytes + mib / 2) / mib) + " MiB";
}

/// Opens $KILN_HIP_LIBRARY, else the first libamdhip64 that loads.
void *openLibrary(std::string &error) {
  const char *env = std::getenv("KILN_HIP_LIBRARY");
  std::vector<std::string> names;
  if (env && *env)
    names = {env};
  else
    names = {"libamdhip64.so.6", "libamdhip64.so.5", "libamdhip64.so"};
  std::string firstError;
  for (const std::string &name : names) {
    if (void *lib = ::dlopen(name.c_str(), RTLD_NOW | RTLD_LOCAL))
      return lib;
    const char *err = ::dlerror();
    // A library that exists but fails to load says more than a missing one.
    if (firstError.empty() && err && !std::strstr(err, "No such file"))
      firstError = "cannot load " + name + ": " + err;
  }
  if (!firstError.empty())
    error = firstError;
  else if (env && *env)
    error = std::string(env) + " not found (from KILN_HIP_LIBRARY)";
  else
    error = "libamdhip64.so not found (tried .so.6, .so.5, .so)";
  return nullptr;
}

State load() {
  State s;
  void *lib = openLibrary(s.error);
  if (!lib)
    return s;
  Api &a = s.api;
  std::string missing;
  bind(lib, "hipInit", a.init, missing);
  bind(lib, "hipGetErrorName", a.getErrorName, missing);
  bind(lib, "hipGetErrorString", a.getErrorString, missing);
  bind(lib, "hipGetDeviceCount", a.getDeviceCount, missing);
  bind(lib, "hipDeviceGetName", a.deviceGetName, missing);
  bind(lib, "hipDeviceTotalMem", a.deviceTotalMem, missing);
  bind(lib, "hipSetDevice", a.setDevice, missing);
  bind(lib, "hipStreamCreate", a.streamCreate, missing);
  bind(lib, "hipStreamDestroy", a.streamDestroy, missing);
  bind(lib, "hipStreamSynchronize", a.streamSynchronize, missing);
  bind(lib, "hipMalloc", a.malloc, missing);
  bind(lib, "hipFree", a.free, missing);
  bind(lib, "hipMemsetAsync", a.memsetAsync, missing);
  bind(lib, "hipMemcpyHtoDAsync", a.memcpyHtoDAsync, missing);
  bind(lib, "hipMemcpyDtoHAsync", a.memcpyDtoHAsync, missing);
  bind(lib, "hipModuleLoadData", a.moduleLoadData, missing);
  bind(lib, "hipModuleGetFunction", a.moduleGetFunction, missing);
  bind(lib, "hipModuleUnload", a.moduleUnload, missing);
  bind(lib, "hipModuleLaunchKernel", a.moduleLaunchKernel, missing);
  size_t archOffset = kArchNameOffsetR0600;
  a.getDeviceProperties = reinterpret_cast<decltype(a.getDeviceProperties)>(
      ::dlsym(lib, "hipGetDevicePropertiesR0600"));
  if (!a.getDeviceProperties) {
    archOffset = kArchNameOffsetR0000;
    bind(lib, "hipGetDeviceProperties", a.getDeviceProperties, missing);
  }
  if (!missing.empty()) {
    s.error = "the HIP library has no " + missing;
    return s;
  }
  if (hipError_t r = a.init(0); r != hipSuccess) {
    s.error = errorText(a, r, "hipInit");
    return s;
  }
  int count = 0;
  if (hipError_t r = a.getDeviceCount(&count); r != hipSuccess) {
    s.error = errorText(a, r, "hipGetDeviceCount");
    return s;
  }
  std::vector<char> props(kPropertiesSize);
  for (int i = 0; i < count; ++i) {
    char name[256] = {};
    size_t memory = 0;
    std::fill(props.begin(), props.end(), 0);
    hipError_t r = a.deviceGetName(name, sizeof(name) - 1, i);
    if (r == hipSuccess)
      r = a.deviceTotalMem(&memory, i);
    if (r == hipSuccess)
      r = a.getDeviceProperties(props.data(), i);
    if (r != hipSuccess) {
      s.error = errorText(a, r, ("querying device " + std::to_string(i)).c_str());
      s.gpus.clear();
      return s;
    }
    std::string arch(props.data() + archOffset,
                     strnlen(props.data() + archOffset, 255));
    arch = arch.substr(0, arch.find(':'));
    s.gpus.push_back({i, arch,
                      std::string(name) + ", " + arch + ", " +
                          formatBytes(memory)});
  }
  if (s.gpus.empty())
    s.error = "hipGetDeviceCount found no devices";
  return s;
}

const State &state() {
  static const State s = load();
  return s;
}

struct Device {
  const Api *api;
  int ordinal;
  std::string arch;
  hipStream_t stream = nullptr;
  std::vector<void *> args; // Scratch for kernel parameters.
  std::vector<void *> argPointers;
};

struct Executable {
  hipModule_t module = nullptr;
  std::vector<hipFunction_t> functions;
  std::vector<kiln_driver_entry> entries; // Names are not kept.
};

/// The runtime may call from any thread; HIP's current device is per thread.
kiln_status enter(const Device *d) {
  hipError_t r = d->api->setDevice(d->ordinal);
  return r == hipSuccess ? KILN_OK : fail(*d->api, r, "hipSetDevice");
}

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
    return kiln_driver_error(KILN_ERROR_NOT_FOUND, "no hip device %u", index);
  desc->description = s.gpus[index].description.c_str();
  desc->available = 1;
  return KILN_OK;
}

void deviceClose(void *device) {
  auto *d = static_cast<Device *>(device);
  if (d->stream && enter(d) == KILN_OK) {
    d->api->streamSynchronize(d->stream);
    d->api->streamDestroy(d->stream);
  }
  delete d;
}

kiln_status deviceOpen(uint32_t index, const kiln_driver_device_options *,
                       void **device) {
  const State &s = state();
  if (s.gpus.empty())
    return kiln_driver_error(KILN_ERROR_UNAVAILABLE, "%s", s.error.c_str());
  if (index >= s.gpus.size())
    return kiln_driver_error(KILN_ERROR_NOT_FOUND, "no hip device %u", index);
  const Gpu &g = s.gpus[index];
  auto *d = new Device{&s.api, g.ordinal, g.arch};
  if (kiln_status st = enter(d); st != KILN_OK) {
    delete d;
    return st;
  }
  if (hipError_t r = s.api.streamCreate(&d->stream); r != hipSuccess) {
    d->stream = nullptr;
    deviceClose(d);
    return fail(s.api, r, "hipStreamCreate");
  }
  *device = d;
  return KILN_OK;
}

kiln_status bufferAlloc(void *device, uint64_t size, void **buffer) {
  auto *d = static_cast<Device *>(device);
  if (kiln_status st = enter(d); st != KILN_OK)
    return st;
  void *p = nullptr;
  if (hipError_t r = d->api->malloc(&p, size ? size : 1); r != hipSuccess)
    return fail(*d->api, r,
                ("hipMalloc of " + std::to_string(size) + " bytes").c_str());
  // Ordered before any later copy or launch on the same stream.
  if (hipError_t r = d->api->memsetAsync(p, 0, size, d->stream);
      r != hipSuccess) {
    d->api->free(p);
    return fail(*d->api, r, "hipMemsetAsync");
  }
  *buffer = p;
  return KILN_OK;
}

void bufferFree(void *device, void *buffer) {
  auto *d = static_cast<Device *>(device);
  // Launches still in flight may use the buffer.
  if (enter(d) == KILN_OK)
    d->api->streamSynchronize(d->stream);
  d->api->free(buffer);
}

kiln_status bufferWrite(void *device, void *buffer, uint64_t offset,
                        const void *src, uint64_t size) {
  auto *d = static_cast<Device *>(device);
  if (kiln_status st = enter(d); st != KILN_OK)
    return st;
  if (hipError_t r = d->api->memcpyHtoDAsync(static_cast<char *>(buffer) + offset,
                                             const_cast<void *>(src), size,
                                             d->stream);
      r != hipSuccess)
    return fail(*d->api, r, "hipMemcpyHtoDAsync");
  // `src` is only borrowed and the copy may still be reading it.
  if (hipError_t r = d->api->streamSynchronize(d->stream); r != hipSuccess)
    return fail(*d->api, r, "hipStreamSynchronize");
  return KILN_OK;
}

kiln_status bufferRead(void *device, void *buffer, uint64_t offset, void *dst,
                       uint64_t size) {
  auto *d = static_cast<Device *>(device);
  if (kiln_status st = enter(d); st != KILN_OK)
    return st;
  if (hipError_t r = d->api->memcpyDtoHAsync(dst, static_cast<char *>(buffer) + offset,
                                             size, d->stream);
      r != hipSuccess)
    return fail(*d->api, r, "hipMemcpyDtoHAsync");
  if (hipError_t r = d->api->streamSynchronize(d->stream); r != hipSuccess)
    return fail(*d->api, r, "hipStreamSynchronize");
  return KILN_OK;
}

void executableUnload(void *device, void *executable) {
  auto *d = static_cast<Device *>(device);
  auto *exe = static_cast<Executable *>(executable);
  if (exe->module && enter(d) == KILN_OK) {
    d->api->streamSynchronize(d->stream);
    d->api->moduleUnload(exe->module);
  }
  delete exe;
}

kiln_status executableLoad(void *device, const char *format, const void *image,
                           uint64_t size, const kiln_driver_entry *entries,
                           uint32_t entryCount, void **executable) {
  auto *d = static_cast<Device *>(device);
  const Api &api = *d->api;
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
  if (kiln_status st = enter(d); st != KILN_OK)
    return st;
  auto *exe = new Executable();
  if (hipError_t r = api.moduleLoadData(&exe->module, image); r != hipSuccess) {
    delete exe;
    return fail(api, r, "hipModuleLoadData");
  }
  for (uint32_t i = 0; i < entryCount; ++i) {
    hipFunction_t fn = nullptr;
    if (hipError_t r = api.moduleGetFunction(&fn, exe->module, entries[i].name);
        r != hipSuccess) {
      executableUnload(d, exe);
      if (r == hipErrorNotFound)
        return kiln_driver_error(KILN_ERROR_NOT_FOUND,
                                 "executable has no entry point '%s'",
                                 entries[i].name);
      return fail(api, r, "hipModuleGetFunction");
    }
    exe->functions.push_back(fn);
    exe->entries.push_back(entries[i]);
    exe->entries.back().name = nullptr;
  }
  *executable = exe;
  return KILN_OK;
}

kiln_status dispatch(void *device, void *executable, uint32_t entry,
                     const uint32_t workgroups[3],
                     const kiln_driver_binding *bindings, uint32_t count) {
  auto *d = static_cast<Device *>(device);
  auto *exe = static_cast<Executable *>(executable);
  if (entry >= exe->functions.size())
    return kiln_driver_error(KILN_ERROR_INVALID_ARGUMENT,
                             "entry %u out of range", entry);
  if (!workgroups[0] || !workgroups[1] || !workgroups[2])
    return KILN_OK;
  if (kiln_status st = enter(d); st != KILN_OK)
    return st;
  // The launch copies the parameter values, so the scratch can be reused.
  d->args.resize(count);
  d->argPointers.resize(count);
  for (uint32_t i = 0; i < count; ++i) {
    d->args[i] = static_cast<char *>(bindings[i].buffer) + bindings[i].offset;
    d->argPointers[i] = &d->args[i];
  }
  const uint32_t *block = exe->entries[entry].workgroup_size;
  if (hipError_t r = d->api->moduleLaunchKernel(
          exe->functions[entry], workgroups[0], workgroups[1], workgroups[2],
          block[0], block[1], block[2], 0, d->stream,
          count ? d->argPointers.data() : nullptr, nullptr);
      r != hipSuccess)
    return fail(*d->api, r, "hipModuleLaunchKernel");
  return KILN_OK;
}

kiln_status synchronize(void *device) {
  auto *d = static_cast<Device *>(device);
  if (kiln_status st = enter(d); st != KILN_OK)
    return st;
  if (hipError_t r = d->api->streamSynchronize(d->stream); r != hipSuccess)
    return fail(*d->api, r, "hipStreamSynchronize");
  return KILN_OK;
}

const kiln_driver hipDriver = {
    KILN_DRIVER_ABI_VERSION,
    "hip",
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

extern "C" const kiln_driver *kiln_driver_hip_entry(void) { return &hipDriver; }

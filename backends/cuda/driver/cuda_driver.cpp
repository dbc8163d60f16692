//===- cuda_driver.cpp - Kiln runtime driver for NVIDIA GPUs --------------===//
//
// Uses the CUDA driver API from libcuda.so.1 (or $KILN_CUDA_LIBRARY), opened
// with dlopen on first use so the runtime loads on machines without it. The
// handful of types and entry points used are declared here, not taken from
// cuda.h, so the driver builds without the toolkit.
//
// Kernel ABI (the same for hip and levelzero): one 64-bit device pointer per
// binding, in binding order, each buffer base + binding offset; the grid is
// the dispatch's workgroups, the block the entry's workgroup_size; no
// dynamic shared memory. Formats: "cubin-sm_XY" loads only on compute
// capability X.Y, "ptx-sm_XY" is JIT-compiled on X.Y or newer.
//
//===----------------------------------------------------------------------===//
#include "kiln/driver.h"

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <dlfcn.h>
#include <string>
#include <vector>

namespace {

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

/// The entry points used. Versioned symbols (_v2) are the ones cuda.h maps
/// the plain names to; the unversioned ones keep 32-bit sizes or old ABIs.
struct Api {
  CUresult (*init)(unsigned);
  CUresult (*getErrorName)(CUresult, const char **);
  CUresult (*getErrorString)(CUresult, const char **);
  CUresult (*deviceGetCount)(int *);
  CUresult (*deviceGet)(CUdevice *, int);
  CUresult (*deviceGetName)(char *, int, CUdevice);
  CUresult (*deviceGetAttribute)(int *, int, CUdevice);
  CUresult (*deviceTotalMem)(size_t *, CUdevice);
  CUresult (*primaryCtxRetain)(CUcontext *, CUdevice);
  CUresult (*primaryCtxRelease)(CUdevice);
  CUresult (*ctxSetCurrent)(CUcontext);
  CUresult (*streamCreate)(CUstream *, unsigned);
  CUresult (*streamDestroy)(CUstream);
  CUresult (*streamSynchronize)(CUstream);
  CUresult (*memAlloc)(CUdeviceptr *, size_t);
  CUresult (*memFree)(CUdeviceptr);
  CUresult (*memsetD8Async)(CUdeviceptr, unsigned char, size_t, CUstream);
  CUresult (*memcpyHtoDAsync)(CUdeviceptr, const void *, size_t, CUstream);
  CUresult (*memcpyDtoHAsync)(void *, CUdeviceptr, size_t, CUstream);
  CUresult (*moduleLoadData)(CUmodule *, const void *);
  CUresult (*moduleLoadDataEx)(CUmodule *, const void *, unsigned, int *,
                               void **);
  CUresult (*moduleGetFunction)(CUfunction *, CUmodule, const char *);
  CUresult (*moduleUnload)(CUmodule);
  CUresult (*launchKernel)(CUfunction, unsigned, unsigned, unsigned, unsigned,
                           unsigned, unsigned, unsigned, CUstream, void **,
                           void **);
};

struct Gpu {
  CUdevice device;
  int arch; // Compute capability as major * 10 + minor, as in "sm_90".
  std::string description;
};

/// Everything found at first use; never changes afterwards.
struct State {
  Api api{};
  std::string error; // Why there is no usable GPU; empty when there are some.
  std::vector<Gpu> gpus;
};

template <typename Fn>
void bind(void *lib, const char *symbol, Fn &fn, std::string &missing) {
  fn = reinterpret_cast<Fn>(::dlsym(lib, symbol));
  if (!fn && missing.empty())
    missing = symbol;
}

std::string errorText(const Api &api, CUresult r, const char *what) {
  const char *name = nullptr, *text = nullptr;
  if (api.getErrorName(r, &name) != CUDA_SUCCESS || !name)
    name = "unknown CUDA error";
  if (api.getErrorString(r, &text) != CUDA_SUCCESS)
    text = nullptr;
  std::string s = std::string(what) + " failed: " + name + " (" +
                  std::to_string(r) + ")";
  return text ? s + ": " + text : s;
}

kiln_status fail(const Api &api, CUresult r, const char *what,
                 kiln_status status = KILN_ERROR_INTERNAL) {
  return kiln_driver_error(status, "%s", errorText(api, r, what).c_str());
}

std::string formatBytes(uint64_t bytes) {
  constexpr uint64_t mib = 1ull << 20, gib = 1ull << 30;
  return bytes >= gib ? std::to_string((bytes + gib / 2) / gib) + " GiB"
                      : std::to_string((bytes + mib / 2) / mib) + " MiB";
}

State load() {
  State s;
  const char *env = std::getenv("KILN_CUDA_LIBRARY");
  std::string path = env && *env ? env : "libcuda.so.1";
  void *lib = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    const char *err = ::dlerror();
    // Missing is the common case and dlerror's wording adds nothing there.
    if (!err || std::strstr(err, "No such file"))
      s.error = path + " not found";
    else
      s.error = "cannot load " + path + ": " + err;
    if (env && *env)
      s.error += " (from KILN_CUDA_LIBRARY)";
    return s;
  }
  // The library stays loaded for the life of the process: contexts and
  // modules may outlive any one session.
  Api &a = s.api;
  std::string missing;
  bind(lib, "cuInit", a.init, missing);
  bind(lib, "cuGetErrorName", a.getErrorName, missing);
  bind(lib, "cuGetErrorString", a.getErrorString, missing);
  bind(lib, "cuDeviceGetCount", a.deviceGetCount, missing);
  bind(lib, "cuDeviceGet", a.deviceGet, missing);
  bind(lib, "cuDeviceGetName", a.deviceGetName, missing);
  bind(lib, "cuDeviceGetAttribute", a.deviceGetAttribute, missing);
  bind(lib, "cuDeviceTotalMem_v2", a.deviceTotalMem, missing);
  bind(lib, "cuDevicePrimaryCtxRetain", a.primaryCtxRetain, missing);
  bind(lib, "cuDevicePrimaryCtxRelease_v2", a.primaryCtxRelease, missing);
  bind(lib, "cuCtxSetCurrent", a.ctxSetCurrent, missing);
  bind(lib, "cuStreamCreate", a.streamCreate, missing);
  bind(lib, "cuStreamDestroy_v2", a.streamDestroy, missing);
  bind(lib, "cuStreamSynchronize", a.streamSynchronize, missing);
  bind(lib, "cuMemAlloc_v2", a.memAlloc, missing);
  bind(lib, "cuMemFree_v2", a.memFree, missing);
  bind(lib, "cuMemsetD8Async", a.memsetD8Async, missing);
  bind(lib, "cuMemcpyHtoDAsync_v2", a.memcpyHtoDAsync, missing);
  bind(lib, "cuMemcpyDtoHAsync_v2", a.memcpyDtoHAsync, missing);
  bind(lib, "cuModuleLoadData", a.moduleLoadData, missing);
  bind(lib, "cuModuleLoadDataEx", a.moduleLoadDataEx, missing);
  bind(lib, "cuModuleGetFunction", a.moduleGetFunction, missing);
  bind(lib, "cuModuleUnload", a.moduleUnload, missing);
  bind(lib, "cuLaunchKernel", a.launchKernel, missing);
  if (!missing.empty()) {
    s.error = path + " has no " + missing + " (driver too old?)";
    return s;
  }
  if (CUresult r = a.init(0); r != CUDA_SUCCESS) {
    s.error = errorText(a, r, "cuInit");
    return s;
  }
  int count = 0;
  if (CUresult r = a.deviceGetCount(&count); r != CUDA_SUCCESS) {
    s.error = errorText(a, r, "cuDeviceGetCount");
    return s;
  }
  for (int i = 0; i < count; ++i) {
    Gpu g{};
    char name[256] = {};
    int major = 0, minor = 0;
    size_t memory = 0;
    CUresult r = a.deviceGet(&g.device, i);
    if (r == CUDA_SUCCESS)
      r = a.deviceGetName(name, sizeof(name) - 1, g.device);
    if (r == CUDA_SUCCESS)
      r = a.deviceGetAttribute(
          &major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, g.device);
    if (r == CUDA_SUCCESS)
      r = a.deviceGetAttribute(
          &minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, g.device);
    if (r == CUDA_SUCCESS)
      r = a.deviceTotalMem(&memory, g.device);
    if (r != CUDA_SUCCESS) {
      s.error = errorText(a, r, ("querying device " + std::to_string(i)).c_str());
      s.gpus.clear();
      return s;
    }
    g.arch = major * 10 + minor;
    g.description = std::string(name) + ", sm_" + std::to_string(g.arch) +
                    ", " + formatBytes(memory);
    s.gpus.push_back(std::move(g));
  }
  if (s.gpus.empty())
    s.error = "cuDeviceGetCount found no devices";
  return s;
}

const State &state() {
  static const State s = load();
  return s;
}

struct Device {
  const Api *api;
  CUdevice device;
  int arch;
  CUcontext context = nullptr;
  CUstream stream = nullptr;
  std::vector<CUdeviceptr> args; // Scratch for kernel parameters.
  std::vector<void *> argPointers;
};

struct Executable {
  CUmodule module = nullptr;
  std::vector<CUfunction> functions;
  std::vector<kiln_driver_entry> entries; // Names are not kept.
};

CUdeviceptr pointer(void *buffer) {
  return static_cast<CUdeviceptr>(reinterpret_cast<uintptr_t>(buffer));
}

/// The runtime may call from any thread, and CUDA contexts are per thread.
kiln_status enter(const Device *d) {
  CUresult r = d->api->ctxSetCurrent(d->context);
  return r == CUDA_SUCCESS ? KILN_OK : fail(*d->api, r, "cuCtxSetCurrent");
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
    return kiln_driver_error(KILN_ERROR_NOT_FOUND, "no cuda device %u", index);
  desc->description = s.gpus[index].description.c_str();
  desc->available = 1;
  return KILN_OK;
}

void deviceClose(void *device) {
  auto *d = static_cast<Device *>(device);
  if (d->context && enter(d) == KILN_OK && d->stream) {
    d->api->streamSynchronize(d->stream);
    d->api->streamDestroy(d->stream);
  }
  if (d->context)
    d->api->primaryCtxRelease(d->device);
  delete d;
}

kiln_status deviceOpen(uint32_t index, const kiln_driver_device_options *,
                       void **device) {
  const State &s = state();
  if (s.gpus.empty())
    return kiln_driver_error(KILN_ERROR_UNAVAILABLE, "%s", s.error.c_str());
  if (index >= s.gpus.size())
    return kiln_driver_error(KILN_ERROR_NOT_FOUND, "no cuda device %u", index);
  const Gpu &g = s.gpus[index];
  auto *d = new Device{&s.api, g.device, g.arch};
  if (CUresult r = s.api.primaryCtxRetain(&d->context, g.device);
      r != CUDA_SUCCESS) {
    d->context = nullptr;
    deviceClose(d);
    return fail(s.api, r, "cuDevicePrimaryCtxRetain");
  }
  if (kiln_status st = enter(d); st != KILN_OK) {
    deviceClose(d);
    return st;
  }
  if (CUresult r = s.api.streamCreate(&d->stream, 0); r != CUDA_SUCCESS) {
    d->stream = nullptr;
    deviceClose(d);
    return fail(s.api, r, "cuStreamCreate");
  }
  *device = d;
  return KILN_OK;
}

kiln_status bufferAlloc(void *device, uint64_t size, void **buffer) {
  auto *d = static_cast<Device *>(device);
  if (kiln_status st = enter(d); st != KILN_OK)
    return st;
  CUdeviceptr p = 0;
  // cuMemAlloc rejects 0 bytes; allocations are 256-byte aligned.
  if (CUresult r = d->api->memAlloc(&p, size ? size : 1); r != CUDA_SUCCESS)
    return fail(*d->api, r,
                ("cuMemAlloc of " + std::to_string(size) + " bytes").c_str());
  // Ordered before any later copy or launch on the same stream.
  if (CUresult r = d->api->memsetD8Async(p, 0, size, d->stream);
      r != CUDA_SUCCESS) {
    d->api->memFree(p);
    return fail(*d->api, r, "cuMemsetD8Async");
  }
  *buffer = reinterpret_cast<void *>(static_cast<uintptr_t>(p));
  return KILN_OK;
}

void bufferFree(void *device, void *buffer) {
  auto *d = static_cast<Device *>(device);
  // Launches still in flight may use the buffer.
  if (enter(d) == KILN_OK)
    d->api->streamSynchronize(d->stream);
  d->api->memFree(pointer(buffer));
}

kiln_status bufferWrite(void *device, void *buffer, uint64_t offset,
                        const void *src, uint64_t size) {
  auto *d = static_cast<Device *>(device);
  if (kiln_status st = enter(d); st != KILN_OK)
    return st;
  if (CUresult r = d->api->memcpyHtoDAsync(pointer(buffer) + offset, src, size,
                                           d->stream);
      r != CUDA_SUCCESS)
    return fail(*d->api, r, "cuMemcpyHtoDAsync");
  // `src` is only borrowed, and from pinned memory the copy may still be
  // reading it after the call returns.
  if (CUresult r = d->api->streamSynchronize(d->stream); r != CUDA_SUCCESS)
    return fail(*d->api, r, "cuStreamSynchronize");
  return KILN_OK;
}

kiln_status bufferRead(void *device, void *buffer, uint64_t offset, void *dst,
                       uint64_t size) {
  auto *d = static_cast<Device *>(device);
  if (kiln_status st = enter(d); st != KILN_OK)
    return st;
  if (CUresult r = d->api->memcpyDtoHAsync(dst, pointer(buffer) + offset, size,
                                           d->stream);
      r != CUDA_SUCCESS)
    return fail(*d->api, r, "cuMemcpyDtoHAsync");
  if (CUresult r = d->api->streamSynchronize(d->stream); r != CUDA_SUCCESS)
    return fail(*d->api, r, "cuStreamSynchronize");
  return KILN_OK;
}

/// Returns N for "<prefix>N" with N a decimal number, else -1.
int parseArch(const char *format, const char *prefix) {
  size_t n = std::strlen(prefix);
  if (std::strncmp(format, prefix, n) != 0 || !format[n])
    return -1;
  int arch = 0;
  for (const char *p = format + n; *p; ++p) {
    if (*p < '0' || *p > '9' || arch > 10000)
      return -1;
    arch = arch * 10 + (*p - '0');
  }
  return arch;
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
  int cubin = parseArch(format, "cubin-sm_");
  int ptx = parseArch(format, "ptx-sm_");
  if (cubin < 0 && ptx < 0)
    return kiln_driver_error(KILN_ERROR_UNAVAILABLE,
                             "cuda driver cannot load format '%s' (it loads "
                             "'cubin-sm_XY' and 'ptx-sm_XY')",
                             format);
  // A cubin runs only on its own architecture; PTX is JIT-compiled for any
  // newer one.
  if (cubin >= 0 && cubin != d->arch)
    return kiln_driver_error(KILN_ERROR_UNAVAILABLE,
                             "cubin is for sm_%d, device is sm_%d", cubin,
                             d->arch);
  if (ptx > d->arch)
    return kiln_driver_error(KILN_ERROR_UNAVAILABLE,
                             "PTX is for sm_%d and newer, device is sm_%d", ptx,
                             d->arch);
  if (cubin >= 0 && (size < 4 || std::memcmp(image, "\x7f" "ELF", 4) != 0))
    return kiln_driver_error(KILN_ERROR_CORRUPT,
                             "cubin image (%llu bytes) is not an ELF file",
                             static_cast<unsigned long long>(size));
  if (kiln_status st = enter(d); st != KILN_OK)
    return st;
  auto *exe = new Executable();
  if (cubin >= 0) {
    if (CUresult r = api.moduleLoadData(&exe->module, image); r != CUDA_SUCCESS) {
      delete exe;
      return fail(api, r, "cuModuleLoadData (cubin)");
    }
  } else {
    // The artifact stores PTX without a terminator; the JIT wants one.
    std::string text(static_cast<const char *>(image), size);
    std::vector<char> log(16384, '\0');
    int options[] = {CU_JIT_ERROR_LOG_BUFFER, CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES};
    void *values[] = {log.data(),
                      reinterpret_cast<void *>(static_cast<uintptr_t>(log.size() - 1))};
    if (CUresult r = api.moduleLoadDataEx(&exe->module, text.c_str(), 2, options,
                                          values);
        r != CUDA_SUCCESS) {
      delete exe;
      // A driver older than the PTX ISA cannot run it; a later executable
      // (an older PTX) still might.
      kiln_status st = r == CUDA_ERROR_UNSUPPORTED_PTX_VERSION
                           ? KILN_ERROR_UNAVAILABLE
                           : KILN_ERROR_INTERNAL;
      std::string msg = errorText(api, r, "cuModuleLoadDataEx (PTX JIT)");
      if (log[0])
        msg += "; JIT log: " + std::string(log.data());
      return kiln_driver_error(st, "%s", msg.c_str());
    }
  }
  for (uint32_t i = 0; i < entryCount; ++i) {
    CUfunction fn = nullptr;
    if (CUresult r = api.moduleGetFunction(&fn, exe->module, entries[i].name);
        r != CUDA_SUCCESS) {
      executableUnload(d, exe);
      if (r == CUDA_ERROR_NOT_FOUND)
        return kiln_driver_error(KILN_ERROR_NOT_FOUND,
                                 "executable has no entry point '%s'",
                                 entries[i].name);
      return fail(api, r, "cuModuleGetFunction");
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
  // cuLaunchKernel copies the parameter values, so the scratch can be reused.
  d->args.resize(count);
  d->argPointers.resize(count);
  for (uint32_t i = 0; i < count; ++i) {
    d->args[i] = pointer(bindings[i].buffer) + bindings[i].offset;
    d->argPointers[i] = &d->args[i];
  }
  const uint32_t *block = exe->entries[entry].workgroup_size;
  if (CUresult r = d->api->launchKernel(
          exe->functions[entry], workgroups[0], workgroups[1], workgroups[2],
          block[0], block[1], block[2], 0, d->stream,
          count ? d->argPointers.data() : nullptr, nullptr);
      r != CUDA_SUCCESS)
    return fail(*d->api, r, "cuLaunchKernel");
  return KILN_OK;
}

kiln_status synchronize(void *device) {
  auto *d = static_cast<Device *>(device);
  if (kiln_status st = enter(d); st != KILN_OK)
    return st;
  if (CUresult r = d->api->streamSynchronize(d->stream); r != CUDA_SUCCESS)
    return fail(*d->api, r, "cuStreamSynchronize");
  return KILN_OK;
}

const kiln_driver cudaDriver = {
    KILN_DRIVER_ABI_VERSION,
    "cuda",
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

extern "C" const kiln_driver *kiln_driver_cuda_entry(void) { return &cudaDriver; }

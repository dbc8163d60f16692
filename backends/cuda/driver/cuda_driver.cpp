//===- cuda_driver.cpp - Kiln runtime driver for NVIDIA GPUs --------------===//
//
// Uses the CUDA driver API from libcuda.so.1 (or $KILN_CUDA_LIBRARY), opened
// with dlopen on first use so the runtime loads on machines without it; the
// entry points are listed in cuda_symbols.h. Buffers, copies, launches and
// streams are StreamDriver's (stream_driver.h, shared with hip); this file
// finds devices, retains their primary contexts and loads modules.
//
// Kernel ABI (the same for hip and levelzero): one 64-bit device pointer per
// binding, in binding order, each buffer base + binding offset; the grid is
// the dispatch's workgroups, the block the entry's workgroup_size; no
// dynamic shared memory. Formats: "cubin-sm_XY" loads only on compute
// capability X.Y, "ptx-sm_XY" is JIT-compiled on X.Y or newer.
//
//===----------------------------------------------------------------------===//
#include "cuda_symbols.h"
#include "stream_driver.h"

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace {

using namespace kiln::cuda;
using kiln::driver::DeviceList;

struct Gpu {
  CUdevice device;
  int arch; // Compute capability as major * 10 + minor, as in "sm_90".
  std::string description;
};

/// Everything found at first use; never changes afterwards.
struct State {
  CudaSymbols api;
  DeviceList<Gpu> devices;
};

std::string errorText(const CudaSymbols &api, CUresult r, const char *what) {
  const char *name = nullptr, *text = nullptr;
  if (api.cuGetErrorName(r, &name) != CUDA_SUCCESS || !name)
    name = "unknown CUDA error";
  if (api.cuGetErrorString(r, &text) != CUDA_SUCCESS)
    text = nullptr;
  std::string s = std::string(what) + " failed: " + name + " (" +
                  std::to_string(r) + ")";
  return text ? s + ": " + text : s;
}

/// Why there is no usable GPU, or "" with `gpus` filled.
std::string findGpus(const CudaSymbols &a, std::vector<Gpu> &gpus) {
  if (CUresult r = a.cuInit(0); r != CUDA_SUCCESS)
    return errorText(a, r, "cuInit");
  int count = 0;
  if (CUresult r = a.cuDeviceGetCount(&count); r != CUDA_SUCCESS)
    return errorText(a, r, "cuDeviceGetCount");
  for (int i = 0; i < count; ++i) {
    Gpu g{};
    char name[256] = {};
    int major = 0, minor = 0;
    size_t memory = 0;
    CUresult r = a.cuDeviceGet(&g.device, i);
    if (r == CUDA_SUCCESS)
      r = a.cuDeviceGetName(name, sizeof(name) - 1, g.device);
    if (r == CUDA_SUCCESS)
      r = a.cuDeviceGetAttribute(
          &major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, g.device);
    if (r == CUDA_SUCCESS)
      r = a.cuDeviceGetAttribute(
          &minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, g.device);
    if (r == CUDA_SUCCESS)
      r = a.cuDeviceTotalMem(&memory, g.device);
    if (r != CUDA_SUCCESS) {
      gpus.clear();
      return errorText(a, r, ("querying device " + std::to_string(i)).c_str());
    }
    g.arch = major * 10 + minor;
    g.description = std::string(name) + ", sm_" + std::to_string(g.arch) +
                    ", " + kiln::driver::formatBytes(memory);
    gpus.push_back(std::move(g));
  }
  return gpus.empty() ? "cuDeviceGetCount found no devices" : "";
}

const State &state() {
  static const State s = kiln::driver::loadGpus<State>(
      "KILN_CUDA_LIBRARY", {"libcuda.so.1"}, " (driver too old?)", findGpus);
  return s;
}

struct Cuda {
  using Api = CudaSymbols;
  using Result = CUresult;
  using Pointer = CUdeviceptr;
  using Stream = CUstream;
  using Module = CUmodule;
  using Function = CUfunction;
  static constexpr Result kSuccess = CUDA_SUCCESS;
  static constexpr Result kNotFound = CUDA_ERROR_NOT_FOUND;
  static constexpr const char *kName = "cuda";
  KILN_STREAM_CALL(memAlloc, cuMemAlloc);
  KILN_STREAM_CALL(memFree, cuMemFree);
  KILN_STREAM_CALL(memsetAsync, cuMemsetD8Async);
  KILN_STREAM_CALL(memcpyHtoDAsync, cuMemcpyHtoDAsync);
  KILN_STREAM_CALL(memcpyDtoHAsync, cuMemcpyDtoHAsync);
  KILN_STREAM_CALL(streamSynchronize, cuStreamSynchronize);
  KILN_STREAM_CALL(streamDestroy, cuStreamDestroy);
  KILN_STREAM_CALL(moduleGetFunction, cuModuleGetFunction);
  KILN_STREAM_CALL(moduleUnload, cuModuleUnload);
  KILN_STREAM_CALL(launchKernel, cuLaunchKernel);

  struct Device : kiln::driver::StreamDevice<Cuda> {
    CUdevice device = 0;
    int arch = 0;
    CUcontext context = nullptr;
  };

  static const DeviceList<Gpu> &devices() { return state().devices; }

  static kiln_status fail(const Api &api, CUresult r, const char *what,
                          kiln_status status = KILN_ERROR_INTERNAL) {
    return kiln_driver_error(status, "%s", errorText(api, r, what).c_str());
  }

  /// The runtime may call from any thread, and CUDA contexts are per thread.
  static kiln_status enter(const Device *d) {
    CUresult r = d->api->cuCtxSetCurrent(d->context);
    return r == CUDA_SUCCESS ? KILN_OK : fail(*d->api, r, "cuCtxSetCurrent");
  }
};

using Driver = kiln::driver::StreamDriver<Cuda>;

void deviceClose(void *device) {
  auto *d = static_cast<Cuda::Device *>(device);
  if (d->context) {
    Driver::closeStream(d);
    d->api->cuDevicePrimaryCtxRelease(d->device);
  }
  delete d;
}

kiln_status deviceOpen(uint32_t index, const kiln_driver_device_options *,
                       void **device) {
  const State &s = state();
  const Gpu *g = nullptr;
  if (kiln_status st = s.devices.find(Cuda::kName, index, g); st != KILN_OK)
    return st;
  auto *d = new Cuda::Device();
  d->api = &s.api;
  d->device = g->device;
  d->arch = g->arch;
  if (CUresult r = s.api.cuDevicePrimaryCtxRetain(&d->context, g->device);
      r != CUDA_SUCCESS) {
    d->context = nullptr;
    deviceClose(d);
    return Cuda::fail(s.api, r, "cuDevicePrimaryCtxRetain");
  }
  if (kiln_status st = Cuda::enter(d); st != KILN_OK) {
    deviceClose(d);
    return st;
  }
  if (CUresult r = s.api.cuStreamCreate(&d->stream, 0); r != CUDA_SUCCESS) {
    d->stream = nullptr;
    deviceClose(d);
    return Cuda::fail(s.api, r, "cuStreamCreate");
  }
  *device = d;
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

/// Loads PTX through the JIT, with its log in the error.
kiln_status loadPtx(const CudaSymbols &api, const void *image, uint64_t size,
                    CUmodule &module) {
  // The artifact stores PTX without a terminator; the JIT wants one.
  std::string text(static_cast<const char *>(image), size);
  std::vector<char> log(16384, '\0');
  int options[] = {CU_JIT_ERROR_LOG_BUFFER, CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES};
  void *values[] = {log.data(), reinterpret_cast<void *>(
                                    static_cast<uintptr_t>(log.size() - 1))};
  CUresult r =
      api.cuModuleLoadDataEx(&module, text.c_str(), 2, options, values);
  if (r == CUDA_SUCCESS)
    return KILN_OK;
  // A driver older than the PTX ISA cannot run it; a later executable (an
  // older PTX) still might.
  kiln_status st = r == CUDA_ERROR_UNSUPPORTED_PTX_VERSION
                       ? KILN_ERROR_UNAVAILABLE
                       : KILN_ERROR_INTERNAL;
  std::string msg = errorText(api, r, "cuModuleLoadDataEx (PTX JIT)");
  if (log[0])
    msg += "; JIT log: " + std::string(log.data());
  return kiln_driver_error(st, "%s", msg.c_str());
}

kiln_status executableLoad(void *device, const char *format, const void *image,
                           uint64_t size, const kiln_driver_entry *entries,
                           uint32_t entryCount, void **executable) {
  auto *d = static_cast<Cuda::Device *>(device);
  const Cuda::Api &api = *d->api;
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
  if (kiln_status st = Cuda::enter(d); st != KILN_OK)
    return st;
  auto *exe = new Driver::Executable();
  if (cubin >= 0) {
    if (CUresult r = api.cuModuleLoadData(&exe->module, image);
        r != CUDA_SUCCESS) {
      delete exe;
      return Cuda::fail(api, r, "cuModuleLoadData (cubin)");
    }
  } else if (kiln_status st = loadPtx(api, image, size, exe->module);
             st != KILN_OK) {
    delete exe;
    return st;
  }
  if (kiln_status st = Driver::resolveEntries(d, exe, entries, entryCount);
      st != KILN_OK)
    return st;
  *executable = exe;
  return KILN_OK;
}

} // namespace

extern "C" const kiln_driver *kiln_driver_cuda_entry(void) {
  static const kiln_driver driver =
      Driver::vtable(deviceOpen, deviceClose, executableLoad);
  return &driver;
}

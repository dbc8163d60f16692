//===- mock_hip.cpp - A libamdhip64 stand-in for the hip driver tests -----===//
//
// Exports the HIP entry points the hip driver dlsyms, backed by
// test/unit/MockGpu.h.
// One device, "Kiln Mock GPU", gcnArchName "gfx90a:sramecc+:xnack-", 64 GiB,
// reporting properties in the ROCm 6 layout (hipGetDevicePropertiesR0600).
// Calls fail until hipSetDevice picked the device on the calling thread.
// KILN_MOCK_INIT_ERROR=1 makes hipInit fail with hipErrorNoDevice. A code
// object is "\x7f" "ELF gfxNNN\n" followed by .entry lines and a NUL.
//
//===----------------------------------------------------------------------===//
#define KILN_MOCK_DEFINE_RECORD
#include "MockGpu.h"
#include "hip_symbols.h"

#include <cstdio>

using namespace kiln::hip;
using namespace kiln::mock;

extern "C" {
KILN_HIP_SYMBOLS(KILN_SYMBOL_EXPORT)
}

// What the hip driver should make of this library (test/unit/MockGpus.h).
const KilnMockVendor kiln::mock::vendor = {
    "hip", "KILN_HIP_LIBRARY", "libamdhip64.so",
    "Kiln Mock GPU, gfx90a, 64 GiB",
    "hipInit failed: hipErrorNoDevice (100): no ROCm-capable device is "
    "detected",
    "hsaco-gfx90a", "\x7f" "ELF gfx90a"};

namespace {
constexpr hipError_t kSuccess = 0, kInvalidValue = 1, kNotInitialized = 3,
                     kInvalidDevice = 101, kNoDevice = 100,
                     kInvalidImage = 200, kNotFound = 500,
                     kIllegalAddress = 700, kInvalidHandle = 400;
bool initialized = false;
thread_local int current = -1;

hipError_t ready() {
  if (!initialized)
    return kNotInitialized;
  return current == 0 ? kSuccess : kInvalidDevice;
}
} // namespace

extern "C" {
#define API __attribute__((visibility("default")))

API hipError_t hipInit(unsigned flags) {
  if (flags)
    return kInvalidValue;
  if (initFails())
    return kNoDevice;
  initialized = true;
  return kSuccess;
}

API const char *hipGetErrorName(hipError_t r) {
  switch (r) {
  case kSuccess: return "hipSuccess";
  case kInvalidValue: return "hipErrorInvalidValue";
  case kNoDevice: return "hipErrorNoDevice";
  case kInvalidDevice: return "hipErrorInvalidDevice";
  case kInvalidImage: return "hipErrorInvalidImage";
  case kNotFound: return "hipErrorNotFound";
  case kIllegalAddress: return "hipErrorIllegalAddress";
  }
  return "hipErrorUnknown";
}

API const char *hipGetErrorString(hipError_t r) {
  return r == kNoDevice ? "no ROCm-capable device is detected" : "mock error";
}

API hipError_t hipGetDeviceCount(int *count) {
  if (!initialized)
    return kNotInitialized;
  *count = 1;
  return kSuccess;
}

API hipError_t hipDeviceGetName(char *name, int len, hipDevice_t device) {
  if (device != 0 || len < 1)
    return kInvalidValue;
  std::snprintf(name, len, "%s", kDeviceName);
  return kSuccess;
}

API hipError_t hipDeviceTotalMem(size_t *bytes, hipDevice_t device) {
  if (device != 0)
    return kInvalidDevice;
  *bytes = 64ull << 30;
  return kSuccess;
}

API hipError_t hipGetDevicePropertiesR0600(void *props, int device) {
  if (device != 0)
    return kInvalidDevice;
  // Fields the driver does not read get junk, as a real device's would
  // differ; the name field is at 0, gcnArchName at 1160 in this layout.
  std::memset(props, 'x', 1472);
  std::snprintf(static_cast<char *>(props), 256, "%s", kDeviceName);
  std::snprintf(static_cast<char *>(props) + 1160, 256, "%s",
                "gfx90a:sramecc+:xnack-");
  return kSuccess;
}

API hipError_t hipSetDevice(int device) {
  if (!initialized)
    return kNotInitialized;
  if (device != 0)
    return kInvalidDevice;
  current = device;
  return kSuccess;
}

API hipError_t hipStreamCreate(hipStream_t *stream) {
  if (hipError_t r = ready())
    return r;
  *stream = toHandle<hipStream_t>(new int(0));
  return kSuccess;
}

API hipError_t hipStreamDestroy(hipStream_t stream) {
  if (hipError_t r = ready())
    return r;
  delete fromHandle<int>(stream);
  return kSuccess;
}

API hipError_t hipStreamSynchronize(hipStream_t stream) {
  if (hipError_t r = ready())
    return r;
  if (!stream)
    return kInvalidHandle;
  sync();
  return kSuccess;
}

API hipError_t hipMalloc(void **p, size_t size) {
  if (hipError_t r = ready())
    return r;
  if (size == 0) { // HIP returns success and NULL; the driver must avoid it.
    *p = nullptr;
    return kSuccess;
  }
  *p = allocate(size);
  return kSuccess;
}

API hipError_t hipFree(void *p) {
  if (!p)
    return kSuccess;
  return release(p) ? kSuccess : kInvalidValue;
}

API hipError_t hipMemsetAsync(void *p, int v, size_t n, hipStream_t) {
  if (hipError_t r = ready())
    return r;
  return fill(p, v, n) ? kSuccess : kInvalidValue;
}

API hipError_t hipMemcpyHtoDAsync(void *dst, void *src, size_t n,
                              hipStream_t) {
  if (hipError_t r = ready())
    return r;
  return copy(dst, src, n, dst) ? kSuccess : kInvalidValue;
}

API hipError_t hipMemcpyDtoHAsync(void *dst, void *src, size_t n,
                              hipStream_t) {
  if (hipError_t r = ready())
    return r;
  return copy(dst, src, n, src) ? kSuccess : kInvalidValue;
}

API hipError_t hipModuleLoadData(hipModule_t *module, const void *image) {
  if (hipError_t r = ready())
    return r;
  auto *c = static_cast<const char *>(image);
  if (std::memcmp(c, "\x7f" "ELF gfx90a\n", 11) != 0)
    return kInvalidImage;
  Module *m = parseModule(c);
  if (!m)
    return kInvalidImage;
  *module = toHandle<hipModule_t>(m);
  return kSuccess;
}

API hipError_t hipModuleGetFunction(hipFunction_t *fn, hipModule_t module,
                                    const char *name) {
  if (hipError_t r = ready())
    return r;
  Kernel *k = findKernel(fromHandle<Module>(module), name);
  if (!k)
    return kNotFound;
  *fn = toHandle<hipFunction_t>(k);
  return kSuccess;
}

API hipError_t hipModuleUnload(hipModule_t module) {
  if (hipError_t r = ready())
    return r;
  freeModule(fromHandle<Module>(module));
  return kSuccess;
}

API hipError_t hipModuleLaunchKernel(hipFunction_t fn, unsigned gx, unsigned gy,
                                     unsigned gz, unsigned bx, unsigned by,
                                     unsigned bz, unsigned shared,
                                     hipStream_t stream, void **params,
                                     void **extra) {
  if (hipError_t r = ready())
    return r;
  unsigned grid[3] = {gx, gy, gz}, block[3] = {bx, by, bz};
  return launchPacked(*fromHandle<Kernel>(fn), grid, block, shared, stream,
                      params, extra, kSuccess, kInvalidValue, kIllegalAddress);
}
}

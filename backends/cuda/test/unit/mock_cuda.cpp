//===- mock_cuda.cpp - A libcuda stand-in for the cuda driver tests -------===//
//
// Exports the CUDA driver API entry points the cuda driver dlsyms, backed
// by test/unit/MockGpu.h. One device, "Kiln Mock GPU", compute capability 9.0, 80 GiB.
// Calls that need a context fail unless one was made current on the calling
// thread, as with the real library. KILN_MOCK_INIT_ERROR=1 makes cuInit fail
// with CUDA_ERROR_NO_DEVICE.
//
// Images: a cubin is "\x7f" "ELF sm_XY\n" followed by .entry lines and a NUL;
// PTX is ".target sm_XY\n" plus .entry lines; PTX containing "syntax error"
// fails to JIT with a log.
//
//===----------------------------------------------------------------------===//
#define KILN_MOCK_DEFINE_RECORD
#include "MockGpu.h"
#include "cuda_symbols.h"

#include <cstdio>

using namespace kiln::cuda;
using namespace kiln::mock;

extern "C" {
KILN_CUDA_SYMBOLS(KILN_SYMBOL_EXPORT)
}

// What the cuda driver should make of this library (test/unit/MockGpus.h).
const KilnMockVendor kiln::mock::vendor = {
    "cuda", "KILN_CUDA_LIBRARY", "libcuda.so.1",
    "Kiln Mock GPU, sm_90, 80 GiB",
    "cuInit failed: CUDA_ERROR_NO_DEVICE (100): no CUDA-capable device is "
    "detected",
    "cubin-sm_90", "\x7f" "ELF sm_90"};

namespace {
constexpr CUresult kSuccess = 0, kInvalidValue = 1, kNotInitialized = 3,
                   kNoDevice = 100, kInvalidDevice = 101, kNoBinaryForGpu = 209,
                   kInvalidContext = 201, kInvalidPtx = 218, kNotFound = 500,
                   kIllegalAddress = 700, kInvalidHandle = 400;
constexpr int kArch = 90;

bool initialized = false;
int primaryRefs = 0;
int contextTag; // Its address is the one context.
thread_local void *current = nullptr;

CUresult ready() {
  if (!initialized)
    return kNotInitialized;
  return current == &contextTag ? kSuccess : kInvalidContext;
}

int archOf(const std::string &line) {
  size_t at = line.find("sm_");
  return at == std::string::npos ? -1 : std::atoi(line.c_str() + at + 3);
}

CUresult load(CUmodule *module, const std::string &text) {
  Module *m = parseModule(text);
  if (!m)
    return kInvalidPtx;
  if (archOf(m->target) > kArch ||
      (m->target.rfind("\x7f" "ELF", 0) == 0 && archOf(m->target) != kArch)) {
    freeModule(m);
    return kNoBinaryForGpu;
  }
  *module = toHandle<CUmodule>(m);
  return kSuccess;
}
} // namespace

extern "C" {
#define API __attribute__((visibility("default")))

API CUresult cuInit(unsigned flags) {
  if (flags)
    return kInvalidValue;
  if (initFails())
    return kNoDevice;
  initialized = true;
  return kSuccess;
}

API CUresult cuGetErrorName(CUresult r, const char **name) {
  switch (r) {
  case kSuccess: *name = "CUDA_SUCCESS"; return kSuccess;
  case kInvalidValue: *name = "CUDA_ERROR_INVALID_VALUE"; return kSuccess;
  case kNotInitialized: *name = "CUDA_ERROR_NOT_INITIALIZED"; return kSuccess;
  case kNoDevice: *name = "CUDA_ERROR_NO_DEVICE"; return kSuccess;
  case kNoBinaryForGpu: *name = "CUDA_ERROR_NO_BINARY_FOR_GPU"; return kSuccess;
  case kInvalidContext: *name = "CUDA_ERROR_INVALID_CONTEXT"; return kSuccess;
  case kInvalidPtx: *name = "CUDA_ERROR_INVALID_PTX"; return kSuccess;
  case kNotFound: *name = "CUDA_ERROR_NOT_FOUND"; return kSuccess;
  case kIllegalAddress: *name = "CUDA_ERROR_ILLEGAL_ADDRESS"; return kSuccess;
  }
  *name = nullptr;
  return kInvalidValue;
}

API CUresult cuGetErrorString(CUresult r, const char **text) {
  *text = r == kNoDevice ? "no CUDA-capable device is detected"
                         : "mock error";
  return kSuccess;
}

API CUresult cuDeviceGetCount(int *count) {
  if (!initialized)
    return kNotInitialized;
  *count = 1;
  return kSuccess;
}

API CUresult cuDeviceGet(int *device, int ordinal) {
  if (!initialized)
    return kNotInitialized;
  if (ordinal != 0)
    return kInvalidDevice;
  *device = 0;
  return kSuccess;
}

API CUresult cuDeviceGetName(char *name, int len, CUdevice device) {
  if (device != 0 || len < 1)
    return kInvalidValue;
  std::snprintf(name, len, "%s", kDeviceName);
  return kSuccess;
}

API CUresult cuDeviceGetAttribute(int *value, int attribute, CUdevice device) {
  if (device != 0)
    return kInvalidDevice;
  if (attribute == 75)
    *value = kArch / 10;
  else if (attribute == 76)
    *value = kArch % 10;
  else
    return kInvalidValue;
  return kSuccess;
}

API CUresult cuDeviceTotalMem_v2(size_t *bytes, CUdevice device) {
  if (device != 0)
    return kInvalidDevice;
  *bytes = 80ull << 30;
  return kSuccess;
}

API CUresult cuDevicePrimaryCtxRetain(CUcontext *context, CUdevice device) {
  if (!initialized)
    return kNotInitialized;
  if (device != 0)
    return kInvalidDevice;
  ++primaryRefs;
  *context = toHandle<CUcontext>(&contextTag);
  return kSuccess;
}

API CUresult cuDevicePrimaryCtxRelease_v2(CUdevice device) {
  if (device != 0 || primaryRefs == 0)
    return kInvalidValue;
  --primaryRefs;
  return kSuccess;
}

API CUresult cuCtxSetCurrent(CUcontext context) {
  if (context && fromHandle<int>(context) != &contextTag)
    return kInvalidContext;
  current = context;
  return kSuccess;
}

API CUresult cuStreamCreate(CUstream *stream, unsigned) {
  if (CUresult r = ready())
    return r;
  *stream = toHandle<CUstream>(new int(0));
  return kSuccess;
}

API CUresult cuStreamDestroy_v2(CUstream stream) {
  if (CUresult r = ready())
    return r;
  delete fromHandle<int>(stream);
  return kSuccess;
}

API CUresult cuStreamSynchronize(CUstream stream) {
  if (CUresult r = ready())
    return r;
  if (!stream)
    return kInvalidHandle;
  sync();
  return kSuccess;
}

API CUresult cuMemAlloc_v2(CUdeviceptr *p, size_t size) {
  if (CUresult r = ready())
    return r;
  if (size == 0)
    return kInvalidValue;
  *p = reinterpret_cast<uintptr_t>(allocate(size));
  return kSuccess;
}

API CUresult cuMemFree_v2(CUdeviceptr p) {
  if (CUresult r = ready())
    return r;
  return release(reinterpret_cast<void *>(p)) ? kSuccess : kInvalidValue;
}

API CUresult cuMemsetD8Async(CUdeviceptr p, unsigned char v, size_t n,
                             CUstream) {
  if (CUresult r = ready())
    return r;
  return fill(reinterpret_cast<void *>(p), v, n) ? kSuccess : kInvalidValue;
}

API CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr dst, const void *src,
                                  size_t n, CUstream) {
  if (CUresult r = ready())
    return r;
  auto *device = reinterpret_cast<void *>(dst);
  return copy(device, src, n, device) ? kSuccess : kInvalidValue;
}

API CUresult cuMemcpyDtoHAsync_v2(void *dst, CUdeviceptr src, size_t n,
                                  CUstream) {
  if (CUresult r = ready())
    return r;
  auto *device = reinterpret_cast<const void *>(src);
  return copy(dst, device, n, device) ? kSuccess : kInvalidValue;
}

API CUresult cuModuleLoadData(CUmodule *module, const void *image) {
  if (CUresult r = ready())
    return r;
  auto *c = static_cast<const char *>(image);
  if (std::memcmp(c, "\x7f" "ELF", 4) != 0)
    return kInvalidPtx; // Only cubins take this path in the tests.
  return load(module, c);
}

API CUresult cuModuleLoadDataEx(CUmodule *module, const void *image,
                                unsigned count, int *options, void **values) {
  if (CUresult r = ready())
    return r;
  std::string text = static_cast<const char *>(image);
  if (text.find("syntax error") != std::string::npos) {
    char *log = nullptr;
    size_t size = 0;
    for (unsigned i = 0; i < count; ++i) {
      if (options[i] == 5)
        log = static_cast<char *>(values[i]);
      if (options[i] == 6)
        size = reinterpret_cast<uintptr_t>(values[i]);
    }
    if (log && size)
      std::snprintf(log, size, "ptxas fatal   : mock syntax error on line 2");
    return kInvalidPtx;
  }
  return load(module, text);
}

API CUresult cuModuleGetFunction(CUfunction *fn, CUmodule module,
                                const char *name) {
  if (CUresult r = ready())
    return r;
  Kernel *k = findKernel(fromHandle<Module>(module), name);
  if (!k)
    return kNotFound;
  *fn = toHandle<CUfunction>(k);
  return kSuccess;
}

API CUresult cuModuleUnload(CUmodule module) {
  if (CUresult r = ready())
    return r;
  freeModule(fromHandle<Module>(module));
  return kSuccess;
}

API CUresult cuLaunchKernel(CUfunction fn, unsigned gx, unsigned gy,
                            unsigned gz, unsigned bx, unsigned by, unsigned bz,
                            unsigned shared, CUstream stream, void **params,
                            void **extra) {
  if (CUresult r = ready())
    return r;
  unsigned grid[3] = {gx, gy, gz}, block[3] = {bx, by, bz};
  return launchPacked(*fromHandle<Kernel>(fn), grid, block, shared, stream,
                      params, extra, kSuccess, kInvalidValue, kIllegalAddress);
}
}

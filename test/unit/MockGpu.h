//===- MockGpu.h - Host-memory "GPU" behind the mock vendor libraries -*- C++ -*-===//
//
// Each mock vendor library (a GPU backend's test/unit/mock_<vendor>.cpp)
// includes this and gets its own copy of the state. Device memory is host
// memory, filled with 0xAB on allocation so a driver that forgets to zero it
// is caught. A module image is text: a first line naming its target, then
// one ".entry NAME NPARAMS" line per kernel. Launches are recorded, and
// kernels named vadd / vmul run one element per thread (i = blockIdx.x *
// blockDim.x + threadIdx.x), with parameters (a, b, out, &n) as the test
// kernels of the cpu tests.
//
// Each mock declares its vendor's entry points from the driver's symbol list
// (KILN_<VENDOR>_SYMBOLS with KILN_SYMBOL_EXPORT), so a definition that
// disagrees with what the driver calls does not compile. The tests read the
// record back through the kiln_mock_* functions, and from kiln_mock_vendor
// what the mock's driver should make of it, so the suites in test/unit name
// no vendor (MockGpus.h).
//
//===----------------------------------------------------------------------===//
#ifndef KILN_TEST_UNIT_MOCKGPU_H
#define KILN_TEST_UNIT_MOCKGPU_H

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

extern "C" {
struct KilnMockLaunch {
  char name[32];
  uint32_t grid[3], block[3], shared;
  uint32_t param_count;
  uint64_t params[8];
};

struct KilnMockVendor {
  const char *driver;   // The kiln driver that dlopens this library,
  const char *env;      // the variable that points it here,
  const char *library;  // and what it loads without that variable.
  const char *device;   // The driver's description of the one device,
  const char *noDevice; // and why it is unavailable when init fails.
  const char *format;   // An executable format the device loads, and the
  const char *image;    // first line of an image in that format.
};
}

namespace kiln::mock {

/// Defined by each mock: what its driver should make of it.
extern const KilnMockVendor vendor;

/// The one device every mock has.
constexpr const char *kDeviceName = "Kiln Mock GPU";

/// KILN_MOCK_INIT_ERROR=1: initialization fails, as on a machine with the
/// vendor's driver but no GPU.
inline bool initFails() {
  const char *fail = std::getenv("KILN_MOCK_INIT_ERROR");
  return fail && *fail == '1';
}

struct Alloc {
  char *base;
  size_t size;
  bool live;
};
struct Kernel {
  std::string name;
  unsigned params;
};
struct Module {
  std::string target; // The first line of the image.
  std::vector<Kernel> kernels;
};

struct State {
  std::mutex mutex;
  std::vector<Alloc> allocs;
  std::vector<KilnMockLaunch> launches;
  std::string lastModule;
  int liveModules = 0;
  int syncs = 0;
  int unordered = 0; // Commands queued after another without a barrier.
};

inline State &state() {
  static State s;
  return s;
}

inline void *allocate(size_t size) {
  char *p = static_cast<char *>(std::malloc(size ? size : 1));
  std::memset(p, 0xab, size);
  std::lock_guard<std::mutex> lock(state().mutex);
  state().allocs.push_back({p, size, true});
  return p;
}

inline bool release(void *p) {
  std::lock_guard<std::mutex> lock(state().mutex);
  for (Alloc &a : state().allocs)
    if (a.live && a.base == p) {
      a.live = false;
      std::free(p);
      return true;
    }
  return false;
}

/// Whether [p, p + size) lies inside one live allocation.
inline bool inRange(const void *p, size_t size) {
  std::lock_guard<std::mutex> lock(state().mutex);
  auto *c = static_cast<const char *>(p);
  for (const Alloc &a : state().allocs)
    if (a.live && c >= a.base && c + size <= a.base + a.size &&
        c + size >= c)
      return true;
  return false;
}

/// Parses an image; returns nullptr when it has no ".entry" line.
inline Module *parseModule(const std::string &text) {
  std::istringstream in(text);
  auto *m = new Module();
  std::getline(in, m->target);
  std::string word;
  while (in >> word)
    if (word == ".entry") {
      Kernel k;
      in >> k.name >> k.params;
      m->kernels.push_back(k);
    }
  if (m->kernels.empty()) {
    delete m;
    return nullptr;
  }
  std::lock_guard<std::mutex> lock(state().mutex);
  state().lastModule = m->target;
  ++state().liveModules;
  return m;
}

inline void freeModule(Module *m) {
  std::lock_guard<std::mutex> lock(state().mutex);
  --state().liveModules;
  delete m;
}

inline Kernel *findKernel(Module *m, const char *name) {
  for (Kernel &k : m->kernels)
    if (k.name == name)
      return &k;
  return nullptr;
}

/// Records and runs a launch; false if a pointer the kernel touches is not
/// device memory (a GPU would fault).
inline bool launch(const Kernel &k, const unsigned grid[3],
                   const unsigned block[3], unsigned shared,
                   const uint64_t *params) {
  KilnMockLaunch l{};
  std::strncpy(l.name, k.name.c_str(), sizeof(l.name) - 1);
  for (int i = 0; i < 3; ++i) {
    l.grid[i] = grid[i];
    l.block[i] = block[i];
  }
  l.shared = shared;
  l.param_count = k.params;
  for (unsigned i = 0; i < k.params && i < 8; ++i)
    l.params[i] = params[i];
  {
    std::lock_guard<std::mutex> lock(state().mutex);
    state().launches.push_back(l);
  }
  if (k.name != "vadd" && k.name != "vmul")
    return true;
  if (k.params != 4 || !inRange(reinterpret_cast<void *>(params[3]), 8))
    return false;
  int64_t n;
  std::memcpy(&n, reinterpret_cast<void *>(params[3]), 8);
  if (n < 0)
    n = 0;
  for (int i = 0; i < 3; ++i)
    if (!inRange(reinterpret_cast<void *>(params[i]), n * 4))
      return false;
  auto *a = reinterpret_cast<const float *>(params[0]);
  auto *b = reinterpret_cast<const float *>(params[1]);
  auto *out = reinterpret_cast<float *>(params[2]);
  for (uint64_t bx = 0; bx < grid[0]; ++bx)
    for (uint64_t tx = 0; tx < block[0]; ++tx) {
      uint64_t i = bx * block[0] + tx;
      if (i < static_cast<uint64_t>(n))
        out[i] = k.name == "vadd" ? a[i] + b[i] : a[i] * b[i];
    }
  return true;
}

/// A launch in the form the CUDA driver API and HIP share: one pointer per
/// parameter, no `extra`, at most 1024 threads a block. `invalid` for what
/// those libraries refuse, `fault` where the GPU would fault.
template <typename Result>
Result launchPacked(const Kernel &k, const unsigned grid[3],
                    const unsigned block[3], unsigned shared,
                    const void *stream, void **params, void **extra,
                    Result ok, Result invalid, Result fault) {
  if (!stream || extra || !grid[0] || !grid[1] || !grid[2] || !block[0] ||
      !block[1] || !block[2] || block[0] * block[1] * block[2] > 1024 ||
      (k.params && !params))
    return invalid;
  uint64_t values[8] = {};
  for (unsigned i = 0; i < k.params && i < 8; ++i)
    std::memcpy(&values[i], params[i], 8);
  return launch(k, grid, block, shared, values) ? ok : fault;
}

/// memset and memcpy where `device` (the destination or the source) must be
/// device memory.
inline bool fill(void *device, int value, size_t n) {
  if (!inRange(device, n))
    return false;
  std::memset(device, value, n);
  return true;
}
inline bool copy(void *dst, const void *src, size_t n, const void *device) {
  if (!inRange(device, n))
    return false;
  std::memcpy(dst, src, n);
  return true;
}

/// Mock objects travel as the vendor's opaque handle types.
template <typename Handle, typename T> Handle toHandle(T *p) {
  return reinterpret_cast<Handle>(p);
}
template <typename T, typename Handle> T *fromHandle(Handle h) {
  return reinterpret_cast<T *>(h);
}

inline void sync() {
  std::lock_guard<std::mutex> lock(state().mutex);
  ++state().syncs;
}

} // namespace kiln::mock

// The test-facing record. Defined in every mock library that includes this
// with KILN_MOCK_DEFINE_RECORD.
#ifdef KILN_MOCK_DEFINE_RECORD
extern "C" {
__attribute__((visibility("default"))) const KilnMockVendor *
kiln_mock_vendor(void) {
  return &kiln::mock::vendor;
}
__attribute__((visibility("default"))) int kiln_mock_launch_count(void) {
  std::lock_guard<std::mutex> lock(kiln::mock::state().mutex);
  return static_cast<int>(kiln::mock::state().launches.size());
}
__attribute__((visibility("default"))) int
kiln_mock_get_launch(int i, KilnMockLaunch *out) {
  std::lock_guard<std::mutex> lock(kiln::mock::state().mutex);
  auto &v = kiln::mock::state().launches;
  if (i < 0 || static_cast<size_t>(i) >= v.size())
    return 0;
  *out = v[i];
  return 1;
}
__attribute__((visibility("default"))) int kiln_mock_alloc_count(void) {
  std::lock_guard<std::mutex> lock(kiln::mock::state().mutex);
  return static_cast<int>(kiln::mock::state().allocs.size());
}
__attribute__((visibility("default"))) uint64_t kiln_mock_alloc_base(int i) {
  std::lock_guard<std::mutex> lock(kiln::mock::state().mutex);
  return reinterpret_cast<uintptr_t>(kiln::mock::state().allocs.at(i).base);
}
__attribute__((visibility("default"))) uint64_t kiln_mock_alloc_size(int i) {
  std::lock_guard<std::mutex> lock(kiln::mock::state().mutex);
  return kiln::mock::state().allocs.at(i).size;
}
__attribute__((visibility("default"))) int kiln_mock_live_allocs(void) {
  std::lock_guard<std::mutex> lock(kiln::mock::state().mutex);
  int n = 0;
  for (const auto &a : kiln::mock::state().allocs)
    n += a.live;
  return n;
}
__attribute__((visibility("default"))) int kiln_mock_live_modules(void) {
  std::lock_guard<std::mutex> lock(kiln::mock::state().mutex);
  return kiln::mock::state().liveModules;
}
__attribute__((visibility("default"))) const char *kiln_mock_last_module(void) {
  std::lock_guard<std::mutex> lock(kiln::mock::state().mutex);
  return kiln::mock::state().lastModule.c_str();
}
__attribute__((visibility("default"))) int kiln_mock_unordered(void) {
  std::lock_guard<std::mutex> lock(kiln::mock::state().mutex);
  return kiln::mock::state().unordered;
}
__attribute__((visibility("default"))) int kiln_mock_sync_count(void) {
  std::lock_guard<std::mutex> lock(kiln::mock::state().mutex);
  return kiln::mock::state().syncs;
}
}
#endif

#endif // KILN_TEST_UNIT_MOCKGPU_H

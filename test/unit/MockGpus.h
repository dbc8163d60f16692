//===- MockGpus.h - The mock vendor libraries the build registered -*- C++ -*-===//
//
// Each GPU backend builds a mock of its vendor library (MockGpu.h) with
// kiln_add_mock_gpu. The tests get their paths as KILN_MOCK_GPUS, joined by
// ':' in the backends' order (the runtime's device order), and read from
// each what its driver should make of it (KilnMockVendor). So the GPU suites
// name no vendor: a new GPU backend runs them by registering its mock.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_TEST_UNIT_MOCKGPUS_H
#define KILN_TEST_UNIT_MOCKGPUS_H

#include "MockGpu.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <dlfcn.h>
#include <ostream>
#include <string>
#include <vector>

namespace kiln::test {

/// A mock library and its record of allocations and launches. The driver
/// dlopens the same path, so both see one copy of the mock's state; the
/// library stays open for the process, as the driver's does.
struct Mock {
  std::string path;
  KilnMockVendor vendor{};
  int (*launchCount)() = nullptr;
  int (*getLaunch)(int, KilnMockLaunch *) = nullptr;
  int (*allocCount)() = nullptr;
  uint64_t (*allocBase)(int) = nullptr;
  uint64_t (*allocSize)(int) = nullptr;
  int (*liveAllocs)() = nullptr;
  int (*liveModules)() = nullptr;
  const char *(*lastModule)() = nullptr;
  int (*syncCount)() = nullptr;
  int (*unordered)() = nullptr;

  /// Aborts when `path` is not a mock: the build is broken, not a test.
  explicit Mock(std::string p) : path(std::move(p)) {
    void *lib = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!lib)
      die(::dlerror());
    const KilnMockVendor *(*describe)() = nullptr;
    get(lib, describe, "kiln_mock_vendor");
    vendor = *describe();
    get(lib, launchCount, "kiln_mock_launch_count");
    get(lib, getLaunch, "kiln_mock_get_launch");
    get(lib, allocCount, "kiln_mock_alloc_count");
    get(lib, allocBase, "kiln_mock_alloc_base");
    get(lib, allocSize, "kiln_mock_alloc_size");
    get(lib, liveAllocs, "kiln_mock_live_allocs");
    get(lib, liveModules, "kiln_mock_live_modules");
    get(lib, lastModule, "kiln_mock_last_module");
    get(lib, syncCount, "kiln_mock_sync_count");
    get(lib, unordered, "kiln_mock_unordered");
  }

  /// The driver this mock stands in for.
  const char *name() const { return vendor.driver; }

  KilnMockLaunch launch(int i) const {
    KilnMockLaunch l{};
    EXPECT_TRUE(getLaunch(i, &l)) << "no launch " << i;
    return l;
  }

private:
  template <typename Fn> void get(void *lib, Fn &fn, const char *name) {
    fn = reinterpret_cast<Fn>(::dlsym(lib, name));
    if (!fn)
      die((std::string("no ") + name).c_str());
  }
  [[noreturn]] void die(const char *why) const {
    std::fprintf(stderr, "mock GPU %s: %s\n", path.c_str(), why);
    std::abort();
  }
};

inline std::ostream &operator<<(std::ostream &os, const Mock &m) {
  return os << m.name();
}

/// The registered mocks, in the backends' order.
inline const std::vector<Mock> &mockGpus() {
  static const std::vector<Mock> mocks = [] {
    std::vector<Mock> v;
#ifdef KILN_MOCK_GPUS
    std::string paths = KILN_MOCK_GPUS;
    for (size_t at = 0, end; at < paths.size(); at = end + 1) {
      end = paths.find(':', at);
      if (end == std::string::npos)
        end = paths.size();
      v.emplace_back(paths.substr(at, end - at));
    }
#endif
    return v;
  }();
  return mocks;
}

/// The mock standing in for `driver`'s library; aborts when none is.
inline const Mock &mockFor(const std::string &driver) {
  for (const Mock &m : mockGpus())
    if (driver == m.name())
      return m;
  std::fprintf(stderr, "no mock GPU for %s\n", driver.c_str());
  std::abort();
}

/// Points each driver at its mock. Before the first device query: drivers
/// look for their library once.
inline void useMockLibraries() {
  for (const Mock &m : mockGpus())
    ::setenv(m.vendor.env, m.path.c_str(), 1);
  ::unsetenv("KILN_MOCK_INIT_ERROR");
}

} // namespace kiln::test

#endif // KILN_TEST_UNIT_MOCKGPUS_H

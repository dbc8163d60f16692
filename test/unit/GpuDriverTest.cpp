//===- GpuDriverTest.cpp - GPU drivers against mock vendor libraries ------===//
//
// The drivers are linked in twice: their objects directly, to call the vtable
// with exact arguments, and inside libkiln_runtime, for whole sessions. Both
// copies dlopen the same mock library (KILN_*_LIBRARY is set in main before
// anything runs), so they share its record of allocations and launches.
//
//===----------------------------------------------------------------------===//
#include "DirectDriver.h"
#include "MockGpu.h"
#include "TestUtil.h"

#include "kiln/driver.h"
#include "kiln/runtime.h"

#include <cstdarg>
#include <cstdio>
#include <dlfcn.h>

using namespace kiln;
using namespace kiln::test;
using ::testing::HasSubstr;
using ::testing::StartsWith;

extern "C" const kiln_driver *kiln_driver_cuda_entry(void);
extern "C" const kiln_driver *kiln_driver_hip_entry(void);
extern "C" const kiln_driver *kiln_driver_levelzero_entry(void);

namespace {

/// The record kept by one mock vendor library.
struct Mock {
  void *lib = nullptr;
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

  explicit Mock(const char *path) {
    lib = ::dlopen(path, RTLD_NOW | RTLD_LOCAL);
    EXPECT_NE(lib, nullptr) << ::dlerror();
    get(launchCount, "kiln_mock_launch_count");
    get(getLaunch, "kiln_mock_get_launch");
    get(allocCount, "kiln_mock_alloc_count");
    get(allocBase, "kiln_mock_alloc_base");
    get(allocSize, "kiln_mock_alloc_size");
    get(liveAllocs, "kiln_mock_live_allocs");
    get(liveModules, "kiln_mock_live_modules");
    get(lastModule, "kiln_mock_last_module");
    get(syncCount, "kiln_mock_sync_count");
    get(unordered, "kiln_mock_unordered");
  }
  template <typename Fn> void get(Fn &fn, const char *name) {
    fn = lib ? reinterpret_cast<Fn>(::dlsym(lib, name)) : nullptr;
    ASSERT_NE(fn, nullptr) << name;
  }
  KilnMockLaunch launch(int i) {
    KilnMockLaunch l{};
    EXPECT_TRUE(getLaunch(i, &l)) << "no launch " << i;
    return l;
  }
};

std::vector<uint8_t> bytes(const std::string &s) {
  return {s.begin(), s.end()};
}

/// A mock image: first line `target`, then the kernels the tests use.
std::vector<uint8_t> mockImage(const std::string &target) {
  std::string s = target +
                  "\n.entry vadd 4\n.entry vmul 4\n.entry four 4\n"
                  ".entry none 0\n";
  s.push_back('\0');
  return bytes(s);
}

/// What differs between the vendors in the shared tests.
struct Vendor {
  const char *name;
  const kiln_driver *(*entry)(void);
  const char *mockPath;
  const char *description;    // Of the mock's one device.
  const char *format;         // Loads on the mock device.
  std::string imageTarget;    // First line of an image for `format`.
};

std::ostream &operator<<(std::ostream &os, const Vendor &v) {
  return os << v.name;
}

std::vector<Vendor> vendors() {
  std::vector<Vendor> v;
#ifdef KILN_MOCK_CUDA
  v.push_back({"cuda", kiln_driver_cuda_entry, KILN_MOCK_CUDA,
               "Kiln Mock GPU, sm_90, 80 GiB", "cubin-sm_90",
               "\x7f" "ELF sm_90"});
#endif
#ifdef KILN_MOCK_HIP
  v.push_back({"hip", kiln_driver_hip_entry, KILN_MOCK_HIP,
               "Kiln Mock GPU, gfx90a, 64 GiB", "hsaco-gfx90a",
               "\x7f" "ELF gfx90a"});
#endif
#ifdef KILN_MOCK_LEVELZERO
  v.push_back({"levelzero", kiln_driver_levelzero_entry, KILN_MOCK_LEVELZERO,
               "Kiln Mock GPU, 16 GiB", "spirv",
               std::string("\x03\x02\x23\x07 spirv", 10)});
#endif
  return v;
}

class GpuDriver : public ::testing::TestWithParam<Vendor> {
protected:
  void SetUp() override {
    mock = std::make_unique<Mock>(GetParam().mockPath);
    d = GetParam().entry();
    ASSERT_EQ(d->device_open(0, nullptr, &dev), KILN_OK) << driverError;
  }
  void TearDown() override {
    if (dev)
      d->device_close(dev);
  }
  void *alloc(uint64_t size) {
    void *b = nullptr;
    EXPECT_EQ(d->buffer_alloc(dev, size, &b), KILN_OK) << driverError;
    return b;
  }
  /// Index of `buffer` in the mock's allocation record.
  int allocIndex(void *buffer) {
    for (int i = mock->allocCount() - 1; i >= 0; --i)
      if (mock->allocBase(i) == reinterpret_cast<uintptr_t>(buffer))
        return i;
    return -1;
  }

  std::unique_ptr<Mock> mock;
  const kiln_driver *d = nullptr;
  void *dev = nullptr;
};

TEST_P(GpuDriver, DescribesTheMockDevice) {
  EXPECT_EQ(d->abi_version, KILN_DRIVER_ABI_VERSION);
  EXPECT_STREQ(d->name, GetParam().name);
  ASSERT_EQ(d->device_count(), 1u);
  kiln_driver_device_desc desc{};
  ASSERT_EQ(d->device_describe(0, &desc), KILN_OK);
  EXPECT_STREQ(desc.description, GetParam().description);
  EXPECT_EQ(desc.available, 1);
  EXPECT_EQ(d->device_describe(1, &desc), KILN_ERROR_NOT_FOUND);
  void *other = nullptr;
  EXPECT_EQ(d->device_open(1, nullptr, &other), KILN_ERROR_NOT_FOUND);
}

TEST_P(GpuDriver, BuffersAreZeroedAndCopiesHonorOffsets) {
  int live = mock->liveAllocs();
  void *b = alloc(100);
  ASSERT_NE(b, nullptr);
  int index = allocIndex(b);
  ASSERT_GE(index, 0) << "buffer handle is not the device pointer";
  EXPECT_GE(mock->allocSize(index), 100u);
  EXPECT_EQ(mock->liveAllocs(), live + 1);

  // The mock fills new memory with 0xab; the driver must clear it.
  std::vector<uint8_t> all(100, 0xff);
  ASSERT_EQ(d->buffer_read(dev, b, 0, all.data(), all.size()), KILN_OK)
      << driverError;
  EXPECT_EQ(all, std::vector<uint8_t>(100, 0));

  const uint8_t data[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  ASSERT_EQ(d->buffer_write(dev, b, 40, data, 8), KILN_OK) << driverError;
  std::vector<uint8_t> part(16, 0xff);
  ASSERT_EQ(d->buffer_read(dev, b, 36, part.data(), part.size()), KILN_OK)
      << driverError;
  EXPECT_EQ(part, (std::vector<uint8_t>{0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 0,
                                        0, 0, 0}));
  uint8_t last = 0xff;
  ASSERT_EQ(d->buffer_read(dev, b, 99, &last, 1), KILN_OK) << driverError;
  EXPECT_EQ(last, 0);

  void *empty = alloc(0);
  EXPECT_NE(empty, nullptr);
  d->buffer_free(dev, empty);
  d->buffer_free(dev, b);
  EXPECT_EQ(mock->liveAllocs(), live);
}

TEST_P(GpuDriver, LaunchGetsGridBlockAndBindingPointers) {
  void *bufs[3] = {alloc(256), alloc(64), alloc(128)};
  std::vector<uint8_t> image = mockImage(GetParam().imageTarget);
  kiln_driver_entry entries[] = {{"none", {1, 1, 1}}, {"four", {32, 2, 3}}};
  void *exe = nullptr;
  ASSERT_EQ(d->executable_load(dev, GetParam().format, image.data(),
                               image.size(), entries, 2, &exe),
            KILN_OK)
      << driverError;
  int before = mock->launchCount();
  kiln_driver_binding bindings[] = {
      {bufs[2], 0}, {bufs[0], 64}, {bufs[1], 8}, {bufs[0], 200}};
  const uint32_t grid[3] = {7, 5, 2};
  ASSERT_EQ(d->dispatch(dev, exe, 1, grid, bindings, 4), KILN_OK)
      << driverError;
  ASSERT_EQ(d->synchronize(dev), KILN_OK) << driverError;
  ASSERT_EQ(mock->launchCount(), before + 1);
  KilnMockLaunch l = mock->launch(before);
  EXPECT_STREQ(l.name, "four");
  EXPECT_EQ(std::vector<uint32_t>(l.grid, l.grid + 3),
            (std::vector<uint32_t>{7, 5, 2}));
  EXPECT_EQ(std::vector<uint32_t>(l.block, l.block + 3),
            (std::vector<uint32_t>{32, 2, 3}));
  EXPECT_EQ(l.shared, 0u);
  ASSERT_EQ(l.param_count, 4u);
  for (int i = 0; i < 4; ++i)
    EXPECT_EQ(l.params[i], reinterpret_cast<uintptr_t>(bindings[i].buffer) +
                               bindings[i].offset)
        << "parameter " << i;

  // A kernel without bindings, then an empty grid: nothing is launched.
  ASSERT_EQ(d->dispatch(dev, exe, 0, grid, nullptr, 0), KILN_OK) << driverError;
  ASSERT_EQ(d->synchronize(dev), KILN_OK) << driverError;
  EXPECT_EQ(mock->launchCount(), before + 2);
  for (int axis = 0; axis < 3; ++axis) {
    uint32_t empty[3] = {4, 4, 4};
    empty[axis] = 0;
    ASSERT_EQ(d->dispatch(dev, exe, 1, empty, bindings, 4), KILN_OK)
        << driverError;
  }
  ASSERT_EQ(d->synchronize(dev), KILN_OK) << driverError;
  EXPECT_EQ(mock->launchCount(), before + 2);
  EXPECT_EQ(d->dispatch(dev, exe, 2, grid, bindings, 4),
            KILN_ERROR_INVALID_ARGUMENT);

  int syncs = mock->syncCount();
  ASSERT_EQ(d->dispatch(dev, exe, 1, grid, bindings, 4), KILN_OK)
      << driverError;
  ASSERT_EQ(d->synchronize(dev), KILN_OK) << driverError;
  EXPECT_GT(mock->syncCount(), syncs);
  EXPECT_EQ(mock->launchCount(), before + 3);
  EXPECT_EQ(mock->unordered(), 0) << "commands without a barrier between";
  int modules = mock->liveModules();
  d->executable_unload(dev, exe);
  EXPECT_EQ(mock->liveModules(), modules - 1);
  for (void *b : bufs)
    d->buffer_free(dev, b);
}

TEST_P(GpuDriver, LoadErrors) {
  std::vector<uint8_t> image = mockImage(GetParam().imageTarget);
  kiln_driver_entry missing[] = {{"vadd", {1, 1, 1}}, {"nope", {1, 1, 1}}};
  void *exe = nullptr;
  int modules = mock->liveModules();
  EXPECT_EQ(d->executable_load(dev, GetParam().format, image.data(),
                               image.size(), missing, 2, &exe),
            KILN_ERROR_NOT_FOUND);
  EXPECT_THAT(driverError, HasSubstr("'nope'"));
  EXPECT_EQ(mock->liveModules(), modules) << "module leaked on error";
  EXPECT_EQ(d->executable_load(dev, "elf-x86_64-so", image.data(),
                               image.size(), missing, 1, &exe),
            KILN_ERROR_UNAVAILABLE);
  EXPECT_THAT(driverError, HasSubstr("'elf-x86_64-so'"));
}

INSTANTIATE_TEST_SUITE_P(Mock, GpuDriver, ::testing::ValuesIn(vendors()),
                         [](const auto &info) { return info.param.name; });
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(GpuDriver);

#ifdef KILN_MOCK_CUDA
TEST(CudaDriver, PicksCubinOrPtxByComputeCapability) {
  Mock mock(KILN_MOCK_CUDA);
  const kiln_driver *d = kiln_driver_cuda_entry();
  void *dev = nullptr;
  ASSERT_EQ(d->device_open(0, nullptr, &dev), KILN_OK) << driverError;
  kiln_driver_entry entries[] = {{"vadd", {16, 1, 1}}};
  auto load = [&](const char *format, const std::vector<uint8_t> &image,
                  size_t size = SIZE_MAX) {
    size = std::min(size, image.size());
    void *exe = nullptr;
    kiln_status st = d->executable_load(dev, format, image.data(), size,
                                        entries, 1, &exe);
    if (exe)
      d->executable_unload(dev, exe);
    return st;
  };
  auto cubin = [](const char *arch) {
    return mockImage(std::string("\x7f" "ELF ") + arch);
  };
  EXPECT_EQ(load("cubin-sm_80", cubin("sm_80")), KILN_ERROR_UNAVAILABLE);
  EXPECT_EQ(driverError, "cubin is for sm_80, device is sm_90");
  EXPECT_EQ(load("cubin-sm_100", cubin("sm_100")), KILN_ERROR_UNAVAILABLE);
  EXPECT_EQ(driverError, "cubin is for sm_100, device is sm_90");
  ASSERT_EQ(load("cubin-sm_90", cubin("sm_90")), KILN_OK) << driverError;
  EXPECT_STREQ(mock.lastModule(), "\x7f" "ELF sm_90");

  // PTX is stored without a terminator: what follows it here would break
  // the JIT if the driver passed the image through unterminated.
  std::string ptx = ".target sm_80\n.entry vadd 4\n";
  std::vector<uint8_t> stored = bytes(ptx + "garbage: syntax error");
  EXPECT_EQ(load("ptx-sm_100", stored, ptx.size()), KILN_ERROR_UNAVAILABLE);
  EXPECT_EQ(driverError, "PTX is for sm_100 and newer, device is sm_90");
  ASSERT_EQ(load("ptx-sm_80", stored, ptx.size()), KILN_OK) << driverError;
  EXPECT_STREQ(mock.lastModule(), ".target sm_80");
  ASSERT_EQ(load("ptx-sm_90", stored, ptx.size()), KILN_OK) << driverError;

  std::vector<uint8_t> bad = bytes(".target sm_90\nsyntax error\n.entry vadd 4\n");
  EXPECT_EQ(load("ptx-sm_90", bad, bad.size()), KILN_ERROR_INTERNAL);
  EXPECT_THAT(driverError, HasSubstr("cuModuleLoadDataEx (PTX JIT) failed: "
                                     "CUDA_ERROR_INVALID_PTX (218)"));
  EXPECT_THAT(driverError, HasSubstr("JIT log: ptxas fatal   : mock syntax "
                                     "error on line 2"));
  EXPECT_EQ(load("cubin-sm_90", bad, bad.size()), KILN_ERROR_CORRUPT);
  EXPECT_EQ(load("cubin-sm_9x", cubin("sm_90")), KILN_ERROR_UNAVAILABLE);
  EXPECT_EQ(load("ptx", stored, ptx.size()), KILN_ERROR_UNAVAILABLE);
  d->device_close(dev);
}
#endif

/// `m` with its executables replaced by GPU ones for `target`, one thread
/// per element: workgroups of 16 threads over the same grid.
void useGpu(VaddModule &m, const std::string &target,
            const std::vector<std::pair<std::string, std::vector<uint8_t>>> &images) {
  std::vector<artifact::Executable> exes;
  uint32_t groups = static_cast<uint32_t>((m.n + 15) / 16);
  for (const auto &[format, image] : images)
    exes.push_back({target, format, image,
                    {{"vadd", {groups, 1, 1}, {16, 1, 1}},
                     {"vmul", {groups, 1, 1}, {16, 1, 1}}}});
  // The cpu executable stays last, so only a failure to pick the GPU would
  // run it.
  exes.push_back(m.module.executables.back());
  m.module.executables = exes;
}

/// Runs `m` on the default device; returns that device's name.
std::string runVadd(const VaddModule &m) {
  std::string path = tempPath(".kiln");
  EXPECT_EQ(artifact::writeArtifact(m.module, path), "");
  kiln_artifact *a = nullptr;
  EXPECT_EQ(kiln_artifact_open(path.c_str(), &a), KILN_OK) << kiln_last_error();
  kiln_session *s = nullptr;
  EXPECT_EQ(kiln_session_create(a, nullptr, nullptr, &s), KILN_OK)
      << kiln_last_error();
  kiln_artifact_release(a);
  if (!s)
    return "";
  std::string device = kiln_session_device(s);
  std::vector<float> x(m.n), y(m.n), out(m.n, -1.0f);
  for (int64_t i = 0; i < m.n; ++i) {
    x[i] = 0.25f * static_cast<float>(i);
    y[i] = 2.0f - static_cast<float>(i % 5);
  }
  int64_t dims[] = {m.n};
  EXPECT_EQ(kiln_session_set_input(s, "a", KILN_DTYPE_F32, 1, dims, x.data(),
                                   x.size() * 4),
            KILN_OK);
  EXPECT_EQ(kiln_session_set_input(s, "b", KILN_DTYPE_F32, 1, dims, y.data(),
                                   y.size() * 4),
            KILN_OK);
  EXPECT_EQ(kiln_session_run(s), KILN_OK) << kiln_last_error();
  EXPECT_EQ(kiln_session_output_read(s, 0, out.data(), out.size() * 4),
            KILN_OK)
      << kiln_last_error();
  for (int64_t i = 0; i < m.n; ++i)
    if (out[i] != (x[i] + y[i]) * m.c[i]) {
      ADD_FAILURE() << "y[" << i << "] = " << out[i] << ", expected "
                    << (x[i] + y[i]) * m.c[i];
      break;
    }
  kiln_session_release(s);
  return device;
}

class GpuSession : public ::testing::TestWithParam<Vendor> {};

TEST_P(GpuSession, RunsVaddEndToEnd) {
  Mock mock(GetParam().mockPath);
  int live = mock.liveAllocs(), launches = mock.launchCount();
  VaddModule m(1000); // 63 workgroups of 16, the last one partial.
  useGpu(m, GetParam().name,
         {{GetParam().format, mockImage(GetParam().imageTarget)}});
  EXPECT_EQ(runVadd(m), std::string(GetParam().name) + ":0");
  ASSERT_EQ(mock.launchCount(), launches + 2);
  KilnMockLaunch add = mock.launch(launches), mul = mock.launch(launches + 1);
  EXPECT_STREQ(add.name, "vadd");
  EXPECT_STREQ(mul.name, "vmul");
  EXPECT_EQ(add.grid[0], 63u);
  EXPECT_EQ(add.block[0], 16u);
  // The count binding is buffer 4 at offset 8; the session allocates the
  // buffers in order, so buffer k is the k-th allocation of this session.
  int first = mock.allocCount() - 6;
  EXPECT_EQ(add.params[3], mock.allocBase(first + 4) + 8);
  EXPECT_EQ(mul.params[2], mock.allocBase(first + 2));
  EXPECT_EQ(mock.liveAllocs(), live) << "session leaked device memory";
  EXPECT_EQ(mock.unordered(), 0) << "commands without a barrier between";
}

#ifdef KILN_MOCK_CUDA
TEST(CudaSession, TriesExecutablesInOrderUntilOneLoads) {
  Mock mock(KILN_MOCK_CUDA);
  VaddModule m(100);
  useGpu(m, "cuda",
         {{"cubin-sm_80", mockImage("\x7f" "ELF sm_80")},
          {"cubin-sm_86", mockImage("\x7f" "ELF sm_86")},
          {"ptx-sm_80", bytes(".target sm_80\n.entry vadd 4\n.entry vmul 4\n")},
          {"cubin-sm_90", mockImage("\x7f" "ELF sm_90")}});
  EXPECT_EQ(runVadd(m), "cuda:0");
  EXPECT_STREQ(mock.lastModule(), ".target sm_80");
}
#endif

INSTANTIATE_TEST_SUITE_P(Mock, GpuSession, ::testing::ValuesIn(vendors()),
                         [](const auto &info) { return info.param.name; });
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(GpuSession);

TEST(GpuDevices, GpusComeBeforeTheCpu) {
  std::vector<std::string> names;
  for (size_t i = 0; i < kiln_device_count(); ++i) {
    kiln_device_info info;
    ASSERT_EQ(kiln_device_info_get(i, &info), KILN_OK);
    EXPECT_TRUE(info.available) << info.name << ": " << info.description;
    // The simulated npu (always available, between the GPUs and the cpu)
    // is not what this test is about.
    if (std::string(info.driver) != "npu")
      names.push_back(info.name);
  }
  std::vector<std::string> expected;
  for (const Vendor &v : vendors())
    expected.push_back(std::string(v.name) + ":0");
  expected.push_back("cpu:0");
  EXPECT_EQ(names, expected);
}

} // namespace

int main(int argc, char **argv) {
  useMockLibraries();
  ::testing::InitGoogleMock(&argc, argv);
  return RUN_ALL_TESTS();
}

//===- GpuDriverTest.cpp - GPU drivers against mock vendor libraries ------===//
//
// Every GPU driver the build registered a mock for (MockGpus.h), through
// what the drivers share. What is particular to one vendor is tested in its
// backend's folder, linked into this binary (GpuTest.h).
//
// The drivers are linked in twice: their objects directly, to call the vtable
// with exact arguments, and inside libkiln_runtime, for whole sessions. Both
// copies dlopen the same mock library (KILN_*_LIBRARY is set in main before
// anything runs), so they share its record of allocations and launches.
//
//===----------------------------------------------------------------------===//
#include "GpuTest.h"

#include "kiln/driver.h"

#include <set>

using namespace kiln;
using namespace kiln::test;
using ::testing::HasSubstr;

namespace {

class GpuDriver : public ::testing::TestWithParam<Mock> {
protected:
  void SetUp() override {
    mock = &GetParam();
    d = directDriver(mock->name());
    ASSERT_NE(d, nullptr) << "no " << mock->name() << " driver linked in";
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

  const Mock *mock = nullptr;
  const kiln_driver *d = nullptr;
  void *dev = nullptr;
};

TEST_P(GpuDriver, DescribesTheMockDevice) {
  EXPECT_EQ(d->abi_version, KILN_DRIVER_ABI_VERSION);
  EXPECT_STREQ(d->name, GetParam().name());
  ASSERT_EQ(d->device_count(), 1u);
  kiln_driver_device_desc desc{};
  ASSERT_EQ(d->device_describe(0, &desc), KILN_OK);
  EXPECT_STREQ(desc.description, GetParam().vendor.device);
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
  std::vector<uint8_t> image = mockImage(GetParam().vendor.image);
  kiln_driver_entry entries[] = {{"none", {1, 1, 1}}, {"four", {32, 2, 3}}};
  void *exe = nullptr;
  ASSERT_EQ(d->executable_load(dev, GetParam().vendor.format, image.data(),
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
  std::vector<uint8_t> image = mockImage(GetParam().vendor.image);
  kiln_driver_entry missing[] = {{"vadd", {1, 1, 1}}, {"nope", {1, 1, 1}}};
  void *exe = nullptr;
  int modules = mock->liveModules();
  EXPECT_EQ(d->executable_load(dev, GetParam().vendor.format, image.data(),
                               image.size(), missing, 2, &exe),
            KILN_ERROR_NOT_FOUND);
  EXPECT_THAT(driverError, HasSubstr("'nope'"));
  EXPECT_EQ(mock->liveModules(), modules) << "module leaked on error";
  EXPECT_EQ(d->executable_load(dev, "elf-x86_64-so", image.data(),
                               image.size(), missing, 1, &exe),
            KILN_ERROR_UNAVAILABLE);
  EXPECT_THAT(driverError, HasSubstr("'elf-x86_64-so'"));
}

INSTANTIATE_TEST_SUITE_P(Mock, GpuDriver, ::testing::ValuesIn(mockGpus()),
                         [](const auto &info) { return info.param.name(); });
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(GpuDriver);

class GpuSession : public ::testing::TestWithParam<Mock> {};

TEST_P(GpuSession, RunsVaddEndToEnd) {
  const Mock &mock = GetParam();
  int live = mock.liveAllocs(), launches = mock.launchCount();
  VaddModule m(1000); // 63 workgroups of 16, the last one partial.
  useGpu(m, mock.name(), {{mock.vendor.format, mockImage(mock.vendor.image)}});
  EXPECT_EQ(runVadd(m), std::string(mock.name()) + ":0");
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

INSTANTIATE_TEST_SUITE_P(Mock, GpuSession, ::testing::ValuesIn(mockGpus()),
                         [](const auto &info) { return info.param.name(); });
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(GpuSession);

TEST(GpuDevices, GpusComeBeforeTheCpu) {
  // Drivers without a mock here (the simulated npu, after the cpu) are not
  // what this test is about.
  std::set<std::string> drivers = {"cpu"};
  std::vector<std::string> names, expected;
  for (const Mock &m : mockGpus()) {
    drivers.insert(m.name());
    expected.push_back(std::string(m.name()) + ":0");
  }
  expected.push_back("cpu:0");
  for (size_t i = 0; i < kiln_device_count(); ++i) {
    kiln_device_info info;
    ASSERT_EQ(kiln_device_info_get(i, &info), KILN_OK);
    EXPECT_TRUE(info.available) << info.name << ": " << info.description;
    if (drivers.count(info.driver))
      names.push_back(info.name);
  }
  EXPECT_EQ(names, expected);
}

} // namespace

int main(int argc, char **argv) {
  useMockLibraries();
  ::testing::InitGoogleMock(&argc, argv);
  return RUN_ALL_TESTS();
}

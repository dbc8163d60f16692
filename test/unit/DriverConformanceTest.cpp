//===- DriverConformanceTest.cpp - The contract every driver keeps --------===//
//
// One suite, run by every driver built in (DriverConformance.h): the cpu,
// each GPU driver against its mock vendor library (MockGpus.h), and the cases
// backends add from their folders (levelzero-cpu: the cpu driver with kernels
// shaped as that target emits them; the simulated npu). It checks what
// runtime/include/kiln/driver.h promises, through the vtables: devices and
// their bounds, zero-filled buffers and offset copies, loading and
// dispatching a kernel that adds two vectors, empty grids, and the errors for
// formats, entries and dispatches a driver cannot take. What is particular
// to one driver (formats by architecture, profiles) stays in its own tests.
//
// The driver objects are linked in directly (DirectDriver.h).
//
//===----------------------------------------------------------------------===//
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "DriverConformance.h"
#include "MockGpus.h"
#include "kiln/driver.h"

#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

using kiln::test::driverError;
using ::testing::HasSubstr;

namespace kiln::test {

const char *cpuFormat() {
#if defined(__aarch64__)
  return "elf-aarch64-so";
#else
  return "elf-x86_64-so";
#endif
}

std::vector<uint8_t> cpuTestKernels() {
  std::ifstream f(KILN_TEST_KERNELS, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), {}};
}

namespace {
std::vector<DriverCase (*)()> &registered() {
  static std::vector<DriverCase (*)()> makers;
  return makers;
}
} // namespace

ConformanceCase::ConformanceCase(DriverCase (*make)()) {
  registered().push_back(make);
}

} // namespace kiln::test

namespace {

using kiln::test::DriverCase;
using kiln::test::kConformanceCount;
constexpr int64_t kCount = kConformanceCount;

/// A MockGpu image whose first line is `target`.
std::vector<uint8_t> mockImage(const std::string &target) {
  std::string s = target + "\n.entry vadd 4\n.entry other 4\n";
  return {s.begin(), s.end() + 1}; // With the NUL.
}

std::vector<DriverCase> cases() {
  using namespace kiln::test;
  constexpr uint32_t groups = kCount / 16;
  std::vector<DriverCase> v;
  if (const kiln_driver *cpu = directDriver("cpu"))
    v.push_back({"cpu", cpu, cpuFormat(), cpuTestKernels(),
                 {"vadd", {1, 1, 1}, ""}, {groups, 1, 1}});
  for (auto make : registered())
    if (DriverCase c = make(); c.driver)
      v.push_back(std::move(c));
  for (const Mock &m : mockGpus())
    v.push_back({m.name(), directDriver(m.name()), m.vendor.format,
                 mockImage(m.vendor.image), {"vadd", {16, 1, 1}, ""},
                 {groups, 1, 1}});
  return v;
}

class Driver : public ::testing::TestWithParam<DriverCase> {
protected:
  void SetUp() override {
    d = GetParam().driver;
    ASSERT_NE(d, nullptr) << "no " << GetParam().name << " driver linked in";
    ASSERT_EQ(d->device_open(0, nullptr, &dev), KILN_OK) << driverError;
  }
  void TearDown() override {
    for (void *b : buffers)
      d->buffer_free(dev, b);
    if (dev)
      d->device_close(dev);
  }
  void *alloc(uint64_t size) {
    void *b = nullptr;
    EXPECT_EQ(d->buffer_alloc(dev, size, &b), KILN_OK) << driverError;
    buffers.push_back(b);
    return b;
  }
  std::vector<uint8_t> read(void *b, uint64_t offset, uint64_t size) {
    std::vector<uint8_t> out(size, 0xee);
    EXPECT_EQ(d->buffer_read(dev, b, offset, out.data(), size), KILN_OK)
        << driverError;
    return out;
  }
  kiln_status load(const char *format, const kiln_driver_entry *entries,
                   uint32_t count, void **exe) {
    const DriverCase &c = GetParam();
    return d->executable_load(dev, format, c.image.data(), c.image.size(),
                              entries, count, exe);
  }

  /// a = 0.5 i, b = 2 - (i % 5), the count; the bindings over them and out.
  std::vector<kiln_driver_binding> vaddBindings(void *&out) {
    std::vector<float> a(kCount), b(kCount);
    for (int64_t i = 0; i < kCount; ++i) {
      a[i] = 0.5f * static_cast<float>(i);
      b[i] = 2.0f - static_cast<float>(i % 5);
    }
    int64_t count[2] = {-1, kCount};
    void *ba = alloc(kCount * 4), *bb = alloc(kCount * 4), *bn = alloc(16);
    out = alloc(kCount * 4);
    EXPECT_EQ(d->buffer_write(dev, ba, 0, a.data(), kCount * 4), KILN_OK);
    EXPECT_EQ(d->buffer_write(dev, bb, 0, b.data(), kCount * 4), KILN_OK);
    EXPECT_EQ(d->buffer_write(dev, bn, 0, count, 16), KILN_OK);
    return {{ba, 0}, {bb, 0}, {out, 0}, {bn, 8}};
  }

  const kiln_driver *d = nullptr;
  void *dev = nullptr;
  std::vector<void *> buffers;
};

TEST_P(Driver, DescribesItsDevicesAndTheirBounds) {
  EXPECT_EQ(d->abi_version, KILN_DRIVER_ABI_VERSION);
  uint32_t n = d->device_count();
  ASSERT_GE(n, 1u);
  kiln_driver_device_desc desc{};
  ASSERT_EQ(d->device_describe(0, &desc), KILN_OK) << driverError;
  EXPECT_EQ(desc.available, 1) << desc.description;
  EXPECT_STRNE(desc.description, "");
  EXPECT_EQ(d->device_describe(n, &desc), KILN_ERROR_NOT_FOUND);
  void *other = nullptr;
  EXPECT_EQ(d->device_open(n, nullptr, &other), KILN_ERROR_NOT_FOUND);
}

TEST_P(Driver, BuffersStartZeroedAndCopiesHonorOffsets) {
  void *b = alloc(100);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(read(b, 0, 100), std::vector<uint8_t>(100, 0));
  const uint8_t data[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  ASSERT_EQ(d->buffer_write(dev, b, 40, data, 8), KILN_OK) << driverError;
  EXPECT_EQ(read(b, 36, 16), (std::vector<uint8_t>{0, 0, 0, 0, 1, 2, 3, 4, 5,
                                                   6, 7, 8, 0, 0, 0, 0}));
  EXPECT_EQ(read(b, 99, 1), std::vector<uint8_t>{0});
  EXPECT_NE(alloc(0), nullptr) << "a zero-byte buffer is still a handle";
}

TEST_P(Driver, RunsAKernelOverItsGrid) {
  void *exe = nullptr;
  const DriverCase &c = GetParam();
  ASSERT_EQ(load(c.format.c_str(), &c.kernel, 1, &exe), KILN_OK) << driverError;
  void *out = nullptr;
  std::vector<kiln_driver_binding> bindings = vaddBindings(out);
  std::vector<uint8_t> a = read(bindings[0].buffer, 0, kCount * 4),
                       b = read(bindings[1].buffer, 0, kCount * 4);

  // An empty grid launches nothing.
  for (int axis = 0; axis < 3; ++axis) {
    uint32_t empty[3] = {c.grid[0], c.grid[1], c.grid[2]};
    empty[axis] = 0;
    ASSERT_EQ(d->dispatch(dev, exe, 0, empty, bindings.data(), 4), KILN_OK)
        << driverError;
  }
  ASSERT_EQ(d->synchronize(dev), KILN_OK) << driverError;
  EXPECT_EQ(read(out, 0, kCount * 4), std::vector<uint8_t>(kCount * 4, 0));

  ASSERT_EQ(d->dispatch(dev, exe, 0, c.grid, bindings.data(), 4), KILN_OK)
      << driverError;
  ASSERT_EQ(d->synchronize(dev), KILN_OK) << driverError;
  std::vector<uint8_t> bytes = read(out, 0, kCount * 4);
  std::vector<float> x(kCount), y(kCount), got(kCount);
  std::memcpy(x.data(), a.data(), a.size());
  std::memcpy(y.data(), b.data(), b.size());
  std::memcpy(got.data(), bytes.data(), bytes.size());
  for (int64_t i = 0; i < kCount; ++i)
    ASSERT_EQ(got[i], x[i] + y[i]) << "element " << i;

  EXPECT_EQ(d->dispatch(dev, exe, 1, c.grid, bindings.data(), 4),
            KILN_ERROR_INVALID_ARGUMENT)
      << "entry 1 of an executable with one";
  d->executable_unload(dev, exe);
}

TEST_P(Driver, RefusesWhatItCannotLoad) {
  void *exe = nullptr;
  const DriverCase &c = GetParam();
  EXPECT_EQ(load("no-such-format", &c.kernel, 1, &exe), KILN_ERROR_UNAVAILABLE);
  EXPECT_THAT(driverError, HasSubstr("'no-such-format'"));
  kiln_driver_entry missing[] = {c.kernel, {"nope", {1, 1, 1}, ""}};
  EXPECT_EQ(load(c.format.c_str(), missing, 2, &exe), KILN_ERROR_NOT_FOUND);
  EXPECT_THAT(driverError, HasSubstr("'nope'"));
}

INSTANTIATE_TEST_SUITE_P(Conformance, Driver, ::testing::ValuesIn(cases()),
                         [](const auto &info) { return info.param.name; });

} // namespace

int main(int argc, char **argv) {
  kiln::test::useMockLibraries();
  ::testing::InitGoogleMock(&argc, argv);
  return RUN_ALL_TESTS();
}

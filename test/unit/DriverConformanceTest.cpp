//===- DriverConformanceTest.cpp - The contract every driver keeps --------===//
//
// One suite, run by every driver built in: cpu, levelzero-cpu (the cpu
// driver with kernels shaped as that target emits them), npu, and cuda, hip
// and levelzero against their mock vendor libraries (MockGpu.h). It checks
// what runtime/include/kiln/driver.h promises, through the vtables: devices
// and their bounds, zero-filled buffers and offset copies, loading and
// dispatching a kernel that adds two vectors, empty grids, and the errors
// for formats, entries and dispatches a driver cannot take. What is
// particular to one driver (formats by architecture, profiles) stays in its
// own tests.
//
// The driver objects are linked in directly (DirectDriver.h).
//
//===----------------------------------------------------------------------===//
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "DirectDriver.h"
#include "kiln/driver.h"

#ifdef KILN_CONFORMANCE_NPU
#include "isa/Isa.h"
#endif

#include <cstring>
#include <fstream>
#include <functional>
#include <iterator>
#include <string>
#include <vector>

using kiln::test::driverError;
using ::testing::HasSubstr;

#define KILN_DECLARE_DRIVER(name)                                             \
  extern "C" const kiln_driver *kiln_driver_##name##_entry(void);
KILN_DECLARE_DRIVER(cpu)
KILN_DECLARE_DRIVER(npu)
KILN_DECLARE_DRIVER(cuda)
KILN_DECLARE_DRIVER(hip)
KILN_DECLARE_DRIVER(levelzero)

namespace {

/// Elements the kernels add: 128 x 4, one npu tile.
constexpr int64_t kCount = 512;

#if defined(__aarch64__)
constexpr const char *kCpuFormat = "elf-aarch64-so";
#else
constexpr const char *kCpuFormat = "elf-x86_64-so";
#endif

/// A driver and the vector-add kernel it runs: out[i] = a[i] + b[i] for
/// i < n, with bindings (a, b, out, n) and n an i64 at byte 8 of its buffer.
struct Case {
  const char *name;
  const kiln_driver *(*entry)(void);
  std::string format;
  std::vector<uint8_t> image;
  kiln_driver_entry kernel;
  uint32_t grid[3];
};

std::ostream &operator<<(std::ostream &os, const Case &c) { return os << c.name; }

std::vector<uint8_t> readFile(const char *path) {
  std::ifstream f(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), {}};
}

/// A MockGpu image whose first line is `target`.
std::vector<uint8_t> mockImage(const std::string &target) {
  std::string s = target + "\n.entry vadd 4\n.entry other 4\n";
  return {s.begin(), s.end() + 1}; // With the NUL.
}

#ifdef KILN_CONFORMANCE_NPU
/// The npu's vadd: a and b into SBUF as 128 partitions of 4, added on the
/// Vector engine, out back to HBM; n is not read (the tile is the vector).
std::vector<uint8_t> npuImage() {
  using namespace kiln::npu;
  using Ap = AccessPattern;
  ProgramBuilder b("vadd");
  uint32_t s = b.semaphore();
  auto a = Ap::sbuf(0, 128, 0, DType::F32, {{1, 4}});
  auto c = Ap::sbuf(0, 128, 16, DType::F32, {{1, 4}});
  auto hbm = [](uint32_t t) { return Ap::hbm(t, 0, DType::F32, {{4, 128}, {1, 4}}); };
  b.on(dmaQueue(0)).dmaCopy(a, hbm(0)).signal(s);
  b.on(dmaQueue(1)).dmaCopy(c, hbm(1)).signal(s);
  b.on(Engine::Vector).wait(s, 2).tensorTensor(a, a, c, AluOp::Add).signal(s);
  b.on(dmaQueue(0)).wait(s, 3).dmaCopy(hbm(2), a);
  Module m;
  m.kernels = {b.take()};
  return encodeModule(m);
}
#endif

std::vector<Case> cases() {
  constexpr uint32_t groups = kCount / 16;
  std::vector<Case> v;
#ifdef KILN_CONFORMANCE_CPU
  std::vector<uint8_t> so = readFile(KILN_TEST_KERNELS);
  v.push_back({"cpu", kiln_driver_cpu_entry, kCpuFormat, so,
               {"vadd", {1, 1, 1}, ""}, {groups, 1, 1}});
  v.push_back({"levelzero_cpu", kiln_driver_cpu_entry, kCpuFormat, so,
               {"vadd_wg16", {1, 1, 1}, ""}, {groups, 1, 1}});
#endif
#ifdef KILN_CONFORMANCE_NPU
  v.push_back({"npu", kiln_driver_npu_entry, kiln::npu::kBinaryFormat,
               npuImage(), {"vadd", {1, 1, 1}, ""}, {1, 1, 1}});
#endif
#ifdef KILN_MOCK_CUDA
  v.push_back({"cuda", kiln_driver_cuda_entry, "cubin-sm_90",
               mockImage("\x7f" "ELF sm_90"), {"vadd", {16, 1, 1}, ""},
               {groups, 1, 1}});
#endif
#ifdef KILN_MOCK_HIP
  v.push_back({"hip", kiln_driver_hip_entry, "hsaco-gfx90a",
               mockImage("\x7f" "ELF gfx90a"), {"vadd", {16, 1, 1}, ""},
               {groups, 1, 1}});
#endif
#ifdef KILN_MOCK_LEVELZERO
  v.push_back({"levelzero", kiln_driver_levelzero_entry, "spirv",
               mockImage(std::string("\x03\x02\x23\x07 spirv", 10)),
               {"vadd", {16, 1, 1}, ""}, {groups, 1, 1}});
#endif
  return v;
}

class Driver : public ::testing::TestWithParam<Case> {
protected:
  void SetUp() override {
    d = GetParam().entry();
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
    const Case &c = GetParam();
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
  const Case &c = GetParam();
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
  const Case &c = GetParam();
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

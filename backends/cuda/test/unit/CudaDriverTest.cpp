//===- CudaDriverTest.cpp - What only the cuda driver does, on its mock ---===//
//
// Linked into test/unit's kiln-gpu-driver-tests (GpuTest.h), which runs the
// shared GPU driver tests on mock_cuda.cpp too: here, picking a cubin or PTX
// by the device's compute capability.
//
//===----------------------------------------------------------------------===//
#include "GpuTest.h"

#include <algorithm>
#include <cstdint>

using namespace kiln;
using namespace kiln::test;
using ::testing::HasSubstr;

extern "C" const kiln_driver *kiln_driver_cuda_entry(void);

namespace {

TEST(CudaDriver, PicksCubinOrPtxByComputeCapability) {
  const Mock &mock = mockFor("cuda");
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

TEST(CudaSession, TriesExecutablesInOrderUntilOneLoads) {
  const Mock &mock = mockFor("cuda");
  VaddModule m(100);
  useGpu(m, "cuda",
         {{"cubin-sm_80", mockImage("\x7f" "ELF sm_80")},
          {"cubin-sm_86", mockImage("\x7f" "ELF sm_86")},
          {"ptx-sm_80", bytes(".target sm_80\n.entry vadd 4\n.entry vmul 4\n")},
          {"cubin-sm_90", mockImage("\x7f" "ELF sm_90")}});
  EXPECT_EQ(runVadd(m), "cuda:0");
  EXPECT_STREQ(mock.lastModule(), ".target sm_80");
}

} // namespace

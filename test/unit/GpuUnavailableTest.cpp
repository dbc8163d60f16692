//===- GpuUnavailableTest.cpp - GPU drivers without a usable GPU ----------===//
//
// Built twice. KILN_GPU_TEST_MISSING: every KILN_*_LIBRARY names a file that
// does not exist. Otherwise the libraries are the mocks with
// KILN_MOCK_INIT_ERROR=1, so loading works and initialization fails the way
// it does on a machine with the vendor driver but no GPU. Either way each
// driver lists one unavailable device saying why, and sessions on it fail.
//
//===----------------------------------------------------------------------===//
#include "TestUtil.h"

#include "kiln/runtime.h"

#include <cstdlib>

using namespace kiln;
using namespace kiln::test;
using ::testing::HasSubstr;

namespace {

#define MISSING_DIR "/nonexistent-kiln-test/"

struct Case {
  const char *driver;
  const char *env;
  const char *library; // What KILN_*_LIBRARY is set to.
  const char *reason;  // The device description.
};

std::vector<Case> cases() {
  std::vector<Case> v;
#ifdef KILN_GPU_TEST_MISSING
  v.push_back({"cuda", "KILN_CUDA_LIBRARY", MISSING_DIR "libcuda.so.1",
               "unavailable: " MISSING_DIR
               "libcuda.so.1 not found (from KILN_CUDA_LIBRARY)"});
  v.push_back({"hip", "KILN_HIP_LIBRARY", MISSING_DIR "libamdhip64.so",
               "unavailable: " MISSING_DIR
               "libamdhip64.so not found (from KILN_HIP_LIBRARY)"});
  v.push_back({"levelzero", "KILN_LEVEL_ZERO_LIBRARY",
               MISSING_DIR "libze_loader.so.1",
               "unavailable: " MISSING_DIR
               "libze_loader.so.1 not found (from KILN_LEVEL_ZERO_LIBRARY)"});
#else
#ifdef KILN_MOCK_CUDA
  v.push_back({"cuda", "KILN_CUDA_LIBRARY", KILN_MOCK_CUDA,
               "unavailable: cuInit failed: CUDA_ERROR_NO_DEVICE (100): no "
               "CUDA-capable device is detected"});
#endif
#ifdef KILN_MOCK_HIP
  v.push_back({"hip", "KILN_HIP_LIBRARY", KILN_MOCK_HIP,
               "unavailable: hipInit failed: hipErrorNoDevice (100): no "
               "ROCm-capable device is detected"});
#endif
#ifdef KILN_MOCK_LEVELZERO
  v.push_back({"levelzero", "KILN_LEVEL_ZERO_LIBRARY", KILN_MOCK_LEVELZERO,
               "unavailable: zeInit failed: ZE_RESULT_ERROR_UNINITIALIZED "
               "(0x78000001)"});
#endif
#endif
  return v;
}

const kiln_device_info *find(const std::string &name) {
  static kiln_device_info info;
  for (size_t i = 0; i < kiln_device_count(); ++i)
    if (kiln_device_info_get(i, &info) == KILN_OK && name == info.name)
      return &info;
  return nullptr;
}

class Unavailable : public ::testing::TestWithParam<Case> {};

TEST_P(Unavailable, ListsOneDeviceSayingWhy) {
  const Case &c = GetParam();
  const kiln_device_info *info = find(std::string(c.driver) + ":0");
  ASSERT_NE(info, nullptr) << c.driver << " lists no device";
  EXPECT_STREQ(info->driver, c.driver);
  EXPECT_EQ(info->available, 0);
  EXPECT_STREQ(info->description, c.reason);
  EXPECT_EQ(find(std::string(c.driver) + ":1"), nullptr);
}

TEST_P(Unavailable, SessionsFailWithTheReason) {
  const Case &c = GetParam();
  VaddModule m(8);
  m.module.executables.insert(m.module.executables.begin(),
                              {c.driver, "some-format", {1, 2, 3},
                               m.module.executables[0].entries});
  std::string path = tempPath(".kiln");
  ASSERT_EQ(artifact::writeArtifact(m.module, path), "");
  kiln_artifact *a = nullptr;
  ASSERT_EQ(kiln_artifact_open(path.c_str(), &a), KILN_OK) << kiln_last_error();
  kiln_session *s = nullptr;
  EXPECT_EQ(kiln_session_create(a, c.driver, nullptr, &s),
            KILN_ERROR_UNAVAILABLE);
  EXPECT_EQ(s, nullptr);
  EXPECT_EQ(std::string(kiln_last_error()),
            std::string("device '") + c.driver + ":0': " + c.reason);
  std::string byName = std::string(c.driver) + ":0";
  EXPECT_EQ(kiln_session_create(a, byName.c_str(), nullptr, &s),
            KILN_ERROR_UNAVAILABLE);
  // Without a device named, the runtime skips the GPU and uses the cpu
  // executable that follows.
  ASSERT_EQ(kiln_session_create(a, nullptr, nullptr, &s), KILN_OK)
      << kiln_last_error();
  EXPECT_STREQ(kiln_session_device(s), "cpu:0");
  kiln_session_release(s);
  kiln_artifact_release(a);
}

INSTANTIATE_TEST_SUITE_P(Gpu, Unavailable, ::testing::ValuesIn(cases()),
                         [](const auto &info) { return info.param.driver; });
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(Unavailable);

TEST(Unavailable, CpuIsStillTheLastDevice) {
  // Only the simulated npu, which needs no library, may follow the cpu.
  size_t n = kiln_device_count();
  kiln_device_info info;
  while (n && kiln_device_info_get(n - 1, &info) == KILN_OK &&
         std::string(info.driver) == "npu")
    --n;
  ASSERT_EQ(n, cases().size() + 1);
  ASSERT_EQ(kiln_device_info_get(n - 1, &info), KILN_OK);
  EXPECT_STREQ(info.name, "cpu:0");
  EXPECT_TRUE(info.available);
}

} // namespace

int main(int argc, char **argv) {
  // Before the first device query: drivers look for their library once.
  for (const Case &c : cases())
    ::setenv(c.env, c.library, 1);
  ::setenv("KILN_MOCK_INIT_ERROR", "1", 1);
  ::testing::InitGoogleMock(&argc, argv);
  return RUN_ALL_TESTS();
}

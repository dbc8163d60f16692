//===- GpuUnavailableTest.cpp - GPU drivers without a usable GPU ----------===//
//
// Built twice. KILN_GPU_TEST_MISSING: every KILN_*_LIBRARY names a file that
// does not exist. Otherwise the libraries are the mocks with
// KILN_MOCK_INIT_ERROR=1, so loading works and initialization fails the way
// it does on a machine with the vendor driver but no GPU. Either way each
// driver lists one unavailable device saying why, and sessions on it fail.
// The drivers are those with a mock (MockGpus.h), which also says why.
//
//===----------------------------------------------------------------------===//
#include "MockGpus.h"
#include "TestUtil.h"

#include "kiln/runtime.h"

#include <cstdlib>

using namespace kiln;
using namespace kiln::test;
using ::testing::HasSubstr;

namespace {

#define MISSING_DIR "/nonexistent-kiln-test/"

struct Case {
  std::string driver;
  std::string env;
  std::string library; // What KILN_*_LIBRARY is set to.
  std::string reason;  // The device description.
};

std::ostream &operator<<(std::ostream &os, const Case &c) {
  return os << c.driver;
}

std::vector<Case> cases() {
  std::vector<Case> v;
  for (const Mock &m : mockGpus()) {
#ifdef KILN_GPU_TEST_MISSING
    std::string missing = std::string(MISSING_DIR) + m.vendor.library;
    v.push_back({m.name(), m.vendor.env, missing,
                 "unavailable: " + missing + " not found (from " +
                     m.vendor.env + ")"});
#else
    v.push_back({m.name(), m.vendor.env, m.path,
                 std::string("unavailable: ") + m.vendor.noDevice});
#endif
  }
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
  EXPECT_EQ(info->driver, c.driver);
  EXPECT_EQ(info->available, 0);
  EXPECT_EQ(info->description, c.reason);
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
  EXPECT_EQ(kiln_session_create(a, c.driver.c_str(), nullptr, &s),
            KILN_ERROR_UNAVAILABLE);
  EXPECT_EQ(s, nullptr);
  EXPECT_EQ(std::string(kiln_last_error()),
            std::string("device '") + c.driver + ":0': " + c.reason);
  std::string byName = c.driver + ":0";
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
  // The GPUs' devices, one each, come first. Only devices that need no
  // library (the simulated npu) may follow the cpu, and they stay available.
  std::vector<Case> gpus = cases();
  size_t n = kiln_device_count(), cpu = 0;
  kiln_device_info info;
  while (cpu < n && kiln_device_info_get(cpu, &info) == KILN_OK &&
         std::string(info.name) != "cpu:0")
    ++cpu;
  ASSERT_EQ(cpu, gpus.size());
  ASSERT_EQ(kiln_device_info_get(cpu, &info), KILN_OK);
  EXPECT_STREQ(info.name, "cpu:0");
  EXPECT_TRUE(info.available);
  for (size_t i = cpu + 1; i < n; ++i) {
    ASSERT_EQ(kiln_device_info_get(i, &info), KILN_OK);
    EXPECT_TRUE(info.available) << info.name;
    for (const Case &c : gpus)
      EXPECT_NE(info.driver, c.driver) << info.name << " after the cpu";
  }
}

} // namespace

int main(int argc, char **argv) {
  // Before the first device query: drivers look for their library once.
  for (const Case &c : cases())
    ::setenv(c.env.c_str(), c.library.c_str(), 1);
  ::setenv("KILN_MOCK_INIT_ERROR", "1", 1);
  ::testing::InitGoogleMock(&argc, argv);
  return RUN_ALL_TESTS();
}

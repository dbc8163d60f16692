//===- GpuTest.h - Helpers of the GPU driver tests against the mocks -*- C++ -*-===//
//
// For GpuDriverTest.cpp and the GPU backends' own tests in the same binary
// (kiln_add_unit_tests(kiln-gpu-driver-tests ...)).
//
//===----------------------------------------------------------------------===//
#ifndef KILN_TEST_UNIT_GPUTEST_H
#define KILN_TEST_UNIT_GPUTEST_H

#include "DirectDriver.h"
#include "MockGpus.h"
#include "TestUtil.h"

#include "kiln/runtime.h"

#include <string>
#include <utility>
#include <vector>

namespace kiln::test {

inline std::vector<uint8_t> bytes(const std::string &s) {
  return {s.begin(), s.end()};
}

/// A mock image: first line `target`, then the kernels the tests use.
inline std::vector<uint8_t> mockImage(const std::string &target) {
  std::string s = target +
                  "\n.entry vadd 4\n.entry vmul 4\n.entry four 4\n"
                  ".entry none 0\n";
  s.push_back('\0');
  return bytes(s);
}

/// `m` with its executables replaced by GPU ones for `target`, one thread
/// per element: workgroups of 16 threads over the same grid.
inline void useGpu(
    VaddModule &m, const std::string &target,
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
inline std::string runVadd(const VaddModule &m) {
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

} // namespace kiln::test

#endif // KILN_TEST_UNIT_GPUTEST_H

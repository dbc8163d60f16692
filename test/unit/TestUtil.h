//===- TestUtil.h - Helpers shared by the runtime unit tests ----*- C++ -*-===//
#ifndef KILN_TEST_UNIT_TESTUTIL_H
#define KILN_TEST_UNIT_TESTUTIL_H

#include "kiln/Artifact/ArtifactWriter.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace kiln::test {

inline std::vector<uint8_t> readFile(const std::string &path) {
  std::ifstream f(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), {}};
}

inline void writeFile(const std::string &path, const std::vector<uint8_t> &b) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char *>(b.data()), b.size());
}

/// A path unique to the running test.
inline std::string tempPath(const std::string &suffix) {
  const auto *info = ::testing::UnitTest::GetInstance()->current_test_info();
  // Parameterized tests have '/' in their names.
  std::string name = std::string(info->test_suite_name()) + "_" + info->name();
  for (char &c : name)
    if (c == '/')
      c = '_';
  return ::testing::TempDir() + "kiln_" + name + suffix;
}

/// y = (a + b) * c over n floats: "a", "b" inputs, "y" output, c and n
/// constants, a transient in between. n is read at byte offset 8 of its
/// constant buffer to exercise binding offsets.
struct VaddModule {
  int64_t n;
  std::vector<float> c;
  std::vector<int64_t> count; // {junk, n}
  artifact::Module module;

  explicit VaddModule(int64_t n, std::vector<uint8_t> image = readFile(KILN_TEST_KERNELS))
      : n(n), count{-1, n} {
    using namespace artifact;
    for (int64_t i = 0; i < n; ++i)
      c.push_back(0.5f + static_cast<float>(i % 7));
    uint64_t bytes = static_cast<uint64_t>(n) * 4;
    Module &m = module;
    m.producer = "kiln-tests";
    m.name = "vadd_mul";
    m.buffers = {{BufferKind::Input, bytes, nullptr},
                 {BufferKind::Input, bytes, nullptr},
                 {BufferKind::Output, bytes, nullptr},
                 {BufferKind::Constant, bytes,
                  reinterpret_cast<const uint8_t *>(c.data())},
                 {BufferKind::Constant, 16,
                  reinterpret_cast<const uint8_t *>(count.data())},
                 {BufferKind::Transient, bytes, nullptr}};
    m.inputs = {{"a", DType::F32, {n}, 0}, {"b", DType::F32, {n}, 1}};
    m.outputs = {{"y", DType::F32, {n}, 2}};
    uint32_t groups = static_cast<uint32_t>((n + 15) / 16);
    Entry vadd{"vadd", {groups, 1, 1}, {1, 1, 1}};
    Entry vmul{"vmul", {groups, 1, 1}, {1, 1, 1}};
    m.executables = {{"cpu", "elf-x86_64-so", std::move(image), {vadd, vmul}}};
    Dispatch add;
    add.kernel = 0;
    add.bindings = {{0, 0}, {1, 0}, {5, 0}, {4, 8}};
    Dispatch mul;
    mul.kernel = 1;
    mul.bindings = {{5, 0}, {3, 0}, {2, 0}, {4, 8}};
    m.dispatches = {add, mul};
  }
};

} // namespace kiln::test

#endif // KILN_TEST_UNIT_TESTUTIL_H

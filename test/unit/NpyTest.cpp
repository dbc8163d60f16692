//===- NpyTest.cpp - .npy reader and writer -------------------------------===//
#include "TestUtil.h"

#include "npy.h"

using namespace kiln;
using namespace kiln::test;
using ::testing::HasSubstr;

namespace {

/// A hand-made .npy file with the given header dict and data.
std::vector<uint8_t> makeNpy(int major, const std::string &dict,
                             const std::vector<uint8_t> &data) {
  std::string header = dict + "\n";
  std::vector<uint8_t> b = {0x93, 'N', 'U', 'M', 'P', 'Y',
                            static_cast<uint8_t>(major), 0};
  uint32_t len = static_cast<uint32_t>(header.size());
  b.push_back(len & 0xff);
  b.push_back((len >> 8) & 0xff);
  if (major >= 2) {
    b.push_back((len >> 16) & 0xff);
    b.push_back(len >> 24);
  }
  b.insert(b.end(), header.begin(), header.end());
  b.insert(b.end(), data.begin(), data.end());
  return b;
}

TEST(Npy, RoundTripEveryDtype) {
  for (kiln_dtype t : {KILN_DTYPE_F16, KILN_DTYPE_F32, KILN_DTYPE_F64,
                       KILN_DTYPE_I8, KILN_DTYPE_I16, KILN_DTYPE_I32,
                       KILN_DTYPE_I64, KILN_DTYPE_U8, KILN_DTYPE_U16,
                       KILN_DTYPE_U32, KILN_DTYPE_U64, KILN_DTYPE_BOOL}) {
    npy::Array a;
    a.dtype = t;
    a.shape = {2, 3};
    for (size_t i = 0; i < 6 * kiln_dtype_size(t); ++i)
      a.data.push_back(static_cast<uint8_t>(t == KILN_DTYPE_BOOL ? i % 2 : i * 7));
    std::string path = tempPath(std::string(".") + kiln_dtype_name(t) + ".npy");
    ASSERT_EQ(npy::write(path, a), "");
    std::vector<uint8_t> bytes = readFile(path);
    size_t headerEnd = bytes.size() - a.data.size();
    EXPECT_EQ(headerEnd % 64, 0u); // Data aligned as numpy does it.
    npy::Array b;
    ASSERT_EQ(npy::read(path, b), "") << kiln_dtype_name(t);
    EXPECT_EQ(b.dtype, t);
    EXPECT_EQ(b.shape, a.shape);
    EXPECT_EQ(b.data, a.data);
  }
}

TEST(Npy, ScalarAndOneDimShapes) {
  for (std::vector<int64_t> shape : {std::vector<int64_t>{}, {5}, {0, 3}}) {
    npy::Array a;
    a.shape = shape;
    size_t n = 1;
    for (int64_t d : shape)
      n *= d;
    a.data.assign(n * 4, 1);
    std::string path = tempPath(".npy");
    ASSERT_EQ(npy::write(path, a), "");
    npy::Array b;
    ASSERT_EQ(npy::read(path, b), "");
    EXPECT_EQ(b.shape, shape);
  }
  std::string text;
  {
    npy::Array a;
    a.shape = {5};
    a.data.assign(20, 0);
    std::string path = tempPath(".npy");
    ASSERT_EQ(npy::write(path, a), "");
    std::vector<uint8_t> bytes = readFile(path);
    text.assign(bytes.begin() + 10, bytes.end());
  }
  EXPECT_THAT(text, HasSubstr("'shape': (5,)"));
}

TEST(Npy, ReadsVersions2And3) {
  std::vector<uint8_t> data(8, 0);
  data[0] = 42;
  for (int major : {2, 3}) {
    std::string path = tempPath(".v" + std::to_string(major) + ".npy");
    writeFile(path, makeNpy(major,
                            "{'descr': '<i8', 'fortran_order': False, "
                            "'shape': (1,), }",
                            data));
    npy::Array a;
    ASSERT_EQ(npy::read(path, a), "");
    EXPECT_EQ(a.dtype, KILN_DTYPE_I64);
    EXPECT_EQ(a.data[0], 42);
  }
}

void expectReadError(const std::vector<uint8_t> &bytes, const std::string &text) {
  std::string path = tempPath(".npy");
  writeFile(path, bytes);
  npy::Array a;
  std::string err = npy::read(path, a);
  EXPECT_THAT(err, HasSubstr(path + ": "));
  EXPECT_THAT(err, HasSubstr(text));
}

TEST(Npy, Errors) {
  std::vector<uint8_t> four(4 * 4, 0);
  expectReadError(makeNpy(1, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }", four),
                  "fortran_order arrays are not supported");
  expectReadError(makeNpy(1, "{'descr': '>f4', 'fortran_order': False, 'shape': (2, 2), }", four),
                  "big-endian dtype '>f4' is not supported");
  expectReadError(makeNpy(1, "{'descr': '<c8', 'fortran_order': False, 'shape': (2,), }", four),
                  "unsupported dtype '<c8'");
  expectReadError(makeNpy(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (5,), }", four),
                  "data is 16 bytes, expected 20 for shape (5,) <f4");
  expectReadError(makeNpy(1, "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (4,), }", four),
                  "structured dtypes are not supported");
  expectReadError(makeNpy(4, "{}", {}), "unsupported .npy version 4.0");
  expectReadError({'n', 'o', 't', ' ', 'n', 'p', 'y', '!', '!', '!'},
                  "not a .npy file (bad magic)");
  std::vector<uint8_t> cut = makeNpy(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }", four);
  cut.resize(20);
  expectReadError(cut, "truncated header");

  npy::Array a;
  EXPECT_THAT(npy::read(tempPath(".missing.npy"), a), HasSubstr("No such file"));
  a.dtype = KILN_DTYPE_BF16;
  EXPECT_THAT(npy::write(tempPath(".npy"), a), HasSubstr("bf16 has no .npy equivalent"));
}

} // namespace

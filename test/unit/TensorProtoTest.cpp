//===- TensorProtoTest.cpp - ONNX TensorProto wire-format decoder ---------===//
//
// The messages are encoded by hand here so the tests pin the wire format
// itself (packed and unpacked repeated fields, sign-extended varints) rather
// than whatever one protobuf library happens to emit.
//
//===----------------------------------------------------------------------===//
#include "TestUtil.h"

#include "tensor_proto.h"
#include <algorithm>

using namespace kiln;
using namespace kiln::test;
using ::testing::HasSubstr;

namespace {

class Msg {
public:
  Msg &varint(uint64_t v) {
    do {
      uint8_t b = v & 0x7f;
      v >>= 7;
      bytes.push_back(b | (v ? 0x80 : 0));
    } while (v);
    return *this;
  }
  Msg &key(uint32_t field, uint32_t wire) { return varint(field << 3 | wire); }
  Msg &intField(uint32_t field, int64_t v) {
    return key(field, 0).varint(static_cast<uint64_t>(v));
  }
  Msg &fixed32(uint32_t field, uint32_t v) {
    key(field, 5);
    for (int i = 0; i < 4; ++i)
      bytes.push_back((v >> (8 * i)) & 0xff);
    return *this;
  }
  Msg &fixed64(uint32_t field, uint64_t v) {
    key(field, 1);
    for (int i = 0; i < 8; ++i)
      bytes.push_back((v >> (8 * i)) & 0xff);
    return *this;
  }
  Msg &bytesField(uint32_t field, const std::vector<uint8_t> &b) {
    key(field, 2).varint(b.size());
    bytes.insert(bytes.end(), b.begin(), b.end());
    return *this;
  }
  Msg &stringField(uint32_t field, const std::string &s) {
    return bytesField(field, std::vector<uint8_t>(s.begin(), s.end()));
  }
  Msg &packedVarints(uint32_t field, const std::vector<int64_t> &vals) {
    Msg inner;
    for (int64_t v : vals)
      inner.varint(static_cast<uint64_t>(v));
    return bytesField(field, inner.bytes);
  }
  Msg &dims(const std::vector<int64_t> &d) { return packedVarints(1, d); }
  Msg &type(int t) { return intField(2, t); }

  std::string decode(npy::Array &out, std::string *name = nullptr) const {
    std::string ignored;
    return tensor_proto::decode(bytes.data(), bytes.size(), out,
                                name ? *name : ignored);
  }

  std::vector<uint8_t> bytes;
};

template <typename T> std::vector<T> values(const npy::Array &a) {
  std::vector<T> v(a.data.size() / sizeof(T));
  std::memcpy(v.data(), a.data.data(), v.size() * sizeof(T));
  return v;
}

template <typename T> std::vector<uint8_t> rawBytes(const std::vector<T> &v) {
  std::vector<uint8_t> b(v.size() * sizeof(T));
  std::memcpy(b.data(), v.data(), b.size());
  return b;
}

uint32_t floatBits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

TEST(TensorProto, FloatRawData) {
  Msg m;
  m.dims({2, 3}).type(1).stringField(8, "x").bytesField(
      9, rawBytes<float>({1, 2, 3, 4, 5, -6.5f}));
  npy::Array a;
  std::string name;
  ASSERT_EQ(m.decode(a, &name), "");
  EXPECT_EQ(name, "x");
  EXPECT_EQ(a.dtype, KILN_DTYPE_F32);
  EXPECT_EQ(a.shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(values<float>(a), (std::vector<float>{1, 2, 3, 4, 5, -6.5f}));
}

TEST(TensorProto, FloatDataPackedAndUnpacked) {
  // Field order must not matter: data_type after the data.
  Msg packed;
  packed.dims({3}).bytesField(4, rawBytes<float>({0.5f, -1, 3})).type(1);
  Msg unpacked;
  unpacked.intField(1, 3).fixed32(4, floatBits(0.5f)).fixed32(4, floatBits(-1));
  unpacked.fixed32(4, floatBits(3)).type(1);
  for (const Msg *m : {&packed, &unpacked}) {
    npy::Array a;
    ASSERT_EQ(m->decode(a), "");
    EXPECT_EQ(a.shape, (std::vector<int64_t>{3}));
    EXPECT_EQ(values<float>(a), (std::vector<float>{0.5f, -1, 3}));
  }
}

TEST(TensorProto, Int32DataCarriesNarrowTypes) {
  struct Case {
    int type;
    kiln_dtype dtype;
    std::vector<int64_t> in;
    std::vector<uint8_t> bytes;
  };
  const Case cases[] = {
      {3, KILN_DTYPE_I8, {-1, 127, -128}, {0xff, 0x7f, 0x80}},
      {2, KILN_DTYPE_U8, {0, 200, 255}, {0, 200, 255}},
      {9, KILN_DTYPE_BOOL, {1, 0, 1}, {1, 0, 1}},
      {5, KILN_DTYPE_I16, {-2, 300, 0}, {0xfe, 0xff, 0x2c, 0x01, 0, 0}},
      {4, KILN_DTYPE_U16, {65535, 1, 2}, {0xff, 0xff, 1, 0, 2, 0}},
      // f16 and bf16 travel as their bit patterns: 1.0, -2.0, 0.5.
      {10, KILN_DTYPE_F16, {0x3c00, 0xc000, 0x3800},
       {0x00, 0x3c, 0x00, 0xc0, 0x00, 0x38}},
      {16, KILN_DTYPE_BF16, {0x3f80, 0xc000, 0x3f00},
       {0x80, 0x3f, 0x00, 0xc0, 0x00, 0x3f}},
      {6, KILN_DTYPE_I32, {-5, 0, 2147483647},
       {0xfb, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0x7f}},
  };
  for (const Case &c : cases) {
    Msg packed, unpacked;
    packed.dims({3}).type(c.type).packedVarints(5, c.in);
    unpacked.dims({3}).type(c.type);
    for (int64_t v : c.in)
      unpacked.intField(5, v); // Negative int32 values: 10-byte varints.
    for (const Msg *m : {&packed, &unpacked}) {
      npy::Array a;
      ASSERT_EQ(m->decode(a), "") << "type " << c.type;
      EXPECT_EQ(a.dtype, c.dtype);
      EXPECT_EQ(a.data, c.bytes) << "type " << c.type;
    }
  }
}

TEST(TensorProto, Int64DoubleAndUnsigned) {
  Msg i64;
  i64.dims({2}).type(7).intField(7, -3).intField(7, INT64_MAX);
  npy::Array a;
  ASSERT_EQ(i64.decode(a), "");
  EXPECT_EQ(values<int64_t>(a), (std::vector<int64_t>{-3, INT64_MAX}));

  Msg f64;
  double d = -0.25;
  uint64_t bits;
  std::memcpy(&bits, &d, 8);
  f64.dims({1}).type(11).fixed64(10, bits);
  ASSERT_EQ(f64.decode(a), "");
  EXPECT_EQ(values<double>(a), (std::vector<double>{-0.25}));

  Msg u32;
  u32.dims({2}).type(12).packedVarints(11, {4000000000ll, 7});
  ASSERT_EQ(u32.decode(a), "");
  EXPECT_EQ(a.dtype, KILN_DTYPE_U32);
  EXPECT_EQ(values<uint32_t>(a), (std::vector<uint32_t>{4000000000u, 7}));

  Msg u64;
  u64.dims({1}).type(13).key(11, 0).varint(UINT64_MAX);
  ASSERT_EQ(u64.decode(a), "");
  EXPECT_EQ(values<uint64_t>(a), (std::vector<uint64_t>{UINT64_MAX}));

  Msg tooBig;
  tooBig.dims({1}).type(12).packedVarints(11, {int64_t(1) << 33});
  EXPECT_THAT(tooBig.decode(a), HasSubstr("does not fit uint32"));
}

TEST(TensorProto, ScalarsEmptyTensorsAndUnknownFields) {
  Msg scalar;
  scalar.type(1).stringField(12, "doc string").fixed32(4, floatBits(7));
  scalar.fixed64(99, 0).intField(98, 5); // Fields a newer ONNX might add.
  npy::Array a;
  ASSERT_EQ(scalar.decode(a), "");
  EXPECT_TRUE(a.shape.empty());
  EXPECT_EQ(values<float>(a), (std::vector<float>{7}));

  Msg empty;
  empty.dims({0, 4}).type(7);
  ASSERT_EQ(empty.decode(a), "");
  EXPECT_EQ(a.shape, (std::vector<int64_t>{0, 4}));
  EXPECT_TRUE(a.data.empty());
}

TEST(TensorProto, RawBoolIsNormalized) {
  Msg m;
  m.dims({3}).type(9).bytesField(9, {0, 2, 1});
  npy::Array a;
  ASSERT_EQ(m.decode(a), "");
  EXPECT_EQ(a.data, (std::vector<uint8_t>{0, 1, 1}));
}

TEST(TensorProto, Errors) {
  auto err = [](const Msg &m) {
    npy::Array a;
    return m.decode(a);
  };
  Msg noType;
  noType.dims({1}).fixed32(4, 0);
  EXPECT_THAT(err(noType), HasSubstr("no data_type"));

  Msg strings;
  strings.dims({1}).type(8).stringField(6, "hello");
  EXPECT_THAT(err(strings), HasSubstr("string tensors are not supported"));

  Msg complex;
  complex.dims({1}).type(14).bytesField(4, rawBytes<float>({1, 2}));
  EXPECT_THAT(err(complex), HasSubstr("complex64 is not supported"));

  Msg external;
  external.dims({1}).type(1).intField(14, 1);
  EXPECT_THAT(err(external), HasSubstr("external data"));

  Msg rawSize;
  rawSize.dims({2, 2}).type(1).bytesField(9, rawBytes<float>({1, 2, 3}));
  EXPECT_THAT(err(rawSize), HasSubstr("raw_data is 12 bytes, expected 16"));

  Msg count;
  count.dims({3}).type(7).packedVarints(7, {1, 2});
  EXPECT_THAT(err(count), HasSubstr("int64_data has 2 values, expected 3"));

  Msg missing;
  missing.dims({3}).type(1);
  EXPECT_THAT(err(missing), HasSubstr("data has 0 values, expected 3"));

  Msg wrongField;
  wrongField.dims({1}).type(6).packedVarints(7, {1});
  EXPECT_THAT(err(wrongField), HasSubstr("int64_data cannot hold int32"));

  Msg both;
  both.dims({1}).type(1).fixed32(4, 0).bytesField(9, rawBytes<float>({1}));
  EXPECT_THAT(err(both), HasSubstr("both raw_data and float_data"));

  Msg wire;
  wire.key(1, 5).bytes.insert(wire.bytes.end(), {0, 0, 0, 0});
  EXPECT_THAT(err(wire), HasSubstr("dims has wire type 5"));

  Msg truncated;
  truncated.dims({4}).type(1).key(9, 2).varint(16).bytes.push_back(0);
  EXPECT_THAT(err(truncated), HasSubstr("truncated raw_data"));

  Msg group;
  group.key(5, 3);
  EXPECT_THAT(err(group), HasSubstr("wire type"));

  Msg negative;
  negative.dims({-1}).type(1);
  EXPECT_THAT(err(negative), HasSubstr("negative dimension -1"));

  Msg badPacked;
  badPacked.dims({1}).type(1).bytesField(4, {0, 0, 0});
  EXPECT_THAT(err(badPacked), HasSubstr("not a multiple of 4"));

  Msg longVarint;
  longVarint.key(2, 0);
  for (int i = 0; i < 11; ++i)
    longVarint.bytes.push_back(0x80);
  EXPECT_THAT(err(longVarint), HasSubstr("truncated data_type"));
}

TEST(TensorProto, EncodeRoundTrips) {
  npy::Array a;
  a.dtype = KILN_DTYPE_BF16;
  a.shape = {2, 0, 3};
  npy::Array b;
  std::string name;
  std::vector<uint8_t> bytes = tensor_proto::encode(a, "empty");
  ASSERT_EQ(tensor_proto::decode(bytes.data(), bytes.size(), b, name), "");
  EXPECT_EQ(name, "empty");
  EXPECT_EQ(b.dtype, KILN_DTYPE_BF16);
  EXPECT_EQ(b.shape, a.shape);

  a.dtype = KILN_DTYPE_I64;
  a.shape = {2};
  a.data = rawBytes<int64_t>({-1, 1ll << 40});
  std::string path = tempPath(".pb");
  ASSERT_EQ(tensor_proto::write(path, a, ""), "");
  ASSERT_EQ(tensor_proto::read(path, b, &name), "");
  EXPECT_EQ(name, "");
  EXPECT_EQ(b.shape, a.shape);
  EXPECT_EQ(b.data, a.data);
}

TEST(TensorProto, ReadFileNamesPath) {
  Msg m;
  m.dims({2}).type(6).packedVarints(5, {4, -4}).stringField(8, "in");
  std::string path = tempPath(".pb");
  writeFile(path, m.bytes);
  npy::Array a;
  std::string name;
  ASSERT_EQ(tensor_proto::read(path, a, &name), "");
  EXPECT_EQ(name, "in");
  EXPECT_EQ(values<int32_t>(a), (std::vector<int32_t>{4, -4}));

  std::string bad = tempPath(".bad.pb");
  writeFile(bad, {0x93, 'N', 'U', 'M', 'P', 'Y'});
  EXPECT_THAT(tensor_proto::read(bad, a),
              HasSubstr(bad + ": not a valid ONNX TensorProto"));
  EXPECT_THAT(tensor_proto::read(tempPath(".missing.pb"), a),
              HasSubstr("No such file"));
  EXPECT_TRUE(tensor_proto::hasTensorProtoExtension("a/input_0.pb"));
  EXPECT_FALSE(tensor_proto::hasTensorProtoExtension("x.npy"));
}

} // namespace

// 4- and 2-bit elements are packed low bits first in the file (raw_data or
// one int32_data value per byte) and one per byte, low bits, in memory.
TEST(TensorProto, PackedSmallTypesRoundTrip) {
  struct Case {
    int type;
    kiln_dtype dtype;
    std::vector<uint8_t> packed, unpacked;
  };
  const Case cases[] = {
      // int4 -1, 7, -8 (odd count: the last high nibble is padding).
      {22, KILN_DTYPE_I4, {0x7f, 0x08}, {0xf, 0x7, 0x8}},
      {21, KILN_DTYPE_U4, {0x21, 0x0f}, {0x1, 0x2, 0xf}},
      {23, KILN_DTYPE_F4E2M1, {0x9c, 0x01}, {0xc, 0x9, 0x1}},
      // int2 -1, 1, -2, 0, 1: four to a byte.
      {26, KILN_DTYPE_I2, {0x27, 0x01}, {0x3, 0x1, 0x2, 0x0, 0x1}},
      {25, KILN_DTYPE_U2, {0xe4, 0x03}, {0x0, 0x1, 0x2, 0x3, 0x3}},
  };
  for (const Case &c : cases) {
    int64_t n = static_cast<int64_t>(c.unpacked.size());
    Msg raw, typed;
    raw.dims({n}).type(c.type).bytesField(9, c.packed);
    typed.dims({n}).type(c.type).packedVarints(
        5, std::vector<int64_t>(c.packed.begin(), c.packed.end()));
    for (const Msg *m : {&raw, &typed}) {
      npy::Array a;
      ASSERT_EQ(m->decode(a), "") << "type " << c.type;
      EXPECT_EQ(a.dtype, c.dtype);
      EXPECT_EQ(a.data, c.unpacked) << "type " << c.type;
      // Encoding packs again, to the bytes ONNX writes.
      std::vector<uint8_t> bytes = tensor_proto::encode(a, "");
      npy::Array b;
      std::string name;
      ASSERT_EQ(tensor_proto::decode(bytes.data(), bytes.size(), b, name), "");
      EXPECT_EQ(b.data, c.unpacked);
      EXPECT_NE(std::search(bytes.begin(), bytes.end(), c.packed.begin(), c.packed.end()),
                bytes.end());
    }
  }
  // The packed size is checked: 3 int4 values need 2 bytes.
  Msg bad;
  bad.dims({3}).type(22).bytesField(9, {0x7f});
  npy::Array a;
  EXPECT_NE(bad.decode(a).find("raw_data is 1 bytes, expected 2"), std::string::npos);
}

TEST(TensorProto, Float8InInt32Data) {
  Msg m;
  m.dims({3}).type(17).packedVarints(5, {0x38, 0x7f, 0xb8}); // 1, NaN, -1
  npy::Array a;
  ASSERT_EQ(m.decode(a), "");
  EXPECT_EQ(a.dtype, KILN_DTYPE_F8E4M3FN);
  EXPECT_EQ(a.data, (std::vector<uint8_t>{0x38, 0x7f, 0xb8}));
}

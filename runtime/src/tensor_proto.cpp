//===- tensor_proto.cpp - ONNX TensorProto wire-format decoder -----------===//
//
// A hand-written decoder for the handful of TensorProto fields that carry a
// dense tensor. Linking libprotobuf into kiln-run for this would drag the
// compiler's dependencies into the runtime side; the wire format is small
// enough to read directly.
//
//===----------------------------------------------------------------------===//
#include "tensor_proto.h"

#include <cstring>
#include <vector>

namespace kiln::tensor_proto {
namespace {

// onnx.TensorProto field numbers.
enum Field : uint32_t {
  kDims = 1,
  kDataType = 2,
  kSegment = 3,
  kFloatData = 4,
  kInt32Data = 5,
  kStringData = 6,
  kInt64Data = 7,
  kName = 8,
  kRawData = 9,
  kDoubleData = 10,
  kUint64Data = 11,
  kExternalData = 13,
  kDataLocation = 14,
};

enum WireType : uint32_t {
  kVarint = 0,
  kFixed64 = 1,
  kLengthDelimited = 2,
  kStartGroup = 3,
  kEndGroup = 4,
  kFixed32 = 5,
};

// onnx.TensorProto.DataType values that are not also kiln_dtype values (the
// runtime's enum reuses ONNX's numbering for the types it has).
constexpr int64_t kOnnxString = 8;

const char *onnxTypeName(int64_t t) {
  static const char *names[] = {
      "undefined", "float",      "uint8",        "int8",         "uint16",
      "int16",     "int32",      "int64",        "string",       "bool",
      "float16",   "double",     "uint32",       "uint64",       "complex64",
      "complex128", "bfloat16",  "float8e4m3fn", "float8e4m3fnuz",
      "float8e5m2", "float8e5m2fnuz", "uint4",   "int4",         "float4e2m1",
      "float8e8m0", "uint2",      "int2"};
  if (t >= 0 && t < static_cast<int64_t>(sizeof(names) / sizeof(names[0])))
    return names[t];
  return nullptr;
}

/// Bits per element of the types ONNX packs several to a byte (low bits
/// first), 0 for the others.
unsigned packedBits(kiln_dtype t) {
  switch (t) {
  case KILN_DTYPE_U4: case KILN_DTYPE_I4: case KILN_DTYPE_F4E2M1: return 4;
  case KILN_DTYPE_U2: case KILN_DTYPE_I2: return 2;
  default: return 0;
  }
}

/// Runtime buffers hold these one element per byte, in the low bits.
std::vector<uint8_t> unpack(const uint8_t *packed, uint64_t count, unsigned bits) {
  std::vector<uint8_t> out(count);
  unsigned perByte = 8 / bits;
  uint8_t mask = static_cast<uint8_t>((1u << bits) - 1);
  for (uint64_t i = 0; i < count; ++i)
    out[i] = (packed[i / perByte] >> (bits * (i % perByte))) & mask;
  return out;
}

class Reader {
public:
  Reader(const uint8_t *p, size_t n) : p(p), end(p + n) {}
  bool done() const { return p == end; }

  bool varint(uint64_t &v) {
    v = 0;
    for (unsigned shift = 0; shift < 64; shift += 7) {
      if (p == end)
        return false;
      uint8_t b = *p++;
      v |= uint64_t(b & 0x7f) << shift;
      if (!(b & 0x80))
        return true;
    }
    return false; // More than 10 bytes.
  }
  bool fixed(size_t n, uint8_t *out) {
    if (size_t(end - p) < n)
      return false;
    std::memcpy(out, p, n);
    p += n;
    return true;
  }
  bool bytes(const uint8_t *&data, size_t &n) {
    uint64_t len;
    if (!varint(len) || len > uint64_t(end - p))
      return false;
    data = p;
    n = static_cast<size_t>(len);
    p += n;
    return true;
  }

private:
  const uint8_t *p;
  const uint8_t *end;
};

/// Appends the elements of one repeated scalar field occurrence, packed
/// (length-delimited) or not. `fixedSize` is 4 or 8 for fixed-width fields
/// (their bytes are kept as they are), 0 for varints (appended to `ints`).
std::string readRepeated(Reader &r, uint32_t wire, size_t fixedSize,
                         const char *field, std::vector<uint64_t> &ints,
                         std::vector<uint8_t> &fixedBytes) {
  std::string truncated = std::string("truncated ") + field;
  uint32_t scalarWire =
      fixedSize == 0 ? kVarint : fixedSize == 4 ? kFixed32 : kFixed64;
  if (wire == kLengthDelimited) {
    const uint8_t *data;
    size_t n;
    if (!r.bytes(data, n))
      return truncated;
    if (fixedSize) {
      if (n % fixedSize)
        return std::string("packed ") + field + " is " + std::to_string(n) +
               " bytes, not a multiple of " + std::to_string(fixedSize);
      fixedBytes.insert(fixedBytes.end(), data, data + n);
      return "";
    }
    Reader packed(data, n);
    while (!packed.done()) {
      uint64_t v;
      if (!packed.varint(v))
        return std::string("malformed varint in packed ") + field;
      ints.push_back(v);
    }
    return "";
  }
  if (wire != scalarWire)
    return std::string(field) + " has wire type " + std::to_string(wire) +
           ", expected " + std::to_string(scalarWire) + " or 2 (packed)";
  if (fixedSize) {
    uint8_t buf[8];
    if (!r.fixed(fixedSize, buf))
      return truncated;
    fixedBytes.insert(fixedBytes.end(), buf, buf + fixedSize);
    return "";
  }
  uint64_t v;
  if (!r.varint(v))
    return truncated;
  ints.push_back(v);
  return "";
}

std::string skipField(Reader &r, uint32_t wire, uint32_t number) {
  uint8_t buf[8];
  uint64_t v;
  const uint8_t *data;
  size_t n;
  switch (wire) {
  case kVarint:
    if (r.varint(v))
      return "";
    break;
  case kFixed64:
    if (r.fixed(8, buf))
      return "";
    break;
  case kFixed32:
    if (r.fixed(4, buf))
      return "";
    break;
  case kLengthDelimited:
    if (r.bytes(data, n))
      return "";
    break;
  default:
    return "field " + std::to_string(number) + " has unsupported wire type " +
           std::to_string(wire) + " (not a TensorProto?)";
  }
  return "truncated field " + std::to_string(number);
}

std::string shapeString(const std::vector<int64_t> &shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i)
    s += (i ? "," : "") + std::to_string(shape[i]);
  return s + "]";
}

} // namespace

bool hasTensorProtoExtension(const std::string &path) {
  auto endsWith = [&](const char *suffix) {
    size_t n = std::strlen(suffix);
    return path.size() >= n && path.compare(path.size() - n, n, suffix) == 0;
  };
  return endsWith(".pb") || endsWith(".onnxtensor");
}

std::string decode(const uint8_t *bytes, size_t size, npy::Array &out,
                   std::string &name) {
  std::vector<int64_t> dims;
  int64_t dataType = 0;
  bool haveDataType = false;
  std::vector<uint64_t> int32Data, int64Data, uint64Data, dimsRaw;
  std::vector<uint8_t> floatData, doubleData, raw, unusedFixed;
  std::vector<uint64_t> unusedInts;
  bool haveRaw = false, haveStrings = false, external = false,
       haveSegment = false;
  name.clear();

  Reader r(bytes, size);
  while (!r.done()) {
    uint64_t key;
    if (!r.varint(key))
      return "malformed field key";
    uint32_t wire = static_cast<uint32_t>(key & 7);
    uint64_t number = key >> 3;
    if (number == 0 || number > 0x1fffffff)
      return "invalid field number " + std::to_string(number) +
             " (not a TensorProto?)";
    std::string err;
    switch (number) {
    case kDims:
      err = readRepeated(r, wire, 0, "dims", dimsRaw, unusedFixed);
      break;
    case kDataType: {
      uint64_t v;
      if (wire != kVarint)
        return "data_type has wire type " + std::to_string(wire) +
               ", expected 0 (not a TensorProto?)";
      if (!r.varint(v))
        return "truncated data_type";
      dataType = static_cast<int64_t>(v);
      haveDataType = true;
      break;
    }
    case kFloatData:
      err = readRepeated(r, wire, 4, "float_data", unusedInts, floatData);
      break;
    case kInt32Data:
      err = readRepeated(r, wire, 0, "int32_data", int32Data, unusedFixed);
      break;
    case kInt64Data:
      err = readRepeated(r, wire, 0, "int64_data", int64Data, unusedFixed);
      break;
    case kUint64Data:
      err = readRepeated(r, wire, 0, "uint64_data", uint64Data, unusedFixed);
      break;
    case kDoubleData:
      err = readRepeated(r, wire, 8, "double_data", unusedInts, doubleData);
      break;
    case kName:
    case kRawData: {
      const uint8_t *data;
      size_t n;
      if (wire != kLengthDelimited)
        return std::string(number == kName ? "name" : "raw_data") +
               " has wire type " + std::to_string(wire) +
               ", expected 2 (not a TensorProto?)";
      if (!r.bytes(data, n))
        return std::string("truncated ") +
               (number == kName ? "name" : "raw_data");
      if (number == kName) {
        name.assign(reinterpret_cast<const char *>(data), n);
      } else {
        raw.assign(data, data + n);
        haveRaw = true;
      }
      break;
    }
    case kDataLocation: {
      uint64_t v;
      if (wire != kVarint || !r.varint(v))
        return "malformed data_location";
      external |= v == 1;
      break;
    }
    case kStringData:
      haveStrings = true;
      err = skipField(r, wire, static_cast<uint32_t>(number));
      break;
    case kSegment:
      haveSegment = true;
      err = skipField(r, wire, static_cast<uint32_t>(number));
      break;
    case kExternalData:
      external = true;
      err = skipField(r, wire, static_cast<uint32_t>(number));
      break;
    default: // doc_string, metadata_props and fields from newer ONNX.
      err = skipField(r, wire, static_cast<uint32_t>(number));
    }
    if (!err.empty())
      return err;
  }

  if (!haveDataType || dataType == 0)
    return "tensor has no data_type";
  const char *typeName = onnxTypeName(dataType);
  std::string typeDesc =
      typeName ? std::string(typeName)
               : "data type " + std::to_string(dataType);
  if (dataType == kOnnxString || haveStrings)
    return "string tensors are not supported";
  if (!npy::isKilnDtype(dataType))
    return "element type " + typeDesc + " is not supported by the runtime";
  if (external)
    return "tensors with external data are not supported; save the data "
           "inside the .pb file";
  if (haveSegment)
    return "segmented tensors are not supported";

  for (uint64_t d : dimsRaw) {
    if (static_cast<int64_t>(d) < 0)
      return "negative dimension " + std::to_string(static_cast<int64_t>(d));
    dims.push_back(static_cast<int64_t>(d));
  }
  uint64_t count = 1;
  for (int64_t d : dims) {
    if (d && count > (UINT64_MAX >> 4) / static_cast<uint64_t>(d))
      return "shape " + shapeString(dims) + " is too large";
    count *= static_cast<uint64_t>(d);
  }
  auto dtype = static_cast<kiln_dtype>(dataType);
  size_t elem = kiln_dtype_size(dtype);

  // Exactly one of raw_data or the typed field ONNX assigns to the element
  // type may hold the values; anything else means a writer disagreed with
  // the spec and guessing would silently misread data.
  struct Typed {
    const char *field;
    size_t count;
    bool allowed;
  };
  bool i32Types = dtype == KILN_DTYPE_I32 || dtype == KILN_DTYPE_I16 ||
                  dtype == KILN_DTYPE_I8 || dtype == KILN_DTYPE_U16 ||
                  dtype == KILN_DTYPE_U8 || dtype == KILN_DTYPE_BOOL ||
                  dtype == KILN_DTYPE_F16 || dtype == KILN_DTYPE_BF16 ||
                  (dtype >= KILN_DTYPE_F8E4M3FN && dtype <= KILN_DTYPE_I2);
  // 4- and 2-bit types are packed in raw_data and in int32_data alike (one
  // int32 per packed byte).
  unsigned bits = packedBits(dtype);
  uint64_t storedCount = bits ? (count * bits + 7) / 8 : count;
  const Typed typed[] = {
      {"float_data", floatData.size() / 4, dtype == KILN_DTYPE_F32},
      {"int32_data", int32Data.size(), i32Types},
      {"int64_data", int64Data.size(), dtype == KILN_DTYPE_I64},
      {"double_data", doubleData.size() / 8, dtype == KILN_DTYPE_F64},
      {"uint64_data", uint64Data.size(),
       dtype == KILN_DTYPE_U32 || dtype == KILN_DTYPE_U64},
  };
  size_t typedCount = 0;
  const Typed *used = nullptr;
  for (const Typed &t : typed) {
    if (!t.count)
      continue;
    if (!t.allowed)
      return std::string(t.field) + " cannot hold " + typeDesc + " values";
    used = &t;
    typedCount = t.count;
  }
  if (haveRaw && used)
    return std::string("both raw_data and ") + used->field + " are set";

  out.dtype = dtype;
  out.shape = dims;
  out.data.clear();
  if (haveRaw) {
    if (raw.size() != storedCount * elem)
      return "raw_data is " + std::to_string(raw.size()) +
             " bytes, expected " + std::to_string(storedCount * elem) + " for " +
             typeDesc + shapeString(dims);
    out.data = bits ? unpack(raw.data(), count, bits) : std::move(raw);
    if (dtype == KILN_DTYPE_BOOL)
      for (uint8_t &b : out.data)
        b = b != 0;
    return "";
  }
  if (typedCount != storedCount)
    return std::string(used ? used->field : "data") + " has " +
           std::to_string(typedCount) + " values, expected " +
           std::to_string(storedCount) + " for " + typeDesc + shapeString(dims);
  if (!count)
    return "";
  if (bits) {
    std::vector<uint8_t> packed(storedCount);
    for (uint64_t i = 0; i < storedCount; ++i)
      packed[i] = static_cast<uint8_t>(int32Data[i]);
    out.data = unpack(packed.data(), count, bits);
    return "";
  }
  out.data.resize(count * elem);
  uint8_t *dst = out.data.data();
  switch (dtype) {
  case KILN_DTYPE_F32:
    std::memcpy(dst, floatData.data(), floatData.size());
    break;
  case KILN_DTYPE_F64:
    std::memcpy(dst, doubleData.data(), doubleData.size());
    break;
  case KILN_DTYPE_I64:
  case KILN_DTYPE_U32:
  case KILN_DTYPE_U64: {
    const auto &src = dtype == KILN_DTYPE_I64 ? int64Data : uint64Data;
    for (size_t i = 0; i < count; ++i) {
      uint64_t v = src[i];
      if (dtype == KILN_DTYPE_U32) {
        if (v >> 32)
          return "uint64_data value " + std::to_string(v) +
                 " does not fit uint32";
        uint32_t w = static_cast<uint32_t>(v);
        std::memcpy(dst + i * 4, &w, 4);
      } else {
        std::memcpy(dst + i * 8, &v, 8);
      }
    }
    break;
  }
  default: {
    // int32_data: int32 values were written as sign-extended 64-bit varints;
    // narrower types keep their bit pattern in the low bytes.
    for (size_t i = 0; i < count; ++i) {
      uint64_t v = int32Data[i];
      if (dtype == KILN_DTYPE_BOOL)
        v = v != 0;
      uint32_t w = static_cast<uint32_t>(v);
      std::memcpy(dst + i * elem, &w, elem); // Little-endian host.
    }
  }
  }
  return "";
}

std::vector<uint8_t> encode(const npy::Array &array, const std::string &name) {
  std::vector<uint8_t> out;
  auto varint = [&](uint64_t v) {
    do {
      uint8_t b = v & 0x7f;
      v >>= 7;
      out.push_back(b | (v ? 0x80 : 0));
    } while (v);
  };
  auto bytesField = [&](uint32_t field, const void *data, size_t n) {
    varint(field << 3 | kLengthDelimited);
    varint(n);
    auto *p = static_cast<const uint8_t *>(data);
    out.insert(out.end(), p, p + n);
  };
  for (int64_t d : array.shape) {
    varint(kDims << 3 | kVarint);
    varint(static_cast<uint64_t>(d));
  }
  varint(kDataType << 3 | kVarint);
  varint(static_cast<uint64_t>(array.dtype));
  if (!name.empty())
    bytesField(kName, name.data(), name.size());
  if (unsigned bits = packedBits(array.dtype)) {
    unsigned perByte = 8 / bits;
    uint8_t mask = static_cast<uint8_t>((1u << bits) - 1);
    std::vector<uint8_t> packed((array.data.size() + perByte - 1) / perByte, 0);
    for (size_t i = 0; i < array.data.size(); ++i)
      packed[i / perByte] |= (array.data[i] & mask) << (bits * (i % perByte));
    bytesField(kRawData, packed.data(), packed.size());
    return out;
  }
  bytesField(kRawData, array.data.data(), array.data.size());
  return out;
}

std::string write(const std::string &path, const npy::Array &array,
                  const std::string &name) {
  std::vector<uint8_t> bytes = encode(array, name);
  return npy::writeFileAtomically(path, {{bytes.data(), bytes.size()}});
}

std::string read(const std::string &path, npy::Array &out, std::string *name) {
  std::vector<uint8_t> bytes;
  if (std::string err = npy::readFile(path, bytes); !err.empty())
    return err;
  std::string ignored;
  std::string err = decode(bytes.data(), bytes.size(), out,
                           name ? *name : ignored);
  if (!err.empty())
    return path + ": not a valid ONNX TensorProto: " + err;
  return "";
}

} // namespace kiln::tensor_proto

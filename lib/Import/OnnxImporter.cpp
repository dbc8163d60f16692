//===- OnnxImporter.cpp - ONNX graph to MLIR ------------------------------===//
//
// Walks the graph in order, keeping for every ONNX value name either an SSA
// tensor or, for values known at compile time, a DenseElementsAttr that is
// only materialized as arith.constant when a runtime op reads it.
//
//===----------------------------------------------------------------------===//
#include "Importer.h"
#include "NodeSchema.h"
#include "OpRegistry.h"
#include "kiln/Import/NodeLocation.h"

#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/IR/Diagnostics.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>

#include <cstring>
#include <functional>

using namespace mlir;
using namespace kiln;
using namespace kiln::detail;
namespace onnx = kiln::onnx;

//===----------------------------------------------------------------------===//
// Types
//===----------------------------------------------------------------------===//

Type kiln::detail::onnxElementType(MLIRContext &ctx, int dataType) {
  Builder b(&ctx);
  switch (dataType) {
  case onnx::TensorProto::FLOAT: return b.getF32Type();
  case onnx::TensorProto::DOUBLE: return b.getF64Type();
  case onnx::TensorProto::FLOAT16: return b.getF16Type();
  case onnx::TensorProto::BFLOAT16: return b.getBF16Type();
  case onnx::TensorProto::INT8: return b.getIntegerType(8);
  case onnx::TensorProto::INT16: return b.getIntegerType(16);
  case onnx::TensorProto::INT32: return b.getI32Type();
  case onnx::TensorProto::INT64: return b.getI64Type();
  case onnx::TensorProto::BOOL: return b.getI1Type();
  // Signless: OpContext::isUnsigned tells handlers the data is unsigned.
  case onnx::TensorProto::UINT8: return b.getIntegerType(8);
  case onnx::TensorProto::UINT16: return b.getIntegerType(16);
  case onnx::TensorProto::UINT32: return b.getI32Type();
  case onnx::TensorProto::UINT64: return b.getI64Type();
  case onnx::TensorProto::UINT4: return b.getIntegerType(4);
  case onnx::TensorProto::UINT2: return b.getIntegerType(2);
  case onnx::TensorProto::INT4: return b.getIntegerType(4);
  case onnx::TensorProto::INT2: return b.getIntegerType(2);
  case onnx::TensorProto::FLOAT8E4M3FN: return b.getType<Float8E4M3FNType>();
  case onnx::TensorProto::FLOAT8E4M3FNUZ: return b.getType<Float8E4M3FNUZType>();
  case onnx::TensorProto::FLOAT8E5M2: return b.getType<Float8E5M2Type>();
  case onnx::TensorProto::FLOAT8E5M2FNUZ: return b.getType<Float8E5M2FNUZType>();
  case onnx::TensorProto::FLOAT8E8M0: return b.getType<Float8E8M0FNUType>();
  case onnx::TensorProto::FLOAT4E2M1: return b.getType<Float4E2M1FNType>();
  default: return {};
  }
}

std::optional<int> kiln::detail::onnxDataType(Type t, bool isUnsigned) {
  if (!t)
    return std::nullopt;
  if (t.isF32())
    return onnx::TensorProto::FLOAT;
  if (t.isF64())
    return onnx::TensorProto::DOUBLE;
  if (t.isF16())
    return onnx::TensorProto::FLOAT16;
  if (t.isBF16())
    return onnx::TensorProto::BFLOAT16;
  // Narrower types (int4, float8...) pass through OnnxSmallTypes' own checks.
  switch (t.isSignlessInteger() ? t.getIntOrFloatBitWidth() : 0) {
  case 1: return onnx::TensorProto::BOOL;
  case 8: return isUnsigned ? onnx::TensorProto::UINT8 : onnx::TensorProto::INT8;
  case 16: return isUnsigned ? onnx::TensorProto::UINT16 : onnx::TensorProto::INT16;
  case 32: return isUnsigned ? onnx::TensorProto::UINT32 : onnx::TensorProto::INT32;
  case 64: return isUnsigned ? onnx::TensorProto::UINT64 : onnx::TensorProto::INT64;
  default: return std::nullopt;
  }
}

bool kiln::detail::isUnsignedDataType(int dataType) {
  return dataType == onnx::TensorProto::UINT8 || dataType == onnx::TensorProto::UINT16 ||
         dataType == onnx::TensorProto::UINT32 || dataType == onnx::TensorProto::UINT64 ||
         dataType == onnx::TensorProto::UINT4 || dataType == onnx::TensorProto::UINT2;
}

/// The artifact's dtype tag for unsigned graph inputs and outputs, read by
/// the schedule (lib/Pipeline/Schedule.cpp) from the `kiln.dtype` attribute.
static StringRef unsignedTag(int dataType) {
  switch (dataType) {
  case onnx::TensorProto::UINT8: return "u8";
  case onnx::TensorProto::UINT16: return "u16";
  case onnx::TensorProto::UINT32: return "u32";
  case onnx::TensorProto::UINT64: return "u64";
  case onnx::TensorProto::UINT4: return "u4";
  case onnx::TensorProto::UINT2: return "u2";
  default: return "";
  }
}

std::string kiln::detail::onnxTypeName(int dataType) {
  static const char *names[] = {"undefined", "float",  "uint8",     "int8",      "uint16",
                                "int16",     "int32",  "int64",     "string",    "bool",
                                "float16",   "double", "uint32",    "uint64",    "complex64",
                                "complex128", "bfloat16", "float8e4m3fn", "float8e4m3fnuz",
                                "float8e5m2", "float8e5m2fnuz", "uint4", "int4", "float4e2m1",
                                "float8e8m0", "uint2", "int2"};
  if (dataType >= 0 && dataType < (int)std::size(names))
    return names[dataType];
  return "data type " + std::to_string(dataType);
}

int64_t HostTensor::numel() const {
  int64_t n = 1;
  for (int64_t d : shape)
    n *= d;
  return n;
}

std::optional<HostTensor> HostTensor::fromAttr(DenseElementsAttr attr) {
  HostTensor t;
  auto type = cast<RankedTensorType>(attr.getType());
  t.shape.assign(type.getShape().begin(), type.getShape().end());
  t.elemType = type.getElementType();
  if (isa<FloatType>(t.elemType)) {
    for (APFloat v : attr.getValues<APFloat>())
      t.floats.push_back(v.convertToDouble());
  } else if (t.elemType.isInteger(1)) {
    for (bool v : attr.getValues<bool>())
      t.ints.push_back(v);
  } else if (isa<IntegerType>(t.elemType)) {
    for (APInt v : attr.getValues<APInt>())
      t.ints.push_back(v.getSExtValue());
  } else {
    return std::nullopt;
  }
  return t;
}

DenseElementsAttr HostTensor::toAttr() const {
  auto type = RankedTensorType::get(shape, elemType);
  if (auto ft = dyn_cast<FloatType>(elemType)) {
    SmallVector<APFloat> vals;
    for (double v : floats) {
      APFloat f(v);
      bool lost;
      f.convert(ft.getFloatSemantics(), APFloat::rmNearestTiesToEven, &lost);
      vals.push_back(f);
    }
    return DenseElementsAttr::get(type, vals);
  }
  if (elemType.isInteger(1)) {
    SmallVector<bool> vals(ints.begin(), ints.end());
    return DenseElementsAttr::get(type, vals);
  }
  unsigned width = elemType.getIntOrFloatBitWidth();
  SmallVector<APInt> vals;
  for (int64_t v : ints)
    vals.push_back(APInt(width, (uint64_t)v, /*isSigned=*/true, /*implicitTrunc=*/true));
  return DenseElementsAttr::get(type, vals);
}

//===----------------------------------------------------------------------===//
// Importer
//===----------------------------------------------------------------------===//

OpContext::OpContext(MLIRContext &context, StringRef path)
    : ctx(context), b(&context), loc(UnknownLoc::get(&context)), path(path.str()) {}

Importer &OpContext::importer() { return static_cast<Importer &>(*this); }

Importer::Importer(MLIRContext &context, StringRef path,
                   const ImportOptions &options)
    : OpContext(context, path), modelDir(llvm::sys::path::parent_path(path).str()),
      options(options), fileLoc(FileLineColLoc::get(&context, path, 0, 0)) {}

LogicalResult OpContext::fail(const Twine &message) {
  std::string where = path + ": ";
  if (node) {
    std::string name = node->name().empty()
                           ? "(unnamed, output '" +
                                 (node->output_size() ? node->output(0) : "") + "')"
                           : "'" + node->name() + "'";
    std::string domain = node->domain().empty() ? "" : node->domain() + ".";
    where += llvm::formatv("node {0} ({1}{2}, opset {3}): ", name, domain,
                           node->op_type(), opset)
                 .str();
  }
  if (errorText.empty()) {
    errorText = where + message.str();
    neededAtFailure = neededValues;
  }
  return failure();
}

const onnx::AttributeProto *OpContext::attr(StringRef name) const {
  for (const auto &a : node->attribute())
    if (a.name() == name)
      return &a;
  return nullptr;
}

int64_t OpContext::attrInt(StringRef name, int64_t dflt) const {
  const auto *a = attr(name);
  return a ? a->i() : dflt;
}

float OpContext::attrFloat(StringRef name, float dflt) const {
  const auto *a = attr(name);
  return a ? a->f() : dflt;
}

std::string OpContext::attrString(StringRef name, StringRef dflt) const {
  const auto *a = attr(name);
  return a ? a->s() : dflt.str();
}

std::optional<SmallVector<int64_t>> OpContext::attrInts(StringRef name) const {
  const auto *a = attr(name);
  if (!a)
    return std::nullopt;
  return SmallVector<int64_t>(a->ints().begin(), a->ints().end());
}

bool OpContext::hasInput(unsigned i) const {
  return (int)i < node->input_size() && !node->input(i).empty();
}

Value OpContext::materialize(StringRef name) {
  auto it = values.find(name);
  if (it != values.end())
    return it->second;
  auto c = consts.find(name);
  if (c == consts.end())
    return {};
  // Constants live at the top of the function so every later use is
  // dominated, whichever node first asks for them.
  OpBuilder::InsertionGuard guard(b);
  auto func = cast<func::FuncOp>(module.getBody()->front());
  b.setInsertionPointToStart(&func.getBody().front());
  Value v = arith::ConstantOp::create(b, NameLoc::get(b.getStringAttr(name)),
                                      c->second);
  values[name] = v;
  return v;
}

Value OpContext::input(unsigned i) {
  return hasInput(i) ? materialize(node->input(i)) : Value();
}

RankedTensorType OpContext::inputType(unsigned i) {
  if (auto c = constInput(i))
    return cast<RankedTensorType>(c->getType());
  return cast<RankedTensorType>(input(i).getType());
}

std::optional<DenseElementsAttr> OpContext::constInput(unsigned i) const {
  if (!hasInput(i))
    return std::nullopt;
  auto it = consts.find(node->input(i));
  if (it == consts.end())
    return std::nullopt;
  return it->second;
}

void OpContext::noteRequired(unsigned i) {
  if (hasInput(i) && !consts.count(node->input(i)))
    neededValues.push_back(node->input(i));
}

FailureOr<DenseElementsAttr> OpContext::requireConst(unsigned i, StringRef what) {
  if (auto c = constInput(i))
    return *c;
  noteRequired(i);
  return fail("input '" + what + "' ('" + node->input(i) +
              "') must be known at compile time (a constant, computed from "
              "shapes, or a graph input bound with --input-value)");
}

FailureOr<SmallVector<int64_t>> OpContext::constInts(unsigned i, StringRef what) {
  auto c = requireConst(i, what);
  if (failed(c))
    return failure();
  auto host = HostTensor::fromAttr(*c);
  if (!host || host->isFloat())
    return fail("input '" + what + "' must be an integer tensor");
  return SmallVector<int64_t>(host->ints.begin(), host->ints.end());
}

void OpContext::setOutput(unsigned i, Value v) {
  if (wantsOutput(i))
    values[node->output(i)] = v;
}

void OpContext::setDynamicOutput(unsigned i, Value v, Value extents, ArrayRef<int64_t> dims) {
  if (!wantsOutput(i))
    return;
  values[node->output(i)] = v;
  dynamicShapes[node->output(i)] = {node->op_type(), extents, llvm::to_vector(dims)};
}

void OpContext::setConstOutput(unsigned i, DenseElementsAttr attr) {
  if (wantsOutput(i))
    consts[node->output(i)] = attr;
}

FailureOr<int64_t> OpContext::normalizeAxis(int64_t axis, int64_t rank,
                                           StringRef what) {
  if (axis < -rank || axis >= std::max<int64_t>(rank, 1))
    return fail(llvm::formatv("{0} {1} is out of range for rank {2}", what, axis, rank)
                    .str());
  return axis < 0 ? axis + rank : axis;
}

//===----------------------------------------------------------------------===//
// Tensors and value infos
//===----------------------------------------------------------------------===//

FailureOr<DenseElementsAttr> Importer::tensorToAttr(const onnx::TensorProto &t) {
  Type elem = onnxElementType(ctx, t.data_type());
  if (!elem)
    return fail("initializer '" + t.name() + "' has unsupported element type " +
                onnxTypeName(t.data_type()));
  SmallVector<int64_t> shape(t.dims().begin(), t.dims().end());
  auto type = RankedTensorType::get(shape, elem);
  int64_t n = type.getNumElements();
  unsigned bits = elem.getIntOrFloatBitWidth();
  size_t elemBytes = (bits + 7) / 8;
  // ONNX packs 4- and 2-bit elements low bits first, in raw_data and in
  // int32_data (one int32 per packed byte) alike.
  bool packed = bits < 8 && !elem.isInteger(1);
  uint64_t storedBytes = packed ? (n * bits + 7) / 8 : n * elemBytes;

  std::string external;
  const std::string *raw = t.has_raw_data() ? &t.raw_data() : nullptr;
  if (t.data_location() == onnx::TensorProto::EXTERNAL) {
    std::string location;
    uint64_t offset = 0, length = UINT64_MAX;
    for (const auto &kv : t.external_data()) {
      if (kv.key() == "location")
        location = kv.value();
      else if (kv.key() == "offset")
        offset = std::stoull(kv.value());
      else if (kv.key() == "length")
        length = std::stoull(kv.value());
    }
    SmallString<256> file(modelDir);
    llvm::sys::path::append(file, location);
    auto buf = llvm::MemoryBuffer::getFile(file, /*IsText=*/false,
                                           /*RequiresNullTerminator=*/false);
    if (!buf)
      return fail("initializer '" + t.name() + "': cannot read external data file '" +
                  file + "': " + buf.getError().message());
    uint64_t want = length == UINT64_MAX ? storedBytes : length;
    if (offset + want > (*buf)->getBufferSize())
      return fail(llvm::formatv("initializer '{0}': external data file '{1}' has {2} "
                                "bytes, needs {3} at offset {4}",
                                t.name(), file, (*buf)->getBufferSize(), want, offset)
                      .str());
    external.assign((*buf)->getBufferStart() + offset, want);
    raw = &external;
  }

  // The small types (8-bit floats are one byte each in int32_data too).
  if (packed || (isa<FloatType>(elem) && bits == 8)) {
    std::string bytes;
    if (raw)
      bytes = *raw;
    else
      for (int32_t v : t.int32_data())
        bytes.push_back(static_cast<char>(v));
    if (bytes.size() != storedBytes)
      return fail(llvm::formatv("initializer '{0}': {1} bytes of data for {2} elements "
                                "of {3}, expected {4}",
                                t.name(), bytes.size(), n, onnxTypeName(t.data_type()),
                                storedBytes)
                      .str());
    unsigned perByte = 8 / bits;
    SmallVector<APInt> codes;
    for (int64_t i = 0; i < n; ++i)
      codes.emplace_back(bits, (uint8_t(bytes[i / perByte]) >> (bits * (i % perByte))) &
                                   ((1u << bits) - 1));
    if (auto ft = dyn_cast<FloatType>(elem)) {
      SmallVector<APFloat> vals;
      for (const APInt &c : codes)
        vals.emplace_back(ft.getFloatSemantics(), c);
      return DenseElementsAttr::get(type, vals);
    }
    return DenseElementsAttr::get(type, codes);
  }

  if (raw) {
    if (raw->size() != (size_t)n * elemBytes)
      return fail(llvm::formatv("initializer '{0}': {1} bytes of data for {2} elements "
                                "of {3} bytes",
                                t.name(), raw->size(), n, elemBytes)
                      .str());
    if (elem.isInteger(1)) {
      SmallVector<bool> vals;
      for (char c : *raw)
        vals.push_back(c != 0);
      return DenseElementsAttr::get(type, vals);
    }
    bool detectedSplat = false;
    if (!DenseElementsAttr::isValidRawBuffer(type, ArrayRef<char>(raw->data(), raw->size()),
                                             detectedSplat))
      return fail("initializer '" + t.name() + "' has malformed raw data");
    return DenseElementsAttr::getFromRawBuffer(type,
                                               ArrayRef<char>(raw->data(), raw->size()));
  }

  // Typed fields (ONNX stores 8/16-bit ints, bool and f16 in int32_data).
  HostTensor h;
  h.shape = shape;
  h.elemType = elem;
  int64_t have = 0;
  switch (t.data_type()) {
  case onnx::TensorProto::FLOAT:
    h.floats.assign(t.float_data().begin(), t.float_data().end());
    have = t.float_data_size();
    break;
  case onnx::TensorProto::DOUBLE:
    h.floats.assign(t.double_data().begin(), t.double_data().end());
    have = t.double_data_size();
    break;
  case onnx::TensorProto::INT64:
    h.ints.assign(t.int64_data().begin(), t.int64_data().end());
    have = t.int64_data_size();
    break;
  case onnx::TensorProto::UINT32:
  case onnx::TensorProto::UINT64:
    for (uint64_t v : t.uint64_data())
      h.ints.push_back((int64_t)v);
    have = t.uint64_data_size();
    break;
  case onnx::TensorProto::FLOAT16:
  case onnx::TensorProto::BFLOAT16: {
    const llvm::fltSemantics &sem = elem.isF16() ? APFloat::IEEEhalf() : APFloat::BFloat();
    for (int32_t bits : t.int32_data())
      h.floats.push_back(APFloat(sem, APInt(16, (uint64_t)bits)).convertToFloat());
    have = t.int32_data_size();
    break;
  }
  default:
    h.ints.assign(t.int32_data().begin(), t.int32_data().end());
    have = t.int32_data_size();
    break;
  }
  if (have != n)
    return fail(llvm::formatv("initializer '{0}': {1} values for shape with {2} elements",
                              t.name(), have, n)
                    .str());
  return h.toAttr();
}

FailureOr<Type> Importer::valueInfoType(const onnx::ValueInfoProto &info,
                                        bool isInput) {
  if (!info.type().has_tensor_type())
    return fail("graph " + std::string(isInput ? "input" : "output") + " '" +
                info.name() + "' is not a tensor, sequence or optional (maps "
                              "are not supported)");
  const auto &tt = info.type().tensor_type();
  Type elem = onnxElementType(ctx, tt.elem_type());
  if (!elem)
    return fail("graph input '" + info.name() + "' has unsupported element type " +
                onnxTypeName(tt.elem_type()));
  SmallVector<int64_t> shape;
  auto pinned = options.inputShapes.find(info.name());
  if (isInput && pinned != options.inputShapes.end()) {
    shape = pinned->second;
    if (tt.has_shape() && tt.shape().dim_size() != (int)shape.size())
      return fail(llvm::formatv("--input-shape for '{0}' has rank {1}, the model "
                                "says rank {2}",
                                info.name(), shape.size(), tt.shape().dim_size())
                      .str());
    // Pinning may only fill in symbolic dimensions, never contradict fixed ones.
    for (int i = 0; tt.has_shape() && i < tt.shape().dim_size(); ++i) {
      const auto &d = tt.shape().dim(i);
      if (d.has_dim_value() && d.dim_value() >= 0 && d.dim_value() != shape[i])
        return fail(llvm::formatv("--input-shape for '{0}' gives dimension {1} as {2}, "
                                  "the model fixes it to {3}",
                                  info.name(), i, shape[i], d.dim_value())
                        .str());
    }
  } else {
    if (!tt.has_shape())
      return fail("graph input '" + info.name() +
                  "' has no shape; give one with --input-shape " + info.name() +
                  "=DxDx...");
    for (int i = 0; i < tt.shape().dim_size(); ++i) {
      const auto &d = tt.shape().dim(i);
      if (!d.has_dim_value() || d.dim_value() < 0) {
        // Reported once the whole signature is read (importGraph).
        fail(llvm::formatv("graph input '{0}' has symbolic dimension {1} ('{2}'); "
                           "pin it with --input-shape {0}=DxDx...",
                           info.name(), i, d.has_dim_param() ? d.dim_param() : "?")
                 .str());
        if (symbolicInputs.empty() || symbolicInputs.back() != info.name())
          symbolicInputs.push_back(info.name());
        shape.push_back(ShapedType::kDynamic);
        continue;
      }
      shape.push_back(d.dim_value());
    }
  }
  return Type(RankedTensorType::get(shape, elem));
}

FailureOr<DenseElementsAttr>
Importer::boundInputValue(const onnx::ValueInfoProto &info, StringRef spec) {
  std::string what = "--input-value for '" + info.name() + "'";
  if (!info.type().has_tensor_type())
    return fail(what + ": the input is not a tensor");
  const auto &tt = info.type().tensor_type();
  FailureOr<DenseElementsAttr> attr = failure();
  if (spec.starts_with("@")) {
    std::string file = spec.drop_front().str();
    auto buf = llvm::MemoryBuffer::getFile(file, /*IsText=*/false,
                                           /*RequiresNullTerminator=*/false);
    if (!buf)
      return fail(what + ": cannot read '" + file + "': " + buf.getError().message());
    onnx::TensorProto t;
    if (!t.ParseFromArray((*buf)->getBufferStart(), (int)(*buf)->getBufferSize()))
      return fail(what + ": '" + file + "' is not an ONNX TensorProto");
    if (tt.elem_type() != 0 && t.data_type() != tt.elem_type())
      return fail(what + ": '" + file + "' holds " + onnxTypeName(t.data_type()) +
                  ", the model declares " + onnxTypeName(tt.elem_type()));
    t.set_name(info.name());
    attr = tensorToAttr(t);
  } else {
    Type elem = onnxElementType(ctx, tt.elem_type());
    if (!elem)
      return fail(what + ": unsupported element type " + onnxTypeName(tt.elem_type()));
    HostTensor h;
    h.elemType = elem;
    SmallVector<StringRef> parts;
    if (!spec.empty())
      spec.split(parts, ',');
    for (StringRef p : parts) {
      double v;
      if (p.trim().getAsDouble(v))
        return fail(what + ": '" + p + "' is not a number");
      h.push(v);
    }
    int64_t n = parts.size();
    auto pinned = options.inputShapes.find(info.name());
    if (pinned != options.inputShapes.end()) {
      h.shape = pinned->second;
    } else if (tt.has_shape() && tt.shape().dim_size() == 0 && n == 1) {
      // scalar
    } else {
      h.shape = {n};
      if (tt.has_shape() && tt.shape().dim_size() > 1)
        return fail(what + ": the input has rank " + Twine(tt.shape().dim_size()) +
                    "; give its shape with --input-shape");
    }
    if (h.numel() != n)
      return fail(what + ": " + Twine(n) + " values for " + Twine(h.numel()) +
                  " elements");
    attr = h.toAttr();
  }
  if (failed(attr))
    return failure();
  // The value must agree with every fixed dimension the model declares.
  auto shape = cast<RankedTensorType>(attr->getType()).getShape();
  if (tt.has_shape()) {
    bool ok = tt.shape().dim_size() == (int)shape.size();
    for (int i = 0; ok && i < tt.shape().dim_size(); ++i) {
      const auto &d = tt.shape().dim(i);
      ok = !d.has_dim_value() || d.dim_value() < 0 || d.dim_value() == shape[i];
    }
    if (!ok)
      return fail(what + ": its shape does not match the model's declared shape");
  }
  return attr;
}

//===----------------------------------------------------------------------===//
// Graph
//===----------------------------------------------------------------------===//

int64_t Importer::domainOpset(StringRef domain) const {
  if (domain.empty())
    return opset;
  // A domain the model uses without importing it: its newest version.
  auto it = domainOpsets.find(domain);
  return it == domainOpsets.end() ? std::numeric_limits<int64_t>::max() : it->second;
}

LogicalResult Importer::importNodes(const onnx::GraphProto &g) {
  for (const auto &n : g.node())
    if (failed(importNode(n)))
      return failure();
  node = nullptr;
  return success();
}

LogicalResult Importer::checkTensorBytes(const Twine &what, Type type) {
  auto shaped = dyn_cast<RankedTensorType>(type);
  if (!shaped || !shaped.hasStaticShape() || !shaped.getElementType().isIntOrFloat())
    return success();
  uint64_t bytes = (shaped.getElementTypeBitWidth() + 7) / 8;
  bool overflow = false;
  for (int64_t d : shaped.getShape())
    overflow |= __builtin_mul_overflow(bytes, uint64_t(d), &bytes);
  if (!overflow && bytes <= options.maxTensorBytes)
    return success();
  std::string dims;
  for (int64_t d : shaped.getShape())
    dims += (dims.empty() ? "" : "x") + std::to_string(d);
  std::string elem;
  llvm::raw_string_ostream(elem) << shaped.getElementType();
  return fail(what + " is " + elem + "[" + dims + "] (" +
              (overflow ? std::string("more than 2^64") : std::to_string(bytes)) +
              " bytes), more than the " + Twine(options.maxTensorBytes) +
              " one tensor may hold (--max-tensor-bytes)");
}

LogicalResult Importer::checkOutputBytes() {
  for (const std::string &name : node->output()) {
    // A folded splat (ConstantOfShape) costs nothing until it is a buffer.
    Type t;
    if (auto v = values.find(name); v != values.end())
      t = v->second.getType();
    else if (auto c = consts.find(name); c != consts.end())
      t = c->second.getType();
    if (t && failed(checkTensorBytes("output '" + name + "'", t)))
      return failure();
  }
  return success();
}

LogicalResult Importer::importNode(const onnx::NodeProto &n) {
  const OpRegistry &registry = opRegistry();
  node = &n;
  neededValues.clear();
  std::string locName = n.name().empty() ? (n.output_size() ? n.output(0) : n.op_type())
                                         : n.name();
  loc = onnxNodeLoc(b.getStringAttr(locName), b.getStringAttr(n.op_type()), fileLoc);
  if (++nodesImported > options.maxNodes)
    return fail("the model imports more than " + Twine(options.maxNodes) +
                " nodes (Loop and Scan bodies count once per unrolled iteration; "
                "--max-nodes)");
  // The preview domain holds ops that may still change; its handlers
  // implement the version the installed onnx defines (1).
  StringRef domain = OpRegistry::canonicalDomain(n.domain());
  if (!domain.empty() && domain != "ai.onnx.preview" &&
      !registry.firstVersion(domain, n.op_type()))
    return fail("operator domain '" + n.domain() + "' is not supported");
  auto typeOf = [&](unsigned i) -> std::optional<int> {
    if (!hasInput(i) || isSequence(i) || isOptional(i))
      return std::nullopt;
    Type t;
    if (auto c = consts.find(n.input(i)); c != consts.end())
      t = c->second.getElementType();
    else if (auto v = values.find(n.input(i)); v != values.end())
      t = getElementTypeOrSelf(v->second.getType());
    return onnxDataType(t, isUnsigned(i));
  };
  if (std::string why = checkNodeSchema(n, domain, domainOpset(domain), typeOf); !why.empty())
    return fail(why);
  for (int i = 0; i < n.input_size(); ++i)
    if (auto it = dynamicShapes.find(n.input(i)); it != dynamicShapes.end())
      return fail("input '" + n.input(i) + "' has a data-dependent shape (computed by " +
                  it->second.producer +
                  "); Kiln supports such values only as graph outputs, not as inputs "
                  "of other nodes");
  for (int i = 0; i < n.input_size(); ++i)
    if (!n.input(i).empty() && !isDefined(n.input(i)))
      return fail("input '" + n.input(i) +
                  "' is not produced by any earlier node, initializer or graph "
                  "input (the graph must be topologically sorted)");
  // Sequences and optionals only flow into the ops made for them (and
  // Identity, which passes them through).
  bool anyContainer = false;
  for (int i = 0; i < n.input_size(); ++i)
    anyContainer |= isSequence(i) || isOptional(i);
  if (anyContainer && !acceptsContainers(n.op_type()))
    for (int i = 0; i < n.input_size(); ++i)
      if (isSequence(i) || isOptional(i))
        return fail("input '" + n.input(i) + "' is " +
                    (isSequence(i) ? "a sequence" : "an optional") + ", which " +
                    n.op_type() + " does not take");
  if (anyContainer && n.op_type() == "Identity") {
    if (n.output_size() > 0)
      alias(n.input(0), n.output(0));
    return success();
  }
  if (!anyContainer) {
    if (failed(checkSmallTypeInputs(*this)))
      return failure();
    auto folded = tryFold();
    if (failed(folded))
      return failure();
    if (*folded) {
      markUnsignedOutputs();
      return checkOutputBytes();
    }
  }
  int64_t version = domainOpset(domain);
  Handler handler = registry.lookup(domain, n.op_type(), version);
  // Only the folder evaluates these: their output shape is an input's value.
  static const llvm::StringSet<> foldedOnly = {"ConstantOfShape", "Range"};
  if (!handler && domain.empty() && foldedOnly.contains(n.op_type())) {
    for (int i = 0; i < n.input_size(); ++i)
      noteRequired(i);
    return fail("the inputs of " + n.op_type() +
                " must be known at compile time (its output shape is their value)");
  }
  if (!handler) {
    if (auto first = registry.firstVersion(domain, n.op_type()))
      return fail("operator '" + n.op_type() + "' is supported from opset " + Twine(*first) +
                  " of domain '" + (domain.empty() ? "ai.onnx" : domain) +
                  "'; the model imports opset " + Twine(version));
    return fail("unsupported operator '" + n.op_type() + "'");
  }
  if (failed(handler(*this)))
    return fail("could not import this node");
  // Views of constants stay constants, so shape subgraphs keep folding.
  static const llvm::StringSet<> views = {"Identity", "Reshape", "Squeeze",
                                          "Unsqueeze", "Flatten", "Dropout"};
  if (views.contains(n.op_type()) && n.output_size() > 0) {
    if (auto c = constInput(0); c && values.count(n.output(0))) {
      Value v = values[n.output(0)];
      consts[n.output(0)] = c->reshape(cast<ShapedType>(v.getType()));
      values.erase(n.output(0));
    }
  }
  for (int i = 0; i < n.output_size(); ++i) {
    if (!n.output(i).empty() && !isDefined(n.output(i)))
      return fail("output '" + n.output(i) + "' is not supported by Kiln's " +
                  n.op_type() + " importer");
  }
  if (failed(checkOutputBytes()))
    return failure();
  if (!anyContainer)
    markUnsignedOutputs();
  return success();
}

LogicalResult Importer::importGraph() {
  const onnx::GraphProto &g = model.graph();
  for (const auto &kv : options.inputShapes) {
    bool found = false;
    for (const auto &in : g.input())
      found |= in.name() == kv.first() ||
               (!in.type().has_tensor_type() && kv.first().starts_with(in.name() + "["));
    // Sequence elements are checked once the sequences are flattened.
    if (!found)
      return fail("--input-shape names '" + kv.first() +
                  "', which is not an input of the graph");
  }

  for (const auto &kv : options.inputValues) {
    bool found = false;
    for (const auto &in : g.input())
      found |= in.name() == kv.first();
    if (!found)
      return fail("--input-value names '" + kv.first() +
                  "', which is not an input of the graph");
  }

  auto containerInput = [&](StringRef name, StringRef flag) -> LogicalResult {
    for (const auto &in : g.input())
      if (in.name() == name && !in.type().has_tensor_type())
        return success();
    return fail(flag + " names '" + name +
                "', which is not a sequence or optional input of the graph");
  };
  for (const auto &kv : options.inputSequenceLengths)
    if (failed(containerInput(kv.first(), "--input-sequence-length")))
      return failure();
  for (const auto &kv : options.absentInputs)
    if (failed(containerInput(kv.first(), "--input-absent")))
      return failure();

  for (const auto &init : g.initializer()) {
    auto attr = tensorToAttr(init);
    if (failed(attr))
      return failure();
    consts[init.name()] = *attr;
    if (isUnsignedDataType(init.data_type()))
      unsignedValues.insert(init.name());
  }

  // Inputs that are also initializers (IR < 4 style) are constants here.
  SmallVector<FlatValue> args;
  for (const auto &in : g.input()) {
    if (consts.count(in.name()))
      continue;
    auto bound = options.inputValues.find(in.name());
    if (bound != options.inputValues.end()) {
      auto attr = boundInputValue(in, bound->second);
      if (failed(attr))
        return failure();
      consts[in.name()] = *attr;
      if (isUnsignedDataType(in.type().tensor_type().elem_type()))
        unsignedValues.insert(in.name());
      continue;
    }
    if (failed(flattenInput(in.type(), in.name(), in.name(), args)))
      return failure();
  }

  for (const auto &kv : options.inputShapes)
    if (kv.first().contains('[') &&
        llvm::none_of(g.input(), [&](const auto &in) { return in.name() == kv.first(); }) &&
        llvm::none_of(args, [&](const FlatValue &a) { return a.external == kv.first(); }))
      return fail("--input-shape names '" + kv.first() +
                  "', which is not an element of a sequence input of the graph");
  SmallVector<Type> argTypes;
  for (const FlatValue &arg : args) {
    if (failed(checkTensorBytes("graph input '" + arg.external + "'", arg.mlirType)))
      return failure();
    argTypes.push_back(arg.mlirType);
    auto type = cast<RankedTensorType>(arg.mlirType);
    SmallVector<int64_t> shape;
    for (int64_t d : type.getShape())
      shape.push_back(ShapedType::isDynamic(d) ? -1 : d);
    signature.push_back({arg.external, arg.type->tensor_type().elem_type(),
                         (type.getElementType().getIntOrFloatBitWidth() + 7) / 8, shape});
  }
  if (!symbolicInputs.empty()) {
    needsShapes = true;
    return failure(); // errorText names the first
  }
  b.setInsertionPointToEnd(module.getBody());
  auto func = func::FuncOp::create(b, fileLoc, "main", b.getFunctionType(argTypes, {}));
  Block *entry = func.addEntryBlock();
  for (auto [i, arg] : llvm::enumerate(args)) {
    values[arg.internal] = entry->getArgument(i);
    func.setArgAttr(i, "kiln.name", b.getStringAttr(arg.external));
    StringRef tag = unsignedTag(arg.type->tensor_type().elem_type());
    if (!tag.empty()) {
      func.setArgAttr(i, "kiln.dtype", b.getStringAttr(tag));
      unsignedValues.insert(arg.internal);
    }
  }
  b.setInsertionPointToEnd(entry);

  if (failed(importNodes(g)))
    return failure();
  node = nullptr;

  SmallVector<FlatValue> outs;
  for (const auto &out : g.output())
    if (failed(flattenOutput(out.type(), out.name(), out.name(), outs)))
      return failure();
  SmallVector<Value> results;
  for (const FlatValue &out : outs) {
    Value v = materialize(out.internal);
    if (!v)
      return fail("graph output '" + out.external + "' is never produced");
    int dt = out.type->tensor_type().elem_type();
    Type declared = onnxElementType(ctx, dt);
    if (dt != 0 && declared != elementType(v))
      return fail("graph output '" + out.external + "' is declared as " +
                  onnxTypeName(dt) + " but computes another element type");
    results.push_back(v);
  }
  // Each data-dependent output's extents become an extra, hidden result that
  // the artifact points the output's dynamic dims at.
  SmallVector<std::pair<unsigned, SmallVector<int64_t>>> dynamicResults;
  for (auto [i, out] : llvm::enumerate(outs)) {
    auto it = dynamicShapes.find(out.internal);
    if (it == dynamicShapes.end())
      continue;
    SmallVector<int64_t> triples;
    for (auto [k, dim] : llvm::enumerate(it->second.dims))
      triples.append({dim, (int64_t)results.size(), (int64_t)k});
    dynamicResults.push_back({(unsigned)i, triples});
    results.push_back(it->second.extents);
  }
  func::ReturnOp::create(b, loc, results);
  func.setType(b.getFunctionType(argTypes, ValueRange(results).getTypes()));
  for (auto [i, out] : llvm::enumerate(outs)) {
    func.setResultAttr(i, "kiln.name", b.getStringAttr(out.external));
    StringRef tag = unsignedTag(out.type->tensor_type().elem_type());
    if (!tag.empty())
      func.setResultAttr(i, "kiln.dtype", b.getStringAttr(tag));
  }
  for (auto &[i, triples] : dynamicResults) {
    func.setResultAttr(i, "kiln.dynamic_dims", b.getDenseI64ArrayAttr(triples));
    for (size_t k = 1; k < triples.size(); k += 3)
      func.setResultAttr(triples[k], "kiln.extents", b.getUnitAttr());
  }
  return success();
}

bool OpContext::anyUnsigned() const {
  for (int i = 0; i < node->input_size(); ++i)
    if (isUnsigned(i))
      return true;
  return false;
}

void Importer::markUnsignedOutputs() {
  StringRef op = node->op_type();
  auto mark = [&](int i) {
    if (i < node->output_size() && !node->output(i).empty())
      unsignedValues.insert(node->output(i));
  };
  if (op == "Constant") {
    if (const auto *a = attr("value"); a && isUnsignedDataType(a->t().data_type()))
      mark(0);
    return;
  }
  if (op == "Cast" || op == "BitCast") {
    if (isUnsignedDataType(attrInt("to", 0)))
      mark(0);
    return;
  }
  if (op == "DynamicQuantizeLinear") {
    mark(0);
    mark(2);
    return;
  }
  if (op == "QuantizeLinear") {
    int64_t dt = attrInt("output_dtype", 0);
    if (hasInput(2) ? isUnsigned(2) : (dt == 0 || isUnsignedDataType(dt)))
      mark(0);
    return;
  }
  if (op == "CastLike") {
    if (isUnsigned(1))
      mark(0);
    return;
  }
  // Index- and shape-valued outputs are int64 whatever the data.
  static const llvm::StringSet<> indexOps = {"Shape", "Size", "ArgMax", "ArgMin",
                                             "NonZero", "TopK", "Unique"};
  if (indexOps.contains(op) || !anyUnsigned())
    return;
  // Otherwise an integer output of the same type as an unsigned input
  // carries unsigned data (Add, Max, Reshape, Where, ...).
  SmallVector<Type> unsignedTypes;
  for (int i = 0; i < node->input_size(); ++i)
    if (isUnsigned(i)) {
      auto c = consts.find(node->input(i));
      Type t = c != consts.end() ? c->second.getElementType()
                                 : elementType(values.lookup(node->input(i)));
      unsignedTypes.push_back(t);
    }
  for (int i = 0; i < node->output_size(); ++i) {
    if (node->output(i).empty())
      continue;
    Type t;
    if (auto c = consts.find(node->output(i)); c != consts.end())
      t = c->second.getElementType();
    else if (Value v = values.lookup(node->output(i)))
      t = elementType(v);
    if (t && !t.isInteger(1) && llvm::is_contained(unsignedTypes, t))
      mark(i);
  }
}

FailureOr<bool> Importer::tryFold() {
  // Host folding reads integers as signed: only let it move unsigned data,
  // never compute on it.
  static const llvm::StringSet<> movers = {
      "Constant", "Shape", "Size", "Identity", "Reshape", "Squeeze", "Unsqueeze",
      "Flatten", "Concat", "Gather", "Slice", "Transpose", "Expand"};
  if (anyUnsigned() && !movers.contains(node->op_type()))
    return false;
  SmallVector<DenseElementsAttr> results;
  auto folded = foldNode(*this, results);
  if (failed(folded) || !*folded)
    return folded;
  for (auto [i, attr] : llvm::enumerate(results))
    setConstOutput(i, attr);
  return true;
}

/// The subgraphs of node `n` (If branches, Loop and Scan bodies).
static SmallVector<const onnx::GraphProto *> subgraphsOf(const onnx::NodeProto &n) {
  SmallVector<const onnx::GraphProto *> r;
  for (const auto &a : n.attribute()) {
    if (a.has_g())
      r.push_back(&a.g());
    for (const auto &sg : a.graphs())
      r.push_back(&sg);
  }
  return r;
}

/// The graph inputs of `g` whose values flow into `names` (through any node
/// but Shape and Size, whose outputs depend on shapes only), in graph order;
/// empty when one of `names` comes from a sequence or optional input.
static SmallVector<std::string> graphInputsFeeding(const onnx::GraphProto &g,
                                                   ArrayRef<std::string> names) {
  // A subgraph's own inputs (a Loop body's iteration count and carried
  // values) come from the node that owns the subgraph.
  llvm::StringMap<const onnx::NodeProto *> producer;
  llvm::StringSet<> initializers;
  std::function<void(const onnx::GraphProto &)> index = [&](const onnx::GraphProto &sub) {
    for (const auto &t : sub.initializer())
      initializers.insert(t.name());
    for (const auto &n : sub.node()) {
      for (const auto &o : n.output())
        producer[o] = &n;
      for (const onnx::GraphProto *sg : subgraphsOf(n)) {
        for (const auto &in : sg->input())
          producer[in.name()] = &n;
        index(*sg);
      }
    }
  };
  index(g);
  // Outer names a subgraph reads.
  std::function<void(const onnx::GraphProto &, SmallVectorImpl<std::string> &)> captures =
      [&](const onnx::GraphProto &sub, SmallVectorImpl<std::string> &out) {
        for (const auto &n : sub.node()) {
          out.append(n.input().begin(), n.input().end());
          for (const onnx::GraphProto *sg : subgraphsOf(n))
            captures(*sg, out);
        }
      };
  llvm::StringMap<bool> isTensorInput;
  for (const auto &in : g.input())
    isTensorInput[in.name()] = in.type().has_tensor_type();
  llvm::StringSet<> seen, found;
  SmallVector<std::string> work(names.begin(), names.end());
  while (!work.empty()) {
    std::string v = work.pop_back_val();
    if (v.empty() || initializers.contains(v) || !seen.insert(v).second)
      continue;
    if (auto in = isTensorInput.find(v); in != isTensorInput.end()) {
      if (!in->second)
        return {};
      found.insert(v);
      continue;
    }
    auto p = producer.find(v);
    if (p == producer.end())
      return {};
    const onnx::NodeProto &n = *p->second;
    if (n.op_type() == "Shape" || n.op_type() == "Size")
      continue;
    work.append(n.input().begin(), n.input().end());
    for (const onnx::GraphProto *sg : subgraphsOf(n))
      captures(*sg, work);
  }
  SmallVector<std::string> ordered;
  for (const auto &in : g.input())
    if (found.contains(in.name()))
      ordered.push_back(in.name());
  return ordered;
}

llvm::Expected<OwningOpRef<ModuleOp>> Importer::run() {
  auto fail = [&](const Twine &msg) {
    return llvm::createStringError(llvm::inconvertibleErrorCode(), msg);
  };
  auto buf = llvm::MemoryBuffer::getFile(path, /*IsText=*/false,
                                         /*RequiresNullTerminator=*/false);
  if (!buf)
    return fail(path + ": cannot read file: " + buf.getError().message());
  google::protobuf::io::ArrayInputStream raw((*buf)->getBufferStart(),
                                             (int)(*buf)->getBufferSize());
  google::protobuf::io::CodedInputStream coded(&raw);
  coded.SetTotalBytesLimit(INT_MAX);
  if (!model.ParseFromCodedStream(&coded) || !coded.ConsumedEntireMessage())
    return fail(path + ": not a valid ONNX model (protobuf parse failed; the file "
                       "may be truncated or not ONNX)");
  if (!model.has_graph() || model.ir_version() <= 0)
    return fail(path + ": not a valid ONNX model (no graph or IR version)");
  for (const auto &op : model.opset_import()) {
    if (op.domain().empty() || op.domain() == "ai.onnx")
      opset = op.version();
    else
      domainOpsets[op.domain()] = op.version();
  }
  if (opset == 0)
    opset = 1;
  // Opsets 24 and 25 only added element types (float8e8m0, int2/uint2) to
  // the ops Kiln imports, and those types are rejected where they appear.
  // Opset 26 only added new operators (BitCast, CumProd). Opset 27 added
  // CausalConvWithState and LinearAttention (not supported) and changed
  // Range (f16/bf16 with a stash_type, handled by the folder); no other
  // operator changed, so every handler keeps its opset-25 semantics.
  if (opset > 27)
    return fail(path + ": opset " + Twine(opset) + " is newer than Kiln supports (27)");

  OwningOpRef<ModuleOp> owned = ModuleOp::create(FileLineColLoc::get(&ctx, path, 0, 0));
  module = *owned;
  std::string name = model.graph().name();
  if (!name.empty())
    module->setAttr("kiln.model_name", b.getStringAttr(name));
  module->setAttr("kiln.opset", b.getI64IntegerAttr(opset));
  if (failed(importGraph())) {
    if (errorText.empty())
      return fail(path + ": import failed");
    SmallVector<std::string> inputs;
    if (!needsShapes)
      inputs = graphInputsFeeding(model.graph(), neededAtFailure);
    if (inputs.empty() && !needsShapes)
      return fail(errorText);
    auto e = std::make_unique<SpecializationNeeded>();
    e->message = errorText;
    e->valueInputs = std::move(inputs);
    if (needsShapes)
      e->shapeInputs = symbolicInputs;
    e->signature = signature;
    e->externalData = llvm::any_of(model.graph().initializer(), [](const auto &t) {
      return t.data_location() == onnx::TensorProto::EXTERNAL;
    });
    return llvm::Error(std::move(e));
  }
  return std::move(owned);
}

//===----------------------------------------------------------------------===//
// Public API
//===----------------------------------------------------------------------===//

char kiln::SpecializationNeeded::ID = 0;

llvm::Expected<uint64_t> kiln::parseByteCount(StringRef text) {
  StringRef digits = text.rtrim("KMGTkmgt");
  unsigned shift = 0;
  if (digits.size() + 1 == text.size())
    shift = 10 * (1 + StringRef("KMGT").find(llvm::toUpper(text.back())));
  uint64_t n = 0;
  if (digits.empty() || digits.size() + 1 < text.size() || digits.getAsInteger(10, n) ||
      (shift && n > (UINT64_MAX >> shift)))
    return llvm::createStringError("'" + text + "' is not a byte count (a number, optionally "
                                   "followed by K, M, G or T)");
  return n << shift;
}

llvm::Error kiln::parseInputShape(StringRef spec, ImportOptions &options) {
  auto [name, dims] = spec.rsplit('=');
  if (name.empty() || dims.empty() || !spec.contains('='))
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   "--input-shape expects NAME=DxDx... (e.g. "
                                   "x=1x3x224x224), got '" + spec + "'");
  SmallVector<int64_t> shape;
  if (dims != "scalar") {
    SmallVector<StringRef> parts;
    dims.split(parts, 'x');
    for (StringRef p : parts) {
      int64_t d;
      if (p.getAsInteger(10, d) || d < 0)
        return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                       "--input-shape '" + spec + "': '" + p +
                                           "' is not a dimension");
      shape.push_back(d);
    }
  }
  options.inputShapes[name] = shape;
  return llvm::Error::success();
}

llvm::Error kiln::parseInputSequenceLength(StringRef spec, ImportOptions &options) {
  auto [name, count] = spec.split('=');
  int64_t n;
  if (name.empty() || !spec.contains('=') || count.getAsInteger(10, n) || n < 0)
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   "--input-sequence-length expects NAME=N, got '" + spec +
                                       "'");
  options.inputSequenceLengths[name] = n;
  return llvm::Error::success();
}

llvm::Error kiln::parseInputValue(StringRef spec, ImportOptions &options) {
  auto [name, value] = spec.split('=');
  if (name.empty() || !spec.contains('='))
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   "--input-value expects NAME=@FILE.pb or "
                                   "NAME=V1,V2,... , got '" + spec + "'");
  if (options.inputValues.count(name))
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   "--input-value for '" + name + "' is given twice");
  options.inputValues[name] = value.str();
  return llvm::Error::success();
}

void kiln::registerImportDialects(DialectRegistry &registry) {
  registry.insert<arith::ArithDialect, func::FuncDialect, linalg::LinalgDialect,
                  math::MathDialect, tensor::TensorDialect>();
}

llvm::Expected<OwningOpRef<ModuleOp>>
kiln::importOnnxFile(MLIRContext &context, StringRef path,
                     const ImportOptions &options) {
  DialectRegistry registry;
  registerImportDialects(registry);
  context.appendDialectRegistry(registry);
  context.loadAllAvailableDialects();
  Importer importer(context, path, options);
  return importer.run();
}

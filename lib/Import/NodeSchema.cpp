//===- NodeSchema.cpp - Nodes checked against onnx's op schemas -----------===//
#include "NodeSchema.h"

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/Twine.h"

#include <algorithm>
#include <tuple>

using namespace llvm;

namespace kiln::detail {
namespace {

struct Schema {
  const char *domain, *op;
  int since, minInputs, maxInputs, minOutputs, maxOutputs;
  const char *inputs, *outputs, *attributes, *types;
};

// Sorted by domain, op and version, as the generator writes them.
const Schema kSchemas[] = {
#define KILN_ONNX_SCHEMA(d, o, v, minI, maxI, minO, maxO, ins, outs, attrs, types)             \
  {d, o, v, minI, maxI, minO, maxO, ins, outs, attrs, types},
#include "OnnxSchemas.inc"
#undef KILN_ONNX_SCHEMA
};

const char *typeName(int type) {
  static const char *names[] = {"UNDEFINED", "FLOAT",   "INT",           "STRING",
                                "TENSOR",    "GRAPH",   "FLOATS",        "INTS",
                                "STRINGS",   "TENSORS", "GRAPHS",        "SPARSE_TENSOR",
                                "SPARSE_TENSORS", "TYPE_PROTO", "TYPE_PROTOS"};
  return type >= 0 && type < static_cast<int>(std::size(names)) ? names[type] : "?";
}

std::string dataTypeName(int t) {
  return onnx::TensorProto::DataType_IsValid(t)
             ? onnx::TensorProto::DataType_Name(static_cast<onnx::TensorProto::DataType>(t))
             : "data type " + std::to_string(t);
}

/// Why the inputs' element types do not fit `s`: each against the tensor
/// types of its type parameter (or the one type its formal names), and the
/// inputs of one parameter against each other.
std::string checkInputTypes(const onnx::NodeProto &n, const Schema &s, ArrayRef<StringRef> formal,
                            function_ref<std::optional<int>(unsigned)> typeOf,
                            const std::string &at) {
  SmallVector<StringRef> params;
  StringRef(s.types).split(params, ';', -1, /*KeepEmpty=*/false);
  StringMap<std::pair<int, int>> bound; // parameter -> (type, first input)
  for (int i = 0; i < n.input_size() && !formal.empty(); ++i) {
    StringRef f = formal[std::min<size_t>(i, formal.size() - 1)];
    if (n.input(i).empty() || (i >= static_cast<int>(formal.size()) && !f.starts_with("*")))
      continue;
    auto [name, key] = f.ltrim("?*").split(':');
    bool heterogeneous = key.consume_back("~");
    std::optional<int> t = typeOf(i);
    if (key.empty() || !t)
      continue;
    StringRef codes = key.starts_with("=") ? key.drop_front() : StringRef();
    for (StringRef p : params)
      if (p.split('=').first == key)
        codes = p.split('=').second;
    SmallVector<StringRef> allowed;
    codes.split(allowed, '/', -1, /*KeepEmpty=*/false);
    if (allowed.empty())
      continue;
    if (llvm::none_of(allowed, [&](StringRef c) { return c == std::to_string(*t); })) {
      std::string names;
      for (StringRef c : allowed)
        names += (names.empty() ? "" : ", ") + dataTypeName(std::stoi(c.str()));
      return "input " + std::to_string(i) + " ('" + name.str() + "') is " + dataTypeName(*t) +
             ", which the op does not take" + at + "; it takes " +
             (key.starts_with("=") ? "" : key.str() + " in ") + "{" + names + "}";
    }
    if (key.starts_with("=") || heterogeneous)
      continue;
    auto [first, inserted] = bound.try_emplace(key, *t, i);
    if (!inserted && first->second.first != *t) {
      int j = first->second.second;
      StringRef other = formal[std::min<size_t>(j, formal.size() - 1)].ltrim("?*").split(':').first;
      return "inputs " + std::to_string(j) + " ('" + other.str() + "') and " + std::to_string(i) +
             " ('" + name.str() + "') are both of type " + key.str() + at + ", but are " +
             dataTypeName(first->second.first) + " and " + dataTypeName(*t);
    }
  }
  return "";
}

std::string count(int n, StringRef what) {
  return std::to_string(n) + " " + what.str() + (n == 1 ? "" : "s");
}

std::string range(int lo, int hi, StringRef what) {
  if (lo == hi)
    return count(lo, what);
  if (hi == 2147483647)
    return "at least " + count(lo, what);
  return std::to_string(lo) + " to " + count(hi, what);
}

} // namespace

std::string checkNodeSchema(const onnx::NodeProto &n, StringRef domain, int64_t opset,
                            function_ref<std::optional<int>(unsigned)> typeOf) {
  auto key = [](const Schema &s) { return std::make_tuple(StringRef(s.domain), StringRef(s.op), s.since); };
  auto after = std::upper_bound(std::begin(kSchemas), std::end(kSchemas),
                                std::make_tuple(domain, StringRef(n.op_type()), opset),
                                [&](const auto &k, const Schema &s) { return k < key(s); });
  if (after == std::begin(kSchemas))
    return "";
  const Schema &s = *std::prev(after);
  if (StringRef(s.domain) != domain || StringRef(s.op) != n.op_type())
    return "";
  std::string at = " (onnx's schema since opset " + std::to_string(s.since) + ")";

  if (n.input_size() < s.minInputs || n.input_size() > s.maxInputs)
    return "takes " + range(s.minInputs, s.maxInputs, "input") + at + ", got " +
           std::to_string(n.input_size());
  if (n.output_size() < s.minOutputs || n.output_size() > s.maxOutputs)
    return "has " + range(s.minOutputs, s.maxOutputs, "output") + at + ", got " +
           std::to_string(n.output_size());
  SmallVector<StringRef> formal;
  StringRef(s.inputs).split(formal, ',', -1, /*KeepEmpty=*/false);
  for (auto [i, f] : llvm::enumerate(formal))
    if (!f.starts_with("?") && !f.starts_with("*") && static_cast<int>(i) < n.input_size() &&
        n.input(i).empty())
      return "input " + std::to_string(i) + " ('" + f.split(':').first.str() + "') is required" +
             at + " but left empty";
  if (std::string why = checkInputTypes(n, s, formal, typeOf, at); !why.empty())
    return why;

  SmallVector<StringRef> attrs;
  StringRef(s.attributes).split(attrs, ',', -1, /*KeepEmpty=*/false);
  auto nameOf = [](StringRef a) { return a.split('=').first; };
  for (const onnx::AttributeProto &a : n.attribute()) {
    const StringRef *known =
        llvm::find_if(attrs, [&](StringRef d) { return nameOf(d) == a.name(); });
    if (known == attrs.end()) {
      std::string names;
      for (StringRef d : attrs)
        names += (names.empty() ? "" : ", ") + nameOf(d).str();
      return "has attribute '" + a.name() + "', which the op does not define" + at +
             (names.empty() ? "; it takes none" : "; it takes " + names);
    }
    int want = 0;
    known->split('=').second.rtrim('!').getAsInteger(10, want);
    if (want && a.type() && a.type() != want)
      return "attribute '" + a.name() + "' is " + typeName(a.type()) + ", the op expects " +
             typeName(want) + at;
  }
  for (StringRef d : attrs)
    if (d.ends_with("!") && llvm::none_of(n.attribute(), [&](const onnx::AttributeProto &a) {
          return a.name() == nameOf(d);
        }))
      return "attribute '" + nameOf(d).str() + "' is required" + at + " but missing";
  return "";
}

} // namespace kiln::detail

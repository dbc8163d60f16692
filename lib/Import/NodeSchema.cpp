//===- NodeSchema.cpp - Nodes checked against onnx's op schemas -----------===//
#include "NodeSchema.h"

#include "llvm/ADT/STLExtras.h"
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
  const char *inputs, *outputs, *attributes;
};

// Sorted by domain, op and version, as the generator writes them.
const Schema kSchemas[] = {
#define KILN_ONNX_SCHEMA(d, o, v, minI, maxI, minO, maxO, ins, outs, attrs)                    \
  {d, o, v, minI, maxI, minO, maxO, ins, outs, attrs},
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

std::string checkNodeSchema(const onnx::NodeProto &n, StringRef domain, int64_t opset) {
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
      return "input " + std::to_string(i) + " ('" + f.str() + "') is required" + at +
             " but left empty";

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

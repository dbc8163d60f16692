//===- Subgraphs.cpp - Scopes, sequences and optionals --------------------===//
//
// Kiln compiles static shapes ahead of time, so control flow is resolved
// while importing: If inlines the branch a constant condition takes (or
// selects elementwise between both branches), Loop and Scan unroll with a
// compile-time trip count, sequences are compile-time lists of tensors and
// optionals have compile-time presence. Subgraphs are imported in a nested
// scope that sees the outer names, as ONNX requires. Slicing and stacking
// decompose into ordinary ONNX nodes (Gather, Unsqueeze, Concat, ...), so
// they fold on constants and compile like any other node otherwise.
//
// This file holds the importer's side (scopes, names, flattening) and the
// helpers the handlers share; the handlers (If, Loop, Scan, Sequence*,
// Optional*, ...) are in the DefaultDomain*.cpp file of their name.
//
//===----------------------------------------------------------------------===//
#include "Builders.h"

#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/MathExtras.h"

#include <cmath>
#include <functional>
#include <map>
#include <numeric>

using namespace mlir;
using namespace kiln::detail;
namespace onnx = kiln::onnx;

using utils::IteratorType;

/// Internal names start with a control character, which no ONNX name has
/// (names are C identifiers). A subgraph's results get such names, so they
/// outlive the subgraph's scope.
static constexpr StringLiteral kFreshPrefix = "\x01";

// Scopes and names

bool Importer::isDefined(StringRef name) const {
  return values.count(name) || consts.count(name) || sequences.count(name) ||
         optionals.count(name);
}

void Importer::alias(StringRef fromRef, StringRef toRef) {
  // Copies: the maps below may rehash while `to` is inserted.
  std::string from = fromRef.str(), to = toRef.str();
  if (from == to)
    return;
  values.erase(to);
  consts.erase(to);
  sequences.erase(to);
  optionals.erase(to);
  unsignedValues.erase(to);
  // A constant may also have a materialized value; keep it a constant so
  // later nodes still fold.
  if (auto c = consts.find(from); c != consts.end()) {
    DenseElementsAttr attr = c->second;
    consts[to] = attr;
  } else if (auto v = values.find(from); v != values.end()) {
    Value val = v->second;
    values[to] = val;
  } else if (auto s = sequences.find(from); s != sequences.end()) {
    SmallVector<std::string> elems = s->second;
    sequences[to] = std::move(elems);
  } else if (auto o = optionals.find(from); o != optionals.end()) {
    std::string contents = o->second;
    optionals[to] = contents;
  }
  if (unsignedValues.count(from))
    unsignedValues.insert(to);
}

std::string Importer::freshName() {
  return (kFreshPrefix + Twine(freshCount++)).str();
}

std::string Importer::defineConst(DenseElementsAttr value) {
  std::string name = freshName();
  consts[name] = value;
  return name;
}

std::string Importer::defineValue(Value value) {
  std::string name = freshName();
  values[name] = value;
  return name;
}

std::optional<DenseElementsAttr> Importer::constOf(StringRef name) const {
  auto it = consts.find(name);
  if (it == consts.end())
    return std::nullopt;
  return it->second;
}

FailureOr<std::string> Importer::emitNode(StringRef opType, ArrayRef<std::string> inputs,
                                          function_ref<void(onnx::NodeProto &)> setAttrs) {
  const onnx::NodeProto *outer = node;
  Location outerLoc = loc;
  int64_t outerOpset = opset;
  onnx::NodeProto n;
  n.set_op_type(opType.str());
  std::string outerName = !outer                   ? std::string("kiln")
                          : outer->name().empty() ? outer->op_type()
                                                  : outer->name();
  n.set_name(outerName + "/" + opType.str());
  for (const std::string &in : inputs)
    n.add_input(in);
  std::string out = freshName();
  n.add_output(out);
  if (setAttrs)
    setAttrs(n);
  opset = 13;
  LogicalResult result = importNode(n);
  opset = outerOpset;
  node = outer;
  loc = outerLoc;
  if (failed(result))
    return failure();
  return out;
}

FailureOr<SmallVector<std::string>> Importer::importSubgraph(const onnx::GraphProto &g,
                                                             ArrayRef<std::string> args) {
  if ((int)args.size() != g.input_size())
    return fail(llvm::formatv("subgraph '{0}' declares {1} inputs, the node passes {2}",
                              g.name(), g.input_size(), args.size())
                    .str());
  const onnx::NodeProto *outer = node;
  Location outerLoc = loc;
  auto savedValues = values;
  auto savedConsts = consts;
  auto savedUnsigned = unsignedValues;
  auto savedSequences = sequences;
  auto savedOptionals = optionals;

  for (auto [i, in] : llvm::enumerate(g.input()))
    alias(args[i], in.name());
  LogicalResult result = success();
  for (const auto &init : g.initializer()) {
    auto attr = tensorToAttr(init);
    if (failed(attr)) {
      result = failure();
      break;
    }
    consts[init.name()] = *attr;
    if (isUnsignedDataType(init.data_type()))
      unsignedValues.insert(init.name());
  }
  if (succeeded(result))
    result = importNodes(g);
  if (failed(result) && outer && !errorText.empty())
    errorText += " (inside graph attribute '" + g.name() + "' of the enclosing " +
                 outer->op_type() + ")";
  node = outer;
  loc = outerLoc;
  SmallVector<std::string> results;
  for (const auto &out : g.output()) {
    if (failed(result))
      break;
    if (!isDefined(out.name())) {
      result = fail("subgraph '" + g.name() + "' output '" + out.name() +
                    "' is never produced");
      break;
    }
    if (auto it = dynamicShapes.find(out.name()); it != dynamicShapes.end()) {
      result = fail("subgraph '" + g.name() + "' output '" + out.name() +
                    "' has a data-dependent shape (computed by " + it->second.producer +
                    "); Kiln supports such values only as graph outputs");
      break;
    }
    results.push_back(freshName());
    alias(out.name(), results.back());
  }

  // Back to the outer scope, keeping what the results hold: their fresh
  // names and, for sequences and optionals, their elements' names.
  SmallVector<std::string> keep(results);
  for (size_t i = 0; i < keep.size(); ++i) {
    if (auto it = sequences.find(keep[i]); it != sequences.end())
      keep.append(it->second.begin(), it->second.end());
    if (auto it = optionals.find(keep[i]); it != optionals.end() && !it->second.empty())
      keep.push_back(it->second);
  }
  auto restore = [&](auto &current, auto &saved) {
    for (const std::string &name : keep)
      if (auto it = current.find(name); it != current.end())
        saved[name] = it->second;
    current = std::move(saved);
  };
  restore(values, savedValues);
  restore(consts, savedConsts);
  restore(sequences, savedSequences);
  restore(optionals, savedOptionals);
  for (const std::string &name : keep)
    if (unsignedValues.count(name))
      savedUnsigned.insert(name);
  unsignedValues = std::move(savedUnsigned);
  if (failed(result))
    return failure();
  return results;
}

// Graph inputs and outputs

LogicalResult Importer::flattenInput(const onnx::TypeProto &type, const std::string &external,
                                     const std::string &internal,
                                     SmallVectorImpl<FlatValue> &flat) {
  if (type.has_sequence_type()) {
    auto n = options.inputSequenceLengths.find(external);
    if (n == options.inputSequenceLengths.end())
      return fail("graph input '" + external +
                  "' is a sequence: give its length with --input-sequence-length=" +
                  external + "=N (Kiln passes it as inputs " + external + "[0], " +
                  external + "[1], ...)");
    SmallVector<std::string> elems;
    for (int64_t i = 0; i < n->second; ++i) {
      elems.push_back(freshName());
      if (failed(flattenInput(type.sequence_type().elem_type(),
                              external + "[" + std::to_string(i) + "]", elems.back(), flat)))
        return failure();
    }
    sequences[internal] = std::move(elems);
    return success();
  }
  if (type.has_optional_type()) {
    if (options.absentInputs.count(external)) {
      optionals[internal] = "";
      return success();
    }
    std::string contents = freshName();
    optionals[internal] = contents;
    return flattenInput(type.optional_type().elem_type(), external, contents, flat);
  }
  onnx::ValueInfoProto info;
  info.set_name(external);
  *info.mutable_type() = type;
  auto t = valueInfoType(info, /*isInput=*/true);
  if (failed(t))
    return failure();
  flat.push_back({external, internal, &type, *t});
  return success();
}

LogicalResult Importer::flattenOutput(const onnx::TypeProto &type, const std::string &external,
                                      const std::string &internal,
                                      SmallVectorImpl<FlatValue> &flat) {
  // A present optional is returned as its contents.
  if (type.has_optional_type()) {
    auto o = optionals.find(internal);
    if (o == optionals.end())
      return flattenOutput(type.optional_type().elem_type(), external, internal, flat);
    if (o->second.empty())
      return success();
    std::string contents = o->second;
    return flattenOutput(type.optional_type().elem_type(), external, contents, flat);
  }
  if (type.has_sequence_type()) {
    auto s = sequences.find(internal);
    if (s == sequences.end())
      return fail("graph output '" + external + "' is declared a sequence but is not one");
    SmallVector<std::string> elems = s->second;
    for (auto [i, e] : llvm::enumerate(elems))
      if (failed(flattenOutput(type.sequence_type().elem_type(),
                               external + "[" + std::to_string(i) + "]", e, flat)))
        return failure();
    return success();
  }
  if (!type.has_tensor_type())
    return fail("graph output '" + external + "' is not a tensor, sequence or optional");
  if (sequences.count(internal) || optionals.count(internal))
    return fail("graph output '" + external +
                "' is declared a tensor but is a sequence or an optional");
  flat.push_back({external, internal, &type, Type()});
  return success();
}

void kiln::detail::setIntAttr(onnx::NodeProto &n, StringRef name, int64_t v) {
  onnx::AttributeProto *a = n.add_attribute();
  a->set_name(name.str());
  a->set_type(onnx::AttributeProto::INT);
  a->set_i(v);
}

DenseElementsAttr kiln::detail::i64Attr(OpContext &im, ArrayRef<int64_t> shape,
                                 ArrayRef<int64_t> vals) {
  return DenseElementsAttr::get(RankedTensorType::get(shape, im.b.getI64Type()), vals);
}

DenseElementsAttr kiln::detail::boolAttr(OpContext &im, bool v) {
  return DenseElementsAttr::get(RankedTensorType::get({}, im.b.getI1Type()), v);
}

RankedTensorType kiln::detail::tensorType(Importer &im, StringRef name) {
  if (auto c = im.constOf(name))
    return cast<RankedTensorType>(c->getType());
  return cast<RankedTensorType>(im.valueOf(name).getType());
}

bool kiln::detail::isTensor(Importer &im, StringRef name) {
  return !im.sequences.count(name) && !im.optionals.count(name);
}

const onnx::GraphProto *kiln::detail::graphAttr(OpContext &im, StringRef name) {
  const onnx::AttributeProto *a = im.attr(name);
  if (!a || !a->has_g()) {
    im.fail("missing graph attribute '" + name + "'");
    return nullptr;
  }
  return &a->g();
}

FailureOr<int64_t> kiln::detail::constScalar(OpContext &im, unsigned i, StringRef what) {
  // (Kiln resolves control flow and sequences while compiling.)
  auto c = im.requireConst(i, what);
  if (failed(c))
    return failure();
  auto h = HostTensor::fromAttr(*c);
  if (!h || h->numel() != 1)
    return im.fail("input '" + what + "' must hold exactly one element");
  return (int64_t)h->get(0);
}

FailureOr<std::string> kiln::detail::stack(Importer &im, ArrayRef<std::string> elems, int64_t axis) {
  std::string axes = im.defineConst(i64Attr(im, {1}, {axis}));
  SmallVector<std::string> parts;
  for (const std::string &e : elems) {
    auto u = im.emitNode("Unsqueeze", {e, axes});
    if (failed(u))
      return failure();
    parts.push_back(*u);
  }
  if (parts.size() == 1)
    return parts[0];
  return im.emitNode("Concat", parts,
                     [&](onnx::NodeProto &n) { setIntAttr(n, "axis", axis); });
}

FailureOr<std::string> kiln::detail::take(Importer &im, StringRef name, int64_t index, int64_t axis) {
  std::string axes = im.defineConst(i64Attr(im, {1}, {axis}));
  auto slice = im.emitNode("Slice", {name.str(), im.defineConst(i64Attr(im, {1}, {index})),
                                     im.defineConst(i64Attr(im, {1}, {index + 1})), axes});
  if (failed(slice))
    return failure();
  return im.emitNode("Squeeze", {*slice, axes});
}

void kiln::detail::setOutputs(Importer &im, ArrayRef<std::string> names) {
  for (auto [i, name] : llvm::enumerate(names))
    if (im.wantsOutput(i))
      im.alias(name, im.node->output(i));
}

FailureOr<SmallVector<std::string>> kiln::detail::sequenceInput(Importer &im, unsigned i) {
  if (!im.isSequence(i))
    return im.fail("input " + Twine(i) + " must be a sequence");
  return im.sequences.lookup(im.node->input(i));
}

std::string kiln::detail::elementOf(Importer &im, StringRef name) {
  std::string e = im.freshName();
  im.alias(name, e);
  return e;
}

// Registration

bool kiln::detail::acceptsContainers(StringRef opType) {
  static const llvm::StringSet<> ops = {
      "Identity",        "If",          "Loop",           "Scan",
      "SequenceInsert",  "SequenceAt",  "SequenceErase",  "SequenceLength",
      "SequenceMap",     "ConcatFromSequence", "Optional", "OptionalHasElement",
      "OptionalGetElement"};
  return ops.contains(opType);
}

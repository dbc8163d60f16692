//===- OnnxControlFlow.cpp - If, Loop, Scan, sequences and optionals ------===//
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
//===----------------------------------------------------------------------===//
#include "Importer.h"

#include "llvm/Support/FormatVariadic.h"

using namespace mlir;
using namespace kiln::detail;
namespace onnx = kiln::onnx;

/// Unrolling trades code size for loop support; past this many iterations
/// the model needs real loops, which Kiln does not have.
static constexpr int64_t kMaxUnroll = 4096;

/// Internal names start with a control character, which no ONNX name has
/// (names are C identifiers). A subgraph's results get such names, so they
/// outlive the subgraph's scope.
static constexpr StringLiteral kFreshPrefix = "\x01";

//===----------------------------------------------------------------------===//
// Scopes and names
//===----------------------------------------------------------------------===//

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

//===----------------------------------------------------------------------===//
// Graph inputs and outputs
//===----------------------------------------------------------------------===//

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

//===----------------------------------------------------------------------===//
// Helpers
//===----------------------------------------------------------------------===//

static void setIntAttr(onnx::NodeProto &n, StringRef name, int64_t v) {
  onnx::AttributeProto *a = n.add_attribute();
  a->set_name(name.str());
  a->set_type(onnx::AttributeProto::INT);
  a->set_i(v);
}

static DenseElementsAttr i64Attr(Importer &im, ArrayRef<int64_t> shape,
                                 ArrayRef<int64_t> vals) {
  return DenseElementsAttr::get(RankedTensorType::get(shape, im.b.getI64Type()), vals);
}

static DenseElementsAttr boolAttr(Importer &im, bool v) {
  return DenseElementsAttr::get(RankedTensorType::get({}, im.b.getI1Type()), v);
}

/// The type of tensor `name` (a constant or a runtime value).
static RankedTensorType tensorType(Importer &im, StringRef name) {
  if (auto c = im.constOf(name))
    return cast<RankedTensorType>(c->getType());
  return cast<RankedTensorType>(im.valueOf(name).getType());
}

static bool isTensor(Importer &im, StringRef name) {
  return !im.sequences.count(name) && !im.optionals.count(name);
}

static const onnx::GraphProto *graphAttr(Importer &im, StringRef name) {
  const onnx::AttributeProto *a = im.attr(name);
  if (!a || !a->has_g()) {
    im.fail("missing graph attribute '" + name + "'");
    return nullptr;
  }
  return &a->g();
}

/// One element of compile-time input `i` (a condition, a count, a position),
/// or an error saying why Kiln needs it at compile time.
static FailureOr<int64_t> constScalar(Importer &im, unsigned i, StringRef what) {
  // (Kiln resolves control flow and sequences while compiling.)
  auto c = im.requireConst(i, what);
  if (failed(c))
    return failure();
  auto h = HostTensor::fromAttr(*c);
  if (!h || h->numel() != 1)
    return im.fail("input '" + what + "' must hold exactly one element");
  return (int64_t)h->get(0);
}

/// Stacks same-shaped tensors along a new axis `axis`.
static FailureOr<std::string> stack(Importer &im, ArrayRef<std::string> elems, int64_t axis) {
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

/// Element `index` of tensor `name` along `axis`, the axis removed. A Slice
/// (an affine read, which fuses) and a Squeeze (a view), not a Gather.
static FailureOr<std::string> take(Importer &im, StringRef name, int64_t index, int64_t axis) {
  std::string axes = im.defineConst(i64Attr(im, {1}, {axis}));
  auto slice = im.emitNode("Slice", {name.str(), im.defineConst(i64Attr(im, {1}, {index})),
                                     im.defineConst(i64Attr(im, {1}, {index + 1})), axes});
  if (failed(slice))
    return failure();
  return im.emitNode("Squeeze", {*slice, axes});
}

static void setOutputs(Importer &im, ArrayRef<std::string> names) {
  for (auto [i, name] : llvm::enumerate(names))
    if (im.wantsOutput(i))
      im.alias(name, im.node->output(i));
}

//===----------------------------------------------------------------------===//
// If
//===----------------------------------------------------------------------===//

static LogicalResult handleIf(Importer &im) {
  const onnx::GraphProto *thenG = graphAttr(im, "then_branch");
  const onnx::GraphProto *elseG = graphAttr(im, "else_branch");
  if (!thenG || !elseG)
    return failure();
  if (thenG->output_size() != elseG->output_size() ||
      (int)im.numOutputs() > thenG->output_size())
    return im.fail(llvm::formatv("the branches have {0} and {1} outputs, the node {2}",
                                 thenG->output_size(), elseG->output_size(), im.numOutputs())
                       .str());
  if (auto c = im.constInput(0)) {
    auto h = HostTensor::fromAttr(*c);
    if (!h || h->numel() != 1)
      return im.fail("the condition must hold exactly one element");
    auto outs = im.importSubgraph(h->get(0) != 0 ? *thenG : *elseG, {});
    if (failed(outs))
      return failure();
    setOutputs(im, *outs);
    return success();
  }

  // Branches have no side effects, so computing both and selecting is exact.
  auto thenOuts = im.importSubgraph(*thenG, {});
  if (failed(thenOuts))
    return failure();
  auto elseOuts = im.importSubgraph(*elseG, {});
  if (failed(elseOuts))
    return failure();
  if (im.inputType(0).getNumElements() != 1)
    return im.fail("the condition must hold exactly one element");
  auto cond = im.emitNode("Reshape", {im.node->input(0), im.defineConst(i64Attr(im, {0}, {}))});
  if (failed(cond))
    return failure();
  for (unsigned i = 0; i < im.numOutputs(); ++i) {
    if (!im.wantsOutput(i))
      continue;
    StringRef t = (*thenOuts)[i], e = (*elseOuts)[i];
    if (!isTensor(im, t) || !isTensor(im, e)) {
      im.noteRequired(0);
      return im.fail("output " + Twine(i) +
                     " is a sequence or an optional and the condition is only known "
                     "at run time; Kiln needs the condition at compile time for that");
    }
    RankedTensorType tt = tensorType(im, t), et = tensorType(im, e);
    if (tt != et) {
      std::string ts, es;
      llvm::raw_string_ostream(ts) << tt;
      llvm::raw_string_ostream(es) << et;
      return im.fail("output " + Twine(i) + " is " + ts + " in the then branch and " + es +
                     " in the else branch; with a condition known only at run time "
                     "Kiln needs both branches to agree");
    }
    auto w = im.emitNode("Where", {*cond, t.str(), e.str()});
    if (failed(w))
      return failure();
    im.alias(*w, im.node->output(i));
  }
  return success();
}

//===----------------------------------------------------------------------===//
// Loop
//===----------------------------------------------------------------------===//

static LogicalResult handleLoop(Importer &im) {
  const onnx::GraphProto *body = graphAttr(im, "body");
  if (!body)
    return failure();
  int nCarried = im.node->input_size() - 2;
  if (nCarried < 0)
    return im.fail("Loop needs the inputs M and cond (either may be empty)");
  int nScan = body->output_size() - 1 - nCarried;
  if (body->input_size() != 2 + nCarried || nScan < 0)
    return im.fail(llvm::formatv("the body has {0} inputs and {1} outputs for {2} loop-carried "
                                 "values",
                                 body->input_size(), body->output_size(), nCarried)
                       .str());
  if ((int)im.numOutputs() > nCarried + nScan)
    return im.fail("the node has more outputs than the body produces");

  int64_t trip = std::numeric_limits<int64_t>::max();
  if (im.hasInput(0)) {
    auto m = constScalar(im, 0, "M");
    if (failed(m))
      return failure();
    trip = *m;
  }
  bool cond = true;
  if (im.hasInput(1)) {
    auto c = constScalar(im, 1, "cond");
    if (failed(c))
      return failure();
    cond = *c != 0;
  }
  SmallVector<std::string> carried;
  for (int i = 0; i < nCarried; ++i) {
    if (!im.hasInput(2 + i))
      return im.fail("loop-carried input " + Twine(i) + " is missing");
    carried.push_back(im.node->input(2 + i));
  }

  SmallVector<SmallVector<std::string>> scans(nScan);
  for (int64_t it = 0; it < trip && cond; ++it) {
    // Without a condition the trip count is exact: fail before unrolling.
    if (it == kMaxUnroll || (it == 0 && !im.hasInput(1) && trip > kMaxUnroll))
      return im.fail("the loop runs more than " + Twine(kMaxUnroll) +
                     " iterations; Kiln unrolls loops at compile time and stops there");
    SmallVector<std::string> args = {im.defineConst(i64Attr(im, {}, {it})),
                                     im.defineConst(boolAttr(im, true))};
    args.append(carried.begin(), carried.end());
    auto outs = im.importSubgraph(*body, args);
    if (failed(outs))
      return failure();
    auto c = im.constOf((*outs)[0]);
    auto h = c ? HostTensor::fromAttr(*c) : std::nullopt;
    if (!h || h->numel() != 1) {
      // The condition comes from the loop's inputs, through the body.
      for (unsigned k = 0; k < (unsigned)im.node->input_size(); ++k)
        im.noteRequired(k);
      return im.fail("the body computes the loop condition at run time; Kiln unrolls "
                     "loops and needs it known at compile time");
    }
    cond = h->get(0) != 0;
    carried.assign(outs->begin() + 1, outs->begin() + 1 + nCarried);
    for (int k = 0; k < nScan; ++k)
      scans[k].push_back((*outs)[1 + nCarried + k]);
  }

  SmallVector<std::string> results(carried);
  for (int k = 0; k < nScan; ++k) {
    if (!im.wantsOutput(nCarried + k)) {
      results.push_back("");
      continue;
    }
    if (scans[k].empty())
      return im.fail("the loop runs no iteration, so its scan output " + Twine(k) +
                     " has no known shape");
    for (StringRef s : scans[k])
      if (!isTensor(im, s))
        return im.fail("scan output " + Twine(k) + " is not a tensor");
    auto s = stack(im, scans[k], 0);
    if (failed(s))
      return failure();
    results.push_back(*s);
  }
  setOutputs(im, results);
  return success();
}

//===----------------------------------------------------------------------===//
// Scan
//===----------------------------------------------------------------------===//

namespace {
struct ScanSpec {
  SmallVector<int64_t> inAxes, inDirs, outAxes, outDirs;
};
} // namespace

/// Runs `body` over the scan inputs, threading `states`; on return `states`
/// holds the final states and `outs` the stacked scan outputs.
static LogicalResult unrollScan(Importer &im, const onnx::GraphProto &body,
                                SmallVectorImpl<std::string> &states,
                                ArrayRef<std::string> scanIns, const ScanSpec &spec,
                                SmallVectorImpl<std::string> &outs) {
  int64_t nStates = states.size(), nIns = scanIns.size();
  int64_t nOuts = body.output_size() - nStates;
  if (body.input_size() != nStates + nIns || nOuts < 0)
    return im.fail(llvm::formatv("the body has {0} inputs and {1} outputs for {2} states and "
                                 "{3} scan inputs",
                                 body.input_size(), body.output_size(), nStates, nIns)
                       .str());
  if (nIns == 0)
    return im.fail("Scan needs at least one scan input");
  int64_t length = -1;
  SmallVector<int64_t> axes;
  for (int64_t j = 0; j < nIns; ++j) {
    if (!isTensor(im, scanIns[j]))
      return im.fail("scan input " + Twine(j) + " is not a tensor");
    ArrayRef<int64_t> shape = tensorType(im, scanIns[j]).getShape();
    auto axis = im.normalizeAxis(spec.inAxes[j], shape.size(), "scan input axis");
    if (failed(axis))
      return failure();
    axes.push_back(*axis);
    if (length >= 0 && shape[*axis] != length)
      return im.fail("the scan inputs have different lengths along their scan axes");
    length = shape[*axis];
  }
  if (length == 0)
    return im.fail("the scan inputs are empty, so the scan outputs have no known shape");
  if (length > kMaxUnroll)
    return im.fail("the scan runs " + Twine(length) + " iterations; Kiln unrolls scans at "
                   "compile time and stops at " + Twine(kMaxUnroll));

  SmallVector<SmallVector<std::string>> perStep(nOuts);
  for (int64_t t = 0; t < length; ++t) {
    SmallVector<std::string> args(states.begin(), states.end());
    for (int64_t j = 0; j < nIns; ++j) {
      auto slice = take(im, scanIns[j], spec.inDirs[j] ? length - 1 - t : t, axes[j]);
      if (failed(slice))
        return failure();
      args.push_back(*slice);
    }
    auto res = im.importSubgraph(body, args);
    if (failed(res))
      return failure();
    states.assign(res->begin(), res->begin() + nStates);
    for (int64_t k = 0; k < nOuts; ++k)
      perStep[k].push_back((*res)[nStates + k]);
  }
  for (int64_t k = 0; k < nOuts; ++k) {
    if (spec.outDirs[k])
      std::reverse(perStep[k].begin(), perStep[k].end());
    if (!isTensor(im, perStep[k][0]))
      return im.fail("scan output " + Twine(k) + " is not a tensor");
    int64_t rank = tensorType(im, perStep[k][0]).getRank() + 1;
    auto axis = im.normalizeAxis(spec.outAxes[k], rank, "scan output axis");
    if (failed(axis))
      return failure();
    auto s = stack(im, perStep[k], *axis);
    if (failed(s))
      return failure();
    outs.push_back(*s);
  }
  return success();
}

/// Reads list attribute `name` with `n` entries, all zero by default;
/// `flags` lists hold directions, 0 or 1.
static FailureOr<SmallVector<int64_t>> listAttr(Importer &im, StringRef name, int64_t n,
                                                bool flags) {
  auto v = im.attrInts(name).value_or(SmallVector<int64_t>(n, 0));
  if ((int64_t)v.size() != n)
    return im.fail(llvm::formatv("attribute '{0}' has {1} entries, expected {2}", name,
                                 v.size(), n)
                       .str());
  for (int64_t d : v)
    if (flags && d != 0 && d != 1)
      return im.fail("attribute '" + name + "' entries must be 0 or 1");
  return v;
}

static LogicalResult handleScan(Importer &im) {
  const onnx::GraphProto *body = graphAttr(im, "body");
  if (!body)
    return failure();
  const onnx::AttributeProto *m = im.attr("num_scan_inputs");
  if (!m)
    return im.fail("missing attribute 'num_scan_inputs'");
  int64_t nIns = m->i();
  // Opset 8 has a leading optional sequence_lens input and a batch axis 0.
  int64_t first = im.opset < 9 ? 1 : 0;
  int64_t nStates = im.node->input_size() - first - nIns;
  if (nIns <= 0 || nStates < 0)
    return im.fail("num_scan_inputs " + Twine(nIns) + " does not fit the node's inputs");
  int64_t nOuts = body->output_size() - nStates;
  if (nOuts < 0 || (int64_t)im.numOutputs() > nStates + nOuts)
    return im.fail("the node's outputs do not match the body's");
  SmallVector<std::string> states, ins;
  for (int64_t i = 0; i < nStates + nIns; ++i) {
    if (!im.hasInput(first + i))
      return im.fail("input " + Twine(first + i) + " is missing");
    (i < nStates ? states : ins).push_back(im.node->input(first + i));
  }

  ScanSpec spec;
  if (im.opset >= 9) {
    auto inAxes = listAttr(im, "scan_input_axes", nIns, false);
    auto inDirs = listAttr(im, "scan_input_directions", nIns, true);
    auto outAxes = listAttr(im, "scan_output_axes", nOuts, false);
    auto outDirs = listAttr(im, "scan_output_directions", nOuts, true);
    if (failed(inAxes) || failed(inDirs) || failed(outAxes) || failed(outDirs))
      return failure();
    spec = {*inAxes, *inDirs, *outAxes, *outDirs};
    SmallVector<std::string> outs;
    if (failed(unrollScan(im, *body, states, ins, spec, outs)))
      return failure();
    states.append(outs.begin(), outs.end());
    setOutputs(im, states);
    return success();
  }

  // Opset 8: scan every batch entry (axis 0) along its axis 1, then stack.
  auto dirs = listAttr(im, "directions", nIns, true);
  if (failed(dirs))
    return failure();
  if (llvm::is_contained(*dirs, 1))
    return im.fail("reverse directions of opset-8 Scan are not supported");
  spec = {SmallVector<int64_t>(nIns, 0), *dirs, SmallVector<int64_t>(nOuts, 0),
          SmallVector<int64_t>(nOuts, 0)};
  for (StringRef name : llvm::concat<std::string>(states, ins))
    if (!isTensor(im, name) || tensorType(im, name).getRank() < 1)
      return im.fail("opset-8 Scan inputs must be tensors with a batch axis");
  int64_t batch = tensorType(im, ins[0]).getDimSize(0);
  int64_t length = tensorType(im, ins[0]).getRank() > 1 ? tensorType(im, ins[0]).getDimSize(1)
                                                        : -1;
  if (im.hasInput(0)) {
    auto lens = im.constInts(0, "sequence_lens");
    if (failed(lens))
      return failure();
    for (int64_t l : *lens)
      if (l != length)
        return im.fail("sequence_lens shorter than the scan axis are not supported");
  }
  SmallVector<SmallVector<std::string>> perBatch(nStates + nOuts);
  for (int64_t bi = 0; bi < batch; ++bi) {
    SmallVector<std::string> st, in, outs;
    for (const std::string &s : states) {
      auto t = take(im, s, bi, 0);
      if (failed(t))
        return failure();
      st.push_back(*t);
    }
    for (const std::string &x : ins) {
      auto t = take(im, x, bi, 0);
      if (failed(t))
        return failure();
      in.push_back(*t);
    }
    if (failed(unrollScan(im, *body, st, in, spec, outs)))
      return failure();
    st.append(outs.begin(), outs.end());
    for (auto [k, name] : llvm::enumerate(st))
      perBatch[k].push_back(name);
  }
  SmallVector<std::string> results;
  for (auto &names : perBatch) {
    auto s = stack(im, names, 0);
    if (failed(s))
      return failure();
    results.push_back(*s);
  }
  setOutputs(im, results);
  return success();
}

//===----------------------------------------------------------------------===//
// Sequences
//===----------------------------------------------------------------------===//

/// The elements of sequence input `i`, or an error.
static FailureOr<SmallVector<std::string>> sequenceInput(Importer &im, unsigned i) {
  if (!im.isSequence(i))
    return im.fail("input " + Twine(i) + " must be a sequence");
  return im.sequences.lookup(im.node->input(i));
}

static void setSequence(Importer &im, unsigned i, SmallVector<std::string> elems) {
  if (im.wantsOutput(i))
    im.sequences[im.node->output(i)] = std::move(elems);
}

/// A tensor input stored as a new sequence element (the name stays valid
/// when the scope that produced it ends).
static std::string elementOf(Importer &im, StringRef name) {
  std::string e = im.freshName();
  im.alias(name, e);
  return e;
}

/// Position input `i` resolved against a sequence of `size` elements;
/// `size` itself is allowed when `allowEnd` (insertion).
static FailureOr<int64_t> position(Importer &im, unsigned i, int64_t size, bool allowEnd,
                                   int64_t dflt) {
  int64_t pos = dflt;
  if (im.hasInput(i)) {
    auto p = constScalar(im, i, "position");
    if (failed(p))
      return failure();
    pos = *p;
  }
  int64_t hi = allowEnd ? size : size - 1;
  if (pos < -size || pos > hi)
    return im.fail(llvm::formatv("position {0} is out of range for a sequence of {1} "
                                 "elements",
                                 pos, size)
                       .str());
  return pos < 0 ? pos + size : pos;
}

static LogicalResult handleSequenceConstruct(Importer &im) {
  SmallVector<std::string> elems;
  for (int i = 0; i < im.node->input_size(); ++i) {
    if (!im.hasInput(i) || !isTensor(im, im.node->input(i)))
      return im.fail("input " + Twine(i) + " must be a tensor");
    elems.push_back(elementOf(im, im.node->input(i)));
  }
  setSequence(im, 0, std::move(elems));
  return success();
}

static LogicalResult handleSequenceInsert(Importer &im) {
  auto seq = sequenceInput(im, 0);
  if (failed(seq))
    return failure();
  if (!im.hasInput(1) || !isTensor(im, im.node->input(1)))
    return im.fail("input 1 must be a tensor");
  auto pos = position(im, 2, seq->size(), /*allowEnd=*/true, seq->size());
  if (failed(pos))
    return failure();
  seq->insert(seq->begin() + *pos, elementOf(im, im.node->input(1)));
  setSequence(im, 0, std::move(*seq));
  return success();
}

static LogicalResult handleSequenceErase(Importer &im) {
  auto seq = sequenceInput(im, 0);
  if (failed(seq))
    return failure();
  if (seq->empty())
    return im.fail("cannot erase from an empty sequence");
  auto pos = position(im, 1, seq->size(), /*allowEnd=*/false, -1);
  if (failed(pos))
    return failure();
  seq->erase(seq->begin() + *pos);
  setSequence(im, 0, std::move(*seq));
  return success();
}

static LogicalResult handleSequenceAt(Importer &im) {
  auto seq = sequenceInput(im, 0);
  if (failed(seq))
    return failure();
  if (!im.hasInput(1))
    return im.fail("missing position input");
  auto pos = position(im, 1, seq->size(), /*allowEnd=*/false, 0);
  if (failed(pos))
    return failure();
  setOutputs(im, {(*seq)[*pos]});
  return success();
}

static LogicalResult handleSequenceLength(Importer &im) {
  auto seq = sequenceInput(im, 0);
  if (failed(seq))
    return failure();
  im.setConstOutput(0, i64Attr(im, {}, {(int64_t)seq->size()}));
  return success();
}

static LogicalResult handleConcatFromSequence(Importer &im) {
  auto seq = sequenceInput(im, 0);
  if (failed(seq))
    return failure();
  if (seq->empty())
    return im.fail("cannot concatenate an empty sequence (its element shape is unknown)");
  for (StringRef e : *seq)
    if (!isTensor(im, e))
      return im.fail("the sequence holds sequences or optionals, not tensors");
  const onnx::AttributeProto *axisAttr = im.attr("axis");
  if (!axisAttr)
    return im.fail("missing attribute 'axis'");
  bool newAxis = im.attrInt("new_axis", 0) != 0;
  int64_t rank = tensorType(im, (*seq)[0]).getRank() + (newAxis ? 1 : 0);
  auto axis = im.normalizeAxis(axisAttr->i(), rank);
  if (failed(axis))
    return failure();
  FailureOr<std::string> out = failure();
  if (newAxis)
    out = stack(im, *seq, *axis);
  else
    out = im.emitNode("Concat", *seq, [&](onnx::NodeProto &n) { setIntAttr(n, "axis", *axis); });
  if (failed(out))
    return failure();
  setOutputs(im, {*out});
  return success();
}

static LogicalResult handleSplitToSequence(Importer &im) {
  RankedTensorType type = im.inputType(0);
  auto axis = im.normalizeAxis(im.attrInt("axis", 0), type.getRank());
  if (failed(axis))
    return failure();
  int64_t dim = type.getDimSize(*axis);
  std::string x = im.node->input(0);
  SmallVector<std::string> elems;
  if (!im.hasInput(1)) {
    // Chunks of one, the axis dropped unless keepdims.
    bool keep = im.attrInt("keepdims", 1) != 0;
    std::string axes = im.defineConst(i64Attr(im, {1}, {*axis}));
    for (int64_t i = 0; i < dim; ++i) {
      FailureOr<std::string> e =
          keep ? im.emitNode("Slice", {x, im.defineConst(i64Attr(im, {1}, {i})),
                                       im.defineConst(i64Attr(im, {1}, {i + 1})), axes})
               : take(im, x, i, *axis);
      if (failed(e))
        return failure();
      elems.push_back(*e);
    }
    setSequence(im, 0, std::move(elems));
    return success();
  }
  auto split = im.constInts(1, "split");
  if (failed(split))
    return failure();
  SmallVector<int64_t> sizes;
  if (im.inputType(1).getRank() == 0) {
    if ((*split)[0] <= 0)
      return im.fail("split must be positive");
    for (int64_t left = dim; left > 0; left -= (*split)[0])
      sizes.push_back(std::min(left, (*split)[0]));
  } else {
    sizes = *split;
    int64_t sum = 0;
    for (int64_t s : sizes)
      sum += s < 0 ? dim + 1 : s;
    if (sum != dim)
      return im.fail("split sizes do not add up to dimension " + Twine(*axis) + " (" +
                     Twine(dim) + ")");
  }
  std::string axes = im.defineConst(i64Attr(im, {1}, {*axis}));
  int64_t offset = 0;
  for (int64_t s : sizes) {
    auto e = im.emitNode("Slice", {x, im.defineConst(i64Attr(im, {1}, {offset})),
                                   im.defineConst(i64Attr(im, {1}, {offset + s})), axes});
    if (failed(e))
      return failure();
    elems.push_back(*e);
    offset += s;
  }
  setSequence(im, 0, std::move(elems));
  return success();
}

static LogicalResult handleSequenceMap(Importer &im) {
  const onnx::GraphProto *body = graphAttr(im, "body");
  if (!body)
    return failure();
  auto seq = sequenceInput(im, 0);
  if (failed(seq))
    return failure();
  int64_t n = seq->size();
  for (int i = 1; i < im.node->input_size(); ++i)
    if (im.isSequence(i) && (int64_t)im.sequences.lookup(im.node->input(i)).size() != n)
      return im.fail("the input sequences have different lengths");
  SmallVector<SmallVector<std::string>> outs(body->output_size());
  for (int64_t e = 0; e < n; ++e) {
    SmallVector<std::string> args = {(*seq)[e]};
    for (int i = 1; i < im.node->input_size(); ++i)
      args.push_back(im.isSequence(i) ? im.sequences.lookup(im.node->input(i))[e]
                                      : im.node->input(i));
    auto res = im.importSubgraph(*body, args);
    if (failed(res))
      return failure();
    for (auto [k, name] : llvm::enumerate(*res))
      outs[k].push_back(name);
  }
  for (auto [k, elems] : llvm::enumerate(outs))
    setSequence(im, k, std::move(elems));
  return success();
}

//===----------------------------------------------------------------------===//
// Optionals
//===----------------------------------------------------------------------===//

static LogicalResult handleOptional(Importer &im) {
  if (im.wantsOutput(0))
    im.optionals[im.node->output(0)] =
        im.hasInput(0) ? elementOf(im, im.node->input(0)) : std::string();
  return success();
}

static LogicalResult handleOptionalHasElement(Importer &im) {
  bool has = im.hasInput(0) &&
             (!im.isOptional(0) || !im.optionals.lookup(im.node->input(0)).empty());
  im.setConstOutput(0, boolAttr(im, has));
  return success();
}

static LogicalResult handleOptionalGetElement(Importer &im) {
  if (!im.hasInput(0))
    return im.fail("missing input");
  std::string contents = im.node->input(0);
  if (im.isOptional(0)) {
    contents = im.optionals.lookup(contents);
    if (contents.empty())
      return im.fail("the optional input is empty");
  }
  setOutputs(im, {contents});
  return success();
}

//===----------------------------------------------------------------------===//
// Registration
//===----------------------------------------------------------------------===//

bool kiln::detail::acceptsContainers(StringRef opType) {
  static const llvm::StringSet<> ops = {
      "Identity",        "If",          "Loop",           "Scan",
      "SequenceInsert",  "SequenceAt",  "SequenceErase",  "SequenceLength",
      "SequenceMap",     "ConcatFromSequence", "Optional", "OptionalHasElement",
      "OptionalGetElement"};
  return ops.contains(opType);
}

void kiln::detail::registerControlFlowOps(llvm::StringMap<Handler> &t) {
  t["If"] = handleIf;
  t["Loop"] = handleLoop;
  t["Scan"] = handleScan;
  t["SequenceEmpty"] = [](Importer &im) {
    setSequence(im, 0, {});
    return success();
  };
  t["SequenceConstruct"] = handleSequenceConstruct;
  t["SequenceInsert"] = handleSequenceInsert;
  t["SequenceErase"] = handleSequenceErase;
  t["SequenceAt"] = handleSequenceAt;
  t["SequenceLength"] = handleSequenceLength;
  t["ConcatFromSequence"] = handleConcatFromSequence;
  t["SplitToSequence"] = handleSplitToSequence;
  t["SequenceMap"] = handleSequenceMap;
  t["Optional"] = handleOptional;
  t["OptionalHasElement"] = handleOptionalHasElement;
  t["OptionalGetElement"] = handleOptionalGetElement;
}

//===- OnnxFolding.cpp - compile-time evaluation of constant nodes --------===//
//
// Exported models compute shapes at run time (Shape -> Gather -> Concat ->
// Reshape). With static shapes those subgraphs only see constants, so they
// are evaluated here and the ops that need compile-time operands (Reshape's
// shape, Slice's starts, ...) see plain constants. Only small tensors are
// folded; large constant math is left to the compiled kernels.
//
//===----------------------------------------------------------------------===//
#include "Importer.h"

#include <cmath>
#include <functional>

using namespace mlir;
using namespace kiln::detail;
namespace onnx = kiln::onnx;

static constexpr int64_t kFoldLimit = 1 << 16;

static int64_t numelOf(ArrayRef<int64_t> s) {
  int64_t n = 1;
  for (int64_t d : s)
    n *= d;
  return n;
}

/// Row-major strides of `shape` broadcast to `out` (0 for broadcast dims).
static SmallVector<int64_t> broadcastStrides(ArrayRef<int64_t> shape, ArrayRef<int64_t> out) {
  SmallVector<int64_t> strides(out.size(), 0);
  int64_t s = 1;
  for (int64_t i = shape.size() - 1; i >= 0; --i) {
    int64_t od = out.size() - shape.size() + i;
    strides[od] = shape[i] == 1 ? 0 : s;
    s *= shape[i];
  }
  return strides;
}

using IntFn = std::function<int64_t(ArrayRef<int64_t>)>;
using FloatFn = std::function<double(ArrayRef<double>)>;

/// Applies an elementwise function with numpy broadcasting; the float path
/// runs when any input is floating point.
static std::optional<HostTensor> mapElementwise(Importer &im, ArrayRef<HostTensor> ins,
                                                Type outElem, IntFn ifn, FloatFn ffn) {
  SmallVector<SmallVector<int64_t>> shapes;
  for (const auto &t : ins)
    shapes.push_back(t.shape);
  auto out = im.broadcastShapes(shapes);
  if (failed(out) || numelOf(*out) > kFoldLimit)
    return std::nullopt;
  bool anyFloat = llvm::any_of(ins, [](const HostTensor &t) { return t.isFloat(); });
  if ((anyFloat && !ffn) || (!anyFloat && !ifn))
    return std::nullopt;
  SmallVector<SmallVector<int64_t>> strides;
  for (const auto &t : ins)
    strides.push_back(broadcastStrides(t.shape, *out));
  HostTensor r;
  r.shape = *out;
  r.elemType = outElem;
  int64_t n = numelOf(*out), rank = out->size();
  SmallVector<int64_t> idx(rank, 0);
  SmallVector<int64_t> iargs(ins.size());
  SmallVector<double> fargs(ins.size());
  for (int64_t e = 0; e < n; ++e) {
    for (size_t k = 0; k < ins.size(); ++k) {
      int64_t off = 0;
      for (int64_t d = 0; d < rank; ++d)
        off += idx[d] * strides[k][d];
      if (anyFloat)
        fargs[k] = ins[k].get(off);
      else
        iargs[k] = ins[k].ints[off];
    }
    double v = anyFloat ? ffn(fargs) : (double)0;
    if (isa<FloatType>(outElem))
      r.floats.push_back(anyFloat ? v : (double)ifn(iargs));
    else
      r.ints.push_back(anyFloat ? (int64_t)v : ifn(iargs));
    for (int64_t d = rank - 1; d >= 0; --d) {
      if (++idx[d] < (*out)[d])
        break;
      idx[d] = 0;
    }
  }
  return r;
}

static HostTensor i64Tensor(MLIRContext &ctx, ArrayRef<int64_t> shape, ArrayRef<int64_t> vals) {
  HostTensor t;
  t.shape.assign(shape.begin(), shape.end());
  t.elemType = IntegerType::get(&ctx, 64);
  t.ints.assign(vals.begin(), vals.end());
  return t;
}

/// Copies elements of `in` selected per output index by `src` (a row-major
/// input offset for each output offset).
static HostTensor gatherElements(const HostTensor &in, ArrayRef<int64_t> outShape,
                                 function_ref<int64_t(ArrayRef<int64_t>)> src) {
  HostTensor r;
  r.shape.assign(outShape.begin(), outShape.end());
  r.elemType = in.elemType;
  int64_t n = numelOf(outShape), rank = outShape.size();
  SmallVector<int64_t> idx(rank, 0);
  for (int64_t e = 0; e < n; ++e) {
    int64_t off = src(idx);
    if (in.isFloat())
      r.floats.push_back(in.floats[off]);
    else
      r.ints.push_back(in.ints[off]);
    for (int64_t d = rank - 1; d >= 0; --d) {
      if (++idx[d] < outShape[d])
        break;
      idx[d] = 0;
    }
  }
  return r;
}

static int64_t rowMajorOffset(ArrayRef<int64_t> shape, ArrayRef<int64_t> idx) {
  int64_t off = 0;
  for (size_t d = 0; d < shape.size(); ++d)
    off = off * shape[d] + idx[d];
  return off;
}

static std::optional<HostTensor> foldConstantNode(Importer &im) {
  const onnx::AttributeProto *a = nullptr;
  MLIRContext &ctx = im.ctx;
  if ((a = im.attr("value_float")))
    return HostTensor{{}, Float32Type::get(&ctx), {}, {a->f()}};
  if ((a = im.attr("value_floats")))
    return HostTensor{{a->floats_size()}, Float32Type::get(&ctx), {},
                      std::vector<double>(a->floats().begin(), a->floats().end())};
  if ((a = im.attr("value_int")))
    return i64Tensor(ctx, {}, {a->i()});
  if ((a = im.attr("value_ints")))
    return i64Tensor(ctx, {a->ints_size()}, SmallVector<int64_t>(a->ints().begin(), a->ints().end()));
  return std::nullopt;
}

FailureOr<bool> kiln::detail::foldNode(Importer &im,
                                       SmallVectorImpl<DenseElementsAttr> &results) {
  const onnx::NodeProto &n = *im.node;
  StringRef op = n.op_type();
  MLIRContext &ctx = im.ctx;

  if (op == "Constant") {
    if (const auto *t = im.attr("value")) {
      auto attr = im.tensorToAttr(t->t());
      if (failed(attr))
        return failure();
      results.push_back(*attr);
      return true;
    }
    if (auto h = foldConstantNode(im)) {
      results.push_back(h->toAttr());
      return true;
    }
    return im.fail("Constant needs a value, value_float(s) or value_int(s) attribute "
                   "(sparse and string constants are not supported)");
  }

  if (op == "Shape" || op == "Size") {
    ArrayRef<int64_t> s = im.inputType(0).getShape();
    if (op == "Size") {
      results.push_back(i64Tensor(ctx, {}, {numelOf(s)}).toAttr());
      return true;
    }
    int64_t rank = s.size();
    int64_t start = im.attrInt("start", 0), end = im.attrInt("end", rank);
    start = std::clamp<int64_t>(start < 0 ? start + rank : start, 0, rank);
    end = std::clamp<int64_t>(end < 0 ? end + rank : end, 0, rank);
    SmallVector<int64_t> dims(s.begin() + start, s.begin() + std::max(start, end));
    results.push_back(i64Tensor(ctx, {(int64_t)dims.size()}, dims).toAttr());
    return true;
  }

  // Everything else folds only when every present input is a constant.
  SmallVector<HostTensor> ins;
  for (int i = 0; i < n.input_size(); ++i) {
    if (n.input(i).empty()) {
      ins.push_back(HostTensor{});
      continue;
    }
    auto c = im.constInput(i);
    if (!c || c->getNumElements() > kFoldLimit)
      return false;
    auto h = HostTensor::fromAttr(*c);
    if (!h)
      return false;
    ins.push_back(std::move(*h));
  }

  if (op == "ConstantOfShape") {
    if (ins.empty())
      return false;
    HostTensor r;
    r.shape.assign(ins[0].ints.begin(), ins[0].ints.end());
    double v = 0;
    r.elemType = Float32Type::get(&ctx);
    if (const auto *a = im.attr("value")) {
      auto attr = im.tensorToAttr(a->t());
      if (failed(attr))
        return failure();
      auto h = HostTensor::fromAttr(*attr);
      if (!h || h->numel() != 1)
        return im.fail("ConstantOfShape 'value' must hold one element");
      r.elemType = h->elemType;
      v = h->get(0);
    }
    auto type = RankedTensorType::get(r.shape, r.elemType);
    // A splat attribute stays small however large the shape is.
    if (auto ft = dyn_cast<FloatType>(r.elemType))
      results.push_back(DenseElementsAttr::get(type, FloatAttr::get(ft, v).getValue()));
    else if (r.elemType.isInteger(1))
      results.push_back(DenseElementsAttr::get(type, v != 0));
    else
      results.push_back(DenseElementsAttr::get(
          type, APInt(r.elemType.getIntOrFloatBitWidth(), (uint64_t)(int64_t)v, true)));
    return true;
  }

  if (ins.empty() || llvm::any_of(ins, [](const HostTensor &t) { return !t.elemType; }))
    return false;

  Type i1 = IntegerType::get(&ctx, 1);
  std::optional<HostTensor> r;
  auto bin = [&](IntFn ifn, FloatFn ffn, bool compare = false) {
    if (ins.size() != 2)
      return;
    r = mapElementwise(im, ins, compare ? i1 : ins[0].elemType, ifn, ffn);
  };
  if (op == "Add")
    bin([](ArrayRef<int64_t> v) { return v[0] + v[1]; }, [](ArrayRef<double> v) { return v[0] + v[1]; });
  else if (op == "Sub")
    bin([](ArrayRef<int64_t> v) { return v[0] - v[1]; }, [](ArrayRef<double> v) { return v[0] - v[1]; });
  else if (op == "Mul")
    bin([](ArrayRef<int64_t> v) { return v[0] * v[1]; }, [](ArrayRef<double> v) { return v[0] * v[1]; });
  else if (op == "Div") {
    if (!ins[0].isFloat() && llvm::is_contained(ins[1].ints, 0))
      return im.fail("integer division by zero in a constant subgraph");
    bin([](ArrayRef<int64_t> v) { return v[0] / v[1]; }, [](ArrayRef<double> v) { return v[0] / v[1]; });
  } else if (op == "Equal")
    bin([](ArrayRef<int64_t> v) -> int64_t { return v[0] == v[1]; },
        [](ArrayRef<double> v) -> double { return v[0] == v[1]; }, true);
  else if (op == "Less")
    bin([](ArrayRef<int64_t> v) -> int64_t { return v[0] < v[1]; },
        [](ArrayRef<double> v) -> double { return v[0] < v[1]; }, true);
  else if (op == "Greater")
    bin([](ArrayRef<int64_t> v) -> int64_t { return v[0] > v[1]; },
        [](ArrayRef<double> v) -> double { return v[0] > v[1]; }, true);
  else if ((op == "Max" || op == "Min") && ins.size() == 2) {
    bool mx = op == "Max";
    bin([mx](ArrayRef<int64_t> v) { return mx ? std::max(v[0], v[1]) : std::min(v[0], v[1]); },
        [mx](ArrayRef<double> v) { return mx ? std::max(v[0], v[1]) : std::min(v[0], v[1]); });
  } else if (op == "Where" && ins.size() == 3) {
    if (ins[1].isFloat() != ins[2].isFloat())
      return false;
    // Evaluate in the value domain: the condition is 0/1 either way.
    SmallVector<HostTensor> conv = {ins[0], ins[1], ins[2]};
    if (ins[1].isFloat()) {
      conv[0].floats.assign(ins[0].ints.begin(), ins[0].ints.end());
      conv[0].ints.clear();
      conv[0].elemType = ins[1].elemType;
    }
    r = mapElementwise(im, conv, ins[1].elemType,
                       [](ArrayRef<int64_t> v) { return v[0] ? v[1] : v[2]; },
                       [](ArrayRef<double> v) { return v[0] != 0 ? v[1] : v[2]; });
  } else if (op == "Neg")
    r = mapElementwise(im, ins, ins[0].elemType, [](ArrayRef<int64_t> v) { return -v[0]; },
                       [](ArrayRef<double> v) { return -v[0]; });
  else if (op == "Abs")
    r = mapElementwise(im, ins, ins[0].elemType, [](ArrayRef<int64_t> v) { return std::abs(v[0]); },
                       [](ArrayRef<double> v) { return std::fabs(v[0]); });
  else if (op == "Relu")
    r = mapElementwise(im, ins, ins[0].elemType,
                       [](ArrayRef<int64_t> v) { return std::max<int64_t>(v[0], 0); },
                       [](ArrayRef<double> v) { return std::max(v[0], 0.0); });
  else if (op == "Not")
    r = mapElementwise(im, ins, i1, [](ArrayRef<int64_t> v) -> int64_t { return !v[0]; }, nullptr);
  else if (op == "And" || op == "Or" || op == "Xor") {
    char k = op[0];
    bin([k](ArrayRef<int64_t> v) -> int64_t {
          bool a = v[0] != 0, c = v[1] != 0;
          return k == 'A' ? (a && c) : k == 'O' ? (a || c) : (a != c);
        },
        nullptr, true);
  } else if (op == "Mod" && !ins[0].isFloat() && !ins[1].isFloat() &&
             !im.attrInt("fmod", 0)) {
    if (llvm::is_contained(ins[1].ints, 0))
      return im.fail("integer modulo by zero in a constant subgraph");
    // Integer Mod takes the divisor's sign (like Python's %).
    bin([](ArrayRef<int64_t> v) {
          int64_t m = v[0] % v[1];
          return (m != 0 && ((m < 0) != (v[1] < 0))) ? m + v[1] : m;
        },
        nullptr);
  } else if ((op == "Sqrt" || op == "Reciprocal" || op == "Floor" || op == "Ceil") &&
             ins[0].isFloat()) {
    char k = op[0];
    r = mapElementwise(im, ins, ins[0].elemType, nullptr, [k](ArrayRef<double> v) {
      return k == 'S' ? std::sqrt(v[0]) : k == 'R' ? 1.0 / v[0] : k == 'F' ? std::floor(v[0])
                                                                            : std::ceil(v[0]);
    });
  }
  else if (op == "Cast") {
    Type to = onnxElementType(ctx, im.attrInt("to", 0));
    // The small types have their own rounding and saturation rules; their
    // casts run as kernels.
    if (!to || isSmallType(to) || isSmallType(ins[0].elemType))
      return false;
    HostTensor c;
    c.shape = ins[0].shape;
    c.elemType = to;
    for (int64_t i = 0, e = ins[0].numel(); i < e; ++i) {
      double v = ins[0].get(i);
      if (to.isInteger(1))
        c.ints.push_back(v != 0);
      else if (isa<FloatType>(to))
        c.floats.push_back(v);
      else
        c.ints.push_back(ins[0].isFloat() ? (int64_t)std::trunc(v) : ins[0].ints[i]);
    }
    r = c;
  } else if (op == "Range" && ins.size() == 3) {
    double start = ins[0].get(0), limit = ins[1].get(0), delta = ins[2].get(0);
    if (delta == 0)
      return im.fail("Range delta is 0");
    // Opset 27: f16/bf16 accumulate in stash_type; Kiln computes each
    // element in double and rounds once, which matches the float32 stash.
    Type et = ins[0].elemType;
    if ((et.isF16() || et.isBF16()) && im.attrInt("stash_type", 1) != 1)
      return im.fail("Range with stash_type " + std::to_string(im.attrInt("stash_type", 1)) +
                     " is not supported (only 1, float)");
    int64_t count = std::max<int64_t>(0, (int64_t)std::ceil((limit - start) / delta));
    if (count > kFoldLimit)
      return false;
    HostTensor c;
    c.shape = {count};
    c.elemType = ins[0].elemType;
    for (int64_t i = 0; i < count; ++i)
      c.push(start + i * delta);
    r = c;
  } else if (op == "Concat") {
    int64_t rank = ins[0].shape.size();
    auto axis = im.normalizeAxis(im.attrInt("axis", 0), rank);
    if (failed(axis))
      return failure();
    HostTensor c;
    c.elemType = ins[0].elemType;
    c.shape = ins[0].shape;
    c.shape[*axis] = 0;
    for (const auto &t : ins) {
      if ((int64_t)t.shape.size() != rank)
        return im.fail("Concat inputs have different ranks");
      c.shape[*axis] += t.shape[*axis];
    }
    // Row-major: interleave blocks of each input per outer index.
    int64_t outer = numelOf(ArrayRef<int64_t>(c.shape).take_front(*axis));
    for (int64_t o = 0; o < outer; ++o)
      for (const auto &t : ins) {
        int64_t block = numelOf(ArrayRef<int64_t>(t.shape).drop_front(*axis));
        for (int64_t k = 0; k < block; ++k) {
          if (c.isFloat())
            c.floats.push_back(t.floats[o * block + k]);
          else
            c.ints.push_back(t.ints[o * block + k]);
        }
      }
    r = c;
  } else if (op == "Split") {
    // Shape subgraphs split shape vectors into dimensions (AffineGrid).
    const HostTensor &data = ins[0];
    int64_t rank = data.shape.size();
    auto axis = im.normalizeAxis(im.attrInt("axis", 0), rank);
    if (failed(axis))
      return failure();
    int64_t dim = data.shape[*axis], parts = n.output_size();
    // Every version's sources of the sizes, in the handler's order: a
    // valid node has only those of its own version (see SplitForm).
    SmallVector<int64_t> sizes;
    if (ins.size() > 1 && ins[1].elemType) {
      for (int64_t k = 0; k < ins[1].numel(); ++k) // Split-1's are floats
        sizes.push_back((int64_t)ins[1].get(k));
    } else if (auto a = im.attrInts("split")) {
      sizes = *a;
    } else {
      if (im.attr("num_outputs"))
        parts = im.attrInt("num_outputs", parts);
      int64_t chunk = parts > 0 ? (dim + parts - 1) / parts : 0;
      for (int64_t i = 0, left = dim; i < parts; ++i, left -= chunk)
        sizes.push_back(std::max<int64_t>(0, std::min(chunk, left)));
    }
    int64_t sum = 0;
    for (int64_t size : sizes)
      sum += size;
    // Malformed splits are diagnosed by the Split handler.
    if (sum != dim || (int64_t)sizes.size() != n.output_size())
      return false;
    int64_t offset = 0;
    for (int64_t size : sizes) {
      SmallVector<int64_t> out(data.shape);
      out[*axis] = size;
      results.push_back(gatherElements(data, out, [&](ArrayRef<int64_t> idx) {
                          SmallVector<int64_t> at(idx);
                          at[*axis] += offset;
                          return rowMajorOffset(data.shape, at);
                        }).toAttr());
      offset += size;
    }
    return true;
  } else if (op == "Gather" && ins.size() == 2 && !ins[1].isFloat()) {
    const HostTensor &data = ins[0], &indices = ins[1];
    int64_t rank = data.shape.size();
    auto axis = im.normalizeAxis(im.attrInt("axis", 0), rank);
    if (failed(axis))
      return failure();
    int64_t dim = data.shape[*axis], ir = indices.shape.size();
    for (int64_t i : indices.ints)
      if (i < -dim || i >= dim)
        return im.fail("Gather index " + std::to_string(i) + " is out of range for axis size " +
                       std::to_string(dim));
    SmallVector<int64_t> out(data.shape.begin(), data.shape.begin() + *axis);
    out.append(indices.shape.begin(), indices.shape.end());
    out.append(data.shape.begin() + *axis + 1, data.shape.end());
    r = gatherElements(data, out, [&](ArrayRef<int64_t> idx) {
      SmallVector<int64_t> at(idx.begin(), idx.begin() + *axis);
      int64_t i = indices.ints[rowMajorOffset(indices.shape, idx.slice(*axis, ir))];
      at.push_back(i < 0 ? i + dim : i);
      at.append(idx.begin() + *axis + ir, idx.end());
      return rowMajorOffset(data.shape, at);
    });
  } else if (op == "Slice" && ins.size() >= 3) { // the input form, Slice-10 on
    const HostTensor &data = ins[0];
    int64_t rank = data.shape.size();
    SmallVector<int64_t> starts(ins[1].ints.begin(), ins[1].ints.end()),
        ends(ins[2].ints.begin(), ins[2].ints.end()), axes, steps;
    if (ins.size() > 3 && ins[3].elemType)
      axes.assign(ins[3].ints.begin(), ins[3].ints.end());
    else
      for (size_t i = 0; i < starts.size(); ++i)
        axes.push_back(i);
    if (ins.size() > 4 && ins[4].elemType)
      steps.assign(ins[4].ints.begin(), ins[4].ints.end());
    else
      steps.assign(starts.size(), 1);
    if (ends.size() != starts.size() || axes.size() != starts.size() ||
        steps.size() != starts.size())
      return im.fail("starts, ends, axes and steps must have the same length");
    SmallVector<int64_t> st(rank, 0), sp(rank, 1), out(data.shape);
    for (size_t j = 0; j < axes.size(); ++j) {
      auto a = im.normalizeAxis(axes[j], rank);
      if (failed(a))
        return failure();
      int64_t dim = data.shape[*a], step = steps[j], s = starts[j], e = ends[j];
      if (step == 0)
        return im.fail("slice step cannot be 0");
      SliceRange range = resolveSlice(dim, s, e, step);
      out[*a] = range.size;
      st[*a] = range.start;
      sp[*a] = step;
    }
    r = gatherElements(data, out, [&](ArrayRef<int64_t> idx) {
      SmallVector<int64_t> at;
      for (int64_t d = 0; d < rank; ++d)
        at.push_back(st[d] + idx[d] * sp[d]);
      return rowMajorOffset(data.shape, at);
    });
  }

  if (!r)
    return false;
  results.push_back(r->toAttr());
  return true;
}

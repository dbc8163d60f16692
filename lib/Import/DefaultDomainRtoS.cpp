//===- DefaultDomainRtoS.cpp - ONNX ops R and S ---------------------------===//
//
// Handlers of the default-domain (ai.onnx) ops whose names start with R or S,
// registered by registerDefaultDomainRtoS at the end of the file with the opset
// each handler applies from.
//
//===----------------------------------------------------------------------===//
#include "Builders.h"
#include "Importer.h"
#include "OpRegistry.h"

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

static LogicalResult handleSign(OpContext &im) {
  Type et = im.elementType(im.input(0));
  return mapInputs(im, et, [&](OpBuilder &ob, Location l, ValueRange v) -> Value {
    Value zero = zeroOf(ob, l, et);
    Value one = im.constantScalar(ob, l, et, 1.0);
    Value minusOne = im.constantScalar(ob, l, et, -1.0);
    Value pos = gtOp(ob, l, v[0], zero), neg = ltOp(ob, l, v[0], zero);
    Value y = arith::SelectOp::create(ob, l, neg, minusOne, zero);
    y = arith::SelectOp::create(ob, l, pos, one, y);
    // NaN compares false both ways; numpy's sign keeps it NaN.
    if (isFloat(et))
      y = arith::SelectOp::create(
          ob, l, arith::CmpFOp::create(ob, l, arith::CmpFPredicate::UNO, v[0], v[0]), v[0], y);
    return y;
  });
}

static LogicalResult handleShrink(OpContext &im) {
  double bias = im.attrFloat("bias", 0.0f), lambd = im.attrFloat("lambd", 0.5f);
  Type et = im.elementType(im.input(0));
  return mapInputs(im, et, [&](OpBuilder &ob, Location l, ValueRange v) -> Value {
    Value x = v[0];
    Value lo = im.constantScalar(ob, l, et, -lambd), hi = im.constantScalar(ob, l, et, lambd);
    Value b = im.constantScalar(ob, l, et, bias);
    Value y = arith::SelectOp::create(ob, l, gtOp(ob, l, x, hi), subOp(ob, l, x, b),
                                      zeroOf(ob, l, et));
    return arith::SelectOp::create(ob, l, ltOp(ob, l, x, lo), addOp(ob, l, x, b), y);
  });
}

// Reductions and normalizations

/// Axes of a Reduce* node: an attribute, or input 1 with `axesInput`
/// (opset 13 for ReduceSum, 18 for the others).
static FailureOr<SmallVector<int64_t>> reduceAxes(OpContext &im, int64_t rank, bool axesInput) {
  auto given = axesOperand(im, axesInput);
  if (failed(given))
    return failure();
  SmallVector<int64_t> axes = *given;
  if (axes.empty()) {
    if (axesInput && im.attrInt("noop_with_empty_axes", 0))
      return axes;
    for (int64_t i = 0; i < rank; ++i)
      axes.push_back(i);
    return axes;
  }
  for (int64_t &a : axes) {
    auto n = im.normalizeAxis(a, rank);
    if (failed(n))
      return failure();
    a = *n;
  }
  return axes;
}

enum class ReduceKind { Sum, Mean, Max, Min, Prod, SumSquare, L1, L2, LogSum, LogSumExp };

static LogicalResult handleReduce(OpContext &im, ReduceKind kind, bool axesInput) {
  Value x = im.input(0);
  Type et = im.elementType(x);
  int64_t rank = im.shapeOf(x).size();
  auto axes = reduceAxes(im, rank, axesInput);
  if (failed(axes))
    return failure();
  bool keep = im.attrInt("keepdims", 1);
  if (axes->empty()) { // noop_with_empty_axes
    im.setOutput(0, x);
    return success();
  }
  bool logOut = kind == ReduceKind::LogSum || kind == ReduceKind::LogSumExp;
  if ((kind == ReduceKind::Mean || kind == ReduceKind::L2 || logOut) && !isFloat(et))
    return im.fail("supported for floating-point inputs only");
  TypedAttr init;
  // Bools are i1 with true = 1: max/min compare them unsigned.
  bool isU = im.isUnsigned(0) || et.isInteger(1);
  auto floatOrInt = [&](double f) -> TypedAttr {
    if (auto ft = dyn_cast<FloatType>(et))
      return FloatAttr::get(ft, f);
    unsigned w = et.getIntOrFloatBitWidth();
    if (std::isinf(f) && isU)
      return IntegerAttr::get(et, f > 0 ? APInt::getMaxValue(w) : APInt::getMinValue(w));
    if (std::isinf(f))
      return IntegerAttr::get(et, f > 0 ? APInt::getSignedMaxValue(w)
                                        : APInt::getSignedMinValue(w));
    return IntegerAttr::get(et, (int64_t)f);
  };
  BinFn combine = addOp;
  switch (kind) {
  case ReduceKind::Max: init = floatOrInt(-INFINITY); combine = isU ? maxUOp : maxOp; break;
  case ReduceKind::Min: init = floatOrInt(INFINITY); combine = isU ? minUOp : minOp; break;
  case ReduceKind::Prod: init = floatOrInt(1); combine = mulOp; break;
  default: init = floatOrInt(0); break;
  }
  Value in = x;
  if (kind == ReduceKind::SumSquare || kind == ReduceKind::L2 || kind == ReduceKind::L1 ||
      kind == ReduceKind::LogSumExp) {
    auto pre = im.elementwise({x}, et, [&](OpBuilder &ob, Location l, ValueRange v) -> Value {
      if (kind == ReduceKind::LogSumExp)
        return math::ExpOp::create(ob, l, v[0]);
      if (kind == ReduceKind::L1)
        return isFloat(et) ? (Value)math::AbsFOp::create(ob, l, v[0])
                           : (Value)math::AbsIOp::create(ob, l, v[0]);
      return mulOp(ob, l, v[0], v[0]);
    });
    if (failed(pre))
      return failure();
    in = *pre;
  }
  Value r = im.reduce(in, *axes, keep, init,
                      [&](OpBuilder &ob, Location l, Value acc, Value v) {
                        return combine(ob, l, acc, v);
                      });
  if (kind == ReduceKind::Mean || kind == ReduceKind::L2 || logOut) {
    int64_t n = 1;
    for (int64_t a : *axes)
      n *= im.shapeOf(x)[a];
    auto post = im.elementwise({r}, et, [&](OpBuilder &ob, Location l, ValueRange v) -> Value {
      if (kind == ReduceKind::L2)
        return math::SqrtOp::create(ob, l, v[0]);
      if (logOut)
        return math::LogOp::create(ob, l, v[0]);
      return arith::DivFOp::create(ob, l, v[0], im.constantScalar(ob, l, et, (double)n));
    });
    if (failed(post))
      return failure();
    r = *post;
  }
  im.setOutput(0, r);
  return success();
}

// Data movement

static LogicalResult handleReshape(OpContext &im) {
  Value x = im.input(0);
  auto shape = im.constInts(1, "shape");
  if (failed(shape))
    return failure();
  ArrayRef<int64_t> in = im.shapeOf(x);
  bool allowZero = im.attrInt("allowzero", 0);
  SmallVector<int64_t> out;
  int64_t known = 1, inferAt = -1, total = cast<RankedTensorType>(x.getType()).getNumElements();
  for (auto [i, d] : llvm::enumerate(*shape)) {
    if (d == 0 && !allowZero) {
      if (i >= in.size())
        return im.fail("shape " + shapeStr(*shape) + " copies dimension " + std::to_string(i) +
                       " which input " + shapeStr(in) + " lacks");
      d = in[i];
    }
    if (d == -1) {
      if (inferAt >= 0)
        return im.fail("shape " + shapeStr(*shape) + " has more than one -1");
      inferAt = i;
      out.push_back(1);
      continue;
    }
    if (d < -1)
      return im.fail("shape " + shapeStr(*shape) + " has a negative dimension");
    known *= d;
    out.push_back(d);
  }
  if (inferAt >= 0) {
    if (known == 0 || total % known)
      return im.fail("cannot reshape " + shapeStr(in) + " to " + shapeStr(*shape));
    out[inferAt] = total / known;
    known *= out[inferAt];
  }
  if (known != total)
    return im.fail("cannot reshape " + shapeStr(in) + " (" + std::to_string(total) +
                   " elements) to " + shapeStr(out));
  im.setOutput(0, im.reshape(x, out));
  return success();
}

/// Squeeze's axes: an attribute, or input 1 with `axesInput` (opset 13).
static FailureOr<SmallVector<int64_t>> squeezeAxes(OpContext &im, int64_t rank, bool axesInput) {
  auto given = axesOperand(im, axesInput);
  if (failed(given))
    return failure();
  SmallVector<int64_t> axes = *given;
  for (int64_t &a : axes) {
    auto n = im.normalizeAxis(a, rank);
    if (failed(n))
      return failure();
    a = *n;
  }
  return axes;
}

static LogicalResult handleSqueeze(OpContext &im, bool axesInput) {
  Value x = im.input(0);
  ArrayRef<int64_t> in = im.shapeOf(x);
  auto axes = squeezeAxes(im, in.size(), axesInput);
  if (failed(axes))
    return failure();
  SmallVector<int64_t> out;
  for (int64_t i = 0; i < (int64_t)in.size(); ++i) {
    bool listed = llvm::is_contained(*axes, i);
    if (listed && in[i] != 1)
      return im.fail("cannot squeeze dimension " + std::to_string(i) + " of size " +
                     std::to_string(in[i]));
    if (listed || (axes->empty() && in[i] == 1))
      continue;
    out.push_back(in[i]);
  }
  im.setOutput(0, im.reshape(x, out));
  return success();
}

/// out = x[starts + i*steps] along `axes`, other dims whole. Affine access, so
/// it is an ordinary (fusable) elementwise generic.
static Value strided(OpContext &im, Value x, ArrayRef<int64_t> starts, ArrayRef<int64_t> steps,
                     ArrayRef<int64_t> outShape) {
  MLIRContext *ctx = &im.ctx;
  int64_t rank = outShape.size();
  ArrayRef<int64_t> inShape = im.shapeOf(x);
  // An empty slice reads nothing (and its affine read may start past the
  // input's end, which the generic's verifier rejects).
  if (llvm::is_contained(outShape, 0))
    return tensor::EmptyOp::create(im.b, im.loc, outShape, im.elementType(x));
  // A dimension read as plain `d_i` (start 0, step 1) makes linalg infer that
  // loop's range from the input, which must then equal the output's (e.g. a
  // Split's first chunk, x[:, :3]). Read such slices with tensor.extract.
  bool prefix = false;
  for (int64_t i = 0; i < rank; ++i)
    prefix |= starts[i] == 0 && steps[i] == 1 && outShape[i] != inShape[i];
  if (prefix) {
    SmallVector<int64_t> st(starts), sp(steps);
    return indexedGeneric(im, outShape, im.elementType(x),
                          [&](OpBuilder &ob, Location l, ValueRange idx) -> Value {
                            SmallVector<Value> at;
                            for (int64_t i = 0; i < rank; ++i) {
                              Value v = idx[i];
                              if (sp[i] != 1)
                                v = arith::MulIOp::create(ob, l, v, idxConst(ob, l, sp[i]));
                              if (st[i] != 0)
                                v = arith::AddIOp::create(ob, l, v, idxConst(ob, l, st[i]));
                              at.push_back(v);
                            }
                            return tensor::ExtractOp::create(ob, l, x, at);
                          });
  }
  SmallVector<AffineExpr> ex;
  for (int64_t i = 0; i < rank; ++i)
    ex.push_back(getAffineDimExpr(i, ctx) * steps[i] + starts[i]);
  Value init = tensor::EmptyOp::create(im.b, im.loc, outShape, im.elementType(x));
  SmallVector<AffineMap> maps = {AffineMap::get(rank, 0, ex, ctx),
                                 AffineMap::getMultiDimIdentityMap(rank, ctx)};
  SmallVector<IteratorType> iters(rank, IteratorType::parallel);
  return linalg::GenericOp::create(im.b, im.loc, TypeRange{init.getType()}, ValueRange{x},
                                   ValueRange{init}, maps, iters,
                                   [](OpBuilder &ob, Location l, ValueRange v) {
                                     linalg::YieldOp::create(ob, l, v[0]);
                                   })
      .getResult(0);
}

/// Slice; starts, ends and axes are attributes until opset 10, then
/// inputs (with steps) when `inputs`.
static LogicalResult handleSlice(OpContext &im, bool inputs) {
  Value x = im.input(0);
  ArrayRef<int64_t> in = im.shapeOf(x);
  int64_t rank = in.size();
  SmallVector<int64_t> starts, ends, axes, steps;
  if (!inputs) {
    starts = im.attrInts("starts").value_or(SmallVector<int64_t>{});
    ends = im.attrInts("ends").value_or(SmallVector<int64_t>{});
    axes = im.attrInts("axes").value_or(SmallVector<int64_t>{});
  } else {
    auto s = im.constInts(1, "starts"), e = im.constInts(2, "ends");
    if (failed(s) || failed(e))
      return failure();
    starts = *s;
    ends = *e;
    if (im.hasInput(3)) {
      auto a = im.constInts(3, "axes");
      if (failed(a))
        return failure();
      axes = *a;
    }
    if (im.hasInput(4)) {
      auto st = im.constInts(4, "steps");
      if (failed(st))
        return failure();
      steps = *st;
    }
  }
  if (axes.empty())
    for (size_t i = 0; i < starts.size(); ++i)
      axes.push_back(i);
  if (steps.empty())
    steps.assign(starts.size(), 1);
  if (ends.size() != starts.size() || axes.size() != starts.size() || steps.size() != starts.size())
    return im.fail("starts, ends, axes and steps must have the same length");
  SmallVector<int64_t> outStart(rank, 0), outStep(rank, 1), out(in);
  for (size_t j = 0; j < axes.size(); ++j) {
    auto a = im.normalizeAxis(axes[j], rank);
    if (failed(a))
      return failure();
    int64_t dim = in[*a], step = steps[j];
    if (step == 0)
      return im.fail("slice step cannot be 0");
    SliceRange range = resolveSlice(dim, starts[j], ends[j], step);
    out[*a] = range.size;
    outStart[*a] = range.start;
    outStep[*a] = step;
  }
  im.setOutput(0, strided(im, x, outStart, outStep, out));
  return success();
}

/// Where a version of Split finds its sizes: input 1 or the `split`
/// attribute (opset 1), the attribute (2), input 1 (13), input 1 or
/// `num_outputs` equal parts (18). Without them: equal parts, one per
/// output.
enum class SplitForm { InputOrAttr, Attr, Input, InputOrNumOutputs };

static LogicalResult handleSplit(OpContext &im, SplitForm form) {
  Value x = im.input(0);
  ArrayRef<int64_t> in = im.shapeOf(x);
  auto axis = im.normalizeAxis(im.attrInt("axis", 0), in.size());
  if (failed(axis))
    return failure();
  std::optional<SmallVector<int64_t>> attr;
  if (form == SplitForm::InputOrAttr || form == SplitForm::Attr)
    attr = im.attrInts("split");
  SmallVector<int64_t> sizes;
  if (form == SplitForm::InputOrAttr && im.hasInput(1)) {
    // Split-1 types the sizes like the data (floating point).
    auto c = im.requireConst(1, "split");
    if (failed(c))
      return failure();
    auto h = HostTensor::fromAttr(*c);
    if (!h)
      return im.fail("input 'split' has an unsupported element type");
    for (int64_t k = 0; k < h->numel(); ++k)
      sizes.push_back((int64_t)h->get(k));
  } else if (form != SplitForm::Attr && im.hasInput(1)) {
    auto c = im.constInts(1, "split");
    if (failed(c))
      return failure();
    sizes = *c;
  } else if (attr) {
    sizes = *attr;
  } else {
    int64_t n = form == SplitForm::InputOrNumOutputs && im.attr("num_outputs")
                    ? im.attrInt("num_outputs", 1)
                    : (int64_t)im.numOutputs();
    int64_t chunk = (in[*axis] + n - 1) / n;
    for (int64_t i = 0, left = in[*axis]; i < n; ++i, left -= chunk)
      sizes.push_back(std::min(chunk, left));
  }
  int64_t sum = 0;
  for (int64_t s : sizes)
    sum += s;
  if (sum != in[*axis] || sizes.size() != im.numOutputs())
    return im.fail("split sizes " + shapeStr(sizes) + " do not partition dimension of size " +
                   std::to_string(in[*axis]) + " into " + std::to_string(im.numOutputs()) +
                   " outputs");
  int64_t offset = 0;
  for (auto [i, size] : llvm::enumerate(sizes)) {
    SmallVector<int64_t> starts(in.size(), 0), steps(in.size(), 1), out(in);
    starts[*axis] = offset;
    out[*axis] = size;
    offset += size;
    if (im.wantsOutput(i))
      im.setOutput(i, strided(im, x, starts, steps, out));
  }
  return success();
}

/// RMSNormalization (opset 23): x / sqrt(mean(x^2 over axis..) + eps) in the
/// stash type (float32), cast back, times scale.
static LogicalResult handleRMSNorm(OpContext &im) {
  Value x = im.input(0);
  Type et = im.elementType(x);
  if (!isFloat(et))
    return im.fail("supported for floating-point inputs only");
  int64_t rank = im.shapeOf(x).size();
  auto axis = im.normalizeAxis(im.attrInt("axis", -1), rank);
  if (failed(axis))
    return failure();
  double eps = im.attrFloat("epsilon", 1e-5f);
  int64_t stash = im.attrInt("stash_type", 1);
  Type st = stash == 1 ? im.b.getF32Type() : onnxElementType(im.ctx, stash);
  if (!st || !isFloat(st))
    return im.fail("stash_type " + std::to_string(stash) + " is not supported");
  SmallVector<int64_t> axes;
  int64_t n = 1;
  for (int64_t i = *axis; i < rank; ++i) {
    axes.push_back(i);
    n *= im.shapeOf(x)[i];
  }
  auto xs = im.elementwise({x}, st, [&](OpBuilder &ob, Location l, ValueRange v) {
    return castScalar(ob, l, v[0], st);
  });
  if (failed(xs))
    return failure();
  auto sq = im.elementwise({*xs}, st, [](OpBuilder &ob, Location l, ValueRange v) -> Value {
    return arith::MulFOp::create(ob, l, v[0], v[0]);
  });
  if (failed(sq))
    return failure();
  Value ss = im.reduce(*sq, axes, true, FloatAttr::get(st, 0.0),
                       [](OpBuilder &ob, Location l, Value a, Value v) { return addOp(ob, l, a, v); });
  auto y = im.elementwise({*xs, ss}, et, [&](OpBuilder &ob, Location l, ValueRange v) -> Value {
    Value mean = arith::DivFOp::create(ob, l, v[1], im.constantScalar(ob, l, st, (double)n));
    Value inv = math::RsqrtOp::create(
        ob, l, arith::AddFOp::create(ob, l, mean, im.constantScalar(ob, l, st, eps)));
    return castScalar(ob, l, arith::MulFOp::create(ob, l, v[0], inv), et);
  });
  if (failed(y))
    return failure();
  auto r = im.elementwise({*y, im.input(1)}, et, [](OpBuilder &ob, Location l, ValueRange v) -> Value {
    return arith::MulFOp::create(ob, l, v[0], v[1]);
  });
  if (failed(r))
    return failure();
  im.setOutput(0, *r);
  return success();
}

/// SoftmaxCrossEntropyLoss: log-softmax over axis 1, then the NLL loss;
/// output 1 (optional) is the log-probabilities.
static LogicalResult handleSCELoss(OpContext &im) {
  Value x = im.input(0);
  Type et = im.elementType(x);
  if (!isFloat(et))
    return im.fail("supported for floating-point inputs only");
  if (im.shapeOf(x).size() < 2)
    return im.fail("scores must have rank 2 or more");
  auto maxF = [](OpBuilder &ob, Location l, Value a, Value v) { return maxOp(ob, l, a, v); };
  auto sumF = [](OpBuilder &ob, Location l, Value a, Value v) { return addOp(ob, l, a, v); };
  Value m = im.reduce(x, {1}, true, FloatAttr::get(et, -INFINITY), maxF);
  auto shifted = im.elementwise({x, m}, et, [](OpBuilder &ob, Location l, ValueRange v) -> Value {
    return arith::SubFOp::create(ob, l, v[0], v[1]);
  });
  if (failed(shifted))
    return failure();
  auto e = im.elementwise({*shifted}, et, [](OpBuilder &ob, Location l, ValueRange v) -> Value {
    return math::ExpOp::create(ob, l, v[0]);
  });
  if (failed(e))
    return failure();
  Value s = im.reduce(*e, {1}, true, FloatAttr::get(et, 0.0), sumF);
  auto logp = im.elementwise({*shifted, s}, et, [](OpBuilder &ob, Location l, ValueRange v) -> Value {
    return arith::SubFOp::create(ob, l, v[0], math::LogOp::create(ob, l, v[1]));
  });
  if (failed(logp))
    return failure();
  auto r = nllLoss(im, *logp, im.input(1), im.hasInput(2) ? im.input(2) : Value());
  if (failed(r))
    return failure();
  im.setOutput(0, *r);
  im.setOutput(1, *logp);
  return success();
}

static FailureOr<std::function<Value(OpBuilder &, Location, Value, Value)>>
scatterReduction(OpContext &im) {
  std::string red = im.attrString("reduction", "none");
  bool uns = im.isUnsigned(0);
  if (red == "none")
    return std::function<Value(OpBuilder &, Location, Value, Value)>(
        [](OpBuilder &, Location, Value, Value u) { return u; });
  if (red == "add")
    return std::function<Value(OpBuilder &, Location, Value, Value)>(addOp);
  if (red == "mul")
    return std::function<Value(OpBuilder &, Location, Value, Value)>(mulOp);
  if (red == "max")
    return std::function<Value(OpBuilder &, Location, Value, Value)>(uns ? maxUOp : maxOp);
  if (red == "min")
    return std::function<Value(OpBuilder &, Location, Value, Value)>(uns ? minUOp : minOp);
  return im.fail("unknown reduction '" + red + "'");
}

/// ScatterElements (and opset-9 Scatter) as an inverse map that needs no
/// constant indices: out[p] folds, in order, every update u with
/// u = p except along `axis` and indices[u] == p[axis] into data[p]. One
/// reduction loop over the indices' axis, O(out * indices.shape[axis]).
static LogicalResult handleScatterElements(OpContext &im) {
  Value data = im.input(0), indices = im.input(1), updates = im.input(2);
  SmallVector<int64_t> ds(im.shapeOf(data)), is(im.shapeOf(indices));
  int64_t rank = ds.size();
  if ((int64_t)is.size() != rank || im.shapeOf(updates) != ArrayRef<int64_t>(is))
    return im.fail("indices and updates must have the same shape and data's rank");
  auto axis = im.normalizeAxis(im.attrInt("axis", 0), rank);
  if (failed(axis))
    return failure();
  auto combine = scatterReduction(im);
  if (failed(combine))
    return failure();
  int64_t ax = *axis;
  MLIRContext *ctx = &im.ctx;
  int64_t dims = rank + 1;
  AffineMap outMap = AffineMap::getMultiDimIdentityMap(dims, ctx).getMajorSubMap(rank);
  // Copy data into a fresh tensor that the generic updates in place.
  auto init = im.elementwise({data}, im.elementType(data),
                             [](OpBuilder &, Location, ValueRange v) { return v[0]; });
  if (failed(init))
    return failure();
  SmallVector<IteratorType> iters(dims, IteratorType::parallel);
  iters[rank] = IteratorType::reduction;
  Value window = tensor::EmptyOp::create(im.b, im.loc, ArrayRef<int64_t>{is[ax]}, im.b.getI1Type());
  Value y = linalg::GenericOp::create(
      im.b, im.loc, TypeRange{init->getType()}, ValueRange{window}, ValueRange{*init},
      {AffineMap::get(dims, 0, {getAffineDimExpr(rank, ctx)}, ctx), outMap}, iters,
      [&](OpBuilder &ob, Location l, ValueRange v) {
        SmallVector<Value> u;
        Value ok;
        for (int64_t i = 0; i < rank; ++i) {
          Value pi = linalg::IndexOp::create(ob, l, i);
          if (i == ax) {
            u.push_back(linalg::IndexOp::create(ob, l, rank));
            continue;
          }
          if (is[i] < ds[i]) {
            Value in = arith::CmpIOp::create(ob, l, arith::CmpIPredicate::slt, pi, idxConst(ob, l, is[i]));
            ok = ok ? arith::AndIOp::create(ob, l, ok, in).getResult() : in;
          }
          u.push_back(clampIndex(ob, l, pi, 0, is[i] - 1));
        }
        Value target = normIndex(ob, l, tensor::ExtractOp::create(ob, l, indices, u), ds[ax]);
        Value hit = arith::CmpIOp::create(ob, l, arith::CmpIPredicate::eq, target,
                                          linalg::IndexOp::create(ob, l, ax));
        if (ok)
          hit = arith::AndIOp::create(ob, l, hit, ok);
        Value upd = tensor::ExtractOp::create(ob, l, updates, u);
        linalg::YieldOp::create(ob, l, arith::SelectOp::create(ob, l, hit, (*combine)(ob, l, v[1], upd), v[1]).getResult());
      }).getResult(0);
  im.setOutput(0, y);
  return success();
}

/// ScatterND as an inverse map: out[p] folds every update b (over the
/// indices' batch dims, in row-major order) with indices[b] == p[:L].
static LogicalResult handleScatterND(OpContext &im) {
  Value data = im.input(0), indices = im.input(1), updates = im.input(2);
  SmallVector<int64_t> ds(im.shapeOf(data)), is(im.shapeOf(indices)), us(im.shapeOf(updates));
  int64_t rank = ds.size();
  if (is.empty())
    return im.fail("indices must have rank >= 1");
  int64_t L = is.back(), nb = is.size() - 1;
  if (L > rank || (int64_t)us.size() != nb + rank - L)
    return im.fail("indices " + shapeStr(is) + " and updates " + shapeStr(us) +
                   " do not fit data " + shapeStr(ds));
  auto combine = scatterReduction(im);
  if (failed(combine))
    return failure();
  MLIRContext *ctx = &im.ctx;
  int64_t dims = rank + nb;
  AffineMap outMap = AffineMap::getMultiDimIdentityMap(dims, ctx).getMajorSubMap(rank);
  auto init = im.elementwise({data}, im.elementType(data),
                             [](OpBuilder &, Location, ValueRange v) { return v[0]; });
  if (failed(init))
    return failure();
  SmallVector<IteratorType> iters(dims, IteratorType::parallel);
  SmallVector<AffineExpr> we;
  SmallVector<int64_t> wshape(is.begin(), is.end() - 1);
  for (int64_t i = 0; i < nb; ++i) {
    iters[rank + i] = IteratorType::reduction;
    we.push_back(getAffineDimExpr(rank + i, ctx));
  }
  SmallVector<Value> ins;
  SmallVector<AffineMap> maps;
  if (nb) {
    ins.push_back(tensor::EmptyOp::create(im.b, im.loc, wshape, im.b.getI1Type()));
    maps.push_back(AffineMap::get(dims, 0, we, ctx));
  }
  maps.push_back(outMap);
  Value y = linalg::GenericOp::create(
      im.b, im.loc, TypeRange{init->getType()}, ins, ValueRange{*init}, maps, iters,
      [&](OpBuilder &ob, Location l, ValueRange v) {
        SmallVector<Value> bidx, uidx;
        for (int64_t i = 0; i < nb; ++i)
          bidx.push_back(linalg::IndexOp::create(ob, l, rank + i));
        Value hit;
        for (int64_t j = 0; j < L; ++j) {
          SmallVector<Value> at(bidx);
          at.push_back(idxConst(ob, l, j));
          Value t = normIndex(ob, l, tensor::ExtractOp::create(ob, l, indices, at), ds[j]);
          Value eq = arith::CmpIOp::create(ob, l, arith::CmpIPredicate::eq, t,
                                           linalg::IndexOp::create(ob, l, j));
          hit = hit ? arith::AndIOp::create(ob, l, hit, eq).getResult() : eq;
        }
        uidx = bidx;
        for (int64_t j = L; j < rank; ++j)
          uidx.push_back(linalg::IndexOp::create(ob, l, j));
        Value acc = v.back();
        Value upd = tensor::ExtractOp::create(ob, l, updates, uidx);
        Value r = (*combine)(ob, l, acc, upd);
        linalg::YieldOp::create(ob, l, hit ? arith::SelectOp::create(ob, l, hit, r, acc).getResult() : r);
      }).getResult(0);
  im.setOutput(0, y);
  return success();
}

// RoiAlign

/// RoiAlign with a fixed sampling grid per bin: the bins' sample points
/// are the reduction loops, each sample bilinearly interpolated in f64 the
/// way ONNX's reference computes them, then averaged or maxed.
/// `defaultCtm`: output_half_pixel at opset 10, where it was the only
/// mode; opset 16 added the attribute with half_pixel as its default.
static LogicalResult handleRoiAlign(OpContext &im, StringRef defaultCtm) {
  Value x = im.input(0), rois = im.input(1), batch = im.input(2);
  ArrayRef<int64_t> xs = im.shapeOf(x), rs = im.shapeOf(rois);
  Type et = im.elementType(x);
  if (!isa<FloatType>(et))
    return im.fail("supported for floating-point inputs only");
  if (xs.size() != 4 || rs.size() != 2 || rs[1] != 4 ||
      im.shapeOf(batch) != ArrayRef<int64_t>{rs[0]})
    return im.fail("X must be N x C x H x W, rois R x 4 and batch_indices [R]");
  std::string mode = im.attrString("mode", "avg");
  if (mode != "avg" && mode != "max")
    return im.fail("unknown mode '" + mode + "'");
  std::string ctm = im.attrString("coordinate_transformation_mode", defaultCtm);
  if (ctm != "half_pixel" && ctm != "output_half_pixel")
    return im.fail("unknown coordinate_transformation_mode '" + ctm + "'");
  int64_t oh = im.attrInt("output_height", 1), ow = im.attrInt("output_width", 1);
  int64_t ratio = im.attrInt("sampling_ratio", 0);
  double scale = im.attrFloat("spatial_scale", 1.0f);
  if (oh <= 0 || ow <= 0)
    return im.fail("output_height and output_width must be positive");
  if (ratio <= 0)
    return im.fail("sampling_ratio=0 (a per-roi adaptive grid sized by the roi data) is not "
                   "supported; give a positive sampling_ratio");
  bool halfPixel = ctm == "half_pixel", isMax = mode == "max";
  int64_t n = xs[0], h = xs[2], w = xs[3];
  SmallVector<int64_t> outShape = {rs[0], xs[1], oh, ow};
  Type f64 = im.b.getF64Type();
  TypedAttr init = isMax ? cast<TypedAttr>(FloatAttr::get(et, -INFINITY))
                         : cast<TypedAttr>(im.b.getZeroAttr(et));
  Value y = reduceOver(
      im, outShape, {ratio, ratio}, init,
      [&](OpBuilder &ob, Location l, ValueRange o, ValueRange g) -> Value {
        auto f = [&](double v) -> Value {
          return arith::ConstantOp::create(ob, l, FloatAttr::get(f64, v));
        };
        auto add = [&](Value a, Value b) -> Value { return arith::AddFOp::create(ob, l, a, b); };
        auto sub = [&](Value a, Value b) -> Value { return arith::SubFOp::create(ob, l, a, b); };
        auto mul = [&](Value a, Value b) -> Value { return arith::MulFOp::create(ob, l, a, b); };
        auto toF = [&](Value i) -> Value {
          return arith::SIToFPOp::create(ob, l, f64,
                                         arith::IndexCastOp::create(ob, l, ob.getI64Type(), i));
        };
        auto roi = [&](int64_t k) -> Value {
          Value v = tensor::ExtractOp::create(ob, l, rois, ValueRange{o[0], idx(ob, l, k)});
          if (v.getType() != f64)
            v = arith::ExtFOp::create(ob, l, f64, v);
          return sub(mul(v, f(scale)), f(halfPixel ? 0.5 : 0.0));
        };
        Value start[2] = {roi(1), roi(0)}, end[2] = {roi(3), roi(2)};
        int64_t bins[2] = {oh, ow}, size[2] = {h, w};
        Value c[2];
        Value outside;
        for (int64_t d = 0; d < 2; ++d) {
          Value len = sub(end[d], start[d]);
          if (!halfPixel)
            len = arith::MaximumFOp::create(ob, l, len, f(1.0));
          Value bin = arith::DivFOp::create(ob, l, len, f((double)bins[d]));
          // start + o * bin + (g + 0.5) * bin / ratio
          Value p = add(add(start[d], mul(toF(o[2 + d]), bin)),
                        arith::DivFOp::create(ob, l, mul(add(toF(g[d]), f(0.5)), bin),
                                              f((double)ratio)));
          Value out = arith::OrIOp::create(
              ob, l, arith::CmpFOp::create(ob, l, arith::CmpFPredicate::OLT, p, f(-1.0)),
              arith::CmpFOp::create(ob, l, arith::CmpFPredicate::OGT, p, f((double)size[d])));
          outside = outside ? arith::OrIOp::create(ob, l, outside, out).getResult() : out;
          c[d] = arith::MaximumFOp::create(ob, l, p, f(0.0));
        }
        Value lo[2], hi[2], frac[2];
        for (int64_t d = 0; d < 2; ++d) {
          Value li = arith::IndexCastOp::create(ob, l, ob.getIndexType(),
                                                arith::FPToSIOp::create(ob, l, ob.getI64Type(), c[d]));
          // At or past the last row/column the sample snaps onto it.
          Value last = cmpI(ob, l, arith::CmpIPredicate::sge, li, idx(ob, l, size[d] - 1));
          lo[d] = arith::SelectOp::create(ob, l, last, idx(ob, l, size[d] - 1), li);
          hi[d] = arith::SelectOp::create(ob, l, last, lo[d],
                                          arith::AddIOp::create(ob, l, li, idx(ob, l, 1)));
          Value cv = arith::SelectOp::create(ob, l, last, toF(lo[d]), c[d]);
          frac[d] = sub(cv, toF(lo[d]));
        }
        Value bi = arith::IndexCastOp::create(
            ob, l, ob.getIndexType(), tensor::ExtractOp::create(ob, l, batch, ValueRange{o[0]}));
        bi = clampIdx(ob, l, bi, 0, n - 1);
        Value vals[4], wts[4];
        for (int64_t k = 0; k < 4; ++k) {
          Value yy = k < 2 ? lo[0] : hi[0], xx = k % 2 ? hi[1] : lo[1];
          Value wy = k < 2 ? sub(f(1.0), frac[0]) : frac[0];
          Value wx = k % 2 ? frac[1] : sub(f(1.0), frac[1]);
          Value wt = mul(wy, wx);
          wts[k] = et == f64 ? wt : arith::TruncFOp::create(ob, l, et, wt).getResult();
          vals[k] = tensor::ExtractOp::create(ob, l, x, ValueRange{bi, o[1], yy, xx});
        }
        Value r;
        for (int64_t k = 0; k < 4; ++k) {
          Value t = arith::MulFOp::create(ob, l, wts[k], vals[k]);
          r = !r ? t
              : isMax ? arith::MaximumFOp::create(ob, l, r, t).getResult()
                      : arith::AddFOp::create(ob, l, r, t).getResult();
        }
        if (!isMax)
          r = arith::DivFOp::create(ob, l, r, im.constantScalar(ob, l, et, (double)(ratio * ratio)));
        return arith::SelectOp::create(ob, l, outside, im.constantScalar(ob, l, et, 0.0), r);
      },
      [&](OpBuilder &ob, Location l, Value a, Value v) -> Value {
        if (isMax)
          return arith::MaximumFOp::create(ob, l, a, v);
        return arith::AddFOp::create(ob, l, a, v);
      });
  im.setOutput(0, y);
  return success();
}

static LogicalResult handleSTFT(OpContext &im) {
  Value x = im.input(0);
  ArrayRef<int64_t> xs = im.shapeOf(x);
  Type et = im.elementType(x);
  if (!isa<FloatType>(et))
    return im.fail("supported for floating-point inputs only");
  if (xs.size() != 3 || (xs[2] != 1 && xs[2] != 2))
    return im.fail("signal " + shapeStr(xs) + " must be batch x length x (1 or 2)");
  auto stepV = im.constInts(1, "frame_step");
  if (failed(stepV))
    return failure();
  if (stepV->size() != 1 || (*stepV)[0] <= 0)
    return im.fail("frame_step must be a positive scalar");
  int64_t step = (*stepV)[0], len = xs[1], ci = xs[2];
  bool hasWindow = im.hasInput(2);
  int64_t n = hasWindow ? im.shapeOf(im.input(2))[0] : len;
  if (hasWindow && im.shapeOf(im.input(2)).size() != 1)
    return im.fail("window must be 1-D");
  if (im.hasInput(3)) {
    auto fl = im.constInts(3, "frame_length");
    if (failed(fl))
      return failure();
    if (fl->size() != 1)
      return im.fail("frame_length must be a scalar");
    if (hasWindow && (*fl)[0] != n)
      return im.fail(llvm::formatv("frame_length {0} does not match the window's length {1}",
                                   (*fl)[0], n)
                         .str());
    n = (*fl)[0];
  }
  if (n <= 0 || n > len)
    return im.fail(llvm::formatv("frame length {0} must be in [1, {1}]", n, len).str());
  bool onesided = im.attrInt("onesided", 1);
  int64_t frames = 1 + (len - n) / step;
  DftMatrix d = dftMatrix(n, n, ci, false, onesided);
  auto mat = dftConstant(im, d, et);
  if (failed(mat))
    return failure();
  SmallVector<int64_t> outShape = {xs[0], frames, d.nOut, 2};
  // Loops: b, f, k, to, j, ti.
  MLIRContext *ctx = &im.ctx;
  auto dd = [&](int64_t i) { return getAffineDimExpr(i, ctx); };
  SmallVector<Value> ins = {x, *mat};
  SmallVector<AffineMap> maps = {
      AffineMap::get(6, 0, {dd(0), dd(1) * step + dd(4), dd(5)}, ctx),
      AffineMap::get(6, 0, {dd(2), dd(3), dd(4), dd(5)}, ctx)};
  if (hasWindow) {
    Value win = im.input(2);
    if (im.elementType(win) != et)
      return im.fail("window must have the signal's element type");
    ins.push_back(win);
    maps.push_back(AffineMap::get(6, 0, {dd(4)}, ctx));
  }
  maps.push_back(AffineMap::get(6, 0, {dd(0), dd(1), dd(2), dd(3)}, ctx));
  Value init = im.fill(outShape, cast<TypedAttr>(im.b.getZeroAttr(et)));
  SmallVector<IteratorType> iters(6, IteratorType::parallel);
  iters[4] = iters[5] = IteratorType::reduction;
  Value y = linalg::GenericOp::create(
                im.b, im.loc, TypeRange{init.getType()}, ins, ValueRange{init}, maps, iters,
                [&](OpBuilder &ob, Location l, ValueRange v) {
                  Value p = arith::MulFOp::create(ob, l, v[0], v[1]);
                  if (hasWindow)
                    p = arith::MulFOp::create(ob, l, p, v[2]);
                  linalg::YieldOp::create(
                      ob, l, arith::AddFOp::create(ob, l, v.back(), p).getResult());
                })
                .getResult(0);
  im.setOutput(0, y);
  return success();
}

/// ReverseSequence: along time_axis, the first sequence_lens[b] elements of
/// batch b come reversed, the rest unchanged. The lengths are runtime data.
static LogicalResult handleReverseSequence(OpContext &im) {
  Value x = im.input(0), lens = im.input(1);
  ArrayRef<int64_t> xs = im.shapeOf(x);
  if (xs.size() < 2)
    return im.fail("input must have rank >= 2");
  int64_t ta = im.attrInt("time_axis", 0), ba = im.attrInt("batch_axis", 1);
  if (!((ta == 0 && ba == 1) || (ta == 1 && ba == 0)))
    return im.fail(llvm::formatv("time_axis {0} and batch_axis {1} must be 0 and 1 in some order",
                                 ta, ba)
                       .str());
  if (im.shapeOf(lens) != ArrayRef<int64_t>{xs[ba]})
    return im.fail("sequence_lens must have shape [" + std::to_string(xs[ba]) + "]");
  int64_t steps = xs[ta];
  Value y = indexedGeneric(im, xs, im.elementType(x), [&](OpBuilder &ob, Location l, ValueRange a) {
    Value n = arith::IndexCastOp::create(ob, l, ob.getIndexType(),
                                         tensor::ExtractOp::create(ob, l, lens, ValueRange{a[ba]}));
    n = clampIdx(ob, l, n, 0, steps);
    Value t = a[ta];
    Value rev = arith::SubIOp::create(ob, l, arith::SubIOp::create(ob, l, n, idx(ob, l, 1)), t);
    Value inSeq = cmpI(ob, l, arith::CmpIPredicate::slt, t, n);
    SmallVector<Value> at(a.begin(), a.end());
    at[ta] = arith::SelectOp::create(ob, l, inSeq, rev, t);
    return tensor::ExtractOp::create(ob, l, x, at).getResult();
  });
  im.setOutput(0, y);
  return success();
}

// RotaryEmbedding (opset 23)

/// Each output element reads its rotation partner and its cos/sin entry with
/// tensor.extract: the partner index (d +- rotary_dim/2, or d ^ 1 when
/// interleaved) and the position gather are not affine.
static LogicalResult handleRotaryEmbedding(OpContext &im) {
  Value x = im.input(0), cosC = im.input(1), sinC = im.input(2);
  Type et = im.elementType(x);
  if (!isHalfOrFloat(et))
    return im.fail("supported for float, float16 and bfloat16 inputs only");
  if (im.elementType(cosC) != et || im.elementType(sinC) != et)
    return im.fail("cos_cache and sin_cache must have the input's element type");
  SmallVector<int64_t> xs(im.shapeOf(x));
  int64_t rank = xs.size();
  if (rank != 3 && rank != 4)
    return im.fail("input must be 3-D (batch, seq, hidden) or 4-D (batch, heads, seq, "
                   "head_size), got " + shapeStr(xs));
  int64_t B = xs[0], S = rank == 4 ? xs[2] : xs[1], D = xs.back();
  if (rank == 3) {
    int64_t heads = im.attrInt("num_heads", 0);
    if (heads <= 0)
      return im.fail("a 3-D input needs a positive num_heads attribute");
    if (xs[2] % heads != 0)
      return im.fail(llvm::formatv("hidden size {0} is not divisible by num_heads {1}", xs[2],
                                   heads)
                         .str());
    D = xs[2] / heads;
  }
  int64_t rd = im.attrInt("rotary_embedding_dim", 0);
  if (rd == 0)
    rd = D;
  if (rd < 0 || rd > D || rd % 2 != 0)
    return im.fail(llvm::formatv("rotary_embedding_dim {0} must be even and at most the head "
                                 "size {1}",
                                 rd, D)
                       .str());
  int64_t half = rd / 2;
  bool interleaved = im.attrInt("interleaved", 0) != 0;
  Value pos = im.hasInput(3) ? im.input(3) : Value();
  ArrayRef<int64_t> cs = im.shapeOf(cosC);
  if (im.shapeOf(sinC) != cs)
    return im.fail("cos_cache " + shapeStr(cs) + " and sin_cache " +
                   shapeStr(im.shapeOf(sinC)) + " differ in shape");
  if (pos) {
    if (!im.elementType(pos).isInteger(64) || im.shapeOf(pos) != ArrayRef<int64_t>{B, S})
      return im.fail(llvm::formatv("position_ids must be int64 of shape [{0},{1}]", B, S).str());
    if (cs.size() != 2 || cs[1] != half || cs[0] <= 0)
      return im.fail(llvm::formatv("with position_ids the caches must be [max_position, {0}], "
                                   "got {1}",
                                   half, shapeStr(cs))
                         .str());
  } else if (cs != ArrayRef<int64_t>{B, S, half}) {
    return im.fail(llvm::formatv("without position_ids the caches must be [{0},{1},{2}], got {3}",
                                 B, S, half, shapeStr(cs))
                       .str());
  }
  int64_t maxPos = cs[0];
  Type ct = computeType(et);
  Value y = parallelGeneric(im, xs, et, {}, {}, [&](OpBuilder &ob, Location l, ValueRange iv,
                                                    ValueRange) -> Value {
    Value b = iv[0], s = rank == 4 ? iv[2] : iv[1], h, d;
    if (rank == 4) {
      h = iv[1], d = iv[3];
    } else {
      h = arith::DivUIOp::create(ob, l, iv[2], idx(ob, l, D));
      d = arith::RemUIOp::create(ob, l, iv[2], idx(ob, l, D));
    }
    auto readX = [&](Value dd) -> Value {
      SmallVector<Value> at = {b, h, s, dd};
      if (rank == 3)
        at = {b, s, arith::AddIOp::create(ob, l, arith::MulIOp::create(ob, l, h, idx(ob, l, D)), dd)};
      return tensor::ExtractOp::create(ob, l, x, at);
    };
    auto lt = [&](Value a, Value c) {
      return arith::CmpIOp::create(ob, l, arith::CmpIPredicate::ult, a, c);
    };
    // `first`: d holds the real part (cos x1 - sin x2); `i`: the pair's
    // index in the caches; x1/x2 at d1/d2. Indices beyond rotary_dim are
    // clamped so their (discarded) reads stay in bounds.
    Value first, i, d1, d2;
    Value dr = arith::MinUIOp::create(ob, l, d, idx(ob, l, rd - 1));
    if (interleaved) {
      first = arith::CmpIOp::create(
          ob, l, arith::CmpIPredicate::eq,
          arith::RemUIOp::create(ob, l, dr, idx(ob, l, 2)), idx(ob, l, 0));
      i = arith::DivUIOp::create(ob, l, dr, idx(ob, l, 2));
      d1 = arith::MulIOp::create(ob, l, i, idx(ob, l, 2));
      d2 = arith::AddIOp::create(ob, l, d1, idx(ob, l, 1));
    } else {
      first = lt(dr, idx(ob, l, half));
      i = arith::SelectOp::create(ob, l, first, dr,
                                  arith::SubIOp::create(ob, l, dr, idx(ob, l, half)));
      d1 = i;
      d2 = arith::AddIOp::create(ob, l, i, idx(ob, l, half));
    }
    SmallVector<Value> at = {b, s, i};
    if (pos) {
      Value p = tensor::ExtractOp::create(ob, l, pos, ValueRange{b, s});
      p = arith::IndexCastOp::create(ob, l, ob.getIndexType(), p);
      p = arith::MaxSIOp::create(ob, l, p, idx(ob, l, 0));
      p = arith::MinSIOp::create(ob, l, p, idx(ob, l, maxPos - 1));
      at = {p, i};
    }
    Value c = convertF(ob, l, tensor::ExtractOp::create(ob, l, cosC, at), ct);
    Value sn = convertF(ob, l, tensor::ExtractOp::create(ob, l, sinC, at), ct);
    Value x1 = convertF(ob, l, readX(d1), ct), x2 = convertF(ob, l, readX(d2), ct);
    Value real = arith::SubFOp::create(ob, l, arith::MulFOp::create(ob, l, c, x1),
                                       arith::MulFOp::create(ob, l, sn, x2));
    Value imag = arith::AddFOp::create(ob, l, arith::MulFOp::create(ob, l, sn, x1),
                                       arith::MulFOp::create(ob, l, c, x2));
    Value rot = convertF(ob, l, arith::SelectOp::create(ob, l, first, real, imag), et);
    return arith::SelectOp::create(ob, l, lt(d, idx(ob, l, rd)), rot, readX(d));
  });
  im.setOutput(0, y);
  return success();
}

// Scan

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
  if (int64_t limit = im.importOptions().maxLoopIterations; length > limit)
    return im.fail("the scan runs " + Twine(length) + " iterations; Kiln unrolls scans at "
                   "compile time and stops at " + Twine(limit) + " (--max-loop-iterations)");

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
static FailureOr<SmallVector<int64_t>> listAttr(OpContext &im, StringRef name, int64_t n,
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

/// What both forms of Scan read first: the body, and the state and scan
/// input names that follow the node's first `first` inputs.
namespace {
struct ScanOperands {
  const onnx::GraphProto *body;
  int64_t nIns, nStates, nOuts;
  SmallVector<std::string> states, ins;
};
} // namespace

static FailureOr<ScanOperands> scanOperands(Importer &im, int64_t first) {
  ScanOperands ops;
  ops.body = graphAttr(im, "body");
  if (!ops.body)
    return failure();
  const onnx::AttributeProto *m = im.attr("num_scan_inputs");
  if (!m)
    return im.fail("missing attribute 'num_scan_inputs'");
  ops.nIns = m->i();
  ops.nStates = im.node->input_size() - first - ops.nIns;
  if (ops.nIns <= 0 || ops.nStates < 0)
    return im.fail("num_scan_inputs " + Twine(ops.nIns) + " does not fit the node's inputs");
  ops.nOuts = ops.body->output_size() - ops.nStates;
  if (ops.nOuts < 0 || (int64_t)im.numOutputs() > ops.nStates + ops.nOuts)
    return im.fail("the node's outputs do not match the body's");
  for (int64_t i = 0; i < ops.nStates + ops.nIns; ++i) {
    if (!im.hasInput(first + i))
      return im.fail("input " + Twine(first + i) + " is missing");
    (i < ops.nStates ? ops.states : ops.ins).push_back(im.node->input(first + i));
  }
  return ops;
}

/// Scan from opset 9: per-input and per-output axes and directions.
static LogicalResult handleScan9(OpContext &ctx) {
  Importer &im = ctx.importer();
  auto ops = scanOperands(im, 0);
  if (failed(ops))
    return failure();
  auto inAxes = listAttr(im, "scan_input_axes", ops->nIns, false);
  auto inDirs = listAttr(im, "scan_input_directions", ops->nIns, true);
  auto outAxes = listAttr(im, "scan_output_axes", ops->nOuts, false);
  auto outDirs = listAttr(im, "scan_output_directions", ops->nOuts, true);
  if (failed(inAxes) || failed(inDirs) || failed(outAxes) || failed(outDirs))
    return failure();
  ScanSpec spec = {*inAxes, *inDirs, *outAxes, *outDirs};
  SmallVector<std::string> states = ops->states, outs;
  if (failed(unrollScan(im, *ops->body, states, ops->ins, spec, outs)))
    return failure();
  states.append(outs.begin(), outs.end());
  setOutputs(im, states);
  return success();
}

/// Scan at opset 8: a leading optional sequence_lens input, and every input
/// has a batch axis 0. Scans every batch entry along its axis 1, then
/// stacks.
static LogicalResult handleScan8(OpContext &ctx) {
  Importer &im = ctx.importer();
  auto ops = scanOperands(im, 1);
  if (failed(ops))
    return failure();
  int64_t nIns = ops->nIns, nStates = ops->nStates, nOuts = ops->nOuts;
  SmallVector<std::string> &states = ops->states, &ins = ops->ins;
  auto dirs = listAttr(im, "directions", nIns, true);
  if (failed(dirs))
    return failure();
  if (llvm::is_contained(*dirs, 1))
    return im.fail("reverse directions of opset-8 Scan are not supported");
  ScanSpec spec = {SmallVector<int64_t>(nIns, 0), *dirs, SmallVector<int64_t>(nOuts, 0),
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
    if (failed(unrollScan(im, *ops->body, st, in, spec, outs)))
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

static void setSequence(Importer &im, unsigned i, SmallVector<std::string> elems) {
  if (im.wantsOutput(i))
    im.sequences[im.node->output(i)] = std::move(elems);
}

/// Position input `i` resolved against a sequence of `size` elements;
/// `size` itself is allowed when `allowEnd` (insertion).
static FailureOr<int64_t> position(OpContext &im, unsigned i, int64_t size, bool allowEnd,
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

static LogicalResult handleSequenceConstruct(OpContext &ctx) {
  Importer &im = ctx.importer();
  SmallVector<std::string> elems;
  for (int i = 0; i < im.node->input_size(); ++i) {
    if (!im.hasInput(i) || !isTensor(im, im.node->input(i)))
      return im.fail("input " + Twine(i) + " must be a tensor");
    elems.push_back(elementOf(im, im.node->input(i)));
  }
  setSequence(im, 0, std::move(elems));
  return success();
}

static LogicalResult handleSequenceInsert(OpContext &ctx) {
  Importer &im = ctx.importer();
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

static LogicalResult handleSequenceErase(OpContext &ctx) {
  Importer &im = ctx.importer();
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

static LogicalResult handleSequenceAt(OpContext &ctx) {
  Importer &im = ctx.importer();
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

static LogicalResult handleSequenceLength(OpContext &ctx) {
  Importer &im = ctx.importer();
  auto seq = sequenceInput(im, 0);
  if (failed(seq))
    return failure();
  im.setConstOutput(0, i64Attr(im, {}, {(int64_t)seq->size()}));
  return success();
}

static LogicalResult handleSplitToSequence(OpContext &ctx) {
  Importer &im = ctx.importer();
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

static LogicalResult handleSequenceMap(OpContext &ctx) {
  Importer &im = ctx.importer();
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
// Registration
//===----------------------------------------------------------------------===//

/// Registers Reduce* op `name`: its axes are an attribute until opset
/// `inputSince`, input 1 from then on.
template <ReduceKind kind>
static void onReduce(OpRegistry &r, StringRef name, int64_t inputSince) {
  r.onOp("", name, 1, [](OpContext &im) { return handleReduce(im, kind, /*axesInput=*/false); });
  r.onOp("", name, inputSince,
         [](OpContext &im) { return handleReduce(im, kind, /*axesInput=*/true); });
}

void kiln::detail::registerDefaultDomainRtoS(OpRegistry &r) {
  r.onOp("", "RMSNormalization", 23, handleRMSNorm);
  r.onOp("", "RNN", 7, [](OpContext &im) { return handleRecurrent(im, {1, {"Tanh"}}); });
  r.onOp("", "Reciprocal", 1, [](OpContext &im) {
    return unary(im, [&im](OpBuilder &ob, Location l, ValueRange v) -> Value {
      return arith::DivFOp::create(ob, l, cst(im, ob, l, v[0], 1.0), v[0]);
    });
  });
  onReduce<ReduceKind::L1>(r, "ReduceL1", 18);
  onReduce<ReduceKind::L2>(r, "ReduceL2", 18);
  onReduce<ReduceKind::LogSum>(r, "ReduceLogSum", 18);
  onReduce<ReduceKind::LogSumExp>(r, "ReduceLogSumExp", 18);
  onReduce<ReduceKind::Max>(r, "ReduceMax", 18);
  onReduce<ReduceKind::Mean>(r, "ReduceMean", 18);
  onReduce<ReduceKind::Min>(r, "ReduceMin", 18);
  onReduce<ReduceKind::Prod>(r, "ReduceProd", 18);
  onReduce<ReduceKind::Sum>(r, "ReduceSum", 13);
  onReduce<ReduceKind::SumSquare>(r, "ReduceSumSquare", 18);
  r.onOp("", "Relu", 1, [](OpContext &im) {
    return unary(im, F_BODY(maxOp(ob, l, v[0], zeroOf(ob, l, v[0].getType()))), false);
  });
  r.onOp("", "Reshape", 1, handleReshape);
  r.onOp("", "Resize", 10, [](OpContext &im) { return handleResize(im, ResizeForm::Resize10); });
  r.onOp("", "Resize", 11, [](OpContext &im) { return handleResize(im, ResizeForm::Resize11); });
  r.onOp("", "ReverseSequence", 10, handleReverseSequence);
  r.onOp("", "RoiAlign", 10, [](OpContext &im) { return handleRoiAlign(im, "output_half_pixel"); });
  r.onOp("", "RoiAlign", 16, [](OpContext &im) { return handleRoiAlign(im, "half_pixel"); });
  r.onOp("", "RotaryEmbedding", 23, handleRotaryEmbedding);
  // ONNX rounds halves to even, like numpy.
  r.onOp("", "Round", 11, [](OpContext &im) { return mathUnary<math::RoundEvenOp>(im); });
  r.onOp("", "STFT", 17, handleSTFT);
  r.onOp("", "Scan", 8, handleScan8);
  r.onOp("", "Scan", 9, handleScan9);
  r.onOp("", "Scatter", 9, handleScatterElements);
  r.onOp("", "ScatterElements", 11, handleScatterElements);
  r.onOp("", "ScatterND", 11, handleScatterND);
  r.onOp("", "Selu", 1, [](OpContext &im) {
    double alpha = im.attrFloat("alpha", 1.67326319217681884765625f);
    double gamma = im.attrFloat("gamma", 1.05070102214813232421875f);
    return unary(im, [&](OpBuilder &ob, Location l, ValueRange v) -> Value {
      Value pos = arith::CmpFOp::create(ob, l, arith::CmpFPredicate::OGT, v[0],
                                        zeroOf(ob, l, v[0].getType()));
      Value e = arith::SubFOp::create(
          ob, l, arith::MulFOp::create(ob, l, math::ExpOp::create(ob, l, v[0]),
                                       cst(im, ob, l, v[0], alpha)),
          cst(im, ob, l, v[0], alpha));
      Value y = arith::SelectOp::create(ob, l, pos, v[0], e);
      return arith::MulFOp::create(ob, l, y, cst(im, ob, l, v[0], gamma));
    });
  });
  r.onOp("", "SequenceAt", 11, handleSequenceAt);
  r.onOp("", "SequenceConstruct", 11, handleSequenceConstruct);
  r.onOp("", "SequenceEmpty", 11, [](OpContext &ctx) {
    setSequence(ctx.importer(), 0, {});
    return success();
  });
  r.onOp("", "SequenceErase", 11, handleSequenceErase);
  r.onOp("", "SequenceInsert", 11, handleSequenceInsert);
  r.onOp("", "SequenceLength", 11, handleSequenceLength);
  r.onOp("", "SequenceMap", 17, handleSequenceMap);
  r.onOp("", "Shrink", 9, handleShrink);
  r.onOp("", "Sigmoid", 1, [](OpContext &im) {
    return unary(im, [&im](OpBuilder &ob, Location l, ValueRange v) { return sigmoid(im, ob, l, v[0]); });
  });
  r.onOp("", "Sign", 9, handleSign);
  r.onOp("", "Sin", 7, [](OpContext &im) { return mathUnary<math::SinOp>(im); });
  r.onOp("", "Sinh", 9, [](OpContext &im) { return mathUnary<math::SinhOp>(im); });
  r.onOp("", "Slice", 1, [](OpContext &im) { return handleSlice(im, /*inputs=*/false); });
  r.onOp("", "Slice", 10, [](OpContext &im) { return handleSlice(im, /*inputs=*/true); });
  r.onOp("", "Softmax", 1, [](OpContext &im) { return handleSoftmax(im, false, /*coerce2D=*/true); });
  r.onOp("", "Softmax", 13, [](OpContext &im) { return handleSoftmax(im, false, /*coerce2D=*/false); });
  r.onOp("", "SoftmaxCrossEntropyLoss", 12, handleSCELoss);
  r.onOp("", "Softplus", 1, [](OpContext &im) {
    return unary(im, [&im](OpBuilder &ob, Location l, ValueRange v) -> Value {
      return math::Log1pOp::create(ob, l, math::ExpOp::create(ob, l, v[0]));
    });
  });
  r.onOp("", "Softsign", 1, [](OpContext &im) {
    return unary(im, [&im](OpBuilder &ob, Location l, ValueRange v) -> Value {
      Value d = arith::AddFOp::create(ob, l, cst(im, ob, l, v[0], 1.0),
                                      math::AbsFOp::create(ob, l, v[0]));
      return arith::DivFOp::create(ob, l, v[0], d);
    });
  });
  r.onOp("", "SpaceToDepth", 1, [](OpContext &im) { return handleDepthSpace(im, false); });
  r.onOp("", "Split", 1, [](OpContext &im) { return handleSplit(im, SplitForm::InputOrAttr); });
  r.onOp("", "Split", 2, [](OpContext &im) { return handleSplit(im, SplitForm::Attr); });
  r.onOp("", "Split", 13, [](OpContext &im) { return handleSplit(im, SplitForm::Input); });
  r.onOp("", "Split", 18,
         [](OpContext &im) { return handleSplit(im, SplitForm::InputOrNumOutputs); });
  r.onOp("", "SplitToSequence", 11, handleSplitToSequence);
  r.onOp("", "Sqrt", 1, [](OpContext &im) { return mathUnary<math::SqrtOp>(im); });
  r.onOp("", "Squeeze", 1, [](OpContext &im) { return handleSqueeze(im, /*axesInput=*/false); });
  r.onOp("", "Squeeze", 13, [](OpContext &im) { return handleSqueeze(im, /*axesInput=*/true); });
  r.onOp("", "Sub", 1, [](OpContext &im) { return binary(im, subOp); });
  r.onOp("", "Sum", 1, [](OpContext &im) { return variadic(im, addOp); });
  r.onOp("", "Swish", 24, [](OpContext &im) {
    double alpha = im.attrFloat("alpha", 1.0f);
    return unary(im, [&](OpBuilder &ob, Location l, ValueRange v) -> Value {
      Value ax = arith::MulFOp::create(ob, l, v[0], cst(im, ob, l, v[0], alpha));
      return arith::MulFOp::create(ob, l, v[0], sigmoid(im, ob, l, ax));
    });
  });
}

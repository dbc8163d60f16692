//===- OpFamilies.cpp - ONNX ops whose family spans several files ---------===//
//
// Implementations shared by ops registered in different DefaultDomain*.cpp
// files: pooling (AveragePool, LpPool, MaxPool, Global*Pool), Resize and
// Upsample, the recurrent layers (GRU, LSTM, RNN), Softmax and LogSoftmax,
// the normalizations, DepthToSpace and SpaceToDepth, the losses, DFT and
// STFT, the spectral windows, quantization parameters and the
// data-dependent-shape scans of NonZero, Compress and Unique.
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

LogicalResult kiln::detail::handleSoftmax(OpContext &im, bool log, bool coerce2D) {
  Value x = im.input(0);
  Type et = im.elementType(x);
  if (!isFloat(et))
    return im.fail("supported for floating-point inputs only");
  int64_t rank = im.shapeOf(x).size();
  auto axis = im.normalizeAxis(im.attrInt("axis", coerce2D ? 1 : -1), rank);
  if (failed(axis))
    return failure();
  // Before opset 13 the input is coerced to 2-D at `axis`: reduce all
  // trailing dimensions together.
  SmallVector<int64_t> axes = {*axis};
  if (coerce2D)
    for (int64_t i = *axis + 1; i < rank; ++i)
      axes.push_back(i);
  auto negInf = FloatAttr::get(et, -INFINITY);
  Value m = im.reduce(x, axes, true, negInf, [](OpBuilder &ob, Location l, Value a, Value v) {
    return maxOp(ob, l, a, v);
  });
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
  Value s = im.reduce(*e, axes, true, FloatAttr::get(et, 0.0),
                      [](OpBuilder &ob, Location l, Value a, Value v) { return addOp(ob, l, a, v); });
  FailureOr<Value> r;
  if (log)
    r = im.elementwise({*shifted, s}, et, [](OpBuilder &ob, Location l, ValueRange v) -> Value {
      return arith::SubFOp::create(ob, l, v[0], math::LogOp::create(ob, l, v[1]));
    });
  else
    r = im.elementwise({*e, s}, et, [](OpBuilder &ob, Location l, ValueRange v) -> Value {
      return arith::DivFOp::create(ob, l, v[0], v[1]);
    });
  if (failed(r))
    return failure();
  im.setOutput(0, *r);
  return success();
}

FailureOr<std::array<Value, 3>> kiln::detail::normalize(OpContext &im, Value x,
                                                 ArrayRef<int64_t> axes, double eps) {
  Type et = im.elementType(x);
  int64_t n = 1;
  for (int64_t a : axes)
    n *= im.shapeOf(x)[a];
  auto zero = FloatAttr::get(et, 0.0);
  auto sum = [](OpBuilder &ob, Location l, Value a, Value v) { return addOp(ob, l, a, v); };
  Value s = im.reduce(x, axes, true, zero, sum);
  auto mean = im.elementwise({s}, et, [&](OpBuilder &ob, Location l, ValueRange v) -> Value {
    return arith::DivFOp::create(ob, l, v[0], im.constantScalar(ob, l, et, (double)n));
  });
  if (failed(mean))
    return failure();
  auto centered = im.elementwise({x, *mean}, et, [](OpBuilder &ob, Location l, ValueRange v) -> Value {
    return arith::SubFOp::create(ob, l, v[0], v[1]);
  });
  if (failed(centered))
    return failure();
  auto sq = im.elementwise({*centered}, et, [](OpBuilder &ob, Location l, ValueRange v) -> Value {
    return arith::MulFOp::create(ob, l, v[0], v[0]);
  });
  if (failed(sq))
    return failure();
  Value ss = im.reduce(*sq, axes, true, zero, sum);
  auto inv = im.elementwise({ss}, et, [&](OpBuilder &ob, Location l, ValueRange v) -> Value {
    Value var = arith::DivFOp::create(ob, l, v[0], im.constantScalar(ob, l, et, (double)n));
    Value ve = arith::AddFOp::create(ob, l, var, im.constantScalar(ob, l, et, eps));
    return math::RsqrtOp::create(ob, l, ve);
  });
  if (failed(inv))
    return failure();
  auto y = im.elementwise({*centered, *inv}, et, [](OpBuilder &ob, Location l, ValueRange v) -> Value {
    return arith::MulFOp::create(ob, l, v[0], v[1]);
  });
  if (failed(y))
    return failure();
  return std::array<Value, 3>{*y, *mean, *inv};
}

Value kiln::detail::channelVector(OpContext &im, Value v, int64_t rank) {
  SmallVector<int64_t> shape = {im.shapeOf(v)[0]};
  for (int64_t i = 2; i < rank; ++i)
    shape.push_back(1);
  return im.reshape(v, shape);
}

LogicalResult kiln::detail::handlePool(OpContext &im, bool isMax, int64_t lpP) {
  Value x = im.input(0);
  ArrayRef<int64_t> xs = im.shapeOf(x);
  if (xs.size() < 3)
    return im.fail("input must be N x C x spatial");
  auto kernel = im.attrInts("kernel_shape");
  int64_t s = xs.size() - 2;
  if (!kernel || (int64_t)kernel->size() != s)
    return im.fail("kernel_shape must list one size per spatial dimension");
  auto g = windowGeometry(im, xs.drop_front(2), *kernel, im.attrInt("ceil_mode", 0));
  if (failed(g))
    return failure();
  Type et = im.elementType(x);
  bool isInt = isMax && isa<IntegerType>(et) && !et.isInteger(1);
  if (!isFloat(et) && !isInt)
    return im.fail(isMax ? "supported for floating-point and integer inputs only"
                         : "supported for floating-point inputs only");
  bool uns = im.isUnsigned(0);
  // Max pooling pads with the type's lowest value, which never wins.
  double lowest = !isInt ? -INFINITY
                  : uns  ? 0.0
                         : -std::ldexp(1.0, et.getIntOrFloatBitWidth() - 1);
  SmallVector<int64_t> lo = {0, 0}, hi = {0, 0};
  lo.append(g->padLo);
  hi.append(g->padHi);
  Value xp = im.pad(x, lo, hi, isMax ? lowest : 0.0);
  if (lpP > 0) {
    auto t = im.elementwise({xp}, et, [&](OpBuilder &ob, Location l, ValueRange v) -> Value {
      Value a = math::AbsFOp::create(ob, l, v[0]);
      if (lpP == 1)
        return a;
      if (lpP == 2)
        return arith::MulFOp::create(ob, l, a, a);
      return math::PowFOp::create(ob, l, a, im.constantScalar(ob, l, et, (double)lpP));
    });
    if (failed(t))
      return failure();
    xp = *t;
  }
  MLIRContext *ctx = &im.ctx;
  int64_t dims = 2 + 2 * s;
  auto d = [&](int64_t i) { return getAffineDimExpr(i, ctx); };
  SmallVector<AffineExpr> ex = {d(0), d(1)}, eo = {d(0), d(1)};
  for (int64_t i = 0; i < s; ++i) {
    ex.push_back(d(2 + s + i) * g->strides[i] + d(2 + i) * g->dilations[i]);
    eo.push_back(d(2 + s + i));
  }
  SmallVector<int64_t> outShape = {xs[0], xs[1]};
  outShape.append(g->out);
  Value init = im.fill(outShape, isInt ? cast<TypedAttr>(IntegerAttr::get(et, (int64_t)lowest))
                                       : FloatAttr::get(et, isMax ? -INFINITY : 0.0));
  SmallVector<IteratorType> iters(dims, IteratorType::parallel);
  for (int64_t i = 2; i < 2 + s; ++i)
    iters[i] = IteratorType::reduction;
  // Like linalg's pooling ops, a kernel-shaped operand whose values are
  // unused makes the window loops' ranges explicit.
  SmallVector<AffineExpr> ek;
  for (int64_t i = 0; i < s; ++i)
    ek.push_back(d(2 + i));
  Value window = tensor::EmptyOp::create(im.b, im.loc, g->kernel, et);
  SmallVector<AffineMap> maps = {AffineMap::get(dims, 0, ex, ctx), AffineMap::get(dims, 0, ek, ctx),
                                 AffineMap::get(dims, 0, eo, ctx)};
  Value y = linalg::GenericOp::create(
                im.b, im.loc, TypeRange{init.getType()}, ValueRange{xp, window}, ValueRange{init},
                maps, iters,
                [&](OpBuilder &ob, Location l, ValueRange v) {
                  linalg::YieldOp::create(ob, l, !isMax ? addOp(ob, l, v[2], v[0])
                                                 : uns  ? maxUOp(ob, l, v[2], v[0])
                                                        : maxOp(ob, l, v[2], v[0]));
                })
                .getResult(0);
  if (lpP > 0) {
    auto r = im.elementwise({y}, et, [&](OpBuilder &ob, Location l, ValueRange v) -> Value {
      if (lpP == 1)
        return v[0];
      if (lpP == 2)
        return math::SqrtOp::create(ob, l, v[0]);
      return math::PowFOp::create(ob, l, v[0], im.constantScalar(ob, l, et, 1.0 / lpP));
    });
    if (failed(r))
      return failure();
    im.setOutput(0, *r);
    return success();
  }
  if (!isMax) {
    // Divide by the number of window positions that count: inside the input
    // (count_include_pad=0) or inside input plus explicit pads.
    bool includePad = im.attrInt("count_include_pad", 0);
    SmallVector<int64_t> in(xs.drop_front(2));
    WindowGeometry geo = *g;
    SmallVector<int64_t> explicitHi(geo.padHi);
    if (auto pads = im.attrInts("pads"); pads && im.attrString("auto_pad", "NOTSET") == "NOTSET")
      for (int64_t i = 0; i < s; ++i)
        explicitHi[i] = (*pads)[i + s];
    // The divisor depends only on the output position: a host constant
    // [1, 1, out...], so targets see a plain broadcast operand.
    SmallVector<int64_t> outSpatial(outShape.begin() + 2, outShape.end());
    SmallVector<SmallVector<int64_t>> perDim(s);
    for (int64_t i = 0; i < s; ++i) {
      // Extra right padding added for ceil_mode never counts.
      int64_t lower = includePad ? -geo.padLo[i] : 0;
      int64_t upper = includePad ? in[i] + explicitHi[i] : in[i];
      for (int64_t o = 0; o < outSpatial[i]; ++o) {
        int64_t c = 0;
        for (int64_t j = 0; j < geo.kernel[i]; ++j) {
          int64_t p = o * geo.strides[i] - geo.padLo[i] + j * geo.dilations[i];
          c += lower <= p && p < upper;
        }
        perDim[i].push_back(std::max<int64_t>(c, 1));
      }
    }
    int64_t positions = 1;
    for (int64_t o : outSpatial)
      positions *= o;
    SmallVector<APFloat> counts;
    for (int64_t flat = 0; flat < positions; ++flat) {
      int64_t c = 1, rem = flat;
      for (int64_t i = s - 1; i >= 0; --i) {
        c *= perDim[i][rem % outSpatial[i]];
        rem /= outSpatial[i];
      }
      APFloat f(static_cast<double>(c));
      bool lost;
      f.convert(cast<FloatType>(et).getFloatSemantics(), APFloat::rmNearestTiesToEven, &lost);
      counts.push_back(f);
    }
    SmallVector<int64_t> countShape = {1, 1};
    countShape.append(outSpatial);
    Value countT = arith::ConstantOp::create(
        im.b, im.loc, DenseElementsAttr::get(RankedTensorType::get(countShape, et), counts));
    auto avg = im.elementwise({y, countT}, et, [](OpBuilder &ob, Location l, ValueRange v) -> Value {
      return arith::DivFOp::create(ob, l, v[0], v[1]);
    });
    if (failed(avg))
      return failure();
    y = *avg;
  }
  if (isMax && im.wantsOutput(1)) {
    int64_t order = im.attrInt("storage_order", 0);
    if (order != 0 && order != 1)
      return im.fail("storage_order must be 0 or 1");
    im.setOutput(1, maxPoolIndices(im, x, y, g->kernel, g->strides, g->dilations, g->padLo,
                                   order == 1));
  }
  im.setOutput(0, y);
  return success();
}

LogicalResult kiln::detail::handleIdentity(OpContext &im) {
  im.setOutput(0, im.input(0));
  return success();
}

FailureOr<Value> kiln::detail::nllLoss(OpContext &im, Value logp, Value target, Value weight) {
  Type et = im.elementType(logp);
  ArrayRef<int64_t> xs = im.shapeOf(logp);
  ArrayRef<int64_t> ts = im.shapeOf(target);
  if (xs.size() < 2 || ts.size() + 1 != xs.size() || ts[0] != xs[0])
    return im.fail("input " + shapeStr(xs) + " and target " + shapeStr(ts) +
                   " do not fit (N, C, d...) and (N, d...)");
  for (size_t i = 1; i < ts.size(); ++i)
    if (ts[i] != xs[i + 1])
      return im.fail("input " + shapeStr(xs) + " and target " + shapeStr(ts) + " do not fit");
  if (isa<FloatType>(im.elementType(target)))
    return im.fail("target must be an integer tensor");
  // One weight per class: any other shape would be indexed out of its rank.
  if (weight && (im.shapeOf(weight).size() != 1 || im.shapeOf(weight)[0] != xs[1]))
    return im.fail("weight " + shapeStr(im.shapeOf(weight)) + " must be [C], here [" +
                   std::to_string(xs[1]) + "] (input " + shapeStr(xs) + ")");
  std::string reduction = im.attrString("reduction", "mean");
  if (reduction != "none" && reduction != "sum" && reduction != "mean")
    return im.fail("reduction '" + reduction + "' is not none, sum or mean");
  const auto *ig = im.attr("ignore_index");
  int64_t ignore = ig ? ig->i() : 0;
  int64_t c = xs[1];
  int64_t rank = ts.size();
  // Per element: the weight that counts (0 when ignored) and the loss.
  auto weightAt = [&](OpBuilder &ob, Location l, Value t) -> std::pair<Value, Value> {
    Value t64 = castScalar(ob, l, t, ob.getI64Type());
    Value tc = arith::IndexCastOp::create(ob, l, ob.getIndexType(), t64);
    tc = clampIndex(ob, l, tc, 0, c - 1);
    Value w = weight ? (Value)tensor::ExtractOp::create(ob, l, weight, ValueRange{tc})
                     : im.constantScalar(ob, l, et, 1.0);
    if (ig) {
      Value skip = arith::CmpIOp::create(ob, l, arith::CmpIPredicate::eq, t64,
                                         arith::ConstantOp::create(ob, l, ob.getI64IntegerAttr(ignore)));
      w = arith::SelectOp::create(ob, l, skip, zeroOf(ob, l, et), w);
    }
    return {tc, w};
  };
  MLIRContext *ctx = &im.ctx;
  SmallVector<AffineMap> tmap = {AffineMap::getMultiDimIdentityMap(rank, ctx)};
  Value loss = indexedGeneric(
      im, ts, et,
      [&](OpBuilder &ob, Location l, ValueRange a) -> Value {
        auto [tc, w] = weightAt(ob, l, a[rank]);
        SmallVector<Value> at = {a[0], tc};
        for (int64_t i = 1; i < rank; ++i)
          at.push_back(a[i]);
        Value x = tensor::ExtractOp::create(ob, l, logp, at);
        return arith::NegFOp::create(ob, l, arith::MulFOp::create(ob, l, x, w));
      },
      ValueRange{target}, tmap);
  if (reduction == "none")
    return loss;
  SmallVector<int64_t> all;
  for (int64_t i = 0; i < rank; ++i)
    all.push_back(i);
  auto sum = [](OpBuilder &ob, Location l, Value a, Value v) { return addOp(ob, l, a, v); };
  Value total = im.reduce(loss, all, false, FloatAttr::get(et, 0.0), sum);
  if (reduction == "sum")
    return total;
  Value ws = indexedGeneric(
      im, ts, et,
      [&](OpBuilder &ob, Location l, ValueRange a) -> Value { return weightAt(ob, l, a[rank]).second; },
      ValueRange{target}, tmap);
  Value wsum = im.reduce(ws, all, false, FloatAttr::get(et, 0.0), sum);
  return im.elementwise({total, wsum}, et, [](OpBuilder &ob, Location l, ValueRange v) -> Value {
    return arith::DivFOp::create(ob, l, v[0], v[1]);
  });
}

// Resize / Upsample

namespace {
/// One resized axis: for every output index, `taps` input indices (already
/// clamped, i.e. edge-padded) and their weights, and whether the output is
/// an extrapolated (tf_crop_and_resize) one. Computed on the host exactly as
/// ONNX's reference (separable, per axis, in double precision).
struct AxisTaps {
  int64_t taps = 0;
  std::vector<int64_t> index; // [out * taps]
  std::vector<double> weight; // [out * taps]
  std::vector<bool> extrapolated;
  bool oneHot() const {
    for (size_t o = 0; o * taps < weight.size(); ++o) {
      int ones = 0, other = 0;
      for (int64_t t = 0; t < taps; ++t) {
        double w = weight[o * taps + t];
        ones += w == 1.0;
        other += w != 0.0 && w != 1.0;
      }
      if (ones != 1 || other)
        return false;
    }
    return true;
  }
};

struct ResizeMode {
  std::string mode, coord, nearest;
  double cubicA = -0.75;
  bool antialias = false, excludeOutside = false;
};
} // namespace

static std::vector<double> resizeCoeffs(const ResizeMode &m, double ratio, double scale) {
  if (m.mode == "nearest") {
    if (ratio == std::floor(ratio))
      return {0, 1};
    if (m.nearest == "round_prefer_floor")
      return {double(ratio <= 0.5), double(ratio > 0.5)};
    if (m.nearest == "round_prefer_ceil")
      return {double(ratio < 0.5), double(ratio >= 0.5)};
    if (m.nearest == "floor")
      return {1, 0};
    return {0, 1}; // ceil
  }
  double A = m.cubicA;
  if (m.mode == "linear" && !m.antialias)
    return {1 - ratio, ratio};
  if (m.mode == "linear") {
    double s = std::min(scale, 1.0);
    int64_t start = (int64_t)std::floor(-1 / s) + 1, footprint = 2 - 2 * start;
    std::vector<double> c;
    double sum = 0;
    for (int64_t i = start; i < start + footprint; ++i) {
      double v = std::clamp(1 - std::fabs((i - ratio) * s), 0.0, 1.0);
      c.push_back(v);
      sum += v;
    }
    for (double &v : c)
      v /= sum;
    return c;
  }
  if (!m.antialias) {
    double r1 = ratio + 1, q = 1 - ratio, q1 = q + 1;
    return {((A * r1 - 5 * A) * r1 + 8 * A) * r1 - 4 * A,
            ((A + 2) * ratio - (A + 3)) * ratio * ratio + 1,
            ((A + 2) * q - (A + 3)) * q * q + 1,
            ((A * q1 - 5 * A) * q1 + 8 * A) * q1 - 4 * A};
  }
  double s = std::min(scale, 1.0);
  auto coeff = [&](double x) {
    x = std::fabs(x);
    double x2 = x * x, x3 = x * x2;
    if (x <= 1)
      return (A + 2) * x3 - (A + 3) * x2 + 1;
    if (x < 2)
      return A * x3 - 5 * A * x2 + 8 * A * x - 4 * A;
    return 0.0;
  };
  int64_t iStart = (int64_t)std::floor(-2 / s) + 1, iEnd = 2 - iStart;
  std::vector<double> c;
  double sum = 0;
  for (int64_t i = iStart; i < iEnd; ++i) {
    c.push_back(coeff(s * (i - ratio)));
    sum += c.back();
  }
  for (double &v : c)
    v /= sum;
  return c;
}

static FailureOr<AxisTaps> resizeAxisTaps(OpContext &im, const ResizeMode &m, int64_t in,
                                          int64_t out, double scale, double roiStart,
                                          double roiEnd) {
  AxisTaps r;
  double outW = scale * in;
  for (int64_t y = 0; y < out; ++y) {
    double x;
    const std::string &c = m.coord;
    if (c == "align_corners")
      x = outW == 1 ? 0.0 : y * (in - 1) / (outW - 1);
    else if (c == "asymmetric")
      x = y / scale;
    else if (c == "tf_crop_and_resize") {
      x = outW == 1 ? (roiEnd - roiStart) * (in - 1) / 2
                    : y * (roiEnd - roiStart) * (in - 1) / (outW - 1);
      x += roiStart * (in - 1);
    } else if (c == "pytorch_half_pixel")
      x = outW == 1 ? -0.5 : (y + 0.5) / scale - 0.5;
    else if (c == "half_pixel")
      x = (y + 0.5) / scale - 0.5;
    else if (c == "half_pixel_symmetric") {
      double adjustment = out / outW, center = in / 2.0;
      x = center * (1 - adjustment) + (y + 0.5) / scale - 0.5;
    } else
      return im.fail("unknown coordinate_transformation_mode '" + c + "'");
    r.extrapolated.push_back(c == "tf_crop_and_resize" && (x < 0 || x > in - 1));
    double fl = std::floor(x);
    double ratio = x == fl ? 1.0 : x - fl;
    std::vector<double> coeffs = resizeCoeffs(m, ratio, scale);
    int64_t n = coeffs.size();
    if (y == 0)
      r.taps = n;
    else if (n != r.taps)
      return im.fail("internal error: resize kernel size varies along an axis");
    int64_t pad = (n + 1) / 2;
    double xp = x + pad;
    double p = std::floor(xp), frac = xp - p;
    int64_t offset;
    if (n % 2 == 0)
      offset = frac == 0 ? -(n / 2) : -(n / 2) + 1;
    else
      offset = frac <= 0.5 ? -((n - 1) / 2) : -((n - 1) / 2) + 1;
    int64_t start = (int64_t)p + offset;
    SmallVector<int64_t> idx;
    for (int64_t t = 0; t < n; ++t)
      idx.push_back(start + t - pad);
    if (m.excludeOutside) {
      double sum = 0;
      for (int64_t t = 0; t < n; ++t) {
        if (idx[t] < 0 || idx[t] >= in)
          coeffs[t] = 0;
        sum += coeffs[t];
      }
      if (sum == 0)
        sum = 1;
      for (double &v : coeffs)
        v /= sum;
    }
    for (int64_t t = 0; t < n; ++t) {
      r.index.push_back(std::clamp<int64_t>(idx[t], 0, in - 1));
      r.weight.push_back(coeffs[t]);
    }
  }
  return r;
}

/// Resizes axis `ax` of `x` to `out` elements with precomputed taps:
/// y[.., o, ..] = sum_t w[o, t] * x[.., index[o, t], ..] (a gather when every
/// row is one-hot), or the extrapolation value where flagged.
static FailureOr<Value> resizeAxis(OpContext &im, Value x, int64_t ax, int64_t out,
                                   const AxisTaps &taps, double extrapolation) {
  Type et = im.elementType(x);
  SmallVector<int64_t> shape(im.shapeOf(x));
  shape[ax] = out;
  bool gather = taps.oneHot();
  if (!gather && !isFloat(et))
    return im.fail("linear and cubic resizing need a floating-point input");
  auto i64 = im.b.getI64Type();
  SmallVector<Value> ins;
  int64_t n = gather ? 1 : taps.taps;
  for (int64_t t = 0; t < n; ++t) {
    SmallVector<int64_t> iv;
    SmallVector<double> wv;
    for (int64_t o = 0; o < out; ++o) {
      int64_t k = t;
      if (gather)
        for (int64_t j = 0; j < taps.taps; ++j)
          if (taps.weight[o * taps.taps + j] == 1.0)
            k = j;
      iv.push_back(taps.index[o * taps.taps + k]);
      wv.push_back(taps.weight[o * taps.taps + k]);
    }
    ins.push_back(arith::ConstantOp::create(
        im.b, im.loc, DenseElementsAttr::get(RankedTensorType::get({out}, i64), ArrayRef(iv))));
    if (!gather) {
      SmallVector<APFloat> ws;
      for (double w : wv) {
        APFloat f(w);
        bool lost;
        f.convert(cast<FloatType>(et).getFloatSemantics(), APFloat::rmNearestTiesToEven, &lost);
        ws.push_back(f);
      }
      ins.push_back(arith::ConstantOp::create(
          im.b, im.loc, DenseElementsAttr::get(RankedTensorType::get({out}, et), ws)));
    }
  }
  bool anyExtrap = llvm::is_contained(taps.extrapolated, true);
  if (anyExtrap) {
    SmallVector<bool> flags(taps.extrapolated.begin(), taps.extrapolated.end());
    ins.push_back(arith::ConstantOp::create(
        im.b, im.loc,
        DenseElementsAttr::get(RankedTensorType::get({out}, im.b.getI1Type()), ArrayRef(flags))));
  }
  int64_t rank = shape.size();
  SmallVector<AffineMap> maps(ins.size(),
                              AffineMap::get(rank, 0, {getAffineDimExpr(ax, &im.ctx)}, &im.ctx));
  return indexedGeneric(im, shape, et, [&](OpBuilder &ob, Location l, ValueRange a) {
    Value acc;
    for (int64_t t = 0; t < n; ++t) {
      Value ii = a[rank + (gather ? t : 2 * t)];
      SmallVector<Value> at(a.begin(), a.begin() + rank);
      at[ax] = arith::IndexCastOp::create(ob, l, ob.getIndexType(), ii);
      Value v = tensor::ExtractOp::create(ob, l, x, at);
      if (!gather)
        v = arith::MulFOp::create(ob, l, v, a[rank + 2 * t + 1]);
      acc = acc ? (Value)arith::AddFOp::create(ob, l, acc, v) : v;
    }
    if (anyExtrap)
      acc = arith::SelectOp::create(ob, l, a.back(), im.constantScalar(ob, l, et, extrapolation),
                                    acc);
    return acc;
  }, ins, maps);
}

LogicalResult kiln::detail::handleResize(OpContext &im, ResizeForm form) {
  Value x = im.input(0);
  SmallVector<int64_t> inShape(im.shapeOf(x));
  int64_t rank = inShape.size();
  ResizeMode m;
  m.mode = im.attrString("mode", "nearest");
  if (m.mode != "nearest" && m.mode != "linear" && m.mode != "cubic" && m.mode != "bilinear" &&
      m.mode != "trilinear")
    return im.fail("unknown mode '" + m.mode + "'");
  if (m.mode == "bilinear" || m.mode == "trilinear")
    m.mode = "linear";
  bool legacy = form != ResizeForm::Resize11;
  m.coord = legacy ? "asymmetric" : im.attrString("coordinate_transformation_mode", "half_pixel");
  m.nearest = legacy ? "floor" : im.attrString("nearest_mode", "round_prefer_floor");
  if (m.nearest != "round_prefer_floor" && m.nearest != "round_prefer_ceil" &&
      m.nearest != "floor" && m.nearest != "ceil")
    return im.fail("unknown nearest_mode '" + m.nearest + "'");
  m.cubicA = im.attrFloat("cubic_coeff_a", -0.75f);
  m.antialias = im.attrInt("antialias", 0) != 0 && m.mode != "nearest";
  m.excludeOutside = im.attrInt("exclude_outside", 0) != 0;
  double extrapolation = im.attrFloat("extrapolation_value", 0.0f);
  std::string policy = im.attrString("keep_aspect_ratio_policy", "stretch");

  SmallVector<int64_t> axes;
  if (auto a = im.attrInts("axes")) {
    for (int64_t ax : *a) {
      auto n = im.normalizeAxis(ax, rank);
      if (failed(n))
        return failure();
      axes.push_back(*n);
    }
  } else {
    for (int64_t i = 0; i < rank; ++i)
      axes.push_back(i);
  }
  // Operands: the scales / sizes / roi as host values.
  auto floatsOf = [&](unsigned i, StringRef what) -> FailureOr<SmallVector<double>> {
    auto c = im.requireConst(i, what);
    if (failed(c))
      return failure();
    auto h = HostTensor::fromAttr(*c);
    if (!h)
      return im.fail("input '" + what + "' has an unsupported element type");
    SmallVector<double> r;
    for (int64_t k = 0; k < h->numel(); ++k)
      r.push_back(h->get(k));
    return r;
  };
  SmallVector<double> scales, roi;
  SmallVector<int64_t> sizes;
  if (form == ResizeForm::UpsampleScalesAttr) {
    auto a = im.attr("scales");
    if (!a)
      return im.fail("Upsample needs the 'scales' attribute");
    for (float f : a->floats())
      scales.push_back(f);
  } else if (form != ResizeForm::Resize11) {
    if (!im.hasInput(1))
      return im.fail("input 'scales' is missing");
    auto s = floatsOf(1, "scales");
    if (failed(s))
      return failure();
    scales = *s;
  } else {
    if (im.hasInput(1) && m.coord == "tf_crop_and_resize") {
      auto r = floatsOf(1, "roi");
      if (failed(r))
        return failure();
      roi = *r;
    }
    if (im.hasInput(2)) {
      auto s = floatsOf(2, "scales");
      if (failed(s))
        return failure();
      scales = *s;
    }
    if (scales.empty() && im.hasInput(3)) {
      auto s = im.constInts(3, "sizes");
      if (failed(s))
        return failure();
      sizes = *s;
    }
    if (scales.empty() && sizes.empty())
      return im.fail("one of 'scales' and 'sizes' must be given");
  }
  int64_t na = axes.size();
  if ((!scales.empty() && (int64_t)scales.size() != na) ||
      (!sizes.empty() && (int64_t)sizes.size() != na))
    return im.fail(llvm::formatv("scales/sizes need {0} elements (one per resized axis)", na)
                       .str());
  if (!roi.empty() && (int64_t)roi.size() != 2 * na)
    return im.fail(llvm::formatv("roi needs {0} elements", 2 * na).str());
  SmallVector<double> axisScale(rank, 1.0), roiLo(rank, 0.0), roiHi(rank, 1.0);
  SmallVector<int64_t> outShape(inShape);
  for (int64_t i = 0; i < na; ++i) {
    if (!roi.empty()) {
      roiLo[axes[i]] = roi[i];
      roiHi[axes[i]] = roi[na + i];
    }
    if (!scales.empty()) {
      if (!(scales[i] > 0))
        return im.fail("scales must be positive");
      axisScale[axes[i]] = scales[i];
      outShape[axes[i]] = (int64_t)(scales[i] * inShape[axes[i]]);
    } else {
      if (sizes[i] < 0 || inShape[axes[i]] == 0)
        return im.fail("sizes must be non-negative and the input non-empty");
      outShape[axes[i]] = sizes[i];
      axisScale[axes[i]] = (double)sizes[i] / inShape[axes[i]];
    }
  }
  if (!sizes.empty() && policy != "stretch") {
    if (policy != "not_larger" && policy != "not_smaller")
      return im.fail("unknown keep_aspect_ratio_policy '" + policy + "'");
    double s = axisScale[axes[0]];
    for (int64_t a : axes)
      s = policy == "not_larger" ? std::min(s, axisScale[a]) : std::max(s, axisScale[a]);
    for (int64_t a : axes) {
      axisScale[a] = s;
      outShape[a] = (int64_t)(s * inShape[a] + 0.5);
    }
  }
  Value r = x;
  for (int64_t a : axes) {
    bool trivialRoi = std::fabs(roiLo[a]) < 1e-9 && std::fabs(roiHi[a] - 1.0) < 1e-9;
    if (std::fabs(axisScale[a] - 1.0) <= 1e-9 && outShape[a] == inShape[a] &&
        (roi.empty() || trivialRoi))
      continue;
    if (outShape[a] == 0)
      return im.fail("resizing to an empty axis is not supported");
    auto taps = resizeAxisTaps(im, m, inShape[a], outShape[a], axisScale[a], roiLo[a], roiHi[a]);
    if (failed(taps))
      return failure();
    auto y = resizeAxis(im, r, a, outShape[a], *taps, extrapolation);
    if (failed(y))
      return failure();
    r = *y;
  }
  im.setOutput(0, r);
  return success();
}

LogicalResult kiln::detail::handleDepthSpace(OpContext &im, bool toSpace) {
  Value x = im.input(0);
  SmallVector<int64_t> s(im.shapeOf(x));
  int64_t b = im.attrInt("blocksize", 0);
  if (s.size() != 4 || b <= 0)
    return im.fail("needs a 4-D input and a positive blocksize");
  int64_t N = s[0], C = s[1], H = s[2], W = s[3];
  if (toSpace) {
    if (C % (b * b))
      return im.fail("channels are not divisible by blocksize^2");
    bool crd = im.attrString("mode", "DCR") == "CRD";
    Value r = crd ? im.reshape(x, {N, C / (b * b), b, b, H, W}) : im.reshape(x, {N, b, b, C / (b * b), H, W});
    r = crd ? im.transpose(r, {0, 1, 4, 2, 5, 3}) : im.transpose(r, {0, 3, 4, 1, 5, 2});
    im.setOutput(0, im.reshape(r, {N, C / (b * b), H * b, W * b}));
    return success();
  }
  if (H % b || W % b)
    return im.fail("spatial sizes are not divisible by blocksize");
  Value r = im.reshape(x, {N, C, H / b, b, W / b, b});
  r = im.transpose(r, {0, 3, 5, 1, 2, 4});
  im.setOutput(0, im.reshape(r, {N, C * b * b, H / b, W / b}));
  return success();
}

FailureOr<AffineMap> kiln::detail::quantParamMap(OpContext &im, ArrayRef<int64_t> xs, ArrayRef<int64_t> ps) {
  int64_t rank = xs.size();
  if (ps.empty())
    return AffineMap::get(rank, 0, {}, &im.ctx);
  if (ps.size() == 1 && ps[0] == 1) // one value, as a 1-element tensor
    return AffineMap::get(rank, 0, {getAffineConstantExpr(0, &im.ctx)}, &im.ctx);
  auto axis = im.normalizeAxis(im.attrInt("axis", 1), rank);
  if (failed(axis))
    return failure();
  int64_t ax = *axis, bs = im.attrInt("block_size", 0);
  if (ps.size() == 1 && bs == 0) {
    if (ps[0] != xs[ax])
      return im.fail("per-axis scale has " + std::to_string(ps[0]) + " elements, axis has " +
                     std::to_string(xs[ax]));
    return AffineMap::get(rank, 0, {getAffineDimExpr(ax, &im.ctx)}, &im.ctx);
  }
  if ((int64_t)ps.size() != rank || bs <= 0)
    return im.fail("blocked quantization needs block_size and a scale of the input's rank");
  SmallVector<AffineExpr> e;
  for (int64_t i = 0; i < rank; ++i) {
    AffineExpr d = getAffineDimExpr(i, &im.ctx);
    e.push_back(i == ax ? d.floorDiv(bs) : d);
    if (i == ax ? ps[i] != (xs[i] + bs - 1) / bs : ps[i] != xs[i])
      return im.fail("blocked scale " + shapeStr(ps) + " does not fit input " + shapeStr(xs));
  }
  return AffineMap::get(rank, 0, e, &im.ctx);
}

Value kiln::detail::toFloat(OpBuilder &ob, Location l, Value v, Type ft, bool uns) {
  if (isFloat(v.getType()))
    return v.getType() == ft ? v : castScalar(ob, l, v, ft);
  return uns ? (Value)arith::UIToFPOp::create(ob, l, ft, v) : (Value)arith::SIToFPOp::create(ob, l, ft, v);
}

DftMatrix kiln::detail::dftMatrix(int64_t n, int64_t len, int64_t ci, bool inverse, bool onesided) {
  DftMatrix d;
  bool irfft = inverse && onesided;
  d.nOut = onesided && !inverse ? n / 2 + 1 : n;
  d.co = irfft ? 1 : 2;
  // Samples past the transform length (a truncating dft_length, or the
  // frequencies irfft ignores) keep zero columns.
  d.red = len;
  d.ci = ci;
  d.m.assign(d.nOut * d.co * d.red * ci, 0.0);
  int64_t used = std::min(len, irfft ? n / 2 + 1 : n);
  double sign = inverse ? 1.0 : -1.0, scale = inverse ? 1.0 / n : 1.0;
  for (int64_t k = 0; k < d.nOut; ++k)
    for (int64_t j = 0; j < used; ++j) {
      // Reduce j*k mod n first so large lengths keep exact angles.
      double theta = 2 * M_PI * (double)((j * k) % n) / n;
      double c = std::cos(theta) * scale, s = sign * std::sin(theta) * scale;
      if (irfft) {
        double mult = (j == 0 || (n % 2 == 0 && j == n / 2)) ? 1.0 : 2.0;
        c *= mult;
        s *= mult;
      }
      auto at = [&](int64_t to, int64_t ti) -> double & {
        return d.m[((k * d.co + to) * d.red + j) * ci + ti];
      };
      // (xr + i xi)(cos + i s) = (xr cos - xi s) + i(xr s + xi cos)
      at(0, 0) = c;
      if (ci == 2)
        at(0, 1) = -s;
      if (d.co == 2) {
        at(1, 0) = s;
        if (ci == 2)
          at(1, 1) = c;
      }
    }
  return d;
}

static constexpr int64_t kMaxDftMatrix = int64_t(1) << 24;
FailureOr<Value> kiln::detail::dftConstant(OpContext &im, const DftMatrix &d, Type et) {
  if ((int64_t)d.m.size() > kMaxDftMatrix)
    return im.fail(llvm::formatv("a DFT of {0} outputs over {1} samples needs a {2}-element "
                                 "matrix, over the limit of {3}",
                                 d.nOut, d.red, d.m.size(), kMaxDftMatrix)
                       .str());
  HostTensor h;
  h.shape = {d.nOut, d.co, d.red, d.ci};
  h.elemType = et;
  h.floats = d.m;
  return (Value)arith::ConstantOp::create(im.b, im.loc, h.toAttr());
}

LogicalResult kiln::detail::handleWindow(OpContext &im, double a0, double a1, double a2) {
  auto size = im.constInts(0, "size");
  if (failed(size))
    return failure();
  if (size->size() != 1 || (*size)[0] < 0)
    return im.fail("size must be a non-negative scalar");
  int64_t dt = im.attrInt("output_datatype", 1);
  Type et = onnxElementType(im.ctx, dt);
  if (!et || isUnsignedDataType(dt) || et.isInteger(1))
    return im.fail("output_datatype " + onnxTypeName(dt) + " is not supported");
  int64_t sz = (*size)[0];
  double denom = im.attrInt("periodic", 1) ? sz : sz - 1;
  HostTensor h;
  h.shape = {sz};
  h.elemType = et;
  for (int64_t i = 0; i < sz; ++i) {
    double v = denom == 0 ? 1.0
                          : a0 - a1 * std::cos(2 * M_PI * i / denom) +
                                a2 * std::cos(4 * M_PI * i / denom);
    h.push(v);
  }
  im.setConstOutput(0, h.toAttr());
  return success();
}

FailureOr<Value> kiln::detail::shiftedInt8(OpContext &im, unsigned i, unsigned zpIndex, bool perChannel,
                                    StringRef name) {
  Type i32 = im.b.getI32Type();
  Value v = im.input(i);
  if (!im.elementType(v).isInteger(8))
    return im.fail(name + " must be an 8-bit integer tensor");
  bool uns = im.isUnsigned(i);
  SmallVector<Value> ins = {v};
  if (im.hasInput(zpIndex)) {
    Value zp = im.input(zpIndex);
    ArrayRef<int64_t> zs = im.shapeOf(zp);
    int64_t numel = 1;
    for (int64_t dd : zs)
      numel *= dd;
    int64_t rank = im.shapeOf(v).size();
    if (im.elementType(zp) != im.elementType(v) || im.isUnsigned(zpIndex) != uns)
      return im.fail(name + "_zero_point must have the type of its input");
    if (numel == 1) {
      zp = im.reshape(zp, {});
    } else if (perChannel && zs.size() == 1 && zs[0] == im.shapeOf(v)[0]) {
      SmallVector<int64_t> cs(rank, 1);
      cs[0] = zs[0];
      zp = im.reshape(zp, cs);
    } else {
      return im.fail(name + (perChannel ? "_zero_point must be a scalar or have one value per "
                                          "output channel"
                                        : "_zero_point must be a scalar") +
                     ", got " + shapeStr(zs));
    }
    ins.push_back(zp);
  }
  return im.elementwise(ins, i32, [&](OpBuilder &ob, Location l, ValueRange a) -> Value {
    Value r = extendTo(ob, l, a[0], i32, uns);
    if (a.size() > 1)
      r = arith::SubIOp::create(ob, l, r, extendTo(ob, l, a[1], i32, uns));
    return r;
  });
}

Value kiln::detail::prefixCount(OpContext &im, Value x,
                         function_ref<Value(OpBuilder &, Location, Value)> keep) {
  MLIRContext *ctx = &im.ctx;
  int64_t m = im.shapeOf(x)[0];
  Type i64 = im.b.getI64Type();
  return contract(im, {x}, {{getAffineDimExpr(1, ctx)}}, 2, {getAffineDimExpr(0, ctx)}, {m}, i64,
                  [&](OpBuilder &ob, Location l, ValueRange v) -> Value {
                    Value j = linalg::IndexOp::create(ob, l, 0), k = linalg::IndexOp::create(ob, l, 1);
                    Value in = arith::AndIOp::create(
                        ob, l, arith::CmpIOp::create(ob, l, arith::CmpIPredicate::sle, k, j),
                        keep(ob, l, v[0]));
                    return arith::ExtUIOp::create(ob, l, i64, in);
                  });
}

Value kiln::detail::kthKept(OpBuilder &ob, Location l, Value prefix, Value k, int64_t m) {
  auto idx = [&](int64_t c) -> Value { return arith::ConstantIndexOp::create(ob, l, c); };
  Value target = arith::IndexCastOp::create(ob, l, ob.getI64Type(),
                                            arith::AddIOp::create(ob, l, k, idx(1)));
  Value lo = idx(0), hi = idx(m - 1);
  // Each step at least halves hi - lo + 1, so bit_width(m) steps suffice.
  for (unsigned step = 0; step < llvm::bit_width((uint64_t)m); ++step) {
    Value active = arith::CmpIOp::create(ob, l, arith::CmpIPredicate::slt, lo, hi);
    Value mid = arith::ShRUIOp::create(ob, l, arith::AddIOp::create(ob, l, lo, hi), idx(1));
    Value enough = arith::CmpIOp::create(
        ob, l, arith::CmpIPredicate::sge, tensor::ExtractOp::create(ob, l, prefix, mid), target);
    Value takeHi = arith::AndIOp::create(ob, l, active, enough);
    Value takeLo = arith::AndIOp::create(
        ob, l, active, arith::XOrIOp::create(ob, l, enough,
                                             arith::ConstantOp::create(ob, l, ob.getBoolAttr(true))));
    hi = arith::SelectOp::create(ob, l, takeHi, mid, hi);
    lo = arith::SelectOp::create(ob, l, takeLo, arith::AddIOp::create(ob, l, mid, idx(1)), lo);
  }
  return lo;
}

Value kiln::detail::keptCount(OpContext &im, Value prefix) {
  int64_t m = im.shapeOf(prefix)[0];
  return mapGeneric(im, {1}, im.b.getI64Type(), {prefix},
                    {{getAffineConstantExpr(m - 1, &im.ctx)}},
                    [](OpBuilder &, Location, ValueRange v) { return v[0]; });
}

Value kiln::detail::foldLoops(OpContext &im, ArrayRef<int64_t> outShape, int64_t numLoops, ValueRange ins,
                       ArrayRef<SmallVector<AffineExpr>> inExprs, ArrayRef<AffineExpr> outExprs,
                       TypedAttr init,
                       function_ref<Value(OpBuilder &, Location, Value, ValueRange)> step) {
  MLIRContext *ctx = &im.ctx;
  SmallVector<AffineMap> maps;
  for (const auto &e : inExprs)
    maps.push_back(AffineMap::get(numLoops, 0, e, ctx));
  maps.push_back(AffineMap::get(numLoops, 0, outExprs, ctx));
  SmallVector<IteratorType> iters(numLoops, IteratorType::reduction);
  for (AffineExpr e : outExprs)
    iters[cast<AffineDimExpr>(e).getPosition()] = IteratorType::parallel;
  Value acc = im.fill(outShape, init);
  return linalg::GenericOp::create(im.b, im.loc, TypeRange{acc.getType()}, ins, ValueRange{acc},
                                   maps, iters,
                                   [&](OpBuilder &ob, Location l, ValueRange v) {
                                     linalg::YieldOp::create(
                                         ob, l, step(ob, l, v.back(), v.drop_back()));
                                   })
      .getResult(0);
}

/// The activation `name` (ONNX's RNN activation names) with its alpha and
/// beta where given.
static FailureOr<ActFn> recurrentActivation(OpContext &im, StringRef name,
                                            std::optional<double> alphaAttr,
                                            std::optional<double> betaAttr) {
  auto take = [](std::optional<double> v, double dflt) { return v.value_or(dflt); };
  std::string lower = name.lower();
  auto c = [&im](OpBuilder &ob, Location l, Value like, double v) {
    return im.constantScalar(ob, l, like.getType(), v);
  };
  auto sigmoid = [c](OpBuilder &ob, Location l, Value x) -> Value {
    Value e = math::ExpOp::create(ob, l, arith::NegFOp::create(ob, l, x));
    return arith::DivFOp::create(ob, l, c(ob, l, x, 1),
                                 arith::AddFOp::create(ob, l, c(ob, l, x, 1), e));
  };
  if (lower == "sigmoid")
    return ActFn(sigmoid);
  if (lower == "tanh")
    return ActFn([](OpBuilder &ob, Location l, Value x) -> Value {
      return math::TanhOp::create(ob, l, x);
    });
  if (lower == "relu")
    return ActFn([c](OpBuilder &ob, Location l, Value x) -> Value {
      return arith::MaximumFOp::create(ob, l, x, c(ob, l, x, 0));
    });
  if (lower == "softsign")
    return ActFn([c](OpBuilder &ob, Location l, Value x) -> Value {
      return arith::DivFOp::create(
          ob, l, x, arith::AddFOp::create(ob, l, c(ob, l, x, 1), math::AbsFOp::create(ob, l, x)));
    });
  if (lower == "softplus")
    return ActFn([](OpBuilder &ob, Location l, Value x) -> Value {
      return math::Log1pOp::create(ob, l, math::ExpOp::create(ob, l, x));
    });
  if (lower == "affine" || lower == "scaledtanh" || lower == "hardsigmoid") {
    bool hard = lower == "hardsigmoid";
    double alpha = take(alphaAttr, hard ? 0.2 : 1.0), beta = take(betaAttr, hard ? 0.5 : lower == "affine" ? 0.0 : 1.0);
    if (lower == "affine")
      return ActFn([=](OpBuilder &ob, Location l, Value x) -> Value {
        return arith::AddFOp::create(ob, l, arith::MulFOp::create(ob, l, x, c(ob, l, x, alpha)),
                                     c(ob, l, x, beta));
      });
    if (lower == "scaledtanh")
      return ActFn([=](OpBuilder &ob, Location l, Value x) -> Value {
        Value t = math::TanhOp::create(ob, l, arith::MulFOp::create(ob, l, x, c(ob, l, x, beta)));
        return arith::MulFOp::create(ob, l, t, c(ob, l, x, alpha));
      });
    return ActFn([=](OpBuilder &ob, Location l, Value x) -> Value {
      Value y = arith::AddFOp::create(ob, l, arith::MulFOp::create(ob, l, x, c(ob, l, x, alpha)),
                                      c(ob, l, x, beta));
      y = arith::MaximumFOp::create(ob, l, y, c(ob, l, x, 0));
      return arith::MinimumFOp::create(ob, l, y, c(ob, l, x, 1));
    });
  }
  if (lower == "leakyrelu" || lower == "thresholdedrelu" || lower == "elu") {
    double alpha = take(alphaAttr, lower == "leakyrelu" ? 0.01 : 1.0);
    return ActFn([=](OpBuilder &ob, Location l, Value x) -> Value {
      Value zero = c(ob, l, x, 0);
      if (lower == "thresholdedrelu")
        return arith::SelectOp::create(
            ob, l, arith::CmpFOp::create(ob, l, arith::CmpFPredicate::OGT, x, c(ob, l, x, alpha)),
            x, zero);
      Value neg = arith::CmpFOp::create(ob, l, arith::CmpFPredicate::OLT, x, zero);
      Value scaled = lower == "elu" ? (Value)arith::MulFOp::create(
                                          ob, l, math::ExpM1Op::create(ob, l, x), c(ob, l, x, alpha))
                                    : (Value)arith::MulFOp::create(ob, l, x, c(ob, l, x, alpha));
      return arith::SelectOp::create(ob, l, neg, scaled, x);
    });
  }
  return im.fail("unsupported activation '" + name + "'");
}

LogicalResult kiln::detail::handleRecurrent(OpContext &im, const RecurrentSpec &spec) {
  if (failed(requireInputs(im, 3)))
    return failure();
  StringRef op = im.node->op_type();
  bool lstm = op == "LSTM", gru = op == "GRU";
  int64_t G = spec.gates;
  Value x = im.input(0), w = im.input(1), r = im.input(2);
  Type et = im.elementType(x);
  if (!isFloat(et) || im.elementType(w) != et || im.elementType(r) != et)
    return im.fail("X, W and R must have the same floating-point type");
  int64_t layout = im.attrInt("layout", 0);
  if (layout != 0 && layout != 1)
    return im.fail("layout must be 0 or 1");
  ArrayRef<int64_t> xs0 = im.shapeOf(x);
  if (xs0.size() != 3)
    return im.fail("X must have rank 3, got " + shapeStr(xs0));
  if (layout == 1)
    x = im.transpose(x, {1, 0, 2});
  ArrayRef<int64_t> xs = im.shapeOf(x);
  int64_t T = xs[0], B = xs[1], I = xs[2];
  std::string direction = im.attrString("direction", "forward");
  if (direction != "forward" && direction != "reverse" && direction != "bidirectional")
    return im.fail("unknown direction '" + direction + "'");
  int64_t D = direction == "bidirectional" ? 2 : 1;
  ArrayRef<int64_t> ws = im.shapeOf(w), rs = im.shapeOf(r);
  if (rs.size() != 3 || ws.size() != 3)
    return im.fail("W and R must have rank 3");
  int64_t H = rs[2];
  if (int64_t hs = im.attrInt("hidden_size", H); hs != H)
    return im.fail(llvm::formatv("hidden_size={0} does not match R {1}", hs, shapeStr(rs)).str());
  if (ArrayRef<int64_t>(ws) != ArrayRef<int64_t>{D, G * H, I} ||
      ArrayRef<int64_t>(rs) != ArrayRef<int64_t>{D, G * H, H})
    return im.fail(llvm::formatv("W {0} and R {1} do not fit {2} direction(s), {3} gates, "
                                 "hidden size {4} and input size {5}",
                                 shapeStr(ws), shapeStr(rs), D, G, H, I)
                       .str());
  if (T == 0)
    return im.fail("X has an empty sequence");
  // Optional inputs, default zero.
  auto optional = [&](unsigned i, ArrayRef<int64_t> shape, StringRef name) -> FailureOr<Value> {
    if (!im.hasInput(i))
      return im.fill(shape, cast<TypedAttr>(im.b.getZeroAttr(et)));
    Value v = im.input(i);
    if (im.elementType(v) != et)
      return im.fail(name + " must have X's element type");
    if (im.shapeOf(v) != shape)
      return im.fail(name + " has shape " + shapeStr(im.shapeOf(v)) + ", expected " + shapeStr(shape));
    return v;
  };
  SmallVector<int64_t> stateShape = layout ? SmallVector<int64_t>{B, D, H}
                                           : SmallVector<int64_t>{D, B, H};
  auto bias = optional(3, {D, 2 * G * H}, "B");
  auto h0 = optional(5, stateShape, "initial_h");
  FailureOr<Value> c0 = Value(), peep = Value();
  if (lstm) {
    c0 = optional(6, stateShape, "initial_c");
    peep = optional(7, {D, 3 * H}, "P");
  }
  if (failed(bias) || failed(h0) || failed(c0) || failed(peep))
    return failure();
  // Gate-major views, so every gate is read through a constant index.
  Value w4 = im.reshape(w, {D, G, H, I}), r4 = im.reshape(r, {D, G, H, H});
  Value b4 = im.reshape(*bias, {D, 2, G, H});
  Value p3 = lstm ? im.reshape(*peep, {D, 3, H}) : Value();
  if (layout == 1) {
    *h0 = im.transpose(*h0, {1, 0, 2});
    if (lstm)
      *c0 = im.transpose(*c0, {1, 0, 2});
  }

  // sequence_lens: a constant equal to T everywhere is no mask; otherwise
  // steps past a batch entry's length keep its state and output zeros,
  // which is exact for the forward direction only.
  Value lens;
  if (im.hasInput(4)) {
    Value sl = im.input(4);
    if (im.shapeOf(sl) != ArrayRef<int64_t>{B} || !isa<IntegerType>(im.elementType(sl)))
      return im.fail("sequence_lens must be an integer tensor of shape [" + Twine(B) + "]");
    bool full = false;
    if (auto c = im.constInput(4)) {
      auto h = HostTensor::fromAttr(*c);
      full = h && llvm::all_of(h->ints, [&](int64_t v) { return v == T; });
      if (h && llvm::any_of(h->ints, [&](int64_t v) { return v < 0 || v > T; }))
        return im.fail("sequence_lens must lie in [0, " + Twine(T) + "]");
    }
    if (!full && direction != "forward")
      return im.fail("sequence_lens shorter than the sequence are supported for the forward "
                     "direction only");
    if (!full)
      lens = sl;
  }

  // Activations: per direction f, g, h (as many as the op uses).
  int64_t nActs = spec.defaultActs.size();
  SmallVector<std::string> actNames;
  if (const auto *a = im.attr("activations")) {
    for (const auto &s : a->strings())
      actNames.push_back(s);
    if ((int64_t)actNames.size() != nActs * D)
      return im.fail(llvm::formatv("activations lists {0} functions, expected {1}",
                                   actNames.size(), nActs * D)
                         .str());
  } else {
    for (int64_t d = 0; d < D; ++d)
      for (StringRef n : spec.defaultActs)
        actNames.push_back(n.str());
  }
  SmallVector<float> alphaList, betaList;
  if (const auto *a = im.attr("activation_alpha"))
    alphaList.assign(a->floats().begin(), a->floats().end());
  if (const auto *a = im.attr("activation_beta"))
    betaList.assign(a->floats().begin(), a->floats().end());
  // Like onnxruntime, the j-th alpha and beta belong to the j-th activation
  // (whether or not it uses them).
  SmallVector<ActFn> acts;
  for (auto [j, n] : llvm::enumerate(actNames)) {
    auto at = [j = j](ArrayRef<float> list) {
      return j < list.size() ? std::optional<double>(list[j]) : std::nullopt;
    };
    auto f = recurrentActivation(im, n, at(alphaList), at(betaList));
    if (failed(f))
      return failure();
    acts.push_back(*f);
  }
  std::optional<double> clip;
  if (im.attr("clip"))
    clip = im.attrFloat("clip", 0);
  bool inputForget = lstm && im.attrInt("input_forget", 0);
  bool linearBeforeReset = gru && im.attrInt("linear_before_reset", 0);

  MLIRContext *ctx = &im.ctx;
  auto d = [&](int64_t i) { return getAffineDimExpr(i, ctx); };
  auto k = [&](int64_t v) { return getAffineConstantExpr(v, ctx); };
  auto cstv = [&](OpBuilder &ob, Location l, double v) { return im.constantScalar(ob, l, et, v); };
  auto clipped = [&](OpBuilder &ob, Location l, Value v) -> Value {
    if (!clip)
      return v;
    v = arith::MaximumFOp::create(ob, l, v, cstv(ob, l, -*clip));
    return arith::MinimumFOp::create(ob, l, v, cstv(ob, l, *clip));
  };
  auto add = [](OpBuilder &ob, Location l, Value a, Value b) -> Value {
    return arith::AddFOp::create(ob, l, a, b);
  };
  auto mul = [](OpBuilder &ob, Location l, Value a, Value b) -> Value {
    return arith::MulFOp::create(ob, l, a, b);
  };

  SmallVector<SmallVector<Value>> outputs(D); // per direction, per sequence position
  SmallVector<Value> lastH(D), lastC(D);
  for (int64_t dir = 0; dir < D; ++dir) {
    bool reverse = direction == "reverse" || dir == 1;
    ActFn f = acts[dir * nActs], g = nActs > 1 ? acts[dir * nActs + 1] : ActFn(),
          h = nActs > 2 ? acts[dir * nActs + 2] : ActFn();
    // XW[t, b, g, h] = sum_i X[t, b, i] * W[dir, g, h, i] + Wb[g, h] + Rb[g, h]
    // (GRU with linear_before_reset keeps Rb of the h gate for later).
    Value xw = contract(im, {x, w4}, {{d(0), d(1), d(4)}, {k(dir), d(2), d(3), d(4)}}, 5,
                        {d(0), d(1), d(2), d(3)}, {T, B, G, H}, et,
                        [&](OpBuilder &ob, Location l, ValueRange v) { return mul(ob, l, v[0], v[1]); });
    xw = mapGeneric(im, {T, B, G, H}, et, {xw, b4, b4},
                    {{d(0), d(1), d(2), d(3)}, {k(dir), k(0), d(2), d(3)}, {k(dir), k(1), d(2), d(3)}},
                    [&](OpBuilder &ob, Location l, ValueRange v) -> Value {
                      Value s = add(ob, l, v[0], v[1]);
                      if (!linearBeforeReset)
                        return add(ob, l, s, v[2]);
                      // Keep Rb only for the z and r gates.
                      Value n = linalg::IndexOp::create(ob, l, 2);
                      Value zr = arith::CmpIOp::create(ob, l, arith::CmpIPredicate::slt, n,
                                                       arith::ConstantIndexOp::create(ob, l, 2));
                      return arith::SelectOp::create(ob, l, zr, add(ob, l, s, v[2]), s);
                    });
    Value hState = mapGeneric(im, {B, H}, et, {*h0}, {{k(dir), d(0), d(1)}},
                              [](OpBuilder &, Location, ValueRange v) { return v[0]; });
    Value cState = lstm ? mapGeneric(im, {B, H}, et, {*c0}, {{k(dir), d(0), d(1)}},
                                     [](OpBuilder &, Location, ValueRange v) { return v[0]; })
                        : Value();
    outputs[dir].resize(T);
    for (int64_t step = 0; step < T; ++step) {
      int64_t t = reverse ? T - 1 - step : step;
      // hr[b, g, h] = sum_j H[b, j] * R[dir, g, h, j] (GRU without
      // linear_before_reset does not use its h gate).
      Value hr = contract(im, {hState, r4}, {{d(0), d(3)}, {k(dir), d(1), d(2), d(3)}}, 4,
                          {d(0), d(1), d(2)}, {B, G, H}, et,
                          [&](OpBuilder &ob, Location l, ValueRange v) { return mul(ob, l, v[0], v[1]); });
      // Gate j of hr (or of XW at step t) at output (b, h).
      auto gate = [&](int64_t j) { return SmallVector<AffineExpr>{d(0), k(j), d(1)}; };
      auto xgate = [&](int64_t j) { return SmallVector<AffineExpr>{k(t), d(0), k(j), d(1)}; };
      SmallVector<AffineExpr> id = {d(0), d(1)};
      Value newH, newC;
      if (lstm) {
        // Gates i, o, f, c; peepholes p_i, p_o, p_f.
        SmallVector<AffineExpr> pi = {k(dir), k(0), d(1)}, po = {k(dir), k(1), d(1)},
                                pf = {k(dir), k(2), d(1)};
        newC = mapGeneric(im, {B, H}, et,
                          {xw, hr, xw, hr, xw, hr, cState, p3, p3},
                          {xgate(0), gate(0), xgate(2), gate(2), xgate(3), gate(3), id, pi, pf},
                          [&](OpBuilder &ob, Location l, ValueRange v) -> Value {
                            Value c = v[6];
                            Value i = f(ob, l, clipped(ob, l, add(ob, l, add(ob, l, v[0], v[1]),
                                                                   mul(ob, l, v[7], c))));
                            Value fg = inputForget
                                           ? (Value)arith::SubFOp::create(ob, l, cstv(ob, l, 1), i)
                                           : f(ob, l, clipped(ob, l, add(ob, l, add(ob, l, v[2], v[3]),
                                                                          mul(ob, l, v[8], c))));
                            Value cc = g(ob, l, clipped(ob, l, add(ob, l, v[4], v[5])));
                            return add(ob, l, mul(ob, l, fg, c), mul(ob, l, i, cc));
                          });
        newH = mapGeneric(im, {B, H}, et, {xw, hr, newC, p3}, {xgate(1), gate(1), id, po},
                          [&](OpBuilder &ob, Location l, ValueRange v) -> Value {
                            Value o = f(ob, l, clipped(ob, l, add(ob, l, add(ob, l, v[0], v[1]),
                                                                   mul(ob, l, v[3], v[2]))));
                            return mul(ob, l, o, h(ob, l, v[2]));
                          });
      } else if (gru) {
        auto zOf = [&](OpBuilder &ob, Location l, Value xz, Value hz) {
          return f(ob, l, clipped(ob, l, add(ob, l, xz, hz)));
        };
        Value hh; // the h gate's pre-activation minus its input part
        if (linearBeforeReset) {
          // r * (H R_h^T + Rb_h)
          hh = mapGeneric(im, {B, H}, et, {xw, hr, hr, b4},
                          {xgate(1), gate(1), gate(2), {k(dir), k(1), k(2), d(1)}},
                          [&](OpBuilder &ob, Location l, ValueRange v) -> Value {
                            return mul(ob, l, zOf(ob, l, v[0], v[1]), add(ob, l, v[2], v[3]));
                          });
        } else {
          // (r * H) R_h^T
          Value rh = mapGeneric(im, {B, H}, et, {xw, hr, hState}, {xgate(1), gate(1), id},
                                [&](OpBuilder &ob, Location l, ValueRange v) -> Value {
                                  return mul(ob, l, zOf(ob, l, v[0], v[1]), v[2]);
                                });
          hh = contract(im, {rh, r4}, {{d(0), d(2)}, {k(dir), k(2), d(1), d(2)}}, 3, {d(0), d(1)},
                        {B, H}, et,
                        [&](OpBuilder &ob, Location l, ValueRange v) { return mul(ob, l, v[0], v[1]); });
        }
        newH = mapGeneric(im, {B, H}, et, {xw, hr, xw, hh, hState},
                          {xgate(0), gate(0), xgate(2), id, id},
                          [&](OpBuilder &ob, Location l, ValueRange v) -> Value {
                            Value z = zOf(ob, l, v[0], v[1]);
                            Value hc = g(ob, l, clipped(ob, l, add(ob, l, v[2], v[3])));
                            Value oneMinusZ = arith::SubFOp::create(ob, l, cstv(ob, l, 1), z);
                            return add(ob, l, mul(ob, l, oneMinusZ, hc), mul(ob, l, z, v[4]));
                          });
      } else {
        newH = mapGeneric(im, {B, H}, et, {xw, hr}, {xgate(0), gate(0)},
                          [&](OpBuilder &ob, Location l, ValueRange v) -> Value {
                            return f(ob, l, clipped(ob, l, add(ob, l, v[0], v[1])));
                          });
      }
      Value y = newH;
      if (lens) {
        // Past its length a batch entry keeps its state and outputs zeros.
        auto masked = [&](Value next, Value prev, bool zero) {
          return mapGeneric(im, {B, H}, et, {lens, next, prev}, {{d(0)}, id, id},
                            [&](OpBuilder &ob, Location l, ValueRange v) -> Value {
                              Value len = v[0];
                              Value live = arith::CmpIOp::create(
                                  ob, l, arith::CmpIPredicate::sgt, len,
                                  im.constantScalar(ob, l, len.getType(), t));
                              return arith::SelectOp::create(ob, l, live, v[1],
                                                             zero ? cstv(ob, l, 0) : v[2]);
                            });
        };
        y = masked(newH, newH, true);
        newH = masked(newH, hState, false);
        if (lstm)
          newC = masked(newC, cState, false);
      }
      outputs[dir][t] = y;
      hState = newH;
      cState = newC;
    }
    if (lens) {
      // Like onnxruntime, an empty sequence has zero final states.
      auto final = [&](Value state) {
        return mapGeneric(im, {B, H}, et, {lens, state}, {{d(0)}, {d(0), d(1)}},
                          [&](OpBuilder &ob, Location l, ValueRange v) -> Value {
                            Value live = arith::CmpIOp::create(
                                ob, l, arith::CmpIPredicate::sgt, v[0],
                                im.constantScalar(ob, l, v[0].getType(), 0));
                            return arith::SelectOp::create(ob, l, live, v[1], cstv(ob, l, 0));
                          });
      };
      hState = final(hState);
      if (lstm)
        cState = final(cState);
    }
    lastH[dir] = hState;
    lastC[dir] = cState;
  }

  // Y: [T, D, B, H] (layout 0) or [B, T, D, H]; Y_h, Y_c: [D, B, H] or [B, D, H].
  // Each gathers the per-step results with selects on the step and direction.
  auto gather = [&](ArrayRef<int64_t> shape, ArrayRef<Value> parts, int64_t tDim, int64_t dDim,
                    int64_t bDim, int64_t hDim) {
    SmallVector<SmallVector<AffineExpr>> exprs(parts.size(), {d(bDim), d(hDim)});
    return mapGeneric(im, shape, et, parts, exprs,
                      [&](OpBuilder &ob, Location l, ValueRange v) -> Value {
                        Value result = v.back();
                        int64_t perDir = tDim >= 0 ? T : 1;
                        for (int64_t j = (int64_t)v.size() - 2; j >= 0; --j) {
                          Value hit;
                          auto is = [&](int64_t dim, int64_t val) -> Value {
                            return arith::CmpIOp::create(ob, l, arith::CmpIPredicate::eq,
                                                         linalg::IndexOp::create(ob, l, dim),
                                                         arith::ConstantIndexOp::create(ob, l, val));
                          };
                          if (tDim >= 0)
                            hit = is(tDim, j % perDir);
                          if (D > 1) {
                            Value dh = is(dDim, j / perDir);
                            hit = hit ? (Value)arith::AndIOp::create(ob, l, hit, dh) : dh;
                          }
                          result = arith::SelectOp::create(ob, l, hit, v[j], result);
                        }
                        return result;
                      });
  };
  if (im.wantsOutput(0)) {
    SmallVector<Value> parts;
    for (int64_t dir = 0; dir < D; ++dir)
      parts.append(outputs[dir]);
    Value y = layout ? gather({B, T, D, H}, parts, 1, 2, 0, 3) : gather({T, D, B, H}, parts, 0, 1, 2, 3);
    im.setOutput(0, y);
  }
  SmallVector<int64_t> finalShape = layout ? SmallVector<int64_t>{B, D, H} : SmallVector<int64_t>{D, B, H};
  int64_t dDim = layout ? 1 : 0, bDim = layout ? 0 : 1;
  if (im.wantsOutput(1))
    im.setOutput(1, gather(finalShape, lastH, -1, dDim, bDim, 2));
  if (lstm && im.wantsOutput(2))
    im.setOutput(2, gather(finalShape, lastC, -1, dDim, bDim, 2));
  return success();
}

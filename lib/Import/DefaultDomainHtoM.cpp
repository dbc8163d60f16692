//===- DefaultDomainHtoM.cpp - ONNX ops H to M ----------------------------===//
//
// Handlers of the default-domain (ai.onnx) ops whose names start with H to M,
// registered by registerDefaultDomainHtoM at the end of the file with the opset
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

/// ONNX Mod: with fmod=0 the result takes the divisor's sign (Python's %),
/// with fmod=1 the dividend's (C's fmod); floats require fmod=1.
static LogicalResult handleMod(OpContext &im) {
  bool fmod = im.attrInt("fmod", 0) != 0;
  Value a = im.input(0), c = im.input(1);
  Type et = im.elementType(a);
  if (et != im.elementType(c))
    return im.fail("inputs have different element types");
  if (isFloat(et) && !fmod)
    return im.fail("fmod=0 is invalid for floating-point inputs");
  bool isU = im.anyUnsigned();
  return mapInputs(im, et, [&](OpBuilder &ob, Location l, ValueRange v) -> Value {
    if (isFloat(et))
      return arith::RemFOp::create(ob, l, v[0], v[1]);
    if (isU)
      return arith::RemUIOp::create(ob, l, v[0], v[1]);
    Value r = arith::RemSIOp::create(ob, l, v[0], v[1]);
    if (fmod)
      return r;
    Value zero = zeroOf(ob, l, et);
    Value nonZero = arith::CmpIOp::create(ob, l, arith::CmpIPredicate::ne, r, zero);
    Value rNeg = arith::CmpIOp::create(ob, l, arith::CmpIPredicate::slt, r, zero);
    Value bNeg = arith::CmpIOp::create(ob, l, arith::CmpIPredicate::slt, v[1], zero);
    Value differ = arith::XOrIOp::create(ob, l, rNeg, bNeg);
    Value fix = arith::AndIOp::create(ob, l, nonZero, differ);
    return arith::SelectOp::create(ob, l, fix, arith::AddIOp::create(ob, l, r, v[1]), r);
  });
}

static LogicalResult handleIsInf(OpContext &im) {
  bool pos = im.attrInt("detect_positive", 1), neg = im.attrInt("detect_negative", 1);
  Type et = im.elementType(im.input(0));
  if (!isFloat(et))
    return im.fail("IsInf needs a floating-point input");
  return mapInputs(im, im.b.getI1Type(), [&](OpBuilder &ob, Location l, ValueRange v) -> Value {
    Value inf = im.constantScalar(ob, l, et, INFINITY);
    Value ninf = im.constantScalar(ob, l, et, -INFINITY);
    Value isPos = arith::CmpFOp::create(ob, l, arith::CmpFPredicate::OEQ, v[0], inf);
    Value isNeg = arith::CmpFOp::create(ob, l, arith::CmpFPredicate::OEQ, v[0], ninf);
    Value f = arith::ConstantOp::create(ob, l, ob.getBoolAttr(false));
    return arith::OrIOp::create(ob, l, pos ? isPos : f, neg ? isNeg : f);
  });
}

static LogicalResult handleLayerNorm(OpContext &im) {
  Value x = im.input(0);
  if (!isFloat(im.elementType(x)))
    return im.fail("supported for floating-point inputs only");
  int64_t rank = im.shapeOf(x).size();
  auto axis = im.normalizeAxis(im.attrInt("axis", -1), rank);
  if (failed(axis))
    return failure();
  SmallVector<int64_t> axes;
  for (int64_t i = *axis; i < rank; ++i)
    axes.push_back(i);
  auto norm = normalize(im, x, axes, im.attrFloat("epsilon", 1e-5f));
  if (failed(norm))
    return failure();
  Value y = (*norm)[0];
  SmallVector<Value> ins = {y, im.input(1)};
  if (im.hasInput(2))
    ins.push_back(im.input(2));
  auto r = im.elementwise(ins, im.elementType(x), [](OpBuilder &ob, Location l, ValueRange v) -> Value {
    Value s = arith::MulFOp::create(ob, l, v[0], v[1]);
    return v.size() > 2 ? (Value)arith::AddFOp::create(ob, l, s, v[2]) : s;
  });
  if (failed(r))
    return failure();
  im.setOutput(0, *r);
  im.setOutput(1, (*norm)[1]);
  im.setOutput(2, (*norm)[2]);
  return success();
}

static LogicalResult handleInstanceNorm(OpContext &im) {
  Value x = im.input(0);
  int64_t rank = im.shapeOf(x).size();
  SmallVector<int64_t> axes;
  for (int64_t i = 2; i < rank; ++i)
    axes.push_back(i);
  auto norm = normalize(im, x, axes, im.attrFloat("epsilon", 1e-5f));
  if (failed(norm))
    return failure();
  Value s = channelVector(im, im.input(1), rank), bb = channelVector(im, im.input(2), rank);
  auto r = im.elementwise({(*norm)[0], s, bb}, im.elementType(x),
                          [](OpBuilder &ob, Location l, ValueRange v) -> Value {
                            return arith::AddFOp::create(
                                ob, l, arith::MulFOp::create(ob, l, v[0], v[1]), v[2]);
                          });
  if (failed(r))
    return failure();
  im.setOutput(0, *r);
  return success();
}

static LogicalResult handleMatMul(OpContext &im) {
  Value a = im.input(0), bm = im.input(1);
  SmallVector<int64_t> sa(im.shapeOf(a)), sb(im.shapeOf(bm));
  if (sa.empty() || sb.empty())
    return im.fail("MatMul inputs must have rank >= 1");
  bool vecA = sa.size() == 1, vecB = sb.size() == 1;
  if (vecA)
    a = im.reshape(a, {1, sa[0]});
  if (vecB)
    bm = im.reshape(bm, {sb[0], 1});
  auto r = contraction(im, a, bm, false, false, Value(), 1.0);
  if (failed(r))
    return failure();
  SmallVector<int64_t> shape(im.shapeOf(*r));
  if (vecB)
    shape.erase(shape.end() - 1);
  if (vecA)
    shape.erase(shape.end() - (vecB ? 1 : 2));
  im.setOutput(0, im.reshape(*r, shape));
  return success();
}

/// Hardmax: 1 at the first maximum along `axis` (with `coerce2D`, before
/// opset 13: over the input coerced to 2-D at `axis`), 0 elsewhere.
static LogicalResult handleHardmax(OpContext &im, bool coerce2D) {
  Value x = im.input(0);
  Type et = im.elementType(x);
  if (!isFloat(et))
    return im.fail("supported for floating-point inputs only");
  SmallVector<int64_t> shape(im.shapeOf(x));
  int64_t rank = shape.size();
  auto axis = im.normalizeAxis(im.attrInt("axis", coerce2D ? 1 : -1), rank);
  if (failed(axis))
    return failure();
  Value v = x;
  int64_t ax = *axis;
  if (coerce2D) {
    int64_t outer = 1, inner = 1;
    for (int64_t i = 0; i < rank; ++i)
      (i < ax ? outer : inner) *= shape[i];
    v = im.reshape(x, {outer, inner});
    ax = 1;
  }
  SmallVector<int64_t> vs(im.shapeOf(v));
  int64_t n = vs[ax];
  Value m = im.reduce(v, {ax}, true, FloatAttr::get(et, -INFINITY),
                      [](OpBuilder &ob, Location l, Value a, Value e) { return maxOp(ob, l, a, e); });
  int64_t vr = vs.size();
  AffineMap id = AffineMap::getMultiDimIdentityMap(vr, &im.ctx);
  AffineMap bm = broadcastMap(im, im.shapeOf(m), vs);
  // Position of each maximum (n elsewhere), then the first one.
  Value pos = indexedGeneric(im, vs, im.b.getI64Type(), [&](OpBuilder &ob, Location l, ValueRange a) -> Value {
    Value eq = arith::CmpFOp::create(ob, l, arith::CmpFPredicate::OEQ, a[vr], a[vr + 1]);
    return arith::SelectOp::create(ob, l, eq, indexToI64(ob, l, a[ax]),
                                   arith::ConstantOp::create(ob, l, ob.getI64IntegerAttr(n)));
  }, ValueRange{v, m}, {id, bm});
  Value first = im.reduce(pos, {ax}, true, im.b.getI64IntegerAttr(n),
                          [](OpBuilder &ob, Location l, Value a, Value e) -> Value {
                            return arith::MinSIOp::create(ob, l, a, e);
                          });
  Value y = indexedGeneric(im, vs, et, [&](OpBuilder &ob, Location l, ValueRange a) -> Value {
    Value eq = arith::CmpIOp::create(ob, l, arith::CmpIPredicate::eq, indexToI64(ob, l, a[ax]), a[vr]);
    return arith::SelectOp::create(ob, l, eq, im.constantScalar(ob, l, et, 1.0),
                                   im.constantScalar(ob, l, et, 0.0));
  }, ValueRange{first}, {broadcastMap(im, im.shapeOf(first), vs)});
  im.setOutput(0, im.reshape(y, shape));
  return success();
}

static LogicalResult handleLpNormalization(OpContext &im) {
  Value x = im.input(0);
  Type et = im.elementType(x);
  if (!isFloat(et))
    return im.fail("supported for floating-point inputs only");
  int64_t rank = im.shapeOf(x).size();
  auto axis = im.normalizeAxis(im.attrInt("axis", -1), rank);
  if (failed(axis))
    return failure();
  int64_t p = im.attrInt("p", 2);
  if (p != 1 && p != 2)
    return im.fail("p must be 1 or 2");
  Value s = im.reduce(x, {*axis}, true, FloatAttr::get(et, 0.0),
                      [&](OpBuilder &ob, Location l, Value a, Value e) -> Value {
                        Value t = p == 1 ? (Value)math::AbsFOp::create(ob, l, e)
                                         : (Value)arith::MulFOp::create(ob, l, e, e);
                        return arith::AddFOp::create(ob, l, a, t);
                      });
  auto y = im.elementwise({x, s}, et, [&](OpBuilder &ob, Location l, ValueRange v) -> Value {
    Value norm = p == 1 ? v[1] : (Value)math::SqrtOp::create(ob, l, v[1]);
    Value zero = im.constantScalar(ob, l, et, 0.0);
    Value isZero = arith::CmpFOp::create(ob, l, arith::CmpFPredicate::OEQ, norm, zero);
    return arith::SelectOp::create(ob, l, isZero, zero, arith::DivFOp::create(ob, l, v[0], norm));
  });
  if (failed(y))
    return failure();
  im.setOutput(0, *y);
  return success();
}

static LogicalResult handleLRN(OpContext &im) {
  Value x = im.input(0);
  Type et = im.elementType(x);
  SmallVector<int64_t> s(im.shapeOf(x));
  int64_t size = im.attrInt("size", 0);
  if (!isFloat(et) || s.size() < 3 || size <= 0)
    return im.fail("needs a floating-point N x C x ... input and a positive size");
  double alpha = im.attrFloat("alpha", 1e-4f), beta = im.attrFloat("beta", 0.75f),
         bias = im.attrFloat("bias", 1.0f);
  auto sq = im.elementwise({x}, et, [](OpBuilder &ob, Location l, ValueRange v) -> Value {
    return arith::MulFOp::create(ob, l, v[0], v[0]);
  });
  if (failed(sq))
    return failure();
  int64_t rank = s.size();
  SmallVector<int64_t> lo(rank, 0), hi(rank, 0);
  lo[1] = (size - 1) / 2;
  hi[1] = size - 1 - lo[1];
  Value xp = im.pad(*sq, lo, hi, 0.0);
  MLIRContext *ctx = &im.ctx;
  int64_t dims = rank + 1;
  SmallVector<AffineExpr> ex, eo;
  for (int64_t i = 0; i < rank; ++i) {
    ex.push_back(i == 1 ? getAffineDimExpr(1, ctx) + getAffineDimExpr(rank, ctx) : getAffineDimExpr(i, ctx));
    eo.push_back(getAffineDimExpr(i, ctx));
  }
  Value init = im.fill(s, FloatAttr::get(et, 0.0));
  Value window = tensor::EmptyOp::create(im.b, im.loc, ArrayRef<int64_t>{size}, et);
  SmallVector<IteratorType> iters(dims, IteratorType::parallel);
  iters[rank] = IteratorType::reduction;
  Value sum = linalg::GenericOp::create(
      im.b, im.loc, TypeRange{init.getType()}, ValueRange{xp, window}, ValueRange{init},
      {AffineMap::get(dims, 0, ex, ctx), AffineMap::get(dims, 0, {getAffineDimExpr(rank, ctx)}, ctx),
       AffineMap::get(dims, 0, eo, ctx)},
      iters, [&](OpBuilder &ob, Location l, ValueRange v) {
        linalg::YieldOp::create(ob, l, arith::AddFOp::create(ob, l, v[2], v[0]).getResult());
      }).getResult(0);
  auto y = im.elementwise({x, sum}, et, [&](OpBuilder &ob, Location l, ValueRange v) -> Value {
    Value t = arith::AddFOp::create(ob, l, im.constantScalar(ob, l, et, bias),
                                    arith::MulFOp::create(ob, l, v[1], im.constantScalar(ob, l, et, alpha / size)));
    return arith::DivFOp::create(ob, l, v[0], math::PowFOp::create(ob, l, t, im.constantScalar(ob, l, et, beta)));
  });
  if (failed(y))
    return failure();
  im.setOutput(0, *y);
  return success();
}

/// MeanVarianceNormalization, as its ONNX function: (x - E[x]) /
/// (sqrt(E[x^2] - E[x]^2) + 1e-9) over `axes`.
static LogicalResult handleMeanVarianceNormalization(OpContext &im) {
  Value x = im.input(0);
  Type et = im.elementType(x);
  if (!isFloat(et))
    return im.fail("MeanVarianceNormalization needs a floating-point input");
  int64_t rank = im.shapeOf(x).size();
  SmallVector<int64_t> axes = im.attrInts("axes").value_or(SmallVector<int64_t>{0, 2, 3});
  for (int64_t &a : axes) {
    auto n = im.normalizeAxis(a, rank, "axes");
    if (failed(n))
      return failure();
    a = *n;
  }
  int64_t count = 1;
  for (int64_t a : axes)
    count *= im.shapeOf(x)[a];
  auto add = [](OpBuilder &ob, Location l, Value a, Value v) { return addOp(ob, l, a, v); };
  auto sq = im.elementwise({x}, et, [](OpBuilder &ob, Location l, ValueRange v) -> Value {
    return arith::MulFOp::create(ob, l, v[0], v[0]);
  });
  if (failed(sq))
    return failure();
  TypedAttr zero = FloatAttr::get(et, 0.0);
  Value sum = im.reduce(x, axes, true, zero, add);
  Value sumSq = im.reduce(*sq, axes, true, zero, add);
  auto y = im.elementwise({x, sum, sumSq}, et, [&](OpBuilder &ob, Location l, ValueRange v) -> Value {
    Value n = im.constantScalar(ob, l, et, static_cast<double>(count));
    Value mean = arith::DivFOp::create(ob, l, v[1], n);
    Value meanSq = arith::DivFOp::create(ob, l, v[2], n);
    Value var = arith::SubFOp::create(ob, l, meanSq, arith::MulFOp::create(ob, l, mean, mean));
    Value sd = arith::AddFOp::create(ob, l, math::SqrtOp::create(ob, l, var),
                                     im.constantScalar(ob, l, et, 1e-9));
    return arith::DivFOp::create(ob, l, arith::SubFOp::create(ob, l, v[0], mean), sd);
  });
  if (failed(y))
    return failure();
  im.setOutput(0, *y);
  return success();
}

/// MatMulInteger: (A - a_zero_point) x (B - b_zero_point) in int32; a 1-D
/// a_zero_point is per row of A, a 1-D b_zero_point per column of B.
static LogicalResult handleMatMulInteger(OpContext &im) {
  Type i32 = im.b.getI32Type();
  auto widen = [&](unsigned data, unsigned zp, bool perRow) -> FailureOr<Value> {
    Value v = im.input(data);
    bool u = im.isUnsigned(data);
    SmallVector<Value> ins = {v};
    if (im.hasInput(zp)) {
      Value z = im.input(zp);
      ArrayRef<int64_t> zs = im.shapeOf(z);
      if (perRow && zs.size() == 1 && im.shapeOf(v).size() >= 2)
        z = im.reshape(z, {zs[0], 1});
      ins.push_back(z);
    }
    return im.elementwise(ins, i32, [&](OpBuilder &ob, Location l, ValueRange a) -> Value {
      Value w = castScalar(ob, l, a[0], i32, u);
      if (a.size() == 1)
        return w;
      return arith::SubIOp::create(ob, l, w, castScalar(ob, l, a[1], i32, u));
    });
  };
  auto a = widen(0, 2, true), bm = widen(1, 3, false);
  if (failed(a) || failed(bm))
    return failure();
  SmallVector<int64_t> sa(im.shapeOf(*a)), sb(im.shapeOf(*bm));
  if (sa.size() < 2 || sb.size() < 2)
    return im.fail("MatMulInteger inputs of rank < 2 are not supported");
  auto r = contraction(im, *a, *bm, false, false, Value(), 1.0);
  if (failed(r))
    return failure();
  im.setOutput(0, *r);
  return success();
}

// MaxUnpool

/// MaxUnpool scatters X to the flat positions I of the unpooled shape
/// ((in - 1) * stride - pads + kernel), which sits at the origin of a larger
/// output_shape (as ONNX's reference places it). A scatter is a gather that
/// scans every X element per output: O(|Y| * |X|), exact for any indices,
/// with the last write winning like the reference's loop.
static LogicalResult handleMaxUnpool(OpContext &im) {
  Value x = im.input(0), ind = im.input(1);
  ArrayRef<int64_t> xs = im.shapeOf(x);
  int64_t rank = xs.size(), s = rank - 2;
  if (rank < 3 || im.shapeOf(ind) != xs || !im.elementType(ind).isInteger(64))
    return im.fail("X must be N x C x spatial and I an int64 tensor of X's shape");
  auto kernel = im.attrInts("kernel_shape");
  if (!kernel || (int64_t)kernel->size() != s)
    return im.fail("kernel_shape must list one size per spatial dimension");
  auto strides = im.attrInts("strides").value_or(SmallVector<int64_t>(s, 1));
  auto pads = im.attrInts("pads").value_or(SmallVector<int64_t>(2 * s, 0));
  if ((int64_t)strides.size() != s || (int64_t)pads.size() != 2 * s)
    return im.fail("strides/pads do not match the spatial dims");
  SmallVector<int64_t> inferred = {xs[0], xs[1]};
  for (int64_t i = 0; i < s; ++i)
    inferred.push_back((xs[2 + i] - 1) * strides[i] - pads[i] - pads[s + i] + (*kernel)[i]);
  SmallVector<int64_t> outShape = inferred;
  if (im.hasInput(2)) {
    auto os = im.constInts(2, "output_shape");
    if (failed(os))
      return failure();
    if ((int64_t)os->size() != rank)
      return im.fail("output_shape must have " + std::to_string(rank) + " entries");
    outShape.assign(os->begin(), os->end());
  }
  for (int64_t i = 0; i < rank; ++i)
    if (inferred[i] <= 0 || outShape[i] < inferred[i])
      return im.fail("output_shape " + shapeStr(outShape) + " is smaller than the unpooled shape " +
                     shapeStr(inferred));
  Type et = im.elementType(x);
  MLIRContext *ctx = &im.ctx;
  int64_t dims = 2 * rank;
  SmallVector<AffineExpr> ein, eo;
  for (int64_t i = 0; i < rank; ++i) {
    eo.push_back(getAffineDimExpr(i, ctx));
    ein.push_back(getAffineDimExpr(rank + i, ctx));
  }
  Value init = im.fill(outShape, cast<TypedAttr>(im.b.getZeroAttr(et)));
  SmallVector<IteratorType> iters(dims, IteratorType::parallel);
  for (int64_t i = rank; i < dims; ++i)
    iters[i] = IteratorType::reduction;
  AffineMap inMap = AffineMap::get(dims, 0, ein, ctx);
  Value y = linalg::GenericOp::create(
                im.b, im.loc, TypeRange{init.getType()}, ValueRange{x, ind}, ValueRange{init},
                {inMap, inMap, AffineMap::get(dims, 0, eo, ctx)}, iters,
                [&](OpBuilder &ob, Location l, ValueRange v) {
                  // Flat position of this output in the unpooled shape, or -1
                  // outside it.
                  Value flat = idx(ob, l, 0), inside;
                  for (int64_t i = 0; i < rank; ++i) {
                    Value p = linalg::IndexOp::create(ob, l, i);
                    if (inferred[i] < outShape[i])
                      inside = andI(ob, l, inside,
                                    cmpI(ob, l, arith::CmpIPredicate::slt, p, idx(ob, l, inferred[i])));
                    flat = arith::AddIOp::create(
                        ob, l, arith::MulIOp::create(ob, l, flat, idx(ob, l, inferred[i])), p);
                  }
                  Value f = arith::IndexCastOp::create(ob, l, ob.getI64Type(), flat);
                  if (inside)
                    f = arith::SelectOp::create(
                        ob, l, inside, f, arith::ConstantIntOp::create(ob, l, ob.getI64Type(), -1));
                  Value hit = cmpI(ob, l, arith::CmpIPredicate::eq, v[1], f);
                  linalg::YieldOp::create(ob, l,
                                          arith::SelectOp::create(ob, l, hit, v[0], v[2]).getResult());
                })
                .getResult(0);
  im.setOutput(0, y);
  return success();
}

/// MelWeightMatrix: triangular filters between mel-spaced frequency bins,
/// [dft_length / 2 + 1, num_mel_bins]; every input is a compile-time
/// constant, so the matrix is one too. Follows the ONNX reference, including
/// its bin spacing of (high - low) / (num_mel_bins + 2) mels.
static LogicalResult handleMelWeightMatrix(OpContext &im) {
  auto scalar = [&](unsigned i, StringRef what) -> FailureOr<double> {
    auto c = im.requireConst(i, what);
    if (failed(c))
      return failure();
    std::optional<HostTensor> h = HostTensor::fromAttr(*c);
    if (!h || h->numel() != 1)
      return im.fail(what + " must hold exactly one number");
    return h->get(0);
  };
  auto bins = scalar(0, "num_mel_bins"), dft = scalar(1, "dft_length"),
       rate = scalar(2, "sample_rate"), lower = scalar(3, "lower_edge_hertz"),
       upper = scalar(4, "upper_edge_hertz");
  if (failed(bins) || failed(dft) || failed(rate) || failed(lower) || failed(upper))
    return failure();
  int64_t numBins = (int64_t)*bins, dftLength = (int64_t)*dft, sampleRate = (int64_t)*rate;
  if (numBins <= 0 || dftLength <= 0 || sampleRate <= 0)
    return im.fail("num_mel_bins, dft_length and sample_rate must be positive");
  int64_t dt = im.attrInt("output_datatype", 1);
  Type et = onnxElementType(im.ctx, dt);
  if (!et || isUnsignedDataType(dt) || et.isInteger(1))
    return im.fail("output_datatype " + onnxTypeName(dt) + " is not supported");
  int64_t spectrogramBins = dftLength / 2 + 1;
  auto toMel = [](double hz) { return 2595.0 * std::log10(1.0 + hz / 700.0); };
  double lowMel = toMel(*lower), step = (toMel(*upper) - lowMel) / double(numBins + 2);
  SmallVector<int64_t> points;
  for (int64_t i = 0; i < numBins + 2; ++i) {
    double hz = 700.0 * (std::pow(10.0, (i * step + lowMel) / 2595.0) - 1.0);
    points.push_back((int64_t)std::floor((dftLength + 1) * hz / sampleRate));
  }
  std::vector<double> w(spectrogramBins * numBins, 0.0);
  auto set = [&](int64_t j, int64_t i, double v) -> LogicalResult {
    if (j < 0 || j >= spectrogramBins)
      return im.fail("a mel filter reaches past the spectrogram's " +
                     Twine(spectrogramBins) + " bins (upper_edge_hertz above sample_rate / 2?)");
    w[j * numBins + i] = v;
    return success();
  };
  for (int64_t i = 0; i < numBins; ++i) {
    int64_t left = points[i], center = points[i + 1], right = points[i + 2];
    if (center == left) {
      if (failed(set(center, i, 1.0)))
        return failure();
    } else {
      for (int64_t j = left; j <= center; ++j)
        if (failed(set(j, i, double(j - left) / double(center - left))))
          return failure();
    }
    for (int64_t j = center; j < right; ++j)
      if (failed(set(j, i, double(right - j) / double(right - center))))
        return failure();
  }
  HostTensor h;
  h.shape = {spectrogramBins, numBins};
  h.elemType = et;
  for (double v : w)
    h.push(v);
  im.setConstOutput(0, h.toAttr());
  return success();
}

// LinearAttention (opset 27)

/// Stacks `rows` (each [B, 1, N]) along axis 1.
static Value stackRows(OpContext &im, ArrayRef<Value> rows) {
  if (rows.size() == 1)
    return rows.front();
  SmallVector<int64_t> shape(im.shapeOf(rows.front()));
  shape[1] = rows.size();
  Type et = im.elementType(rows.front());
  return parallelGeneric(im, shape, et, {}, {},
                         [&](OpBuilder &ob, Location l, ValueRange iv, ValueRange) -> Value {
                           Value zero = idx(ob, l, 0), r;
                           for (int64_t t = rows.size() - 1; t >= 0; --t) {
                             Value v = tensor::ExtractOp::create(ob, l, rows[t],
                                                                 ValueRange{iv[0], zero, iv[2]});
                             if (!r) {
                               r = v;
                               continue;
                             }
                             Value here = arith::CmpIOp::create(ob, l, arith::CmpIPredicate::eq,
                                                                iv[1], idx(ob, l, t));
                             r = arith::SelectOp::create(ob, l, here, v, r);
                           }
                           return r;
                         });
}

/// The recurrence, unrolled over the (static) sequence length in f32 as the
/// reference runs it. Per step, on the state S[b, h, dk, dv]:
///   gated:  S *= exp(decay_t)           (per head or per key row)
///   delta:  u = beta_t * (v_t - S^T k_t)  else  u = v_t
///   S += k_t (x) u;  o_t = scale * q_t^T S[h / group]
/// Q/K/V/decay/beta are read straight from their packed [B, T, H*D] layout
/// through affine maps. Each token costs three kernels (retrieve, update,
/// read), so compile time grows linearly with T: right for decoding and
/// short prefills; long prefills would want the chunked (WY) form.
static LogicalResult handleLinearAttention(OpContext &im) {
  Value q = im.input(0), k = im.input(1), v = im.input(2);
  Type et = im.elementType(q);
  if (!isHalfOrFloat(et))
    return im.fail("supported for float, float16 and bfloat16 inputs only");
  std::string rule = im.attrString("update_rule", "gated_delta");
  if (rule != "linear" && rule != "gated" && rule != "delta" && rule != "gated_delta")
    return im.fail("update_rule '" + rule + "' is not one of linear, gated, delta, gated_delta");
  bool gating = rule == "gated" || rule == "gated_delta";
  bool delta = rule == "delta" || rule == "gated_delta";
  int64_t hq = im.attrInt("q_num_heads", 0), hkv = im.attrInt("kv_num_heads", 0);
  if (hq <= 0 || hkv <= 0 || hq % hkv != 0)
    return im.fail(llvm::formatv("q_num_heads ({0}) must be a positive multiple of "
                                 "kv_num_heads ({1})",
                                 hq, hkv)
                       .str());
  ArrayRef<int64_t> qs = im.shapeOf(q), ks = im.shapeOf(k), vs = im.shapeOf(v);
  if (qs.size() != 3 || ks.size() != 3 || vs.size() != 3)
    return im.fail("query, key and value must be 3-D (batch, seq, heads*head_size)");
  int64_t B = qs[0], T = qs[1];
  if (ks[0] != B || vs[0] != B || ks[1] != T || vs[1] != T || qs[2] % hq || ks[2] % hkv ||
      vs[2] % hkv || qs[2] / hq != ks[2] / hkv)
    return im.fail(llvm::formatv("query {0}, key {1} and value {2} do not fit {3} query and {4} "
                                 "key/value heads",
                                 shapeStr(qs), shapeStr(ks), shapeStr(vs), hq, hkv)
                       .str());
  if (T == 0)
    return im.fail("an empty sequence is not supported");
  int64_t dk = qs[2] / hq, dv = vs[2] / hkv, group = hq / hkv;
  for (unsigned i : {1u, 2u, 4u, 5u})
    if (im.hasInput(i) && im.elementType(im.input(i)) != et)
      return im.fail("key, value, decay and beta must have the query's element type");
  Value past = im.hasInput(3) ? im.input(3) : Value();
  Value decay = im.hasInput(4) ? im.input(4) : Value();
  Value beta = im.hasInput(5) ? im.input(5) : Value();
  if (gating != (bool)decay)
    return im.fail("update_rule '" + rule + (gating ? "' needs" : "' takes no") + " decay input");
  if (delta != (bool)beta)
    return im.fail("update_rule '" + rule + (delta ? "' needs" : "' takes no") + " beta input");
  if (past && (im.shapeOf(past) != ArrayRef<int64_t>{B, hkv, dk, dv} ||
               !isHalfOrFloat(im.elementType(past))))
    return im.fail(llvm::formatv("past_state must be a float tensor of shape [{0},{1},{2},{3}]",
                                 B, hkv, dk, dv)
                       .str());
  bool perHeadDecay = false;
  if (decay) {
    ArrayRef<int64_t> s = im.shapeOf(decay);
    perHeadDecay = s.size() == 3 && s[2] == hkv && hkv != hkv * dk;
    if (s.size() != 3 || s[0] != B || s[1] != T || (s[2] != hkv && s[2] != hkv * dk))
      return im.fail(llvm::formatv("decay must be [{0},{1},{2}] or [{0},{1},{3}], got {4}", B, T,
                                   hkv, hkv * dk, shapeStr(s))
                         .str());
  }
  bool sharedBeta = false;
  if (beta) {
    ArrayRef<int64_t> s = im.shapeOf(beta);
    if (s.size() != 3 || s[0] != B || s[1] != T || (s[2] != hkv && s[2] != 1))
      return im.fail(llvm::formatv("beta must be [{0},{1},{2}] or [{0},{1},1], got {3}", B, T, hkv,
                                   shapeStr(s))
                         .str());
    sharedBeta = s[2] == 1 && hkv != 1;
  }
  double scale = im.attrFloat("scale", 0.0f);
  if (scale == 0.0)
    scale = 1.0 / std::sqrt((double)dk);

  MLIRContext *ctx = &im.ctx;
  Type f32 = im.b.getF32Type();
  auto d = [&](unsigned i) { return getAffineDimExpr(i, ctx); };
  auto c = [&](int64_t v) { return getAffineConstantExpr(v, ctx); };
  AffineMap id4 = AffineMap::getMultiDimIdentityMap(4, ctx);
  SmallVector<IteratorType> red4 = {IteratorType::parallel, IteratorType::parallel,
                                    IteratorType::parallel, IteratorType::reduction};
  auto ext = [&](OpBuilder &ob, Location l, Value x) { return convertF(ob, l, x, f32); };

  Value S = past ? parallelGeneric(im, {B, hkv, dk, dv}, f32, {past}, {id4},
                                   [&](OpBuilder &ob, Location l, ValueRange, ValueRange a) {
                                     return ext(ob, l, a[0]);
                                   })
                 : im.fill({B, hkv, dk, dv}, cast<TypedAttr>(im.b.getZeroAttr(f32)));
  SmallVector<Value> rows;
  for (int64_t t = 0; t < T; ++t) {
    // State loops (b, h, i, m): i over d_k, m over d_v. The decay is applied
    // where the state is read (the retrieval and the update both see the
    // same rounded exp(g) * S) rather than as a kernel of its own.
    AffineMap kRow = map(im, 4, {d(0), c(t), d(1) * dk + d(2)});
    AffineMap vCol = map(im, 4, {d(0), c(t), d(1) * dv + d(3)});
    AffineMap gRow = perHeadDecay ? map(im, 4, {d(0), c(t), d(1)}) : kRow;
    auto decayed = [&](OpBuilder &ob, Location l, ValueRange a) -> Value {
      if (!gating)
        return a[0];
      return arith::MulFOp::create(ob, l, a[0], math::ExpOp::create(ob, l, ext(ob, l, a[1])));
    };
    // Operands 0 (and 1 when gated): the state and its decay.
    SmallVector<Value> sIns = {S};
    if (gating)
      sIns.push_back(decay);
    unsigned n0 = sIns.size();
    Value r;
    if (delta) {
      // r[b, h, m] = sum_i S[b, h, i, m] k_t[b, h, i]; loops (b, h, m, i).
      SmallVector<Value> ins(sIns);
      ins.push_back(k);
      SmallVector<AffineMap> maps = {map(im, 4, {d(0), d(1), d(3), d(2)})};
      if (gating)
        maps.push_back(perHeadDecay ? map(im, 4, {d(0), c(t), d(1)})
                                    : map(im, 4, {d(0), c(t), d(1) * dk + d(3)}));
      maps.push_back(map(im, 4, {d(0), c(t), d(1) * dk + d(3)}));
      r = generic(im, im.fill({B, hkv, dv}, cast<TypedAttr>(im.b.getZeroAttr(f32))),
                  map(im, 4, {d(0), d(1), d(2)}), ins, maps, red4,
                  [&](OpBuilder &ob, Location l, ValueRange, ValueRange a) -> Value {
                    Value p = arith::MulFOp::create(ob, l, decayed(ob, l, a), ext(ob, l, a[n0]));
                    return arith::AddFOp::create(ob, l, a[n0 + 1], p);
                  });
    }
    // S = decayed S + k_t (x) u with u = beta_t (v_t - r) or v_t.
    SmallVector<Value> ins(sIns);
    SmallVector<AffineMap> maps = {id4};
    if (gating)
      maps.push_back(gRow);
    ins.append({k, v});
    maps.append({kRow, vCol});
    if (delta) {
      ins.append({beta, r});
      maps.append({map(im, 4, {d(0), c(t), sharedBeta ? c(0) : d(1)}),
                   map(im, 4, {d(0), d(1), d(3)})});
    }
    S = parallelGeneric(im, {B, hkv, dk, dv}, f32, ins, maps,
                        [&](OpBuilder &ob, Location l, ValueRange, ValueRange a) -> Value {
                          Value u = ext(ob, l, a[n0 + 1]);
                          if (delta)
                            u = arith::MulFOp::create(ob, l, ext(ob, l, a[n0 + 2]),
                                                      arith::SubFOp::create(ob, l, u, a[n0 + 3]));
                          Value ku = arith::MulFOp::create(ob, l, ext(ob, l, a[n0]), u);
                          return arith::AddFOp::create(ob, l, decayed(ob, l, a), ku);
                        });
    // o_t[b, hq, m] = sum_i q_t[b, hq, i] S[b, hq / group, i, m]; loops
    // (b, hq, m, i).
    Value o = generic(im, im.fill({B, hq, dv}, cast<TypedAttr>(im.b.getZeroAttr(f32))),
                      map(im, 4, {d(0), d(1), d(2)}), {q, S},
                      {map(im, 4, {d(0), c(t), d(1) * dk + d(3)}),
                       map(im, 4, {d(0), d(1).floorDiv(group), d(3), d(2)})},
                      red4, [&](OpBuilder &ob, Location l, ValueRange, ValueRange a) -> Value {
                        return arith::AddFOp::create(
                            ob, l, a[2], arith::MulFOp::create(ob, l, ext(ob, l, a[0]), a[1]));
                      });
    rows.push_back(im.reshape(o, {B, 1, hq * dv}));
  }
  Value out = stackRows(im, rows);
  auto y = im.elementwise({out}, et, [&](OpBuilder &ob, Location l, ValueRange a) {
    return convertF(ob, l, arith::MulFOp::create(ob, l, a[0], im.constantScalar(ob, l, f32, scale)),
                    et);
  });
  if (failed(y))
    return failure();
  im.setOutput(0, *y);
  Type st = past ? im.elementType(past) : et;
  if (st != f32)
    S = parallelGeneric(im, {B, hkv, dk, dv}, st, {S}, {id4},
                        [&](OpBuilder &ob, Location l, ValueRange, ValueRange a) {
                          return convertF(ob, l, a[0], st);
                        });
  im.setOutput(1, S);
  return success();
}

// If

static LogicalResult handleIf(OpContext &ctx) {
  Importer &im = ctx.importer();
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

// Loop

static LogicalResult handleLoop(OpContext &ctx) {
  Importer &im = ctx.importer();
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
  int64_t maxIterations = im.importOptions().maxLoopIterations;
  for (int64_t it = 0; it < trip && cond; ++it) {
    // Without a condition the trip count is exact: fail before unrolling.
    if (it == maxIterations || (it == 0 && !im.hasInput(1) && trip > maxIterations))
      return im.fail("the loop runs more than " + Twine(maxIterations) +
                     " iterations; Kiln unrolls loops at compile time and stops there "
                     "(--max-loop-iterations)");
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
// Registration
//===----------------------------------------------------------------------===//

void kiln::detail::registerDefaultDomainHtoM(OpRegistry &r) {
  r.onOp("", "HammingWindow", 17, [](OpContext &im) {
    return handleWindow(im, 25.0 / 46.0, 1.0 - 25.0 / 46.0, 0.0);
  });
  r.onOp("", "HannWindow", 17, [](OpContext &im) { return handleWindow(im, 0.5, 0.5, 0.0); });
  r.onOp("", "HardSigmoid", 1, [](OpContext &im) {
    double alpha = im.attrFloat("alpha", 0.2f), beta = im.attrFloat("beta", 0.5f);
    return unary(im, [&](OpBuilder &ob, Location l, ValueRange v) -> Value {
      Value y = arith::AddFOp::create(
          ob, l, arith::MulFOp::create(ob, l, v[0], cst(im, ob, l, v[0], alpha)),
          cst(im, ob, l, v[0], beta));
      y = arith::MaximumFOp::create(ob, l, y, cst(im, ob, l, v[0], 0.0));
      return arith::MinimumFOp::create(ob, l, y, cst(im, ob, l, v[0], 1.0));
    });
  });
  r.onOp("", "HardSwish", 14, [](OpContext &im) {
    return unary(im, [&](OpBuilder &ob, Location l, ValueRange v) -> Value {
      Value h = arith::AddFOp::create(
          ob, l, arith::MulFOp::create(ob, l, v[0], cst(im, ob, l, v[0], 1.0 / 6.0)),
          cst(im, ob, l, v[0], 0.5));
      h = arith::MaximumFOp::create(ob, l, h, cst(im, ob, l, v[0], 0.0));
      h = arith::MinimumFOp::create(ob, l, h, cst(im, ob, l, v[0], 1.0));
      return arith::MulFOp::create(ob, l, v[0], h);
    });
  });
  r.onOp("", "Hardmax", 1, [](OpContext &im) { return handleHardmax(im, /*coerce2D=*/true); });
  r.onOp("", "Hardmax", 13, [](OpContext &im) { return handleHardmax(im, /*coerce2D=*/false); });
  r.onOp("", "Identity", 1, handleIdentity);
  r.onOp("", "If", 1, handleIf);
  r.onOp("", "InstanceNormalization", 1, handleInstanceNorm);
  r.onOp("", "IsInf", 10, handleIsInf);
  r.onOp("", "IsNaN", 9, [](OpContext &im) {
    if (!isFloat(im.elementType(im.input(0))))
      return im.fail("IsNaN needs a floating-point input");
    return mapInputs(im, im.b.getI1Type(), F_BODY(arith::CmpFOp::create(
                                               ob, l, arith::CmpFPredicate::UNO, v[0], v[0])));
  });
  r.onOp("", "LRN", 1, handleLRN);
  r.onOp("", "LSTM", 7, [](OpContext &im) { return handleRecurrent(im, {4, {"Sigmoid", "Tanh", "Tanh"}}); });
  r.onOp("", "LayerNormalization", 17, handleLayerNorm);
  r.onOp("", "LeakyRelu", 1, [](OpContext &im) {
    double alpha = im.attrFloat("alpha", 0.01f);
    return unary(im, [&](OpBuilder &ob, Location l, ValueRange v) -> Value {
      Value neg = arith::CmpFOp::create(ob, l, arith::CmpFPredicate::OLT, v[0],
                                        zeroOf(ob, l, v[0].getType()));
      Value scaled = arith::MulFOp::create(ob, l, v[0], cst(im, ob, l, v[0], alpha));
      return arith::SelectOp::create(ob, l, neg, scaled, v[0]);
    });
  });
  r.onOp("", "Less", 1, [](OpContext &im) { return binary(im, im.anyUnsigned() ? ltUOp : ltOp, true); });
  r.onOp("", "LessOrEqual", 12, [](OpContext &im) {
    return binary(im, im.anyUnsigned() ? leUOp : leOp, true);
  });
  r.onOp("", "LinearAttention", 27, handleLinearAttention);
  r.onOp("", "Log", 1, [](OpContext &im) { return mathUnary<math::LogOp>(im); });
  r.onOp("", "LogSoftmax", 1, [](OpContext &im) { return handleSoftmax(im, true, /*coerce2D=*/true); });
  r.onOp("", "LogSoftmax", 13,
         [](OpContext &im) { return handleSoftmax(im, true, /*coerce2D=*/false); });
  r.onOp("", "Loop", 1, handleLoop);
  r.onOp("", "LpNormalization", 1, handleLpNormalization);
  r.onOp("", "LpPool", 1, [](OpContext &im) {
    int64_t p = im.attrInt("p", 2);
    if (p <= 0)
      return im.fail("p must be positive");
    return handlePool(im, false, p);
  });
  r.onOp("", "MatMul", 1, handleMatMul);
  r.onOp("", "MatMulInteger", 10, handleMatMulInteger);
  r.onOp("", "Max", 1, [](OpContext &im) { return variadic(im, im.anyUnsigned() ? maxUOp : maxOp); });
  r.onOp("", "MaxPool", 1, [](OpContext &im) { return handlePool(im, true); });
  r.onOp("", "MaxUnpool", 9, handleMaxUnpool);
  r.onOp("", "Mean", 1, [](OpContext &im) { return variadic(im, addOp, true); });
  r.onOp("", "MeanVarianceNormalization", 9, handleMeanVarianceNormalization);
  r.onOp("", "MelWeightMatrix", 17, handleMelWeightMatrix);
  r.onOp("", "Min", 1, [](OpContext &im) { return variadic(im, im.anyUnsigned() ? minUOp : minOp); });
  r.onOp("", "Mish", 18, [](OpContext &im) {
    return unary(im, [&](OpBuilder &ob, Location l, ValueRange v) -> Value {
      Value sp = math::Log1pOp::create(ob, l, math::ExpOp::create(ob, l, v[0]));
      return arith::MulFOp::create(ob, l, v[0], math::TanhOp::create(ob, l, sp));
    });
  });
  r.onOp("", "Mod", 10, handleMod);
  r.onOp("", "Mul", 1, [](OpContext &im) { return binary(im, mulOp); });
}

//===- DefaultDomainNtoQ.cpp - ONNX ops N to Q ----------------------------===//
//
// Handlers of the default-domain (ai.onnx) ops whose names start with N to Q,
// registered by registerDefaultDomainNtoQ at the end of the file with the opset
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

static LogicalResult integerPow(OpContext &im);

static LogicalResult handlePow(OpContext &im) {
  Value x = im.input(0);
  Type et = im.elementType(x);
  if (!isFloat(et))
    return integerPow(im);
  // Exact fast paths for the exponents models use most.
  if (auto c = im.constInput(1); c && c->isSplat()) {
    auto h = HostTensor::fromAttr(*c);
    double e = h ? h->get(0) : NAN;
    auto unary = [&](BodyFn fn) {
      auto r = im.elementwise({x}, et, fn, llvm::to_vector(c->getType().getShape()));
      if (succeeded(r))
        im.setOutput(0, *r);
      return success(succeeded(r));
    };
    if (e == 2.0)
      return unary([](OpBuilder &ob, Location l, ValueRange v) -> Value {
        return arith::MulFOp::create(ob, l, v[0], v[0]);
      });
    if (e == 1.0)
      return unary([](OpBuilder &, Location, ValueRange v) -> Value { return v[0]; });
    if (e == 0.5)
      return unary([](OpBuilder &ob, Location l, ValueRange v) -> Value {
        return math::SqrtOp::create(ob, l, v[0]);
      });
  }
  Value y = im.input(1);
  auto r = im.elementwise({x, y}, et, [&](OpBuilder &ob, Location l, ValueRange v) -> Value {
    Value e = v[1];
    if (e.getType() != et)
      e = isFloat(e.getType()) ? (Value)arith::TruncFOp::create(ob, l, et, e)
                               : (Value)arith::SIToFPOp::create(ob, l, et, e);
    return math::PowFOp::create(ob, l, v[0], e);
  });
  if (failed(r))
    return failure();
  im.setOutput(0, *r);
  return success();
}

/// Pow with an integer base: the result has the base's type. An integer
/// exponent multiplies exactly (square and multiply over the exponent's bits,
/// wrapping like numpy); a float exponent goes through f64 and truncates,
/// like numpy's power(...).astype(base type).
static LogicalResult integerPow(OpContext &im) {
  Value x = im.input(0), y = im.input(1);
  Type et = im.elementType(x), yt = im.elementType(y);
  if (et.isInteger(1) || yt.isInteger(1))
    return im.fail("Pow does not take bool inputs");
  bool xu = im.isUnsigned(0), yu = im.isUnsigned(1);
  auto r = im.elementwise({x, y}, et, [&](OpBuilder &ob, Location l, ValueRange v) -> Value {
    if (isFloat(yt)) {
      Type f64 = ob.getF64Type();
      Value b = castScalar(ob, l, v[0], f64, xu);
      Value p = math::PowFOp::create(ob, l, b, castScalar(ob, l, v[1], f64));
      return castScalar(ob, l, p, et, false, xu);
    }
    Value e = v[1];
    unsigned bits = yt.getIntOrFloatBitWidth();
    Value one = im.constantScalar(ob, l, et, 1), result = one, base = v[0];
    for (unsigned i = 0; i < bits; ++i) {
      Value bit = arith::AndIOp::create(
          ob, l, arith::ShRUIOp::create(ob, l, e, im.constantScalar(ob, l, yt, i)),
          im.constantScalar(ob, l, yt, 1));
      Value set = arith::CmpIOp::create(ob, l, arith::CmpIPredicate::ne, bit,
                                        im.constantScalar(ob, l, yt, 0));
      result = arith::SelectOp::create(ob, l, set, mulOp(ob, l, result, base), result);
      base = mulOp(ob, l, base, base);
    }
    if (yu)
      return result;
    // A negative exponent: 1 / x^|e| truncates to 0 unless |x| == 1.
    Value neg = arith::CmpIOp::create(ob, l, arith::CmpIPredicate::slt, e,
                                      im.constantScalar(ob, l, yt, 0));
    Value isOne = arith::CmpIOp::create(ob, l, arith::CmpIPredicate::eq, v[0], one);
    Value odd = arith::TruncIOp::create(ob, l, ob.getI1Type(), e);
    Value sign = xu ? one
                    : (Value)arith::SelectOp::create(ob, l, odd,
                                                     im.constantScalar(ob, l, et, -1), one);
    Value isMinusOne = xu ? (Value)arith::ConstantOp::create(ob, l, ob.getBoolAttr(false))
                          : (Value)arith::CmpIOp::create(ob, l, arith::CmpIPredicate::eq, v[0],
                                                         im.constantScalar(ob, l, et, -1));
    Value negResult = arith::SelectOp::create(
        ob, l, isOne, one,
        arith::SelectOp::create(ob, l, isMinusOne, sign, im.constantScalar(ob, l, et, 0)));
    return arith::SelectOp::create(ob, l, neg, negResult, result);
  });
  if (failed(r))
    return failure();
  im.setOutput(0, *r);
  return success();
}

/// PRelu; `perChannel` (before opset 7, which brought numpy broadcasting):
/// a 1-D slope the size of dim 1 is per channel, not broadcast from the
/// right (how PyTorch's exporter relied on it).
static LogicalResult handlePRelu(OpContext &im, bool perChannel) {
  Value x = im.input(0), slope = im.input(1);
  Type et = im.elementType(x);
  if (et != im.elementType(slope))
    return im.fail("inputs have different element types");
  ArrayRef<int64_t> xs = im.shapeOf(x), ss = im.shapeOf(slope);
  if (perChannel && ss.size() == 1 && xs.size() > 2 && ss[0] == xs[1] && ss[0] != 1) {
    SmallVector<int64_t> perChannel(xs.size() - 1, 1);
    perChannel[0] = ss[0];
    slope = im.reshape(slope, perChannel);
  }
  auto y = im.elementwise({x, slope}, et, [&](OpBuilder &ob, Location l, ValueRange v) -> Value {
    Value zero = zeroOf(ob, l, et);
    Value neg = isFloat(et)
                    ? (Value)arith::CmpFOp::create(ob, l, arith::CmpFPredicate::OLT, v[0], zero)
                    : (Value)arith::CmpIOp::create(ob, l, arith::CmpIPredicate::slt, v[0], zero);
    return arith::SelectOp::create(ob, l, neg, mulOp(ob, l, v[0], v[1]), v[0]);
  });
  if (failed(y))
    return failure();
  im.setOutput(0, *y);
  return success();
}

/// How a version of Pad takes its pads: attribute `paddings` (opset 1),
/// attribute `pads` (2), inputs pads and constant_value (11), and an axes
/// input the pads apply to (18).
enum class PadForm { PaddingsAttr, PadsAttr, Inputs, InputsWithAxes };

static LogicalResult handlePad(OpContext &im, PadForm form) {
  Value x = im.input(0);
  int64_t rank = im.shapeOf(x).size();
  std::string mode = im.attrString("mode", "constant");
  if (mode != "constant" && mode != "reflect" && mode != "edge" && mode != "wrap")
    return im.fail("unknown pad mode '" + mode + "'");
  SmallVector<int64_t> pads;
  double value = 0.0;
  if (form == PadForm::PaddingsAttr || form == PadForm::PadsAttr) {
    pads = im.attrInts(form == PadForm::PaddingsAttr ? "paddings" : "pads")
               .value_or(SmallVector<int64_t>{});
    value = im.attrFloat("value", 0.0f);
  } else {
    auto p = im.constInts(1, "pads");
    if (failed(p))
      return failure();
    pads = *p;
    if (im.hasInput(2)) {
      auto c = im.requireConst(2, "constant_value");
      if (failed(c))
        return failure();
      auto h = HostTensor::fromAttr(*c);
      if (!h)
        return im.fail("constant_value has an unsupported element type");
      value = h->get(0);
    }
  }
  SmallVector<int64_t> lo(rank, 0), hi(rank, 0);
  if (form == PadForm::InputsWithAxes && im.hasInput(3)) {
    auto axes = im.constInts(3, "axes");
    if (failed(axes))
      return failure();
    if (pads.size() != 2 * axes->size())
      return im.fail("pads must have two entries per axis");
    for (auto [j, a] : llvm::enumerate(*axes)) {
      auto n = im.normalizeAxis(a, rank);
      if (failed(n))
        return failure();
      lo[*n] = pads[j];
      hi[*n] = pads[j + axes->size()];
    }
  } else {
    if ((int64_t)pads.size() != 2 * rank)
      return im.fail("pads must have 2 * rank entries");
    for (int64_t i = 0; i < rank; ++i) {
      lo[i] = pads[i];
      hi[i] = pads[i + rank];
    }
  }
  for (int64_t i = 0; i < rank; ++i)
    if (lo[i] < 0 || hi[i] < 0)
      return im.fail("negative pads are not supported");
  if (mode != "constant") {
    for (int64_t i = 0; i < rank; ++i)
      if ((lo[i] || hi[i]) && im.shapeOf(x)[i] == 0)
        return im.fail("pad mode '" + mode + "' cannot pad an empty dimension");
    im.setOutput(0, padWithMode(im, x, lo, hi, mode));
    return success();
  }
  im.setOutput(0, im.pad(x, lo, hi, value));
  return success();
}

static LogicalResult handleNLLLoss(OpContext &im) {
  Value x = im.input(0);
  if (!isFloat(im.elementType(x)))
    return im.fail("supported for floating-point inputs only");
  auto r = nllLoss(im, x, im.input(1), im.hasInput(2) ? im.input(2) : Value());
  if (failed(r))
    return failure();
  im.setOutput(0, *r);
  return success();
}

static LogicalResult handleOneHot(OpContext &im) {
  Value idx = im.input(0), values = im.input(2);
  SmallVector<int64_t> is(im.shapeOf(idx));
  auto dc = im.requireConst(1, "depth");
  if (failed(dc))
    return failure();
  auto dh = HostTensor::fromAttr(*dc);
  if (!dh || dh->numel() != 1)
    return im.fail("input 'depth' must hold exactly one number");
  int64_t depth = (int64_t)dh->get(0);
  if (im.shapeOf(values).size() != 1 || im.shapeOf(values)[0] != 2)
    return im.fail("values must be [off_value, on_value]");
  int64_t rank = is.size() + 1;
  auto axis = im.normalizeAxis(im.attrInt("axis", -1), rank);
  if (failed(axis))
    return failure();
  int64_t ax = *axis;
  SmallVector<int64_t> out(is);
  out.insert(out.begin() + ax, depth);
  Type et = im.elementType(values);
  bool fidx = isFloat(im.elementType(idx));
  SmallVector<AffineExpr> ie;
  for (int64_t i = 0; i < rank; ++i)
    if (i != ax)
      ie.push_back(getAffineDimExpr(i, &im.ctx));
  Value r = indexedGeneric(im, out, et, [&](OpBuilder &ob, Location l, ValueRange a) -> Value {
    Value raw = a[rank];
    if (fidx)
      raw = arith::FPToSIOp::create(ob, l, ob.getI64Type(), raw);
    Value i = arith::IndexCastOp::create(ob, l, ob.getIndexType(), raw);
    Value neg = arith::CmpIOp::create(ob, l, arith::CmpIPredicate::slt, i, idxConst(ob, l, 0));
    i = arith::SelectOp::create(ob, l, neg, arith::AddIOp::create(ob, l, i, idxConst(ob, l, depth)), i);
    Value on = arith::CmpIOp::create(ob, l, arith::CmpIPredicate::eq, i, a[ax]);
    Value offV = tensor::ExtractOp::create(ob, l, values, ValueRange{idxConst(ob, l, 0)});
    Value onV = tensor::ExtractOp::create(ob, l, values, ValueRange{idxConst(ob, l, 1)});
    return arith::SelectOp::create(ob, l, on, onV, offV);
  }, ValueRange{idx}, {AffineMap::get(rank, 0, ie, &im.ctx)});
  im.setOutput(0, r);
  return success();
}

/// QuantizeLinear: saturate(round_half_even(x / scale) + zero_point) to the
/// output integer type (zero_point's, output_dtype, or uint8).
static LogicalResult handleQuantizeLinear(OpContext &im) {
  Value x = im.input(0), scale = im.input(1);
  SmallVector<int64_t> xs(im.shapeOf(x));
  if (!isFloat(im.elementType(x)) || !isFloat(im.elementType(scale)))
    return im.fail("x and y_scale must be floating point");
  auto pm = quantParamMap(im, xs, im.shapeOf(scale));
  if (failed(pm))
    return failure();
  Value zp = im.hasInput(2) ? im.input(2) : Value();
  Type ot;
  bool uns;
  if (zp) {
    ot = im.elementType(zp);
    uns = im.isUnsigned(2);
  } else {
    int64_t dt = im.attrInt("output_dtype", 0);
    dt = dt ? dt : 2; // uint8
    ot = onnxElementType(im.ctx, dt);
    uns = isUnsignedDataType(dt);
  }
  auto it = dyn_cast_or_null<IntegerType>(ot);
  auto ft = dyn_cast_or_null<FloatType>(ot);
  bool f4 = isa_and_nonnull<Float4E2M1FNType>(ot);
  if (ft && (!isSmallType(ft) || isa<Float8E8M0FNUType>(ft)))
    return im.fail("float outputs other than float8 (e4m3fn, e4m3fnuz, e5m2, e5m2fnuz) and "
                   "float4e2m1 are not supported");
  if (!ft && (!it || it.getWidth() == 1 || it.getWidth() > 32))
    return im.fail("only 2/4/8/16/32-bit integer and small float outputs are supported");
  unsigned w = ot.getIntOrFloatBitWidth();
  double lo = uns ? 0 : -std::ldexp(1.0, w - 1), hi = uns ? std::ldexp(1.0, w) - 1 : std::ldexp(1.0, w - 1) - 1;
  bool saturate = im.attrInt("saturate", 1) != 0;
  int64_t rank = xs.size();
  SmallVector<Value> ins = {x, scale};
  SmallVector<AffineMap> maps = {AffineMap::getMultiDimIdentityMap(rank, &im.ctx), *pm};
  // FLOAT8 zero points are zero by definition; the reference ignores them.
  if (ft && !f4)
    zp = Value();
  if (zp) {
    auto zm = quantParamMap(im, xs, im.shapeOf(zp));
    if (failed(zm))
      return failure();
    ins.push_back(zp);
    maps.push_back(*zm);
  }
  Value r = indexedGeneric(im, xs, ot, [&](OpBuilder &ob, Location l, ValueRange a) -> Value {
    // Divide in x's type like the reference; then double precision keeps
    // int32 ranges exact.
    Type f64 = ob.getF64Type(), xt = a[rank].getType();
    Value q = arith::DivFOp::create(ob, l, a[rank], toFloat(ob, l, a[rank + 1], xt, false));
    if (ft) { // Small floats: x / scale (+ zero point for float4) rounded by the cast.
      if (zp)
        q = arith::AddFOp::create(ob, l, q, castScalar(ob, l, a[rank + 2], xt));
      return castScalar(ob, l, q, ot, false, false, saturate);
    }
    q = toFloat(ob, l, math::RoundEvenOp::create(ob, l, q), f64, false);
    if (zp)
      q = arith::AddFOp::create(ob, l, q, toFloat(ob, l, a[rank + 2], f64, uns));
    q = arith::MaximumFOp::create(ob, l, q, im.constantScalar(ob, l, f64, lo));
    q = arith::MinimumFOp::create(ob, l, q, im.constantScalar(ob, l, f64, hi));
    if (w < 8) // Clamped above, so the low bits of an i32 are the value.
      return arith::TruncIOp::create(ob, l, ot, arith::FPToSIOp::create(ob, l, ob.getI32Type(), q));
    return uns ? (Value)arith::FPToUIOp::create(ob, l, ot, q) : (Value)arith::FPToSIOp::create(ob, l, ot, q);
  }, ins, maps);
  im.setOutput(0, r);
  return success();
}

static Value toF32(OpBuilder &ob, Location l, Value v, bool uns = false) {
  Type f32 = ob.getF32Type();
  if (v.getType() == f32)
    return v;
  if (isFloat(v.getType()))
    return arith::ExtFOp::create(ob, l, f32, v);
  return uns ? (Value)arith::UIToFPOp::create(ob, l, f32, v)
             : (Value)arith::SIToFPOp::create(ob, l, f32, v);
}

/// The index expression of a per-tensor (scalar or [1]) or 1-D per-`what`
/// quantization parameter of shape `ps`, where `loop` walks the `size`
/// elements it is indexed by.
static FailureOr<SmallVector<AffineExpr>> quantParamExprs(OpContext &im, ArrayRef<int64_t> ps,
                                                          AffineExpr loop, int64_t size,
                                                          StringRef name, StringRef what) {
  int64_t numel = 1;
  for (int64_t d : ps)
    numel *= d;
  SmallVector<AffineExpr> e;
  if (numel == 1) {
    for (size_t i = 0; i < ps.size(); ++i)
      e.push_back(getAffineConstantExpr(0, &im.ctx));
    return e;
  }
  if (ps.size() == 1 && ps[0] == size)
    return SmallVector<AffineExpr>{loop};
  return im.fail(name + " of shape " + shapeStr(ps) + " is neither per-tensor nor per-" + what +
                 " (" + Twine(size) + " elements)");
}

static LogicalResult handleQLinearMatMul(OpContext &im) {
  if (failed(requireInputs(im, 8)))
    return failure();
  Value a = im.input(0), bm = im.input(3);
  SmallVector<int64_t> sa(im.shapeOf(a)), sb(im.shapeOf(bm));
  if (sa.size() < 2 || sb.size() < 2)
    return im.fail("a and b must have rank >= 2, got " + shapeStr(sa) + " and " + shapeStr(sb));
  Type ta = im.elementType(a), tb = im.elementType(bm);
  if (!ta.isInteger(8) || !tb.isInteger(8))
    return im.fail("a and b must be 8-bit integers");
  int64_t m = sa[sa.size() - 2], n = sb.back();
  auto idx = matmulIndexing(im, sa, sb, /*transA=*/false, /*transB=*/false);
  if (failed(idx))
    return failure();
  ArrayRef<int64_t> outShape = idx->outShape;
  AffineExpr dm = idx->m, dn = idx->n;
  MLIRContext *ctx = &im.ctx;
  auto d = [&](int64_t i) { return getAffineDimExpr(i, ctx); };

  // Zero points are subtracted inside the i32 contraction, like the reference.
  bool ua = im.isUnsigned(0), ub = im.isUnsigned(3);
  auto azpE = quantParamExprs(im, im.shapeOf(im.input(2)), dm, m, "a_zero_point", "row");
  auto bzpE = quantParamExprs(im, im.shapeOf(im.input(5)), dn, n, "b_zero_point", "column");
  if (failed(azpE) || failed(bzpE))
    return failure();
  Type i32 = im.b.getI32Type();
  Value acc = contract(im, {a, im.input(2), bm, im.input(5)}, {idx->a, *azpE, idx->b, *bzpE},
                       idx->numLoops, idx->out, outShape, i32,
                       [&](OpBuilder &ob, Location l, ValueRange v) -> Value {
                         Value x = arith::SubIOp::create(ob, l, extendTo(ob, l, v[0], i32, ua),
                                                         extendTo(ob, l, v[1], i32, ua));
                         Value y = arith::SubIOp::create(ob, l, extendTo(ob, l, v[2], i32, ub),
                                                         extendTo(ob, l, v[3], i32, ub));
                         return arith::MulIOp::create(ob, l, x, y);
                       });

  // Requantize: round_half_even(acc * a_scale * b_scale / y_scale) + y_zero_point,
  // saturated to the output type.
  int64_t rank = outShape.size();
  AffineExpr om = d(rank - 2), on = d(rank - 1);
  auto asE = quantParamExprs(im, im.shapeOf(im.input(1)), om, m, "a_scale", "row");
  auto bsE = quantParamExprs(im, im.shapeOf(im.input(4)), on, n, "b_scale", "column");
  auto ysE = quantParamExprs(im, im.shapeOf(im.input(6)), on, n, "y_scale", "column");
  auto yzE = quantParamExprs(im, im.shapeOf(im.input(7)), on, n, "y_zero_point", "column");
  if (failed(asE) || failed(bsE) || failed(ysE) || failed(yzE))
    return failure();
  for (unsigned i : {1u, 4u, 6u})
    if (!isFloat(im.elementType(im.input(i))))
      return im.fail("scales must be floating point");
  Value yzp = im.input(7);
  Type yt = im.elementType(yzp);
  bool uy = im.isUnsigned(7);
  if (!yt.isInteger(8))
    return im.fail("y_zero_point must be an 8-bit integer");
  double lo = uy ? 0 : -128, hi = uy ? 255 : 127;
  SmallVector<AffineMap> maps = {AffineMap::getMultiDimIdentityMap(rank, ctx)};
  for (auto *e : {&*asE, &*bsE, &*ysE, &*yzE})
    maps.push_back(AffineMap::get(rank, 0, *e, ctx));
  maps.push_back(AffineMap::getMultiDimIdentityMap(rank, ctx));
  Value init = tensor::EmptyOp::create(im.b, im.loc, outShape, yt);
  SmallVector<IteratorType> iters(rank, IteratorType::parallel);
  Value y = linalg::GenericOp::create(
                im.b, im.loc, TypeRange{init.getType()},
                ValueRange{acc, im.input(1), im.input(4), im.input(6), yzp}, ValueRange{init},
                maps, iters,
                [&](OpBuilder &ob, Location l, ValueRange v) {
                  Value scale = arith::DivFOp::create(
                      ob, l, arith::MulFOp::create(ob, l, toF32(ob, l, v[1]), toF32(ob, l, v[2])),
                      toF32(ob, l, v[3]));
                  Value q = arith::MulFOp::create(ob, l, toF32(ob, l, v[0]), scale);
                  q = arith::AddFOp::create(ob, l, q, toF32(ob, l, v[4], uy));
                  q = math::RoundEvenOp::create(ob, l, q);
                  q = arith::MaximumFOp::create(ob, l, q, im.constantScalar(ob, l, q.getType(), lo));
                  q = arith::MinimumFOp::create(ob, l, q, im.constantScalar(ob, l, q.getType(), hi));
                  Value r = uy ? (Value)arith::FPToUIOp::create(ob, l, yt, q)
                               : (Value)arith::FPToSIOp::create(ob, l, yt, q);
                  linalg::YieldOp::create(ob, l, r);
                })
                .getResult(0);
  im.setOutput(0, y);
  return success();
}

/// QLinearConv: the i32 convolution of the zero-point-shifted inputs plus
/// the i32 bias, requantized as the reference does: acc * (x_scale *
/// w_scale / y_scale) in f64 (numpy promotes the int32 accumulator), plus
/// y_zero_point, rounded half to even and saturated.
static LogicalResult handleQLinearConv(OpContext &im) {
  if (failed(requireInputs(im, 8)))
    return failure();
  auto x = shiftedInt8(im, 0, 2, false, "x");
  if (failed(x))
    return failure();
  auto w = shiftedInt8(im, 3, 5, true, "w");
  if (failed(w))
    return failure();
  Value bias = im.hasInput(8) ? im.input(8) : Value();
  if (bias && !im.elementType(bias).isInteger(32))
    return im.fail("B must be an int32 tensor");
  auto acc = convolution(im, *x, *w, bias);
  if (failed(acc))
    return failure();
  for (unsigned i : {1u, 4u, 6u})
    if (!im.elementType(im.input(i)).isF32())
      return im.fail("scales must be float32");
  int64_t rank = im.shapeOf(*acc).size();
  Value ws = im.input(4);
  int64_t wsNumel = 1;
  for (int64_t dd : im.shapeOf(ws))
    wsNumel *= dd;
  if (wsNumel != 1) {
    if (im.shapeOf(ws).size() != 1 || wsNumel != im.shapeOf(*acc)[1])
      return im.fail("w_scale must be a scalar or have one value per output channel, got " +
                     shapeStr(im.shapeOf(ws)));
    SmallVector<int64_t> cs(rank, 1);
    cs[1] = wsNumel;
    ws = im.reshape(ws, cs);
  } else {
    ws = im.reshape(ws, {});
  }
  Value yzp = im.input(7);
  Type yt = im.elementType(yzp);
  bool uy = im.isUnsigned(7);
  if (!yt.isInteger(8))
    return im.fail("y_zero_point must be an 8-bit integer");
  double lo = uy ? 0 : -128, hi = uy ? 255 : 127;
  Type f64 = im.b.getF64Type();
  auto y = im.elementwise(
      {*acc, im.reshape(im.input(1), {}), ws, im.reshape(im.input(6), {}), im.reshape(yzp, {})},
      yt, [&](OpBuilder &ob, Location l, ValueRange v) -> Value {
        Value scale = arith::DivFOp::create(ob, l, arith::MulFOp::create(ob, l, v[1], v[2]), v[3]);
        Value q = arith::MulFOp::create(ob, l, arith::SIToFPOp::create(ob, l, f64, v[0]),
                                        arith::ExtFOp::create(ob, l, f64, scale));
        q = arith::AddFOp::create(ob, l, q,
                                  uy ? (Value)arith::UIToFPOp::create(ob, l, f64, v[4])
                                     : (Value)arith::SIToFPOp::create(ob, l, f64, v[4]));
        q = math::RoundEvenOp::create(ob, l, q);
        q = arith::MaximumFOp::create(ob, l, q, im.constantScalar(ob, l, f64, lo));
        q = arith::MinimumFOp::create(ob, l, q, im.constantScalar(ob, l, f64, hi));
        return uy ? (Value)arith::FPToUIOp::create(ob, l, yt, q)
                  : (Value)arith::FPToSIOp::create(ob, l, yt, q);
      });
  if (failed(y))
    return failure();
  im.setOutput(0, *y);
  return success();
}

/// NonZero: [rank, n] i64 (n = numel, the bound) whose column k holds the
/// coordinates of the (k+1)-th nonzero element in row-major order; the
/// number of nonzeros is the extent of dim 1. A constant input folds.
static LogicalResult handleNonZero(OpContext &im) {
  if (failed(requireInputs(im, 1)))
    return failure();
  Value x = im.input(0);
  SmallVector<int64_t> xs(im.shapeOf(x));
  int64_t rank = xs.size(), n = 1;
  for (int64_t d : xs)
    n *= d;
  if (rank == 0)
    return im.fail("a scalar input is not supported");
  Type i64 = im.b.getI64Type();
  if (auto c = im.constInput(0)) {
    auto h = HostTensor::fromAttr(*c);
    if (!h)
      return im.fail("unsupported constant element type");
    std::vector<int64_t> hits;
    for (int64_t j = 0; j < n; ++j)
      if (h->get(j) != 0)
        hits.push_back(j);
    std::vector<int64_t> out(rank * hits.size());
    for (size_t k = 0; k < hits.size(); ++k)
      for (int64_t d = rank - 1, j = hits[k]; d >= 0; --d) {
        out[d * hits.size() + k] = j % xs[d];
        j /= xs[d];
      }
    auto type = RankedTensorType::get({rank, (int64_t)hits.size()}, i64);
    im.setConstOutput(0, DenseElementsAttr::get(type, ArrayRef<int64_t>(out)));
    return success();
  }
  if (n == 0) {
    im.setOutput(0, tensor::EmptyOp::create(im.b, im.loc, SmallVector<int64_t>{rank, 0}, i64));
    return success();
  }
  Value flat = im.reshape(x, {n});
  Value prefix = prefixCount(im, flat, nonZero);
  Value y = mapGeneric(im, {rank, n}, i64, {}, {}, [&](OpBuilder &ob, Location l, ValueRange) -> Value {
    Value d = linalg::IndexOp::create(ob, l, 0), k = linalg::IndexOp::create(ob, l, 1);
    Value j = kthKept(ob, l, prefix, k, n);
    // Coordinate d of flat index j.
    Value coord = arith::ConstantIndexOp::create(ob, l, 0);
    Value rest = j;
    for (int64_t dim = rank - 1; dim >= 0; --dim) {
      Value size = arith::ConstantIndexOp::create(ob, l, xs[dim]);
      Value c = arith::RemUIOp::create(ob, l, rest, size);
      rest = arith::DivUIOp::create(ob, l, rest, size);
      Value here = arith::CmpIOp::create(ob, l, arith::CmpIPredicate::eq, d,
                                         arith::ConstantIndexOp::create(ob, l, dim));
      coord = arith::SelectOp::create(ob, l, here, c, coord);
    }
    return arith::IndexCastOp::create(ob, l, ob.getI64Type(), coord);
  });
  im.setDynamicOutput(0, y, keptCount(im, prefix), {1});
  return success();
}

/// NonMaxSuppression. Greedy selection in score order is the fixpoint of
/// "a valid box is kept unless a kept box of higher priority overlaps it
/// beyond the IoU threshold"; iterating that from "every valid box" settles
/// one more box per round, so N rounds (one generic each) are exact. The
/// first max_output_boxes_per_class kept boxes of each (batch, class) are
/// then written in that order: [B*C*N, 3] bound, the count data-dependent.
static LogicalResult handleNonMaxSuppression(OpContext &im) {
  if (failed(requireInputs(im, 2)))
    return failure();
  Value boxes = im.input(0), scores = im.input(1);
  ArrayRef<int64_t> bs = im.shapeOf(boxes), ss = im.shapeOf(scores);
  if (bs.size() != 3 || bs[2] != 4 || ss.size() != 3 || ss[0] != bs[0] || ss[2] != bs[1])
    return im.fail("boxes must be [B, N, 4] and scores [B, C, N], got " + shapeStr(bs) + " and " +
                   shapeStr(ss));
  Type et = im.elementType(boxes);
  if (!et.isF32() || im.elementType(scores) != et)
    return im.fail("boxes and scores must be float32 tensors");
  int64_t B = bs[0], N = bs[1], C = ss[1];
  bool center = im.attrInt("center_point_box", 0);
  auto scalarInput = [&](unsigned i, StringRef name) -> FailureOr<Value> {
    if (!im.hasInput(i))
      return Value();
    Value v = im.input(i);
    if (im.elementType(v) != (i == 2 ? (Type)im.b.getI64Type() : et))
      return im.fail(name + (i == 2 ? " must be int64" : " must be float32"));
    int64_t n = 1;
    for (int64_t d : im.shapeOf(v))
      n *= d;
    if (n != 1)
      return im.fail(name + " must hold one value");
    return im.reshape(v, {1});
  };
  auto maxOut = scalarInput(2, "max_output_boxes_per_class");
  auto iouT = scalarInput(3, "iou_threshold");
  auto scoreT = scalarInput(4, "score_threshold");
  if (failed(maxOut) || failed(iouT) || failed(scoreT))
    return failure();
  Type i64 = im.b.getI64Type();
  // Without max_output_boxes_per_class nothing is selected.
  if (!*maxOut || N == 0 || B * C == 0) {
    im.setOutput(0, tensor::EmptyOp::create(im.b, im.loc, SmallVector<int64_t>{0, 3}, i64));
    return success();
  }
  MLIRContext *ctx = &im.ctx;
  auto d = [&](int64_t i) { return getAffineDimExpr(i, ctx); };
  auto idx = [](OpBuilder &ob, Location l, int64_t v) -> Value {
    return arith::ConstantIndexOp::create(ob, l, v);
  };
  auto c64 = [](OpBuilder &ob, Location l, int64_t v) -> Value {
    return arith::ConstantOp::create(ob, l, ob.getI64IntegerAttr(v));
  };
  auto cf = [&](OpBuilder &ob, Location l, double v) { return im.constantScalar(ob, l, et, v); };
  auto i64Attr = [&](int64_t v) { return cast<TypedAttr>(im.b.getI64IntegerAttr(v)); };
  auto fcmp = [](OpBuilder &ob, Location l, arith::CmpFPredicate p, Value a, Value b) -> Value {
    return arith::CmpFOp::create(ob, l, p, a, b);
  };
  auto land = [](OpBuilder &ob, Location l, Value a, Value b) -> Value {
    return arith::AndIOp::create(ob, l, a, b);
  };
  auto score = [&](OpBuilder &ob, Location l, Value b, Value c, Value i) -> Value {
    return tensor::ExtractOp::create(ob, l, scores, ValueRange{b, c, i});
  };
  // Box j comes before box i: higher score, or the same and a lower index.
  auto before = [&](OpBuilder &ob, Location l, Value b, Value c, Value j, Value i) -> Value {
    Value sj = score(ob, l, b, c, j), si = score(ob, l, b, c, i);
    Value tie = land(ob, l, fcmp(ob, l, arith::CmpFPredicate::OEQ, sj, si),
                     arith::CmpIOp::create(ob, l, arith::CmpIPredicate::ult, j, i));
    return arith::OrIOp::create(ob, l, fcmp(ob, l, arith::CmpFPredicate::OGT, sj, si), tie);
  };
  // Extent [lo, hi] of box i along axis a (0: y, 1: x) per center_point_box.
  auto extent = [&](OpBuilder &ob, Location l, Value b, Value i, int a) -> std::pair<Value, Value> {
    auto at = [&](int64_t k) -> Value {
      return tensor::ExtractOp::create(ob, l, boxes, ValueRange{b, i, idx(ob, l, k)});
    };
    if (center) {
      // [x_center, y_center, width, height]
      Value mid = at(a == 1 ? 0 : 1), half = arith::DivFOp::create(ob, l, at(a == 1 ? 2 : 3), cf(ob, l, 2));
      return {arith::SubFOp::create(ob, l, mid, half), arith::AddFOp::create(ob, l, mid, half)};
    }
    // [y1, x1, y2, x2], corners in either order.
    Value p = at(a), q = at(a + 2);
    return {arith::MinimumFOp::create(ob, l, p, q), arith::MaximumFOp::create(ob, l, p, q)};
  };
  // IoU(i, j) > threshold, with the reference's early outs.
  auto overlaps = [&](OpBuilder &ob, Location l, Value b, Value i, Value j, Value thr) -> Value {
    Value inter = cf(ob, l, 1), area1 = cf(ob, l, 1), area2 = cf(ob, l, 1);
    Value ok = arith::ConstantOp::create(ob, l, ob.getBoolAttr(true));
    for (int a = 0; a < 2; ++a) {
      auto [lo1, hi1] = extent(ob, l, b, i, a);
      auto [lo2, hi2] = extent(ob, l, b, j, a);
      Value lo = arith::MaximumFOp::create(ob, l, lo1, lo2), hi = arith::MinimumFOp::create(ob, l, hi1, hi2);
      ok = land(ob, l, ok, fcmp(ob, l, arith::CmpFPredicate::OGT, hi, lo));
      inter = arith::MulFOp::create(ob, l, inter, arith::SubFOp::create(ob, l, hi, lo));
      area1 = arith::MulFOp::create(ob, l, area1, arith::SubFOp::create(ob, l, hi1, lo1));
      area2 = arith::MulFOp::create(ob, l, area2, arith::SubFOp::create(ob, l, hi2, lo2));
    }
    Value uni = arith::SubFOp::create(ob, l, arith::AddFOp::create(ob, l, area1, area2), inter);
    Value zero = cf(ob, l, 0);
    for (Value v : {inter, area1, area2, uni})
      ok = land(ob, l, ok, fcmp(ob, l, arith::CmpFPredicate::OGT, v, zero));
    Value iou = arith::DivFOp::create(ob, l, inter, uni);
    return land(ob, l, ok, fcmp(ob, l, arith::CmpFPredicate::OGT, iou, thr));
  };
  auto loopIdx = [](OpBuilder &ob, Location l, unsigned k) -> Value {
    return linalg::IndexOp::create(ob, l, k);
  };
  auto isOne = [&](OpBuilder &ob, Location l, Value v) -> Value {
    return arith::CmpIOp::create(ob, l, arith::CmpIPredicate::eq, v, c64(ob, l, 1));
  };
  // valid[b, c, i]: passes score_threshold (strictly), as 0/1.
  Value valid = mapGeneric(im, {B, C, N}, i64, {}, {}, [&](OpBuilder &ob, Location l, ValueRange) -> Value {
    if (!*scoreT)
      return c64(ob, l, 1);
    Value s = score(ob, l, loopIdx(ob, l, 0), loopIdx(ob, l, 1), loopIdx(ob, l, 2));
    Value t = tensor::ExtractOp::create(ob, l, *scoreT, ValueRange{idx(ob, l, 0)});
    return arith::ExtUIOp::create(ob, l, ob.getI64Type(), fcmp(ob, l, arith::CmpFPredicate::OGT, s, t));
  });
  Value kept = valid;
  for (int64_t round = 0; round < N; ++round) {
    // suppressed[b, c, i] = any kept j before i overlapping it; loops (b, c, i, j).
    Value prev = kept;
    kept = foldLoops(im, {B, C, N}, 4, {prev, valid}, {{d(0), d(1), d(3)}, {d(0), d(1), d(2)}},
                     {d(0), d(1), d(2)}, i64Attr(1),
                     [&](OpBuilder &ob, Location l, Value acc, ValueRange v) -> Value {
                       Value b = loopIdx(ob, l, 0), c = loopIdx(ob, l, 1);
                       Value i = loopIdx(ob, l, 2), j = loopIdx(ob, l, 3);
                       Value thr = *iouT ? tensor::ExtractOp::create(ob, l, *iouT, ValueRange{idx(ob, l, 0)}).getResult()
                                         : cf(ob, l, 0);
                       Value hit = land(ob, l, land(ob, l, isOne(ob, l, v[0]), before(ob, l, b, c, j, i)),
                                        overlaps(ob, l, b, i, j, thr));
                       Value stay = land(ob, l, isOne(ob, l, v[1]),
                                         arith::XOrIOp::create(ob, l, hit, arith::ConstantOp::create(ob, l, ob.getBoolAttr(true))));
                       return arith::AndIOp::create(ob, l, acc,
                                                    arith::ExtUIOp::create(ob, l, ob.getI64Type(), stay));
                     });
  }
  // rank[b, c, i]: kept boxes before i; loops (b, c, i, j).
  Value rank = foldLoops(im, {B, C, N}, 4, {kept}, {{d(0), d(1), d(3)}}, {d(0), d(1), d(2)}, i64Attr(0),
                         [&](OpBuilder &ob, Location l, Value acc, ValueRange v) -> Value {
                           Value hit = land(ob, l, isOne(ob, l, v[0]),
                                            before(ob, l, loopIdx(ob, l, 0), loopIdx(ob, l, 1),
                                                   loopIdx(ob, l, 3), loopIdx(ob, l, 2)));
                           return arith::AddIOp::create(ob, l, acc, arith::ExtUIOp::create(ob, l, ob.getI64Type(), hit));
                         });
  // slot[b, c, r]: the box kept at rank r (r < count).
  Value slot = foldLoops(im, {B, C, N}, 4, {kept, rank}, {{d(0), d(1), d(3)}, {d(0), d(1), d(3)}},
                         {d(0), d(1), d(2)}, i64Attr(0),
                         [&](OpBuilder &ob, Location l, Value acc, ValueRange v) -> Value {
                           Value r = arith::IndexCastOp::create(ob, l, ob.getI64Type(), loopIdx(ob, l, 2));
                           Value hit = land(ob, l, isOne(ob, l, v[0]),
                                            arith::CmpIOp::create(ob, l, arith::CmpIPredicate::eq, v[1], r));
                           Value j = arith::IndexCastOp::create(ob, l, ob.getI64Type(), loopIdx(ob, l, 3));
                           return arith::SelectOp::create(ob, l, hit, j, acc);
                         });
  // count[g] (g = b * C + c): min(kept boxes, max_output_boxes_per_class).
  Value count = foldLoops(im, {B, C}, 3, {kept}, {{d(0), d(1), d(2)}}, {d(0), d(1)}, i64Attr(0),
                          [&](OpBuilder &ob, Location l, Value acc, ValueRange v) -> Value {
                            return arith::AddIOp::create(ob, l, acc, v[0]);
                          });
  count = mapGeneric(im, {B * C}, i64, {im.reshape(count, {B * C}), *maxOut}, {{d(0)}, {getAffineConstantExpr(0, ctx)}},
                     [&](OpBuilder &ob, Location l, ValueRange v) -> Value {
                       Value m = arith::MaxSIOp::create(ob, l, v[1], c64(ob, l, 0));
                       return arith::MinSIOp::create(ob, l, v[0], m);
                     });
  // end[g]: rows up to and including group g.
  Value end = foldLoops(im, {B * C}, 2, {count}, {{d(1)}}, {d(0)}, i64Attr(0),
                        [&](OpBuilder &ob, Location l, Value acc, ValueRange v) -> Value {
                          Value in = arith::CmpIOp::create(ob, l, arith::CmpIPredicate::ule,
                                                           loopIdx(ob, l, 1), loopIdx(ob, l, 0));
                          return arith::SelectOp::create(ob, l, in, arith::AddIOp::create(ob, l, acc, v[0]), acc);
                        });
  Value total = mapGeneric(im, {1}, i64, {end}, {{getAffineConstantExpr(B * C - 1, ctx)}},
                           [](OpBuilder &, Location, ValueRange v) { return v[0]; });
  int64_t G = B * C;
  Value y = mapGeneric(im, {G * N, 3}, i64, {}, {}, [&](OpBuilder &ob, Location l, ValueRange) -> Value {
    Value p = arith::IndexCastOp::create(ob, l, ob.getI64Type(), loopIdx(ob, l, 0));
    // The group of row p: the number of groups that end at or before it.
    Value g = c64(ob, l, 0), start = c64(ob, l, 0);
    for (int64_t k = 0; k < G; ++k) {
      Value e = tensor::ExtractOp::create(ob, l, end, ValueRange{idx(ob, l, k)});
      Value done = arith::CmpIOp::create(ob, l, arith::CmpIPredicate::sle, e, p);
      g = arith::SelectOp::create(ob, l, done, c64(ob, l, k + 1), g);
      start = arith::SelectOp::create(ob, l, done, e, start);
    }
    g = arith::MinSIOp::create(ob, l, g, c64(ob, l, G - 1));
    Value b = arith::DivSIOp::create(ob, l, g, c64(ob, l, C)), c = arith::RemSIOp::create(ob, l, g, c64(ob, l, C));
    Value r = arith::MinSIOp::create(ob, l, arith::SubIOp::create(ob, l, p, start), c64(ob, l, N - 1));
    r = arith::MaxSIOp::create(ob, l, r, c64(ob, l, 0));
    auto asIdx = [&](Value v) -> Value { return arith::IndexCastOp::create(ob, l, ob.getIndexType(), v); };
    Value box = tensor::ExtractOp::create(ob, l, slot, ValueRange{asIdx(b), asIdx(c), asIdx(r)});
    Value col = loopIdx(ob, l, 1);
    Value isB = arith::CmpIOp::create(ob, l, arith::CmpIPredicate::eq, col, idx(ob, l, 0));
    Value isC = arith::CmpIOp::create(ob, l, arith::CmpIPredicate::eq, col, idx(ob, l, 1));
    return arith::SelectOp::create(ob, l, isB, b, arith::SelectOp::create(ob, l, isC, c, box));
  });
  im.setDynamicOutput(0, y, total, {0});
  return success();
}

// Optionals

static LogicalResult handleOptional(OpContext &ctx) {
  Importer &im = ctx.importer();
  if (im.wantsOutput(0))
    im.optionals[im.node->output(0)] =
        im.hasInput(0) ? elementOf(im, im.node->input(0)) : std::string();
  return success();
}

static LogicalResult handleOptionalHasElement(OpContext &ctx) {
  Importer &im = ctx.importer();
  bool has = im.hasInput(0) &&
             (!im.isOptional(0) || !im.optionals.lookup(im.node->input(0)).empty());
  im.setConstOutput(0, boolAttr(im, has));
  return success();
}

static LogicalResult handleOptionalGetElement(OpContext &ctx) {
  Importer &im = ctx.importer();
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

void kiln::detail::registerDefaultDomainNtoQ(OpRegistry &r) {
  r.onOp("", "Neg", 1, [](OpContext &im) {
    return unary(im, F_BODY(isFloat(v[0].getType()) ? (Value)arith::NegFOp::create(ob, l, v[0])
                                                    : subOp(ob, l, zeroOf(ob, l, v[0].getType()), v[0])),
                 false);
  });
  r.onOp("", "NegativeLogLikelihoodLoss", 12, handleNLLLoss);
  r.onOp("", "NonMaxSuppression", 10, handleNonMaxSuppression);
  r.onOp("", "NonZero", 9, handleNonZero);
  r.onOp("", "Not", 1, [](OpContext &im) {
    return unary(im, F_BODY(arith::XOrIOp::create(ob, l, v[0],
                                                  arith::ConstantOp::create(ob, l, ob.getBoolAttr(true)))),
                 false);
  });
  r.onOp("", "OneHot", 9, handleOneHot);
  r.onOp("", "Optional", 15, handleOptional);
  r.onOp("", "OptionalGetElement", 15, handleOptionalGetElement);
  r.onOp("", "OptionalHasElement", 15, handleOptionalHasElement);
  r.onOp("", "Or", 1, [](OpContext &im) { return binary(im, orOp); });
  r.onOp("", "PRelu", 1, [](OpContext &im) { return handlePRelu(im, /*perChannel=*/true); });
  r.onOp("", "PRelu", 7, [](OpContext &im) { return handlePRelu(im, /*perChannel=*/false); });
  r.onOp("", "Pad", 1, [](OpContext &im) { return handlePad(im, PadForm::PaddingsAttr); });
  r.onOp("", "Pad", 2, [](OpContext &im) { return handlePad(im, PadForm::PadsAttr); });
  r.onOp("", "Pad", 11, [](OpContext &im) { return handlePad(im, PadForm::Inputs); });
  r.onOp("", "Pad", 18, [](OpContext &im) { return handlePad(im, PadForm::InputsWithAxes); });
  r.onOp("", "Pow", 1, handlePow);
  r.onOp("", "QLinearConv", 10, handleQLinearConv);
  r.onOp("", "QLinearMatMul", 10, handleQLinearMatMul);
  r.onOp("", "QuantizeLinear", 10, handleQuantizeLinear);
}

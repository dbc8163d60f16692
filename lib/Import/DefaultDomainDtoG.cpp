//===- DefaultDomainDtoG.cpp - ONNX ops D to G ----------------------------===//
//
// Handlers of the default-domain (ai.onnx) ops whose names start with D, E, F
// or G, registered by registerDefaultDomainDtoG at the end of the file with the
// opset each handler applies from.
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

static Value geluErf(OpContext &im, OpBuilder &ob, Location l, Value x) {
  Value s = arith::MulFOp::create(ob, l, x, cst(im, ob, l, x, M_SQRT1_2));
  Value e = math::ErfOp::create(ob, l, s);
  Value one = arith::AddFOp::create(ob, l, e, cst(im, ob, l, x, 1.0));
  Value hx = arith::MulFOp::create(ob, l, x, cst(im, ob, l, x, 0.5));
  return arith::MulFOp::create(ob, l, hx, one);
}

static Value geluTanh(OpContext &im, OpBuilder &ob, Location l, Value x) {
  Value x3 = arith::MulFOp::create(ob, l, x, arith::MulFOp::create(ob, l, x, x));
  Value inner = arith::AddFOp::create(
      ob, l, x, arith::MulFOp::create(ob, l, x3, cst(im, ob, l, x, 0.044715)));
  Value t = math::TanhOp::create(
      ob, l, arith::MulFOp::create(ob, l, inner, cst(im, ob, l, x, std::sqrt(2.0 / M_PI))));
  Value one = arith::AddFOp::create(ob, l, t, cst(im, ob, l, x, 1.0));
  Value hx = arith::MulFOp::create(ob, l, x, cst(im, ob, l, x, 0.5));
  return arith::MulFOp::create(ob, l, hx, one);
}

static LogicalResult handleGemm(OpContext &im) {
  Value a = im.input(0), bm = im.input(1);
  if (im.shapeOf(a).size() != 2 || im.shapeOf(bm).size() != 2)
    return im.fail("Gemm inputs A and B must be 2-D");
  bool ta = im.attrInt("transA", 0), tb = im.attrInt("transB", 0);
  double alpha = im.attrFloat("alpha", 1.0f), beta = im.attrFloat("beta", 1.0f);
  int64_t m = im.shapeOf(a)[ta ? 1 : 0], n = im.shapeOf(bm)[tb ? 0 : 1];
  Value init;
  if (im.hasInput(2) && beta != 0.0) {
    Type et = im.elementType(a);
    SmallVector<int64_t> mn = {m, n};
    // The bias initialises the accumulator, so it lands in the same kernel.
    auto c = im.elementwise({im.input(2)}, et, [&](OpBuilder &ob, Location l, ValueRange v) -> Value {
      return beta == 1.0 ? v[0] : mulOp(ob, l, v[0], im.constantScalar(ob, l, et, beta));
    }, ArrayRef<int64_t>(mn));
    if (failed(c))
      return failure();
    if (im.shapeOf(*c) != ArrayRef<int64_t>(mn))
      return im.fail("C of shape " + shapeStr(im.shapeOf(im.input(2))) +
                     " does not broadcast to " + shapeStr(mn));
    init = *c;
  }
  // B^T as its own (constant-folded) transpose: a contraction reading B
  // across its rows could not load columns of outputs as vectors.
  if (tb)
    bm = im.transpose(bm, {1, 0});
  auto r = contraction(im, a, bm, ta, /*transB=*/false, init, alpha);
  if (failed(r))
    return failure();
  im.setOutput(0, *r);
  return success();
}

static LogicalResult handleGlobalPool(OpContext &im, bool isMax) {
  Value x = im.input(0);
  Type et = im.elementType(x);
  int64_t rank = im.shapeOf(x).size();
  SmallVector<int64_t> axes;
  int64_t n = 1;
  for (int64_t i = 2; i < rank; ++i) {
    axes.push_back(i);
    n *= im.shapeOf(x)[i];
  }
  Value r = im.reduce(x, axes, true, FloatAttr::get(et, isMax ? -INFINITY : 0.0),
                      [&](OpBuilder &ob, Location l, Value a, Value v) {
                        return isMax ? maxOp(ob, l, a, v) : addOp(ob, l, a, v);
                      });
  if (!isMax) {
    auto m = im.elementwise({r}, et, [&](OpBuilder &ob, Location l, ValueRange v) -> Value {
      return arith::DivFOp::create(ob, l, v[0], im.constantScalar(ob, l, et, (double)n));
    });
    if (failed(m))
      return failure();
    r = *m;
  }
  im.setOutput(0, r);
  return success();
}

static LogicalResult handleFlatten(OpContext &im) {
  Value x = im.input(0);
  ArrayRef<int64_t> in = im.shapeOf(x);
  int64_t rank = in.size();
  int64_t axis = im.attrInt("axis", 1);
  if (axis < 0)
    axis += rank;
  if (axis < 0 || axis > rank)
    return im.fail("axis out of range");
  int64_t a = 1, c = 1;
  for (int64_t i = 0; i < rank; ++i)
    (i < axis ? a : c) *= in[i];
  im.setOutput(0, im.reshape(x, {a, c}));
  return success();
}

static LogicalResult handleGatherElements(OpContext &im) {
  Value data = im.input(0), indices = im.input(1);
  ArrayRef<int64_t> ds = im.shapeOf(data), is = im.shapeOf(indices);
  if (ds.size() != is.size())
    return im.fail("data and indices must have the same rank");
  auto axis = im.normalizeAxis(im.attrInt("axis", 0), ds.size());
  if (failed(axis))
    return failure();
  int64_t ax = *axis, dim = ds[ax];
  AffineMap id = AffineMap::getMultiDimIdentityMap(is.size(), &im.ctx);
  Value r = indexedGeneric(im, is, im.elementType(data), [&](OpBuilder &ob, Location l, ValueRange a) {
    Value i = arith::IndexCastOp::create(ob, l, ob.getIndexType(), a.back());
    Value neg = arith::CmpIOp::create(ob, l, arith::CmpIPredicate::slt, i, idxConst(ob, l, 0));
    i = arith::SelectOp::create(ob, l, neg, arith::AddIOp::create(ob, l, i, idxConst(ob, l, dim)), i);
    // Out-of-range indices are an error in ONNX; clamp rather than fault.
    i = clampIndex(ob, l, i, 0, dim - 1);
    SmallVector<Value> at = llvm::to_vector(a.drop_back());
    at[ax] = i;
    return tensor::ExtractOp::create(ob, l, data, at).getResult();
  }, ValueRange{indices}, {id});
  im.setOutput(0, r);
  return success();
}

static LogicalResult handleGather(OpContext &im) {
  Value data = im.input(0), indices = im.input(1);
  ArrayRef<int64_t> ds = im.shapeOf(data), is = im.shapeOf(indices);
  auto axis = im.normalizeAxis(im.attrInt("axis", 0), ds.size());
  if (failed(axis))
    return failure();
  int64_t ax = *axis, ir = is.size(), dim = ds[ax];
  SmallVector<int64_t> out(ds.begin(), ds.begin() + ax);
  out.append(is.begin(), is.end());
  out.append(ds.begin() + ax + 1, ds.end());
  MLIRContext *ctx = &im.ctx;
  SmallVector<AffineExpr> ie;
  for (int64_t i = 0; i < ir; ++i)
    ie.push_back(getAffineDimExpr(ax + i, ctx));
  AffineMap imap = AffineMap::get(out.size(), 0, ie, ctx);
  Value r = indexedGeneric(im, out, im.elementType(data), [&](OpBuilder &ob, Location l, ValueRange a) {
    // a = output indices..., then the index element.
    Value raw = a.back();
    Value i = arith::IndexCastOp::create(ob, l, ob.getIndexType(), raw);
    Value neg = arith::CmpIOp::create(ob, l, arith::CmpIPredicate::slt, i, idxConst(ob, l, 0));
    i = arith::SelectOp::create(ob, l, neg, arith::AddIOp::create(ob, l, i, idxConst(ob, l, dim)), i);
    // Out-of-range indices are undefined in ONNX; clamp rather than fault.
    i = clampIndex(ob, l, i, 0, dim - 1);
    SmallVector<Value> at(a.begin(), a.begin() + ax);
    at.push_back(i);
    for (int64_t k = ax + ir; k < (int64_t)out.size(); ++k)
      at.push_back(a[k]);
    return tensor::ExtractOp::create(ob, l, data, at).getResult();
  }, ValueRange{indices}, {imap});
  im.setOutput(0, r);
  return success();
}

static LogicalResult handleExpand(OpContext &im) {
  Value x = im.input(0);
  auto shape = im.constInts(1, "shape");
  if (failed(shape))
    return failure();
  auto r = im.elementwise({x}, im.elementType(x),
                          [](OpBuilder &, Location, ValueRange v) { return v[0]; },
                          ArrayRef<int64_t>(*shape));
  if (failed(r))
    return failure();
  im.setOutput(0, *r);
  return success();
}

static LogicalResult handleGatherND(OpContext &im) {
  Value data = im.input(0), indices = im.input(1);
  SmallVector<int64_t> ds(im.shapeOf(data)), is(im.shapeOf(indices));
  int64_t bd = im.attrInt("batch_dims", 0);
  if (is.empty() || bd < 0 || bd >= (int64_t)is.size() || is.back() + bd > (int64_t)ds.size())
    return im.fail("indices " + shapeStr(is) + " do not fit data " + shapeStr(ds));
  int64_t L = is.back(), ni = is.size() - 1;
  SmallVector<int64_t> out(is.begin(), is.end() - 1);
  out.append(ds.begin() + bd + L, ds.end());
  Value r = indexedGeneric(im, out, im.elementType(data), [&](OpBuilder &ob, Location l, ValueRange a) {
    SmallVector<Value> at(a.begin(), a.begin() + bd);
    for (int64_t j = 0; j < L; ++j) {
      SmallVector<Value> ia(a.begin(), a.begin() + ni);
      ia.push_back(idxConst(ob, l, j));
      at.push_back(normIndex(ob, l, tensor::ExtractOp::create(ob, l, indices, ia), ds[bd + j]));
    }
    for (int64_t k = ni; k < (int64_t)out.size(); ++k)
      at.push_back(a[k]);
    return tensor::ExtractOp::create(ob, l, data, at).getResult();
  });
  im.setOutput(0, r);
  return success();
}

static LogicalResult handleEyeLike(OpContext &im) {
  SmallVector<int64_t> s(im.inputType(0).getShape());
  if (s.size() != 2)
    return im.fail("input must be 2-D");
  Type et = im.inputType(0).getElementType();
  if (const auto *a = im.attr("dtype")) {
    et = onnxElementType(im.ctx, a->i());
    if (!et)
      return im.fail("unsupported dtype " + std::to_string(a->i()));
  }
  int64_t k = im.attrInt("k", 0);
  Value r = indexedGeneric(im, s, et, [&](OpBuilder &ob, Location l, ValueRange a) -> Value {
    Value diff = arith::SubIOp::create(ob, l, a[1], a[0]);
    Value on = arith::CmpIOp::create(ob, l, arith::CmpIPredicate::eq, diff, idxConst(ob, l, k));
    return arith::SelectOp::create(ob, l, on, im.constantScalar(ob, l, et, 1.0),
                                   im.constantScalar(ob, l, et, 0.0));
  });
  im.setOutput(0, r);
  return success();
}

static LogicalResult handleGroupNorm(OpContext &im) {
  Value x = im.input(0);
  Type et = im.elementType(x);
  SmallVector<int64_t> s(im.shapeOf(x));
  int64_t G = im.attrInt("num_groups", 0);
  if (!isFloat(et) || s.size() < 2 || G <= 0 || s[1] % G)
    return im.fail("needs a floating-point N x C x ... input with C divisible by num_groups");
  int64_t N = s[0], C = s[1], rest = 1;
  for (size_t i = 2; i < s.size(); ++i)
    rest *= s[i];
  Value xg = im.reshape(x, {N, G, C / G * rest});
  auto norm = normalize(im, xg, {2}, im.attrFloat("epsilon", 1e-5f));
  if (failed(norm))
    return failure();
  Value y = im.reshape((*norm)[0], {N, C, rest});
  Value scale = im.input(1), bias = im.input(2);
  int64_t ss = im.shapeOf(scale)[0];
  if (ss == G && G != C) {
    // Opset 18: one scale/bias per group.
    auto rep = [&](Value v) {
      AffineMap m = AffineMap::get(1, 0, {getAffineDimExpr(0, &im.ctx).floorDiv(C / G)}, &im.ctx);
      return affineCopy(im, v, {C}, m);
    };
    scale = rep(scale);
    bias = rep(bias);
  }
  auto r = im.elementwise({y, im.reshape(scale, {C, 1}), im.reshape(bias, {C, 1})}, et,
                          [](OpBuilder &ob, Location l, ValueRange v) -> Value {
                            return arith::AddFOp::create(ob, l, arith::MulFOp::create(ob, l, v[0], v[1]), v[2]);
                          });
  if (failed(r))
    return failure();
  im.setOutput(0, im.reshape(*r, s));
  return success();
}

static LogicalResult handleDequantizeLinear(OpContext &im) {
  Value x = im.input(0), scale = im.input(1);
  Type st = im.elementType(scale);
  SmallVector<int64_t> xs(im.shapeOf(x));
  if (!isFloat(st))
    return im.fail("x_scale must be floating point");
  auto pm = quantParamMap(im, xs, im.shapeOf(scale));
  if (failed(pm))
    return failure();
  Type ot = st;
  if (const auto *a = im.attr("output_dtype"); a && a->i() != 0) {
    ot = onnxElementType(im.ctx, a->i());
    if (!ot || !isFloat(ot) || isSmallType(ot))
      return im.fail("unsupported output_dtype");
  }
  bool uns = im.isUnsigned(0);
  Value zp = im.hasInput(2) ? im.input(2) : Value();
  int64_t rank = xs.size();
  SmallVector<Value> ins = {x, scale};
  SmallVector<AffineMap> maps = {AffineMap::getMultiDimIdentityMap(rank, &im.ctx), *pm};
  if (zp) {
    auto zm = quantParamMap(im, xs, im.shapeOf(zp));
    if (failed(zm))
      return failure();
    ins.push_back(zp);
    maps.push_back(*zm);
  }
  Value r = indexedGeneric(im, xs, ot, [&](OpBuilder &ob, Location l, ValueRange a) -> Value {
    // float32 math like the reference, then the output type.
    Type f32 = ob.getF32Type();
    Value xv = toFloat(ob, l, a[rank], f32, uns);
    if (zp)
      xv = arith::SubFOp::create(ob, l, xv, toFloat(ob, l, a[rank + 2], f32, uns));
    Value y = arith::MulFOp::create(ob, l, xv, toFloat(ob, l, a[rank + 1], f32, false));
    return toFloat(ob, l, y, ot, false);
  }, ins, maps);
  im.setOutput(0, r);
  return success();
}

/// DynamicQuantizeLinear: uint8 quantization with scale and zero point from
/// the input's range (which always includes 0).
static LogicalResult handleDynamicQuantizeLinear(OpContext &im) {
  Value x = im.input(0);
  Type et = im.elementType(x);
  if (!et.isF32())
    return im.fail("supported for float32 inputs only");
  SmallVector<int64_t> xs(im.shapeOf(x)), all;
  for (size_t i = 0; i < xs.size(); ++i)
    all.push_back(i);
  Value mx = im.reduce(x, all, false, FloatAttr::get(et, 0.0),
                       [](OpBuilder &ob, Location l, Value a, Value v) { return maxOp(ob, l, a, v); });
  Value mn = im.reduce(x, all, false, FloatAttr::get(et, 0.0),
                       [](OpBuilder &ob, Location l, Value a, Value v) { return minOp(ob, l, a, v); });
  auto scale = im.elementwise({mx, mn}, et, [&](OpBuilder &ob, Location l, ValueRange v) -> Value {
    return arith::DivFOp::create(ob, l, arith::SubFOp::create(ob, l, v[0], v[1]),
                                 im.constantScalar(ob, l, et, 255.0));
  });
  if (failed(scale))
    return failure();
  Type u8 = im.b.getIntegerType(8);
  auto sat = [&](OpBuilder &ob, Location l, Value q) -> Value {
    q = arith::MaximumFOp::create(ob, l, q, im.constantScalar(ob, l, et, 0.0));
    q = arith::MinimumFOp::create(ob, l, q, im.constantScalar(ob, l, et, 255.0));
    return arith::FPToUIOp::create(ob, l, u8, q);
  };
  auto zpf = im.elementwise({mn, *scale}, et, [&](OpBuilder &ob, Location l, ValueRange v) -> Value {
    Value q = arith::SubFOp::create(ob, l, im.constantScalar(ob, l, et, 0.0),
                                    arith::DivFOp::create(ob, l, v[0], v[1]));
    q = math::RoundEvenOp::create(ob, l, q);
    q = arith::MaximumFOp::create(ob, l, q, im.constantScalar(ob, l, et, 0.0));
    return arith::MinimumFOp::create(ob, l, q, im.constantScalar(ob, l, et, 255.0));
  });
  if (failed(zpf))
    return failure();
  auto y = im.elementwise({x, *scale, *zpf}, u8, [&](OpBuilder &ob, Location l, ValueRange v) -> Value {
    Value q = math::RoundEvenOp::create(ob, l, arith::DivFOp::create(ob, l, v[0], v[1]));
    return sat(ob, l, arith::AddFOp::create(ob, l, q, v[2]));
  });
  auto zp = im.elementwise({*zpf}, u8, [&](OpBuilder &ob, Location l, ValueRange v) -> Value {
    return sat(ob, l, v[0]);
  });
  if (failed(y) || failed(zp))
    return failure();
  im.setOutput(0, *y);
  im.setOutput(1, *scale);
  im.setOutput(2, *zp);
  return success();
}

// GridSample

/// `v` as float type `to` (X and grid may have different float types).
static Value convertFloat(OpBuilder &ob, Location l, Value v, Type to) {
  auto from = cast<FloatType>(v.getType());
  unsigned fw = from.getWidth(), tw = cast<FloatType>(to).getWidth();
  if (from == to)
    return v;
  if (fw == tw) // f16 <-> bf16: through f32
    v = arith::ExtFOp::create(ob, l, ob.getF32Type(), v), fw = 32;
  if (fw < tw)
    return arith::ExtFOp::create(ob, l, to, v);
  return arith::TruncFOp::create(ob, l, to, v);
}

/// Reflects `v` into [lo, hi] by folding at the nearer border repeatedly
/// (ONNX's reference GridSample reflection).
static Value reflectCoord(OpBuilder &ob, Location l, Value v, double lo, double hi) {
  Type ft = v.getType();
  auto f = [&](double c) -> Value {
    return arith::ConstantOp::create(ob, l, FloatAttr::get(ft, c));
  };
  double range = hi - lo;
  if (range <= 0)
    return f(lo);
  Value below = arith::CmpFOp::create(ob, l, arith::CmpFPredicate::OLT, v, f(lo));
  Value above = arith::CmpFOp::create(ob, l, arith::CmpFPredicate::OGT, v, f(hi));
  // Distance past the violated border, folded into whole ranges + rest.
  Value dx = arith::SelectOp::create(ob, l, below, arith::SubFOp::create(ob, l, f(lo), v),
                                     arith::SubFOp::create(ob, l, v, f(hi)));
  Value n = math::FloorOp::create(ob, l, arith::DivFOp::create(ob, l, dx, f(range)));
  Value r = arith::SubFOp::create(ob, l, dx, arith::MulFOp::create(ob, l, n, f(range)));
  Value ni = arith::FPToSIOp::create(ob, l, ob.getI64Type(), n);
  Value even = arith::CmpIOp::create(
      ob, l, arith::CmpIPredicate::eq,
      arith::AndIOp::create(ob, l, ni, arith::ConstantIntOp::create(ob, l, ob.getI64Type(), 1)),
      arith::ConstantIntOp::create(ob, l, ob.getI64Type(), 0));
  Value fromLo = arith::AddFOp::create(ob, l, f(lo), r);
  Value fromHi = arith::SubFOp::create(ob, l, f(hi), r);
  // Below: even folds land at lo + r, odd at hi - r; above: the reverse.
  Value bv = arith::SelectOp::create(ob, l, even, fromLo, fromHi);
  Value av = arith::SelectOp::create(ob, l, even, fromHi, fromLo);
  Value res = arith::SelectOp::create(ob, l, below, bv, av);
  Value out = arith::OrIOp::create(ob, l, below, above);
  return arith::SelectOp::create(ob, l, out, res, v);
}

/// Keys' cubic convolution weights (A = -0.75) for the four taps around a
/// sample at fractional offset `t` from the second tap.
static SmallVector<Value, 4> cubicWeights(OpBuilder &ob, Location l, Value t) {
  Type ft = t.getType();
  auto f = [&](double c) -> Value {
    return arith::ConstantOp::create(ob, l, FloatAttr::get(ft, c));
  };
  auto mul = [&](Value a, Value b) -> Value { return arith::MulFOp::create(ob, l, a, b); };
  auto add = [&](Value a, Value b) -> Value { return arith::AddFOp::create(ob, l, a, b); };
  auto sub = [&](Value a, Value b) -> Value { return arith::SubFOp::create(ob, l, a, b); };
  const double a = -0.75;
  // |x| in [1, 2]: ((a|x| - 5a)|x| + 8a)|x| - 4a ; |x| <= 1: ((a+2)|x| - (a+3))|x|^2 + 1
  auto outer = [&](Value x) { return sub(mul(add(mul(sub(mul(f(a), x), f(5 * a)), x), f(8 * a)), x), f(4 * a)); };
  auto inner = [&](Value x) {
    return add(mul(mul(sub(mul(f(a + 2), x), f(a + 3)), x), x), f(1.0));
  };
  Value one = f(1.0);
  return {outer(add(t, one)), inner(t), inner(sub(one, t)), outer(sub(f(2.0), t))};
}

/// GridSample; `defaultMode` is "bilinear" at opset 16, "linear" from 20,
/// where the modes were renamed for N-D grids (both spellings are read).
static LogicalResult handleGridSample(OpContext &im, StringRef defaultMode) {
  Value x = im.input(0), grid = im.input(1);
  ArrayRef<int64_t> xs = im.shapeOf(x), gs = im.shapeOf(grid);
  int64_t r = (int64_t)xs.size() - 2;
  if (r < 1 || (int64_t)gs.size() != r + 2 || gs[0] != xs[0] || gs.back() != r)
    return im.fail("X " + shapeStr(xs) + " and grid " + shapeStr(gs) +
                   " must be N x C x D1.. and N x O1.. x " + std::to_string(r));
  Type et = im.elementType(x), gridType = im.elementType(grid);
  if (!isa<FloatType>(et) || !isa<FloatType>(gridType))
    return im.fail("supported for floating-point X and grid only");
  std::string mode = im.attrString("mode", defaultMode);
  std::string padding = im.attrString("padding_mode", "zeros");
  bool align = im.attrInt("align_corners", 0);
  enum { Nearest, Linear, Cubic } kind;
  if (mode == "nearest")
    kind = Nearest;
  else if (mode == "linear" || mode == "bilinear")
    kind = Linear;
  else if (mode == "cubic" || mode == "bicubic")
    kind = Cubic;
  else
    return im.fail("unknown mode '" + mode + "'");
  if (padding != "zeros" && padding != "border" && padding != "reflection")
    return im.fail("unknown padding_mode '" + padding + "'");
  if (kind == Cubic && r != 2)
    return im.fail("cubic mode supports 4-D input only (ONNX defines it for 2 spatial dims)");

  // Coordinates and weights in at least f32, as the reference computes them.
  Type gt = cast<FloatType>(gridType).getWidth() < 32 ? im.b.getF32Type() : gridType;
  SmallVector<int64_t> dims(xs.drop_front(2));
  SmallVector<int64_t> outShape = {xs[0], xs[1]};
  outShape.append(gs.begin() + 1, gs.end() - 1);
  Value y = indexedGeneric(im, outShape, et, [&](OpBuilder &ob, Location l, ValueRange a) {
    auto f = [&](double c) -> Value {
      return arith::ConstantOp::create(ob, l, FloatAttr::get(gt, c));
    };
    // Continuous source coordinate per spatial dim; the grid's last axis
    // lists them innermost dim first (x, y, z).
    SmallVector<Value> coord;
    for (int64_t i = 0; i < r; ++i) {
      SmallVector<Value> at = {a[0]};
      at.append(a.begin() + 2, a.end());
      at.push_back(idx(ob, l, r - 1 - i));
      Value g = convertFloat(ob, l, tensor::ExtractOp::create(ob, l, grid, at), gt);
      double len = dims[i];
      // align_corners: -1/1 are the corner pixels' centers; else their edges.
      Value g1 = arith::AddFOp::create(ob, l, g, f(1.0));
      Value c = align ? arith::MulFOp::create(ob, l, g1, f((len - 1) / 2)).getResult()
                      : arith::DivFOp::create(
                            ob, l,
                            arith::SubFOp::create(ob, l, arith::MulFOp::create(ob, l, g1, f(len)),
                                                  f(1.0)),
                            f(2.0))
                            .getResult();
      if (kind == Nearest)
        c = math::RoundEvenOp::create(ob, l, c);
      double lo = align ? 0.0 : -0.5, hi = align ? len - 1 : len - 0.5;
      if (padding == "border") {
        // Only coordinates outside [lo, hi] clamp (ONNX's reference): with
        // align_corners=0 a sample in [-0.5, 0) keeps its offset, which
        // matters to cubic taps.
        Value out = arith::OrIOp::create(
            ob, l, arith::CmpFOp::create(ob, l, arith::CmpFPredicate::OLT, c, f(lo)),
            arith::CmpFOp::create(ob, l, arith::CmpFPredicate::OGT, c, f(hi)));
        Value cl = arith::MaximumFOp::create(ob, l, c, f(0.0));
        cl = arith::MinimumFOp::create(ob, l, cl, f(len - 1));
        c = arith::SelectOp::create(ob, l, out, cl, c);
      } else if (padding == "reflection") {
        c = reflectCoord(ob, l, c, lo, hi);
      }
      coord.push_back(c);
    }
    // Reads X at integer tap positions under the padding mode.
    auto fetch = [&](ArrayRef<Value> taps) -> Value {
      SmallVector<Value> at = {a[0], a[1]};
      Value ok;
      for (int64_t i = 0; i < r; ++i) {
        Value t = taps[i];
        if (padding == "reflection") {
          double lo = align ? 0.0 : -0.5, hi = align ? dims[i] - 1 : dims[i] - 0.5;
          Value tf = arith::SIToFPOp::create(ob, l, gt, t);
          tf = reflectCoord(ob, l, tf, lo, hi);
          t = arith::FPToSIOp::create(ob, l, ob.getI64Type(), tf);
        }
        Value ti = arith::IndexCastOp::create(ob, l, ob.getIndexType(), t);
        if (padding == "zeros")
          ok = andI(ob, l, ok,
                    andI(ob, l, cmpI(ob, l, arith::CmpIPredicate::sge, ti, idx(ob, l, 0)),
                         cmpI(ob, l, arith::CmpIPredicate::slt, ti, idx(ob, l, dims[i]))));
        at.push_back(clampIdx(ob, l, ti, 0, dims[i] - 1));
      }
      Value v = tensor::ExtractOp::create(ob, l, x, at);
      if (ok)
        v = arith::SelectOp::create(ob, l, ok, v, im.constantScalar(ob, l, et, 0.0));
      return v;
    };
    auto toI64 = [&](Value v) -> Value {
      return arith::FPToSIOp::create(ob, l, ob.getI64Type(), v);
    };
    if (kind == Nearest) {
      SmallVector<Value> taps;
      for (Value c : coord)
        taps.push_back(toI64(c));
      return fetch(taps);
    }
    // Separable interpolation: per dim, the taps and their weights; the
    // result sums every combination of taps with the product of weights.
    int64_t nt = kind == Linear ? 2 : 4;
    SmallVector<SmallVector<Value>> tapIdx(r), tapW(r);
    for (int64_t i = 0; i < r; ++i) {
      Value fl = math::FloorOp::create(ob, l, coord[i]);
      Value t = arith::SubFOp::create(ob, l, coord[i], fl);
      Value base = toI64(fl);
      int64_t first = kind == Linear ? 0 : -1;
      for (int64_t k = 0; k < nt; ++k)
        tapIdx[i].push_back(arith::AddIOp::create(
            ob, l, base, arith::ConstantIntOp::create(ob, l, ob.getI64Type(), first + k)));
      if (kind == Linear)
        tapW[i] = {arith::SubFOp::create(ob, l, f(1.0), t), t};
      else
        tapW[i] = cubicWeights(ob, l, t);
    }
    Value acc;
    int64_t combos = 1;
    for (int64_t i = 0; i < r; ++i)
      combos *= nt;
    for (int64_t cidx = 0; cidx < combos; ++cidx) {
      SmallVector<Value> taps;
      Value wgt;
      for (int64_t i = r - 1, rest = cidx; i >= 0; --i, rest /= nt) {
        int64_t k = rest % nt;
        taps.insert(taps.begin(), tapIdx[i][k]);
        wgt = wgt ? arith::MulFOp::create(ob, l, wgt, tapW[i][k]).getResult() : tapW[i][k];
      }
      wgt = convertFloat(ob, l, wgt, et);
      Value term = arith::MulFOp::create(ob, l, fetch(taps), wgt);
      acc = acc ? arith::AddFOp::create(ob, l, acc, term).getResult() : term;
    }
    return acc;
  });
  im.setOutput(0, y);
  return success();
}

// DeformConv

/// DeformConv (2-D) in two steps: a gather builds the deformed columns
/// cols[n, ic, a, b, i, j] = mask * bilinear(X[n, ic], sample point of kernel
/// tap (a, b) at output (i, j), zero outside), then a grouped contraction
/// with W sums them, like Conv after im2col.
static LogicalResult handleDeformConv(OpContext &im) {
  Value x = im.input(0), w = im.input(1), off = im.input(2);
  ArrayRef<int64_t> xs = im.shapeOf(x), ws = im.shapeOf(w), os = im.shapeOf(off);
  Type et = im.elementType(x);
  if (!isa<FloatType>(et))
    return im.fail("supported for floating-point inputs only");
  if (xs.size() != 4 || ws.size() != 4 || os.size() != 4)
    return im.fail("only 2-D DeformConv (4-D X, W and offset) is supported, got X " +
                   shapeStr(xs));
  int64_t nBatch = xs[0], c = xs[1], ih = xs[2], iw = xs[3], m = ws[0];
  int64_t groups = im.attrInt("group", 1), og = im.attrInt("offset_group", 1);
  if (groups <= 0 || c % groups || m % groups || ws[1] != c / groups)
    return im.fail(llvm::formatv("group={0} does not fit X channels {1} and W {2}", groups, c,
                                 shapeStr(ws))
                       .str());
  if (og <= 0 || c % og)
    return im.fail(llvm::formatv("offset_group={0} does not divide {1} channels", og, c).str());
  int64_t kh = ws[2], kw = ws[3];
  if (auto ks = im.attrInts("kernel_shape"); ks && ArrayRef<int64_t>(*ks) != ws.drop_front(2))
    return im.fail("kernel_shape " + shapeStr(*ks) + " does not match W " + shapeStr(ws));
  auto strides = im.attrInts("strides").value_or(SmallVector<int64_t>{1, 1});
  auto dil = im.attrInts("dilations").value_or(SmallVector<int64_t>{1, 1});
  auto pads = im.attrInts("pads").value_or(SmallVector<int64_t>{0, 0, 0, 0});
  if (strides.size() != 2 || dil.size() != 2 || pads.size() != 4)
    return im.fail("strides/dilations/pads do not match 2 spatial dims");
  int64_t oh = (ih + pads[0] + pads[2] - ((kh - 1) * dil[0] + 1)) / strides[0] + 1;
  int64_t ow = (iw + pads[1] + pads[3] - ((kw - 1) * dil[1] + 1)) / strides[1] + 1;
  if (os[0] != nBatch || os[1] != og * kh * kw * 2 || os[2] != oh || os[3] != ow)
    return im.fail(llvm::formatv("offset {0} must be [{1},{2},{3},{4}]", shapeStr(os), nBatch,
                                 og * kh * kw * 2, oh, ow)
                       .str());
  Value mask;
  if (im.hasInput(4)) {
    mask = im.input(4);
    SmallVector<int64_t> want = {nBatch, og * kh * kw, oh, ow};
    if (im.shapeOf(mask) != ArrayRef<int64_t>(want))
      return im.fail("mask " + shapeStr(im.shapeOf(mask)) + " must be " + shapeStr(want));
  }
  int64_t cPerOg = c / og;
  SmallVector<int64_t> colShape = {nBatch, c, kh, kw, oh, ow};
  Value cols = indexedGeneric(im, colShape, et, [&](OpBuilder &ob, Location l, ValueRange a) {
    auto f = [&](double v) { return im.constantScalar(ob, l, et, v); };
    // Offset channel of this tap: ((group * kh + a) * kw + b) * 2 + {h, w}.
    Value g = arith::DivSIOp::create(ob, l, a[1], idx(ob, l, cPerOg));
    Value tap = arith::AddIOp::create(
        ob, l,
        arith::MulIOp::create(
            ob, l, arith::AddIOp::create(ob, l, arith::MulIOp::create(ob, l, g, idx(ob, l, kh)), a[2]),
            idx(ob, l, kw)),
        a[3]);
    Value ch = arith::MulIOp::create(ob, l, tap, idx(ob, l, 2));
    SmallVector<Value> pos;
    for (int64_t d = 0; d < 2; ++d) {
      Value o = tensor::ExtractOp::create(
          ob, l, off, ValueRange{a[0], arith::AddIOp::create(ob, l, ch, idx(ob, l, d)), a[4], a[5]});
      // Base: output * stride - pad + tap * dilation, then the learned offset.
      Value base = arith::SubIOp::create(
          ob, l,
          arith::AddIOp::create(ob, l, arith::MulIOp::create(ob, l, a[4 + d], idx(ob, l, strides[d])),
                                arith::MulIOp::create(ob, l, a[2 + d], idx(ob, l, dil[d]))),
          idx(ob, l, pads[d]));
      Value bf = arith::SIToFPOp::create(
          ob, l, et, arith::IndexCastOp::create(ob, l, ob.getI64Type(), base));
      pos.push_back(arith::AddFOp::create(ob, l, bf, o));
    }
    int64_t size[2] = {ih, iw};
    Value v0[2], t[2];
    for (int64_t d = 0; d < 2; ++d) {
      Value fl = math::FloorOp::create(ob, l, pos[d]);
      t[d] = arith::SubFOp::create(ob, l, pos[d], fl);
      v0[d] = arith::IndexCastOp::create(ob, l, ob.getIndexType(),
                                         arith::FPToSIOp::create(ob, l, ob.getI64Type(), fl));
    }
    Value acc;
    for (int64_t dy = 0; dy < 2; ++dy)
      for (int64_t dx = 0; dx < 2; ++dx) {
        Value ok, at[2];
        int64_t dd[2] = {dy, dx};
        Value wgt;
        for (int64_t d = 0; d < 2; ++d) {
          Value p = arith::AddIOp::create(ob, l, v0[d], idx(ob, l, dd[d]));
          ok = andI(ob, l, ok,
                    andI(ob, l, cmpI(ob, l, arith::CmpIPredicate::sge, p, idx(ob, l, 0)),
                         cmpI(ob, l, arith::CmpIPredicate::slt, p, idx(ob, l, size[d]))));
          at[d] = clampIdx(ob, l, p, 0, size[d] - 1);
          Value wd = dd[d] ? t[d] : arith::SubFOp::create(ob, l, f(1.0), t[d]).getResult();
          wgt = wgt ? arith::MulFOp::create(ob, l, wgt, wd).getResult() : wd;
        }
        Value v = tensor::ExtractOp::create(ob, l, x, ValueRange{a[0], a[1], at[0], at[1]});
        v = arith::SelectOp::create(ob, l, ok, v, f(0.0));
        Value term = arith::MulFOp::create(ob, l, v, wgt);
        acc = acc ? arith::AddFOp::create(ob, l, acc, term).getResult() : term;
      }
    if (mask) {
      Value mk = tensor::ExtractOp::create(ob, l, mask, ValueRange{a[0], tap, a[4], a[5]});
      acc = arith::MulFOp::create(ob, l, acc, mk);
    }
    return acc;
  });

  int64_t cg = c / groups, mg = m / groups;
  Value cv = im.reshape(cols, {nBatch, groups, cg, kh, kw, oh, ow});
  Value wv = im.reshape(w, {groups, mg, cg, kh, kw});
  SmallVector<int64_t> og5 = {nBatch, groups, mg, oh, ow};
  // Loops: n, g, m, c, a, b, i, j.
  MLIRContext *ctx = &im.ctx;
  auto d = [&](int64_t i) { return getAffineDimExpr(i, ctx); };
  SmallVector<AffineMap> maps = {
      AffineMap::get(8, 0, {d(0), d(1), d(3), d(4), d(5), d(6), d(7)}, ctx),
      AffineMap::get(8, 0, {d(1), d(2), d(3), d(4), d(5)}, ctx),
      AffineMap::get(8, 0, {d(0), d(1), d(2), d(6), d(7)}, ctx)};
  Value init;
  if (im.hasInput(3)) {
    Value bias = im.reshape(im.input(3), {groups, mg, 1, 1});
    auto bi = im.elementwise({bias}, et, [](OpBuilder &, Location, ValueRange v) { return v[0]; },
                             ArrayRef<int64_t>(og5));
    if (failed(bi))
      return failure();
    init = *bi;
  } else {
    init = im.fill(og5, cast<TypedAttr>(im.b.getZeroAttr(et)));
  }
  SmallVector<IteratorType> iters(8, IteratorType::parallel);
  iters[3] = iters[4] = iters[5] = IteratorType::reduction;
  Value y = linalg::GenericOp::create(
                im.b, im.loc, TypeRange{init.getType()}, ValueRange{cv, wv}, ValueRange{init},
                maps, iters,
                [&](OpBuilder &ob, Location l, ValueRange v) {
                  Value p = arith::MulFOp::create(ob, l, v[0], v[1]);
                  linalg::YieldOp::create(ob, l,
                                          arith::AddFOp::create(ob, l, v[2], p).getResult());
                })
                .getResult(0);
  im.setOutput(0, im.reshape(y, {nBatch, m, oh, ow}));
  return success();
}

/// DFT; the axis is an attribute (default 1) until opset 20, then optional
/// input 2 (default -2) with `axisInput`.
static LogicalResult handleDFT(OpContext &im, bool axisInput) {
  Value x = im.input(0);
  ArrayRef<int64_t> xs = im.shapeOf(x);
  Type et = im.elementType(x);
  if (!isa<FloatType>(et))
    return im.fail("supported for floating-point inputs only");
  int64_t rank = xs.size();
  if (rank < 2 || (xs.back() != 1 && xs.back() != 2))
    return im.fail("input " + shapeStr(xs) + " must end in a dimension of 1 (real) or 2 "
                   "(complex)");
  int64_t axisRaw = axisInput ? -2 : im.attrInt("axis", 1);
  if (axisInput && im.hasInput(2)) {
    auto a = im.constInts(2, "axis");
    if (failed(a))
      return failure();
    if (a->size() != 1)
      return im.fail("axis must be a scalar");
    axisRaw = (*a)[0];
  }
  auto axis = im.normalizeAxis(axisRaw, rank);
  if (failed(axis))
    return failure();
  int64_t ax = *axis;
  if (ax == rank - 1)
    return im.fail("axis must not be the last (real/imaginary) dimension");
  bool inverse = im.attrInt("inverse", 0), onesided = im.attrInt("onesided", 0);
  int64_t len = xs[ax], ci = xs.back();
  int64_t n = inverse && onesided ? 2 * (len - 1) : len;
  if (im.hasInput(1)) {
    auto dl = im.constInts(1, "dft_length");
    if (failed(dl))
      return failure();
    if (dl->size() != 1)
      return im.fail("dft_length must be a scalar");
    n = (*dl)[0];
  }
  if (n <= 0)
    return im.fail("the transform length must be positive, got " + std::to_string(n));
  DftMatrix d = dftMatrix(n, len, ci, inverse, onesided);
  auto mat = dftConstant(im, d, et);
  if (failed(mat))
    return failure();

  SmallVector<int64_t> outShape(xs);
  outShape[ax] = d.nOut;
  outShape.back() = d.co;
  // Loops: the output dims, then j (samples) and ti (input part).
  MLIRContext *ctx = &im.ctx;
  int64_t dims = rank + 2;
  auto dd = [&](int64_t i) { return getAffineDimExpr(i, ctx); };
  SmallVector<AffineExpr> ex, eo, em = {dd(ax), dd(rank - 1), dd(rank), dd(rank + 1)};
  for (int64_t i = 0; i < rank; ++i) {
    eo.push_back(dd(i));
    ex.push_back(i == ax ? dd(rank) : i == rank - 1 ? dd(rank + 1) : dd(i));
  }
  Value init = im.fill(outShape, cast<TypedAttr>(im.b.getZeroAttr(et)));
  SmallVector<IteratorType> iters(dims, IteratorType::parallel);
  iters[rank] = iters[rank + 1] = IteratorType::reduction;
  SmallVector<AffineMap> maps = {AffineMap::get(dims, 0, ex, ctx), AffineMap::get(dims, 0, em, ctx),
                                 AffineMap::get(dims, 0, eo, ctx)};
  Value y = linalg::GenericOp::create(
                im.b, im.loc, TypeRange{init.getType()}, ValueRange{x, *mat}, ValueRange{init},
                maps, iters,
                [&](OpBuilder &ob, Location l, ValueRange v) {
                  Value p = arith::MulFOp::create(ob, l, v[0], v[1]);
                  linalg::YieldOp::create(ob, l,
                                          arith::AddFOp::create(ob, l, v[2], p).getResult());
                })
                .getResult(0);
  im.setOutput(0, y);
  return success();
}

// Einsum

namespace {
/// One operand of an einsum equation: its letters, and where "..." sits
/// (-1 if absent).
struct EinsumTerm {
  std::string letters;
  int64_t ellipsisAt = -1;
};
} // namespace

static FailureOr<EinsumTerm> parseEinsumTerm(OpContext &im, StringRef s, StringRef eq) {
  EinsumTerm t;
  for (size_t i = 0; i < s.size();) {
    if (s.substr(i).starts_with("...")) {
      if (t.ellipsisAt >= 0)
        return im.fail("equation '" + eq + "' has more than one '...' in a term");
      t.ellipsisAt = t.letters.size();
      i += 3;
      continue;
    }
    if (!llvm::isAlpha(s[i]))
      return im.fail("equation '" + eq + "' has an invalid character '" + Twine(s[i]) + "'");
    t.letters.push_back(s[i++]);
  }
  return t;
}

static LogicalResult handleEinsum(OpContext &im) {
  std::string raw = im.attrString("equation", "");
  std::string eq;
  for (char c : raw)
    if (!llvm::isSpace(c))
      eq.push_back(c);
  if (eq.empty())
    return im.fail("the equation attribute is missing or empty");
  StringRef lhs = eq, rhs;
  bool explicitOut = false;
  if (size_t arrow = lhs.find("->"); arrow != StringRef::npos) {
    rhs = lhs.substr(arrow + 2);
    lhs = lhs.substr(0, arrow);
    explicitOut = true;
  }
  SmallVector<StringRef> termStrs;
  lhs.split(termStrs, ',');
  unsigned n = im.node->input_size();
  if (termStrs.size() != n)
    return im.fail(llvm::formatv("equation '{0}' has {1} input terms but the node has {2} "
                                 "inputs",
                                 eq, termStrs.size(), n)
                       .str());
  SmallVector<EinsumTerm> terms;
  SmallVector<Value> ins;
  Type et;
  int64_t ellRank = 0;
  if (failed(requireInputs(im, n)))
    return failure();
  for (unsigned i = 0; i < n; ++i) {
    auto t = parseEinsumTerm(im, termStrs[i], eq);
    if (failed(t))
      return failure();
    Value v = im.input(i);
    if (i == 0)
      et = im.elementType(v);
    else if (im.elementType(v) != et)
      return im.fail("inputs have different element types");
    int64_t rank = im.shapeOf(v).size(), k = t->letters.size();
    if (t->ellipsisAt < 0 ? rank != k : rank < k)
      return im.fail(llvm::formatv("term '{0}' does not match input {1} of shape {2}",
                                   termStrs[i], i, shapeStr(im.shapeOf(v)))
                         .str());
    if (t->ellipsisAt >= 0)
      ellRank = std::max(ellRank, rank - k);
    terms.push_back(*t);
    ins.push_back(v);
  }
  // Loops: the broadcast "..." dims first, then each letter in order of first
  // appearance.
  SmallVector<int64_t> sizes(ellRank, 1);
  llvm::StringMap<int64_t> letterLoop;
  for (unsigned i = 0; i < n; ++i) {
    ArrayRef<int64_t> s = im.shapeOf(ins[i]);
    const EinsumTerm &t = terms[i];
    int64_t ell = s.size() - t.letters.size();
    for (int64_t j = 0, pos = 0; j < (int64_t)s.size(); ++j) {
      if (t.ellipsisAt >= 0 && j >= t.ellipsisAt && j < t.ellipsisAt + ell) {
        int64_t &d = sizes[ellRank - ell + (j - t.ellipsisAt)];
        if (d != 1 && s[j] != 1 && d != s[j])
          return im.fail("the '...' dimensions of the inputs do not broadcast");
        d = std::max(d, s[j]);
        continue;
      }
      StringRef c(&t.letters[pos++], 1);
      auto [it, inserted] = letterLoop.try_emplace(c, sizes.size());
      if (inserted)
        sizes.push_back(s[j]);
      else if (sizes[it->second] != s[j])
        return im.fail(llvm::formatv("index '{0}' has sizes {1} and {2}", c,
                                     sizes[it->second], s[j])
                           .str());
    }
  }
  MLIRContext *ctx = &im.ctx;
  auto d = [&](int64_t i) { return getAffineDimExpr(i, ctx); };
  SmallVector<SmallVector<AffineExpr>> inExprs;
  for (unsigned i = 0; i < n; ++i) {
    ArrayRef<int64_t> s = im.shapeOf(ins[i]);
    const EinsumTerm &t = terms[i];
    int64_t ell = s.size() - t.letters.size();
    SmallVector<AffineExpr> e;
    for (int64_t j = 0, pos = 0; j < (int64_t)s.size(); ++j) {
      if (t.ellipsisAt >= 0 && j >= t.ellipsisAt && j < t.ellipsisAt + ell) {
        int64_t loop = ellRank - ell + (j - t.ellipsisAt);
        e.push_back(s[j] == 1 && sizes[loop] != 1 ? getAffineConstantExpr(0, ctx) : d(loop));
        continue;
      }
      e.push_back(d(letterLoop[StringRef(&t.letters[pos++], 1)]));
    }
    inExprs.push_back(e);
  }
  bool anyEllipsis = llvm::any_of(terms, [](const EinsumTerm &t) { return t.ellipsisAt >= 0; });
  EinsumTerm out;
  if (explicitOut) {
    auto o = parseEinsumTerm(im, rhs, eq);
    if (failed(o))
      return failure();
    out = *o;
    if (out.ellipsisAt >= 0 && !anyEllipsis)
      return im.fail("equation '" + eq + "' has '...' in the output but in no input");
  } else {
    // Implicit output: "..." then the letters used exactly once, sorted.
    llvm::StringMap<int> count;
    for (const EinsumTerm &t : terms)
      for (char c : t.letters)
        ++count[StringRef(&c, 1)];
    out.ellipsisAt = anyEllipsis ? 0 : -1;
    for (char c = 'A'; c <= 'z'; ++c)
      if (llvm::isAlpha(c) && count.lookup(StringRef(&c, 1)) == 1)
        out.letters.push_back(c);
  }
  SmallVector<AffineExpr> outExprs;
  SmallVector<int64_t> outShape;
  llvm::StringSet<> seen;
  for (int64_t pos = 0; pos <= (int64_t)out.letters.size(); ++pos) {
    if (pos == out.ellipsisAt)
      for (int64_t i = 0; i < ellRank; ++i) {
        outExprs.push_back(d(i));
        outShape.push_back(sizes[i]);
      }
    if (pos == (int64_t)out.letters.size())
      break;
    StringRef c(&out.letters[pos], 1);
    auto it = letterLoop.find(c);
    if (it == letterLoop.end())
      return im.fail("output index '" + c + "' of equation '" + eq + "' is in no input");
    if (!seen.insert(c).second)
      return im.fail("output index '" + c + "' of equation '" + eq + "' repeats");
    outExprs.push_back(d(it->second));
    outShape.push_back(sizes[it->second]);
  }
  Value r = contract(im, ins, inExprs, sizes.size(), outExprs, outShape, et,
                     [](OpBuilder &ob, Location l, ValueRange v) {
                       Value p = v[0];
                       for (Value x : v.drop_front())
                         p = mulOp(ob, l, p, x);
                       return p;
                     });
  im.setOutput(0, r);
  return success();
}

// Det

/// Det: Gaussian elimination with partial pivoting, unrolled on scalars in
/// the body of one generic over the batch dimensions (O(n^3) operations per
/// matrix, so only small matrices are accepted).
static LogicalResult handleDet(OpContext &im) {
  if (failed(requireInputs(im, 1)))
    return failure();
  constexpr int64_t kMaxN = 16;
  Value x = im.input(0);
  ArrayRef<int64_t> xs = im.shapeOf(x);
  Type et = im.elementType(x);
  if (!isFloat(et))
    return im.fail("Det needs a floating-point input");
  if (xs.size() < 2 || xs[xs.size() - 1] != xs[xs.size() - 2])
    return im.fail("input must be [..., n, n], got " + shapeStr(xs));
  int64_t n = xs.back(), nb = xs.size() - 2;
  if (n > kMaxN)
    return im.fail(llvm::formatv("matrices larger than {0}x{0} are not supported (got {1}x{1})",
                                 kMaxN, n)
                       .str());
  SmallVector<int64_t> outShape(xs.drop_back(2));
  Value init = tensor::EmptyOp::create(im.b, im.loc, outShape, et);
  SmallVector<AffineMap> maps = {AffineMap::getMultiDimIdentityMap(nb, &im.ctx)};
  SmallVector<IteratorType> iters(nb, IteratorType::parallel);
  Value r = linalg::GenericOp::create(
                im.b, im.loc, TypeRange{init.getType()}, ValueRange{}, ValueRange{init}, maps, iters,
                [&](OpBuilder &ob, Location l, ValueRange) {
                  SmallVector<Value> idx;
                  for (int64_t i = 0; i < nb; ++i)
                    idx.push_back(linalg::IndexOp::create(ob, l, i));
                  auto c = [&](double v) { return im.constantScalar(ob, l, et, v); };
                  std::vector<std::vector<Value>> a(n, std::vector<Value>(n));
                  for (int64_t i = 0; i < n; ++i)
                    for (int64_t j = 0; j < n; ++j) {
                      SmallVector<Value> at(idx);
                      at.push_back(arith::ConstantIndexOp::create(ob, l, i));
                      at.push_back(arith::ConstantIndexOp::create(ob, l, j));
                      a[i][j] = tensor::ExtractOp::create(ob, l, x, at);
                    }
                  Value det = c(1);
                  for (int64_t k = 0; k < n; ++k) {
                    // Compare-and-swap row k with each row below: row k ends
                    // up with the largest |a[.][k]|; each swap flips the sign.
                    for (int64_t rr = k + 1; rr < n; ++rr) {
                      Value larger = arith::CmpFOp::create(
                          ob, l, arith::CmpFPredicate::OGT, math::AbsFOp::create(ob, l, a[rr][k]),
                          math::AbsFOp::create(ob, l, a[k][k]));
                      for (int64_t j = k; j < n; ++j) {
                        Value top = a[k][j], bottom = a[rr][j];
                        a[k][j] = arith::SelectOp::create(ob, l, larger, bottom, top);
                        a[rr][j] = arith::SelectOp::create(ob, l, larger, top, bottom);
                      }
                      det = arith::SelectOp::create(ob, l, larger,
                                                    arith::NegFOp::create(ob, l, det), det);
                    }
                    Value pivot = a[k][k];
                    det = arith::MulFOp::create(ob, l, det, pivot);
                    // A zero pivot means a zero column: det is already 0, and
                    // the elimination must not divide by it.
                    Value zero = arith::CmpFOp::create(ob, l, arith::CmpFPredicate::OEQ, pivot, c(0));
                    for (int64_t rr = k + 1; rr < n; ++rr) {
                      Value f = arith::SelectOp::create(
                          ob, l, zero, c(0), arith::DivFOp::create(ob, l, a[rr][k], pivot));
                      for (int64_t j = k + 1; j < n; ++j)
                        a[rr][j] = arith::SubFOp::create(ob, l, a[rr][j],
                                                         arith::MulFOp::create(ob, l, f, a[k][j]));
                    }
                  }
                  linalg::YieldOp::create(ob, l, det);
                })
                .getResult(0);
  im.setOutput(0, r);
  return success();
}

//===----------------------------------------------------------------------===//
// Registration
//===----------------------------------------------------------------------===//

void kiln::detail::registerDefaultDomainDtoG(OpRegistry &r) {
  r.onOp("", "DFT", 17, [](OpContext &im) { return handleDFT(im, /*axisInput=*/false); });
  r.onOp("", "DFT", 20, [](OpContext &im) { return handleDFT(im, /*axisInput=*/true); });
  r.onOp("", "DeformConv", 19, handleDeformConv);
  r.onOp("", "DepthToSpace", 1, [](OpContext &im) { return handleDepthSpace(im, true); });
  r.onOp("", "DequantizeLinear", 10, handleDequantizeLinear);
  r.onOp("", "Det", 11, handleDet);
  r.onOp("", "Div", 1, [](OpContext &im) { return binary(im, im.anyUnsigned() ? divUOp : divOp); });
  // Inference only: the output is the input and the mask all true;
  // training mode (random masks) is rejected.
  r.onOp("", "Dropout", 1, [](OpContext &im) {
    auto scalar = [&](unsigned i) -> std::optional<double> {
      auto c = im.hasInput(i) ? im.constInput(i) : std::nullopt;
      auto h = c ? HostTensor::fromAttr(*c) : std::nullopt;
      if (!h || h->numel() != 1)
        return std::nullopt;
      return h->get(0);
    };
    // Training with ratio 0 drops nothing: still deterministic.
    if (im.hasInput(2) && scalar(2) != 0.0 && !(scalar(2) && scalar(1) == 0.0)) {
      im.noteRequired(1);
      im.noteRequired(2);
      return im.fail("training_mode must be a constant false, or the ratio a constant 0 "
                     "(random dropout masks are not supported)");
    }
    if (im.wantsOutput(1))
      im.setOutput(1, im.fill(im.shapeOf(im.input(0)), im.b.getBoolAttr(true)));
    return handleIdentity(im);
  });
  r.onOp("", "DynamicQuantizeLinear", 11, handleDynamicQuantizeLinear);
  r.onOp("", "Einsum", 12, handleEinsum);
  r.onOp("", "Elu", 1, [](OpContext &im) {
    double alpha = im.attrFloat("alpha", 1.0f);
    return unary(im, [&](OpBuilder &ob, Location l, ValueRange v) -> Value {
      Value neg = arith::CmpFOp::create(ob, l, arith::CmpFPredicate::OLT, v[0],
                                        zeroOf(ob, l, v[0].getType()));
      Value e = math::ExpM1Op::create(ob, l, v[0]);
      Value scaled = arith::MulFOp::create(ob, l, e, cst(im, ob, l, v[0], alpha));
      return arith::SelectOp::create(ob, l, neg, scaled, v[0]);
    });
  });
  r.onOp("", "Equal", 1, [](OpContext &im) { return binary(im, eqOp, true); });
  r.onOp("", "Erf", 9, [](OpContext &im) { return mathUnary<math::ErfOp>(im); });
  r.onOp("", "Exp", 1, [](OpContext &im) { return mathUnary<math::ExpOp>(im); });
  r.onOp("", "Expand", 8, handleExpand);
  r.onOp("", "EyeLike", 9, handleEyeLike);
  r.onOp("", "Flatten", 1, handleFlatten);
  r.onOp("", "Floor", 1, [](OpContext &im) { return mathUnary<math::FloorOp>(im); });
  r.onOp("", "GRU", 7, [](OpContext &im) { return handleRecurrent(im, {3, {"Sigmoid", "Tanh"}}); });
  r.onOp("", "Gather", 1, handleGather);
  r.onOp("", "GatherElements", 11, handleGatherElements);
  r.onOp("", "GatherND", 11, handleGatherND);
  r.onOp("", "Gelu", 20, [](OpContext &im) {
    bool tanhApprox = im.attrString("approximate", "none") == "tanh";
    return unary(im, [&](OpBuilder &ob, Location l, ValueRange v) {
      return tanhApprox ? geluTanh(im, ob, l, v[0]) : geluErf(im, ob, l, v[0]);
    });
  });
  r.onOp("", "Gemm", 1, handleGemm);
  r.onOp("", "GlobalAveragePool", 1, [](OpContext &im) { return handleGlobalPool(im, false); });
  r.onOp("", "GlobalMaxPool", 1, [](OpContext &im) { return handleGlobalPool(im, true); });
  r.onOp("", "Greater", 1, [](OpContext &im) { return binary(im, im.anyUnsigned() ? gtUOp : gtOp, true); });
  r.onOp("", "GreaterOrEqual", 12, [](OpContext &im) {
    return binary(im, im.anyUnsigned() ? geUOp : geOp, true);
  });
  r.onOp("", "GridSample", 16, [](OpContext &im) { return handleGridSample(im, "bilinear"); });
  r.onOp("", "GridSample", 20, [](OpContext &im) { return handleGridSample(im, "linear"); });
  r.onOp("", "GroupNormalization", 18, handleGroupNorm);
}

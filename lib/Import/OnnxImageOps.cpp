//===- OnnxImageOps.cpp - image and signal op handlers --------------------===//
//
// ConvTranspose, GridSample, Col2Im, the non-constant Pad modes, DFT, STFT
// and the window generators. Each decomposes at import time into
// linalg.generic on tensors: gathers with computed indices read through
// tensor.extract, and shape-determining inputs must be compile-time
// constants.
//
//===----------------------------------------------------------------------===//
#include "Importer.h"

#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/MathExtras.h"

#include <cmath>
#include <numeric>

using namespace mlir;
using namespace kiln::detail;

using utils::IteratorType;

static std::string shapeStr(ArrayRef<int64_t> s) {
  std::string r = "[";
  for (auto [i, d] : llvm::enumerate(s))
    r += (i ? "," : "") + std::to_string(d);
  return r + "]";
}

static Value idx(OpBuilder &ob, Location l, int64_t v) {
  return arith::ConstantIndexOp::create(ob, l, v);
}

static Value cmpI(OpBuilder &ob, Location l, arith::CmpIPredicate p, Value a, Value b) {
  return arith::CmpIOp::create(ob, l, p, a, b);
}

static Value andI(OpBuilder &ob, Location l, Value a, Value b) {
  return a ? arith::AndIOp::create(ob, l, a, b).getResult() : b;
}

static Value clampIdx(OpBuilder &ob, Location l, Value i, int64_t lo, int64_t hi) {
  Value r = arith::MaxSIOp::create(ob, l, i, idx(ob, l, lo));
  return arith::MinSIOp::create(ob, l, r, idx(ob, l, hi));
}

using CombineFn = function_ref<Value(OpBuilder &, Location, Value, Value)>;

/// A generic over `outShape` x `redShape` that folds `body(outIdx, redIdx)`
/// over the trailing reduction loops with `combine(acc, v)`, starting from
/// `init`. A reduction-shaped operand whose values are unused gives those
/// loops their ranges, as in linalg's pooling ops.
static Value reduceOver(Importer &im, ArrayRef<int64_t> outShape, ArrayRef<int64_t> redShape,
                        TypedAttr init,
                        function_ref<Value(OpBuilder &, Location, ValueRange, ValueRange)> body,
                        CombineFn combine) {
  MLIRContext *ctx = &im.ctx;
  int64_t no = outShape.size(), nr = redShape.size(), dims = no + nr;
  SmallVector<AffineExpr> eo, er;
  for (int64_t i = 0; i < no; ++i)
    eo.push_back(getAffineDimExpr(i, ctx));
  for (int64_t i = 0; i < nr; ++i)
    er.push_back(getAffineDimExpr(no + i, ctx));
  Value window = tensor::EmptyOp::create(im.b, im.loc, redShape, im.b.getI1Type());
  Value acc = im.fill(outShape, init);
  SmallVector<IteratorType> iters(dims, IteratorType::parallel);
  for (int64_t i = no; i < dims; ++i)
    iters[i] = IteratorType::reduction;
  SmallVector<AffineMap> maps = {AffineMap::get(dims, 0, er, ctx),
                                 AffineMap::get(dims, 0, eo, ctx)};
  return linalg::GenericOp::create(
             im.b, im.loc, TypeRange{acc.getType()}, ValueRange{window}, ValueRange{acc}, maps,
             iters,
             [&](OpBuilder &ob, Location l, ValueRange args) {
               SmallVector<Value> ix;
               for (int64_t i = 0; i < dims; ++i)
                 ix.push_back(linalg::IndexOp::create(ob, l, i));
               Value v = body(ob, l, ValueRange(ix).take_front(no),
                              ValueRange(ix).drop_front(no));
               linalg::YieldOp::create(ob, l, combine(ob, l, args[1], v));
             })
      .getResult(0);
}

static Value sumOver(Importer &im, ArrayRef<int64_t> outShape, ArrayRef<int64_t> redShape,
                     Type elem,
                     function_ref<Value(OpBuilder &, Location, ValueRange, ValueRange)> body) {
  return reduceOver(im, outShape, redShape, cast<TypedAttr>(im.b.getZeroAttr(elem)), body,
                    [](OpBuilder &ob, Location l, Value a, Value v) -> Value {
                      return arith::AddFOp::create(ob, l, a, v);
                    });
}

//===----------------------------------------------------------------------===//
// MaxPool indices
//===----------------------------------------------------------------------===//

Value kiln::detail::maxPoolIndices(Importer &im, Value x, Value y, ArrayRef<int64_t> kernel,
                                   ArrayRef<int64_t> strides, ArrayRef<int64_t> dilations,
                                   ArrayRef<int64_t> padLo, bool columnMajor) {
  ArrayRef<int64_t> xs = im.shapeOf(x), ys = im.shapeOf(y);
  int64_t s = xs.size() - 2;
  SmallVector<int64_t> in(xs.drop_front(2));
  SmallVector<int64_t> st(strides), dl(dilations), pl(padLo);
  int64_t plane = 1;
  for (int64_t d : in)
    plane *= d;
  Type i64 = im.b.getI64Type();
  // The smallest row-major spatial position holding the window's maximum is
  // the first in scan order, which is the one ONNX reports.
  Value first = reduceOver(
      im, ys, kernel, IntegerAttr::get(i64, plane),
      [&](OpBuilder &ob, Location l, ValueRange o, ValueRange k) -> Value {
        Value ok, flat = idx(ob, l, 0);
        SmallVector<Value> at = {o[0], o[1]};
        for (int64_t i = 0; i < s; ++i) {
          Value p = arith::AddIOp::create(
              ob, l, arith::MulIOp::create(ob, l, o[2 + i], idx(ob, l, st[i])),
              arith::MulIOp::create(ob, l, k[i], idx(ob, l, dl[i])));
          p = arith::SubIOp::create(ob, l, p, idx(ob, l, pl[i]));
          ok = andI(ob, l, ok,
                    andI(ob, l, cmpI(ob, l, arith::CmpIPredicate::sge, p, idx(ob, l, 0)),
                         cmpI(ob, l, arith::CmpIPredicate::slt, p, idx(ob, l, in[i]))));
          p = clampIdx(ob, l, p, 0, in[i] - 1);
          at.push_back(p);
          flat = arith::AddIOp::create(ob, l, arith::MulIOp::create(ob, l, flat, idx(ob, l, in[i])),
                                       p);
        }
        Value v = tensor::ExtractOp::create(ob, l, x, at);
        Value m = tensor::ExtractOp::create(ob, l, y, o);
        Value eq = isa<FloatType>(v.getType())
                       ? arith::CmpFOp::create(ob, l, arith::CmpFPredicate::OEQ, v, m).getResult()
                       : cmpI(ob, l, arith::CmpIPredicate::eq, v, m);
        Value f = arith::IndexCastOp::create(ob, l, ob.getI64Type(), flat);
        return arith::SelectOp::create(ob, l, andI(ob, l, ok, eq), f,
                                       arith::ConstantIntOp::create(ob, l, ob.getI64Type(), plane));
      },
      [](OpBuilder &ob, Location l, Value a, Value v) -> Value {
        return arith::MinSIOp::create(ob, l, a, v);
      });
  // Offset by the (n, c) plane; re-linearize column-major for storage_order=1.
  int64_t channels = xs[1];
  return indexedGeneric(im, ys, i64, [&](OpBuilder &ob, Location l, ValueRange a) -> Value {
    auto c64 = [&](int64_t v) -> Value { return arith::ConstantIntOp::create(ob, l, ob.getI64Type(), v); };
    Value f = a.back();
    if (columnMajor) {
      Value rest = f, col = c64(0), scale = c64(1);
      SmallVector<Value> pos(s);
      for (int64_t i = s - 1; i >= 0; --i) {
        pos[i] = arith::RemSIOp::create(ob, l, rest, c64(in[i]));
        rest = arith::DivSIOp::create(ob, l, rest, c64(in[i]));
      }
      for (int64_t i = 0; i < s; ++i) {
        col = arith::AddIOp::create(ob, l, col, arith::MulIOp::create(ob, l, pos[i], scale));
        scale = arith::MulIOp::create(ob, l, scale, c64(in[i]));
      }
      f = col;
    }
    Value nc = arith::AddIOp::create(
        ob, l, arith::MulIOp::create(ob, l, arith::IndexCastOp::create(ob, l, ob.getI64Type(), a[0]), c64(channels)),
        arith::IndexCastOp::create(ob, l, ob.getI64Type(), a[1]));
    return arith::AddIOp::create(ob, l, arith::MulIOp::create(ob, l, nc, c64(plane)), f);
  }, ValueRange{first}, {AffineMap::getMultiDimIdentityMap(ys.size(), &im.ctx)});
}

//===----------------------------------------------------------------------===//
// ConvTranspose
//===----------------------------------------------------------------------===//

/// ConvTranspose as a convolution: the input is dilated by the strides
/// (zeros between elements) and padded by (effective kernel - 1 - pads),
/// then convolved with the spatially flipped kernel whose in/out channel
/// roles are swapped.
static LogicalResult handleConvTranspose(Importer &im) {
  Value x = im.input(0), w = im.input(1);
  ArrayRef<int64_t> xs = im.shapeOf(x), ws = im.shapeOf(w);
  if (xs.size() < 3 || ws.size() != xs.size())
    return im.fail("X and W must have the same rank >= 3, got " + shapeStr(xs) + " and " +
                   shapeStr(ws));
  Type et = im.elementType(x);
  if (!isa<FloatType>(et))
    return im.fail("supported for floating-point inputs only");
  int64_t s = xs.size() - 2, nBatch = xs[0], c = xs[1];
  int64_t groups = im.attrInt("group", 1);
  if (groups <= 0 || c % groups || ws[0] != c)
    return im.fail(llvm::formatv("group={0} does not fit X channels {1} and W {2}", groups, c,
                                 shapeStr(ws))
                       .str());
  int64_t cg = c / groups, mg = ws[1], m = mg * groups;
  SmallVector<int64_t> kernel(ws.drop_front(2));
  if (auto ks = im.attrInts("kernel_shape"); ks && ArrayRef<int64_t>(*ks) != ArrayRef(kernel))
    return im.fail("kernel_shape " + shapeStr(*ks) + " does not match W " + shapeStr(ws));
  auto strides = im.attrInts("strides").value_or(SmallVector<int64_t>(s, 1));
  auto dil = im.attrInts("dilations").value_or(SmallVector<int64_t>(s, 1));
  auto outPad = im.attrInts("output_padding").value_or(SmallVector<int64_t>(s, 0));
  auto pads = im.attrInts("pads");
  auto outShapeAttr = im.attrInts("output_shape");
  std::string autoPad = im.attrString("auto_pad", "NOTSET");
  if (autoPad != "NOTSET" && autoPad != "VALID" && autoPad != "SAME_UPPER" &&
      autoPad != "SAME_LOWER")
    return im.fail("unknown auto_pad '" + autoPad + "'");
  if ((int64_t)strides.size() != s || (int64_t)dil.size() != s ||
      (int64_t)outPad.size() != s || (pads && (int64_t)pads->size() != 2 * s))
    return im.fail(llvm::formatv("strides/dilations/output_padding/pads do not match {0} "
                                 "spatial dims",
                                 s)
                       .str());
  SmallVector<int64_t> requested;
  if (outShapeAttr) {
    // Some exporters write the full N x C x spatial shape.
    ArrayRef<int64_t> os(*outShapeAttr);
    if ((int64_t)os.size() == s + 2)
      os = os.drop_front(2);
    if ((int64_t)os.size() != s)
      return im.fail("output_shape " + shapeStr(*outShapeAttr) + " does not match " +
                     std::to_string(s) + " spatial dims");
    requested.assign(os.begin(), os.end());
  }
  for (int64_t i = 0; i < s; ++i)
    if (strides[i] <= 0 || dil[i] <= 0)
      return im.fail("strides and dilations must be positive");

  SmallVector<int64_t> padLo(s), out(s);
  for (int64_t i = 0; i < s; ++i) {
    int64_t ek = (kernel[i] - 1) * dil[i] + 1;
    int64_t full = strides[i] * (xs[2 + i] - 1) + outPad[i] + ek;
    bool same = autoPad == "SAME_UPPER" || autoPad == "SAME_LOWER";
    if (!requested.empty() || same) {
      out[i] = requested.empty() ? xs[2 + i] * strides[i] : requested[i];
      if (pads && !same) {
        // Explicit pads with an explicit output_shape: the output is
        // cropped (or extended) at the end, as the reference does.
        padLo[i] = (*pads)[i];
      } else {
        int64_t total = full - out[i];
        int64_t half = llvm::divideFloorSigned(total, 2);
        padLo[i] = autoPad == "SAME_UPPER" ? half : total - half;
      }
    } else if (autoPad == "VALID") {
      padLo[i] = 0;
      out[i] = full;
    } else {
      int64_t lo = pads ? (*pads)[i] : 0, hi = pads ? (*pads)[i + s] : 0;
      padLo[i] = lo;
      out[i] = full - lo - hi;
    }
    if (out[i] <= 0)
      return im.fail(llvm::formatv("output spatial size would be {0} (input {1}, kernel {2})",
                                   out[i], shapeStr(xs), shapeStr(kernel))
                         .str());
  }

  // Dilate and pad in one gather: position p of the padded, dilated input
  // holds x[(p - lo) / stride] when that divides exactly and is in range.
  SmallVector<int64_t> lo(s), dshape = {nBatch, c};
  for (int64_t i = 0; i < s; ++i) {
    int64_t ek = (kernel[i] - 1) * dil[i] + 1;
    lo[i] = ek - 1 - padLo[i];
    dshape.push_back(out[i] + ek - 1);
  }
  SmallVector<int64_t> in(xs.drop_front(2));
  Value xd = indexedGeneric(im, dshape, et, [&](OpBuilder &ob, Location l, ValueRange a) {
    Value ok;
    SmallVector<Value> src = {a[0], a[1]};
    for (int64_t i = 0; i < s; ++i) {
      Value q = arith::SubIOp::create(ob, l, a[2 + i], idx(ob, l, lo[i]));
      Value st = idx(ob, l, strides[i]);
      Value j = arith::FloorDivSIOp::create(ob, l, q, st);
      Value exact = cmpI(ob, l, arith::CmpIPredicate::eq, arith::MulIOp::create(ob, l, j, st), q);
      Value inRange = andI(ob, l, cmpI(ob, l, arith::CmpIPredicate::sge, j, idx(ob, l, 0)),
                           cmpI(ob, l, arith::CmpIPredicate::slt, j, idx(ob, l, in[i])));
      ok = andI(ob, l, ok, andI(ob, l, exact, inRange));
      src.push_back(clampIdx(ob, l, j, 0, in[i] - 1));
    }
    Value v = tensor::ExtractOp::create(ob, l, x, src);
    return arith::SelectOp::create(ob, l, ok, v, im.constantScalar(ob, l, et, 0.0)).getResult();
  });

  // The spatially flipped kernel, as its own small op: with the flip in the
  // convolution's input map (o - k) tiling could not bound the input window,
  // and the loops must stay recoverable from plain dims (k from W, o from Y).
  MLIRContext *ctx = &im.ctx;
  int64_t rank = ws.size();
  SmallVector<AffineExpr> flip = {getAffineDimExpr(0, ctx), getAffineDimExpr(1, ctx)};
  for (int64_t i = 0; i < s; ++i)
    flip.push_back(kernel[i] - 1 - getAffineDimExpr(2 + i, ctx));
  Value wf = indexedGeneric(
      im, ws, et, [&](OpBuilder &, Location, ValueRange a) { return a[rank]; }, {w},
      {AffineMap::get(rank, 0, flip, ctx)});

  SmallVector<int64_t> xg = {nBatch, groups, cg}, wg = {groups, cg, mg}, og = {nBatch, groups, mg};
  xg.append(dshape.begin() + 2, dshape.end());
  wg.append(kernel);
  og.append(out);
  Value xv = im.reshape(xd, xg), wv = im.reshape(wf, wg);

  // Loops: n, g, m, c, k_0.., o_0..
  auto d = [&](int64_t i) { return getAffineDimExpr(i, ctx); };
  SmallVector<AffineExpr> ex = {d(0), d(1), d(3)}, ew = {d(1), d(3), d(2)};
  for (int64_t i = 0; i < s; ++i) {
    AffineExpr k = d(4 + i), o = d(4 + s + i);
    ex.push_back(o + k * dil[i]);
    ew.push_back(k);
  }
  auto y = groupedConvolution(im, xv, wv, im.hasInput(2) ? im.input(2) : Value(), og, ex, ew);
  if (failed(y))
    return failure();
  SmallVector<int64_t> outShape = {nBatch, m};
  outShape.append(out);
  im.setOutput(0, im.reshape(*y, outShape));
  return success();
}

//===----------------------------------------------------------------------===//
// GridSample
//===----------------------------------------------------------------------===//

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

static LogicalResult handleGridSample(Importer &im) {
  Value x = im.input(0), grid = im.input(1);
  ArrayRef<int64_t> xs = im.shapeOf(x), gs = im.shapeOf(grid);
  int64_t r = (int64_t)xs.size() - 2;
  if (r < 1 || (int64_t)gs.size() != r + 2 || gs[0] != xs[0] || gs.back() != r)
    return im.fail("X " + shapeStr(xs) + " and grid " + shapeStr(gs) +
                   " must be N x C x D1.. and N x O1.. x " + std::to_string(r));
  Type et = im.elementType(x), gridType = im.elementType(grid);
  if (!isa<FloatType>(et) || !isa<FloatType>(gridType))
    return im.fail("supported for floating-point X and grid only");
  std::string mode = im.attrString("mode", im.opset >= 20 ? "linear" : "bilinear");
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

//===----------------------------------------------------------------------===//
// DeformConv
//===----------------------------------------------------------------------===//

/// DeformConv (2-D) in two steps: a gather builds the deformed columns
/// cols[n, ic, a, b, i, j] = mask * bilinear(X[n, ic], sample point of kernel
/// tap (a, b) at output (i, j), zero outside), then a grouped contraction
/// with W sums them, like Conv after im2col.
static LogicalResult handleDeformConv(Importer &im) {
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

//===----------------------------------------------------------------------===//
// RoiAlign
//===----------------------------------------------------------------------===//

/// RoiAlign with a fixed sampling grid per bin: the bins' sample points
/// are the reduction loops, each sample bilinearly interpolated in f64 the
/// way ONNX's reference computes them, then averaged or maxed.
static LogicalResult handleRoiAlign(Importer &im) {
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
  std::string ctm = im.attrString("coordinate_transformation_mode",
                                  im.opset >= 16 ? "half_pixel" : "output_half_pixel");
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

//===----------------------------------------------------------------------===//
// MaxUnpool
//===----------------------------------------------------------------------===//

/// MaxUnpool scatters X to the flat positions I of the unpooled shape
/// ((in - 1) * stride - pads + kernel), which sits at the origin of a larger
/// output_shape (as ONNX's reference places it). A scatter is a gather that
/// scans every X element per output: O(|Y| * |X|), exact for any indices,
/// with the last write winning like the reference's loop.
static LogicalResult handleMaxUnpool(Importer &im) {
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

//===----------------------------------------------------------------------===//
// Col2Im
//===----------------------------------------------------------------------===//

static LogicalResult handleCol2Im(Importer &im) {
  Value x = im.input(0);
  ArrayRef<int64_t> xs = im.shapeOf(x);
  Type et = im.elementType(x);
  if (!isa<FloatType>(et))
    return im.fail("supported for floating-point inputs only");
  auto image = im.constInts(1, "image_shape");
  if (failed(image))
    return failure();
  auto block = im.constInts(2, "block_shape");
  if (failed(block))
    return failure();
  int64_t s = image->size();
  if ((int64_t)block->size() != s || xs.size() != 3)
    return im.fail("input must be N x (C*prod(block_shape)) x L with image_shape and "
                   "block_shape of equal length");
  auto strides = im.attrInts("strides").value_or(SmallVector<int64_t>(s, 1));
  auto dil = im.attrInts("dilations").value_or(SmallVector<int64_t>(s, 1));
  auto pads = im.attrInts("pads").value_or(SmallVector<int64_t>(2 * s, 0));
  if ((int64_t)strides.size() != s || (int64_t)dil.size() != s || (int64_t)pads.size() != 2 * s)
    return im.fail("strides/dilations/pads do not match image_shape");
  int64_t blockSize = 1, numBlocks = 1;
  SmallVector<int64_t> nb(s);
  for (int64_t i = 0; i < s; ++i) {
    if ((*block)[i] <= 0 || strides[i] <= 0 || dil[i] <= 0)
      return im.fail("block_shape, strides and dilations must be positive");
    blockSize *= (*block)[i];
    nb[i] = ((*image)[i] + pads[i] + pads[i + s] - dil[i] * ((*block)[i] - 1) - 1) / strides[i] + 1;
    if (nb[i] <= 0)
      return im.fail("the image is smaller than one block");
    numBlocks *= nb[i];
  }
  if (xs[1] % blockSize || xs[2] != numBlocks)
    return im.fail(llvm::formatv("input {0} does not fit {1} blocks of {2} elements",
                                 shapeStr(xs), numBlocks, blockSize)
                       .str());
  SmallVector<int64_t> outShape = {xs[0], xs[1] / blockSize};
  outShape.append(*image);
  // out[n, c, p] = sum over block offsets b of x[n, c*B + b, l] where the
  // block at l covers p with offset b: p + pad = l*stride + b*dilation.
  Value y = sumOver(im, outShape, *block, et,
                    [&](OpBuilder &ob, Location l, ValueRange o, ValueRange b) -> Value {
                      Value ok, ch = arith::MulIOp::create(ob, l, o[1], idx(ob, l, blockSize));
                      Value bflat = idx(ob, l, 0), lflat = idx(ob, l, 0);
                      for (int64_t i = 0; i < s; ++i) {
                        Value q = arith::SubIOp::create(
                            ob, l, arith::AddIOp::create(ob, l, o[2 + i], idx(ob, l, pads[i])),
                            arith::MulIOp::create(ob, l, b[i], idx(ob, l, dil[i])));
                        Value st = idx(ob, l, strides[i]);
                        Value j = arith::FloorDivSIOp::create(ob, l, q, st);
                        ok = andI(ob, l, ok,
                                  cmpI(ob, l, arith::CmpIPredicate::eq,
                                       arith::MulIOp::create(ob, l, j, st), q));
                        ok = andI(ob, l, ok, cmpI(ob, l, arith::CmpIPredicate::sge, j, idx(ob, l, 0)));
                        ok = andI(ob, l, ok,
                                  cmpI(ob, l, arith::CmpIPredicate::slt, j, idx(ob, l, nb[i])));
                        j = clampIdx(ob, l, j, 0, nb[i] - 1);
                        bflat = arith::AddIOp::create(
                            ob, l, arith::MulIOp::create(ob, l, bflat, idx(ob, l, (*block)[i])),
                            b[i]);
                        lflat = arith::AddIOp::create(
                            ob, l, arith::MulIOp::create(ob, l, lflat, idx(ob, l, nb[i])), j);
                      }
                      Value v = tensor::ExtractOp::create(
                          ob, l, x,
                          ValueRange{o[0], arith::AddIOp::create(ob, l, ch, bflat), lflat});
                      return arith::SelectOp::create(ob, l, ok, v,
                                                     im.constantScalar(ob, l, et, 0.0));
                    });
  im.setOutput(0, y);
  return success();
}

//===----------------------------------------------------------------------===//
// Pad: reflect, edge, wrap
//===----------------------------------------------------------------------===//

Value kiln::detail::padWithMode(Importer &im, Value v, ArrayRef<int64_t> lo,
                                ArrayRef<int64_t> hi, StringRef mode) {
  ArrayRef<int64_t> shape = im.shapeOf(v);
  SmallVector<int64_t> dims(shape), lows(lo), outShape;
  for (size_t i = 0; i < shape.size(); ++i)
    outShape.push_back(shape[i] + lo[i] + hi[i]);
  std::string m = mode.str();
  return indexedGeneric(im, outShape, im.elementType(v),
                        [&](OpBuilder &ob, Location l, ValueRange a) -> Value {
    SmallVector<Value> src;
    for (size_t i = 0; i < dims.size(); ++i) {
      int64_t d = dims[i];
      Value p = arith::SubIOp::create(ob, l, a[i], idx(ob, l, lows[i]));
      if (lows[i] == 0 && lo[i] + hi[i] == 0) {
        src.push_back(a[i]);
        continue;
      }
      if (m == "edge" || d == 1) {
        p = clampIdx(ob, l, p, 0, d - 1);
      } else if (m == "wrap") {
        p = arith::RemSIOp::create(ob, l, p, idx(ob, l, d));
        Value neg = cmpI(ob, l, arith::CmpIPredicate::slt, p, idx(ob, l, 0));
        p = arith::SelectOp::create(ob, l, neg, arith::AddIOp::create(ob, l, p, idx(ob, l, d)), p);
      } else {
        // reflect (numpy): period 2(d-1), mirrored about the end elements.
        int64_t period = 2 * (d - 1);
        p = arith::RemSIOp::create(ob, l, p, idx(ob, l, period));
        Value neg = cmpI(ob, l, arith::CmpIPredicate::slt, p, idx(ob, l, 0));
        p = arith::SelectOp::create(ob, l, neg,
                                    arith::AddIOp::create(ob, l, p, idx(ob, l, period)), p);
        Value back = cmpI(ob, l, arith::CmpIPredicate::sge, p, idx(ob, l, d));
        p = arith::SelectOp::create(ob, l, back,
                                    arith::SubIOp::create(ob, l, idx(ob, l, period), p), p);
      }
      src.push_back(p);
    }
    return tensor::ExtractOp::create(ob, l, v, src);
  });
}

//===----------------------------------------------------------------------===//
// DFT, STFT and windows
//===----------------------------------------------------------------------===//

namespace {
/// A dense DFT as a contraction: y[k, to] = sum_{j, ti} x[j, ti] * M[k, to, j, ti]
/// over (real, imaginary) parts `to`/`ti`.
struct DftMatrix {
  int64_t nOut, co, red, ci;
  std::vector<double> m;
};
} // namespace

/// Matrix for a transform of length `n` over `len` input samples with `ci`
/// input parts. Inverse one-sided (irfft) reads the first n/2+1 frequencies
/// and rebuilds the rest by Hermitian symmetry.
static DftMatrix dftMatrix(int64_t n, int64_t len, int64_t ci, bool inverse, bool onesided) {
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

static FailureOr<Value> dftConstant(Importer &im, const DftMatrix &d, Type et) {
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

static LogicalResult handleDFT(Importer &im) {
  Value x = im.input(0);
  ArrayRef<int64_t> xs = im.shapeOf(x);
  Type et = im.elementType(x);
  if (!isa<FloatType>(et))
    return im.fail("supported for floating-point inputs only");
  int64_t rank = xs.size();
  if (rank < 2 || (xs.back() != 1 && xs.back() != 2))
    return im.fail("input " + shapeStr(xs) + " must end in a dimension of 1 (real) or 2 "
                   "(complex)");
  int64_t axisRaw = im.opset >= 20 ? -2 : im.attrInt("axis", 1);
  if (im.opset >= 20 && im.hasInput(2)) {
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

static LogicalResult handleSTFT(Importer &im) {
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

/// Hann/Hamming/Blackman: a0 - a1 cos(2 pi n / N) + a2 cos(4 pi n / N), with
/// N = size (periodic) or size - 1 (symmetric). The size is a compile-time
/// constant, so the window is one too.
static LogicalResult handleWindow(Importer &im, double a0, double a1, double a2) {
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

/// MelWeightMatrix: triangular filters between mel-spaced frequency bins,
/// [dft_length / 2 + 1, num_mel_bins]; every input is a compile-time
/// constant, so the matrix is one too. Follows the ONNX reference, including
/// its bin spacing of (high - low) / (num_mel_bins + 2) mels.
static LogicalResult handleMelWeightMatrix(Importer &im) {
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

/// AffineGrid: each output point is theta[n] applied to the homogeneous
/// normalized coordinates of its position (x innermost, as GridSample reads).
static LogicalResult handleAffineGrid(Importer &im) {
  Value theta = im.input(0);
  ArrayRef<int64_t> ts = im.shapeOf(theta);
  Type et = im.elementType(theta);
  if (!isa<FloatType>(et))
    return im.fail("supported for floating-point theta only");
  auto size = im.constInts(1, "size");
  if (failed(size))
    return failure();
  int64_t r = (int64_t)size->size() - 2;
  if ((r != 2 && r != 3) || ts.size() != 3 || ts[0] != (*size)[0] || ts[1] != r || ts[2] != r + 1)
    return im.fail("theta " + shapeStr(ts) + " and size " + shapeStr(*size) +
                   " must be N x 2 x 3 with [N, C, H, W] or N x 3 x 4 with [N, C, D, H, W]");
  SmallVector<int64_t> spatial(size->begin() + 2, size->end());
  for (int64_t d : spatial)
    if (d <= 0)
      return im.fail("size " + shapeStr(*size) + " must be positive");
  bool align = im.attrInt("align_corners", 0);
  // base[p..., j]: coordinate of spatial dim r-1-j at p, then 1.
  HostTensor base;
  base.shape.assign(spatial.begin(), spatial.end());
  base.shape.push_back(r + 1);
  base.elemType = et;
  int64_t points = 1;
  for (int64_t d : spatial)
    points *= d;
  for (int64_t p = 0; p < points; ++p) {
    SmallVector<int64_t> pos(r);
    int64_t rest = p;
    for (int64_t i = r - 1; i >= 0; --i) {
      pos[i] = rest % spatial[i];
      rest /= spatial[i];
    }
    for (int64_t j = 0; j < r; ++j) {
      int64_t i = r - 1 - j, n = spatial[i];
      double c = align ? (n == 1 ? -1.0 : -1.0 + 2.0 * pos[i] / (n - 1))
                       : -1.0 + (2.0 * pos[i] + 1.0) / n;
      base.push(c);
    }
    base.push(1.0);
  }
  Value bv = arith::ConstantOp::create(im.b, im.loc, base.toAttr());
  SmallVector<int64_t> outShape = {ts[0]};
  outShape.append(spatial);
  outShape.push_back(r);
  // Loops: n, p..., i, j (reduction).
  MLIRContext *ctx = &im.ctx;
  int64_t dims = r + 3;
  auto d = [&](int64_t i) { return getAffineDimExpr(i, ctx); };
  SmallVector<AffineExpr> et_ = {d(0), d(r + 1), d(r + 2)}, eb, eo = {d(0)};
  for (int64_t i = 0; i < r; ++i) {
    eb.push_back(d(1 + i));
    eo.push_back(d(1 + i));
  }
  eb.push_back(d(r + 2));
  eo.push_back(d(r + 1));
  Value init = im.fill(outShape, cast<TypedAttr>(im.b.getZeroAttr(et)));
  SmallVector<IteratorType> iters(dims, IteratorType::parallel);
  iters[r + 2] = IteratorType::reduction;
  SmallVector<AffineMap> maps = {AffineMap::get(dims, 0, et_, ctx), AffineMap::get(dims, 0, eb, ctx),
                                 AffineMap::get(dims, 0, eo, ctx)};
  Value y = linalg::GenericOp::create(
                im.b, im.loc, TypeRange{init.getType()}, ValueRange{theta, bv}, ValueRange{init},
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

/// ReverseSequence: along time_axis, the first sequence_lens[b] elements of
/// batch b come reversed, the rest unchanged. The lengths are runtime data.
static LogicalResult handleReverseSequence(Importer &im) {
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

void kiln::detail::registerImageOps(llvm::StringMap<Handler> &t) {
  t["ConvTranspose"] = handleConvTranspose;
  t["GridSample"] = handleGridSample;
  t["AffineGrid"] = handleAffineGrid;
  t["Col2Im"] = handleCol2Im;
  t["MaxUnpool"] = handleMaxUnpool;
  t["RoiAlign"] = handleRoiAlign;
  t["DeformConv"] = handleDeformConv;
  t["ReverseSequence"] = handleReverseSequence;
  t["DFT"] = handleDFT;
  t["STFT"] = handleSTFT;
  t["HannWindow"] = [](Importer &im) { return handleWindow(im, 0.5, 0.5, 0.0); };
  t["MelWeightMatrix"] = handleMelWeightMatrix;
  t["HammingWindow"] = [](Importer &im) {
    return handleWindow(im, 25.0 / 46.0, 1.0 - 25.0 / 46.0, 0.0);
  };
  t["BlackmanWindow"] = [](Importer &im) { return handleWindow(im, 0.42, 0.5, 0.08); };
}

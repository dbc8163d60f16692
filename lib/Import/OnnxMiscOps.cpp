//===- OnnxMiscOps.cpp - Einsum, RNNs, data-dependent shapes, ... --------===//
//
// Ops that decompose into a few linalg.generic contractions, scans and
// elementwise maps: Einsum, QLinearMatMul, ConvInteger, the recurrent layers
// (RNN, LSTM, GRU, unrolled over the static sequence length), Det,
// TensorScatter, TfIdfVectorizer, ai.onnx.ml TreeEnsemble, the
// ai.onnx.preview.training optimizers (Adagrad, Adam, Momentum), and the ops
// whose output shapes depend on the data (NonZero, Compress, Unique,
// NonMaxSuppression), which return a bound-shaped value plus its extents.
//
//===----------------------------------------------------------------------===//
#include "Importer.h"

#include "llvm/Support/FormatVariadic.h"

#include <cmath>
#include <functional>
#include <map>

using namespace mlir;
using namespace kiln::detail;

using utils::IteratorType;

static bool isFloat(Type t) { return isa<FloatType>(t); }

static std::string shapeStr(ArrayRef<int64_t> s) {
  std::string r = "[";
  for (auto [i, d] : llvm::enumerate(s))
    r += (i ? "," : "") + std::to_string(d);
  return r + "]";
}

static Value addOp(OpBuilder &ob, Location l, Value a, Value b) {
  return isFloat(a.getType()) ? (Value)arith::AddFOp::create(ob, l, a, b)
                              : (Value)arith::AddIOp::create(ob, l, a, b);
}
static Value mulOp(OpBuilder &ob, Location l, Value a, Value b) {
  return isFloat(a.getType()) ? (Value)arith::MulFOp::create(ob, l, a, b)
                              : (Value)arith::MulIOp::create(ob, l, a, b);
}

/// Handlers read their required inputs unconditionally: a model that
/// leaves one out gets an error instead.
static LogicalResult requireInputs(Importer &im, unsigned n) {
  for (unsigned i = 0; i < n; ++i)
    if (!im.hasInput(i))
      return im.fail("input " + Twine(i) + " is required");
  return success();
}

/// Sum over the loops not in `outExprs` of the product computed by `body`
/// from the operands' elements: one linalg.generic, accumulating into zeros.
static Value contract(Importer &im, ValueRange ins, ArrayRef<SmallVector<AffineExpr>> inExprs,
                      int64_t numLoops, ArrayRef<AffineExpr> outExprs,
                      ArrayRef<int64_t> outShape, Type accType,
                      function_ref<Value(OpBuilder &, Location, ValueRange)> body) {
  MLIRContext *ctx = &im.ctx;
  SmallVector<AffineMap> maps;
  for (const auto &e : inExprs)
    maps.push_back(AffineMap::get(numLoops, 0, e, ctx));
  maps.push_back(AffineMap::get(numLoops, 0, outExprs, ctx));
  SmallVector<IteratorType> iters(numLoops, IteratorType::reduction);
  for (AffineExpr e : outExprs)
    iters[cast<AffineDimExpr>(e).getPosition()] = IteratorType::parallel;
  Value init = im.fill(outShape, cast<TypedAttr>(im.b.getZeroAttr(accType)));
  return linalg::GenericOp::create(im.b, im.loc, TypeRange{init.getType()}, ins,
                                   ValueRange{init}, maps, iters,
                                   [&](OpBuilder &ob, Location l, ValueRange v) {
                                     Value p = body(ob, l, v.drop_back());
                                     linalg::YieldOp::create(ob, l, addOp(ob, l, v.back(), p));
                                   })
      .getResult(0);
}

//===----------------------------------------------------------------------===//
// Einsum
//===----------------------------------------------------------------------===//

namespace {
/// One operand of an einsum equation: its letters, and where "..." sits
/// (-1 if absent).
struct EinsumTerm {
  std::string letters;
  int64_t ellipsisAt = -1;
};
} // namespace

static FailureOr<EinsumTerm> parseEinsumTerm(Importer &im, StringRef s, StringRef eq) {
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

static LogicalResult handleEinsum(Importer &im) {
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

//===----------------------------------------------------------------------===//
// Quantized integer matmul and convolution
//===----------------------------------------------------------------------===//

static Value extendTo(OpBuilder &ob, Location l, Value v, Type to, bool uns) {
  if (v.getType() == to)
    return v;
  return uns ? (Value)arith::ExtUIOp::create(ob, l, to, v)
             : (Value)arith::ExtSIOp::create(ob, l, to, v);
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
static FailureOr<SmallVector<AffineExpr>> quantParamExprs(Importer &im, ArrayRef<int64_t> ps,
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

static LogicalResult handleQLinearMatMul(Importer &im) {
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

/// ConvInteger: the zero points are subtracted in i32 first (so padding
/// contributes zero, like the reference), then an ordinary i32 convolution.
/// Input `i` (8-bit) widened to i32 minus its zero point `zpIndex` (a
/// scalar, or one per output channel when `perChannel`).
static FailureOr<Value> shiftedInt8(Importer &im, unsigned i, unsigned zpIndex, bool perChannel,
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

static LogicalResult handleConvInteger(Importer &im) {
  if (failed(requireInputs(im, 2)))
    return failure();
  auto x = shiftedInt8(im, 0, 2, false, "x");
  if (failed(x))
    return failure();
  auto w = shiftedInt8(im, 1, 3, true, "w");
  if (failed(w))
    return failure();
  auto y = convolution(im, *x, *w, Value());
  if (failed(y))
    return failure();
  im.setOutput(0, *y);
  return success();
}

/// QLinearConv: the i32 convolution of the zero-point-shifted inputs plus
/// the i32 bias, requantized as the reference does: acc * (x_scale *
/// w_scale / y_scale) in f64 (numpy promotes the int32 accumulator), plus
/// y_zero_point, rounded half to even and saturated.
static LogicalResult handleQLinearConv(Importer &im) {
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

/// A parallel generic over `outShape` whose operands are read through
/// `inExprs` (affine in the output's dims).
static Value mapGeneric(Importer &im, ArrayRef<int64_t> outShape, Type elem, ValueRange ins,
                        ArrayRef<SmallVector<AffineExpr>> inExprs,
                        function_ref<Value(OpBuilder &, Location, ValueRange)> body) {
  int64_t rank = outShape.size();
  SmallVector<AffineMap> maps;
  for (const auto &e : inExprs)
    maps.push_back(AffineMap::get(rank, 0, e, &im.ctx));
  maps.push_back(AffineMap::getMultiDimIdentityMap(rank, &im.ctx));
  Value init = tensor::EmptyOp::create(im.b, im.loc, outShape, elem);
  SmallVector<IteratorType> iters(rank, IteratorType::parallel);
  return linalg::GenericOp::create(im.b, im.loc, TypeRange{init.getType()}, ins,
                                   ValueRange{init}, maps, iters,
                                   [&](OpBuilder &ob, Location l, ValueRange v) {
                                     linalg::YieldOp::create(ob, l, body(ob, l, v.drop_back()));
                                   })
      .getResult(0);
}

//===----------------------------------------------------------------------===//
// Data-dependent shapes: NonZero, Compress, Unique, NonMaxSuppression
//===----------------------------------------------------------------------===//

/// prefix[j] = number of true `keep(k)` for k <= j, as i64 [m] (a quadratic
/// scan, like CumSum's), where `keep` reads element k of `x`.
static Value prefixCount(Importer &im, Value x,
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

/// The index j of the (k+1)-th kept element: the least j with
/// prefix[j] >= k + 1, by an unrolled binary search (clamped to m - 1 when
/// there is none).
static Value kthKept(OpBuilder &ob, Location l, Value prefix, Value k, int64_t m) {
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

/// The count of kept elements, prefix[m-1], as i64 [1].
static Value keptCount(Importer &im, Value prefix) {
  int64_t m = im.shapeOf(prefix)[0];
  return mapGeneric(im, {1}, im.b.getI64Type(), {prefix},
                    {{getAffineConstantExpr(m - 1, &im.ctx)}},
                    [](OpBuilder &, Location, ValueRange v) { return v[0]; });
}

static Value nonZero(OpBuilder &ob, Location l, Value v) {
  Type t = v.getType();
  if (isFloat(t))
    return arith::CmpFOp::create(ob, l, arith::CmpFPredicate::UNE, v,
                                 arith::ConstantOp::create(ob, l, ob.getZeroAttr(t)));
  return arith::CmpIOp::create(ob, l, arith::CmpIPredicate::ne, v,
                               arith::ConstantOp::create(ob, l, ob.getZeroAttr(t)));
}

/// NonZero: [rank, n] i64 (n = numel, the bound) whose column k holds the
/// coordinates of the (k+1)-th nonzero element in row-major order; the
/// number of nonzeros is the extent of dim 1. A constant input folds.
static LogicalResult handleNonZero(Importer &im) {
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

/// Compress: the kept slices along the axis (all elements, flattened, without
/// one). A constant condition gives a static gather; a runtime one a
/// data-dependent extent along the axis, bounded by the axis length.
static LogicalResult handleCompress(Importer &im) {
  if (failed(requireInputs(im, 2)))
    return failure();
  Value x = im.input(0), cond = im.input(1);
  SmallVector<int64_t> xs(im.shapeOf(x));
  if (im.shapeOf(cond).size() != 1)
    return im.fail("condition must be 1-D");
  int64_t ax = 0;
  if (im.attr("axis")) {
    auto a = im.normalizeAxis(im.attrInt("axis", 0), xs.size());
    if (failed(a))
      return failure();
    ax = *a;
  } else {
    int64_t n = 1;
    for (int64_t d : xs)
      n *= d;
    x = im.reshape(x, {n});
    xs = {n};
  }
  int64_t rank = xs.size(), len = im.shapeOf(cond)[0];
  Type et = im.elementType(x);
  if (auto c = im.constInput(1)) {
    auto h = HostTensor::fromAttr(*c);
    if (!h)
      return im.fail("condition must be a bool tensor");
    // Entries past the axis length must be false (numpy's rule); a shorter
    // condition drops the rest.
    std::vector<int64_t> kept;
    for (int64_t i = 0; i < len; ++i) {
      if (h->get(i) == 0)
        continue;
      if (i >= xs[ax])
        return im.fail("condition selects index " + Twine(i) + " past the axis length " +
                       Twine(xs[ax]));
      kept.push_back(i);
    }
    SmallVector<int64_t> outShape(xs);
    outShape[ax] = kept.size();
    if (kept.empty()) {
      im.setOutput(0, tensor::EmptyOp::create(im.b, im.loc, outShape, et));
      return success();
    }
    auto idxType = RankedTensorType::get({(int64_t)kept.size()}, im.b.getI64Type());
    Value table = arith::ConstantOp::create(
        im.b, im.loc, DenseElementsAttr::get(idxType, ArrayRef<int64_t>(kept)));
    Value y = mapGeneric(im, outShape, et, {table}, {{getAffineDimExpr(ax, &im.ctx)}},
                         [&](OpBuilder &ob, Location l, ValueRange v) -> Value {
                           SmallVector<Value> at;
                           for (int64_t i = 0; i < rank; ++i)
                             at.push_back(linalg::IndexOp::create(ob, l, i));
                           at[ax] = arith::IndexCastOp::create(ob, l, ob.getIndexType(), v[0]);
                           return tensor::ExtractOp::create(ob, l, x, at);
                         });
    im.setOutput(0, y);
    return success();
  }
  // Runtime condition: only its first min(len, axis length) entries can
  // select (a true entry past the axis is not diagnosed at run time).
  int64_t m = std::min(len, xs[ax]);
  SmallVector<int64_t> outShape(xs);
  outShape[ax] = m;
  if (m == 0) {
    im.setOutput(0, tensor::EmptyOp::create(im.b, im.loc, outShape, et));
    return success();
  }
  if (len != m)
    cond = mapGeneric(im, {m}, im.elementType(cond), {cond}, {{getAffineDimExpr(0, &im.ctx)}},
                      [](OpBuilder &, Location, ValueRange v) { return v[0]; });
  Value prefix = prefixCount(im, cond, nonZero);
  Value y = mapGeneric(im, outShape, et, {}, {}, [&](OpBuilder &ob, Location l, ValueRange) -> Value {
    SmallVector<Value> at;
    for (int64_t i = 0; i < rank; ++i)
      at.push_back(linalg::IndexOp::create(ob, l, i));
    at[ax] = kthKept(ob, l, prefix, at[ax], m);
    return tensor::ExtractOp::create(ob, l, x, at);
  });
  im.setDynamicOutput(0, y, keptCount(im, prefix), {ax});
  return success();
}

/// A generic over `numLoops` loops that folds `step(acc, operands)` into an
/// output (initialized to `init`) indexed by the parallel loops `outExprs`.
static Value foldLoops(Importer &im, ArrayRef<int64_t> outShape, int64_t numLoops, ValueRange ins,
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

/// Unique over the A slices along the axis (elements without one), each
/// flattened to m values in row-major order, like numpy. Quadratic in A:
/// fd[i][j] is the first position where slices i and j differ (m if equal),
/// which gives both equality and the lexicographic order. Y, indices and
/// counts have the data-dependent extent U (the number of distinct slices).
static LogicalResult handleUnique(Importer &im) {
  if (failed(requireInputs(im, 1)))
    return failure();
  Value x = im.input(0);
  SmallVector<int64_t> xs(im.shapeOf(x));
  Type et = im.elementType(x);
  bool sorted = im.attrInt("sorted", 1);
  bool hasAxis = im.attr("axis");
  int64_t ax = 0;
  if (hasAxis) {
    auto a = im.normalizeAxis(im.attrInt("axis", 0), xs.size());
    if (failed(a))
      return failure();
    ax = *a;
  } else {
    int64_t n = 1;
    for (int64_t d : xs)
      n *= d;
    x = im.reshape(x, {n});
    xs = {n};
  }
  int64_t A = xs[ax], m = 1;
  for (auto [i, d] : llvm::enumerate(xs))
    if ((int64_t)i != ax)
      m *= d;
  if (A == 0 || m == 0)
    return im.fail("empty inputs are not supported");
  bool uns = im.isUnsigned(0) || et.isInteger(1); // false < true
  // Slices as rows: [A, m].
  SmallVector<int64_t> perm = {ax};
  for (int64_t i = 0; i < (int64_t)xs.size(); ++i)
    if (i != ax)
      perm.push_back(i);
  Value rows = im.reshape(ax == 0 ? x : im.transpose(x, perm), {A, m});
  MLIRContext *ctx = &im.ctx;
  auto d = [&](int64_t i) { return getAffineDimExpr(i, ctx); };
  Type i64 = im.b.getI64Type();
  auto i64Attr = [&](int64_t v) { return cast<TypedAttr>(im.b.getI64IntegerAttr(v)); };
  auto c64 = [](OpBuilder &ob, Location l, int64_t v) -> Value {
    return arith::ConstantOp::create(ob, l, ob.getI64IntegerAttr(v));
  };
  auto cmp = [&](OpBuilder &ob, Location l, bool less, Value a, Value b) -> Value {
    if (isFloat(et))
      return arith::CmpFOp::create(ob, l, less ? arith::CmpFPredicate::OLT : arith::CmpFPredicate::UNE, a, b);
    return arith::CmpIOp::create(ob, l,
                                 less ? (uns ? arith::CmpIPredicate::ult : arith::CmpIPredicate::slt)
                                      : arith::CmpIPredicate::ne,
                                 a, b);
  };
  auto select = [](OpBuilder &ob, Location l, Value c, Value a, Value b) -> Value {
    return arith::SelectOp::create(ob, l, c, a, b);
  };
  auto asI64 = [&](OpBuilder &ob, Location l, Value index) -> Value {
    return arith::IndexCastOp::create(ob, l, ob.getI64Type(), index);
  };
  // fd[i][j]: loops (i, j, q).
  Value fd = foldLoops(im, {A, A}, 3, {rows, rows}, {{d(0), d(2)}, {d(1), d(2)}}, {d(0), d(1)},
                       i64Attr(m), [&](OpBuilder &ob, Location l, Value acc, ValueRange v) -> Value {
                         Value q = asI64(ob, l, linalg::IndexOp::create(ob, l, 2));
                         Value differ = cmp(ob, l, false, v[0], v[1]);
                         return arith::MinSIOp::create(ob, l, acc, select(ob, l, differ, q, acc));
                       });
  auto equal = [&](OpBuilder &ob, Location l, Value f) -> Value {
    return arith::CmpIOp::create(ob, l, arith::CmpIPredicate::eq, f, c64(ob, l, m));
  };
  auto count = [&](OpBuilder &ob, Location l, Value acc, Value c) -> Value {
    return arith::AddIOp::create(ob, l, acc, arith::ExtUIOp::create(ob, l, ob.getI64Type(), c));
  };
  // dup[i]: earlier slices equal to slice i (0: i is a first occurrence).
  Value dup = foldLoops(im, {A}, 2, {fd}, {{d(1), d(0)}}, {d(0)}, i64Attr(0),
                        [&](OpBuilder &ob, Location l, Value acc, ValueRange v) -> Value {
                          Value before = arith::CmpIOp::create(ob, l, arith::CmpIPredicate::slt,
                                                               linalg::IndexOp::create(ob, l, 1),
                                                               linalg::IndexOp::create(ob, l, 0));
                          return count(ob, l, acc, arith::AndIOp::create(ob, l, before, equal(ob, l, v[0])));
                        });
  // firstIdx[j]: the first slice equal to slice j.
  Value firstIdx = foldLoops(im, {A}, 2, {fd}, {{d(1), d(0)}}, {d(0)}, i64Attr(A),
                             [&](OpBuilder &ob, Location l, Value acc, ValueRange v) -> Value {
                               Value i = asI64(ob, l, linalg::IndexOp::create(ob, l, 1));
                               return arith::MinSIOp::create(ob, l, acc,
                                                             select(ob, l, equal(ob, l, v[0]), i, acc));
                             });
  // pos[i]: the output position of slice i's value: first occurrences that
  // sort before it, or that come before it.
  Value pos = foldLoops(
      im, {A}, 2, {dup, fd}, {{d(1)}, {d(1), d(0)}}, {d(0)}, i64Attr(0),
      [&](OpBuilder &ob, Location l, Value acc, ValueRange v) -> Value {
        Value i = linalg::IndexOp::create(ob, l, 0), k = linalg::IndexOp::create(ob, l, 1);
        Value first = arith::CmpIOp::create(ob, l, arith::CmpIPredicate::eq, v[0], c64(ob, l, 0));
        Value before;
        if (sorted) {
          // Slice k < slice i: they differ, and at the first difference k's
          // element is smaller.
          Value f = v[1];
          Value at = arith::IndexCastOp::create(
              ob, l, ob.getIndexType(), arith::MinSIOp::create(ob, l, f, c64(ob, l, m - 1)));
          Value xk = tensor::ExtractOp::create(ob, l, rows, ValueRange{k, at});
          Value xi = tensor::ExtractOp::create(ob, l, rows, ValueRange{i, at});
          before = arith::AndIOp::create(
              ob, l, arith::XOrIOp::create(ob, l, equal(ob, l, f), arith::ConstantOp::create(ob, l, ob.getBoolAttr(true))),
              cmp(ob, l, true, xk, xi));
        } else {
          before = arith::CmpIOp::create(ob, l, arith::CmpIPredicate::slt, k, i);
        }
        return count(ob, l, acc, arith::AndIOp::create(ob, l, first, before));
      });
  // U, the number of distinct slices, as i64 [1].
  Value uniques = foldLoops(im, {1}, 2, {dup}, {{d(1)}}, {d(0)}, i64Attr(0),
                            [&](OpBuilder &ob, Location l, Value acc, ValueRange v) -> Value {
                              return count(ob, l, acc, arith::CmpIOp::create(
                                                           ob, l, arith::CmpIPredicate::eq, v[0],
                                                           c64(ob, l, 0)));
                            });
  // indices[k]: the first occurrence at output position k (k < U).
  Value indices = foldLoops(
      im, {A}, 2, {dup, pos}, {{d(1)}, {d(1)}}, {d(0)}, i64Attr(0),
      [&](OpBuilder &ob, Location l, Value acc, ValueRange v) -> Value {
        Value k = asI64(ob, l, linalg::IndexOp::create(ob, l, 0));
        Value i = asI64(ob, l, linalg::IndexOp::create(ob, l, 1));
        Value hit = arith::AndIOp::create(
            ob, l, arith::CmpIOp::create(ob, l, arith::CmpIPredicate::eq, v[0], c64(ob, l, 0)),
            arith::CmpIOp::create(ob, l, arith::CmpIPredicate::eq, v[1], k));
        return select(ob, l, hit, i, acc);
      });
  Value counts = foldLoops(im, {A}, 2, {indices, firstIdx}, {{d(0)}, {d(1)}}, {d(0)}, i64Attr(0),
                           [&](OpBuilder &ob, Location l, Value acc, ValueRange v) -> Value {
                             return count(ob, l, acc, arith::CmpIOp::create(
                                                          ob, l, arith::CmpIPredicate::eq, v[0], v[1]));
                           });
  Value inverse = mapGeneric(im, {A}, i64, {firstIdx}, {{d(0)}},
                             [&](OpBuilder &ob, Location l, ValueRange v) -> Value {
                               Value at = arith::IndexCastOp::create(ob, l, ob.getIndexType(), v[0]);
                               return tensor::ExtractOp::create(ob, l, pos, ValueRange{at});
                             });
  int64_t rank = xs.size();
  Value y = mapGeneric(im, xs, et, {indices}, {{d(ax)}}, [&](OpBuilder &ob, Location l, ValueRange v) -> Value {
    SmallVector<Value> at;
    for (int64_t i = 0; i < rank; ++i)
      at.push_back(linalg::IndexOp::create(ob, l, i));
    at[ax] = arith::IndexCastOp::create(ob, l, ob.getIndexType(), v[0]);
    return tensor::ExtractOp::create(ob, l, x, at);
  });
  im.setDynamicOutput(0, y, uniques, {ax});
  im.setDynamicOutput(1, indices, uniques, {0});
  im.setOutput(2, inverse);
  im.setDynamicOutput(3, counts, uniques, {0});
  return success();
}

/// NonMaxSuppression. Greedy selection in score order is the fixpoint of
/// "a valid box is kept unless a kept box of higher priority overlaps it
/// beyond the IoU threshold"; iterating that from "every valid box" settles
/// one more box per round, so N rounds (one generic each) are exact. The
/// first max_output_boxes_per_class kept boxes of each (batch, class) are
/// then written in that order: [B*C*N, 3] bound, the count data-dependent.
static LogicalResult handleNonMaxSuppression(Importer &im) {
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

//===----------------------------------------------------------------------===//
// RNN, LSTM, GRU
//===----------------------------------------------------------------------===//

namespace {
using ActFn = std::function<Value(OpBuilder &, Location, Value)>;

/// What the three recurrent ops share: the gate count and default
/// activations differ.
struct RecurrentSpec {
  int64_t gates;
  SmallVector<StringRef, 3> defaultActs;
};
} // namespace

/// The activation `name` (ONNX's RNN activation names) with its alpha and
/// beta where given.
static FailureOr<ActFn> recurrentActivation(Importer &im, StringRef name,
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

/// RNN, LSTM and GRU, unrolled over the static sequence length: per step and
/// direction one contraction with R and elementwise gate maps that read the
/// precomputed input projection X*W^T + biases through affine maps.
static LogicalResult handleRecurrent(Importer &im, const RecurrentSpec &spec) {
  if (failed(requireInputs(im, 3)))
    return failure();
  StringRef op = im.node->op_type();
  if (im.opset < 7)
    return im.fail(op + " before opset 7 is not supported");
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

//===----------------------------------------------------------------------===//
// Det
//===----------------------------------------------------------------------===//

/// Det: Gaussian elimination with partial pivoting, unrolled on scalars in
/// the body of one generic over the batch dimensions (O(n^3) operations per
/// matrix, so only small matrices are accepted).
static LogicalResult handleDet(Importer &im) {
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
// TensorScatter
//===----------------------------------------------------------------------===//

/// TensorScatter in gather form: present[..., p, ...] is
/// update[..., s, ...] with s = p - write_indices[batch] (mod the cache
/// length in circular mode) when 0 <= s < sequence_length, else past.
static LogicalResult handleTensorScatter(Importer &im) {
  if (failed(requireInputs(im, 2)))
    return failure();
  Value past = im.input(0), update = im.input(1);
  ArrayRef<int64_t> ps = im.shapeOf(past), us = im.shapeOf(update);
  int64_t rank = ps.size();
  auto axis = im.normalizeAxis(im.attrInt("axis", -2), rank);
  if (failed(axis))
    return failure();
  int64_t ax = *axis;
  if (ax == 0)
    return im.fail("axis must not be the batch dimension (0)");
  std::string mode = im.attrString("mode", "linear");
  if (mode != "linear" && mode != "circular")
    return im.fail("unknown mode '" + mode + "'");
  if ((int64_t)us.size() != rank || im.elementType(update) != im.elementType(past))
    return im.fail("update must have past_cache's rank and element type");
  for (int64_t i = 0; i < rank; ++i)
    if (i == ax ? us[i] > ps[i] : us[i] != ps[i])
      return im.fail("update " + shapeStr(us) + " does not fit past_cache " + shapeStr(ps) +
                     " along axis " + Twine(ax));
  Value wi = im.hasInput(2) ? im.input(2) : Value();
  if (wi && (im.shapeOf(wi) != ArrayRef<int64_t>{ps[0]} || !isa<IntegerType>(im.elementType(wi))))
    return im.fail("write_indices must be an integer tensor of shape [" + Twine(ps[0]) + "]");
  int64_t maxLen = ps[ax], seqLen = us[ax];
  if (seqLen == 0) {
    im.setOutput(0, past);
    return success();
  }
  bool circular = mode == "circular";
  SmallVector<SmallVector<AffineExpr>> exprs = {
      llvm::to_vector(AffineMap::getMultiDimIdentityMap(rank, &im.ctx).getResults())};
  SmallVector<Value> ins = {past};
  if (wi) {
    ins.push_back(wi);
    exprs.push_back({getAffineDimExpr(0, &im.ctx)});
  }
  Value r = mapGeneric(im, ps, im.elementType(past), ins, exprs,
                       [&](OpBuilder &ob, Location l, ValueRange v) -> Value {
                         auto idx = [&](int64_t i) -> Value { return arith::ConstantIndexOp::create(ob, l, i); };
                         SmallVector<Value> at;
                         for (int64_t i = 0; i < rank; ++i)
                           at.push_back(linalg::IndexOp::create(ob, l, i));
                         Value s = at[ax];
                         if (wi)
                           s = arith::SubIOp::create(
                               ob, l, s,
                               arith::IndexCastOp::create(ob, l, ob.getIndexType(), v[1]));
                         if (circular) {
                           // Floor modulo: write indices may exceed the cache.
                           Value m = arith::RemSIOp::create(ob, l, s, idx(maxLen));
                           Value neg = arith::CmpIOp::create(ob, l, arith::CmpIPredicate::slt, m, idx(0));
                           s = arith::SelectOp::create(ob, l, neg,
                                                       arith::AddIOp::create(ob, l, m, idx(maxLen)), m);
                         }
                         Value inside = arith::AndIOp::create(
                             ob, l, arith::CmpIOp::create(ob, l, arith::CmpIPredicate::sge, s, idx(0)),
                             arith::CmpIOp::create(ob, l, arith::CmpIPredicate::slt, s, idx(seqLen)));
                         at[ax] = arith::MinSIOp::create(
                             ob, l, arith::MaxSIOp::create(ob, l, s, idx(0)), idx(seqLen - 1));
                         Value u = tensor::ExtractOp::create(ob, l, update, at);
                         return arith::SelectOp::create(ob, l, inside, u, v[0]);
                       });
  im.setOutput(0, r);
  return success();
}

//===----------------------------------------------------------------------===//
// TfIdfVectorizer
//===----------------------------------------------------------------------===//

/// TfIdfVectorizer over integer tokens. The n-gram pool is static: one
/// generic counts, per row and pool n-gram, its occurrences over every skip
/// distance and start position (tokens read from constant tables); a
/// contraction with a constant one-hot matrix sums the counts per output
/// index, then the weighting.
static LogicalResult handleTfIdfVectorizer(Importer &im) {
  if (failed(requireInputs(im, 1)))
    return failure();
  if (im.attr("pool_strings"))
    return im.fail("string n-gram pools are not supported (pool_strings)");
  Value x = im.input(0);
  ArrayRef<int64_t> xs = im.shapeOf(x);
  auto xt = dyn_cast<IntegerType>(im.elementType(x));
  if (!xt || xt.getWidth() < 32)
    return im.fail("X must be int32 or int64");
  if (xs.empty() || xs.size() > 2)
    return im.fail("X must be [C] or [N, C], got " + shapeStr(xs));
  std::string mode = im.attrString("mode", "");
  if (mode != "TF" && mode != "IDF" && mode != "TFIDF")
    return im.fail("mode must be TF, IDF or TFIDF, got '" + mode + "'");
  int64_t minN = im.attrInt("min_gram_length", 0), maxN = im.attrInt("max_gram_length", 0),
          maxSkip = im.attrInt("max_skip_count", 0);
  if (minN < 1 || maxN < minN || maxSkip < 0)
    return im.fail("need 1 <= min_gram_length <= max_gram_length and max_skip_count >= 0");
  SmallVector<int64_t> counts = im.attrInts("ngram_counts").value_or(SmallVector<int64_t>{});
  SmallVector<int64_t> indexes = im.attrInts("ngram_indexes").value_or(SmallVector<int64_t>{});
  SmallVector<int64_t> pool = im.attrInts("pool_int64s").value_or(SmallVector<int64_t>{});
  SmallVector<float> weights;
  if (const auto *a = im.attr("weights"))
    weights.assign(a->floats().begin(), a->floats().end());
  if (indexes.empty())
    return im.fail("ngram_indexes is empty");
  int64_t outSize = *llvm::max_element(indexes) + 1;
  if (llvm::any_of(indexes, [](int64_t i) { return i < 0; }))
    return im.fail("ngram_indexes must be non-negative");
  if (!weights.empty() && (int64_t)weights.size() < outSize)
    return im.fail("weights has fewer entries than the output");

  // The pool: counts[n-1] is where the n-grams start. A repeated n-gram
  // counts towards its last index, like the reference's trie.
  std::map<std::vector<int64_t>, int64_t> grams; // tokens -> output index
  int64_t gramId = 0;
  for (size_t i = 0; i < counts.size(); ++i) {
    int64_t n = i + 1, start = counts[i];
    int64_t end = i + 1 < counts.size() ? counts[i + 1] : (int64_t)pool.size();
    if (start < 0 || end < start || end > (int64_t)pool.size() || (end - start) % n)
      return im.fail("ngram_counts does not partition pool_int64s into n-grams");
    for (int64_t p = start; p < end; p += n, ++gramId) {
      if (n < minN || n > maxN)
        continue;
      if (gramId >= (int64_t)indexes.size())
        return im.fail("ngram_indexes has fewer entries than the pool has n-grams");
      grams[std::vector<int64_t>(pool.begin() + p, pool.begin() + p + n)] = indexes[gramId];
    }
  }
  int64_t rows = xs.size() == 2 ? xs[0] : 1, C = xs.back();
  Value xr = im.reshape(x, {rows, C});
  Type f32 = im.b.getF32Type(), i64 = im.b.getI64Type();
  int64_t G = std::max<int64_t>(grams.size(), 1), width = maxN;
  std::vector<int64_t> tok(G * width, 0), len(G, 0);
  std::vector<float> onehot(G * outSize, 0.0f);
  int64_t g = 0;
  for (const auto &[tokens, out] : grams) {
    for (size_t j = 0; j < tokens.size(); ++j)
      tok[g * width + j] = tokens[j];
    len[g] = tokens.size();
    onehot[g * outSize + out] = 1.0f;
    ++g;
  }
  auto constant = [&](ArrayRef<int64_t> shape, auto values, Type et) -> Value {
    auto type = RankedTensorType::get(shape, et);
    return arith::ConstantOp::create(im.b, im.loc, DenseElementsAttr::get(type, values));
  };
  Value tokT = constant({G, width}, ArrayRef<int64_t>(tok), i64);
  Value lenT = constant({G}, ArrayRef<int64_t>(len), i64);
  Value oneHot = constant({G, outSize}, ArrayRef<float>(onehot), f32);

  // counts[r, g] = sum over skip s and start i of [n-gram g at i, stride s+1].
  // The skip and start loops take their ranges from two zero-filled operands.
  MLIRContext *ctx = &im.ctx;
  auto d = [&](int64_t i) { return getAffineDimExpr(i, ctx); };
  Value skips = im.fill({maxSkip + 1}, cast<TypedAttr>(im.b.getZeroAttr(f32)));
  Value starts = im.fill({C}, cast<TypedAttr>(im.b.getZeroAttr(f32)));
  Value gramCounts = contract(
      im, {lenT, skips, starts}, {{d(1)}, {d(2)}, {d(3)}}, 4, {d(0), d(1)}, {rows, G}, f32,
      [&](OpBuilder &ob, Location l, ValueRange v) -> Value {
        Value r = linalg::IndexOp::create(ob, l, 0), gi = linalg::IndexOp::create(ob, l, 1);
        Value sk = linalg::IndexOp::create(ob, l, 2), i = linalg::IndexOp::create(ob, l, 3);
        auto idx = [&](int64_t c) -> Value { return arith::ConstantIndexOp::create(ob, l, c); };
        auto i64c = [&](int64_t c) -> Value { return arith::ConstantOp::create(ob, l, ob.getI64IntegerAttr(c)); };
        Value n = v[0];
        Value stride = arith::AddIOp::create(ob, l, sk, idx(1));
        // Unigrams do not depend on the skip: count them once.
        Value ok = arith::OrIOp::create(
            ob, l, arith::CmpIOp::create(ob, l, arith::CmpIPredicate::sgt, n, i64c(1)),
            arith::CmpIOp::create(ob, l, arith::CmpIPredicate::eq, sk, idx(0)));
        if (grams.empty())
          ok = arith::ConstantOp::create(ob, l, ob.getBoolAttr(false));
        for (int64_t j = 0; j < width; ++j) {
          Value pos = arith::AddIOp::create(ob, l, i,
                                            arith::MulIOp::create(ob, l, stride, idx(j)));
          Value inRow = arith::CmpIOp::create(ob, l, arith::CmpIPredicate::slt, pos, idx(C));
          Value at = arith::MinSIOp::create(ob, l, pos, idx(C - 1));
          Value xv = extendTo(ob, l, tensor::ExtractOp::create(ob, l, xr, ValueRange{r, at}), i64,
                              false);
          Value t = tensor::ExtractOp::create(ob, l, tokT, ValueRange{gi, idx(j)});
          Value match = arith::AndIOp::create(
              ob, l, inRow, arith::CmpIOp::create(ob, l, arith::CmpIPredicate::eq, xv, t));
          Value past = arith::CmpIOp::create(ob, l, arith::CmpIPredicate::sle, n, i64c(j));
          ok = arith::AndIOp::create(ob, l, ok, arith::OrIOp::create(ob, l, past, match));
        }
        return arith::UIToFPOp::create(ob, l, f32, ok);
      });
  Value freq = contract(im, {gramCounts, oneHot}, {{d(0), d(2)}, {d(2), d(1)}}, 3, {d(0), d(1)},
                        {rows, outSize}, f32,
                        [](OpBuilder &ob, Location l, ValueRange v) -> Value {
                          return arith::MulFOp::create(ob, l, v[0], v[1]);
                        });
  Value y = freq;
  if (mode != "TF") {
    std::vector<float> w(outSize, 1.0f);
    for (int64_t o = 0; o < outSize && !weights.empty(); ++o)
      w[o] = weights[o];
    Value wT = constant({outSize}, ArrayRef<float>(w), f32);
    bool idf = mode == "IDF";
    y = mapGeneric(im, {rows, outSize}, f32, {freq, wT}, {{d(0), d(1)}, {d(1)}},
                   [&](OpBuilder &ob, Location l, ValueRange v) -> Value {
                     if (!idf)
                       return arith::MulFOp::create(ob, l, v[0], v[1]);
                     Value zero = im.constantScalar(ob, l, f32, 0);
                     Value seen = arith::CmpFOp::create(ob, l, arith::CmpFPredicate::OGT, v[0], zero);
                     return arith::SelectOp::create(ob, l, seen, v[1], zero);
                   });
  }
  im.setOutput(0, xs.size() == 2 ? y : im.reshape(y, {outSize}));
  return success();
}

//===----------------------------------------------------------------------===//
// ai.onnx.ml TreeEnsemble
//===----------------------------------------------------------------------===//

/// The values of tensor attribute `name` as doubles (empty if absent).
static FailureOr<std::vector<double>> tensorAttrValues(Importer &im, StringRef name) {
  const auto *a = im.attr(name);
  if (!a)
    return std::vector<double>{};
  auto attr = im.tensorToAttr(a->t());
  if (failed(attr))
    return failure();
  auto h = HostTensor::fromAttr(*attr);
  if (!h)
    return im.fail("attribute '" + name + "' has an unsupported element type");
  std::vector<double> v;
  for (int64_t i = 0, n = h->numel(); i < n; ++i)
    v.push_back(h->get(i));
  return v;
}

/// TreeEnsemble with static trees: in one generic over [N, n_targets], each
/// tree's reached leaf is a select chain over its (all evaluated) split
/// comparisons, and the leaves whose target is the column aggregate.
static LogicalResult handleTreeEnsemble(Importer &im) {
  if (failed(requireInputs(im, 1)))
    return failure();
  Value x = im.input(0);
  ArrayRef<int64_t> xs = im.shapeOf(x);
  Type et = im.elementType(x);
  if (!isFloat(et) || xs.size() != 2)
    return im.fail("X must be a 2-D floating-point tensor");
  if (int64_t pt = im.attrInt("post_transform", 0); pt != 0)
    return im.fail("post_transform " + Twine(pt) + " is not supported (only NONE)");
  int64_t agg = im.attrInt("aggregate_function", 1);
  if (agg < 0 || agg > 3)
    return im.fail("unknown aggregate_function " + Twine(agg));
  int64_t nTargets = im.attrInt("n_targets", 0);
  if (nTargets <= 0)
    return im.fail("n_targets must be positive");
  auto splits = tensorAttrValues(im, "nodes_splits");
  auto modes = tensorAttrValues(im, "nodes_modes");
  auto leafWeights = tensorAttrValues(im, "leaf_weights");
  auto members = tensorAttrValues(im, "membership_values");
  if (failed(splits) || failed(modes) || failed(leafWeights) || failed(members))
    return failure();
  auto ints = [&](StringRef name) { return im.attrInts(name).value_or(SmallVector<int64_t>{}); };
  SmallVector<int64_t> features = ints("nodes_featureids"), trueIds = ints("nodes_truenodeids"),
                       falseIds = ints("nodes_falsenodeids"), trueLeaf = ints("nodes_trueleafs"),
                       falseLeaf = ints("nodes_falseleafs"), leafTargets = ints("leaf_targetids"),
                       roots = ints("tree_roots"),
                       missingTrue = ints("nodes_missing_value_tracks_true");
  size_t nNodes = modes->size(), nLeaves = leafWeights->size();
  for (size_t sz : {splits->size(), features.size(), trueIds.size(), falseIds.size(),
                    trueLeaf.size(), falseLeaf.size()})
    if (sz != nNodes)
      return im.fail("the nodes_* attributes have different lengths");
  if (!missingTrue.empty() && missingTrue.size() != nNodes)
    return im.fail("nodes_missing_value_tracks_true has the wrong length");
  if (leafTargets.size() != nLeaves || roots.empty())
    return im.fail("leaf_targetids/leaf_weights/tree_roots are inconsistent");
  for (size_t i = 0; i < nNodes; ++i) {
    int64_t m = (*modes)[i];
    if (m < 0 || m > 6 || features[i] < 0 || features[i] >= xs[1])
      return im.fail(llvm::formatv("node {0} has mode {1} and feature {2} (X has {3} features)",
                                   i, m, features[i], xs[1])
                         .str());
    for (auto [id, leaf] : {std::pair(trueIds[i], trueLeaf[i]), std::pair(falseIds[i], falseLeaf[i])})
      if (id < 0 || id >= (int64_t)(leaf ? nLeaves : nNodes))
        return im.fail("node " + Twine(i) + " has an out-of-range child");
  }
  for (int64_t t : leafTargets)
    if (t < 0 || t >= nTargets)
      return im.fail("leaf target " + Twine(t) + " is not below n_targets");
  // Set members per BRANCH_MEMBER node, in node order, separated by NaNs.
  std::vector<std::vector<double>> sets(nNodes);
  {
    size_t pos = 0;
    for (size_t i = 0; i < nNodes; ++i) {
      if ((*modes)[i] != 6)
        continue;
      while (pos < members->size() && !std::isnan((*members)[pos]))
        sets[i].push_back((*members)[pos++]);
      if (pos >= members->size())
        return im.fail("membership_values has too few NaN-terminated sets");
      ++pos;
    }
  }
  for (size_t i = 0; i < roots.size(); ++i)
    if (roots[i] < 0 || roots[i] >= (int64_t)nNodes)
      return im.fail("tree root " + Twine(roots[i]) + " is out of range");

  Type f64 = im.b.getF64Type(), i64 = im.b.getI64Type();
  int64_t nTrees = roots.size();
  LogicalResult status = success();
  Value y = mapGeneric(im, {xs[0], nTargets}, et, {}, {}, [&](OpBuilder &ob, Location l, ValueRange) -> Value {
    Value row = linalg::IndexOp::create(ob, l, 0), col = linalg::IndexOp::create(ob, l, 1);
    Value colI = arith::IndexCastOp::create(ob, l, i64, col);
    auto f = [&](double v) { return im.constantScalar(ob, l, f64, v); };
    auto i = [&](int64_t v) { return im.constantScalar(ob, l, i64, v); };
    std::map<int64_t, std::pair<Value, Value>> memo;
    // (weight, target) of the leaf node `n` leads to; `depth` guards cycles.
    std::function<std::pair<Value, Value>(int64_t, int64_t)> visit =
        [&](int64_t n, int64_t depth) -> std::pair<Value, Value> {
      if (auto it = memo.find(n); it != memo.end())
        return it->second;
      if (depth > (int64_t)nNodes) {
        status = im.fail("the trees have a cycle");
        return {f(0), i(0)};
      }
      auto child = [&](int64_t id, bool leaf) {
        return leaf ? std::pair<Value, Value>(f((*leafWeights)[id]), i(leafTargets[id]))
                    : visit(id, depth + 1);
      };
      Value xv = tensor::ExtractOp::create(
          ob, l, x, ValueRange{row, arith::ConstantIndexOp::create(ob, l, features[n])});
      if (et != f64)
        xv = arith::ExtFOp::create(ob, l, f64, xv);
      double sp = (*splits)[n];
      Value cond;
      switch ((int64_t)(*modes)[n]) {
      case 0: cond = arith::CmpFOp::create(ob, l, arith::CmpFPredicate::OLE, xv, f(sp)); break;
      case 1: cond = arith::CmpFOp::create(ob, l, arith::CmpFPredicate::OLT, xv, f(sp)); break;
      case 2: cond = arith::CmpFOp::create(ob, l, arith::CmpFPredicate::OGE, xv, f(sp)); break;
      case 3: cond = arith::CmpFOp::create(ob, l, arith::CmpFPredicate::OGT, xv, f(sp)); break;
      case 4: cond = arith::CmpFOp::create(ob, l, arith::CmpFPredicate::OEQ, xv, f(sp)); break;
      case 5: cond = arith::CmpFOp::create(ob, l, arith::CmpFPredicate::ONE, xv, f(sp)); break;
      default:
        cond = arith::ConstantOp::create(ob, l, ob.getBoolAttr(false));
        for (double m : sets[n])
          cond = arith::OrIOp::create(
              ob, l, cond, arith::CmpFOp::create(ob, l, arith::CmpFPredicate::OEQ, xv, f(m)));
      }
      if (!missingTrue.empty() && missingTrue[n])
        cond = arith::OrIOp::create(
            ob, l, cond, arith::CmpFOp::create(ob, l, arith::CmpFPredicate::UNO, xv, xv));
      auto t = child(trueIds[n], trueLeaf[n]);
      auto e = child(falseIds[n], falseLeaf[n]);
      std::pair<Value, Value> r = {arith::SelectOp::create(ob, l, cond, t.first, e.first),
                                   arith::SelectOp::create(ob, l, cond, t.second, e.second)};
      memo[n] = r;
      return r;
    };
    auto ft = cast<FloatType>(et);
    double init = agg == 2 ? APFloat::getLargest(ft.getFloatSemantics()).convertToDouble()
                  : agg == 3 ? APFloat::getLargest(ft.getFloatSemantics(), true).convertToDouble()
                             : 0.0;
    Value acc = im.constantScalar(ob, l, et, init);
    for (int64_t root : roots) {
      memo.clear();
      // A root whose both branches are the same leaf is that leaf.
      std::pair<Value, Value> leaf =
          trueLeaf[root] && falseLeaf[root] && trueIds[root] == falseIds[root]
              ? std::pair<Value, Value>(f((*leafWeights)[trueIds[root]]), i(leafTargets[trueIds[root]]))
              : visit(root, 0);
      Value w = leaf.first;
      if (et != f64)
        w = arith::TruncFOp::create(ob, l, et, w);
      if (agg == 0)
        w = arith::DivFOp::create(ob, l, w, im.constantScalar(ob, l, et, nTrees));
      Value hit = arith::CmpIOp::create(ob, l, arith::CmpIPredicate::eq, leaf.second, colI);
      Value next = agg == 2   ? (Value)arith::MinimumFOp::create(ob, l, acc, w)
                   : agg == 3 ? (Value)arith::MaximumFOp::create(ob, l, acc, w)
                              : (Value)arith::AddFOp::create(ob, l, acc, w);
      acc = arith::SelectOp::create(ob, l, hit, next, acc);
    }
    return acc;
  });
  if (failed(status))
    return failure();
  im.setOutput(0, y);
  return success();
}

//===----------------------------------------------------------------------===//
// ai.onnx.preview.training optimizers
//===----------------------------------------------------------------------===//

/// Runs `step` for each of the node's `n` optimized tensors: inputs are
/// R, T, then `groups` runs of n tensors (X..., G..., ...); `step` gets
/// (r, t as f32, elements of each group) and returns one value per output
/// group; outputs are likewise grouped.
static LogicalResult optimizer(Importer &im, unsigned groups, unsigned outGroups,
                               function_ref<SmallVector<Value>(OpBuilder &, Location, Value,
                                                               Value, ValueRange)>
                                   step) {
  int inputs = im.node->input_size();
  if (inputs < 2 || (inputs - 2) % groups)
    return im.fail(llvm::formatv("expects R, T and {0} groups of tensors, got {1} inputs", groups,
                                 inputs)
                       .str());
  unsigned n = (inputs - 2) / groups;
  if (failed(requireInputs(im, inputs)))
    return failure();
  if (im.numOutputs() > n * outGroups)
    return im.fail("more outputs than optimized tensors");
  Value r = im.input(0), t = im.input(1);
  if (im.shapeOf(r).size() > 1 || im.shapeOf(t).size() > 1 || !isFloat(im.elementType(r)) ||
      isFloat(im.elementType(t)))
    return im.fail("R must be a float scalar and T an integer scalar");
  for (unsigned i = 0; i < n; ++i) {
    SmallVector<Value> ins = {r, t};
    for (unsigned g = 0; g < groups; ++g)
      ins.push_back(im.input(2 + g * n + i));
    Type et = im.elementType(ins[2]);
    if (!isFloat(et))
      return im.fail("optimized tensors must be floating point");
    for (unsigned o = 0; o < outGroups; ++o) {
      if (!im.wantsOutput(o * n + i))
        continue;
      auto v = im.elementwise(ins, et, [&](OpBuilder &ob, Location l, ValueRange a) -> Value {
        Value rv = a[0];
        if (rv.getType() != et)
          rv = isFloat(et) && et.getIntOrFloatBitWidth() > rv.getType().getIntOrFloatBitWidth()
                   ? (Value)arith::ExtFOp::create(ob, l, et, rv)
                   : (Value)arith::TruncFOp::create(ob, l, et, rv);
        Value tv = arith::SIToFPOp::create(ob, l, et, a[1]);
        return step(ob, l, rv, tv, a.drop_front(2))[o];
      });
      if (failed(v))
        return failure();
      if (im.shapeOf(*v) != im.shapeOf(ins[2]))
        return im.fail("optimizer inputs of one tensor have different shapes");
      im.setOutput(o * n + i, *v);
    }
  }
  return success();
}

static LogicalResult handleAdagrad(Importer &im) {
  double decay = im.attrFloat("decay_factor", 0), eps = im.attrFloat("epsilon", 0),
         norm = im.attrFloat("norm_coefficient", 0);
  return optimizer(im, 3, 2, [&](OpBuilder &ob, Location l, Value r, Value t, ValueRange v) {
    Type et = v[0].getType();
    auto c = [&](double x) { return im.constantScalar(ob, l, et, x); };
    Value x = v[0], g = v[1], h = v[2];
    // r / (1 + t * decay)
    Value rr = arith::DivFOp::create(
        ob, l, r, arith::AddFOp::create(ob, l, c(1), arith::MulFOp::create(ob, l, t, c(decay))));
    Value gr = arith::AddFOp::create(ob, l, arith::MulFOp::create(ob, l, c(norm), x), g);
    Value hn = arith::AddFOp::create(ob, l, h, arith::MulFOp::create(ob, l, gr, gr));
    Value hs = arith::AddFOp::create(ob, l, math::SqrtOp::create(ob, l, hn), c(eps));
    Value xn = arith::SubFOp::create(
        ob, l, x, arith::DivFOp::create(ob, l, arith::MulFOp::create(ob, l, rr, gr), hs));
    return SmallVector<Value>{xn, hn};
  });
}

static LogicalResult handleAdam(Importer &im) {
  double alpha = im.attrFloat("alpha", 0.9f), beta = im.attrFloat("beta", 0.999f),
         eps = im.attrFloat("epsilon", 0), norm = im.attrFloat("norm_coefficient", 0),
         post = im.attrFloat("norm_coefficient_post", 0);
  return optimizer(im, 4, 3, [&](OpBuilder &ob, Location l, Value r, Value t, ValueRange v) {
    Type et = v[0].getType();
    auto c = [&](double x) { return im.constantScalar(ob, l, et, x); };
    Value x = v[0], g = v[1], mv = v[2], h = v[3];
    Value gr = arith::AddFOp::create(ob, l, arith::MulFOp::create(ob, l, c(norm), x), g);
    Value vn = arith::AddFOp::create(ob, l, arith::MulFOp::create(ob, l, c(alpha), mv),
                                     arith::MulFOp::create(ob, l, c(1 - alpha), gr));
    Value hn = arith::AddFOp::create(
        ob, l, arith::MulFOp::create(ob, l, c(beta), h),
        arith::MulFOp::create(ob, l, c(1 - beta), arith::MulFOp::create(ob, l, gr, gr)));
    Value hs = arith::AddFOp::create(ob, l, math::SqrtOp::create(ob, l, hn), c(eps));
    // Bias correction from the second step on (t > 0).
    Value corr = arith::DivFOp::create(
        ob, l,
        math::SqrtOp::create(
            ob, l, arith::SubFOp::create(ob, l, c(1), math::PowFOp::create(ob, l, c(beta), t))),
        arith::SubFOp::create(ob, l, c(1), math::PowFOp::create(ob, l, c(alpha), t)));
    Value pos = arith::CmpFOp::create(ob, l, arith::CmpFPredicate::OGT, t, c(0));
    Value ra = arith::SelectOp::create(ob, l, pos, arith::MulFOp::create(ob, l, r, corr), r);
    Value xn = arith::SubFOp::create(
        ob, l, x, arith::MulFOp::create(ob, l, ra, arith::DivFOp::create(ob, l, vn, hs)));
    Value xf = arith::MulFOp::create(ob, l, c(1 - post), xn);
    return SmallVector<Value>{xf, vn, hn};
  });
}

static LogicalResult handleMomentum(Importer &im) {
  for (StringRef a : {"alpha", "beta", "mode", "norm_coefficient"})
    if (!im.attr(a))
      return im.fail("required attribute '" + a + "' is missing");
  double alpha = im.attrFloat("alpha", 0), beta = im.attrFloat("beta", 0),
         norm = im.attrFloat("norm_coefficient", 0);
  std::string mode = im.attrString("mode", "standard");
  if (mode != "standard" && mode != "nesterov")
    return im.fail("unknown mode '" + mode + "'");
  bool nesterov = mode == "nesterov";
  return optimizer(im, 3, 2, [&](OpBuilder &ob, Location l, Value r, Value t, ValueRange v) {
    Type et = v[0].getType();
    auto c = [&](double x) { return im.constantScalar(ob, l, et, x); };
    Value x = v[0], g = v[1], mv = v[2];
    Value gr = arith::AddFOp::create(ob, l, arith::MulFOp::create(ob, l, c(norm), x), g);
    // The gradient's coefficient is 1 on the first step (t == 0).
    Value pos = arith::CmpFOp::create(ob, l, arith::CmpFPredicate::OGT, t, c(0));
    Value ba = arith::SelectOp::create(ob, l, pos, c(beta), c(1));
    Value vn = arith::AddFOp::create(ob, l, arith::MulFOp::create(ob, l, c(alpha), mv),
                                     arith::MulFOp::create(ob, l, ba, gr));
    Value step = nesterov ? (Value)arith::AddFOp::create(
                                ob, l, gr, arith::MulFOp::create(ob, l, c(alpha), vn))
                          : vn;
    Value xn = arith::SubFOp::create(ob, l, x, arith::MulFOp::create(ob, l, r, step));
    return SmallVector<Value>{xn, vn};
  });
}

//===----------------------------------------------------------------------===//
// ai.onnx.ml Binarizer and ArrayFeatureExtractor
//===----------------------------------------------------------------------===//

static LogicalResult handleBinarizer(Importer &im) {
  Value x = im.input(0);
  Type et = im.elementType(x);
  if (!isa<FloatType>(et))
    return im.fail("Binarizer supports floating-point inputs only");
  double threshold = im.attrFloat("threshold", 0.0f);
  auto y = im.elementwise({x}, et, [&](OpBuilder &ob, Location l, ValueRange v) -> Value {
    Value gt = arith::CmpFOp::create(ob, l, arith::CmpFPredicate::OGT, v[0],
                                     im.constantScalar(ob, l, et, threshold));
    return arith::SelectOp::create(ob, l, gt, im.constantScalar(ob, l, et, 1.0),
                                   im.constantScalar(ob, l, et, 0.0));
  });
  if (failed(y))
    return failure();
  im.setOutput(0, *y);
  return success();
}

/// Y = X[..., indices] with the indices flattened; a 1-D X gives [1, n], as
/// onnxruntime and ONNX's reference shape it.
static LogicalResult handleArrayFeatureExtractor(Importer &im) {
  Value x = im.input(0), idx = im.input(1);
  ArrayRef<int64_t> xs = im.shapeOf(x);
  if (xs.empty())
    return im.fail("ArrayFeatureExtractor needs an input of rank >= 1");
  if (!im.elementType(idx).isInteger(64))
    return im.fail("ArrayFeatureExtractor's indices must be int64");
  int64_t n = 1;
  for (int64_t d : im.shapeOf(idx))
    n *= d;
  idx = im.reshape(idx, {n});
  SmallVector<int64_t> out(xs.begin(), xs.end() - 1);
  if (out.empty())
    out.push_back(1);
  out.push_back(n);
  int64_t last = xs.back(), rank = xs.size();
  MLIRContext *ctx = &im.ctx;
  AffineMap imap = AffineMap::get(out.size(), 0, {getAffineDimExpr(out.size() - 1, ctx)}, ctx);
  Value y = indexedGeneric(im, out, im.elementType(x), [&](OpBuilder &ob, Location l, ValueRange a) {
    // Out-of-range indices are an error in onnxruntime; clamp rather than fault.
    Value i = arith::IndexCastOp::create(ob, l, ob.getIndexType(), a.back());
    i = arith::MaxSIOp::create(ob, l, i, arith::ConstantIndexOp::create(ob, l, 0));
    i = arith::MinSIOp::create(ob, l, i, arith::ConstantIndexOp::create(ob, l, last - 1));
    SmallVector<Value> at;
    if (rank > 1)
      at.append(a.begin(), std::next(a.begin(), rank - 1));
    at.push_back(i);
    return tensor::ExtractOp::create(ob, l, x, at).getResult();
  }, ValueRange{idx}, {imap});
  im.setOutput(0, y);
  return success();
}

void kiln::detail::registerMiscOps(llvm::StringMap<Handler> &t) {
  t["Einsum"] = handleEinsum;
  t["QLinearMatMul"] = handleQLinearMatMul;
  t["ConvInteger"] = handleConvInteger;
  t["QLinearConv"] = handleQLinearConv;
  t["Det"] = handleDet;
  t["TensorScatter"] = handleTensorScatter;
  t["TfIdfVectorizer"] = handleTfIdfVectorizer;
  t["ai.onnx.ml.TreeEnsemble"] = handleTreeEnsemble;
  t["ai.onnx.ml.Binarizer"] = handleBinarizer;
  t["ai.onnx.ml.ArrayFeatureExtractor"] = handleArrayFeatureExtractor;
  t["Compress"] = handleCompress;
  t["NonZero"] = handleNonZero;
  t["Unique"] = handleUnique;
  t["NonMaxSuppression"] = handleNonMaxSuppression;
  t["RNN"] = [](Importer &im) { return handleRecurrent(im, {1, {"Tanh"}}); };
  t["GRU"] = [](Importer &im) { return handleRecurrent(im, {3, {"Sigmoid", "Tanh"}}); };
  t["LSTM"] = [](Importer &im) { return handleRecurrent(im, {4, {"Sigmoid", "Tanh", "Tanh"}}); };
  t["ai.onnx.preview.training.Adagrad"] = handleAdagrad;
  t["ai.onnx.preview.training.Adam"] = handleAdam;
  t["ai.onnx.preview.training.Momentum"] = handleMomentum;
}

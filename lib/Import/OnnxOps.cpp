//===- OnnxOps.cpp - ONNX operator handlers -------------------------------===//
//
// One handler per ONNX op type; opset-dependent semantics live inside the
// handler (e.g. Softmax before/after 13). Everything lowers to linalg.generic
// (or fill) on tensors plus tensor reshapes: the compiler forms kernels from
// these, there is no per-op runtime library.
//
//===----------------------------------------------------------------------===//
#include "Importer.h"

#include "llvm/Support/FormatVariadic.h"

#include <cmath>
#include <numeric>

using namespace mlir;
using namespace kiln::detail;
namespace onnx = kiln::onnx;

using utils::IteratorType;

static std::string shapeStr(ArrayRef<int64_t> s) {
  std::string r = "[";
  for (auto [i, d] : llvm::enumerate(s))
    r += (i ? "," : "") + std::to_string(d);
  return r + "]";
}

static bool isFloat(Type t) { return isa<FloatType>(t); }

//===----------------------------------------------------------------------===//
// Shared builders
//===----------------------------------------------------------------------===//

FailureOr<SmallVector<int64_t>>
Importer::broadcastShapes(ArrayRef<SmallVector<int64_t>> shapes) {
  size_t rank = 0;
  for (const auto &s : shapes)
    rank = std::max(rank, s.size());
  SmallVector<int64_t> out(rank, 1);
  for (const auto &s : shapes)
    for (size_t i = 0; i < s.size(); ++i) {
      int64_t &o = out[rank - s.size() + i];
      if (s[i] == 1 || s[i] == o)
        continue;
      if (o != 1) {
        std::string all;
        for (const auto &t : shapes)
          all += (all.empty() ? "" : " and ") + shapeStr(t);
        return fail("shapes " + all + " cannot be broadcast together");
      }
      o = s[i];
    }
  return out;
}

FailureOr<Value> Importer::elementwise(ValueRange inputs, Type resultElem,
                                       BodyFn body,
                                       std::optional<ArrayRef<int64_t>> extraShape) {
  SmallVector<SmallVector<int64_t>> shapes;
  for (Value v : inputs)
    shapes.push_back(llvm::to_vector(shapeOf(v)));
  if (extraShape)
    shapes.push_back(llvm::to_vector(*extraShape));
  auto out = broadcastShapes(shapes);
  if (failed(out))
    return failure();
  int64_t rank = out->size();
  SmallVector<AffineMap> maps;
  for (Value v : inputs) {
    ArrayRef<int64_t> s = shapeOf(v);
    SmallVector<AffineExpr> exprs;
    for (int64_t i = 0, r = s.size(); i < r; ++i) {
      int64_t od = rank - r + i;
      exprs.push_back(s[i] == 1 && (*out)[od] != 1 ? getAffineConstantExpr(0, &ctx)
                                                   : getAffineDimExpr(od, &ctx));
    }
    maps.push_back(AffineMap::get(rank, 0, exprs, &ctx));
  }
  maps.push_back(AffineMap::getMultiDimIdentityMap(rank, &ctx));
  Value init = tensor::EmptyOp::create(b, loc, *out, resultElem);
  SmallVector<IteratorType> iters(rank, IteratorType::parallel);
  auto op = linalg::GenericOp::create(
      b, loc, TypeRange{init.getType()}, inputs, ValueRange{init}, maps, iters,
      [&](OpBuilder &nb, Location l, ValueRange args) {
        linalg::YieldOp::create(nb, l, body(nb, l, args.drop_back()));
      });
  return op.getResult(0);
}

Value Importer::constantScalar(OpBuilder &ob, Location l, Type type, double value) {
  if (auto ft = dyn_cast<FloatType>(type))
    return arith::ConstantOp::create(ob, l, FloatAttr::get(ft, value));
  return arith::ConstantOp::create(ob, l, IntegerAttr::get(type, (int64_t)value));
}

Value Importer::fill(ArrayRef<int64_t> shape, TypedAttr value) {
  Value init = tensor::EmptyOp::create(b, loc, shape, value.getType());
  Value c = arith::ConstantOp::create(b, loc, value);
  return linalg::FillOp::create(b, loc, ValueRange{c}, ValueRange{init}).getResult(0);
}

Value Importer::reduce(Value in, ArrayRef<int64_t> axes, bool keepDims,
                       TypedAttr init,
                       function_ref<Value(OpBuilder &, Location, Value, Value)> combine) {
  ArrayRef<int64_t> shape = shapeOf(in);
  int64_t rank = shape.size();
  SmallVector<bool> reduced(rank, false);
  for (int64_t a : axes)
    reduced[a] = true;
  SmallVector<int64_t> outShape, keptShape;
  SmallVector<AffineExpr> outExprs;
  SmallVector<IteratorType> iters;
  for (int64_t i = 0; i < rank; ++i) {
    keptShape.push_back(reduced[i] ? 1 : shape[i]);
    if (reduced[i]) {
      iters.push_back(IteratorType::reduction);
      continue;
    }
    outShape.push_back(shape[i]);
    outExprs.push_back(getAffineDimExpr(i, &ctx));
    iters.push_back(IteratorType::parallel);
  }
  Value acc = fill(outShape, init);
  SmallVector<AffineMap> maps = {AffineMap::getMultiDimIdentityMap(rank, &ctx),
                                 AffineMap::get(rank, 0, outExprs, &ctx)};
  auto op = linalg::GenericOp::create(
      b, loc, TypeRange{acc.getType()}, ValueRange{in}, ValueRange{acc}, maps, iters,
      [&](OpBuilder &nb, Location l, ValueRange args) {
        linalg::YieldOp::create(nb, l, combine(nb, l, args[1], args[0]));
      });
  Value r = op.getResult(0);
  return keepDims ? reshape(r, keptShape) : r;
}

Value Importer::reshape(Value v, ArrayRef<int64_t> shape) {
  auto type = cast<RankedTensorType>(v.getType());
  if (type.getShape() == shape)
    return v;
  auto seq = [](int64_t n) {
    ReassociationIndices r;
    for (int64_t i = 0; i < n; ++i)
      r.push_back(i);
    return SmallVector<ReassociationIndices>{r};
  };
  Type elem = type.getElementType();
  // Through a flat 1-D tensor: both steps are views, no data moves.
  Value flat = v;
  auto flatType = RankedTensorType::get({type.getNumElements()}, elem);
  if (type.getRank() == 0)
    flat = tensor::ExpandShapeOp::create(b, loc, flatType, v, ArrayRef<ReassociationIndices>{});
  else if (type.getRank() != 1)
    flat = tensor::CollapseShapeOp::create(b, loc, flatType, v, seq(type.getRank()));
  auto target = RankedTensorType::get(shape, elem);
  if (shape.empty())
    return tensor::CollapseShapeOp::create(b, loc, target, flat,
                                           ArrayRef<ReassociationIndices>{});
  if (shape.size() == 1)
    return flat;
  return tensor::ExpandShapeOp::create(b, loc, target, flat, seq(shape.size()));
}

Value Importer::transpose(Value v, ArrayRef<int64_t> perm) {
  ArrayRef<int64_t> shape = shapeOf(v);
  int64_t rank = shape.size();
  SmallVector<int64_t> outShape;
  SmallVector<AffineExpr> inExprs(rank);
  for (int64_t i = 0; i < rank; ++i) {
    outShape.push_back(shape[perm[i]]);
    inExprs[perm[i]] = getAffineDimExpr(i, &ctx);
  }
  Value init = tensor::EmptyOp::create(b, loc, outShape, elementType(v));
  SmallVector<AffineMap> maps = {AffineMap::get(rank, 0, inExprs, &ctx),
                                 AffineMap::getMultiDimIdentityMap(rank, &ctx)};
  SmallVector<IteratorType> iters(rank, IteratorType::parallel);
  return linalg::GenericOp::create(b, loc, TypeRange{init.getType()}, ValueRange{v},
                                   ValueRange{init}, maps, iters,
                                   [&](OpBuilder &nb, Location l, ValueRange args) {
                                     linalg::YieldOp::create(nb, l, args[0]);
                                   })
      .getResult(0);
}

Value kiln::detail::indexedGeneric(Importer &im, ArrayRef<int64_t> outShape, Type elem,
                                  function_ref<Value(OpBuilder &, Location, ValueRange)> body,
                                  ValueRange ins, ArrayRef<AffineMap> inMaps) {
  MLIRContext *ctx = im.b.getContext();
  int64_t rank = outShape.size();
  Value init = tensor::EmptyOp::create(im.b, im.loc, outShape, elem);
  SmallVector<AffineMap> maps(inMaps.begin(), inMaps.end());
  maps.push_back(AffineMap::getMultiDimIdentityMap(rank, ctx));
  SmallVector<IteratorType> iters(rank, IteratorType::parallel);
  return linalg::GenericOp::create(
             im.b, im.loc, TypeRange{init.getType()}, ins, ValueRange{init}, maps, iters,
             [&](OpBuilder &nb, Location l, ValueRange args) {
               SmallVector<Value> idx;
               for (int64_t i = 0; i < rank; ++i)
                 idx.push_back(linalg::IndexOp::create(nb, l, i));
               SmallVector<Value> all(idx);
               for (Value v : args.drop_back())
                 all.push_back(v);
               linalg::YieldOp::create(nb, l, body(nb, l, all));
             })
      .getResult(0);
}

static Value idxConst(OpBuilder &ob, Location l, int64_t v) {
  return arith::ConstantIndexOp::create(ob, l, v);
}

static Value clampIndex(OpBuilder &ob, Location l, Value i, int64_t lo, int64_t hi) {
  Value r = arith::MaxSIOp::create(ob, l, i, idxConst(ob, l, lo));
  return arith::MinSIOp::create(ob, l, r, idxConst(ob, l, hi));
}

Value Importer::pad(Value v, ArrayRef<int64_t> lo, ArrayRef<int64_t> hi, double padValue) {
  ArrayRef<int64_t> shape = shapeOf(v);
  bool any = false;
  SmallVector<int64_t> outShape;
  for (size_t i = 0; i < shape.size(); ++i) {
    outShape.push_back(shape[i] + lo[i] + hi[i]);
    any |= lo[i] != 0 || hi[i] != 0;
  }
  if (!any)
    return v;
  Type elem = elementType(v);
  SmallVector<int64_t> dims(shape.begin(), shape.end());
  SmallVector<int64_t> lows(lo.begin(), lo.end());
  return indexedGeneric(*this, outShape, elem, [&](OpBuilder &ob, Location l, ValueRange idx) {
    Value inBounds;
    SmallVector<Value> src;
    for (size_t i = 0; i < dims.size(); ++i) {
      Value s = arith::SubIOp::create(ob, l, idx[i], idxConst(ob, l, lows[i]));
      Value ge = arith::CmpIOp::create(ob, l, arith::CmpIPredicate::sge, s, idxConst(ob, l, 0));
      Value lt = arith::CmpIOp::create(ob, l, arith::CmpIPredicate::slt, s,
                                       idxConst(ob, l, dims[i]));
      Value ok = arith::AndIOp::create(ob, l, ge, lt);
      inBounds = inBounds ? arith::AndIOp::create(ob, l, inBounds, ok).getResult() : ok;
      src.push_back(clampIndex(ob, l, s, 0, std::max<int64_t>(dims[i] - 1, 0)));
    }
    Value x = tensor::ExtractOp::create(ob, l, v, src);
    return arith::SelectOp::create(ob, l, inBounds, x, constantScalar(ob, l, elem, padValue))
        .getResult();
  });
}

SliceRange kiln::detail::resolveSlice(int64_t dim, int64_t start, int64_t end, int64_t step) {
  if (start < 0)
    start += dim;
  if (end < 0)
    end += dim;
  if (step > 0) {
    start = std::clamp<int64_t>(start, 0, dim);
    end = std::clamp<int64_t>(end, 0, dim);
    return {start, std::max<int64_t>(0, (end - start + step - 1) / step)};
  }
  start = std::clamp<int64_t>(start, 0, dim - 1);
  end = std::clamp<int64_t>(end, -1, dim - 1);
  return {start, std::max<int64_t>(0, (start - end - step - 1) / -step)};
}

//===----------------------------------------------------------------------===//
// Elementwise
//===----------------------------------------------------------------------===//

static Value zeroOf(OpBuilder &ob, Location l, Type t) {
  return arith::ConstantOp::create(ob, l, ob.getZeroAttr(t));
}

using BinFn = Value (*)(OpBuilder &, Location, Value, Value);

static LogicalResult binary(Importer &im, BinFn fn, bool compare = false) {
  Value a = im.input(0), c = im.input(1);
  Type ea = im.elementType(a), ec = im.elementType(c);
  if (ea != ec)
    return im.fail(llvm::formatv("inputs have different element types ({0} vs {1})",
                                 ea, ec)
                       .str());
  Type resultElem = compare ? im.b.getI1Type() : ea;
  auto r = im.elementwise({a, c}, resultElem,
                          [&](OpBuilder &ob, Location l, ValueRange v) {
                            return fn(ob, l, v[0], v[1]);
                          });
  if (failed(r))
    return failure();
  im.setOutput(0, *r);
  return success();
}

#define ARITH_BINARY(NAME, FOP, IOP)                                              \
  static Value NAME(OpBuilder &ob, Location l, Value a, Value b) {                \
    if (isFloat(a.getType()))                                                     \
      return FOP::create(ob, l, a, b);                                            \
    return IOP::create(ob, l, a, b);                                              \
  }
ARITH_BINARY(addOp, arith::AddFOp, arith::AddIOp)
ARITH_BINARY(subOp, arith::SubFOp, arith::SubIOp)
ARITH_BINARY(mulOp, arith::MulFOp, arith::MulIOp)
ARITH_BINARY(divOp, arith::DivFOp, arith::DivSIOp)
ARITH_BINARY(maxOp, arith::MaximumFOp, arith::MaxSIOp)
ARITH_BINARY(minOp, arith::MinimumFOp, arith::MinSIOp)
ARITH_BINARY(divUOp, arith::DivFOp, arith::DivUIOp)
ARITH_BINARY(maxUOp, arith::MaximumFOp, arith::MaxUIOp)
ARITH_BINARY(minUOp, arith::MinimumFOp, arith::MinUIOp)
#undef ARITH_BINARY

#define ARITH_COMPARE(NAME, FPRED, IPRED)                                         \
  static Value NAME(OpBuilder &ob, Location l, Value a, Value b) {                \
    if (isFloat(a.getType()))                                                     \
      return arith::CmpFOp::create(ob, l, arith::CmpFPredicate::FPRED, a, b);     \
    return arith::CmpIOp::create(ob, l, arith::CmpIPredicate::IPRED, a, b);       \
  }
ARITH_COMPARE(eqOp, OEQ, eq)
ARITH_COMPARE(ltOp, OLT, slt)
ARITH_COMPARE(gtOp, OGT, sgt)
ARITH_COMPARE(leOp, OLE, sle)
ARITH_COMPARE(geOp, OGE, sge)
ARITH_COMPARE(ltUOp, OLT, ult)
ARITH_COMPARE(gtUOp, OGT, ugt)
ARITH_COMPARE(leUOp, OLE, ule)
ARITH_COMPARE(geUOp, OGE, uge)
#undef ARITH_COMPARE

static Value andOp(OpBuilder &ob, Location l, Value a, Value b) {
  return arith::AndIOp::create(ob, l, a, b);
}
static Value orOp(OpBuilder &ob, Location l, Value a, Value b) {
  return arith::OrIOp::create(ob, l, a, b);
}
static Value xorOp(OpBuilder &ob, Location l, Value a, Value b) {
  return arith::XOrIOp::create(ob, l, a, b);
}

static LogicalResult integerPow(Importer &im);

static LogicalResult handlePow(Importer &im) {
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

/// Folds a variadic op (Sum, Max, Min, Mean) pairwise.
static LogicalResult variadic(Importer &im, BinFn fn, bool mean = false) {
  Value acc = im.input(0);
  for (int i = 1; i < im.node->input_size(); ++i) {
    Value next = im.input(i);
    auto r = im.elementwise({acc, next}, im.elementType(acc),
                            [&](OpBuilder &ob, Location l, ValueRange v) {
                              return fn(ob, l, v[0], v[1]);
                            });
    if (failed(r))
      return failure();
    acc = *r;
  }
  if (mean) {
    double n = im.node->input_size();
    auto r = im.elementwise({acc}, im.elementType(acc),
                            [&](OpBuilder &ob, Location l, ValueRange v) -> Value {
                              return arith::DivFOp::create(
                                  ob, l, v[0], im.constantScalar(ob, l, v[0].getType(), n));
                            });
    if (failed(r))
      return failure();
    acc = *r;
  }
  im.setOutput(0, acc);
  return success();
}

static LogicalResult unary(Importer &im, BodyFn fn, bool floatOnly = true) {
  Value x = im.input(0);
  if (floatOnly && !isFloat(im.elementType(x)))
    return im.fail("supported for floating-point inputs only");
  auto r = im.elementwise({x}, im.elementType(x), fn);
  if (failed(r))
    return failure();
  im.setOutput(0, *r);
  return success();
}

template <typename MathOp>
static LogicalResult mathUnary(Importer &im) {
  return unary(im, [](OpBuilder &ob, Location l, ValueRange v) -> Value {
    return MathOp::create(ob, l, v[0]);
  });
}

static Value cst(Importer &im, OpBuilder &ob, Location l, Value like, double v) {
  return im.constantScalar(ob, l, like.getType(), v);
}

static Value sigmoid(Importer &im, OpBuilder &ob, Location l, Value x) {
  Value neg = arith::NegFOp::create(ob, l, x);
  Value e = math::ExpOp::create(ob, l, neg);
  Value d = arith::AddFOp::create(ob, l, cst(im, ob, l, x, 1.0), e);
  return arith::DivFOp::create(ob, l, cst(im, ob, l, x, 1.0), d);
}

static Value geluErf(Importer &im, OpBuilder &ob, Location l, Value x) {
  Value s = arith::MulFOp::create(ob, l, x, cst(im, ob, l, x, M_SQRT1_2));
  Value e = math::ErfOp::create(ob, l, s);
  Value one = arith::AddFOp::create(ob, l, e, cst(im, ob, l, x, 1.0));
  Value hx = arith::MulFOp::create(ob, l, x, cst(im, ob, l, x, 0.5));
  return arith::MulFOp::create(ob, l, hx, one);
}

static Value geluTanh(Importer &im, OpBuilder &ob, Location l, Value x) {
  Value x3 = arith::MulFOp::create(ob, l, x, arith::MulFOp::create(ob, l, x, x));
  Value inner = arith::AddFOp::create(
      ob, l, x, arith::MulFOp::create(ob, l, x3, cst(im, ob, l, x, 0.044715)));
  Value t = math::TanhOp::create(
      ob, l, arith::MulFOp::create(ob, l, inner, cst(im, ob, l, x, std::sqrt(2.0 / M_PI))));
  Value one = arith::AddFOp::create(ob, l, t, cst(im, ob, l, x, 1.0));
  Value hx = arith::MulFOp::create(ob, l, x, cst(im, ob, l, x, 0.5));
  return arith::MulFOp::create(ob, l, hx, one);
}

static LogicalResult handleClip(Importer &im) {
  Value x = im.input(0);
  Type et = im.elementType(x);
  SmallVector<Value> ins = {x};
  bool hasMin = false, hasMax = false;
  double minAttr = -INFINITY, maxAttr = INFINITY;
  if (im.opset < 11) {
    minAttr = im.attrFloat("min", -std::numeric_limits<float>::max());
    maxAttr = im.attrFloat("max", std::numeric_limits<float>::max());
  } else {
    if ((hasMin = im.hasInput(1)))
      ins.push_back(im.input(1));
    if ((hasMax = im.hasInput(2)))
      ins.push_back(im.input(2));
  }
  for (Value v : ArrayRef<Value>(ins).drop_front())
    if (im.shapeOf(v).size() != 0 && cast<RankedTensorType>(v.getType()).getNumElements() != 1)
      return im.fail("Clip min/max must be scalars");
  auto r = im.elementwise(ins, et, [&](OpBuilder &ob, Location l, ValueRange v) -> Value {
    Value y = v[0];
    unsigned next = 1;
    Value lo = hasMin ? v[next++] : Value();
    Value hi = hasMax ? v[next++] : Value();
    if (!lo && im.opset < 11)
      lo = im.constantScalar(ob, l, et, minAttr);
    if (!hi && im.opset < 11)
      hi = im.constantScalar(ob, l, et, maxAttr);
    if (lo)
      y = maxOp(ob, l, y, lo);
    if (hi)
      y = minOp(ob, l, y, hi);
    return y;
  });
  if (failed(r))
    return failure();
  im.setOutput(0, *r);
  return success();
}

static LogicalResult handleWhere(Importer &im) {
  Value c = im.input(0), x = im.input(1), y = im.input(2);
  auto r = im.elementwise({c, x, y}, im.elementType(x),
                          [](OpBuilder &ob, Location l, ValueRange v) -> Value {
                            return arith::SelectOp::create(ob, l, v[0], v[1], v[2]);
                          });
  if (failed(r))
    return failure();
  im.setOutput(0, *r);
  return success();
}

/// `fromU`/`toU`: the source/target integers are unsigned.
static Value castScalar(OpBuilder &ob, Location l, Value v, Type to, bool fromU = false,
                        bool toU = false, bool saturate = true) {
  Type from = v.getType();
  if (from == to)
    return v;
  if (isSmallType(from) || isSmallType(to))
    return castSmallScalar(ob, l, v, to, fromU, saturate);
  bool ff = isFloat(from), tf = isFloat(to);
  if (to.isInteger(1)) {
    if (ff)
      return arith::CmpFOp::create(ob, l, arith::CmpFPredicate::UNE, v, zeroOf(ob, l, from));
    return arith::CmpIOp::create(ob, l, arith::CmpIPredicate::ne, v, zeroOf(ob, l, from));
  }
  if (ff && tf)
    return from.getIntOrFloatBitWidth() < to.getIntOrFloatBitWidth()
               ? (Value)arith::ExtFOp::create(ob, l, to, v)
               : (Value)arith::TruncFOp::create(ob, l, to, v);
  if (ff)
    return toU ? (Value)arith::FPToUIOp::create(ob, l, to, v)
               : (Value)arith::FPToSIOp::create(ob, l, to, v);
  if (tf)
    return from.isInteger(1) || fromU ? (Value)arith::UIToFPOp::create(ob, l, to, v)
                                      : (Value)arith::SIToFPOp::create(ob, l, to, v);
  if (from.getIntOrFloatBitWidth() < to.getIntOrFloatBitWidth())
    return from.isInteger(1) || fromU ? (Value)arith::ExtUIOp::create(ob, l, to, v)
                                      : (Value)arith::ExtSIOp::create(ob, l, to, v);
  return arith::TruncIOp::create(ob, l, to, v);
}

/// Pow with an integer base: the result has the base's type. An integer
/// exponent multiplies exactly (square and multiply over the exponent's bits,
/// wrapping like numpy); a float exponent goes through f64 and truncates,
/// like numpy's power(...).astype(base type).
static LogicalResult integerPow(Importer &im) {
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

/// Applies `fn` elementwise over all inputs of the node (broadcast), with a
/// result of element type `resultElem`.
static LogicalResult mapInputs(Importer &im, Type resultElem, BodyFn fn) {
  SmallVector<Value> ins;
  for (unsigned i = 0; i < (unsigned)im.node->input_size(); ++i)
    ins.push_back(im.input(i));
  auto r = im.elementwise(ins, resultElem, fn);
  if (failed(r))
    return failure();
  im.setOutput(0, *r);
  return success();
}

/// ONNX Mod: with fmod=0 the result takes the divisor's sign (Python's %),
/// with fmod=1 the dividend's (C's fmod); floats require fmod=1.
static LogicalResult handleMod(Importer &im) {
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

/// BitShift (defined on unsigned integers): shifting by the width or more
/// gives 0, as in numpy.
static LogicalResult handleBitShift(Importer &im) {
  std::string dir = im.attrString("direction", "");
  if (dir != "LEFT" && dir != "RIGHT")
    return im.fail("direction must be LEFT or RIGHT, got '" + dir + "'");
  Type et = im.elementType(im.input(0));
  if (isFloat(et) || et != im.elementType(im.input(1)))
    return im.fail("BitShift needs two integer inputs of the same type");
  return mapInputs(im, et, [&](OpBuilder &ob, Location l, ValueRange v) -> Value {
    Value r = dir == "LEFT" ? (Value)arith::ShLIOp::create(ob, l, v[0], v[1])
                            : (Value)arith::ShRUIOp::create(ob, l, v[0], v[1]);
    Value width = arith::ConstantOp::create(
        ob, l, ob.getIntegerAttr(et, et.getIntOrFloatBitWidth()));
    Value big = arith::CmpIOp::create(ob, l, arith::CmpIPredicate::uge, v[1], width);
    return arith::SelectOp::create(ob, l, big, zeroOf(ob, l, et), r);
  });
}

static LogicalResult handlePRelu(Importer &im) {
  Value x = im.input(0), slope = im.input(1);
  Type et = im.elementType(x);
  if (et != im.elementType(slope))
    return im.fail("inputs have different element types");
  // Before opset 7 a 1-D slope the size of dim 1 is per channel, not
  // broadcast from the right (how PyTorch's exporter relied on it).
  ArrayRef<int64_t> xs = im.shapeOf(x), ss = im.shapeOf(slope);
  if (im.opset < 7 && ss.size() == 1 && xs.size() > 2 && ss[0] == xs[1] && ss[0] != 1) {
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

static LogicalResult handleSign(Importer &im) {
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

static LogicalResult handleIsInf(Importer &im) {
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

static LogicalResult handleShrink(Importer &im) {
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

static LogicalResult handleCastLike(Importer &im) {
  Type t = im.inputType(1).getElementType();
  bool fromU = im.isUnsigned(0), toU = im.isUnsigned(1);
  // A constant cast to a run-time value's type (e.g. -inf cast like a mask)
  // stays a constant, so ops that need it at compile time (Pad's
  // constant_value) see it.
  if (auto c = im.constInput(0);
      c && c->getNumElements() <= 4096 && isFloat(t) && !isSmallType(t)) {
    if (auto h = HostTensor::fromAttr(*c); h && !fromU) {
      HostTensor r;
      r.shape = h->shape;
      r.elemType = t;
      for (int64_t i = 0; i < h->numel(); ++i)
        r.floats.push_back(h->get(i));
      im.setConstOutput(0, r.toAttr());
      return success();
    }
  }
  bool saturate = im.attrInt("saturate", 1) != 0;
  std::string roundMode = im.attrString("round_mode", "up");
  if (isa<Float8E8M0FNUType>(t) && roundMode != "up" && roundMode != "down" &&
      roundMode != "nearest")
    return im.fail("round_mode '" + roundMode + "' is not supported");
  Value x = im.input(0);
  auto r = im.elementwise({x}, t, [&](OpBuilder &ob, Location l, ValueRange v) {
    if (isa<Float8E8M0FNUType>(t))
      return castToE8M0(ob, l, v[0], fromU, saturate, roundMode);
    return castScalar(ob, l, v[0], t, fromU, toU, saturate);
  });
  if (failed(r))
    return failure();
  im.setOutput(0, *r);
  return success();
}

static LogicalResult handleCast(Importer &im) {
  int to = im.attrInt("to", 0);
  Type t = onnxElementType(im.ctx, to);
  if (!t)
    return im.fail("cast to " + onnxTypeName(to) + " is not supported");
  bool saturate = im.attrInt("saturate", 1) != 0;
  std::string roundMode = im.attrString("round_mode", "up");
  if (isa<Float8E8M0FNUType>(t) && roundMode != "up" && roundMode != "down" &&
      roundMode != "nearest")
    return im.fail("round_mode '" + roundMode + "' is not supported");
  Value x = im.input(0);
  bool fromU = im.isUnsigned(0), toU = isUnsignedDataType(to);
  auto r = im.elementwise({x}, t, [&](OpBuilder &ob, Location l, ValueRange v) {
    if (isa<Float8E8M0FNUType>(t))
      return castToE8M0(ob, l, v[0], fromU, saturate, roundMode);
    return castScalar(ob, l, v[0], t, fromU, toU, saturate);
  });
  if (failed(r))
    return failure();
  im.setOutput(0, *r);
  return success();
}

//===----------------------------------------------------------------------===//
// Reductions and normalizations
//===----------------------------------------------------------------------===//

/// Axes of a Reduce* node: an attribute before `inputSince`, input 1 after.
static FailureOr<SmallVector<int64_t>> reduceAxes(Importer &im, int64_t rank,
                                                  int64_t inputSince) {
  SmallVector<int64_t> axes;
  if (im.opset >= inputSince) {
    if (im.hasInput(1)) {
      auto c = im.constInts(1, "axes");
      if (failed(c))
        return failure();
      axes = *c;
    }
  } else if (auto a = im.attrInts("axes")) {
    axes = *a;
  }
  if (axes.empty()) {
    if (im.opset >= inputSince && im.attrInt("noop_with_empty_axes", 0))
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

static LogicalResult handleReduce(Importer &im, ReduceKind kind, int64_t inputSince) {
  Value x = im.input(0);
  Type et = im.elementType(x);
  int64_t rank = im.shapeOf(x).size();
  auto axes = reduceAxes(im, rank, inputSince);
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

static LogicalResult handleSoftmax(Importer &im, bool log) {
  Value x = im.input(0);
  Type et = im.elementType(x);
  if (!isFloat(et))
    return im.fail("supported for floating-point inputs only");
  int64_t rank = im.shapeOf(x).size();
  bool legacy = im.opset < 13;
  auto axis = im.normalizeAxis(im.attrInt("axis", legacy ? 1 : -1), rank);
  if (failed(axis))
    return failure();
  // Before opset 13 the input is coerced to 2-D at `axis`: reduce all
  // trailing dimensions together.
  SmallVector<int64_t> axes = {*axis};
  if (legacy)
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

/// (x - mean) * rsqrt(var + eps) over `axes`; also returns mean and 1/stddev.
static FailureOr<std::array<Value, 3>> normalize(Importer &im, Value x,
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

static LogicalResult handleLayerNorm(Importer &im) {
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

/// Reshapes a per-channel vector [C] to [C, 1, ...] so it broadcasts against
/// an N x C x spatial tensor.
static Value channelVector(Importer &im, Value v, int64_t rank) {
  SmallVector<int64_t> shape = {im.shapeOf(v)[0]};
  for (int64_t i = 2; i < rank; ++i)
    shape.push_back(1);
  return im.reshape(v, shape);
}

/// BatchNormalization with training_mode=1 (opset 14+): normalizes with the
/// batch's own mean and population variance (over every axis but 1) and
/// outputs the running statistics blended with `momentum`.
static LogicalResult handleBatchNormTraining(Importer &im) {
  Value x = im.input(0);
  Type et = im.elementType(x);
  int64_t rank = im.shapeOf(x).size(), c = im.shapeOf(x)[1], n = 1;
  SmallVector<int64_t> axes;
  for (int64_t i = 0; i < rank; ++i)
    if (i != 1) {
      axes.push_back(i);
      n *= im.shapeOf(x)[i];
    }
  double eps = im.attrFloat("epsilon", 1e-5f), momentum = im.attrFloat("momentum", 0.9f);
  auto sum = [](OpBuilder &ob, Location l, Value a, Value v) { return addOp(ob, l, a, v); };
  auto zero = FloatAttr::get(et, 0.0);
  auto divN = [&](Value v) {
    return im.elementwise({v}, et, [&](OpBuilder &ob, Location l, ValueRange a) -> Value {
      return arith::DivFOp::create(ob, l, a[0], im.constantScalar(ob, l, et, (double)n));
    });
  };
  auto mean = divN(im.reduce(x, axes, true, zero, sum));
  if (failed(mean))
    return failure();
  auto sq = im.elementwise({x, *mean}, et, [](OpBuilder &ob, Location l, ValueRange v) -> Value {
    Value d = arith::SubFOp::create(ob, l, v[0], v[1]);
    return arith::MulFOp::create(ob, l, d, d);
  });
  if (failed(sq))
    return failure();
  auto var = divN(im.reduce(*sq, axes, true, zero, sum));
  if (failed(var))
    return failure();
  auto y = im.elementwise(
      {x, channelVector(im, im.input(1), rank), channelVector(im, im.input(2), rank), *mean, *var},
      et, [&](OpBuilder &ob, Location l, ValueRange v) -> Value {
        Value ve = arith::AddFOp::create(ob, l, v[4], im.constantScalar(ob, l, et, eps));
        Value nrm = arith::DivFOp::create(ob, l, arith::SubFOp::create(ob, l, v[0], v[3]),
                                          math::SqrtOp::create(ob, l, ve));
        return arith::AddFOp::create(ob, l, arith::MulFOp::create(ob, l, nrm, v[1]), v[2]);
      });
  if (failed(y))
    return failure();
  im.setOutput(0, *y);
  // running = input * momentum + batch * (1 - momentum), per channel.
  for (unsigned k = 1; k <= 2; ++k) {
    if (!im.wantsOutput(k))
      continue;
    auto r = im.elementwise({im.input(2 + k), im.reshape(k == 1 ? *mean : *var, {c})}, et,
                            [&](OpBuilder &ob, Location l, ValueRange v) -> Value {
                              return arith::AddFOp::create(
                                  ob, l,
                                  arith::MulFOp::create(ob, l, v[0],
                                                        im.constantScalar(ob, l, et, momentum)),
                                  arith::MulFOp::create(
                                      ob, l, v[1], im.constantScalar(ob, l, et, 1.0 - momentum)));
                            });
    if (failed(r))
      return failure();
    im.setOutput(k, *r);
  }
  return success();
}

static LogicalResult handleBatchNorm(Importer &im) {
  Value x = im.input(0);
  int64_t rank = im.shapeOf(x).size();
  if (rank < 2)
    return im.fail("input must have rank >= 2");
  if (im.attrInt("training_mode", 0)) {
    if (im.opset < 14)
      return im.fail("training_mode is an opset-14 attribute");
    return handleBatchNormTraining(im);
  }
  double eps = im.attrFloat("epsilon", 1e-5f);
  SmallVector<Value> ins = {x};
  for (unsigned i = 1; i < 5; ++i)
    ins.push_back(channelVector(im, im.input(i), rank));
  auto r = im.elementwise(ins, im.elementType(x), [&](OpBuilder &ob, Location l, ValueRange v) -> Value {
    Value ve = arith::AddFOp::create(ob, l, v[4], im.constantScalar(ob, l, v[0].getType(), eps));
    Value inv = math::RsqrtOp::create(ob, l, ve);
    Value c = arith::SubFOp::create(ob, l, v[0], v[3]);
    Value n = arith::MulFOp::create(ob, l, c, arith::MulFOp::create(ob, l, inv, v[1]));
    return arith::AddFOp::create(ob, l, n, v[2]);
  });
  if (failed(r))
    return failure();
  im.setOutput(0, *r);
  return success();
}

static LogicalResult handleInstanceNorm(Importer &im) {
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

//===----------------------------------------------------------------------===//
// Contractions
//===----------------------------------------------------------------------===//

FailureOr<MatmulIndexing> kiln::detail::matmulIndexing(Importer &im, ArrayRef<int64_t> sa,
                                                       ArrayRef<int64_t> sb, bool transA,
                                                       bool transB) {
  int64_t ra = sa.size(), rb = sb.size();
  int64_t m = transA ? sa[ra - 1] : sa[ra - 2], ka = transA ? sa[ra - 2] : sa[ra - 1];
  int64_t kb = transB ? sb[rb - 1] : sb[rb - 2], n = transB ? sb[rb - 2] : sb[rb - 1];
  if (ka != kb)
    return im.fail(llvm::formatv("inner dimensions do not match: A is {0}, B is {1}",
                                 shapeStr(sa), shapeStr(sb))
                       .str());
  auto batch = im.broadcastShapes({SmallVector<int64_t>(sa.drop_back(2)),
                                   SmallVector<int64_t>(sb.drop_back(2))});
  if (failed(batch))
    return failure();
  int64_t nb = batch->size();
  MLIRContext *ctx = &im.ctx;
  auto d = [&](int64_t i) { return getAffineDimExpr(i, ctx); };
  AffineExpr dm = d(nb), dk = d(nb + 1), dn = d(nb + 2);
  auto batchExprs = [&](ArrayRef<int64_t> s) {
    SmallVector<AffineExpr> e;
    int64_t r = s.size() - 2;
    for (int64_t i = 0; i < r; ++i) {
      int64_t od = nb - r + i;
      e.push_back(s[i] == 1 && (*batch)[od] != 1 ? getAffineConstantExpr(0, ctx) : d(od));
    }
    return e;
  };
  MatmulIndexing x;
  x.a = batchExprs(sa);
  x.b = batchExprs(sb);
  x.a.append(transA ? SmallVector<AffineExpr>{dk, dm} : SmallVector<AffineExpr>{dm, dk});
  x.b.append(transB ? SmallVector<AffineExpr>{dn, dk} : SmallVector<AffineExpr>{dk, dn});
  for (int64_t i = 0; i < nb; ++i)
    x.out.push_back(d(i));
  x.out.append({dm, dn});
  x.outShape.assign(batch->begin(), batch->end());
  x.outShape.append({m, n});
  x.numLoops = nb + 3;
  x.m = dm;
  x.n = dn;
  return x;
}

/// out[b.., m, n] = init + alpha * sum_k A[b.., m, k] * B[b.., k, n], with
/// numpy batch broadcasting.
static FailureOr<Value> contraction(Importer &im, Value a, Value bm, bool transA,
                                    bool transB, Value init, double alpha) {
  auto idx = matmulIndexing(im, im.shapeOf(a), im.shapeOf(bm), transA, transB);
  if (failed(idx))
    return failure();
  ArrayRef<int64_t> outShape = idx->outShape;
  int64_t dims = idx->numLoops;
  MLIRContext *ctx = &im.ctx;
  Type et = im.elementType(a);
  // Half-precision products accumulate in f32, as numpy and onnxruntime do:
  // K terms summed in f16 lose about log2(K) bits.
  bool widen = et.isF16() || et.isBF16();
  Type acc = widen ? im.b.getF32Type() : et;
  auto extend = [&](OpBuilder &ob, Location l, Value v) -> Value {
    return widen ? arith::ExtFOp::create(ob, l, acc, v).getResult() : v;
  };
  if (!init) {
    init = im.fill(outShape, cast<TypedAttr>(im.b.getZeroAttr(acc)));
  } else if (widen) {
    auto wide = im.elementwise({init}, acc, [&](OpBuilder &ob, Location l, ValueRange v) {
      return extend(ob, l, v[0]);
    });
    if (failed(wide))
      return failure();
    init = *wide;
  }
  SmallVector<AffineMap> maps = {AffineMap::get(dims, 0, idx->a, ctx),
                                 AffineMap::get(dims, 0, idx->b, ctx),
                                 AffineMap::get(dims, 0, idx->out, ctx)};
  SmallVector<IteratorType> iters(dims, IteratorType::parallel);
  iters[dims - 2] = IteratorType::reduction;
  Value sum = linalg::GenericOp::create(
                  im.b, im.loc, TypeRange{init.getType()}, ValueRange{a, bm}, ValueRange{init},
                  maps, iters,
                  [&](OpBuilder &ob, Location l, ValueRange v) {
                    Value p = mulOp(ob, l, extend(ob, l, v[0]), extend(ob, l, v[1]));
                    if (alpha != 1.0)
                      p = mulOp(ob, l, p, im.constantScalar(ob, l, acc, alpha));
                    linalg::YieldOp::create(ob, l, addOp(ob, l, v[2], p));
                  })
                  .getResult(0);
  if (!widen)
    return sum;
  return im.elementwise({sum}, et, [&](OpBuilder &ob, Location l, ValueRange v) -> Value {
    return arith::TruncFOp::create(ob, l, et, v[0]);
  });
}

static LogicalResult handleMatMul(Importer &im) {
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

static LogicalResult handleGemm(Importer &im) {
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

//===----------------------------------------------------------------------===//
// Convolution and pooling
//===----------------------------------------------------------------------===//

struct WindowGeometry {
  SmallVector<int64_t> kernel, strides, dilations, padLo, padHi, out;
};

/// Resolves kernel/strides/dilations/pads/auto_pad for `in` spatial sizes.
static FailureOr<WindowGeometry> windowGeometry(Importer &im, ArrayRef<int64_t> in,
                                                ArrayRef<int64_t> kernel, bool ceilMode) {
  size_t s = in.size();
  WindowGeometry g;
  g.kernel.assign(kernel.begin(), kernel.end());
  g.strides = im.attrInts("strides").value_or(SmallVector<int64_t>(s, 1));
  g.dilations = im.attrInts("dilations").value_or(SmallVector<int64_t>(s, 1));
  SmallVector<int64_t> pads = im.attrInts("pads").value_or(SmallVector<int64_t>(2 * s, 0));
  if (g.strides.size() != s || g.dilations.size() != s || pads.size() != 2 * s)
    return im.fail(llvm::formatv("strides/dilations/pads do not match {0} spatial dims", s)
                       .str());
  std::string autoPad = im.attrString("auto_pad", "NOTSET");
  for (size_t i = 0; i < s; ++i) {
    int64_t k = g.kernel[i], st = g.strides[i], dl = g.dilations[i];
    int64_t ek = dl * (k - 1) + 1;
    int64_t lo = pads[i], hi = pads[i + s], o;
    if (autoPad == "SAME_UPPER" || autoPad == "SAME_LOWER") {
      o = (in[i] + st - 1) / st;
      int64_t total = std::max<int64_t>(0, (o - 1) * st + ek - in[i]);
      lo = autoPad == "SAME_UPPER" ? total / 2 : total - total / 2;
      hi = total - lo;
    } else if (autoPad == "VALID") {
      lo = hi = 0;
      o = (in[i] - ek) / st + 1;
    } else if (autoPad == "NOTSET") {
      int64_t span = in[i] + lo + hi - ek;
      o = (ceilMode ? (span + st - 1) / st : span / st) + 1;
      // A window that starts in the right padding is dropped (ONNX/PyTorch).
      if (ceilMode && (o - 1) * st >= in[i] + lo)
        --o;
      // Extra right padding so the last (ceil-mode) window is in range.
      hi = std::max(hi, (o - 1) * st + ek - in[i] - lo);
    } else {
      return im.fail("unknown auto_pad '" + autoPad + "'");
    }
    if (o <= 0)
      return im.fail(llvm::formatv("output spatial size would be {0} (input {1}, kernel "
                                   "{2})",
                                   o, shapeStr(in), shapeStr(kernel))
                         .str());
    g.padLo.push_back(lo);
    g.padHi.push_back(hi);
    g.out.push_back(o);
  }
  return g;
}

FailureOr<Value> kiln::detail::groupedConvolution(Importer &im, Value xv, Value wv, Value bias,
                                                  ArrayRef<int64_t> og, ArrayRef<AffineExpr> ex,
                                                  ArrayRef<AffineExpr> ew) {
  MLIRContext *ctx = &im.ctx;
  int64_t s = og.size() - 3, dims = 4 + 2 * s;
  Type et = im.elementType(xv);
  SmallVector<AffineExpr> eo;
  for (int64_t i : {0, 1, 2})
    eo.push_back(getAffineDimExpr(i, ctx));
  for (int64_t i = 0; i < s; ++i)
    eo.push_back(getAffineDimExpr(4 + s + i, ctx));
  Value init;
  if (bias) {
    SmallVector<int64_t> bshape = {og[1], og[2]};
    bshape.append(s, 1);
    auto bi = im.elementwise({im.reshape(bias, bshape)}, et,
                             [](OpBuilder &, Location, ValueRange v) { return v[0]; }, og);
    if (failed(bi))
      return failure();
    init = *bi;
  } else {
    init = im.fill(og, cast<TypedAttr>(im.b.getZeroAttr(et)));
  }
  SmallVector<IteratorType> iters(dims, IteratorType::parallel);
  for (int64_t i = 3; i < 4 + s; ++i)
    iters[i] = IteratorType::reduction;
  SmallVector<AffineMap> maps = {AffineMap::get(dims, 0, ex, ctx), AffineMap::get(dims, 0, ew, ctx),
                                 AffineMap::get(dims, 0, eo, ctx)};
  return linalg::GenericOp::create(
             im.b, im.loc, TypeRange{init.getType()}, ValueRange{xv, wv}, ValueRange{init}, maps,
             iters,
             [&](OpBuilder &ob, Location l, ValueRange v) {
               linalg::YieldOp::create(ob, l, addOp(ob, l, v[2], mulOp(ob, l, v[0], v[1])));
             })
      .getResult(0);
}

/// Output pixels up to which a convolution with a window goes through
/// im2col (14x14 and smaller feature maps), and the filters per group it
/// needs.
constexpr int64_t kIm2colMaxPixels = 196, kIm2colMinFilters = 16;

FailureOr<Value> kiln::detail::convolution(Importer &im, Value x, Value w, Value bias) {
  ArrayRef<int64_t> xs = im.shapeOf(x), ws = im.shapeOf(w);
  if (xs.size() < 3 || ws.size() != xs.size())
    return im.fail("X and W must have the same rank >= 3, got " + shapeStr(xs) + " and " +
                   shapeStr(ws));
  int64_t s = xs.size() - 2, nBatch = xs[0], c = xs[1], f = ws[0];
  int64_t groups = im.attrInt("group", 1);
  if (groups <= 0 || c % groups || f % groups || ws[1] != c / groups)
    return im.fail(llvm::formatv("group={0} does not fit X channels {1} and W {2}", groups, c,
                                 shapeStr(ws))
                       .str());
  SmallVector<int64_t> kernel(ws.drop_front(2));
  if (auto ks = im.attrInts("kernel_shape"); ks && ArrayRef<int64_t>(*ks) != ArrayRef<int64_t>(kernel))
    return im.fail("kernel_shape " + shapeStr(*ks) + " does not match W " + shapeStr(ws));
  auto g = windowGeometry(im, xs.drop_front(2), kernel, false);
  if (failed(g))
    return failure();
  SmallVector<int64_t> lo = {0, 0}, hi = {0, 0};
  lo.append(g->padLo);
  hi.append(g->padHi);
  Value xp = im.pad(x, lo, hi, 0.0);
  SmallVector<int64_t> in(im.shapeOf(xp).drop_front(2)), out(g->out);
  SmallVector<int64_t> strides(g->strides), dilations(g->dilations);
  // A pointwise convolution (1x1 kernel, stride 1, no padding) is a matmul
  // over the flattened image: one long contiguous spatial dim fills whole
  // vectors where rows of a 7x7 feature map would not.
  bool pointwise = llvm::all_of(kernel, [](int64_t k) { return k == 1; }) &&
                   llvm::all_of(strides, [](int64_t v) { return v == 1; }) && in == out;
  int64_t cg = c / groups, fg = f / groups;
  // A strided 1x1 convolution, or a window over a small image, reads its
  // windows into columns first (im2col): the contraction is then a matmul
  // over every output pixel at once, where rows of a 7x7 output would fill
  // a fraction of a vector and a stride would split its loads. Writing the
  // columns costs one pass over (channels x window x pixels), small for
  // such images, and at most 1/kIm2colMinFilters of the matmul's
  // multiply-adds.
  int64_t pixels = 1;
  for (int64_t v : out)
    pixels *= v;
  bool strided1x1 = llvm::all_of(kernel, [](int64_t k) { return k == 1; }) &&
                    llvm::any_of(strides, [](int64_t v) { return v != 1; });
  if (s == 2 && fg >= kIm2colMinFilters && !pointwise &&
      (strided1x1 || pixels <= kIm2colMaxPixels)) {
    MLIRContext *ctx = &im.ctx;
    // col[n, g, c, k_0.., o_0..] = xp[n, g, c, o_i * stride_i + k_i * dilation_i]
    SmallVector<int64_t> xg = {nBatch, groups, cg}, colShape = {nBatch, groups, cg};
    xg.append(in);
    colShape.append(kernel);
    colShape.append(out);
    int64_t dims = colShape.size();
    auto d = [&](int64_t i) { return getAffineDimExpr(i, ctx); };
    SmallVector<AffineExpr> ex = {d(0), d(1), d(2)};
    for (int64_t i = 0; i < s; ++i)
      ex.push_back(d(3 + s + i) * strides[i] + d(3 + i) * dilations[i]);
    Type et = im.elementType(x);
    Value init = tensor::EmptyOp::create(im.b, im.loc, colShape, et);
    Value col = linalg::GenericOp::create(
                    im.b, im.loc, TypeRange{init.getType()}, ValueRange{im.reshape(xp, xg)},
                    ValueRange{init},
                    SmallVector<AffineMap>{AffineMap::get(dims, 0, ex, ctx),
                                           im.b.getMultiDimIdentityMap(dims)},
                    SmallVector<IteratorType>(dims, IteratorType::parallel),
                    [](OpBuilder &ob, Location l, ValueRange v) {
                      linalg::YieldOp::create(ob, l, v[0]);
                    })
                    .getResult(0);
    int64_t window = 1;
    for (int64_t k : kernel)
      window *= k;
    // As a pointwise convolution over the flattened image with cg * window
    // channels; W's [f, c, k..] rows are already in the columns' order.
    xp = im.reshape(col, {nBatch, groups * cg * window, pixels});
    w = im.reshape(w, {f, cg * window, 1});
    cg *= window;
    pointwise = true;
  }
  if (pointwise && s > 1) {
    in = out = {pixels};
    kernel = strides = dilations = {1};
    s = 1;
  }
  // Split channels into (group, channel-in-group) so every loop indexes a
  // dimension directly; these reshapes are views.
  SmallVector<int64_t> xg = {nBatch, groups, cg}, wg = {groups, fg, cg}, og = {nBatch, groups, fg};
  xg.append(in);
  wg.append(kernel);
  og.append(out);
  Value xv = im.reshape(xp, xg), wv = im.reshape(w, wg);
  Type et = im.elementType(x);

  // Loops: n, g, f, c, k_0.., o_0.. (output walked contiguously innermost).
  MLIRContext *ctx = &im.ctx;
  int64_t dims = 4 + 2 * s;
  auto d = [&](int64_t i) { return getAffineDimExpr(i, ctx); };
  SmallVector<AffineExpr> ex = {d(0), d(1), d(3)}, ew = {d(1), d(2), d(3)};
  for (int64_t i = 0; i < s; ++i) {
    AffineExpr k = d(4 + i), o = d(4 + s + i);
    ex.push_back(o * strides[i] + k * dilations[i]);
    ew.push_back(k);
  }
  auto y = groupedConvolution(im, xv, wv, bias, og, ex, ew);
  if (failed(y))
    return failure();
  SmallVector<int64_t> outShape = {nBatch, f};
  outShape.append(g->out);
  return im.reshape(*y, outShape);
}

static LogicalResult handleConv(Importer &im) {
  auto y = convolution(im, im.input(0), im.input(1), im.hasInput(2) ? im.input(2) : Value());
  if (failed(y))
    return failure();
  im.setOutput(0, *y);
  return success();
}

/// MaxPool / AveragePool, and LpPool when `lpP` > 0 (sum of |x|^p, then the
/// p-th root).
static LogicalResult handlePool(Importer &im, bool isMax, int64_t lpP = 0) {
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

static LogicalResult handleGlobalPool(Importer &im, bool isMax) {
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

//===----------------------------------------------------------------------===//
// Data movement
//===----------------------------------------------------------------------===//

static LogicalResult handleReshape(Importer &im) {
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

static LogicalResult handleFlatten(Importer &im) {
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

static FailureOr<SmallVector<int64_t>> squeezeAxes(Importer &im, int64_t rank) {
  SmallVector<int64_t> axes;
  if (im.opset >= 13) {
    if (im.hasInput(1)) {
      auto c = im.constInts(1, "axes");
      if (failed(c))
        return failure();
      axes = *c;
    }
  } else if (auto a = im.attrInts("axes")) {
    axes = *a;
  }
  for (int64_t &a : axes) {
    auto n = im.normalizeAxis(a, rank);
    if (failed(n))
      return failure();
    a = *n;
  }
  return axes;
}

static LogicalResult handleSqueeze(Importer &im) {
  Value x = im.input(0);
  ArrayRef<int64_t> in = im.shapeOf(x);
  auto axes = squeezeAxes(im, in.size());
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

static LogicalResult handleUnsqueeze(Importer &im) {
  Value x = im.input(0);
  ArrayRef<int64_t> in = im.shapeOf(x);
  SmallVector<int64_t> axes;
  if (im.opset >= 13) {
    auto c = im.constInts(1, "axes");
    if (failed(c))
      return failure();
    axes = *c;
  } else {
    axes = im.attrInts("axes").value_or(SmallVector<int64_t>{});
  }
  int64_t outRank = in.size() + axes.size();
  SmallVector<bool> isNew(outRank, false);
  for (int64_t a : axes) {
    auto n = im.normalizeAxis(a, outRank);
    if (failed(n))
      return failure();
    isNew[*n] = true;
  }
  SmallVector<int64_t> out;
  size_t next = 0;
  for (int64_t i = 0; i < outRank; ++i)
    out.push_back(isNew[i] ? 1 : in[next++]);
  im.setOutput(0, im.reshape(x, out));
  return success();
}

static LogicalResult handleTranspose(Importer &im) {
  Value x = im.input(0);
  int64_t rank = im.shapeOf(x).size();
  SmallVector<int64_t> perm;
  if (auto p = im.attrInts("perm")) {
    perm = *p;
  } else {
    for (int64_t i = rank - 1; i >= 0; --i)
      perm.push_back(i);
  }
  SmallVector<int64_t> sorted(perm);
  llvm::sort(sorted);
  for (int64_t i = 0; i < rank; ++i)
    if ((int64_t)sorted.size() != rank || sorted[i] != i)
      return im.fail("perm " + shapeStr(perm) + " is not a permutation of rank " +
                     std::to_string(rank));
  im.setOutput(0, im.transpose(x, perm));
  return success();
}

/// Concatenates `ins` (same rank, equal outside `ax`, non-empty) along `ax`.
static Value concatValues(Importer &im, ArrayRef<Value> ins, int64_t ax) {
  SmallVector<int64_t> offsets, out(im.shapeOf(ins[0]));
  out[ax] = 0;
  for (Value v : ins) {
    offsets.push_back(out[ax]);
    out[ax] += im.shapeOf(v)[ax];
  }
  Type et = im.elementType(ins[0]);
  return indexedGeneric(im, out, et, [&](OpBuilder &ob, Location l, ValueRange idx) {
    Value result;
    for (int64_t j = ins.size() - 1; j >= 0; --j) {
      SmallVector<Value> at(idx.begin(), idx.end());
      int64_t size = im.shapeOf(ins[j])[ax];
      at[ax] = clampIndex(ob, l, arith::SubIOp::create(ob, l, idx[ax], idxConst(ob, l, offsets[j])),
                          0, size - 1);
      Value v = tensor::ExtractOp::create(ob, l, ins[j], at);
      if (!result) {
        result = v;
        continue;
      }
      Value inThis = arith::CmpIOp::create(ob, l, arith::CmpIPredicate::slt, idx[ax],
                                           idxConst(ob, l, offsets[j] + size));
      result = arith::SelectOp::create(ob, l, inThis, v, result);
    }
    return result;
  });
}

static LogicalResult handleConcat(Importer &im) {
  SmallVector<Value> ins;
  for (int i = 0; i < im.node->input_size(); ++i)
    if (im.hasInput(i) && cast<RankedTensorType>(im.input(i).getType()).getNumElements() > 0)
      ins.push_back(im.input(i));
  if (ins.empty())
    ins.push_back(im.input(0));
  ArrayRef<int64_t> first = im.shapeOf(ins[0]);
  int64_t rank = first.size();
  auto axis = im.normalizeAxis(im.attrInt("axis", 0), rank);
  if (failed(axis))
    return failure();
  SmallVector<int64_t> offsets, out(first);
  out[*axis] = 0;
  for (Value v : ins) {
    ArrayRef<int64_t> s = im.shapeOf(v);
    for (int64_t i = 0; i < rank; ++i)
      if ((int64_t)s.size() != rank || (i != *axis && s[i] != first[i]))
        return im.fail("inputs " + shapeStr(first) + " and " + shapeStr(s) +
                       " differ outside axis " + std::to_string(*axis));
    offsets.push_back(out[*axis]);
    out[*axis] += s[*axis];
  }
  if (ins.size() == 1) {
    im.setOutput(0, ins[0]);
    return success();
  }
  im.setOutput(0, concatValues(im, ins, *axis));
  return success();
}

/// out = x[starts + i*steps] along `axes`, other dims whole. Affine access, so
/// it is an ordinary (fusable) elementwise generic.
static Value strided(Importer &im, Value x, ArrayRef<int64_t> starts, ArrayRef<int64_t> steps,
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

static LogicalResult handleSlice(Importer &im) {
  Value x = im.input(0);
  ArrayRef<int64_t> in = im.shapeOf(x);
  int64_t rank = in.size();
  SmallVector<int64_t> starts, ends, axes, steps;
  if (im.opset < 10) {
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

static LogicalResult handleSplit(Importer &im) {
  Value x = im.input(0);
  ArrayRef<int64_t> in = im.shapeOf(x);
  auto axis = im.normalizeAxis(im.attrInt("axis", 0), in.size());
  if (failed(axis))
    return failure();
  SmallVector<int64_t> sizes;
  if (im.opset >= 13 && im.hasInput(1)) {
    auto c = im.constInts(1, "split");
    if (failed(c))
      return failure();
    sizes = *c;
  } else if (auto s = im.attrInts("split")) {
    sizes = *s;
  } else {
    int64_t n = im.opset >= 18 && im.attr("num_outputs") ? im.attrInt("num_outputs", 1)
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

static LogicalResult handleGatherElements(Importer &im) {
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

static LogicalResult handleGather(Importer &im) {
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

static LogicalResult handleExpand(Importer &im) {
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

static LogicalResult handlePad(Importer &im) {
  Value x = im.input(0);
  int64_t rank = im.shapeOf(x).size();
  std::string mode = im.attrString("mode", "constant");
  if (mode != "constant" && mode != "reflect" && mode != "edge" && mode != "wrap")
    return im.fail("unknown pad mode '" + mode + "'");
  SmallVector<int64_t> pads;
  double value = 0.0;
  if (im.opset < 11) {
    pads = im.attrInts("pads").value_or(SmallVector<int64_t>{});
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
  if (im.opset >= 18 && im.hasInput(3)) {
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

static LogicalResult handleIdentity(Importer &im) {
  im.setOutput(0, im.input(0));
  return success();
}

//===----------------------------------------------------------------------===//
// Registry
//===----------------------------------------------------------------------===//

#define UNARY(FN) [](Importer &im) { return unary(im, FN); }
//===----------------------------------------------------------------------===//
// Index-aware reductions and masks
//===----------------------------------------------------------------------===//

/// ArgMax/ArgMin: the extreme value along `axis`, then the first (or last,
/// with select_last_index) index holding it. NaN counts as the extreme, like
/// numpy.
static LogicalResult handleArgExtreme(Importer &im, bool isMax) {
  Value x = im.input(0);
  Type et = im.elementType(x);
  ArrayRef<int64_t> shape = im.shapeOf(x);
  int64_t rank = shape.size();
  auto axis = im.normalizeAxis(im.attrInt("axis", 0), rank);
  if (failed(axis))
    return failure();
  bool keep = im.attrInt("keepdims", 1), last = im.attrInt("select_last_index", 0);
  bool isU = im.isUnsigned(0);
  TypedAttr init;
  if (auto ft = dyn_cast<FloatType>(et)) {
    init = FloatAttr::get(ft, isMax ? -INFINITY : INFINITY);
  } else {
    unsigned w = et.getIntOrFloatBitWidth();
    APInt v = isU ? (isMax ? APInt::getMinValue(w) : APInt::getMaxValue(w))
                  : (isMax ? APInt::getSignedMinValue(w) : APInt::getSignedMaxValue(w));
    if (et.isInteger(1))
      v = APInt(1, isMax ? 0 : 1);
    init = IntegerAttr::get(et, v);
  }
  BinFn combine = isMax ? (isU || et.isInteger(1) ? maxUOp : maxOp)
                        : (isU || et.isInteger(1) ? minUOp : minOp);
  Value m = im.reduce(x, {*axis}, /*keepDims=*/false, init,
                      [&](OpBuilder &ob, Location l, Value a, Value v) { return combine(ob, l, a, v); });
  // Second pass: min (max for last) index where x equals the extreme.
  MLIRContext *ctx = &im.ctx;
  Type i64 = im.b.getI64Type();
  SmallVector<int64_t> outShape;
  SmallVector<AffineExpr> outExprs;
  SmallVector<IteratorType> iters;
  for (int64_t i = 0; i < rank; ++i) {
    if (i == *axis) {
      iters.push_back(IteratorType::reduction);
      continue;
    }
    outShape.push_back(shape[i]);
    outExprs.push_back(getAffineDimExpr(i, ctx));
    iters.push_back(IteratorType::parallel);
  }
  int64_t none = last ? -1 : shape[*axis];
  Value acc = im.fill(outShape, IntegerAttr::get(i64, none));
  AffineMap outMap = AffineMap::get(rank, 0, outExprs, ctx);
  SmallVector<AffineMap> maps = {AffineMap::getMultiDimIdentityMap(rank, ctx), outMap, outMap};
  int64_t ax = *axis;
  Value idx = linalg::GenericOp::create(
                  im.b, im.loc, TypeRange{acc.getType()}, ValueRange{x, m}, ValueRange{acc},
                  maps, iters,
                  [&](OpBuilder &ob, Location l, ValueRange v) {
                    Value hit = eqOp(ob, l, v[0], v[1]);
                    if (isFloat(et))
                      hit = arith::OrIOp::create(
                          ob, l, hit,
                          arith::CmpFOp::create(ob, l, arith::CmpFPredicate::UNO, v[0], v[0]));
                    Value i = arith::IndexCastOp::create(
                        ob, l, i64, linalg::IndexOp::create(ob, l, ax));
                    Value best = last ? (Value)arith::MaxSIOp::create(ob, l, v[2], i)
                                      : (Value)arith::MinSIOp::create(ob, l, v[2], i);
                    linalg::YieldOp::create(ob, l,
                                            arith::SelectOp::create(ob, l, hit, best, v[2]).getResult());
                  })
                  .getResult(0);
  if (keep) {
    SmallVector<int64_t> kept(shape.begin(), shape.end());
    kept[ax] = 1;
    idx = im.reshape(idx, kept);
  }
  im.setOutput(0, idx);
  return success();
}

/// Trilu: keeps the upper (j - i >= k) or lower (j - i <= k) triangle of the
/// last two dimensions, zeroing the rest.
static LogicalResult handleTrilu(Importer &im) {
  Value x = im.input(0);
  ArrayRef<int64_t> shape = im.shapeOf(x);
  int64_t rank = shape.size();
  if (rank < 2)
    return im.fail("Trilu needs an input of rank 2 or more");
  int64_t k = 0;
  if (im.hasInput(1)) {
    auto c = im.constInts(1, "k");
    if (failed(c))
      return failure();
    if (c->size() != 1)
      return im.fail("input 'k' must hold one value");
    k = (*c)[0];
  }
  bool upper = im.attrInt("upper", 1);
  Type et = im.elementType(x);
  MLIRContext *ctx = &im.ctx;
  Value y = indexedGeneric(
      im, shape, et,
      [&](OpBuilder &ob, Location l, ValueRange a) -> Value {
        Value i = arith::IndexCastOp::create(ob, l, ob.getI64Type(), a[rank - 2]);
        Value j = arith::IndexCastOp::create(ob, l, ob.getI64Type(), a[rank - 1]);
        Value d = arith::SubIOp::create(ob, l, j, i);
        Value kk = arith::ConstantOp::create(ob, l, ob.getI64IntegerAttr(k));
        Value keepIt = arith::CmpIOp::create(
            ob, l, upper ? arith::CmpIPredicate::sge : arith::CmpIPredicate::sle, d, kk);
        return arith::SelectOp::create(ob, l, keepIt, a[rank], zeroOf(ob, l, et));
      },
      ValueRange{x}, {AffineMap::getMultiDimIdentityMap(rank, ctx)});
  im.setOutput(0, y);
  return success();
}

/// BitCast (opset 26): the same bits as another element type of equal width.
static LogicalResult handleBitCast(Importer &im) {
  int to = im.attrInt("to", 0);
  Type t = onnxElementType(im.ctx, to);
  Type et = im.elementType(im.input(0));
  if (!t)
    return im.fail("bitcast to " + onnxTypeName(to) + " is not supported");
  auto width = [](Type ty) { return ty.isInteger(1) ? 8u : ty.getIntOrFloatBitWidth(); };
  if (width(t) != width(et))
    return im.fail("bitcast needs types of the same width");
  return mapInputs(im, t, [&](OpBuilder &ob, Location l, ValueRange v) -> Value {
    Value x = v[0];
    if (et.isInteger(1))
      x = arith::ExtUIOp::create(ob, l, ob.getI8Type(), x);
    if (t.isInteger(1)) // ONNX bools are one byte; nonzero bytes are true
      return arith::CmpIOp::create(ob, l, arith::CmpIPredicate::ne,
                                   arith::BitcastOp::create(ob, l, ob.getI8Type(), x),
                                   zeroOf(ob, l, ob.getI8Type()));
    return x.getType() == t ? x : (Value)arith::BitcastOp::create(ob, l, t, x);
  });
}

/// CumSum (CumProd) along a constant axis: out[.., i, ..] sums x[.., k, ..] over k <= i
/// (k < i exclusive; k >= i / k > i reversed).
static LogicalResult handleCumulative(Importer &im, bool product) {
  Value x = im.input(0);
  ArrayRef<int64_t> shape = im.shapeOf(x);
  int64_t rank = shape.size();
  auto c = im.constInts(1, "axis");
  if (failed(c))
    return failure();
  if (c->size() != 1)
    return im.fail("input 'axis' must hold one value");
  auto axis = im.normalizeAxis((*c)[0], rank);
  if (failed(axis))
    return failure();
  bool exclusive = im.attrInt("exclusive", 0), reverse = im.attrInt("reverse", 0);
  Type et = im.elementType(x);
  MLIRContext *ctx = &im.ctx;
  int64_t ax = *axis;
  // Dims 0..rank-1: the output index; dim rank: k, the summed position.
  SmallVector<AffineExpr> inExprs;
  for (int64_t i = 0; i < rank; ++i)
    inExprs.push_back(getAffineDimExpr(i == ax ? rank : i, ctx));
  SmallVector<AffineMap> maps = {AffineMap::get(rank + 1, 0, inExprs, ctx),
                                 AffineMap::getMultiDimIdentityMap(rank + 1, ctx).getMajorSubMap(rank)};
  SmallVector<IteratorType> iters(rank, IteratorType::parallel);
  iters.push_back(IteratorType::reduction);
  TypedAttr initAttr = product ? (isFloat(et) ? (TypedAttr)FloatAttr::get(et, 1.0)
                                              : (TypedAttr)IntegerAttr::get(et, 1))
                               : cast<TypedAttr>(im.b.getZeroAttr(et));
  Value acc = im.fill(shape, initAttr);
  arith::CmpIPredicate pred = reverse ? (exclusive ? arith::CmpIPredicate::sgt
                                                   : arith::CmpIPredicate::sge)
                                      : (exclusive ? arith::CmpIPredicate::slt
                                                   : arith::CmpIPredicate::sle);
  Value y = linalg::GenericOp::create(
                im.b, im.loc, TypeRange{acc.getType()}, ValueRange{x}, ValueRange{acc}, maps,
                iters,
                [&](OpBuilder &ob, Location l, ValueRange v) {
                  Value k = linalg::IndexOp::create(ob, l, rank);
                  Value i = linalg::IndexOp::create(ob, l, ax);
                  Value in = arith::CmpIOp::create(ob, l, pred, k, i);
                  Value s = product ? mulOp(ob, l, v[1], v[0]) : addOp(ob, l, v[1], v[0]);
                  linalg::YieldOp::create(ob, l,
                                          arith::SelectOp::create(ob, l, in, s, v[1]).getResult());
                })
                .getResult(0);
  im.setOutput(0, y);
  return success();
}

/// RMSNormalization (opset 23): x / sqrt(mean(x^2 over axis..) + eps) in the
/// stash type (float32), cast back, times scale.
static LogicalResult handleRMSNorm(Importer &im) {
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

/// The loss of NegativeLogLikelihoodLoss for `logp` (N, C, d...) and integer
/// `target` (N, d...): -logp[n, t, d...] * weight[t], 0 where t equals
/// ignore_index; reduced by "none", "sum" or "mean" (divided by the summed
/// weights of the counted elements).
static FailureOr<Value> nllLoss(Importer &im, Value logp, Value target, Value weight) {
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

static LogicalResult handleNLLLoss(Importer &im) {
  Value x = im.input(0);
  if (!isFloat(im.elementType(x)))
    return im.fail("supported for floating-point inputs only");
  auto r = nllLoss(im, x, im.input(1), im.hasInput(2) ? im.input(2) : Value());
  if (failed(r))
    return failure();
  im.setOutput(0, *r);
  return success();
}

/// SoftmaxCrossEntropyLoss: log-softmax over axis 1, then the NLL loss;
/// output 1 (optional) is the log-probabilities.
static LogicalResult handleSCELoss(Importer &im) {
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

//===----------------------------------------------------------------------===//
// Attention (opset 23/24)
//===----------------------------------------------------------------------===//

/// out[i...] = x[inMap(i...)]: repeats, broadcasts and transposes as one
/// affine (fusable) copy.
static Value affineCopy(Importer &im, Value x, ArrayRef<int64_t> outShape, AffineMap inMap) {
  Value init = tensor::EmptyOp::create(im.b, im.loc, outShape, im.elementType(x));
  int64_t rank = outShape.size();
  SmallVector<AffineMap> maps = {inMap, AffineMap::getMultiDimIdentityMap(rank, &im.ctx)};
  SmallVector<IteratorType> iters(rank, IteratorType::parallel);
  return linalg::GenericOp::create(im.b, im.loc, TypeRange{init.getType()}, ValueRange{x},
                                   ValueRange{init}, maps, iters,
                                   [&](OpBuilder &nb, Location l, ValueRange args) {
                                     linalg::YieldOp::create(nb, l, args[0]);
                                   })
      .getResult(0);
}

/// The map that reads a tensor of shape `s` broadcast (numpy rules) to an
/// output of rank `rank` whose shape is `out`.
static AffineMap broadcastMap(Importer &im, ArrayRef<int64_t> s, ArrayRef<int64_t> out) {
  int64_t rank = out.size(), r = s.size();
  SmallVector<AffineExpr> e;
  for (int64_t i = 0; i < r; ++i) {
    int64_t od = rank - r + i;
    e.push_back(s[i] == 1 && out[od] != 1 ? getAffineConstantExpr(0, &im.ctx)
                                          : getAffineDimExpr(od, &im.ctx));
  }
  return AffineMap::get(rank, 0, e, &im.ctx);
}

FailureOr<Value> kiln::detail::softmaxLastAxis(Importer &im, Value x) {
  Type et = im.elementType(x);
  int64_t last = im.shapeOf(x).size() - 1;
  Value m = im.reduce(x, {last}, true, FloatAttr::get(et, -INFINITY),
                      [](OpBuilder &ob, Location l, Value a, Value v) { return maxOp(ob, l, a, v); });
  auto e = im.elementwise({x, m}, et, [](OpBuilder &ob, Location l, ValueRange v) -> Value {
    return math::ExpOp::create(ob, l, arith::SubFOp::create(ob, l, v[0], v[1]));
  });
  if (failed(e))
    return failure();
  Value s = im.reduce(*e, {last}, true, FloatAttr::get(et, 0.0),
                      [](OpBuilder &ob, Location l, Value a, Value v) { return addOp(ob, l, a, v); });
  return im.elementwise({*e, s}, et, [](OpBuilder &ob, Location l, ValueRange v) -> Value {
    return arith::DivFOp::create(ob, l, v[0], v[1]);
  });
}

/// [B, S, H*D] -> [B, H, S, D]; 4-D inputs pass through.
static FailureOr<Value> splitHeads(Importer &im, Value x, int64_t heads, StringRef what) {
  ArrayRef<int64_t> s = im.shapeOf(x);
  if (s.size() == 4)
    return x;
  if (heads <= 0 || s[2] % heads != 0)
    return im.fail(llvm::formatv("{0} hidden size {1} is not divisible by {2} heads", what,
                                 s[2], heads)
                       .str());
  return im.transpose(im.reshape(x, {s[0], s[1], heads, s[2] / heads}), {0, 2, 1, 3});
}

/// Y = softmax(softcap(scale * Q K^T) + bias) V with bias from attn_mask,
/// is_causal and nonpad_kv_seqlen; past_key/value are concatenated in front
/// of K/V (present_key/value); grouped-query attention repeats each KV head
/// q_num_heads / kv_num_heads times through an affine floordiv map.
static LogicalResult handleAttention(Importer &im) {
  Value q = im.input(0), k = im.input(1), v = im.input(2);
  Type et = im.elementType(q);
  if (!isFloat(et))
    return im.fail("supported for floating-point inputs only");
  int64_t rank = im.shapeOf(q).size();
  if ((rank != 3 && rank != 4) || (int64_t)im.shapeOf(k).size() != rank ||
      (int64_t)im.shapeOf(v).size() != rank)
    return im.fail("Q, K and V must all be 3-D or all be 4-D");
  int64_t qHeads = im.attrInt("q_num_heads", 0), kvHeads = im.attrInt("kv_num_heads", 0);
  if (rank == 3 && (qHeads <= 0 || kvHeads <= 0))
    return im.fail("3-D Q, K, V need the q_num_heads and kv_num_heads attributes");
  auto q4 = splitHeads(im, q, qHeads, "Q");
  auto k4 = splitHeads(im, k, kvHeads, "K");
  auto v4 = splitHeads(im, v, kvHeads, "V");
  if (failed(q4) || failed(k4) || failed(v4))
    return failure();
  q = *q4, k = *k4, v = *v4;
  int64_t past = 0;
  for (unsigned i : {4u, 5u}) {
    if (!im.hasInput(i))
      continue;
    Value p = im.input(i);
    Value &cur = i == 4 ? k : v;
    ArrayRef<int64_t> ps = im.shapeOf(p), cs = im.shapeOf(cur);
    if (ps.size() != 4 || ps[0] != cs[0] || ps[1] != cs[1] || ps[3] != cs[3])
      return im.fail("past " + std::string(i == 4 ? "key " : "value ") + shapeStr(ps) +
                     " does not match the new " + (i == 4 ? "keys " : "values ") + shapeStr(cs));
    past = ps[2];
    cur = ps[2] == 0 ? cur : cs[2] == 0 ? p : concatValues(im, {p, cur}, 2);
  }
  im.setOutput(1, k);
  im.setOutput(2, v);
  // Half-precision inputs are computed in f32 and rounded once, as the ONNX
  // reference and onnxruntime do; rounding every intermediate drifts by an
  // ulp or two.
  Type ct = et.getIntOrFloatBitWidth() < 32 ? im.b.getF32Type() : et;
  auto convert = [&](Value x, Type to) -> Value {
    if (im.elementType(x) == to)
      return x;
    return *im.elementwise({x}, to, [&](OpBuilder &ob, Location l, ValueRange a) -> Value {
      if (to.getIntOrFloatBitWidth() > a[0].getType().getIntOrFloatBitWidth())
        return arith::ExtFOp::create(ob, l, to, a[0]);
      return arith::TruncFOp::create(ob, l, to, a[0]);
    });
  };
  q = convert(q, ct), k = convert(k, ct), v = convert(v, ct);
  ArrayRef<int64_t> qs = im.shapeOf(q), ks = im.shapeOf(k), vs = im.shapeOf(v);
  int64_t B = qs[0], Hq = qs[1], S = qs[2], D = qs[3];
  int64_t Hkv = ks[1], T = ks[2], Dv = vs[3];
  if (ks[0] != B || vs[0] != B || ks[3] != D || vs[1] != Hkv || vs[2] != T)
    return im.fail("incompatible Q " + shapeStr(qs) + ", K " + shapeStr(ks) + " and V " +
                   shapeStr(vs));
  if (Hkv <= 0 || Hq % Hkv != 0)
    return im.fail(llvm::formatv("{0} query heads are not a multiple of {1} key/value heads",
                                 Hq, Hkv)
                       .str());
  if (Hq != Hkv) {
    int64_t rep = Hq / Hkv;
    auto d = [&](unsigned i) { return getAffineDimExpr(i, &im.ctx); };
    AffineMap m = AffineMap::get(4, 0, {d(0), d(1).floorDiv(rep), d(2), d(3)}, &im.ctx);
    k = affineCopy(im, k, {B, Hq, T, D}, m);
    v = affineCopy(im, v, {B, Hq, T, Dv}, m);
  }
  double scale = im.attr("scale") ? im.attrFloat("scale", 1.0f) : 1.0 / std::sqrt((double)D);
  auto qkr = contraction(im, q, k, false, true, Value(), scale);
  if (failed(qkr))
    return failure();
  Value qk = *qkr;
  int64_t mode = im.attrInt("qk_matmul_output_mode", 0);
  if (mode < 0 || mode > 3)
    return im.fail("qk_matmul_output_mode " + std::to_string(mode) + " is not 0..3");
  if (mode == 0)
    im.setOutput(3, convert(qk, et));
  double softcap = im.attrFloat("softcap", 0.0f);
  if (softcap > 0) {
    auto c = im.elementwise({qk}, ct, [&](OpBuilder &ob, Location l, ValueRange a) -> Value {
      Value t = math::TanhOp::create(
          ob, l, arith::DivFOp::create(ob, l, a[0], im.constantScalar(ob, l, ct, softcap)));
      return arith::MulFOp::create(ob, l, t, im.constantScalar(ob, l, ct, softcap));
    });
    if (failed(c))
      return failure();
    qk = *c;
  }
  if (mode == 1)
    im.setOutput(3, convert(qk, et));

  // Bias: attn_mask (bool: false masks; float: added; its last axis padded
  // to T with masked entries), causal (upper-left aligned after the past),
  // and nonpad_kv_seqlen (keys at or past the batch's length are masked).
  SmallVector<int64_t> outShape = {B, Hq, S, T};
  Value mask = im.hasInput(3) ? im.input(3) : Value();
  bool boolMask = false;
  if (mask) {
    SmallVector<int64_t> ms(im.shapeOf(mask));
    Type mt = im.elementType(mask);
    boolMask = mt.isInteger(1);
    if (!boolMask && mt != et)
      return im.fail("attn_mask must be bool or of Q's element type");
    if (ms.empty() || ms.size() > 4 || ms.back() > T)
      return im.fail("attn_mask " + shapeStr(ms) + " does not fit the attention weights " +
                     shapeStr(outShape));
    if (ms.back() < T) {
      SmallVector<int64_t> lo(ms.size(), 0), hi(ms.size(), 0);
      hi.back() = T - ms.back();
      mask = im.pad(mask, lo, hi, boolMask ? 0.0 : -INFINITY);
      ms.back() = T;
    }
    if (!boolMask)
      mask = convert(mask, ct);
    for (size_t i = 0; i < ms.size(); ++i)
      if (ms[i] != 1 && ms[i] != outShape[4 - ms.size() + i])
        return im.fail("attn_mask " + shapeStr(ms) + " does not broadcast to " +
                       shapeStr(outShape));
  }
  Value nonpad = im.hasInput(6) ? im.input(6) : Value();
  if (nonpad && (im.shapeOf(nonpad).size() != 1 || im.shapeOf(nonpad)[0] != B ||
                 !isa<IntegerType>(im.elementType(nonpad))))
    return im.fail("nonpad_kv_seqlen must be an integer tensor of shape [batch]");
  bool causal = im.attrInt("is_causal", 0) != 0;
  if (mask || causal || nonpad) {
    SmallVector<Value> ins = {qk};
    SmallVector<AffineMap> maps = {AffineMap::getMultiDimIdentityMap(4, &im.ctx)};
    if (mask) {
      ins.push_back(mask);
      maps.push_back(broadcastMap(im, im.shapeOf(mask), outShape));
    }
    qk = indexedGeneric(im, outShape, ct, [&](OpBuilder &ob, Location l, ValueRange a) {
      Value x = a[4];
      Value negInf = im.constantScalar(ob, l, ct, -INFINITY);
      Value zero = im.constantScalar(ob, l, ct, 0.0);
      if (mask)
        x = arith::AddFOp::create(ob, l, x,
                                  boolMask ? (Value)arith::SelectOp::create(ob, l, a[5], zero, negInf)
                                           : a[5]);
      auto maskIf = [&](Value cond) {
        x = arith::AddFOp::create(ob, l, x, arith::SelectOp::create(ob, l, cond, negInf, zero));
      };
      if (causal)
        maskIf(arith::CmpIOp::create(ob, l, arith::CmpIPredicate::sgt, a[3],
                                     arith::AddIOp::create(ob, l, a[2], idxConst(ob, l, past))));
      if (nonpad) {
        Value n = tensor::ExtractOp::create(ob, l, nonpad, ValueRange{a[0]});
        n = arith::IndexCastOp::create(ob, l, ob.getIndexType(), n);
        maskIf(arith::CmpIOp::create(ob, l, arith::CmpIPredicate::sge, a[3], n));
      }
      return x;
    }, ins, maps);
  }
  if (mode == 2)
    im.setOutput(3, convert(qk, et));
  auto p = softmaxLastAxis(im, qk);
  if (failed(p))
    return failure();
  if (mode == 3)
    im.setOutput(3, convert(*p, et));
  auto y = contraction(im, *p, v, false, false, Value(), 1.0);
  if (failed(y))
    return failure();
  Value out = convert(*y, et);
  if (rank == 3)
    out = im.reshape(im.transpose(out, {0, 2, 1, 3}), {B, S, Hq * Dv});
  im.setOutput(0, out);
  return success();
}

//===----------------------------------------------------------------------===//
// Resize / Upsample
//===----------------------------------------------------------------------===//

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

static FailureOr<AxisTaps> resizeAxisTaps(Importer &im, const ResizeMode &m, int64_t in,
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
static FailureOr<Value> resizeAxis(Importer &im, Value x, int64_t ax, int64_t out,
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

static LogicalResult handleResize(Importer &im, bool upsample) {
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
  bool legacy = upsample || im.opset < 11;
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
  if (upsample) {
    if (im.opset < 9) {
      auto a = im.attr("scales");
      if (!a)
        return im.fail("Upsample needs the 'scales' attribute");
      for (float f : a->floats())
        scales.push_back(f);
    } else {
      auto s = floatsOf(1, "scales");
      if (failed(s))
        return failure();
      scales = *s;
    }
  } else {
    unsigned scalesIdx = im.opset < 11 ? 1 : 2;
    if (im.opset >= 11 && im.hasInput(1) && m.coord == "tf_crop_and_resize") {
      auto r = floatsOf(1, "roi");
      if (failed(r))
        return failure();
      roi = *r;
    }
    if (im.hasInput(scalesIdx)) {
      auto s = floatsOf(scalesIdx, "scales");
      if (failed(s))
        return failure();
      scales = *s;
    }
    if (scales.empty() && im.opset >= 11 && im.hasInput(3)) {
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

//===----------------------------------------------------------------------===//
// Selection, scatter/gather, layout and normalization ops
//===----------------------------------------------------------------------===//

static Value indexToI64(OpBuilder &ob, Location l, Value i) {
  return arith::IndexCastOp::create(ob, l, ob.getI64Type(), i);
}

/// An integer element `raw` as an index into a dimension of size `dim`
/// (negative counts from the end; clamped so it never reads out of bounds).
static Value normIndex(OpBuilder &ob, Location l, Value raw, int64_t dim) {
  Value i = arith::IndexCastOp::create(ob, l, ob.getIndexType(), raw);
  Value neg = arith::CmpIOp::create(ob, l, arith::CmpIPredicate::slt, i, idxConst(ob, l, 0));
  i = arith::SelectOp::create(ob, l, neg, arith::AddIOp::create(ob, l, i, idxConst(ob, l, dim)), i);
  return clampIndex(ob, l, i, 0, std::max<int64_t>(dim - 1, 0));
}

/// Hardmax: 1 at the first maximum along `axis` (before opset 13: over the
/// input coerced to 2-D at `axis`), 0 elsewhere.
static LogicalResult handleHardmax(Importer &im) {
  Value x = im.input(0);
  Type et = im.elementType(x);
  if (!isFloat(et))
    return im.fail("supported for floating-point inputs only");
  SmallVector<int64_t> shape(im.shapeOf(x));
  int64_t rank = shape.size();
  auto axis = im.normalizeAxis(im.attrInt("axis", im.opset < 13 ? 1 : -1), rank);
  if (failed(axis))
    return failure();
  Value v = x;
  int64_t ax = *axis;
  if (im.opset < 13) {
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

static LogicalResult handleLpNormalization(Importer &im) {
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

/// TopK with a compile-time k, by rank counting: rank(i) = #{j : x_j ranks
/// before x_i} (ties: lower index first), an O(n^2) reduction per row; then
/// output slot r takes the element whose rank is r, an O(n k) reduction.
/// Fine for small axes; a sort would be needed for long ones.
static LogicalResult handleTopK(Importer &im) {
  Value x = im.input(0);
  Type et = im.elementType(x);
  SmallVector<int64_t> shape(im.shapeOf(x));
  int64_t rank = shape.size();
  auto axis = im.normalizeAxis(im.attrInt("axis", -1), rank);
  if (failed(axis))
    return failure();
  int64_t ax = *axis, n = shape[ax], k;
  if (im.opset < 10) {
    k = im.attrInt("k", -1);
  } else {
    auto kv = im.constInts(1, "K");
    if (failed(kv))
      return failure();
    if (kv->size() != 1)
      return im.fail("K must hold one element");
    k = (*kv)[0];
  }
  if (k < 0 || k > n)
    return im.fail(llvm::formatv("k={0} is out of range for an axis of size {1}", k, n).str());
  bool largest = im.attrInt("largest", 1) != 0;
  bool uns = im.isUnsigned(0);
  MLIRContext *ctx = &im.ctx;
  auto d = [&](int64_t i) { return getAffineDimExpr(i, ctx); };
  // Loops: the input's dims, then j (reduction).
  int64_t dims = rank + 1;
  SmallVector<AffineExpr> ei, ej;
  for (int64_t i = 0; i < rank; ++i) {
    ei.push_back(d(i));
    ej.push_back(i == ax ? d(rank) : d(i));
  }
  Value zero = im.fill(shape, im.b.getI64IntegerAttr(0));
  SmallVector<IteratorType> iters(dims, IteratorType::parallel);
  iters[rank] = IteratorType::reduction;
  auto before = [&](OpBuilder &ob, Location l, Value a, Value b2) -> Value {
    // does `a` rank strictly before `b2` by value?
    if (isFloat(et))
      return arith::CmpFOp::create(ob, l, largest ? arith::CmpFPredicate::OGT : arith::CmpFPredicate::OLT, a, b2);
    return arith::CmpIOp::create(ob, l,
                                 largest ? (uns ? arith::CmpIPredicate::ugt : arith::CmpIPredicate::sgt)
                                         : (uns ? arith::CmpIPredicate::ult : arith::CmpIPredicate::slt),
                                 a, b2);
  };
  Value ranks = linalg::GenericOp::create(
      im.b, im.loc, TypeRange{zero.getType()}, ValueRange{x, x}, ValueRange{zero},
      {AffineMap::get(dims, 0, ei, ctx), AffineMap::get(dims, 0, ej, ctx), AffineMap::get(dims, 0, ei, ctx)},
      iters, [&](OpBuilder &ob, Location l, ValueRange v) {
        Value i = linalg::IndexOp::create(ob, l, ax), j = linalg::IndexOp::create(ob, l, rank);
        Value eq = isFloat(et) ? (Value)arith::CmpFOp::create(ob, l, arith::CmpFPredicate::OEQ, v[1], v[0])
                               : (Value)arith::CmpIOp::create(ob, l, arith::CmpIPredicate::eq, v[1], v[0]);
        Value tie = arith::AndIOp::create(ob, l, eq, arith::CmpIOp::create(ob, l, arith::CmpIPredicate::slt, j, i));
        Value c = arith::OrIOp::create(ob, l, before(ob, l, v[1], v[0]), tie);
        Value inc = arith::ExtUIOp::create(ob, l, ob.getI64Type(), c);
        linalg::YieldOp::create(ob, l, arith::AddIOp::create(ob, l, v[2], inc).getResult());
      }).getResult(0);
  // Slot r (dim ax of the output) <- the element of rank r.
  SmallVector<int64_t> outShape(shape);
  outShape[ax] = k;
  Value vinit = im.fill(outShape, cast<TypedAttr>(im.b.getZeroAttr(et)));
  Value iinit = im.fill(outShape, im.b.getI64IntegerAttr(0));
  Value res[2];
  for (int which = 0; which < 2; ++which) {
    Value init = which == 0 ? vinit : iinit;
    auto r = linalg::GenericOp::create(
        im.b, im.loc, TypeRange{init.getType()}, ValueRange{x, ranks}, ValueRange{init},
        {AffineMap::get(dims, 0, ej, ctx), AffineMap::get(dims, 0, ej, ctx), AffineMap::get(dims, 0, ei, ctx)},
        iters, [&](OpBuilder &ob, Location l, ValueRange v) {
          Value slot = indexToI64(ob, l, linalg::IndexOp::create(ob, l, ax));
          Value hit = arith::CmpIOp::create(ob, l, arith::CmpIPredicate::eq, v[1], slot);
          Value val = which == 0 ? v[0] : indexToI64(ob, l, linalg::IndexOp::create(ob, l, rank));
          linalg::YieldOp::create(ob, l, arith::SelectOp::create(ob, l, hit, val, v[2]).getResult());
        });
    res[which] = r.getResult(0);
  }
  im.setOutput(0, res[0]);
  im.setOutput(1, res[1]);
  return success();
}

using CombineFn = function_ref<Value(OpBuilder &, Location, Value, Value)>;

static FailureOr<std::function<Value(OpBuilder &, Location, Value, Value)>>
scatterReduction(Importer &im) {
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
static LogicalResult handleScatterElements(Importer &im) {
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
static LogicalResult handleScatterND(Importer &im) {
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

static LogicalResult handleGatherND(Importer &im) {
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

static LogicalResult handleTile(Importer &im) {
  Value x = im.input(0);
  SmallVector<int64_t> shape(im.shapeOf(x));
  auto reps = im.constInts(1, "repeats");
  if (failed(reps))
    return failure();
  if (reps->size() != shape.size())
    return im.fail("repeats must have one entry per input dimension");
  SmallVector<int64_t> out;
  SmallVector<AffineExpr> e;
  for (size_t i = 0; i < shape.size(); ++i) {
    if ((*reps)[i] < 0)
      return im.fail("repeats must be non-negative");
    out.push_back(shape[i] * (*reps)[i]);
    e.push_back(shape[i] == 1 ? getAffineConstantExpr(0, &im.ctx)
                              : getAffineDimExpr(i, &im.ctx) % shape[i]);
  }
  im.setOutput(0, affineCopy(im, x, out, AffineMap::get(shape.size(), 0, e, &im.ctx)));
  return success();
}

static LogicalResult handleDepthSpace(Importer &im, bool toSpace) {
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

static LogicalResult handleEyeLike(Importer &im) {
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

static LogicalResult handleOneHot(Importer &im) {
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

static LogicalResult handleGroupNorm(Importer &im) {
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

static LogicalResult handleLRN(Importer &im) {
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

static LogicalResult handleCenterCropPad(Importer &im) {
  Value x = im.input(0);
  SmallVector<int64_t> s(im.shapeOf(x));
  int64_t rank = s.size();
  auto target = im.constInts(1, "shape");
  if (failed(target))
    return failure();
  SmallVector<int64_t> axes;
  if (auto a = im.attrInts("axes")) {
    for (int64_t v : *a) {
      auto n = im.normalizeAxis(v, rank);
      if (failed(n))
        return failure();
      axes.push_back(*n);
    }
  } else {
    for (int64_t i = 0; i < rank; ++i)
      axes.push_back(i);
  }
  if (target->size() != axes.size())
    return im.fail("shape must have one entry per axis");
  SmallVector<int64_t> out(s), offset(rank, 0); // offset: input index = out index + offset
  for (size_t i = 0; i < axes.size(); ++i) {
    int64_t a = axes[i], t = (*target)[i], d = s[a];
    out[a] = t;
    offset[a] = t < d ? (d - t) / 2 : -((t - d) / 2);
  }
  Type et = im.elementType(x);
  Value r = indexedGeneric(im, out, et, [&](OpBuilder &ob, Location l, ValueRange idx) -> Value {
    Value ok;
    SmallVector<Value> src;
    for (int64_t i = 0; i < rank; ++i) {
      Value si = arith::AddIOp::create(ob, l, idx[i], idxConst(ob, l, offset[i]));
      Value ge = arith::CmpIOp::create(ob, l, arith::CmpIPredicate::sge, si, idxConst(ob, l, 0));
      Value lt = arith::CmpIOp::create(ob, l, arith::CmpIPredicate::slt, si, idxConst(ob, l, s[i]));
      Value in = arith::AndIOp::create(ob, l, ge, lt);
      ok = ok ? arith::AndIOp::create(ob, l, ok, in).getResult() : in;
      src.push_back(clampIndex(ob, l, si, 0, std::max<int64_t>(s[i] - 1, 0)));
    }
    Value v = tensor::ExtractOp::create(ob, l, x, src);
    return arith::SelectOp::create(ob, l, ok, v, zeroOf(ob, l, et));
  });
  im.setOutput(0, r);
  return success();
}

/// DequantizeLinear: y = (x - zero_point) * scale with per-tensor, per-axis
/// or blocked (block_size) scales; the scale index along `axis` is an
/// affine floordiv, so all three are one elementwise generic.
static FailureOr<AffineMap> quantParamMap(Importer &im, ArrayRef<int64_t> xs, ArrayRef<int64_t> ps) {
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

static Value toFloat(OpBuilder &ob, Location l, Value v, Type ft, bool uns) {
  if (isFloat(v.getType()))
    return v.getType() == ft ? v : castScalar(ob, l, v, ft);
  return uns ? (Value)arith::UIToFPOp::create(ob, l, ft, v) : (Value)arith::SIToFPOp::create(ob, l, ft, v);
}

static LogicalResult handleDequantizeLinear(Importer &im) {
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

/// QuantizeLinear: saturate(round_half_even(x / scale) + zero_point) to the
/// output integer type (zero_point's, output_dtype, or uint8).
static LogicalResult handleQuantizeLinear(Importer &im) {
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


/// DynamicQuantizeLinear: uint8 quantization with scale and zero point from
/// the input's range (which always includes 0).
static LogicalResult handleDynamicQuantizeLinear(Importer &im) {
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

/// MeanVarianceNormalization, as its ONNX function: (x - E[x]) /
/// (sqrt(E[x^2] - E[x]^2) + 1e-9) over `axes`.
static LogicalResult handleMeanVarianceNormalization(Importer &im) {
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
static LogicalResult handleMatMulInteger(Importer &im) {
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

#define F_BODY(EXPR)                                                              \
  [](OpBuilder & ob, Location l, ValueRange v) -> Value { return EXPR; }

const llvm::StringMap<Handler> &kiln::detail::opHandlers() {
  static const llvm::StringMap<Handler> table = [] {
    llvm::StringMap<Handler> t;
    t["Add"] = [](Importer &im) { return binary(im, addOp); };
    t["Sub"] = [](Importer &im) { return binary(im, subOp); };
    t["Mul"] = [](Importer &im) { return binary(im, mulOp); };
    t["Div"] = [](Importer &im) { return binary(im, im.anyUnsigned() ? divUOp : divOp); };
    t["Equal"] = [](Importer &im) { return binary(im, eqOp, true); };
    t["Less"] = [](Importer &im) { return binary(im, im.anyUnsigned() ? ltUOp : ltOp, true); };
    t["Greater"] = [](Importer &im) { return binary(im, im.anyUnsigned() ? gtUOp : gtOp, true); };
    t["LessOrEqual"] = [](Importer &im) {
      return binary(im, im.anyUnsigned() ? leUOp : leOp, true);
    };
    t["GreaterOrEqual"] = [](Importer &im) {
      return binary(im, im.anyUnsigned() ? geUOp : geOp, true);
    };
    t["BitwiseAnd"] = [](Importer &im) { return binary(im, andOp); };
    t["BitwiseOr"] = [](Importer &im) { return binary(im, orOp); };
    t["BitwiseXor"] = [](Importer &im) { return binary(im, xorOp); };
    t["BitwiseNot"] = [](Importer &im) {
      return unary(im, F_BODY(arith::XOrIOp::create(
                           ob, l, v[0], arith::ConstantOp::create(
                                            ob, l, ob.getIntegerAttr(v[0].getType(), -1)))),
                   false);
    };
    t["BitShift"] = handleBitShift;
    t["And"] = [](Importer &im) { return binary(im, andOp); };
    t["Or"] = [](Importer &im) { return binary(im, orOp); };
    t["Xor"] = [](Importer &im) { return binary(im, xorOp); };
    t["Max"] = [](Importer &im) { return variadic(im, im.anyUnsigned() ? maxUOp : maxOp); };
    t["Min"] = [](Importer &im) { return variadic(im, im.anyUnsigned() ? minUOp : minOp); };
    t["Sum"] = [](Importer &im) { return variadic(im, addOp); };
    t["Mean"] = [](Importer &im) { return variadic(im, addOp, true); };
    t["Pow"] = handlePow;
    t["Sqrt"] = [](Importer &im) { return mathUnary<math::SqrtOp>(im); };
    t["Exp"] = [](Importer &im) { return mathUnary<math::ExpOp>(im); };
    t["Log"] = [](Importer &im) { return mathUnary<math::LogOp>(im); };
    t["Tanh"] = [](Importer &im) { return mathUnary<math::TanhOp>(im); };
    t["Erf"] = [](Importer &im) { return mathUnary<math::ErfOp>(im); };
    t["Floor"] = [](Importer &im) { return mathUnary<math::FloorOp>(im); };
    t["Ceil"] = [](Importer &im) { return mathUnary<math::CeilOp>(im); };
    t["Sin"] = [](Importer &im) { return mathUnary<math::SinOp>(im); };
    t["Cos"] = [](Importer &im) { return mathUnary<math::CosOp>(im); };
    t["Neg"] = [](Importer &im) {
      return unary(im, F_BODY(isFloat(v[0].getType()) ? (Value)arith::NegFOp::create(ob, l, v[0])
                                                      : subOp(ob, l, zeroOf(ob, l, v[0].getType()), v[0])),
                   false);
    };
    t["Abs"] = [](Importer &im) {
      return unary(im, F_BODY(isFloat(v[0].getType()) ? (Value)math::AbsFOp::create(ob, l, v[0])
                                                      : (Value)math::AbsIOp::create(ob, l, v[0])),
                   false);
    };
    t["Not"] = [](Importer &im) {
      return unary(im, F_BODY(arith::XOrIOp::create(ob, l, v[0],
                                                    arith::ConstantOp::create(ob, l, ob.getBoolAttr(true)))),
                   false);
    };
    t["Reciprocal"] = [](Importer &im) {
      return unary(im, [&im](OpBuilder &ob, Location l, ValueRange v) -> Value {
        return arith::DivFOp::create(ob, l, cst(im, ob, l, v[0], 1.0), v[0]);
      });
    };
    t["Relu"] = [](Importer &im) {
      return unary(im, F_BODY(maxOp(ob, l, v[0], zeroOf(ob, l, v[0].getType()))), false);
    };
    t["LeakyRelu"] = [](Importer &im) {
      double alpha = im.attrFloat("alpha", 0.01f);
      return unary(im, [&](OpBuilder &ob, Location l, ValueRange v) -> Value {
        Value neg = arith::CmpFOp::create(ob, l, arith::CmpFPredicate::OLT, v[0],
                                          zeroOf(ob, l, v[0].getType()));
        Value scaled = arith::MulFOp::create(ob, l, v[0], cst(im, ob, l, v[0], alpha));
        return arith::SelectOp::create(ob, l, neg, scaled, v[0]);
      });
    };
    t["Elu"] = [](Importer &im) {
      double alpha = im.attrFloat("alpha", 1.0f);
      return unary(im, [&](OpBuilder &ob, Location l, ValueRange v) -> Value {
        Value neg = arith::CmpFOp::create(ob, l, arith::CmpFPredicate::OLT, v[0],
                                          zeroOf(ob, l, v[0].getType()));
        Value e = math::ExpM1Op::create(ob, l, v[0]);
        Value scaled = arith::MulFOp::create(ob, l, e, cst(im, ob, l, v[0], alpha));
        return arith::SelectOp::create(ob, l, neg, scaled, v[0]);
      });
    };
    t["Sigmoid"] = [](Importer &im) {
      return unary(im, [&im](OpBuilder &ob, Location l, ValueRange v) { return sigmoid(im, ob, l, v[0]); });
    };
    t["HardSigmoid"] = [](Importer &im) {
      double alpha = im.attrFloat("alpha", 0.2f), beta = im.attrFloat("beta", 0.5f);
      return unary(im, [&](OpBuilder &ob, Location l, ValueRange v) -> Value {
        Value y = arith::AddFOp::create(
            ob, l, arith::MulFOp::create(ob, l, v[0], cst(im, ob, l, v[0], alpha)),
            cst(im, ob, l, v[0], beta));
        y = arith::MaximumFOp::create(ob, l, y, cst(im, ob, l, v[0], 0.0));
        return arith::MinimumFOp::create(ob, l, y, cst(im, ob, l, v[0], 1.0));
      });
    };
    t["Softplus"] = [](Importer &im) {
      return unary(im, [&im](OpBuilder &ob, Location l, ValueRange v) -> Value {
        return math::Log1pOp::create(ob, l, math::ExpOp::create(ob, l, v[0]));
      });
    };
    t["Gelu"] = [](Importer &im) {
      bool tanhApprox = im.attrString("approximate", "none") == "tanh";
      return unary(im, [&](OpBuilder &ob, Location l, ValueRange v) {
        return tanhApprox ? geluTanh(im, ob, l, v[0]) : geluErf(im, ob, l, v[0]);
      });
    };
    t["Acos"] = [](Importer &im) { return mathUnary<math::AcosOp>(im); };
    t["Asin"] = [](Importer &im) { return mathUnary<math::AsinOp>(im); };
    t["Atan"] = [](Importer &im) { return mathUnary<math::AtanOp>(im); };
    t["Acosh"] = [](Importer &im) { return mathUnary<math::AcoshOp>(im); };
    t["Asinh"] = [](Importer &im) { return mathUnary<math::AsinhOp>(im); };
    t["Atanh"] = [](Importer &im) { return mathUnary<math::AtanhOp>(im); };
    t["Sinh"] = [](Importer &im) { return mathUnary<math::SinhOp>(im); };
    t["Cosh"] = [](Importer &im) { return mathUnary<math::CoshOp>(im); };
    t["Tan"] = [](Importer &im) { return mathUnary<math::TanOp>(im); };
    // ONNX rounds halves to even, like numpy.
    t["Round"] = [](Importer &im) { return mathUnary<math::RoundEvenOp>(im); };
    t["Softsign"] = [](Importer &im) {
      return unary(im, [&im](OpBuilder &ob, Location l, ValueRange v) -> Value {
        Value d = arith::AddFOp::create(ob, l, cst(im, ob, l, v[0], 1.0),
                                        math::AbsFOp::create(ob, l, v[0]));
        return arith::DivFOp::create(ob, l, v[0], d);
      });
    };
    t["Selu"] = [](Importer &im) {
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
    };
    t["Celu"] = [](Importer &im) {
      double alpha = im.attrFloat("alpha", 1.0f);
      return unary(im, [&](OpBuilder &ob, Location l, ValueRange v) -> Value {
        // max(0, x) + min(0, alpha * (exp(x / alpha) - 1))
        Value e = math::ExpM1Op::create(
            ob, l, arith::DivFOp::create(ob, l, v[0], cst(im, ob, l, v[0], alpha)));
        Value neg = arith::MinimumFOp::create(
            ob, l, arith::MulFOp::create(ob, l, e, cst(im, ob, l, v[0], alpha)),
            zeroOf(ob, l, v[0].getType()));
        return arith::AddFOp::create(
            ob, l, arith::MaximumFOp::create(ob, l, v[0], zeroOf(ob, l, v[0].getType())), neg);
      });
    };
    t["HardSwish"] = [](Importer &im) {
      return unary(im, [&](OpBuilder &ob, Location l, ValueRange v) -> Value {
        Value h = arith::AddFOp::create(
            ob, l, arith::MulFOp::create(ob, l, v[0], cst(im, ob, l, v[0], 1.0 / 6.0)),
            cst(im, ob, l, v[0], 0.5));
        h = arith::MaximumFOp::create(ob, l, h, cst(im, ob, l, v[0], 0.0));
        h = arith::MinimumFOp::create(ob, l, h, cst(im, ob, l, v[0], 1.0));
        return arith::MulFOp::create(ob, l, v[0], h);
      });
    };
    t["Mish"] = [](Importer &im) {
      return unary(im, [&](OpBuilder &ob, Location l, ValueRange v) -> Value {
        Value sp = math::Log1pOp::create(ob, l, math::ExpOp::create(ob, l, v[0]));
        return arith::MulFOp::create(ob, l, v[0], math::TanhOp::create(ob, l, sp));
      });
    };
    t["Swish"] = [](Importer &im) {
      double alpha = im.attrFloat("alpha", 1.0f);
      return unary(im, [&](OpBuilder &ob, Location l, ValueRange v) -> Value {
        Value ax = arith::MulFOp::create(ob, l, v[0], cst(im, ob, l, v[0], alpha));
        return arith::MulFOp::create(ob, l, v[0], sigmoid(im, ob, l, ax));
      });
    };
    t["MeanVarianceNormalization"] = handleMeanVarianceNormalization;
    t["MatMulInteger"] = handleMatMulInteger;
    t["ThresholdedRelu"] = [](Importer &im) {
      double alpha = im.attrFloat("alpha", 1.0f);
      return unary(im, [&](OpBuilder &ob, Location l, ValueRange v) -> Value {
        Value gt = arith::CmpFOp::create(ob, l, arith::CmpFPredicate::OGT, v[0],
                                         cst(im, ob, l, v[0], alpha));
        return arith::SelectOp::create(ob, l, gt, v[0], zeroOf(ob, l, v[0].getType()));
      });
    };
    t["IsNaN"] = [](Importer &im) {
      if (!isFloat(im.elementType(im.input(0))))
        return im.fail("IsNaN needs a floating-point input");
      return mapInputs(im, im.b.getI1Type(), F_BODY(arith::CmpFOp::create(
                                                 ob, l, arith::CmpFPredicate::UNO, v[0], v[0])));
    };
    t["IsInf"] = handleIsInf;
    t["Sign"] = handleSign;
    t["Shrink"] = handleShrink;
    t["PRelu"] = handlePRelu;
    t["Mod"] = handleMod;
    t["CastLike"] = handleCastLike;
    t["Clip"] = handleClip;
    t["Where"] = handleWhere;
    t["Cast"] = handleCast;
    t["Identity"] = handleIdentity;
    // Inference only: the output is the input and the mask all true;
    // training mode (random masks) is rejected.
    t["Dropout"] = [](Importer &im) {
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
    };
    t["ReduceSum"] = [](Importer &im) { return handleReduce(im, ReduceKind::Sum, 13); };
    t["ReduceMean"] = [](Importer &im) { return handleReduce(im, ReduceKind::Mean, 18); };
    t["ReduceMax"] = [](Importer &im) { return handleReduce(im, ReduceKind::Max, 18); };
    t["ReduceMin"] = [](Importer &im) { return handleReduce(im, ReduceKind::Min, 18); };
    t["ReduceProd"] = [](Importer &im) { return handleReduce(im, ReduceKind::Prod, 18); };
    t["ReduceSumSquare"] = [](Importer &im) { return handleReduce(im, ReduceKind::SumSquare, 18); };
    t["ReduceL1"] = [](Importer &im) { return handleReduce(im, ReduceKind::L1, 18); };
    t["ReduceL2"] = [](Importer &im) { return handleReduce(im, ReduceKind::L2, 18); };
    t["ReduceLogSum"] = [](Importer &im) { return handleReduce(im, ReduceKind::LogSum, 18); };
    t["ReduceLogSumExp"] = [](Importer &im) {
      return handleReduce(im, ReduceKind::LogSumExp, 18);
    };
    t["GatherElements"] = handleGatherElements;
    t["Softmax"] = [](Importer &im) { return handleSoftmax(im, false); };
    t["LogSoftmax"] = [](Importer &im) { return handleSoftmax(im, true); };
    t["LayerNormalization"] = handleLayerNorm;
    t["BatchNormalization"] = handleBatchNorm;
    t["InstanceNormalization"] = handleInstanceNorm;
    t["MatMul"] = handleMatMul;
    t["Gemm"] = handleGemm;
    t["Conv"] = handleConv;
    t["MaxPool"] = [](Importer &im) { return handlePool(im, true); };
    t["AveragePool"] = [](Importer &im) { return handlePool(im, false); };
    t["LpPool"] = [](Importer &im) {
      int64_t p = im.attrInt("p", 2);
      if (p <= 0)
        return im.fail("p must be positive");
      return handlePool(im, false, p);
    };
    t["GlobalAveragePool"] = [](Importer &im) { return handleGlobalPool(im, false); };
    t["GlobalMaxPool"] = [](Importer &im) { return handleGlobalPool(im, true); };
    t["Reshape"] = handleReshape;
    t["Flatten"] = handleFlatten;
    t["Squeeze"] = handleSqueeze;
    t["Unsqueeze"] = handleUnsqueeze;
    t["Transpose"] = handleTranspose;
    t["Concat"] = handleConcat;
    t["Slice"] = handleSlice;
    t["Split"] = handleSplit;
    t["Gather"] = handleGather;
    t["Expand"] = handleExpand;
    t["Pad"] = handlePad;
    t["ArgMax"] = [](Importer &im) { return handleArgExtreme(im, true); };
    t["ArgMin"] = [](Importer &im) { return handleArgExtreme(im, false); };
    t["Trilu"] = handleTrilu;
    t["CumSum"] = [](Importer &im) { return handleCumulative(im, false); };
    t["CumProd"] = [](Importer &im) { return handleCumulative(im, true); };
    t["BitCast"] = handleBitCast;
    t["RMSNormalization"] = handleRMSNorm;
    t["NegativeLogLikelihoodLoss"] = handleNLLLoss;
    t["SoftmaxCrossEntropyLoss"] = handleSCELoss;
    t["Attention"] = handleAttention;
    t["Resize"] = [](Importer &im) { return handleResize(im, false); };
    t["Upsample"] = [](Importer &im) { return handleResize(im, true); };
    t["Hardmax"] = handleHardmax;
    t["LpNormalization"] = handleLpNormalization;
    t["TopK"] = handleTopK;
    t["ScatterElements"] = handleScatterElements;
    t["Scatter"] = handleScatterElements;
    t["ScatterND"] = handleScatterND;
    t["GatherND"] = handleGatherND;
    t["Tile"] = handleTile;
    t["DepthToSpace"] = [](Importer &im) { return handleDepthSpace(im, true); };
    t["SpaceToDepth"] = [](Importer &im) { return handleDepthSpace(im, false); };
    t["EyeLike"] = handleEyeLike;
    t["OneHot"] = handleOneHot;
    t["GroupNormalization"] = handleGroupNorm;
    t["LRN"] = handleLRN;
    t["CenterCropPad"] = handleCenterCropPad;
    t["DequantizeLinear"] = handleDequantizeLinear;
    t["QuantizeLinear"] = handleQuantizeLinear;
    t["DynamicQuantizeLinear"] = handleDynamicQuantizeLinear;
    registerControlFlowOps(t);
    registerAttentionOps(t);
    registerImageOps(t);
    registerMiscOps(t);
    return t;
  }();
  return table;
}

//===- Builders.cpp - Builders the ONNX op files share --------------------===//
//
// Numpy broadcasting and elementwise generics, reductions, reshapes and
// transposes, padding, matmul indexing and contractions, grouped
// convolution (direct or through im2col), and the small arith helpers the
// op handlers build their bodies from. Everything lowers to linalg.generic
// (or fill) on tensors plus tensor reshapes: the compiler forms kernels from
// these, there is no per-op runtime library.
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

std::string kiln::detail::shapeStr(ArrayRef<int64_t> s) {
  std::string r = "[";
  for (auto [i, d] : llvm::enumerate(s))
    r += (i ? "," : "") + std::to_string(d);
  return r + "]";
}

bool kiln::detail::isFloat(Type t) { return isa<FloatType>(t); }

// Shared builders

FailureOr<SmallVector<int64_t>>
OpContext::broadcastShapes(ArrayRef<SmallVector<int64_t>> shapes) {
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

FailureOr<Value> OpContext::elementwise(ValueRange inputs, Type resultElem,
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

Value OpContext::constantScalar(OpBuilder &ob, Location l, Type type, double value) {
  if (auto ft = dyn_cast<FloatType>(type))
    return arith::ConstantOp::create(ob, l, FloatAttr::get(ft, value));
  return arith::ConstantOp::create(ob, l, IntegerAttr::get(type, (int64_t)value));
}

Value OpContext::fill(ArrayRef<int64_t> shape, TypedAttr value) {
  Value init = tensor::EmptyOp::create(b, loc, shape, value.getType());
  Value c = arith::ConstantOp::create(b, loc, value);
  return linalg::FillOp::create(b, loc, ValueRange{c}, ValueRange{init}).getResult(0);
}

Value OpContext::reduce(Value in, ArrayRef<int64_t> axes, bool keepDims,
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

Value OpContext::reshape(Value v, ArrayRef<int64_t> shape) {
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

Value OpContext::transpose(Value v, ArrayRef<int64_t> perm) {
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

Value kiln::detail::indexedGeneric(OpContext &im, ArrayRef<int64_t> outShape, Type elem,
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

Value kiln::detail::idxConst(OpBuilder &ob, Location l, int64_t v) {
  return arith::ConstantIndexOp::create(ob, l, v);
}

Value kiln::detail::clampIndex(OpBuilder &ob, Location l, Value i, int64_t lo, int64_t hi) {
  Value r = arith::MaxSIOp::create(ob, l, i, idxConst(ob, l, lo));
  return arith::MinSIOp::create(ob, l, r, idxConst(ob, l, hi));
}

Value OpContext::pad(Value v, ArrayRef<int64_t> lo, ArrayRef<int64_t> hi, double padValue) {
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

Value kiln::detail::zeroOf(OpBuilder &ob, Location l, Type t) {
  return arith::ConstantOp::create(ob, l, ob.getZeroAttr(t));
}

LogicalResult kiln::detail::binary(OpContext &im, BinFn fn, bool compare) {
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

Value kiln::detail::orOp(OpBuilder &ob, Location l, Value a, Value b) {
  return arith::OrIOp::create(ob, l, a, b);
}

Value kiln::detail::xorOp(OpBuilder &ob, Location l, Value a, Value b) {
  return arith::XOrIOp::create(ob, l, a, b);
}

LogicalResult kiln::detail::variadic(OpContext &im, BinFn fn, bool mean) {
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

LogicalResult kiln::detail::unary(OpContext &im, BodyFn fn, bool floatOnly) {
  Value x = im.input(0);
  if (floatOnly && !isFloat(im.elementType(x)))
    return im.fail("supported for floating-point inputs only");
  auto r = im.elementwise({x}, im.elementType(x), fn);
  if (failed(r))
    return failure();
  im.setOutput(0, *r);
  return success();
}

Value kiln::detail::cst(OpContext &im, OpBuilder &ob, Location l, Value like, double v) {
  return im.constantScalar(ob, l, like.getType(), v);
}

Value kiln::detail::sigmoid(OpContext &im, OpBuilder &ob, Location l, Value x) {
  Value neg = arith::NegFOp::create(ob, l, x);
  Value e = math::ExpOp::create(ob, l, neg);
  Value d = arith::AddFOp::create(ob, l, cst(im, ob, l, x, 1.0), e);
  return arith::DivFOp::create(ob, l, cst(im, ob, l, x, 1.0), d);
}

Value kiln::detail::castScalar(OpBuilder &ob, Location l, Value v, Type to, bool fromU,
                        bool toU, bool saturate) {
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

LogicalResult kiln::detail::mapInputs(OpContext &im, Type resultElem, BodyFn fn) {
  SmallVector<Value> ins;
  for (unsigned i = 0; i < (unsigned)im.node->input_size(); ++i)
    ins.push_back(im.input(i));
  auto r = im.elementwise(ins, resultElem, fn);
  if (failed(r))
    return failure();
  im.setOutput(0, *r);
  return success();
}

// Contractions

FailureOr<MatmulIndexing> kiln::detail::matmulIndexing(OpContext &im, ArrayRef<int64_t> sa,
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

FailureOr<Value> kiln::detail::contraction(OpContext &im, Value a, Value bm, bool transA,
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

FailureOr<SmallVector<int64_t>> kiln::detail::axesOperand(OpContext &im, bool axesInput) {
  if (!axesInput)
    return im.attrInts("axes").value_or(SmallVector<int64_t>{});
  if (!im.hasInput(1))
    return SmallVector<int64_t>{};
  return im.constInts(1, "axes");
}

FailureOr<WindowGeometry> kiln::detail::windowGeometry(OpContext &im, ArrayRef<int64_t> in,
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

FailureOr<Value> kiln::detail::groupedConvolution(OpContext &im, Value xv, Value wv, Value bias,
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

FailureOr<Value> kiln::detail::convolution(OpContext &im, Value x, Value w, Value bias) {
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

Value kiln::detail::affineCopy(OpContext &im, Value x, ArrayRef<int64_t> outShape, AffineMap inMap) {
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

AffineMap kiln::detail::broadcastMap(OpContext &im, ArrayRef<int64_t> s, ArrayRef<int64_t> out) {
  int64_t rank = out.size(), r = s.size();
  SmallVector<AffineExpr> e;
  for (int64_t i = 0; i < r; ++i) {
    int64_t od = rank - r + i;
    e.push_back(s[i] == 1 && out[od] != 1 ? getAffineConstantExpr(0, &im.ctx)
                                          : getAffineDimExpr(od, &im.ctx));
  }
  return AffineMap::get(rank, 0, e, &im.ctx);
}

FailureOr<Value> kiln::detail::softmaxLastAxis(OpContext &im, Value x) {
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

Value kiln::detail::indexToI64(OpBuilder &ob, Location l, Value i) {
  return arith::IndexCastOp::create(ob, l, ob.getI64Type(), i);
}

Value kiln::detail::normIndex(OpBuilder &ob, Location l, Value raw, int64_t dim) {
  Value i = arith::IndexCastOp::create(ob, l, ob.getIndexType(), raw);
  Value neg = arith::CmpIOp::create(ob, l, arith::CmpIPredicate::slt, i, idxConst(ob, l, 0));
  i = arith::SelectOp::create(ob, l, neg, arith::AddIOp::create(ob, l, i, idxConst(ob, l, dim)), i);
  return clampIndex(ob, l, i, 0, std::max<int64_t>(dim - 1, 0));
}

Value kiln::detail::idx(OpBuilder &ob, Location l, int64_t v) {
  return arith::ConstantIndexOp::create(ob, l, v);
}

Value kiln::detail::cmpI(OpBuilder &ob, Location l, arith::CmpIPredicate p, Value a, Value b) {
  return arith::CmpIOp::create(ob, l, p, a, b);
}

Value kiln::detail::andI(OpBuilder &ob, Location l, Value a, Value b) {
  return a ? arith::AndIOp::create(ob, l, a, b).getResult() : b;
}

Value kiln::detail::clampIdx(OpBuilder &ob, Location l, Value i, int64_t lo, int64_t hi) {
  Value r = arith::MaxSIOp::create(ob, l, i, idx(ob, l, lo));
  return arith::MinSIOp::create(ob, l, r, idx(ob, l, hi));
}

Value kiln::detail::reduceOver(OpContext &im, ArrayRef<int64_t> outShape, ArrayRef<int64_t> redShape,
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

// MaxPool indices

Value kiln::detail::maxPoolIndices(OpContext &im, Value x, Value y, ArrayRef<int64_t> kernel,
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

// Pad: reflect, edge, wrap

Value kiln::detail::padWithMode(OpContext &im, Value v, ArrayRef<int64_t> lo,
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

LogicalResult kiln::detail::requireInputs(OpContext &im, unsigned n) {
  for (unsigned i = 0; i < n; ++i)
    if (!im.hasInput(i))
      return im.fail("input " + Twine(i) + " is required");
  return success();
}

Value kiln::detail::contract(OpContext &im, ValueRange ins, ArrayRef<SmallVector<AffineExpr>> inExprs,
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

Value kiln::detail::extendTo(OpBuilder &ob, Location l, Value v, Type to, bool uns) {
  if (v.getType() == to)
    return v;
  return uns ? (Value)arith::ExtUIOp::create(ob, l, to, v)
             : (Value)arith::ExtSIOp::create(ob, l, to, v);
}

Value kiln::detail::mapGeneric(OpContext &im, ArrayRef<int64_t> outShape, Type elem, ValueRange ins,
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

Value kiln::detail::nonZero(OpBuilder &ob, Location l, Value v) {
  Type t = v.getType();
  if (isFloat(t))
    return arith::CmpFOp::create(ob, l, arith::CmpFPredicate::UNE, v,
                                 arith::ConstantOp::create(ob, l, ob.getZeroAttr(t)));
  return arith::CmpIOp::create(ob, l, arith::CmpIPredicate::ne, v,
                               arith::ConstantOp::create(ob, l, ob.getZeroAttr(t)));
}

Type kiln::detail::computeType(Type t) {
  return t.getIntOrFloatBitWidth() < 32 ? Float32Type::get(t.getContext()) : t;
}

Value kiln::detail::convertF(OpBuilder &ob, Location l, Value v, Type to) {
  Type from = v.getType();
  if (from == to)
    return v;
  if (from.getIntOrFloatBitWidth() < to.getIntOrFloatBitWidth())
    return arith::ExtFOp::create(ob, l, to, v);
  return arith::TruncFOp::create(ob, l, to, v);
}

Value kiln::detail::generic(OpContext &im, Value init, AffineMap outMap, ValueRange ins,
                     ArrayRef<AffineMap> inMaps, ArrayRef<IteratorType> iters, GenericBody body) {
  SmallVector<AffineMap> maps(inMaps.begin(), inMaps.end());
  maps.push_back(outMap);
  SmallVector<Value> ivs;
  auto op = linalg::GenericOp::create(
      im.b, im.loc, TypeRange{init.getType()}, ins, ValueRange{init}, maps, iters,
      [&](OpBuilder &ob, Location l, ValueRange args) {
        for (size_t i = 0; i < iters.size(); ++i)
          ivs.push_back(linalg::IndexOp::create(ob, l, i));
        linalg::YieldOp::create(ob, l, body(ob, l, ivs, args));
      });
  for (Value iv : ivs)
    if (iv.use_empty())
      iv.getDefiningOp()->erase();
  return op.getResult(0);
}

Value kiln::detail::parallelGeneric(OpContext &im, ArrayRef<int64_t> shape, Type elem, ValueRange ins,
                             ArrayRef<AffineMap> inMaps, GenericBody body) {
  Value init = tensor::EmptyOp::create(im.b, im.loc, shape, elem);
  SmallVector<IteratorType> iters(shape.size(), IteratorType::parallel);
  return generic(im, init, AffineMap::getMultiDimIdentityMap(shape.size(), &im.ctx), ins,
                 inMaps, iters, body);
}

AffineMap kiln::detail::map(OpContext &im, unsigned dims, ArrayRef<AffineExpr> exprs) {
  return AffineMap::get(dims, 0, exprs, &im.ctx);
}

bool kiln::detail::isHalfOrFloat(Type t) { return t.isF16() || t.isBF16() || t.isF32(); }

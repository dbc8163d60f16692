//===- DefaultDomainAtoC.cpp - ONNX ops A to C ----------------------------===//
//
// Handlers of the default-domain (ai.onnx) ops whose names start with A, B or
// C, registered by registerDefaultDomainAtoC at the end of the file with the
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

static Value andOp(OpBuilder &ob, Location l, Value a, Value b) {
  return arith::AndIOp::create(ob, l, a, b);
}

/// Clip; its bounds are the min/max attributes, or the optional inputs 1
/// and 2 with `boundInputs` (opset 11).
static LogicalResult handleClip(OpContext &im, bool boundInputs) {
  Value x = im.input(0);
  Type et = im.elementType(x);
  SmallVector<Value> ins = {x};
  bool hasMin = false, hasMax = false;
  double minAttr = -INFINITY, maxAttr = INFINITY;
  if (!boundInputs) {
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
    if (!lo && !boundInputs)
      lo = im.constantScalar(ob, l, et, minAttr);
    if (!hi && !boundInputs)
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

/// BitShift (defined on unsigned integers): shifting by the width or more
/// gives 0, as in numpy.
static LogicalResult handleBitShift(OpContext &im) {
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

static LogicalResult handleCastLike(OpContext &im) {
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

static LogicalResult handleCast(OpContext &im) {
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

/// BatchNormalization with training_mode=1 (opset 14+): normalizes with the
/// batch's own mean and population variance (over every axis but 1) and
/// outputs the running statistics blended with `momentum`.
static LogicalResult handleBatchNormTraining(OpContext &im) {
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

/// BatchNormalization; `trainingMode` (opset 14) reads the training_mode
/// attribute. Before it, training was chosen by the number of outputs,
/// which Kiln does not support (the extra outputs fail as unsupported).
static LogicalResult handleBatchNorm(OpContext &im, bool trainingMode) {
  Value x = im.input(0);
  int64_t rank = im.shapeOf(x).size();
  if (rank < 2)
    return im.fail("input must have rank >= 2");
  if (im.attrInt("training_mode", 0)) {
    if (!trainingMode)
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

static LogicalResult handleConv(OpContext &im) {
  auto y = convolution(im, im.input(0), im.input(1), im.hasInput(2) ? im.input(2) : Value());
  if (failed(y))
    return failure();
  im.setOutput(0, *y);
  return success();
}

/// Concatenates `ins` (same rank, equal outside `ax`, non-empty) along `ax`.
static Value concatValues(OpContext &im, ArrayRef<Value> ins, int64_t ax) {
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

static LogicalResult handleConcat(OpContext &im) {
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

// Registry

// Index-aware reductions and masks

/// ArgMax/ArgMin: the extreme value along `axis`, then the first (or last,
/// with select_last_index) index holding it. NaN counts as the extreme, like
/// numpy.
static LogicalResult handleArgExtreme(OpContext &im, bool isMax) {
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

/// BitCast (opset 26): the same bits as another element type of equal width.
static LogicalResult handleBitCast(OpContext &im) {
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
static LogicalResult handleCumulative(OpContext &im, bool product) {
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

/// [B, S, H*D] -> [B, H, S, D]; 4-D inputs pass through.
static FailureOr<Value> splitHeads(OpContext &im, Value x, int64_t heads, StringRef what) {
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
static LogicalResult handleAttention(OpContext &im) {
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

static LogicalResult handleCenterCropPad(OpContext &im) {
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

static Value sumOver(OpContext &im, ArrayRef<int64_t> outShape, ArrayRef<int64_t> redShape,
                     Type elem,
                     function_ref<Value(OpBuilder &, Location, ValueRange, ValueRange)> body) {
  return reduceOver(im, outShape, redShape, cast<TypedAttr>(im.b.getZeroAttr(elem)), body,
                    [](OpBuilder &ob, Location l, Value a, Value v) -> Value {
                      return arith::AddFOp::create(ob, l, a, v);
                    });
}

// ConvTranspose

/// ConvTranspose as a convolution: the input is dilated by the strides
/// (zeros between elements) and padded by (effective kernel - 1 - pads),
/// then convolved with the spatially flipped kernel whose in/out channel
/// roles are swapped.
static LogicalResult handleConvTranspose(OpContext &im) {
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

// Col2Im

static LogicalResult handleCol2Im(OpContext &im) {
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

/// AffineGrid: each output point is theta[n] applied to the homogeneous
/// normalized coordinates of its position (x innermost, as GridSample reads).
static LogicalResult handleAffineGrid(OpContext &im) {
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

static LogicalResult handleConvInteger(OpContext &im) {
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

/// Compress: the kept slices along the axis (all elements, flattened, without
/// one). A constant condition gives a static gather; a runtime one a
/// data-dependent extent along the axis, bounded by the axis length.
static LogicalResult handleCompress(OpContext &im) {
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
  if (len != m) {
    // Its first m entries (a generic reading all of it into m would not
    // verify: the extents of its operands would disagree).
    Value whole = cond;
    cond = mapGeneric(im, {m}, im.elementType(cond), {}, {},
                      [&](OpBuilder &ob, Location l, ValueRange) -> Value {
                        Value i = linalg::IndexOp::create(ob, l, 0);
                        return tensor::ExtractOp::create(ob, l, whole, ValueRange{i});
                      });
  }
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

// CausalConvWithState (opset 27)

/// Depthwise causal conv1d over [past_state | input] (zeros when there is no
/// past): a padded copy, then one window reduction with affine maps. The
/// present state is the padded sequence's last k-1 positions.
static LogicalResult handleCausalConvWithState(OpContext &im) {
  Value x = im.input(0), w = im.input(1);
  Type et = im.elementType(x);
  if (!isHalfOrFloat(et))
    return im.fail("supported for float, float16 and bfloat16 inputs only");
  std::string act = im.attrString("activation", "none");
  if (act != "none" && act != "silu" && act != "swish")
    return im.fail("activation '" + act + "' is not one of none, silu, swish");
  ArrayRef<int64_t> xs = im.shapeOf(x), ws = im.shapeOf(w);
  if (xs.size() != 3)
    return im.fail("input must be 3-D (batch, channels, length), got " + shapeStr(xs));
  int64_t B = xs[0], C = xs[1], L = xs[2];
  if (ws.size() != 3 || ws[0] != C || ws[1] != 1 || ws[2] < 1)
    return im.fail(llvm::formatv("weight must be [{0},1,k] with k >= 1, got {1}", C,
                                 shapeStr(ws))
                       .str());
  int64_t K = ws[2];
  Value bias = im.hasInput(2) ? im.input(2) : Value();
  Value past = im.hasInput(3) ? im.input(3) : Value();
  if (bias && im.shapeOf(bias) != ArrayRef<int64_t>{C})
    return im.fail(llvm::formatv("bias must be [{0}], got {1}", C, shapeStr(im.shapeOf(bias)))
                       .str());
  if (past && im.shapeOf(past) != ArrayRef<int64_t>{B, C, K - 1})
    return im.fail(llvm::formatv("past_state must be [{0},{1},{2}], got {3}", B, C, K - 1,
                                 shapeStr(im.shapeOf(past)))
                       .str());
  for (Value v : {w, bias, past})
    if (v && im.elementType(v) != et)
      return im.fail("weight, bias and past_state must have the input's element type");

  Value padded = x;
  if (K > 1) {
    padded = parallelGeneric(im, {B, C, L + K - 1}, et, {}, {},
                             [&](OpBuilder &ob, Location l, ValueRange iv, ValueRange) -> Value {
                               Value inPast = arith::CmpIOp::create(
                                   ob, l, arith::CmpIPredicate::ult, iv[2], idx(ob, l, K - 1));
                               Value xi = arith::SubIOp::create(
                                   ob, l, arith::MaxUIOp::create(ob, l, iv[2], idx(ob, l, K - 1)),
                                   idx(ob, l, K - 1));
                               Value fromX = tensor::ExtractOp::create(ob, l, x,
                                                                       ValueRange{iv[0], iv[1], xi});
                               Value fromPast;
                               if (past) {
                                 Value pi = arith::MinUIOp::create(ob, l, iv[2], idx(ob, l, K - 2));
                                 fromPast = tensor::ExtractOp::create(
                                     ob, l, past, ValueRange{iv[0], iv[1], pi});
                               } else {
                                 fromPast = im.constantScalar(ob, l, et, 0.0);
                               }
                               return arith::SelectOp::create(ob, l, inPast, fromPast, fromX);
                             });
  }
  MLIRContext *ctx = &im.ctx;
  auto d = [&](unsigned i) { return getAffineDimExpr(i, ctx); };
  Type ct = computeType(et);
  Value acc;
  if (bias)
    acc = parallelGeneric(im, xs, ct, {bias}, {map(im, 3, {d(1)})},
                          [&](OpBuilder &ob, Location l, ValueRange, ValueRange a) {
                            return convertF(ob, l, a[0], ct);
                          });
  else
    acc = im.fill(xs, cast<TypedAttr>(im.b.getZeroAttr(ct)));
  // (b, c, l, j): out[b,c,l] += padded[b,c,l+j] * w[c,0,j].
  SmallVector<IteratorType> iters(3, IteratorType::parallel);
  iters.push_back(IteratorType::reduction);
  Value conv = generic(
      im, acc, map(im, 4, {d(0), d(1), d(2)}), {padded, w},
      {map(im, 4, {d(0), d(1), d(2) + d(3)}), map(im, 4, {d(1), getAffineConstantExpr(0, ctx), d(3)})},
      iters, [&](OpBuilder &ob, Location l, ValueRange, ValueRange a) -> Value {
        Value p = arith::MulFOp::create(ob, l, convertF(ob, l, a[0], ct), convertF(ob, l, a[1], ct));
        return arith::AddFOp::create(ob, l, a[2], p);
      });
  // The reference rounds the convolution to the input type before the
  // activation, which it computes in f32.
  bool silu = act != "none";
  Value y = parallelGeneric(im, xs, et, {conv}, {AffineMap::getMultiDimIdentityMap(3, ctx)},
                            [&](OpBuilder &ob, Location l, ValueRange, ValueRange a) -> Value {
                              Value v = convertF(ob, l, a[0], et);
                              if (!silu)
                                return v;
                              v = convertF(ob, l, v, ct);
                              Value one = im.constantScalar(ob, l, ct, 1.0);
                              Value e = math::ExpOp::create(ob, l, arith::NegFOp::create(ob, l, v));
                              Value sig = arith::DivFOp::create(
                                  ob, l, one, arith::AddFOp::create(ob, l, one, e));
                              return convertF(ob, l, arith::MulFOp::create(ob, l, v, sig), et);
                            });
  im.setOutput(0, y);
  // With k == 1 the state is empty; a generic would still check its map.
  Value present = K == 1 ? (Value)tensor::EmptyOp::create(im.b, im.loc, {B, C, 0}, et)
                         : parallelGeneric(im, {B, C, K - 1}, et, {padded},
                                           {map(im, 3, {d(0), d(1), d(2) + L})},
                                           [](OpBuilder &, Location, ValueRange, ValueRange a) {
                                             return a[0];
                                           });
  im.setOutput(1, present);
  return success();
}

static LogicalResult handleConcatFromSequence(OpContext &ctx) {
  Importer &im = ctx.importer();
  auto seq = sequenceInput(im, 0);
  if (failed(seq))
    return failure();
  if (seq->empty())
    return im.fail("cannot concatenate an empty sequence (its element shape is unknown)");
  for (StringRef e : *seq)
    if (!isTensor(im, e))
      return im.fail("the sequence holds sequences or optionals, not tensors");
  const onnx::AttributeProto *axisAttr = im.attr("axis");
  if (!axisAttr)
    return im.fail("missing attribute 'axis'");
  bool newAxis = im.attrInt("new_axis", 0) != 0;
  int64_t rank = tensorType(im, (*seq)[0]).getRank() + (newAxis ? 1 : 0);
  auto axis = im.normalizeAxis(axisAttr->i(), rank);
  if (failed(axis))
    return failure();
  FailureOr<std::string> out = failure();
  if (newAxis)
    out = stack(im, *seq, *axis);
  else
    out = im.emitNode("Concat", *seq, [&](onnx::NodeProto &n) { setIntAttr(n, "axis", *axis); });
  if (failed(out))
    return failure();
  setOutputs(im, {*out});
  return success();
}

//===----------------------------------------------------------------------===//
// Registration
//===----------------------------------------------------------------------===//

void kiln::detail::registerDefaultDomainAtoC(OpRegistry &r) {
  r.onOp("", "Abs", 1, [](OpContext &im) {
    return unary(im, F_BODY(isFloat(v[0].getType()) ? (Value)math::AbsFOp::create(ob, l, v[0])
                                                    : (Value)math::AbsIOp::create(ob, l, v[0])),
                 false);
  });
  r.onOp("", "Acos", 7, [](OpContext &im) { return mathUnary<math::AcosOp>(im); });
  r.onOp("", "Acosh", 9, [](OpContext &im) { return mathUnary<math::AcoshOp>(im); });
  r.onOp("", "Add", 1, [](OpContext &im) { return binary(im, addOp); });
  r.onOp("", "AffineGrid", 20, handleAffineGrid);
  r.onOp("", "And", 1, [](OpContext &im) { return binary(im, andOp); });
  r.onOp("", "ArgMax", 1, [](OpContext &im) { return handleArgExtreme(im, true); });
  r.onOp("", "ArgMin", 1, [](OpContext &im) { return handleArgExtreme(im, false); });
  r.onOp("", "Asin", 7, [](OpContext &im) { return mathUnary<math::AsinOp>(im); });
  r.onOp("", "Asinh", 9, [](OpContext &im) { return mathUnary<math::AsinhOp>(im); });
  r.onOp("", "Atan", 7, [](OpContext &im) { return mathUnary<math::AtanOp>(im); });
  r.onOp("", "Atanh", 9, [](OpContext &im) { return mathUnary<math::AtanhOp>(im); });
  r.onOp("", "Attention", 23, handleAttention);
  r.onOp("", "AveragePool", 1, [](OpContext &im) { return handlePool(im, false); });
  r.onOp("", "BatchNormalization", 1,
         [](OpContext &im) { return handleBatchNorm(im, /*trainingMode=*/false); });
  r.onOp("", "BatchNormalization", 14,
         [](OpContext &im) { return handleBatchNorm(im, /*trainingMode=*/true); });
  r.onOp("", "BitCast", 26, handleBitCast);
  r.onOp("", "BitShift", 11, handleBitShift);
  r.onOp("", "BitwiseAnd", 18, [](OpContext &im) { return binary(im, andOp); });
  r.onOp("", "BitwiseNot", 18, [](OpContext &im) {
    return unary(im, F_BODY(arith::XOrIOp::create(
                         ob, l, v[0], arith::ConstantOp::create(
                                          ob, l, ob.getIntegerAttr(v[0].getType(), -1)))),
                 false);
  });
  r.onOp("", "BitwiseOr", 18, [](OpContext &im) { return binary(im, orOp); });
  r.onOp("", "BitwiseXor", 18, [](OpContext &im) { return binary(im, xorOp); });
  r.onOp("", "BlackmanWindow", 17, [](OpContext &im) { return handleWindow(im, 0.42, 0.5, 0.08); });
  r.onOp("", "Cast", 1, handleCast);
  r.onOp("", "CastLike", 15, handleCastLike);
  r.onOp("", "CausalConvWithState", 27, handleCausalConvWithState);
  r.onOp("", "Ceil", 1, [](OpContext &im) { return mathUnary<math::CeilOp>(im); });
  r.onOp("", "Celu", 12, [](OpContext &im) {
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
  });
  r.onOp("", "CenterCropPad", 18, handleCenterCropPad);
  r.onOp("", "Clip", 1, [](OpContext &im) { return handleClip(im, /*boundInputs=*/false); });
  r.onOp("", "Clip", 11, [](OpContext &im) { return handleClip(im, /*boundInputs=*/true); });
  r.onOp("", "Col2Im", 18, handleCol2Im);
  r.onOp("", "Compress", 9, handleCompress);
  r.onOp("", "Concat", 1, handleConcat);
  r.onOp("", "ConcatFromSequence", 11, handleConcatFromSequence);
  r.onOp("", "Conv", 1, handleConv);
  r.onOp("", "ConvInteger", 10, handleConvInteger);
  r.onOp("", "ConvTranspose", 1, handleConvTranspose);
  r.onOp("", "Cos", 7, [](OpContext &im) { return mathUnary<math::CosOp>(im); });
  r.onOp("", "Cosh", 9, [](OpContext &im) { return mathUnary<math::CoshOp>(im); });
  r.onOp("", "CumProd", 26, [](OpContext &im) { return handleCumulative(im, true); });
  r.onOp("", "CumSum", 11, [](OpContext &im) { return handleCumulative(im, false); });
}

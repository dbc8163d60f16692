//===- DefaultDomainTtoZ.cpp - ONNX ops T to Z ----------------------------===//
//
// Handlers of the default-domain (ai.onnx) ops whose names start with T to Z,
// registered by registerDefaultDomainTtoZ at the end of the file with the opset
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

static LogicalResult handleWhere(OpContext &im) {
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

/// Unsqueeze; its axes are an attribute, or input 1 with `axesInput` (opset
/// 13).
static LogicalResult handleUnsqueeze(OpContext &im, bool axesInput) {
  Value x = im.input(0);
  ArrayRef<int64_t> in = im.shapeOf(x);
  SmallVector<int64_t> axes;
  if (axesInput) {
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

static LogicalResult handleTranspose(OpContext &im) {
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

/// Trilu: keeps the upper (j - i >= k) or lower (j - i <= k) triangle of the
/// last two dimensions, zeroing the rest.
static LogicalResult handleTrilu(OpContext &im) {
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

/// TopK with a compile-time k, by rank counting: rank(i) = #{j : x_j ranks
/// before x_i} (ties: lower index first), an O(n^2) reduction per row; then
/// output slot r takes the element whose rank is r, an O(n k) reduction.
/// Fine for small axes; a sort would be needed for long ones.
static LogicalResult handleTopK(OpContext &im, bool kInput) {
  Value x = im.input(0);
  Type et = im.elementType(x);
  SmallVector<int64_t> shape(im.shapeOf(x));
  int64_t rank = shape.size();
  auto axis = im.normalizeAxis(im.attrInt("axis", -1), rank);
  if (failed(axis))
    return failure();
  int64_t ax = *axis, n = shape[ax], k;
  if (!kInput) {
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

static LogicalResult handleTile(OpContext &im) {
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

/// Unique over the A slices along the axis (elements without one), each
/// flattened to m values in row-major order, like numpy. Quadratic in A:
/// fd[i][j] is the first position where slices i and j differ (m if equal),
/// which gives both equality and the lexicographic order. Y, indices and
/// counts have the data-dependent extent U (the number of distinct slices).
static LogicalResult handleUnique(OpContext &im) {
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

// TensorScatter

/// TensorScatter in gather form: present[..., p, ...] is
/// update[..., s, ...] with s = p - write_indices[batch] (mod the cache
/// length in circular mode) when 0 <= s < sequence_length, else past.
static LogicalResult handleTensorScatter(OpContext &im) {
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

// TfIdfVectorizer

/// TfIdfVectorizer over integer tokens. The n-gram pool is static: one
/// generic counts, per row and pool n-gram, its occurrences over every skip
/// distance and start position (tokens read from constant tables); a
/// contraction with a constant one-hot matrix sums the counts per output
/// index, then the weighting.
static LogicalResult handleTfIdfVectorizer(OpContext &im) {
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
// Registration
//===----------------------------------------------------------------------===//

void kiln::detail::registerDefaultDomainTtoZ(OpRegistry &r) {
  r.onOp("", "Tan", 7, [](OpContext &im) { return mathUnary<math::TanOp>(im); });
  r.onOp("", "Tanh", 1, [](OpContext &im) { return mathUnary<math::TanhOp>(im); });
  r.onOp("", "TensorScatter", 24, handleTensorScatter);
  r.onOp("", "TfIdfVectorizer", 9, handleTfIdfVectorizer);
  r.onOp("", "ThresholdedRelu", 10, [](OpContext &im) {
    double alpha = im.attrFloat("alpha", 1.0f);
    return unary(im, [&](OpBuilder &ob, Location l, ValueRange v) -> Value {
      Value gt = arith::CmpFOp::create(ob, l, arith::CmpFPredicate::OGT, v[0],
                                       cst(im, ob, l, v[0], alpha));
      return arith::SelectOp::create(ob, l, gt, v[0], zeroOf(ob, l, v[0].getType()));
    });
  });
  r.onOp("", "Tile", 1, handleTile);
  // K became input 1 at opset 10.
  r.onOp("", "TopK", 1, [](OpContext &im) { return handleTopK(im, /*kInput=*/false); });
  r.onOp("", "TopK", 10, [](OpContext &im) { return handleTopK(im, /*kInput=*/true); });
  r.onOp("", "Transpose", 1, handleTranspose);
  r.onOp("", "Trilu", 14, handleTrilu);
  r.onOp("", "Unique", 11, handleUnique);
  r.onOp("", "Unsqueeze", 1, [](OpContext &im) { return handleUnsqueeze(im, /*axesInput=*/false); });
  r.onOp("", "Unsqueeze", 13, [](OpContext &im) { return handleUnsqueeze(im, /*axesInput=*/true); });
  // Upsample-1 (height_scale and width_scale) is not supported.
  r.onOp("", "Upsample", 7,
         [](OpContext &im) { return handleResize(im, ResizeForm::UpsampleScalesAttr); });
  r.onOp("", "Upsample", 9,
         [](OpContext &im) { return handleResize(im, ResizeForm::UpsampleScalesInput); });
  r.onOp("", "Where", 9, handleWhere);
  r.onOp("", "Xor", 1, [](OpContext &im) { return binary(im, xorOp); });
}

//===- OnnxAttentionOps.cpp - Sequence-model ONNX ops ---------------------===//
//
// RotaryEmbedding, CausalConvWithState, LinearAttention and the preview
// FlexAttention, decomposed into linalg.generic at import time like the
// Attention handler in OnnxOps.cpp. Half-precision inputs are widened to f32
// inside the kernels and rounded once (the ONNX reference computes
// LinearAttention, FlexAttention's softmax and CausalConvWithState's SiLU in
// f32 too).
//
//===----------------------------------------------------------------------===//
#include "Importer.h"

#include "llvm/Support/FormatVariadic.h"

#include <cmath>

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

/// The type half-precision floats are computed in; wider types stay.
static Type computeType(Type t) {
  return t.getIntOrFloatBitWidth() < 32 ? Float32Type::get(t.getContext()) : t;
}

/// Float conversion between element types of different widths (no-op when
/// equal).
static Value convertF(OpBuilder &ob, Location l, Value v, Type to) {
  Type from = v.getType();
  if (from == to)
    return v;
  if (from.getIntOrFloatBitWidth() < to.getIntOrFloatBitWidth())
    return arith::ExtFOp::create(ob, l, to, v);
  return arith::TruncFOp::create(ob, l, to, v);
}

static Value idx(OpBuilder &ob, Location l, int64_t v) {
  return arith::ConstantIndexOp::create(ob, l, v);
}

using GenericBody = function_ref<Value(OpBuilder &, Location, ValueRange idx, ValueRange args)>;

/// A linalg.generic with `iters.size()` loops writing one result into `init`
/// through `outMap`. `body` gets the loop indices and the scalar operands
/// (inputs, then the current output element) and returns the value to yield.
/// Captured tensors may be read in `body` with tensor.extract.
static Value generic(Importer &im, Value init, AffineMap outMap, ValueRange ins,
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

/// An all-parallel generic producing a fresh tensor of `shape` (identity
/// output map).
static Value parallelGeneric(Importer &im, ArrayRef<int64_t> shape, Type elem, ValueRange ins,
                             ArrayRef<AffineMap> inMaps, GenericBody body) {
  Value init = tensor::EmptyOp::create(im.b, im.loc, shape, elem);
  SmallVector<IteratorType> iters(shape.size(), IteratorType::parallel);
  return generic(im, init, AffineMap::getMultiDimIdentityMap(shape.size(), &im.ctx), ins,
                 inMaps, iters, body);
}

static AffineMap map(Importer &im, unsigned dims, ArrayRef<AffineExpr> exprs) {
  return AffineMap::get(dims, 0, exprs, &im.ctx);
}

static bool isHalfOrFloat(Type t) { return t.isF16() || t.isBF16() || t.isF32(); }

//===----------------------------------------------------------------------===//
// RotaryEmbedding (opset 23)
//===----------------------------------------------------------------------===//

/// Each output element reads its rotation partner and its cos/sin entry with
/// tensor.extract: the partner index (d +- rotary_dim/2, or d ^ 1 when
/// interleaved) and the position gather are not affine.
static LogicalResult handleRotaryEmbedding(Importer &im) {
  Value x = im.input(0), cosC = im.input(1), sinC = im.input(2);
  Type et = im.elementType(x);
  if (!isHalfOrFloat(et))
    return im.fail("supported for float, float16 and bfloat16 inputs only");
  if (im.elementType(cosC) != et || im.elementType(sinC) != et)
    return im.fail("cos_cache and sin_cache must have the input's element type");
  SmallVector<int64_t> xs(im.shapeOf(x));
  int64_t rank = xs.size();
  if (rank != 3 && rank != 4)
    return im.fail("input must be 3-D (batch, seq, hidden) or 4-D (batch, heads, seq, "
                   "head_size), got " + shapeStr(xs));
  int64_t B = xs[0], S = rank == 4 ? xs[2] : xs[1], D = xs.back();
  if (rank == 3) {
    int64_t heads = im.attrInt("num_heads", 0);
    if (heads <= 0)
      return im.fail("a 3-D input needs a positive num_heads attribute");
    if (xs[2] % heads != 0)
      return im.fail(llvm::formatv("hidden size {0} is not divisible by num_heads {1}", xs[2],
                                   heads)
                         .str());
    D = xs[2] / heads;
  }
  int64_t rd = im.attrInt("rotary_embedding_dim", 0);
  if (rd == 0)
    rd = D;
  if (rd < 0 || rd > D || rd % 2 != 0)
    return im.fail(llvm::formatv("rotary_embedding_dim {0} must be even and at most the head "
                                 "size {1}",
                                 rd, D)
                       .str());
  int64_t half = rd / 2;
  bool interleaved = im.attrInt("interleaved", 0) != 0;
  Value pos = im.hasInput(3) ? im.input(3) : Value();
  ArrayRef<int64_t> cs = im.shapeOf(cosC);
  if (im.shapeOf(sinC) != cs)
    return im.fail("cos_cache " + shapeStr(cs) + " and sin_cache " +
                   shapeStr(im.shapeOf(sinC)) + " differ in shape");
  if (pos) {
    if (!im.elementType(pos).isInteger(64) || im.shapeOf(pos) != ArrayRef<int64_t>{B, S})
      return im.fail(llvm::formatv("position_ids must be int64 of shape [{0},{1}]", B, S).str());
    if (cs.size() != 2 || cs[1] != half || cs[0] <= 0)
      return im.fail(llvm::formatv("with position_ids the caches must be [max_position, {0}], "
                                   "got {1}",
                                   half, shapeStr(cs))
                         .str());
  } else if (cs != ArrayRef<int64_t>{B, S, half}) {
    return im.fail(llvm::formatv("without position_ids the caches must be [{0},{1},{2}], got {3}",
                                 B, S, half, shapeStr(cs))
                       .str());
  }
  int64_t maxPos = cs[0];
  Type ct = computeType(et);
  Value y = parallelGeneric(im, xs, et, {}, {}, [&](OpBuilder &ob, Location l, ValueRange iv,
                                                    ValueRange) -> Value {
    Value b = iv[0], s = rank == 4 ? iv[2] : iv[1], h, d;
    if (rank == 4) {
      h = iv[1], d = iv[3];
    } else {
      h = arith::DivUIOp::create(ob, l, iv[2], idx(ob, l, D));
      d = arith::RemUIOp::create(ob, l, iv[2], idx(ob, l, D));
    }
    auto readX = [&](Value dd) -> Value {
      SmallVector<Value> at = {b, h, s, dd};
      if (rank == 3)
        at = {b, s, arith::AddIOp::create(ob, l, arith::MulIOp::create(ob, l, h, idx(ob, l, D)), dd)};
      return tensor::ExtractOp::create(ob, l, x, at);
    };
    auto lt = [&](Value a, Value c) {
      return arith::CmpIOp::create(ob, l, arith::CmpIPredicate::ult, a, c);
    };
    // `first`: d holds the real part (cos x1 - sin x2); `i`: the pair's
    // index in the caches; x1/x2 at d1/d2. Indices beyond rotary_dim are
    // clamped so their (discarded) reads stay in bounds.
    Value first, i, d1, d2;
    Value dr = arith::MinUIOp::create(ob, l, d, idx(ob, l, rd - 1));
    if (interleaved) {
      first = arith::CmpIOp::create(
          ob, l, arith::CmpIPredicate::eq,
          arith::RemUIOp::create(ob, l, dr, idx(ob, l, 2)), idx(ob, l, 0));
      i = arith::DivUIOp::create(ob, l, dr, idx(ob, l, 2));
      d1 = arith::MulIOp::create(ob, l, i, idx(ob, l, 2));
      d2 = arith::AddIOp::create(ob, l, d1, idx(ob, l, 1));
    } else {
      first = lt(dr, idx(ob, l, half));
      i = arith::SelectOp::create(ob, l, first, dr,
                                  arith::SubIOp::create(ob, l, dr, idx(ob, l, half)));
      d1 = i;
      d2 = arith::AddIOp::create(ob, l, i, idx(ob, l, half));
    }
    SmallVector<Value> at = {b, s, i};
    if (pos) {
      Value p = tensor::ExtractOp::create(ob, l, pos, ValueRange{b, s});
      p = arith::IndexCastOp::create(ob, l, ob.getIndexType(), p);
      p = arith::MaxSIOp::create(ob, l, p, idx(ob, l, 0));
      p = arith::MinSIOp::create(ob, l, p, idx(ob, l, maxPos - 1));
      at = {p, i};
    }
    Value c = convertF(ob, l, tensor::ExtractOp::create(ob, l, cosC, at), ct);
    Value sn = convertF(ob, l, tensor::ExtractOp::create(ob, l, sinC, at), ct);
    Value x1 = convertF(ob, l, readX(d1), ct), x2 = convertF(ob, l, readX(d2), ct);
    Value real = arith::SubFOp::create(ob, l, arith::MulFOp::create(ob, l, c, x1),
                                       arith::MulFOp::create(ob, l, sn, x2));
    Value imag = arith::AddFOp::create(ob, l, arith::MulFOp::create(ob, l, sn, x1),
                                       arith::MulFOp::create(ob, l, c, x2));
    Value rot = convertF(ob, l, arith::SelectOp::create(ob, l, first, real, imag), et);
    return arith::SelectOp::create(ob, l, lt(d, idx(ob, l, rd)), rot, readX(d));
  });
  im.setOutput(0, y);
  return success();
}

//===----------------------------------------------------------------------===//
// CausalConvWithState (opset 27)
//===----------------------------------------------------------------------===//

/// Depthwise causal conv1d over [past_state | input] (zeros when there is no
/// past): a padded copy, then one window reduction with affine maps. The
/// present state is the padded sequence's last k-1 positions.
static LogicalResult handleCausalConvWithState(Importer &im) {
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

//===----------------------------------------------------------------------===//
// LinearAttention (opset 27)
//===----------------------------------------------------------------------===//

/// Stacks `rows` (each [B, 1, N]) along axis 1.
static Value stackRows(Importer &im, ArrayRef<Value> rows) {
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
static LogicalResult handleLinearAttention(Importer &im) {
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

//===----------------------------------------------------------------------===//
// FlexAttention (ai.onnx.preview, version 1)
//===----------------------------------------------------------------------===//

/// out[b, h, m, n] = sum_k a[b, h, m, k] * bm[b, h / group, k, n] (or
/// bm[.., n, k] with `transB`), each operand widened to `acc`. Reading the
/// shared key/value head through a floordiv map avoids a repeated copy.
static Value headMatmul(Importer &im, Value a, Value bm, bool transB, int64_t group, Type acc) {
  ArrayRef<int64_t> sa = im.shapeOf(a), sb = im.shapeOf(bm);
  int64_t n = transB ? sb[2] : sb[3];
  MLIRContext *ctx = &im.ctx;
  auto d = [&](unsigned i) { return getAffineDimExpr(i, ctx); };
  // Loops (b, h, m, k, n): k before n so the innermost loop walks rows.
  AffineExpr hb = d(1).floorDiv(group);
  SmallVector<AffineMap> maps = {
      map(im, 5, {d(0), d(1), d(2), d(3)}),
      map(im, 5, transB ? ArrayRef<AffineExpr>{d(0), hb, d(4), d(3)}
                        : ArrayRef<AffineExpr>{d(0), hb, d(3), d(4)})};
  SmallVector<IteratorType> iters(5, IteratorType::parallel);
  iters[3] = IteratorType::reduction;
  Value init = im.fill({sa[0], sa[1], sa[2], n}, cast<TypedAttr>(im.b.getZeroAttr(acc)));
  return generic(im, init, map(im, 5, {d(0), d(1), d(2), d(4)}), {a, bm}, maps, iters,
                 [&](OpBuilder &ob, Location l, ValueRange, ValueRange v) -> Value {
                   Value p = arith::MulFOp::create(ob, l, convertF(ob, l, v[0], acc),
                                                   convertF(ob, l, v[1], acc));
                   return arith::AddFOp::create(ob, l, v[2], p);
                 });
}

/// Scores = (Q sqrt(scale)) (K sqrt(scale))^T, optional score_mod, softmax
/// in softmax_precision, optional prob_mod, then P V, as the reference:
/// sqrt(scale) is taken in f32 and both scaled operands are rounded to the
/// input type before the product.
static LogicalResult handleFlexAttention(Importer &im) {
  Value q = im.input(0), k = im.input(1), v = im.input(2);
  Type et = im.elementType(q);
  if (!isa<FloatType>(et) || et.getIntOrFloatBitWidth() > 64 || et.getIntOrFloatBitWidth() < 16)
    return im.fail("supported for float, double, float16 and bfloat16 inputs only");
  if (im.elementType(k) != et || im.elementType(v) != et)
    return im.fail("Q, K and V must have the same element type");
  ArrayRef<int64_t> qs = im.shapeOf(q), ks = im.shapeOf(k), vs = im.shapeOf(v);
  if (qs.size() != 4 || ks.size() != 4 || vs.size() != 4)
    return im.fail("Q, K and V must be 4-D (batch, heads, seq, head_size)");
  int64_t B = qs[0], Hq = qs[1], E = qs[3], Hkv = ks[1];
  if (ks[0] != B || vs[0] != B || vs[1] != Hkv || vs[2] != ks[2] || ks[3] != E)
    return im.fail("incompatible Q " + shapeStr(qs) + ", K " + shapeStr(ks) + " and V " +
                   shapeStr(vs));
  if (Hkv <= 0 || Hq % Hkv != 0)
    return im.fail(llvm::formatv("{0} query heads are not a multiple of {1} key/value heads",
                                 Hq, Hkv)
                       .str());
  Type ct = computeType(et);
  if (const auto *p = im.attr("softmax_precision")) {
    ct = onnxElementType(im.ctx, p->i());
    if (!ct || !isa<FloatType>(ct) || ct.getIntOrFloatBitWidth() > 64 ||
        ct.getIntOrFloatBitWidth() < 16)
      return im.fail("softmax_precision " + std::to_string(p->i()) +
                     " is not float, float16, bfloat16 or double");
  }
  // A modifier maps one [B, Hq, L, S] tensor of the softmax type to another.
  auto modify = [&](StringRef name, Value x) -> FailureOr<Value> {
    const onnx::AttributeProto *a = im.attr(name);
    if (!a)
      return x;
    if (!a->has_g())
      return im.fail(name + " must be a graph attribute");
    auto outs = im.importSubgraph(a->g(), {im.defineValue(x)});
    if (failed(outs))
      return failure();
    Value y = outs->size() == 1 ? im.valueOf((*outs)[0]) : Value();
    if (!y || y.getType() != x.getType())
      return im.fail(llvm::formatv("{0} must produce one tensor of type {1}", name, x.getType())
                         .str());
    return y;
  };

  double scale = im.attr("scale") ? im.attrFloat("scale", 1.0f) : 1.0 / std::sqrt((double)E);
  double sqrtScale = std::sqrt((float)scale);
  auto scaled = [&](Value x) {
    return parallelGeneric(im, im.shapeOf(x), et, {x},
                           {AffineMap::getMultiDimIdentityMap(4, &im.ctx)},
                           [&](OpBuilder &ob, Location l, ValueRange, ValueRange a) -> Value {
                             return arith::MulFOp::create(ob, l, a[0],
                                                          im.constantScalar(ob, l, et, sqrtScale));
                           });
  };
  int64_t group = Hq / Hkv;
  Value scores = headMatmul(im, scaled(q), scaled(k), /*transB=*/true, group, computeType(et));
  if (computeType(et) != ct)
    scores = parallelGeneric(im, im.shapeOf(scores), ct, {scores},
                             {AffineMap::getMultiDimIdentityMap(4, &im.ctx)},
                             [&](OpBuilder &ob, Location l, ValueRange, ValueRange a) {
                               return convertF(ob, l, a[0], ct);
                             });
  auto modScores = modify("score_mod", scores);
  if (failed(modScores))
    return failure();
  auto softmax = softmaxLastAxis(im, *modScores);
  if (failed(softmax))
    return failure();
  auto probs = modify("prob_mod", *softmax);
  if (failed(probs))
    return failure();
  Value y = headMatmul(im, *probs, v, /*transB=*/false, group, ct);
  if (ct != et)
    y = parallelGeneric(im, im.shapeOf(y), et, {y}, {AffineMap::getMultiDimIdentityMap(4, &im.ctx)},
                        [&](OpBuilder &ob, Location l, ValueRange, ValueRange a) {
                          return convertF(ob, l, a[0], et);
                        });
  im.setOutput(0, y);
  return success();
}

void kiln::detail::registerAttentionOps(llvm::StringMap<Handler> &t) {
  t["ai.onnx.preview.FlexAttention"] = handleFlexAttention;
  t["LinearAttention"] = handleLinearAttention;
  t["RotaryEmbedding"] = handleRotaryEmbedding;
  t["CausalConvWithState"] = handleCausalConvWithState;
}

//===- PreviewDomain.cpp - ai.onnx.preview ops ----------------------------===//
//
// Handlers of the ai.onnx.preview ops (FlexAttention), registered by
// registerPreviewDomain at the end of the file with the opset each handler
// applies from. The preview domain holds ops that may still change; these
// implement its version 1.
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

// FlexAttention (ai.onnx.preview, version 1)

/// out[b, h, m, n] = sum_k a[b, h, m, k] * bm[b, h / group, k, n] (or
/// bm[.., n, k] with `transB`), each operand widened to `acc`. Reading the
/// shared key/value head through a floordiv map avoids a repeated copy.
static Value headMatmul(OpContext &im, Value a, Value bm, bool transB, int64_t group, Type acc) {
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
static LogicalResult handleFlexAttention(OpContext &ctx) {
  Importer &im = ctx.importer();
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

//===----------------------------------------------------------------------===//
// Registration
//===----------------------------------------------------------------------===//

void kiln::detail::registerPreviewDomain(OpRegistry &r) {
  r.onOp("ai.onnx.preview", "FlexAttention", 1, handleFlexAttention);
}

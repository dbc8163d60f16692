//===- MlDomain.cpp - ai.onnx.ml ops --------------------------------------===//
//
// Handlers of the ai.onnx.ml ops (TreeEnsemble, Binarizer,
// ArrayFeatureExtractor), registered by registerMlDomain at the end of the file
// with the opset each handler applies from.
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

// ai.onnx.ml TreeEnsemble

/// The values of tensor attribute `name` as doubles (empty if absent).
static FailureOr<std::vector<double>> tensorAttrValues(OpContext &im, StringRef name) {
  const auto *a = im.attr(name);
  if (!a)
    return std::vector<double>{};
  auto attr = im.importer().tensorToAttr(a->t());
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
static LogicalResult handleTreeEnsemble(OpContext &im) {
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

// ai.onnx.ml Binarizer and ArrayFeatureExtractor

static LogicalResult handleBinarizer(OpContext &im) {
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
static LogicalResult handleArrayFeatureExtractor(OpContext &im) {
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

//===----------------------------------------------------------------------===//
// Registration
//===----------------------------------------------------------------------===//

void kiln::detail::registerMlDomain(OpRegistry &r) {
  r.onOp("ai.onnx.ml", "ArrayFeatureExtractor", 1, handleArrayFeatureExtractor);
  r.onOp("ai.onnx.ml", "Binarizer", 1, handleBinarizer);
  r.onOp("ai.onnx.ml", "TreeEnsemble", 5, handleTreeEnsemble);
}

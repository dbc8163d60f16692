//===- PreviewTrainingDomain.cpp - ai.onnx.preview.training ops -----------===//
//
// Handlers of the ai.onnx.preview.training optimizers (Adagrad, Adam,
// Momentum), registered by registerPreviewTrainingDomain at the end of the file
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

// ai.onnx.preview.training optimizers

/// Runs `step` for each of the node's `n` optimized tensors: inputs are
/// R, T, then `groups` runs of n tensors (X..., G..., ...); `step` gets
/// (r, t as f32, elements of each group) and returns one value per output
/// group; outputs are likewise grouped.
static LogicalResult optimizer(OpContext &im, unsigned groups, unsigned outGroups,
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

static LogicalResult handleAdagrad(OpContext &im) {
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

static LogicalResult handleAdam(OpContext &im) {
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

static LogicalResult handleMomentum(OpContext &im) {
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
// Registration
//===----------------------------------------------------------------------===//

void kiln::detail::registerPreviewTrainingDomain(OpRegistry &r) {
  r.onOp("ai.onnx.preview.training", "Adagrad", 1, handleAdagrad);
  r.onOp("ai.onnx.preview.training", "Adam", 1, handleAdam);
  r.onOp("ai.onnx.preview.training", "Momentum", 1, handleMomentum);
}

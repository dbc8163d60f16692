//===- PaddingReads.cpp - matching the importer's padding reads -----------===//
#include "kiln/Transforms/PaddingReads.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"

using namespace mlir;

/// The operand of `v`'s defining OpTy other than the constant `c`.
template <typename OpTy>
static Value otherThanConstant(Value v, int64_t c) {
  auto op = v.getDefiningOp<OpTy>();
  if (!op)
    return {};
  for (int i = 0; i < 2; ++i)
    if (getConstantIntValue(op->getOperand(i)) == c)
      return op->getOperand(1 - i);
  return {};
}

Value kiln::unclampedIndex(Value v, int64_t hi) {
  if (Value inner = otherThanConstant<arith::MinSIOp>(v, hi))
    return otherThanConstant<arith::MaxSIOp>(inner, 0);
  if (Value inner = otherThanConstant<arith::MaxSIOp>(v, 0))
    return otherThanConstant<arith::MinSIOp>(inner, hi);
  return {};
}

void kiln::conjuncts(Value v, SmallVectorImpl<Value> &leaves) {
  if (auto a = v.getDefiningOp<arith::AndIOp>()) {
    conjuncts(a.getLhs(), leaves);
    conjuncts(a.getRhs(), leaves);
    return;
  }
  leaves.push_back(v);
}

//===- Elementwise.cpp - arithmetic on values, ops on a box ---------------===//
//
// Part of the npu kernel lowering (KernelLowering.h, design in NpuTarget.cpp):
// elementwise bodies become Vector (tensor_tensor / tensor_scalar) and Scalar
// (activation) instructions; an op is evaluated on a box of its iteration
// space, its operands loaded or their producers evaluated in turn (fusion).
//
//===----------------------------------------------------------------------===//
#include "KernelLowering.h"

#include "mlir/Dialect/Math/IR/Math.h"

#include <cmath>

namespace kiln::npu::lowering {

//===----------------------------------------------------------------------===//
// Elementwise arithmetic on values
//===----------------------------------------------------------------------===//

bool KernelLowering::commutative(AluOp op) {
  return op == AluOp::Add || op == AluOp::Multiply || op == AluOp::Max ||
         op == AluOp::Min;
}

float KernelLowering::fold(AluOp op, float a, float b) {
  switch (op) {
  case AluOp::Add: return a + b;
  case AluOp::Subtract: return a - b;
  case AluOp::Multiply: return a * b;
  case AluOp::Divide: return a / b;
  case AluOp::Max: return std::max(a, b);
  case AluOp::Min: return std::min(a, b);
  default: return a;
  }
}

bool KernelLowering::binary(Operation *op, AluOp alu, Val a, Val b, const Box &box, Val &out) {
  if (a.isImm && b.isImm) {
    out = Val::immediate(fold(alu, a.imm, b.imm));
    return true;
  }
  // Affine folding into a pending activation: x*c, x/c, x+c, x-c.
  auto canScale = [](const Val &v) {
    return !v.isImm && v.func == ActFunc::Identity && !v.biasIsAp;
  };
  if (b.isImm && canScale(a) &&
      (alu == AluOp::Multiply || alu == AluOp::Divide)) {
    float c = alu == AluOp::Multiply ? b.imm : 1.0f / b.imm;
    // Division by an exact power of two is exact as a multiplication.
    if (alu == AluOp::Multiply || std::ldexp(1.0f, std::ilogb(b.imm)) == b.imm) {
      a.scale *= c;
      a.biasImm *= c;
      out = a;
      return true;
    }
  }
  if (a.isImm && canScale(b) && alu == AluOp::Multiply)
    return binary(op, alu, b, a, box, out);
  if (!a.isImm && a.func == ActFunc::Identity && !a.biasIsAp &&
      a.biasImm == 0 && !b.isImm && b.perPart && !a.perPart &&
      (alu == AluOp::Add) && !b.pending()) {
    a.biasIsAp = true;
    a.biasReg = b.reg;
    a.biasAp = b.ap;
    out = a;
    return true;
  }
  if (b.isImm && canScale(a) && (alu == AluOp::Add || alu == AluOp::Subtract)) {
    a.biasImm += alu == AluOp::Add ? b.imm : -b.imm;
    out = a;
    return true;
  }
  if (a.isImm && canScale(b) && alu == AluOp::Add)
    return binary(op, alu, b, a, box, out);
  if (a.isImm && canScale(b) && alu == AluOp::Subtract) {
    // c - x = x * -1 + c
    b.scale = -b.scale;
    b.biasImm = a.imm - b.biasImm;
    out = b;
    return true;
  }
  // Put the immediate or per-partition operand on the right.
  bool aScalar = a.isImm || a.perPart, bScalar = b.isImm || b.perPart;
  if (aScalar && !bScalar && commutative(alu))
    std::swap(a, b), std::swap(aScalar, bScalar);
  if (!materialize(op, a, box) || !materialize(op, b, box))
    return false;
  if (aScalar && !bScalar) {
    // c - x, c / x: the scalar side needs the full shape.
    if (!broadcast(op, a, box))
      return false;
    aScalar = false;
  }
  bool resultPerPart = a.perPart && (b.perPart || b.isImm);
  AccessPattern dst;
  SmallVector<int64_t> free;
  for (unsigned i = 0; i < a.ap.rank; ++i)
    free.push_back(a.ap.dims[i].size);
  Region *r = allocTile(op, Space::Sbuf, a.ap.partitions, free, DType::F32, dst);
  if (!r)
    return false;
  AccessPattern lhs = a.ap;
  if (b.isImm || (b.perPart && !a.perPart)) {
    npu::ScalarOperand s = b.isImm ? npu::ScalarOperand(b.imm)
                                   : npu::ScalarOperand(b.ap);
    SmallVector<Region *> reads = {a.reg};
    if (!b.isImm)
      reads.push_back(b.reg);
    e.emit(vector(), reads, {r},
           [&](auto &st) { st.tensorScalar(dst, lhs, alu, s); });
  } else {
    AccessPattern rhs = b.ap;
    e.emit(vector(), {a.reg, b.reg}, {r},
           [&](auto &st) { st.tensorTensor(dst, lhs, rhs, alu); });
  }
  out = Val();
  out.reg = r;
  out.ap = dst;
  out.perPart = resultPerPart;
  return true;
}

bool KernelLowering::unary(Operation *op, ActFunc f, Val a, const Box &box, Val &out) {
  if (a.isImm) {
    if (!materialize(op, a, box))
      return false;
  }
  if (a.func != ActFunc::Identity && !activation(op, a, a.func))
    return false;
  a.func = f;
  out = a;
  return true;
}

/// x * (1 + erf(x / sqrt 2)) is 2 gelu(x); the ISA has gelu, not erf.
Value KernelLowering::matchGelu2(Operation *mul, Value &x) {
  for (int i = 0; i < 2; ++i) {
    Value p = mul->getOperand(i), q = mul->getOperand(1 - i);
    auto add = q.getDefiningOp<arith::AddFOp>();
    if (!add)
      continue;
    for (int j = 0; j < 2; ++j) {
      auto erf = add->getOperand(j).getDefiningOp<math::ErfOp>();
      auto one = constantOf(add->getOperand(1 - j));
      if (!erf || !one || *one != 1.0f)
        continue;
      Operation *s = erf.getOperand().getDefiningOp();
      if (!s || s->getNumOperands() != 2)
        continue;
      auto k = constantOf(s->getOperand(1));
      bool scaled = k && ((isa<arith::MulFOp>(s) && std::fabs(*k - M_SQRT1_2) < 1e-6) ||
                          (isa<arith::DivFOp>(s) && std::fabs(*k - M_SQRT2) < 1e-6));
      if (scaled && s->getOperand(0) == p) {
        x = p;
        return p;
      }
    }
  }
  return Value();
}

/// Evaluates a linalg body over a box with its block arguments bound.
bool KernelLowering::evalBody(Operation *op, Block &body, DenseMap<Value, Val> &env,
                              const Box &box, Value result, Val &out) {
  std::function<bool(Value, Val &)> get = [&](Value v, Val &r) -> bool {
    if (auto it = env.find(v); it != env.end()) {
      r = it->second;
      return true;
    }
    if (auto c = constantOf(v)) {
      r = Val::immediate(*c);
      return true;
    }
    Operation *d = v.getDefiningOp();
    if (!d || d->getBlock() != &body)
      return fail(op, "uses a value from outside its body the npu cannot read");
    Val a, b;
    auto alu = [&](AluOp k) {
      return get(d->getOperand(0), a) && get(d->getOperand(1), b) &&
             binary(op, k, a, b, box, r);
    };
    auto act = [&](ActFunc f) {
      return get(d->getOperand(0), a) && unary(op, f, a, box, r);
    };
    bool ok;
    Value x;
    // sigmoid as imported: 1 / (1 + exp(-x)).
    auto sigmoidArg = [&]() -> Value {
      auto div = dyn_cast<arith::DivFOp>(d);
      auto one = div ? constantOf(div.getLhs()) : std::nullopt;
      if (!one || *one != 1.0f)
        return Value();
      auto add = div.getRhs().getDefiningOp<arith::AddFOp>();
      if (!add)
        return Value();
      for (int j = 0; j < 2; ++j) {
        auto ex = add->getOperand(j).getDefiningOp<math::ExpOp>();
        auto c = constantOf(add->getOperand(1 - j));
        if (ex && c && *c == 1.0f)
          if (auto neg = ex.getOperand().getDefiningOp<arith::NegFOp>())
            return neg.getOperand();
      }
      return Value();
    };
    if (Value s = sigmoidArg()) {
      ok = get(s, a) && unary(op, ActFunc::Sigmoid, a, box, r);
    } else if (isa<arith::MulFOp>(d) && matchGelu2(d, x)) {
      ok = get(x, a) && unary(op, ActFunc::Gelu, a, box, r) &&
           binary(op, AluOp::Multiply, r, Val::immediate(2.0f), box, r);
    } else if (isa<arith::AddFOp>(d)) {
      ok = alu(AluOp::Add);
    } else if (isa<arith::SubFOp>(d)) {
      ok = alu(AluOp::Subtract);
    } else if (isa<arith::MulFOp>(d)) {
      if (d->getOperand(0) == d->getOperand(1))
        ok = act(ActFunc::Square);
      else
        ok = alu(AluOp::Multiply);
    } else if (isa<arith::DivFOp>(d)) {
      ok = alu(AluOp::Divide);
    } else if (isa<arith::MaximumFOp, arith::MaxNumFOp>(d)) {
      auto z0 = constantOf(d->getOperand(0)), z1 = constantOf(d->getOperand(1));
      if ((z1 && *z1 == 0.0f) || (z0 && *z0 == 0.0f))
        ok = get(d->getOperand(z1 ? 0 : 1), a) && unary(op, ActFunc::Relu, a, box, r);
      else
        ok = alu(AluOp::Max);
    } else if (isa<arith::MinimumFOp, arith::MinNumFOp>(d)) {
      ok = alu(AluOp::Min);
    } else if (isa<arith::NegFOp>(d)) {
      ok = get(d->getOperand(0), a) &&
           binary(op, AluOp::Multiply, a, Val::immediate(-1.0f), box, r);
    } else if (isa<math::ExpOp>(d)) {
      ok = act(ActFunc::Exp);
    } else if (isa<math::LogOp>(d)) {
      ok = act(ActFunc::Log);
    } else if (isa<math::TanhOp>(d)) {
      ok = act(ActFunc::Tanh);
    } else if (isa<math::SqrtOp>(d)) {
      ok = act(ActFunc::Sqrt);
    } else if (isa<math::RsqrtOp>(d)) {
      ok = act(ActFunc::Rsqrt);
    } else if (isa<math::AbsFOp>(d)) {
      ok = act(ActFunc::Abs);
    } else if (auto pw = dyn_cast<math::PowFOp>(d)) {
      auto k = constantOf(pw.getRhs());
      if (k && *k == 2.0f)
        ok = act(ActFunc::Square);
      else if (k && *k == 0.5f)
        ok = act(ActFunc::Sqrt);
      else if (k && *k == 1.0f)
        ok = get(d->getOperand(0), r);
      else
        return fail(d, "with a non-constant or unsupported exponent cannot run "
                       "on the npu (in " + op->getName().getStringRef() + ")");
    } else {
      return fail(d, "cannot run on the npu (in the body of " +
                         op->getName().getStringRef() + ")");
    }
    if (!ok)
      return false;
    env[v] = r;
    return true;
  };
  return get(result, out);
}

//===----------------------------------------------------------------------===//
// Evaluating ops on a box
//===----------------------------------------------------------------------===//

/// The value of `op`'s operand `operand` (indexing map `map`) on `box`.
bool KernelLowering::evalOperand(Operation *op, Value operand, AffineMap map, const Box &box,
                                 Val &out, bool resident) {
  if (!isa<MemRefType>(operand.getType())) {
    auto c = constantOf(operand);
    if (!c)
      return fail(op, "has a scalar operand that is not a constant");
    out = Val::immediate(*c);
    return true;
  }
  Value root = rootOf(operand);
  Operation *producer = versionAt.lookup({op, root});
  // Along which box dims the operand varies.
  bool variesAlongFree = false;
  for (unsigned d : box.fdims)
    if (map.isFunctionOfDim(d))
      variesAlongFree = true;
  bool perPart = !box.fdims.empty() && !variesAlongFree;
  if (producer && isFill(producer)) {
    auto v = fillValue(producer);
    if (!v)
      return fail(producer, "fills with a non-constant value");
    out = Val::immediate(*v);
    return true;
  }
  if (isBinding(root) && !(producer && foldedInit.contains(producer)))
    return loadTile(op, operand, map, box, perPart, out, resident);
  if (!producer)
    return fail(op, "reads a temporary nothing wrote");
  // A temporary (or a folded init): evaluate its producer on the box.
  if (operand != root || !map.isProjectedPermutation() ||
      !llvm::all_of(map.getResults(), [&](AffineExpr r) {
        return !isa<AffineConstantExpr>(r);
      }))
    return fail(op, "reads a temporary through a view or a non-projection map; "
                    "the npu lowering fuses temporaries only elementwise");
  Box pbox;
  if (!translate(producer, map, box, pbox))
    return false;
  return evalOp(producer, pbox, out);
}

/// Maps a box of a consumer (whose identity-mapped operand is the
/// producer's output) into the producer's iteration space.
bool KernelLowering::translate(Operation *producer, AffineMap cm, const Box &box, Box &out) {
  // Operand dim j is consumer dim cm(j) and producer dim om(j).
  SmallVector<unsigned> cdim;
  for (AffineExpr r : cm.getResults())
    cdim.push_back(cast<AffineDimExpr>(r).getPosition());
  if (isa<memref::CopyOp>(producer)) {
    if (!cm.isIdentity())
      return fail(producer, "internal: copy read through a non-identity map");
    out = box;
    return true;
  }
  auto g = cast<linalg::LinalgOp>(producer);
  AffineMap om = g.getMatchingIndexingMap(g.getDpsInitOperand(0));
  SmallVector<int64_t> ranges = g.getStaticLoopRanges();
  out.lo.assign(ranges.size(), 0);
  out.size = ranges;
  SmallVector<int> toProducer(box.lo.size(), -1);
  for (unsigned j = 0; j < om.getNumResults(); ++j) {
    auto d = dyn_cast<AffineDimExpr>(om.getResult(j));
    if (!d)
      return fail(producer, "writes a temporary through a non-projection map");
    toProducer[cdim[j]] = static_cast<int>(d.getPosition());
    out.lo[d.getPosition()] = box.lo[cdim[j]];
    out.size[d.getPosition()] = box.size[cdim[j]];
  }
  out.pdim = box.pdim < 0 ? -1 : toProducer[box.pdim];
  if (box.pdim >= 0 && out.pdim < 0)
    return fail(producer, "is read along dims it does not have (a broadcast "
                          "temporary); the npu lowering cannot fuse it");
  out.fdims.clear();
  for (unsigned d : box.fdims)
    if (toProducer[d] >= 0)
      out.fdims.push_back(static_cast<unsigned>(toProducer[d]));
    else
      return fail(producer, "is read along dims it does not have (a broadcast "
                            "temporary); the npu lowering cannot fuse it");
  return true;
}

bool KernelLowering::evalOp(Operation *op, const Box &box, Val &out) {
  if (auto c = dyn_cast<memref::CopyOp>(op)) {
    auto rank = cast<MemRefType>(c.getSource().getType()).getRank();
    return evalOperand(op, c.getSource(),
                       AffineMap::getMultiDimIdentityMap(rank, op->getContext()),
                       box, out);
  }
  if (isFill(op)) {
    auto v = fillValue(op);
    if (!v)
      return fail(op, "fills with a non-constant value");
    out = Val::immediate(*v);
    return true;
  }
  auto g = dyn_cast<linalg::GenericOp>(op);
  if (!g)
    return fail(op, "cannot run on the npu (generalize named ops first)");
  if (isContraction(op))
    return evalContraction(g, box, out);
  if (hasReductionDims(g))
    return evalReduction(g, box, out);
  Block &body = g.getRegion().front();
  DenseMap<Value, Val> env;
  for (OpOperand &operand : g->getOpOperands()) {
    BlockArgument arg = body.getArgument(operand.getOperandNumber());
    if (arg.use_empty())
      continue;
    Val v;
    if (!evalOperand(op, operand.get(), g.getMatchingIndexingMap(&operand), box, v))
      return false;
    env[arg] = v;
  }
  return evalBody(op, body, env, box, body.getTerminator()->getOperand(0), out);
}

} // namespace kiln::npu::lowering

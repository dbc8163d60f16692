//===- ExpandSmallFloats.cpp - f8/f4 extf and truncf as integer code ------===//
#include "kiln/Transforms/Passes.h"

#include "mlir/IR/PatternMatch.h"
#include "mlir/IR/TypeUtilities.h"

namespace kiln {
#define GEN_PASS_DEF_EXPANDSMALLFLOATS
#include "kiln/Transforms/Passes.h.inc"
} // namespace kiln

using namespace mlir;

namespace {

/// A small float format: sign bit (except ExpOnly), expBits, mantBits.
struct Format {
  unsigned expBits, mantBits;
  int64_t bias;
  enum Kind {
    Ieee,      // all-ones exponent: infinity (mantissa 0) or NaN
    FiniteNan, // no infinity; all ones is NaN (E4M3FN)
    Fnuz,      // no infinity, no -0; NaN is the sign bit alone
    Finite,    // no infinity or NaN (E2M1)
    ExpOnly,   // unsigned power of two; all ones is NaN (E8M0)
  } kind;
  unsigned width() const { return expBits + mantBits + (kind != ExpOnly); }
  uint64_t signBit() const { return uint64_t(1) << (expBits + mantBits); }
  /// Magnitude code of the largest finite value.
  uint64_t maxCode() const {
    uint64_t allOnes = signBit() - 1;
    switch (kind) {
    case Ieee: return allOnes - (uint64_t(1) << mantBits); // exponent all ones is special
    case FiniteNan: return allOnes - 1;
    default: return allOnes;
    }
  }
};

std::optional<Format> smallFormat(Type t) {
  if (isa<Float8E4M3FNType>(t)) return Format{4, 3, 7, Format::FiniteNan};
  if (isa<Float8E4M3FNUZType>(t)) return Format{4, 3, 8, Format::Fnuz};
  if (isa<Float8E5M2Type>(t)) return Format{5, 2, 15, Format::Ieee};
  if (isa<Float8E5M2FNUZType>(t)) return Format{5, 2, 16, Format::Fnuz};
  if (isa<Float4E2M1FNType>(t)) return Format{2, 1, 1, Format::Finite};
  if (isa<Float8E8M0FNUType>(t)) return Format{8, 0, 127, Format::ExpOnly};
  return std::nullopt;
}

/// Builds integer code over scalars or vectors of one shape.
struct Ints {
  OpBuilder &b;
  Location loc;
  Type shapeOf; // the operand's type: scalar or vector

  Type type(Type elem) const {
    if (auto v = dyn_cast<VectorType>(shapeOf))
      return v.clone(elem);
    return elem;
  }
  Type ity(unsigned w) const { return type(b.getIntegerType(w)); }
  Value c(unsigned w, uint64_t v) const {
    auto attr = b.getIntegerAttr(b.getIntegerType(w), APInt(w, v));
    if (auto vt = dyn_cast<VectorType>(shapeOf))
      return arith::ConstantOp::create(b, loc, DenseElementsAttr::get(vt.clone(attr.getType()),
                                                                      ArrayRef<Attribute>(attr)));
    return arith::ConstantOp::create(b, loc, attr);
  }
  Value and_(Value x, Value y) { return arith::AndIOp::create(b, loc, x, y); }
  Value or_(Value x, Value y) { return arith::OrIOp::create(b, loc, x, y); }
  Value add(Value x, Value y) { return arith::AddIOp::create(b, loc, x, y); }
  Value sub(Value x, Value y) { return arith::SubIOp::create(b, loc, x, y); }
  Value shr(Value x, Value y) { return arith::ShRUIOp::create(b, loc, x, y); }
  Value shl(Value x, Value y) { return arith::ShLIOp::create(b, loc, x, y); }
  Value cmp(arith::CmpIPredicate p, Value x, Value y) {
    return arith::CmpIOp::create(b, loc, p, x, y);
  }
  Value sel(Value cond, Value x, Value y) { return arith::SelectOp::create(b, loc, cond, x, y); }
  /// Rounds `x >> sh` to nearest, ties to even.
  Value shrRne(Value x, Value sh, unsigned w) {
    Value one = c(w, 1);
    Value half = sub(shl(one, sub(sh, one)), one);
    Value odd = and_(shr(x, sh), one);
    return shr(add(add(x, half), odd), sh);
  }
};

/// IEEE source formats of truncf, as (exponent bits, mantissa bits).
std::pair<unsigned, unsigned> ieeeFields(FloatType t) {
  unsigned m = t.getFPMantissaWidth() - 1;
  return {t.getWidth() - 1 - m, m};
}

struct ExpandSmallFloatsPass : kiln::impl::ExpandSmallFloatsBase<ExpandSmallFloatsPass> {
  void runOnOperation() override {
    SmallVector<Operation *> ops;
    getOperation().walk([&](Operation *op) {
      if (auto ext = dyn_cast<arith::ExtFOp>(op);
          ext && smallFormat(getElementTypeOrSelf(ext.getIn().getType())))
        ops.push_back(op);
      if (auto trunc = dyn_cast<arith::TruncFOp>(op);
          trunc && smallFormat(getElementTypeOrSelf(trunc.getType())))
        ops.push_back(op);
    });
    IRRewriter rewriter(&getContext());
    for (Operation *op : ops) {
      rewriter.setInsertionPoint(op);
      FailureOr<Value> r = isa<arith::ExtFOp>(op)
                               ? expandExtF(rewriter, cast<arith::ExtFOp>(op))
                               : expandTruncF(rewriter, cast<arith::TruncFOp>(op));
      if (failed(r))
        return signalPassFailure();
      rewriter.replaceOp(op, *r);
    }
  }

  /// Decodes to f32 (exact for every small format), then converts to the
  /// result type, also exactly.
  FailureOr<Value> expandExtF(OpBuilder &b, arith::ExtFOp op) {
    Location loc = op.getLoc();
    Type inTy = op.getIn().getType();
    Format f = *smallFormat(getElementTypeOrSelf(inTy));
    Ints I{b, loc, inTy};
    unsigned n = f.width();
    Value bits = arith::BitcastOp::create(b, loc, I.ity(n), op.getIn());
    Value w = arith::ExtUIOp::create(b, loc, I.ity(32), bits);
    using P = arith::CmpIPredicate;
    uint64_t expMask = (uint64_t(1) << f.expBits) - 1, mantMask = (uint64_t(1) << f.mantBits) - 1;
    Value exp = I.and_(I.shr(w, I.c(32, f.mantBits)), I.c(32, expMask));
    Value mant = I.and_(w, I.c(32, mantMask));
    Value zeroExp = I.cmp(P::eq, exp, I.c(32, 0));
    Value mag, isNan;
    if (f.kind == Format::ExpOnly) {
      // 2^(e - 127); e = 0 is the f32 subnormal 2^-127.
      mag = I.sel(zeroExp, I.c(32, 0x400000), I.shl(exp, I.c(32, 23)));
      isNan = I.cmp(P::eq, exp, I.c(32, expMask));
    } else {
      Value normal = I.or_(I.shl(I.add(exp, I.c(32, 127 - f.bias)), I.c(32, 23)),
                           I.shl(mant, I.c(32, 23 - f.mantBits)));
      // Subnormals: mant * 2^(1 - bias - mantBits), exact in f32.
      Type f32 = I.type(b.getF32Type());
      Value mf = arith::UIToFPOp::create(b, loc, f32, mant);
      float scale = std::ldexp(1.0f, int(1 - f.bias - int64_t(f.mantBits)));
      Value scaleC = arith::ConstantOp::create(
          b, loc, isa<VectorType>(f32)
                      ? (TypedAttr)DenseElementsAttr::get(cast<VectorType>(f32),
                                                          b.getF32FloatAttr(scale))
                      : (TypedAttr)b.getF32FloatAttr(scale));
      Value sub = arith::BitcastOp::create(b, loc, I.ity(32),
                                           arith::MulFOp::create(b, loc, mf, scaleC));
      mag = I.sel(zeroExp, sub, normal);
      Value allOnes = I.cmp(P::eq, exp, I.c(32, expMask));
      switch (f.kind) {
      case Format::Ieee: {
        mag = I.sel(allOnes, I.c(32, 0x7f800000), mag);
        isNan = I.and_(allOnes, I.cmp(P::ne, mant, I.c(32, 0)));
        break;
      }
      case Format::FiniteNan:
        isNan = I.and_(allOnes, I.cmp(P::eq, mant, I.c(32, mantMask)));
        break;
      case Format::Fnuz:
        isNan = I.cmp(P::eq, w, I.c(32, f.signBit()));
        break;
      default:
        isNan = I.cmp(P::ne, w, w); // never
      }
      Value sign = I.shl(I.shr(w, I.c(32, f.expBits + f.mantBits)), I.c(32, 31));
      mag = I.or_(mag, sign);
    }
    mag = I.sel(isNan, I.c(32, 0x7fc00000), mag);
    Value r = arith::BitcastOp::create(b, loc, I.type(b.getF32Type()), mag);
    Type outElem = getElementTypeOrSelf(op.getType());
    if (outElem.isF32())
      return r;
    if (outElem.getIntOrFloatBitWidth() > 32)
      return (Value)arith::ExtFOp::create(b, loc, op.getType(), r);
    return (Value)arith::TruncFOp::create(b, loc, op.getType(), r);
  }

  FailureOr<Value> expandTruncF(OpBuilder &b, arith::TruncFOp op) {
    Location loc = op.getLoc();
    Format f = *smallFormat(getElementTypeOrSelf(op.getType()));
    if (f.kind == Format::ExpOnly)
      return op.emitError("truncf to f8E8M0FNU is not supported"), failure();
    Value x = op.getIn();
    auto srcElem = cast<FloatType>(getElementTypeOrSelf(x.getType()));
    // f16 and bf16 widen exactly to f32 first, so that source subnormals
    // always round to zero below (no small format reaches down to them).
    if (srcElem.getWidth() < 32) {
      srcElem = b.getF32Type();
      Type t = isa<VectorType>(x.getType())
                   ? (Type)cast<VectorType>(x.getType()).clone(srcElem)
                   : (Type)srcElem;
      x = arith::ExtFOp::create(b, loc, t, x);
    }
    if (!srcElem.isF32() && !srcElem.isF64())
      return op.emitError("truncf from ") << srcElem << " is not supported", failure();
    auto [es, ms] = ieeeFields(srcElem);
    unsigned W = srcElem.getWidth();
    int64_t bs = (int64_t(1) << (es - 1)) - 1;
    Ints I{b, loc, x.getType()};
    using P = arith::CmpIPredicate;
    Value bits = arith::BitcastOp::create(b, loc, I.ity(W), x);
    Value sign = I.shr(bits, I.c(W, W - 1));
    Value abs = I.and_(bits, I.c(W, (uint64_t(1) << (W - 1)) - 1));
    uint64_t srcInf = ((uint64_t(1) << es) - 1) << ms;
    Value isNan = I.cmp(P::ugt, abs, I.c(W, srcInf));
    Value isInf = I.cmp(P::eq, abs, I.c(W, srcInf));
    Value e = I.shr(abs, I.c(W, ms));
    unsigned shift = ms - f.mantBits;
    // Smallest source exponent field that is a normal of the target.
    uint64_t eMinNormal = bs - f.bias + 1;
    Value isNormal = I.cmp(P::uge, e, I.c(W, eMinNormal));
    Value rebiased = I.sub(abs, I.c(W, uint64_t(bs - f.bias) << ms));
    Value normal = I.shrRne(rebiased, I.c(W, shift), W);
    // Subnormal target: shift the significand (implicit bit included) right
    // by one more per exponent step below the normal range.
    Value full = I.or_(I.and_(abs, I.c(W, (uint64_t(1) << ms) - 1)), I.c(W, uint64_t(1) << ms));
    Value sh = I.sub(I.c(W, shift + eMinNormal), e);
    sh = arith::MinUIOp::create(b, loc, sh, I.c(W, W - 1));
    Value subnormal = I.shrRne(full, sh, W);
    Value mag = I.sel(isNormal, normal, subnormal);

    uint64_t maxCode = f.maxCode();
    Value overflow = I.or_(I.cmp(P::ugt, mag, I.c(W, maxCode)), isInf);
    uint64_t overflowCode, nanCode;
    switch (f.kind) {
    case Format::Ieee:
      overflowCode = maxCode + 1; // infinity: all-ones exponent
      nanCode = (((uint64_t(1) << f.expBits) - 1) << f.mantBits) | (uint64_t(1) << (f.mantBits - 1));
      break;
    case Format::FiniteNan:
      overflowCode = nanCode = f.signBit() - 1;
      break;
    case Format::Fnuz:
      overflowCode = nanCode = f.signBit();
      break;
    default: // Finite: saturate; NaN is handled below.
      overflowCode = maxCode;
      nanCode = f.signBit();
      break;
    }
    mag = I.sel(overflow, I.c(W, overflowCode), mag);
    mag = I.sel(isNan, I.c(W, nanCode), mag);
    Value signOut = I.shl(sign, I.c(W, f.expBits + f.mantBits));
    if (f.kind == Format::Fnuz) // no -0
      signOut = I.sel(I.cmp(P::eq, mag, I.c(W, 0)), I.c(W, 0), signOut);
    Value code = I.or_(mag, signOut);
    // ml_dtypes, ONNX's reference, turns NaN into zero of the opposite sign.
    if (f.kind == Format::Finite)
      code = I.sel(isNan, arith::XOrIOp::create(b, loc, signOut, I.c(W, f.signBit())), code);
    Value narrow = arith::TruncIOp::create(b, loc, I.ity(f.width()), code);
    return (Value)arith::BitcastOp::create(b, loc, op.getType(), narrow);
  }
};

} // namespace

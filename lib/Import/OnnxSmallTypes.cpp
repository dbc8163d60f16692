//===- OnnxSmallTypes.cpp - ONNX casts of the 8-, 4- and 2-bit types ------===//
//
// FLOAT8*, FLOAT4E2M1, INT4/UINT4 and INT2/UINT2 are the MLIR types of the
// same name (iN for the integers, signless, with the importer's unsigned
// tracking). Arithmetic never happens in them: a cast widens them to f32 or
// i32 first and narrows at the end, so the only ops in these types that reach
// codegen are loads, stores, extf, truncf, extsi/extui and trunci.
// kiln-expand-small-floats (lib/Transforms) turns the float ones into integer
// code.
//
//===----------------------------------------------------------------------===//
#include "Importer.h"

using namespace kiln::detail;

bool kiln::detail::isSmallType(Type t) {
  if (isa<FloatType>(t))
    return t.getIntOrFloatBitWidth() <= 8;
  return isa<IntegerType>(t) && t.getIntOrFloatBitWidth() < 8 && !t.isInteger(1);
}

Value kiln::detail::castSmallScalar(OpBuilder &ob, Location l, Value v, Type to, bool fromU,
                                    bool saturate) {
  Type from = v.getType();
  Type f32 = ob.getF32Type(), i32 = ob.getI32Type();
  if (from == to)
    return v;
  // Widen a small source to f32 or i32 (exact), then cast from there.
  if (isSmallType(from)) {
    if (isa<FloatType>(from))
      v = arith::ExtFOp::create(ob, l, f32, v);
    else
      v = fromU ? (Value)arith::ExtUIOp::create(ob, l, i32, v)
                : (Value)arith::ExtSIOp::create(ob, l, i32, v);
    from = v.getType();
    if (!isSmallType(to)) {
      if (from == to)
        return v;
      if (isa<FloatType>(to) && isa<FloatType>(from))
        return to.getIntOrFloatBitWidth() > 32 ? (Value)arith::ExtFOp::create(ob, l, to, v)
                                               : (Value)arith::TruncFOp::create(ob, l, to, v);
      if (isa<FloatType>(to))
        return fromU ? (Value)arith::UIToFPOp::create(ob, l, to, v)
                     : (Value)arith::SIToFPOp::create(ob, l, to, v);
      if (to.isInteger(1)) {
        if (isa<FloatType>(from))
          return arith::CmpFOp::create(ob, l, arith::CmpFPredicate::UNE, v,
                                       arith::ConstantOp::create(ob, l, ob.getF32FloatAttr(0)));
        return arith::CmpIOp::create(ob, l, arith::CmpIPredicate::ne, v,
                                     arith::ConstantOp::create(ob, l, ob.getI32IntegerAttr(0)));
      }
      if (isa<FloatType>(from))
        v = arith::FPToSIOp::create(ob, l, ob.getI64Type(), v);
      from = v.getType();
      unsigned fw = from.getIntOrFloatBitWidth(), tw = to.getIntOrFloatBitWidth();
      if (fw == tw)
        return v;
      if (fw > tw)
        return arith::TruncIOp::create(ob, l, to, v);
      return fromU ? (Value)arith::ExtUIOp::create(ob, l, to, v)
                   : (Value)arith::ExtSIOp::create(ob, l, to, v);
    }
  }

  if (auto ft = dyn_cast<FloatType>(to)) {
    // Integers go through f32 (ONNX's reference casts them to float first).
    if (!isa<FloatType>(from))
      v = from.isInteger(1) || fromU ? (Value)arith::UIToFPOp::create(ob, l, f32, v)
                                     : (Value)arith::SIToFPOp::create(ob, l, f32, v);
    Type vt = v.getType();
    // saturate=1 clamps to the largest finite value (infinities included);
    // NaN stays NaN. FLOAT4E2M1 has no infinity or NaN and always saturates
    // (kiln-expand-small-floats).
    if (saturate && !isa<Float4E2M1FNType>(ft)) {
      double max = APFloat::getLargest(ft.getFloatSemantics()).convertToDouble();
      auto c = [&](double x) {
        return arith::ConstantOp::create(ob, l, ob.getFloatAttr(vt, x)).getResult();
      };
      v = arith::MinimumFOp::create(ob, l, v, c(max));
      v = arith::MaximumFOp::create(ob, l, v, c(-max));
    }
    return arith::TruncFOp::create(ob, l, to, v);
  }

  // To INT4/UINT4/INT2/UINT2: like ONNX's reference (ml_dtypes), truncate
  // floats toward zero, then keep the low bits (-3 becomes UINT2 1).
  if (isa<FloatType>(from))
    v = arith::FPToSIOp::create(ob, l, ob.getI64Type(), v);
  if (v.getType().isInteger(1))
    v = arith::ExtUIOp::create(ob, l, ob.getI8Type(), v);
  return arith::TruncIOp::create(ob, l, to, v);
}

Value kiln::detail::castToE8M0(OpBuilder &ob, Location l, Value v, bool fromU, bool saturate,
                               StringRef roundMode) {
  // ONNX's reference works on the float32 bits: the exponent field is the
  // result (the sign is dropped), rounded up by the fraction per round_mode.
  Type f32 = ob.getF32Type(), i32 = ob.getI32Type();
  Type from = v.getType();
  if (isSmallType(from) || !isa<FloatType>(from))
    v = castSmallScalar(ob, l, v, f32, fromU);
  else if (from.getIntOrFloatBitWidth() < 32)
    v = arith::ExtFOp::create(ob, l, f32, v);
  else if (!from.isF32())
    v = arith::TruncFOp::create(ob, l, f32, v);
  auto c = [&](int64_t x) {
    return arith::ConstantOp::create(ob, l, ob.getI32IntegerAttr(x)).getResult();
  };
  auto ne0 = [&](Value x) {
    return arith::CmpIOp::create(ob, l, arith::CmpIPredicate::ne, x, c(0)).getResult();
  };
  Value bits = arith::BitcastOp::create(ob, l, i32, v);
  Value exp = arith::AndIOp::create(ob, l, arith::ShRUIOp::create(ob, l, bits, c(23)), c(0xff));
  Value special = arith::CmpIOp::create(ob, l, arith::CmpIPredicate::eq, exp, c(0xff));
  Value roundUp;
  if (roundMode == "up") {
    roundUp = ne0(arith::AndIOp::create(ob, l, bits, c(0x7fffff)));
  } else if (roundMode == "nearest") {
    // Guard bit and (round, sticky or a non-zero exponent), as the reference.
    Value g = ne0(arith::AndIOp::create(ob, l, bits, c(0x400000)));
    Value rest = arith::OrIOp::create(ob, l, ne0(arith::AndIOp::create(ob, l, bits, c(0x3fffff))),
                                      ne0(exp));
    roundUp = arith::AndIOp::create(ob, l, g, rest);
  }
  if (roundUp) {
    if (saturate) // Stay at the largest finite value rather than reach NaN.
      roundUp = arith::AndIOp::create(
          ob, l, roundUp,
          arith::CmpIOp::create(ob, l, arith::CmpIPredicate::ne, exp, c(0xfe)));
    exp = arith::AddIOp::create(ob, l, exp,
                                arith::ExtUIOp::create(ob, l, i32, roundUp));
  }
  exp = arith::SelectOp::create(ob, l, special, c(0xff), exp);
  Value byte = arith::TruncIOp::create(ob, l, ob.getI8Type(), exp);
  return arith::BitcastOp::create(ob, l, ob.getType<Float8E8M0FNUType>(), byte);
}

LogicalResult kiln::detail::checkSmallTypeInputs(Importer &im) {
  // Ops that only move elements (or cast them) handle any element type; ONNX
  // allows no arithmetic on these types, and codegen has none for them.
  static const llvm::StringSet<> movers = {
      "Cast",    "CastLike",  "QuantizeLinear", "DequantizeLinear", "Identity",
      "Reshape", "Transpose", "Concat",         "Squeeze",          "Unsqueeze",
      "Flatten", "Slice",     "Gather",         "GatherElements",   "GatherND",
      "Split",   "Expand",    "Tile",           "Shape",            "Size",
      "Where"};
  if (movers.contains(im.node->op_type()))
    return success();
  for (int i = 0; i < im.node->input_size(); ++i) {
    if (!im.hasInput(i))
      continue;
    Type t = im.inputType(i).getElementType();
    if (isSmallType(t)) {
      std::string name;
      llvm::raw_string_ostream os(name);
      os << t;
      return im.fail("input '" + im.node->input(i) + "' has element type " + name +
                     ", which this op does not support (only casts, quantization and "
                     "data movement do)");
    }
  }
  return success();
}

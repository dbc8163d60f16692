//===- Analysis.cpp - buffers, versions, sinks ----------------------------===//
//
// Part of the npu kernel lowering (KernelLowering.h, design in NpuTarget.cpp):
// what each op writes and reads, which version of a buffer it sees, and which
// ops are sinks; and the errors, which name the op and its ONNX node.
//
//===----------------------------------------------------------------------===//
#include "KernelLowering.h"

namespace kiln::npu::lowering {

//===----------------------------------------------------------------------===//
// Errors
//===----------------------------------------------------------------------===//

bool KernelLowering::fail(Operation *op, const llvm::Twine &msg) {
  if (!error.empty())
    return false;
  std::string loc;
  llvm::raw_string_ostream os(loc);
  // The importer names locations after ONNX nodes.
  Location l = op ? op->getLoc() : fn.getLoc();
  if (auto fused = dyn_cast<FusedLoc>(l))
    l = fused.getLocations().empty() ? l : fused.getLocations().front();
  l.print(os);
  error = ("npu: kernel " + fn.getSymName() + ": " +
           (op ? "'" + op->getName().getStringRef() + "' " : llvm::Twine("")) +
           msg + " (" + loc + ")")
              .str();
  return false;
}

//===----------------------------------------------------------------------===//
// Analysis: buffers, versions, sinks
//===----------------------------------------------------------------------===//

/// The binding or alloca a memref value views.
Value KernelLowering::rootOf(Value v) {
  while (Operation *def = v.getDefiningOp()) {
    if (auto sv = dyn_cast<memref::SubViewOp>(def))
      v = sv.getSource();
    else if (auto ex = dyn_cast<memref::ExpandShapeOp>(def))
      v = ex.getSrc();
    else if (auto co = dyn_cast<memref::CollapseShapeOp>(def))
      v = co.getSrc();
    else if (auto c = dyn_cast<memref::CastOp>(def))
      v = c.getSource();
    else if (auto rc = dyn_cast<memref::ReinterpretCastOp>(def))
      v = rc.getSource();
    else
      break;
  }
  return v;
}

bool KernelLowering::isBinding(Value root) {
  auto arg = dyn_cast<BlockArgument>(root);
  return arg && arg.getOwner()->getParentOp() == fn.getOperation();
}

bool KernelLowering::analyze() {
  for (BlockArgument a : fn.getArguments()) {
    auto t = dyn_cast<MemRefType>(a.getType());
    if (!t || !t.hasStaticShape())
      return fail(nullptr, "bindings must be statically shaped memrefs");
    Region &r = regions.emplace_back();
    r.space = Space::Hbm;
    hbm[a] = &r;
  }
  for (Operation &op : fn.getBody().front()) {
    if (isa<arith::ConstantOp, memref::AllocaOp, memref::AllocOp,
            memref::SubViewOp, memref::ExpandShapeOp,
            memref::CollapseShapeOp, memref::CastOp,
            memref::ReinterpretCastOp, func::ReturnOp,
            memref::DeallocOp>(op))
      continue;
    Value out;
    if (auto g = dyn_cast<linalg::LinalgOp>(op)) {
      if (g.getNumDpsInits() != 1)
        return fail(&op, "with several outputs cannot run on the npu");
      out = g.getDpsInitOperand(0)->get();
    } else if (auto c = dyn_cast<memref::CopyOp>(op)) {
      out = c.getTarget();
    } else {
      return fail(&op, "cannot run on the npu");
    }
    for (Value v : op.getOperands())
      if (auto t = dyn_cast<MemRefType>(v.getType()))
        if (!t.getElementType().isF32())
          return fail(&op, "on " + typeName(t.getElementType()) +
                               " elements cannot run on the npu (f32 only)");
    for (Value v : op.getOperands())
      if (isa<MemRefType>(v.getType()))
        versionAt[{&op, rootOf(v)}] = current.lookup(rootOf(v));
    Value root = rootOf(out);
    current[root] = &op;
    ops.push_back(&op);
  }
  // Sinks: every op writing a binding, except a fill whose only reader is
  // the op that overwrites it (an init, folded into that op).
  for (Operation *op : ops) {
    Value root = rootOf(outputOf(op));
    if (!isBinding(root))
      continue;
    if (isFill(op) || isElementwise(op)) {
      unsigned readers = 0;
      for (Operation *other : ops)
        if (other != op && versionAt.lookup({other, root}) == op)
          ++readers;
      Operation *next = nullptr;
      for (Operation *other : ops)
        if (versionAt.lookup({other, root}) == op && writesRoot(other, root))
          next = other;
      if (readers == 1 && next && (isReduction(next) || isContraction(next))) {
        foldedInit.insert(op);
        continue;
      }
    }
    sinks.push_back(op);
  }
  return true;
}

/// All-parallel generic writing through an identity map.
bool KernelLowering::isElementwise(Operation *op) {
  auto g = dyn_cast<linalg::GenericOp>(op);
  return g && !hasReductionDims(g) &&
         g.getMatchingIndexingMap(g.getDpsInitOperand(0)).isIdentity();
}

std::string KernelLowering::typeName(Type t) {
  std::string s;
  llvm::raw_string_ostream os(s);
  t.print(os);
  return s;
}

Value KernelLowering::outputOf(Operation *op) {
  if (auto g = dyn_cast<linalg::LinalgOp>(op))
    return g.getDpsInitOperand(0)->get();
  return cast<memref::CopyOp>(op).getTarget();
}

bool KernelLowering::isFill(Operation *op) {
  if (isa<linalg::FillOp>(op))
    return true;
  auto g = dyn_cast<linalg::GenericOp>(op);
  return g && g.getNumDpsInputs() == 1 &&
         !isa<ShapedType>(g.getDpsInputOperand(0)->get().getType()) &&
         g.getRegion().front().getTerminator()->getOperand(0) ==
             g.getRegion().front().getArgument(0);
}

/// The scalar a fill writes, if it is a constant.
std::optional<float> KernelLowering::fillValue(Operation *op) {
  Value v = isa<linalg::FillOp>(op)
                ? cast<linalg::FillOp>(op).getInputs()[0]
                : cast<linalg::GenericOp>(op).getDpsInputOperand(0)->get();
  return constantOf(v);
}

std::optional<float> KernelLowering::constantOf(Value v) {
  FloatAttr f;
  if (auto c = v.getDefiningOp<arith::ConstantOp>())
    if ((f = dyn_cast<FloatAttr>(c.getValue())))
      return static_cast<float>(f.getValueAsDouble());
  return std::nullopt;
}

bool KernelLowering::hasReductionDims(linalg::GenericOp g) {
  return llvm::any_of(g.getIteratorTypesArray(), [](utils::IteratorType t) {
    return t == utils::IteratorType::reduction;
  });
}

/// A generic whose body is out = out OP f(ins).
bool KernelLowering::isReduction(Operation *op) {
  auto g = dyn_cast<linalg::GenericOp>(op);
  return g && hasReductionDims(g) && !isContraction(op) && combiner(g).first;
}

/// The op combining %out with the rest, and the rest.
std::pair<Operation *, Value> KernelLowering::combiner(linalg::GenericOp g) {
  Block &body = g.getRegion().front();
  Value outArg = body.getArguments().back();
  Operation *y = body.getTerminator()->getOperand(0).getDefiningOp();
  if (!y || !isa<arith::AddFOp, arith::MulFOp, arith::MaximumFOp,
                 arith::MinimumFOp, arith::MaxNumFOp, arith::MinNumFOp>(y))
    return {nullptr, Value()};
  if (y->getOperand(0) == outArg && y->getOperand(1) != outArg)
    return {y, y->getOperand(1)};
  if (y->getOperand(1) == outArg && y->getOperand(0) != outArg)
    return {y, y->getOperand(0)};
  return {nullptr, Value()};
}

} // namespace kiln::npu::lowering

//===- Reduction.cpp - reductions on a box --------------------------------===//
//
// Part of the npu kernel lowering (KernelLowering.h, design in NpuTarget.cpp):
// reductions reduce the innermost free dims with tensor_reduce, or with
// activation's accumulate when a function or affine precedes them.
//
//===----------------------------------------------------------------------===//
#include "KernelLowering.h"

namespace kiln::npu::lowering {

bool KernelLowering::evalReduction(linalg::GenericOp g, const Box &box, Val &out) {
  Operation *op = g;
  auto [comb, pre] = combiner(g);
  if (!comb)
    return fail(op, "is a reduction whose body the npu cannot run");
  AluOp alu = isa<arith::AddFOp>(comb)                          ? AluOp::Add
              : isa<arith::MulFOp>(comb)                        ? AluOp::Multiply
              : isa<arith::MaximumFOp, arith::MaxNumFOp>(comb) ? AluOp::Max
                                                                : AluOp::Min;
  // Reduced dims become the innermost free dims of the input tiles.
  Box ext = box;
  SmallVector<unsigned> rdims;
  auto iters = g.getIteratorTypesArray();
  int64_t reduced = 1;
  for (unsigned d = 0; d < iters.size(); ++d)
    if (iters[d] == utils::IteratorType::reduction) {
      rdims.push_back(d);
      ext.fdims.push_back(d);
      reduced *= ext.size[d];
    }
  if (ext.fdims.size() > npu::kMaxFreeDims)
    return fail(op, "reduces over more dims than an npu tile has free dims");
  if (reduced * box.freeSize() > kReduceBudget)
    return fail(op, "reduces " + llvm::Twine(reduced) +
                        " elements per row; more than the npu lowering keeps "
                        "in SBUF (" + llvm::Twine(kReduceBudget) + ")");
  Block &body = g.getRegion().front();
  DenseMap<Value, Val> env;
  for (OpOperand *operand : g.getDpsInputOperands()) {
    BlockArgument arg = body.getArgument(operand->getOperandNumber());
    if (arg.use_empty())
      continue;
    Val v;
    if (!evalOperand(op, operand->get(), g.getMatchingIndexingMap(operand), ext, v))
      return false;
    env[arg] = v;
  }
  Val x;
  if (!evalBody(op, body, env, ext, pre, x))
    return false;
  if (x.isImm || x.perPart) {
    if (!broadcast(op, x, ext))
      return false;
  }
  SmallVector<int64_t> outFree = freeShape(box);
  if (outFree.empty())
    outFree.push_back(1);
  Val acc;
  Region *r = allocTile(op, Space::Sbuf, ext.partitions(), outFree, DType::F32, acc.ap);
  if (!r)
    return false;
  acc.reg = r;
  acc.perPart = false;
  AccessPattern dst = acc.ap;
  if (x.pending() && box.fdims.empty() && alu != AluOp::Multiply) {
    // One activation applies the pending function and reduces the row.
    AccessPattern junk;
    Region *j = allocTile(op, Space::Sbuf, ext.partitions(), freeShape(ext),
                          DType::F32, junk);
    if (!j)
      return false;
    SmallVector<Region *> reads = {x.reg};
    npu::ScalarOperand bias(x.biasImm);
    if (x.biasIsAp) {
      reads.push_back(x.biasReg);
      bias = npu::ScalarOperand(x.biasAp);
    }
    AccessPattern src = x.ap;
    e.emit(scalar(), reads, {j, r}, [&](auto &s) {
      s.activationReduce(junk, src, x.func, npu::ScalarOperand(x.scale), bias,
                         alu, dst);
    });
  } else {
    if (!materialize(op, x, ext))
      return false;
    // tensor_reduce drops the innermost dim; repeat per reduced dim.
    AccessPattern cur = x.ap;
    Region *curReg = x.reg;
    for (size_t k = 0; k < rdims.size(); ++k) {
      SmallVector<int64_t> shape = freeShape(ext);
      shape.resize(shape.size() - k - 1);
      AccessPattern next;
      Region *nr = k + 1 == rdims.size() ? r : nullptr;
      if (nr)
        next = dst;
      else if (!(nr = allocTile(op, Space::Sbuf, ext.partitions(),
                                shape.empty() ? SmallVector<int64_t>{1} : shape,
                                DType::F32, next)))
        return false;
      e.emit(vector(), {curReg}, {nr},
             [&](auto &s) { s.tensorReduce(next, cur, alu); });
      cur = next;
      curReg = nr;
    }
  }
  // Combine with the initial value unless it is the op's identity.
  Val init;
  if (!evalOperand(op, g.getDpsInitOperand(0)->get(),
                   g.getMatchingIndexingMap(g.getDpsInitOperand(0)), box, init))
    return false;
  float identity = alu == AluOp::Add        ? 0.0f
                   : alu == AluOp::Multiply ? 1.0f
                   : alu == AluOp::Max      ? -INFINITY
                                            : INFINITY;
  if (init.isImm && init.imm == identity) {
    out = acc;
    return true;
  }
  return binary(op, alu, acc, init, box, out);
}

} // namespace kiln::npu::lowering

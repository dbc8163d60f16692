//===- ReassociateReductions.cpp - let LLVM vectorize float reductions ----===//
//
// kiln-cpu-reassociate-reductions: in a linalg op with reduction loops, the
// float op that folds an element into the accumulator (the body op reading
// the output argument: addf for sums, mulf, maximumf...) is marked
// `reassoc`. LLVM's loop vectorizer only splits a float reduction into
// vector lanes when it may reorder it; without the flag a Softmax's row sum,
// a LayerNorm's mean or a ReduceMax stays one scalar chain. Summing in lanes
// reorders the additions as onnxruntime's vectorized kernels do; the
// register-tiled contractions are already vectors by then and unaffected.
//
//===----------------------------------------------------------------------===//
#include "Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Pass/Pass.h"

namespace kiln {
#define GEN_PASS_DEF_CPUREASSOCIATEREDUCTIONS
#include "backends/cpu/compiler/Passes.h.inc"
} // namespace kiln

using namespace mlir;

namespace {

struct ReassociateReductionsPass
    : kiln::impl::CpuReassociateReductionsBase<ReassociateReductionsPass> {
  void runOnOperation() override {
    getOperation().walk([](linalg::GenericOp op) {
      if (op.getNumReductionLoops() == 0)
        return;
      Block &body = op.getRegion().front();
      for (BlockArgument out : body.getArguments().drop_front(op.getNumDpsInputs()))
        for (Operation *user : out.getUsers())
          if (auto fm = dyn_cast<arith::ArithFastMathInterface>(user);
              fm && isa<arith::AddFOp, arith::MulFOp, arith::MaximumFOp, arith::MinimumFOp,
                        arith::MaxNumFOp, arith::MinNumFOp>(user)) {
            arith::FastMathFlagsAttr old = fm.getFastMathFlagsAttr();
            auto flags = (old ? old.getValue() : arith::FastMathFlags::none) |
                         arith::FastMathFlags::reassoc;
            user->setAttr(fm.getFastMathAttrName(),
                          arith::FastMathFlagsAttr::get(op.getContext(), flags));
          }
    });
  }
};

} // namespace

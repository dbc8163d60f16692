//===- Contraction.cpp - the Tensor Engine --------------------------------===//
//
// Part of the npu kernel lowering (KernelLowering.h, design in NpuTarget.cpp):
// contractions run on the Tensor Engine, accumulated over K in PSUM; and a
// kernel that is one plain large matmul takes the hand-tuned schedule of
// backends/npu/gemm instead (lowerPlainMatmul).
//
//===----------------------------------------------------------------------===//
#include "KernelLowering.h"
#include "gemm/Gemm.h"

namespace kiln::npu::lowering {

/// The two factors of a contraction body out + X * Y.
std::pair<Value, Value> KernelLowering::factors(linalg::GenericOp g) {
  Block &body = g.getRegion().front();
  Operation *y = body.getTerminator()->getOperand(0).getDefiningOp();
  Value outArg = body.getArguments().back();
  Value m = y->getOperand(0) == outArg ? y->getOperand(1) : y->getOperand(0);
  Operation *mul = m.getDefiningOp();
  return {mul->getOperand(0), mul->getOperand(1)};
}

/// The block arguments a body value is computed from.
void KernelLowering::argsOf(Value v, llvm::SmallPtrSetImpl<Value> &args) {
  // Only the body's own arguments: a value from outside (a binding read
  // with memref.load) makes evalBody report the op instead.
  if (auto a = dyn_cast<BlockArgument>(v)) {
    if (isa<linalg::GenericOp>(a.getOwner()->getParentOp()))
      args.insert(v);
    return;
  }
  if (Operation *d = v.getDefiningOp())
    for (Value o : d->getOperands())
      argsOf(o, args);
}

/// Whether a side (its block arguments' maps) varies along `dim`.
bool KernelLowering::sideUses(linalg::GenericOp g, const llvm::SmallPtrSetImpl<Value> &args,
                              int dim) {
  if (dim < 0)
    return false;
  for (Value a : args) {
    auto arg = cast<BlockArgument>(a);
    if (arg.getArgNumber() < g.getNumDpsInputs() &&
        g.getMatchingIndexingMap(g.getDpsInputOperand(arg.getArgNumber()))
            .isFunctionOfDim(dim))
      return true;
  }
  return false;
}

/// Whether a contraction is out + X * Y with X and Y over disjoint inputs.
bool KernelLowering::isContraction(Operation *op) {
  auto g = dyn_cast<linalg::GenericOp>(op);
  if (!g || !hasReductionDims(g))
    return false;
  Block &body = g.getRegion().front();
  Operation *y = body.getTerminator()->getOperand(0).getDefiningOp();
  if (!isa_and_nonnull<arith::AddFOp>(y))
    return false;
  Value outArg = body.getArguments().back();
  if (y->getOperand(0) != outArg && y->getOperand(1) != outArg)
    return false;
  Value other = y->getOperand(0) == outArg ? y->getOperand(1) : y->getOperand(0);
  if (!other.getDefiningOp<arith::MulFOp>())
    return false;
  auto [x, z] = factors(g);
  llvm::SmallPtrSet<Value, 4> xa, za;
  argsOf(x, xa);
  argsOf(z, za);
  if (xa.empty() || za.empty() || xa.contains(outArg) || za.contains(outArg))
    return false;
  for (Value a : xa)
    if (za.contains(a))
      return false;
  return true;
}

/// Runs a contraction on the Tensor Engine: PSUM[m, n] += sum_k
/// AT[k, m] * B[k, n], the stationary side the factor varying along M.
bool KernelLowering::evalContraction(linalg::GenericOp g, const Box &box, Val &out) {
  Operation *op = g;
  SmallVector<unsigned> kdims;
  auto iters = g.getIteratorTypesArray();
  for (unsigned d = 0; d < iters.size(); ++d)
    if (iters[d] == utils::IteratorType::reduction)
      kdims.push_back(d);
  // The largest contraction dim goes on partitions; others loop.
  unsigned kp = kdims.front();
  for (unsigned d : kdims)
    if (box.size[d] > box.size[kp])
      kp = d;
  int mdim = box.pdim, ndim = box.fdims.empty() ? -1 : static_cast<int>(box.fdims[0]);
  auto [x, z] = factors(g);
  llvm::SmallPtrSet<Value, 4> xa, za;
  argsOf(x, xa);
  argsOf(z, za);
  bool xIsA = mdim >= 0 ? sideUses(g, xa, mdim) : !sideUses(g, xa, ndim);
  Value aFactor = xIsA ? x : z, bFactor = xIsA ? z : x;
  if ((mdim >= 0 && sideUses(g, xIsA ? za : xa, mdim)) ||
      (ndim >= 0 && sideUses(g, xIsA ? xa : za, ndim)))
    return fail(op, "is a contraction whose output dims the npu tiles cannot "
                    "separate between the two factors");
  int64_t M = box.partitions(), N = ndim < 0 ? 1 : box.size[ndim];
  AccessPattern acc;
  Region *pr = allocTile(op, Space::Psum, M, {N}, DType::F32, acc);
  if (!pr)
    return false;
  // Every combination of the other contraction dims, then K chunks.
  SmallVector<unsigned> outerK;
  for (unsigned d : kdims)
    if (d != kp)
      outerK.push_back(d);
  int64_t outerCount = 1;
  for (unsigned d : outerK)
    outerCount *= box.size[d];
  int64_t K = box.size[kp];
  int64_t chunks = (K + 127) / 128;
  bool first = true;
  for (int64_t oc = 0; oc < outerCount; ++oc) {
    Box kb = box;
    int64_t rem = oc;
    for (auto it = outerK.rbegin(); it != outerK.rend(); ++it) {
      kb.lo[*it] = box.lo[*it] + rem % box.size[*it];
      kb.size[*it] = 1;
      rem /= box.size[*it];
    }
    for (int64_t c = 0; c < chunks; ++c) {
      kb.lo[kp] = box.lo[kp] + c * 128;
      kb.size[kp] = std::min<int64_t>(128, K - c * 128);
      Box abox = kb, bbox = kb;
      abox.pdim = static_cast<int>(kp);
      abox.fdims.clear();
      if (mdim >= 0)
        abox.fdims.push_back(static_cast<unsigned>(mdim));
      bbox.pdim = static_cast<int>(kp);
      bbox.fdims.clear();
      if (ndim >= 0)
        bbox.fdims.push_back(static_cast<unsigned>(ndim));
      Val at, bt;
      if (!matmulOperand(g, aFactor, abox, 'A', at) ||
          !matmulOperand(g, bFactor, bbox, 'B', bt))
        return false;
      AccessPattern stat = at.ap, mov = bt.ap, dst = acc;
      bool accumulate = !first;
      e.emit(tensor(), {at.reg}, {}, [&](auto &s) { s.loadStationary(stat); });
      e.emit(tensor(), {bt.reg}, {pr},
             [&](auto &s) { s.matmul(dst, mov, accumulate); });
      first = false;
    }
  }
  out = Val();
  out.reg = pr;
  out.ap = acc;
  // The initial value (not a folded zero fill) is added afterwards.
  Val init;
  if (!evalOperand(op, g.getDpsInitOperand(0)->get(),
                   g.getMatchingIndexingMap(g.getDpsInitOperand(0)), box, init))
    return false;
  if (init.isImm && init.imm == 0.0f)
    return true;
  return binary(op, AluOp::Add, out, init, box, out);
}

/// One factor of a contraction on a [K, M or N] box, computed from its
/// inputs (prologue fusion), in the matmul dtype. Kept resident and reused
/// while the sink runs if it fits the budget.
bool KernelLowering::matmulOperand(linalg::GenericOp g, Value factor, const Box &box, char side,
                                   Val &out) {
  Operation *op = g;
  Block &body = g.getRegion().front();
  llvm::SmallPtrSet<Value, 4> args;
  argsOf(factor, args);
  std::string key;
  llvm::raw_string_ostream os(key);
  os << side;
  for (size_t d = 0; d < box.lo.size(); ++d)
    if (sideUses(g, args, static_cast<int>(d)))
      os << "," << d << ":" << box.lo[d] << "+" << box.size[d];
  if (auto it = operandCache.find(key); it != operandCache.end()) {
    out = it->second;
    return true;
  }
  int64_t bytes = std::max<int64_t>(box.freeSize(), 1) * npu::dtypeSize(mmType);
  bool resident = residentBytes + bytes <= kResidentBytes;
  auto arg = dyn_cast<BlockArgument>(factor);
  bool direct = arg && mmType == DType::F32;
  if (arg) {
    OpOperand *o = g.getDpsInputOperand(arg.getArgNumber());
    if (!evalOperand(op, o->get(), g.getMatchingIndexingMap(o), box, out, direct && resident))
      return false;
  } else {
    DenseMap<Value, Val> env;
    for (Value a : args) {
      OpOperand *o = g.getDpsInputOperand(cast<BlockArgument>(a).getArgNumber());
      Val v;
      if (!evalOperand(op, o->get(), g.getMatchingIndexingMap(o), box, v))
        return false;
      env[a] = v;
    }
    if (!evalBody(op, body, env, box, factor, out))
      return false;
  }
  if (!broadcast(op, out, box) || !materialize(op, out, box))
    return false;
  if (!(direct && resident) && (mmType != DType::F32 || resident)) {
    // The Tensor Engine takes bf16: round on GpSimd, which is otherwise
    // idle; also the copy that keeps a computed operand resident.
    Val c;
    SmallVector<int64_t> free = freeShape(box);
    if (free.empty())
      free.push_back(1);
    Region *r = allocTile(op, Space::Sbuf, box.partitions(), free, mmType, c.ap,
                          resident);
    if (!r)
      return false;
    c.reg = r;
    AccessPattern dst = c.ap, src = out.ap;
    e.emit(gpsimd(), {out.reg}, {r}, [&](auto &s) { s.copy(dst, src); });
    out = c;
  }
  if (resident) {
    residentBytes += (bytes + 63) / 64 * 64;
    operandCache[key] = out;
  }
  return true;
}

//===----------------------------------------------------------------------===//
// The GEMM schedule
//===----------------------------------------------------------------------===//

/// The smallest M, N and K a kernel needs for the GEMM schedule: below it
/// DMA start-up dominates and the generic lowering does as well.
constexpr int64_t kGemmMinDim = 512;

/// Whether `v` is the f32 constant 0.
bool isZeroConstant(Value v) {
  auto c = v.getDefiningOp<arith::ConstantOp>();
  auto f = c ? dyn_cast<FloatAttr>(c.getValue()) : FloatAttr();
  return f && f.getValue().isZero();
}

/// A kernel that is exactly C = 0; C += A x B over three distinct bindings
/// (f32, identity layouts, 2-D) becomes the hand-scheduled GEMM of
/// backends/npu/gemm. Any other kernel, or a GEMM the schedule cannot
/// place, returns nullopt and takes the generic lowering.
std::optional<npu::Program> lowerPlainMatmul(func::FuncOp fn,
                                             const npu::MachineModel &model,
                                             DType mmType) {
  SmallVector<linalg::GenericOp> gs;
  for (Operation &op : fn.getBody().front()) {
    if (isa<arith::ConstantOp, func::ReturnOp>(op))
      continue;
    auto g = dyn_cast<linalg::GenericOp>(op);
    if (!g)
      return std::nullopt;
    gs.push_back(g);
  }
  if (gs.size() != 2)
    return std::nullopt;
  linalg::GenericOp fill = gs[0], mm = gs[1];
  auto bindingArg = [&](Value v) -> int {
    auto a = dyn_cast<BlockArgument>(v);
    auto t = dyn_cast<MemRefType>(v.getType());
    if (!a || a.getOwner()->getParentOp() != fn.getOperation() || !t ||
        !t.hasStaticShape() || t.getRank() != 2 || !t.getElementType().isF32() ||
        !t.getLayout().isIdentity())
      return -1;
    return static_cast<int>(a.getArgNumber());
  };
  // The zero fill of C.
  if (fill.getNumDpsInits() != 1 || fill.getNumDpsInputs() > 1 ||
      fill.getNumReductionLoops() != 0 ||
      !fill.getMatchingIndexingMap(fill.getDpsInitOperand(0)).isIdentity())
    return std::nullopt;
  Value fillOut = fill.getDpsInitOperand(0)->get();
  {
    Block &body = fill.getRegion().front();
    if (body.getOperations().size() != 1)
      return std::nullopt;
    Value y = body.getTerminator()->getOperand(0);
    bool zero = isZeroConstant(y);
    if (auto a = dyn_cast<BlockArgument>(y);
        a && a.getOwner() == &body && a.getArgNumber() == 0 &&
        fill.getNumDpsInputs() == 1)
      zero = isZeroConstant(fill.getDpsInputOperand(0)->get());
    if (!zero)
      return std::nullopt;
  }
  // The contraction: out + x * y, three loops, one reduction.
  if (mm.getNumDpsInputs() != 2 || mm.getNumDpsInits() != 1 ||
      mm.getNumLoops() != 3 || mm.getNumReductionLoops() != 1)
    return std::nullopt;
  Block &body = mm.getRegion().front();
  if (body.getOperations().size() != 3)
    return std::nullopt;
  auto add = body.getTerminator()->getOperand(0).getDefiningOp<arith::AddFOp>();
  if (!add)
    return std::nullopt;
  Value out = body.getArgument(2);
  Value prod = add.getLhs() == out ? add.getRhs() : add.getLhs();
  if ((add.getLhs() == out) == (add.getRhs() == out))
    return std::nullopt;
  auto mul = prod.getDefiningOp<arith::MulFOp>();
  if (!mul || !((mul.getLhs() == body.getArgument(0) && mul.getRhs() == body.getArgument(1)) ||
                (mul.getLhs() == body.getArgument(1) && mul.getRhs() == body.getArgument(0))))
    return std::nullopt;
  Value cV = mm.getDpsInitOperand(0)->get();
  int c = bindingArg(cV), x = bindingArg(mm.getDpsInputOperand(0)->get()),
      y = bindingArg(mm.getDpsInputOperand(1)->get());
  if (cV != fillOut || c < 0 || x < 0 || y < 0 || c == x || c == y)
    return std::nullopt;
  // Loop dims: C's map names m and n; k is the reduction.
  AffineMap cm = mm.getMatchingIndexingMap(mm.getDpsInitOperand(0));
  auto dimOf = [](AffineMap map, unsigned r) -> int {
    auto d = dyn_cast<AffineDimExpr>(map.getResult(r));
    return d ? static_cast<int>(d.getPosition()) : -1;
  };
  if (cm.getNumResults() != 2)
    return std::nullopt;
  int dm = dimOf(cm, 0), dn = dimOf(cm, 1), dk = -1;
  auto iters = mm.getIteratorTypesArray();
  for (unsigned d = 0; d < 3; ++d)
    if (iters[d] == utils::IteratorType::reduction)
      dk = static_cast<int>(d);
  if (dm < 0 || dn < 0 || dm == dn || dk < 0)
    return std::nullopt;
  SmallVector<int64_t> ranges = mm.getStaticLoopRanges();
  // Element strides of an input along two loop dims; false if its map is
  // not exactly those two dims.
  auto strides = [&](unsigned operand, int d0, int d1, int64_t &s0, int64_t &s1) {
    AffineMap map = mm.getMatchingIndexingMap(mm.getDpsInputOperand(operand));
    auto shape = cast<MemRefType>(mm.getDpsInputOperand(operand)->get().getType()).getShape();
    if (map.getNumResults() != 2)
      return false;
    int r0 = dimOf(map, 0), r1 = dimOf(map, 1);
    int64_t st[2] = {shape[1], 1};
    if (r0 == d0 && r1 == d1) {
      s0 = st[0];
      s1 = st[1];
      return true;
    }
    if (r0 == d1 && r1 == d0) {
      s0 = st[1];
      s1 = st[0];
      return true;
    }
    return false;
  };
  npu::GemmSpec spec;
  spec.M = ranges[dm];
  spec.N = ranges[dn];
  spec.K = ranges[dk];
  unsigned aOp = 0, bOp = 1;
  if (!strides(0, dm, dk, spec.aM, spec.aK)) {
    aOp = 1;
    bOp = 0;
    if (!strides(1, dm, dk, spec.aM, spec.aK))
      return std::nullopt;
  }
  if (!strides(bOp, dk, dn, spec.bK, spec.bN))
    return std::nullopt;
  spec.aTensor = static_cast<unsigned>(aOp == 0 ? x : y);
  spec.bTensor = static_cast<unsigned>(bOp == 0 ? x : y);
  spec.cTensor = static_cast<unsigned>(c);
  auto cShape = cast<MemRefType>(cV.getType()).getShape();
  spec.cM = cShape[1];
  spec.cN = 1;
  if (spec.M < kGemmMinDim || spec.N < kGemmMinDim || spec.K < kGemmMinDim)
    return std::nullopt;
  spec.dtype = mmType;
  spec.inType = DType::F32;
  npu::GemmPlan plan = npu::planGemm(spec, model);
  if (!plan.why.empty())
    return std::nullopt;
  npu::Program p = npu::buildGemm(spec, plan, model, fn.getSymName().str());
  if (!npu::verify(p).empty())
    return std::nullopt;
  return p;
}

} // namespace kiln::npu::lowering

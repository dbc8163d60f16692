//===- VectorizeContractions.cpp - register-tiled contraction micro-kernels ===//
//
// kiln-cpu-vectorize-contractions: every contraction the register-tile matcher
// accepts (kiln/Transforms/RegisterTile.h: MatMul, Gemm, batched MatMul,
// convolutions of stride 1 and 2, depthwise ones) becomes loops over
// Mr x (NV * VL) tiles whose accumulators are vectors carried through the
// reduction loops in registers. Per reduction step a tile loads NV vectors of
// `rhs`, broadcasts Mr scalars of `lhs` and applies the op's own body to
// Mr x NV vectors; mulf and addf are marked `contract`, so LLVM emits FMAs.
// The accumulators start from the op that initialised the result (a fill, a
// bias broadcast: `matchInit`), and the kernel's elementwise epilogue, if
// any, runs on them before the only store (`matchEpilogue`). A wide `rhs`
// shared by many row tiles is first copied into a contiguous panel
// (`makePanel`) unless it is already stored in panels (a packed constant),
// and reductions past kBlockedSteps run in blocks across the row tiles.
//
// Shapes that do not divide the tile: columns past the last whole tile are
// masked vector loads and stores; rows left over are one smaller tile when the
// extent is static, else tiles of one row (still vectors along n). Nothing
// falls back to scalar code. The scalar loop nest stays for what the matcher
// or the stride check refuses.
//
//===----------------------------------------------------------------------===//
#include "Passes.h"
#include "kiln/Transforms/RegisterTile.h"

#include "mlir/Dialect/Affine/IR/AffineOps.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/ImplicitLocOpBuilder.h"
#include "mlir/Pass/Pass.h"

namespace kiln {
#define GEN_PASS_DEF_CPUVECTORIZECONTRACTIONS
#include "backends/cpu/compiler/Passes.h.inc"
} // namespace kiln

using namespace mlir;

namespace {

/// The accumulators of one tile: acc[i * nv + j] is row i, vector j.
using Tile = SmallVector<Value>;

class MicroKernelEmitter {
public:
  MicroKernelEmitter(linalg::GenericOp op, kiln::ContractionTiling t, int64_t vl, int64_t mr,
                     int64_t nv)
      : op(op), t(t), vl(vl), mr(mr), nv(nv), b(op.getLoc(), op) {
    maskTy = VectorType::get({vl}, b.getI1Type());
    maps = op.getIndexingMapsArray();
  }

  void emit() {
    for (Range r : cast<linalg::LinalgOp>(op.getOperation()).createLoopRanges(b, b.getLoc()))
      sizes.push_back(r.size);
    ivs.assign(sizes.size(), Value());
    slide = slidingRows();
    makePanel();
    SmallVector<unsigned> outer;
    for (auto [d, it] : llvm::enumerate(op.getIteratorTypesArray()))
      if (it == utils::IteratorType::parallel && d != t.n && (!t.m || d != *t.m))
        outer.push_back(d);
    loopNest(outer, [&] { columns(); });
  }

private:
  Value idx(int64_t v) { return arith::ConstantIndexOp::create(b, v); }
  Value size(unsigned d) { return getValueOrCreateConstantIndexOp(b, b.getLoc(), sizes[d]); }
  std::optional<int64_t> staticSize(unsigned d) { return getConstantIntValue(sizes[d]); }

  /// scf.for over `dims` (each 0..size), setting ivs, around `body`.
  void loopNest(ArrayRef<unsigned> dims, llvm::function_ref<void()> body) {
    if (dims.empty())
      return body();
    forRange(idx(0), size(dims.front()), 1, [&](Value iv) {
      ivs[dims.front()] = iv;
      loopNest(dims.drop_front(), body);
    });
  }

  /// Rows that read overlapping rhs rows: where rhs's row index is
  /// `s * m + r` (a depthwise convolution's output row m and filter row r,
  /// s its stride) with r a short reduction loop, one rhs row serves every
  /// tile row i with r = u - s * i in range. Unrolling r and loading each of
  /// a tile's s * (Mr - 1) + R rhs rows once, instead of R per tile row,
  /// cuts the loads (mostly split across cache lines: the window shifts by
  /// one element per step of the other filter dim) from 3 per multiply-add
  /// to about 1.25 for 3x3 filters and 8-row tiles.
  struct Slide {
    unsigned r;
    int64_t stride, extent;
  };
  /// Only multiply-adds: a pool's max (six instructions per element for NaN
  /// and signed-zero semantics) is bound by arithmetic, not loads, and lost
  /// 9 % to the longer unrolled body (resnet50's MaxPool 131 to 143 us).
  std::optional<Slide> slidingRows() {
    if (!t.m || maps[t.lhs].isFunctionOfDim(*t.m) ||
        op.getRegion().front().getOps<arith::MulFOp>().empty())
      return std::nullopt;
    SmallVector<unsigned> reds = reductions();
    std::optional<Slide> found;
    for (AffineExpr e : maps[t.rhs].getResults()) {
      if (!e.isFunctionOfDim(*t.m))
        continue;
      std::optional<int64_t> s = kiln::linearCoefficient(e, *t.m);
      if (found || !s || (*s != 1 && *s != 2))
        return std::nullopt;
      for (unsigned d = 0; d < sizes.size(); ++d) {
        if (d == *t.m || !e.isFunctionOfDim(d))
          continue;
        std::optional<int64_t> c = kiln::linearCoefficient(e, d);
        std::optional<int64_t> extent = staticSize(d);
        if (found || c != 1 || !llvm::is_contained(reds, d) || !extent || *extent > 8)
          return std::nullopt;
        found = Slide{d, *s, *extent};
      }
      if (!found)
        return std::nullopt;
    }
    if (!found)
      return std::nullopt;
    for (AffineExpr e : maps[t.rhs].getResults())
      if (e.isFunctionOfDim(found->r) && !e.isFunctionOfDim(*t.m))
        return std::nullopt;
    return found;
  }

  /// A stack buffer for packed rhs columns (`packPanel`) when it pays: the
  /// rows share one rhs (a matmul's B, a convolution's input), at least eight
  /// row tiles reuse it, rhs rows are apart in memory, and the reduction's
  /// extents are static and small enough for the panel to stay in L2.
  void makePanel() {
    if (!t.m || maps[t.rhs].isFunctionOfDim(*t.m))
      return;
    // Fewer row tiles do not pay for the copy (measured on BERT).
    std::optional<int64_t> m = staticSize(*t.m);
    if (!m || *m < 8 * mr)
      return;
    int64_t steps = 1;
    SmallVector<int64_t> shape;
    for (unsigned d : reductions()) {
      std::optional<int64_t> k = staticSize(d);
      if (!k)
        return;
      shape.push_back(*k);
      steps *= *k;
    }
    auto rhsType = cast<MemRefType>(op->getOperand(t.rhs).getType());
    SmallVector<int64_t> strides;
    int64_t offset;
    if (failed(rhsType.getStridesAndOffset(strides, offset)) || rhsType.getRank() < 2 ||
        (strides[rhsType.getRank() - 2] != ShapedType::kDynamic &&
         strides[rhsType.getRank() - 2] * (int64_t)rhsType.getElementTypeBitWidth() / 8 < 1024))
      return;
    int64_t bytes = steps * nv * vl * rhsType.getElementTypeBitWidth() / 8;
    if (bytes > (512 << 10))
      return;
    shape.push_back(nv * vl);
    panel = memref::AllocaOp::create(b, MemRefType::get(shape, rhsType.getElementType()), ValueRange(),
                                     b.getI64IntegerAttr(64));
  }

  /// Whole tiles of nv * vl columns, then one masked tile for the rest.
  void columns() {
    int64_t nr = nv * vl;
    if (auto n = staticSize(t.n)) {
      int64_t full = *n / nr * nr;
      if (full > 0)
        forRange(idx(0), idx(full), nr, [&](Value n0) { rows(n0, nv, Value()); });
      if (*n % nr)
        rows(idx(full), llvm::divideCeil(*n % nr, vl), idx(*n % nr));
      return;
    }
    Value n = size(t.n), c = idx(nr);
    Value full = arith::MulIOp::create(b, arith::DivUIOp::create(b, n, c), c);
    forRange(idx(0), full, nr, [&](Value n0) { rows(n0, nv, Value()); });
    Value rest = arith::SubIOp::create(b, n, full);
    Value any = arith::CmpIOp::create(b, arith::CmpIPredicate::sgt, rest, idx(0));
    auto ifOp = scf::IfOp::create(b, any, /*withElseRegion=*/false);
    OpBuilder::InsertionGuard g(b);
    b.setInsertionPointToStart(ifOp.thenBlock());
    narrowestRows(full, rest, 1);
  }

  /// The last `rest` (dynamic, 1..nv*vl) columns in a tile of as few vectors
  /// as hold them: a full-width masked tile costs the FMAs of all its
  /// vectors (256x2304x196, resnet50's 14x14 convolutions as 196 = 6 * 32 +
  /// 4 columns: 1.07 to 1.04 ms with one vector for the last 4).
  void narrowestRows(Value n0, Value rest, int64_t vectors) {
    if (vectors == nv)
      return rows(n0, nv, rest);
    Value fits = arith::CmpIOp::create(b, arith::CmpIPredicate::sle, rest, idx(vectors * vl));
    auto ifOp = scf::IfOp::create(b, fits, /*withElseRegion=*/true);
    OpBuilder::InsertionGuard g(b);
    b.setInsertionPointToStart(ifOp.thenBlock());
    rows(n0, vectors, rest);
    b.setInsertionPointToStart(ifOp.elseBlock());
    narrowestRows(n0, rest, vectors + 1);
  }

  void forRange(Value lo, Value hi, int64_t step, llvm::function_ref<void(Value)> body) {
    auto loop = scf::ForOp::create(b, lo, hi, idx(step));
    OpBuilder::InsertionGuard g(b);
    b.setInsertionPointToStart(loop.getBody());
    body(loop.getInductionVar());
  }

  /// A range of the outermost reduction loop that the tiles of one column
  /// strip run before the next: the first starts the accumulators from the
  /// result's initial value, the last applies the epilogue, the others load
  /// and store the partial sums.
  struct KBlock {
    Value lo, hi;
    bool first = true, last = true;
  };

  /// The tiles of columns n0.., `vectors` vectors wide, the last `count`
  /// columns valid when `count` is set: every row tile per reduction block.
  void rows(Value n0, int64_t vectors, Value count) {
    if (!t.m)
      return reductionBlocks([&](const KBlock &k) { tile(Value(), 1, n0, vectors, count, k); });
    if (panel)
      packPanel(n0, vectors, count);
    reductionBlocks([&](const KBlock &k) { rowTiles(n0, vectors, count, k); });
  }

  /// Tiles of mr rows over the m loop (the remainder in a smaller tile).
  void rowTiles(Value n0, int64_t vectors, Value count, const KBlock &k) {
    if (auto m = staticSize(*t.m)) {
      int64_t full = *m / mr * mr;
      if (full > 0)
        forRange(idx(0), idx(full), mr, [&](Value m0) { tile(m0, mr, n0, vectors, count, k); });
      if (*m % mr)
        tile(idx(full), *m % mr, n0, vectors, count, k);
      return;
    }
    Value m = size(*t.m), c = idx(mr);
    Value full = arith::MulIOp::create(b, arith::DivUIOp::create(b, m, c), c);
    forRange(idx(0), full, mr, [&](Value m0) { tile(m0, mr, n0, vectors, count, k); });
    forRange(full, m, 1, [&](Value m0) { tile(m0, 1, n0, vectors, count, k); });
  }

  /// Past kBlockedSteps reduction steps, the strips of `rhs` (and `lhs`'s
  /// rows) a tile streams outgrow L2 before the next row tile reads them
  /// again (resnet50's 7x7 3x3 convolution: 4608 steps over a 903 KB column
  /// matrix): the outermost reduction loop is cut into blocks of about
  /// kBlockSteps steps, and every row tile of a strip runs one block before
  /// the next, so a block's strip stays in cache.
  static constexpr int64_t kBlockedSteps = 1024, kBlockSteps = 512;

  void reductionBlocks(llvm::function_ref<void(const KBlock &)> body) {
    SmallVector<unsigned> dims = reductions();
    KBlock whole{idx(0), size(dims.front())};
    std::optional<int64_t> outer = staticSize(dims.front());
    int64_t inner = 1;
    for (unsigned d : ArrayRef<unsigned>(dims).drop_front()) {
      std::optional<int64_t> k = staticSize(d);
      inner = k ? inner * *k : 0;
    }
    if (!outer || inner == 0 || *outer * inner <= kBlockedSteps)
      return body(whole);
    int64_t step = std::max<int64_t>(1, kBlockSteps / inner);
    int64_t blocks = llvm::divideCeil(*outer, step);
    if (blocks < 2)
      return body(whole);
    body({idx(0), idx(step), true, false});
    if (blocks > 2)
      forRange(idx(step), idx((blocks - 1) * step), step, [&](Value lo) {
        body({lo, arith::AddIOp::create(b, lo, idx(step)), false, false});
      });
    body({idx((blocks - 1) * step), idx(*outer), false, true});
  }

  /// `map`'s results at `dims`, one index each.
  SmallVector<Value> apply(AffineMap map, ValueRange dims) {
    SmallVector<Value> out;
    for (AffineExpr e : map.getResults())
      out.push_back(affine::AffineApplyOp::create(
          b, AffineMap::get(map.getNumDims(), 0, e), dims));
    return out;
  }

  /// Operand `i`'s indices at the current ivs.
  SmallVector<Value> indices(unsigned operand) { return apply(maps[operand], ivs); }

  /// A vector of `base`'s elements from `at`, only the lanes of `mask` (the
  /// others zero) when there is one.
  Value loadVector(Value base, ValueRange at, Value mask) {
    auto ty = VectorType::get({vl}, getElementTypeOrSelf(base.getType()));
    if (!mask)
      return vector::LoadOp::create(b, ty, base, at);
    Value zero = arith::ConstantOp::create(b, ty, b.getZeroAttr(ty));
    return vector::MaskedLoadOp::create(b, ty, base, at, mask, zero);
  }

  void storeVector(Value v, Value base, ValueRange at, Value mask) {
    if (mask)
      vector::MaskedStoreOp::create(b, base, at, mask, v);
    else
      vector::StoreOp::create(b, v, base, at);
  }

  Value load(unsigned operand, Value mask) {
    return loadVector(op->getOperand(operand), indices(operand), mask);
  }

  Value clamp(Value v) {
    return arith::MaxSIOp::create(b, arith::MinSIOp::create(b, v, idx(vl)), idx(0));
  }

  /// rhs lanes at stride 2 (a strided convolution): the 2*vl elements from
  /// the first lane's address in two loads, then the even ones. Masks keep
  /// both loads inside the elements the lanes need, `valid` of them (all when
  /// null), so the row's and the buffer's end are never read past.
  Value loadEveryOther(Value validLanes) {
    Value base = op->getOperand(t.rhs);
    Value span = validLanes ? arith::SubIOp::create(b, arith::MulIOp::create(b, validLanes, idx(2)),
                                                    idx(1))
                            : idx(2 * vl - 1);
    auto lanes = [&](Value n) { return vector::CreateMaskOp::create(b, maskTy, ValueRange{n}); };
    SmallVector<Value> at = indices(t.rhs);
    Value lo = loadVector(base, at, lanes(clamp(span)));
    at.back() = arith::AddIOp::create(b, at.back(), idx(vl));
    Value hi = loadVector(base, at, lanes(clamp(arith::SubIOp::create(b, span, idx(vl)))));
    SmallVector<int64_t> even;
    for (int64_t l = 0; l < vl; ++l)
      even.push_back(2 * l);
    return vector::ShuffleOp::create(b, lo, hi, even);
  }

  /// The body ops that only depend on `lhs` (an exp or extf of a fused
  /// producer), cloned as scalar code once per row and reduction step.
  void lhsPrefix(Value lhs, IRMapping &scalars) {
    Block &block = op.getRegion().front();
    scalars.map(block.getArgument(t.lhs), lhs);
    for (Operation &inner : block.without_terminator()) {
      bool scalar = llvm::all_of(inner.getOperands(), [&](Value v) {
        return scalars.contains(v) || v.getParentBlock() != &block;
      });
      if (scalar)
        b.clone(inner, scalars);
    }
  }

  /// The rest of the body on vectors: `args` replace its block arguments,
  /// scalars from `lhsPrefix` and from above are broadcast.
  Value body(Block &block, ArrayRef<Value> args, const IRMapping &scalars) {
    IRMapping map;
    for (auto [arg, v] : llvm::zip(block.getArguments(), args))
      if (v)
        map.map(arg, v);
    auto operand = [&](Value v) -> Value {
      if (Value m = map.lookupOrNull(v))
        return m;
      Value s = scalars.lookupOrDefault(v);
      return vector::BroadcastOp::create(b, VectorType::get({vl}, s.getType()), s);
    };
    for (Operation &inner : block.without_terminator()) {
      if (scalars.contains(inner.getResult(0)))
        continue;
      // A constant stays scalar; its users broadcast it (and fold that).
      if (isa<arith::ConstantOp>(inner)) {
        Value c = b.clone(inner)->getResult(0);
        map.map(inner.getResult(0),
                vector::BroadcastOp::create(b, VectorType::get({vl}, c.getType()), c));
        continue;
      }
      SmallVector<Value> operands = llvm::map_to_vector(inner.getOperands(), operand);
      OperationState state(b.getLoc(), inner.getName(), operands,
                           TypeRange{VectorType::get({vl}, inner.getResult(0).getType())},
                           inner.getAttrs());
      Operation *clone = b.create(state);
      // Without `contract`, mulf + addf stay two instructions.
      if (auto fm = dyn_cast<arith::ArithFastMathInterface>(clone)) {
        arith::FastMathFlagsAttr old = fm.getFastMathFlagsAttr();
        auto flags = (old ? old.getValue() : arith::FastMathFlags::none) |
                     arith::FastMathFlags::contract;
        clone->setAttr(fm.getFastMathAttrName(),
                       arith::FastMathFlagsAttr::get(b.getContext(), flags));
      }
      map.map(inner.getResult(0), clone->getResult(0));
    }
    return operand(block.getTerminator()->getOperand(0));
  }

  /// Masks of the last columns: lane l of vector j is valid if j*vl + l <
  /// count (none when `count` is null: all columns valid).
  void columnMasks(int64_t vectors, Value count, SmallVectorImpl<Value> &masks,
                   SmallVectorImpl<Value> &valid) {
    masks.assign(vectors, Value());
    valid.assign(vectors, Value());
    if (count)
      for (int64_t j = 0; j < vectors; ++j) {
        valid[j] = clamp(arith::SubIOp::create(b, count, idx(j * vl)));
        masks[j] = vector::CreateMaskOp::create(b, maskTy, ValueRange{valid[j]});
      }
  }

  /// One rhs vector at the current ivs (columns j*vl.. of the tile).
  Value loadRhs(Value mask, Value validLanes) {
    return t.rhsStride == 1 ? load(t.rhs, mask) : loadEveryOther(validLanes);
  }

  /// Copies the rhs columns n0.. of every reduction step into `panel`, one
  /// contiguous row of vectors per step: the tiles then stream it instead of
  /// reading rows a matrix's width apart, one page each (TLB misses cost a
  /// quarter of a 1024-wide GEMM's time). Columns past `count` are zeros.
  void packPanel(Value n0, int64_t vectors, Value count) {
    SmallVector<Value> masks, valid;
    columnMasks(vectors, count, masks, valid);
    if (t.m)
      ivs[*t.m] = idx(0); // rhs does not depend on the row
    SmallVector<unsigned> dims = reductions();
    loopNest(dims, [&] {
      for (int64_t j = 0; j < vectors; ++j) {
        ivs[t.n] = arith::AddIOp::create(b, n0, idx(j * vl));
        vector::StoreOp::create(b, loadRhs(masks[j], valid[j]), panel, panelAt(j));
      }
    });
    for (unsigned d : dims)
      ivs[d] = idx(0);
  }

  /// Where vector j of the current reduction step lives in `panel`.
  SmallVector<Value> panelAt(int64_t j) {
    SmallVector<Value> at;
    for (unsigned d : reductions())
      at.push_back(ivs[d]);
    at.push_back(idx(j * vl));
    return at;
  }

  SmallVector<unsigned> reductions() {
    SmallVector<unsigned> r;
    for (auto [d, it] : llvm::enumerate(op.getIteratorTypesArray()))
      if (it == utils::IteratorType::reduction)
        r.push_back(d);
    return r;
  }

  void tile(Value m0, int64_t rowCount, Value n0, int64_t vectors, Value count, const KBlock &k) {
    SmallVector<Value> masks, valid;
    columnMasks(vectors, count, masks, valid);
    auto at = [&](int64_t i, int64_t j) {
      if (t.m)
        ivs[*t.m] = arith::AddIOp::create(b, m0, idx(i));
      ivs[t.n] = arith::AddIOp::create(b, n0, idx(j * vl));
    };
    unsigned outOperand = op.getNumDpsInputs();
    Value out = op.getDpsInitOperand(0)->get();

    // Reduction loops are innermost so the tile stays in registers.
    SmallVector<unsigned> reductions = this->reductions();
    for (unsigned d : reductions)
      ivs[d] = idx(0); // the output does not depend on them
    Tile acc;
    for (int64_t i = 0; i < rowCount; ++i)
      for (int64_t j = 0; j < vectors; ++j) {
        at(i, j);
        acc.push_back(init && k.first ? initialValue(masks[j]) : load(outOperand, masks[j]));
      }

    // Blocks cut the outermost loop, which a slide may unroll: whole only.
    bool sliding = slide && k.first && k.last;
    SmallVector<unsigned> loops = reductions;
    if (sliding)
      llvm::erase(loops, slide->r);
    std::function<Tile(ArrayRef<unsigned>, Tile)> reduce = [&](ArrayRef<unsigned> dims,
                                                               Tile acc) -> Tile {
      if (dims.empty())
        return sliding ? slideStep(m0, rowCount, vectors, masks, valid, at, std::move(acc))
                       : step(m0, rowCount, vectors, masks, valid, at, std::move(acc));
      bool outer = dims.front() == reductions.front();
      auto loop = scf::ForOp::create(b, outer ? k.lo : idx(0), outer ? k.hi : size(dims.front()),
                                     idx(1), acc);
      OpBuilder::InsertionGuard g(b);
      b.setInsertionPointToStart(loop.getBody());
      ivs[dims.front()] = loop.getInductionVar();
      Tile inner(loop.getRegionIterArgs().begin(), loop.getRegionIterArgs().end());
      scf::YieldOp::create(b, reduce(dims.drop_front(), std::move(inner)));
      return Tile(loop.getResults().begin(), loop.getResults().end());
    };
    acc = reduce(loops, std::move(acc));
    for (unsigned d : reductions)
      ivs[d] = idx(0); // the loops' ivs are out of scope here

    for (int64_t i = 0; i < rowCount; ++i)
      for (int64_t j = 0; j < vectors; ++j) {
        at(i, j);
        Value v = acc[i * vectors + j];
        if (epilogue && k.last) {
          storeThroughEpilogue(v, masks[j]);
          continue;
        }
        storeVector(v, out, indices(outOperand), masks[j]);
      }
  }

  /// The epilogue's ivs at the current contraction ivs: its loops are the
  /// contraction's output dims.
  SmallVector<Value> epilogueIvs() {
    AffineMap out = maps[op.getNumDpsInputs()];
    SmallVector<Value> e;
    for (AffineExpr r : out.getResults())
      e.push_back(ivs[cast<AffineDimExpr>(r).getPosition()]);
    return e;
  }

  /// An all-parallel op over the contraction's output dims (`matchEpilogue`,
  /// `matchInit`) computed at the current ivs as one vector along n: `acc`
  /// stands for its reads of the contraction's result, inputs running along
  /// n are vector loads, the others broadcast scalars.
  Value elementwiseAt(linalg::GenericOp g, Value acc, Value mask) {
    SmallVector<Value> eivs = epilogueIvs();
    Block &block = g.getRegion().front();
    SmallVector<Value> args;
    unsigned n = eivs.size() - 1;
    for (OpOperand *in : g.getDpsInputOperands()) {
      SmallVector<Value> at = apply(g.getMatchingIndexingMap(in), eivs);
      if (in->get() == contractionOut) {
        args.push_back(acc);
        continue;
      }
      if (g.getMatchingIndexingMap(in).isFunctionOfDim(n)) {
        args.push_back(loadVector(in->get(), at, mask));
        continue;
      }
      Value scalar = memref::LoadOp::create(b, in->get(), at);
      args.push_back(vector::BroadcastOp::create(b, VectorType::get({vl}, scalar.getType()), scalar));
    }
    args.push_back(Value()); // the op's init is write-only (checked)
    return body(block, args, IRMapping());
  }

  /// Applies the elementwise epilogue to one accumulator vector while it is
  /// in registers and stores the result where the epilogue would have.
  void storeThroughEpilogue(Value acc, Value mask) {
    OpOperand *init = epilogue.getDpsInitOperand(0);
    SmallVector<Value> at = apply(epilogue.getMatchingIndexingMap(init), epilogueIvs());
    storeVector(elementwiseAt(epilogue, acc, mask), init->get(), at, mask);
  }

  /// The accumulators' first value, from the op that initialised the result
  /// (`matchInit`) instead of from memory.
  Value initialValue(Value mask) {
    if (auto fill = dyn_cast<linalg::FillOp>(init.getOperation())) {
      Value v = fill.getDpsInputOperand(0)->get();
      return vector::BroadcastOp::create(b, VectorType::get({vl}, v.getType()), v);
    }
    return elementwiseAt(cast<linalg::GenericOp>(init.getOperation()), Value(), mask);
  }

  /// One reduction step: rhs vectors once, each lhs scalar once, the body per
  /// accumulator.
  Tile step(Value m0, int64_t rowCount, int64_t vectors, ArrayRef<Value> masks,
            ArrayRef<Value> valid, llvm::function_ref<void(int64_t, int64_t)> at, Tile acc) {
    // Operands that do not depend on the row are loaded once for all rows.
    bool lhsPerRow = t.m && maps[t.lhs].isFunctionOfDim(*t.m);
    bool rhsPerRow = t.m && maps[t.rhs].isFunctionOfDim(*t.m);
    SmallVector<Value> rhs;
    Value lhs;
    IRMapping scalars;
    for (int64_t i = 0; i < rowCount; ++i) {
      if (i == 0 || rhsPerRow) {
        rhs.clear();
        for (int64_t j = 0; j < vectors; ++j) {
          if (panel) {
            rhs.push_back(loadVector(panel, panelAt(j), Value()));
            continue;
          }
          at(i, j);
          rhs.push_back(loadRhs(masks[j], valid[j]));
        }
      }
      if (i == 0 || lhsPerRow) {
        at(i, 0);
        Value scalar = memref::LoadOp::create(b, op->getOperand(t.lhs), indices(t.lhs));
        scalars.clear();
        lhsPrefix(scalar, scalars);
        lhs = vector::BroadcastOp::create(b, VectorType::get({vl}, scalar.getType()), scalar);
      }
      for (int64_t j = 0; j < vectors; ++j) {
        SmallVector<Value> args(3);
        args[t.lhs] = lhs;
        args[t.rhs] = rhs[j];
        args[2] = acc[i * vectors + j];
        acc[i * vectors + j] = body(op.getRegion().front(), args, scalars);
      }
    }
    return acc;
  }

  /// One step of the reduction loops left by a slide (`slidingRows`): the
  /// lhs scalars of every r once, then each rhs row the tile reads once,
  /// applied to every row tile it serves.
  Tile slideStep(Value m0, int64_t rowCount, int64_t vectors, ArrayRef<Value> masks,
                 ArrayRef<Value> valid, llvm::function_ref<void(int64_t, int64_t)> at, Tile acc) {
    SmallVector<Value> lhs;
    SmallVector<IRMapping> scalars(slide->extent);
    for (int64_t r = 0; r < slide->extent; ++r) {
      ivs[slide->r] = idx(r);
      at(0, 0);
      Value scalar = memref::LoadOp::create(b, op->getOperand(t.lhs), indices(t.lhs));
      lhsPrefix(scalar, scalars[r]);
      lhs.push_back(vector::BroadcastOp::create(b, VectorType::get({vl}, scalar.getType()), scalar));
    }
    for (int64_t u = 0; u < slide->stride * (rowCount - 1) + slide->extent; ++u) {
      SmallVector<std::pair<int64_t, int64_t>> uses; // (tile row, r)
      for (int64_t i = 0; i < rowCount; ++i)
        if (int64_t r = u - slide->stride * i; r >= 0 && r < slide->extent)
          uses.push_back({i, r});
      if (uses.empty())
        continue;
      ivs[slide->r] = idx(uses.front().second);
      SmallVector<Value> rhs;
      for (int64_t j = 0; j < vectors; ++j) {
        at(uses.front().first, j);
        rhs.push_back(loadRhs(masks[j], valid[j]));
      }
      for (auto [i, r] : uses)
        for (int64_t j = 0; j < vectors; ++j) {
          SmallVector<Value> args(3);
          args[t.lhs] = lhs[r];
          args[t.rhs] = rhs[j];
          args[2] = acc[i * vectors + j];
          acc[i * vectors + j] = body(op.getRegion().front(), args, scalars[r]);
        }
    }
    return acc;
  }

public:
  /// An elementwise consumer of the contraction's result applied in
  /// registers (`matchEpilogue`); it replaces the result's store.
  linalg::GenericOp epilogue;
  /// The fill or broadcast that initialised the result (`matchInit`): the
  /// accumulators start from its values, and it is not run.
  linalg::LinalgOp init;
  Value contractionOut;

private:
  linalg::GenericOp op;
  kiln::ContractionTiling t;
  int64_t vl, mr, nv;
  ImplicitLocOpBuilder b;
  VectorType maskTy;
  Value panel;
  std::optional<Slide> slide;
  SmallVector<AffineMap> maps;
  SmallVector<OpFoldResult> sizes;
  SmallVector<Value> ivs;
};

bool unitInnerStride(Value v) {
  auto type = dyn_cast<MemRefType>(v.getType());
  if (!type || type.getRank() == 0)
    return false;
  SmallVector<int64_t> strides;
  int64_t offset;
  return succeeded(type.getStridesAndOffset(strides, offset)) && strides.back() == 1;
}

bool readableAsVectors(linalg::GenericOp g, Value out);

/// The op that reads `op`'s result next, when it can run on the result's
/// accumulators: an all-parallel generic with identity maps on that buffer
/// and its output, a vectorizable body that does not read its output, other
/// inputs that either run along the vector dim with unit stride or do not
/// depend on it, and nothing else touching the buffer after `op`.
linalg::GenericOp matchEpilogue(linalg::GenericOp op) {
  Value out = op.getDpsInitOperand(0)->get();
  linalg::GenericOp epilogue;
  for (Operation *user : out.getUsers()) {
    if (user == op.getOperation() || !op->isBeforeInBlock(user) || isa<memref::DeallocOp>(user))
      continue;
    auto g = dyn_cast<linalg::GenericOp>(user);
    if (!g || epilogue)
      return {};
    epilogue = g;
  }
  if (!epilogue || epilogue->getBlock() != op->getBlock() || epilogue.getNumDpsInits() != 1 ||
      epilogue.getNumLoops() != epilogue.getNumParallelLoops() ||
      !kiln::isVectorizableBody(epilogue.getRegion().front()))
    return {};
  // Nothing between the two may touch the buffer (the users above) or write
  // what the epilogue reads.
  for (Operation *o = op->getNextNode(); o != epilogue.getOperation(); o = o->getNextNode())
    if (!isMemoryEffectFree(o))
      return {};
  OpOperand *init = epilogue.getDpsInitOperand(0);
  auto outType = cast<MemRefType>(out.getType());
  if (epilogue.getRegion().front().getArgument(init->getOperandNumber()).getNumUses() != 0 ||
      !epilogue.getMatchingIndexingMap(init).isIdentity() || !unitInnerStride(init->get()) ||
      init->get() == out || epilogue.getNumLoops() != (unsigned)outType.getRank())
    return {};
  bool readsOut = llvm::any_of(epilogue.getDpsInputOperands(),
                               [&](OpOperand *in) { return in->get() == out; });
  return readsOut && readableAsVectors(epilogue, out) ? epilogue : linalg::GenericOp();
}

/// `g`'s inputs other than `out` (read as the accumulators themselves, with
/// an identity map) can be read at a tile's ivs (`elementwiseAt`): memrefs
/// that run along the last loop, the vector dim, in their last index with
/// unit stride, or that do not depend on it.
bool readableAsVectors(linalg::GenericOp g, Value out) {
  unsigned n = g.getNumLoops() - 1;
  for (OpOperand *in : g.getDpsInputOperands()) {
    AffineMap map = g.getMatchingIndexingMap(in);
    if (in->get() == out) {
      if (!map.isIdentity())
        return false;
      continue;
    }
    if (!isa<MemRefType>(in->get().getType()))
      return false;
    if (!map.isFunctionOfDim(n))
      continue;
    if (map.getNumResults() == 0 || map.getResults().back() != getAffineDimExpr(n, g.getContext()) ||
        llvm::any_of(map.getResults().drop_back(),
                     [&](AffineExpr e) { return e.isFunctionOfDim(n); }) ||
        !unitInnerStride(in->get()))
      return false;
  }
  return true;
}

/// The op that initialises `op`'s result right before it (a zero fill, a
/// convolution's bias broadcast) when the accumulators can start from its
/// values instead: the contraction overwrites every element of the buffer,
/// so what the op stores is only ever read back as those first values, and
/// skipping it saves a pass over the result (a scalar one for broadcasts).
linalg::LinalgOp matchInit(linalg::GenericOp op) {
  Value out = op.getDpsInitOperand(0)->get();
  AffineMap outMap = op.getMatchingIndexingMap(op.getDpsInitOperand(0));
  if (!outMap.isProjectedPermutation() ||
      outMap.getNumResults() != (unsigned)cast<MemRefType>(out.getType()).getRank())
    return {};
  for (Operation *o = op->getPrevNode(); o; o = o->getPrevNode()) {
    auto producer = dyn_cast<linalg::LinalgOp>(o);
    if (!producer) {
      if (!isMemoryEffectFree(o))
        return {};
      continue;
    }
    if (producer.getNumDpsInits() != 1 || producer.getDpsInitOperand(0)->get() != out)
      return {};
    if (isa<linalg::FillOp>(o))
      return producer;
    auto g = dyn_cast<linalg::GenericOp>(o);
    if (!g || g.getNumLoops() != g.getNumParallelLoops() ||
        !g.getMatchingIndexingMap(g.getDpsInitOperand(0)).isIdentity() ||
        !kiln::isVectorizableBody(g.getRegion().front()) ||
        !g.getRegion().front().getArguments().back().use_empty() ||
        llvm::any_of(g.getDpsInputOperands(), [&](OpOperand *in) { return in->get() == out; }) ||
        !readableAsVectors(g, out))
      return {};
    return producer;
  }
  return {};
}

struct VectorizeContractionsPass
    : kiln::impl::CpuVectorizeContractionsBase<VectorizeContractionsPass> {
  using Base::Base;

  void runOnOperation() override {
    SmallVector<std::pair<linalg::GenericOp, kiln::ContractionTiling>> work;
    getOperation().walk([&](linalg::GenericOp op) {
      if (!op.hasPureBufferSemantics())
        return;
      auto t = kiln::matchRegisterTileContraction(op);
      if (!t || !unitInnerStride(op.getDpsInitOperand(0)->get()) ||
          !unitInnerStride(op->getOperand(t->rhs)))
        return;
      // A column tile must not straddle two panels.
      unsigned bits = getElementTypeOrSelf(op.getDpsInitOperand(0)->get().getType())
                          .getIntOrFloatBitWidth();
      if (t->rhsPanel && t->rhsPanel % (vectors * std::max<int64_t>(vectorBits / bits, 1)))
        return;
      work.push_back({op, *t});
    });
    for (auto [op, t] : work) {
      unsigned bits = getElementTypeOrSelf(op.getDpsInitOperand(0)->get().getType())
                          .getIntOrFloatBitWidth();
      MicroKernelEmitter emitter(op, t, std::max<int64_t>(vectorBits / bits, 1), rows, vectors);
      emitter.epilogue = matchEpilogue(op);
      emitter.init = matchInit(op);
      emitter.contractionOut = op.getDpsInitOperand(0)->get();
      // What the epilogue reads may be defined between the two (subviews of
      // the kernel's output; side-effect free, checked): the tile's code
      // goes where the contraction is, so they move up.
      if (emitter.epilogue)
        while (op->getNextNode() != emitter.epilogue.getOperation())
          op->getNextNode()->moveBefore(op);
      emitter.emit();
      if (emitter.epilogue)
        emitter.epilogue.erase();
      if (emitter.init)
        emitter.init->erase();
      op.erase();
    }
  }
};

} // namespace

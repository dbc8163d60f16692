//===- NpuTarget.cpp - Kiln kernels as programs for the simulated NPU -----===//
//
// Every kernel (a func.func over memrefs holding linalg ops, one workgroup)
// becomes one npu Program (backends/npu/isa/Isa.h). The lowering is a C++
// walk over the kernel, not an MLIR conversion: the ISA is tile-level, so
// what matters is choosing tiles, placing them in SBUF/PSUM and ordering the
// engines, none of which MLIR's dialects model.
//
// How a kernel lowers:
//  - Every op that writes a binding (HBM) is a *sink*. A sink's iteration
//    space is cut into tiles of up to 128 partitions x a free box; for each
//    tile its value is computed on chip and DMAed back.
//  - Operands read from bindings are DMAed in with strided access patterns
//    built from the (linear) indexing maps, so transposes, broadcasts,
//    windows (pooling, convolution) need no data movement of their own.
//  - Temporaries (memref.alloca) are never materialized whole: their
//    producer is re-evaluated on the consumer's tile (fusion), which needs
//    identity maps between the two.
//  - Contractions (mul/add bodies) run on the Tensor Engine: the
//    contraction dim on partitions, the stationary an A^T tile [K, M<=128],
//    the moving a B tile [K, N<=512], accumulated over K in one PSUM bank.
//    f32 operands are rounded to bf16 on GpSimd unless --npu-autocast=none.
//    A kernel that is one plain large matmul instead takes the hand-tuned
//    schedule of backends/npu/gemm (lowerPlainMatmul).
//  - Elementwise bodies become Vector (tensor_tensor / tensor_scalar) and
//    Scalar (activation) instructions; x*s+b followed by a function folds
//    into one activation, which is also how PSUM is evacuated.
//  - Reductions reduce the innermost free dims with tensor_reduce, or with
//    activation's accumulate when a function or affine precedes them.
//  - Engines hand data over through one semaphore per stream: a consumer
//    waits for the count its producer's stream reached. SBUF and PSUM are
//    handed out round robin, so consecutive tiles land in different places
//    and DMA of one tile overlaps compute of the previous (multi-buffering
//    without a separate schedule); a region is reused only after its last
//    readers are done.
//
//===----------------------------------------------------------------------===//
#include "PaddedReads.h"
#include "gemm/Gemm.h"
#include "isa/Isa.h"
#include "model/MachineModel.h"

#include "kiln/Target/TargetBackend.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/IR/AffineExpr.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/PassRegistry.h"

#include "llvm/ADT/DenseMap.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FormatVariadic.h"

#include <cmath>
#include <deque>
#include <map>
#include <optional>

using namespace mlir;
namespace npu = kiln::npu;
using npu::AccessPattern;
using npu::ActFunc;
using npu::AluOp;
using npu::DType;
using npu::Space;

namespace {

enum class Autocast { Matmul, None };
llvm::cl::opt<Autocast> autocast(
    "npu-autocast",
    llvm::cl::desc("npu: run f32 matmuls in bf16 (f32 accumulation in PSUM)"),
    llvm::cl::values(clEnumValN(Autocast::Matmul, "matmul",
                                "bf16 operands for f32 matmuls (default)"),
                     clEnumValN(Autocast::None, "none",
                                "keep f32 operands (quarter rate)")),
    llvm::cl::init(Autocast::Matmul), llvm::cl::cat(kiln::targetOptionCategory()));
llvm::cl::opt<bool> gemmSchedule(
    "npu-gemm-schedule",
    llvm::cl::desc("npu: lower kernels that are one plain large matmul with "
                   "the hand-tuned GEMM schedule (backends/npu/gemm)"),
    llvm::cl::init(true), llvm::cl::cat(kiln::targetOptionCategory()));

/// Free elements per partition of one elementwise tile: big enough that
/// the 64-cycle minimum per instruction is amortized, small enough that a
/// few tiles per operand stay in flight.
constexpr int64_t kFreeBudget = 2048;
/// Largest reduced extent per partition kept on chip at once.
constexpr int64_t kReduceBudget = 16384;
/// Most DMAs one padded operand tile is split into.
constexpr size_t kMaxPadPieces = 256;
/// Operand tiles of one matmul sink kept resident for reuse across tiles.
constexpr int64_t kResidentBytes = 96 * 1024;

using Deps = std::array<int64_t, npu::kNumStreams>;
void join(Deps &a, const Deps &b) {
  for (unsigned i = 0; i < npu::kNumStreams; ++i)
    a[i] = std::max(a[i], b[i]);
}

/// An on-chip allocation (the same bytes in every partition) or one HBM
/// binding. `write` is the stream count after the last write; `reads` the
/// counts after the reads since then.
struct Region {
  Space space = Space::Sbuf;
  int64_t lo = 0, size = 0;
  Deps write{}, reads{};
};

/// Next-fit allocator over one partition's bytes. Freed ranges remember who
/// last touched them, so the next occupant waits for those streams first.
class Allocator {
public:
  Allocator(int64_t capacity, int64_t align) : capacity(capacity), align(align) {
    free.push_back({0, capacity, Deps{}});
  }
  /// Returns the offset or -1; `deps` receives the previous occupants.
  int64_t alloc(int64_t bytes, Deps &deps) {
    bytes = (bytes + align - 1) / align * align;
    for (int pass = 0; pass < 2; ++pass)
      for (size_t i = 0; i < free.size(); ++i) {
        Free &f = free[i];
        int64_t lo = std::max(f.lo, pass == 0 ? cursor : f.lo);
        if (lo + bytes > f.hi)
          continue;
        deps = f.deps;
        Free after{lo + bytes, f.hi, f.deps};
        f.hi = lo;
        if (after.hi > after.lo)
          free.insert(free.begin() + i + 1, after);
        if (free[i].hi <= free[i].lo)
          free.erase(free.begin() + i);
        cursor = lo + bytes >= capacity ? 0 : lo + bytes;
        return lo;
      }
    return -1;
  }
  void release(int64_t lo, int64_t bytes, const Deps &deps) {
    bytes = (bytes + align - 1) / align * align;
    auto it = std::lower_bound(free.begin(), free.end(), lo,
                               [](const Free &f, int64_t v) { return f.lo < v; });
    it = free.insert(it, {lo, lo + bytes, deps});
    // Merge neighbours; the merged range waits for all their users.
    size_t i = it - free.begin();
    if (i + 1 < free.size() && free[i].hi == free[i + 1].lo) {
      free[i].hi = free[i + 1].hi;
      join(free[i].deps, free[i + 1].deps);
      free.erase(free.begin() + i + 1);
    }
    if (i > 0 && free[i - 1].hi == free[i].lo) {
      free[i - 1].hi = free[i].hi;
      join(free[i - 1].deps, free[i].deps);
      free.erase(free.begin() + i);
    }
  }
  int64_t capacity;

private:
  struct Free {
    int64_t lo, hi;
    Deps deps;
  };
  std::vector<Free> free;
  int64_t align, cursor = 0;
};

/// Emits instructions with the semaphores their operands need.
class Emitter {
public:
  explicit Emitter(std::string name) : b(std::move(name)) { sem.fill(-1); }

  /// Appends one instruction (`body`) to `stream`, after waiting for the
  /// last writers of `reads` and for the last writers and readers of
  /// `writes`. Compute engines run their own stream in order, so they never
  /// wait on themselves; DMA queues may overlap transfers and do.
  void emit(unsigned stream, llvm::ArrayRef<Region *> reads,
            llvm::ArrayRef<Region *> writes,
            const std::function<void(npu::ProgramBuilder::Stream &)> &body) {
    Deps need{};
    for (Region *r : reads)
      join(need, r->write);
    for (Region *w : writes) {
      join(need, w->write);
      join(need, w->reads);
    }
    auto &s = b.onStream(stream);
    for (unsigned t = 0; t < npu::kNumStreams; ++t) {
      if (need[t] <= waited[stream][t] || (t == stream && !npu::isDma(stream)))
        continue;
      s.wait(sem[t], need[t]);
      waited[stream][t] = need[t];
    }
    body(s);
    if (sem[stream] < 0)
      sem[stream] = static_cast<int32_t>(b.semaphore());
    s.signal(sem[stream]);
    int64_t n = ++count[stream];
    for (Region *r : reads)
      r->reads[stream] = std::max(r->reads[stream], n);
    for (Region *w : writes) {
      w->write = Deps{};
      w->write[stream] = n;
      w->reads = Deps{};
    }
  }
  unsigned nextQueue() {
    unsigned q = queue;
    queue = (queue + 1) % npu::kNumDmaQueues;
    return static_cast<unsigned>(npu::Engine::Dma0) + q;
  }
  npu::Program finish() { return pruneSignals(b.take()); }

private:
  /// Every instruction signalled its stream's semaphore; drop the signals
  /// nobody waits for and renumber the waits, so the program reads as its
  /// real hand-offs.
  static npu::Program pruneSignals(npu::Program p) {
    std::vector<std::vector<int64_t>> needed(p.numSemaphores);
    for (auto &stream : p.streams)
      for (auto &i : stream)
        if (i.op == npu::Opcode::SemWait)
          needed[i.sem].push_back(i.value.base);
    std::vector<std::map<int64_t, int64_t>> renumber(p.numSemaphores);
    for (auto &stream : p.streams) {
      std::vector<npu::Instr> kept;
      for (auto &i : stream) {
        if (i.op != npu::Opcode::SemSignal) {
          kept.push_back(i);
          continue;
        }
        auto &seen = renumber[i.sem];
        int64_t original = static_cast<int64_t>(seen.size()) + 1;
        auto &ns = needed[i.sem];
        bool wanted = std::find(ns.begin(), ns.end(), original) != ns.end();
        seen[original] = wanted ? 1 : 0;
        if (wanted)
          kept.push_back(i);
      }
      stream = std::move(kept);
    }
    // The k-th signal's new count is the number of kept signals up to k.
    for (auto &m : renumber) {
      int64_t kept = 0;
      for (auto &[k, v] : m) {
        kept += v;
        v = kept;
      }
    }
    for (auto &stream : p.streams)
      for (auto &i : stream)
        if (i.op == npu::Opcode::SemWait)
          i.value = npu::Affine(renumber[i.sem][i.value.base]);
    // Semaphores nobody waits on are not declared.
    std::vector<int32_t> newId(p.numSemaphores, -1);
    uint32_t used = 0;
    for (uint32_t s = 0; s < p.numSemaphores; ++s)
      if (!needed[s].empty())
        newId[s] = static_cast<int32_t>(used++);
    for (auto &stream : p.streams)
      for (auto &i : stream)
        if (i.op == npu::Opcode::SemWait || i.op == npu::Opcode::SemSignal)
          i.sem = static_cast<uint32_t>(newId[i.sem]);
    p.numSemaphores = used;
    return p;
  }

  npu::ProgramBuilder b;
  std::array<int32_t, npu::kNumStreams> sem;
  std::array<int64_t, npu::kNumStreams> count{};
  int64_t waited[npu::kNumStreams][npu::kNumStreams] = {};
  unsigned queue = 0;
};

/// A rectangular piece of an op's iteration space and how it lies on chip:
/// dim `pdim` across partitions (none: one partition), `fdims` as the free
/// dims in that order; all other dims have size 1 unless reduced.
struct Box {
  SmallVector<int64_t> lo, size;
  int pdim = -1;
  SmallVector<unsigned> fdims;
  int64_t partitions() const { return pdim < 0 ? 1 : size[pdim]; }
  int64_t freeSize() const {
    int64_t n = 1;
    for (unsigned d : fdims)
      n *= size[d];
    return n;
  }
};

/// A value on chip, or an immediate. A tile may carry a pending
/// `func(x * scale + bias)` not yet applied, so chains of affine ops and
/// one function fold into one activation (also the PSUM evacuation).
struct Val {
  bool isImm = false;
  float imm = 0;
  Region *reg = nullptr;
  AccessPattern ap;      // [P, free] f32 in SBUF or PSUM.
  bool perPart = false;  // ap is [P, 1], the same value along the free dims.
  ActFunc func = ActFunc::Identity;
  float scale = 1;
  bool biasIsAp = false;
  float biasImm = 0;
  Region *biasReg = nullptr;
  AccessPattern biasAp;
  bool pending() const {
    return !isImm && (func != ActFunc::Identity || scale != 1 || biasIsAp ||
                      biasImm != 0);
  }
  static Val immediate(float v) {
    Val r;
    r.isImm = true;
    r.imm = v;
    return r;
  }
};

struct LinearExpr {
  SmallVector<int64_t> coeff; // Per iteration dim.
  int64_t constant = 0;
};

/// An operand in a binding: element offset and strides of each memref dim.
struct HbmView {
  unsigned binding = 0;
  int64_t offset = 0, bindingElems = 0;
  SmallVector<int64_t> strides;
};

/// Lowers one kernel. Errors are collected as text naming the op.
class KernelLowering {
public:
  KernelLowering(func::FuncOp fn, const npu::MachineModel &model, DType mmType,
                 std::vector<npu::PaddedOperand> padded)
      : fn(fn), padded(std::move(padded)), e(fn.getSymName().str()),
        sbuf(static_cast<int64_t>(model.sbufPartitionBytes), 64),
        psum(static_cast<int64_t>(model.psumPartitionBytes),
             static_cast<int64_t>(model.psumBankBytes)),
        bankBytes(static_cast<int64_t>(model.psumBankBytes)), mmType(mmType) {}

  llvm::Expected<npu::Program> run() {
    if (!analyze() || !emitSinks())
      return llvm::createStringError(llvm::inconvertibleErrorCode(), error);
    npu::Program p = e.finish();
    std::string v = npu::verify(p);
    if (!v.empty())
      return llvm::createStringError(
          llvm::inconvertibleErrorCode(),
          "npu: internal error: kernel " + fn.getSymName().str() + ": " + v);
    return p;
  }

private:
  //===--------------------------------------------------------------------===//
  // Errors
  //===--------------------------------------------------------------------===//

  bool fail(Operation *op, const llvm::Twine &msg) {
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

  //===--------------------------------------------------------------------===//
  // Analysis: buffers, versions, sinks
  //===--------------------------------------------------------------------===//

  /// The binding or alloca a memref value views.
  Value rootOf(Value v) {
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
  bool isBinding(Value root) {
    auto arg = dyn_cast<BlockArgument>(root);
    return arg && arg.getOwner()->getParentOp() == fn.getOperation();
  }

  bool analyze() {
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
  static bool isElementwise(Operation *op) {
    auto g = dyn_cast<linalg::GenericOp>(op);
    return g && !hasReductionDims(g) &&
           g.getMatchingIndexingMap(g.getDpsInitOperand(0)).isIdentity();
  }
  static std::string typeName(Type t) {
    std::string s;
    llvm::raw_string_ostream os(s);
    t.print(os);
    return s;
  }
  Value outputOf(Operation *op) {
    if (auto g = dyn_cast<linalg::LinalgOp>(op))
      return g.getDpsInitOperand(0)->get();
    return cast<memref::CopyOp>(op).getTarget();
  }
  bool writesRoot(Operation *op, Value root) { return rootOf(outputOf(op)) == root; }

  static bool isFill(Operation *op) {
    if (isa<linalg::FillOp>(op))
      return true;
    auto g = dyn_cast<linalg::GenericOp>(op);
    return g && g.getNumDpsInputs() == 1 &&
           !isa<ShapedType>(g.getDpsInputOperand(0)->get().getType()) &&
           g.getRegion().front().getTerminator()->getOperand(0) ==
               g.getRegion().front().getArgument(0);
  }
  /// The scalar a fill writes, if it is a constant.
  std::optional<float> fillValue(Operation *op) {
    Value v = isa<linalg::FillOp>(op)
                  ? cast<linalg::FillOp>(op).getInputs()[0]
                  : cast<linalg::GenericOp>(op).getDpsInputOperand(0)->get();
    return constantOf(v);
  }
  static std::optional<float> constantOf(Value v) {
    FloatAttr f;
    if (auto c = v.getDefiningOp<arith::ConstantOp>())
      if ((f = dyn_cast<FloatAttr>(c.getValue())))
        return static_cast<float>(f.getValueAsDouble());
    return std::nullopt;
  }
  static bool hasReductionDims(linalg::GenericOp g) {
    return llvm::any_of(g.getIteratorTypesArray(), [](utils::IteratorType t) {
      return t == utils::IteratorType::reduction;
    });
  }
  /// A generic whose body is out = out OP f(ins).
  bool isReduction(Operation *op) {
    auto g = dyn_cast<linalg::GenericOp>(op);
    return g && hasReductionDims(g) && !isContraction(op) && combiner(g).first;
  }
  /// The op combining %out with the rest, and the rest.
  std::pair<Operation *, Value> combiner(linalg::GenericOp g) {
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
  //===--------------------------------------------------------------------===//
  // Maps and views
  //===--------------------------------------------------------------------===//

  std::optional<LinearExpr> linear(AffineExpr e, unsigned numDims) {
    LinearExpr r;
    r.coeff.assign(numDims, 0);
    std::function<bool(AffineExpr, int64_t)> walk = [&](AffineExpr x, int64_t c) {
      if (auto d = dyn_cast<AffineDimExpr>(x)) {
        r.coeff[d.getPosition()] += c;
        return true;
      }
      if (auto k = dyn_cast<AffineConstantExpr>(x)) {
        r.constant += c * k.getValue();
        return true;
      }
      auto bin = dyn_cast<AffineBinaryOpExpr>(x);
      if (!bin)
        return false;
      if (x.getKind() == AffineExprKind::Add)
        return walk(bin.getLHS(), c) && walk(bin.getRHS(), c);
      if (x.getKind() == AffineExprKind::Mul) {
        if (auto k = dyn_cast<AffineConstantExpr>(bin.getRHS()))
          return walk(bin.getLHS(), c * k.getValue());
        if (auto k = dyn_cast<AffineConstantExpr>(bin.getLHS()))
          return walk(bin.getRHS(), c * k.getValue());
      }
      return false;
    };
    if (!walk(e, 1))
      return std::nullopt;
    return r;
  }

  std::optional<HbmView> viewOf(Operation *user, Value v) {
    Value root = rootOf(v);
    auto type = cast<MemRefType>(v.getType());
    HbmView h;
    h.binding = cast<BlockArgument>(root).getArgNumber();
    h.bindingElems = cast<MemRefType>(root.getType()).getNumElements();
    if (failed(type.getStridesAndOffset(h.strides, h.offset)) ||
        ShapedType::isDynamic(h.offset) ||
        llvm::any_of(h.strides, ShapedType::isDynamic)) {
      fail(user, "reads a memref with a dynamic layout");
      return std::nullopt;
    }
    return h;
  }

  /// HBM and on-chip access patterns of `box` of `op`'s operand `v` read
  /// through `map`. With `perPart` the free dims are dropped (the operand
  /// does not vary along them).
  bool hbmPattern(Operation *op, Value v, AffineMap map, const Box &box,
                  bool perPart, AccessPattern &out) {
    auto view = viewOf(op, v);
    if (!view)
      return false;
    unsigned n = map.getNumDims();
    int64_t offset = view->offset;
    SmallVector<int64_t> dimStride(n, 0);
    for (unsigned j = 0; j < map.getNumResults(); ++j) {
      auto l = linear(map.getResult(j), n);
      if (!l)
        return fail(op, "has a non-linear indexing map the npu DMA cannot follow");
      offset += view->strides[j] * l->constant;
      for (unsigned d = 0; d < n; ++d) {
        offset += view->strides[j] * l->coeff[d] * box.lo[d];
        dimStride[d] += view->strides[j] * l->coeff[d];
      }
    }
    SmallVector<npu::Dim> dims;
    if (box.pdim >= 0)
      dims.push_back({dimStride[box.pdim], box.size[box.pdim]});
    if (!perPart)
      for (unsigned d : box.fdims)
        dims.push_back({dimStride[d], box.size[d]});
    if (dims.empty())
      dims.push_back({1, 1});
    // Windows with padding would read outside the binding: not expressible.
    int64_t lo = offset, hi = offset;
    for (auto &d : dims) {
      (d.stride < 0 ? lo : hi) += d.stride * (d.size - 1);
    }
    if (lo < 0 || hi >= view->bindingElems)
      return fail(op, "reads outside its operand (padding?) at elements [" +
                          llvm::Twine(lo) + ", " + llvm::Twine(hi) + "]");
    out = AccessPattern();
    out.space = Space::Hbm;
    out.dtype = DType::F32;
    out.tensor = view->binding;
    out.offset = npu::Affine(offset);
    out.rank = static_cast<uint8_t>(dims.size());
    for (size_t i = 0; i < dims.size(); ++i)
      out.dims[i] = dims[i];
    return true;
  }

  //===--------------------------------------------------------------------===//
  // Tiles
  //===--------------------------------------------------------------------===//

  /// A fresh tile [partitions, free...] in SBUF (or PSUM), freed with the
  /// current output tile unless `resident`.
  Region *allocTile(Operation *op, Space space, int64_t partitions,
                    ArrayRef<int64_t> free, DType t, AccessPattern &ap,
                    bool resident = false) {
    int64_t elems = 1;
    for (int64_t f : free)
      elems *= f;
    int64_t bytes = elems * npu::dtypeSize(t);
    Deps prev{};
    Allocator &a = space == Space::Sbuf ? sbuf : psum;
    int64_t off = a.alloc(bytes, prev);
    if (off < 0) {
      fail(op, "needs " + llvm::Twine(bytes) + " more bytes per partition of " +
                   (space == Space::Sbuf ? "SBUF" : "PSUM") +
                   " than are free (a tile of " + llvm::Twine(partitions) +
                   " x " + llvm::Twine(elems) + ")");
      return nullptr;
    }
    Region &r = regions.emplace_back();
    r.space = space;
    r.lo = off;
    r.size = bytes;
    r.reads = prev;
    (resident ? residentTiles : tileRegions).push_back(&r);
    ap = AccessPattern();
    ap.space = space;
    ap.dtype = t;
    ap.partition = 0;
    ap.partitions = static_cast<uint32_t>(partitions);
    ap.offset = npu::Affine(off);
    SmallVector<npu::Dim> dims;
    int64_t stride = elems;
    for (int64_t f : free) {
      stride /= f;
      dims.push_back({stride, f});
    }
    // More than 3 free dims: the innermost ones are contiguous, merge them.
    while (dims.size() > npu::kMaxFreeDims) {
      npu::Dim inner = dims.pop_back_val();
      dims.back() = {inner.stride, dims.back().size * inner.size};
    }
    if (dims.empty())
      dims.push_back({1, 1});
    ap.rank = static_cast<uint8_t>(dims.size());
    for (size_t i = 0; i < dims.size(); ++i)
      ap.dims[i] = dims[i];
    return &r;
  }
  void releaseTiles(std::vector<Region *> &list) {
    for (Region *r : list) {
      Deps d = r->write;
      join(d, r->reads);
      (r->space == Space::Sbuf ? sbuf : psum).release(r->lo, r->size, d);
    }
    list.clear();
  }
  static SmallVector<int64_t> freeShape(const Box &box) {
    SmallVector<int64_t> s;
    for (unsigned d : box.fdims)
      s.push_back(box.size[d]);
    return s;
  }

  /// The pad value of a padded operand (PaddedReads.h), or nullopt.
  std::optional<float> padOf(Operation *op, Value v, AffineMap map) {
    auto g = dyn_cast<linalg::LinalgOp>(op);
    for (const npu::PaddedOperand &p : padded)
      if (p.op == op && op->getOperand(p.operand) == v &&
          g.getMatchingIndexingMap(&op->getOpOperand(p.operand)) == map)
        return p.pad;
    return std::nullopt;
  }

  /// The sub-boxes of `box` whose reads of `v` through `map` fall inside
  /// it, along the dims the tile spans. A bound that involves several tile
  /// dims (a window: output + kernel offset) splits the box along one of
  /// them until each piece is a box.
  bool clipToOperand(Operation *op, Value v, AffineMap map, const Box &box,
                     bool perPart, std::vector<Box> &parts) {
    SmallVector<unsigned> tileDims;
    if (box.pdim >= 0)
      tileDims.push_back(static_cast<unsigned>(box.pdim));
    if (!perPart)
      tileDims.append(box.fdims.begin(), box.fdims.end());
    auto type = cast<MemRefType>(v.getType());
    unsigned n = map.getNumDims();
    Box inside = box;
    for (unsigned j = 0; j < map.getNumResults(); ++j) {
      auto l = linear(map.getResult(j), n);
      if (!l)
        return fail(op, "has a non-linear indexing map the npu DMA cannot follow");
      int64_t extent = type.getDimSize(j), base = l->constant, lo = 0, hi = 0;
      SmallVector<unsigned> along;
      for (unsigned d = 0; d < n; ++d) {
        if (!l->coeff[d])
          continue;
        base += l->coeff[d] * inside.lo[d];
        if (llvm::is_contained(tileDims, d) && inside.size[d] > 1)
          along.push_back(d);
        int64_t span = l->coeff[d] * (inside.size[d] - 1);
        (span < 0 ? lo : hi) += span;
      }
      if (base + lo >= 0 && base + hi < extent)
        continue;
      if (along.empty() || base + hi < 0 || base + lo >= extent)
        return true; // Nothing of this piece is inside.
      if (along.size() > 1) {
        unsigned split = *llvm::min_element(
            along, [&](unsigned x, unsigned y) { return inside.size[x] < inside.size[y]; });
        if (parts.size() + inside.size[split] > kMaxPadPieces)
          return fail(op, "pads a tile into more than " + llvm::Twine(kMaxPadPieces) +
                              " pieces; the npu lowering does not split it further");
        for (int64_t t = 0; t < inside.size[split]; ++t) {
          Box piece = inside;
          piece.lo[split] = inside.lo[split] + t;
          piece.size[split] = 1;
          if (!clipToOperand(op, v, map, piece, perPart, parts))
            return false;
        }
        return true;
      }
      // 0 <= base + c*t < extent, for t in [0, size).
      unsigned d = along.front();
      int64_t c = l->coeff[d];
      int64_t first = c > 0 ? llvm::divideCeilSigned(-base, c)
                            : llvm::divideCeilSigned(extent - 1 - base, c);
      int64_t last = c > 0 ? llvm::divideFloorSigned(extent - 1 - base, c)
                           : llvm::divideFloorSigned(-base, c);
      int64_t t0 = std::max<int64_t>(0, first);
      int64_t t1 = std::min(inside.size[d], last + 1);
      if (t1 <= t0)
        return true;
      inside.lo[d] += t0;
      inside.size[d] = t1 - t0;
    }
    parts.push_back(inside);
    return true;
  }

  /// DMAs the box of an operand read from a binding into a new tile. A
  /// padded operand's tile is first filled with its pad value, then gets
  /// the pieces inside the binding.
  bool loadTile(Operation *op, Value v, AffineMap map, const Box &box,
                bool perPart, Val &out, bool resident) {
    std::optional<float> pad = padOf(op, v, map);
    std::vector<Box> parts;
    if (!pad)
      parts.push_back(box);
    else if (!clipToOperand(op, v, map, box, perPart, parts))
      return false;
    bool whole = parts.size() == 1 && parts[0].lo == box.lo && parts[0].size == box.size;
    SmallVector<int64_t> free = perPart ? SmallVector<int64_t>{1} : freeShape(box);
    Region *r = allocTile(op, Space::Sbuf, box.partitions(), free, DType::F32,
                          out.ap, resident);
    if (!r)
      return false;
    out.reg = r;
    out.perPart = perPart && !box.fdims.empty();
    Region *h = hbm[rootOf(v)];
    if (!whole) {
      AccessPattern dst = out.ap;
      float value = *pad;
      e.emit(gpsimd(), {}, {r}, [&](auto &s) { s.memset(dst, value); });
      if (!parts.empty() && !perPart && dst.rank != box.fdims.size())
        return fail(op, "pads a tile with more than " + llvm::Twine(npu::kMaxFreeDims) +
                            " free dims");
    }
    for (const Box &part : parts) {
      AccessPattern src, dst = out.ap;
      if (!hbmPattern(op, v, map, part, perPart, src))
        return false;
      if (box.pdim >= 0) {
        dst.partition = static_cast<uint32_t>(part.lo[box.pdim] - box.lo[box.pdim]);
        dst.partitions = static_cast<uint32_t>(part.size[box.pdim]);
      }
      if (!perPart && !whole)
        for (auto [i, d] : llvm::enumerate(box.fdims)) {
          dst.offset.base +=
              (part.lo[d] - box.lo[d]) * dst.dims[i].stride * npu::dtypeSize(DType::F32);
          dst.dims[i].size = part.size[d];
        }
      e.emit(e.nextQueue(), {h}, {r}, [&](auto &s) { s.dmaCopy(dst, src); });
    }
    return true;
  }

  /// Applies a pending function/affine: the value as a plain tile.
  bool materialize(Operation *op, Val &v, const Box &box) {
    if (v.isImm) {
      AccessPattern ap;
      Region *r = allocTile(op, Space::Sbuf, box.partitions(), {1}, DType::F32, ap);
      if (!r)
        return false;
      float x = v.imm;
      e.emit(gpsimd(), {}, {r}, [&](auto &s) { s.memset(ap, x); });
      v = Val();
      v.reg = r;
      v.ap = ap;
      v.perPart = !box.fdims.empty();
      return true;
    }
    if (!v.pending())
      return true;
    return activation(op, v, v.func);
  }
  /// v = func(v.src * scale + bias) as one Scalar Engine instruction.
  bool activation(Operation *op, Val &v, ActFunc func) {
    AccessPattern dst;
    SmallVector<int64_t> free;
    for (unsigned i = 0; i < v.ap.rank; ++i)
      free.push_back(v.ap.dims[i].size);
    Region *r = allocTile(op, Space::Sbuf, v.ap.partitions, free, DType::F32, dst);
    if (!r)
      return false;
    SmallVector<Region *> reads = {v.reg};
    npu::ScalarOperand bias(v.biasImm);
    if (v.biasIsAp) {
      reads.push_back(v.biasReg);
      bias = npu::ScalarOperand(v.biasAp);
    }
    AccessPattern src = v.ap;
    float scale = v.scale;
    e.emit(scalar(), reads, {r}, [&](auto &s) {
      s.activation(dst, src, func, npu::ScalarOperand(scale), bias);
    });
    bool pp = v.perPart;
    v = Val();
    v.reg = r;
    v.ap = dst;
    v.perPart = pp;
    return true;
  }
  /// An immediate or per-partition tile as a tile of the full box.
  bool broadcast(Operation *op, Val &v, const Box &box) {
    if (!materialize(op, v, box))
      return false;
    if (!v.perPart)
      return true;
    AccessPattern dst;
    Region *r = allocTile(op, Space::Sbuf, box.partitions(), freeShape(box),
                          DType::F32, dst);
    if (!r)
      return false;
    // 0 * x would turn inf into NaN: clear the tile, then add.
    e.emit(gpsimd(), {}, {r}, [&](auto &s) { s.memset(dst, 0.0f); });
    AccessPattern pp = v.ap;
    e.emit(vector(), {v.reg}, {r}, [&](auto &s) {
      s.tensorScalar(dst, dst, AluOp::Add, npu::ScalarOperand(pp));
    });
    v = Val();
    v.reg = r;
    v.ap = dst;
    return true;
  }

  static unsigned vector() { return static_cast<unsigned>(npu::Engine::Vector); }
  static unsigned scalar() { return static_cast<unsigned>(npu::Engine::Scalar); }
  static unsigned gpsimd() { return static_cast<unsigned>(npu::Engine::GpSimd); }
  static unsigned tensor() { return static_cast<unsigned>(npu::Engine::Tensor); }

  //===--------------------------------------------------------------------===//
  // Elementwise arithmetic on values
  //===--------------------------------------------------------------------===//

  static bool commutative(AluOp op) {
    return op == AluOp::Add || op == AluOp::Multiply || op == AluOp::Max ||
           op == AluOp::Min;
  }
  static float fold(AluOp op, float a, float b) {
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

  bool binary(Operation *op, AluOp alu, Val a, Val b, const Box &box, Val &out) {
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

  bool unary(Operation *op, ActFunc f, Val a, const Box &box, Val &out) {
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
  Value matchGelu2(Operation *mul, Value &x) {
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
  bool evalBody(Operation *op, Block &body, DenseMap<Value, Val> &env,
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

  //===--------------------------------------------------------------------===//
  // Evaluating ops on a box
  //===--------------------------------------------------------------------===//

  /// The value of `op`'s operand `operand` (indexing map `map`) on `box`.
  bool evalOperand(Operation *op, Value operand, AffineMap map, const Box &box,
                   Val &out, bool resident = false) {
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
  bool translate(Operation *producer, AffineMap cm, const Box &box, Box &out) {
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

  bool evalOp(Operation *op, const Box &box, Val &out) {
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

  bool evalReduction(linalg::GenericOp g, const Box &box, Val &out) {
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

  /// The two factors of a contraction body out + X * Y.
  std::pair<Value, Value> factors(linalg::GenericOp g) {
    Block &body = g.getRegion().front();
    Operation *y = body.getTerminator()->getOperand(0).getDefiningOp();
    Value outArg = body.getArguments().back();
    Value m = y->getOperand(0) == outArg ? y->getOperand(1) : y->getOperand(0);
    Operation *mul = m.getDefiningOp();
    return {mul->getOperand(0), mul->getOperand(1)};
  }
  /// The block arguments a body value is computed from.
  static void argsOf(Value v, llvm::SmallPtrSetImpl<Value> &args) {
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
  static bool sideUses(linalg::GenericOp g, const llvm::SmallPtrSetImpl<Value> &args,
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
  bool isContraction(Operation *op) {
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
  bool evalContraction(linalg::GenericOp g, const Box &box, Val &out) {
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
  bool matmulOperand(linalg::GenericOp g, Value factor, const Box &box, char side,
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

  //===--------------------------------------------------------------------===//
  // Sinks
  //===--------------------------------------------------------------------===//

  /// The contraction or reduction a sink's value is built around, found
  /// through identity-mapped temporaries.
  Operation *anchorOf(Operation *op) {
    if (isContraction(op) || isReduction(op))
      return op;
    auto g = dyn_cast<linalg::GenericOp>(op);
    if (!g)
      return nullptr;
    for (OpOperand &o : g->getOpOperands()) {
      if (!isa<MemRefType>(o.get().getType()))
        continue;
      Value root = rootOf(o.get());
      Operation *p = versionAt.lookup({op, root});
      if (!p || isBinding(root) || isFill(p) || !g.getMatchingIndexingMap(&o).isIdentity())
        continue;
      if (Operation *a = anchorOf(p))
        return a;
    }
    return nullptr;
  }

  /// Chooses partition and free dims for a sink's iteration space.
  bool chooseTiling(Operation *sink, SmallVector<int64_t> &ranges, Box &shape,
                    SmallVector<int64_t> &chunk) {
    if (auto c = dyn_cast<memref::CopyOp>(sink))
      ranges = llvm::to_vector(cast<MemRefType>(c.getTarget().getType()).getShape());
    else
      ranges = cast<linalg::LinalgOp>(sink).getStaticLoopRanges();
    unsigned n = ranges.size();
    chunk.assign(n, 1);
    shape = Box();
    Operation *anchor = anchorOf(sink);
    auto largest = [&](ArrayRef<unsigned> dims) {
      int best = -1;
      for (unsigned d : dims)
        if (best < 0 || ranges[d] > ranges[best])
          best = static_cast<int>(d);
      return best;
    };
    if (anchor) {
      auto g = cast<linalg::GenericOp>(anchor);
      AffineMap om = g.getMatchingIndexingMap(g.getDpsInitOperand(0));
      // Sink dim j is anchor output dim j (identity maps in between).
      auto toSink = [&](int ad) -> int {
        if (ad < 0 || anchor == sink)
          return ad;
        for (unsigned j = 0; j < om.getNumResults(); ++j)
          if (om.getResult(j) == getAffineDimExpr(ad, sink->getContext()))
            return static_cast<int>(j);
        return -1;
      };
      auto iters = g.getIteratorTypesArray();
      SmallVector<unsigned> mdims, ndims, pdims;
      for (unsigned d = 0; d < iters.size(); ++d) {
        if (iters[d] != utils::IteratorType::parallel)
          continue;
        pdims.push_back(d);
        if (isContraction(anchor)) {
          auto [x, z] = factors(g);
          llvm::SmallPtrSet<Value, 4> xa, za;
          argsOf(x, xa);
          argsOf(z, za);
          bool inA = sideUses(g, xa, static_cast<int>(d));
          bool inB = sideUses(g, za, static_cast<int>(d));
          if (inA && !inB)
            mdims.push_back(d);
          if (inB && !inA)
            ndims.push_back(d);
        }
      }
      int p = isContraction(anchor) ? largest(mdims) : largest(pdims);
      shape.pdim = toSink(p);
      if (p >= 0 && shape.pdim < 0)
        return fail(sink, "internal: cannot relate the tile to its anchor");
      if (shape.pdim >= 0)
        chunk[shape.pdim] = 128;
      if (isContraction(anchor)) {
        int nd = toSink(largest(ndims));
        if (nd >= 0) {
          shape.fdims.push_back(static_cast<unsigned>(nd));
          chunk[nd] = 512;
        }
      }
    } else if (n > 0) {
      SmallVector<unsigned> outer;
      for (unsigned d = 0; d + 1 < n; ++d)
        outer.push_back(d);
      shape.pdim = n == 1 ? 0 : largest(outer);
      chunk[shape.pdim] = 128;
      int64_t budget = kFreeBudget;
      for (int d = static_cast<int>(n) - 1; d >= 0 && shape.fdims.size() < 3; --d) {
        if (d == shape.pdim || budget <= 1)
          continue;
        if (ranges[d] <= budget) {
          chunk[d] = ranges[d];
          budget /= ranges[d];
          shape.fdims.insert(shape.fdims.begin(), static_cast<unsigned>(d));
        } else {
          if (shape.fdims.empty()) {
            chunk[d] = budget;
            shape.fdims.push_back(static_cast<unsigned>(d));
          }
          break;
        }
      }
    }
    return true;
  }

  bool emitSinks() {
    for (Operation *sink : sinks) {
      SmallVector<int64_t> ranges, chunk;
      Box shape;
      if (!chooseTiling(sink, ranges, shape, chunk))
        return false;
      Value outV = outputOf(sink);
      AffineMap om;
      if (auto g = dyn_cast<linalg::LinalgOp>(sink))
        om = g.getMatchingIndexingMap(g.getDpsInitOperand(0));
      else
        om = AffineMap::getMultiDimIdentityMap(ranges.size(), sink->getContext());
      // Reduction dims of the sink itself are covered whole by each tile.
      SmallVector<bool> reduced(ranges.size(), false);
      if (auto g = dyn_cast<linalg::GenericOp>(sink)) {
        auto iters = g.getIteratorTypesArray();
        for (unsigned d = 0; d < iters.size(); ++d)
          reduced[d] = iters[d] == utils::IteratorType::reduction;
      }
      SmallVector<int64_t> counts(ranges.size(), 1);
      int64_t tiles = 1;
      for (unsigned d = 0; d < ranges.size(); ++d)
        if (!reduced[d]) {
          counts[d] = (ranges[d] + chunk[d] - 1) / chunk[d];
          tiles *= counts[d];
        }
      Region *dstHbm = hbm[rootOf(outV)];
      for (int64_t t = 0; t < tiles; ++t) {
        Box box = shape;
        box.lo.assign(ranges.size(), 0);
        box.size = ranges;
        int64_t rem = t;
        for (int d = static_cast<int>(ranges.size()) - 1; d >= 0; --d) {
          if (reduced[d])
            continue;
          int64_t i = rem % counts[d];
          rem /= counts[d];
          box.lo[d] = i * chunk[d];
          box.size[d] = std::min(chunk[d], ranges[d] - box.lo[d]);
        }
        Val v;
        if (!evalOp(sink, box, v))
          return false;
        Box obox = box;
        // The stored tile covers the output dims only.
        if (!broadcast(sink, v, obox) || !materializeSbuf(sink, v))
          return false;
        AccessPattern dst;
        if (!hbmPattern(sink, outV, om, obox, false, dst))
          return false;
        AccessPattern src = v.ap;
        e.emit(e.nextQueue(), {v.reg}, {dstHbm},
               [&](auto &s) { s.dmaCopy(dst, src); });
        releaseTiles(tileRegions);
      }
      releaseTiles(tileRegions);
      releaseTiles(residentTiles);
      operandCache.clear();
      residentBytes = 0;
    }
    return true;
  }
  /// DMA cannot read PSUM: evacuate on the Scalar Engine first.
  bool materializeSbuf(Operation *op, Val &v) {
    if (v.ap.space == Space::Sbuf)
      return true;
    return activation(op, v, ActFunc::Identity);
  }

  func::FuncOp fn;
  std::vector<npu::PaddedOperand> padded;
  Emitter e;
  Allocator sbuf, psum;
  int64_t bankBytes;
  DType mmType;
  std::string error;
  std::deque<Region> regions;
  DenseMap<Value, Region *> hbm;
  DenseMap<Value, Operation *> current;
  DenseMap<std::pair<Operation *, Value>, Operation *> versionAt;
  SmallVector<Operation *> ops, sinks;
  llvm::SmallPtrSet<Operation *, 4> foldedInit;
  std::vector<Region *> tileRegions, residentTiles;
  std::map<std::string, Val> operandCache;
  int64_t residentBytes = 0;
};

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

llvm::Expected<npu::Module> lowerExecutable(ModuleOp executable) {
  npu::Module m;
  DType mmType = autocast == Autocast::Matmul ? DType::BF16 : DType::F32;
  for (auto fn : executable.getOps<func::FuncOp>()) {
    if (fn.isExternal())
      continue;
    if (gemmSchedule)
      if (auto p = lowerPlainMatmul(fn, npu::defaultMachineModel(), mmType)) {
        m.kernels.push_back(std::move(*p));
        continue;
      }
    // Padding rewrites the kernel's body: work on a copy.
    OwningOpRef<func::FuncOp> copy(fn.clone());
    std::vector<npu::PaddedOperand> padded = npu::exposePaddedReads(*copy);
    KernelLowering l(*copy, npu::defaultMachineModel(), mmType, std::move(padded));
    auto p = l.run();
    if (!p)
      return p.takeError();
    m.kernels.push_back(std::move(*p));
  }
  return m;
}

class NpuTarget : public kiln::TargetBackend {
public:
  llvm::StringRef name() const override { return "npu"; }
  llvm::StringRef description() const override {
    return "simulated NeuronCore (backends/npu): one npu-isa-v1 program per kernel";
  }
  // A padding kernel with padding only past the end (SAME_UPPER) DMAs the
  // input's part and leaves the rest to the zero-filled buffer.
  bool writesWholeResults() const override { return false; }
  kiln::KernelOptions kernelOptions(const kiln::TargetOptions &) const override {
    // A program spreads a dispatch over partitions and engines itself: one
    // workgroup holding the whole iteration space.
    kiln::KernelOptions k;
    k.maxWorkgroups = 1;
    k.minTileElements = INT64_MAX / 4;
    return k;
  }
  void buildCodegenPipeline(OpPassManager &pm, const kiln::TargetOptions &) const override {
    // The lowering reads linalg.generic only.
    if (failed(parsePassPipeline("func.func(linalg-generalize-named-ops)", pm,
                                 llvm::errs())))
      llvm::report_fatal_error("kiln: invalid npu codegen pipeline");
  }
  llvm::Expected<std::string> emitText(ModuleOp executable, llvm::StringRef stage,
                                       const kiln::TargetOptions &) const override {
    if (stage != "asm")
      return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                     "--emit=llvm is not available for npu; use "
                                     "--emit=npu-asm (or --emit=asm)");
    auto m = lowerExecutable(executable);
    if (!m)
      return m.takeError();
    return npu::printModule(*m);
  }
  llvm::Expected<std::vector<kiln::artifact::Executable>>
  serialize(ModuleOp executable, const kiln::TargetOptions &,
            const kiln::KernelGrids &) const override {
    auto m = lowerExecutable(executable);
    if (!m)
      return m.takeError();
    kiln::artifact::Executable exe;
    exe.target = "npu";
    exe.format = npu::kBinaryFormat;
    exe.image = npu::encodeModule(*m);
    for (const npu::Program &p : m->kernels) {
      kiln::artifact::Entry entry;
      entry.name = p.name;
      exe.entries.push_back(std::move(entry));
    }
    std::vector<kiln::artifact::Executable> exes;
    exes.push_back(std::move(exe));
    return exes;
  }
};

} // namespace

void registerNpuTarget() {
  kiln::registerTargetBackend(std::make_unique<NpuTarget>());
}

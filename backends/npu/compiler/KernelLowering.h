//===- KernelLowering.h - one kernel as an npu Program --------------------===//
//
// The lowering of one kernel to an npu Program; the design is described at the
// top of NpuTarget.cpp. The class is split by concern, one file per group of
// members below (each group names its file).
//
//===----------------------------------------------------------------------===//
#ifndef KILN_BACKENDS_NPU_COMPILER_KERNELLOWERING_H
#define KILN_BACKENDS_NPU_COMPILER_KERNELLOWERING_H

#include "Allocator.h"
#include "Emitter.h"
#include "PaddedReads.h"
#include "isa/Isa.h"
#include "model/MachineModel.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/IR/AffineMap.h"
#include "mlir/IR/BuiltinOps.h"

#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/SmallPtrSet.h"
#include "llvm/Support/Error.h"

#include <deque>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace kiln::npu::lowering {

using namespace mlir;

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

  // KernelLowering.cpp
  llvm::Expected<npu::Program> run();

private:
  // KernelLowering.cpp: sinks, their tiling, and the driver
  Operation *anchorOf(Operation *op);
  bool chooseTiling(Operation *sink, SmallVector<int64_t> &ranges, Box &shape,
                    SmallVector<int64_t> &chunk);
  bool emitSinks();
  bool materializeSbuf(Operation *op, Val &v);

  // Analysis.cpp: errors, buffers, versions, sinks
  bool fail(Operation *op, const llvm::Twine &msg);
  Value rootOf(Value v);
  bool isBinding(Value root);
  bool analyze();
  static bool isElementwise(Operation *op);
  static std::string typeName(Type t);
  Value outputOf(Operation *op);
  bool writesRoot(Operation *op, Value root) { return rootOf(outputOf(op)) == root; }
  static bool isFill(Operation *op);
  std::optional<float> fillValue(Operation *op);
  static std::optional<float> constantOf(Value v);
  static bool hasReductionDims(linalg::GenericOp g);
  bool isReduction(Operation *op);
  std::pair<Operation *, Value> combiner(linalg::GenericOp g);

  // Tiles.cpp: maps, views and operand tiles
  std::optional<LinearExpr> linear(AffineExpr e, unsigned numDims);
  std::optional<HbmView> viewOf(Operation *user, Value v);
  bool hbmPattern(Operation *op, Value v, AffineMap map, const Box &box,
                  bool perPart, AccessPattern &out);
  std::optional<float> padOf(Operation *op, Value v, AffineMap map);
  bool clipToOperand(Operation *op, Value v, AffineMap map, const Box &box,
                     bool perPart, std::vector<Box> &parts);
  bool loadTile(Operation *op, Value v, AffineMap map, const Box &box,
                bool perPart, Val &out, bool resident);
  bool materialize(Operation *op, Val &v, const Box &box);
  bool activation(Operation *op, Val &v, ActFunc func);
  bool broadcast(Operation *op, Val &v, const Box &box);

  // Allocation.cpp: SBUF/PSUM tiles
  Region *allocTile(Operation *op, Space space, int64_t partitions,
                    ArrayRef<int64_t> free, DType t, AccessPattern &ap,
                    bool resident = false);
  void releaseTiles(std::vector<Region *> &list);
  static SmallVector<int64_t> freeShape(const Box &box);

  // Elementwise.cpp: arithmetic on values, evaluating ops on a box
  static bool commutative(AluOp op);
  static float fold(AluOp op, float a, float b);
  bool binary(Operation *op, AluOp alu, Val a, Val b, const Box &box, Val &out);
  bool unary(Operation *op, ActFunc f, Val a, const Box &box, Val &out);
  Value matchGelu2(Operation *mul, Value &x);
  bool evalBody(Operation *op, Block &body, DenseMap<Value, Val> &env,
                const Box &box, Value result, Val &out);
  bool evalOperand(Operation *op, Value operand, AffineMap map, const Box &box,
                   Val &out, bool resident = false);
  bool translate(Operation *producer, AffineMap cm, const Box &box, Box &out);
  bool evalOp(Operation *op, const Box &box, Val &out);

  // Reduction.cpp
  bool evalReduction(linalg::GenericOp g, const Box &box, Val &out);

  // Contraction.cpp: the Tensor Engine
  std::pair<Value, Value> factors(linalg::GenericOp g);
  static void argsOf(Value v, llvm::SmallPtrSetImpl<Value> &args);
  static bool sideUses(linalg::GenericOp g, const llvm::SmallPtrSetImpl<Value> &args,
                       int dim);
  bool isContraction(Operation *op);
  bool evalContraction(linalg::GenericOp g, const Box &box, Val &out);
  bool matmulOperand(linalg::GenericOp g, Value factor, const Box &box, char side,
                     Val &out);

  // The engines' streams.
  static unsigned vector() { return static_cast<unsigned>(npu::Engine::Vector); }
  static unsigned scalar() { return static_cast<unsigned>(npu::Engine::Scalar); }
  static unsigned gpsimd() { return static_cast<unsigned>(npu::Engine::GpSimd); }
  static unsigned tensor() { return static_cast<unsigned>(npu::Engine::Tensor); }

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

/// A kernel that is exactly C = 0; C += A x B over three distinct bindings
/// (f32, identity layouts, 2-D) becomes the hand-scheduled GEMM of
/// backends/npu/gemm. Any other kernel, or a GEMM the schedule cannot
/// place, returns nullopt and takes the generic lowering.
std::optional<npu::Program> lowerPlainMatmul(func::FuncOp fn,
                                             const npu::MachineModel &model,
                                             DType mmType);

} // namespace kiln::npu::lowering

#endif // KILN_BACKENDS_NPU_COMPILER_KERNELLOWERING_H

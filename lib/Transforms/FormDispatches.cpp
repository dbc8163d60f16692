//===- FormDispatches.cpp - group linalg ops into kernels -----------------===//
#include "kiln/Transforms/Passes.h"

#include "kiln/Import/NodeLocation.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/IR/Matchers.h"
#include "mlir/IR/SymbolTable.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"
#include "mlir/Transforms/RegionUtils.h"
#include "mlir/Dialect/Tensor/Transforms/Transforms.h"

namespace kiln {
#define GEN_PASS_DEF_FORMDISPATCHES
#include "kiln/Transforms/Passes.h.inc"
} // namespace kiln

using namespace mlir;

namespace {

bool isAllParallel(linalg::LinalgOp op) {
  return op.getNumLoops() == op.getNumParallelLoops();
}

bool isHostView(Operation *op) {
  return isa<tensor::CollapseShapeOp, tensor::ExpandShapeOp>(op);
}

/// Walks reshapes back to the value that owns the storage.
Value storageRoot(Value v) {
  while (Operation *def = v.getDefiningOp()) {
    if (!isHostView(def))
      break;
    v = def->getOperand(0);
  }
  return v;
}

/// A tensor with no elements carries no data: a kernel can use an empty
/// tensor of its type instead of binding a buffer (GPU kernels cannot take
/// zero-length arrays).
bool hasNoElements(Value v) {
  auto t = dyn_cast<RankedTensorType>(v.getType());
  return t && t.hasStaticShape() && t.getNumElements() == 0;
}

/// A value the kernel can rebuild itself instead of binding a buffer.
bool isCloneable(Value v) {
  if (hasNoElements(v))
    return true;
  Operation *def = v.getDefiningOp();
  if (!def)
    return false;
  if (isa<tensor::EmptyOp>(def))
    return true;
  if (auto c = dyn_cast<arith::ConstantOp>(def)) {
    auto dense = dyn_cast<DenseElementsAttr>(c.getValue());
    return !isa<RankedTensorType>(c.getType()) || (dense && dense.isSplat());
  }
  return false;
}

/// Every output gets a buffer of its own written by a kernel: copy outputs
/// that are graph inputs, constants, or another output's storage.
void materializeOutputs(func::FuncOp func) {
  auto ret = cast<func::ReturnOp>(func.getBody().front().getTerminator());
  OpBuilder b(ret);
  DenseSet<Value> seen;
  for (OpOperand &operand : ret->getOpOperands()) {
    Value root = storageRoot(operand.get());
    bool produced = root.getDefiningOp() && isa<linalg::LinalgOp>(root.getDefiningOp());
    if (produced && seen.insert(root).second)
      continue;
    auto type = cast<RankedTensorType>(operand.get().getType());
    // Nothing to write: an empty buffer needs no kernel (and GPU kernels
    // cannot take zero-length arrays).
    if (type.getNumElements() == 0)
      continue;
    Value init = tensor::EmptyOp::create(b, ret.getLoc(), type.getShape(),
                                         type.getElementType());
    // A splat is a fill: no constant buffer for the kernel to read (GPU
    // targets would need a device global for it).
    DenseElementsAttr splat;
    if (matchPattern(operand.get(), m_Constant(&splat)) && splat.isSplat()) {
      Value scalar = arith::ConstantOp::create(
          b, ret.getLoc(), cast<TypedAttr>(splat.getSplatValue<Attribute>()));
      auto fill = linalg::FillOp::create(b, ret.getLoc(), scalar, init);
      operand.set(fill.getResult(0));
      seen.insert(fill.getResult(0));
      continue;
    }
    SmallVector<AffineMap> maps(2, b.getMultiDimIdentityMap(type.getRank()));
    SmallVector<utils::IteratorType> iters(type.getRank(), utils::IteratorType::parallel);
    auto copy = linalg::GenericOp::create(
        b, ret.getLoc(), TypeRange{type}, ValueRange{operand.get()}, ValueRange{init}, maps,
        iters, [](OpBuilder &nb, Location l, ValueRange args) {
          linalg::YieldOp::create(nb, l, args[0]);
        });
    operand.set(copy.getResult(0));
    seen.insert(copy.getResult(0));
  }
}

/// Producers of `op`'s init operands that are elementwise and used only
/// there (fills, bias broadcasts): computing them in the same kernel saves a
/// pass over memory.
void collectInitProducers(linalg::LinalgOp op, SetVector<Operation *> &group,
                          const DenseSet<Operation *> &taken) {
  for (OpOperand &init : op.getDpsInitsMutable()) {
    auto producer = init.get().getDefiningOp<linalg::LinalgOp>();
    if (!producer || taken.contains(producer) || !isAllParallel(producer) ||
        producer->getNumResults() != 1)
      continue;
    // CSE merges the zero fills of equally shaped contractions into one:
    // materialized once, each kernel would copy it in (a pass over memory
    // per use). Every use recomputes its own instead, as cheaply as a copy.
    if (!init.get().hasOneUse() &&
        llvm::all_of(producer.getDpsInits(),
                     [](Value v) { return v.getDefiningOp<tensor::EmptyOp>(); })) {
      OpBuilder b(producer);
      producer = cast<linalg::LinalgOp>(b.clone(*producer));
      init.set(producer->getResult(0));
    }
    if (!init.get().hasOneUse())
      continue;
    collectInitProducers(producer, group, taken);
    group.insert(producer);
  }
}

/// The importer's padding (`select(inBounds, x[clamp], pad)` over a
/// captured tensor, kiln/Transforms/PaddingReads.h) feeding a contraction
/// whose every split loop reads it (a depthwise convolution: channels and
/// rows): in the contraction's kernel each workgroup pads only the slab it
/// reads, into a buffer that stays in cache, instead of a dispatch of its own
/// writing the whole padded image to memory and the convolution reading it
/// back. A convolution with several filters per input channel is left alone:
/// every filter block would pad the whole slab again.
void collectPaddedInputs(linalg::LinalgOp op, SetVector<Operation *> &group,
                         const DenseSet<Operation *> &taken) {
  if (op.getNumReductionLoops() == 0)
    return;
  SmallVector<int64_t> ranges = op.getStaticLoopRanges();
  for (OpOperand *in : op.getDpsInputOperands()) {
    auto pad = in->get().getDefiningOp<linalg::GenericOp>();
    if (!pad || taken.contains(pad) || !in->get().hasOneUse() || !isAllParallel(pad) ||
        pad->getNumResults() != 1 || pad.getNumDpsInputs() != 0)
      continue;
    auto select = pad.getRegion().front().getTerminator()->getOperand(0).getDefiningOp<arith::SelectOp>();
    if (!select || !select.getTrueValue().getDefiningOp<tensor::ExtractOp>())
      continue;
    AffineMap map = op.getMatchingIndexingMap(in);
    bool everySplitLoop = llvm::all_of(llvm::enumerate(op.getIteratorTypesArray()), [&](auto it) {
      auto [d, type] = it;
      return type != utils::IteratorType::parallel || ranges[d] == 1 || map.isFunctionOfDim(d);
    });
    if (everySplitLoop)
      group.insert(pad);
  }
}

/// The single elementwise consumer that reads all of `op`'s result tile
/// by tile in the same order, if any.
linalg::LinalgOp fusableConsumer(Operation *op, const DenseSet<Operation *> &taken) {
  if (op->getNumResults() != 1 || !op->getResult(0).hasOneUse())
    return {};
  OpOperand &use = *op->getResult(0).getUses().begin();
  auto consumer = dyn_cast<linalg::LinalgOp>(use.getOwner());
  if (!consumer || taken.contains(consumer) || !isAllParallel(consumer) ||
      consumer->getNumResults() != 1 || consumer.isDpsInit(&use) ||
      consumer->getBlock() != op->getBlock())
    return {};
  if (!consumer.getMatchingIndexingMap(&use).isIdentity() ||
      !consumer.getIndexingMapMatchingResult(consumer->getResult(0)).isIdentity() ||
      use.get().getType() != consumer->getResult(0).getType())
    return {};
  for (OpOperand &init : consumer.getDpsInitsMutable())
    if (!init.get().getDefiningOp<tensor::EmptyOp>())
      return {};
  return consumer;
}

/// Adds the ONNX nodes `loc` names to `nodes`, looking through FusedLocs
/// (rewrites that merge ops, such as folding, fuse their locations).
void collectNodes(Location loc, llvm::SetVector<std::pair<StringAttr, StringAttr>> &nodes) {
  if (auto fused = dyn_cast<FusedLoc>(loc)) {
    for (Location l : fused.getLocations())
      collectNodes(l, nodes);
    return;
  }
  if (auto node = kiln::getOnnxNode(loc))
    nodes.insert({node->opType, node->name});
}

/// "Conv(conv1) + Relu(relu1)": the ONNX nodes a group of ops computes, in
/// program order. Elementwise fusion gives a fused op its consumer's
/// location and keeps the producers' on the body ops it inlines first, so
/// bodies are visited before the ops that hold them. Init producers (fills,
/// bias broadcasts) belong to the node that accumulates into them, and CSE
/// may have merged equal fills of several nodes under one's location, so
/// they count only in a group of nothing else. Empty when the ops carry no
/// node locations.
std::string describeNodes(ArrayRef<Operation *> ops) {
  DenseSet<Operation *> group(ops.begin(), ops.end());
  auto isInit = [&](Operation *op) {
    return llvm::any_of(op->getUses(), [&](OpOperand &use) {
      auto user = dyn_cast<linalg::LinalgOp>(use.getOwner());
      return user && group.contains(user) && user.isDpsInit(&use);
    });
  };
  llvm::SetVector<std::pair<StringAttr, StringAttr>> nodes;
  auto collect = [&](bool inits) {
    for (Operation *op : ops)
      if (isInit(op) == inits)
        op->walk([&](Operation *nested) { collectNodes(nested->getLoc(), nodes); });
  };
  collect(/*inits=*/false);
  if (nodes.empty())
    collect(/*inits=*/true);
  std::string text;
  for (auto [type, name] : nodes) {
    if (!text.empty())
      text += " + ";
    text += type ? (type.strref() + "(" + name.strref() + ")").str() : name.str();
  }
  return text;
}

struct FormDispatchesPass : kiln::impl::FormDispatchesBase<FormDispatchesPass> {
  using FormDispatchesBase::FormDispatchesBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    MLIRContext *ctx = module.getContext();
    SmallVector<func::FuncOp> hosts;
    for (auto func : module.getOps<func::FuncOp>())
      if (!func.isExternal())
        hosts.push_back(func);
    if (hosts.empty())
      return;

    OpBuilder b(ctx);
    b.setInsertionPointToEnd(module.getBody());
    auto executable = ModuleOp::create(b, module.getLoc(), StringRef("kernels"));
    executable->setAttr(kiln::kExecutableAttr, b.getUnitAttr());
    SymbolTable kernels(executable);

    for (func::FuncOp host : hosts) {
      materializeOutputs(host);
      if (failed(outlineDispatches(host, executable, kernels)))
        return signalPassFailure();
    }
  }

  LogicalResult outlineDispatches(func::FuncOp host, ModuleOp executable,
                                  SymbolTable &kernels) {
    // Reshapes of empty tensors are just empty tensors; folding them lets
    // kernels create their own outputs.
    RewritePatternSet patterns(host.getContext());
    tensor::populateFoldTensorEmptyPatterns(patterns);
    if (failed(applyPatternsGreedily(host, std::move(patterns))))
      return failure();

    Block &body = host.getBody().front();
    // Claim init producers for their consumers first, so a fill is never
    // mistaken for a dispatch of its own.
    DenseSet<Operation *> taken;
    DenseMap<Operation *, SetVector<Operation *>> initsOf;
    for (Operation &op : llvm::reverse(body))
      if (auto root = dyn_cast<linalg::LinalgOp>(&op); root && !taken.contains(&op)) {
        SetVector<Operation *> inits;
        collectInitProducers(root, inits, taken);
        if (fusePadding)
          collectPaddedInputs(root, inits, taken);
        taken.insert(inits.begin(), inits.end());
        initsOf[&op] = std::move(inits);
      }
    SmallVector<SetVector<Operation *>> groups;
    DenseSet<Operation *> grouped;
    for (Operation &op : body) {
      auto root = dyn_cast<linalg::LinalgOp>(&op);
      if (!root || taken.contains(&op) || grouped.contains(&op))
        continue;
      SetVector<Operation *> group = initsOf[&op];
      group.insert(root);
      Operation *last = root;
      DenseSet<Operation *> unavailable(taken);
      unavailable.insert(grouped.begin(), grouped.end());
      while (auto next = fusableConsumer(last, unavailable)) {
        group.insert(next);
        last = next;
      }
      grouped.insert(group.begin(), group.end());
      groups.push_back(std::move(group));
    }
    // Init producers precede their roots in program order, so a group is
    // already sorted if we order it by position.
    unsigned index = 0;
    for (auto &group : groups) {
      SmallVector<Operation *> ops(group.begin(), group.end());
      llvm::sort(ops, [](Operation *a, Operation *b) { return a->isBeforeInBlock(b); });
      // A group whose results have no elements computes nothing.
      if (llvm::all_of(ops.back()->getResults(), hasNoElements)) {
        OpBuilder b(ops.back());
        for (Value r : ops.back()->getResults()) {
          auto t = cast<RankedTensorType>(r.getType());
          r.replaceAllUsesWith(
              tensor::EmptyOp::create(b, r.getLoc(), t.getShape(), t.getElementType()));
        }
        for (Operation *op : llvm::reverse(ops))
          if (op->use_empty())
            op->erase();
        continue;
      }
      std::string name = (host.getSymName() + "_dispatch_" + Twine(index++)).str();
      outline(ops, name, executable, kernels);
    }
    return success();
  }

  void outline(ArrayRef<Operation *> ops, StringRef name, ModuleOp executable,
               SymbolTable &kernels) {
    DenseSet<Operation *> inGroup(ops.begin(), ops.end());
    Operation *last = ops.back();
    SetVector<Value> inputs, cloned;
    auto consider = [&](Value v) {
      Operation *def = v.getDefiningOp();
      if (def && inGroup.contains(def))
        return;
      if (isCloneable(v))
        cloned.insert(v);
      else
        inputs.insert(v);
    };
    for (Operation *op : ops) {
      for (Value v : op->getOperands())
        consider(v);
      for (Region &r : op->getRegions()) {
        SetVector<Value> above;
        getUsedValuesDefinedAbove(r, above);
        for (Value v : above)
          consider(v);
      }
    }

    OpBuilder b(executable.getContext());
    b.setInsertionPointToEnd(executable.getBody());
    auto type = b.getFunctionType(ValueRange(inputs.getArrayRef()).getTypes(),
                                  last->getResultTypes());
    auto kernel = func::FuncOp::create(b, last->getLoc(), name, type);
    kernels.insert(kernel);
    if (std::string nodes = describeNodes(ops); !nodes.empty())
      kernel->setAttr(kiln::kOnnxOpsAttr, b.getStringAttr(nodes));
    Block *entry = kernel.addEntryBlock();
    b.setInsertionPointToStart(entry);
    IRMapping map;
    for (auto [v, arg] : llvm::zip(inputs, entry->getArguments()))
      map.map(v, arg);
    for (Value v : cloned) {
      if (hasNoElements(v)) {
        auto t = cast<RankedTensorType>(v.getType());
        map.map(v, tensor::EmptyOp::create(b, v.getLoc(), t.getShape(), t.getElementType()));
        continue;
      }
      map.map(v, b.clone(*v.getDefiningOp())->getResult(0));
    }
    for (Operation *op : ops)
      b.clone(*op, map);
    SmallVector<Value> results;
    for (Value r : last->getResults())
      results.push_back(map.lookup(r));
    func::ReturnOp::create(b, last->getLoc(), results);

    b.setInsertionPoint(last);
    auto symbol = SymbolRefAttr::get(executable.getSymNameAttr(),
                                     {FlatSymbolRefAttr::get(kernel.getSymNameAttr())});
    auto dispatch = kiln::DispatchOp::create(b, last->getLoc(), last->getResultTypes(), symbol,
                                             inputs.getArrayRef());
    last->replaceAllUsesWith(dispatch->getResults());
    for (Operation *op : llvm::reverse(ops))
      op->erase();
  }
};

} // namespace

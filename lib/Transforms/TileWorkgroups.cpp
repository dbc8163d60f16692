//===- TileWorkgroups.cpp - distribute a kernel over workgroups -----------===//
#include "kiln/Transforms/Passes.h"
#include "kiln/Transforms/RegisterTile.h"

#include "mlir/Dialect/SCF/Transforms/TileUsingInterface.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Interfaces/TilingInterface.h"

#include <cmath>

namespace kiln {
#define GEN_PASS_DEF_TILEWORKGROUPS
#include "kiln/Transforms/Passes.h.inc"
} // namespace kiln

using namespace mlir;

namespace {

/// Picks per-loop tile sizes (0 = untiled) for up to three parallel loops so
/// the grid has about `target` workgroups, outermost loops first unless
/// `innermostFirst`. A tile is a multiple of its loop's `quantum` unless it
/// covers the whole loop. Loop `squareWith` (a contraction's rows, when its
/// columns can be cut too) takes about the square root of the pieces left, so
/// workgroups get square-ish blocks whose operands fit the caches instead of
/// full-width strips that each stream all of `rhs`; at least `minRows` rows
/// where there are that many. Returns the grid in loop order, one count per
/// tiled loop.
constexpr int64_t kMinRowTiles = 8;
/// A register-tiled contraction's workgroup does at least this many
/// multiply-adds (about 5 us at one core's peak), so launching it costs
/// little in comparison.
constexpr int64_t kMinMultiplyAddsPerWorkgroup = 1 << 20, kSpreadWorkgroups = 8;

SmallVector<int64_t> chooseTiles(ArrayRef<int64_t> ranges,
                                 ArrayRef<utils::IteratorType> iters, ArrayRef<int64_t> quantum,
                                 int64_t target, bool innermostFirst,
                                 std::optional<size_t> squareWith, int64_t minRows,
                                 SmallVectorImpl<int64_t> &tiles) {
  tiles.assign(ranges.size(), 0);
  SmallVector<int64_t> counts(ranges.size(), 0);
  int64_t want = target;
  int tiled = 0;
  for (size_t k = 0; k < ranges.size() && tiled < 3 && want > 1; ++k) {
    size_t i = innermostFirst ? ranges.size() - 1 - k : k;
    if (iters[i] != utils::IteratorType::parallel || ranges[i] <= 1)
      continue;
    int64_t q = quantum[i];
    int64_t share = want;
    if (squareWith == i)
      share = std::clamp<int64_t>((int64_t)std::ceil(std::sqrt((double)want)), 1,
                                  std::max<int64_t>(1, ranges[i] / std::max(minRows, q)));
    int64_t count = std::min((ranges[i] + q - 1) / q, share);
    int64_t tile = llvm::alignTo((ranges[i] + count - 1) / count, q);
    tile = std::min(tile, ranges[i]);
    count = (ranges[i] + tile - 1) / tile;
    if (count <= 1)
      continue;
    tiles[i] = tile;
    counts[i] = count;
    ++tiled;
    want = (want + count - 1) / count;
  }
  SmallVector<int64_t> grid;
  for (int64_t c : counts)
    if (c)
      grid.push_back(c);
  return grid;
}

/// The kernel's register-tiled contraction as the root sees it: the root's
/// loops that are its rows and columns, and its reduction steps.
struct RegisterTileLoops {
  std::optional<unsigned> m;
  unsigned n;
  int64_t reductionSteps;
};

int64_t reductionSteps(linalg::LinalgOp op) {
  int64_t steps = 1;
  for (auto [r, it] : llvm::zip(op.getStaticLoopRanges(), op.getIteratorTypesArray()))
    if (it == utils::IteratorType::reduction)
      steps *= r;
  return steps;
}

/// The contraction is the root itself, or the root is an epilogue that
/// reads the contraction's result elementwise (its loops are the
/// contraction's output dims).
std::optional<RegisterTileLoops> registerTileLoops(func::FuncOp kernel, linalg::LinalgOp root) {
  if (auto rt = kiln::matchRegisterTileContraction(root))
    return RegisterTileLoops{rt->m, rt->n, reductionSteps(root)};
  if (root.getNumLoops() != root.getNumParallelLoops() ||
      !llvm::all_of(root.getIndexingMapsArray(), [](AffineMap m) { return m.isIdentity(); }))
    return std::nullopt;
  std::optional<RegisterTileLoops> found;
  kernel.walk([&](linalg::GenericOp op) {
    auto rt = kiln::matchRegisterTileContraction(op);
    if (!rt || op->getResult(0).getType() != root->getResult(0).getType())
      return;
    AffineMap out = op.getIndexingMapMatchingResult(op->getResult(0));
    auto position = [&](unsigned loop) -> std::optional<unsigned> {
      return out.getResultPosition(getAffineDimExpr(loop, op.getContext()));
    };
    std::optional<unsigned> n = position(rt->n), m;
    if (rt->m)
      m = position(*rt->m);
    if (n)
      found = RegisterTileLoops{m, *n, reductionSteps(op)};
  });
  return found;
}

struct TileWorkgroupsPass : kiln::impl::TileWorkgroupsBase<TileWorkgroupsPass> {
  using TileWorkgroupsBase::TileWorkgroupsBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    if (!module->hasAttr(kiln::kExecutableAttr))
      return;
    for (auto kernel : module.getOps<func::FuncOp>())
      if (failed(tileKernel(kernel)))
        return signalPassFailure();
  }

  LogicalResult tileKernel(func::FuncOp kernel) {
    auto ret = cast<func::ReturnOp>(kernel.getBody().front().getTerminator());
    Builder b(kernel.getContext());
    auto setGrid = [&](ArrayRef<int64_t> grid) {
      SmallVector<int64_t> xyz(grid);
      xyz.resize(3, 1);
      kernel->setAttr(kiln::kWorkgroupsAttr, b.getDenseI64ArrayAttr(xyz));
    };
    if (ret.getNumOperands() == 0) {
      setGrid({});
      return success();
    }
    auto root = ret.getOperand(0).getDefiningOp<linalg::LinalgOp>();
    if (!root)
      return kernel.emitError("kernel result is not computed by a linalg op");

    SmallVector<int64_t> ranges = root.getStaticLoopRanges();
    if (llvm::any_of(ranges, ShapedType::isDynamic))
      return root.emitError("dynamic loop ranges are not supported");
    // A zero-size loop anywhere (an empty reduction feeding the root) gives
    // nothing to distribute, and upstream fusion cannot tile through it.
    bool empty = false;
    kernel.walk([&](linalg::LinalgOp op) {
      empty |= llvm::is_contained(op.getStaticLoopRanges(), 0);
    });
    if (empty) {
      setGrid({});
      return success();
    }
    int64_t parallelWork = 1;
    for (auto [r, it] : llvm::zip(ranges, root.getIteratorTypesArray()))
      if (it == utils::IteratorType::parallel)
        parallelWork *= r;
    int64_t target = std::clamp<int64_t>(parallelWork / std::max<int64_t>(minTileElements, 1), 1,
                                         maxWorkgroups);
    // Whole register tiles per workgroup (kiln/Transforms/RegisterTile.h).
    SmallVector<int64_t> quantum(ranges.size(), 1);
    std::optional<size_t> square;
    int64_t minRows = 1;
    if (registerTileRows > 1 || registerTileCols > 1)
      if (auto loops = registerTileLoops(kernel, root)) {
        auto [m, n, reduction] = *loops;
        quantum[n] = registerTileCols;
        if (m) {
          quantum[*m] = registerTileRows;
          if (ranges[n] > quantum[n])
            square = *m;
          // A column strip of a wide rhs over a long reduction (rows 1 KB
          // or more apart, the strip past L1) is worth reading once for
          // kMinRowTiles register tiles: the cpu packs it into a panel then.
          // Past 1024 steps the panel outgrows L2 and packing loses
          // (measured on BERT's 128x3072x768 down-projection).
          if (ranges[n] >= 256 && reduction >= 256 && reduction <= 1024)
            minRows = kMinRowTiles * registerTileRows;
        }
        // Few outputs over a long reduction are still much work (a 1x1
        // convolution of 960 channels on a 7x7 image: 7.5M multiply-adds
        // for 7840 outputs, one workgroup by the count of outputs): up to
        // kSpreadWorkgroups, so several threads share it. More than that
        // would only shrink blocks (BERT's 768-wide projections lost 15 %
        // at one thread with 64 instead of 24).
        int64_t byWork = parallelWork * reduction / kMinMultiplyAddsPerWorkgroup;
        target = std::clamp<int64_t>(std::max(target, std::min(byWork, kSpreadWorkgroups)), 1,
                                     maxWorkgroups);
      }
    SmallVector<int64_t> tiles;
    SmallVector<int64_t> grid = chooseTiles(ranges, root.getIteratorTypesArray(), quantum, target,
                                            innermostFirst, square, minRows, tiles);
    if (grid.empty()) {
      setGrid({});
      return success();
    }

    IRRewriter rewriter(kernel.getContext());
    rewriter.setInsertionPoint(root);
    // An init that is a kernel input (a Gemm's full-shape bias, a reduction
    // accumulating into another dispatch's result) would become the shared
    // output of the workgroup loop: inputs are read-only, so bufferization
    // copies the whole tensor into a temporary in every workgroup and every
    // workgroup writes the whole output back, racing. A copy into an empty
    // tensor instead is a producer that fuses into each workgroup's tile.
    for (OpOperand &init : root.getDpsInitsMutable()) {
      if (!isa<BlockArgument>(init.get()))
        continue;
      auto type = cast<RankedTensorType>(init.get().getType());
      Value empty = tensor::EmptyOp::create(rewriter, root.getLoc(), type.getShape(),
                                            type.getElementType());
      init.set(linalg::CopyOp::create(rewriter, root.getLoc(), init.get(), empty).getResult(0));
    }
    scf::SCFTilingOptions tiling;
    tiling.setTileSizes(getAsIndexOpFoldResult(kernel.getContext(), tiles));
    tiling.setLoopType(scf::SCFTilingOptions::LoopType::ForallOp);
    scf::SCFTileAndFuseOptions options;
    options.setTilingOptions(tiling);
    auto result = scf::tileConsumerAndFuseProducersUsingSCF(
        rewriter, cast<TilingInterface>(root.getOperation()), options);
    if (failed(result))
      return root.emitError("failed to tile onto workgroups");
    for (auto [orig, repl] : result->replacements)
      rewriter.replaceAllUsesWith(orig, repl);
    // The untiled ops are now dead; erase them bottom-up.
    SmallVector<Operation *> dead;
    for (Operation &op : kernel.getBody().front())
      if (isa<linalg::LinalgOp>(op) && op.use_empty())
        dead.push_back(&op);
    for (Operation *op : llvm::reverse(dead))
      rewriter.eraseOp(op);
    setGrid(grid);
    return success();
  }
};

} // namespace

//===- LowerAbi.cpp - the cpu kernel ABI ----------------------------------===//
//
// kiln-cpu-lower-abi gives kernels the cpu ABI: buffers come as an array of
// base pointers, the workgroup id as three integers. The kernel's body moves to
// an internal, always-inlined `<name>.body(memref {llvm.noalias}..., wg_x,
// wg_y, wg_z)` that the ABI function calls: pointers loaded from an array carry
// no alias facts, and without them LLVM keeps a reduction's accumulator in
// memory and guards every vectorized loop with run-time overlap checks.
// Bindings are distinct buffers (an output never shares storage with an input:
// the schedule copies such outputs), and LLVM keeps `noalias` as scoped alias
// metadata when it inlines the body.
//
// Each kernel also exports `kiln_extents_<name>`, i64 {binding count, bytes
// reached through each binding}, and the module `kiln_kernel_extents`, i32
// (the number of kernels), which says that it does. The runtime checks bindings against the
// extents the artifact's meta section states; the cpu driver holds those
// against the code's own, so that an edited entry name or extent cannot send
// a kernel past its buffers (docs/artifact-format.md).
//
//===----------------------------------------------------------------------===//
#include "Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/Builders.h"

namespace kiln {
#define GEN_PASS_DEF_CPULOWERABI
#include "backends/cpu/compiler/Passes.h.inc"
} // namespace kiln

using namespace mlir;

namespace {

struct LowerCpuAbiPass : kiln::impl::CpuLowerAbiBase<LowerCpuAbiPass> {
  void runOnOperation() override {
    SmallVector<func::FuncOp> kernels;
    for (auto kernel : getOperation().getOps<func::FuncOp>())
      if (!kernel.isExternal())
        kernels.push_back(kernel);
    for (func::FuncOp kernel : kernels)
      lower(kernel);
    // Says that the image's kernels describe their bindings, so that the
    // driver refuses an entry name without a description.
    if (!kernels.empty()) {
      auto b = OpBuilder::atBlockEnd(getOperation().getBody());
      LLVM::GlobalOp::create(b, getOperation().getLoc(), b.getI32Type(), /*isConstant=*/true,
                             LLVM::Linkage::External, "kiln_kernel_extents",
                             b.getI32IntegerAttr(kernels.size()));
    }
  }

  void lower(func::FuncOp body) {
    MLIRContext *ctx = body.getContext();
    Location loc = body.getLoc();
    std::string name = body.getSymName().str();
    OpBuilder b(ctx);

    // The body: workgroup ids become arguments, buffers noalias.
    Block &entry = body.getBody().front();
    unsigned numBuffers = entry.getNumArguments();
    Value wg[3];
    for (Value &v : wg)
      v = entry.addArgument(b.getIndexType(), loc);
    body.walk([&](gpu::BlockIdOp id) {
      id.replaceAllUsesWith(wg[(int)id.getDimension()]);
      id.erase();
    });
    body.setType(FunctionType::get(ctx, entry.getArgumentTypes(), {}));
    for (unsigned i = 0; i < numBuffers; ++i)
      body.setArgAttr(i, LLVM::LLVMDialect::getNoAliasAttrName(), b.getUnitAttr());
    body.setSymName(name + ".body");
    body->setAttr("llvm.linkage", LLVM::LinkageAttr::get(ctx, LLVM::Linkage::Internal));
    body->setAttr("passthrough", b.getArrayAttr({b.getStringAttr("alwaysinline")}));

    // The ABI function.
    b.setInsertionPointAfter(body);
    auto ptrTy = LLVM::LLVMPointerType::get(ctx);
    auto i64 = b.getI64Type();
    auto kernel = func::FuncOp::create(
        b, loc, name, FunctionType::get(ctx, {ptrTy, b.getIndexType(), b.getIndexType(),
                                              b.getIndexType()}, {}));
    for (NamedAttribute attr : body->getDiscardableAttrs())
      if (attr.getName() != "llvm.linkage" && attr.getName() != "passthrough")
        kernel->setAttr(attr.getName(), attr.getValue());
    Block *abi = kernel.addEntryBlock();
    b.setInsertionPointToStart(abi);
    // The runtime takes the grid from the artifact; the kernel trusts only
    // the one it was compiled for.
    if (auto grid = body->getAttrOfType<DenseI64ArrayAttr>("kiln.workgroups")) {
      Value inside;
      for (auto [d, n] : llvm::enumerate(grid.asArrayRef().take_front(3))) {
        Value bound = arith::ConstantIndexOp::create(b, loc, n);
        Value lt = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ult,
                                         abi->getArgument(1 + d), bound);
        inside = inside ? arith::AndIOp::create(b, loc, inside, lt).getResult() : lt;
      }
      if (inside) {
        auto guard = scf::IfOp::create(b, loc, inside, /*withElseRegion=*/false);
        b.setInsertionPoint(guard.thenBlock()->getTerminator());
      }
    }
    Value bindings = abi->getArgument(0);
    SmallVector<Value> operands;
    for (unsigned i = 0; i < numBuffers; ++i) {
      auto type = cast<MemRefType>(entry.getArgument(i).getType());
      Value slot = LLVM::GEPOp::create(b, loc, ptrTy, ptrTy, bindings,
                                       ArrayRef<LLVM::GEPArg>{(int32_t)i});
      Value base = LLVM::LoadOp::create(b, loc, ptrTy, slot);
      // Static shapes: the descriptor is the pointer plus constants.
      SmallVector<Type> fields = {ptrTy, ptrTy, i64};
      int64_t rank = type.getRank();
      if (rank > 0) {
        fields.push_back(LLVM::LLVMArrayType::get(i64, rank));
        fields.push_back(LLVM::LLVMArrayType::get(i64, rank));
      }
      auto descTy = LLVM::LLVMStructType::getLiteral(ctx, fields);
      Value desc = LLVM::PoisonOp::create(b, loc, descTy);
      desc = LLVM::InsertValueOp::create(b, loc, desc, base, ArrayRef<int64_t>{0});
      desc = LLVM::InsertValueOp::create(b, loc, desc, base, ArrayRef<int64_t>{1});
      auto c = [&](int64_t v) {
        return LLVM::ConstantOp::create(b, loc, i64, b.getI64IntegerAttr(v));
      };
      desc = LLVM::InsertValueOp::create(b, loc, desc, c(0), ArrayRef<int64_t>{2});
      int64_t stride = 1;
      for (int64_t d = rank - 1; d >= 0; --d) {
        desc = LLVM::InsertValueOp::create(b, loc, desc, c(type.getDimSize(d)),
                                           ArrayRef<int64_t>{3, d});
        desc = LLVM::InsertValueOp::create(b, loc, desc, c(stride), ArrayRef<int64_t>{4, d});
        stride *= type.getDimSize(d);
      }
      operands.push_back(UnrealizedConversionCastOp::create(b, loc, type, desc).getResult(0));
    }
    operands.append(abi->getArguments().begin() + 1, abi->getArguments().end());
    func::CallOp::create(b, loc, body, operands);
    b.setInsertionPointToEnd(abi);
    func::ReturnOp::create(b, loc);

    // Bytes as the schedule counts them: elements narrower than a byte take one.
    SmallVector<int64_t> extents = {numBuffers};
    for (unsigned i = 0; i < numBuffers; ++i) {
      auto type = cast<MemRefType>(entry.getArgument(i).getType());
      extents.push_back((type.getElementTypeBitWidth() + 7) / 8 * type.getNumElements());
    }
    b.setInsertionPointAfter(kernel);
    auto extentsTy = RankedTensorType::get({(int64_t)extents.size()}, i64);
    LLVM::GlobalOp::create(b, loc, LLVM::LLVMArrayType::get(i64, extents.size()),
                           /*isConstant=*/true, LLVM::Linkage::External,
                           "kiln_extents_" + name,
                           DenseElementsAttr::get(extentsTy, ArrayRef<int64_t>(extents)));
  }
};

} // namespace

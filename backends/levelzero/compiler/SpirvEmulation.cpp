//===- SpirvEmulation.cpp - levelzero's SPIR-V kernels on the host CPU ----===//
//
// `levelzero-cpu` is a testing target: it runs the levelzero codegen pipeline
// unchanged (the very pass list of the levelzero backend, looked up in the
// registry, so the two cannot drift apart) up to the `spirv.module` that goes
// to Intel GPUs, then lowers that module with MLIR's SPIR-V -> LLVM
// conversion and wraps every SPIR-V kernel into the cpu ABI
//
//   void k(void *const *bindings, int64_t wg_x, int64_t wg_y, int64_t wg_z)
//
// whose body runs the workgroup's local invocations. The result is linked
// like the cpu backend's kernels (kiln/Target/HostCodegen.h) and runs on the
// cpu driver, one task per GPU workgroup (the entries' workgroup_count is the
// GPU launch grid, their workgroup_size 1x1x1: the wrapper runs the threads),
// so several workgroups of a kernel may run at once on the driver's threads.
//
// SPIR-V builtins (WorkgroupId, LocalInvocationId, ...) become extra
// arguments of the lowered kernel that the wrapper passes per call, instead
// of thread_local globals it would store before each call: arguments keep
// the kernel a pure function of its inputs, need no TLS in a dlopen'ed object
// and let LLVM inline the kernel into the loop and fold the ids.
//
// Workgroup state is passed the same way, since a global would be shared by
// concurrent workgroups: each Workgroup-storage variable becomes a pointer
// argument to a stack allocation of the wrapper, and a kernel with Workgroup
// barriers takes a pthread_barrier_t of the wrapper as its last argument.
//
// A kernel without barriers runs its invocations one after another in a
// loop, which is exact because no invocation waits for another. The loop
// takes them in a scrambled order (below), so that one invocation reading
// what another writes with no barrier between them, a race on a GPU, reads
// it unwritten for many pairs and gives a wrong result. A kernel
// with barriers needs every invocation to reach a barrier before any goes
// on: the wrapper then runs each invocation on a thread of its own and every
// spirv.ControlBarrier becomes a pthread_barrier_wait (a full memory fence,
// which covers any memory semantics the barrier asks for). The pthread
// functions come from the process that dlopens the kernels. If a thread
// cannot be created the wrapper aborts with a message on stderr: the cpu ABI
// has no error path, and the invocations already started would wait at the
// barrier forever. Subgroups are single invocations here (no subgroup builtin
// or operation is emulated), so a Subgroup barrier is only a fence.
//
// MLIR's SPIR-V -> LLVM conversion covers the core and GLSL ops but not the
// OpenCL extended instruction set nor SNegate/IsNan/IsInf, which the Kernel model
// produces; those are converted here to LLVM intrinsics or libm calls.
//
//===----------------------------------------------------------------------===//
#include "Passes.h"
#include "kiln/Target/GpuTarget.h"
#include "kiln/Target/HostCodegen.h"

#include "mlir/Conversion/LLVMCommon/TypeConverter.h"
#include "mlir/Conversion/SPIRVToLLVM/SPIRVToLLVM.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/FunctionCallUtils.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/SPIRV/IR/SPIRVDialect.h"
#include "mlir/Dialect/SPIRV/IR/SPIRVOps.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/SymbolTable.h"
#include "mlir/Pass/Pass.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Transforms/DialectConversion.h"

#include "llvm/ADT/StringMap.h"
#include "llvm/ADT/StringSet.h"

#include <numeric>

namespace kiln {
#define GEN_PASS_DEF_LEVELZEROSPIRVTOHOST
#include "backends/levelzero/compiler/Passes.h.inc"
} // namespace kiln

using namespace mlir;
using kiln::gpu::makeError;

namespace {

/// The builtins a wrapper can provide, in the order they are appended to a
/// kernel's arguments.
const spirv::BuiltIn kSupportedBuiltins[] = {
    spirv::BuiltIn::WorkgroupId,   spirv::BuiltIn::LocalInvocationId,
    spirv::BuiltIn::GlobalInvocationId, spirv::BuiltIn::WorkgroupSize,
    spirv::BuiltIn::NumWorkgroups, spirv::BuiltIn::GlobalSize,
    spirv::BuiltIn::GlobalOffset,
};

constexpr llvm::StringLiteral kLoweredSuffix = ".spirv";

//===----------------------------------------------------------------------===//
// OpenCL extended instructions and the few core ops the upstream conversion
// lacks.
//===----------------------------------------------------------------------===//

/// spirv.CL.<name> -> an LLVM intrinsic (element-wise, scalars or vectors) or,
/// for functions LLVM has no intrinsic for, a libm call (scalars).
struct ClOpLowering {
  const char *intrinsic; // "llvm.exp"; null if libm
  const char *libm;      // "erf" (f64) / "erff" (f32); null if intrinsic
};

const llvm::StringMap<ClOpLowering> &clOpTable() {
  static const llvm::StringMap<ClOpLowering> table = {
      {"exp", {"llvm.exp", nullptr}},      {"log", {"llvm.log", nullptr}},
      {"sqrt", {"llvm.sqrt", nullptr}},    {"fabs", {"llvm.fabs", nullptr}},
      {"floor", {"llvm.floor", nullptr}},  {"ceil", {"llvm.ceil", nullptr}},
      {"sin", {"llvm.sin", nullptr}},      {"cos", {"llvm.cos", nullptr}},
      {"tan", {"llvm.tan", nullptr}},      {"tanh", {"llvm.tanh", nullptr}},
      {"asin", {"llvm.asin", nullptr}},    {"acos", {"llvm.acos", nullptr}},
      {"atan", {"llvm.atan", nullptr}},    {"sinh", {"llvm.sinh", nullptr}},
      {"cosh", {"llvm.cosh", nullptr}},    {"atan2", {"llvm.atan2", nullptr}},
      {"pow", {"llvm.pow", nullptr}},      {"fma", {"llvm.fma", nullptr}},
      {"fmax", {"llvm.maxnum", nullptr}},  {"fmin", {"llvm.minnum", nullptr}},
      {"round", {"llvm.round", nullptr}},  {"rint", {"llvm.rint", nullptr}},
      {"s_max", {"llvm.smax", nullptr}},   {"s_min", {"llvm.smin", nullptr}},
      {"u_max", {"llvm.umax", nullptr}},   {"u_min", {"llvm.umin", nullptr}},
      {"log2", {"llvm.log2", nullptr}},    {"log10", {"llvm.log10", nullptr}},
      {"exp2", {"llvm.exp2", nullptr}},    {"trunc", {"llvm.trunc", nullptr}},
      {"copysign", {"llvm.copysign", nullptr}},
      {"erf", {nullptr, "erf"}},           {"asinh", {nullptr, "asinh"}},
      {"acosh", {nullptr, "acosh"}},       {"atanh", {nullptr, "atanh"}},
      {"cbrt", {nullptr, "cbrt"}},         {"expm1", {nullptr, "expm1"}},
      {"log1p", {nullptr, "log1p"}},       {"fmod", {nullptr, "fmod"}},
  };
  return table;
}

/// Matches every op (the root name is checked in matchAndRewrite): the table
/// above is keyed by the CL mnemonic.
struct ClOpPattern : ConversionPattern {
  ClOpPattern(const TypeConverter &converter, MLIRContext *ctx, ModuleOp executable)
      : ConversionPattern(converter, MatchAnyOpTypeTag(), /*benefit=*/1, ctx),
        executable(executable) {}
  /// libm declarations go here, next to the wrappers.
  mutable ModuleOp executable;

  LogicalResult matchAndRewrite(Operation *op, ArrayRef<Value> operands,
                                ConversionPatternRewriter &rewriter) const override {
    StringRef name = op->getName().getStringRef();
    if (!name.consume_front("spirv.CL.") || op->getNumResults() != 1)
      return failure();
    Type type = getTypeConverter()->convertType(op->getResult(0).getType());
    if (!type)
      return failure();
    Location loc = op->getLoc();
    if (name == "rsqrt") {
      Value s = LLVM::CallIntrinsicOp::create(rewriter, loc, type,
                                              rewriter.getStringAttr("llvm.sqrt"),
                                              ValueRange{operands[0]})
                    .getResult(0);
      Value one = LLVM::ConstantOp::create(rewriter, loc, type, rewriter.getFloatAttr(type, 1.0));
      rewriter.replaceOpWithNewOp<LLVM::FDivOp>(op, one, s);
      return success();
    }
    if (name == "s_abs") {
      Value poison = LLVM::ConstantOp::create(rewriter, loc, rewriter.getI1Type(),
                                              rewriter.getBoolAttr(false));
      rewriter.replaceOpWithNewOp<LLVM::CallIntrinsicOp>(
          op, type, rewriter.getStringAttr("llvm.abs"),
          ValueRange{operands[0], poison});
      return success();
    }
    auto it = clOpTable().find(name);
    if (it == clOpTable().end())
      return rewriter.notifyMatchFailure(op, "no host lowering for this OpenCL instruction");
    if (it->second.intrinsic) {
      rewriter.replaceOpWithNewOp<LLVM::CallIntrinsicOp>(
          op, type, rewriter.getStringAttr(it->second.intrinsic), operands);
      return success();
    }
    if (!type.isF32() && !type.isF64())
      return rewriter.notifyMatchFailure(op, "libm functions take f32 or f64 scalars");
    std::string fn = std::string(it->second.libm) + (type.isF32() ? "f" : "");
    auto fnType = LLVM::LLVMFunctionType::get(type, SmallVector<Type>(operands.size(), type));
    if (!SymbolTable::lookupSymbolIn(executable, fn)) {
      OpBuilder::InsertionGuard guard(rewriter);
      rewriter.setInsertionPointToStart(executable.getBody());
      LLVM::LLVMFuncOp::create(rewriter, loc, fn, fnType);
    }
    rewriter.replaceOpWithNewOp<LLVM::CallOp>(op, fnType, fn, operands);
    return success();
  }
};

/// spirv.SNegate, spirv.IsNan / spirv.IsInf / spirv.Ordered / spirv.Unordered.
struct FloatClassPattern : ConversionPattern {
  FloatClassPattern(const TypeConverter &converter, MLIRContext *ctx)
      : ConversionPattern(converter, MatchAnyOpTypeTag(), /*benefit=*/1, ctx) {}

  LogicalResult matchAndRewrite(Operation *op, ArrayRef<Value> operands,
                                ConversionPatternRewriter &rewriter) const override {
    Location loc = op->getLoc();
    if (isa<spirv::SNegateOp>(op)) {
      Type type = operands[0].getType();
      Value zero = LLVM::ZeroOp::create(rewriter, loc, type);
      rewriter.replaceOpWithNewOp<LLVM::SubOp>(op, zero, operands[0]);
      return success();
    }
    if (isa<spirv::IsNanOp>(op)) {
      rewriter.replaceOpWithNewOp<LLVM::FCmpOp>(op, LLVM::FCmpPredicate::uno, operands[0],
                                                operands[0]);
      return success();
    }
    if (isa<spirv::OrderedOp, spirv::UnorderedOp>(op)) {
      rewriter.replaceOpWithNewOp<LLVM::FCmpOp>(
          op, isa<spirv::OrderedOp>(op) ? LLVM::FCmpPredicate::ord : LLVM::FCmpPredicate::uno,
          operands[0], operands[1]);
      return success();
    }
    if (isa<spirv::IsInfOp>(op)) {
      Type type = operands[0].getType();
      Value abs = LLVM::FAbsOp::create(rewriter, loc, operands[0]);
      Type scalar = getElementTypeOrSelf(type);
      TypedAttr infAttr = rewriter.getFloatAttr(
          scalar, APFloat::getInf(cast<FloatType>(scalar).getFloatSemantics()));
      if (auto vec = dyn_cast<VectorType>(type))
        infAttr = DenseElementsAttr::get(vec, infAttr);
      Value inf = LLVM::ConstantOp::create(rewriter, loc, type, infAttr);
      rewriter.replaceOpWithNewOp<LLVM::FCmpOp>(op, LLVM::FCmpPredicate::oeq, abs, inf);
      return success();
    }
    return failure();
  }
};

/// spirv.ControlBarrier of Subgroup execution scope (Workgroup ones became
/// pthread_barrier_wait calls before the conversion). With single-invocation
/// subgroups there is no one to wait for: what remains is the ordering of
/// memory, a fence. Outranks the upstream pattern, which calls an OpenCL
/// builtin that no host library defines.
struct SubgroupBarrierPattern : OpConversionPattern<spirv::ControlBarrierOp> {
  SubgroupBarrierPattern(const TypeConverter &converter, MLIRContext *ctx)
      : OpConversionPattern(converter, ctx, /*benefit=*/2) {}

  LogicalResult matchAndRewrite(spirv::ControlBarrierOp op, OpAdaptor,
                                ConversionPatternRewriter &rewriter) const override {
    if (op.getExecutionScope() != spirv::Scope::Subgroup)
      return rewriter.notifyMatchFailure(op, "only Subgroup barriers are left to convert");
    rewriter.replaceOpWithNewOp<LLVM::FenceOp>(op, LLVM::AtomicOrdering::acq_rel);
    return success();
  }
};

//===----------------------------------------------------------------------===//
// kiln-spirv-to-host
//===----------------------------------------------------------------------===//

/// What the wrapper of one kernel needs to know.
struct KernelInfo {
  std::string name;
  unsigned numBuffers = 0;
  SmallVector<spirv::BuiltIn> builtins; // appended arguments, in order
  /// The LLVM types of the Workgroup variables the kernel uses, in the order
  /// of the pointer arguments that follow the builtins.
  SmallVector<Type> workgroupMemory;
  /// Whether the kernel has Workgroup barriers: its invocations then run on
  /// threads of their own, and a pthread_barrier_t pointer is its last
  /// argument.
  bool hasBarrier = false;
  std::array<int64_t, 3> block = {1, 1, 1};
  std::array<int64_t, 3> launch = {1, 1, 1};
};

/// Builds the cpu-ABI wrapper of one lowered kernel.
class WrapperBuilder {
public:
  WrapperBuilder(ModuleOp executable, const KernelInfo &info, LLVM::LLVMFuncOp lowered)
      : executable(executable), info(info), lowered(lowered), loc(lowered.getLoc()),
        b(OpBuilder::atBlockEnd(executable.getBody())),
        ptrTy(LLVM::LLVMPointerType::get(executable.getContext())), i64(b.getI64Type()) {}

  /// Calls the lowered kernel once per local invocation, in a loop.
  void buildSerial(LLVM::LLVMFuncOp wrapper);
  /// Runs every local invocation on a thread of its own, all sharing one
  /// pthread barrier.
  LogicalResult buildThreaded(LLVM::LLVMFuncOp wrapper);

private:
  Value constant(int64_t v) { return LLVM::ConstantOp::create(b, loc, i64, v); }
  /// The buffer pointers, in the kernel's address spaces.
  SmallVector<Value> loadBuffers(Value bindings);
  /// One stack allocation per Workgroup variable.
  SmallVector<Value> allocateWorkgroupMemory();
  /// Calls the lowered kernel for linear local invocation `index` of
  /// workgroup `group`; `state` is the workgroup memory, then the barrier.
  void callKernel(SmallVector<Value> args, ArrayRef<Value> group, Value index,
                  ArrayRef<Value> state);
  FailureOr<LLVM::LLVMFuncOp> declare(StringRef name, Type result, ArrayRef<Type> params) {
    return LLVM::lookupOrCreateFn(b, executable, name, params, result);
  }

  ModuleOp executable;
  const KernelInfo &info;
  LLVM::LLVMFuncOp lowered;
  Location loc;
  OpBuilder b;
  Type ptrTy, i64;
};

SmallVector<Value> WrapperBuilder::loadBuffers(Value bindings) {
  SmallVector<Value> buffers;
  for (unsigned i = 0; i < info.numBuffers; ++i) {
    Type paramTy = lowered.getFunctionType().getParamType(i);
    Value slot = LLVM::GEPOp::create(b, loc, ptrTy, ptrTy, bindings,
                                     ArrayRef<LLVM::GEPArg>{(int32_t)i});
    Value base = LLVM::LoadOp::create(b, loc, ptrTy, slot);
    if (paramTy != ptrTy)
      base = LLVM::AddrSpaceCastOp::create(b, loc, paramTy, base);
    buffers.push_back(base);
  }
  return buffers;
}

SmallVector<Value> WrapperBuilder::allocateWorkgroupMemory() {
  // Vector loads and stores of the kernel may assume their natural alignment
  // (up to 512 bits).
  constexpr unsigned kAlignment = 64;
  SmallVector<Value> memory;
  for (Type type : info.workgroupMemory)
    memory.push_back(LLVM::AllocaOp::create(b, loc, ptrTy, type, constant(1), kAlignment));
  return memory;
}

void WrapperBuilder::callKernel(SmallVector<Value> args, ArrayRef<Value> group, Value index,
                                ArrayRef<Value> state) {
  LLVM::LLVMFunctionType kernelType = lowered.getFunctionType();
  // Local id from the linear index, x fastest.
  Value local[3];
  local[0] = LLVM::URemOp::create(b, loc, index, constant(info.block[0]));
  Value rest = LLVM::UDivOp::create(b, loc, index, constant(info.block[0]));
  local[1] = LLVM::URemOp::create(b, loc, rest, constant(info.block[1]));
  local[2] = LLVM::UDivOp::create(b, loc, rest, constant(info.block[1]));
  for (auto [k, kind] : llvm::enumerate(info.builtins)) {
    auto vecTy = cast<VectorType>(kernelType.getParamType(info.numBuffers + k));
    Value comps[3];
    for (int d = 0; d < 3; ++d) {
      switch (kind) {
      case spirv::BuiltIn::WorkgroupId:
        comps[d] = group[d];
        break;
      case spirv::BuiltIn::LocalInvocationId:
        comps[d] = local[d];
        break;
      case spirv::BuiltIn::GlobalInvocationId:
        comps[d] = LLVM::AddOp::create(
            b, loc, LLVM::MulOp::create(b, loc, group[d], constant(info.block[d])), local[d]);
        break;
      case spirv::BuiltIn::WorkgroupSize:
        comps[d] = constant(info.block[d]);
        break;
      case spirv::BuiltIn::NumWorkgroups:
        comps[d] = constant(info.launch[d]);
        break;
      case spirv::BuiltIn::GlobalSize:
        comps[d] = constant(info.launch[d] * info.block[d]);
        break;
      default: // GlobalOffset
        comps[d] = constant(0);
        break;
      }
    }
    Value vec = LLVM::PoisonOp::create(b, loc, vecTy);
    for (int d = 0; d < 3; ++d) {
      Value v = comps[d];
      if (vecTy.getElementType() != i64)
        v = LLVM::TruncOp::create(b, loc, vecTy.getElementType(), v);
      vec = LLVM::InsertElementOp::create(b, loc, vec, v, constant(d));
    }
    args.push_back(vec);
  }
  for (Value v : state) {
    // Workgroup memory is in the Workgroup address space.
    Type paramTy = kernelType.getParamType(args.size());
    if (v.getType() != paramTy)
      v = LLVM::AddrSpaceCastOp::create(b, loc, paramTy, v);
    args.push_back(v);
  }
  LLVM::CallOp::create(b, loc, lowered, args);
}

/// The serial wrapper runs invocation (i * stride + n - 1) mod n at step i:
/// a stride coprime to n and near n/2 makes that a permutation that is
/// neither increasing nor decreasing, and invocation 0 runs about halfway.
/// In index order, a value invocation 0 publishes (a broadcast) would be
/// there for every later reader, and in reverse order a value invocation
/// t - 1 publishes for invocation t: with no barrier, both bugs would pass.
static int64_t scrambleStride(int64_t n) {
  for (int64_t p = n / 2 + 1; p < n; ++p)
    if (std::gcd(p, n) == 1)
      return p;
  return 1;
}

void WrapperBuilder::buildSerial(LLVM::LLVMFuncOp wrapper) {
  Block *entry = wrapper.addEntryBlock(b);
  Block *header = b.createBlock(&wrapper.getBody(), {}, {i64}, {loc});
  Block *body = b.createBlock(&wrapper.getBody());
  Block *exit = b.createBlock(&wrapper.getBody());

  b.setInsertionPointToStart(entry);
  SmallVector<Value> buffers = loadBuffers(entry->getArgument(0));
  SmallVector<Value> memory = allocateWorkgroupMemory();
  int64_t total = info.block[0] * info.block[1] * info.block[2];
  LLVM::BrOp::create(b, loc, ValueRange{constant(0)}, header);

  // Header: for (i = 0; i < block size; ++i)
  b.setInsertionPointToStart(header);
  Value i = header->getArgument(0);
  Value more = LLVM::ICmpOp::create(b, loc, LLVM::ICmpPredicate::ult, i, constant(total));
  LLVM::CondBrOp::create(b, loc, more, body, exit);

  b.setInsertionPointToStart(body);
  Value group[3] = {entry->getArgument(1), entry->getArgument(2), entry->getArgument(3)};
  Value scrambled = LLVM::URemOp::create(
      b, loc,
      LLVM::AddOp::create(b, loc, LLVM::MulOp::create(b, loc, i, constant(scrambleStride(total))),
                          constant(total - 1)),
      constant(total));
  callKernel(buffers, group, scrambled, memory);
  Value next = LLVM::AddOp::create(b, loc, i, constant(1));
  LLVM::BrOp::create(b, loc, ValueRange{next}, header);

  b.setInsertionPointToStart(exit);
  LLVM::ReturnOp::create(b, loc, ValueRange{});
}

LogicalResult WrapperBuilder::buildThreaded(LLVM::LLVMFuncOp wrapper) {
  MLIRContext *ctx = executable.getContext();
  Type i32 = b.getI32Type();
  Type voidTy = LLVM::LLVMVoidType::get(ctx);
  // pthread_t is an unsigned long on glibc (x86_64, aarch64); the
  // pthread_barrier_t is opaque storage, 32 bytes there, given room to spare.
  FailureOr<LLVM::LLVMFuncOp> create =
      declare("pthread_create", i32, {ptrTy, ptrTy, ptrTy, ptrTy});
  FailureOr<LLVM::LLVMFuncOp> join = declare("pthread_join", i32, {i64, ptrTy});
  FailureOr<LLVM::LLVMFuncOp> barrierInit =
      declare("pthread_barrier_init", i32, {ptrTy, ptrTy, i32});
  FailureOr<LLVM::LLVMFuncOp> barrierDestroy = declare("pthread_barrier_destroy", i32, {ptrTy});
  FailureOr<LLVM::LLVMFuncOp> write = declare("write", i64, {i32, ptrTy, i64});
  FailureOr<LLVM::LLVMFuncOp> abort = declare("abort", voidTy, {});
  if (failed(create) || failed(join) || failed(barrierInit) || failed(barrierDestroy) ||
      failed(write) || failed(abort))
    return executable.emitError("levelzero-cpu: a libc function is defined with another type");
  Type barrierTy = LLVM::LLVMArrayType::get(b.getI8Type(), 64);
  constexpr unsigned kBarrierAlignment = 16;

  // What every invocation reads: bindings, workgroup id, barrier, memory.
  SmallVector<Type> fields = {ptrTy, i64, i64, i64, ptrTy};
  fields.append(info.workgroupMemory.size(), ptrTy);
  auto contextTy = LLVM::LLVMStructType::getLiteral(ctx, fields);
  // The argument of one invocation's thread: the context and its index.
  auto slotTy = LLVM::LLVMStructType::getLiteral(ctx, {ptrTy, i64});
  auto field = [&](Type structTy, Value base, int32_t i) -> Value {
    return LLVM::GEPOp::create(b, loc, ptrTy, structTy, base, ArrayRef<LLVM::GEPArg>{0, i});
  };

  // `ptr name.invocation(ptr slot)`: the thread body of one invocation.
  b.setInsertionPoint(wrapper);
  auto invocation = LLVM::LLVMFuncOp::create(b, loc, info.name + ".invocation",
                                             LLVM::LLVMFunctionType::get(ptrTy, {ptrTy}));
  invocation.setLinkage(LLVM::Linkage::Internal);
  Block *body = invocation.addEntryBlock(b);
  b.setInsertionPointToStart(body);
  Value slot = body->getArgument(0);
  Value context = LLVM::LoadOp::create(b, loc, ptrTy, field(slotTy, slot, 0));
  Value index = LLVM::LoadOp::create(b, loc, i64, field(slotTy, slot, 1));
  SmallVector<Value> loaded;
  for (auto [i, type] : llvm::enumerate(fields))
    loaded.push_back(LLVM::LoadOp::create(b, loc, type, field(contextTy, context, i)));
  SmallVector<Value> state(loaded.begin() + 5, loaded.end());
  state.push_back(loaded[4]);
  callKernel(loadBuffers(loaded[0]), {loaded[1], loaded[2], loaded[3]}, index, state);
  LLVM::ReturnOp::create(b, loc, ValueRange{LLVM::ZeroOp::create(b, loc, ptrTy)});

  int64_t total = info.block[0] * info.block[1] * info.block[2];
  Block *entry = wrapper.addEntryBlock(b);
  Block *spawnHeader = b.createBlock(&wrapper.getBody(), {}, {i64}, {loc});
  Block *spawn = b.createBlock(&wrapper.getBody());
  Block *spawnFailed = b.createBlock(&wrapper.getBody());
  Block *runFirst = b.createBlock(&wrapper.getBody());
  Block *joinHeader = b.createBlock(&wrapper.getBody(), {}, {i64}, {loc});
  Block *joinBody = b.createBlock(&wrapper.getBody());
  Block *exit = b.createBlock(&wrapper.getBody());

  // Entry: the workgroup's barrier, memory and context, per call (other
  // workgroups of this kernel may be running on other threads).
  b.setInsertionPointToStart(entry);
  Value barrier = LLVM::AllocaOp::create(b, loc, ptrTy, barrierTy, constant(1), kBarrierAlignment);
  SmallVector<Value> memory = allocateWorkgroupMemory();
  Value contextAlloc = LLVM::AllocaOp::create(b, loc, ptrTy, contextTy, constant(1));
  SmallVector<Value> values = {entry->getArgument(0), entry->getArgument(1),
                               entry->getArgument(2), entry->getArgument(3), barrier};
  values.append(memory);
  for (auto [i, v] : llvm::enumerate(values))
    LLVM::StoreOp::create(b, loc, v, field(contextTy, contextAlloc, i));
  Value slots = LLVM::AllocaOp::create(b, loc, ptrTy, slotTy, constant(total));
  Value threads = LLVM::AllocaOp::create(b, loc, ptrTy, i64, constant(total));
  Value null = LLVM::ZeroOp::create(b, loc, ptrTy);
  LLVM::CallOp::create(b, loc, *barrierInit,
                       ValueRange{barrier, null, LLVM::ConstantOp::create(b, loc, i32, total)});
  auto slotAt = [&](Value i) {
    Value s = LLVM::GEPOp::create(b, loc, ptrTy, slotTy, slots, ArrayRef<LLVM::GEPArg>{i});
    LLVM::StoreOp::create(b, loc, contextAlloc, field(slotTy, s, 0));
    LLVM::StoreOp::create(b, loc, i, field(slotTy, s, 1));
    return s;
  };
  // Invocation 0 runs on the calling thread, the others on new ones.
  LLVM::BrOp::create(b, loc, ValueRange{constant(1)}, spawnHeader);

  b.setInsertionPointToStart(spawnHeader);
  Value i = spawnHeader->getArgument(0);
  Value more = LLVM::ICmpOp::create(b, loc, LLVM::ICmpPredicate::ult, i, constant(total));
  LLVM::CondBrOp::create(b, loc, more, spawn, runFirst);

  b.setInsertionPointToStart(spawn);
  Value thread = LLVM::GEPOp::create(b, loc, ptrTy, i64, threads, ArrayRef<LLVM::GEPArg>{i});
  Value fn = LLVM::AddressOfOp::create(b, loc, invocation);
  Value rc = LLVM::CallOp::create(b, loc, *create, ValueRange{thread, null, fn, slotAt(i)})
                 .getResult();
  Value ok = LLVM::ICmpOp::create(b, loc, LLVM::ICmpPredicate::eq, rc,
                                  LLVM::ConstantOp::create(b, loc, i32, 0));
  Value next = LLVM::AddOp::create(b, loc, i, constant(1));
  LLVM::CondBrOp::create(b, loc, ok, spawnHeader, ValueRange{next}, spawnFailed, ValueRange{});

  // The invocations already started would wait at the barrier forever, and
  // the cpu ABI has no way to report an error: say why on stderr and abort.
  b.setInsertionPointToStart(spawnFailed);
  std::string message = "kiln: levelzero-cpu: pthread_create failed running a workgroup of " +
                        info.name + " (" + std::to_string(total) +
                        " threads, one per invocation)\n";
  Value text = LLVM::createGlobalString(loc, b, info.name + ".spawn_error", message,
                                        LLVM::Linkage::Internal);
  LLVM::CallOp::create(b, loc, *write,
                       ValueRange{LLVM::ConstantOp::create(b, loc, i32, 2), text,
                                  constant(message.size())});
  LLVM::CallOp::create(b, loc, *abort, ValueRange{});
  LLVM::UnreachableOp::create(b, loc);

  b.setInsertionPointToStart(runFirst);
  LLVM::CallOp::create(b, loc, invocation, ValueRange{slotAt(constant(0))});
  LLVM::BrOp::create(b, loc, ValueRange{constant(1)}, joinHeader);

  b.setInsertionPointToStart(joinHeader);
  Value j = joinHeader->getArgument(0);
  more = LLVM::ICmpOp::create(b, loc, LLVM::ICmpPredicate::ult, j, constant(total));
  LLVM::CondBrOp::create(b, loc, more, joinBody, exit);

  b.setInsertionPointToStart(joinBody);
  Value joined = LLVM::LoadOp::create(
      b, loc, i64, LLVM::GEPOp::create(b, loc, ptrTy, i64, threads, ArrayRef<LLVM::GEPArg>{j}));
  LLVM::CallOp::create(b, loc, *join, ValueRange{joined, null});
  LLVM::BrOp::create(b, loc, ValueRange{LLVM::AddOp::create(b, loc, j, constant(1))}, joinHeader);

  b.setInsertionPointToStart(exit);
  LLVM::CallOp::create(b, loc, *barrierDestroy, ValueRange{barrier});
  LLVM::ReturnOp::create(b, loc, ValueRange{});
  return success();
}

/// Lowers the executable's spirv.module to LLVM-dialect functions in the cpu
/// ABI, one wrapper per SPIR-V kernel.
struct SpirvToHostPass : kiln::impl::LevelZeroSpirvToHostBase<SpirvToHostPass> {

  void runOnOperation() override {
    ModuleOp executable = getOperation();
    auto launches = executable->getAttrOfType<DictionaryAttr>("kiln.gpu_launches");
    SmallVector<spirv::ModuleOp> spirvModules;
    executable.walk([&](spirv::ModuleOp m) { spirvModules.push_back(m); });
    if (spirvModules.empty())
      return;
    if (spirvModules.size() != 1 || !launches) {
      executable.emitError("expected one spirv.module and kiln.gpu_launches from the levelzero "
                           "pipeline");
      return signalPassFailure();
    }
    spirv::ModuleOp spirvModule = spirvModules.front();
    LLVMTypeConverter converter(&getContext());
    populateSPIRVToLLVMTypeConversion(converter, spirv::ClientAPI::OpenCL);
    // Builtin loads, workgroup memory and barriers become kernel arguments
    // while the module is still SPIR-V.
    SmallVector<KernelInfo> kernels;
    if (failed(builtinsToArguments(spirvModule, launches, kernels)) ||
        failed(workgroupStateToArguments(spirvModule, converter, kernels)))
      return signalPassFailure();
    hoistVariables(spirvModule);

    // The spirv.module replaces the gpu.module it sits in.
    Operation *gpuModule = spirvModule->getParentOp();
    spirvModule->moveBefore(gpuModule);
    if (isa<gpu::GPUModuleOp>(gpuModule))
      gpuModule->erase();
    executable->removeAttr(gpu::GPUDialect::getContainerModuleAttrName());

    if (failed(convertToLLVM(executable, converter)))
      return signalPassFailure();

    // The conversion turned the spirv.module into a nested builtin.module:
    // its functions join the executable.
    for (ModuleOp nested : llvm::make_early_inc_range(executable.getOps<ModuleOp>())) {
      Block *body = nested.getBody();
      for (Operation &op : llvm::make_early_inc_range(*body))
        op.moveBefore(nested);
      nested.erase();
    }
    for (const KernelInfo &kernel : kernels)
      if (failed(wrap(executable, kernel)))
        return signalPassFailure();
  }

  LogicalResult builtinsToArguments(spirv::ModuleOp module, DictionaryAttr launches,
                                    SmallVector<KernelInfo> &kernels) {
    // Builtin variables by symbol.
    llvm::StringMap<spirv::GlobalVariableOp> builtinVars;
    llvm::StringMap<spirv::BuiltIn> builtinKind;
    for (auto var : module.getOps<spirv::GlobalVariableOp>()) {
      std::optional<StringRef> builtin = var.getBuiltIn();
      if (!builtin)
        continue;
      std::optional<spirv::BuiltIn> kind = spirv::symbolizeBuiltIn(*builtin);
      if (!kind || !llvm::is_contained(kSupportedBuiltins, *kind))
        return var.emitError() << "levelzero-cpu: the SPIR-V builtin " << *builtin
                               << " cannot be emulated on the host";
      builtinVars[var.getSymName()] = var;
      builtinKind[var.getSymName()] = *kind;
    }

    llvm::StringSet<> entryPoints;
    for (auto ep : module.getOps<spirv::EntryPointOp>())
      entryPoints.insert(ep.getFn());

    for (auto func : module.getOps<spirv::FuncOp>()) {
      SmallVector<spirv::AddressOfOp> uses;
      func.walk([&](spirv::AddressOfOp a) {
        if (builtinVars.count(a.getVariable()))
          uses.push_back(a);
      });
      bool isKernel = entryPoints.contains(func.getSymName());
      if (!isKernel) {
        if (!uses.empty())
          return func.emitError("levelzero-cpu: builtins are only supported in entry points");
        continue;
      }
      KernelInfo info;
      info.name = func.getSymName().str();
      info.numBuffers = func.getNumArguments();
      auto shape = dyn_cast_or_null<ArrayAttr>(launches.get(info.name));
      if (!shape || shape.size() != 2)
        return func.emitError("levelzero-cpu: no launch shape in kiln.gpu_launches");
      for (int i = 0; i < 3; ++i) {
        info.block[i] = cast<DenseI32ArrayAttr>(shape[0])[i];
        info.launch[i] = cast<DenseI32ArrayAttr>(shape[1])[i];
      }
      // One argument per builtin used, in kSupportedBuiltins order.
      llvm::DenseMap<unsigned, Value> argOf;
      Block &entry = func.getBody().front();
      for (spirv::BuiltIn kind : kSupportedBuiltins) {
        for (spirv::AddressOfOp a : uses) {
          if (builtinKind[a.getVariable()] != kind)
            continue;
          Type type = cast<spirv::PointerType>(a.getType()).getPointeeType();
          auto vec = dyn_cast<VectorType>(type);
          if (!vec || vec.getNumElements() != 3 || !vec.getElementType().isInteger())
            return a.emitError() << "levelzero-cpu: expected the builtin "
                                 << spirv::stringifyBuiltIn(kind) << " as vector<3 x iN>";
          if (!argOf.count((unsigned)kind)) {
            func.insertArgument(func.getNumArguments(), type, {}, func.getLoc());
            argOf[(unsigned)kind] = entry.getArgument(entry.getNumArguments() - 1);
            info.builtins.push_back(kind);
          }
          break;
        }
      }
      for (spirv::AddressOfOp a : uses) {
        Value arg = argOf[(unsigned)builtinKind[a.getVariable()]];
        for (Operation *user : llvm::make_early_inc_range(a->getUsers())) {
          auto load = dyn_cast<spirv::LoadOp>(user);
          if (!load)
            return user->emitError("levelzero-cpu: a builtin is used other than by spirv.Load");
          load.getResult().replaceAllUsesWith(arg);
          load.erase();
        }
        a.erase();
      }
      kernels.push_back(std::move(info));
    }
    // The wrapper takes the workgroup size from kiln.gpu_launches; the
    // LocalSize execution mode must agree. Execution modes have no meaning on
    // the host (the conversion would export them as globals): they go.
    for (auto mode : llvm::make_early_inc_range(module.getOps<spirv::ExecutionModeOp>())) {
      if (mode.getExecutionMode() == spirv::ExecutionMode::LocalSize) {
        auto it = llvm::find_if(kernels, [&](const KernelInfo &k) { return k.name == mode.getFn(); });
        ArrayAttr values = mode.getValues();
        if (it != kernels.end())
          for (int i = 0; i < 3 && i < (int)values.size(); ++i)
            if (cast<IntegerAttr>(values[i]).getInt() != it->block[i])
              return mode.emitError("levelzero-cpu: LocalSize disagrees with kiln.gpu_launches");
      }
      mode.erase();
    }
    // Entry points no longer name the builtins; the variables go.
    for (auto ep : module.getOps<spirv::EntryPointOp>()) {
      SmallVector<Attribute> kept;
      for (Attribute a : ep.getInterface())
        if (!builtinVars.count(cast<FlatSymbolRefAttr>(a).getValue()))
          kept.push_back(a);
      ep.setInterfaceAttr(ArrayAttr::get(module.getContext(), kept));
    }
    for (auto &var : builtinVars)
      var.second.erase();
    return success();
  }

  /// Gives each kernel its workgroup memory and barrier as arguments: the
  /// wrapper owns one of each per workgroup. Workgroup variables become
  /// pointer arguments after the builtins, in the order of first use; a
  /// kernel with Workgroup barriers takes a barrier pointer last, and its
  /// barriers become calls of pthread_barrier_wait on it.
  LogicalResult workgroupStateToArguments(spirv::ModuleOp module,
                                          const TypeConverter &converter,
                                          MutableArrayRef<KernelInfo> kernels) {
    MLIRContext *ctx = module.getContext();
    llvm::StringMap<spirv::GlobalVariableOp> memoryVars;
    for (auto var : module.getOps<spirv::GlobalVariableOp>()) {
      if (cast<spirv::PointerType>(var.getType()).getStorageClass() !=
          spirv::StorageClass::Workgroup)
        continue;
      if (var.getInitializer())
        return var.emitError("levelzero-cpu: an initialized Workgroup variable cannot be "
                             "emulated");
      memoryVars[var.getSymName()] = var;
    }

    auto barrierTy =
        spirv::PointerType::get(IntegerType::get(ctx, 8), spirv::StorageClass::Function);
    spirv::FuncOp barrierWait;
    for (auto func : llvm::to_vector(module.getOps<spirv::FuncOp>())) {
      SmallVector<spirv::AddressOfOp> memoryUses;
      SmallVector<spirv::ControlBarrierOp> barriers;
      WalkResult walk = func.walk([&](Operation *op) {
        if (auto a = dyn_cast<spirv::AddressOfOp>(op); a && memoryVars.count(a.getVariable()))
          memoryUses.push_back(a);
        auto barrier = dyn_cast<spirv::ControlBarrierOp>(op);
        if (!barrier || barrier.getExecutionScope() == spirv::Scope::Subgroup)
          return WalkResult::advance();
        if (barrier.getExecutionScope() != spirv::Scope::Workgroup) {
          barrier.emitError() << "levelzero-cpu: a barrier of "
                              << spirv::stringifyScope(barrier.getExecutionScope())
                              << " execution scope cannot be emulated (only Workgroup and "
                                 "Subgroup)";
          return WalkResult::interrupt();
        }
        barriers.push_back(barrier);
        return WalkResult::advance();
      });
      if (walk.wasInterrupted())
        return failure();
      auto kernel = llvm::find_if(
          kernels, [&](const KernelInfo &k) { return k.name == func.getSymName(); });
      if (kernel == kernels.end()) {
        // The wrapper hands the state to the kernel only; passing it on
        // through calls is not implemented.
        if (!memoryUses.empty())
          return memoryUses.front().emitError(
              "levelzero-cpu: Workgroup memory is only supported in entry points");
        if (!barriers.empty())
          return barriers.front().emitError(
              "levelzero-cpu: Workgroup barriers are only supported in entry points");
        continue;
      }

      Block &entry = func.getBody().front();
      auto appendArgument = [&](Type type, Location loc) -> FailureOr<Value> {
        if (failed(func.insertArgument(func.getNumArguments(), type, {}, loc)))
          return failure();
        return entry.getArguments().back();
      };
      llvm::StringMap<Value> memoryArgs;
      for (spirv::AddressOfOp a : memoryUses) {
        Value &arg = memoryArgs[a.getVariable()];
        if (!arg) {
          auto ptrTy = cast<spirv::PointerType>(a.getType());
          Type type = converter.convertType(ptrTy.getPointeeType());
          FailureOr<Value> appended = failure();
          if (type)
            appended = appendArgument(ptrTy, a.getLoc());
          if (failed(appended))
            return a.emitError("levelzero-cpu: cannot pass this Workgroup variable to the "
                               "kernel");
          arg = *appended;
          kernel->workgroupMemory.push_back(type);
        }
        a.replaceAllUsesWith(arg);
        a.erase();
      }
      if (barriers.empty())
        continue;
      FailureOr<Value> barrierArg = appendArgument(barrierTy, func.getLoc());
      if (failed(barrierArg))
        return func.emitError("levelzero-cpu: cannot pass the barrier to the kernel");
      if (!barrierWait) {
        // int pthread_barrier_wait(pthread_barrier_t *), from the process.
        OpBuilder b = OpBuilder::atBlockBegin(module.getBody());
        auto linkage = spirv::LinkageAttributesAttr::get(
            ctx, b.getStringAttr("pthread_barrier_wait"),
            spirv::LinkageTypeAttr::get(ctx, spirv::LinkageType::Import));
        barrierWait = spirv::FuncOp::create(
            b, module.getLoc(), b.getFunctionType({barrierTy}, {b.getI32Type()}), {}, {},
            "pthread_barrier_wait", spirv::FunctionControl::None, linkage);
      }
      for (spirv::ControlBarrierOp barrier : barriers) {
        OpBuilder b(barrier);
        spirv::FunctionCallOp::create(b, barrier.getLoc(), b.getI32Type(),
                                      SymbolRefAttr::get(barrierWait), ValueRange{*barrierArg});
        barrier.erase();
      }
      kernel->hasBarrier = true;
    }

    // The variables are the wrappers' now.
    for (auto ep : module.getOps<spirv::EntryPointOp>()) {
      SmallVector<Attribute> kept;
      for (Attribute a : ep.getInterface())
        if (!memoryVars.count(cast<FlatSymbolRefAttr>(a).getValue()))
          kept.push_back(a);
      ep.setInterfaceAttr(ArrayAttr::get(ctx, kept));
    }
    for (auto &var : memoryVars)
      var.second.erase();
    return success();
  }

  /// Function-storage variables are a thread's temporaries: all of them go to
  /// the entry block (where SPIR-V wants them anyway), so they become static
  /// allocas rather than stack growth inside loops once lowered.
  void hoistVariables(spirv::ModuleOp module) {
    for (auto func : module.getOps<spirv::FuncOp>()) {
      if (func.isExternal())
        continue;
      Block &entry = func.getBody().front();
      SmallVector<spirv::VariableOp> vars;
      func.walk([&](spirv::VariableOp v) {
        if (!v.getInitializer() && v->getBlock() != &entry)
          vars.push_back(v);
      });
      for (spirv::VariableOp v : vars)
        v->moveBefore(&entry, entry.begin());
    }
  }

  LogicalResult convertToLLVM(ModuleOp executable, const LLVMTypeConverter &converter) {
    MLIRContext *ctx = executable.getContext();
    RewritePatternSet patterns(ctx);
    populateSPIRVToLLVMConversionPatterns(converter, patterns, spirv::ClientAPI::OpenCL);
    populateSPIRVToLLVMFunctionConversionPatterns(converter, patterns);
    populateSPIRVToLLVMModuleConversionPatterns(converter, patterns);
    patterns.add<ClOpPattern>(converter, ctx, executable);
    patterns.add<FloatClassPattern, SubgroupBarrierPattern>(converter, ctx);
    ConversionTarget target(*ctx);
    target.addIllegalDialect<spirv::SPIRVDialect>();
    target.addLegalDialect<LLVM::LLVMDialect>();
    target.addLegalOp<ModuleOp>();
    return applyPartialConversion(executable, target, std::move(patterns));
  }

  /// `void name(ptr bindings, i64 wg_x, i64 wg_y, i64 wg_z)`: runs the local
  /// invocations of workgroup (wg_x, wg_y, wg_z).
  LogicalResult wrap(ModuleOp executable, const KernelInfo &info) {
    MLIRContext *ctx = executable.getContext();
    auto lowered = executable.lookupSymbol<LLVM::LLVMFuncOp>(info.name);
    if (!lowered)
      return executable.emitError() << "levelzero-cpu: the lowered kernel @" << info.name
                                    << " is missing";
    lowered.setSymName(info.name + kLoweredSuffix.str());
    lowered.setLinkage(LLVM::Linkage::Internal);
    LLVM::LLVMFunctionType kernelType = lowered.getFunctionType();
    if (kernelType.getNumParams() != info.numBuffers + info.builtins.size() +
                                         info.workgroupMemory.size() + info.hasBarrier)
      return lowered.emitError("levelzero-cpu: unexpected lowered kernel signature");
    for (unsigned i = 0; i < info.numBuffers; ++i)
      if (!isa<LLVM::LLVMPointerType>(kernelType.getParamType(i)))
        return lowered.emitError("levelzero-cpu: expected only pointer (buffer) arguments");

    OpBuilder b = OpBuilder::atBlockEnd(executable.getBody());
    auto ptrTy = LLVM::LLVMPointerType::get(ctx);
    auto i64 = b.getI64Type();
    auto wrapperType = LLVM::LLVMFunctionType::get(LLVM::LLVMVoidType::get(ctx),
                                                   {ptrTy, i64, i64, i64});
    auto wrapper = LLVM::LLVMFuncOp::create(b, lowered.getLoc(), info.name, wrapperType);
    WrapperBuilder builder(executable, info, lowered);
    if (info.hasBarrier)
      return builder.buildThreaded(wrapper);
    builder.buildSerial(wrapper);
    return success();
  }
};

class LevelZeroCpuTarget : public kiln::TargetBackend {
public:
  llvm::StringRef name() const override { return "levelzero-cpu"; }
  llvm::StringRef driverName() const override { return "cpu"; }
  llvm::StringRef description() const override {
    return "levelzero's SPIR-V kernels run on the host CPU through MLIR's SPIR-V to LLVM "
           "conversion (testing)";
  }

  /// The levelzero backend itself: its tiling and its codegen pipeline are
  /// used as they are.
  static const kiln::TargetBackend &device() {
    const kiln::TargetBackend *levelzero = kiln::lookupTargetBackend("levelzero");
    if (!levelzero)
      llvm::report_fatal_error("kiln: levelzero-cpu needs the levelzero backend");
    return *levelzero;
  }

  kiln::KernelOptions kernelOptions(const kiln::TargetOptions &options) const override {
    return device().kernelOptions(options);
  }

  void buildCodegenPipeline(OpPassManager &pm, const kiln::TargetOptions &options) const override {
    device().buildCodegenPipeline(pm, options);
    pm.addPass(std::make_unique<SpirvToHostPass>());
    if (failed(parsePassPipeline("canonicalize", pm, llvm::errs())))
      llvm::report_fatal_error("kiln: invalid levelzero-cpu codegen pipeline");
  }

  llvm::Expected<std::string> emitText(ModuleOp executable, llvm::StringRef stage,
                                       const kiln::TargetOptions &options) const override {
    return kiln::host::emitText(executable, stage, options);
  }

  llvm::Expected<std::vector<kiln::artifact::Executable>>
  serialize(ModuleOp executable, const kiln::TargetOptions &options,
            const kiln::KernelGrids &) const override {
    std::vector<kiln::artifact::Entry> entries = kiln::gpu::kernelEntries(executable);
    if (entries.empty())
      return makeError("levelzero-cpu: the executable has no kiln.gpu_launches");
    auto exe = kiln::host::buildSharedObject(executable, options);
    if (!exe)
      return exe.takeError();
    // One cpu task per GPU workgroup; the wrapper runs its threads.
    for (kiln::artifact::Entry &e : entries)
      for (int i = 0; i < 3; ++i)
        e.workgroupSize[i] = 1;
    exe->entries = std::move(entries);
    std::vector<kiln::artifact::Executable> exes;
    exes.push_back(std::move(*exe));
    return exes;
  }
};

} // namespace

void registerLevelZeroCpuTarget() {
  kiln::registerLevelZeroSpirvToHost();
  kiln::registerTargetBackend(std::make_unique<LevelZeroCpuTarget>());
}

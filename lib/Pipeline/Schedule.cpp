//===- Schedule.cpp - host function -> artifact schedule ------------------===//
//
// After dispatch formation the host function is a straight line of
// kiln.dispatch, constants and reshapes. Every SSA tensor maps to a buffer:
// arguments are inputs, constants are constant buffers, dispatch results are
// fresh buffers, and reshapes are views of their operand's buffer (all
// buffers are dense and row-major, so a reshape moves no data).
// planTransientBuffers (MemoryPlan.cpp) may then share transient buffers.
//
//===----------------------------------------------------------------------===//
#include "kiln/Pipeline/Pipeline.h"

#include "kiln/Dialect/Kiln/IR/KilnDialect.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "llvm/ADT/StringSwitch.h"

using namespace mlir;
using namespace kiln;

static llvm::Error error(const Twine &msg) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), msg);
}

static std::optional<artifact::DType> dtypeOf(Type t) {
  using artifact::DType;
  if (t.isF32()) return DType::F32;
  if (t.isF16()) return DType::F16;
  if (t.isBF16()) return DType::BF16;
  if (t.isF64()) return DType::F64;
  if (t.isInteger(1)) return DType::Bool;
  if (t.isInteger(8)) return DType::I8;
  if (t.isInteger(16)) return DType::I16;
  if (t.isInteger(32)) return DType::I32;
  if (t.isInteger(64)) return DType::I64;
  if (t.isInteger(4)) return DType::I4;
  if (t.isInteger(2)) return DType::I2;
  if (isa<Float8E4M3FNType>(t)) return DType::F8E4M3FN;
  if (isa<Float8E4M3FNUZType>(t)) return DType::F8E4M3FNUZ;
  if (isa<Float8E5M2Type>(t)) return DType::F8E5M2;
  if (isa<Float8E5M2FNUZType>(t)) return DType::F8E5M2FNUZ;
  if (isa<Float8E8M0FNUType>(t)) return DType::F8E8M0;
  if (isa<Float4E2M1FNType>(t)) return DType::F4E2M1;
  return std::nullopt;
}

/// Elements narrower than a byte take a whole byte, as LLVM stores them.
static uint64_t byteSize(RankedTensorType t) {
  uint64_t elem = (t.getElementType().getIntOrFloatBitWidth() + 7) / 8;
  return elem * t.getNumElements();
}

/// `tag` is the importer's `kiln.dtype` ("u8".."u64") for unsigned data,
/// which MLIR holds in signless integers of the same width.
static llvm::Expected<artifact::TensorDesc> describe(Value v, uint32_t buffer,
                                                     StringRef name, StringAttr tag = {}) {
  auto type = cast<RankedTensorType>(v.getType());
  auto dt = dtypeOf(type.getElementType());
  if (dt && tag) {
    using artifact::DType;
    dt = llvm::StringSwitch<std::optional<DType>>(tag.strref())
             .Case("u8", DType::U8).Case("u16", DType::U16)
             .Case("u32", DType::U32).Case("u64", DType::U64)
             .Case("u4", DType::U4).Case("u2", DType::U2)
             .Default(std::nullopt);
  }
  if (!dt)
    return error("'" + name + "' has an element type the artifact cannot describe");
  artifact::TensorDesc d;
  d.name = name.str();
  d.dtype = *dt;
  d.shape.assign(type.getShape().begin(), type.getShape().end());
  d.buffer = buffer;
  return d;
}

llvm::Expected<Schedule> kiln::buildSchedule(ModuleOp module) {
  func::FuncOp host = module.lookupSymbol<func::FuncOp>("main");
  if (!host)
    return error("no host function @main");
  Schedule s;
  artifact::Module &m = s.module;
  m.producer = "kiln 0.1.0";
  if (auto name = module->getAttrOfType<StringAttr>("kiln.model_name"))
    m.name = name.str();

  DenseMap<Value, uint32_t> bufferOf;
  auto newBuffer = [&](artifact::BufferKind kind, uint64_t size) {
    m.buffers.push_back({kind, size, nullptr});
    return (uint32_t)m.buffers.size() - 1;
  };

  Block &body = host.getBody().front();
  for (BlockArgument arg : body.getArguments()) {
    auto type = cast<RankedTensorType>(arg.getType());
    uint32_t id = newBuffer(artifact::BufferKind::Input, byteSize(type));
    bufferOf[arg] = id;
    auto name = host.getArgAttrOfType<StringAttr>(arg.getArgNumber(), "kiln.name");
    auto desc = describe(arg, id, name ? name.strref() : StringRef("input"),
                         host.getArgAttrOfType<StringAttr>(arg.getArgNumber(), "kiln.dtype"));
    if (!desc)
      return desc.takeError();
    m.inputs.push_back(std::move(*desc));
  }

  for (Operation &op : body) {
    if (auto c = dyn_cast<arith::ConstantOp>(op)) {
      auto dense = dyn_cast<DenseElementsAttr>(c.getValue());
      if (!dense || c->use_empty())
        continue;
      auto type = cast<RankedTensorType>(dense.getType());
      uint64_t size = byteSize(type);
      uint32_t id = newBuffer(artifact::BufferKind::Constant, size);
      bufferOf[c] = id;
      // Raw storage is usable as is unless it is a splat or packed bits.
      if (!dense.isSplat() && !type.getElementType().isInteger(1)) {
        m.buffers[id].constData = reinterpret_cast<const uint8_t *>(dense.getRawData().data());
        continue;
      }
      std::vector<uint8_t> &bytes = s.storage.emplace_back(size);
      if (type.getElementType().isInteger(1)) {
        size_t i = 0;
        for (bool b : dense.getValues<bool>())
          bytes[i++] = b;
      } else {
        ArrayRef<char> one = dense.getRawData();
        for (uint64_t off = 0; off < size; off += one.size())
          std::memcpy(bytes.data() + off, one.data(), one.size());
      }
      m.buffers[id].constData = bytes.data();
      continue;
    }
    if (auto empty = dyn_cast<tensor::EmptyOp>(op); empty && !empty->use_empty()) {
      // Only tensors without elements stay on the host as tensor.empty.
      auto type = empty.getType();
      if (!type.hasStaticShape() || type.getNumElements() != 0)
        return error("a host tensor.empty with elements (nothing computes it)");
      bufferOf[empty] = newBuffer(artifact::BufferKind::Transient, 0);
      continue;
    }
    if (isa<tensor::CollapseShapeOp, tensor::ExpandShapeOp>(op)) {
      bufferOf[op.getResult(0)] = bufferOf.lookup(op.getOperand(0));
      continue;
    }
    if (auto d = dyn_cast<kiln::DispatchOp>(op)) {
      artifact::Dispatch dispatch;
      for (Value v : d.getInputs()) {
        auto it = bufferOf.find(v);
        if (it == bufferOf.end())
          return error("dispatch operand has no buffer (unexpected host op?)");
        dispatch.bindings.push_back({it->second, 0});
      }
      for (Value r : d.getResults()) {
        uint32_t id = newBuffer(artifact::BufferKind::Transient,
                                byteSize(cast<RankedTensorType>(r.getType())));
        bufferOf[r] = id;
        dispatch.bindings.push_back({id, 0});
      }
      std::string kernel = d.getKernel().getLeafReference().str();
      auto known = llvm::find(s.kernels, kernel);
      dispatch.kernel = known - s.kernels.begin();
      if (known == s.kernels.end()) {
        s.kernels.push_back(kernel);
        // What the kernel computes, for profiles: the ONNX nodes dispatch
        // formation recorded.
        StringAttr ops;
        if (auto fn = SymbolTable::lookupNearestSymbolFrom<func::FuncOp>(d, d.getKernel()))
          ops = fn->getAttrOfType<StringAttr>(kOnnxOpsAttr);
        m.kernelOps.push_back(ops ? ops.str() : "");
        std::vector<uint64_t> &ext = m.kernelExtents.emplace_back();
        for (Value v : llvm::concat<Value>(d.getInputs(), d.getResults()))
          ext.push_back(byteSize(cast<RankedTensorType>(v.getType())));
      }
      m.dispatches.push_back(std::move(dispatch));
      continue;
    }
    if (auto ret = dyn_cast<func::ReturnOp>(op)) {
      SmallVector<uint32_t> ids;
      for (auto [i, v] : llvm::enumerate(ret.getOperands())) {
        auto it = bufferOf.find(v);
        if (it == bufferOf.end())
          return error("output " + Twine(i) + " has no buffer");
        ids.push_back(it->second);
        m.buffers[it->second].kind = artifact::BufferKind::Output;
      }
      for (auto [i, v] : llvm::enumerate(ret.getOperands())) {
        // The importer's extents of data-dependent outputs are not outputs
        // themselves; the outputs' dynamic dims point at them.
        if (host.getResultAttr(i, "kiln.extents"))
          continue;
        auto name = host.getResultAttrOfType<StringAttr>(i, "kiln.name");
        auto desc = describe(v, ids[i], name ? name.strref() : StringRef("output"),
                             host.getResultAttrOfType<StringAttr>(i, "kiln.dtype"));
        if (!desc)
          return desc.takeError();
        if (auto dyn = host.getResultAttrOfType<DenseI64ArrayAttr>(i, "kiln.dynamic_dims")) {
          ArrayRef<int64_t> t = dyn.asArrayRef();
          for (size_t k = 0; k + 2 < t.size(); k += 3) {
            auto extents = cast<RankedTensorType>(ret.getOperand(t[k + 1]).getType());
            if (!extents.getElementType().isInteger(64) || t[k + 2] >= extents.getNumElements())
              return error("output '" + desc->name + "': its extents are not an i64 tensor");
            desc->dynamicDims.push_back(
                {(uint32_t)t[k], ids[t[k + 1]], (uint64_t)t[k + 2] * sizeof(int64_t)});
          }
        }
        m.outputs.push_back(std::move(*desc));
      }
      continue;
    }
    if (op.use_empty())
      continue;
    return error("unexpected op in the host function after dispatch formation: " +
                 op.getName().getStringRef());
  }
  // An artifact without node locations (IR not from the importer) records
  // no descriptions rather than empty ones.
  if (llvm::all_of(m.kernelOps, [](const std::string &o) { return o.empty(); }))
    m.kernelOps.clear();
  return s;
}

llvm::Error kiln::attachExecutable(Schedule &schedule, artifact::Executable executable) {
  std::vector<artifact::Entry> ordered;
  for (const std::string &kernel : schedule.kernels) {
    auto it = llvm::find_if(executable.entries,
                            [&](const artifact::Entry &e) { return e.name == kernel; });
    if (it == executable.entries.end())
      return error("kernel '" + kernel + "' is missing from the " + executable.target + " (" +
                   executable.format + ") executable");
    ordered.push_back(*it);
  }
  executable.entries = std::move(ordered);
  schedule.module.executables.push_back(std::move(executable));
  return llvm::Error::success();
}

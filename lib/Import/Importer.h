//===- Importer.h - ONNX importer internals ---------------------*- C++ -*-===//
//
// Shared by the graph walker (OnnxImporter.cpp), the op handlers (see
// OpRegistry.h for where they live) and the compile-time folder
// (OnnxFolding.cpp).
//
//===----------------------------------------------------------------------===//
#ifndef KILN_LIB_IMPORT_IMPORTER_H
#define KILN_LIB_IMPORT_IMPORTER_H

#include "kiln/Import/OnnxImporter.h"
#include "onnx.pb.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/ADT/StringSet.h"

#include <optional>
#include <string>

namespace kiln::detail {
using namespace mlir;

/// Compile-time contents of a small tensor, for folding shape computations.
struct HostTensor {
  SmallVector<int64_t> shape;
  Type elemType;
  std::vector<int64_t> ints;  // integer and bool elements
  std::vector<double> floats; // floating-point elements

  bool isFloat() const { return isa<FloatType>(elemType); }
  int64_t numel() const;
  double get(size_t i) const { return isFloat() ? floats[i] : (double)ints[i]; }
  void push(double v) {
    if (isFloat())
      floats.push_back(v);
    else
      ints.push_back((int64_t)v);
  }
  static std::optional<HostTensor> fromAttr(DenseElementsAttr attr);
  DenseElementsAttr toAttr() const;
};

using BodyFn = function_ref<Value(OpBuilder &, Location, ValueRange)>;

class Importer;

/// What an op handler sees: the node being imported (its attributes, inputs
/// and outputs), the builder, failure reporting and the builders every
/// handler uses. The Importer (graph walking, scopes, sequences, subgraphs)
/// derives from it; the handlers of the ops that import subgraphs or take
/// sequences and optionals reach it with importer().
class OpContext {
public:
  MLIRContext &ctx;
  OpBuilder b;
  Location loc;
  const onnx::NodeProto *node = nullptr;

  LogicalResult fail(const Twine &message);

  // Attributes.
  const onnx::AttributeProto *attr(StringRef name) const;
  int64_t attrInt(StringRef name, int64_t dflt) const;
  float attrFloat(StringRef name, float dflt) const;
  std::string attrString(StringRef name, StringRef dflt) const;
  std::optional<SmallVector<int64_t>> attrInts(StringRef name) const;

  // Inputs and outputs of the current node.
  bool hasInput(unsigned i) const;
  Value input(unsigned i);
  RankedTensorType inputType(unsigned i);
  std::optional<DenseElementsAttr> constInput(unsigned i) const;
  /// Constant input `i`, which the node needs at compile time (it decides a
  /// shape or the structure of the code), or an error naming it.
  FailureOr<DenseElementsAttr> requireConst(unsigned i, StringRef what);
  /// The integer contents of constant input `i`, or an error naming it.
  FailureOr<SmallVector<int64_t>> constInts(unsigned i, StringRef what);
  /// Records that the node needs input `i` at compile time and it is not a
  /// constant, for handlers that word their own error. If the import then
  /// fails, the graph inputs the value comes from are the ones to specialize
  /// on (SpecializationNeeded).
  void noteRequired(unsigned i);
  unsigned numOutputs() const { return node->output_size(); }
  /// Unsigned integers are signless iN in MLIR; the importer remembers which
  /// values hold unsigned data so handlers pick unsigned arithmetic.
  bool isUnsigned(unsigned i) const {
    return hasInput(i) && unsignedValues.count(node->input(i));
  }
  bool anyUnsigned() const;
  bool wantsOutput(unsigned i) const {
    return (int)i < node->output_size() && !node->output(i).empty();
  }
  void setOutput(unsigned i, Value v);
  /// Output `i` has a data-dependent shape (NonZero, Compress...): `v` has
  /// the static upper-bound shape, and element k of `extents` (i64 [n]) is
  /// the actual size of dimension `dims[k]`, computed by the kernels. Such a
  /// value may only be a graph output: the runtime returns its leading
  /// sub-box.
  void setDynamicOutput(unsigned i, Value v, Value extents, ArrayRef<int64_t> dims);
  void setConstOutput(unsigned i, DenseElementsAttr attr);

  // Builders shared by the handlers.
  Type elementType(Value v) { return cast<RankedTensorType>(v.getType()).getElementType(); }
  ArrayRef<int64_t> shapeOf(Value v) { return cast<RankedTensorType>(v.getType()).getShape(); }
  FailureOr<SmallVector<int64_t>> broadcastShapes(ArrayRef<SmallVector<int64_t>> shapes);
  /// Elementwise linalg.generic with ONNX (numpy) broadcasting; the output
  /// shape is the broadcast of the inputs' (and `extraShape`, if given).
  FailureOr<Value> elementwise(ValueRange inputs, Type resultElem, BodyFn body,
                               std::optional<ArrayRef<int64_t>> extraShape = {});
  /// Reduces `axes` (normalized, any order) of `in`; `combine(acc, x)`.
  Value reduce(Value in, ArrayRef<int64_t> axes, bool keepDims, TypedAttr init,
               function_ref<Value(OpBuilder &, Location, Value, Value)> combine);
  Value reshape(Value v, ArrayRef<int64_t> shape);
  Value transpose(Value v, ArrayRef<int64_t> perm);
  Value fill(ArrayRef<int64_t> shape, TypedAttr value);
  Value constantScalar(OpBuilder &ob, Location l, Type type, double value);
  /// Pads with `padValue`: lo/hi per dimension.
  Value pad(Value v, ArrayRef<int64_t> lo, ArrayRef<int64_t> hi, double padValue);
  FailureOr<int64_t> normalizeAxis(int64_t axis, int64_t rank, StringRef what = "axis");

  /// The whole importer, for the handlers of the ops that import subgraphs
  /// or take sequences and optionals (If, Loop, Scan, Sequence*, Optional*,
  /// FlexAttention's score_mod) and those reading tensor attributes.
  Importer &importer();

protected:
  OpContext(MLIRContext &context, StringRef path);

  /// The model's opset of the default domain (13 inside nodes the importer
  /// makes up, see Importer::emitNode). Handlers do not see it: the
  /// registry picks the registration for it, one per form of the op.
  int64_t opset = 0;

  std::string path;
  ModuleOp module;
  llvm::StringMap<Value> values;
  llvm::StringMap<DenseElementsAttr> consts;
  llvm::StringSet<> unsignedValues;
  struct DynamicShape {
    std::string producer; // op type, for diagnostics
    Value extents;
    SmallVector<int64_t> dims;
  };
  llvm::StringMap<DynamicShape> dynamicShapes;
  std::string errorText;
  /// Values the current node needed at compile time and did not get;
  /// `neededAtFailure` is what it held when the first error was reported.
  SmallVector<std::string> neededValues, neededAtFailure;

  Value materialize(StringRef name);
};

class Importer : public OpContext {
public:
  Importer(MLIRContext &context, StringRef path, const ImportOptions &options);
  llvm::Expected<OwningOpRef<ModuleOp>> run();

  FailureOr<DenseElementsAttr> tensorToAttr(const onnx::TensorProto &t);

  // --- subgraphs, sequences and optionals (Subgraphs.cpp) ------------------
  // Control flow is resolved at import time: loops unroll, sequences are
  // compile-time lists of values and optionals have compile-time presence.
  /// A sequence: the (internal) names of its elements, in order.
  llvm::StringMap<SmallVector<std::string>> sequences;
  /// An optional: the name of its contents (a tensor or a sequence), or ""
  /// when it is empty.
  llvm::StringMap<std::string> optionals;
  bool isSequence(unsigned i) const { return hasInput(i) && sequences.count(node->input(i)); }
  bool isOptional(unsigned i) const { return hasInput(i) && optionals.count(node->input(i)); }
  /// True if `name` holds a value of any kind in the current scope.
  bool isDefined(StringRef name) const;
  /// Makes `to` name whatever `from` names (tensor, constant, sequence or
  /// optional), keeping its unsignedness.
  void alias(StringRef from, StringRef to);
  /// A new internal name (no ONNX name can collide with it).
  std::string freshName();
  /// Imports subgraph `g` in a nested scope where outer names stay visible
  /// and its inputs name `args` (outer names). Returns fresh names holding
  /// its outputs (with their sequence elements); everything else `g`
  /// defined goes out of scope.
  FailureOr<SmallVector<std::string>> importSubgraph(const onnx::GraphProto &g,
                                                     ArrayRef<std::string> args);
  /// A runtime input or output: a graph input or output, or one tensor of a
  /// flattened sequence or optional one.
  struct FlatValue {
    std::string external, internal; // signature name, importer name
    const onnx::TypeProto *type;     // its declared tensor type
    Type mlirType;                   // inputs only
  };
  /// Flattens graph input `external` of `type` into the tensors it holds,
  /// defining the sequences and optionals that hold them under `internal`.
  LogicalResult flattenInput(const onnx::TypeProto &type, const std::string &external,
                             const std::string &internal, SmallVectorImpl<FlatValue> &flat);
  /// Flattens graph output `external` (held by `internal`) into tensors.
  LogicalResult flattenOutput(const onnx::TypeProto &type, const std::string &external,
                              const std::string &internal, SmallVectorImpl<FlatValue> &flat);
  /// Imports the nodes of `g` in order in the current scope.
  LogicalResult importNodes(const onnx::GraphProto &g);
  /// Imports one node (sets `node` and `loc`).
  LogicalResult importNode(const onnx::NodeProto &n);
  /// Imports a node the importer makes up to decompose the current one, with
  /// opset-13 semantics; its single output gets a fresh name, returned.
  FailureOr<std::string> emitNode(StringRef opType, ArrayRef<std::string> inputs,
                                  function_ref<void(onnx::NodeProto &)> setAttrs = {});
  /// A fresh name for a compile-time constant or a runtime value.
  std::string defineConst(DenseElementsAttr value);
  std::string defineValue(Value value);
  /// The constant `name` holds, if it holds one.
  std::optional<DenseElementsAttr> constOf(StringRef name) const;
  /// The SSA value of tensor `name` (constants are materialized).
  Value valueOf(StringRef name) { return materialize(name); }

private:
  /// The opset a node of `domain` ("" is the default domain) is imported at.
  int64_t domainOpset(StringRef domain) const;

  std::string modelDir;
  const ImportOptions &options;
  onnx::ModelProto model;
  /// The model's opsets of the other domains it imports.
  llvm::StringMap<int64_t> domainOpsets;
  /// The flattened graph inputs (the compiled signature before binding),
  /// and those left with symbolic dimensions (kept dynamic while the
  /// signature is read, so that every one of them is found).
  std::vector<kiln::SpecializationNeeded::Input> signature;
  SmallVector<std::string> symbolicInputs;
  bool needsShapes = false; // the import stopped for symbolicInputs alone
  Location fileLoc;
  unsigned freshCount = 0;
  /// Nodes imported so far, unrolled bodies once per iteration (maxNodes).
  int64_t nodesImported = 0;

  /// Fails when `type` (of `what`, for the message) has a static shape of
  /// more than ImportOptions::maxTensorBytes.
  LogicalResult checkTensorBytes(const Twine &what, Type type);
  /// checkTensorBytes on every output of the node just imported.
  LogicalResult checkOutputBytes();

  /// Records which outputs of the node just imported hold unsigned data.
  void markUnsignedOutputs();

  LogicalResult importGraph();
public:
  FailureOr<Type> valueInfoType(const onnx::ValueInfoProto &info, bool isInput);
  const ImportOptions &importOptions() const { return options; }

private:
  /// The --input-value binding of graph input `info` as a constant.
  FailureOr<DenseElementsAttr> boundInputValue(const onnx::ValueInfoProto &info,
                                               StringRef spec);
  /// Evaluates the node at compile time when all its inputs are constants.
  /// Returns true if it did.
  FailureOr<bool> tryFold();
};

/// Element type for an ONNX TensorProto.DataType, or null if unsupported.
Type onnxElementType(MLIRContext &ctx, int dataType);
/// The TensorProto data type of element type `t` (unsigned data is signless
/// in MLIR: `isUnsigned` says which), for the types onnxElementType maps to
/// one of 8 bits or more; nothing for the others.
std::optional<int> onnxDataType(Type t, bool isUnsigned);
std::string onnxTypeName(int dataType);
/// True for ONNX's uint8/16/32/64 (imported as signless iN).
bool isUnsignedDataType(int dataType);

/// FLOAT8*, FLOAT4E2M1 and the 4- and 2-bit integers, which casts treat
/// specially (OnnxSmallTypes.cpp).
bool isSmallType(Type t);
/// ONNX Cast of scalar `v` to `to` where either is a small type. `saturate`
/// is Cast's attribute (clamp to the largest finite FLOAT8 value).
Value castSmallScalar(OpBuilder &ob, Location l, Value v, Type to, bool fromU,
                      bool saturate = true);
/// Fails unless the current node is a cast or only moves data, when one of
/// its inputs has a small type.
LogicalResult checkSmallTypeInputs(Importer &im);
/// ONNX Cast to FLOAT8E8M0 with `round_mode` "up", "down" or "nearest".
Value castToE8M0(OpBuilder &ob, Location l, Value v, bool fromU, bool saturate,
                 StringRef roundMode);

/// ONNX Slice semantics on one axis of size `dim` (negative indices count
/// from the end, then clamp): the first index read and the output size.
struct SliceRange {
  int64_t start, size;
};
SliceRange resolveSlice(int64_t dim, int64_t start, int64_t end, int64_t step);

/// The loops of a (batched, numpy-broadcast) matmul A[b.., m, k] x
/// B[b.., k, n], ordered (batch, m, k, n) so the innermost loop walks
/// contiguous rows of B and the output: each operand's and the output's
/// index expressions, the output shape and the loop count.
struct MatmulIndexing {
  SmallVector<AffineExpr> a, b, out;
  SmallVector<int64_t> outShape;
  int64_t numLoops;
  AffineExpr m, n;
};
FailureOr<MatmulIndexing> matmulIndexing(OpContext &im, ArrayRef<int64_t> sa,
                                         ArrayRef<int64_t> sb, bool transA, bool transB);

/// ONNX Conv of `x` by `w` (+ `bias`, may be null) with the current node's
/// attributes (group, pads, strides, dilations, auto_pad, kernel_shape).
FailureOr<Value> convolution(OpContext &im, Value x, Value w, Value bias);
/// The grouped convolution generic over loops n, g, m, c, k_0.., o_0..: the
/// grouped input xv read through `ex`, the grouped weights wv through `ew`,
/// into [N, G, M/G, out...] (`og`) starting from `bias` ([M]; null: zeros).
FailureOr<Value> groupedConvolution(OpContext &im, Value xv, Value wv, Value bias,
                                    ArrayRef<int64_t> og, ArrayRef<AffineExpr> ex,
                                    ArrayRef<AffineExpr> ew);

/// Softmax over the last axis (max-shifted, like the ONNX reference).
FailureOr<Value> softmaxLastAxis(OpContext &im, Value x);

/// True for the ops that take sequence or optional inputs.
bool acceptsContainers(StringRef opType);

/// A generic that computes each output element from its indices alone:
/// `body(indices, ins...)` may read any captured tensor with tensor.extract.
/// Used where the input element is not an affine function of the output
/// index (padding, concatenation, gathers).
Value indexedGeneric(OpContext &im, ArrayRef<int64_t> outShape, Type elem,
                     function_ref<Value(OpBuilder &, Location, ValueRange)> body,
                     ValueRange ins = {}, ArrayRef<AffineMap> inMaps = {});
/// MaxPool's Indices output for input `x` and pooled `y`: the flat index
/// into `x` of each window's first maximum, spatial dims in row-major order,
/// or column-major with `columnMajor` (storage_order=1).
Value maxPoolIndices(OpContext &im, Value x, Value y, ArrayRef<int64_t> kernel,
                     ArrayRef<int64_t> strides, ArrayRef<int64_t> dilations,
                     ArrayRef<int64_t> padLo, bool columnMajor);
/// Pad modes that read the input itself: "reflect", "edge" or "wrap".
Value padWithMode(OpContext &im, Value v, ArrayRef<int64_t> lo, ArrayRef<int64_t> hi,
                  StringRef mode);
/// Compile-time evaluation for the ops shape subgraphs use.
FailureOr<bool> foldNode(Importer &im, SmallVectorImpl<DenseElementsAttr> &results);

} // namespace kiln::detail

#endif // KILN_LIB_IMPORT_IMPORTER_H

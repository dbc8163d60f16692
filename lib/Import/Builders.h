//===- Builders.h - Code the ONNX op files share ----------------*- C++ -*-===//
//
// Declarations of what more than one op file (DefaultDomain*.cpp and the
// other domains' files) uses: builders (Builders.cpp), op families whose
// members fall in several files (OpFamilies.cpp) and the helpers of the
// sequence and control-flow ops (Subgraphs.cpp, taking the Importer). The
// builders that are OpContext methods (elementwise, reduce, reshape, pad...)
// are declared in Importer.h.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_LIB_IMPORT_BUILDERS_H
#define KILN_LIB_IMPORT_BUILDERS_H

#include "Importer.h"

#include <functional>
#include <string>

namespace kiln::detail {
namespace onnx = kiln::onnx;
using utils::IteratorType;

/// A captureless BodyFn from one expression of `ob`, `l` and `v`.
#define F_BODY(EXPR)                                                              \
  [](OpBuilder & ob, Location l, ValueRange v) -> Value { return EXPR; }

// --- Builders.cpp ------------------------------------------------------------

std::string shapeStr(ArrayRef<int64_t> s);

bool isFloat(Type t);

Value idxConst(OpBuilder &ob, Location l, int64_t v);

Value clampIndex(OpBuilder &ob, Location l, Value i, int64_t lo, int64_t hi);

Value zeroOf(OpBuilder &ob, Location l, Type t);

using BinFn = Value (*)(OpBuilder &, Location, Value, Value);

LogicalResult binary(OpContext &im, BinFn fn, bool compare = false);

#define ARITH_BINARY(NAME, FOP, IOP)                                              \
  inline Value NAME(OpBuilder &ob, Location l, Value a, Value b) {                \
    if (isFloat(a.getType()))                                                     \
      return FOP::create(ob, l, a, b);                                            \
    return IOP::create(ob, l, a, b);                                              \
  }
ARITH_BINARY(addOp, arith::AddFOp, arith::AddIOp)
ARITH_BINARY(subOp, arith::SubFOp, arith::SubIOp)
ARITH_BINARY(mulOp, arith::MulFOp, arith::MulIOp)
ARITH_BINARY(divOp, arith::DivFOp, arith::DivSIOp)
ARITH_BINARY(maxOp, arith::MaximumFOp, arith::MaxSIOp)
ARITH_BINARY(minOp, arith::MinimumFOp, arith::MinSIOp)
ARITH_BINARY(divUOp, arith::DivFOp, arith::DivUIOp)
ARITH_BINARY(maxUOp, arith::MaximumFOp, arith::MaxUIOp)
ARITH_BINARY(minUOp, arith::MinimumFOp, arith::MinUIOp)
#undef ARITH_BINARY

#define ARITH_COMPARE(NAME, FPRED, IPRED)                                         \
  inline Value NAME(OpBuilder &ob, Location l, Value a, Value b) {                \
    if (isFloat(a.getType()))                                                     \
      return arith::CmpFOp::create(ob, l, arith::CmpFPredicate::FPRED, a, b);     \
    return arith::CmpIOp::create(ob, l, arith::CmpIPredicate::IPRED, a, b);       \
  }
ARITH_COMPARE(eqOp, OEQ, eq)
ARITH_COMPARE(ltOp, OLT, slt)
ARITH_COMPARE(gtOp, OGT, sgt)
ARITH_COMPARE(leOp, OLE, sle)
ARITH_COMPARE(geOp, OGE, sge)
ARITH_COMPARE(ltUOp, OLT, ult)
ARITH_COMPARE(gtUOp, OGT, ugt)
ARITH_COMPARE(leUOp, OLE, ule)
ARITH_COMPARE(geUOp, OGE, uge)
#undef ARITH_COMPARE

Value orOp(OpBuilder &ob, Location l, Value a, Value b);

Value xorOp(OpBuilder &ob, Location l, Value a, Value b);

/// Folds a variadic op (Sum, Max, Min, Mean) pairwise.
LogicalResult variadic(OpContext &im, BinFn fn, bool mean = false);

LogicalResult unary(OpContext &im, BodyFn fn, bool floatOnly = true);

template <typename MathOp>
inline LogicalResult mathUnary(OpContext &im) {
  return unary(im, [](OpBuilder &ob, Location l, ValueRange v) -> Value {
    return MathOp::create(ob, l, v[0]);
  });
}

Value cst(OpContext &im, OpBuilder &ob, Location l, Value like, double v);

Value sigmoid(OpContext &im, OpBuilder &ob, Location l, Value x);

/// `fromU`/`toU`: the source/target integers are unsigned.
Value castScalar(OpBuilder &ob, Location l, Value v, Type to, bool fromU = false,
                        bool toU = false, bool saturate = true);

/// Applies `fn` elementwise over all inputs of the node (broadcast), with a
/// result of element type `resultElem`.
LogicalResult mapInputs(OpContext &im, Type resultElem, BodyFn fn);

/// out[b.., m, n] = init + alpha * sum_k A[b.., m, k] * B[b.., k, n], with
/// numpy batch broadcasting.
FailureOr<Value> contraction(OpContext &im, Value a, Value bm, bool transA,
                                    bool transB, Value init, double alpha);

struct WindowGeometry {
  SmallVector<int64_t> kernel, strides, dilations, padLo, padHi, out;
};

/// The `axes` of Reduce* and Squeeze: the attribute, or the
/// (optional, constant) input 1 in the versions with `axesInput`; empty when
/// neither is given.
FailureOr<SmallVector<int64_t>> axesOperand(OpContext &im, bool axesInput);

/// Resolves kernel/strides/dilations/pads/auto_pad for `in` spatial sizes.
FailureOr<WindowGeometry> windowGeometry(OpContext &im, ArrayRef<int64_t> in,
                                                ArrayRef<int64_t> kernel, bool ceilMode);

/// out[i...] = x[inMap(i...)]: repeats, broadcasts and transposes as one
/// affine (fusable) copy.
Value affineCopy(OpContext &im, Value x, ArrayRef<int64_t> outShape, AffineMap inMap);

/// The map that reads a tensor of shape `s` broadcast (numpy rules) to an
/// output of rank `rank` whose shape is `out`.
AffineMap broadcastMap(OpContext &im, ArrayRef<int64_t> s, ArrayRef<int64_t> out);

Value indexToI64(OpBuilder &ob, Location l, Value i);

/// An integer element `raw` as an index into a dimension of size `dim`
/// (negative counts from the end; clamped so it never reads out of bounds).
Value normIndex(OpBuilder &ob, Location l, Value raw, int64_t dim);

using CombineFn = function_ref<Value(OpBuilder &, Location, Value, Value)>;

Value idx(OpBuilder &ob, Location l, int64_t v);

Value cmpI(OpBuilder &ob, Location l, arith::CmpIPredicate p, Value a, Value b);

Value andI(OpBuilder &ob, Location l, Value a, Value b);

Value clampIdx(OpBuilder &ob, Location l, Value i, int64_t lo, int64_t hi);

/// A generic over `outShape` x `redShape` that folds `body(outIdx, redIdx)`
/// over the trailing reduction loops with `combine(acc, v)`, starting from
/// `init`. A reduction-shaped operand whose values are unused gives those
/// loops their ranges, as in linalg's pooling ops.
Value reduceOver(OpContext &im, ArrayRef<int64_t> outShape, ArrayRef<int64_t> redShape,
                        TypedAttr init,
                        function_ref<Value(OpBuilder &, Location, ValueRange, ValueRange)> body,
                        CombineFn combine);

/// Handlers read their required inputs unconditionally: a model that
/// leaves one out gets an error instead.
LogicalResult requireInputs(OpContext &im, unsigned n);

/// Sum over the loops not in `outExprs` of the product computed by `body`
/// from the operands' elements: one linalg.generic, accumulating into zeros.
Value contract(OpContext &im, ValueRange ins, ArrayRef<SmallVector<AffineExpr>> inExprs,
                      int64_t numLoops, ArrayRef<AffineExpr> outExprs,
                      ArrayRef<int64_t> outShape, Type accType,
                      function_ref<Value(OpBuilder &, Location, ValueRange)> body);

Value extendTo(OpBuilder &ob, Location l, Value v, Type to, bool uns);

/// A parallel generic over `outShape` whose operands are read through
/// `inExprs` (affine in the output's dims).
Value mapGeneric(OpContext &im, ArrayRef<int64_t> outShape, Type elem, ValueRange ins,
                        ArrayRef<SmallVector<AffineExpr>> inExprs,
                        function_ref<Value(OpBuilder &, Location, ValueRange)> body);

Value nonZero(OpBuilder &ob, Location l, Value v);

/// The type half-precision floats are computed in; wider types stay.
/// RotaryEmbedding, CausalConvWithState, LinearAttention and FlexAttention
/// widen half-precision inputs to f32 inside the kernels and round once (the
/// ONNX reference computes LinearAttention, FlexAttention's softmax and
/// CausalConvWithState's SiLU in f32 too).
Type computeType(Type t);

/// Float conversion between element types of different widths (no-op when
/// equal).
Value convertF(OpBuilder &ob, Location l, Value v, Type to);

using GenericBody = function_ref<Value(OpBuilder &, Location, ValueRange idx, ValueRange args)>;

/// A linalg.generic with `iters.size()` loops writing one result into `init`
/// through `outMap`. `body` gets the loop indices and the scalar operands
/// (inputs, then the current output element) and returns the value to yield.
/// Captured tensors may be read in `body` with tensor.extract.
Value generic(OpContext &im, Value init, AffineMap outMap, ValueRange ins,
                     ArrayRef<AffineMap> inMaps, ArrayRef<IteratorType> iters, GenericBody body);

/// An all-parallel generic producing a fresh tensor of `shape` (identity
/// output map).
Value parallelGeneric(OpContext &im, ArrayRef<int64_t> shape, Type elem, ValueRange ins,
                             ArrayRef<AffineMap> inMaps, GenericBody body);

AffineMap map(OpContext &im, unsigned dims, ArrayRef<AffineExpr> exprs);

bool isHalfOrFloat(Type t);

// --- OpFamilies.cpp ----------------------------------------------------------

/// Softmax, or LogSoftmax with `log`, along the node's axis; with
/// `coerce2D` (before opset 13) over the input coerced to 2-D at the axis.
LogicalResult handleSoftmax(OpContext &im, bool log, bool coerce2D);

/// (x - mean) * rsqrt(var + eps) over `axes`; also returns mean and 1/stddev.
FailureOr<std::array<Value, 3>> normalize(OpContext &im, Value x,
                                                 ArrayRef<int64_t> axes, double eps);

/// Reshapes a per-channel vector [C] to [C, 1, ...] so it broadcasts against
/// an N x C x spatial tensor.
Value channelVector(OpContext &im, Value v, int64_t rank);

/// MaxPool / AveragePool, and LpPool when `lpP` > 0 (sum of |x|^p, then the
/// p-th root).
LogicalResult handlePool(OpContext &im, bool isMax, int64_t lpP = 0);

LogicalResult handleIdentity(OpContext &im);

/// The loss of NegativeLogLikelihoodLoss for `logp` (N, C, d...) and integer
/// `target` (N, d...): -logp[n, t, d...] * weight[t], 0 where t equals
/// ignore_index; reduced by "none", "sum" or "mean" (divided by the summed
/// weights of the counted elements).
FailureOr<Value> nllLoss(OpContext &im, Value logp, Value target, Value weight);

/// The forms of Upsample and Resize, by where the scales come from and which
/// coordinate mapping they use.
enum class ResizeForm {
  UpsampleScalesAttr,  // Upsample-7: the `scales` attribute
  UpsampleScalesInput, // Upsample-9 (and deprecated 10): input 1
  Resize10,            // scales input 1, asymmetric coordinates, floor
  Resize11,            // inputs roi, scales, sizes and the mode attributes
};
LogicalResult handleResize(OpContext &im, ResizeForm form);

LogicalResult handleDepthSpace(OpContext &im, bool toSpace);

/// DequantizeLinear: y = (x - zero_point) * scale with per-tensor, per-axis
/// or blocked (block_size) scales; the scale index along `axis` is an
/// affine floordiv, so all three are one elementwise generic.
FailureOr<AffineMap> quantParamMap(OpContext &im, ArrayRef<int64_t> xs, ArrayRef<int64_t> ps);

Value toFloat(OpBuilder &ob, Location l, Value v, Type ft, bool uns);

/// A dense DFT as a contraction: y[k, to] = sum_{j, ti} x[j, ti] * M[k, to, j, ti]
/// over (real, imaginary) parts `to`/`ti`.
struct DftMatrix {
  int64_t nOut, co, red, ci;
  std::vector<double> m;
};

/// Matrix for a transform of length `n` over `len` input samples with `ci`
/// input parts. Inverse one-sided (irfft) reads the first n/2+1 frequencies
/// and rebuilds the rest by Hermitian symmetry.
DftMatrix dftMatrix(int64_t n, int64_t len, int64_t ci, bool inverse, bool onesided);

FailureOr<Value> dftConstant(OpContext &im, const DftMatrix &d, Type et);

/// Hann/Hamming/Blackman: a0 - a1 cos(2 pi n / N) + a2 cos(4 pi n / N), with
/// N = size (periodic) or size - 1 (symmetric). The size is a compile-time
/// constant, so the window is one too.
LogicalResult handleWindow(OpContext &im, double a0, double a1, double a2);

/// ConvInteger: the zero points are subtracted in i32 first (so padding
/// contributes zero, like the reference), then an ordinary i32 convolution.
/// Input `i` (8-bit) widened to i32 minus its zero point `zpIndex` (a
/// scalar, or one per output channel when `perChannel`).
FailureOr<Value> shiftedInt8(OpContext &im, unsigned i, unsigned zpIndex, bool perChannel,
                                    StringRef name);

/// prefix[j] = number of true `keep(k)` for k <= j, as i64 [m] (a quadratic
/// scan, like CumSum's), where `keep` reads element k of `x`.
Value prefixCount(OpContext &im, Value x,
                         function_ref<Value(OpBuilder &, Location, Value)> keep);

/// The index j of the (k+1)-th kept element: the least j with
/// prefix[j] >= k + 1, by an unrolled binary search (clamped to m - 1 when
/// there is none).
Value kthKept(OpBuilder &ob, Location l, Value prefix, Value k, int64_t m);

/// The count of kept elements, prefix[m-1], as i64 [1].
Value keptCount(OpContext &im, Value prefix);

/// A generic over `numLoops` loops that folds `step(acc, operands)` into an
/// output (initialized to `init`) indexed by the parallel loops `outExprs`.
Value foldLoops(OpContext &im, ArrayRef<int64_t> outShape, int64_t numLoops, ValueRange ins,
                       ArrayRef<SmallVector<AffineExpr>> inExprs, ArrayRef<AffineExpr> outExprs,
                       TypedAttr init,
                       function_ref<Value(OpBuilder &, Location, Value, ValueRange)> step);

using ActFn = std::function<Value(OpBuilder &, Location, Value)>;

/// What the three recurrent ops share: the gate count and default
/// activations differ.
struct RecurrentSpec {
  int64_t gates;
  SmallVector<StringRef, 3> defaultActs;
};

/// RNN, LSTM and GRU (opset 7 on), unrolled over the static sequence
/// length: per step and direction one contraction with R and elementwise
/// gate maps that read the precomputed input projection X*W^T + biases
/// through affine maps.
LogicalResult handleRecurrent(OpContext &im, const RecurrentSpec &spec);

// --- Subgraphs.cpp -----------------------------------------------------------

void setIntAttr(onnx::NodeProto &n, StringRef name, int64_t v);

DenseElementsAttr i64Attr(OpContext &im, ArrayRef<int64_t> shape,
                                 ArrayRef<int64_t> vals);

DenseElementsAttr boolAttr(OpContext &im, bool v);

/// The type of tensor `name` (a constant or a runtime value).
RankedTensorType tensorType(Importer &im, StringRef name);

bool isTensor(Importer &im, StringRef name);

const onnx::GraphProto *graphAttr(OpContext &im, StringRef name);

/// One element of compile-time input `i` (a condition, a count, a position),
/// or an error saying why Kiln needs it at compile time.
FailureOr<int64_t> constScalar(OpContext &im, unsigned i, StringRef what);

/// Stacks same-shaped tensors along a new axis `axis`.
FailureOr<std::string> stack(Importer &im, ArrayRef<std::string> elems, int64_t axis);

/// Element `index` of tensor `name` along `axis`, the axis removed. A Slice
/// (an affine read, which fuses) and a Squeeze (a view), not a Gather.
FailureOr<std::string> take(Importer &im, StringRef name, int64_t index, int64_t axis);

void setOutputs(Importer &im, ArrayRef<std::string> names);

/// The elements of sequence input `i`, or an error.
FailureOr<SmallVector<std::string>> sequenceInput(Importer &im, unsigned i);

/// A tensor input stored as a new sequence element (the name stays valid
/// when the scope that produced it ends).
std::string elementOf(Importer &im, StringRef name);

} // namespace kiln::detail

#endif // KILN_LIB_IMPORT_BUILDERS_H

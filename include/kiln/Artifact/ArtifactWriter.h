//===- ArtifactWriter.h - Serialize a compiled module to a .kiln file -----===//
//
// The compiler describes what it produced with these plain structs; the writer
// lays them out in the format of docs/artifact-format.md. Deliberately free of
// LLVM/MLIR types so the runtime's unit tests can build artifacts too.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_ARTIFACT_ARTIFACTWRITER_H
#define KILN_ARTIFACT_ARTIFACTWRITER_H

#include <cstdint>
#include <string>
#include <vector>

namespace kiln::artifact {

/// Element types use ONNX TensorProto.DataType numbering so the file is
/// self-describing to anyone who knows ONNX.
enum class DType : uint8_t {
  F32 = 1, U8 = 2, I8 = 3, U16 = 4, I16 = 5, I32 = 6, I64 = 7, Bool = 9,
  F16 = 10, F64 = 11, U32 = 12, U64 = 13, BF16 = 16,
  // One element per byte in buffers (docs/artifact-format.md).
  F8E4M3FN = 17, F8E4M3FNUZ = 18, F8E5M2 = 19, F8E5M2FNUZ = 20, U4 = 21, I4 = 22,
  F4E2M1 = 23, F8E8M0 = 24, U2 = 25, I2 = 26,
};

enum class BufferKind : uint8_t { Input = 0, Output = 1, Constant = 2, Transient = 3 };

struct BufferDesc {
  BufferKind kind = BufferKind::Transient;
  uint64_t sizeBytes = 0;
  /// Constants only: not owned, must stay valid until writeArtifact returns.
  const uint8_t *constData = nullptr;
};

/// A dimension of an output whose extent is only known after a run (NonZero,
/// Compress...): `shape` holds its upper bound, and the actual extent is the
/// i64 at byte `offset` of buffer `buffer`. The output is the leading sub-box
/// of its bound-shaped buffer.
struct DynamicDim {
  uint32_t dim = 0;
  uint32_t buffer = 0;
  uint64_t offset = 0;
};

/// A tensor of the public signature, viewing a buffer from byte 0.
struct TensorDesc {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  uint32_t buffer = 0;
  std::vector<DynamicDim> dynamicDims; // outputs only
};

/// One kernel of an executable. Each target tiles a kernel its own way, so
/// the grid (workgroup count) and the threads per workgroup belong to the
/// target's entry, not to the dispatch.
struct Entry {
  std::string name;
  uint32_t workgroupCount[3] = {1, 1, 1};
  uint32_t workgroupSize[3] = {1, 1, 1};
};

/// One target's code: e.g. target "cpu", format "elf-x86_64-so". Every
/// executable of a module has the same kernels in the same order; a target
/// may have several executables (one per GPU arch), tried in order.
struct Executable {
  std::string target;
  std::string format;
  std::vector<uint8_t> image;
  std::vector<Entry> entries;
};

struct Binding {
  uint32_t buffer = 0;
  uint64_t offset = 0;
};

/// One kernel launch: entries[kernel] of whichever executable runs.
struct Dispatch {
  uint32_t kernel = 0;
  std::vector<Binding> bindings;
};

/// What the runtime needs to compile a model it is run with: the ONNX model
/// and the kiln-compile arguments (besides the model path, -o and the
/// --input-value bindings it adds).
struct Source {
  std::vector<std::string> targets;
  std::vector<std::string> args;
  std::string modelName; // the model's path as given, for messages
  std::vector<uint8_t> model;
};

struct Module {
  std::string producer;
  std::string name;
  std::vector<TensorDesc> inputs;
  std::vector<TensorDesc> outputs;
  std::vector<BufferDesc> buffers;
  std::vector<Executable> executables;
  /// Run in order; each may read buffers written by earlier ones.
  std::vector<Dispatch> dispatches;
  /// Per kernel (index of the executables' entries), the ONNX nodes it
  /// computes, e.g. "Conv(conv1) + Relu(relu1)"; "" where unknown. Empty, or
  /// one per kernel (format 3.2).
  std::vector<std::string> kernelOps;
  /// Per kernel, the bytes it reads or writes through each binding, from
  /// the binding's offset (format 3.3): the runtime checks every dispatch
  /// and buffer size against them. Empty, or one per kernel.
  std::vector<std::vector<uint64_t>> kernelExtents;
  /// Inputs whose values (they feed shapes) or shapes (dims of -1 in
  /// `inputs`) decide what gets compiled. A module with any holds no code,
  /// only its inputs and `source`: the runtime compiles it for each run's.
  struct Specialization {
    uint32_t input = 0; // index into `inputs`
    uint32_t kinds = 0; // KILN_ART_SPECIALIZE_VALUE | _SHAPE
  };
  std::vector<Specialization> specializeOn;
  Source source;
};

/// Writes `module` to `path` atomically (temporary file in the same directory,
/// then rename), so a failure never leaves a partial file or clobbers an
/// existing one. Returns an empty string on success, else the error message.
std::string writeArtifact(const Module &module, const std::string &path);

} // namespace kiln::artifact

#endif // KILN_ARTIFACT_ARTIFACTWRITER_H

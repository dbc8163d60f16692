//===- internal.h - Shared between the runtime's source files ---*- C++ -*-===//
#ifndef KILN_RUNTIME_INTERNAL_H
#define KILN_RUNTIME_INTERNAL_H

#include "kiln/driver.h"
#include "kiln/runtime.h"

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

namespace kiln::rt {

/// Sets this thread's kiln_last_error() and returns `status`.
kiln_status setError(kiln_status status, std::string message);

/// "f32[1,3,224]" - the spelling every shape error uses.
std::string formatType(kiln_dtype dtype, const int64_t *dims, size_t rank);

struct Buffer {
  uint32_t kind;
  uint64_t size;
  const uint8_t *constData; // Into the mapping; constants only.
};

/// A data-dependent output dim: `dims` holds its bound, the extent of a run
/// is the i64 at `offset` in `buffer`.
struct DynamicDim {
  uint32_t dim;
  uint32_t buffer;
  uint64_t offset;
};

struct Tensor {
  std::string name;
  kiln_dtype dtype;
  std::vector<int64_t> dims;
  uint32_t buffer;
  uint64_t bytes;
  std::vector<DynamicDim> dynamicDims;
};

struct Entry {
  std::string name;
  uint32_t workgroupCount[3];
  uint32_t workgroupSize[3];
};

struct Executable {
  std::string target, format, section;
  const uint8_t *image;
  uint64_t imageSize;
  std::vector<Entry> entries;
  std::vector<kiln_driver_entry> driverEntries; // Views of `entries`.
};

struct Dispatch {
  uint32_t kernel;
  std::vector<uint32_t> bindingBuffers;
  std::vector<uint64_t> bindingOffsets;
};

} // namespace kiln::rt

/// A validated, memory-mapped artifact. Reference counted because sessions
/// keep reading constants and images from the mapping.
struct kiln_artifact {
  std::atomic<int> refs{1};
  std::string path;
  void *map = nullptr;
  size_t mapSize = 0;
  std::string name, producer;
  std::vector<kiln::rt::Buffer> buffers;
  std::vector<kiln::rt::Tensor> inputs, outputs;
  std::vector<kiln::rt::Executable> executables;
  std::vector<kiln::rt::Dispatch> dispatches;
  /// Per kernel, the ONNX nodes it computes ("Conv(c1) + Relu(r1)"; format
  /// 3.2, else ""). Drivers get them with the entries, for profiles.
  std::vector<std::string> kernelOps;
  /// Format 3.3: per kernel, the bytes each binding reaches (empty before).
  std::vector<std::vector<uint64_t>> kernelExtents;
  /// Inputs whose values or shapes (dims of -1) decide the code: such an
  /// artifact holds no code but the model and how to compile it, and
  /// sessions compile it for each run's (specialize.cpp).
  struct Specialization {
    uint32_t input; // index into `inputs`
    uint32_t kinds; // KILN_ART_SPECIALIZE_VALUE | _SHAPE
  };
  std::vector<Specialization> specializeOn;
  std::vector<std::string> sourceTargets, sourceArgs;
  std::string sourceModelName;
  const uint8_t *sourceModel = nullptr; // Into the mapping.
  uint64_t sourceModelSize = 0;
  ~kiln_artifact();
};

namespace kiln::rt {

/// The specializing inputs of a run for messages: "'axes' i64[1]=[0], 'x'
/// f32[3,5]" (values for inputs whose value decides, else the shape).
std::string describeSpecialization(const kiln_artifact &a,
                                   const std::vector<std::vector<uint8_t>> &inputs,
                                   const std::vector<std::vector<int64_t>> &dims);

/// Compiles `a` (which specializes on inputs) for a run whose input i holds
/// `inputs[i]` with shape `dims[i]`, or finds it compiled in the cache; sets
/// `path` to the resulting artifact. The compiler's message is the error.
kiln_status compileFor(const kiln_artifact &a, const std::vector<std::vector<uint8_t>> &inputs,
                       const std::vector<std::vector<int64_t>> &dims, std::string &path);

} // namespace kiln::rt

#endif // KILN_RUNTIME_INTERNAL_H

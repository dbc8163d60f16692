//===- inputs.h - Tensors for a model's inputs, as tools give them -*- C++ -*-===//
//
// kiln-run's --input forms (a file, a literal, or nothing: seeded random
// data) turned into tensors. Errors are returned as the message a user
// sees; the caller decides how to report them.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_RUNTIME_TOOLING_INPUTS_H
#define KILN_RUNTIME_TOOLING_INPUTS_H

#include "kiln/runtime.h"
#include "npy.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace kiln::tooling {

/// One --input: NAME=@FILE, @FILE, DIMSxDTYPE=VALUES or NAME=DIMSxDTYPE=VALUES.
struct InputSpec {
  std::string text; // As given, for messages.
  std::string name; // Empty: positional.
  std::string file; // Set for @FILE (.npy, else a TensorProto).
  kiln_dtype dtype = KILN_DTYPE_F32;
  std::vector<int64_t> dims;
  std::string values; // Literal form, comma-separated.
};

/// A decimal integer in [lo, hi], or nothing.
std::optional<int64_t> parseInt(const std::string &s, int64_t lo, int64_t hi);

/// "2x3xf32" or "f32".
bool parseTypeSpec(const std::string &s, kiln_dtype &dtype,
                   std::vector<int64_t> &dims);

/// Parses an --input value into `spec`; "" or what is wrong with it.
std::string parseInputSpec(const std::string &text, InputSpec &spec);

/// "f32[2,3]": how shapes are spelled in messages and summaries.
std::string typeString(kiln_dtype dtype, const std::vector<int64_t> &dims);

/// Which of `specs` binds each of `inputs` (null: none): positional specs
/// in order, named ones by name. Some given means all given. "" or what is
/// wrong.
std::string bindInputs(const std::vector<InputSpec> &specs,
                       const std::vector<kiln_tensor_info> &inputs,
                       std::vector<const InputSpec *> &bound);

/// The tensor a literal spec gives input `name`; "" or why not.
std::string literalTensor(const InputSpec &spec, const std::string &name,
                          npy::Array &a);

/// Reads a .npy file, or an ONNX TensorProto: .npy files announce
/// themselves with a magic string; TensorProto files have none, so anything
/// else (or a .pb name) is decoded as one. "" or why not.
std::string readTensorFile(const std::string &path, npy::Array &a);

/// Writes `a` as an ONNX TensorProto named `name` when `path` ends in .pb
/// (the only form for bf16), else as a .npy file. "" or why not.
std::string writeTensorFile(const std::string &path, const npy::Array &a,
                            const std::string &name);

/// Why a model whose inputs `specializing` decide what is compiled cannot
/// run on random inputs; "" when there are none.
std::string randomInputsRefusal(const std::vector<std::string> &specializing);

/// SplitMix64: tiny, and identical on every platform (unlike std::
/// distributions), so a seed names the same inputs everywhere.
struct Rng {
  uint64_t state;
  uint64_t next() {
    uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
};

/// Random data for `info`: floats uniform in [-1, 1), integers in [0, 10),
/// booleans and sub-byte integers 0 or 1; one draw of `rng` per element.
npy::Array randomTensor(const kiln_tensor_info &info, Rng &rng);

} // namespace kiln::tooling

#endif // KILN_RUNTIME_TOOLING_INPUTS_H

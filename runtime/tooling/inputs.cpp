//===- inputs.cpp - Tensors for a model's inputs, as tools give them ------===//
#include "inputs.h"
#include "element.h"
#include "tensor_proto.h"

#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace kiln::tooling {

std::optional<int64_t> parseInt(const std::string &s, int64_t lo, int64_t hi) {
  if (s.empty())
    return std::nullopt;
  errno = 0;
  char *end = nullptr;
  long long v = std::strtoll(s.c_str(), &end, 10);
  if (errno || *end || v < lo || v > hi)
    return std::nullopt;
  return v;
}

bool parseTypeSpec(const std::string &s, kiln_dtype &dtype,
                   std::vector<int64_t> &dims) {
  std::vector<std::string> parts;
  size_t start = 0;
  for (size_t x; (x = s.find('x', start)) != std::string::npos; start = x + 1)
    parts.push_back(s.substr(start, x - start));
  parts.push_back(s.substr(start));
  if (kiln_dtype_from_name(parts.back().c_str(), &dtype) != KILN_OK)
    return false;
  dims.clear();
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    auto d = parseInt(parts[i], 0, INT64_MAX);
    if (!d || !std::isdigit(static_cast<unsigned char>(parts[i][0])))
      return false;
    dims.push_back(*d);
  }
  return true;
}

std::string parseInputSpec(const std::string &text, InputSpec &spec) {
  spec = InputSpec();
  spec.text = text;
  const std::string bad =
      "bad --input='" + text +
      "': expected NAME=@FILE, @FILE (.npy or .pb), DIMSxDTYPE=VALUES or "
      "NAME=DIMSxDTYPE=VALUES";
  if (text.empty())
    return bad;
  if (text[0] == '@') {
    spec.file = text.substr(1);
    return spec.file.empty() ? bad : "";
  }
  size_t eq = text.find('=');
  if (eq == std::string::npos)
    return bad;
  std::string left = text.substr(0, eq), right = text.substr(eq + 1);
  if (parseTypeSpec(left, spec.dtype, spec.dims)) {
    spec.values = right;
    return "";
  }
  spec.name = left;
  if (left.empty())
    return bad;
  if (!right.empty() && right[0] == '@') {
    spec.file = right.substr(1);
    return spec.file.empty() ? bad : "";
  }
  size_t eq2 = right.find('=');
  if (eq2 == std::string::npos ||
      !parseTypeSpec(right.substr(0, eq2), spec.dtype, spec.dims))
    return bad;
  spec.values = right.substr(eq2 + 1);
  return "";
}

std::string bindInputs(const std::vector<InputSpec> &specs,
                       const std::vector<kiln_tensor_info> &inputs,
                       std::vector<const InputSpec *> &bound) {
  size_t n = inputs.size();
  std::string names;
  for (size_t i = 0; i < n; ++i)
    names += (i ? ", " : "") + std::string(inputs[i].name);
  bound.assign(n, nullptr);
  size_t positional = 0;
  for (const InputSpec &spec : specs) {
    size_t idx = 0;
    if (spec.name.empty()) {
      idx = positional++;
      if (idx >= n)
        return "too many positional --input: the model has " +
               std::to_string(n) + " input" + (n == 1 ? "" : "s") +
               (n ? " (" + names + ")" : "");
    } else {
      while (idx < n && spec.name != inputs[idx].name)
        ++idx;
      if (idx == n)
        return "no input named '" + spec.name + "' (inputs: " +
               (n ? names : "none") + ")";
    }
    if (bound[idx])
      return "input '" + std::string(inputs[idx].name) + "' is given twice ('" +
             bound[idx]->text + "' and '" + spec.text + "')";
    bound[idx] = &spec;
  }
  for (size_t i = 0; i < n && !specs.empty(); ++i)
    if (!bound[i])
      return "no --input for '" + std::string(inputs[i].name) + "' (inputs: " +
             names + "); give every input, or none for random inputs";
  return "";
}

std::string typeString(kiln_dtype dtype, const std::vector<int64_t> &dims) {
  const char *n = kiln_dtype_name(dtype);
  std::string s = std::string(n ? n : "?") + "[";
  for (size_t i = 0; i < dims.size(); ++i)
    s += (i ? "," : "") + std::to_string(dims[i]);
  return s + "]";
}

std::string literalTensor(const InputSpec &spec, const std::string &name,
                          npy::Array &a) {
  a = npy::Array();
  a.dtype = spec.dtype;
  a.shape = spec.dims;
  uint64_t count = 1;
  for (int64_t d : a.shape) {
    if (d && count > (uint64_t(1) << 40) / uint64_t(d))
      return "input '" + name + "': literal shape too large";
    count *= uint64_t(d);
  }
  std::vector<std::string> toks;
  size_t start = 0;
  for (size_t c; (c = spec.values.find(',', start)) != std::string::npos;
       start = c + 1)
    toks.push_back(spec.values.substr(start, c - start));
  toks.push_back(spec.values.substr(start));
  if (spec.values.empty())
    toks.clear();
  if (toks.size() != count)
    return "input '" + name + "': " + typeString(a.dtype, a.shape) + " needs " +
           std::to_string(count) + " values, got " + std::to_string(toks.size());
  size_t elem = kiln_dtype_size(a.dtype);
  a.data.resize(count * elem);
  for (size_t i = 0; i < toks.size(); ++i)
    if (!storeLiteral(a.dtype, a.data.data() + i * elem, toks[i]))
      return "input '" + name + "': value '" + toks[i] + "' is not a valid " +
             kiln_dtype_name(a.dtype);
  return "";
}

std::string readTensorFile(const std::string &path, npy::Array &a) {
  if (!tensor_proto::hasTensorProtoExtension(path)) {
    FILE *f = std::fopen(path.c_str(), "rb");
    if (!f)
      return path + ": " + std::strerror(errno);
    char magic[6] = {};
    size_t n = std::fread(magic, 1, sizeof(magic), f);
    std::fclose(f);
    if (n == sizeof(magic) && std::memcmp(magic, "\x93NUMPY", 6) == 0)
      return npy::read(path, a);
  }
  return tensor_proto::read(path, a);
}

std::string writeTensorFile(const std::string &path, const npy::Array &a,
                            const std::string &name) {
  return tensor_proto::hasTensorProtoExtension(path) ? tensor_proto::write(path, a, name)
                                                     : npy::write(path, a);
}

std::string randomInputsRefusal(const std::vector<std::string> &specializing) {
  if (specializing.empty())
    return "";
  std::string names;
  for (const std::string &n : specializing)
    names += (names.empty() ? "'" : ", '") + n + "'";
  bool many = specializing.size() > 1;
  return (many ? "inputs " + names + " decide" : "input " + names + " decides") +
         " what is compiled (by value, or by a shape with symbolic dims), so the model "
         "cannot run on random inputs: give every input with --input (or bind or pin " +
         (many ? "those" : "it") + " with kiln-compile --input-value / --input-shape)";
}

npy::Array randomTensor(const kiln_tensor_info &info, Rng &rng) {
  npy::Array a;
  a.dtype = info.dtype;
  a.shape.assign(info.dims, info.dims + info.rank);
  uint64_t count = 1;
  for (int64_t d : a.shape)
    count *= uint64_t(d);
  size_t elem = kiln_dtype_size(a.dtype);
  a.data.resize(count * elem);
  for (uint64_t i = 0; i < count; ++i) {
    uint64_t r = rng.next();
    // Through the literal parser, so every type rounds as literals do.
    std::string tok;
    if (isFloat(a.dtype)) {
      char buf[32];
      std::snprintf(buf, sizeof(buf), "%.17g", double(r >> 11) * 0x1p-53 * 2.0 - 1.0);
      tok = buf;
    } else if (a.dtype == KILN_DTYPE_BOOL || isSmallInt(a.dtype)) {
      tok = std::to_string(r & 1);
    } else {
      tok = std::to_string(r % 10);
    }
    storeLiteral(a.dtype, a.data.data() + i * elem, tok);
  }
  return a;
}

} // namespace kiln::tooling

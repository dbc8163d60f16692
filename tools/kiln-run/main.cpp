//===- kiln-run - Run a compiled .kiln artifact ---------------------------===//
//
// Binds inputs from .npy files, ONNX TensorProto (.pb) files, literals or
// seeded random data, runs, and
// summarizes or saves the outputs. Errors print one line and exit 1 (2 for
// command-line misuse); nothing here should be able to crash.
//
//===----------------------------------------------------------------------===//
#include "kiln/runtime.h"
#include "npy.h"
#include "tensor_proto.h"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <optional>
#include <string>
#include <unistd.h>
#include <vector>

namespace npy = kiln::npy;

namespace {

const char *kHelp = R"(usage: kiln-run MODEL.kiln [options]
       kiln-run --list-devices
       kiln-run --help

Runs a Kiln artifact and prints a summary of each output.

options:
  --device=NAME      device ("cpu:0") or driver ("cpu"); default: the first
                     available device that can run the model
  --threads=N        worker threads for the CPU device (default: all cores)
  --input=SPEC       bind an input; repeat for several. SPEC is one of:
                       NAME=@file.npy        by name, from a .npy file
                       @file.npy             by position
                       NAME=@file.pb         from a serialized ONNX
                       @file.pb              TensorProto (as in ONNX's test
                                             data); any file that is not
                                             .npy is read as a TensorProto
                       DIMSxDTYPE=V1,V2,...  by position, literal values,
                                             e.g. 2x3xf32=1,2,3,4,5,6 or f32=3
                       NAME=DIMSxDTYPE=...   by name, literal values
                     dtypes: f16 f32 f64 bf16 i8 i16 i32 i64 u8 u16 u32 u64
                     i1 (bool). Give every input or none; with none, inputs
                     are random (floats uniform in [-1,1), integers in
                     [0,10), booleans 0/1), seeded by --seed. Inputs that
                     decide what is compiled (kiln-compile wrote the
                     artifact without their --input-value, or without
                     --input-shape for their symbolic dims) are never
                     random: the model is compiled for the values and
                     shapes given, on the first run with each (kiln-compile
                     from $KILN_COMPILE or beside the runtime; cached in
                     $KILN_CACHE_DIR, else ~/.cache/kiln)
  --output=@FILE.npy write the next output (in output order) to FILE.npy;
                     repeat for several. A FILE.pb is written as an ONNX
                     TensorProto instead (named like the output; the only
                     form for bf16, which .npy cannot hold)
  --seed=N           seed for random inputs (default 0)
  --repeat=N         run N times and print min/median latency
  --print-all        print every output value, not just the first 16
  --profile=FILE     write a Chrome/Perfetto trace of the last run to FILE
                     (open in ui.perfetto.dev): on cpu each dispatch's wall
                     time on every worker thread, named by the ONNX ops
                     fused into it; on npu the simulated engines
  --stats=FILE       ... and statistics as JSON (cpu: dispatches slowest
                     first, worker utilization; npu: per engine). With
                     either option kiln-run prints the 10 slowest dispatches
                     of the last run (and the npu's engine utilization);
                     GPU devices record no profile
  --list-devices     list the devices of the built-in drivers and exit

exit status: 0 on success, 1 on errors, 2 on command-line misuse.
)";

struct Failure {
  int code;
  std::string message;
};

[[noreturn]] void usageError(const std::string &msg) {
  throw Failure{2, msg + " (see kiln-run --help)"};
}
[[noreturn]] void error(const std::string &msg) { throw Failure{1, msg}; }
void check(kiln_status s) {
  if (s != KILN_OK)
    error(kiln_last_error());
}

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

std::string typeString(kiln_dtype dtype, const std::vector<int64_t> &dims) {
  const char *n = kiln_dtype_name(dtype);
  std::string s = std::string(n ? n : "?") + "[";
  for (size_t i = 0; i < dims.size(); ++i)
    s += (i ? "," : "") + std::to_string(dims[i]);
  return s + "]";
}

//===--- Element conversion -----------------------------------------------===//

float halfToFloat(uint16_t h) {
  uint32_t sign = uint32_t(h >> 15) << 31, exp = (h >> 10) & 0x1f,
           mant = h & 0x3ff, bits;
  if (exp == 0x1f)
    bits = sign | 0x7f800000u | (mant << 13);
  else if (exp)
    bits = sign | ((exp + 112) << 23) | (mant << 13);
  else if (!mant)
    bits = sign;
  else { // Subnormal: renormalize.
    exp = 113;
    while (!(mant & 0x400)) {
      mant <<= 1;
      --exp;
    }
    bits = sign | (exp << 23) | ((mant & 0x3ff) << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint16_t floatToHalf(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  uint16_t sign = (x >> 16) & 0x8000;
  uint32_t absx = x & 0x7fffffff;
  if (absx >= 0x7f800000) // Inf or NaN.
    return sign | 0x7c00 | (absx > 0x7f800000 ? 0x200 : 0);
  if (absx >= 0x477ff000) // Rounds to >= 65520: overflow.
    return sign | 0x7c00;
  if (absx < 0x38800000) { // Subnormal or zero in half.
    float a;
    std::memcpy(&a, &absx, 4);
    return sign | static_cast<uint16_t>(std::nearbyint(a * 16777216.0f));
  }
  uint32_t r = absx + 0xc8000fff + ((absx >> 13) & 1); // Round to nearest even.
  return sign | static_cast<uint16_t>(r >> 13);
}

/// The one-byte float formats, for printing values and parsing literals.
struct SmallFloat {
  unsigned expBits, mantBits;
  int bias;
  enum Kind { Ieee, FiniteNan, Fnuz, Finite, ExpOnly } kind;
};

std::optional<SmallFloat> smallFloat(kiln_dtype t) {
  switch (t) {
  case KILN_DTYPE_F8E4M3FN: return SmallFloat{4, 3, 7, SmallFloat::FiniteNan};
  case KILN_DTYPE_F8E4M3FNUZ: return SmallFloat{4, 3, 8, SmallFloat::Fnuz};
  case KILN_DTYPE_F8E5M2: return SmallFloat{5, 2, 15, SmallFloat::Ieee};
  case KILN_DTYPE_F8E5M2FNUZ: return SmallFloat{5, 2, 16, SmallFloat::Fnuz};
  case KILN_DTYPE_F4E2M1: return SmallFloat{2, 1, 1, SmallFloat::Finite};
  case KILN_DTYPE_F8E8M0: return SmallFloat{8, 0, 127, SmallFloat::ExpOnly};
  default: return std::nullopt;
  }
}

double decodeSmallFloat(const SmallFloat &f, uint32_t bits) {
  uint32_t expMask = (1u << f.expBits) - 1, mantMask = (1u << f.mantBits) - 1;
  uint32_t exp = (bits >> f.mantBits) & expMask, mant = bits & mantMask;
  bool neg = f.kind != SmallFloat::ExpOnly && (bits >> (f.expBits + f.mantBits)) & 1;
  double nan = std::numeric_limits<double>::quiet_NaN();
  switch (f.kind) {
  case SmallFloat::Ieee:
    if (exp == expMask)
      return mant ? nan : neg ? -INFINITY : INFINITY;
    break;
  case SmallFloat::FiniteNan:
    if (exp == expMask && mant == mantMask)
      return nan;
    break;
  case SmallFloat::Fnuz:
    if (bits == 0x80)
      return nan;
    break;
  case SmallFloat::ExpOnly:
    return exp == expMask ? nan : std::ldexp(1.0, int(exp) - f.bias);
  case SmallFloat::Finite:
    break;
  }
  double v = exp ? std::ldexp(1.0 + std::ldexp(double(mant), -int(f.mantBits)),
                              int(exp) - f.bias)
                 : std::ldexp(double(mant), 1 - f.bias - int(f.mantBits));
  return neg ? -v : v;
}

/// The code nearest to `v` (ties to the even code), by trying them all:
/// there are at most 256.
uint8_t encodeSmallFloat(const SmallFloat &f, double v) {
  unsigned codes = 1u << (f.expBits + f.mantBits + (f.kind != SmallFloat::ExpOnly));
  int best = -1;
  double bestErr = 0;
  for (unsigned c = 0; c < codes; ++c) {
    double d = decodeSmallFloat(f, c);
    if (std::isnan(v) || std::isnan(d)) {
      if (std::isnan(v) && std::isnan(d))
        return static_cast<uint8_t>(c);
      continue;
    }
    double err = d == v ? 0 : std::fabs(d - v);
    if (best < 0 || err < bestErr || (err == bestErr && !(c & 1) && (best & 1))) {
      best = int(c);
      bestErr = err;
    }
  }
  return static_cast<uint8_t>(best);
}

/// i4, u4, i2, u2: their width and signedness.
std::optional<std::pair<unsigned, bool>> smallInt(kiln_dtype t) {
  switch (t) {
  case KILN_DTYPE_I4: return std::make_pair(4u, true);
  case KILN_DTYPE_U4: return std::make_pair(4u, false);
  case KILN_DTYPE_I2: return std::make_pair(2u, true);
  case KILN_DTYPE_U2: return std::make_pair(2u, false);
  default: return std::nullopt;
  }
}

double loadElem(kiln_dtype t, const uint8_t *p) {
  if (auto f = smallFloat(t))
    return decodeSmallFloat(*f, *p);
  if (auto si = smallInt(t)) {
    unsigned bits = si->first;
    int v = *p & ((1 << bits) - 1);
    return si->second && v >> (bits - 1) ? v - (1 << bits) : v;
  }
  auto get = [&](auto v) {
    std::memcpy(&v, p, sizeof(v));
    return v;
  };
  switch (t) {
  case KILN_DTYPE_F32: return get(float());
  case KILN_DTYPE_F64: return get(double());
  case KILN_DTYPE_F16: return halfToFloat(get(uint16_t()));
  case KILN_DTYPE_BF16: {
    uint32_t bits = uint32_t(get(uint16_t())) << 16;
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
  }
  case KILN_DTYPE_I8: return get(int8_t());
  case KILN_DTYPE_I16: return get(int16_t());
  case KILN_DTYPE_I32: return get(int32_t());
  case KILN_DTYPE_I64: return static_cast<double>(get(int64_t()));
  case KILN_DTYPE_U8: return get(uint8_t());
  case KILN_DTYPE_BOOL: return get(uint8_t()) != 0;
  case KILN_DTYPE_U16: return get(uint16_t());
  case KILN_DTYPE_U32: return get(uint32_t());
  case KILN_DTYPE_U64: return static_cast<double>(get(uint64_t()));
  default: return 0; // The small types, handled above.
  }
}

bool isFloat(kiln_dtype t) {
  return t == KILN_DTYPE_F16 || t == KILN_DTYPE_F32 || t == KILN_DTYPE_F64 ||
         t == KILN_DTYPE_BF16 || smallFloat(t);
}

/// Parses one literal element of type `t` into `p`; false if it does not fit.
bool storeLiteral(kiln_dtype t, uint8_t *p, const std::string &tok) {
  if (tok.empty())
    return false;
  auto put = [&](auto v) { std::memcpy(p, &v, sizeof(v)); };
  char *end = nullptr;
  errno = 0;
  if (isFloat(t)) {
    double v = std::strtod(tok.c_str(), &end);
    if (*end)
      return false;
    float f = static_cast<float>(v);
    uint32_t bits;
    std::memcpy(&bits, &f, 4);
    if (auto sf = smallFloat(t))
      return put(encodeSmallFloat(*sf, v)), true;
    switch (t) {
    case KILN_DTYPE_F64: put(v); break;
    case KILN_DTYPE_F32: put(f); break;
    case KILN_DTYPE_F16: put(floatToHalf(f)); break;
    default: // bf16: round to nearest even, keep NaN a NaN.
      put(static_cast<uint16_t>(
          std::isnan(f) ? 0x7fc0 | (bits >> 31 << 15)
                        : (bits + 0x7fff + ((bits >> 16) & 1)) >> 16));
    }
    return true;
  }
  if (t == KILN_DTYPE_BOOL) {
    if (tok == "1" || tok == "true" || tok == "True")
      return put(uint8_t(1)), true;
    if (tok == "0" || tok == "false" || tok == "False")
      return put(uint8_t(0)), true;
    return false;
  }
  bool isUnsigned = t == KILN_DTYPE_U8 || t == KILN_DTYPE_U16 ||
                    t == KILN_DTYPE_U32 || t == KILN_DTYPE_U64;
  if (isUnsigned) {
    if (tok[0] == '-')
      return false;
    unsigned long long v = std::strtoull(tok.c_str(), &end, 0);
    if (*end || errno)
      return false;
    size_t bits = kiln_dtype_size(t) * 8;
    if (bits < 64 && v >> bits)
      return false;
    switch (t) {
    case KILN_DTYPE_U8: put(uint8_t(v)); break;
    case KILN_DTYPE_U16: put(uint16_t(v)); break;
    case KILN_DTYPE_U32: put(uint32_t(v)); break;
    default: put(uint64_t(v));
    }
    return true;
  }
  if (auto si = smallInt(t)) {
    long long v = std::strtoll(tok.c_str(), &end, 0);
    long long lo = si->second ? -(1ll << (si->first - 1)) : 0;
    long long hi = si->second ? (1ll << (si->first - 1)) - 1 : (1ll << si->first) - 1;
    if (*end || errno || v < lo || v > hi)
      return false;
    return put(uint8_t(v & ((1 << si->first) - 1))), true;
  }
  long long v = std::strtoll(tok.c_str(), &end, 0);
  if (*end || errno)
    return false;
  size_t bits = kiln_dtype_size(t) * 8;
  if (bits < 64 && (v < -(1ll << (bits - 1)) || v >= (1ll << (bits - 1))))
    return false;
  switch (t) {
  case KILN_DTYPE_I8: put(int8_t(v)); break;
  case KILN_DTYPE_I16: put(int16_t(v)); break;
  case KILN_DTYPE_I32: put(int32_t(v)); break;
  default: put(int64_t(v));
  }
  return true;
}

//===--- Inputs -----------------------------------------------------------===//

struct InputSpec {
  std::string text;  // As given, for messages.
  std::string name;  // Empty: positional.
  std::string npy;   // Set for @file.npy or @file.pb.
  kiln_dtype dtype = KILN_DTYPE_F32;
  std::vector<int64_t> dims;
  std::string values; // Literal form.
};

/// "2x3xf32" or "f32".
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

InputSpec parseInputSpec(const std::string &text) {
  InputSpec spec;
  spec.text = text;
  auto bad = [&]() {
    usageError("bad --input='" + text +
               "': expected NAME=@FILE, @FILE (.npy or .pb), DIMSxDTYPE=VALUES or "
               "NAME=DIMSxDTYPE=VALUES");
  };
  if (text.empty())
    bad();
  if (text[0] == '@') {
    spec.npy = text.substr(1);
    if (spec.npy.empty())
      bad();
    return spec;
  }
  size_t eq = text.find('=');
  if (eq == std::string::npos)
    bad();
  std::string left = text.substr(0, eq), right = text.substr(eq + 1);
  if (parseTypeSpec(left, spec.dtype, spec.dims)) {
    spec.values = right;
    return spec;
  }
  spec.name = left;
  if (left.empty())
    bad();
  if (!right.empty() && right[0] == '@') {
    spec.npy = right.substr(1);
    if (spec.npy.empty())
      bad();
    return spec;
  }
  size_t eq2 = right.find('=');
  if (eq2 == std::string::npos ||
      !parseTypeSpec(right.substr(0, eq2), spec.dtype, spec.dims))
    bad();
  spec.values = right.substr(eq2 + 1);
  return spec;
}

/// .npy files announce themselves with a magic string; TensorProto files
/// have none, so anything else (or a .pb name) is decoded as a TensorProto.
std::string readTensorFile(const std::string &path, npy::Array &a) {
  if (!kiln::tensor_proto::hasTensorProtoExtension(path)) {
    FILE *f = std::fopen(path.c_str(), "rb");
    if (!f)
      return path + ": " + std::strerror(errno);
    char magic[6] = {};
    size_t n = std::fread(magic, 1, sizeof(magic), f);
    std::fclose(f);
    if (n == sizeof(magic) && std::memcmp(magic, "\x93NUMPY", 6) == 0)
      return npy::read(path, a);
  }
  return kiln::tensor_proto::read(path, a);
}

/// Turns a spec into data for input `info`.
npy::Array loadInput(const InputSpec &spec, const kiln_tensor_info &info) {
  npy::Array a;
  if (!spec.npy.empty()) {
    if (std::string err = readTensorFile(spec.npy, a); !err.empty())
      error(err);
    return a;
  }
  a.dtype = spec.dtype;
  a.shape = spec.dims;
  uint64_t count = 1;
  for (int64_t d : a.shape) {
    if (d && count > (uint64_t(1) << 40) / uint64_t(d))
      error("input '" + std::string(info.name) + "': literal shape too large");
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
    error("input '" + std::string(info.name) + "': " +
          typeString(a.dtype, a.shape) + " needs " + std::to_string(count) +
          " values, got " + std::to_string(toks.size()));
  size_t elem = kiln_dtype_size(a.dtype);
  a.data.resize(count * elem);
  for (size_t i = 0; i < toks.size(); ++i)
    if (!storeLiteral(a.dtype, a.data.data() + i * elem, toks[i]))
      error("input '" + std::string(info.name) + "': value '" + toks[i] +
            "' is not a valid " + kiln_dtype_name(a.dtype));
  return a;
}

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

npy::Array randomInput(const kiln_tensor_info &info, Rng &rng) {
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
    std::string tok;
    if (isFloat(a.dtype)) {
      char buf[32];
      std::snprintf(buf, sizeof(buf), "%.17g", double(r >> 11) * 0x1p-53 * 2.0 - 1.0);
      tok = buf;
    }
    else if (a.dtype == KILN_DTYPE_BOOL || smallInt(a.dtype))
      tok = std::to_string(r & 1);
    else
      tok = std::to_string(r % 10);
    storeLiteral(a.dtype, a.data.data() + i * elem, tok);
  }
  return a;
}

//===--- Outputs ----------------------------------------------------------===//

std::string formatValue(kiln_dtype t, double v) {
  char buf[64];
  if (isFloat(t))
    std::snprintf(buf, sizeof(buf), "%.6g", v);
  else
    std::snprintf(buf, sizeof(buf), "%.0f", v);
  return buf;
}

void printOutput(const kiln_tensor_info &info, const std::vector<uint8_t> &data,
                 bool all) {
  std::vector<int64_t> dims(info.dims, info.dims + info.rank);
  size_t elem = kiln_dtype_size(info.dtype);
  size_t count = elem ? data.size() / elem : 0;
  std::printf("output '%s': %s", info.name, typeString(info.dtype, dims).c_str());
  if (!count) {
    std::printf(" (empty)\n");
    return;
  }
  double lo = INFINITY, hi = -INFINITY, sum = 0;
  size_t nans = 0;
  for (size_t i = 0; i < count; ++i) {
    double v = loadElem(info.dtype, data.data() + i * elem);
    if (std::isnan(v)) {
      ++nans;
      continue;
    }
    lo = std::min(lo, v);
    hi = std::max(hi, v);
    sum += v;
  }
  if (nans < count)
    std::printf(" min=%s max=%s mean=%.6g", formatValue(info.dtype, lo).c_str(),
                formatValue(info.dtype, hi).c_str(), sum / double(count - nans));
  if (nans)
    std::printf(" nan=%zu", nans);
  size_t shown = all ? count : std::min<size_t>(count, 16);
  std::printf("\n  [");
  for (size_t i = 0; i < shown; ++i)
    std::printf("%s%s", i ? ", " : "",
                formatValue(info.dtype, loadElem(info.dtype, data.data() + i * elem))
                    .c_str());
  if (shown < count)
    std::printf(", ... (%zu more)", count - shown);
  std::printf("]\n");
}

//===--- Profiles ---------------------------------------------------------===//

std::string tempStatsPath() {
  const char *dir = std::getenv("TMPDIR");
  return std::string(dir && *dir ? dir : "/tmp") + "/kiln-run-stats-" +
         std::to_string(::getpid()) + ".json";
}

std::string readText(const std::string &path) {
  std::string text;
  if (FILE *f = std::fopen(path.c_str(), "rb")) {
    char buf[4096];
    for (size_t n; (n = std::fread(buf, 1, sizeof(buf), f)) > 0;)
      text.append(buf, n);
    std::fclose(f);
  }
  return text;
}

/// The dispatches that took longest in the last run, with their share of
/// it (from the start of its first dispatch to the end of its last).
void printSlowest(kiln_session *session, size_t shown = 10) {
  size_t n = kiln_session_dispatch_count(session);
  std::vector<kiln_dispatch_info> infos(n);
  double begin = 0, end = 0;
  for (size_t i = 0; i < n; ++i) {
    check(kiln_session_dispatch_info(session, i, &infos[i]));
    if (infos[i].time_ns < 0)
      return;
    begin = i ? std::min(begin, infos[i].start_ns) : infos[i].start_ns;
    end = std::max(end, infos[i].start_ns + infos[i].time_ns);
  }
  std::vector<size_t> order(n);
  for (size_t i = 0; i < n; ++i)
    order[i] = i;
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return infos[a].time_ns > infos[b].time_ns; });
  double span = end - begin;
  std::printf("profile of the last run on %s: %zu dispatches in %.3f ms\n",
              kiln_session_device(session), n, span / 1e6);
  if (!n)
    return;
  std::printf("  %-8s %10s %9s  %s\n", "dispatch", "ms", "% of run", "ONNX ops");
  for (size_t k = 0; k < std::min(shown, n); ++k) {
    const kiln_dispatch_info &d = infos[order[k]];
    std::string ops = *d.ops ? d.ops : std::string("(") + d.kernel + ")";
    if (ops.size() > 100)
      ops = ops.substr(0, 96) + " ...";
    std::printf("  %-8zu %10.3f %8.1f%%  %s\n", order[k], d.time_ns / 1e6,
                span > 0 ? 100 * d.time_ns / span : 0.0, ops.c_str());
  }
  if (n > shown)
    std::printf("  (%zu more)\n", n - shown);
}

/// Reads the fixed stats format of docs/npu.md: {"total_ns": T, "engines":
/// {"NAME": {"busy_ns": B, "instructions": N}, ...}}.
void printUtilization(const std::string &text) {
  double total = 0;
  const char *p = std::strstr(text.c_str(), "\"total_ns\":");
  if (!p || std::sscanf(p, "\"total_ns\": %lf", &total) != 1)
    error("malformed stats: " + text);
  std::printf("simulated time: %.3f us\n", total / 1000);
  for (const char *e : {"tensor", "vector", "scalar", "gpsimd", "dma"}) {
    std::string key = std::string("\"") + e + "\": {";
    const char *q = std::strstr(text.c_str(), key.c_str());
    double busy;
    unsigned long long n;
    if (!q || std::sscanf(q + key.size(), "\"busy_ns\": %lf, \"instructions\": %llu",
                          &busy, &n) != 2)
      error("malformed stats: " + text);
    std::printf("  %-7s %6.2f%% busy  %10.3f us  %llu instructions\n", e,
                total > 0 ? 100 * busy / total : 0.0, busy / 1000, n);
  }
}

//===--- Driver -----------------------------------------------------------===//

struct Options {
  std::string model;
  std::string device;
  uint32_t threads = 0;
  std::vector<InputSpec> inputs;
  std::vector<std::string> outputs;
  uint64_t seed = 0;
  int64_t repeat = 0; // 0: not requested.
  bool printAll = false;
  bool listDevices = false;
  std::string profile, stats;
};

Options parseArgs(int argc, char **argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&](const char *flag) -> std::optional<std::string> {
      size_t n = std::strlen(flag);
      if (arg.compare(0, n, flag) != 0)
        return std::nullopt;
      if (arg.size() == n || arg[n] != '=')
        usageError(std::string(flag) + " needs a value: " + flag + "=...");
      return arg.substr(n + 1);
    };
    if (arg == "--help" || arg == "-h") {
      std::fputs(kHelp, stdout);
      std::exit(0);
    } else if (arg == "--list-devices") {
      o.listDevices = true;
    } else if (arg == "--print-all") {
      o.printAll = true;
    } else if (auto v = value("--device")) {
      o.device = *v;
    } else if (auto v = value("--threads")) {
      auto n = parseInt(*v, 1, 4096);
      if (!n)
        usageError("--threads must be an integer in [1, 4096], got '" + *v + "'");
      o.threads = static_cast<uint32_t>(*n);
    } else if (auto v = value("--profile")) {
      o.profile = *v;
    } else if (auto v = value("--stats")) {
      o.stats = *v;
    } else if (auto v = value("--input")) {
      o.inputs.push_back(parseInputSpec(*v));
    } else if (auto v = value("--output")) {
      if (v->size() < 2 || (*v)[0] != '@')
        usageError("--output expects @FILE.npy or @FILE.pb, got '" + *v + "'");
      o.outputs.push_back(v->substr(1));
    } else if (auto v = value("--seed")) {
      auto n = parseInt(*v, 0, INT64_MAX);
      if (!n)
        usageError("--seed must be a non-negative integer, got '" + *v + "'");
      o.seed = static_cast<uint64_t>(*n);
    } else if (auto v = value("--repeat")) {
      auto n = parseInt(*v, 1, 1000000000);
      if (!n)
        usageError("--repeat must be a positive integer, got '" + *v + "'");
      o.repeat = *n;
    } else if (arg.size() > 1 && arg[0] == '-') {
      usageError("unknown option '" + arg + "'");
    } else if (o.model.empty()) {
      o.model = arg;
    } else {
      usageError("more than one model given ('" + o.model + "', '" + arg + "')");
    }
  }
  if (!o.listDevices && o.model.empty())
    usageError("no model given");
  return o;
}

void listDevices() {
  size_t n = kiln_device_count();
  if (!n)
    std::printf("no devices (the runtime was built without drivers)\n");
  for (size_t i = 0; i < n; ++i) {
    kiln_device_info d;
    check(kiln_device_info_get(i, &d));
    // Unavailable devices' descriptions start with "unavailable: <why>".
    std::printf("%-12s %s%s\n", d.name, d.available ? "available: " : "",
                d.description);
  }
}

struct Handles {
  kiln_artifact *artifact = nullptr;
  kiln_session *session = nullptr;
  ~Handles() {
    kiln_session_release(session);
    kiln_artifact_release(artifact);
  }
};

void run(const Options &o) {
  Handles h;
  check(kiln_artifact_open(o.model.c_str(), &h.artifact));
  size_t nIn = kiln_artifact_input_count(h.artifact);
  std::vector<kiln_tensor_info> ins(nIn);
  std::string inputNames, specializing;
  size_t nSpecializing = 0;
  for (size_t i = 0; i < nIn; ++i) {
    check(kiln_artifact_input_info(h.artifact, i, &ins[i]));
    inputNames += (i ? ", " : "") + std::string(ins[i].name);
    if (kiln_artifact_input_specializes(h.artifact, i))
      specializing += (nSpecializing++ ? ", '" : "'") + std::string(ins[i].name) + "'";
  }
  // An artifact compiled at run time has outputs once it ran.
  auto checkOutputCount = [&](size_t nOut) {
    if (o.outputs.size() > nOut)
      error(std::to_string(o.outputs.size()) + " --output given but the model has " +
            std::to_string(nOut) + " output" + (nOut == 1 ? "" : "s"));
  };
  if (specializing.empty())
    checkOutputCount(kiln_artifact_output_count(h.artifact));

  // Resolve every spec to an input index before touching files.
  std::vector<const InputSpec *> bound(nIn, nullptr);
  size_t positional = 0;
  for (const InputSpec &spec : o.inputs) {
    size_t idx;
    if (spec.name.empty()) {
      idx = positional++;
      if (idx >= nIn)
        error("too many positional --input: the model has " +
              std::to_string(nIn) + " input" + (nIn == 1 ? "" : "s") +
              (nIn ? " (" + inputNames + ")" : ""));
    } else {
      idx = 0;
      while (idx < nIn && spec.name != ins[idx].name)
        ++idx;
      if (idx == nIn)
        error("no input named '" + spec.name + "' (inputs: " +
              (nIn ? inputNames : "none") + ")");
    }
    if (bound[idx])
      error("input '" + std::string(ins[idx].name) + "' is given twice ('" +
            bound[idx]->text + "' and '" + spec.text + "')");
    bound[idx] = &spec;
  }
  for (size_t i = 0; i < nIn && !o.inputs.empty(); ++i)
    if (!bound[i])
      error("no --input for '" + std::string(ins[i].name) + "' (inputs: " +
            inputNames + "); give every input, or none for random inputs");
  if (o.inputs.empty() && !specializing.empty())
    error((nSpecializing > 1 ? "inputs " + specializing + " decide" : "input " + specializing +
                                                                      " decides") +
          " what is compiled (by value, or by a shape with symbolic dims), so the model "
          "cannot run on random inputs: give every input with --input (or bind or pin " +
          (nSpecializing > 1 ? "those" : "it") +
          " with kiln-compile --input-value / --input-shape)");

  // Utilization is read back from the stats file, so ask for one whenever
  // a profile is wanted; removing stale files tells "not written" apart.
  std::string statsPath = o.stats;
  bool tempStats = statsPath.empty() && !o.profile.empty();
  if (tempStats)
    statsPath = tempStatsPath();
  for (const std::string &f : {o.profile, statsPath})
    if (!f.empty())
      std::remove(f.c_str());
  kiln_session_options opts{o.threads, o.profile.empty() ? nullptr : o.profile.c_str(),
                            statsPath.empty() ? nullptr : statsPath.c_str()};
  check(kiln_session_create(h.artifact, o.device.empty() ? nullptr : o.device.c_str(),
                            &opts, &h.session));

  Rng rng{o.seed};
  if (o.inputs.empty() && nIn)
    std::printf("no --input given: using random inputs (seed %llu)\n",
                static_cast<unsigned long long>(o.seed));
  for (size_t i = 0; i < nIn; ++i) {
    npy::Array a = bound[i] ? loadInput(*bound[i], ins[i]) : randomInput(ins[i], rng);
    if (kiln_session_set_input(h.session, ins[i].name, a.dtype,
                               static_cast<uint32_t>(a.shape.size()),
                               a.shape.data(), a.data.data(),
                               a.data.size()) != KILN_OK)
      error(std::string(kiln_last_error()) +
            (bound[i] && !bound[i]->npy.empty() ? " (from " + bound[i]->npy + ")"
                                                : ""));
  }

  std::vector<double> times;
  for (int64_t r = 0; r < std::max<int64_t>(o.repeat, 1); ++r) {
    auto t0 = std::chrono::steady_clock::now();
    check(kiln_session_run(h.session));
    auto t1 = std::chrono::steady_clock::now();
    times.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
  }

  size_t nOut = kiln_session_output_count(h.session);
  checkOutputCount(nOut);
  std::vector<kiln_tensor_info> outs(nOut);
  for (size_t i = 0; i < nOut; ++i) {
    // The run's shape: data-dependent dims are known only now.
    check(kiln_session_output_info(h.session, i, &outs[i]));
    npy::Array a;
    a.dtype = outs[i].dtype;
    a.shape.assign(outs[i].dims, outs[i].dims + outs[i].rank);
    size_t bytes = kiln_dtype_size(a.dtype);
    for (int64_t d : a.shape)
      bytes *= static_cast<size_t>(d);
    a.data.resize(bytes);
    check(kiln_session_output_read(h.session, i, a.data.data(), a.data.size()));
    printOutput(outs[i], a.data, o.printAll);
    if (i < o.outputs.size()) {
      const std::string &path = o.outputs[i];
      std::string err = kiln::tensor_proto::hasTensorProtoExtension(path)
                            ? kiln::tensor_proto::write(path, a, outs[i].name)
                            : npy::write(path, a);
      if (!err.empty())
        error(err);
    }
  }
  if (o.repeat) {
    std::sort(times.begin(), times.end());
    double median = times.size() % 2 ? times[times.size() / 2]
                                     : (times[times.size() / 2 - 1] +
                                        times[times.size() / 2]) / 2;
    std::printf("latency over %zu runs: min=%.4g ms median=%.4g ms\n",
                times.size(), times.front(), median);
  }
  if (!statsPath.empty()) {
    std::string text = readText(statsPath);
    if (tempStats)
      std::remove(statsPath.c_str());
    if (text.empty()) {
      std::printf("device %s records no profile\n", kiln_session_device(h.session));
      return;
    }
    printSlowest(h.session);
    // The npu's stats add what each engine did.
    if (text.find("\"engines\"") != std::string::npos)
      printUtilization(text);
  }
}

} // namespace

int main(int argc, char **argv) {
  try {
    Options o = parseArgs(argc, argv);
    if (o.listDevices) {
      listDevices();
      return 0;
    }
    run(o);
    return 0;
  } catch (const Failure &f) {
    std::fflush(stdout);
    std::fprintf(stderr, "kiln-run: error: %s\n", f.message.c_str());
    return f.code;
  } catch (const std::exception &e) {
    std::fflush(stdout);
    std::fprintf(stderr, "kiln-run: error: %s\n", e.what());
    return 1;
  }
}

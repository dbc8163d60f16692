//===- specialize.cpp - Compile an artifact for the inputs of a run -------===//
//
// Some graph inputs decide shapes or control flow (Reshape's shape, Reduce*
// axes, Slice starts, a Loop's trip count), and some have symbolic dims.
// kiln-compile cannot compile such a model until their values or shapes are
// known, so it writes an artifact holding the model and its command line
// instead of code. A session over it compiles the model for each distinct
// value and shape of those inputs by running kiln-compile with them bound
// (--input-value) and pinned (--input-shape), once each: results are kept in
// a cache directory keyed by the artifact's checksum, the compiler binary and
// the inputs. The runtime itself links no compiler; it starts one as a
// process.
//
//===----------------------------------------------------------------------===//
#include "internal.h"
#include "kiln/artifact_format.h"
#include "npy.h"
#include "tensor_proto.h"

#include <atomic>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dlfcn.h>
#include <fcntl.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

using namespace kiln::rt;
using namespace kiln;

namespace {

std::string hex(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016" PRIx64, v);
  return buf;
}

/// $KILN_CACHE_DIR, else $XDG_CACHE_HOME/kiln, else ~/.cache/kiln, created
/// if missing.
kiln_status cacheDir(std::string &dir) {
  if (const char *d = std::getenv("KILN_CACHE_DIR"); d && *d)
    dir = d;
  else if (const char *x = std::getenv("XDG_CACHE_HOME"); x && *x)
    dir = std::string(x) + "/kiln";
  else if (const char *h = std::getenv("HOME"); h && *h)
    dir = std::string(h) + "/.cache/kiln";
  else
    dir = "/tmp/kiln-cache-" + std::to_string(::getuid());
  for (size_t at = 1; at <= dir.size(); ++at) {
    if (at != dir.size() && dir[at] != '/')
      continue;
    std::string prefix = dir.substr(0, at);
    if (::mkdir(prefix.c_str(), 0755) != 0 && errno != EEXIST)
      return setError(KILN_ERROR_IO, "cache directory '" + dir + "': cannot create '" +
                                         prefix + "': " + std::strerror(errno));
  }
  return KILN_OK;
}

/// $KILN_COMPILE, else the kiln-compile installed beside this library
/// (<prefix>/lib/libkiln_runtime.so -> <prefix>/bin/kiln-compile), else
/// kiln-compile from PATH.
std::string compilerPath() {
  if (const char *c = std::getenv("KILN_COMPILE"); c && *c)
    return c;
  Dl_info info;
  if (::dladdr(reinterpret_cast<void *>(&kiln_session_run), &info) && info.dli_fname) {
    std::string lib = info.dli_fname;
    size_t slash = lib.rfind('/');
    std::string dir = slash == std::string::npos ? "." : lib.substr(0, slash);
    std::string beside = dir + "/../bin/kiln-compile";
    if (::access(beside.c_str(), X_OK) == 0)
      return beside;
  }
  return "kiln-compile";
}

/// Writes `bytes` to `path` unless it exists, through a temporary file and
/// a rename so concurrent sessions never see a partial file.
std::string writeOnce(const std::string &path, const uint8_t *bytes, size_t size) {
  if (::access(path.c_str(), R_OK) == 0)
    return "";
  return npy::writeFileAtomically(path, {{bytes, size}});
}

std::string readLog(const std::string &path) {
  std::vector<uint8_t> bytes;
  npy::readFile(path, bytes);
  ::unlink(path.c_str());
  std::string text(bytes.begin(), bytes.end());
  while (!text.empty() && (text.back() == '\n' || text.back() == ' '))
    text.pop_back();
  return text;
}

/// Runs `argv` with stdout discarded and stderr in `log`; returns its exit
/// status or -1 if it could not start (errno says why).
int runCompiler(const std::vector<std::string> &argv, const std::string &log) {
  std::vector<char *> args;
  for (const std::string &a : argv)
    args.push_back(const_cast<char *>(a.c_str()));
  args.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 2, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                   0644);
  pid_t pid;
  int err = argv[0].find('/') == std::string::npos
                ? posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ)
                : posix_spawn(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (err) {
    errno = err;
    return -1;
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0)
    if (errno != EINTR)
      return -1;
  if (WIFEXITED(status))
    return WEXITSTATUS(status);
  return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

/// "i64[2]=[0, 2]": a value in messages.
std::string describeValue(const Tensor &t, const std::vector<int64_t> &dims,
                          const std::vector<uint8_t> &bytes) {
  std::string s = formatType(t.dtype, dims.data(), dims.size()) + "=[";
  size_t elem = kiln_dtype_size(t.dtype), n = elem ? bytes.size() / elem : 0;
  for (size_t i = 0; i < n && i < 8; ++i) {
    const uint8_t *p = bytes.data() + i * elem;
    char buf[32];
    int64_t iv = 0;
    switch (t.dtype) {
    case KILN_DTYPE_F32: { float f; std::memcpy(&f, p, 4); std::snprintf(buf, sizeof(buf), "%g", f); break; }
    case KILN_DTYPE_F64: { double f; std::memcpy(&f, p, 8); std::snprintf(buf, sizeof(buf), "%g", f); break; }
    case KILN_DTYPE_I8: iv = static_cast<int8_t>(*p); goto integer;
    case KILN_DTYPE_I16: { int16_t v; std::memcpy(&v, p, 2); iv = v; goto integer; }
    case KILN_DTYPE_I32: { int32_t v; std::memcpy(&v, p, 4); iv = v; goto integer; }
    case KILN_DTYPE_I64: std::memcpy(&iv, p, 8); goto integer;
    default:
      if (elem > 8) { std::snprintf(buf, sizeof(buf), "?"); break; }
      std::memcpy(&iv, p, elem); // unsigned and raw bits of the other types
    integer:
      std::snprintf(buf, sizeof(buf), "%" PRId64, iv);
    }
    s += (i ? ", " : "") + std::string(buf);
  }
  return s + (n > 8 ? ", ...]" : "]");
}

} // namespace

std::string kiln::rt::describeSpecialization(const kiln_artifact &a,
                                             const std::vector<std::vector<uint8_t>> &inputs,
                                             const std::vector<std::vector<int64_t>> &dims) {
  std::string d;
  for (const kiln_artifact::Specialization &sp : a.specializeOn) {
    const Tensor &t = a.inputs[sp.input];
    const std::vector<int64_t> &shape = dims[sp.input];
    d += (d.empty() ? "'" : ", '") + t.name + "' " +
         (sp.kinds & KILN_ART_SPECIALIZE_VALUE
              ? describeValue(t, shape, inputs[sp.input])
              : formatType(t.dtype, shape.data(), shape.size()));
  }
  return d;
}

kiln_status kiln::rt::compileFor(const kiln_artifact &a,
                                 const std::vector<std::vector<uint8_t>> &inputs,
                                 const std::vector<std::vector<int64_t>> &dims,
                                 std::string &path) {
  std::string dir;
  if (kiln_status st = cacheDir(dir); st != KILN_OK)
    return st;
  // The key: the generic artifact's checksum (the model and the command
  // line), the compiler (a rebuilt one may compile differently), and each
  // specializing input's shape and, where it decides, value.
  uint64_t sum;
  std::memcpy(&sum, static_cast<const uint8_t *>(a.map) + offsetof(kiln_art_header, checksum),
              sizeof(sum));
  uint64_t key = kiln_art_fnv1a(KILN_ART_FNV_OFFSET_BASIS, &sum, sizeof(sum));
  std::string compiler = compilerPath();
  struct stat st{};
  ::stat(compiler.c_str(), &st);
  int64_t stamp[2] = {static_cast<int64_t>(st.st_size),
                      static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec};
  key = kiln_art_fnv1a(key, compiler.data(), compiler.size());
  key = kiln_art_fnv1a(key, stamp, sizeof(stamp));
  for (const kiln_artifact::Specialization &sp : a.specializeOn) {
    uint64_t rank = dims[sp.input].size();
    key = kiln_art_fnv1a(key, &rank, sizeof(rank));
    key = kiln_art_fnv1a(key, dims[sp.input].data(), rank * sizeof(int64_t));
    if (sp.kinds & KILN_ART_SPECIALIZE_VALUE)
      key = kiln_art_fnv1a(key, inputs[sp.input].data(), inputs[sp.input].size());
  }
  std::string base = dir + "/" + hex(key);
  path = base + ".kiln";
  if (::access(path.c_str(), R_OK) == 0)
    return KILN_OK;

  std::string model = dir + "/" + hex(sum) + ".onnx";
  if (std::string err = writeOnce(model, a.sourceModel, a.sourceModelSize); !err.empty())
    return setError(KILN_ERROR_IO, "writing the model to compile: " + err);
  std::vector<std::string> argv{compiler, model};
  argv.insert(argv.end(), a.sourceArgs.begin(), a.sourceArgs.end());
  for (const kiln_artifact::Specialization &sp : a.specializeOn) {
    const Tensor &t = a.inputs[sp.input];
    const std::vector<int64_t> &shape = dims[sp.input];
    if (sp.kinds & KILN_ART_SPECIALIZE_SHAPE) {
      std::string spec;
      for (int64_t d : shape)
        spec += (spec.empty() ? "" : "x") + std::to_string(d);
      argv.push_back("--input-shape=" + t.name + "=" + (spec.empty() ? "scalar" : spec));
    }
    if (sp.kinds & KILN_ART_SPECIALIZE_VALUE) {
      npy::Array arr{t.dtype, shape, inputs[sp.input]};
      std::string pb = base + "." + std::to_string(sp.input) + ".pb";
      if (std::string err = tensor_proto::write(pb, arr, t.name); !err.empty())
        return setError(KILN_ERROR_IO, "writing the value of input '" + t.name + "': " + err);
      argv.push_back("--input-value=" + t.name + "=@" + pb);
    }
  }
  // Written under a name of this compile's own (sessions in other threads
  // and processes may be compiling the same values): a failed or concurrent
  // compile never leaves a partial artifact under the cache name.
  static std::atomic<uint64_t> compiles{0};
  std::string own = std::to_string(::getpid()) + "-" + std::to_string(compiles++);
  std::string tmp = base + ".tmp" + own + ".kiln";
  argv.insert(argv.end(), {"-o", tmp});
  std::string log = base + ".log" + own;
  int rc = runCompiler(argv, log);
  std::string text = readLog(log);
  if (rc != 0) {
    ::unlink(tmp.c_str());
    if (rc < 0)
      return setError(KILN_ERROR_UNAVAILABLE, "cannot run the compiler '" + argv[0] +
                                                  "' (set KILN_COMPILE): " +
                                                  std::strerror(errno));
    // Messages name the model as the user gave it, not the cache's copy.
    const std::string prefix = "kiln-compile: error: ";
    for (size_t at; (at = text.find(prefix)) != std::string::npos;)
      text.erase(at, prefix.size());
    for (size_t at; (at = text.find(model)) != std::string::npos;)
      text.replace(at, model.size(), a.sourceModelName);
    return setError(KILN_ERROR_INVALID_ARGUMENT, text.empty() ? "kiln-compile failed (exit " +
                                                                    std::to_string(rc) + ")"
                                                              : text);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return setError(KILN_ERROR_IO, "moving the compiled artifact to '" + path +
                                       "': " + std::strerror(err));
  }
  return KILN_OK;
}

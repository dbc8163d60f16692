//===- kiln-run - Run a compiled .kiln artifact ---------------------------===//
//
// Binds inputs from .npy files, ONNX TensorProto (.pb) files, literals or
// seeded random data, runs, and summarizes or saves the outputs. Errors
// print one line and exit 1 (2 for command-line misuse); nothing here should
// be able to crash. Parsing, codecs and reports live in runtime/tooling;
// this file is the command line and the order of things.
//
//===----------------------------------------------------------------------===//
#include "inputs.h"
#include "kiln/runtime.h"
#include "npy.h"
#include "report.h"
#include "tensor_proto.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <unistd.h>
#include <vector>

namespace npy = kiln::npy;
using namespace kiln::tooling;

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

/// Turns a spec into data for input `info`.
npy::Array loadInput(const InputSpec &spec, const kiln_tensor_info &info) {
  npy::Array a;
  std::string err = spec.file.empty() ? literalTensor(spec, info.name, a)
                                      : readTensorFile(spec.file, a);
  if (!err.empty())
    error(err);
  return a;
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

void printSlowest(kiln_session *session) {
  size_t n = kiln_session_dispatch_count(session);
  std::vector<kiln_dispatch_info> infos(n);
  for (size_t i = 0; i < n; ++i) {
    check(kiln_session_dispatch_info(session, i, &infos[i]));
    if (infos[i].time_ns < 0)
      return;
  }
  std::fputs(slowestDispatches(kiln_session_device(session), infos).c_str(),
             stdout);
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
      if (std::string err = parseInputSpec(*v, o.inputs.emplace_back());
          !err.empty())
        usageError(err);
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
  std::string specializing;
  size_t nSpecializing = 0;
  for (size_t i = 0; i < nIn; ++i) {
    check(kiln_artifact_input_info(h.artifact, i, &ins[i]));
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
  std::vector<const InputSpec *> bound;
  if (std::string err = bindInputs(o.inputs, ins, bound); !err.empty())
    error(err);
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
    npy::Array a = bound[i] ? loadInput(*bound[i], ins[i]) : randomTensor(ins[i], rng);
    if (kiln_session_set_input(h.session, ins[i].name, a.dtype,
                               static_cast<uint32_t>(a.shape.size()),
                               a.shape.data(), a.data.data(),
                               a.data.size()) != KILN_OK)
      error(std::string(kiln_last_error()) +
            (bound[i] && !bound[i]->file.empty() ? " (from " + bound[i]->file + ")"
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
    std::fputs(summarizeOutput(outs[i], a.data, o.printAll).c_str(), stdout);
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
    if (text.find("\"engines\"") != std::string::npos) {
      std::string err;
      std::fputs(engineUtilization(text, err).c_str(), stdout);
      if (!err.empty())
        error(err);
    }
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

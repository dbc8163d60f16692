//===- run_args.cpp - kiln-run's command line -----------------------------===//
#include "run_args.h"

#include <cctype>
#include <cstring>
#include <optional>
#include <unistd.h>

namespace kiln::tooling {

const char *const kRunHelp = R"(usage: kiln-run MODEL.kiln [options]
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
  --max-memory=BYTES refuse a model whose buffers need more memory than this
                     (K, M, G, T suffixes; default: the machine's physical
                     memory), before allocating any
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

std::optional<uint64_t> parseBytes(const std::string &text) {
  size_t digits = text.find_first_not_of("0123456789");
  if (digits == 0 || (digits != std::string::npos && digits + 1 != text.size()))
    return std::nullopt;
  unsigned shift = 0;
  if (digits != std::string::npos) {
    const char *units = "KMGT", *u = std::strchr(units, std::toupper(text.back()));
    if (!u || !*u)
      return std::nullopt;
    shift = 10 * static_cast<unsigned>(u - units + 1);
  }
  auto n = parseInt(text.substr(0, digits), 0, INT64_MAX);
  if (!n || static_cast<uint64_t>(*n) > (UINT64_MAX >> shift))
    return std::nullopt;
  return static_cast<uint64_t>(*n) << shift;
}

std::string parseRunArgs(int argc, const char *const *argv, RunOptions &o) {
  o.maxMemory = static_cast<uint64_t>(sysconf(_SC_PHYS_PAGES)) *
                static_cast<uint64_t>(sysconf(_SC_PAGE_SIZE));
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    std::string err;
    // The value of `--flag=VALUE`; nothing when `arg` is another flag, or
    // when it is this one without a value (then `err` says so).
    auto value = [&](const char *flag) -> std::optional<std::string> {
      size_t n = std::strlen(flag);
      if (arg.compare(0, n, flag) != 0)
        return std::nullopt;
      if (arg.size() == n || arg[n] != '=') {
        err = std::string(flag) + " needs a value: " + flag + "=...";
        return std::nullopt;
      }
      return arg.substr(n + 1);
    };
    if (arg == "--help" || arg == "-h") {
      o.help = true;
      return "";
    } else if (arg == "--list-devices") {
      o.listDevices = true;
    } else if (arg == "--print-all") {
      o.printAll = true;
    } else if (auto v = value("--device")) {
      o.device = *v;
    } else if (auto v = value("--threads")) {
      auto n = parseInt(*v, 1, 4096);
      if (!n)
        return "--threads must be an integer in [1, 4096], got '" + *v + "'";
      o.threads = static_cast<uint32_t>(*n);
    } else if (auto v = value("--profile")) {
      o.profile = *v;
    } else if (auto v = value("--stats")) {
      o.stats = *v;
    } else if (auto v = value("--input")) {
      if (std::string e = parseInputSpec(*v, o.inputs.emplace_back()); !e.empty())
        return e;
    } else if (auto v = value("--output")) {
      if (v->size() < 2 || (*v)[0] != '@')
        return "--output expects @FILE.npy or @FILE.pb, got '" + *v + "'";
      o.outputs.push_back(v->substr(1));
    } else if (auto v = value("--seed")) {
      auto n = parseInt(*v, 0, INT64_MAX);
      if (!n)
        return "--seed must be a non-negative integer, got '" + *v + "'";
      o.seed = static_cast<uint64_t>(*n);
    } else if (auto v = value("--max-memory")) {
      auto n = parseBytes(*v);
      if (!n || !*n)
        return "--max-memory must be a positive byte count (K, M, G, T suffixes), got '" +
               *v + "'";
      o.maxMemory = *n;
    } else if (auto v = value("--repeat")) {
      auto n = parseInt(*v, 1, 1000000000);
      if (!n)
        return "--repeat must be a positive integer, got '" + *v + "'";
      o.repeat = *n;
    } else if (!err.empty()) {
      return err;
    } else if (arg.size() > 1 && arg[0] == '-') {
      return "unknown option '" + arg + "'";
    } else if (o.model.empty()) {
      o.model = arg;
    } else {
      return "more than one model given ('" + o.model + "', '" + arg + "')";
    }
  }
  if (!o.listDevices && o.model.empty())
    return "no model given";
  return "";
}

} // namespace kiln::tooling

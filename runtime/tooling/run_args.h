//===- run_args.h - kiln-run's command line ---------------------*- C++ -*-===//
//
// kiln-run's options, its --help text and the parser that fills the one
// from argv. Errors are returned as the message a user sees; kiln-run adds
// "(see kiln-run --help)" and exits 2.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_RUNTIME_TOOLING_RUN_ARGS_H
#define KILN_RUNTIME_TOOLING_RUN_ARGS_H

#include "inputs.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace kiln::tooling {

/// What `kiln-run --help` prints.
extern const char *const kRunHelp;

struct RunOptions {
  std::string model;
  std::string device;
  uint32_t threads = 0;
  std::vector<InputSpec> inputs;
  std::vector<std::string> outputs; // --output=@FILE, '@' dropped.
  uint64_t seed = 0;
  int64_t repeat = 0; // 0: not requested.
  uint64_t maxMemory; // --max-memory; the machine's physical memory by default.
  bool printAll = false;
  bool listDevices = false;
  bool help = false; // --help or -h: nothing after it was read.
  std::string profile, stats;
};

/// `text` as a byte count with an optional K, M, G or T suffix (powers of
/// 1024); nothing when it is not one.
std::optional<uint64_t> parseBytes(const std::string &text);

/// Parses kiln-run's arguments (argv[0] is the program) into `o`; "" or
/// what is wrong, for the first argument that is. --help stops parsing.
std::string parseRunArgs(int argc, const char *const *argv, RunOptions &o);

} // namespace kiln::tooling

#endif // KILN_RUNTIME_TOOLING_RUN_ARGS_H

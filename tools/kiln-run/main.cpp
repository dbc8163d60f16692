//===- kiln-run - Run a compiled .kiln artifact ---------------------------===//
//
// Binds inputs from .npy files, ONNX TensorProto (.pb) files, literals or
// seeded random data, runs, and summarizes or saves the outputs. Errors
// print one line and exit 1 (2 for command-line misuse); nothing here should
// be able to crash. The command line (options, --help), codecs, reports and
// the --profile/--stats files live in runtime/tooling; this file is the
// order of things.
//
//===----------------------------------------------------------------------===//
#include "inputs.h"
#include "kiln/runtime.h"
#include "npy.h"
#include "profile.h"
#include "report.h"
#include "run_args.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

namespace npy = kiln::npy;
using namespace kiln::tooling;

namespace {

struct Failure {
  int code;
  std::string message;
};

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

/// The last run's dispatches, in launch order.
std::vector<kiln_dispatch_info> dispatches(kiln_session *session) {
  std::vector<kiln_dispatch_info> infos(kiln_session_dispatch_count(session));
  for (size_t i = 0; i < infos.size(); ++i)
    check(kiln_session_dispatch_info(session, i, &infos[i]));
  return infos;
}

struct Handles {
  kiln_artifact *artifact = nullptr;
  kiln_session *session = nullptr;
  ~Handles() {
    kiln_session_release(session);
    kiln_artifact_release(artifact);
  }
};

void run(const RunOptions &o) {
  Handles h;
  check(kiln_artifact_open(o.model.c_str(), &h.artifact));
  size_t nIn = kiln_artifact_input_count(h.artifact);
  std::vector<kiln_tensor_info> ins(nIn);
  std::vector<std::string> specializing;
  for (size_t i = 0; i < nIn; ++i) {
    check(kiln_artifact_input_info(h.artifact, i, &ins[i]));
    if (kiln_artifact_input_specializes(h.artifact, i))
      specializing.push_back(ins[i].name);
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
    error(randomInputsRefusal(specializing));

  ProfileFiles files = ProfileFiles::prepare(o.profile, o.stats);
  kiln_session_options opts{o.threads, files.trace.empty() ? nullptr : files.trace.c_str(),
                            files.stats.empty() ? nullptr : files.stats.c_str(), o.maxMemory};
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
    if (i < o.outputs.size())
      if (std::string err = writeTensorFile(o.outputs[i], a, outs[i].name); !err.empty())
        error(err);
  }
  if (o.repeat)
    std::fputs(latencySummary(times).c_str(), stdout);
  if (!files.stats.empty()) {
    std::string text = files.takeStats(), err;
    std::fputs(profileReport(kiln_session_device(h.session),
                             text.empty() ? std::vector<kiln_dispatch_info>{}
                                          : dispatches(h.session),
                             text, err)
                   .c_str(),
               stdout);
    if (!err.empty())
      error(err);
  }
}

} // namespace

int main(int argc, char **argv) {
  try {
    RunOptions o;
    if (std::string err = parseRunArgs(argc, argv, o); !err.empty())
      throw Failure{2, err + " (see kiln-run --help)"};
    if (o.help) {
      std::fputs(kRunHelp, stdout);
      return 0;
    }
    if (o.listDevices) {
      std::string err;
      std::fputs(deviceList(err).c_str(), stdout);
      if (!err.empty())
        error(err);
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

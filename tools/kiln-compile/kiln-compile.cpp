//===- kiln-compile.cpp - ONNX model -> .kiln artifact --------------------===//
#include "kiln/Artifact/ArtifactWriter.h"
#include "kiln/artifact_format.h"
#include "kiln/Import/OnnxImporter.h"
#include "kiln/Pipeline/Pipeline.h"

#include "mlir/IR/AsmState.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Pass/PassManager.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/ToolOutputFile.h"
#include "llvm/Support/raw_ostream.h"

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <thread>

using namespace llvm;

static cl::OptionCategory category("kiln-compile options");
static cl::opt<std::string> inputPath(cl::Positional, cl::desc("<model.onnx>"), cl::Required,
                                      cl::cat(category));
static cl::opt<std::string> outputPath("o", cl::desc("Output file (default: <model>.kiln; "
                                                     "'-' for stdout with --emit of a text stage)"),
                                       cl::value_desc("path"), cl::cat(category));
static cl::list<std::string> targets("target",
                                     cl::desc("Targets to compile for, comma-separated; one "
                                              "artifact holds them all (see --list-targets)"),
                                     cl::CommaSeparated, cl::value_desc("t1,t2,..."),
                                     cl::cat(category));
static cl::opt<bool> listTargets("list-targets", cl::desc("List the compiled-in targets and exit"),
                                 cl::cat(category));
static cl::opt<bool> listOps("list-ops",
                             cl::desc("List the importer's op handlers, one 'domain op "
                                      "sinceVersion' line per registration, and exit "
                                      "(Constant, Shape, Size, ConstantOfShape and Range "
                                      "are evaluated at compile time instead)"),
                             cl::cat(category));
// The stages every target has, in pipeline order. Backends add their own
// (kiln::TargetBackend::emitStages) from BackendStage on; --help lists them
// between "asm" and "artifact" (addBackendStages).
enum Emit : int { OnnxMlir, Linalg, Dispatch, Codegen, Llvm, Asm, Artifact, BackendStage };
static cl::opt<Emit> emit(
    "emit", cl::desc("Stage to stop at and print"), cl::init(Artifact),
    cl::values(clEnumValN(OnnxMlir, "onnx-mlir", "MLIR straight from the importer"),
               clEnumValN(Linalg, "linalg", "after canonicalization and elementwise fusion"),
               clEnumValN(Dispatch, "dispatch",
                          "host schedule + bufferized kernels over workgroups"),
               clEnumValN(Codegen, "codegen", "kernels in the target's final dialects"),
               clEnumValN(Llvm, "llvm", "optimized LLVM IR of the kernels"),
               clEnumValN(Asm, "asm", "target assembly of the kernels")),
    cl::cat(category));
static cl::list<std::string> inputShapes(
    "input-shape", cl::desc("Pin an input's shape, e.g. --input-shape=x=1x3x224x224 (repeatable)"),
    cl::value_desc("NAME=DxDx..."), cl::cat(category));
static cl::list<std::string> inputValues(
    "input-value",
    cl::desc("Specialize: bind an input to a compile-time value and drop it from the "
             "signature, e.g. --input-value=axes=0,2 or --input-value=shape=@shape.pb "
             "(repeatable)"),
    cl::value_desc("NAME=@FILE.pb|V,V,..."), cl::cat(category));
static cl::list<std::string> inputSequenceLengths(
    "input-sequence-length",
    cl::desc("A sequence input's length; it is passed as tensor inputs NAME[0], NAME[1], ... "
             "(and sequence outputs come out as NAME[0], ...), e.g. "
             "--input-sequence-length=seq=3 (repeatable)"),
    cl::value_desc("NAME=N"), cl::cat(category));
static cl::list<std::string> absentInputs(
    "input-absent",
    cl::desc("An optional input that is empty (a present one is passed as its contents; "
             "repeatable)"),
    cl::value_desc("NAME"), cl::cat(category));
static cl::opt<std::string> cpu("cpu", cl::desc("CPU to tune for: 'native' (default, the host), "
                                                "'generic', or an LLVM CPU name (x86-64-v3, ...)"),
                                cl::init("native"), cl::cat(category));
static cl::opt<std::string> triple("target-triple",
                                   cl::desc("LLVM triple to cross-compile for, e.g. "
                                            "aarch64-linux-gnu (default: host)"),
                                   cl::cat(category));
static cl::opt<int64_t> maxWorkgroups(
    "max-workgroups",
    cl::desc("Upper bound on workgroups per dispatch (default: the target's; cpu 64)"),
    cl::init(0), cl::cat(category));
static cl::opt<bool> specializeAtRun(
    "specialize-at-run",
    cl::desc("When graph inputs decide shapes or control flow (Reshape's shape, Reduce* axes, "
             "Slice starts, a Loop's trip count...) and no --input-value binds them, or have "
             "symbolic dims that no --input-shape pins, write an artifact holding the model "
             "that the runtime compiles for the values and shapes of each run (default: true; "
             "false makes it an error)"),
    cl::init(true), cl::cat(category));
static cl::opt<std::string> maxTensorBytes(
    "max-tensor-bytes",
    cl::desc("Refuse a model in which one tensor of static shape would hold more bytes than "
             "this (K, M, G, T suffixes; default 16G)"),
    cl::value_desc("BYTES"), cl::init("16G"), cl::cat(category));
static cl::opt<int64_t> maxLoopIterations(
    "max-loop-iterations",
    cl::desc("Refuse a Loop or Scan that runs more iterations than this (they are unrolled; "
             "default 4096)"),
    cl::init(4096), cl::cat(category));
static cl::opt<int64_t> maxNodes(
    "max-nodes",
    cl::desc("Refuse a model that imports more nodes than this, unrolled bodies counting once "
             "per iteration (default 200000, about 45 s of import)"),
    cl::init(200000), cl::cat(category));
static cl::opt<unsigned> maxSeconds(
    "max-seconds",
    cl::desc("Stop with an error, writing nothing, when compiling has taken longer than this "
             "many seconds (default 0: no limit)"),
    cl::value_desc("SECONDS"), cl::init(0), cl::cat(category));
static cl::opt<bool> verbose("v", cl::desc("Print each stage as it runs, with timings"),
                             cl::cat(category));

/// Set by whichever comes first: --max-seconds running out, or output
/// starting. Once anything is being written the limit no longer applies: a
/// file cut off half way is worse than a late one, and writing is quick.
static std::atomic<bool> settled{false};

/// Called before anything is written. If the time limit ran out first, the
/// watchdog is ending the process: wait for it.
static void startOutput() {
  if (settled.exchange(true))
    for (;;)
      std::this_thread::sleep_for(std::chrono::hours(1));
}

/// --max-seconds: a detached thread that ends the process unless output has
/// started by then. The pipeline has no point at which to stop it sooner,
/// and nothing has been written that would need cleaning up.
static void startWatchdog() {
  if (maxSeconds == 0)
    return;
  std::thread([] {
    std::this_thread::sleep_for(std::chrono::seconds(maxSeconds));
    if (settled.exchange(true))
      return;
    errs() << "kiln-compile: error: " << inputPath << ": compiling took longer than "
           << maxSeconds << " s (--max-seconds); nothing was written\n";
    errs().flush();
    std::_Exit(1);
  }).detach();
}

static int fail(const Twine &msg) {
  errs() << "kiln-compile: error: " << msg << "\n";
  return 1;
}

/// A stage a backend added to --emit, and the backend.
struct OwnedStage {
  kiln::EmitStage stage;
  const kiln::TargetBackend *owner;
};
/// Every backend's stages, in target name order; --emit=BackendStage+i is the
/// i-th. Filled once, before the command line is parsed (the parser keeps
/// references to the names and descriptions).
static std::vector<OwnedStage> backendStages;

static void addBackendStages() {
  for (const std::string &name : kiln::registeredTargetNames()) {
    const kiln::TargetBackend *backend = kiln::lookupTargetBackend(name);
    for (kiln::EmitStage &stage : backend->emitStages()) {
      for (const OwnedStage &other : backendStages)
        if (other.stage.name == stage.name)
          report_fatal_error("kiln-compile: targets '" + other.owner->name() + "' and '" +
                             name + "' both add --emit=" + stage.name);
      backendStages.push_back({std::move(stage), backend});
    }
  }
  for (size_t i = 0; i < backendStages.size(); ++i)
    emit.getParser().addLiteralOption(backendStages[i].stage.name,
                                      static_cast<Emit>(BackendStage + i),
                                      backendStages[i].stage.description);
  emit.getParser().addLiteralOption("artifact", Artifact, "the .kiln file (default)");
}

/// The command line the runtime compiles the model with for each run's
/// values: this one without the model path, -o, -v and
/// --specialize-at-run, and with --input-value files made absolute.
static std::vector<std::string> recompileArgs(int argc, char **argv) {
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) {
    StringRef a = argv[i];
    StringRef flag = a.ltrim('-');
    if (a == inputPath.getValue() && !a.starts_with("-"))
      continue;
    if (a.starts_with("-") && (flag == "o" || flag == "v")) {
      i += flag == "o";
      continue;
    }
    if (a.starts_with("-") && (flag.starts_with("o=") || flag.starts_with("v=") ||
                               flag.starts_with("specialize-at-run")))
      continue;
    std::string joined; // "--input-value NAME=..." as one argument
    if (a.starts_with("-") && flag == "input-value" && i + 1 < argc) {
      joined = ("--input-value=" + StringRef(argv[++i])).str();
      a = joined;
      flag = a.ltrim('-');
    }
    if (a.starts_with("-") && flag.starts_with("input-value=")) {
      auto [name, value] = flag.drop_front(strlen("input-value=")).split('=');
      if (value.starts_with("@")) {
        SmallString<256> file(value.drop_front());
        sys::fs::make_absolute(file);
        args.push_back(("--input-value=" + name + "=@" + file).str());
        continue;
      }
    }
    args.push_back(a.str());
  }
  return args;
}

constexpr uint64_t kMaxSpecializedElements = 4096;

/// Writes an artifact for a model whose graph inputs `needed.valueInputs`
/// (their values) and `needed.shapeInputs` (their symbolic dims) decide what
/// gets compiled: its signature, the model and how to compile it, and no
/// code. The runtime compiles it for the values and shapes of each run.
static int writeSpecializable(const kiln::SpecializationNeeded &needed,
                              ArrayRef<std::string> targetNames,
                              std::vector<std::string> args, const std::string &outPath) {
  namespace art = kiln::artifact;
  art::Module m;
  m.producer = "kiln 0.1.0";
  m.name = sys::path::stem(inputPath).str();
  for (const auto &in : needed.signature) {
    uint64_t bytes = in.elementBytes, numel = 1;
    for (int64_t d : in.shape)
      numel *= std::max<int64_t>(d, 0); // a buffer only for fixed shapes
    bytes *= numel;
    uint32_t kinds = 0;
    if (llvm::is_contained(needed.valueInputs, in.name)) {
      kinds |= KILN_ART_SPECIALIZE_VALUE;
      // A compile per value is for shape-like inputs, not for data.
      if (numel > kMaxSpecializedElements)
        return fail(needed.message + " (it comes from input '" + in.name + "', " +
                    Twine(numel) + " elements: too large to compile for each of its values)");
    }
    if (llvm::is_contained(needed.shapeInputs, in.name))
      kinds |= KILN_ART_SPECIALIZE_SHAPE;
    m.buffers.push_back({art::BufferKind::Input, bytes, nullptr});
    art::TensorDesc t;
    t.name = in.name;
    t.dtype = static_cast<art::DType>(in.onnxType);
    t.shape.assign(in.shape.begin(), in.shape.end());
    t.buffer = m.buffers.size() - 1;
    if (kinds)
      m.specializeOn.push_back({static_cast<uint32_t>(m.inputs.size()), kinds});
    m.inputs.push_back(std::move(t));
  }
  auto model = MemoryBuffer::getFile(inputPath, /*IsText=*/false,
                                     /*RequiresNullTerminator=*/false);
  if (!model)
    return fail("cannot read '" + inputPath + "': " + model.getError().message());
  m.source.model.assign((*model)->getBufferStart(), (*model)->getBufferEnd());
  m.source.targets.assign(targetNames.begin(), targetNames.end());
  m.source.modelName = inputPath;
  m.source.args = std::move(args);
  startOutput();
  std::string err = kiln::artifact::writeArtifact(m, outPath);
  if (!err.empty())
    return fail(err);
  auto names = [](ArrayRef<std::string> list) {
    std::string s;
    for (const std::string &n : list)
      s += (s.empty() ? "'" : ", '") + n + "'";
    return s;
  };
  std::string what = needed.shapeInputs.empty()
                         ? "value of " + names(needed.valueInputs)
                         : "shape of " + names(needed.shapeInputs);
  errs() << "kiln-compile: note: " << needed.message << "\n"
         << "kiln-compile: note: wrote " << outPath << ", which the runtime compiles for each "
         << what << " it is run with; "
         << (needed.shapeInputs.empty() ? "bind them with --input-value"
                                        : "pin them with --input-shape")
         << " to compile now\n";
  return 0;
}

int main(int argc, char **argv) {
  InitLLVM init(argc, argv);
  mlir::registerAsmPrinterCLOptions();
  mlir::registerPassManagerCLOptions();
  mlir::registerMLIRContextCLOptions();
  cl::HideUnrelatedOptions({&category, &kiln::targetOptionCategory()});
  // The backends first: they add --emit stages.
  mlir::DialectRegistry registry;
  kiln::registerKilnCompiler(registry);
  addBackendStages();
  // --list-targets and --list-ops need no model: answer them before the
  // required-argument checks.
  for (int i = 1; i < argc; ++i) {
    StringRef arg = argv[i];
    if (arg == "--list-targets" || arg == "-list-targets") {
      for (const auto &t : kiln::registeredTargetNames())
        outs() << t << ": " << kiln::lookupTargetBackend(t)->description() << "\n";
      return 0;
    }
    if (arg == "--list-ops" || arg == "-list-ops") {
      for (const kiln::ImportedOp &op : kiln::importedOps())
        outs() << op.domain << " " << op.name << " " << op.sinceVersion << "\n";
      return 0;
    }
  }
  cl::ParseCommandLineOptions(
      argc, argv,
      "kiln-compile: compile an ONNX model into a .kiln artifact\n\n"
      "  kiln-compile model.onnx --target=cpu -o model.kiln\n"
      "  kiln-compile model.onnx --emit=linalg      # print an intermediate stage\n");

  if (targets.empty())
    targets.push_back("cpu");
  std::vector<const kiln::TargetBackend *> backends;
  for (const std::string &t : targets) {
    const kiln::TargetBackend *backend = kiln::lookupTargetBackend(t);
    if (!backend) {
      std::string names;
      for (const auto &n : kiln::registeredTargetNames())
        names += (names.empty() ? "" : ", ") + n;
      return fail("unknown target '" + t + "' (available: " + names + ")");
    }
    if (llvm::is_contained(backends, backend))
      return fail("target '" + t + "' is given twice");
    backends.push_back(backend);
  }
  // The backend's stage --emit names, if it names one.
  const OwnedStage *own = emit >= BackendStage ? &backendStages[emit - BackendStage] : nullptr;
  bool binaries = own && own->stage.kind == kiln::EmitStage::Kind::Files;
  bool perTargetText =
      emit == Dispatch || emit == Codegen || emit == Llvm || emit == Asm || (own && !binaries);
  if (perTargetText && backends.size() != 1)
    return fail("--emit of a per-target stage needs exactly one --target");
  kiln::ImportOptions importOptions;
  for (const auto &spec : inputShapes)
    if (Error e = kiln::parseInputShape(spec, importOptions))
      return fail(toString(std::move(e)));
  for (const auto &spec : inputValues)
    if (Error e = kiln::parseInputValue(spec, importOptions))
      return fail(toString(std::move(e)));
  for (const auto &spec : inputSequenceLengths)
    if (Error e = kiln::parseInputSequenceLength(spec, importOptions))
      return fail(toString(std::move(e)));
  for (const auto &name : absentInputs)
    importOptions.absentInputs[name] = true;
  Expected<uint64_t> tensorBytes = kiln::parseByteCount(maxTensorBytes);
  if (!tensorBytes)
    return fail("--max-tensor-bytes: " + toString(tensorBytes.takeError()));
  if (maxLoopIterations < 1 || maxNodes < 1)
    return fail("--max-loop-iterations and --max-nodes must be at least 1");
  importOptions.maxTensorBytes = *tensorBytes;
  importOptions.maxLoopIterations = maxLoopIterations;
  importOptions.maxNodes = maxNodes;
  // Backends read their own options (targetOptionCategory) themselves.
  kiln::TargetOptions targetOptions;
  targetOptions.cpu = cpu;
  targetOptions.triple = triple;
  targetOptions.maxWorkgroups = maxWorkgroups;

  startWatchdog();
  auto start = std::chrono::steady_clock::now();
  auto step = [&](StringRef what) {
    if (!verbose)
      return;
    double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    errs() << format("[kiln %8.1f ms] ", ms) << what << "\n";
  };

  mlir::MLIRContext context(registry, mlir::MLIRContext::Threading::DISABLED);
  context.loadAllAvailableDialects();
  step("importing " + inputPath.getValue());
  auto imported = kiln::importOnnxFile(context, inputPath, importOptions);

  bool textStage = emit != Artifact && !binaries;
  std::string outPath = outputPath;
  if (binaries && outPath.empty())
    return fail("--emit=" + own->stage.name + " writes binaries: it needs -o <folder>");
  if (outPath.empty())
    outPath = textStage ? "-" : (sys::path::parent_path(inputPath) +
                                 (sys::path::parent_path(inputPath).empty() ? "" : "/") +
                                 sys::path::stem(inputPath) + ".kiln")
                                    .str();

  if (!imported) {
    std::unique_ptr<kiln::SpecializationNeeded> needed;
    Error e = handleErrors(imported.takeError(),
                           [&](std::unique_ptr<kiln::SpecializationNeeded> n) {
                             needed = std::move(n);
                           });
    if (e)
      return fail(toString(std::move(e)));
    // (The importer's message already says how to pin a symbolic dim.)
    std::string hint;
    for (const std::string &n : needed->valueInputs)
      hint += (hint.empty() ? " (bind it: " : " ") + ("--input-value=" + n + "=...");
    hint += hint.empty() ? "" : ")";
    if (emit != Artifact || !specializeAtRun)
      return fail(needed->message + hint);
    if (needed->externalData)
      return fail(needed->message + " (the model has external data, so the artifact cannot "
                                    "carry it for compiling at run time)" + hint);
    step("inputs decide shapes: writing an artifact that compiles at run time");
    // The drivers the compiled artifact's executables will be for.
    std::vector<std::string> targetNames;
    for (const kiln::TargetBackend *backend : backends)
      targetNames.push_back(backend->driverName().str());
    return writeSpecializable(*needed, targetNames, recompileArgs(argc, argv), outPath);
  }
  mlir::ModuleOp module = **imported;
  if (failed(mlir::verify(module)))
    return fail("internal error: imported IR does not verify");
  auto printModule = [&](mlir::Operation *op) -> int {
    startOutput();
    std::error_code ec;
    ToolOutputFile out(outPath, ec, sys::fs::OF_Text);
    if (ec)
      return fail("cannot write '" + outPath + "': " + ec.message());
    // Every stage ran under the verifier already.
    op->print(out.os(), mlir::OpPrintingFlags().assumeVerified());
    out.keep();
    return 0;
  };
  if (emit == OnnxMlir)
    return printModule(module);

  auto runStage = [&](mlir::Operation *op, StringRef name,
                      function_ref<void(mlir::OpPassManager &)> build) {
    step(name);
    mlir::PassManager pm(&context, op->getName().getStringRef());
    if (failed(mlir::applyPassManagerCLOptions(pm)))
      return false;
    build(pm);
    return succeeded(pm.run(op));
  };
  // Dispatches are formed once for every target of the artifact.
  bool fusePadding = llvm::all_of(backends, [](const kiln::TargetBackend *b) {
    return b->fusesPaddingIntoConsumers();
  });
  if (!runStage(module, "linalg: canonicalize and fuse elementwise ops",
                [&](mlir::OpPassManager &pm) { kiln::buildLinalgPipeline(pm, fusePadding); }))
    return fail("the linalg stage failed (see the diagnostics above)");
  if (emit == Linalg)
    return printModule(module);
  if (!runStage(module, "dispatch: form dispatches",
                [&](mlir::OpPassManager &pm) {
                  int64_t panel = backends.empty() ? 0 : backends[0]->constantPanelWidth(targetOptions);
                  for (const kiln::TargetBackend *b : backends)
                    if (b->constantPanelWidth(targetOptions) != panel)
                      panel = 0;
                  kiln::buildDispatchPipeline(pm, fusePadding, panel);
                }))
    return fail("the dispatch stage failed (see the diagnostics above)");

  auto schedule = kiln::buildSchedule(module);
  if (!schedule)
    return fail(toString(schedule.takeError()));
  if (llvm::all_of(backends, [](const kiln::TargetBackend *b) { return b->writesWholeResults(); }))
    kiln::planTransientBuffers(schedule->module);
  step((Twine("schedule: ") + Twine(schedule->module.dispatches.size()) + " dispatches, " +
        Twine(schedule->module.buffers.size()) + " buffers")
           .str());

  // Binaries are written target by target, as each is compiled.
  if (binaries)
    startOutput();
  if (binaries && sys::fs::create_directories(outPath))
    return fail("cannot create the folder '" + outPath + "'");
  if (schedule->module.dispatches.empty()) {
    // Every output is an input or a constant: no target has code to make.
    if (emit == Dispatch)
      return printModule(module);
    if (textStage)
      return fail("the model has no kernels (its outputs are inputs or constants)");
    if (binaries) {
      errs() << "kiln-compile: note: the model has no kernels; no files written\n";
      return 0;
    }
    backends.clear();
  }
  for (const kiln::TargetBackend *backend : backends) {
    std::string target = backend->name().str();
    // Each target tiles its own copy of the kernels.
    mlir::OwningOpRef<mlir::ModuleOp> copy = module.clone();
    // Dispatches exist, so the executable module does.
    mlir::ModuleOp executable = kiln::getExecutableModule(*copy);
    kiln::KernelOptions kernelOptions = backend->kernelOptions(targetOptions);
    if (!runStage(executable, "kernels: tile onto " + target + " workgroups, bufferize",
                  [&](mlir::OpPassManager &pm) { kiln::buildKernelPipeline(pm, kernelOptions); }))
      return fail("the kernel stage for '" + target + "' failed (see the diagnostics above)");
    if (emit == Dispatch)
      return printModule(*copy);
    kiln::KernelGrids grids = kiln::collectKernelGrids(executable);
    if (!runStage(executable, "codegen: lower kernels for " + target,
                  [&](mlir::OpPassManager &pm) {
                    backend->buildCodegenPipeline(pm, targetOptions);
                  }))
      return fail("code generation for '" + target + "' failed (see the diagnostics above)");
    if (emit == Codegen)
      return printModule(executable);
    if (own && !binaries && own->owner != backend)
      return fail("--emit=" + own->stage.name + " needs --target=" + own->owner->name());
    if (emit == Llvm || emit == Asm || (own && !binaries)) {
      step(emit == Llvm ? "llvm: translate and optimize" : "asm: emit assembly");
      std::string stage = emit == Llvm ? "llvm" : emit == Asm ? "asm" : own->stage.name;
      auto text = backend->emitText(executable, stage, targetOptions);
      if (!text)
        return fail(toString(text.takeError()));
      startOutput();
      std::error_code ec;
      ToolOutputFile out(outPath, ec, sys::fs::OF_Text);
      if (ec)
        return fail("cannot write '" + outPath + "': " + ec.message());
      out.os() << *text;
      out.keep();
      return 0;
    }

    step("serialize: build the " + target + " executables");
    auto exes = backend->serialize(executable, targetOptions, grids);
    if (!exes)
      return fail(toString(exes.takeError()));
    for (kiln::artifact::Executable &exe : *exes) {
      step("  " + target + ": " + exe.format + ", " + std::to_string(exe.image.size()) +
           " bytes");
      if (binaries) {
        if (!StringRef(exe.format).starts_with(own->stage.formatPrefix))
          continue;
        std::string file = (outPath + "/" + sys::path::stem(inputPath) + "." + exe.format + "." +
                            own->stage.extension)
                               .str();
        std::error_code ec;
        ToolOutputFile out(file, ec, sys::fs::OF_None);
        if (ec)
          return fail("cannot write '" + file + "': " + ec.message());
        out.os().write(reinterpret_cast<const char *>(exe.image.data()), exe.image.size());
        out.keep();
        outs() << file << "\n";
        continue;
      }
      if (Error e = kiln::attachExecutable(*schedule, std::move(exe)))
        return fail(toString(std::move(e)));
    }
  }
  if (binaries)
    return 0;
  step("write " + outPath);
  startOutput();
  std::string err = kiln::artifact::writeArtifact(schedule->module, outPath);
  if (!err.empty())
    return fail(err);
  step("done");
  return 0;
}

//===- kiln-compile.cpp - ONNX model -> .kiln artifact --------------------===//
#include "kiln/Import/OnnxImporter.h"
#include "kiln/Pipeline/Pipeline.h"

#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Pass/PassManager.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/ToolOutputFile.h"
#include "llvm/Support/raw_ostream.h"

#include <chrono>

using namespace llvm;

static cl::OptionCategory category("kiln-compile options");
static cl::opt<std::string> inputPath(cl::Positional, cl::desc("<model.onnx>"), cl::Required,
                                      cl::cat(category));
static cl::opt<std::string> outputPath("o", cl::desc("Output file (default: <model>.kiln; "
                                                     "'-' for stdout with --emit of a text stage)"),
                                       cl::value_desc("path"), cl::cat(category));
static cl::opt<std::string> target("target", cl::desc("Target to compile for (see --list-targets)"),
                                   cl::init("cpu"), cl::cat(category));
static cl::opt<bool> listTargets("list-targets", cl::desc("List the compiled-in targets and exit"),
                                 cl::cat(category));
enum class Emit { OnnxMlir, Linalg, Dispatch, Codegen, Llvm, Asm, Artifact };
static cl::opt<Emit> emit(
    "emit", cl::desc("Stage to stop at and print"), cl::init(Emit::Artifact),
    cl::values(clEnumValN(Emit::OnnxMlir, "onnx-mlir", "MLIR straight from the importer"),
               clEnumValN(Emit::Linalg, "linalg", "after canonicalization and elementwise fusion"),
               clEnumValN(Emit::Dispatch, "dispatch",
                          "host schedule + bufferized kernels over workgroups"),
               clEnumValN(Emit::Codegen, "codegen", "kernels in the target's final dialects"),
               clEnumValN(Emit::Llvm, "llvm", "optimized LLVM IR of the kernels"),
               clEnumValN(Emit::Asm, "asm", "target assembly of the kernels"),
               clEnumValN(Emit::Artifact, "artifact", "the .kiln file (default)")),
    cl::cat(category));
static cl::list<std::string> inputShapes(
    "input-shape", cl::desc("Pin an input's shape, e.g. --input-shape=x=1x3x224x224 (repeatable)"),
    cl::value_desc("NAME=DxDx..."), cl::cat(category));
static cl::opt<std::string> cpu("cpu", cl::desc("CPU to tune for: 'native' (default, the host), "
                                                "'generic', or an LLVM CPU name (x86-64-v3, ...)"),
                                cl::init("native"), cl::cat(category));
static cl::opt<std::string> triple("target-triple",
                                   cl::desc("LLVM triple to cross-compile for, e.g. "
                                            "aarch64-linux-gnu (default: host)"),
                                   cl::cat(category));
static cl::opt<int64_t> maxWorkgroups("max-workgroups",
                                      cl::desc("Upper bound on workgroups per dispatch"),
                                      cl::init(64), cl::cat(category));
static cl::opt<bool> verbose("v", cl::desc("Print each stage as it runs, with timings"),
                             cl::cat(category));

static int fail(const Twine &msg) {
  errs() << "kiln-compile: error: " << msg << "\n";
  return 1;
}

int main(int argc, char **argv) {
  InitLLVM init(argc, argv);
  mlir::registerPassManagerCLOptions();
  mlir::registerMLIRContextCLOptions();
  cl::HideUnrelatedOptions(category);
  // --list-targets needs no model: let it through before required checks.
  for (int i = 1; i < argc; ++i)
    if (StringRef(argv[i]) == "--list-targets" || StringRef(argv[i]) == "-list-targets") {
      mlir::DialectRegistry r;
      kiln::registerKilnCompiler(r);
      for (const auto &t : kiln::registeredTargetNames())
        outs() << t << ": " << kiln::lookupTargetBackend(t)->description() << "\n";
      return 0;
    }
  cl::ParseCommandLineOptions(
      argc, argv,
      "kiln-compile: compile an ONNX model into a .kiln artifact\n\n"
      "  kiln-compile model.onnx --target=cpu -o model.kiln\n"
      "  kiln-compile model.onnx --emit=linalg      # print an intermediate stage\n");

  mlir::DialectRegistry registry;
  kiln::registerKilnCompiler(registry);
  const kiln::TargetBackend *backend = kiln::lookupTargetBackend(target);
  if (!backend) {
    std::string names;
    for (const auto &t : kiln::registeredTargetNames())
      names += (names.empty() ? "" : ", ") + t;
    return fail("unknown target '" + target + "' (available: " + names + ")");
  }
  kiln::ImportOptions importOptions;
  for (const auto &spec : inputShapes)
    if (Error e = kiln::parseInputShape(spec, importOptions))
      return fail(toString(std::move(e)));
  kiln::TargetOptions targetOptions;
  targetOptions.cpu = cpu;
  targetOptions.triple = triple;
  kiln::CompileOptions options;
  options.maxWorkgroups = maxWorkgroups;

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
  if (!imported)
    return fail(toString(imported.takeError()));
  mlir::ModuleOp module = **imported;
  if (failed(mlir::verify(module)))
    return fail("internal error: imported IR does not verify");

  bool textStage = emit != Emit::Artifact;
  std::string outPath = outputPath;
  if (outPath.empty())
    outPath = textStage ? "-" : (sys::path::parent_path(inputPath) +
                                 (sys::path::parent_path(inputPath).empty() ? "" : "/") +
                                 sys::path::stem(inputPath) + ".kiln")
                                    .str();
  auto printModule = [&](mlir::Operation *op) -> int {
    std::error_code ec;
    ToolOutputFile out(outPath, ec, sys::fs::OF_Text);
    if (ec)
      return fail("cannot write '" + outPath + "': " + ec.message());
    op->print(out.os());
    out.keep();
    return 0;
  };
  if (emit == Emit::OnnxMlir)
    return printModule(module);

  auto runStage = [&](StringRef name, function_ref<void(mlir::PassManager &)> build) {
    step(name);
    mlir::PassManager pm(&context);
    if (failed(mlir::applyPassManagerCLOptions(pm)))
      return false;
    build(pm);
    return succeeded(pm.run(module));
  };
  if (!runStage("linalg: canonicalize and fuse elementwise ops",
                [](mlir::PassManager &pm) { kiln::buildLinalgPipeline(pm); }))
    return fail("the linalg stage failed (see the diagnostics above)");
  if (emit == Emit::Linalg)
    return printModule(module);
  if (!runStage("dispatch: form dispatches, tile onto workgroups, bufferize",
                [&](mlir::PassManager &pm) { kiln::buildDispatchPipeline(pm, options); }))
    return fail("the dispatch stage failed (see the diagnostics above)");
  if (emit == Emit::Dispatch)
    return printModule(module);

  auto schedule = kiln::buildSchedule(module);
  if (!schedule)
    return fail(toString(schedule.takeError()));
  step((Twine("schedule: ") + Twine(schedule->module.dispatches.size()) + " dispatches, " +
        Twine(schedule->module.buffers.size()) + " buffers")
           .str());

  if (!runStage("codegen: lower kernels for " + target, [&](mlir::PassManager &pm) {
        kiln::buildCodegenPipeline(pm, *backend, targetOptions);
      }))
    return fail("code generation for '" + target + "' failed (see the diagnostics above)");
  mlir::ModuleOp executable = kiln::getExecutableModule(module);
  if (emit == Emit::Codegen)
    return printModule(executable);
  if (emit == Emit::Llvm || emit == Emit::Asm) {
    step(emit == Emit::Llvm ? "llvm: translate and optimize" : "asm: emit assembly");
    auto text = backend->emitText(executable, emit == Emit::Llvm ? "llvm" : "asm", targetOptions);
    if (!text)
      return fail(toString(text.takeError()));
    std::error_code ec;
    ToolOutputFile out(outPath, ec, sys::fs::OF_Text);
    if (ec)
      return fail("cannot write '" + outPath + "': " + ec.message());
    out.os() << *text;
    out.keep();
    return 0;
  }

  step("serialize: build the " + target.getValue() + " executable");
  auto exe = backend->serialize(executable, targetOptions);
  if (!exe)
    return fail(toString(exe.takeError()));
  if (Error e = kiln::attachExecutable(*schedule, std::move(*exe)))
    return fail(toString(std::move(e)));
  step("write " + outPath);
  std::string err = kiln::artifact::writeArtifact(schedule->module, outPath);
  if (!err.empty())
    return fail(err);
  step("done");
  return 0;
}

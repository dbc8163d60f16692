//===- kiln-npu-gemm - Hand-scheduled GEMM on the simulated NeuronCore ----===//
//
// Generates C[M,N] (f32) = A[M,K] x B[K,N] as an npu program with the ISA
// builder, runs it on the simulator and prints Tensor Engine cycles next to
// the ideal M*N*K/(128*128). A is passed K-major (AT[K,M]) so stationary
// tiles load with K on the partitions without a transpose.
//
// The schedule (backends/npu/gemm/Gemm.h, shared with the compiler): for
// each block of NB output columns, for each 128-row m-tile, stationary
// AT[k-tile, m-tile] against B[k-tile, 512 columns], accumulating in PSUM.
// In no-overlap mode NB = N so each stationary streams all N columns, the
// fold structure SCALE-Sim uses.
//
//===----------------------------------------------------------------------===//
#include "gemm/Gemm.h"
#include "isa/Isa.h"
#include "kiln/Artifact/ArtifactWriter.h"
#include "model/MachineModel.h"
#include "sim/Simulator.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>

using namespace kiln::npu;

namespace {

struct Config {
  int64_t M = 0, N = 0, K = 0;
  bool noOverlap = false;
  DType dtype = DType::BF16;
  std::string preset = "trn1";
  bool check = false, emitAsm = false;
  std::string profile, stats, artifact;
};

[[noreturn]] void usage(const std::string &msg) {
  std::fprintf(stderr,
               "kiln-npu-gemm: %s\nusage: kiln-npu-gemm M N K "
               "[--mode=pipelined|no-overlap] [--dtype=bf16|f32] "
               "[--preset=trn1|trn2] [--check] [--emit=asm] "
               "[--profile=trace.json] [--stats=stats.json] [--artifact=gemm.kiln]\n",
               msg.c_str());
  std::exit(2);
}

bool writeFile(const std::string &path, const std::string &text) {
  FILE *f = std::fopen(path.c_str(), "wb");
  if (!f)
    return false;
  bool ok = std::fwrite(text.data(), 1, text.size(), f) == text.size();
  return std::fclose(f) == 0 && ok;
}

} // namespace

int main(int argc, char **argv) {
  Config c;
  int positional = 0;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto val = [&](const char *flag) -> const char * {
      size_t n = std::strlen(flag);
      return a.compare(0, n, flag) == 0 ? argv[i] + n : nullptr;
    };
    if (const char *v = val("--mode=")) {
      if (std::strcmp(v, "no-overlap") && std::strcmp(v, "pipelined"))
        usage("bad --mode");
      c.noOverlap = !std::strcmp(v, "no-overlap");
    } else if (const char *v = val("--dtype=")) {
      if (!std::strcmp(v, "bf16"))
        c.dtype = DType::BF16;
      else if (!std::strcmp(v, "f32"))
        c.dtype = DType::F32;
      else
        usage("bad --dtype");
    } else if (const char *v = val("--preset=")) {
      c.preset = v;
    } else if (const char *v = val("--profile=")) {
      c.profile = v;
    } else if (const char *v = val("--stats=")) {
      c.stats = v;
    } else if (const char *v = val("--artifact=")) {
      c.artifact = v;
    } else if (a == "--check") {
      c.check = true;
    } else if (a == "--emit=asm") {
      c.emitAsm = true;
    } else if (!a.empty() && a[0] != '-' && positional < 3) {
      int64_t v = std::strtoll(a.c_str(), nullptr, 10);
      (positional == 0 ? c.M : positional == 1 ? c.N : c.K) = v;
      ++positional;
    } else {
      usage("unexpected argument '" + a + "'");
    }
  }
  if (positional != 3)
    usage("need M N K");
  const MachineModel *m = findMachineModel(c.preset);
  if (!m)
    usage("unknown preset '" + c.preset + "' (have " + machineModelNames() + ")");
  GemmSpec spec;
  spec.M = c.M;
  spec.N = c.N;
  spec.K = c.K;
  spec.dtype = spec.inType = c.dtype;
  spec.noOverlap = c.noOverlap;
  GemmPlan p = planGemm(spec, *m);
  if (!p.why.empty())
    usage(p.why);
  Program prog = buildGemm(spec, p, *m);
  if (c.emitAsm) {
    std::fputs(printProgram(prog).c_str(), stdout);
    return 0;
  }
  if (!c.artifact.empty()) {
    // Inputs "at" [K, M] and "b" [K, N], output "c" [M, N] f32, one
    // dispatch of the "gemm" kernel: runnable with kiln-run --device=npu.
    namespace art = kiln::artifact;
    art::Module mod;
    mod.producer = "kiln-npu-gemm";
    mod.name = "gemm";
    art::DType in = c.dtype == DType::BF16 ? art::DType::BF16 : art::DType::F32;
    uint64_t esz = dtypeSize(c.dtype);
    mod.buffers = {{art::BufferKind::Input, uint64_t(c.K * c.M) * esz, nullptr},
                   {art::BufferKind::Input, uint64_t(c.K * c.N) * esz, nullptr},
                   {art::BufferKind::Output, uint64_t(c.M * c.N) * 4, nullptr}};
    mod.inputs = {{"at", in, {c.K, c.M}, 0}, {"b", in, {c.K, c.N}, 1}};
    mod.outputs = {{"c", art::DType::F32, {c.M, c.N}, 2}};
    Module image;
    image.kernels = {prog};
    mod.executables = {{"npu", kBinaryFormat, encodeModule(image), {art::Entry{"gemm"}}}};
    art::Dispatch d;
    d.bindings = {{0, 0}, {1, 0}, {2, 0}};
    mod.dispatches = {d};
    if (std::string err = art::writeArtifact(mod, c.artifact); !err.empty()) {
      std::fprintf(stderr, "kiln-npu-gemm: %s\n", err.c_str());
      return 1;
    }
    return 0;
  }

  unsigned esz = dtypeSize(c.dtype);
  std::vector<uint8_t> at(c.M * c.K * esz), bm(c.K * c.N * esz),
      cm(c.M * c.N * 4);
  std::vector<float> atf, bf;
  if (c.check) {
    std::mt19937 rng(1);
    std::uniform_real_distribution<float> u(-1, 1);
    auto fill = [&](std::vector<uint8_t> &buf, std::vector<float> &vals) {
      vals.resize(buf.size() / esz);
      for (size_t i = 0; i < vals.size(); ++i) {
        float v = u(rng);
        if (c.dtype == DType::BF16) {
          uint16_t h = floatToBf16(v);
          vals[i] = bf16ToFloat(h);
          std::memcpy(&buf[i * 2], &h, 2);
        } else {
          vals[i] = v;
          std::memcpy(&buf[i * 4], &v, 4);
        }
      }
    };
    fill(at, atf);
    fill(bm, bf);
  }
  HbmTensor t[3] = {{at.data(), at.size()}, {bm.data(), bm.size()},
                    {cm.data(), cm.size()}};
  SimOptions o;
  o.noOverlap = c.noOverlap;
  o.functional = c.check;
  o.trace = !c.profile.empty();
  Simulator sim(*m);
  SimResult r;
  if (std::string err = sim.run(prog, t, 3, o, r); !err.empty()) {
    std::fprintf(stderr, "kiln-npu-gemm: %s\n", err.c_str());
    return 1;
  }
  double first = r.engines[kStatTensor].firstNs,
         last = r.engines[kStatTensor].lastNs;
  double ghz = m->tensorGhz;
  double ideal = double(c.M) * c.N * c.K / (128.0 * 128.0);
  double teBusy = r.engines[kStatTensor].busyNs * ghz;
  double teSpan = (last - first) * ghz;
  double total = r.totalNs * ghz;
  std::printf("M=%lld N=%lld K=%lld dtype=%s mode=%s preset=%s "
              "te_cycles=%.0f te_span_cycles=%.0f total_cycles=%.0f "
              "ideal_cycles=%.0f te_util=%.4f total_over_ideal=%.4f "
              "instructions=%zu\n",
              (long long)c.M, (long long)c.N, (long long)c.K, name(c.dtype),
              c.noOverlap ? "no-overlap" : "pipelined", m->name, teBusy, teSpan,
              total, ideal, ideal / teSpan, total / ideal,
              prog.instructionCount());
  if (c.check) {
    double maxErr = 0, maxRef = 0;
    for (int64_t i = 0; i < c.M; ++i)
      for (int64_t j = 0; j < c.N; ++j) {
        double ref = 0;
        for (int64_t k = 0; k < c.K; ++k)
          ref += double(atf[k * c.M + i]) * bf[k * c.N + j];
        float got;
        std::memcpy(&got, &cm[(i * c.N + j) * 4], 4);
        maxErr = std::max(maxErr, std::fabs(got - ref));
        maxRef = std::max(maxRef, std::fabs(ref));
      }
    std::printf("check: max_abs_err=%.3g max_abs_ref=%.3g\n", maxErr, maxRef);
    if (maxErr > 1e-4 * std::max(1.0, maxRef) * std::sqrt(double(c.K))) {
      std::fprintf(stderr, "kiln-npu-gemm: result mismatch\n");
      return 1;
    }
  }
  if (!c.profile.empty() && !writeFile(c.profile, traceJson(r)))
    std::fprintf(stderr, "kiln-npu-gemm: cannot write %s\n", c.profile.c_str());
  if (!c.stats.empty() && !writeFile(c.stats, statsJson(r)))
    std::fprintf(stderr, "kiln-npu-gemm: cannot write %s\n", c.stats.c_str());
  return 0;
}

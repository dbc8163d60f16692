//===- kiln-npu-gemm - Hand-scheduled GEMM on the simulated NeuronCore ----===//
//
// Generates C[M,N] (f32) = A[M,K] x B[K,N] as an npu program with the ISA
// builder, runs it on the simulator and prints Tensor Engine cycles next to
// the ideal M*N*K/(128*128). A is passed K-major (AT[K,M]) so stationary
// tiles load with K on the partitions without a transpose.
//
// Schedule: for each block of NB output columns, for each 128-row m-tile:
// the stationary is AT[k-tile, m-tile], the moving operand B[k-tile, 512
// columns], accumulating over k-tiles in PSUM (one 2 KiB bank per 512
// columns); the Scalar and Vector engines take turns evacuating banks to
// SBUF and DMAs write C back. Operands are double-buffered and
// every hand-off is a semaphore; DMAs go round robin over the 16 queues. In no-overlap mode NB = N so each
// stationary streams all N columns, the fold structure SCALE-Sim uses.
//
//===----------------------------------------------------------------------===//
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

struct Plan {
  int64_t KT, MT, NB, NC, NCH, NBLK;
  bool bResident;
  int psumBuffers;
  std::string why; // Empty when the GEMM fits.
};

// Stationary tiles are prefetched up to 3 m-tiles ahead: a DMA's start-up
// is longer than one m-tile of matmuls for mid-size GEMMs.
constexpr int64_t kAtBuffers = 4;
constexpr int64_t kPieces = 4; // Loads per tile, 32 partitions each.
// C tiles are staged in SBUF until written back; stores are split finer
// than loads so one tile's store finishes within about one tile of matmuls.
constexpr int64_t kCSlots = 3;
constexpr int64_t kStorePieces = 8;

Plan plan(const Config &c, const MachineModel &m) {
  Plan p{};
  if (c.M % 128 || c.N % 128 || c.K % 128 || c.M <= 0 || c.N <= 0 || c.K <= 0) {
    p.why = "M, N and K must be positive multiples of 128";
    return p;
  }
  unsigned esz = dtypeSize(c.dtype);
  p.KT = c.K / 128;
  p.MT = c.M / 128;
  p.NC = std::min<int64_t>(c.N, 512);
  if (c.N % p.NC) {
    p.why = "N must be a multiple of 512 when larger than 512";
    return p;
  }
  int64_t cap = static_cast<int64_t>(m.sbufPartitionBytes);
  auto fits = [&](int64_t nb, bool resident) {
    int64_t b = resident ? p.KT * nb * esz : 2 * nb * esz;
    return b + kAtBuffers * p.KT * 128 * esz + kCSlots * nb * 4 <= cap;
  };
  p.NB = c.noOverlap ? c.N : std::min<int64_t>(c.N, 2048);
  while (!c.noOverlap && p.NB > p.NC && !fits(p.NB, true))
    p.NB /= 2;
  p.bResident = fits(p.NB, true);
  if (!p.bResident && !fits(p.NB, false)) {
    p.why = "operands do not fit in SBUF";
    return p;
  }
  if (p.NB * 4 > static_cast<int64_t>(m.psumPartitionBytes)) {
    p.why = "N too large for one PSUM pass";
    return p;
  }
  p.NCH = p.NB / p.NC;
  p.NBLK = c.N / p.NB;
  p.psumBuffers = p.NB * 4 * 2 <= static_cast<int64_t>(m.psumPartitionBytes) ? 2 : 1;
  return p;
}

Program build(const Config &c, const Plan &p, const MachineModel &m) {
  ProgramBuilder b("gemm");
  const DType dt = c.dtype;
  const int64_t esz = dtypeSize(dt);
  const int64_t M = c.M, N = c.N;
  // SBUF layout per partition: [B][AT x4][C staging x3].
  const int64_t bBytes = p.bResident ? p.KT * p.NB * esz : 2 * p.NB * esz;
  const int64_t atBase = bBytes, atBytes = p.KT * 128 * esz;
  const int64_t cBase = atBase + kAtBuffers * atBytes, cBytes = p.NB * 4;
  const int64_t regions = p.NCH * p.psumBuffers;

  std::vector<uint32_t> semB(p.bResident ? p.KT : 0);
  for (auto &s : semB)
    s = b.semaphore();
  uint32_t semBFree = b.semaphore();
  uint32_t semBs[2] = {b.semaphore(), b.semaphore()};
  uint32_t semBsFree[2] = {b.semaphore(), b.semaphore()};
  uint32_t semAt[kAtBuffers], semAtFree[kAtBuffers];
  for (int64_t i = 0; i < kAtBuffers; ++i) {
    semAt[i] = b.semaphore();
    semAtFree[i] = b.semaphore();
  }
  std::vector<uint32_t> semFull(regions), semFree(regions);
  for (int64_t r = 0; r < regions; ++r) {
    semFull[r] = b.semaphore();
    semFree[r] = b.semaphore();
  }
  uint32_t semCReady[kCSlots], semCFree[kCSlots];
  for (int64_t i = 0; i < kCSlots; ++i) {
    semCReady[i] = b.semaphore();
    semCFree[i] = b.semaphore();
  }

  // One round robin over all queues: the emission order below is the order
  // in which data is needed, so in-order queues never block on later work.
  unsigned nextQueue = 0;
  auto queue = [&]() -> ProgramBuilder::Stream & {
    unsigned q = nextQueue;
    nextQueue = (nextQueue + 1) % kNumDmaQueues;
    return b.on(dmaQueue(q));
  };
  auto &te = b.on(Engine::Tensor);

  // Loads rows [k0, k0+128) x cols [n0, n0+NB) of B to `sbufOff`.
  auto loadB = [&](int64_t ki, int64_t n0, int64_t sbufOff, uint32_t sem,
                   uint32_t waitSem, int64_t waitVal) {
    for (int64_t piece = 0; piece < kPieces; ++piece) {
      uint32_t p0 = static_cast<uint32_t>(piece * 32);
      auto &q = queue();
      if (waitVal > 0)
        q.wait(waitSem, waitVal);
      q.dmaCopy(AccessPattern::sbuf(p0, 32, sbufOff, dt, {{1, p.NB}}),
                AccessPattern::hbm(1, (ki * 128 + p0) * N + n0, dt,
                                   {{N, 32}, {1, p.NB}}));
      q.signal(sem);
    }
  };
  // AT[:, m-tile] -> slot: partition = k % 128, free = [k-tile][m], one
  // 3-D access pattern per piece.
  const int64_t tiles = p.NBLK * p.MT;
  auto loadAt = [&](int64_t tile) {
    int64_t mi = tile % p.MT, slot = tile % kAtBuffers,
            use = tile / kAtBuffers;
    for (int64_t piece = 0; piece < kPieces; ++piece) {
      uint32_t p0 = static_cast<uint32_t>(piece * 32);
      auto &q = queue();
      if (use)
        q.wait(semAtFree[slot], use);
      q.dmaCopy(AccessPattern::sbuf(p0, 32, atBase + slot * atBytes, dt,
                                    {{128, p.KT}, {1, 128}}),
                AccessPattern::hbm(0, p0 * M + mi * 128, dt,
                                   {{M, 32}, {128 * M, p.KT}, {1, 128}}));
      q.signal(semAt[slot]);
    }
  };

  int64_t bsUses[2] = {};
  std::vector<int64_t> regionUses(regions, 0);
  int64_t tile = 0, pair = 0, evacTurn = 0;
  loadAt(0);
  for (int64_t nb = 0; nb < p.NBLK; ++nb) {
    int64_t n0 = nb * p.NB;
    if (p.bResident)
      for (int64_t ki = 0; ki < p.KT; ++ki)
        loadB(ki, n0, ki * p.NB * esz, semB[ki], semBFree, nb);
    for (int64_t mi = 0; mi < p.MT; ++mi, ++tile) {
      int64_t slot = tile % kAtBuffers, use = tile / kAtBuffers;
      te.wait(semAt[slot], kPieces * (use + 1));
      int64_t cslot = tile % kCSlots, cuse = tile / kCSlots;
      for (int64_t ki = 0; ki < p.KT; ++ki, ++pair) {
        int64_t bOff;
        int64_t bs = pair % 2;
        if (p.bResident) {
          if (mi == 0)
            te.wait(semB[ki], kPieces * (nb + 1));
          bOff = ki * p.NB * esz;
        } else {
          int64_t u = bsUses[bs]++;
          loadB(ki, n0, bs * p.NB * esz, semBs[bs], semBsFree[bs], u);
          te.wait(semBs[bs], kPieces * (u + 1));
          bOff = bs * p.NB * esz;
        }
        // All waits before the stationary load: a wait between two matmuls
        // of one stationary would let other engines in and, in no-overlap
        // mode, split the wave.
        for (int64_t ch = 0; ch < p.NCH && ki == 0; ++ch) {
          int64_t r = (tile % p.psumBuffers) * p.NCH + ch;
          if (regionUses[r])
            te.wait(semFree[r], regionUses[r]);
        }
        te.loadStationary(AccessPattern::sbuf(
            0, 128, atBase + slot * atBytes + ki * 128 * esz, dt, {{1, 128}}));
        for (int64_t ch = 0; ch < p.NCH; ++ch) {
          int64_t r = (tile % p.psumBuffers) * p.NCH + ch;
          te.matmul(AccessPattern::psum(0, 128, r * m.psumBankBytes,
                                        DType::F32, {{1, p.NC}}),
                    AccessPattern::sbuf(0, 128, bOff + ch * p.NC * esz, dt,
                                        {{1, p.NC}}),
                    ki > 0);
          if (ki == p.KT - 1)
            te.signal(semFull[r]);
        }
        if (!p.bResident)
          te.signal(semBsFree[bs]);
      }
      te.signal(semAtFree[slot]);
      if (p.bResident && mi == p.MT - 1)
        te.signal(semBFree);

      // Evacuate PSUM to the C staging slot, alternating Scalar and Vector.
      for (int64_t ch = 0; ch < p.NCH; ++ch) {
        int64_t r = (tile % p.psumBuffers) * p.NCH + ch;
        bool onScalar = evacTurn++ % 2 == 0;
        auto &ev = b.on(onScalar ? Engine::Scalar : Engine::Vector);
        ev.wait(semFull[r], regionUses[r] + 1);
        if (cuse)
          ev.wait(semCFree[cslot], kStorePieces * cuse);
        auto src = AccessPattern::psum(0, 128, r * m.psumBankBytes, DType::F32,
                                       {{1, p.NC}});
        auto dst = AccessPattern::sbuf(0, 128,
                                       cBase + cslot * cBytes + ch * p.NC * 4,
                                       DType::F32, {{1, p.NC}});
        if (onScalar)
          ev.activation(dst, src, ActFunc::Identity);
        else
          ev.copy(dst, src);
        ev.signal(semFree[r]);
        ev.signal(semCReady[cslot]);
        ++regionUses[r];
      }
      // Prefetch the next tile's stationaries before queueing this tile's
      // stores, which wait for the evacuation.
      if (tile + 1 < tiles)
        loadAt(tile + 1);
      for (int64_t piece = 0; piece < kStorePieces; ++piece) {
        uint32_t rows = 128 / kStorePieces, p0 = static_cast<uint32_t>(piece * rows);
        auto &q = queue();
        q.wait(semCReady[cslot], p.NCH * (cuse + 1));
        q.dmaCopy(AccessPattern::hbm(2, (mi * 128 + p0) * N + n0, DType::F32,
                                     {{N, rows}, {1, p.NB}}),
                  AccessPattern::sbuf(p0, rows, cBase + cslot * cBytes,
                                      DType::F32, {{1, p.NB}}));
        q.signal(semCFree[cslot]);
      }
    }
  }
  return b.take();
}

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
  Plan p = plan(c, *m);
  if (!p.why.empty())
    usage(p.why);
  Program prog = build(c, p, *m);
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

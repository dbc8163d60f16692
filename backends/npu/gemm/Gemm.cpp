//===- Gemm.cpp - Hand-scheduled GEMM programs for the npu ----------------===//
//
// Schedule: for each block of NB output columns, for each 128-row m-tile:
// the stationary is AT[k-tile, m-tile], the moving operand B[k-tile, 512
// columns], accumulating over k-tiles in PSUM (one 2 KiB bank per 512
// columns); the Scalar and Vector engines take turns evacuating banks to
// SBUF and DMAs write C back. Operands are double-buffered and every
// hand-off is a semaphore; DMAs go round robin over the 16 queues. In
// no-overlap mode NB = N so each stationary streams all N columns, the fold
// structure SCALE-Sim uses.
//
// With f32 operands in HBM and a bf16 matmul (autocast), loads land in f32
// staging slots and GpSimd rounds them into the bf16 tiles the schedule
// uses; B must then stay resident (rounding a streamed B tile per matmul
// would make GpSimd the bottleneck).
//
//===----------------------------------------------------------------------===//
#include "gemm/Gemm.h"

#include <algorithm>
#include <vector>

namespace kiln::npu {

namespace {

// Stationary tiles are prefetched up to 3 m-tiles ahead: a DMA's start-up
// is longer than one m-tile of matmuls for mid-size GEMMs.
constexpr int64_t kAtBuffers = 4;
constexpr int64_t kPieces = 4; // Loads per tile, 32 partitions each.
// C tiles are staged in SBUF until written back; stores are split finer
// than loads so one tile's store finishes within about one tile of matmuls.
constexpr int64_t kCSlots = 3;
constexpr int64_t kStorePieces = 8;
// f32 staging slots when rounding on chip: B k-tiles and A^T tiles. A slot
// is reloaded only after GpSimd rounded it, so B takes 8 slots where they
// fit (two transfers per queue in flight hide the DMA start-up) or 4.
constexpr int64_t kMaxBStage = 8;
constexpr int64_t kAStage = 2;
// Loads per staged tile when rounding on chip, 16 partitions each: f32
// tiles are twice the bytes (8 measured best against 4 and 16).
constexpr int64_t kStagePieces = 8;

GemmSpec withDefaults(GemmSpec s) {
  if (!s.aM && !s.aK) {
    s.aM = 1;
    s.aK = s.M;
  }
  if (!s.bK && !s.bN) {
    s.bK = s.N;
    s.bN = 1;
  }
  if (!s.cM && !s.cN) {
    s.cM = s.N;
    s.cN = 1;
  }
  return s;
}

} // namespace

GemmPlan planGemm(const GemmSpec &c, const MachineModel &m) {
  GemmPlan p{};
  if (c.M % 128 || c.N % 128 || c.K % 128 || c.M <= 0 || c.N <= 0 || c.K <= 0) {
    p.why = "M, N and K must be positive multiples of 128";
    return p;
  }
  if (c.inType != c.dtype && !(c.inType == DType::F32 && c.dtype == DType::BF16)) {
    p.why = "operands can only be rounded from f32 to bf16";
    return p;
  }
  p.cast = c.inType != c.dtype;
  int64_t esz = dtypeSize(c.dtype), isz = dtypeSize(c.inType);
  p.KT = c.K / 128;
  p.MT = c.M / 128;
  p.NC = std::min<int64_t>(c.N, 512);
  if (c.N % p.NC) {
    p.why = "N must be a multiple of 512 when larger than 512";
    return p;
  }
  int64_t cap = static_cast<int64_t>(m.sbufPartitionBytes);
  auto fits = [&](int64_t nb, bool resident, int64_t bStage = 4) {
    int64_t b = resident ? p.KT * nb * esz : 2 * nb * esz;
    int64_t stage =
        p.cast ? bStage * nb * isz + kAStage * p.KT * 128 * isz : 0;
    return b + kAtBuffers * p.KT * 128 * esz + kCSlots * nb * 4 + stage <= cap;
  };
  p.NB = c.noOverlap ? c.N : std::min<int64_t>(c.N, 2048);
  while (!c.noOverlap && p.NB > p.NC && !fits(p.NB, true))
    p.NB /= 2;
  p.bResident = fits(p.NB, true);
  if (!p.bResident && (p.cast || !fits(p.NB, false))) {
    p.why = "operands do not fit in SBUF";
    return p;
  }
  if (p.NB * 4 > static_cast<int64_t>(m.psumPartitionBytes)) {
    p.why = "N too large for one PSUM pass";
    return p;
  }
  p.bStage = p.cast && fits(p.NB, true, kMaxBStage) ? kMaxBStage : 4;
  p.NCH = p.NB / p.NC;
  p.NBLK = c.N / p.NB;
  p.psumBuffers = p.NB * 4 * 2 <= static_cast<int64_t>(m.psumPartitionBytes) ? 2 : 1;
  return p;
}

Program buildGemm(const GemmSpec &spec, const GemmPlan &p, const MachineModel &m,
                  const std::string &name) {
  const GemmSpec c = withDefaults(spec);
  ProgramBuilder b(name);
  const DType dt = c.dtype, it = c.inType;
  const int64_t esz = dtypeSize(dt), isz = dtypeSize(it);
  // SBUF layout per partition: [B][AT x4][C staging x3][f32 staging].
  const int64_t bBytes = p.bResident ? p.KT * p.NB * esz : 2 * p.NB * esz;
  const int64_t atBase = bBytes, atBytes = p.KT * 128 * esz;
  const int64_t cBase = atBase + kAtBuffers * atBytes, cBytes = p.NB * 4;
  const int64_t bStBase = cBase + kCSlots * cBytes, bStBytes = p.NB * isz;
  const int64_t aStBase = bStBase + p.bStage * bStBytes, aStBytes = p.KT * 128 * isz;
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
  std::vector<uint32_t> semBSt(p.bStage), semBStFree(p.bStage);
  uint32_t semASt[kAStage] = {}, semAStFree[kAStage] = {};
  if (p.cast) {
    for (int64_t i = 0; i < p.bStage; ++i) {
      semBSt[i] = b.semaphore();
      semBStFree[i] = b.semaphore();
    }
    for (int64_t i = 0; i < kAStage; ++i) {
      semASt[i] = b.semaphore();
      semAStFree[i] = b.semaphore();
    }
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
  auto &gp = b.on(Engine::GpSimd);

  // Rows [k0, k0+128) x cols [n0, n0+NB) of B, one piece of 32 partitions.
  auto bSource = [&](int64_t ki, int64_t n0, uint32_t p0) {
    return AccessPattern::hbm(c.bTensor, (ki * 128 + p0) * c.bK + n0 * c.bN, it,
                              {{c.bK, 32}, {c.bN, p.NB}});
  };
  // Loads B's k-tile `ki` to `sbufOff` (in the matmul type).
  int64_t bStaged = 0;
  auto loadB = [&](int64_t ki, int64_t n0, int64_t sbufOff, uint32_t sem,
                   uint32_t waitSem, int64_t waitVal) {
    if (!p.cast) {
      for (int64_t piece = 0; piece < kPieces; ++piece) {
        uint32_t p0 = static_cast<uint32_t>(piece * 32);
        auto &q = queue();
        if (waitVal > 0)
          q.wait(waitSem, waitVal);
        q.dmaCopy(AccessPattern::sbuf(p0, 32, sbufOff, dt, {{1, p.NB}}),
                  bSource(ki, n0, p0));
        q.signal(sem);
      }
      return;
    }
    int64_t slot = bStaged % p.bStage, use = bStaged / p.bStage;
    ++bStaged;
    for (int64_t piece = 0; piece < kStagePieces; ++piece) {
      uint32_t rows = 128 / kStagePieces, p0 = static_cast<uint32_t>(piece * rows);
      auto &q = queue();
      if (use)
        q.wait(semBStFree[slot], use);
      q.dmaCopy(AccessPattern::sbuf(p0, rows, bStBase + slot * bStBytes, it,
                                    {{1, p.NB}}),
                AccessPattern::hbm(c.bTensor, (ki * 128 + p0) * c.bK + n0 * c.bN,
                                   it, {{c.bK, rows}, {c.bN, p.NB}}));
      q.signal(semBSt[slot]);
    }
    gp.wait(semBSt[slot], kStagePieces * (use + 1));
    if (waitVal > 0)
      gp.wait(waitSem, waitVal);
    gp.copy(AccessPattern::sbuf(0, 128, sbufOff, dt, {{1, p.NB}}),
            AccessPattern::sbuf(0, 128, bStBase + slot * bStBytes, it, {{1, p.NB}}));
    gp.signal(semBStFree[slot]);
    gp.signal(sem, kPieces);
  };
  // AT[:, m-tile] -> slot: partition = k % 128, free = [k-tile][m], one
  // 3-D access pattern per piece.
  const int64_t tiles = p.NBLK * p.MT;
  auto loadAt = [&](int64_t tile) {
    int64_t mi = tile % p.MT, slot = tile % kAtBuffers,
            use = tile / kAtBuffers;
    int64_t stSlot = tile % kAStage, stUse = tile / kAStage;
    const int64_t pieces = p.cast ? kStagePieces : kPieces;
    for (int64_t piece = 0; piece < pieces; ++piece) {
      uint32_t rows = static_cast<uint32_t>(128 / pieces),
               p0 = static_cast<uint32_t>(piece * rows);
      auto &q = queue();
      AccessPattern src = AccessPattern::hbm(
          c.aTensor, p0 * c.aK + mi * 128 * c.aM, it,
          {{c.aK, rows}, {128 * c.aK, p.KT}, {c.aM, 128}});
      if (!p.cast) {
        if (use)
          q.wait(semAtFree[slot], use);
        q.dmaCopy(AccessPattern::sbuf(p0, rows, atBase + slot * atBytes, dt,
                                      {{128, p.KT}, {1, 128}}),
                  src);
        q.signal(semAt[slot]);
      } else {
        if (stUse)
          q.wait(semAStFree[stSlot], stUse);
        q.dmaCopy(AccessPattern::sbuf(p0, rows, aStBase + stSlot * aStBytes, it,
                                      {{128, p.KT}, {1, 128}}),
                  src);
        q.signal(semASt[stSlot]);
      }
    }
    if (p.cast) {
      gp.wait(semASt[stSlot], kStagePieces * (stUse + 1));
      if (use)
        gp.wait(semAtFree[slot], use);
      gp.copy(AccessPattern::sbuf(0, 128, atBase + slot * atBytes, dt,
                                  {{1, p.KT * 128}}),
              AccessPattern::sbuf(0, 128, aStBase + stSlot * aStBytes, it,
                                  {{1, p.KT * 128}}));
      gp.signal(semAStFree[stSlot]);
      gp.signal(semAt[slot], kPieces);
    }
  };

  int64_t bsUses[2] = {};
  std::vector<int64_t> regionUses(regions, 0);
  int64_t pair = 0, evacTurn = 0, atLoaded = 0;
  // Loads A^T tiles up to `t` (in order).
  auto ensureAt = [&](int64_t t) {
    for (; atLoaded <= t && atLoaded < tiles; ++atLoaded)
      loadAt(atLoaded);
  };
  // With on-chip rounding the first m-tile of a block waits for all of B's
  // block to arrive; the first two m-tiles then go k-tile by k-tile
  // together (one PSUM buffer each) so the Tensor Engine does twice the
  // work while B streams in.
  const bool pairFirst = p.cast && p.bResident && p.psumBuffers == 2 && p.MT >= 2;
  // Evacuates tile `t` (m-tile `mi`) and writes it back.
  auto finishTile = [&](int64_t t, int64_t mi, int64_t n0) {
    int64_t cslot = t % kCSlots, cuse = t / kCSlots;
    // Evacuate PSUM to the C staging slot, alternating Scalar and Vector.
    for (int64_t ch = 0; ch < p.NCH; ++ch) {
      int64_t r = (t % p.psumBuffers) * p.NCH + ch;
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
    ensureAt(t + 1);
    for (int64_t piece = 0; piece < kStorePieces; ++piece) {
      uint32_t rows = 128 / kStorePieces, p0 = static_cast<uint32_t>(piece * rows);
      auto &q = queue();
      q.wait(semCReady[cslot], p.NCH * (cuse + 1));
      q.dmaCopy(AccessPattern::hbm(c.cTensor, (mi * 128 + p0) * c.cM + n0 * c.cN,
                                   DType::F32, {{c.cM, rows}, {c.cN, p.NB}}),
                AccessPattern::sbuf(p0, rows, cBase + cslot * cBytes,
                                    DType::F32, {{1, p.NB}}));
      q.signal(semCFree[cslot]);
    }
  };

  int64_t tile = 0;
  ensureAt(0);
  for (int64_t nb = 0; nb < p.NBLK; ++nb) {
    int64_t n0 = nb * p.NB;
    if (pairFirst)
      ensureAt(tile + 1);
    if (p.bResident)
      for (int64_t ki = 0; ki < p.KT; ++ki)
        loadB(ki, n0, ki * p.NB * esz, semB[ki], semBFree, nb);
    for (int64_t mi = 0; mi < p.MT;) {
      int64_t g = pairFirst && mi == 0 ? 2 : 1;
      for (int64_t j = 0; j < g; ++j) {
        int64_t t = tile + j;
        te.wait(semAt[t % kAtBuffers], kPieces * (t / kAtBuffers + 1));
      }
      for (int64_t ki = 0; ki < p.KT; ++ki) {
        for (int64_t j = 0; j < g; ++j, ++pair) {
          int64_t t = tile + j, slot = t % kAtBuffers;
          int64_t bOff;
          int64_t bs = pair % 2;
          if (p.bResident) {
            if (mi + j == 0)
              te.wait(semB[ki], kPieces * (nb + 1));
            bOff = ki * p.NB * esz;
          } else {
            int64_t u = bsUses[bs]++;
            loadB(ki, n0, bs * p.NB * esz, semBs[bs], semBsFree[bs], u);
            te.wait(semBs[bs], kPieces * (u + 1));
            bOff = bs * p.NB * esz;
          }
          // All waits before the stationary load: a wait between two
          // matmuls of one stationary would let other engines in and, in
          // no-overlap mode, split the wave.
          for (int64_t ch = 0; ch < p.NCH && ki == 0; ++ch) {
            int64_t r = (t % p.psumBuffers) * p.NCH + ch;
            if (regionUses[r])
              te.wait(semFree[r], regionUses[r]);
          }
          te.loadStationary(AccessPattern::sbuf(
              0, 128, atBase + slot * atBytes + ki * 128 * esz, dt, {{1, 128}}));
          for (int64_t ch = 0; ch < p.NCH; ++ch) {
            int64_t r = (t % p.psumBuffers) * p.NCH + ch;
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
      }
      for (int64_t j = 0; j < g; ++j) {
        te.signal(semAtFree[(tile + j) % kAtBuffers]);
        if (p.bResident && mi + j == p.MT - 1)
          te.signal(semBFree);
      }
      for (int64_t j = 0; j < g; ++j)
        finishTile(tile + j, mi + j, n0);
      tile += g;
      mi += g;
    }
  }
  return b.take();
}

} // namespace kiln::npu

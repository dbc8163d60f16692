//===- Simulator.cpp - Functional + event-driven NPU simulator ------------===//
#include "Simulator.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>

namespace kiln::npu {

namespace {

float loadAs(DType t, const uint8_t *p) {
  if (t == DType::F32) {
    float f;
    std::memcpy(&f, p, 4);
    return f;
  }
  uint16_t h;
  std::memcpy(&h, p, 2);
  return t == DType::BF16 ? bf16ToFloat(h) : f16ToFloat(h);
}

void storeAs(DType t, uint8_t *p, float v) {
  if (t == DType::F32) {
    std::memcpy(p, &v, 4);
    return;
  }
  uint16_t h = t == DType::BF16 ? floatToBf16(v) : floatToF16(v);
  std::memcpy(p, &h, 2);
}

float applyAlu(AluOp op, float a, float b) {
  switch (op) {
  case AluOp::Bypass: return a;
  case AluOp::Add: return a + b;
  case AluOp::Subtract: return a - b;
  case AluOp::Multiply: return a * b;
  case AluOp::Divide: return a / b;
  case AluOp::Max: return std::max(a, b);
  case AluOp::Min: return std::min(a, b);
  }
  return a;
}

float reduceInit(AluOp op) {
  switch (op) {
  case AluOp::Max: return -std::numeric_limits<float>::infinity();
  case AluOp::Min: return std::numeric_limits<float>::infinity();
  case AluOp::Multiply: return 1.0f;
  default: return 0.0f;
  }
}

float applyAct(ActFunc f, float x) {
  switch (f) {
  case ActFunc::Identity: return x;
  case ActFunc::Relu: return x > 0 ? x : 0.0f;
  case ActFunc::Exp: return std::exp(x);
  case ActFunc::Log: return std::log(x);
  case ActFunc::Tanh: return std::tanh(x);
  case ActFunc::Sigmoid: return 1.0f / (1.0f + std::exp(-x));
  case ActFunc::Gelu: return 0.5f * x * (1.0f + std::erf(x * 0.70710678f));
  case ActFunc::Sqrt: return std::sqrt(x);
  case ActFunc::Rsqrt: return 1.0f / std::sqrt(x);
  case ActFunc::Square: return x * x;
  case ActFunc::Abs: return std::fabs(x);
  }
  return x;
}

/// A resolved access pattern: partition p's free element j lives at
/// base + p * pstride + idx[j].
struct View {
  uint8_t *base = nullptr;
  int64_t pstride = 0;
  DType t = DType::F32;
  uint32_t np = 1;
  std::vector<int64_t> idx; // Byte offsets.

  float get(uint32_t p, size_t j) const {
    return loadAs(t, base + p * pstride + idx[j]);
  }
  void set(uint32_t p, size_t j, float v) const {
    storeAs(t, base + p * pstride + idx[j], v);
  }
  size_t n() const { return idx.size(); }
};

struct Fail {
  std::string message;
};

struct SemState {
  std::vector<double> times; // Sorted signal times.
};

struct StreamState {
  size_t pc = 0;
  std::vector<std::pair<size_t, int64_t>> loops; // (Loop pc, iteration).
  int64_t iv[kMaxLoopDepth] = {};
  std::vector<size_t> match;                     // Loop pc -> EndLoop pc.
  double freeAt = 0, lastStart = 0, doneAt = 0;
  size_t executed = 0;                           // Instruction number.
};

struct Interval {
  double start, end;
};

class Run {
public:
  Run(const MachineModel &m, std::vector<uint8_t> &sbuf,
      std::vector<uint8_t> &psum, const Program &p, const HbmTensor *tensors,
      size_t count, const SimOptions &o, SimResult &r)
      : m(m), sbuf(sbuf), psum(psum), p(p), tensors(tensors), count(count),
        o(o), r(r) {}

  std::string go();

private:
  const MachineModel &m;
  std::vector<uint8_t> &sbuf, &psum;
  const Program &p;
  const HbmTensor *tensors;
  size_t count;
  const SimOptions &o;
  SimResult &r;

  StreamState st[kNumStreams];
  std::vector<SemState> sems;
  std::vector<Interval> busy[kNumStatGroups];
  unsigned cur = 0; // Stream being executed, for messages.

  // Tensor Engine: two weight slots so a load can hide behind the moving
  // stream of the previous stationary.
  double weightPortFree = 0, movingFree = 0;
  // DMA queues move one transfer's data at a time; a transfer's start-up
  // (descriptor processing, HBM latency) overlaps the previous transfer's
  // data phase, like descriptors queued on a ring.
  double dataFree[kNumDmaQueues] = {};
  double slotReady[2] = {0, 0}, slotFree[2] = {0, 0};
  unsigned loads = 0;
  bool statValid = false;
  uint32_t statK = 0, statS = 0;
  DType statType = DType::BF16;
  std::vector<float> stat; // [K][S], functional only.
  // No-overlap mode.
  double global = 0;
  bool chain = false;
  double chainIssueEnd = 0;

  [[noreturn]] void fail(const std::string &msg) {
    const StreamState &s = st[cur];
    throw Fail{p.name + ": " + streamName(cur) + " instruction " +
               std::to_string(s.executed) + " (" +
               name(p.streams[cur][s.pc].op) + "): " + msg};
  }

  double cyclesToNs(unsigned stream, double cycles) const {
    switch (stream) {
    case 0: return cycles / m.tensorGhz;
    case 1: return cycles / m.vectorGhz;
    case 2: return cycles / m.scalarGhz;
    case 3: return cycles / m.gpsimdGhz;
    }
    return cycles;
  }

  View view(const AccessPattern &ap, const char *role);
  void normalize(unsigned s);
  bool candidate(unsigned s, double &t);
  void execute(unsigned s, double t);
  void functional(const Instr &i);
  void record(unsigned s, const Instr &i, double start, double complete,
              double traceStart, double traceEnd);
};

void Run::normalize(unsigned s) {
  StreamState &ss = st[s];
  const auto &instrs = p.streams[s];
  while (ss.pc < instrs.size()) {
    const Instr &i = instrs[ss.pc];
    if (i.op == Opcode::Loop) {
      if (i.value.base == 0) {
        ss.pc = ss.match[ss.pc] + 1;
        continue;
      }
      ss.iv[ss.loops.size()] = 0;
      ss.loops.push_back({ss.pc, 0});
      ++ss.pc;
    } else if (i.op == Opcode::EndLoop) {
      auto &top = ss.loops.back();
      if (++top.second < instrs[top.first].value.base) {
        ss.iv[ss.loops.size() - 1] = top.second;
        ss.pc = top.first + 1;
      } else {
        ss.loops.pop_back();
        ++ss.pc;
      }
    } else {
      return;
    }
  }
}

View Run::view(const AccessPattern &ap, const char *role) {
  View v;
  v.t = ap.dtype;
  unsigned esz = dtypeSize(ap.dtype);
  int64_t off = ap.offset.eval(st[cur].iv);
  int64_t lo = 0, hi = 0; // Element index range of the free pattern.
  for (unsigned d = 0; d < ap.rank; ++d) {
    int64_t span = ap.dims[d].stride * (ap.dims[d].size - 1);
    (span < 0 ? lo : hi) += span;
  }
  if (ap.space == Space::Hbm) {
    if (ap.tensor >= count)
      fail(std::string(role) + " names hbm tensor " +
           std::to_string(ap.tensor) + " but the kernel has " +
           std::to_string(count) + " bindings");
    const HbmTensor &t = tensors[ap.tensor];
    int64_t first = off + lo, last = off + hi;
    if (first < 0 || static_cast<uint64_t>(last + 1) * esz > t.size)
      fail(std::string(role) + " reads elements [" + std::to_string(first) +
           ", " + std::to_string(last + 1) + ") of hbm tensor " +
           std::to_string(ap.tensor) + " which holds " +
           std::to_string(t.size / esz) + " " + name(ap.dtype) + " elements");
    v.base = t.data + off * esz;
  } else {
    bool isSbuf = ap.space == Space::Sbuf;
    uint64_t cap = isSbuf ? m.sbufPartitionBytes : m.psumPartitionBytes;
    const char *sp = isSbuf ? "sbuf" : "psum";
    if (off % esz)
      fail(std::string(role) + ": " + sp + " byte offset " +
           std::to_string(off) + " is not aligned to its " + name(ap.dtype) +
           " elements (" + std::to_string(esz) + " bytes)");
    int64_t first = off + lo * esz, end = off + (hi + 1) * esz;
    if (first < 0 || static_cast<uint64_t>(end) > cap)
      fail(std::string(role) + ": " + sp + " bytes [" + std::to_string(first) +
           ", " + std::to_string(end) + ") exceed the " + std::to_string(cap) +
           "-byte partition");
    v.pstride = static_cast<int64_t>(cap);
    v.np = ap.partitions;
    v.base = (isSbuf ? sbuf.data() : psum.data()) + ap.partition * cap + off;
  }
  if (!o.functional && ap.space == Space::Hbm)
    return v; // Element lists of big DMAs are only needed to move data.
  size_t n = static_cast<size_t>(ap.freeSize());
  v.idx.resize(n);
  size_t k = 0;
  int64_t ctr[kMaxDims] = {};
  for (size_t e = 0; e < n; ++e) {
    int64_t x = 0;
    for (unsigned d = 0; d < ap.rank; ++d)
      x += ctr[d] * ap.dims[d].stride;
    v.idx[k++] = x * esz;
    for (int d = static_cast<int>(ap.rank) - 1; d >= 0; --d) {
      if (++ctr[d] < ap.dims[d].size)
        break;
      ctr[d] = 0;
    }
  }
  if (ap.rank == 0)
    v.idx.assign(1, 0);
  return v;
}

/// Earliest start of stream s's next instruction, or false if it waits on
/// a semaphore that has not been signalled often enough yet.
bool Run::candidate(unsigned s, double &t) {
  StreamState &ss = st[s];
  const Instr &i = p.streams[s][ss.pc];
  if (i.op == Opcode::SemWait) {
    int64_t need = i.value.eval(ss.iv);
    const auto &times = sems[i.sem].times;
    if (need > static_cast<int64_t>(times.size()))
      return false;
    double at = need > 0 ? times[need - 1] : 0;
    // Zero-cost: in no-overlap mode the signal already happened at or
    // before `global`, and waiting must not break a matmul wave.
    t = std::max(ss.lastStart, at);
    return true;
  }
  if (o.noOverlap) {
    // Every earlier instruction has completed, except that a matmul
    // following a matmul streams right behind it (same stationary wave).
    t = std::max(ss.lastStart,
                 (i.op == Opcode::Matmul && chain) ? chainIssueEnd : global);
    return true;
  }
  switch (i.op) {
  case Opcode::SemSignal:
    t = std::max(ss.doneAt, ss.lastStart);
    return true;
  case Opcode::LoadStationary:
    t = std::max({ss.lastStart, weightPortFree, slotFree[loads % 2]});
    return true;
  case Opcode::Matmul:
    t = std::max({ss.lastStart, movingFree, slotReady[(loads + 1) % 2]});
    return true;
  case Opcode::Transpose:
    t = std::max({ss.lastStart, movingFree, weightPortFree});
    return true;
  default:
    t = std::max(ss.lastStart, ss.freeAt);
    return true;
  }
}

void Run::record(unsigned s, const Instr &i, double start, double complete,
                 double traceStart, double traceEnd) {
  int g = isDma(s) ? kStatDma : static_cast<int>(s);
  busy[g].push_back({start, complete});
  ++r.engines[g].instructions;
  uint8_t track = i.op == Opcode::LoadStationary ? kWeightTrack
                                                 : static_cast<uint8_t>(s);
  if (o.trace)
    r.events.push_back({track, i.op, traceStart, traceEnd});
  r.totalNs = std::max(r.totalNs, complete);
}

void Run::execute(unsigned s, double t) {
  StreamState &ss = st[s];
  const Instr &i = p.streams[s][ss.pc];
  cur = s;

  if (i.op == Opcode::SemWait) {
    ss.lastStart = std::max(ss.lastStart, t);
    ss.freeAt = std::max(ss.freeAt, t);
    return;
  }
  if (i.op == Opcode::SemSignal) {
    double at = o.noOverlap ? global : t;
    auto &times = sems[i.sem].times;
    for (int64_t k = 0; k < i.value.base; ++k)
      times.insert(std::upper_bound(times.begin(), times.end(), at), at);
    return;
  }

  // Checks and values first: an invalid instruction must not advance time.
  if (i.op == Opcode::Matmul) {
    if (!statValid)
      fail("no stationary loaded (load_stationary must precede matmul; "
           "transpose replaces the stationary)");
    if (i.src.partitions != statK)
      fail("moving spans " + std::to_string(i.src.partitions) +
           " partitions but the stationary " + std::to_string(statK) +
           " (both are the contraction dim)");
    if (i.dst.partitions != statS)
      fail("dst spans " + std::to_string(i.dst.partitions) +
           " partitions but the stationary has " + std::to_string(statS) +
           " columns");
    if (i.src.dtype != statType)
      fail(std::string("moving is ") + name(i.src.dtype) +
           " but the stationary " + name(statType));
    int64_t off = i.dst.offset.eval(ss.iv);
    int64_t end = off + i.dst.freeSize() * 4;
    if (off / static_cast<int64_t>(m.psumBankBytes) !=
        (end - 1) / static_cast<int64_t>(m.psumBankBytes))
      fail("psum bytes [" + std::to_string(off) + ", " + std::to_string(end) +
           ") cross a " + std::to_string(m.psumBankBytes) +
           "-byte bank boundary");
  }
  functional(i);

  double dur = 0, complete = 0, start = t;
  unsigned fp32 = 1;
  switch (i.op) {
  case Opcode::DmaCopy: {
    double bytes = static_cast<double>(i.src.numElements()) * dtypeSize(i.src.dtype);
    double &free = dataFree[s - 4];
    double data = std::max(start + m.dmaFixedNs, free);
    complete = data + bytes / m.dmaQueueBytesPerNs();
    free = complete;
    // Busy time of a queue is its data phase; the start-up is latency.
    start = data;
    break;
  }
  case Opcode::LoadStationary: {
    fp32 = i.src.dtype == DType::F32 ? m.fp32RateDivisor : 1;
    dur = cyclesToNs(0, double(m.stationaryLoadCycles) * fp32);
    complete = start + dur;
    unsigned slot = loads++ % 2;
    weightPortFree = complete;
    slotReady[slot] = complete;
    slotFree[slot] = complete;
    statValid = true;
    statK = i.src.partitions;
    statS = static_cast<uint32_t>(i.src.freeSize());
    statType = i.src.dtype;
    break;
  }
  case Opcode::Matmul: {
    fp32 = i.src.dtype == DType::F32 ? m.fp32RateDivisor : 1;
    double n = static_cast<double>(i.src.freeSize());
    double c = std::max(std::min<double>(m.matmulMinCycles, statS), n) * fp32;
    dur = cyclesToNs(0, c);
    complete = start + dur + cyclesToNs(0, m.matmulLatency());
    movingFree = start + dur;
    unsigned slot = (loads + 1) % 2;
    slotFree[slot] = std::max(slotFree[slot], start + dur);
    break;
  }
  case Opcode::Transpose: {
    fp32 = i.src.dtype == DType::F32 ? m.fp32RateDivisor : 1;
    double c = (m.stationaryLoadCycles +
                std::max<double>(std::min<double>(m.matmulMinCycles,
                                                  i.src.freeSize()),
                                 i.src.partitions)) * fp32;
    dur = cyclesToNs(0, c);
    complete = start + dur + cyclesToNs(0, m.matmulLatency());
    movingFree = weightPortFree = start + dur;
    statValid = false;
    break;
  }
  default: {
    int64_t n = std::max(i.dst.freeSize(), i.src.valid() ? i.src.freeSize() : 0);
    dur = cyclesToNs(s, static_cast<double>(std::max<int64_t>(m.minInstrCycles, n)));
    complete = start + dur;
    break;
  }
  }

  ss.lastStart = std::max(ss.lastStart, t);
  ss.freeAt = std::max(ss.freeAt, t + dur);
  ss.doneAt = std::max(ss.doneAt, complete);
  if (o.noOverlap) {
    global = std::max(global, complete);
    chain = i.op == Opcode::Matmul;
    chainIssueEnd = start + dur;
  }
  record(s, i, start, complete, start, isDma(s) ? complete : start + dur);
}

void Run::functional(const Instr &i) {
  // Views are built even without values: they carry the capacity,
  // alignment and bounds checks.
  switch (i.op) {
  case Opcode::DmaCopy: {
    View d = view(i.dst, "dst"), sv = view(i.src, "src");
    if (!o.functional)
      return;
    unsigned esz = dtypeSize(i.src.dtype);
    size_t dn = d.n(), sn = sv.n(), total = dn * d.np;
    for (size_t e = 0; e < total; ++e)
      std::memcpy(d.base + (e / dn) * d.pstride + d.idx[e % dn],
                  sv.base + (e / sn) * sv.pstride + sv.idx[e % sn], esz);
    return;
  }
  case Opcode::LoadStationary: {
    View v = view(i.src, "stationary");
    if (!o.functional)
      return;
    stat.resize(v.np * v.n());
    for (uint32_t k = 0; k < v.np; ++k)
      for (size_t c = 0; c < v.n(); ++c)
        stat[k * v.n() + c] = v.get(k, c);
    return;
  }
  case Opcode::Matmul: {
    View d = view(i.dst, "dst"), mv = view(i.src, "moving");
    if (!o.functional)
      return;
    size_t n = mv.n(), S = statS, K = statK;
    std::vector<float> x(K * n);
    for (uint32_t k = 0; k < K; ++k)
      for (size_t c = 0; c < n; ++c)
        x[k * n + c] = mv.get(k, c);
    std::vector<float> acc(n);
    for (size_t sIdx = 0; sIdx < S; ++sIdx) {
      std::fill(acc.begin(), acc.end(), 0.0f);
      for (size_t k = 0; k < K; ++k) {
        float w = stat[k * S + sIdx];
        const float *row = &x[k * n];
        for (size_t c = 0; c < n; ++c)
          acc[c] += w * row[c];
      }
      for (size_t c = 0; c < n; ++c)
        d.set(static_cast<uint32_t>(sIdx), c,
              i.accumulate ? d.get(static_cast<uint32_t>(sIdx), c) + acc[c]
                           : acc[c]);
    }
    return;
  }
  case Opcode::Transpose: {
    View d = view(i.dst, "dst"), sv = view(i.src, "src");
    if (!o.functional)
      return;
    for (uint32_t pp = 0; pp < sv.np; ++pp)
      for (size_t f = 0; f < sv.n(); ++f)
        d.set(static_cast<uint32_t>(f), pp, sv.get(pp, f));
    return;
  }
  default:
    break;
  }

  if (i.op == Opcode::SemWait || i.op == Opcode::SemSignal)
    return;
  View d = view(i.dst, "dst");
  View sv, sv2, a0, a1, acc;
  bool hasSrc = i.op != Opcode::Memset && i.op != Opcode::Iota;
  if (hasSrc)
    sv = view(i.src, "src");
  if (i.op == Opcode::TensorTensor)
    sv2 = view(i.src2, "rhs");
  if (i.s0.isAp)
    a0 = view(i.s0.ap, "operand0");
  if (i.s1.isAp)
    a1 = view(i.s1.ap, "operand1");
  bool reduce = i.op == Opcode::Activation && i.alu0 != AluOp::Bypass;
  if (reduce)
    acc = view(i.src2, "accum");
  if (!o.functional)
    return;

  auto scalarOf = [](const ScalarOperand &so, const View &v, uint32_t p) {
    return so.isAp ? v.get(p, 0) : so.imm;
  };
  size_t n = d.n();
  switch (i.op) {
  case Opcode::Activation:
    for (uint32_t pp = 0; pp < d.np; ++pp) {
      float sc = scalarOf(i.s0, a0, pp), b = scalarOf(i.s1, a1, pp);
      float red = reduceInit(i.alu0);
      std::vector<float> out(n);
      for (size_t j = 0; j < n; ++j) {
        out[j] = applyAct(i.func, sv.get(pp, j) * sc + b);
        if (reduce)
          red = applyAlu(i.alu0, red, out[j]);
      }
      for (size_t j = 0; j < n; ++j)
        d.set(pp, j, out[j]);
      if (reduce)
        acc.set(pp, 0, red);
    }
    return;
  case Opcode::TensorTensor:
    for (uint32_t pp = 0; pp < d.np; ++pp)
      for (size_t j = 0; j < n; ++j)
        d.set(pp, j, applyAlu(i.alu0, sv.get(pp, j), sv2.get(pp, j)));
    return;
  case Opcode::TensorScalar:
    for (uint32_t pp = 0; pp < d.np; ++pp) {
      float v0 = scalarOf(i.s0, a0, pp), v1 = scalarOf(i.s1, a1, pp);
      for (size_t j = 0; j < n; ++j)
        d.set(pp, j,
              applyAlu(i.alu1, applyAlu(i.alu0, sv.get(pp, j), v0), v1));
    }
    return;
  case Opcode::TensorReduce: {
    size_t inner = static_cast<size_t>(i.src.rank ? i.src.dims[i.src.rank - 1].size : 1);
    for (uint32_t pp = 0; pp < d.np; ++pp)
      for (size_t j = 0; j < n; ++j) {
        float red = reduceInit(i.alu0);
        for (size_t k = 0; k < inner; ++k)
          red = applyAlu(i.alu0, red, sv.get(pp, j * inner + k));
        d.set(pp, j, red);
      }
    return;
  }
  case Opcode::Copy: {
    // Through a temporary so overlapping copies behave like a real one.
    std::vector<float> tmp(n);
    for (uint32_t pp = 0; pp < d.np; ++pp) {
      for (size_t j = 0; j < n; ++j)
        tmp[j] = sv.get(pp, j);
      for (size_t j = 0; j < n; ++j)
        d.set(pp, j, tmp[j]);
    }
    return;
  }
  case Opcode::Memset:
    for (uint32_t pp = 0; pp < d.np; ++pp)
      for (size_t j = 0; j < n; ++j)
        d.set(pp, j, i.s0.imm);
    return;
  case Opcode::Iota: {
    int64_t base = i.value.eval(st[cur].iv);
    for (uint32_t pp = 0; pp < d.np; ++pp)
      for (size_t j = 0; j < n; ++j)
        d.set(pp, j, static_cast<float>(base + i.pstep * pp +
                                        i.fstep * static_cast<int64_t>(j)));
    return;
  }
  default:
    return;
  }
}

double unionLength(std::vector<Interval> &v) {
  std::sort(v.begin(), v.end(),
            [](const Interval &a, const Interval &b) { return a.start < b.start; });
  double total = 0, s = 0, e = -1;
  bool open = false;
  for (const Interval &iv : v) {
    if (open && iv.start <= e) {
      e = std::max(e, iv.end);
      continue;
    }
    if (open)
      total += e - s;
    s = iv.start;
    e = iv.end;
    open = true;
  }
  if (open)
    total += e - s;
  return total;
}

std::string Run::go() {
  if (std::string err = verify(p); !err.empty())
    return err;
  sems.assign(p.numSemaphores, {});
  for (unsigned s = 0; s < kNumStreams; ++s) {
    const auto &instrs = p.streams[s];
    st[s].match.assign(instrs.size(), 0);
    std::vector<size_t> stack;
    for (size_t k = 0; k < instrs.size(); ++k) {
      if (instrs[k].op == Opcode::Loop)
        stack.push_back(k);
      else if (instrs[k].op == Opcode::EndLoop) {
        st[s].match[stack.back()] = k;
        stack.pop_back();
      }
    }
  }
  r = SimResult();
  try {
    for (;;) {
      int best = -1;
      double bestT = 0;
      bool pending = false;
      for (unsigned s = 0; s < kNumStreams; ++s) {
        normalize(s);
        if (st[s].pc >= p.streams[s].size())
          continue;
        pending = true;
        double t;
        if (candidate(s, t) && (best < 0 || t < bestT)) {
          best = static_cast<int>(s);
          bestT = t;
        }
      }
      if (!pending)
        break;
      if (best < 0) {
        std::string msg = p.name + ": deadlock:";
        for (unsigned s = 0; s < kNumStreams; ++s) {
          if (st[s].pc >= p.streams[s].size())
            continue;
          const Instr &i = p.streams[s][st[s].pc];
          msg += " " + streamName(s) + " waits for s" + std::to_string(i.sem) +
                 " >= " + std::to_string(i.value.eval(st[s].iv)) + " (has " +
                 std::to_string(sems[i.sem].times.size()) + ");";
        }
        msg.pop_back();
        return msg;
      }
      execute(static_cast<unsigned>(best), bestT);
      ++st[best].executed;
      ++st[best].pc;
    }
  } catch (const Fail &f) {
    return f.message;
  }
  for (int g = 0; g < kNumStatGroups; ++g) {
    EngineStats &e = r.engines[g];
    e.busyNs = unionLength(busy[g]);
    if (!busy[g].empty())
      e.firstNs = busy[g].front().start; // Sorted by unionLength.
    for (const Interval &iv : busy[g])
      e.lastNs = std::max(e.lastNs, iv.end);
  }
  return "";
}

} // namespace

Simulator::Simulator(const MachineModel &model)
    : m(model), sbuf(model.sbufPartitionBytes * kNumPartitions),
      psum(model.psumPartitionBytes * kNumPartitions) {}

std::string Simulator::run(const Program &p, const HbmTensor *tensors,
                           size_t count, const SimOptions &opts,
                           SimResult &result) {
  return Run(m, sbuf, psum, p, tensors, count, opts, result).go();
}

void SimResult::append(const SimResult &o, const std::string &kernel) {
  Span &span = spans.emplace_back();
  span.kernel = kernel;
  span.startNs = totalNs;
  span.totalNs = o.totalNs;
  std::copy(std::begin(o.engines), std::end(o.engines), std::begin(span.engines));
  for (const TraceEvent &e : o.events)
    events.push_back({e.track, e.op, e.startNs + totalNs, e.endNs + totalNs});
  for (int g = 0; g < kNumStatGroups; ++g) {
    EngineStats &e = engines[g];
    const EngineStats &n = o.engines[g];
    if (n.instructions) {
      if (!e.instructions)
        e.firstNs = n.firstNs + totalNs;
      e.lastNs = n.lastNs + totalNs;
    }
    e.busyNs += n.busyNs;
    e.instructions += n.instructions;
  }
  totalNs += o.totalNs;
}

const char *statGroupName(int g) {
  static const char *names[] = {"tensor", "vector", "scalar", "gpsimd", "dma"};
  return names[g];
}

std::string traceJson(const SimResult &r) {
  std::string out = "{\"displayTimeUnit\": \"ns\", \"traceEvents\": [\n";
  char buf[256];
  out += "{\"name\": \"process_name\", \"ph\": \"M\", \"pid\": 0, "
         "\"args\": {\"name\": \"npu\"}}";
  for (unsigned s = 0; s <= kWeightTrack; ++s) {
    std::snprintf(buf, sizeof(buf),
                  ",\n{\"name\": \"thread_name\", \"ph\": \"M\", \"pid\": 0, "
                  "\"tid\": %u, \"args\": {\"name\": \"%s\"}}",
                  s, s == kWeightTrack ? "tensor (stationary loads)"
                                       : streamName(s).c_str());
    out += buf;
    // Keep the tracks in stream order rather than Perfetto's default.
    std::snprintf(buf, sizeof(buf),
                  ",\n{\"name\": \"thread_sort_index\", \"ph\": \"M\", "
                  "\"pid\": 0, \"tid\": %u, \"args\": {\"sort_index\": %u}}",
                  s, s == kWeightTrack ? 1 : s ? s + 1 : 0);
    out += buf;
  }
  // Dispatches get the track after the last stream's.
  const unsigned dispatchTrack = kWeightTrack + 1;
  std::snprintf(buf, sizeof(buf),
                ",\n{\"name\": \"thread_name\", \"ph\": \"M\", \"pid\": 0, "
                "\"tid\": %u, \"args\": {\"name\": \"dispatches\"}}",
                dispatchTrack);
  out += buf;
  for (const Span &d : r.spans) {
    out += ",\n{\"name\": \"" + d.kernel + "\"";
    std::snprintf(buf, sizeof(buf),
                  ", \"ph\": \"X\", \"pid\": 0, \"tid\": %u, \"ts\": %.6f, "
                  "\"dur\": %.6f}",
                  dispatchTrack, d.startNs / 1000.0, d.totalNs / 1000.0);
    out += buf;
  }
  for (const TraceEvent &e : r.events) {
    // Chrome traces count microseconds.
    std::snprintf(buf, sizeof(buf),
                  ",\n{\"name\": \"%s\", \"ph\": \"X\", \"pid\": 0, \"tid\": %u, "
                  "\"ts\": %.6f, \"dur\": %.6f}",
                  name(e.op), e.track, e.startNs / 1000.0,
                  (e.endNs - e.startNs) / 1000.0);
    out += buf;
  }
  return out + "\n]}\n";
}

static std::string enginesJson(const EngineStats (&engines)[kNumStatGroups]) {
  std::string out = "{";
  char buf[160];
  for (int g = 0; g < kNumStatGroups; ++g) {
    std::snprintf(buf, sizeof(buf),
                  "%s\"%s\": {\"busy_ns\": %.3f, \"instructions\": %llu}",
                  g ? ", " : "", statGroupName(g), engines[g].busyNs,
                  static_cast<unsigned long long>(engines[g].instructions));
    out += buf;
  }
  return out + "}";
}

std::string statsJson(const SimResult &r) {
  char buf[160];
  std::snprintf(buf, sizeof(buf), "{\"total_ns\": %.3f, \"engines\": ", r.totalNs);
  std::string out = buf + enginesJson(r.engines) + ",\n \"dispatches\": [";
  for (size_t i = 0; i < r.spans.size(); ++i) {
    const Span &d = r.spans[i];
    out += std::string(i ? "," : "") + "\n  {\"kernel\": \"" + d.kernel + "\", ";
    std::snprintf(buf, sizeof(buf), "\"start_ns\": %.3f, \"total_ns\": %.3f, \"engines\": ",
                  d.startNs, d.totalNs);
    out += buf + enginesJson(d.engines) + "}";
  }
  return out + "]}\n";
}

} // namespace kiln::npu

//===- Emitter.cpp - npu instructions with their semaphores ---------------===//
//
// Engines hand data over through one semaphore per stream: a consumer waits
// for the count its producer's stream reached (see NpuTarget.cpp).
//
//===----------------------------------------------------------------------===//
#include "Emitter.h"

#include <algorithm>
#include <map>

namespace kiln::npu::lowering {

void Emitter::emit(unsigned stream, llvm::ArrayRef<Region *> reads,
                   llvm::ArrayRef<Region *> writes,
                   const std::function<void(npu::ProgramBuilder::Stream &)> &body) {
  Deps need{};
  for (Region *r : reads)
    join(need, r->write);
  for (Region *w : writes) {
    join(need, w->write);
    join(need, w->reads);
  }
  auto &s = b.onStream(stream);
  for (unsigned t = 0; t < npu::kNumStreams; ++t) {
    if (need[t] <= waited[stream][t] || (t == stream && !npu::isDma(stream)))
      continue;
    s.wait(sem[t], need[t]);
    waited[stream][t] = need[t];
  }
  body(s);
  if (sem[stream] < 0)
    sem[stream] = static_cast<int32_t>(b.semaphore());
  s.signal(sem[stream]);
  int64_t n = ++count[stream];
  for (Region *r : reads)
    r->reads[stream] = std::max(r->reads[stream], n);
  for (Region *w : writes) {
    w->write = Deps{};
    w->write[stream] = n;
    w->reads = Deps{};
  }
}

npu::Program Emitter::pruneSignals(npu::Program p) {
  std::vector<std::vector<int64_t>> needed(p.numSemaphores);
  for (auto &stream : p.streams)
    for (auto &i : stream)
      if (i.op == npu::Opcode::SemWait)
        needed[i.sem].push_back(i.value.base);
  std::vector<std::map<int64_t, int64_t>> renumber(p.numSemaphores);
  for (auto &stream : p.streams) {
    std::vector<npu::Instr> kept;
    for (auto &i : stream) {
      if (i.op != npu::Opcode::SemSignal) {
        kept.push_back(i);
        continue;
      }
      auto &seen = renumber[i.sem];
      int64_t original = static_cast<int64_t>(seen.size()) + 1;
      auto &ns = needed[i.sem];
      bool wanted = std::find(ns.begin(), ns.end(), original) != ns.end();
      seen[original] = wanted ? 1 : 0;
      if (wanted)
        kept.push_back(i);
    }
    stream = std::move(kept);
  }
  // The k-th signal's new count is the number of kept signals up to k.
  for (auto &m : renumber) {
    int64_t kept = 0;
    for (auto &[k, v] : m) {
      kept += v;
      v = kept;
    }
  }
  for (auto &stream : p.streams)
    for (auto &i : stream)
      if (i.op == npu::Opcode::SemWait)
        i.value = npu::Affine(renumber[i.sem][i.value.base]);
  // Semaphores nobody waits on are not declared.
  std::vector<int32_t> newId(p.numSemaphores, -1);
  uint32_t used = 0;
  for (uint32_t s = 0; s < p.numSemaphores; ++s)
    if (!needed[s].empty())
      newId[s] = static_cast<int32_t>(used++);
  for (auto &stream : p.streams)
    for (auto &i : stream)
      if (i.op == npu::Opcode::SemWait || i.op == npu::Opcode::SemSignal)
        i.sem = static_cast<uint32_t>(newId[i.sem]);
  p.numSemaphores = used;
  return p;
}

} // namespace kiln::npu::lowering

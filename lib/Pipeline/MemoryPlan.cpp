//===- MemoryPlan.cpp - transient buffers shared by disjoint lifetimes ----===//
//
// The schedule gives every dispatch result a buffer of its own, so a
// session's scratch memory is the sum of all intermediate tensors (a BERT
// encoder's every activation at once). Dispatches run one after another, so
// a transient buffer is live from the first dispatch that binds it to the
// last; buffers whose lifetimes do not overlap can share storage. Greedy in
// schedule order: after a dispatch, the buffers it was the last to use are
// free; a buffer first bound by the next dispatch takes the smallest free
// one that holds it, else the largest free one (grown), else a new one. A
// buffer is free only after its last dispatch completes, so no dispatch ever
// reads and writes the same storage through two bindings. Every kernel
// writes all of its results, so a buffer's old contents are never read.
//
//===----------------------------------------------------------------------===//
#include "kiln/Pipeline/Pipeline.h"

#include "llvm/ADT/STLExtras.h"

#include <limits>
#include <set>

using namespace kiln;

void kiln::planTransientBuffers(artifact::Module &m) {
  constexpr size_t kNever = std::numeric_limits<size_t>::max();
  size_t n = m.buffers.size();
  std::vector<size_t> first(n, kNever), last(n, 0);
  for (auto [i, d] : llvm::enumerate(m.dispatches))
    for (const artifact::Binding &b : d.bindings) {
      first[b.buffer] = std::min(first[b.buffer], i);
      last[b.buffer] = std::max(last[b.buffer], i);
    }
  auto planned = [&](uint32_t id) {
    return m.buffers[id].kind == artifact::BufferKind::Transient && m.buffers[id].sizeBytes > 0 &&
           first[id] != kNever;
  };

  // Slots are the shared buffers: slotOf[id] for planned buffers.
  std::vector<uint64_t> slotSize;
  std::vector<size_t> slotOf(n, kNever);
  std::set<std::pair<uint64_t, size_t>> free; // (size, slot)
  std::vector<std::vector<uint32_t>> startAt(m.dispatches.size()), endAt(m.dispatches.size());
  for (uint32_t id = 0; id < n; ++id)
    if (planned(id)) {
      startAt[first[id]].push_back(id);
      endAt[last[id]].push_back(id);
    }
  for (size_t i = 0; i < m.dispatches.size(); ++i) {
    for (uint32_t id : startAt[i]) {
      uint64_t need = m.buffers[id].sizeBytes;
      size_t slot;
      auto fit = free.lower_bound({need, 0});
      if (fit == free.end() && !free.empty())
        fit = std::prev(free.end()); // the largest, grown
      if (fit != free.end()) {
        slot = fit->second;
        free.erase(fit);
        slotSize[slot] = std::max(slotSize[slot], need);
      } else {
        slot = slotSize.size();
        slotSize.push_back(need);
      }
      slotOf[id] = slot;
    }
    for (uint32_t id : endAt[i])
      free.insert({slotSize[slotOf[id]], slotOf[id]});
  }

  // Renumber: other buffers keep their order; a slot takes the place of its
  // first member.
  std::vector<artifact::BufferDesc> buffers;
  std::vector<uint32_t> newId(n);
  std::vector<uint32_t> slotId(slotSize.size(), std::numeric_limits<uint32_t>::max());
  for (uint32_t id = 0; id < n; ++id) {
    if (slotOf[id] == kNever) {
      newId[id] = buffers.size();
      buffers.push_back(m.buffers[id]);
      continue;
    }
    uint32_t &s = slotId[slotOf[id]];
    if (s == std::numeric_limits<uint32_t>::max()) {
      s = buffers.size();
      buffers.push_back({artifact::BufferKind::Transient, slotSize[slotOf[id]], nullptr});
    }
    newId[id] = s;
  }
  for (artifact::Dispatch &d : m.dispatches)
    for (artifact::Binding &b : d.bindings)
      b.buffer = newId[b.buffer];
  for (std::vector<artifact::TensorDesc> *descs : {&m.inputs, &m.outputs})
    for (artifact::TensorDesc &t : *descs) {
      t.buffer = newId[t.buffer];
      for (artifact::DynamicDim &d : t.dynamicDims)
        d.buffer = newId[d.buffer];
    }
  m.buffers = std::move(buffers);
}

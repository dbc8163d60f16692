//===- Allocator.h - SBUF/PSUM regions and their allocator ----------------===//
//
// What the npu kernel lowering (KernelLowering.h) knows about memory: regions
// with the stream counts of their last writer and readers, and the next-fit
// allocator that hands out one partition's bytes of SBUF or PSUM.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_BACKENDS_NPU_COMPILER_ALLOCATOR_H
#define KILN_BACKENDS_NPU_COMPILER_ALLOCATOR_H

#include "isa/Isa.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <vector>

namespace kiln::npu::lowering {

using Deps = std::array<int64_t, npu::kNumStreams>;
inline void join(Deps &a, const Deps &b) {
  for (unsigned i = 0; i < npu::kNumStreams; ++i)
    a[i] = std::max(a[i], b[i]);
}

/// An on-chip allocation (the same bytes in every partition) or one HBM
/// binding. `write` is the stream count after the last write; `reads` the
/// counts after the reads since then.
struct Region {
  Space space = Space::Sbuf;
  int64_t lo = 0, size = 0;
  Deps write{}, reads{};
};

/// Next-fit allocator over one partition's bytes. Freed ranges remember who
/// last touched them, so the next occupant waits for those streams first.
class Allocator {
public:
  Allocator(int64_t capacity, int64_t align) : capacity(capacity), align(align) {
    free.push_back({0, capacity, Deps{}});
  }
  /// Returns the offset or -1; `deps` receives the previous occupants.
  int64_t alloc(int64_t bytes, Deps &deps);
  void release(int64_t lo, int64_t bytes, const Deps &deps);
  int64_t capacity;

private:
  struct Free {
    int64_t lo, hi;
    Deps deps;
  };
  std::vector<Free> free;
  int64_t align, cursor = 0;
};

} // namespace kiln::npu::lowering

#endif // KILN_BACKENDS_NPU_COMPILER_ALLOCATOR_H

//===- Emitter.h - npu instructions with their semaphores -----------------===//
//
// Appends instructions to the streams of an npu Program with the semaphore
// waits and signals the regions they read and write need (KernelLowering.h).
//
//===----------------------------------------------------------------------===//
#ifndef KILN_BACKENDS_NPU_COMPILER_EMITTER_H
#define KILN_BACKENDS_NPU_COMPILER_EMITTER_H

#include "Allocator.h"

#include "llvm/ADT/ArrayRef.h"

#include <functional>
#include <string>

namespace kiln::npu::lowering {

/// Emits instructions with the semaphores their operands need.
class Emitter {
public:
  explicit Emitter(std::string name) : b(std::move(name)) { sem.fill(-1); }

  /// Appends one instruction (`body`) to `stream`, after waiting for the
  /// last writers of `reads` and for the last writers and readers of
  /// `writes`. Compute engines run their own stream in order, so they never
  /// wait on themselves; DMA queues may overlap transfers and do.
  void emit(unsigned stream, llvm::ArrayRef<Region *> reads,
            llvm::ArrayRef<Region *> writes,
            const std::function<void(npu::ProgramBuilder::Stream &)> &body);
  unsigned nextQueue() {
    unsigned q = queue;
    queue = (queue + 1) % npu::kNumDmaQueues;
    return static_cast<unsigned>(npu::Engine::Dma0) + q;
  }
  npu::Program finish() { return pruneSignals(b.take()); }

private:
  /// Every instruction signalled its stream's semaphore; drop the signals
  /// nobody waits for and renumber the waits, so the program reads as its
  /// real hand-offs.
  static npu::Program pruneSignals(npu::Program p);

  npu::ProgramBuilder b;
  std::array<int32_t, npu::kNumStreams> sem;
  std::array<int64_t, npu::kNumStreams> count{};
  int64_t waited[npu::kNumStreams][npu::kNumStreams] = {};
  unsigned queue = 0;
};

} // namespace kiln::npu::lowering

#endif // KILN_BACKENDS_NPU_COMPILER_EMITTER_H

//===- Simulator.h - Functional + event-driven NPU simulator ------*- C++ -*-===//
//
// Executes an npu Program on a model of one NeuronCore: SBUF and PSUM
// contents, bindings as HBM, and a timeline in which every engine and DMA
// queue runs its stream in order and semaphores order the streams. The
// timing rules are listed in docs/npu.md ("Timing rules").
//
//===----------------------------------------------------------------------===//
#ifndef KILN_NPU_SIMULATOR_H
#define KILN_NPU_SIMULATOR_H

#include "../isa/Isa.h"
#include "../model/MachineModel.h"
#include "half.h"

#include <string>
#include <vector>

namespace kiln::npu {

struct SimOptions {
  /// Serializes every instruction (no engine concurrency, no stationary
  /// load hidden behind a matmul); back-to-back matmuls on one stationary
  /// still stream as one wave. For validating the cost model.
  bool noOverlap = false;
  /// Computes values; off for timing-only sweeps of large programs.
  bool functional = true;
  /// Keeps one trace event per instruction.
  bool trace = true;
};

struct HbmTensor {
  uint8_t *data;
  uint64_t size; // Bytes.
};

enum StatGroup { kStatTensor, kStatVector, kStatScalar, kStatGpSimd, kStatDma,
                 kNumStatGroups };

struct EngineStats {
  double busyNs = 0;        // Union of [start, completion) intervals.
  uint64_t instructions = 0; // Excluding semaphore and loop markers.
  double firstNs = 0, lastNs = 0; // First start, last completion.
};

/// What a trace slice shows: the time an instruction holds its engine's
/// port (the Tensor Engine's moving or weight path, a queue's data phase),
/// so the slices of one track never overlap. Completion latency is not shown.
struct TraceEvent {
  uint8_t track; // A stream number, or kWeightTrack.
  Opcode op;
  double startNs, endNs;
};
/// The Tensor Engine's stationary loads get their own track.
constexpr uint8_t kWeightTrack = kNumStreams;

/// One program run (a dispatch) within a result of several laid end to end.
struct Span {
  std::string kernel;
  double startNs = 0, totalNs = 0;
  EngineStats engines[kNumStatGroups];
};

struct SimResult {
  double totalNs = 0;
  EngineStats engines[kNumStatGroups];
  std::vector<TraceEvent> events;
  /// Filled by append(): where each appended run lies.
  std::vector<Span> spans;

  /// Appends `r`, a run of `kernel`, as if it ran after everything
  /// recorded so far.
  void append(const SimResult &r, const std::string &kernel = "");
};

const char *statGroupName(int group);

class Simulator {
public:
  explicit Simulator(const MachineModel &model);
  const MachineModel &model() const { return m; }

  /// Runs `p` with `tensors[i]` as hbm tensor i. SBUF and PSUM keep their
  /// contents between runs, as on hardware. Returns "" or an error naming
  /// the stream, instruction and the rule broken.
  std::string run(const Program &p, const HbmTensor *tensors, size_t count,
                  const SimOptions &opts, SimResult &result);

private:
  const MachineModel &m;
  std::vector<uint8_t> sbuf, psum;
};

/// Chrome / Perfetto trace: one track per engine and DMA queue, and one with
/// a slice per dispatch.
std::string traceJson(const SimResult &r);
/// {"total_ns": ..., "engines": {"tensor": {"busy_ns": ..., "instructions":
/// ...}, "vector": ..., "scalar": ..., "gpsimd": ..., "dma": ...},
///  "dispatches": [{"kernel": ..., "start_ns": ..., "total_ns": ...,
///                  "engines": {...}}, ...]}
std::string statsJson(const SimResult &r);

// The element conversions the simulator computes with: the tools' own.
using tooling::bf16ToFloat;
using tooling::floatToBf16;
inline float f16ToFloat(uint16_t v) { return tooling::halfToFloat(v); }
inline uint16_t floatToF16(float f) { return tooling::floatToHalf(f); }

} // namespace kiln::npu

#endif // KILN_NPU_SIMULATOR_H

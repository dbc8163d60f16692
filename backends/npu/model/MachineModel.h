//===- MachineModel.h - NeuronCore-style machine parameters -------*- C++ -*-===//
//
// Every number here is listed with its public source, or marked as an
// estimate, in docs/npu.md ("Machine model"). The table in MachineModel.cpp
// is the single place they are defined.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_NPU_MACHINEMODEL_H
#define KILN_NPU_MACHINEMODEL_H

#include <cstdint>
#include <string>

namespace kiln::npu {

struct MachineModel {
  const char *name;
  const char *description;
  // Clocks in GHz: engine cycles convert to ns through these.
  double tensorGhz, vectorGhz, scalarGhz, gpsimdGhz;
  // Memories.
  uint64_t sbufPartitionBytes; // x 128 partitions.
  uint64_t psumPartitionBytes; // x 128 partitions.
  uint64_t psumBankBytes;      // A matmul's output stays within one bank.
  // Tensor Engine: a peRows x peCols systolic array.
  uint32_t peRows, peCols;
  uint32_t matmulMinCycles;      // The 64 of max(min(64, S), N).
  uint32_t fp32RateDivisor;      // fp32 matmul runs at 1/4 rate.
  uint32_t stationaryLoadCycles; // Shifting weights through the rows.
  // Vector / Scalar / GpSimd: max(minInstrCycles, N) per instruction.
  uint32_t minInstrCycles;
  // DMA.
  uint32_t dmaQueues;
  double hbmGBps;    // Per NeuronCore; split evenly over the queues.
  double dmaFixedNs; // Per transfer start-up cost.

  /// Cycles for the array's fill and drain: a matmul's results reach PSUM
  /// this long after its last moving column entered.
  uint32_t matmulLatency() const { return peRows + peCols - 2; }
  double dmaQueueBytesPerNs() const { return hbmGBps / dmaQueues; }
};

/// "trn1" (default) or "trn2"; nullptr for other names.
const MachineModel *findMachineModel(const std::string &name);
const MachineModel &defaultMachineModel();
/// Names of all presets, comma separated, for messages.
const char *machineModelNames();

} // namespace kiln::npu

#endif // KILN_NPU_MACHINEMODEL_H

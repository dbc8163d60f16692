//===- MachineModel.cpp - The trn1-like and trn2-like presets -------------===//
//
// Sources are in docs/npu.md, table "Machine model"; (E) marks estimates.
//
//===----------------------------------------------------------------------===//
#include "MachineModel.h"

namespace kiln::npu {

namespace {

constexpr uint64_t KiB = 1024;

const MachineModel kPresets[] = {
    {"trn1",
     "Trainium1-like NeuronCore-v2",
     /*tensorGhz=*/2.8, // Issue 5; ~ 95 TFLOPS bf16 per core / (2*128*128).
     /*vectorGhz=*/1.4, /*scalarGhz=*/1.4, /*gpsimdGhz=*/1.4, // (E)
     /*sbufPartitionBytes=*/192 * KiB, // 24 MiB / 128 partitions.
     /*psumPartitionBytes=*/16 * KiB,  // 2 MiB / 128 partitions.
     /*psumBankBytes=*/2 * KiB,        // 8 banks per partition.
     /*peRows=*/128, /*peCols=*/128,
     /*matmulMinCycles=*/64, /*fp32RateDivisor=*/4,
     /*stationaryLoadCycles=*/128, // One array row per cycle (E).
     /*minInstrCycles=*/64,
     /*dmaQueues=*/16,
     /*hbmGBps=*/410.0,   // 820 GB/s per Trainium1 chip, 2 NeuronCores.
     /*dmaFixedNs=*/2000.0}, // (E)
    {"trn2",
     "Trainium2-like NeuronCore-v3",
     /*tensorGhz=*/2.54, // (E) 667 TFLOPS bf16 per chip / 8 cores / 32768.
     /*vectorGhz=*/0.96, /*scalarGhz=*/1.4, /*gpsimdGhz=*/1.4, // (E)
     /*sbufPartitionBytes=*/192 * KiB,
     /*psumPartitionBytes=*/16 * KiB,
     /*psumBankBytes=*/2 * KiB,
     /*peRows=*/128, /*peCols=*/128,
     /*matmulMinCycles=*/64, /*fp32RateDivisor=*/4,
     /*stationaryLoadCycles=*/128,
     /*minInstrCycles=*/64,
     /*dmaQueues=*/16,
     /*hbmGBps=*/362.5,  // 2.9 TB/s per Trainium2 chip, 8 NeuronCores.
     /*dmaFixedNs=*/2000.0}, // (E)
};

} // namespace

const MachineModel *findMachineModel(const std::string &name) {
  for (const MachineModel &m : kPresets)
    if (name == m.name)
      return &m;
  return nullptr;
}

const MachineModel &defaultMachineModel() { return kPresets[0]; }

const char *machineModelNames() { return "trn1, trn2"; }

} // namespace kiln::npu

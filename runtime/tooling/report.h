//===- report.h - What tools print about outputs and profiles ---*- C++ -*-===//
//
// The text kiln-run prints: a summary of each output, the latency of
// repeated runs, the slowest dispatches of a profiled run, the npu's engine
// utilization and the device list. Returned as strings so tests can read
// them.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_RUNTIME_TOOLING_REPORT_H
#define KILN_RUNTIME_TOOLING_REPORT_H

#include "kiln/runtime.h"

#include <cstdint>
#include <string>
#include <vector>

namespace kiln::tooling {

/// A value as printed: 6 significant digits for floats, whole for the rest.
std::string formatValue(kiln_dtype t, double v);

/// "output 'y': f32[2,3] min=... max=... mean=... [nan=N]" and a line with
/// the first 16 values (every value with `all`).
std::string summarizeOutput(const kiln_tensor_info &info,
                            const std::vector<uint8_t> &data, bool all);

/// "latency over N runs: min=... ms median=... ms" for run times in ms.
std::string latencySummary(std::vector<double> timesMs);

/// One line per device of the built-in drivers ("cpu:0        available:
/// host CPU..."; an unavailable one's description says why), or that there
/// are none. `error` says when a device's info cannot be read.
std::string deviceList(std::string &error);

/// The `shown` dispatches of `infos` (one run's, in launch order) that
/// took longest, with their share of the run: from the start of its first
/// dispatch to the end of its last.
std::string slowestDispatches(const std::string &device,
                              const std::vector<kiln_dispatch_info> &infos,
                              size_t shown = 10);

/// Each engine's share of the simulated time, from npu stats in the fixed
/// format of docs/npu.md ({"total_ns": T, "engines": {"NAME": {"busy_ns":
/// B, "instructions": N}, ...}}). When it is not that, `error` says so and
/// the text is what came before.
std::string engineUtilization(const std::string &stats, std::string &error);

} // namespace kiln::tooling

#endif // KILN_RUNTIME_TOOLING_REPORT_H

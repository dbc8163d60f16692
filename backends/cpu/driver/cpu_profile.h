//===- cpu_profile.h - Timings of cpu dispatches and their JSON -*- C++ -*-===//
//
// When a cpu device is opened with a trace or stats path, every dispatch is
// timed: its wall time on the calling thread (from handing the grid to the
// pool until the last workgroup is done) and, per thread of the pool, the
// span from the start of its first workgroup to the end of its last and the
// time spent inside workgroups. synchronize() turns the dispatches since the
// previous one into the two files:
//
//  - trace: Chrome/Perfetto JSON (ui.perfetto.dev, chrome://tracing) with a
//    "dispatches" track and one track per thread ("worker 0" is the thread
//    that called kiln_session_run); each slice is named after the ONNX ops
//    the kernel computes (else the kernel), args: kernel, ops, workgroups.
//  - stats: {"device", "threads", "total_ns" (first dispatch start to last
//    dispatch end), "dispatch_ns" (sum of dispatch wall times), "workers":
//    [{"thread", "busy_ns", "workgroups", "utilization"}], "dispatches":
//    slowest first [{"index", "kernel", "ops", "workgroups", "start_ns",
//    "total_ns", "share", "utilization", "workers": [...]}], "top": the 10
//    slowest as {"index", "kernel", "ops", "total_ns", "share"}}.
//    share = total_ns / the window's total_ns; a dispatch's utilization is
//    its threads' busy time over threads x its wall time.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_CPU_PROFILE_H
#define KILN_CPU_PROFILE_H

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace kiln::cpu {

inline int64_t nowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

/// What one thread did for one dispatch. Written only by that thread while
/// the dispatch runs, and a cache line each so that neighbouring threads'
/// writes do not slow each other down.
struct alignas(64) WorkerSpan {
  int64_t firstNs = 0, lastNs = 0, busyNs = 0;
  uint64_t workgroups = 0;
};

struct DispatchRecord {
  std::string kernel, ops;
  uint32_t grid[3] = {0, 0, 0};
  int64_t startNs = 0, endNs = 0;
  std::vector<WorkerSpan> workers; // One per pool thread; 0 is the caller.
};

std::string traceJson(const std::vector<DispatchRecord> &window);
std::string statsJson(const std::vector<DispatchRecord> &window);

} // namespace kiln::cpu

#endif // KILN_CPU_PROFILE_H

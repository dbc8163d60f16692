//===- cpu_profile.cpp - Trace and stats JSON of timed cpu dispatches -----===//
//
// Formats in cpu_profile.h. Times are relative to the first dispatch of the
// window; the trace counts microseconds (Chrome's unit), the stats
// nanoseconds.
//
//===----------------------------------------------------------------------===//
#include "cpu_profile.h"

#include <algorithm>
#include <cstdio>
#include <numeric>

namespace kiln::cpu {
namespace {

/// `s` as a JSON string: node names come from the model and may hold quotes,
/// backslashes or control characters.
std::string quote(const std::string &s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\u%04x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

std::string number(double v, const char *format = "%.3f") {
  char buf[64];
  std::snprintf(buf, sizeof(buf), format, v);
  return buf;
}

std::string integer(int64_t v) { return std::to_string(v); }

/// What a slice is called: the ONNX ops, else the kernel.
const std::string &label(const DispatchRecord &d) {
  return d.ops.empty() ? d.kernel : d.ops;
}

uint64_t workgroups(const DispatchRecord &d) {
  return uint64_t(d.grid[0]) * d.grid[1] * d.grid[2];
}

size_t threadCount(const std::vector<DispatchRecord> &window) {
  return window.empty() ? 0 : window.front().workers.size();
}

int64_t windowStart(const std::vector<DispatchRecord> &window) {
  return window.empty() ? 0 : window.front().startNs;
}

int64_t windowTotal(const std::vector<DispatchRecord> &window) {
  return window.empty() ? 0 : window.back().endNs - window.front().startNs;
}

/// The args every slice of a dispatch carries.
std::string sliceArgs(const DispatchRecord &d, size_t index) {
  return "\"index\": " + integer(index) + ", \"kernel\": " + quote(d.kernel) +
         ", \"ops\": " + quote(d.ops);
}

} // namespace

std::string traceJson(const std::vector<DispatchRecord> &window) {
  int64_t origin = windowStart(window);
  auto us = [&](int64_t ns) { return number((ns - origin) / 1000.0); };
  size_t threads = threadCount(window);
  std::string out = "{\"displayTimeUnit\": \"ns\", \"traceEvents\": [\n";
  out += "{\"name\": \"process_name\", \"ph\": \"M\", \"pid\": 0, \"args\": {\"name\": "
         "\"cpu (" + integer(threads) + " threads)\"}}";
  // Track 0 holds the dispatches, track w + 1 thread w of the pool.
  for (size_t t = 0; t <= threads; ++t) {
    std::string name = t == 0   ? "dispatches"
                       : t == 1 ? "worker 0 (calling thread)"
                                : "worker " + integer(t - 1);
    out += ",\n{\"name\": \"thread_name\", \"ph\": \"M\", \"pid\": 0, \"tid\": " +
           integer(t) + ", \"args\": {\"name\": " + quote(name) + "}}";
    out += ",\n{\"name\": \"thread_sort_index\", \"ph\": \"M\", \"pid\": 0, \"tid\": " +
           integer(t) + ", \"args\": {\"sort_index\": " + integer(t) + "}}";
  }
  for (size_t i = 0; i < window.size(); ++i) {
    const DispatchRecord &d = window[i];
    out += ",\n{\"name\": " + quote(label(d)) +
           ", \"cat\": \"dispatch\", \"ph\": \"X\", \"pid\": 0, \"tid\": 0, \"ts\": " +
           us(d.startNs) + ", \"dur\": " + number((d.endNs - d.startNs) / 1000.0) +
           ", \"args\": {" + sliceArgs(d, i) + ", \"workgroups\": " + integer(workgroups(d)) +
           ", \"grid\": [" + integer(d.grid[0]) + ", " + integer(d.grid[1]) + ", " +
           integer(d.grid[2]) + "]}}";
    for (size_t w = 0; w < d.workers.size(); ++w) {
      const WorkerSpan &s = d.workers[w];
      if (!s.workgroups)
        continue; // Woke up after the others had taken every workgroup.
      out += ",\n{\"name\": " + quote(label(d)) +
             ", \"cat\": \"worker\", \"ph\": \"X\", \"pid\": 0, \"tid\": " + integer(w + 1) +
             ", \"ts\": " + us(s.firstNs) + ", \"dur\": " +
             number((s.lastNs - s.firstNs) / 1000.0) + ", \"args\": {" + sliceArgs(d, i) +
             ", \"workgroups\": " + integer(s.workgroups) +
             ", \"busy_us\": " + number(s.busyNs / 1000.0) + "}}";
    }
  }
  return out + "\n]}\n";
}

std::string statsJson(const std::vector<DispatchRecord> &window) {
  const size_t kTop = 10;
  int64_t origin = windowStart(window), total = windowTotal(window);
  size_t threads = threadCount(window);
  auto share = [&](int64_t ns) { return number(total > 0 ? double(ns) / total : 0, "%.6f"); };
  int64_t dispatchNs = 0;
  std::vector<int64_t> busy(threads, 0);
  std::vector<uint64_t> groups(threads, 0);
  for (const DispatchRecord &d : window) {
    dispatchNs += d.endNs - d.startNs;
    for (size_t w = 0; w < threads; ++w) {
      busy[w] += d.workers[w].busyNs;
      groups[w] += d.workers[w].workgroups;
    }
  }

  std::string out = "{\"device\": \"cpu\", \"threads\": " + integer(threads) +
                    ", \"total_ns\": " + integer(total) +
                    ", \"dispatch_ns\": " + integer(dispatchNs) + ",\n \"workers\": [";
  for (size_t w = 0; w < threads; ++w)
    out += std::string(w ? ", " : "") + "{\"thread\": " + integer(w) +
           ", \"busy_ns\": " + integer(busy[w]) + ", \"workgroups\": " + integer(groups[w]) +
           ", \"utilization\": " + share(busy[w]) + "}";

  // Slowest first; ties keep launch order.
  std::vector<size_t> order(window.size());
  std::iota(order.begin(), order.end(), 0);
  auto wall = [&](size_t i) { return window[i].endNs - window[i].startNs; };
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return wall(a) > wall(b); });
  out += "],\n \"dispatches\": [";
  for (size_t k = 0; k < order.size(); ++k) {
    const DispatchRecord &d = window[order[k]];
    int64_t dispatchBusy = 0;
    std::string workers;
    for (size_t w = 0; w < d.workers.size(); ++w) {
      const WorkerSpan &s = d.workers[w];
      dispatchBusy += s.busyNs;
      if (!s.workgroups)
        continue;
      workers += std::string(workers.empty() ? "" : ", ") + "{\"thread\": " + integer(w) +
                 ", \"start_ns\": " + integer(s.firstNs - origin) +
                 ", \"total_ns\": " + integer(s.lastNs - s.firstNs) +
                 ", \"busy_ns\": " + integer(s.busyNs) +
                 ", \"workgroups\": " + integer(s.workgroups) + "}";
    }
    double capacity = double(wall(order[k])) * threads;
    out += std::string(k ? "," : "") + "\n  {" + sliceArgs(d, order[k]) +
           ", \"workgroups\": " + integer(workgroups(d)) +
           ", \"start_ns\": " + integer(d.startNs - origin) +
           ", \"total_ns\": " + integer(wall(order[k])) +
           ", \"share\": " + share(wall(order[k])) + ", \"utilization\": " +
           number(capacity > 0 ? dispatchBusy / capacity : 0, "%.6f") +
           ", \"workers\": [" + workers + "]}";
  }
  out += "],\n \"top\": [";
  for (size_t k = 0; k < std::min(kTop, order.size()); ++k)
    out += std::string(k ? "," : "") + "\n  {" + sliceArgs(window[order[k]], order[k]) +
           ", \"total_ns\": " + integer(wall(order[k])) +
           ", \"share\": " + share(wall(order[k])) + "}";
  return out + "]}\n";
}

} // namespace kiln::cpu

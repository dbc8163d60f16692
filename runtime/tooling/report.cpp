//===- report.cpp - What tools print about outputs and profiles -----------===//
#include "report.h"
#include "element.h"
#include "inputs.h"

#include <algorithm>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstring>

namespace kiln::tooling {
namespace {

/// printf into a string.
__attribute__((format(printf, 2, 3))) void append(std::string &out,
                                                  const char *format, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, format);
  int n = std::vsnprintf(buf, sizeof(buf), format, ap);
  va_end(ap);
  if (n < static_cast<int>(sizeof(buf))) {
    out += buf;
    return;
  }
  std::string big(static_cast<size_t>(n) + 1, '\0');
  va_start(ap, format);
  std::vsnprintf(big.data(), big.size(), format, ap);
  va_end(ap);
  out += big.c_str();
}

} // namespace

std::string formatValue(kiln_dtype t, double v) {
  char buf[64];
  if (isFloat(t))
    std::snprintf(buf, sizeof(buf), "%.6g", v);
  else
    std::snprintf(buf, sizeof(buf), "%.0f", v);
  return buf;
}

std::string summarizeOutput(const kiln_tensor_info &info,
                            const std::vector<uint8_t> &data, bool all) {
  std::vector<int64_t> dims(info.dims, info.dims + info.rank);
  size_t elem = kiln_dtype_size(info.dtype);
  size_t count = elem ? data.size() / elem : 0;
  std::string out;
  append(out, "output '%s': %s", info.name, typeString(info.dtype, dims).c_str());
  if (!count)
    return out + " (empty)\n";
  double lo = INFINITY, hi = -INFINITY, sum = 0;
  size_t nans = 0;
  for (size_t i = 0; i < count; ++i) {
    double v = loadElement(info.dtype, data.data() + i * elem);
    if (std::isnan(v)) {
      ++nans;
      continue;
    }
    lo = std::min(lo, v);
    hi = std::max(hi, v);
    sum += v;
  }
  if (nans < count)
    append(out, " min=%s max=%s mean=%.6g", formatValue(info.dtype, lo).c_str(),
           formatValue(info.dtype, hi).c_str(), sum / double(count - nans));
  if (nans)
    append(out, " nan=%zu", nans);
  size_t shown = all ? count : std::min<size_t>(count, 16);
  out += "\n  [";
  for (size_t i = 0; i < shown; ++i)
    out += (i ? ", " : "") +
           formatValue(info.dtype, loadElement(info.dtype, data.data() + i * elem));
  if (shown < count)
    append(out, ", ... (%zu more)", count - shown);
  return out + "]\n";
}

std::string slowestDispatches(const std::string &device,
                              const std::vector<kiln_dispatch_info> &infos,
                              size_t shown) {
  size_t n = infos.size();
  double begin = 0, end = 0;
  for (size_t i = 0; i < n; ++i) {
    begin = i ? std::min(begin, infos[i].start_ns) : infos[i].start_ns;
    end = std::max(end, infos[i].start_ns + infos[i].time_ns);
  }
  std::vector<size_t> order(n);
  for (size_t i = 0; i < n; ++i)
    order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return infos[a].time_ns > infos[b].time_ns;
  });
  double span = end - begin;
  std::string out;
  append(out, "profile of the last run on %s: %zu dispatches in %.3f ms\n",
         device.c_str(), n, span / 1e6);
  if (!n)
    return out;
  append(out, "  %-8s %10s %9s  %s\n", "dispatch", "ms", "% of run", "ONNX ops");
  for (size_t k = 0; k < std::min(shown, n); ++k) {
    const kiln_dispatch_info &d = infos[order[k]];
    std::string ops = *d.ops ? d.ops : std::string("(") + d.kernel + ")";
    if (ops.size() > 100)
      ops = ops.substr(0, 96) + " ...";
    append(out, "  %-8zu %10.3f %8.1f%%  %s\n", order[k], d.time_ns / 1e6,
           span > 0 ? 100 * d.time_ns / span : 0.0, ops.c_str());
  }
  if (n > shown)
    append(out, "  (%zu more)\n", n - shown);
  return out;
}

std::string engineUtilization(const std::string &text, std::string &error) {
  error.clear();
  double total = 0;
  const char *p = std::strstr(text.c_str(), "\"total_ns\":");
  if (!p || std::sscanf(p, "\"total_ns\": %lf", &total) != 1) {
    error = "malformed stats: " + text;
    return "";
  }
  std::string out;
  append(out, "simulated time: %.3f us\n", total / 1000);
  for (const char *e : {"tensor", "vector", "scalar", "gpsimd", "dma"}) {
    std::string key = std::string("\"") + e + "\": {";
    const char *q = std::strstr(text.c_str(), key.c_str());
    double busy;
    unsigned long long n;
    if (!q || std::sscanf(q + key.size(), "\"busy_ns\": %lf, \"instructions\": %llu",
                          &busy, &n) != 2) {
      error = "malformed stats: " + text;
      return out;
    }
    append(out, "  %-7s %6.2f%% busy  %10.3f us  %llu instructions\n", e,
           total > 0 ? 100 * busy / total : 0.0, busy / 1000, n);
  }
  return out;
}


std::string latencySummary(std::vector<double> timesMs) {
  if (timesMs.empty())
    return "";
  std::sort(timesMs.begin(), timesMs.end());
  size_t n = timesMs.size();
  double median = n % 2 ? timesMs[n / 2] : (timesMs[n / 2 - 1] + timesMs[n / 2]) / 2;
  std::string out;
  append(out, "latency over %zu runs: min=%.4g ms median=%.4g ms\n", n, timesMs.front(),
         median);
  return out;
}

std::string deviceList(std::string &error) {
  size_t n = kiln_device_count();
  if (!n)
    return "no devices (the runtime was built without drivers)\n";
  std::string out;
  for (size_t i = 0; i < n; ++i) {
    kiln_device_info d;
    if (kiln_device_info_get(i, &d) != KILN_OK) {
      error = kiln_last_error();
      return out;
    }
    // Unavailable devices' descriptions start with "unavailable: <why>".
    append(out, "%-12s %s%s\n", d.name, d.available ? "available: " : "", d.description);
  }
  return out;
}

} // namespace kiln::tooling

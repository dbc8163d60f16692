//===- profile.cpp - kiln-run's --profile and --stats plumbing ------------===//
#include "profile.h"
#include "report.h"

#include <cstdio>
#include <cstdlib>
#include <unistd.h>

namespace kiln::tooling {

ProfileFiles ProfileFiles::prepare(const std::string &trace, const std::string &stats) {
  ProfileFiles f{trace, stats, false};
  if (f.stats.empty() && !f.trace.empty()) {
    f.stats = tempStatsPath();
    f.tempStats = true;
  }
  for (const std::string &path : {f.trace, f.stats})
    if (!path.empty())
      std::remove(path.c_str());
  return f;
}

std::string ProfileFiles::takeStats() const {
  if (stats.empty())
    return "";
  std::string text = readText(stats);
  if (tempStats)
    std::remove(stats.c_str());
  return text;
}

std::string tempStatsPath() {
  const char *dir = std::getenv("TMPDIR");
  return std::string(dir && *dir ? dir : "/tmp") + "/kiln-run-stats-" +
         std::to_string(::getpid()) + ".json";
}

std::string readText(const std::string &path) {
  std::string text;
  if (FILE *f = std::fopen(path.c_str(), "rb")) {
    char buf[4096];
    for (size_t n; (n = std::fread(buf, 1, sizeof(buf), f)) > 0;)
      text.append(buf, n);
    std::fclose(f);
  }
  return text;
}

std::string profileReport(const std::string &device,
                          const std::vector<kiln_dispatch_info> &dispatches,
                          const std::string &statsText, std::string &error) {
  if (statsText.empty())
    return "device " + device + " records no profile\n";
  std::string text;
  bool timed = true;
  for (const kiln_dispatch_info &d : dispatches)
    timed &= d.time_ns >= 0;
  if (timed)
    text += slowestDispatches(device, dispatches);
  // The npu's stats add what each engine did.
  if (statsText.find("\"engines\"") != std::string::npos)
    text += engineUtilization(statsText, error);
  return text;
}

} // namespace kiln::tooling

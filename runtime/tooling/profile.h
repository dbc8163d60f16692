//===- profile.h - kiln-run's --profile and --stats plumbing ----*- C++ -*-===//
//
// Where a profiled run's trace and statistics go, and what kiln-run prints
// from them after the run. Utilization is read back from the stats file,
// so there is one whenever a profile is wanted: a temporary one when only
// --profile was given.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_RUNTIME_TOOLING_PROFILE_H
#define KILN_RUNTIME_TOOLING_PROFILE_H

#include "kiln/runtime.h"

#include <string>
#include <vector>

namespace kiln::tooling {

struct ProfileFiles {
  std::string trace; // --profile; empty: none.
  std::string stats; // --stats, or a temporary file; empty: none.
  bool tempStats = false;

  /// The files for --profile=`trace` and --stats=`stats` (either may be
  /// empty). Removes stale ones, so that "not written" can be told apart.
  static ProfileFiles prepare(const std::string &trace, const std::string &stats);

  /// The stats file's text ("" when it was not written, or none was
  /// asked for); a temporary file is removed.
  std::string takeStats() const;
};

/// A file in $TMPDIR (else /tmp) for this process's statistics.
std::string tempStatsPath();

/// The contents of `path`; "" when it cannot be read.
std::string readText(const std::string &path);

/// What kiln-run prints after a profiled run on `device`, given the
/// dispatches of the last run (in launch order) and the stats file's text:
/// that the device records no profile (no text), else the slowest
/// dispatches (when their times were recorded) and, for npu stats, each
/// engine's utilization. `error` says when the stats are malformed; the
/// text is then what came before.
std::string profileReport(const std::string &device,
                          const std::vector<kiln_dispatch_info> &dispatches,
                          const std::string &statsText, std::string &error);

} // namespace kiln::tooling

#endif // KILN_RUNTIME_TOOLING_PROFILE_H

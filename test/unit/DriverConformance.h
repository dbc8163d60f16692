//===- DriverConformance.h - Cases of the driver conformance suite -*- C++ -*-===//
//
// DriverConformanceTest.cpp runs every driver built in: the cpu, each GPU
// driver against its mock (MockGpus.h), and the cases a backend adds from its
// own folder with a ConformanceCase in a source it registers with
// kiln_add_unit_tests(kiln-driver-conformance-tests ...).
//
//===----------------------------------------------------------------------===//
#ifndef KILN_TEST_UNIT_DRIVERCONFORMANCE_H
#define KILN_TEST_UNIT_DRIVERCONFORMANCE_H

#include "DirectDriver.h"

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

namespace kiln::test {

/// Elements the kernels add: 128 x 4, one tile of the simulated npu.
constexpr int64_t kConformanceCount = 512;

/// A driver and the vector-add kernel it runs: out[i] = a[i] + b[i] for
/// i < n, with bindings (a, b, out, n) and n an i64 at byte 8 of its buffer.
struct DriverCase {
  std::string name;
  const kiln_driver *driver; // A case without one is not this build's.
  std::string format;
  std::vector<uint8_t> image;
  kiln_driver_entry kernel;
  uint32_t grid[3];
};

inline std::ostream &operator<<(std::ostream &os, const DriverCase &c) {
  return os << c.name;
}

/// The cpu's executable format on this host.
const char *cpuFormat();
/// test_kernels.c built as the cpu's shared object.
std::vector<uint8_t> cpuTestKernels();

/// Adds the case `make` returns to the suite; `make` runs once main has
/// started, so it may build images with whatever a backend needs.
struct ConformanceCase {
  explicit ConformanceCase(DriverCase (*make)());
};

} // namespace kiln::test

#endif // KILN_TEST_UNIT_DRIVERCONFORMANCE_H

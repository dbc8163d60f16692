//===- LevelZeroCpuConformance.cpp - levelzero-cpu's driver conformance ---===//
//
// levelzero-cpu runs levelzero's kernels on the cpu driver, one cpu-ABI
// function per workgroup of 16 invocations: test_kernels.c's vadd_wg16 is
// one shaped that way. Linked into test/unit's kiln-driver-conformance-tests
// (DriverConformance.h).
//
//===----------------------------------------------------------------------===//
#include "DriverConformance.h"

namespace {

kiln::test::DriverCase levelzeroCpu() {
  using namespace kiln::test;
  constexpr uint32_t groups = kConformanceCount / 16;
  return {"levelzero_cpu", directDriver("cpu"), cpuFormat(), cpuTestKernels(),
          {"vadd_wg16", {1, 1, 1}, ""}, {groups, 1, 1}};
}

const kiln::test::ConformanceCase registered(levelzeroCpu);

} // namespace

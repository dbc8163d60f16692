//===- DirectDriver.h - For tests that link driver objects directly -*- C++ -*-===//
//
// A test binary that calls drivers' vtables links the objects of every
// driver the build registered (kiln_add_runtime_driver) itself, with
// DirectDriver.cpp: the two functions libkiln_runtime gives the drivers (the
// runtime's own copies are hidden), which keep the last error in
// `driverError`, and the table of their entry points that
// test/unit/CMakeLists.txt generates. So the tests find a driver by name.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_TEST_UNIT_DIRECTDRIVER_H
#define KILN_TEST_UNIT_DIRECTDRIVER_H

#include "kiln/driver.h"

#include <string>

namespace kiln::test {
inline thread_local std::string driverError;

/// Null-terminated, in the build's driver order (generated).
extern const kiln_driver_entry_fn directDriverEntries[];

/// The linked-in driver called `name`; null when the build has none.
inline const kiln_driver *directDriver(const std::string &name) {
  for (const kiln_driver_entry_fn *entry = directDriverEntries; *entry; ++entry)
    if (name == (*entry)()->name)
      return (*entry)();
  return nullptr;
}
} // namespace kiln::test

#endif // KILN_TEST_UNIT_DIRECTDRIVER_H

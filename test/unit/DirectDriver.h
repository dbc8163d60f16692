//===- DirectDriver.h - For tests that link driver objects directly -*- C++ -*-===//
//
// A test binary that calls drivers' vtables links their objects itself, so
// it defines the two functions libkiln_runtime gives them (the runtime's
// own copies are hidden), keeping the last error in `driverError`. Include
// in one file per binary.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_TEST_UNIT_DIRECTDRIVER_H
#define KILN_TEST_UNIT_DIRECTDRIVER_H

#include "kiln/driver.h"

#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

namespace kiln::test {
inline thread_local std::string driverError;

/// Points the GPU drivers at the mock vendor libraries the build defines.
/// Before the first device query: drivers read these once.
inline void useMockLibraries() {
#ifdef KILN_MOCK_CUDA
  ::setenv("KILN_CUDA_LIBRARY", KILN_MOCK_CUDA, 1);
#endif
#ifdef KILN_MOCK_HIP
  ::setenv("KILN_HIP_LIBRARY", KILN_MOCK_HIP, 1);
#endif
#ifdef KILN_MOCK_LEVELZERO
  ::setenv("KILN_LEVEL_ZERO_LIBRARY", KILN_MOCK_LEVELZERO, 1);
#endif
  ::unsetenv("KILN_MOCK_INIT_ERROR");
}
} // namespace kiln::test

extern "C" kiln_status kiln_driver_error(kiln_status status, const char *format,
                                         ...) {
  char buf[4096];
  va_list ap;
  va_start(ap, format);
  std::vsnprintf(buf, sizeof(buf), format, ap);
  va_end(ap);
  kiln::test::driverError = buf;
  return status;
}

extern "C" kiln_status kiln_driver_write_file(const char *path, const void *data,
                                              size_t size) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(static_cast<const char *>(data), static_cast<std::streamsize>(size));
  return f ? KILN_OK : kiln_driver_error(KILN_ERROR_IO, "cannot write %s", path);
}

#endif // KILN_TEST_UNIT_DIRECTDRIVER_H

//===- DirectDriver.cpp - What the runtime gives drivers, for the tests ---===//
#include "DirectDriver.h"

#include <cstdarg>
#include <cstdio>
#include <fstream>

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

//===- FuzzUtil.h - Shared by the libFuzzer targets -------------*- C++ -*-===//
#ifndef KILN_TEST_FUZZ_FUZZUTIL_H
#define KILN_TEST_FUZZ_FUZZUTIL_H

#include "npy.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <string>

namespace kiln::fuzz {

/// An in-memory file holding `size` bytes of `data`, named by a path that
/// the readers, which take paths, can open ("/proc/self/fd/N").
struct MemFile {
  int fd = -1;
  std::string path;
  MemFile(const uint8_t *data, size_t size) {
    fd = ::memfd_create("kiln-fuzz", MFD_CLOEXEC);
    if (fd < 0)
      std::abort();
    for (size_t done = 0; done < size;) {
      ssize_t n = ::write(fd, data + done, size - done);
      if (n <= 0)
        std::abort();
      done += static_cast<size_t>(n);
    }
    path = "/proc/self/fd/" + std::to_string(fd);
  }
  ~MemFile() { ::close(fd); }
  MemFile(const MemFile &) = delete;
  MemFile &operator=(const MemFile &) = delete;
};

/// Aborts unless `array` is a known dtype with non-negative dims and exactly
/// as many bytes of data as they say: what every reader promises.
inline void checkArray(const npy::Array &array) {
  uint64_t bytes = kiln_dtype_size(array.dtype);
  if (bytes == 0)
    std::abort();
  for (int64_t d : array.shape) {
    if (d < 0)
      std::abort();
    bytes *= static_cast<uint64_t>(d);
  }
  if (array.data.size() != bytes)
    std::abort();
}

} // namespace kiln::fuzz

#endif // KILN_TEST_FUZZ_FUZZUTIL_H

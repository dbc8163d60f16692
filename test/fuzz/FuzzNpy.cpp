//===- FuzzNpy.cpp - libFuzzer target: the .npy reader --------------------===//
//
// Any bytes: npy::read must return an error or an array whose data is
// exactly as large as its dtype and shape say.
//
//===----------------------------------------------------------------------===//
#include "FuzzUtil.h"
#include "npy.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  kiln::fuzz::MemFile file(data, size);
  kiln::npy::Array array;
  if (!kiln::npy::read(file.path, array).empty())
    return 0;
  uint64_t bytes = kiln_dtype_size(array.dtype);
  for (int64_t d : array.shape) {
    if (d < 0)
      std::abort();
    bytes *= static_cast<uint64_t>(d);
  }
  if (bytes == 0 && kiln_dtype_size(array.dtype) == 0)
    std::abort(); // an unknown dtype was accepted
  if (array.data.size() != bytes)
    std::abort();
  return 0;
}

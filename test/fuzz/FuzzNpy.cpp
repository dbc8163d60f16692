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
  kiln::fuzz::checkArray(array);
  return 0;
}

//===- FuzzTensorProto.cpp - libFuzzer target: the TensorProto decoder ----===//
//
// Any bytes: tensor_proto::decode must return an error or an array whose
// data is exactly as large as its dtype and shape say; encoding that array
// and decoding it again must give it back.
//
//===----------------------------------------------------------------------===//
#include "tensor_proto.h"

#include <cstdlib>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  kiln::npy::Array array;
  std::string name;
  if (!kiln::tensor_proto::decode(data, size, array, name).empty())
    return 0;
  uint64_t bytes = kiln_dtype_size(array.dtype);
  for (int64_t d : array.shape) {
    if (d < 0)
      std::abort();
    bytes *= static_cast<uint64_t>(d);
  }
  if (kiln_dtype_size(array.dtype) == 0 || array.data.size() != bytes)
    std::abort();
  std::vector<uint8_t> again = kiln::tensor_proto::encode(array, name);
  kiln::npy::Array back;
  std::string backName;
  if (!kiln::tensor_proto::decode(again.data(), again.size(), back, backName).empty() ||
      back.dtype != array.dtype || back.shape != array.shape || back.data != array.data ||
      backName != name)
    std::abort();
  return 0;
}

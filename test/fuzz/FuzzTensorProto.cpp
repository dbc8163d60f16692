//===- FuzzTensorProto.cpp - libFuzzer target: the TensorProto decoder ----===//
//
// Any bytes: tensor_proto::decode must return an error or an array whose
// data is exactly as large as its dtype and shape say; encoding that array
// and decoding it again must give it back.
//
//===----------------------------------------------------------------------===//
#include "FuzzUtil.h"
#include "tensor_proto.h"

#include <cstdlib>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  kiln::npy::Array array;
  std::string name;
  if (!kiln::tensor_proto::decode(data, size, array, name).empty())
    return 0;
  kiln::fuzz::checkArray(array);
  std::vector<uint8_t> again = kiln::tensor_proto::encode(array, name);
  kiln::npy::Array back;
  std::string backName;
  if (!kiln::tensor_proto::decode(again.data(), again.size(), back, backName).empty() ||
      back.dtype != array.dtype || back.shape != array.shape || back.data != array.data ||
      backName != name)
    std::abort();
  return 0;
}

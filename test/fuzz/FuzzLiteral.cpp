//===- FuzzLiteral.cpp - libFuzzer target: kiln-run's --input literals ----===//
//
// Any bytes as one --input value. parseInputSpec must accept or refuse it;
// a literal it accepts (DIMSxDTYPE=VALUES, named or not) must become a
// tensor exactly as large as its dtype and dims say, or a refusal. Every
// element of a tensor it gives must read back as the same number when
// printed and parsed again, which is how kiln-run's --print and a later
// --input meet.
//
//===----------------------------------------------------------------------===//
#include "FuzzUtil.h"
#include "element.h"
#include "inputs.h"

#include <cmath>
#include <cstdio>

using namespace kiln::tooling;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  std::string text(reinterpret_cast<const char *>(data), size);
  InputSpec spec;
  if (!parseInputSpec(text, spec).empty() || !spec.file.empty())
    return 0;
  kiln::npy::Array array;
  if (!literalTensor(spec, "x", array).empty())
    return 0;
  kiln::fuzz::checkArray(array);
  if (array.shape != spec.dims || array.dtype != spec.dtype)
    std::abort();
  size_t elem = kiln_dtype_size(array.dtype);
  std::vector<uint8_t> again(elem);
  for (size_t off = 0; off < array.data.size(); off += elem) {
    double v = loadElement(array.dtype, array.data.data() + off);
    // Integers past 2^53 do not survive the trip through a double.
    if (std::isnan(v) || (!isFloat(array.dtype) && std::fabs(v) > 0x1p53))
      continue;
    char printed[64];
    std::snprintf(printed, sizeof printed, "%.17g", v);
    if (!storeLiteral(array.dtype, again.data(), printed) ||
        loadElement(array.dtype, again.data()) != v)
      std::abort();
  }
  return 0;
}

//===- NpuConformance.cpp - The npu's case of the driver conformance suite -===//
//
// Linked into test/unit's kiln-driver-conformance-tests (DriverConformance.h).
//
//===----------------------------------------------------------------------===//
#include "DriverConformance.h"

#include "isa/Isa.h"

namespace {

/// The npu's vadd: a and b into SBUF as 128 partitions of 4, added on the
/// Vector engine, out back to HBM; n is not read (the tile is the vector).
std::vector<uint8_t> npuImage() {
  using namespace kiln::npu;
  using Ap = AccessPattern;
  ProgramBuilder b("vadd");
  uint32_t s = b.semaphore();
  auto a = Ap::sbuf(0, 128, 0, DType::F32, {{1, 4}});
  auto c = Ap::sbuf(0, 128, 16, DType::F32, {{1, 4}});
  auto hbm = [](uint32_t t) { return Ap::hbm(t, 0, DType::F32, {{4, 128}, {1, 4}}); };
  b.on(dmaQueue(0)).dmaCopy(a, hbm(0)).signal(s);
  b.on(dmaQueue(1)).dmaCopy(c, hbm(1)).signal(s);
  b.on(Engine::Vector).wait(s, 2).tensorTensor(a, a, c, AluOp::Add).signal(s);
  b.on(dmaQueue(0)).wait(s, 3).dmaCopy(hbm(2), a);
  Module m;
  m.kernels = {b.take()};
  return encodeModule(m);
}

kiln::test::DriverCase npu() {
  return {"npu", kiln::test::directDriver("npu"), kiln::npu::kBinaryFormat,
          npuImage(), {"vadd", {1, 1, 1}, ""}, {1, 1, 1}};
}

const kiln::test::ConformanceCase registered(npu);

} // namespace

//===- NpuTest.cpp - NPU ISA forms, simulator values, timing and checks ---===//
#include "TestUtil.h"

#include "isa/Isa.h"
#include "kiln/runtime.h"
#include "model/MachineModel.h"
#include "sim/Simulator.h"

#include <cmath>
#include <cstdio>
#include <random>

using namespace kiln::npu;
using ::testing::HasSubstr;
using Ap = AccessPattern;

namespace {

const MachineModel &trn1() { return *findMachineModel("trn1"); }

/// A program that touches every opcode, loops and affine offsets included.
Program everything() {
  ProgramBuilder b("all_ops");
  uint32_t s0 = b.semaphore(), s1 = b.semaphore();
  b.on(dmaQueue(3))
      .dmaCopy(Ap::sbuf(0, 128, 64, DType::BF16, {{1, 32}, {64, 2}}),
               Ap::hbm(0, 8, DType::BF16, {{512, 4}, {1, 32}, {128, 8}, {2, 8}}))
      .signal(s0, 2);
  b.on(Engine::Tensor)
      .wait(s0, 2)
      .loop(2, [&](LoopVar i) {
        b.on(Engine::Tensor)
            .loadStationary(Ap::sbuf(0, 128, Affine(0) + i * 256, DType::BF16,
                                     {{1, 128}}))
            .matmul(Ap::psum(32, 64, Affine(2048) + i * 2048, DType::F32,
                             {{1, 512}}),
                    Ap::sbuf(0, 128, 1024, DType::BF16, {{1, 512}}), true);
      })
      .transpose(Ap::psum(0, 64, 0, DType::F32, {{1, 32}}),
                 Ap::sbuf(96, 32, 0, DType::F32, {{1, 64}}))
      .signal(s1);
  b.on(Engine::Scalar)
      .wait(s1, 1)
      .activationReduce(Ap::sbuf(0, 64, 0, DType::F32, {{1, 512}}),
                        Ap::psum(0, 64, 0, DType::F32, {{1, 512}}),
                        ActFunc::Gelu, 0.5f,
                        Ap::sbuf(0, 64, 4096, DType::F32, {{1, 1}}), AluOp::Max,
                        Ap::sbuf(0, 64, 4100, DType::F32, {{1, 1}}))
      .tensorScalar(Ap::sbuf(0, 8, 0, DType::F16, {{2, 4}}),
                    Ap::sbuf(0, 8, 64, DType::F16, {{1, 4}}), AluOp::Multiply,
                    -1.25f, AluOp::Add,
                    Ap::sbuf(0, 8, 128, DType::F32, {{1, 1}}));
  b.on(Engine::Vector)
      .tensorTensor(Ap::sbuf(0, 16, 0, DType::F32, {{1, 8}}),
                    Ap::sbuf(0, 16, 64, DType::F32, {{1, 8}}),
                    Ap::psum(0, 16, 0, DType::F32, {{1, 8}}), AluOp::Subtract)
      .tensorReduce(Ap::sbuf(0, 16, 0, DType::F32, {{1, 2}}),
                    Ap::sbuf(0, 16, 64, DType::F32, {{4, 2}, {1, 4}}), AluOp::Min)
      .copy(Ap::sbuf(0, 16, 0, DType::BF16, {{1, 8}}),
            Ap::sbuf(0, 16, 64, DType::F32, {{1, 8}}))
      .memset(Ap::sbuf(0, 16, 0, DType::F32, {{1, 8}}), 3.5f);
  b.on(Engine::GpSimd).loop(3, [&](LoopVar i) {
    b.on(Engine::GpSimd).loop(2, [&](LoopVar j) {
      b.on(Engine::GpSimd)
          .iota(Ap::sbuf(0, 128, Affine(0) + i * 32 + j * 16, DType::F32,
                         {{1, 4}}),
                Affine(-7) + i * 3, 1, -2);
    });
  });
  return b.take();
}

TEST(NpuIsa, TextRoundTrip) {
  Module m;
  m.kernels = {everything()};
  ASSERT_EQ(verify(m.kernels[0]), "");
  std::string text = printModule(m);
  Module parsed;
  ASSERT_EQ(parseModule(text, parsed), "") << text;
  ASSERT_EQ(parsed.kernels.size(), 1u);
  EXPECT_TRUE(parsed.kernels[0] == m.kernels[0]);
  EXPECT_EQ(printModule(parsed), text);
  EXPECT_THAT(text, HasSubstr("loop 2 {"));
  EXPECT_THAT(text, HasSubstr("psum[32:96, 2048 + 2048*%i0] f32 [[1, 512]]"));
  EXPECT_THAT(text, HasSubstr("base=-7 + 3*%i0"));
}

TEST(NpuIsa, TextFromHand) {
  const char *text = R"(
    // Two kernels; comments and free spacing are fine.
    kernel @a semaphores=1 {
      dma0 { dma_copy sbuf[0:2, 0] f32 [[1, 4]], hbm[0, 0] f32 [[4, 2], [1, 4]]
             sem_signal s0, 1 }
      vector { sem_wait s0, 1
               tensor_scalar sbuf[0:2, 0] f32 [[1,4]], sbuf[0:2, 0] f32 [[1,4]], op0=add, operand0=1 }
    }
    kernel @b semaphores=0 { gpsimd { memset sbuf[0:1, 0] bf16 [[1, 1]], value=2 } }
  )";
  Module m;
  ASSERT_EQ(parseModule(text, m), "");
  ASSERT_EQ(m.kernels.size(), 2u);
  EXPECT_EQ(m.kernels[1].name, "b");
  EXPECT_EQ(m.kernels[0].streams[1][1].op, Opcode::TensorScalar);
  EXPECT_EQ(m.kernels[0].streams[1][1].s0.imm, 1.0f);
}

TEST(NpuIsa, TextErrors) {
  Module m;
  EXPECT_EQ(parseModule("kernel @k semaphores=0 {\n tensor {\n  frob }\n}", m),
            "line 3: unknown instruction 'frob'");
  EXPECT_THAT(parseModule("kernel @k semaphores=0 { vector {\n copy sbuf[0:8, 0] "
                          "f33 [[1, 1]], sbuf[0:8, 0] f32 [[1, 1]] } }", m),
              HasSubstr("line 2: unknown dtype 'f33'"));
  EXPECT_THAT(parseModule("kernel @k semaphores=0 { vector { matmul psum[0:128, 0] "
                          "f32 [[1, 4]], sbuf[0:128, 0] bf16 [[1, 4]] } }", m),
              HasSubstr("matmul cannot run on vector"));
  EXPECT_THAT(parseModule("kernel @k semaphores=1 { tensor { sem_wait s1, 1 } }", m),
              HasSubstr("semaphore s1 not declared"));
  EXPECT_THAT(parseModule("kernel @k semaphores=0 { tensor { loop 2 { } }", m),
              HasSubstr("expected"));
}

TEST(NpuIsa, BinaryRoundTrip) {
  Module m;
  m.kernels = {everything(), everything()};
  m.kernels[1].name = "second";
  std::vector<uint8_t> image = encodeModule(m);
  Module back;
  ASSERT_EQ(decodeModule(image.data(), image.size(), back), "");
  ASSERT_EQ(back.kernels.size(), 2u);
  EXPECT_TRUE(back.kernels[0] == m.kernels[0]);
  EXPECT_TRUE(back.kernels[1] == m.kernels[1]);
  EXPECT_EQ(encodeModule(back), image);

  EXPECT_THAT(decodeModule(image.data(), image.size() - 3, back),
              HasSubstr("truncated"));
  std::vector<uint8_t> bad = image;
  bad[0] = 'X';
  EXPECT_THAT(decodeModule(bad.data(), bad.size(), back), HasSubstr("bad magic"));
  bad = image;
  bad.push_back(0);
  EXPECT_THAT(decodeModule(bad.data(), bad.size(), back),
              HasSubstr("1 trailing bytes"));
}

//--- Values --------------------------------------------------------------------

std::vector<float> randomFloats(size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1, 1);
  std::vector<float> v(n);
  for (float &x : v)
    x = u(rng);
  return v;
}

std::vector<uint8_t> bytesOf(const std::vector<float> &v) {
  std::vector<uint8_t> b(v.size() * 4);
  std::memcpy(b.data(), v.data(), b.size());
  return b;
}

std::vector<float> floatsOf(const std::vector<uint8_t> &b) {
  std::vector<float> v(b.size() / 4);
  std::memcpy(v.data(), b.data(), b.size());
  return v;
}

/// C[256, 256] = relu(A x B * 0.5 + bias[m]) with AT[K, M], B[K, N] and
/// bias[M] in HBM: stationary AT tiles, K accumulated over two k-tiles in
/// PSUM, the Scalar Engine applying the activation while evacuating.
Program tiledMatmul(DType dt) {
  const int64_t M = 256, N = 256, K = 256, esz = dtypeSize(dt);
  ProgramBuilder b("mm");
  uint32_t loaded = b.semaphore(), full = b.semaphore(), out = b.semaphore();
  // SBUF: AT as [k % 128][k-tile][m], then B as [k % 128][k-tile][n], then
  // bias as [m % 128][m-tile], then C as [m % 128][m-tile][n].
  const int64_t atOff = 0, bOff = 2 * M * esz, biasOff = bOff + 2 * N * esz,
                cOff = biasOff + 64;
  b.on(dmaQueue(0))
      .dmaCopy(Ap::sbuf(0, 128, atOff, dt, {{M, 2}, {1, M}}),
               Ap::hbm(0, 0, dt, {{M, 128}, {128 * M, 2}, {1, M}}))
      .signal(loaded);
  b.on(dmaQueue(1))
      .dmaCopy(Ap::sbuf(0, 128, bOff, dt, {{N, 2}, {1, N}}),
               Ap::hbm(1, 0, dt, {{N, 128}, {128 * N, 2}, {1, N}}))
      .signal(loaded);
  b.on(dmaQueue(2))
      .dmaCopy(Ap::sbuf(0, 128, biasOff, DType::F32, {{1, 2}}),
               Ap::hbm(2, 0, DType::F32, {{1, 128}, {128, 2}}))
      .signal(loaded);
  // Each m-tile is one loop iteration; the k-tiles are unrolled because the
  // first overwrites PSUM and the second accumulates.
  auto &te = b.on(Engine::Tensor);
  te.wait(loaded, 3).loop(2, [&](LoopVar mt) {
    for (int64_t kt = 0; kt < 2; ++kt)
      te.loadStationary(Ap::sbuf(0, 128,
                                 Affine(atOff + kt * M * esz) + mt * (128 * esz),
                                 dt, {{1, 128}}))
          .matmul(Ap::psum(0, 128, Affine(0) + mt * 2048, DType::F32, {{1, N}}),
                  Ap::sbuf(0, 128, bOff + kt * N * esz, dt, {{1, N}}), kt > 0);
    te.signal(full);
  });
  auto &act = b.on(Engine::Scalar);
  act.loop(2, [&](LoopVar mt) {
    act.wait(full, Affine(1) + mt * 1)
        .activation(Ap::sbuf(0, 128, Affine(cOff) + mt * (N * 4), DType::F32,
                             {{1, N}}),
                    Ap::psum(0, 128, Affine(0) + mt * 2048, DType::F32, {{1, N}}),
                    ActFunc::Relu, 0.5f,
                    Ap::sbuf(0, 128, Affine(biasOff) + mt * 4, DType::F32,
                             {{1, 1}}));
  });
  act.signal(out);
  b.on(dmaQueue(5)).wait(out, 1).dmaCopy(
      Ap::hbm(3, 0, DType::F32, {{N, 128}, {128 * N, 2}, {1, N}}),
      Ap::sbuf(0, 128, cOff, DType::F32, {{N, 2}, {1, N}}));
  return b.take();
}

std::vector<uint8_t> encodeAs(DType dt, const std::vector<float> &v) {
  if (dt == DType::F32)
    return bytesOf(v);
  std::vector<uint8_t> b(v.size() * 2);
  for (size_t i = 0; i < v.size(); ++i) {
    uint16_t h = floatToBf16(v[i]);
    std::memcpy(&b[i * 2], &h, 2);
  }
  return b;
}

void checkTiledMatmul(DType dt) {
  const int64_t M = 256, N = 256, K = 256;
  std::vector<float> at = randomFloats(K * M, 1), bm = randomFloats(K * N, 2),
                     bias = randomFloats(M, 3);
  if (dt == DType::BF16)
    for (std::vector<float> *v : {&at, &bm})
      for (float &x : *v)
        x = bf16ToFloat(floatToBf16(x));
  std::vector<uint8_t> atB = encodeAs(dt, at), bB = encodeAs(dt, bm),
                       biasB = bytesOf(bias), cB(M * N * 4);
  HbmTensor t[4] = {{atB.data(), atB.size()},
                    {bB.data(), bB.size()},
                    {biasB.data(), biasB.size()},
                    {cB.data(), cB.size()}};
  Simulator sim(trn1());
  SimResult r;
  ASSERT_EQ(sim.run(tiledMatmul(dt), t, 4, SimOptions(), r), "");
  std::vector<float> c = floatsOf(cB);
  // Same order as the PE array: each k-tile summed in f32, then added to
  // the PSUM value.
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) {
      float psum = 0;
      double exact = 0;
      for (int64_t kt = 0; kt < 2; ++kt) {
        float acc = 0;
        for (int64_t k = kt * 128; k < kt * 128 + 128; ++k) {
          acc += at[k * M + m] * bm[k * N + n];
          exact += double(at[k * M + m]) * bm[k * N + n];
        }
        psum = kt ? psum + acc : acc;
      }
      float want = std::max(psum * 0.5f + bias[m], 0.0f);
      ASSERT_EQ(c[m * N + n], want) << m << "," << n;
      ASSERT_NEAR(c[m * N + n], std::max(exact * 0.5 + bias[m], 0.0), 1e-4);
    }
}

TEST(NpuSim, TiledMatmulF32) { checkTiledMatmul(DType::F32); }
TEST(NpuSim, TiledMatmulBf16) { checkTiledMatmul(DType::BF16); }

TEST(NpuSim, Bf16OperandsRoundOnTheWayIn) {
  // 1 + 2^-10 is not a bf16: a bf16 matmul sees 1.0.
  float x = 1.0f + 1.0f / 1024;
  std::vector<uint8_t> in(4);
  std::memcpy(in.data(), &x, 4);
  std::vector<uint8_t> out(4);
  ProgramBuilder b("round");
  uint32_t s = b.semaphore();
  b.on(dmaQueue(0)).dmaCopy(Ap::sbuf(0, 1, 0, DType::F32, {{1, 1}}),
                            Ap::hbm(0, 0, DType::F32, {{1, 1}})).signal(s);
  b.on(Engine::Vector).wait(s, 1).copy(Ap::sbuf(0, 1, 8, DType::BF16, {{1, 1}}),
                                       Ap::sbuf(0, 1, 0, DType::F32, {{1, 1}}))
      .memset(Ap::sbuf(0, 1, 16, DType::BF16, {{1, 1}}), 1.0f).signal(s);
  b.on(Engine::Tensor).wait(s, 2)
      .loadStationary(Ap::sbuf(0, 1, 16, DType::BF16, {{1, 1}}))
      .matmul(Ap::psum(0, 1, 0, DType::F32, {{1, 1}}),
              Ap::sbuf(0, 1, 8, DType::BF16, {{1, 1}}), false).signal(s);
  b.on(Engine::Scalar).wait(s, 3).activation(
      Ap::sbuf(0, 1, 32, DType::F32, {{1, 1}}),
      Ap::psum(0, 1, 0, DType::F32, {{1, 1}}), ActFunc::Identity).signal(s);
  b.on(dmaQueue(1)).wait(s, 4).dmaCopy(Ap::hbm(1, 0, DType::F32, {{1, 1}}),
                                       Ap::sbuf(0, 1, 32, DType::F32, {{1, 1}}));
  HbmTensor t[2] = {{in.data(), 4}, {out.data(), 4}};
  Simulator sim(trn1());
  SimResult r;
  ASSERT_EQ(sim.run(b.take(), t, 2, SimOptions(), r), "");
  EXPECT_EQ(floatsOf(out)[0], 1.0f);
}

TEST(NpuSim, Reductions) {
  // x[p][f] = iota; row sums with tensor_reduce and with activation's
  // reduce (exp), row max of a 2-D pattern over its inner dim.
  ProgramBuilder b("reduce");
  uint32_t s = b.semaphore();
  auto x = Ap::sbuf(0, 128, 0, DType::F32, {{1, 96}});
  b.on(Engine::GpSimd).iota(x, -40, 3, 1).signal(s);
  b.on(Engine::Vector).wait(s, 1)
      .tensorReduce(Ap::sbuf(0, 128, 1024, DType::F32, {{1, 1}}), x, AluOp::Add)
      .tensorReduce(Ap::sbuf(0, 128, 1028, DType::F32, {{1, 3}}),
                    Ap::sbuf(0, 128, 0, DType::F32, {{32, 3}, {1, 32}}),
                    AluOp::Max)
      .signal(s);
  b.on(Engine::Scalar).wait(s, 1).activationReduce(
      Ap::sbuf(0, 128, 2048, DType::F32, {{1, 96}}), x, ActFunc::Exp, 0.01f,
      0.0f, AluOp::Add, Ap::sbuf(0, 128, 1040, DType::F32, {{1, 1}})).signal(s);
  b.on(dmaQueue(0)).wait(s, 3).dmaCopy(
      Ap::hbm(0, 0, DType::F32, {{5, 128}, {1, 5}}),
      Ap::sbuf(0, 128, 1024, DType::F32, {{1, 5}}));
  std::vector<uint8_t> out(128 * 5 * 4);
  HbmTensor t{out.data(), out.size()};
  Simulator sim(trn1());
  SimResult r;
  ASSERT_EQ(sim.run(b.take(), &t, 1, SimOptions(), r), "");
  std::vector<float> v = floatsOf(out);
  for (int p = 0; p < 128; ++p) {
    float sum = 0, esum = 0;
    for (int f = 0; f < 96; ++f) {
      float xv = float(-40 + 3 * p + f);
      sum += xv;
      esum += std::exp(xv * 0.01f);
    }
    EXPECT_EQ(v[p * 5 + 0], sum) << p;
    for (int j = 0; j < 3; ++j)
      EXPECT_EQ(v[p * 5 + 1 + j], float(-40 + 3 * p + 32 * j + 31)) << p;
    EXPECT_EQ(v[p * 5 + 4], esum) << p;
  }
}

TEST(NpuSim, Dma4DAccessPattern) {
  // in: a [2][3][4][5] f32 tensor. SBUF gets partition = d3 (5), free =
  // [d1][d0][d2]; the result goes back contiguously, so out[e][b][a][c] =
  // in[a][b][c][e].
  std::vector<float> in(120);
  for (int i = 0; i < 120; ++i)
    in[i] = float(i);
  std::vector<uint8_t> inB = bytesOf(in), outB(480);
  ProgramBuilder b("dma4d");
  uint32_t s = b.semaphore();
  b.on(dmaQueue(7))
      .dmaCopy(Ap::sbuf(0, 5, 0, DType::F32, {{1, 24}}),
               Ap::hbm(0, 0, DType::F32, {{1, 5}, {20, 3}, {60, 2}, {5, 4}}))
      .signal(s);
  b.on(dmaQueue(8)).wait(s, 1).dmaCopy(
      Ap::hbm(1, 0, DType::F32, {{24, 5}, {1, 24}}),
      Ap::sbuf(0, 5, 0, DType::F32, {{8, 3}, {4, 2}, {1, 4}}));
  HbmTensor t[2] = {{inB.data(), inB.size()}, {outB.data(), outB.size()}};
  Simulator sim(trn1());
  SimResult r;
  ASSERT_EQ(sim.run(b.take(), t, 2, SimOptions(), r), "");
  std::vector<float> out = floatsOf(outB);
  for (int a = 0; a < 2; ++a)
    for (int bb = 0; bb < 3; ++bb)
      for (int c = 0; c < 4; ++c)
        for (int e = 0; e < 5; ++e)
          EXPECT_EQ(out[e * 24 + bb * 8 + a * 4 + c], in[a * 60 + bb * 20 + c * 5 + e]);
}

//--- Timing ------------------------------------------------------------------

SimResult timed(const Program &p, bool noOverlap = false) {
  Simulator sim(trn1());
  SimOptions o;
  o.noOverlap = noOverlap;
  SimResult r;
  std::vector<uint8_t> hbm(1 << 20);
  HbmTensor t{hbm.data(), hbm.size()};
  std::string err = sim.run(p, &t, 1, o, r);
  EXPECT_EQ(err, "");
  return r;
}

double teCycles(double ns) { return ns * 2.8; }

/// load(stationary S x K=128) + matmul(N) pairs on the Tensor Engine.
Program matmuls(int pairs, int64_t s, int64_t n, DType dt = DType::BF16) {
  ProgramBuilder b("mm");
  for (int i = 0; i < pairs; ++i)
    b.on(Engine::Tensor)
        .loadStationary(Ap::sbuf(0, 128, 0, dt, {{1, s}}))
        .matmul(Ap::psum(0, static_cast<uint32_t>(s), i % 8 * 2048, DType::F32,
                         {{1, n}}),
                Ap::sbuf(0, 128, 4096, dt, {{1, n}}), false);
  return b.take();
}

TEST(NpuTiming, MatmulCycles) {
  // load 128 cycles, then max(min(64, S), N) = 512 streaming, then the
  // 254-cycle fill/drain of the 128x128 array.
  EXPECT_NEAR(teCycles(timed(matmuls(1, 128, 512)).totalNs), 128 + 512 + 254, 1e-6);
  // Small moving operands cost at least min(64, S) cycles.
  EXPECT_NEAR(teCycles(timed(matmuls(1, 128, 16)).totalNs), 128 + 64 + 254, 1e-6);
  EXPECT_NEAR(teCycles(timed(matmuls(1, 32, 16)).totalNs), 128 + 32 + 254, 1e-6);
  // fp32 at 1/4 rate, load included; the drain does not slow down.
  EXPECT_NEAR(teCycles(timed(matmuls(1, 128, 512, DType::F32)).totalNs),
              4 * 128 + 4 * 512 + 254, 1e-6);
}

TEST(NpuTiming, StationaryLoadHidesBehindMatmul) {
  // Pipelined: the second load overlaps the first matmul.
  SimResult p = timed(matmuls(2, 128, 512));
  EXPECT_NEAR(teCycles(p.totalNs), 128 + 512 + 512 + 254, 1e-6);
  EXPECT_EQ(p.engines[kStatTensor].instructions, 4u);
  // No-overlap: everything serialized, each wave pays its fill/drain.
  SimResult s = timed(matmuls(2, 128, 512), true);
  EXPECT_NEAR(teCycles(s.totalNs), 2 * (128 + 512 + 254), 1e-6);
  // Back-to-back matmuls on one stationary stream as one wave in both modes
  // (SCALE-Sim's fold: 2*128 + 128 + T - 2 cycles for T streamed columns).
  ProgramBuilder b("wave");
  b.on(Engine::Tensor).loadStationary(Ap::sbuf(0, 128, 0, DType::BF16, {{1, 128}}));
  for (int i = 0; i < 3; ++i)
    b.on(Engine::Tensor).matmul(Ap::psum(0, 128, i * 2048, DType::F32, {{1, 512}}),
                                Ap::sbuf(0, 128, 4096, DType::BF16, {{1, 512}}),
                                false);
  Program wave = b.take();
  EXPECT_NEAR(teCycles(timed(wave, true).totalNs), 2 * 128 + 128 + 1536 - 2, 1e-6);
  EXPECT_NEAR(teCycles(timed(wave).totalNs), 2 * 128 + 128 + 1536 - 2, 1e-6);
}

TEST(NpuTiming, VectorScalarAndConcurrency) {
  ProgramBuilder b("ve");
  b.on(Engine::Vector).tensorTensor(Ap::sbuf(0, 128, 0, DType::F32, {{1, 32}}),
                                    Ap::sbuf(0, 128, 0, DType::F32, {{1, 32}}),
                                    Ap::sbuf(0, 128, 0, DType::F32, {{1, 32}}),
                                    AluOp::Add);
  b.on(Engine::Scalar).activation(Ap::sbuf(0, 128, 4096, DType::F32, {{1, 700}}),
                                  Ap::sbuf(0, 128, 4096, DType::F32, {{1, 700}}),
                                  ActFunc::Exp);
  Program p = b.take();
  SimResult r = timed(p);
  // max(64, 32) and max(64, 700) cycles at 1.4 GHz, running concurrently.
  EXPECT_NEAR(r.engines[kStatVector].busyNs, 64 / 1.4, 1e-9);
  EXPECT_NEAR(r.engines[kStatScalar].busyNs, 700 / 1.4, 1e-9);
  EXPECT_NEAR(r.totalNs, 700 / 1.4, 1e-9);
  EXPECT_NEAR(timed(p, true).totalNs, (64 + 700) / 1.4, 1e-9);
}

TEST(NpuTiming, SemaphoreOrdersEngines) {
  ProgramBuilder b("sem");
  uint32_t s = b.semaphore();
  b.on(Engine::Vector).memset(Ap::sbuf(0, 128, 0, DType::F32, {{1, 256}}), 1)
      .signal(s);
  b.on(Engine::Scalar).wait(s, 1).activation(
      Ap::sbuf(0, 128, 0, DType::F32, {{1, 100}}),
      Ap::sbuf(0, 128, 0, DType::F32, {{1, 100}}), ActFunc::Relu);
  SimResult r = timed(b.take());
  ASSERT_EQ(r.events.size(), 2u);
  EXPECT_NEAR(r.events[1].startNs, 256 / 1.4, 1e-9);
  EXPECT_NEAR(r.totalNs, (256 + 100) / 1.4, 1e-9);
}

TEST(NpuTiming, DmaCostAndQueues) {
  // 128 x 512 f32 = 256 KiB: 2 us start-up + bytes at 410/16 GB/s; two
  // queues run in parallel; on one queue the second transfer's start-up
  // hides behind the first one's data, its data follows.
  auto dma = [](ProgramBuilder &b, unsigned q, int64_t off) {
    b.on(dmaQueue(q)).dmaCopy(Ap::sbuf(0, 128, off, DType::F32, {{1, 512}}),
                              Ap::hbm(0, 0, DType::F32, {{1, 65536}}));
  };
  double one = 2000 + 262144 / (410.0 / 16);
  ProgramBuilder par("par");
  dma(par, 0, 0);
  dma(par, 1, 2048);
  SimResult r = timed(par.take());
  EXPECT_NEAR(r.totalNs, one, 1e-6);
  // Busy counts the data phase; the start-up is latency.
  EXPECT_NEAR(r.engines[kStatDma].busyNs, one - 2000, 1e-6);
  EXPECT_EQ(r.engines[kStatDma].instructions, 2u);
  ProgramBuilder seq("seq");
  dma(seq, 4, 0);
  dma(seq, 4, 2048);
  Program seqp = seq.take();
  EXPECT_NEAR(timed(seqp).totalNs, 2000 + 2 * (one - 2000), 1e-6);
  EXPECT_NEAR(timed(seqp, true).totalNs, 2 * one, 1e-6);
}

TEST(NpuTiming, StatsAndTraceJson) {
  SimResult r = timed(matmuls(1, 128, 512));
  char want[400];
  std::snprintf(want, sizeof(want),
                "{\"total_ns\": %.3f, \"engines\": {\"tensor\": {\"busy_ns\": "
                "%.3f, \"instructions\": 2}, \"vector\": {\"busy_ns\": 0.000, "
                "\"instructions\": 0}, \"scalar\": {\"busy_ns\": 0.000, "
                "\"instructions\": 0}, \"gpsimd\": {\"busy_ns\": 0.000, "
                "\"instructions\": 0}, \"dma\": {\"busy_ns\": 0.000, "
                "\"instructions\": 0}},\n \"dispatches\": []}\n",
                894 / 2.8, 894 / 2.8);
  EXPECT_EQ(statsJson(r), want);
  std::string trace = traceJson(r);
  EXPECT_THAT(trace, HasSubstr("\"args\": {\"name\": \"dma15\"}"));
  // Slices show port occupancy: the matmul streams 512 cycles, the load
  // has its own track (20).
  EXPECT_THAT(trace, HasSubstr("{\"name\": \"matmul\", \"ph\": \"X\", \"pid\": "
                               "0, \"tid\": 0, \"ts\": 0.045714, \"dur\": 0.182857}"));
  EXPECT_THAT(trace, HasSubstr("{\"name\": \"load_stationary\", \"ph\": \"X\", "
                               "\"pid\": 0, \"tid\": 20, \"ts\": 0.000000"));
  EXPECT_EQ(r.engines[kStatTensor].firstNs, 0);
  EXPECT_NEAR(r.engines[kStatTensor].lastNs, 894 / 2.8, 1e-9);
}

TEST(NpuTiming, DispatchSpans) {
  // Two runs laid end to end: each keeps its own span and figures.
  SimResult window;
  SimResult a = timed(matmuls(1, 128, 512)), b = timed(matmuls(2, 128, 512));
  window.append(a, "first");
  window.append(b, "second");
  ASSERT_EQ(window.spans.size(), 2u);
  EXPECT_EQ(window.spans[1].kernel, "second");
  EXPECT_DOUBLE_EQ(window.spans[1].startNs, a.totalNs);
  EXPECT_DOUBLE_EQ(window.spans[1].totalNs, b.totalNs);
  EXPECT_EQ(window.spans[1].engines[kStatTensor].instructions,
            b.engines[kStatTensor].instructions);
  EXPECT_DOUBLE_EQ(window.totalNs, a.totalNs + b.totalNs);
  std::string stats = statsJson(window);
  EXPECT_THAT(stats, HasSubstr("{\"kernel\": \"second\", \"start_ns\": "));
  std::string trace = traceJson(window);
  EXPECT_THAT(trace, HasSubstr("\"args\": {\"name\": \"dispatches\"}"));
  EXPECT_THAT(trace, HasSubstr("{\"name\": \"first\", \"ph\": \"X\""));
}

//--- Errors --------------------------------------------------------------------

std::string runError(const Program &p) {
  Simulator sim(trn1());
  SimResult r;
  std::vector<uint8_t> hbm(4096);
  HbmTensor t{hbm.data(), hbm.size()};
  return sim.run(p, &t, 1, SimOptions(), r);
}

Program one(Engine e, const std::function<void(ProgramBuilder::Stream &)> &f) {
  ProgramBuilder b("bad");
  f(b.on(e));
  return b.take();
}

TEST(NpuErrors, CapacityAndAlignment) {
  EXPECT_EQ(runError(one(Engine::Vector, [](auto &s) {
              s.memset(Ap::sbuf(0, 128, 196600, DType::F32, {{1, 4}}), 0);
            })),
            "bad: vector instruction 0 (memset): dst: sbuf bytes [196600, "
            "196616) exceed the 196608-byte partition");
  EXPECT_THAT(runError(one(Engine::Vector, [](auto &s) {
                s.memset(Ap::sbuf(0, 128, 6, DType::F32, {{1, 4}}), 0);
              })),
              HasSubstr("sbuf byte offset 6 is not aligned to its f32 elements"));
  EXPECT_THAT(runError(one(Engine::Vector, [](auto &s) {
                s.copy(Ap::sbuf(0, 128, 0, DType::F32, {{1, 4}}),
                       Ap::psum(0, 128, 16380, DType::F32, {{1, 4}}));
              })),
              HasSubstr("src: psum bytes [16380, 16396) exceed the 16384-byte"));
  EXPECT_THAT(runError(one(Engine::Tensor, [](auto &s) {
                s.loadStationary(Ap::sbuf(0, 128, 0, DType::BF16, {{1, 128}}))
                    .matmul(Ap::psum(0, 128, 1024, DType::F32, {{1, 512}}),
                            Ap::sbuf(0, 128, 0, DType::BF16, {{1, 512}}), false);
              })),
              HasSubstr("psum bytes [1024, 3072) cross a 2048-byte bank boundary"));
  EXPECT_THAT(runError(one(dmaQueue(2), [](auto &s) {
                s.dmaCopy(Ap::sbuf(0, 1, 0, DType::F32, {{1, 2}}),
                          Ap::hbm(0, 1023, DType::F32, {{1, 2}}));
              })),
              HasSubstr("reads elements [1023, 1025) of hbm tensor 0 which holds "
                        "1024 f32 elements"));
  EXPECT_THAT(runError(one(dmaQueue(2), [](auto &s) {
                s.dmaCopy(Ap::sbuf(0, 1, 0, DType::F32, {{1, 2}}),
                          Ap::hbm(1, 0, DType::F32, {{1, 2}}));
              })),
              HasSubstr("names hbm tensor 1 but the kernel has 1 bindings"));
}

TEST(NpuErrors, StaticRules) {
  EXPECT_THAT(runError(one(Engine::Vector, [](auto &s) {
                s.memset(Ap::sbuf(100, 29, 0, DType::F32, {{1, 4}}), 0);
              })),
              HasSubstr("partitions [100, 129) outside [0, 128)"));
  EXPECT_THAT(runError(one(Engine::Tensor, [](auto &s) {
                s.loadStationary(Ap::sbuf(16, 64, 0, DType::BF16, {{1, 128}}));
              })),
              HasSubstr("start at partition 0, 32, 64 or 96, not 16"));
  EXPECT_THAT(runError(one(Engine::Tensor, [](auto &s) {
                s.loadStationary(Ap::sbuf(0, 128, 0, DType::BF16, {{1, 128}}))
                    .matmul(Ap::psum(0, 128, 0, DType::F32, {{1, 513}}),
                            Ap::sbuf(0, 128, 0, DType::BF16, {{1, 513}}), false);
              })),
              HasSubstr("moving free size 513 exceeds 512"));
  EXPECT_THAT(runError(one(Engine::Tensor, [](auto &s) {
                s.matmul(Ap::psum(0, 128, 0, DType::F32, {{1, 8}}),
                         Ap::sbuf(0, 128, 0, DType::BF16, {{1, 8}}), false);
              })),
              HasSubstr("no stationary loaded"));
  EXPECT_THAT(runError(one(Engine::Tensor, [](auto &s) {
                s.loadStationary(Ap::sbuf(0, 64, 0, DType::BF16, {{1, 128}}))
                    .matmul(Ap::psum(0, 128, 0, DType::F32, {{1, 8}}),
                            Ap::sbuf(0, 128, 0, DType::BF16, {{1, 8}}), false);
              })),
              HasSubstr("moving spans 128 partitions but the stationary 64"));
  EXPECT_THAT(runError(one(Engine::Scalar, [](auto &s) {
                s.tensorTensor(Ap::sbuf(0, 1, 0, DType::F32, {{1, 1}}),
                               Ap::sbuf(0, 1, 0, DType::F32, {{1, 1}}),
                               Ap::sbuf(0, 1, 0, DType::F32, {{1, 1}}), AluOp::Add);
              })),
              HasSubstr("tensor_tensor cannot run on scalar"));
  ProgramBuilder b("dead");
  uint32_t s = b.semaphore();
  b.on(Engine::Vector).wait(s, 1);
  EXPECT_EQ(runError(b.take()), "dead: deadlock: vector waits for s0 >= 1 (has 0)");
}

//--- Through the runtime -------------------------------------------------------

TEST(NpuDriver, RunsArtifactAndWritesProfile) {
  // y = x * 2 + 1 over 128 x 4 floats as one npu kernel.
  ProgramBuilder b("affine");
  uint32_t s = b.semaphore();
  auto tile = Ap::sbuf(0, 128, 0, DType::F32, {{1, 4}});
  b.on(dmaQueue(0)).dmaCopy(tile, Ap::hbm(0, 0, DType::F32, {{4, 128}, {1, 4}}))
      .signal(s);
  b.on(Engine::Vector).wait(s, 1)
      .tensorScalar(tile, tile, AluOp::Multiply, 2.0f, AluOp::Add, 1.0f)
      .signal(s);
  b.on(dmaQueue(1)).wait(s, 2).dmaCopy(Ap::hbm(1, 0, DType::F32, {{4, 128}, {1, 4}}),
                                       tile);
  Module mod;
  mod.kernels = {b.take()};

  using namespace kiln::artifact;
  kiln::artifact::Module m;
  m.producer = "kiln-tests";
  m.name = "npu_affine";
  m.buffers = {{BufferKind::Input, 2048, nullptr}, {BufferKind::Output, 2048, nullptr}};
  m.inputs = {{"x", kiln::artifact::DType::F32, {128, 4}, 0}};
  m.outputs = {{"y", kiln::artifact::DType::F32, {128, 4}, 1}};
  m.executables = {{"npu", kBinaryFormat, encodeModule(mod), {Entry{"affine"}}}};
  Dispatch d;
  d.kernel = 0;
  d.bindings = {{0, 0}, {1, 0}};
  m.dispatches = {d};
  std::string path = kiln::test::tempPath(".kiln");
  ASSERT_EQ(writeArtifact(m, path), "");

  kiln_artifact *a = nullptr;
  ASSERT_EQ(kiln_artifact_open(path.c_str(), &a), KILN_OK) << kiln_last_error();
  std::string trace = kiln::test::tempPath(".trace.json"),
              stats = kiln::test::tempPath(".stats.json");
  kiln_session_options opts{0, trace.c_str(), stats.c_str()};
  kiln_session *sess = nullptr;
  ASSERT_EQ(kiln_session_create(a, "npu", &opts, &sess), KILN_OK) << kiln_last_error();
  EXPECT_STREQ(kiln_session_device(sess), "npu:0");
  std::vector<float> x(512);
  for (int i = 0; i < 512; ++i)
    x[i] = float(i);
  int64_t dims[2] = {128, 4};
  ASSERT_EQ(kiln_session_set_input(sess, "x", KILN_DTYPE_F32, 2, dims, x.data(), 2048),
            KILN_OK);
  ASSERT_EQ(kiln_session_run(sess), KILN_OK) << kiln_last_error();
  std::vector<float> y(512);
  ASSERT_EQ(kiln_session_output_read(sess, 0, y.data(), 2048), KILN_OK);
  for (int i = 0; i < 512; ++i)
    EXPECT_EQ(y[i], 2.0f * i + 1) << i;
  std::vector<uint8_t> statsText = kiln::test::readFile(stats);
  std::string st(statsText.begin(), statsText.end());
  EXPECT_THAT(st, HasSubstr("\"vector\": {\"busy_ns\": 45.714, \"instructions\": 1}"));
  EXPECT_THAT(st, HasSubstr("\"instructions\": 2}}}"));
  EXPECT_FALSE(kiln::test::readFile(trace).empty());
  kiln_session_release(sess);
  kiln_artifact_release(a);
}

} // namespace

//===- Isa.h - Instruction set of the Kiln NPU (NeuronCore-style) -*- C++ -*-===//
//
// The NPU ISA sits at the level of AWS NKI's nki.isa: every instruction names
// one engine, works on whole tiles (128 partitions x a free access pattern)
// and is cheap to generate from a compiler. A Program is one kernel: one
// in-order instruction stream per engine plus counting semaphores that order
// the streams. HBM operands name the kernel's bindings: hbm tensor i is
// binding i of the dispatch.
//
// Plain C++17 without LLVM/MLIR so both the runtime driver and a compiler can
// use it. Text form: Text.cpp; binary form ("npu-isa-v1"): Binary.cpp; the
// format is described in docs/npu.md.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_NPU_ISA_H
#define KILN_NPU_ISA_H

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace kiln::npu {

constexpr unsigned kNumPartitions = 128;
constexpr unsigned kNumDmaQueues = 16;
/// Loop nesting limit per stream; every affine expression has one
/// coefficient per level.
constexpr unsigned kMaxLoopDepth = 4;
/// HBM access patterns have up to 4 dims; on-chip ones have the partition
/// dim plus up to 3 free dims.
constexpr unsigned kMaxDims = 4;
constexpr unsigned kMaxFreeDims = 3;

enum class DType : uint8_t { F32, BF16, F16 };
enum class Space : uint8_t { Hbm, Sbuf, Psum };

/// Streams 0..3 are the compute engines, 4..19 the DMA queues.
enum class Engine : uint8_t { Tensor, Vector, Scalar, GpSimd, Dma0 };
constexpr unsigned kNumStreams = 4 + kNumDmaQueues;
inline Engine dmaQueue(unsigned q) {
  return static_cast<Engine>(static_cast<unsigned>(Engine::Dma0) + q);
}
inline bool isDma(unsigned stream) { return stream >= 4; }

enum class Opcode : uint8_t {
  DmaCopy,
  LoadStationary,
  Matmul,
  Transpose,
  Activation,
  TensorTensor,
  TensorScalar,
  TensorReduce,
  Copy,
  Memset,
  Iota,
  SemWait,
  SemSignal,
  Loop,
  EndLoop,
};

enum class AluOp : uint8_t { Bypass, Add, Subtract, Multiply, Divide, Max, Min };
enum class ActFunc : uint8_t {
  Identity, Relu, Exp, Log, Tanh, Sigmoid, Gelu, Sqrt, Rsqrt, Square, Abs,
};

/// base + sum(coeff[d] * i_d), i_d the induction variable of the d-th
/// enclosing loop of the stream (0 = outermost).
struct Affine {
  int64_t base = 0;
  std::array<int64_t, kMaxLoopDepth> coeff{};
  Affine() = default;
  Affine(int64_t b) : base(b) {}
  int64_t eval(const int64_t *iv) const {
    int64_t v = base;
    for (unsigned d = 0; d < kMaxLoopDepth; ++d)
      v += coeff[d] * iv[d];
    return v;
  }
  bool operator==(const Affine &o) const {
    return base == o.base && coeff == o.coeff;
  }
};

/// Induction variable of loop level `depth`, for building affine offsets:
/// `Affine(64) + LoopVar{0} * 512`.
struct LoopVar {
  unsigned depth;
};
inline Affine operator*(LoopVar v, int64_t c) {
  Affine a;
  a.coeff[v.depth] = c;
  return a;
}
inline Affine operator+(Affine a, const Affine &b) {
  a.base += b.base;
  for (unsigned d = 0; d < kMaxLoopDepth; ++d)
    a.coeff[d] += b.coeff[d];
  return a;
}

struct Dim {
  int64_t stride = 1; // In elements.
  int64_t size = 1;
  bool operator==(const Dim &o) const {
    return stride == o.stride && size == o.size;
  }
};

/// A tile of memory. On chip: partitions [partition, partition+partitions)
/// and, in each, the elements at byte `offset` + the free pattern `dims`.
/// In HBM: the elements of binding `tensor` at element `offset` + `dims`
/// (row-major iteration, dims[0] outermost; `partitions` is unused).
struct AccessPattern {
  Space space = Space::Sbuf;
  DType dtype = DType::F32;
  uint32_t tensor = 0;
  uint32_t partition = 0;
  uint32_t partitions = 1;
  Affine offset;
  uint8_t rank = 0;
  std::array<Dim, kMaxDims> dims{};

  static AccessPattern sbuf(uint32_t partition, uint32_t partitions,
                            Affine byteOffset, DType t,
                            std::initializer_list<Dim> free);
  static AccessPattern psum(uint32_t partition, uint32_t partitions,
                            Affine byteOffset, DType t,
                            std::initializer_list<Dim> free);
  static AccessPattern hbm(uint32_t tensor, Affine elemOffset, DType t,
                           std::initializer_list<Dim> dims);
  bool valid() const { return rank > 0 || space != Space::Hbm; }
  /// Elements per partition on chip; all elements in HBM.
  int64_t freeSize() const;
  int64_t numElements() const;
  bool operator==(const AccessPattern &o) const;
};

/// An immediate or a per-partition value ([P, 1] access pattern).
struct ScalarOperand {
  bool isAp = false;
  float imm = 0;
  AccessPattern ap;
  ScalarOperand() = default;
  ScalarOperand(float f) : imm(f) {}
  ScalarOperand(const AccessPattern &a) : isAp(true), ap(a) {}
  bool operator==(const ScalarOperand &o) const {
    return isAp == o.isAp && (isAp ? ap == o.ap : imm == o.imm);
  }
};

/// One instruction; fields are used as documented per opcode in docs/npu.md.
/// A flat record keeps the printer, parser and binary codec symmetric.
struct Instr {
  Opcode op = Opcode::Copy;
  AccessPattern dst, src, src2; // src2: tensor_tensor rhs, activation accum.
  ScalarOperand s0, s1;         // scale/bias; tensor_scalar operands; memset.
  AluOp alu0 = AluOp::Bypass, alu1 = AluOp::Bypass;
  ActFunc func = ActFunc::Identity;
  bool accumulate = false;  // matmul: add into PSUM instead of overwriting.
  uint32_t sem = 0;         // sem_wait / sem_signal.
  Affine value;             // sem_wait threshold; sem_signal increment;
                            // loop trip count (base only); iota: base.
  int64_t pstep = 0, fstep = 0; // iota.
  bool operator==(const Instr &o) const;
};

struct Program {
  std::string name = "kernel";
  uint32_t numSemaphores = 0;
  std::array<std::vector<Instr>, kNumStreams> streams;
  bool operator==(const Program &o) const {
    return name == o.name && numSemaphores == o.numSemaphores &&
           streams == o.streams;
  }
  size_t instructionCount() const;
};

/// One binary image may hold several kernels (the artifact's entries).
struct Module {
  std::vector<Program> kernels;
};

const char *name(DType t);
const char *name(Engine e);
std::string streamName(unsigned stream);
const char *name(Opcode op);
const char *name(AluOp op);
const char *name(ActFunc f);
unsigned dtypeSize(DType t);

/// Checks everything that does not depend on loop values or binding sizes:
/// engine legality, operand spaces, shapes, partition ranges, TE quadrant
/// alignment, loop nesting and semaphore numbers. Returns "" or a message
/// naming the stream and instruction index.
std::string verify(const Program &p);

/// Builds programs: `b.on(Engine::Tensor).loadStationary(...)`. Every method
/// appends to one stream in order.
class ProgramBuilder {
public:
  class Stream {
  public:
    Stream &dmaCopy(const AccessPattern &dst, const AccessPattern &src);
    Stream &loadStationary(const AccessPattern &src);
    Stream &matmul(const AccessPattern &dst, const AccessPattern &moving,
                   bool accumulate);
    Stream &transpose(const AccessPattern &dst, const AccessPattern &src);
    Stream &activation(const AccessPattern &dst, const AccessPattern &src,
                       ActFunc f, ScalarOperand scale = 1.0f,
                       ScalarOperand bias = 0.0f);
    /// Activation that also reduces each partition's results into `accum`.
    Stream &activationReduce(const AccessPattern &dst, const AccessPattern &src,
                             ActFunc f, ScalarOperand scale, ScalarOperand bias,
                             AluOp reduce, const AccessPattern &accum);
    Stream &tensorTensor(const AccessPattern &dst, const AccessPattern &a,
                         const AccessPattern &b, AluOp op);
    Stream &tensorScalar(const AccessPattern &dst, const AccessPattern &src,
                         AluOp op0, ScalarOperand v0,
                         AluOp op1 = AluOp::Bypass, ScalarOperand v1 = 0.0f);
    Stream &tensorReduce(const AccessPattern &dst, const AccessPattern &src,
                         AluOp op);
    Stream &copy(const AccessPattern &dst, const AccessPattern &src);
    Stream &memset(const AccessPattern &dst, float value);
    Stream &iota(const AccessPattern &dst, Affine base, int64_t pstep,
                 int64_t fstep);
    Stream &wait(uint32_t sem, Affine value);
    Stream &signal(uint32_t sem, int64_t increment = 1);
    /// Emits `loop count { body(i) }`; `i` is this loop's induction var.
    Stream &loop(int64_t count, const std::function<void(LoopVar)> &body);
    Stream &append(const Instr &i);

  private:
    friend class ProgramBuilder;
    std::vector<Instr> *instrs = nullptr;
    unsigned depth = 0;
  };

  explicit ProgramBuilder(std::string name = "kernel");
  Stream &on(Engine e) { return streams[static_cast<unsigned>(e)]; }
  Stream &onStream(unsigned s) { return streams[s]; }
  uint32_t semaphore() { return program.numSemaphores++; }
  Program take() { return std::move(program); }
  const Program &get() const { return program; }

private:
  Program program;
  std::array<Stream, kNumStreams> streams;
};

//--- Text form (Text.cpp) ----------------------------------------------------

std::string printModule(const Module &m);
std::string printProgram(const Program &p);
/// Parses one or more kernels. Errors read "line N: ...".
std::string parseModule(const std::string &text, Module &out);

//--- Binary form, "npu-isa-v1" (Binary.cpp) ----------------------------------

constexpr const char *kBinaryFormat = "npu-isa-v1";
std::vector<uint8_t> encodeModule(const Module &m);
std::string decodeModule(const void *data, size_t size, Module &out);

} // namespace kiln::npu

#endif // KILN_NPU_ISA_H

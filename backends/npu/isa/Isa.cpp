//===- Isa.cpp - NPU ISA names, static checks and the program builder -----===//
#include "Isa.h"

#include <sstream>

namespace kiln::npu {

//--- Access patterns ---------------------------------------------------------

static AccessPattern makeAp(Space s, uint32_t partition, uint32_t partitions,
                            Affine offset, DType t,
                            std::initializer_list<Dim> dims) {
  AccessPattern ap;
  ap.space = s;
  ap.dtype = t;
  ap.partition = partition;
  ap.partitions = partitions;
  ap.offset = offset;
  for (const Dim &d : dims)
    if (ap.rank < kMaxDims)
      ap.dims[ap.rank++] = d;
  return ap;
}

AccessPattern AccessPattern::sbuf(uint32_t partition, uint32_t partitions,
                                  Affine byteOffset, DType t,
                                  std::initializer_list<Dim> free) {
  return makeAp(Space::Sbuf, partition, partitions, byteOffset, t, free);
}

AccessPattern AccessPattern::psum(uint32_t partition, uint32_t partitions,
                                  Affine byteOffset, DType t,
                                  std::initializer_list<Dim> free) {
  return makeAp(Space::Psum, partition, partitions, byteOffset, t, free);
}

AccessPattern AccessPattern::hbm(uint32_t tensor, Affine elemOffset, DType t,
                                 std::initializer_list<Dim> dims) {
  AccessPattern ap = makeAp(Space::Hbm, 0, 1, elemOffset, t, dims);
  ap.tensor = tensor;
  return ap;
}

int64_t AccessPattern::freeSize() const {
  int64_t n = 1;
  for (unsigned i = 0; i < rank; ++i)
    n *= dims[i].size;
  return n;
}

int64_t AccessPattern::numElements() const {
  return space == Space::Hbm ? freeSize() : freeSize() * partitions;
}

bool AccessPattern::operator==(const AccessPattern &o) const {
  if (space != o.space || dtype != o.dtype || tensor != o.tensor ||
      partition != o.partition || partitions != o.partitions ||
      !(offset == o.offset) || rank != o.rank)
    return false;
  for (unsigned i = 0; i < rank; ++i)
    if (!(dims[i] == o.dims[i]))
      return false;
  return true;
}

bool Instr::operator==(const Instr &o) const {
  return op == o.op && dst == o.dst && src == o.src && src2 == o.src2 &&
         s0 == o.s0 && s1 == o.s1 && alu0 == o.alu0 && alu1 == o.alu1 &&
         func == o.func && accumulate == o.accumulate && sem == o.sem &&
         value == o.value && pstep == o.pstep && fstep == o.fstep;
}

size_t Program::instructionCount() const {
  size_t n = 0;
  for (const auto &s : streams)
    n += s.size();
  return n;
}

//--- Names -------------------------------------------------------------------

const char *name(DType t) {
  switch (t) {
  case DType::F32: return "f32";
  case DType::BF16: return "bf16";
  case DType::F16: return "f16";
  }
  return "?";
}

unsigned dtypeSize(DType t) { return t == DType::F32 ? 4 : 2; }

const char *name(Engine e) {
  switch (e) {
  case Engine::Tensor: return "tensor";
  case Engine::Vector: return "vector";
  case Engine::Scalar: return "scalar";
  case Engine::GpSimd: return "gpsimd";
  default: return "dma";
  }
}

std::string streamName(unsigned s) {
  if (isDma(s))
    return "dma" + std::to_string(s - 4);
  return name(static_cast<Engine>(s));
}

const char *name(Opcode op) {
  switch (op) {
  case Opcode::DmaCopy: return "dma_copy";
  case Opcode::LoadStationary: return "load_stationary";
  case Opcode::Matmul: return "matmul";
  case Opcode::Transpose: return "transpose";
  case Opcode::Activation: return "activation";
  case Opcode::TensorTensor: return "tensor_tensor";
  case Opcode::TensorScalar: return "tensor_scalar";
  case Opcode::TensorReduce: return "tensor_reduce";
  case Opcode::Copy: return "copy";
  case Opcode::Memset: return "memset";
  case Opcode::Iota: return "iota";
  case Opcode::SemWait: return "sem_wait";
  case Opcode::SemSignal: return "sem_signal";
  case Opcode::Loop: return "loop";
  case Opcode::EndLoop: return "}";
  }
  return "?";
}

const char *name(AluOp op) {
  switch (op) {
  case AluOp::Bypass: return "bypass";
  case AluOp::Add: return "add";
  case AluOp::Subtract: return "subtract";
  case AluOp::Multiply: return "multiply";
  case AluOp::Divide: return "divide";
  case AluOp::Max: return "max";
  case AluOp::Min: return "min";
  }
  return "?";
}

const char *name(ActFunc f) {
  switch (f) {
  case ActFunc::Identity: return "identity";
  case ActFunc::Relu: return "relu";
  case ActFunc::Exp: return "exp";
  case ActFunc::Log: return "log";
  case ActFunc::Tanh: return "tanh";
  case ActFunc::Sigmoid: return "sigmoid";
  case ActFunc::Gelu: return "gelu";
  case ActFunc::Sqrt: return "sqrt";
  case ActFunc::Rsqrt: return "rsqrt";
  case ActFunc::Square: return "square";
  case ActFunc::Abs: return "abs";
  }
  return "?";
}

//--- Verifier ----------------------------------------------------------------

namespace {

bool engineAllowed(Opcode op, unsigned s) {
  Engine e = isDma(s) ? Engine::Dma0 : static_cast<Engine>(s);
  switch (op) {
  case Opcode::DmaCopy: return isDma(s);
  case Opcode::LoadStationary:
  case Opcode::Matmul:
  case Opcode::Transpose: return e == Engine::Tensor;
  case Opcode::Activation: return e == Engine::Scalar;
  case Opcode::TensorTensor:
  case Opcode::TensorReduce: return e == Engine::Vector || e == Engine::GpSimd;
  case Opcode::TensorScalar:
  case Opcode::Copy:
  case Opcode::Memset:
    return e == Engine::Vector || e == Engine::Scalar || e == Engine::GpSimd;
  case Opcode::Iota: return e == Engine::GpSimd;
  case Opcode::SemWait:
  case Opcode::SemSignal:
  case Opcode::Loop:
  case Opcode::EndLoop: return true;
  }
  return false;
}

struct Checker {
  std::string err;
  unsigned depth = 0;

  bool fail(const std::string &m) {
    if (err.empty())
      err = m;
    return false;
  }

  bool affine(const Affine &a, const char *what) {
    for (unsigned d = depth; d < kMaxLoopDepth; ++d)
      if (a.coeff[d])
        return fail(std::string(what) + " uses %i" + std::to_string(d) +
                    " outside a loop of that depth");
    return true;
  }

  bool ap(const AccessPattern &a, const char *what, bool onChip) {
    if (onChip && a.space == Space::Hbm)
      return fail(std::string(what) + " must be in sbuf or psum");
    if (a.space == Space::Hbm) {
      if (a.rank == 0)
        return fail(std::string(what) + ": an hbm pattern needs 1 to 4 dims");
    } else {
      if (a.rank > kMaxFreeDims)
        return fail(std::string(what) + ": at most 3 free dims on chip");
      if (a.partitions == 0 || a.partition + a.partitions > kNumPartitions)
        return fail(std::string(what) + ": partitions [" +
                    std::to_string(a.partition) + ", " +
                    std::to_string(a.partition + a.partitions) +
                    ") outside [0, 128)");
    }
    for (unsigned i = 0; i < a.rank; ++i)
      if (a.dims[i].size <= 0)
        return fail(std::string(what) + ": dim " + std::to_string(i) +
                    " has size " + std::to_string(a.dims[i].size));
    return affine(a.offset, what);
  }

  bool sameShape(const AccessPattern &a, const AccessPattern &b,
                 const char *what) {
    if (a.partitions != b.partitions || a.freeSize() != b.freeSize())
      return fail(std::string(what) + ": shapes differ ([" +
                  std::to_string(a.partitions) + ", " +
                  std::to_string(a.freeSize()) + "] vs [" +
                  std::to_string(b.partitions) + ", " +
                  std::to_string(b.freeSize()) + "])");
    return true;
  }

  bool quadrant(const AccessPattern &a, const char *what) {
    if (a.partition % 32)
      return fail(std::string(what) +
                  ": tensor engine operands start at partition 0, 32, 64 "
                  "or 96, not " + std::to_string(a.partition));
    return true;
  }

  bool perPartition(const ScalarOperand &s, const AccessPattern &like,
                    const char *what) {
    if (!s.isAp)
      return true;
    if (!ap(s.ap, what, true))
      return false;
    if (s.ap.partitions != like.partitions || s.ap.freeSize() != 1)
      return fail(std::string(what) + " must be one element per partition "
                                      "over the same partitions");
    return true;
  }

  bool instr(const Instr &i, unsigned nsem) {
    switch (i.op) {
    case Opcode::DmaCopy:
      if (!ap(i.dst, "dst", false) || !ap(i.src, "src", false))
        return false;
      if (i.dst.space == Space::Psum || i.src.space == Space::Psum)
        return fail("dma_copy cannot access psum");
      if (i.dst.dtype != i.src.dtype)
        return fail("dma_copy does not convert (dst " +
                    std::string(name(i.dst.dtype)) + ", src " +
                    name(i.src.dtype) + ")");
      if (i.dst.numElements() != i.src.numElements())
        return fail("dma_copy element counts differ (" +
                    std::to_string(i.dst.numElements()) + " vs " +
                    std::to_string(i.src.numElements()) + ")");
      return true;
    case Opcode::LoadStationary:
      if (!ap(i.src, "stationary", true) || !quadrant(i.src, "stationary"))
        return false;
      if (i.src.space != Space::Sbuf)
        return fail("stationary must be in sbuf");
      if (i.src.freeSize() > 128)
        return fail("stationary free size " +
                    std::to_string(i.src.freeSize()) + " exceeds 128");
      return true;
    case Opcode::Matmul:
      if (!ap(i.dst, "dst", true) || !ap(i.src, "moving", true) ||
          !quadrant(i.src, "moving") || !quadrant(i.dst, "dst"))
        return false;
      if (i.dst.space != Space::Psum || i.dst.dtype != DType::F32)
        return fail("matmul writes f32 psum");
      if (i.src.space != Space::Sbuf)
        return fail("moving must be in sbuf");
      if (i.src.freeSize() > 512)
        return fail("moving free size " + std::to_string(i.src.freeSize()) +
                    " exceeds 512");
      if (i.dst.freeSize() != i.src.freeSize())
        return fail("matmul dst free size " +
                    std::to_string(i.dst.freeSize()) +
                    " differs from moving free size " +
                    std::to_string(i.src.freeSize()));
      return true;
    case Opcode::Transpose:
      if (!ap(i.dst, "dst", true) || !ap(i.src, "src", true) ||
          !quadrant(i.src, "src") || !quadrant(i.dst, "dst"))
        return false;
      if (i.dst.space != Space::Psum || i.src.space != Space::Sbuf)
        return fail("transpose reads sbuf and writes psum");
      if (i.src.freeSize() > 128)
        return fail("transpose src free size exceeds 128");
      if (i.dst.partitions != i.src.freeSize() ||
          i.dst.freeSize() != i.src.partitions)
        return fail("transpose dst must be [src free, src partitions]");
      return true;
    case Opcode::Activation:
      if (!ap(i.dst, "dst", true) || !ap(i.src, "src", true) ||
          !sameShape(i.dst, i.src, "activation") ||
          !perPartition(i.s0, i.src, "scale") ||
          !perPartition(i.s1, i.src, "bias"))
        return false;
      if (i.alu0 != AluOp::Bypass) {
        if (!ap(i.src2, "accum", true))
          return false;
        if (i.src2.partitions != i.src.partitions || i.src2.freeSize() != 1)
          return fail("accum must be one element per partition");
        if (i.alu0 != AluOp::Add && i.alu0 != AluOp::Max &&
            i.alu0 != AluOp::Min)
          return fail("activation reduces with add, max or min");
      }
      return true;
    case Opcode::TensorTensor:
      if (!ap(i.dst, "dst", true) || !ap(i.src, "lhs", true) ||
          !ap(i.src2, "rhs", true) || !sameShape(i.dst, i.src, "lhs") ||
          !sameShape(i.dst, i.src2, "rhs"))
        return false;
      if (i.alu0 == AluOp::Bypass)
        return fail("tensor_tensor needs an op");
      return true;
    case Opcode::TensorScalar:
      if (!ap(i.dst, "dst", true) || !ap(i.src, "src", true) ||
          !sameShape(i.dst, i.src, "tensor_scalar") ||
          !perPartition(i.s0, i.src, "operand0") ||
          !perPartition(i.s1, i.src, "operand1"))
        return false;
      if (i.alu0 == AluOp::Bypass)
        return fail("tensor_scalar needs op0");
      return true;
    case Opcode::TensorReduce: {
      if (!ap(i.dst, "dst", true) || !ap(i.src, "src", true))
        return false;
      int64_t inner = i.src.rank ? i.src.dims[i.src.rank - 1].size : 1;
      if (i.dst.partitions != i.src.partitions ||
          i.dst.freeSize() * inner != i.src.freeSize())
        return fail("tensor_reduce dst must be src without its innermost dim");
      if (i.alu0 != AluOp::Add && i.alu0 != AluOp::Max &&
          i.alu0 != AluOp::Min && i.alu0 != AluOp::Multiply)
        return fail("tensor_reduce reduces with add, multiply, max or min");
      return true;
    }
    case Opcode::Copy:
      return ap(i.dst, "dst", true) && ap(i.src, "src", true) &&
             sameShape(i.dst, i.src, "copy");
    case Opcode::Memset:
    case Opcode::Iota:
      return ap(i.dst, "dst", true) && affine(i.value, "value");
    case Opcode::SemWait:
    case Opcode::SemSignal:
      if (i.sem >= nsem)
        return fail("semaphore s" + std::to_string(i.sem) + " not declared (" +
                    std::to_string(nsem) + " semaphores)");
      return affine(i.value, "value");
    case Opcode::Loop:
      if (i.value.base < 0)
        return fail("negative loop count");
      if (depth == kMaxLoopDepth)
        return fail("loops nest at most 4 deep");
      ++depth;
      return true;
    case Opcode::EndLoop:
      if (depth == 0)
        return fail("'}' without a loop");
      --depth;
      return true;
    }
    return fail("unknown opcode");
  }
};

} // namespace

std::string verify(const Program &p) {
  for (unsigned s = 0; s < kNumStreams; ++s) {
    Checker c;
    const auto &instrs = p.streams[s];
    for (size_t n = 0; n < instrs.size(); ++n) {
      const Instr &i = instrs[n];
      if (!engineAllowed(i.op, s))
        return p.name + ": " + streamName(s) + "[" + std::to_string(n) +
               "]: " + name(i.op) + " cannot run on " + streamName(s);
      if (!c.instr(i, p.numSemaphores))
        return p.name + ": " + streamName(s) + "[" + std::to_string(n) +
               "] " + name(i.op) + ": " + c.err;
    }
    if (c.depth)
      return p.name + ": " + streamName(s) + ": unterminated loop";
  }
  return "";
}

//--- Builder -----------------------------------------------------------------

ProgramBuilder::ProgramBuilder(std::string name) {
  program.name = std::move(name);
  for (unsigned s = 0; s < kNumStreams; ++s)
    streams[s].instrs = &program.streams[s];
}

using Stream = ProgramBuilder::Stream;

Stream &Stream::append(const Instr &i) {
  instrs->push_back(i);
  return *this;
}

Stream &Stream::dmaCopy(const AccessPattern &dst, const AccessPattern &src) {
  Instr i;
  i.op = Opcode::DmaCopy;
  i.dst = dst;
  i.src = src;
  return append(i);
}

Stream &Stream::loadStationary(const AccessPattern &src) {
  Instr i;
  i.op = Opcode::LoadStationary;
  i.src = src;
  return append(i);
}

Stream &Stream::matmul(const AccessPattern &dst, const AccessPattern &moving,
                       bool accumulate) {
  Instr i;
  i.op = Opcode::Matmul;
  i.dst = dst;
  i.src = moving;
  i.accumulate = accumulate;
  return append(i);
}

Stream &Stream::transpose(const AccessPattern &dst, const AccessPattern &src) {
  Instr i;
  i.op = Opcode::Transpose;
  i.dst = dst;
  i.src = src;
  return append(i);
}

Stream &Stream::activation(const AccessPattern &dst, const AccessPattern &src,
                           ActFunc f, ScalarOperand scale, ScalarOperand bias) {
  Instr i;
  i.op = Opcode::Activation;
  i.dst = dst;
  i.src = src;
  i.func = f;
  i.s0 = scale;
  i.s1 = bias;
  return append(i);
}

Stream &Stream::activationReduce(const AccessPattern &dst,
                                 const AccessPattern &src, ActFunc f,
                                 ScalarOperand scale, ScalarOperand bias,
                                 AluOp reduce, const AccessPattern &accum) {
  activation(dst, src, f, scale, bias);
  instrs->back().alu0 = reduce;
  instrs->back().src2 = accum;
  return *this;
}

Stream &Stream::tensorTensor(const AccessPattern &dst, const AccessPattern &a,
                             const AccessPattern &b, AluOp op) {
  Instr i;
  i.op = Opcode::TensorTensor;
  i.dst = dst;
  i.src = a;
  i.src2 = b;
  i.alu0 = op;
  return append(i);
}

Stream &Stream::tensorScalar(const AccessPattern &dst, const AccessPattern &src,
                             AluOp op0, ScalarOperand v0, AluOp op1,
                             ScalarOperand v1) {
  Instr i;
  i.op = Opcode::TensorScalar;
  i.dst = dst;
  i.src = src;
  i.alu0 = op0;
  i.s0 = v0;
  i.alu1 = op1;
  i.s1 = v1;
  return append(i);
}

Stream &Stream::tensorReduce(const AccessPattern &dst, const AccessPattern &src,
                             AluOp op) {
  Instr i;
  i.op = Opcode::TensorReduce;
  i.dst = dst;
  i.src = src;
  i.alu0 = op;
  return append(i);
}

Stream &Stream::copy(const AccessPattern &dst, const AccessPattern &src) {
  Instr i;
  i.op = Opcode::Copy;
  i.dst = dst;
  i.src = src;
  return append(i);
}

Stream &Stream::memset(const AccessPattern &dst, float value) {
  Instr i;
  i.op = Opcode::Memset;
  i.dst = dst;
  i.s0 = value;
  return append(i);
}

Stream &Stream::iota(const AccessPattern &dst, Affine base, int64_t pstep,
                     int64_t fstep) {
  Instr i;
  i.op = Opcode::Iota;
  i.dst = dst;
  i.value = base;
  i.pstep = pstep;
  i.fstep = fstep;
  return append(i);
}

Stream &Stream::wait(uint32_t sem, Affine value) {
  Instr i;
  i.op = Opcode::SemWait;
  i.sem = sem;
  i.value = value;
  return append(i);
}

Stream &Stream::signal(uint32_t sem, int64_t increment) {
  Instr i;
  i.op = Opcode::SemSignal;
  i.sem = sem;
  i.value = increment;
  return append(i);
}

Stream &Stream::loop(int64_t count, const std::function<void(LoopVar)> &body) {
  Instr i;
  i.op = Opcode::Loop;
  i.value = count;
  append(i);
  LoopVar v{depth++};
  body(v);
  --depth;
  Instr e;
  e.op = Opcode::EndLoop;
  return append(e);
}

} // namespace kiln::npu

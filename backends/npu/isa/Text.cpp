//===- Text.cpp - Text form of NPU programs: printer and parser -----------===//
//
// Grammar (docs/npu.md has the full table):
//   module  := kernel*
//   kernel  := 'kernel' '@' NAME 'semaphores' '=' INT '{' stream* '}'
//   stream  := ENGINE '{' instr* '}'          ENGINE: tensor vector scalar
//                                              gpsimd dma0 .. dma15
//   instr   := OPCODE operand (',' operand)* (',' KEY '=' value)*
//            | 'loop' INT '{' instr* '}'
//   operand := SPACE '[' INT ':' INT ',' affine ']' DTYPE dims   (sbuf, psum)
//            | 'hbm' '[' INT ',' affine ']' DTYPE dims
//   dims    := '[' ('[' INT ',' INT ']') (',' ...)* ']'           (stride, size)
//   affine  := INT (('+'|'-') INT '*' '%i' DIGIT)*
// '//' starts a comment.
//
//===----------------------------------------------------------------------===//
#include "Isa.h"

#include <cctype>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace kiln::npu {

//--- Printer -----------------------------------------------------------------

namespace {

std::string fmtFloat(float f) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.9g", static_cast<double>(f));
  std::string s = buf;
  // Keep floats recognizable as such when they happen to be integral.
  if (s.find_first_of(".eEn") == std::string::npos)
    s += ".0";
  return s;
}

std::string fmtAffine(const Affine &a) {
  std::string s = std::to_string(a.base);
  for (unsigned d = 0; d < kMaxLoopDepth; ++d) {
    if (!a.coeff[d])
      continue;
    int64_t c = a.coeff[d];
    s += c < 0 ? " - " : " + ";
    s += std::to_string(c < 0 ? -c : c) + "*%i" + std::to_string(d);
  }
  return s;
}

std::string fmtAp(const AccessPattern &a) {
  std::string s;
  if (a.space == Space::Hbm)
    s = "hbm[" + std::to_string(a.tensor) + ", ";
  else
    s = std::string(a.space == Space::Sbuf ? "sbuf[" : "psum[") +
        std::to_string(a.partition) + ":" +
        std::to_string(a.partition + a.partitions) + ", ";
  s += fmtAffine(a.offset) + "] " + name(a.dtype) + " [";
  for (unsigned i = 0; i < a.rank; ++i)
    s += std::string(i ? ", " : "") + "[" + std::to_string(a.dims[i].stride) +
         ", " + std::to_string(a.dims[i].size) + "]";
  return s + "]";
}

std::string fmtScalar(const ScalarOperand &s) {
  return s.isAp ? fmtAp(s.ap) : fmtFloat(s.imm);
}

std::string fmtInstr(const Instr &i) {
  std::string s = name(i.op);
  switch (i.op) {
  case Opcode::DmaCopy:
  case Opcode::Transpose:
  case Opcode::Copy:
    return s + " " + fmtAp(i.dst) + ", " + fmtAp(i.src);
  case Opcode::LoadStationary:
    return s + " " + fmtAp(i.src);
  case Opcode::Matmul:
    return s + " " + fmtAp(i.dst) + ", " + fmtAp(i.src) +
           ", accumulate=" + (i.accumulate ? "1" : "0");
  case Opcode::Activation:
    s += " " + fmtAp(i.dst) + ", " + fmtAp(i.src) + ", func=" + name(i.func) +
         ", scale=" + fmtScalar(i.s0) + ", bias=" + fmtScalar(i.s1);
    if (i.alu0 != AluOp::Bypass)
      s += std::string(", reduce=") + name(i.alu0) + ", accum=" + fmtAp(i.src2);
    return s;
  case Opcode::TensorTensor:
    return s + " " + fmtAp(i.dst) + ", " + fmtAp(i.src) + ", " +
           fmtAp(i.src2) + ", op=" + name(i.alu0);
  case Opcode::TensorScalar:
    s += " " + fmtAp(i.dst) + ", " + fmtAp(i.src) + ", op0=" + name(i.alu0) +
         ", operand0=" + fmtScalar(i.s0);
    if (i.alu1 != AluOp::Bypass)
      s += std::string(", op1=") + name(i.alu1) + ", operand1=" + fmtScalar(i.s1);
    return s;
  case Opcode::TensorReduce:
    return s + " " + fmtAp(i.dst) + ", " + fmtAp(i.src) + ", op=" +
           name(i.alu0);
  case Opcode::Memset:
    return s + " " + fmtAp(i.dst) + ", value=" + fmtFloat(i.s0.imm);
  case Opcode::Iota:
    return s + " " + fmtAp(i.dst) + ", base=" + fmtAffine(i.value) +
           ", pstep=" + std::to_string(i.pstep) +
           ", fstep=" + std::to_string(i.fstep);
  case Opcode::SemWait:
    return s + " s" + std::to_string(i.sem) + ", " + fmtAffine(i.value);
  case Opcode::SemSignal:
    return s + " s" + std::to_string(i.sem) + ", " +
           std::to_string(i.value.base);
  case Opcode::Loop:
    return s + " " + std::to_string(i.value.base) + " {";
  case Opcode::EndLoop:
    return "}";
  }
  return s;
}

} // namespace

std::string printProgram(const Program &p) {
  std::string out = "kernel @" + p.name +
                    " semaphores=" + std::to_string(p.numSemaphores) + " {\n";
  for (unsigned s = 0; s < kNumStreams; ++s) {
    if (p.streams[s].empty())
      continue;
    out += "  " + streamName(s) + " {\n";
    unsigned indent = 4;
    for (const Instr &i : p.streams[s]) {
      if (i.op == Opcode::EndLoop)
        indent -= 2;
      out += std::string(indent, ' ') + fmtInstr(i) + "\n";
      if (i.op == Opcode::Loop)
        indent += 2;
    }
    out += "  }\n";
  }
  return out + "}\n";
}

std::string printModule(const Module &m) {
  std::string out;
  for (size_t k = 0; k < m.kernels.size(); ++k)
    out += (k ? "\n" : "") + printProgram(m.kernels[k]);
  return out;
}

//--- Parser ------------------------------------------------------------------

namespace {

struct ParseError {
  std::string message;
};

class Parser {
public:
  explicit Parser(const std::string &text) : s(text) {}

  void module(Module &m) {
    skip();
    while (pos < s.size()) {
      m.kernels.emplace_back();
      kernel(m.kernels.back());
      skip();
    }
  }

private:
  const std::string &s;
  size_t pos = 0;
  unsigned line = 1;

  [[noreturn]] void error(const std::string &msg) {
    throw ParseError{"line " + std::to_string(line) + ": " + msg};
  }

  void skip() {
    while (pos < s.size()) {
      char c = s[pos];
      if (c == '\n') {
        ++line;
        ++pos;
      } else if (std::isspace(static_cast<unsigned char>(c))) {
        ++pos;
      } else if (c == '/' && pos + 1 < s.size() && s[pos + 1] == '/') {
        while (pos < s.size() && s[pos] != '\n')
          ++pos;
      } else {
        break;
      }
    }
  }

  bool accept(const char *tok) {
    skip();
    size_t n = std::strlen(tok);
    if (s.compare(pos, n, tok) != 0)
      return false;
    pos += n;
    return true;
  }

  void expect(const char *tok) {
    if (!accept(tok))
      error(std::string("expected '") + tok + "' at '" + peekWord() + "'");
  }

  std::string peekWord() {
    skip();
    size_t e = pos;
    while (e < s.size() && !std::isspace(static_cast<unsigned char>(s[e])) &&
           e - pos < 24)
      ++e;
    return pos < s.size() ? s.substr(pos, e - pos) : "end of input";
  }

  std::string ident() {
    skip();
    size_t b = pos;
    while (pos < s.size() &&
           (std::isalnum(static_cast<unsigned char>(s[pos])) || s[pos] == '_'))
      ++pos;
    if (b == pos)
      error("expected a name at '" + peekWord() + "'");
    return s.substr(b, pos - b);
  }

  int64_t integer() {
    skip();
    errno = 0;
    char *end = nullptr;
    long long v = std::strtoll(s.c_str() + pos, &end, 10);
    if (end == s.c_str() + pos || errno)
      error("expected an integer at '" + peekWord() + "'");
    pos = static_cast<size_t>(end - s.c_str());
    return v;
  }

  float number() {
    skip();
    char *end = nullptr;
    float v = std::strtof(s.c_str() + pos, &end);
    if (end == s.c_str() + pos)
      error("expected a number at '" + peekWord() + "'");
    pos = static_cast<size_t>(end - s.c_str());
    return v;
  }

  Affine affine() {
    Affine a;
    a.base = integer();
    for (;;) {
      int sign;
      if (accept("+"))
        sign = 1;
      else if (accept("-"))
        sign = -1;
      else
        return a;
      int64_t c = integer();
      expect("*");
      expect("%i");
      int64_t d = integer();
      if (d < 0 || d >= static_cast<int64_t>(kMaxLoopDepth))
        error("loop variable %i" + std::to_string(d) + " out of range");
      a.coeff[d] += sign * c;
    }
  }

  DType dtype() {
    std::string t = ident();
    for (DType d : {DType::F32, DType::BF16, DType::F16})
      if (t == name(d))
        return d;
    error("unknown dtype '" + t + "'");
  }

  bool atAp() {
    skip();
    return s.compare(pos, 5, "sbuf[") == 0 || s.compare(pos, 5, "psum[") == 0 ||
           s.compare(pos, 4, "hbm[") == 0;
  }

  AccessPattern ap() {
    AccessPattern a;
    std::string sp = ident();
    expect("[");
    if (sp == "hbm") {
      a.space = Space::Hbm;
      a.tensor = static_cast<uint32_t>(integer());
    } else if (sp == "sbuf" || sp == "psum") {
      a.space = sp == "sbuf" ? Space::Sbuf : Space::Psum;
      int64_t lo = integer();
      expect(":");
      int64_t hi = integer();
      if (lo < 0 || hi <= lo || hi > 4096)
        error("bad partition range " + std::to_string(lo) + ":" +
              std::to_string(hi));
      a.partition = static_cast<uint32_t>(lo);
      a.partitions = static_cast<uint32_t>(hi - lo);
    } else {
      error("expected sbuf, psum or hbm, got '" + sp + "'");
    }
    expect(",");
    a.offset = affine();
    expect("]");
    a.dtype = dtype();
    expect("[");
    if (!accept("]")) {
      do {
        if (a.rank == kMaxDims)
          error("more than 4 dims");
        expect("[");
        a.dims[a.rank].stride = integer();
        expect(",");
        a.dims[a.rank].size = integer();
        expect("]");
        ++a.rank;
      } while (accept(","));
      expect("]");
    }
    return a;
  }

  ScalarOperand scalar() {
    if (atAp())
      return ScalarOperand(ap());
    return ScalarOperand(number());
  }

  template <class T, size_t N>
  T enumValue(const T (&all)[N], const char *what) {
    std::string n = ident();
    for (T v : all)
      if (n == name(v))
        return v;
    error(std::string("unknown ") + what + " '" + n + "'");
  }

  AluOp alu() {
    static const AluOp all[] = {AluOp::Bypass,   AluOp::Add, AluOp::Subtract,
                                AluOp::Multiply, AluOp::Divide, AluOp::Max,
                                AluOp::Min};
    return enumValue(all, "op");
  }

  ActFunc func() {
    static const ActFunc all[] = {
        ActFunc::Identity, ActFunc::Relu,    ActFunc::Exp,  ActFunc::Log,
        ActFunc::Tanh,     ActFunc::Sigmoid, ActFunc::Gelu, ActFunc::Sqrt,
        ActFunc::Rsqrt,    ActFunc::Square,  ActFunc::Abs};
    return enumValue(all, "function");
  }

  uint32_t semaphore() {
    expect("s");
    int64_t n = integer();
    if (n < 0 || n > UINT32_MAX)
      error("bad semaphore number");
    return static_cast<uint32_t>(n);
  }

  /// Parses `, key=value` pairs; `handle` returns false for unknown keys.
  template <class F> void attrs(const char *op, F handle) {
    while (accept(",")) {
      std::string key = ident();
      expect("=");
      if (!handle(key))
        error(std::string(op) + " has no attribute '" + key + "'");
    }
  }

  void instrs(std::vector<Instr> &out, unsigned depth) {
    for (;;) {
      if (accept("}")) {
        if (depth) {
          Instr e;
          e.op = Opcode::EndLoop;
          out.push_back(e);
        }
        return;
      }
      skip();
      if (pos >= s.size())
        error("missing '}'");
      out.push_back(instr());
      if (out.back().op == Opcode::Loop) {
        expect("{");
        instrs(out, depth + 1);
      }
    }
  }

  Instr instr() {
    std::string op = ident();
    Instr i;
    auto twoAps = [&] {
      i.dst = ap();
      expect(",");
      i.src = ap();
    };
    if (op == "dma_copy" || op == "transpose" || op == "copy") {
      i.op = op == "dma_copy" ? Opcode::DmaCopy
             : op == "copy"   ? Opcode::Copy
                              : Opcode::Transpose;
      twoAps();
    } else if (op == "load_stationary") {
      i.op = Opcode::LoadStationary;
      i.src = ap();
    } else if (op == "matmul") {
      i.op = Opcode::Matmul;
      twoAps();
      attrs("matmul", [&](const std::string &k) {
        if (k != "accumulate")
          return false;
        i.accumulate = integer() != 0;
        return true;
      });
    } else if (op == "activation") {
      i.op = Opcode::Activation;
      i.s0 = 1.0f;
      twoAps();
      attrs("activation", [&](const std::string &k) {
        if (k == "func")
          i.func = func();
        else if (k == "scale")
          i.s0 = scalar();
        else if (k == "bias")
          i.s1 = scalar();
        else if (k == "reduce")
          i.alu0 = alu();
        else if (k == "accum")
          i.src2 = ap();
        else
          return false;
        return true;
      });
    } else if (op == "tensor_tensor") {
      i.op = Opcode::TensorTensor;
      twoAps();
      expect(",");
      i.src2 = ap();
      attrs("tensor_tensor", [&](const std::string &k) {
        if (k != "op")
          return false;
        i.alu0 = alu();
        return true;
      });
    } else if (op == "tensor_scalar") {
      i.op = Opcode::TensorScalar;
      twoAps();
      attrs("tensor_scalar", [&](const std::string &k) {
        if (k == "op0")
          i.alu0 = alu();
        else if (k == "operand0")
          i.s0 = scalar();
        else if (k == "op1")
          i.alu1 = alu();
        else if (k == "operand1")
          i.s1 = scalar();
        else
          return false;
        return true;
      });
    } else if (op == "tensor_reduce") {
      i.op = Opcode::TensorReduce;
      twoAps();
      attrs("tensor_reduce", [&](const std::string &k) {
        if (k != "op")
          return false;
        i.alu0 = alu();
        return true;
      });
    } else if (op == "memset") {
      i.op = Opcode::Memset;
      i.dst = ap();
      attrs("memset", [&](const std::string &k) {
        if (k != "value")
          return false;
        i.s0 = number();
        return true;
      });
    } else if (op == "iota") {
      i.op = Opcode::Iota;
      i.dst = ap();
      attrs("iota", [&](const std::string &k) {
        if (k == "base")
          i.value = affine();
        else if (k == "pstep")
          i.pstep = integer();
        else if (k == "fstep")
          i.fstep = integer();
        else
          return false;
        return true;
      });
    } else if (op == "sem_wait" || op == "sem_signal") {
      i.op = op == "sem_wait" ? Opcode::SemWait : Opcode::SemSignal;
      i.sem = semaphore();
      expect(",");
      i.value = op == "sem_wait" ? affine() : Affine(integer());
    } else if (op == "loop") {
      i.op = Opcode::Loop;
      i.value = integer();
    } else {
      error("unknown instruction '" + op + "'");
    }
    return i;
  }

  void kernel(Program &p) {
    if (ident() != "kernel")
      error("expected 'kernel'");
    expect("@");
    p.name = ident();
    if (ident() != "semaphores")
      error("expected 'semaphores='");
    expect("=");
    int64_t n = integer();
    if (n < 0 || n > 65536)
      error("bad semaphore count");
    p.numSemaphores = static_cast<uint32_t>(n);
    expect("{");
    bool seen[kNumStreams] = {};
    while (!accept("}")) {
      std::string e = ident();
      unsigned stream = kNumStreams;
      for (unsigned k = 0; k < kNumStreams; ++k)
        if (e == streamName(k))
          stream = k;
      if (stream == kNumStreams)
        error("unknown engine '" + e + "'");
      if (seen[stream])
        error("engine '" + e + "' appears twice");
      seen[stream] = true;
      expect("{");
      instrs(p.streams[stream], 0);
    }
  }
};

} // namespace

std::string parseModule(const std::string &text, Module &out) {
  out.kernels.clear();
  try {
    Parser(text).module(out);
  } catch (const ParseError &e) {
    return e.message;
  }
  for (const Program &p : out.kernels)
    if (std::string err = verify(p); !err.empty())
      return err;
  return "";
}

} // namespace kiln::npu

//===- Binary.cpp - The "npu-isa-v1" binary form of NPU modules -----------===//
//
// Little-endian. Layout (docs/npu.md):
//   char[8] magic "KILNNPU\0"; u32 version 1; u32 kernel_count;
//   per kernel: u32 name_len, name bytes; u32 semaphores; u32 stream_count
//   (20); per stream: u32 instr_count, instrs.
// Every instruction is a fixed 32-bit opcode followed by the fields of
// `fields()` below, written and read by the same function so the two
// directions cannot drift apart.
//
//===----------------------------------------------------------------------===//
#include "Isa.h"

#include <cstring>

namespace kiln::npu {

namespace {

constexpr char kMagic[8] = {'K', 'I', 'L', 'N', 'N', 'P', 'U', '\0'};
constexpr uint32_t kVersion = 1;

struct Writer {
  std::vector<uint8_t> out;
  bool ok = true;
  template <class T> void raw(T v) {
    uint8_t b[sizeof(T)];
    std::memcpy(b, &v, sizeof(T));
    out.insert(out.end(), b, b + sizeof(T));
  }
  void u8(uint8_t &v) { raw(v); }
  void u32(uint32_t &v) { raw(v); }
  void i64(int64_t &v) { raw(v); }
  void f32(float &v) { raw(v); }
  template <class E> void e8(E &v) { raw(static_cast<uint8_t>(v)); }
  void b8(bool &v) { raw(static_cast<uint8_t>(v)); }
};

struct Reader {
  const uint8_t *p, *end;
  bool ok = true;
  template <class T> void raw(T &v) {
    if (static_cast<size_t>(end - p) < sizeof(T)) {
      ok = false;
      v = T();
      return;
    }
    std::memcpy(&v, p, sizeof(T));
    p += sizeof(T);
  }
  void u8(uint8_t &v) { raw(v); }
  void u32(uint32_t &v) { raw(v); }
  void i64(int64_t &v) { raw(v); }
  void f32(float &v) { raw(v); }
  /// Enums are range-checked so a corrupt image cannot produce values the
  /// switch statements downstream do not know.
  template <class E> void e8(E &v, uint8_t limit) {
    uint8_t b;
    raw(b);
    if (b > limit)
      ok = false;
    v = static_cast<E>(b);
  }
  void b8(bool &v) {
    uint8_t b;
    raw(b);
    v = b != 0;
  }
};

template <class IO, class E> void enumField(IO &io, E &v, E last) {
  if constexpr (std::is_same_v<IO, Reader>)
    io.e8(v, static_cast<uint8_t>(last));
  else
    io.e8(v);
}

template <class IO> void affine(IO &io, Affine &a) {
  io.i64(a.base);
  for (int64_t &c : a.coeff)
    io.i64(c);
}

template <class IO> void accessPattern(IO &io, AccessPattern &a) {
  enumField(io, a.space, Space::Psum);
  enumField(io, a.dtype, DType::F16);
  io.u32(a.tensor);
  io.u32(a.partition);
  io.u32(a.partitions);
  affine(io, a.offset);
  io.u8(a.rank);
  if (a.rank > kMaxDims)
    io.ok = false;
  for (unsigned i = 0; i < a.rank && i < kMaxDims; ++i) {
    io.i64(a.dims[i].stride);
    io.i64(a.dims[i].size);
  }
}

template <class IO> void scalar(IO &io, ScalarOperand &s) {
  io.b8(s.isAp);
  if (s.isAp)
    accessPattern(io, s.ap);
  else
    io.f32(s.imm);
}

/// Only the fields an opcode uses are stored, so images stay compact.
template <class IO> void fields(IO &io, Instr &i) {
  enumField(io, i.op, Opcode::EndLoop);
  switch (i.op) {
  case Opcode::DmaCopy:
  case Opcode::Transpose:
  case Opcode::Copy:
    accessPattern(io, i.dst);
    accessPattern(io, i.src);
    return;
  case Opcode::LoadStationary:
    accessPattern(io, i.src);
    return;
  case Opcode::Matmul:
    accessPattern(io, i.dst);
    accessPattern(io, i.src);
    io.b8(i.accumulate);
    return;
  case Opcode::Activation:
    accessPattern(io, i.dst);
    accessPattern(io, i.src);
    enumField(io, i.func, ActFunc::Abs);
    scalar(io, i.s0);
    scalar(io, i.s1);
    enumField(io, i.alu0, AluOp::Min);
    if (i.alu0 != AluOp::Bypass)
      accessPattern(io, i.src2);
    return;
  case Opcode::TensorTensor:
    accessPattern(io, i.dst);
    accessPattern(io, i.src);
    accessPattern(io, i.src2);
    enumField(io, i.alu0, AluOp::Min);
    return;
  case Opcode::TensorScalar:
    accessPattern(io, i.dst);
    accessPattern(io, i.src);
    enumField(io, i.alu0, AluOp::Min);
    scalar(io, i.s0);
    enumField(io, i.alu1, AluOp::Min);
    scalar(io, i.s1);
    return;
  case Opcode::TensorReduce:
    accessPattern(io, i.dst);
    accessPattern(io, i.src);
    enumField(io, i.alu0, AluOp::Min);
    return;
  case Opcode::Memset:
    accessPattern(io, i.dst);
    io.f32(i.s0.imm);
    return;
  case Opcode::Iota:
    accessPattern(io, i.dst);
    affine(io, i.value);
    io.i64(i.pstep);
    io.i64(i.fstep);
    return;
  case Opcode::SemWait:
  case Opcode::SemSignal:
    io.u32(i.sem);
    affine(io, i.value);
    return;
  case Opcode::Loop:
    io.i64(i.value.base);
    return;
  case Opcode::EndLoop:
    return;
  }
}

} // namespace

std::vector<uint8_t> encodeModule(const Module &m) {
  Writer w;
  w.out.insert(w.out.end(), kMagic, kMagic + 8);
  w.raw(kVersion);
  w.raw(static_cast<uint32_t>(m.kernels.size()));
  for (const Program &p : m.kernels) {
    w.raw(static_cast<uint32_t>(p.name.size()));
    w.out.insert(w.out.end(), p.name.begin(), p.name.end());
    w.raw(p.numSemaphores);
    w.raw(static_cast<uint32_t>(kNumStreams));
    for (const auto &stream : p.streams) {
      w.raw(static_cast<uint32_t>(stream.size()));
      for (Instr i : stream)
        fields(w, i);
    }
  }
  return std::move(w.out);
}

std::string decodeModule(const void *data, size_t size, Module &out) {
  out.kernels.clear();
  Reader r{static_cast<const uint8_t *>(data),
           static_cast<const uint8_t *>(data) + size};
  if (size < 16 || std::memcmp(data, kMagic, 8) != 0)
    return "not an npu-isa image (bad magic)";
  r.p += 8;
  uint32_t version, count;
  r.raw(version);
  if (version != kVersion)
    return "npu-isa version " + std::to_string(version) + " (expected 1)";
  r.raw(count);
  for (uint32_t k = 0; k < count && r.ok; ++k) {
    Program p;
    uint32_t len;
    r.raw(len);
    if (!r.ok || len > static_cast<size_t>(r.end - r.p))
      return "truncated kernel name";
    p.name.assign(reinterpret_cast<const char *>(r.p), len);
    r.p += len;
    uint32_t streams;
    r.raw(p.numSemaphores);
    r.raw(streams);
    if (r.ok && streams != kNumStreams)
      return "kernel '" + p.name + "' has " + std::to_string(streams) +
             " streams (expected 20)";
    for (auto &stream : p.streams) {
      uint32_t n;
      r.raw(n);
      // Each instruction takes at least one byte: bounds a corrupt count.
      if (!r.ok || n > static_cast<size_t>(r.end - r.p))
        return "kernel '" + p.name + "': truncated stream";
      stream.resize(n);
      for (Instr &i : stream)
        fields(r, i);
    }
    if (!r.ok)
      return "kernel '" + p.name + "': truncated or corrupt instruction";
    if (std::string err = verify(p); !err.empty())
      return err;
    out.kernels.push_back(std::move(p));
  }
  if (!r.ok)
    return "truncated image";
  if (r.p != r.end)
    return std::to_string(r.end - r.p) + " trailing bytes after the last kernel";
  return "";
}

} // namespace kiln::npu

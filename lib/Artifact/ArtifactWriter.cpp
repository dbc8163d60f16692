//===- ArtifactWriter.cpp - Serialize a compiled module to a .kiln file ---===//
//
// Layout (docs/artifact-format.md): header, section table, then the sections
// ("meta", "constants", one "exec.*" per executable), each 64-byte aligned.
//
//===----------------------------------------------------------------------===//
#include "kiln/Artifact/ArtifactWriter.h"
#include "kiln/artifact_format.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <algorithm>
#include <fcntl.h>
#include <sys/stat.h>
#include <set>
#include <unistd.h>

namespace kiln::artifact {
namespace {

uint64_t alignUp(uint64_t v) {
  return (v + KILN_ART_ALIGN - 1) / KILN_ART_ALIGN * KILN_ART_ALIGN;
}

class ByteWriter {
public:
  std::vector<uint8_t> bytes;
  void u32(uint32_t v) { raw(&v, 4); }
  void u64(uint64_t v) { raw(&v, 8); }
  void i64(int64_t v) { raw(&v, 8); }
  void str(const std::string &s) {
    u32(static_cast<uint32_t>(s.size()));
    raw(s.data(), s.size());
  }
  void raw(const void *p, size_t n) {
    auto *b = static_cast<const uint8_t *>(p);
    bytes.insert(bytes.end(), b, b + n);
  }
};

bool validDType(DType t) {
  switch (t) {
  case DType::F32: case DType::U8: case DType::I8: case DType::U16:
  case DType::I16: case DType::I32: case DType::I64: case DType::Bool:
  case DType::F16: case DType::F64: case DType::U32: case DType::U64:
  case DType::BF16: case DType::F8E4M3FN: case DType::F8E4M3FNUZ:
  case DType::F8E5M2: case DType::F8E5M2FNUZ: case DType::U4: case DType::I4:
  case DType::F4E2M1: case DType::F8E8M0: case DType::U2: case DType::I2:
    return true;
  }
  return false;
}

// Catch compiler bugs here, where the message can still name the module part,
// rather than as a "corrupt artifact" at load time.
std::string validate(const Module &m) {
  std::set<const TensorDesc *> shapeDecided; // inputs that may have dims of -1
  for (const Module::Specialization &sp : m.specializeOn)
    if (sp.input < m.inputs.size() && (sp.kinds & KILN_ART_SPECIALIZE_SHAPE))
      shapeDecided.insert(&m.inputs[sp.input]);
  auto checkTensors = [&](const std::vector<TensorDesc> &ts,
                          const char *what) -> std::string {
    std::set<std::string> names;
    for (const TensorDesc &t : ts) {
      if (!names.insert(t.name).second)
        return std::string("duplicate ") + what + " name '" + t.name + "'";
      if (t.buffer >= m.buffers.size())
        return std::string(what) + " '" + t.name + "' uses buffer " +
               std::to_string(t.buffer) + " of " +
               std::to_string(m.buffers.size());
      if (!validDType(t.dtype))
        return std::string(what) + " '" + t.name + "' has an unknown dtype";
      for (int64_t d : t.shape)
        if (d < 0 && !(d == -1 && shapeDecided.count(&t)))
          return std::string(what) + " '" + t.name + "' has a dynamic dim";
    }
    return "";
  };
  if (std::string e = checkTensors(m.inputs, "input"); !e.empty())
    return e;
  if (std::string e = checkTensors(m.outputs, "output"); !e.empty())
    return e;
  for (const TensorDesc &t : m.inputs)
    if (!t.dynamicDims.empty())
      return "input '" + t.name + "' has a dynamic dim";
  for (const Module::Specialization &sp : m.specializeOn)
    if (sp.input >= m.inputs.size() || !sp.kinds ||
        (sp.kinds & ~(KILN_ART_SPECIALIZE_VALUE | KILN_ART_SPECIALIZE_SHAPE)))
      return "specializing on input " + std::to_string(sp.input) + " (kinds " +
             std::to_string(sp.kinds) + "), which does not exist";
  if (!m.specializeOn.empty() && (!m.executables.empty() || !m.dispatches.empty() ||
                                  m.source.model.empty()))
    return "a module that specializes at run time holds its source and no code";
  for (const TensorDesc &t : m.outputs)
    for (const DynamicDim &d : t.dynamicDims) {
      if (d.dim >= t.shape.size())
        return "output '" + t.name + "': dynamic dim " + std::to_string(d.dim) +
               " past its rank";
      if (d.buffer >= m.buffers.size() || d.offset + 8 > m.buffers[d.buffer].sizeBytes)
        return "output '" + t.name + "': the extent of dim " + std::to_string(d.dim) +
               " is outside the buffers";
    }
  for (size_t i = 0; i < m.buffers.size(); ++i)
    if (m.buffers[i].kind == BufferKind::Constant && m.buffers[i].sizeBytes &&
        !m.buffers[i].constData)
      return "constant buffer " + std::to_string(i) + " has no data";
  for (size_t i = 0; i < m.executables.size(); ++i) {
    const Executable &e = m.executables[i];
    std::string what = "executable " + std::to_string(i);
    if (e.target.empty() || e.format.empty())
      return what + " has no target or format";
    // "exec." + target (+ ".N") must fit the 31-char section name.
    if (e.target.size() > 20)
      return "executable target '" + e.target + "' is longer than 20 chars";
    // Dispatches name kernels by index, so every target lists the same ones.
    const Executable &first = m.executables.front();
    if (e.entries.size() != first.entries.size())
      return what + " (" + e.target + ") has " + std::to_string(e.entries.size()) +
             " entries but executable 0 has " + std::to_string(first.entries.size());
    for (size_t j = 0; j < e.entries.size(); ++j)
      if (e.entries[j].name != first.entries[j].name)
        return what + " (" + e.target + ") entry " + std::to_string(j) + " is '" +
               e.entries[j].name + "' but executable 0 has '" + first.entries[j].name + "'";
  }
  size_t kernels = m.executables.empty() ? 0 : m.executables.front().entries.size();
  if (!m.kernelOps.empty() && m.kernelOps.size() != kernels)
    return std::to_string(m.kernelOps.size()) + " kernel descriptions for " +
           std::to_string(kernels) + " kernels";
  if (!m.kernelExtents.empty() && m.kernelExtents.size() != kernels)
    return std::to_string(m.kernelExtents.size()) + " kernel extent lists for " +
           std::to_string(kernels) + " kernels";
  for (size_t i = 0; i < m.dispatches.size(); ++i) {
    const Dispatch &d = m.dispatches[i];
    std::string where = "dispatch " + std::to_string(i);
    if (d.kernel >= kernels)
      return where + " uses kernel " + std::to_string(d.kernel) + " of " +
             std::to_string(kernels);
    if (!m.kernelExtents.empty()) {
      const std::vector<uint64_t> &ext = m.kernelExtents[d.kernel];
      if (ext.size() != d.bindings.size())
        return where + " has " + std::to_string(d.bindings.size()) + " bindings but its kernel " +
               std::to_string(ext.size());
      for (size_t j = 0; j < ext.size(); ++j)
        if (d.bindings[j].buffer < m.buffers.size() &&
            d.bindings[j].offset + ext[j] > m.buffers[d.bindings[j].buffer].sizeBytes)
          return where + " binding " + std::to_string(j) + " needs " + std::to_string(ext[j]) +
                 " bytes past its buffer's end";
    }
    for (const Binding &b : d.bindings) {
      if (b.buffer >= m.buffers.size())
        return where + " binds buffer " + std::to_string(b.buffer) + " of " +
               std::to_string(m.buffers.size());
      if (b.offset > m.buffers[b.buffer].sizeBytes)
        return where + " binds buffer " + std::to_string(b.buffer) +
               " at offset " + std::to_string(b.offset) + " past its end";
    }
  }
  return "";
}

void writeTensors(ByteWriter &w, const std::vector<TensorDesc> &ts) {
  w.u32(static_cast<uint32_t>(ts.size()));
  for (const TensorDesc &t : ts) {
    w.str(t.name);
    w.u32(static_cast<uint32_t>(t.dtype));
    w.u32(t.buffer);
    w.u32(static_cast<uint32_t>(t.shape.size()));
    for (int64_t d : t.shape)
      w.i64(d);
  }
}

struct Section {
  std::string name;
  const uint8_t *data;
  uint64_t size;
};

bool writeAll(int fd, const void *p, uint64_t n) {
  auto *b = static_cast<const uint8_t *>(p);
  while (n) {
    ssize_t k = ::write(fd, b, n);
    if (k < 0 && errno == EINTR)
      continue;
    if (k <= 0)
      return false;
    b += k;
    n -= static_cast<uint64_t>(k);
  }
  return true;
}

} // namespace

std::string writeArtifact(const Module &module, const std::string &path) {
  if (std::string err = validate(module); !err.empty())
    return path + ": invalid module: " + err;

  // Constants: each 64-byte aligned inside the section.
  std::vector<uint64_t> constOffsets(module.buffers.size(), 0);
  std::vector<uint8_t> constants;
  for (size_t i = 0; i < module.buffers.size(); ++i) {
    const BufferDesc &b = module.buffers[i];
    if (b.kind != BufferKind::Constant)
      continue;
    constants.resize(alignUp(constants.size()), 0);
    constOffsets[i] = constants.size();
    constants.insert(constants.end(), b.constData, b.constData + b.sizeBytes);
  }

  // Executable sections: "exec.<target>", suffixed when a target repeats.
  std::vector<std::string> execSections;
  std::set<std::string> used;
  for (const Executable &e : module.executables) {
    std::string name = KILN_ART_SECTION_EXEC_PREFIX + e.target;
    for (unsigned n = 1; !used.insert(name).second; ++n)
      name = KILN_ART_SECTION_EXEC_PREFIX + e.target + "." + std::to_string(n);
    execSections.push_back(name);
  }

  ByteWriter meta;
  meta.str(module.producer);
  meta.str(module.name);
  meta.u32(static_cast<uint32_t>(module.buffers.size()));
  for (size_t i = 0; i < module.buffers.size(); ++i) {
    meta.u32(static_cast<uint32_t>(module.buffers[i].kind));
    meta.u32(0);
    meta.u64(module.buffers[i].sizeBytes);
    meta.u64(constOffsets[i]);
  }
  writeTensors(meta, module.inputs);
  writeTensors(meta, module.outputs);
  meta.u32(static_cast<uint32_t>(module.executables.size()));
  for (size_t i = 0; i < module.executables.size(); ++i) {
    const Executable &e = module.executables[i];
    meta.str(e.target);
    meta.str(e.format);
    meta.str(execSections[i]);
    meta.u32(static_cast<uint32_t>(e.entries.size()));
    for (const Entry &entry : e.entries) {
      meta.str(entry.name);
      for (uint32_t n : entry.workgroupCount)
        meta.u32(n);
      for (uint32_t n : entry.workgroupSize)
        meta.u32(n);
    }
  }
  meta.u32(static_cast<uint32_t>(module.dispatches.size()));
  for (const Dispatch &d : module.dispatches) {
    meta.u32(d.kernel);
    meta.u32(static_cast<uint32_t>(d.bindings.size()));
    for (const Binding &b : d.bindings) {
      meta.u32(b.buffer);
      meta.u32(0);
      meta.u64(b.offset);
    }
  }
  uint32_t dynamicCount = 0;
  for (const TensorDesc &t : module.outputs)
    dynamicCount += t.dynamicDims.size();
  meta.u32(dynamicCount);
  for (size_t i = 0; i < module.outputs.size(); ++i)
    for (const DynamicDim &d : module.outputs[i].dynamicDims) {
      meta.u32(static_cast<uint32_t>(i));
      meta.u32(d.dim);
      meta.u32(d.buffer);
      meta.u32(0);
      meta.u64(d.offset);
    }

  meta.u32(static_cast<uint32_t>(module.specializeOn.size()));
  for (const Module::Specialization &sp : module.specializeOn) {
    meta.u32(sp.input);
    meta.u32(sp.kinds);
  }
  // 3.2: what each kernel computes, for profiles.
  meta.u32(static_cast<uint32_t>(module.kernelOps.size()));
  for (const std::string &ops : module.kernelOps)
    meta.str(ops);
  // 3.3: the bytes each kernel reaches through each binding.
  meta.u32(static_cast<uint32_t>(module.kernelExtents.size()));
  for (const std::vector<uint64_t> &ext : module.kernelExtents) {
    meta.u32(static_cast<uint32_t>(ext.size()));
    for (uint64_t e : ext)
      meta.u64(e);
  }

  std::vector<Section> sections;
  sections.push_back({KILN_ART_SECTION_META, meta.bytes.data(), meta.bytes.size()});
  sections.push_back({KILN_ART_SECTION_CONSTANTS, constants.data(), constants.size()});
  ByteWriter source;
  if (!module.specializeOn.empty()) {
    source.u32(static_cast<uint32_t>(module.source.targets.size()));
    for (const std::string &t : module.source.targets)
      source.str(t);
    source.u32(static_cast<uint32_t>(module.source.args.size()));
    for (const std::string &a : module.source.args)
      source.str(a);
    source.str(module.source.modelName);
    source.u64(module.source.model.size());
    source.bytes.insert(source.bytes.end(), module.source.model.begin(),
                        module.source.model.end());
    sections.push_back({KILN_ART_SECTION_SOURCE, source.bytes.data(), source.bytes.size()});
  }
  for (size_t i = 0; i < module.executables.size(); ++i)
    sections.push_back({execSections[i], module.executables[i].image.data(),
                        module.executables[i].image.size()});

  // Compute the layout and the section table.
  kiln_art_header header;
  std::memset(&header, 0, sizeof(header));
  std::memcpy(header.magic, KILN_ART_MAGIC, KILN_ART_MAGIC_SIZE);
  header.version_major = KILN_ART_VERSION_MAJOR;
  header.version_minor = KILN_ART_VERSION_MINOR;
  header.section_table_offset = sizeof(kiln_art_header);
  header.section_count = static_cast<uint32_t>(sections.size());
  std::vector<kiln_art_section> table(sections.size());
  uint64_t cursor = alignUp(header.section_table_offset +
                            sections.size() * sizeof(kiln_art_section));
  for (size_t i = 0; i < sections.size(); ++i) {
    std::memset(&table[i], 0, sizeof(kiln_art_section));
    std::memcpy(table[i].name, sections[i].name.data(), sections[i].name.size());
    table[i].offset = cursor;
    table[i].size = sections[i].size;
    cursor = alignUp(cursor + sections[i].size);
  }
  header.file_size = cursor;

  // Checksum everything after the header, in file order, padding included.
  static const uint8_t zeros[KILN_ART_ALIGN] = {};
  uint64_t hash = KILN_ART_FNV_OFFSET_BASIS;
  hash = kiln_art_fnv1a(hash, table.data(), table.size() * sizeof(kiln_art_section));
  uint64_t pos = header.section_table_offset + table.size() * sizeof(kiln_art_section);
  auto padTo = [&](uint64_t target, auto &&emit) {
    while (pos < target) {
      uint64_t n = std::min<uint64_t>(target - pos, sizeof(zeros));
      emit(zeros, n);
      pos += n;
    }
  };
  auto hashBytes = [&](const void *p, uint64_t n) { hash = kiln_art_fnv1a(hash, p, n); };
  for (size_t i = 0; i < sections.size(); ++i) {
    padTo(table[i].offset, hashBytes);
    hashBytes(sections[i].data, sections[i].size);
    pos += sections[i].size;
  }
  padTo(header.file_size, hashBytes);
  header.checksum = hash;

  // Write to a temporary next to the destination so rename() is atomic.
  std::string tmp = path + ".tmp.XXXXXX";
  std::vector<char> tmpName(tmp.begin(), tmp.end());
  tmpName.push_back('\0');
  int fd = ::mkstemp(tmpName.data());
  if (fd < 0)
    return path + ": cannot create temporary file: " + std::strerror(errno);
  auto fail = [&](const char *what) {
    std::string msg = path + ": " + what + ": " + std::strerror(errno);
    ::close(fd);
    ::unlink(tmpName.data());
    return msg;
  };
  bool ok = writeAll(fd, &header, sizeof(header)) &&
            writeAll(fd, table.data(), table.size() * sizeof(kiln_art_section));
  pos = header.section_table_offset + table.size() * sizeof(kiln_art_section);
  auto writeBytes = [&](const void *p, uint64_t n) { ok = ok && writeAll(fd, p, n); };
  for (size_t i = 0; ok && i < sections.size(); ++i) {
    padTo(table[i].offset, writeBytes);
    writeBytes(sections[i].data, sections[i].size);
    pos += sections[i].size;
  }
  padTo(header.file_size, writeBytes);
  if (!ok)
    return fail("write failed");
  // mkstemp creates 0600; an artifact is an ordinary output file.
  mode_t mask = ::umask(0);
  ::umask(mask);
  if (::fchmod(fd, 0666 & ~mask) != 0)
    return fail("chmod failed");
  if (::fsync(fd) != 0)
    return fail("fsync failed");
  if (::close(fd) != 0) {
    std::string msg = path + ": close failed: " + std::strerror(errno);
    ::unlink(tmpName.data());
    return msg;
  }
  if (::rename(tmpName.data(), path.c_str()) != 0) {
    std::string msg = path + ": rename failed: " + std::strerror(errno);
    ::unlink(tmpName.data());
    return msg;
  }
  return "";
}

} // namespace kiln::artifact

//===- artifact.cpp - Map and validate .kiln artifacts --------------------===//
//
// Everything read from the file is bounds-checked here, once, so the session
// code can trust indices and sizes. See docs/artifact-format.md.
//
//===----------------------------------------------------------------------===//
#include "internal.h"
#include "kiln/artifact_format.h"
#include "npy.h"

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstring>
#include <fcntl.h>
#include <map>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

using namespace kiln::rt;

kiln_artifact::~kiln_artifact() {
  if (map)
    ::munmap(map, mapSize);
}

namespace {

/// Bounds-checked little-endian reader over the meta section; the first
/// failure sticks and later reads return zeros.
class MetaReader {
public:
  MetaReader(const uint8_t *data, uint64_t size) : data(data), size(size) {}

  uint32_t u32(const char *what) { return read<uint32_t>(what); }
  uint64_t u64(const char *what) { return read<uint64_t>(what); }
  int64_t i64(const char *what) { return read<int64_t>(what); }
  std::string str(const char *what) {
    uint32_t len = u32(what);
    if (!need(len, what))
      return "";
    std::string s(reinterpret_cast<const char *>(data + pos), len);
    pos += len;
    return s;
  }
  /// Reads a record count and rejects counts the remaining bytes cannot hold,
  /// so a corrupt count cannot trigger a huge allocation.
  uint32_t count(const char *what, uint64_t minRecordSize) {
    uint32_t n = u32(what);
    if (!error.empty())
      return 0;
    if (n > (size - pos) / minRecordSize) {
      fail(std::string(what) + " count " + std::to_string(n) +
           " exceeds the meta section");
      return 0;
    }
    return n;
  }
  void fail(std::string msg) {
    if (error.empty())
      error = std::move(msg);
  }
  bool ok() const { return error.empty(); }
  bool atEnd() const { return pos == size; }
  /// `n` bytes in place, or null (and the error) if fewer are left.
  const uint8_t *take(uint64_t n, const char *what) {
    if (!need(n, what))
      return nullptr;
    pos += n;
    return data + pos - n;
  }
  std::string error;

private:
  bool need(uint64_t n, const char *what) {
    if (!error.empty())
      return false;
    if (n > size - pos) {
      fail(std::string("meta section truncated reading ") + what +
           " at offset " + std::to_string(pos));
      return false;
    }
    return true;
  }
  template <typename T> T read(const char *what) {
    T v{};
    if (need(sizeof(T), what)) {
      std::memcpy(&v, data + pos, sizeof(T));
      pos += sizeof(T);
    }
    return v;
  }
  const uint8_t *data;
  uint64_t size;
  uint64_t pos = 0;
};

struct SectionView {
  const uint8_t *data;
  uint64_t size;
};

/// `unknownDims`: dims of -1 are allowed (inputs whose shape a run decides;
/// checked against the specializing records later) and take no buffer.
void readTensors(MetaReader &r, const std::vector<Buffer> &buffers,
                 std::vector<Tensor> &out, const char *what, bool unknownDims) {
  uint32_t n = r.count(what, 16);
  for (uint32_t i = 0; i < n && r.ok(); ++i) {
    Tensor t;
    t.name = r.str("tensor name");
    uint32_t dtype = r.u32("tensor dtype");
    t.buffer = r.u32("tensor buffer");
    uint32_t rank = r.count("tensor rank", 8);
    for (uint32_t d = 0; d < rank; ++d)
      t.dims.push_back(r.i64("tensor dim"));
    if (!r.ok())
      return;
    std::string where = std::string(what) + " '" + t.name + "'";
    if (!kiln::npy::isKilnDtype(dtype))
      return r.fail(where + " has unknown dtype " + std::to_string(dtype));
    t.dtype = static_cast<kiln_dtype>(dtype);
    size_t elem = kiln_dtype_size(t.dtype);
    if (t.buffer >= buffers.size())
      return r.fail(where + " uses buffer " + std::to_string(t.buffer) +
                    " but there are " + std::to_string(buffers.size()));
    uint64_t bytes = elem;
    for (int64_t d : t.dims) {
      if (d == -1 && unknownDims) {
        bytes = 0;
        continue;
      }
      if (d < 0)
        return r.fail(where + " has negative dim " + std::to_string(d));
      if (d && bytes > UINT64_MAX / static_cast<uint64_t>(d))
        return r.fail(where + " is too large");
      bytes *= static_cast<uint64_t>(d);
    }
    if (bytes > buffers[t.buffer].size)
      return r.fail(where + " needs " + std::to_string(bytes) +
                    " bytes but its buffer has " +
                    std::to_string(buffers[t.buffer].size));
    t.bytes = bytes;
    for (const Tensor &o : out)
      if (o.name == t.name)
        return r.fail("duplicate " + where);
    out.push_back(std::move(t));
  }
}

/// With the kernels' extents (3.3), every binding must lie inside its
/// buffer, and every buffer other than a constant must be exactly as large
/// as its largest use: a damaged size can neither reach past a buffer nor
/// make the session allocate more than the model needs.
std::string checkExtents(const kiln_artifact &a) {
  if (a.kernelExtents.empty())
    return "";
  std::vector<uint64_t> need(a.buffers.size(), 0);
  for (size_t i = 0; i < a.dispatches.size(); ++i) {
    const Dispatch &d = a.dispatches[i];
    const std::vector<uint64_t> &ext = a.kernelExtents[d.kernel];
    std::string where = "dispatch " + std::to_string(i);
    if (ext.size() != d.bindingBuffers.size())
      return where + " has " + std::to_string(d.bindingBuffers.size()) +
             " bindings but its kernel takes " + std::to_string(ext.size());
    for (size_t j = 0; j < ext.size(); ++j) {
      uint32_t b = d.bindingBuffers[j];
      uint64_t size = a.buffers[b].size, offset = d.bindingOffsets[j];
      if (ext[j] > size - offset) // offset <= size was checked
        return where + " binding " + std::to_string(j) + " reaches " + std::to_string(ext[j]) +
               " bytes from offset " + std::to_string(offset) + " of buffer " + std::to_string(b) +
               ", which has " + std::to_string(size);
      need[b] = std::max(need[b], offset + ext[j]);
    }
  }
  for (const std::vector<Tensor> *ts : {&a.inputs, &a.outputs})
    for (const Tensor &t : *ts) {
      need[t.buffer] = std::max(need[t.buffer], t.bytes);
      for (const DynamicDim &dd : t.dynamicDims)
        need[dd.buffer] = std::max(need[dd.buffer], dd.offset + 8);
    }
  for (size_t b = 0; b < a.buffers.size(); ++b)
    if (a.buffers[b].kind != KILN_ART_BUFFER_CONSTANT && a.buffers[b].size != need[b])
      return "buffer " + std::to_string(b) + " has " + std::to_string(a.buffers[b].size) +
             " bytes but its uses need " + std::to_string(need[b]);
  return "";
}

std::string parseMeta(kiln_artifact &a, SectionView meta,
                      const std::map<std::string, SectionView> &sections) {
  MetaReader r(meta.data, meta.size);
  a.producer = r.str("producer");
  a.name = r.str("module name");

  SectionView constants{nullptr, 0};
  if (auto it = sections.find(KILN_ART_SECTION_CONSTANTS); it != sections.end())
    constants = it->second;
  uint32_t nBuffers = r.count("buffer", 24);
  for (uint32_t i = 0; i < nBuffers && r.ok(); ++i) {
    Buffer b;
    b.kind = r.u32("buffer kind");
    r.u32("buffer reserved");
    b.size = r.u64("buffer size");
    uint64_t offset = r.u64("buffer constant offset");
    b.constData = nullptr;
    if (!r.ok())
      break;
    std::string where = "buffer " + std::to_string(i);
    if (b.kind > KILN_ART_BUFFER_TRANSIENT)
      return where + " has unknown kind " + std::to_string(b.kind);
    if (b.kind == KILN_ART_BUFFER_CONSTANT) {
      if (offset % KILN_ART_ALIGN)
        return where + ": constant offset " + std::to_string(offset) +
               " is not 64-byte aligned";
      if (offset > constants.size || b.size > constants.size - offset)
        return where + ": constant [" + std::to_string(offset) + ", +" +
               std::to_string(b.size) + ") exceeds the constants section (" +
               std::to_string(constants.size) + " bytes)";
      b.constData = constants.data + offset;
    }
    a.buffers.push_back(b);
  }
  readTensors(r, a.buffers, a.inputs, "input", /*unknownDims=*/true);
  readTensors(r, a.buffers, a.outputs, "output", /*unknownDims=*/false);

  uint32_t nExecs = r.count("executable", 16);
  for (uint32_t i = 0; i < nExecs && r.ok(); ++i) {
    Executable e;
    e.target = r.str("executable target");
    e.format = r.str("executable format");
    e.section = r.str("executable section");
    uint32_t nEntries = r.count("entry", 28);
    for (uint32_t j = 0; j < nEntries && r.ok(); ++j) {
      Entry entry;
      entry.name = r.str("entry name");
      for (uint32_t &n : entry.workgroupCount)
        n = r.u32("entry workgroup count");
      for (uint32_t &n : entry.workgroupSize)
        n = r.u32("entry workgroup size");
      e.entries.push_back(std::move(entry));
    }
    if (!r.ok())
      break;
    std::string what = "executable " + std::to_string(i) + " (target '" + e.target + "')";
    if (!a.executables.empty() && e.entries.size() != a.executables[0].entries.size())
      return what + " has " + std::to_string(e.entries.size()) +
             " entries but executable 0 has " +
             std::to_string(a.executables[0].entries.size());
    for (const Entry &entry : e.entries)
      if (!entry.workgroupSize[0] || !entry.workgroupSize[1] || !entry.workgroupSize[2])
        return what + " entry '" + entry.name + "' has a zero workgroup size";
    auto it = sections.find(e.section);
    if (it == sections.end())
      return "executable " + std::to_string(i) + " (target '" + e.target +
             "') refers to missing section '" + e.section + "'";
    e.image = it->second.data;
    e.imageSize = it->second.size;
    a.executables.push_back(std::move(e));
  }
  size_t kernels = a.executables.empty() ? 0 : a.executables[0].entries.size();

  uint32_t nDispatches = r.count("dispatch", 8);
  for (uint32_t i = 0; i < nDispatches && r.ok(); ++i) {
    Dispatch d;
    d.kernel = r.u32("dispatch kernel");
    uint32_t nBindings = r.count("binding", 16);
    for (uint32_t j = 0; j < nBindings && r.ok(); ++j) {
      d.bindingBuffers.push_back(r.u32("binding buffer"));
      r.u32("binding reserved");
      d.bindingOffsets.push_back(r.u64("binding offset"));
    }
    if (!r.ok())
      break;
    std::string where = "dispatch " + std::to_string(i);
    if (d.kernel >= kernels)
      return where + " uses kernel " + std::to_string(d.kernel) +
             " but the executables have " + std::to_string(kernels);
    for (size_t j = 0; j < d.bindingBuffers.size(); ++j) {
      uint32_t b = d.bindingBuffers[j];
      if (b >= a.buffers.size())
        return where + " binds buffer " + std::to_string(b) +
               " but there are " + std::to_string(a.buffers.size());
      if (d.bindingOffsets[j] > a.buffers[b].size)
        return where + " binds buffer " + std::to_string(b) + " at offset " +
               std::to_string(d.bindingOffsets[j]) + " past its " +
               std::to_string(a.buffers[b].size) + " bytes";
    }
    a.dispatches.push_back(std::move(d));
  }
  uint32_t nDynamic = r.count("dynamic dim", 24);
  for (uint32_t i = 0; i < nDynamic && r.ok(); ++i) {
    uint32_t output = r.u32("dynamic dim output");
    DynamicDim d;
    d.dim = r.u32("dynamic dim index");
    d.buffer = r.u32("dynamic dim buffer");
    r.u32("dynamic dim reserved");
    d.offset = r.u64("dynamic dim offset");
    if (!r.ok())
      break;
    std::string where = "dynamic dim record " + std::to_string(i);
    if (output >= a.outputs.size() || d.dim >= a.outputs[output].dims.size())
      return where + " names output " + std::to_string(output) + " dim " +
             std::to_string(d.dim) + ", which does not exist";
    if (d.buffer >= a.buffers.size() || d.offset > a.buffers[d.buffer].size ||
        a.buffers[d.buffer].size - d.offset < 8)
      return where + " reads its extent past the end of buffer " + std::to_string(d.buffer);
    a.outputs[output].dynamicDims.push_back(d);
  }
  // Format 3.1: the inputs whose values or shapes decide the code, and the
  // source section that lets the runtime compile for them.
  auto unknownShape = [](const Tensor &t) {
    return std::find(t.dims.begin(), t.dims.end(), -1) != t.dims.end();
  };
  uint32_t nSpecialize = r.ok() && !r.atEnd() ? r.count("specializing input", 8) : 0;
  for (uint32_t i = 0; i < nSpecialize && r.ok(); ++i) {
    kiln_artifact::Specialization sp;
    sp.input = r.u32("specializing input");
    sp.kinds = r.u32("specializing input kinds");
    if (!r.ok())
      break;
    const uint32_t known = KILN_ART_SPECIALIZE_VALUE | KILN_ART_SPECIALIZE_SHAPE;
    if (sp.input >= a.inputs.size() || !sp.kinds || (sp.kinds & ~known) ||
        kiln_artifact_input_specializes(&a, sp.input))
      return "specializing input record " + std::to_string(i) + " (input " +
             std::to_string(sp.input) + ", kinds " + std::to_string(sp.kinds) + ") is invalid";
    a.specializeOn.push_back(sp);
  }
  // Format 3.2: what each kernel computes (none, or one per kernel).
  uint32_t nOps = r.ok() && !r.atEnd() ? r.count("kernel description", 4) : 0;
  if (nOps && nOps != kernels)
    return std::to_string(nOps) + " kernel descriptions for " + std::to_string(kernels) +
           " kernels";
  for (uint32_t i = 0; i < nOps && r.ok(); ++i)
    a.kernelOps.push_back(r.str("kernel description"));
  // Format 3.3: the bytes each kernel reaches through each binding.
  uint32_t nExtents = r.ok() && !r.atEnd() ? r.count("kernel extent list", 4) : 0;
  if (nExtents && nExtents != kernels)
    return std::to_string(nExtents) + " kernel extent lists for " + std::to_string(kernels) +
           " kernels";
  for (uint32_t i = 0; i < nExtents && r.ok(); ++i) {
    std::vector<uint64_t> &ext = a.kernelExtents.emplace_back(r.count("kernel extent", 8));
    for (uint64_t &e : ext)
      e = r.u64("kernel extent");
  }
  if (!r.ok())
    return r.error;
  if (std::string why = checkExtents(a); !why.empty())
    return why;
  a.kernelOps.resize(kernels);
  // Pointers into `entries` and `kernelOps` are taken only once the vectors
  // stop moving.
  for (Executable &e : a.executables)
    for (size_t k = 0; k < e.entries.size(); ++k) {
      kiln_driver_entry d;
      d.name = e.entries[k].name.c_str();
      std::copy(e.entries[k].workgroupSize, e.entries[k].workgroupSize + 3, d.workgroup_size);
      d.ops = a.kernelOps[k].c_str();
      d.binding_count = 0;
      d.binding_extents = nullptr;
      if (!a.kernelExtents.empty()) {
        d.binding_count = static_cast<uint32_t>(a.kernelExtents[k].size());
        d.binding_extents = a.kernelExtents[k].data();
      }
      e.driverEntries.push_back(d);
    }
  for (size_t i = 0; i < a.inputs.size(); ++i)
    if (unknownShape(a.inputs[i]) &&
        !(kiln_artifact_input_specializes(&a, i) & KILN_ART_SPECIALIZE_SHAPE))
      return "input '" + a.inputs[i].name + "' has a dim of -1 but its shape does not "
             "specialize the artifact";
  if (a.specializeOn.empty())
    return r.error;
  auto source = sections.find(KILN_ART_SECTION_SOURCE);
  if (source == sections.end())
    return "the artifact specializes on inputs but has no 'source' section";
  if (!a.executables.empty() || !a.dispatches.empty())
    return "the artifact specializes on inputs but also holds code";
  MetaReader src(source->second.data, source->second.size);
  uint32_t nTargets = src.count("source target", 4);
  for (uint32_t i = 0; i < nTargets && src.ok(); ++i)
    a.sourceTargets.push_back(src.str("source target"));
  uint32_t nArgs = src.count("source argument", 4);
  for (uint32_t i = 0; i < nArgs && src.ok(); ++i)
    a.sourceArgs.push_back(src.str("source argument"));
  a.sourceModelName = src.str("source model name");
  a.sourceModelSize = src.u64("source model size");
  a.sourceModel = src.take(a.sourceModelSize, "source model");
  if (!src.ok())
    return "source section: " + src.error;
  // Bytes after the last record belong to newer minor versions: ignored.
  return r.error;
}

kiln_status openArtifact(const char *path, kiln_artifact &a) {
  auto fail = [&](kiln_status s, const std::string &msg) {
    return setError(s, a.path + ": " + msg);
  };
  int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return fail(KILN_ERROR_IO, std::strerror(errno));
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    return fail(KILN_ERROR_IO, std::strerror(err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return fail(KILN_ERROR_IO, "not a regular file");
  }
  uint64_t actual = static_cast<uint64_t>(st.st_size);
  if (actual < sizeof(kiln_art_header)) {
    ::close(fd);
    return fail(KILN_ERROR_CORRUPT,
                "not a Kiln artifact: file has " + std::to_string(actual) +
                    " bytes, less than the 64-byte header");
  }
  void *map = ::mmap(nullptr, actual, PROT_READ, MAP_PRIVATE, fd, 0);
  int mmapErr = errno;
  ::close(fd);
  if (map == MAP_FAILED)
    return fail(KILN_ERROR_IO, std::string("mmap: ") + std::strerror(mmapErr));
  a.map = map;
  a.mapSize = actual;
  auto *base = static_cast<const uint8_t *>(map);

  kiln_art_header h;
  std::memcpy(&h, base, sizeof(h));
  if (std::memcmp(h.magic, KILN_ART_MAGIC, KILN_ART_MAGIC_SIZE) != 0)
    return fail(KILN_ERROR_CORRUPT, "not a Kiln artifact (bad magic)");
  if (h.version_major != KILN_ART_VERSION_MAJOR)
    return fail(KILN_ERROR_VERSION,
                "format version " + std::to_string(h.version_major) + "." +
                    std::to_string(h.version_minor) +
                    " is not supported (this runtime reads " +
                    std::to_string(KILN_ART_VERSION_MAJOR) + ".x)");
  if (h.file_size != actual)
    return fail(KILN_ERROR_CORRUPT,
                std::string(h.file_size > actual ? "truncated" : "trailing data") +
                    ": header says " + std::to_string(h.file_size) +
                    " bytes, file has " + std::to_string(actual));
  uint64_t sum = kiln_art_fnv1a(KILN_ART_FNV_OFFSET_BASIS,
                                base + sizeof(h), actual - sizeof(h));
  if (sum != h.checksum) {
    char buf[96];
    std::snprintf(buf, sizeof(buf),
                  "checksum mismatch (header 0x%016" PRIx64
                  ", contents 0x%016" PRIx64 ")",
                  h.checksum, sum);
    return fail(KILN_ERROR_CORRUPT, buf);
  }

  uint64_t tableOff = h.section_table_offset;
  if (tableOff < sizeof(h) || tableOff > actual ||
      h.section_count > (actual - tableOff) / sizeof(kiln_art_section))
    return fail(KILN_ERROR_CORRUPT, "section table (offset " +
                                        std::to_string(tableOff) + ", " +
                                        std::to_string(h.section_count) +
                                        " entries) exceeds the file");
  std::map<std::string, SectionView> sections;
  for (uint32_t i = 0; i < h.section_count; ++i) {
    kiln_art_section s;
    std::memcpy(&s, base + tableOff + i * sizeof(s), sizeof(s));
    if (!std::memchr(s.name, '\0', sizeof(s.name)))
      return fail(KILN_ERROR_CORRUPT,
                  "section " + std::to_string(i) + " name is not terminated");
    std::string name(s.name);
    if (s.offset % KILN_ART_ALIGN || s.offset > actual ||
        s.size > actual - s.offset)
      return fail(KILN_ERROR_CORRUPT,
                  "section '" + name + "' [" + std::to_string(s.offset) +
                      ", +" + std::to_string(s.size) +
                      ") is misaligned or exceeds the file");
    if (!sections.emplace(name, SectionView{base + s.offset, s.size}).second)
      return fail(KILN_ERROR_CORRUPT, "duplicate section '" + name + "'");
  }
  auto meta = sections.find(KILN_ART_SECTION_META);
  if (meta == sections.end())
    return fail(KILN_ERROR_CORRUPT, "no 'meta' section");
  if (std::string err = parseMeta(a, meta->second, sections); !err.empty())
    return fail(KILN_ERROR_CORRUPT, "bad meta section: " + err);
  return KILN_OK;
}

kiln_status tensorInfo(const std::vector<Tensor> &ts, size_t index,
                       kiln_tensor_info *info, const char *what) {
  if (!info)
    return setError(KILN_ERROR_INVALID_ARGUMENT, "info is NULL");
  if (index >= ts.size())
    return setError(KILN_ERROR_INVALID_ARGUMENT,
                    std::string(what) + " index " + std::to_string(index) +
                        " out of range (" + std::to_string(ts.size()) + " " +
                        what + "s)");
  const Tensor &t = ts[index];
  info->name = t.name.c_str();
  info->dtype = t.dtype;
  info->rank = static_cast<uint32_t>(t.dims.size());
  info->dims = t.dims.empty() ? nullptr : t.dims.data();
  return KILN_OK;
}

} // namespace

extern "C" {

kiln_status kiln_artifact_open(const char *path, kiln_artifact **artifact) {
  if (!path || !artifact)
    return setError(KILN_ERROR_INVALID_ARGUMENT, "path or artifact is NULL");
  *artifact = nullptr;
  auto *a = new kiln_artifact();
  a->path = path;
  if (kiln_status s = openArtifact(path, *a); s != KILN_OK) {
    delete a;
    return s;
  }
  *artifact = a;
  return KILN_OK;
}

void kiln_artifact_release(kiln_artifact *artifact) {
  if (artifact && artifact->refs.fetch_sub(1, std::memory_order_acq_rel) == 1)
    delete artifact;
}

const char *kiln_artifact_name(const kiln_artifact *a) {
  return a ? a->name.c_str() : "";
}
const char *kiln_artifact_producer(const kiln_artifact *a) {
  return a ? a->producer.c_str() : "";
}
size_t kiln_artifact_input_count(const kiln_artifact *a) {
  return a ? a->inputs.size() : 0;
}
size_t kiln_artifact_output_count(const kiln_artifact *a) {
  return a ? a->outputs.size() : 0;
}

kiln_status kiln_artifact_input_info(const kiln_artifact *a, size_t index,
                                     kiln_tensor_info *info) {
  if (!a)
    return setError(KILN_ERROR_INVALID_ARGUMENT, "artifact is NULL");
  return tensorInfo(a->inputs, index, info, "input");
}

int kiln_artifact_input_specializes(const kiln_artifact *a, size_t index) {
  if (a)
    for (const kiln_artifact::Specialization &sp : a->specializeOn)
      if (sp.input == index)
        return static_cast<int>(sp.kinds);
  return 0;
}

kiln_status kiln_artifact_output_info(const kiln_artifact *a, size_t index,
                                      kiln_tensor_info *info) {
  if (!a)
    return setError(KILN_ERROR_INVALID_ARGUMENT, "artifact is NULL");
  return tensorInfo(a->outputs, index, info, "output");
}

int kiln_artifact_is_static(const kiln_artifact *a) {
  if (!a || !a->specializeOn.empty())
    return 0;
  auto fixed = [](const Tensor &t) {
    return t.dynamicDims.empty() && std::find(t.dims.begin(), t.dims.end(), -1) == t.dims.end();
  };
  return std::all_of(a->inputs.begin(), a->inputs.end(), fixed) &&
         std::all_of(a->outputs.begin(), a->outputs.end(), fixed);
}

} // extern "C"

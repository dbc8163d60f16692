//===- ArtifactTest.cpp - Writer/reader round trip and corruption ---------===//
#include "TestUtil.h"

#include "kiln/artifact_format.h"
#include "kiln/runtime.h"

using namespace kiln;
using namespace kiln::test;
using ::testing::HasSubstr;

namespace {

std::string writeVadd(int64_t n = 100) {
  VaddModule m(n);
  std::string path = tempPath(".kiln");
  std::string err = artifact::writeArtifact(m.module, path);
  EXPECT_EQ(err, "");
  return path;
}

/// Opens `path`, expecting `status` and a message containing `text`.
void expectOpenError(const std::string &path, kiln_status status,
                     const std::string &text) {
  kiln_artifact *a = nullptr;
  EXPECT_EQ(kiln_artifact_open(path.c_str(), &a), status)
      << kiln_last_error();
  EXPECT_EQ(a, nullptr);
  std::string msg = kiln_last_error();
  EXPECT_THAT(msg, HasSubstr(path + ": "));
  EXPECT_THAT(msg, HasSubstr(text));
}

kiln_art_header header(const std::vector<uint8_t> &bytes) {
  kiln_art_header h;
  std::memcpy(&h, bytes.data(), sizeof(h));
  return h;
}

void setHeader(std::vector<uint8_t> &bytes, const kiln_art_header &h) {
  std::memcpy(bytes.data(), &h, sizeof(h));
}

/// The first section table entry, which the writer makes the meta section.
kiln_art_section metaSection(const std::vector<uint8_t> &bytes) {
  kiln_art_section meta;
  std::memcpy(&meta, bytes.data() + 64, sizeof(meta));
  EXPECT_STREQ(meta.name, "meta");
  return meta;
}

void rechecksum(std::vector<uint8_t> &bytes) {
  kiln_art_header h = header(bytes);
  h.checksum = kiln_art_fnv1a(KILN_ART_FNV_OFFSET_BASIS, bytes.data() + 64,
                              bytes.size() - 64);
  setHeader(bytes, h);
}

TEST(Artifact, RoundTripMeta) {
  std::string path = writeVadd(100);
  kiln_artifact *a = nullptr;
  ASSERT_EQ(kiln_artifact_open(path.c_str(), &a), KILN_OK) << kiln_last_error();
  EXPECT_STREQ(kiln_artifact_name(a), "vadd_mul");
  EXPECT_STREQ(kiln_artifact_producer(a), "kiln-tests");
  ASSERT_EQ(kiln_artifact_input_count(a), 2u);
  ASSERT_EQ(kiln_artifact_output_count(a), 1u);
  kiln_tensor_info info;
  ASSERT_EQ(kiln_artifact_input_info(a, 1, &info), KILN_OK);
  EXPECT_STREQ(info.name, "b");
  EXPECT_EQ(info.dtype, KILN_DTYPE_F32);
  ASSERT_EQ(info.rank, 1u);
  EXPECT_EQ(info.dims[0], 100);
  ASSERT_EQ(kiln_artifact_output_info(a, 0, &info), KILN_OK);
  EXPECT_STREQ(info.name, "y");
  EXPECT_EQ(kiln_artifact_output_info(a, 1, &info), KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_THAT(kiln_last_error(), HasSubstr("out of range"));
  kiln_artifact_release(a);
}

TEST(Artifact, LayoutFollowsSpec) {
  VaddModule m(100);
  std::string path = tempPath(".kiln");
  ASSERT_EQ(artifact::writeArtifact(m.module, path), "");
  std::vector<uint8_t> bytes = readFile(path);
  kiln_art_header h = header(bytes);
  EXPECT_EQ(std::memcmp(h.magic, "KILNART\0", 8), 0);
  EXPECT_EQ(h.version_major, 3u);
  EXPECT_EQ(h.version_minor, 4u);
  EXPECT_EQ(h.file_size, bytes.size());
  EXPECT_EQ(h.section_table_offset, 64u);
  ASSERT_EQ(h.section_count, 3u);
  std::vector<std::string> names;
  for (uint32_t i = 0; i < h.section_count; ++i) {
    kiln_art_section s;
    std::memcpy(&s, bytes.data() + 64 + i * sizeof(s), sizeof(s));
    names.push_back(s.name);
    EXPECT_EQ(s.offset % 64, 0u) << s.name;
    EXPECT_LE(s.offset + s.size, bytes.size());
    if (names.back() == "constants") {
      // c (400 bytes) at 0, then {junk, n} at the next 64-byte boundary.
      ASSERT_EQ(s.size, 448u + 16u);
      EXPECT_EQ(std::memcmp(bytes.data() + s.offset, m.c.data(), 400), 0);
      EXPECT_EQ(std::memcmp(bytes.data() + s.offset + 448, m.count.data(), 16), 0);
    }
  }
  EXPECT_EQ(names, (std::vector<std::string>{"meta", "constants", "exec.cpu"}));
}

TEST(Artifact, RepeatedTargetsGetDistinctSections) {
  VaddModule m(16);
  m.module.executables.push_back(m.module.executables[0]);
  std::string path = tempPath(".kiln");
  ASSERT_EQ(artifact::writeArtifact(m.module, path), "");
  kiln_artifact *a = nullptr;
  ASSERT_EQ(kiln_artifact_open(path.c_str(), &a), KILN_OK) << kiln_last_error();
  kiln_artifact_release(a);
  std::vector<uint8_t> bytes = readFile(path);
  kiln_art_section s;
  std::memcpy(&s, bytes.data() + 64 + 3 * sizeof(s), sizeof(s));
  EXPECT_STREQ(s.name, "exec.cpu.1");
}

TEST(Artifact, Truncated) {
  std::string path = writeVadd();
  std::vector<uint8_t> bytes = readFile(path);
  size_t full = bytes.size();
  bytes.resize(full - 100);
  writeFile(path, bytes);
  expectOpenError(path, KILN_ERROR_CORRUPT,
                  "truncated: header says " + std::to_string(full) +
                      " bytes, file has " + std::to_string(full - 100));
}

TEST(Artifact, SmallerThanHeader) {
  std::string path = tempPath(".kiln");
  writeFile(path, {'K', 'I', 'L', 'N'});
  expectOpenError(path, KILN_ERROR_CORRUPT, "less than the 64-byte header");
}

TEST(Artifact, FlippedByteFailsChecksum) {
  std::string path = writeVadd();
  std::vector<uint8_t> bytes = readFile(path);
  bytes[bytes.size() / 2] ^= 0x10;
  writeFile(path, bytes);
  expectOpenError(path, KILN_ERROR_CORRUPT, "checksum mismatch");
}

TEST(Artifact, WrongMagic) {
  std::string path = writeVadd();
  std::vector<uint8_t> bytes = readFile(path);
  bytes[0] = 'X';
  writeFile(path, bytes);
  expectOpenError(path, KILN_ERROR_CORRUPT, "not a Kiln artifact (bad magic)");
}

TEST(Artifact, MajorVersionMismatch) {
  std::string path = writeVadd();
  std::vector<uint8_t> bytes = readFile(path);
  kiln_art_header h = header(bytes);
  h.version_major = 1;
  h.version_minor = 1;
  setHeader(bytes, h);
  writeFile(path, bytes);
  expectOpenError(path, KILN_ERROR_VERSION,
                  "format version 1.1 is not supported (this runtime reads 3.x)");
}

TEST(Artifact, NewerMinorVersionAndExtraSectionAccepted) {
  std::string path = writeVadd();
  std::vector<uint8_t> bytes = readFile(path);
  kiln_art_header h = header(bytes);
  h.version_minor = 7;
  setHeader(bytes, h);
  writeFile(path, bytes);
  kiln_artifact *a = nullptr;
  EXPECT_EQ(kiln_artifact_open(path.c_str(), &a), KILN_OK) << kiln_last_error();
  kiln_artifact_release(a);
}

/// Makes the artifact at `path` an older minor version by cutting the last
/// `bytes` bytes (the records that version lacks) off its meta section.
void downgrade(const std::string &path, uint32_t minor, uint64_t cut) {
  std::vector<uint8_t> bytes = readFile(path);
  kiln_art_section meta = metaSection(bytes);
  meta.size -= cut;
  std::memset(bytes.data() + meta.offset + meta.size, 0, cut);
  std::memcpy(bytes.data() + 64, &meta, sizeof(meta));
  kiln_art_header h = header(bytes);
  h.version_minor = minor;
  setHeader(bytes, h);
  rechecksum(bytes);
  writeFile(path, bytes);
}

/// The u32 `back` bytes before the end of the meta section.
uint32_t metaTail(const std::string &path, uint64_t back) {
  std::vector<uint8_t> bytes = readFile(path);
  kiln_art_section meta = metaSection(bytes);
  uint32_t v;
  std::memcpy(&v, bytes.data() + meta.offset + meta.size - back, 4);
  return v;
}

TEST(Artifact, Version30WithoutSpecializeRecordAccepted) {
  std::string path = writeVadd();
  // 3.0 files end the meta section before the specializing-input count, 3.1
  // before the kernel descriptions, 3.2 before the kernel extents: all three
  // counts are 0 here.
  ASSERT_EQ(metaTail(path, 12), 0u);
  ASSERT_EQ(metaTail(path, 8), 0u);
  ASSERT_EQ(metaTail(path, 4), 0u);
  downgrade(path, 0, 12);
  kiln_artifact *a = nullptr;
  ASSERT_EQ(kiln_artifact_open(path.c_str(), &a), KILN_OK) << kiln_last_error();
  EXPECT_FALSE(kiln_artifact_input_specializes(a, 0));
  kiln_artifact_release(a);
}

TEST(Artifact, KernelDescriptionsRoundTrip) {
  VaddModule m(100);
  m.module.kernelOps = {"Add(add_0)", "Mul(\"m\")"};
  std::string path = tempPath(".kiln");
  ASSERT_EQ(artifact::writeArtifact(m.module, path), "");
  kiln_artifact *a = nullptr;
  ASSERT_EQ(kiln_artifact_open(path.c_str(), &a), KILN_OK) << kiln_last_error();
  kiln_session *s = nullptr;
  ASSERT_EQ(kiln_session_create(a, "cpu", nullptr, &s), KILN_OK) << kiln_last_error();
  ASSERT_EQ(kiln_session_dispatch_count(s), 2u);
  kiln_dispatch_info info;
  ASSERT_EQ(kiln_session_dispatch_info(s, 1, &info), KILN_OK) << kiln_last_error();
  EXPECT_STREQ(info.kernel, "vmul");
  EXPECT_STREQ(info.ops, "Mul(\"m\")");
  EXPECT_EQ(info.workgroup_count[0], 7u);
  EXPECT_EQ(info.time_ns, -1); // Not profiled.
  kiln_session_release(s);
  kiln_artifact_release(a);
}

TEST(Artifact, Version31WithoutKernelDescriptionsAccepted) {
  VaddModule m(100);
  m.module.kernelOps = {"Add(a)", "Mul(m)"};
  std::string path = tempPath(".kiln");
  ASSERT_EQ(artifact::writeArtifact(m.module, path), "");
  // The record: count 2, then "Add(a)" and "Mul(m)" with their lengths;
  // after it, 3.3's kernel extent count (0).
  uint64_t record = 4 + (4 + 6) + (4 + 6) + 4;
  ASSERT_EQ(metaTail(path, record), 2u);
  downgrade(path, 1, record);
  kiln_artifact *a = nullptr;
  ASSERT_EQ(kiln_artifact_open(path.c_str(), &a), KILN_OK) << kiln_last_error();
  kiln_session *s = nullptr;
  ASSERT_EQ(kiln_session_create(a, "cpu", nullptr, &s), KILN_OK) << kiln_last_error();
  kiln_dispatch_info info;
  ASSERT_EQ(kiln_session_dispatch_info(s, 0, &info), KILN_OK) << kiln_last_error();
  EXPECT_STREQ(info.kernel, "vadd");
  EXPECT_STREQ(info.ops, ""); // Unknown, not missing.
  kiln_session_release(s);
  kiln_artifact_release(a);
}

TEST(Artifact, KernelDescriptionCountMustMatch) {
  VaddModule m(16);
  m.module.kernelOps = {"Add(a)"};
  std::string path = tempPath(".kiln");
  EXPECT_THAT(artifact::writeArtifact(m.module, path),
              HasSubstr("1 kernel descriptions for 2 kernels"));
  // A file that says so anyway is corrupt.
  m.module.kernelOps = {"Add(a)", "Mul(m)"};
  ASSERT_EQ(artifact::writeArtifact(m.module, path), "");
  std::vector<uint8_t> bytes = readFile(path);
  kiln_art_section meta = metaSection(bytes);
  uint32_t one = 1;
  std::memcpy(bytes.data() + meta.offset + meta.size - (4 + 10 + 10 + 4), &one, 4);
  rechecksum(bytes);
  writeFile(path, bytes);
  expectOpenError(path, KILN_ERROR_CORRUPT, "1 kernel descriptions for 2 kernels");
}

/// VaddModule with its kernels' extents (format 3.3): a, b, the sum and n
/// (8 bytes of buffer 4 from offset 8).
VaddModule withExtents(int64_t n) {
  VaddModule m(n);
  uint64_t bytes = static_cast<uint64_t>(n) * 4;
  m.module.kernelExtents = {{bytes, bytes, bytes, 8}, {bytes, bytes, bytes, 8}};
  return m;
}

/// Rewrites the size of buffer `index` of a VaddModule file.
void setBufferSize(const std::string &path, uint32_t index, uint64_t size) {
  std::vector<uint8_t> bytes = readFile(path);
  kiln_art_section meta = metaSection(bytes);
  // producer "kiln-tests" and name "vadd_mul" with their lengths, the buffer
  // count, then 24-byte records: kind, reserved, size, constant offset.
  uint64_t at = meta.offset + (4 + 10) + (4 + 8) + 4 + 24 * index + 8;
  std::memcpy(bytes.data() + at, &size, 8);
  rechecksum(bytes);
  writeFile(path, bytes);
}

TEST(Artifact, KernelExtentsBoundEveryBuffer) {
  VaddModule m = withExtents(16);
  std::string path = tempPath(".kiln");
  ASSERT_EQ(artifact::writeArtifact(m.module, path), "");
  kiln_artifact *a = nullptr;
  ASSERT_EQ(kiln_artifact_open(path.c_str(), &a), KILN_OK) << kiln_last_error();
  kiln_artifact_release(a);

  // A damaged size that the checksum does not catch (it is resealed): too
  // small reaches past the buffer, too large allocates what nothing uses.
  setBufferSize(path, 5, 32);
  expectOpenError(path, KILN_ERROR_CORRUPT,
                  "dispatch 0 binding 2 reaches 64 bytes from offset 0 of buffer 5, which has 32");
  setBufferSize(path, 5, uint64_t(1) << 40);
  expectOpenError(path, KILN_ERROR_CORRUPT, "buffer 5 has 1099511627776 bytes but its uses need 64");

  m.module.kernelExtents[1][3] = 9;
  EXPECT_THAT(artifact::writeArtifact(m.module, path),
              HasSubstr("dispatch 1 binding 3 needs 9 bytes past its buffer's end"));
  m.module.kernelExtents[1].pop_back();
  EXPECT_THAT(artifact::writeArtifact(m.module, path),
              HasSubstr("dispatch 1 has 4 bindings but its kernel 3"));
}

TEST(Artifact, Version32WithoutKernelExtentsAccepted) {
  VaddModule m = withExtents(16);
  std::string path = tempPath(".kiln");
  ASSERT_EQ(artifact::writeArtifact(m.module, path), "");
  uint64_t record = 4 + 2 * (4 + 4 * 8);
  ASSERT_EQ(metaTail(path, record), 2u);
  downgrade(path, 2, record);
  // Without the extents nothing checks sizes against uses.
  setBufferSize(path, 5, 128);
  kiln_artifact *a = nullptr;
  ASSERT_EQ(kiln_artifact_open(path.c_str(), &a), KILN_OK) << kiln_last_error();
  kiln_artifact_release(a);
}

TEST(Artifact, CorruptMetaIsBoundsChecked) {
  std::string path = writeVadd();
  std::vector<uint8_t> bytes = readFile(path);
  kiln_art_section meta = metaSection(bytes);
  uint32_t huge = 0xfffffff0u; // Length of the producer string.
  std::memcpy(bytes.data() + meta.offset, &huge, 4);
  rechecksum(bytes);
  writeFile(path, bytes);
  expectOpenError(path, KILN_ERROR_CORRUPT,
                  "bad meta section: meta section truncated reading producer");
}

// Found by kiln-fuzz-artifact: the loader stored any u32 as a kiln_dtype
// before checking it, which UBSan reports (a value outside the enum's range).
TEST(Artifact, UnknownDtypeIsRefused) {
  std::string path = writeVadd();
  std::vector<uint8_t> bytes = readFile(path);
  kiln_art_section meta = metaSection(bytes);
  // producer "kiln-tests", name "vadd_mul", 6 buffers of 24 bytes, the input
  // count, then input "a": its name, then its dtype.
  uint64_t at = meta.offset + (4 + 10) + (4 + 8) + 4 + 6 * 24 + 4 + (4 + 1);
  uint32_t dtype;
  std::memcpy(&dtype, bytes.data() + at, 4);
  ASSERT_EQ(dtype, static_cast<uint32_t>(KILN_DTYPE_F32));
  for (uint32_t bad : {390070273u, 8u, 0u, 0xffffffffu}) {
    std::memcpy(bytes.data() + at, &bad, 4);
    rechecksum(bytes);
    writeFile(path, bytes);
    expectOpenError(path, KILN_ERROR_CORRUPT,
                    "input 'a' has unknown dtype " + std::to_string(bad));
  }
}

TEST(Artifact, SectionOutOfBounds) {
  std::string path = writeVadd();
  std::vector<uint8_t> bytes = readFile(path);
  kiln_art_section s;
  std::memcpy(&s, bytes.data() + 64 + sizeof(s), sizeof(s));
  s.size = bytes.size();
  std::memcpy(bytes.data() + 64 + sizeof(s), &s, sizeof(s));
  rechecksum(bytes);
  writeFile(path, bytes);
  expectOpenError(path, KILN_ERROR_CORRUPT, "section 'constants'");
}

TEST(Artifact, MissingFile) {
  std::string path = tempPath(".does-not-exist");
  expectOpenError(path, KILN_ERROR_IO, "No such file");
}

TEST(Artifact, WriterRejectsInconsistentModule) {
  VaddModule m(16);
  m.module.dispatches[1].kernel = 3;
  std::string path = tempPath(".kiln");
  std::string err = artifact::writeArtifact(m.module, path);
  EXPECT_THAT(err, HasSubstr("dispatch 1 uses kernel 3 of 2"));
  EXPECT_TRUE(readFile(path).empty());
  VaddModule other(16);
  other.module.executables.push_back(other.module.executables[0]);
  other.module.executables[1].entries.pop_back();
  err = artifact::writeArtifact(other.module, path);
  EXPECT_THAT(err, HasSubstr("executable 1 (cpu) has 1 entries but executable 0 has 2"));
  EXPECT_TRUE(readFile(path).empty()); // Nothing written.
}

TEST(Artifact, WriterReplacesAtomically) {
  std::string path = writeVadd(16);
  VaddModule m(32);
  ASSERT_EQ(artifact::writeArtifact(m.module, path), "");
  kiln_artifact *a = nullptr;
  ASSERT_EQ(kiln_artifact_open(path.c_str(), &a), KILN_OK) << kiln_last_error();
  kiln_tensor_info info;
  ASSERT_EQ(kiln_artifact_input_info(a, 0, &info), KILN_OK);
  EXPECT_EQ(info.dims[0], 32);
  kiln_artifact_release(a);
  // Unwritable destination: error, not a crash or a stray temp file.
  EXPECT_THAT(artifact::writeArtifact(m.module, "/nonexistent-dir/x.kiln"),
              HasSubstr("/nonexistent-dir/x.kiln: cannot create temporary file"));
}

} // namespace

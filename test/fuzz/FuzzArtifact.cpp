//===- FuzzArtifact.cpp - libFuzzer target: artifact loader and sessions --===//
//
// Any bytes, with the header's file size and checksum made to match (else
// nearly every input would stop at the checksum): kiln_artifact_open must
// refuse them or give an artifact whose every getter works. Then a session
// is created on the cpu, which allocates every buffer and uploads the
// constants. Only where each executable image is, byte for byte, one that
// kiln-compile wrote ($KILN_FUZZ_KERNELS) does it also load the kernels and
// run them on zeroed inputs: a changed image would test the dynamic loader,
// not Kiln (an artifact is a program, and only its checksum protects its
// code).
//
//===----------------------------------------------------------------------===//
#include "FuzzUtil.h"
#include "internal.h"
#include "kiln/artifact_format.h"

#include <dirent.h>

#include <cstring>
#include <fstream>
#include <iterator>
#include <set>
#include <vector>

namespace {

/// FNV-1a of each executable image that may be loaded and run.
std::set<uint64_t> &knownImages() {
  static std::set<uint64_t> images;
  return images;
}

uint64_t imageHash(const kiln::rt::Executable &e) {
  return kiln_art_fnv1a(KILN_ART_FNV_OFFSET_BASIS, e.image, e.imageSize);
}

/// Runs every dispatch on zeroed inputs, unless the grids are too large to
/// run quickly (larger grids cost time, not memory safety:
/// docs/reliability.md) or the inputs and outputs take over 64 MiB.
void run(kiln_session *s, const kiln_artifact &a) {
  uint64_t workgroups = 0;
  for (const kiln::rt::Executable &e : a.executables)
    for (const kiln::rt::Entry &entry : e.entries)
      workgroups += uint64_t(entry.workgroupCount[0]) * entry.workgroupCount[1] *
                    entry.workgroupCount[2];
  uint64_t bytes = 0;
  for (const kiln::rt::Tensor &t : a.inputs)
    bytes += t.bytes;
  for (const kiln::rt::Tensor &t : a.outputs)
    bytes += t.bytes;
  if (!kiln_artifact_is_static(&a) || workgroups > (1u << 16) || bytes > (64u << 20))
    return;
  for (size_t i = 0; i < kiln_artifact_input_count(&a); ++i) {
    kiln_tensor_info info;
    if (kiln_artifact_input_info(&a, i, &info) != KILN_OK)
      std::abort();
    const kiln::rt::Tensor &t = a.inputs[i];
    std::vector<uint8_t> zeros(t.bytes);
    if (kiln_session_set_input(s, info.name, info.dtype, info.rank, info.dims, zeros.data(),
                               zeros.size()) != KILN_OK)
      std::abort(); // the artifact's own signature was refused
  }
  if (kiln_session_run(s) != KILN_OK)
    return;
  for (size_t i = 0; i < kiln_session_output_count(s); ++i) {
    std::vector<uint8_t> out(a.outputs[i].bytes);
    kiln_tensor_info info;
    if (kiln_session_output_info(s, i, &info) != KILN_OK)
      std::abort();
    uint64_t bytes = kiln_dtype_size(info.dtype);
    for (uint32_t k = 0; k < info.rank; ++k)
      bytes *= static_cast<uint64_t>(info.dims[k]);
    if (kiln_session_output_read(s, i, out.data(), bytes) != KILN_OK)
      std::abort();
  }
}

} // namespace

extern "C" int LLVMFuzzerInitialize(int *, char ***) {
  // A run never compiles (an artifact compiled per input value is not run),
  // but in case: no compiler.
  ::setenv("KILN_COMPILE", "/bin/false", 1);
  // The images that may run: those of the artifacts in $KILN_FUZZ_KERNELS,
  // which kiln-compile wrote. (The unit tests' kernels read element counts
  // from constants, so a changed constant makes them overrun by design.)
  const char *dirName = std::getenv("KILN_FUZZ_KERNELS");
  if (DIR *dir = dirName ? ::opendir(dirName) : nullptr) {
    while (dirent *e = ::readdir(dir)) {
      std::string path = std::string(dirName) + "/" + e->d_name;
      kiln_artifact *a = nullptr;
      if (kiln_artifact_open(path.c_str(), &a) != KILN_OK)
        continue;
      for (const kiln::rt::Executable &x : a->executables)
        knownImages().insert(imageHash(x));
      kiln_artifact_release(a);
    }
    ::closedir(dir);
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  std::vector<uint8_t> bytes(data, data + size);
  if (size >= sizeof(kiln_art_header)) {
    kiln_art_header h;
    std::memcpy(&h, bytes.data(), sizeof(h));
    h.file_size = size;
    h.checksum = kiln_art_fnv1a(KILN_ART_FNV_OFFSET_BASIS, bytes.data() + sizeof(h),
                                size - sizeof(h));
    std::memcpy(bytes.data(), &h, sizeof(h));
  }
  kiln::fuzz::MemFile file(bytes.data(), bytes.size());
  kiln_artifact *a = nullptr;
  if (kiln_artifact_open(file.path.c_str(), &a) != KILN_OK)
    return 0;
  kiln_artifact_name(a);
  kiln_artifact_producer(a);
  kiln_tensor_info info;
  for (size_t i = 0; i < kiln_artifact_input_count(a); ++i)
    if (kiln_artifact_input_info(a, i, &info) != KILN_OK || !info.name ||
        (info.rank && !info.dims))
      std::abort();
  for (size_t i = 0; i < kiln_artifact_output_count(a); ++i)
    if (kiln_artifact_output_info(a, i, &info) != KILN_OK || !info.name ||
        (info.rank && !info.dims))
      std::abort();
  bool known = true;
  for (const kiln::rt::Executable &x : a->executables)
    known &= knownImages().count(imageHash(x)) > 0;
  if (known) {
    kiln_session_options opts{1, nullptr, nullptr};
    kiln_session *s = nullptr;
    if (kiln_session_create(a, "cpu", &opts, &s) == KILN_OK) {
      for (size_t i = 0; i < kiln_session_dispatch_count(s); ++i) {
        kiln_dispatch_info d;
        if (kiln_session_dispatch_info(s, i, &d) != KILN_OK)
          std::abort();
      }
      run(s, *a);
      kiln_session_release(s);
    }
  }
  kiln_artifact_release(a);
  return 0;
}

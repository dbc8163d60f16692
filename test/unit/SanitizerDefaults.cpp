//===- SanitizerDefaults.cpp - Suppressions for KILN_SANITIZE builds ------===//
//
// Linked into every test binary here when KILN_SANITIZE is set
// (test/unit/CMakeLists.txt); the sanitizers' runtimes call these. Only
// reports that have no Kiln code in them belong here.
//
//===----------------------------------------------------------------------===//

extern "C" __attribute__((visibility("default"), used)) const char *
__lsan_default_suppressions() {
  // ROCm's HIP library (the hip driver dlopens it to count GPUs) allocates
  // in a static constructor and loses the memory when the thread that first
  // listed the devices exits.
  return "leak:libamdhip64.so\n";
}

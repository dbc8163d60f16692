//===- driver_util.cpp - What the device drivers share --------------------===//
#include "driver_util.h"

#include <cstdlib>
#include <cstring>
#include <dlfcn.h>

namespace kiln::driver {

Library openLibrary(const char *envVar, std::initializer_list<const char *> names,
                    const char *notFound) {
  const char *env = std::getenv(envVar);
  bool fromEnv = env && *env;
  std::vector<const char *> tried = fromEnv ? std::vector<const char *>{env}
                                            : std::vector<const char *>(names);
  Library lib;
  for (const char *name : tried) {
    lib.name = name;
    if ((lib.handle = ::dlopen(name, RTLD_NOW | RTLD_LOCAL)))
      return lib;
    const char *err = ::dlerror();
    // A library that exists but fails to load says more than a missing one.
    if (lib.error.empty() && err && !std::strstr(err, "No such file"))
      lib.error = std::string("cannot load ") + name + ": " + err;
  }
  if (lib.error.empty())
    lib.error = fromEnv || !notFound ? std::string(tried.front()) + " not found"
                                     : std::string(notFound);
  if (fromEnv)
    lib.error += std::string(" (from ") + envVar + ")";
  return lib;
}

void *SymbolBinder::lookup(const char *symbol) {
  void *fn = ::dlsym(lib, symbol);
  if (!fn && firstMissing.empty())
    firstMissing = symbol;
  return fn;
}

std::string formatBytes(uint64_t bytes) {
  constexpr uint64_t mib = 1ull << 20, gib = 1ull << 30;
  return bytes >= gib ? std::to_string((bytes + gib / 2) / gib) + " GiB"
                      : std::to_string((bytes + mib / 2) / mib) + " MiB";
}

const std::vector<uint64_t> &
KernelArgs::marshal(const kiln_driver_binding *bindings, uint32_t count) {
  values.resize(count);
  for (uint32_t i = 0; i < count; ++i)
    values[i] = reinterpret_cast<uintptr_t>(bindings[i].buffer) +
                bindings[i].offset;
  return values;
}

void **KernelArgs::pointers() {
  valuePointers.resize(values.size());
  for (size_t i = 0; i < values.size(); ++i)
    valuePointers[i] = &values[i];
  return values.empty() ? nullptr : valuePointers.data();
}

kiln_status checkDispatch(uint32_t entry, size_t entryCount,
                          const uint32_t workgroups[3], bool &launch) {
  if (entry >= entryCount)
    return kiln_driver_error(KILN_ERROR_INVALID_ARGUMENT,
                             "entry %u out of range", entry);
  launch = workgroups[0] && workgroups[1] && workgroups[2];
  return KILN_OK;
}

kiln_status missingEntry(const char *name) {
  return kiln_driver_error(KILN_ERROR_NOT_FOUND,
                           "executable has no entry point '%s'", name);
}

} // namespace kiln::driver

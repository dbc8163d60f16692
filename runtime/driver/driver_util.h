//===- driver_util.h - What the device drivers share ------------*- C++ -*-===//
//
// The pieces every GPU driver would otherwise write again: opening its vendor
// library and saying why that failed, binding the entry points of its symbol
// list (symbol_table.h), the device list it builds at first use, byte counts
// for device descriptions and kernel parameters in the GPU kernel ABI.
// Linked into libkiln_runtime with the drivers, and hidden like them.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_RUNTIME_DRIVER_DRIVER_UTIL_H
#define KILN_RUNTIME_DRIVER_DRIVER_UTIL_H

#include "kiln/driver.h"
#include "symbol_table.h"

#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

/// The vtable of a driver whose functions are named after the fields they
/// fill (deviceCount for device_count, ...), for `const kiln_driver x =
/// KILN_DRIVER_VTABLE("cpu", dispatchTimes, bufferImport);`; `dispatchTimes`
/// and `bufferImport` may be nullptr.
#define KILN_DRIVER_VTABLE(name, dispatchTimes, bufferImport)                 \
  {KILN_DRIVER_ABI_VERSION, name,         deviceCount,      deviceDescribe,   \
   deviceOpen,              deviceClose,  bufferAlloc,      bufferFree,       \
   bufferWrite,             bufferRead,   executableLoad,   executableUnload, \
   dispatch,                synchronize,  dispatchTimes,    bufferImport}

namespace kiln::driver {

/// A vendor library, or why it did not open.
struct Library {
  void *handle = nullptr;
  std::string name; // As passed to dlopen.
  std::string error;
};

/// dlopens $`envVar` when it is set, else the first of `names` that loads;
/// the library stays loaded for the life of the process (contexts and
/// modules may outlive any one session). The error is the unavailable
/// device's reason: "NAME not found" (or `notFound`, naming several
/// defaults) when nothing is there, since dlerror's wording adds nothing
/// then, else "cannot load NAME: <dlerror>"; " (from ENVVAR)" follows when
/// the variable chose the library.
Library openLibrary(const char *envVar, std::initializer_list<const char *> names,
                    const char *notFound = nullptr);

/// Binds a symbol table's entry points from `lib`, remembering the first one
/// it lacks.
class SymbolBinder {
public:
  explicit SymbolBinder(void *lib) : lib(lib) {}
  template <typename Fn> void bind(const char *symbol, Fn &fn) {
    fn = reinterpret_cast<Fn>(lookup(symbol));
  }
  /// The first symbol not found; empty when every one was.
  const std::string &missing() const { return firstMissing; }

private:
  void *lookup(const char *symbol);
  void *lib;
  std::string firstMissing;
};

/// Binds every entry point of `table`; returns the first missing, or "".
template <typename Table> std::string bindSymbols(void *lib, Table &table) {
  SymbolBinder binder(lib);
  table.bind(binder);
  return binder.missing();
}

/// "80 GiB", "512 MiB": device memory, rounded, for descriptions.
std::string formatBytes(uint64_t bytes);

/// The GPUs a driver found when it first loaded its library (each with a
/// `description`), or why it found none; then it lists one device,
/// unavailable, saying why. Built once and never changed.
template <typename Gpu> struct DeviceList {
  std::string error; // Why there are no GPUs; empty when there are some.
  std::vector<Gpu> gpus;

  uint32_t count() const {
    return gpus.empty() ? 1 : static_cast<uint32_t>(gpus.size());
  }

  kiln_status describe(const char *driver, uint32_t index,
                       kiln_driver_device_desc *desc) const {
    if (gpus.empty() && index == 0) {
      // One list per driver (Gpu types are the drivers' own), so one text.
      static const std::string text = "unavailable: " + error;
      desc->description = text.c_str();
      desc->available = 0;
      return KILN_OK;
    }
    if (index >= gpus.size())
      return noDevice(driver, index);
    desc->description = gpus[index].description.c_str();
    desc->available = 1;
    return KILN_OK;
  }

  /// The GPU device_open(index) opens, or the error it returns.
  kiln_status find(const char *driver, uint32_t index, const Gpu *&gpu) const {
    if (gpus.empty())
      return kiln_driver_error(KILN_ERROR_UNAVAILABLE, "%s", error.c_str());
    if (index >= gpus.size())
      return noDevice(driver, index);
    gpu = &gpus[index];
    return KILN_OK;
  }

private:
  static kiln_status noDevice(const char *driver, uint32_t index) {
    return kiln_driver_error(KILN_ERROR_NOT_FOUND, "no %s device %u", driver,
                             index);
  }
};

/// What a driver finds at first use: its library's entry points, bound
/// into `State::api`, and `State::devices`, listed by `find(api, gpus)`,
/// which returns why there are none. When the library does not open or
/// lacks an entry point, that is why ("NAME has no SYMBOL" + `hint`).
template <typename State, typename FindGpus>
State loadGpus(const char *envVar, std::initializer_list<const char *> names,
               const char *hint, FindGpus find) {
  State s;
  std::string &error = s.devices.error;
  Library lib = openLibrary(envVar, names);
  if (!lib.handle)
    error = lib.error;
  else if (std::string missing = bindSymbols(lib.handle, s.api);
           !missing.empty())
    error = lib.name + " has no " + missing + hint;
  else
    error = find(s.api, s.devices.gpus);
  return s;
}

/// Kernel parameters in the GPU kernel ABI: one 64-bit device address per
/// binding (its buffer's address plus its offset), in binding order. Kept
/// per device, since a launch copies the values and the next may reuse them.
class KernelArgs {
public:
  /// The addresses for `bindings`, valid until the next call.
  const std::vector<uint64_t> &marshal(const kiln_driver_binding *bindings,
                                       uint32_t count);
  /// For launches that take an array of pointers to the values
  /// (cuLaunchKernel): null when there are none.
  void **pointers();

private:
  std::vector<uint64_t> values;
  std::vector<void *> valuePointers;
};

/// The checks every dispatch starts with. KILN_OK with `launch` false for a
/// grid with a zero dimension, which launches nothing.
kiln_status checkDispatch(uint32_t entry, size_t entryCount,
                          const uint32_t workgroups[3], bool &launch);

/// executable_load's error for an entry the image lacks.
kiln_status missingEntry(const char *name);

} // namespace kiln::driver

#endif // KILN_RUNTIME_DRIVER_DRIVER_UTIL_H

//===- stream_driver.h - The driver of a CUDA-style GPU ---------*- C++ -*-===//
//
// cuda and hip run a GPU the same way, HIP's module API being CUDA's driver
// API renamed: a device (or context) made current on the calling thread at
// every call, since the runtime may call from any thread; one stream per
// device, on which allocations are zeroed and copies and launches queue in
// order; modules whose functions launch with an array of pointers to their
// parameters. StreamDriver<V> is that driver, written once. The vendor V
// names its calls and supplies what differs: finding and opening devices,
// the formats it loads, its error texts.
//
// V provides
//   Api (its symbol table), Result, Pointer (a device address: an integer
//   or a pointer), Stream, Module, Function; kSuccess and kNotFound results;
//   Device, deriving from StreamDevice<V>;
//   the calls below, as KILN_STREAM_CALL(what, symbol);
//   static const char *const kName;
//   static const DeviceList<...> &devices();
//   static kiln_status enter(const Device *);
//   static kiln_status fail(const Api &, Result, const char *what).
// and passes vtable() its device_open, device_close and executable_load.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_RUNTIME_DRIVER_STREAM_DRIVER_H
#define KILN_RUNTIME_DRIVER_STREAM_DRIVER_H

#include "driver_util.h"

#include <string>
#include <type_traits>
#include <vector>

namespace kiln::driver {

/// A vendor entry point (a member of its symbol table) and its name for
/// error messages.
template <typename Member> struct StreamCall {
  Member member;
  const char *name;
};
template <typename Member>
constexpr StreamCall<Member> makeStreamCall(Member m, const char *name) {
  return {m, name};
}
#define KILN_STREAM_CALL(what, symbol)                                        \
  static constexpr auto what = ::kiln::driver::makeStreamCall(&Api::symbol, #symbol)

template <typename V> struct StreamDevice {
  const typename V::Api *api = nullptr;
  typename V::Stream stream = nullptr;
  KernelArgs args;
};

template <typename V> struct StreamExecutable {
  typename V::Module module = nullptr;
  std::vector<typename V::Function> functions;
  std::vector<kiln_driver_entry> entries; // For block sizes; names not kept.
};

template <typename V> struct StreamDriver {
  using Api = typename V::Api;
  using Device = typename V::Device;
  using Executable = StreamExecutable<V>;
  using Pointer = typename V::Pointer;

  template <typename Call, typename... Args>
  static auto call(const Device *d, const Call &c, Args... args) {
    return (d->api->*c.member)(args...);
  }

  /// Runs `c`; KILN_OK, or its failure recorded.
  template <typename Call, typename... Args>
  static kiln_status check(const Device *d, const Call &c, Args... args) {
    typename V::Result r = call(d, c, args...);
    return r == V::kSuccess ? KILN_OK : V::fail(*d->api, r, c.name);
  }

  static Pointer at(void *buffer, uint64_t offset) {
    uintptr_t address = reinterpret_cast<uintptr_t>(buffer) + offset;
    if constexpr (std::is_pointer_v<Pointer>)
      return reinterpret_cast<Pointer>(address);
    else
      return static_cast<Pointer>(address);
  }

  static void *handle(Pointer p) {
    if constexpr (std::is_pointer_v<Pointer>)
      return p;
    else
      return reinterpret_cast<void *>(static_cast<uintptr_t>(p));
  }

  static uint32_t deviceCount() { return V::devices().count(); }

  static kiln_status deviceDescribe(uint32_t index,
                                    kiln_driver_device_desc *desc) {
    return V::devices().describe(V::kName, index, desc);
  }

  /// What closing a device does before the vendor releases it.
  static void closeStream(Device *d) {
    if (d->stream && V::enter(d) == KILN_OK) {
      call(d, V::streamSynchronize, d->stream);
      call(d, V::streamDestroy, d->stream);
    }
  }

  static kiln_status bufferAlloc(void *device, uint64_t size, void **buffer) {
    auto *d = static_cast<Device *>(device);
    if (kiln_status st = V::enter(d); st != KILN_OK)
      return st;
    Pointer p{};
    // Zero bytes: cuMemAlloc fails, hipMalloc returns NULL.
    if (typename V::Result r = call(d, V::memAlloc, &p, size ? size : 1);
        r != V::kSuccess)
      return V::fail(*d->api, r,
                     (std::string(V::memAlloc.name) + " of " +
                      std::to_string(size) + " bytes")
                         .c_str());
    // Ordered before any later copy or launch on the same stream.
    if (kiln_status st = check(d, V::memsetAsync, p, 0, size, d->stream);
        st != KILN_OK) {
      call(d, V::memFree, p);
      return st;
    }
    *buffer = handle(p);
    return KILN_OK;
  }

  static void bufferFree(void *device, void *buffer) {
    auto *d = static_cast<Device *>(device);
    // Launches still in flight may use the buffer.
    if (V::enter(d) == KILN_OK)
      call(d, V::streamSynchronize, d->stream);
    call(d, V::memFree, at(buffer, 0));
  }

  static kiln_status bufferWrite(void *device, void *buffer, uint64_t offset,
                                 const void *src, uint64_t size) {
    auto *d = static_cast<Device *>(device);
    if (kiln_status st = V::enter(d); st != KILN_OK)
      return st;
    if (kiln_status st = check(d, V::memcpyHtoDAsync, at(buffer, offset),
                               const_cast<void *>(src), size, d->stream);
        st != KILN_OK)
      return st;
    // `src` is only borrowed, and from pinned memory the copy may still be
    // reading it after the call returns.
    return check(d, V::streamSynchronize, d->stream);
  }

  static kiln_status bufferRead(void *device, void *buffer, uint64_t offset,
                                void *dst, uint64_t size) {
    auto *d = static_cast<Device *>(device);
    if (kiln_status st = V::enter(d); st != KILN_OK)
      return st;
    if (kiln_status st = check(d, V::memcpyDtoHAsync, dst, at(buffer, offset),
                               size, d->stream);
        st != KILN_OK)
      return st;
    return check(d, V::streamSynchronize, d->stream);
  }

  static void executableUnload(void *device, void *executable) {
    auto *d = static_cast<Device *>(device);
    auto *exe = static_cast<Executable *>(executable);
    if (exe->module && V::enter(d) == KILN_OK) {
      call(d, V::streamSynchronize, d->stream);
      call(d, V::moduleUnload, exe->module);
    }
    delete exe;
  }

  /// Finds `entries` in the loaded module; on failure unloads `exe`.
  static kiln_status resolveEntries(Device *d, Executable *exe,
                                    const kiln_driver_entry *entries,
                                    uint32_t count) {
    for (uint32_t i = 0; i < count; ++i) {
      typename V::Function fn = nullptr;
      if (typename V::Result r = call(d, V::moduleGetFunction, &fn,
                                      exe->module, entries[i].name);
          r != V::kSuccess) {
        executableUnload(d, exe);
        if (r == V::kNotFound)
          return missingEntry(entries[i].name);
        return V::fail(*d->api, r, V::moduleGetFunction.name);
      }
      exe->functions.push_back(fn);
      exe->entries.push_back(entries[i]);
      exe->entries.back().name = nullptr;
    }
    return KILN_OK;
  }

  static kiln_status dispatch(void *device, void *executable, uint32_t entry,
                              const uint32_t workgroups[3],
                              const kiln_driver_binding *bindings,
                              uint32_t count) {
    auto *d = static_cast<Device *>(device);
    auto *exe = static_cast<Executable *>(executable);
    bool launch = false;
    if (kiln_status st =
            checkDispatch(entry, exe->functions.size(), workgroups, launch);
        st != KILN_OK || !launch)
      return st;
    if (kiln_status st = V::enter(d); st != KILN_OK)
      return st;
    d->args.marshal(bindings, count);
    const uint32_t *block = exe->entries[entry].workgroup_size;
    return check(d, V::launchKernel, exe->functions[entry], workgroups[0],
                 workgroups[1], workgroups[2], block[0], block[1], block[2],
                 0u, d->stream, d->args.pointers(),
                 static_cast<void **>(nullptr));
  }

  static kiln_status synchronize(void *device) {
    auto *d = static_cast<Device *>(device);
    if (kiln_status st = V::enter(d); st != KILN_OK)
      return st;
    return check(d, V::streamSynchronize, d->stream);
  }

  /// The driver, with the vendor's own device_open, device_close and
  /// executable_load (which loads the module and calls resolveEntries).
  static kiln_driver vtable(decltype(kiln_driver::device_open) deviceOpen,
                            decltype(kiln_driver::device_close) deviceClose,
                            decltype(kiln_driver::executable_load) load) {
    return {
        KILN_DRIVER_ABI_VERSION,
        V::kName,
        deviceCount,
        deviceDescribe,
        deviceOpen,
        deviceClose,
        bufferAlloc,
        bufferFree,
        bufferWrite,
        bufferRead,
        load,
        executableUnload,
        dispatch,
        synchronize,
        nullptr, // dispatch_times: no profiling.
        nullptr, // buffer_import: device memory is not host memory.
    };
  }
};

} // namespace kiln::driver

#endif // KILN_RUNTIME_DRIVER_STREAM_DRIVER_H

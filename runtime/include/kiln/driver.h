/*===- driver.h - Device driver interface of the Kiln runtime -----*- C -*-===*
 *
 * A driver adapts one kind of device to the runtime. It is compiled into
 * libkiln_runtime (registered with kiln_add_runtime_driver in CMake) and
 * exposes a `const kiln_driver *<fn>(void)` returning a static vtable.
 *
 * The interface is deliberately narrow: memory, code loading, launches. The
 * runtime owns scheduling (dispatch order), validation and error reporting
 * to users; a driver only reports what went wrong with kiln_driver_error.
 *
 * Drivers needing a vendor library (CUDA, ...) must dlopen it rather than
 * link it, so libkiln_runtime loads on any machine. When it is missing they
 * still enumerate one device with available = 0 and the reason in its
 * description, which starts with "unavailable: "; device_open on it returns
 * KILN_ERROR_UNAVAILABLE.
 *
 * Handles (device, buffer, executable) are opaque pointers a driver defines.
 * Calls on one device come from one thread at a time.
 *
 *===----------------------------------------------------------------------===*/
#ifndef KILN_DRIVER_H
#define KILN_DRIVER_H

#include "kiln/runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

#define KILN_DRIVER_ABI_VERSION 2u

/* Strings are static (or live as long as the process). */
typedef struct kiln_driver_device_desc {
  const char *description;
  int available;
} kiln_driver_device_desc;

typedef struct kiln_driver_device_options {
  uint32_t num_threads; /* 0: driver default. */
  /* Profiling outputs, or NULL. A driver that models time (the npu
   * simulator) rewrites these files at every synchronize() with what ran
   * since the previous one: trace_path a Chrome/Perfetto trace JSON,
   * stats_path the per-engine summary described in docs/npu.md. Drivers
   * without a timeline ignore them. */
  const char *trace_path;
  const char *stats_path;
} kiln_driver_device_options;

/* A kernel of an executable and the threads of one of its workgroups (GPU
 * block size; 1x1x1 on targets that run a workgroup as one task). */
typedef struct kiln_driver_entry {
  const char *name;
  uint32_t workgroup_size[3];
} kiln_driver_entry;

/* A buffer handle plus a byte offset into it. */
typedef struct kiln_driver_binding {
  void *buffer;
  uint64_t offset;
} kiln_driver_binding;

typedef struct kiln_driver {
  uint32_t abi_version; /* KILN_DRIVER_ABI_VERSION. */
  /* Equal to the artifact target this driver runs, e.g. "cpu". */
  const char *name;

  uint32_t (*device_count)(void);
  kiln_status (*device_describe)(uint32_t index, kiln_driver_device_desc *desc);

  kiln_status (*device_open)(uint32_t index,
                             const kiln_driver_device_options *options,
                             void **device);
  void (*device_close)(void *device);

  /* Zero-filled, at least 64-byte aligned; size may be 0. */
  kiln_status (*buffer_alloc)(void *device, uint64_t size, void **buffer);
  void (*buffer_free)(void *device, void *buffer);
  /* Host <-> device copies; the runtime checks offset + size is in bounds. */
  kiln_status (*buffer_write)(void *device, void *buffer, uint64_t offset,
                              const void *src, uint64_t size);
  kiln_status (*buffer_read)(void *device, void *buffer, uint64_t offset,
                             void *dst, uint64_t size);

  /* `image` is only borrowed during the call. Returns KILN_ERROR_UNAVAILABLE
   * for a format this driver cannot load on this host, KILN_ERROR_NOT_FOUND
   * for a missing entry. */
  kiln_status (*executable_load)(void *device, const char *format,
                                 const void *image, uint64_t image_size,
                                 const kiln_driver_entry *entries,
                                 uint32_t entry_count, void **executable);
  void (*executable_unload)(void *device, void *executable);

  /* Launches entries[entry] over a workgroups[0] x [1] x [2] grid. May return
   * before completion; synchronize waits for every launch so far. */
  kiln_status (*dispatch)(void *device, void *executable, uint32_t entry,
                          const uint32_t workgroups[3],
                          const kiln_driver_binding *bindings,
                          uint32_t binding_count);
  kiln_status (*synchronize)(void *device);
} kiln_driver;

typedef const kiln_driver *(*kiln_driver_entry_fn)(void);

/* Records a printf-style message as this thread's kiln_last_error() and
 * returns `status`, so drivers can write `return kiln_driver_error(...)`. */
kiln_status kiln_driver_error(kiln_status status, const char *format, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

#ifdef __cplusplus
}
#endif

#endif /* KILN_DRIVER_H */

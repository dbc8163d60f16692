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

/* 3: entries carry `ops`; drivers may report dispatch_times.
 * 4: drivers may import host memory as a buffer (buffer_import).
 * 5: entries carry the bytes each binding reaches (binding_extents). */
#define KILN_DRIVER_ABI_VERSION 5u

/* Strings are static (or live as long as the process). */
typedef struct kiln_driver_device_desc {
  const char *description;
  int available;
} kiln_driver_device_desc;

typedef struct kiln_driver_device_options {
  uint32_t num_threads; /* 0: driver default. */
  /* Profiling outputs, or NULL. A driver that profiles (cpu: measured wall
   * time; npu: simulated time) rewrites these files at every synchronize()
   * with what ran since the previous one: trace_path a Chrome/Perfetto trace
   * JSON, stats_path a JSON summary (docs/npu.md; for the cpu README.md,
   * "Profiling"). Other drivers ignore them. With neither set a driver must
   * not spend time on profiling. */
  const char *trace_path;
  const char *stats_path;
} kiln_driver_device_options;

/* A kernel of an executable and the threads of one of its workgroups (GPU
 * block size; 1x1x1 on targets that run a workgroup as one task). */
typedef struct kiln_driver_entry {
  const char *name;
  uint32_t workgroup_size[3];
  /* The ONNX nodes the kernel computes, "Conv(conv1) + Relu(relu1)", for
   * naming it in profiles; "" when the artifact does not say. Lives as long
   * as the executable. */
  const char *ops;
  /* The bytes the kernel reaches through each of its binding_count bindings,
   * as the artifact states them and as the runtime checks every dispatch's
   * bindings against; NULL (count 0) when the artifact does not say (format
   * 3.2 and older). A driver whose images describe their kernels (cpu:
   * `kiln_extents_<name>`) must refuse an entry whose code disagrees. Lives
   * as long as the executable. */
  uint32_t binding_count;
  const uint64_t *binding_extents;
} kiln_driver_entry;

/* A buffer handle plus a byte offset into it. */
typedef struct kiln_driver_binding {
  void *buffer;
  uint64_t offset;
} kiln_driver_binding;

/* When a profiled dispatch ran, in ns from the start of the first dispatch
 * of its window (wall time on the cpu, simulated time on the npu). */
typedef struct kiln_driver_dispatch_time {
  double start_ns;
  double duration_ns;
} kiln_driver_dispatch_time;

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

  /* Optional (NULL: the driver does not profile). On a device opened with a
   * trace or stats path, after a synchronize(): when each dispatch of the
   * window it closed ran, in launch order, into times[0 .. min(count, n)),
   * returning n, the window's number of dispatches (0 when the device does
   * not profile). */
  uint32_t (*dispatch_times)(void *device, kiln_driver_dispatch_time *times,
                             uint32_t count);

  /* Optional (NULL: no zero-copy inputs). A buffer handle over `size` bytes
   * of caller memory at `host`, which kernels then read in place; the
   * runtime never frees it (an import must not allocate). Returns
   * KILN_ERROR_UNAVAILABLE where this device cannot use that memory as is
   * (alignment, address space). */
  kiln_status (*buffer_import)(void *device, void *host, uint64_t size, void **buffer);
} kiln_driver;

typedef const kiln_driver *(*kiln_driver_entry_fn)(void);

/* Records a printf-style message as this thread's kiln_last_error() and
 * returns `status`, so drivers can write `return kiln_driver_error(...)`. */
kiln_status kiln_driver_error(kiln_status status, const char *format, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Writes `size` bytes to `path` (replacing it); on failure records why, as
 * kiln_driver_error does, and returns KILN_ERROR_IO. For drivers that write
 * profiles (cpu, npu). */
kiln_status kiln_driver_write_file(const char *path, const void *data, size_t size);

#ifdef __cplusplus
}
#endif

#endif /* KILN_DRIVER_H */

/*===- runtime.h - Kiln runtime C API -----------------------------*- C -*-===*
 *
 * Loads a .kiln artifact and runs it on a device. Plain C so any language
 * can bind it; links neither LLVM nor MLIR.
 *
 * Conventions:
 *  - Functions returning kiln_status set a thread-local message on failure,
 *    readable with kiln_last_error() until the next failing call on the same
 *    thread.
 *  - Strings and arrays returned through info structs are owned by the object
 *    they were read from and stay valid until it is released.
 *  - Threads. An artifact may be shared by sessions in any threads: its
 *    getters may be called concurrently, and sessions may be created from it
 *    in several threads at once (each caller holding a reference, its own or
 *    that of a session it keeps). Distinct sessions run concurrently, each on
 *    its own worker threads. A session is NOT thread-safe: no two calls on
 *    one session may overlap (two runs, a run and a set_input, ...). It may
 *    move between threads, one at a time, when the callers order their calls
 *    themselves (a mutex); the runtime takes no lock of its own per call.
 *    test/unit/ConcurrencyTest.cpp checks these promises.
 *
 *===----------------------------------------------------------------------===*/
#ifndef KILN_RUNTIME_H
#define KILN_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define KILN_API __attribute__((visibility("default")))
#else
#define KILN_API
#endif

typedef enum kiln_status {
  KILN_OK = 0,
  KILN_ERROR_INVALID_ARGUMENT, /* Bad argument: wrong name, shape, dtype... */
  KILN_ERROR_NOT_FOUND,        /* No such device, input, entry point. */
  KILN_ERROR_UNAVAILABLE,      /* Device exists but cannot be used here. */
  KILN_ERROR_CORRUPT,          /* Artifact fails validation. */
  KILN_ERROR_VERSION,          /* Artifact has an unsupported major version. */
  KILN_ERROR_IO,               /* open/read/mmap failed. */
  KILN_ERROR_INTERNAL,         /* Driver or runtime failure. */
  KILN_ERROR_RESOURCE_EXHAUSTED /* Over a limit the caller set. */
} kiln_status;

/* Element types, numbered as ONNX TensorProto.DataType (as in the file). */
typedef enum kiln_dtype {
  KILN_DTYPE_F32 = 1,
  KILN_DTYPE_U8 = 2,
  KILN_DTYPE_I8 = 3,
  KILN_DTYPE_U16 = 4,
  KILN_DTYPE_I16 = 5,
  KILN_DTYPE_I32 = 6,
  KILN_DTYPE_I64 = 7,
  KILN_DTYPE_BOOL = 9, /* One byte per element, 0 or 1; named "i1". */
  KILN_DTYPE_F16 = 10,
  KILN_DTYPE_F64 = 11,
  KILN_DTYPE_U32 = 12,
  KILN_DTYPE_U64 = 13,
  KILN_DTYPE_BF16 = 16,
  /* Small types: one element per byte in buffers, its bits in the low bits of
   * the byte and the rest zero (the 4- and 2-bit ones are packed only in
   * .pb files; see docs/artifact-format.md). */
  KILN_DTYPE_F8E4M3FN = 17,
  KILN_DTYPE_F8E4M3FNUZ = 18,
  KILN_DTYPE_F8E5M2 = 19,
  KILN_DTYPE_F8E5M2FNUZ = 20,
  KILN_DTYPE_U4 = 21,
  KILN_DTYPE_I4 = 22,
  KILN_DTYPE_F4E2M1 = 23,
  KILN_DTYPE_F8E8M0 = 24,
  KILN_DTYPE_U2 = 25,
  KILN_DTYPE_I2 = 26
} kiln_dtype;

typedef struct kiln_artifact kiln_artifact;
typedef struct kiln_session kiln_session;

/* Describes an input or output. `name` and `dims` are owned by the artifact. */
typedef struct kiln_tensor_info {
  const char *name;
  kiln_dtype dtype;
  uint32_t rank;
  const int64_t *dims; /* `rank` entries; NULL when rank is 0. */
} kiln_tensor_info;

/* Strings are owned by the runtime and live until the process exits. */
typedef struct kiln_device_info {
  const char *name;        /* "<driver>:<index>", e.g. "cpu:0". */
  const char *driver;      /* Matches the target of executables it runs. */
  const char *description; /* Human-readable; says why when unavailable. */
  int available;           /* Nonzero when a session can be created on it. */
} kiln_device_info;

typedef struct kiln_session_options {
  uint32_t num_threads; /* 0: driver default (CPU: hardware concurrency). */
  /* NULL or a path. Devices that profile write, after each
   * kiln_session_run, a Chrome/Perfetto trace of it to profile_path and
   * statistics as JSON to stats_path, and time its dispatches
   * (kiln_session_dispatch_info): the cpu measures wall time per dispatch
   * and worker thread (README.md, "Profiling"), the npu simulates time per
   * engine (docs/npu.md). GPU devices ignore both. With neither set nothing
   * is timed. */
  const char *profile_path;
  const char *stats_path;
  /* 0, or the most bytes of buffers (inputs, outputs, constants and
   * intermediates) the session may allocate: kiln_session_create fails with
   * KILN_ERROR_RESOURCE_EXHAUSTED, naming the largest buffer, before it
   * allocates any (kiln-run --max-memory). A model the runtime compiles per
   * run checks it per compiled artifact. */
  uint64_t max_memory_bytes;
} kiln_session_options;

/* One kernel launch of a session's run. Strings are owned by the artifact. */
typedef struct kiln_dispatch_info {
  const char *kernel;          /* Entry point, e.g. "main_dispatch_3". */
  const char *ops;             /* The ONNX nodes it computes, as
                                  "Conv(conv1) + Relu(relu1)": op types
                                  and node names (else first outputs);
                                  "" when the artifact does not say. */
  uint32_t workgroup_count[3]; /* Its grid on the session's device. */
  /* Profiled sessions (profile_path or stats_path) on devices that time
   * dispatches (cpu: wall time, npu: simulated), after a run: when the
   * dispatch started, from the start of the run's first dispatch, and how
   * long it took, in ns. Otherwise both are -1. */
  double start_ns;
  double time_ns;
} kiln_dispatch_info;

/*--- Errors and dtypes ----------------------------------------------------*/

/* Message of the last failure on this thread ("" if none). Owned by the
 * runtime; valid until the next failing call on this thread. */
KILN_API const char *kiln_last_error(void);
/* Static string such as "KILN_ERROR_CORRUPT". */
KILN_API const char *kiln_status_name(kiln_status status);
/* Static short name ("f32", "i1", "bf16", ...), or NULL if unknown. */
KILN_API const char *kiln_dtype_name(kiln_dtype dtype);
/* Parses a short name; "bool" is accepted for i1. */
KILN_API kiln_status kiln_dtype_from_name(const char *name, kiln_dtype *dtype);
/* Bytes per element, or 0 if unknown. */
KILN_API size_t kiln_dtype_size(kiln_dtype dtype);

/*--- Artifacts --------------------------------------------------------------*/

/* Maps and validates `path` (header, version, size, checksum, every section
 * and record). On success *artifact is a new reference the caller must give
 * back with kiln_artifact_release. Error messages name the file. */
KILN_API kiln_status kiln_artifact_open(const char *path,
                                        kiln_artifact **artifact);
/* Drops the caller's reference; the mapping lives on while sessions created
 * from it exist. NULL is ignored. */
KILN_API void kiln_artifact_release(kiln_artifact *artifact);
/* Module name and producer recorded by the compiler; owned by the artifact. */
KILN_API const char *kiln_artifact_name(const kiln_artifact *artifact);
KILN_API const char *kiln_artifact_producer(const kiln_artifact *artifact);
KILN_API size_t kiln_artifact_input_count(const kiln_artifact *artifact);
KILN_API size_t kiln_artifact_output_count(const kiln_artifact *artifact);
/* Fills *info with pointers owned by the artifact. */
KILN_API kiln_status kiln_artifact_input_info(const kiln_artifact *artifact,
                                              size_t index,
                                              kiln_tensor_info *info);
/* What of input `index` decides what gets compiled, as bits (0: nothing):
 * KILN_SPECIALIZE_VALUE for a graph input that feeds a shape or control flow
 * (Reshape's shape, Reduce* axes, Slice starts, a Loop's trip count) that
 * kiln-compile was not given with --input-value; KILN_SPECIALIZE_SHAPE for
 * one with symbolic dimensions not pinned with --input-shape (they are -1 in
 * its info, and a run may give any extent there). Such an artifact holds the
 * model instead of code and has no outputs until a session runs it: each run
 * with new values or shapes of these inputs compiles the model for them by
 * starting kiln-compile ($KILN_COMPILE, else the one installed beside this
 * library, else from PATH) and keeps the result in a cache directory
 * ($KILN_CACHE_DIR, else $XDG_CACHE_HOME/kiln, else ~/.cache/kiln); runs
 * with values and shapes seen before reuse it. */
enum { KILN_SPECIALIZE_VALUE = 1, KILN_SPECIALIZE_SHAPE = 2 };
KILN_API int kiln_artifact_input_specializes(const kiln_artifact *artifact,
                                             size_t index);
/* For an output with a data-dependent shape, each such dim is its upper
 * bound; kiln_session_output_info gives the shape of a run. An artifact that
 * specializes on inputs lists no outputs: ask the session after a run. */
KILN_API kiln_status kiln_artifact_output_info(const kiln_artifact *artifact,
                                               size_t index,
                                               kiln_tensor_info *info);
/* 1 when every input and output shape is fixed at compile time (no -1 dims,
 * no input it specializes on, no data-dependent output dims): its sessions
 * can use kiln_session_run_io. 0 otherwise or for NULL. */
KILN_API int kiln_artifact_is_static(const kiln_artifact *artifact);

/*--- Devices ----------------------------------------------------------------*/

/* Devices of every driver built into the runtime, available or not. */
KILN_API size_t kiln_device_count(void);
KILN_API kiln_status kiln_device_info_get(size_t index, kiln_device_info *info);

/*--- Sessions ---------------------------------------------------------------*/

/* Opens a device, allocates every buffer, uploads constants and loads the
 * executables. `device` is a device name ("cpu:0"), a driver name ("cpu":
 * its first available device), or NULL: the first available device whose
 * driver matches the target of one of the artifact's executables. `options`
 * may be NULL. The session keeps its own reference to `artifact`. On success
 * the caller owns *session and frees it with kiln_session_release. */
KILN_API kiln_status kiln_session_create(kiln_artifact *artifact,
                                         const char *device,
                                         const kiln_session_options *options,
                                         kiln_session **session);
/* Frees the session and its device memory. NULL is ignored. */
KILN_API void kiln_session_release(kiln_session *session);
/* Name of the device the session runs on; owned by the runtime. */
KILN_API const char *kiln_session_device(const kiln_session *session);

/* Copies `bytes` bytes from `data` (caller-owned, only read during the call)
 * into input `name`. dtype, rank and dims must match the input exactly (any
 * extent where its info says -1) and `bytes` must equal the tensor size.
 * Inputs keep their value across runs. */
KILN_API kiln_status kiln_session_set_input(kiln_session *session,
                                            const char *name, kiln_dtype dtype,
                                            uint32_t rank, const int64_t *dims,
                                            const void *data, size_t bytes);
/* kiln_session_set_input without the copy: runs read the input from `data`
 * in place until it is set or bound again, so `data` must stay valid and
 * unchanged until then. Same checks as kiln_session_set_input; where the
 * device cannot read that memory as is (a GPU, an address not 64-byte
 * aligned on the cpu, an artifact compiled per input value) it returns
 * KILN_ERROR_UNAVAILABLE and binds nothing: copy with set_input instead. */
KILN_API kiln_status kiln_session_bind_input(kiln_session *session,
                                             const char *name, kiln_dtype dtype,
                                             uint32_t rank, const int64_t *dims,
                                             const void *data, size_t bytes);
/* Makes runs write output `index` straight into caller memory `data` of
 * `bytes` bytes (the output's size) until it is bound again; NULL `data`
 * gives the output back its own buffer. `data` must stay valid until then,
 * and each run leaves the output there (kiln_session_output_read still
 * copies it out). Binding invalidates the last run's outputs. Where that
 * cannot be done as is (a GPU, an address not 64-byte aligned on the cpu,
 * an output with data-dependent dims or sharing its buffer with an input or
 * another output, an artifact compiled per input value) it returns
 * KILN_ERROR_UNAVAILABLE and binds nothing: read with output_read instead. */
KILN_API kiln_status kiln_session_bind_output(kiln_session *session,
                                              size_t index, void *data,
                                              size_t bytes);
/* Runs every dispatch and waits for completion. Fails if an input was never
 * set. For an artifact that specializes on inputs, first compiles it for
 * their values unless done before (see kiln_artifact_input_specializes); a
 * failed compile is the error, naming the inputs and their values. */
KILN_API kiln_status kiln_session_run(kiln_session *session);
/* kiln_session_set_input for every input, kiln_session_run and
 * kiln_session_output_read for every output, in one call: what a binding
 * whose every call costs (Python's ctypes) uses to keep a small model's run
 * cheap. Only for a static artifact (kiln_artifact_is_static). inputs[i]
 * holds input i in its declared dtype and shape, outputs[i] receives output
 * i, sized likewise; num_inputs and num_outputs must equal the artifact's
 * counts. */
KILN_API kiln_status kiln_session_run_io(kiln_session *session,
                                         const void *const *inputs,
                                         size_t num_inputs,
                                         void *const *outputs,
                                         size_t num_outputs);
/* Outputs of the last run's artifact (0 before the first run when the
 * artifact specializes on inputs). */
KILN_API size_t kiln_session_output_count(const kiln_session *session);
/* Same as kiln_artifact_output_info of the session's artifact, except that
 * after a successful run (until an input is set again) `dims` are the shape
 * that run produced: outputs with data-dependent shapes (NonZero, ...) are
 * recorded in the artifact with an upper bound per such dim, and a run
 * computes the actual extent. `dims` then stays valid until the next run. */
KILN_API kiln_status kiln_session_output_info(const kiln_session *session,
                                              size_t index,
                                              kiln_tensor_info *info);
/* Copies output `index` of the last successful run into caller-owned `data`;
 * `bytes` must equal the tensor size (element size times element count) of
 * the run's shape, as kiln_session_output_info reports it.
 * Fails if no run succeeded since an input was last set, so stale results
 * are never mistaken for fresh ones. */
KILN_API kiln_status kiln_session_output_read(kiln_session *session,
                                              size_t index, void *data,
                                              size_t bytes);

/* Dispatches of a run, in launch order: where the time of a profiled run
 * went. For an artifact that specializes on inputs, those of the last run's
 * compiled artifact (0 before the first run). */
KILN_API size_t kiln_session_dispatch_count(const kiln_session *session);
KILN_API kiln_status kiln_session_dispatch_info(const kiln_session *session,
                                                size_t index,
                                                kiln_dispatch_info *info);

#ifdef __cplusplus
}
#endif

#endif /* KILN_RUNTIME_H */

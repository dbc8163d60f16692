"""ctypes binding of Kiln's C runtime (runtime/include/kiln/runtime.h)."""
import collections
import ctypes
import os

import numpy as np

from . import _paths

_builtin_RuntimeError = RuntimeError


class RuntimeError(_builtin_RuntimeError):  # noqa: A001 - kiln.RuntimeError by design
    """A failure reported by libkiln_runtime; the message is kiln_last_error()."""

    def __init__(self, message, status=None):
        super().__init__(message)
        self.status = status


# kiln_dtype values (ONNX TensorProto.DataType) <-> numpy dtypes.
_DTYPES = {
    1: np.dtype(np.float32), 2: np.dtype(np.uint8), 3: np.dtype(np.int8),
    4: np.dtype(np.uint16), 5: np.dtype(np.int16), 6: np.dtype(np.int32),
    7: np.dtype(np.int64), 9: np.dtype(np.bool_), 10: np.dtype(np.float16),
    11: np.dtype(np.float64), 12: np.dtype(np.uint32), 13: np.dtype(np.uint64),
}
# The types numpy lacks, where ml_dtypes (which onnx depends on) is
# installed: its arrays hold one element per byte like Kiln's buffers, the
# bits in the low bits of the byte (docs/artifact-format.md; ml_dtypes 0.7
# keeps int4 -1 as 0x0f). An int4 or int2 byte with higher bits set is
# refused by the runtime, not misread.
try:
    import ml_dtypes as _ml
    _DTYPES.update({
        16: np.dtype(_ml.bfloat16),
        17: np.dtype(_ml.float8_e4m3fn), 18: np.dtype(_ml.float8_e4m3fnuz),
        19: np.dtype(_ml.float8_e5m2), 20: np.dtype(_ml.float8_e5m2fnuz),
        21: np.dtype(_ml.uint4), 22: np.dtype(_ml.int4),
        23: np.dtype(_ml.float4_e2m1fn), 24: np.dtype(_ml.float8_e8m0fnu),
        25: np.dtype(_ml.uint2), 26: np.dtype(_ml.int2),
    })
except ImportError:
    pass


class _TensorInfo(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("dtype", ctypes.c_int),
                ("rank", ctypes.c_uint32), ("dims", ctypes.POINTER(ctypes.c_int64))]


class _DeviceInfo(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("driver", ctypes.c_char_p),
                ("description", ctypes.c_char_p), ("available", ctypes.c_int)]


class _SessionOptions(ctypes.Structure):
    _fields_ = [("num_threads", ctypes.c_uint32),
                ("profile_path", ctypes.c_char_p),
                ("stats_path", ctypes.c_char_p),
                ("max_memory_bytes", ctypes.c_uint64)]


class _DispatchInfo(ctypes.Structure):
    _fields_ = [("kernel", ctypes.c_char_p), ("ops", ctypes.c_char_p),
                ("workgroup_count", ctypes.c_uint32 * 3),
                ("start_ns", ctypes.c_double), ("time_ns", ctypes.c_double)]


# One kernel launch of a run: its ONNX ops ("" if the artifact does not say)
# and, in a profiled session, when it started and how long it took (ns).
Dispatch = collections.namedtuple("Dispatch", "kernel ops workgroups start_ns time_ns")


_lib = None


def _load():
    global _lib
    if _lib is not None:
        return _lib
    path = _paths.build_dir() / "lib" / "libkiln_runtime.so"
    if not path.exists():
        raise RuntimeError(f"Kiln runtime library not found at {path} "
                           "(build the project or set KILN_BUILD_DIR)")
    lib = ctypes.CDLL(str(path))
    vp, sz, st = ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int
    sigs = {
        "kiln_last_error": ([], ctypes.c_char_p),
        "kiln_status_name": ([st], ctypes.c_char_p),
        "kiln_dtype_name": ([st], ctypes.c_char_p),
        "kiln_artifact_open": ([ctypes.c_char_p, ctypes.POINTER(vp)], st),
        "kiln_artifact_release": ([vp], None),
        "kiln_artifact_name": ([vp], ctypes.c_char_p),
        "kiln_artifact_producer": ([vp], ctypes.c_char_p),
        "kiln_artifact_input_count": ([vp], sz),
        "kiln_artifact_output_count": ([vp], sz),
        "kiln_artifact_input_info": ([vp, sz, ctypes.POINTER(_TensorInfo)], st),
        "kiln_artifact_output_info": ([vp, sz, ctypes.POINTER(_TensorInfo)], st),
        "kiln_device_count": ([], sz),
        "kiln_device_info_get": ([sz, ctypes.POINTER(_DeviceInfo)], st),
        "kiln_session_create": ([vp, ctypes.c_char_p, ctypes.POINTER(_SessionOptions),
                                 ctypes.POINTER(vp)], st),
        "kiln_session_release": ([vp], None),
        "kiln_session_device": ([vp], ctypes.c_char_p),
        "kiln_session_set_input": ([vp, ctypes.c_char_p, st, ctypes.c_uint32,
                                    ctypes.POINTER(ctypes.c_int64), vp, sz], st),
        "kiln_session_run": ([vp], st),
        "kiln_artifact_is_static": ([vp], ctypes.c_int),
        "kiln_session_run_io": ([vp, ctypes.POINTER(vp), sz, ctypes.POINTER(vp), sz], st),
        "kiln_session_bind_input": ([vp, ctypes.c_char_p, st, ctypes.c_uint32,
                                     ctypes.POINTER(ctypes.c_int64), vp, sz], st),
        "kiln_session_output_count": ([vp], sz),
        "kiln_artifact_input_specializes": ([vp, sz], ctypes.c_int),
        "kiln_session_output_info": ([vp, sz, ctypes.POINTER(_TensorInfo)], st),
        "kiln_session_output_read": ([vp, sz, vp, sz], st),
        "kiln_session_bind_output": ([vp, sz, vp, sz], st),
        "kiln_session_dispatch_count": ([vp], sz),
        "kiln_session_dispatch_info": ([vp, sz, ctypes.POINTER(_DispatchInfo)], st),
    }
    for name, (args, res) in sigs.items():
        fn = getattr(lib, name)
        fn.argtypes = args
        fn.restype = res
    _lib = lib
    return lib


def _check(status):
    if status != 0:
        lib = _load()
        msg = (lib.kiln_last_error() or b"").decode("utf-8", "replace")
        name = (lib.kiln_status_name(status) or b"?").decode()
        raise RuntimeError(msg or name, status=name)


class TensorInfo:
    """Name, numpy dtype and shape of an artifact input or output."""

    def __init__(self, raw):
        self.name = raw.name.decode("utf-8")
        self.kiln_dtype = raw.dtype
        # None for a symbolic dim (an input the artifact compiles per shape).
        self.shape = tuple(None if raw.dims[i] < 0 else raw.dims[i] for i in range(raw.rank))
        self.dtype = _DTYPES.get(raw.dtype)

    @property
    def dtype_name(self):
        n = _load().kiln_dtype_name(self.kiln_dtype)
        return n.decode() if n else f"dtype#{self.kiln_dtype}"

    def __repr__(self):
        return f"TensorInfo({self.name!r}, {self.dtype_name}, {list(self.shape)})"


def devices():
    """[(name, driver, description, available)] of every built-in device."""
    lib = _load()
    out = []
    for i in range(lib.kiln_device_count()):
        d = _DeviceInfo()
        _check(lib.kiln_device_info_get(i, ctypes.byref(d)))
        out.append((d.name.decode(), d.driver.decode(), d.description.decode(),
                    bool(d.available)))
    return out


class Artifact:
    """An opened, validated .kiln file."""

    def __init__(self, path):
        lib = _load()
        self._lib = lib
        self._handle = None
        self.path = os.fspath(path)
        h = ctypes.c_void_p()
        _check(lib.kiln_artifact_open(self.path.encode(), ctypes.byref(h)))
        self._handle = h
        self.inputs = self._infos(lib.kiln_artifact_input_count, lib.kiln_artifact_input_info)
        self.outputs = self._infos(lib.kiln_artifact_output_count, lib.kiln_artifact_output_info)
        # Inputs whose values (shape inputs) or shapes (symbolic dims)
        # decide the code: the artifact holds the model, compiled for them on
        # the first run with each (no outputs till then).
        self.specializes_on = [t.name for i, t in enumerate(self.inputs)
                               if lib.kiln_artifact_input_specializes(self._handle, i)]

    def _infos(self, count_fn, info_fn):
        infos = []
        for i in range(count_fn(self._handle)):
            raw = _TensorInfo()
            _check(info_fn(self._handle, i, ctypes.byref(raw)))
            infos.append(TensorInfo(raw))
        return infos

    @property
    def name(self):
        return (self._lib.kiln_artifact_name(self._handle) or b"").decode()

    @property
    def producer(self):
        return (self._lib.kiln_artifact_producer(self._handle) or b"").decode()

    def close(self):
        if self._handle is not None:
            self._lib.kiln_artifact_release(self._handle)
            self._handle = None

    def __del__(self):
        self.close()


class Session:
    """Runs a compiled .kiln artifact.

    >>> s = Session("model.kiln", threads=2)
    >>> (y,) = s.run({"x": x})

    With `profile` and/or `stats` paths, every run writes a Chrome/Perfetto
    trace and JSON statistics there (cpu, npu), and `dispatches()` says how
    long each dispatch of the last run took. `max_memory` (bytes) refuses a
    model whose buffers need more, before allocating any.
    """

    def __init__(self, artifact_path, device=None, threads=0, profile=None, stats=None,
                 max_memory=None):
        self._lib = _load()
        self._handle = None
        self.artifact = Artifact(artifact_path)
        opts = _SessionOptions(int(threads), str(profile).encode() if profile else None,
                               str(stats).encode() if stats else None, int(max_memory or 0))
        self._bound = {}  # inputs read in place: kept alive while bound
        h = ctypes.c_void_p()
        _check(self._lib.kiln_session_create(
            self.artifact._handle, device.encode() if device else None,
            ctypes.byref(opts), ctypes.byref(h)))
        self._handle = h
        # Every ctypes call costs about a microsecond: with fixed shapes a run
        # is one call (kiln_session_run_io) into preallocated pointer arrays.
        ins, outs = self.artifact.inputs, self.artifact.outputs
        self._io = None
        if self._lib.kiln_artifact_is_static(self.artifact._handle) and all(
                t.dtype is not None for t in ins + outs):
            self._io = ([(t.name, t.dtype, t.shape) for t in ins],
                        [(t.dtype, t.shape) for t in outs],
                        (ctypes.c_void_p * max(len(ins), 1))(),
                        (ctypes.c_void_p * max(len(outs), 1))())

    @property
    def inputs(self):
        return self.artifact.inputs

    @property
    def outputs(self):
        """The artifact's outputs; for one that specializes on its inputs
        (it lists none until compiled), those of the last run."""
        return self.artifact.outputs or self._run_outputs()

    def _run_outputs(self):
        """The session's outputs: after a run, with the shapes it produced."""
        infos = []
        for i in range(self._lib.kiln_session_output_count(self._handle)):
            raw = _TensorInfo()
            _check(self._lib.kiln_session_output_info(self._handle, i, ctypes.byref(raw)))
            infos.append(TensorInfo(raw))
        return infos

    @property
    def device(self):
        return self._lib.kiln_session_device(self._handle).decode()

    def set_input(self, name, value):
        """Binds one input by copying it. Values are numpy arrays, anything
        numpy converts, or DLPack tensors on the cpu (torch...); dtype and
        shape must match the artifact (the runtime reports mismatches)."""
        arr = np.asarray(_as_array(value, name), order="C")
        self._bound.pop(name, None)
        kdt = _kiln_dtype_of(arr.dtype)
        dims = (ctypes.c_int64 * max(arr.ndim, 1))(*arr.shape)
        _check(self._lib.kiln_session_set_input(
            self._handle, name.encode(), kdt, arr.ndim, dims,
            arr.ctypes.data_as(ctypes.c_void_p), arr.nbytes))

    def bind_input(self, name, value):
        """Binds one input without copying where the device reads host
        memory in place (cpu: a C-contiguous array of the exact dtype and
        shape, 64-byte aligned, as torch allocates): runs then read it as it
        is at run time, and the session holds a reference until the input is
        set or bound again. Anything else is copied, as set_input does."""
        arr = _as_array(value, name)
        if arr.flags.c_contiguous and arr.nbytes and arr.dtype in _DTYPES.values():
            dims = (ctypes.c_int64 * max(arr.ndim, 1))(*arr.shape)
            st = self._lib.kiln_session_bind_input(
                self._handle, name.encode(), _kiln_dtype_of(arr.dtype), arr.ndim, dims,
                arr.ctypes.data_as(ctypes.c_void_p), arr.nbytes)
            if st == 0:
                self._bound[name] = arr
                return
            if self._lib.kiln_status_name(st) != b"KILN_ERROR_UNAVAILABLE":
                _check(st)
        self.set_input(name, arr)

    def run(self, inputs=None, out=None):
        """Binds `inputs` (name -> array or DLPack tensor; large ones without
        a copy where bind_input can), runs, and returns the outputs in
        graph-output order: fresh numpy arrays (DLPack-capable:
        torch.from_dlpack takes them without a copy), or the arrays of `out`
        (a sequence in output order, C-contiguous and writable, each the
        output's dtype and shape), written in place. Large outputs are
        written by the kernels straight into the array returned or given
        where the device allows (cpu: 64-byte aligned), else copied once."""
        if self._io is not None and inputs is not None and out is None:
            results = self._run_io(inputs)
            if results is not None:
                return results
        for name, value in (inputs or {}).items():
            arr = _as_array(value, name)
            # A small input costs less to copy than a bind that may be refused.
            (self.bind_input if arr.nbytes > _COPY_LIMIT else self.set_input)(name, arr)
        if out is not None and self.artifact.outputs and len(out) != len(self.artifact.outputs):
            raise ValueError(f"out: {len(out)} arrays for {len(self.artifact.outputs)} outputs")
        bound = self._bind_outputs(out)
        try:
            _check(self._lib.kiln_session_run(self._handle))
            infos = self._run_outputs()  # data-dependent dims are known only now
            if out is not None and len(out) != len(infos):
                raise ValueError(f"out: {len(out)} arrays for {len(infos)} outputs")
            results = []
            for i, info in enumerate(infos):
                if i in bound:
                    results.append(out[i] if out is not None else bound[i])
                    continue
                dst = self._destination(i, info, out)
                _check(self._lib.kiln_session_output_read(
                    self._handle, i, dst.ctypes.data_as(ctypes.c_void_p), dst.nbytes))
                results.append(dst if out is None else out[i])
        finally:
            # The caller's arrays are never written after run() returns
            # (unbinding also ends the run's outputs: read them first).
            for i in bound:
                _check(self._lib.kiln_session_bind_output(self._handle, i, None, 0))
        return results

    def _bind_outputs(self, out):
        """Points the outputs larger than _COPY_LIMIT at their destination
        (out[i], else a new 64-byte aligned array) where the device writes
        them in place: {index: array} of those it took. An out array that
        does not match is left to the check after the run."""
        bound = {}
        for i, info in enumerate(self.artifact.outputs):  # none if compiled per run
            if (info.dtype is None or None in info.shape
                    or np.prod(info.shape) * np.dtype(info.dtype).itemsize <= _COPY_LIMIT):
                continue
            if out is None:
                dst = _aligned_empty(info.shape, info.dtype)
            else:
                dst = _as_array(out[i], info.name)
                if not _fits(dst, info):
                    continue
            st = self._lib.kiln_session_bind_output(self._handle, i, dst.ctypes.data_as(ctypes.c_void_p),
                                                    dst.nbytes)
            if st == 0:
                bound[i] = dst
            elif self._lib.kiln_status_name(st) != b"KILN_ERROR_UNAVAILABLE":
                for j in bound:
                    self._lib.kiln_session_bind_output(self._handle, j, None, 0)
                _check(st)
        return bound

    def _destination(self, i, info, out):
        """Where output i goes: the caller's array (checked), else a new
        64-byte aligned one the kernels can write in place."""
        if info.dtype is None:
            raise RuntimeError(f"output '{info.name}' has dtype {info.dtype_name}, "
                               "which numpy cannot represent")
        if out is None:
            return _aligned_empty(info.shape, info.dtype)
        dst = _as_array(out[i], info.name)
        if not _fits(dst, info):
            raise ValueError(f"out[{i}] for output '{info.name}': expected a writable C-contiguous "
                             f"{info.dtype}{list(info.shape)}, got {'' if dst.flags.writeable else 'read-only '}"
                             f"{dst.dtype}{list(dst.shape)}")
        return dst

    def output_names(self):
        """Names of the last run's outputs, in the order run() returned them
        (an artifact compiled per run knows them only after a run)."""
        return [t.name for t in (self.artifact.outputs if self._io is not None else self._run_outputs())]

    def _run_io(self, inputs):
        """run() in one C call when `inputs` gives every input as a
        C-contiguous array of its exact dtype and shape; None otherwise
        (set_input then says what does not match)."""
        specs, out_specs, in_ptrs, out_ptrs = self._io
        if len(inputs) != len(specs):
            return None
        nbytes = 0
        for i, (name, dtype, shape) in enumerate(specs):
            arr = inputs.get(name)
            if (type(arr) is not np.ndarray or arr.dtype != dtype or arr.shape != shape
                    or not arr.flags.c_contiguous):
                return None
            # Copying small inputs costs less than a call per input; large
            # ones are bound in place instead.
            nbytes += arr.nbytes
            if nbytes > _COPY_LIMIT:
                return None
            in_ptrs[i] = _address(arr)
        results = [np.empty(shape, dtype) for dtype, shape in out_specs]
        for i, out in enumerate(results):
            out_ptrs[i] = _address(out)
        _check(self._lib.kiln_session_run_io(self._handle, in_ptrs, len(specs),
                                             out_ptrs, len(out_specs)))
        self._bound.clear()  # every input was copied
        return results

    def dispatches(self):
        """The dispatches of a run, in launch order, as Dispatch tuples;
        start_ns and time_ns are None unless the last run was profiled."""
        out = []
        for i in range(self._lib.kiln_session_dispatch_count(self._handle)):
            d = _DispatchInfo()
            _check(self._lib.kiln_session_dispatch_info(self._handle, i, ctypes.byref(d)))
            timed = d.time_ns >= 0
            out.append(Dispatch(d.kernel.decode(), d.ops.decode("utf-8", "replace"),
                                tuple(d.workgroup_count), d.start_ns if timed else None,
                                d.time_ns if timed else None))
        return out

    def close(self):
        if self._handle is not None:
            self._lib.kiln_session_release(self._handle)
            self._handle = None
        if getattr(self, "artifact", None) is not None:
            self.artifact.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        self.close()


_COPY_LIMIT = 64 << 10  # bytes of input that run() copies rather than binds


def _as_array(value, name):
    """A numpy view of an array, a DLPack tensor on the cpu, or a value
    numpy converts."""
    if type(value) is np.ndarray:
        return value
    if hasattr(value, "__dlpack__"):
        try:
            return np.from_dlpack(value)
        except (BufferError, RuntimeError, TypeError, ValueError) as e:
            raise RuntimeError(f"'{name}': numpy cannot view this tensor in place ({e}); "
                               "move it to the cpu first") from e
    return np.asarray(value, order="C")  # (ascontiguousarray would make 0-d arrays 1-d)


def _fits(dst, info):
    """Whether `dst` can receive output `info` in place: its dtype and shape,
    C-contiguous and writable."""
    return (dst.dtype == info.dtype and dst.shape == info.shape and dst.flags.c_contiguous
            and dst.flags.writeable)


def _aligned_empty(shape, dtype):
    """np.empty whose data starts on a 64-byte boundary (numpy's own
    allocations are 16-byte aligned): the cpu can bind it in place."""
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if nbytes <= _COPY_LIMIT:
        return np.empty(shape, dtype)
    raw = np.empty(nbytes + 64, np.uint8)
    start = -raw.ctypes.data % 64
    return raw[start:start + nbytes].view(dtype).reshape(shape)


def _address(arr):
    """Data address of a C-contiguous array: a ctypes view over a writable
    one is a quarter of the cost of arr.ctypes.data."""
    try:
        return ctypes.addressof(ctypes.c_char.from_buffer(arr))
    except (TypeError, ValueError):  # read-only or empty
        return arr.ctypes.data


def _kiln_dtype_of(dt):
    for code, npdt in _DTYPES.items():
        if npdt == dt:
            return code
    raise RuntimeError(f"numpy dtype {dt} has no Kiln equivalent")

"""Tensors over HTTP for kiln.serve: request bodies to {name: ndarray} and
outputs back to bytes, in one of three content types (docs/serving.md):

  application/json    {"x": {"dtype": "float32", "data": [[...]]}, ...}
                      (a bare nested list takes the input's own dtype;
                      "shape" is optional and reshapes flat data)
  application/x-npy   one .npy file: the model's only input / only output
  application/x-npz   np.savez archive, one entry per input / output name

No Ray here, so the formats are testable on their own.
"""
import io
import json
import zipfile

import numpy as np

JSON, NPY, NPZ = "application/json", "application/x-npy", "application/x-npz"
TYPES = (JSON, NPY, NPZ)


class PayloadError(Exception):
    """A request the server cannot take; `status` is the HTTP status to answer."""

    def __init__(self, message, status=400):
        super().__init__(message)
        self.status = status


def media_type(header):
    """'application/json; charset=utf-8' -> 'application/json'."""
    return (header or "").split(";", 1)[0].strip().lower()


def decode(body, content_type, inputs):
    """The request's tensors as {name: ndarray}. `inputs` are the artifact's
    TensorInfos (the npy input's name, JSON's default dtypes)."""
    kind = media_type(content_type)
    if kind == JSON:
        return _decode_json(body, inputs)
    if kind == NPY:
        if len(inputs) != 1:
            raise PayloadError(f"{NPY} carries one tensor but the model has inputs "
                               f"{_names(inputs)}: send {NPZ} or {JSON}")
        return {inputs[0].name: _load_npy(body)}
    if kind == NPZ:
        return _load_npz(body)
    raise PayloadError(f"unsupported Content-Type '{content_type or ''}': send one of "
                       f"{', '.join(TYPES)}", status=415)


def response_type(accept, request_type, outputs):
    """The content type to answer in: the first of ours that Accept names,
    else the request's own. `outputs`: the artifact's output TensorInfos."""
    kind = next((media_type(p) for p in (accept or "").split(",") if media_type(p) in TYPES),
                media_type(request_type) if media_type(request_type) in TYPES else JSON)
    if kind == NPY and len(outputs) > 1:  # (none listed: compiled per shape, not run yet)
        raise PayloadError(f"{NPY} carries one tensor but the model has outputs "
                           f"{_names(outputs)}: accept {NPZ} or {JSON}", status=406)
    return kind


def encode(outputs, kind):
    """{name: ndarray} (graph-output order) as (body bytes, content type)."""
    if kind == NPY:
        if len(outputs) != 1:
            raise PayloadError(f"{NPY} carries one tensor but the model has outputs "
                               f"{', '.join(outputs)}: accept {NPZ} or {JSON}", status=406)
        buf = io.BytesIO()
        np.save(buf, next(iter(outputs.values())), allow_pickle=False)
        return buf.getvalue(), NPY
    if kind == NPZ:
        buf = io.BytesIO()
        np.savez(buf, **outputs)
        return buf.getvalue(), NPZ
    doc = {name: {"dtype": _dtype_name(a.dtype), "shape": list(a.shape), "data": _to_list(a)}
           for name, a in outputs.items()}
    return json.dumps(doc).encode(), JSON


def error_body(message):
    return json.dumps({"error": message}).encode()


def _names(inputs):
    return ", ".join(t.name for t in inputs)


def _decode_json(body, inputs):
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise PayloadError(f"request body is not valid JSON: {e}") from None
    if not isinstance(doc, dict):
        raise PayloadError('JSON body must be an object {"<input name>": {"dtype": ..., '
                           '"data": [...]}, ...}')
    default = {t.name: t.dtype for t in inputs}
    return {name: _json_tensor(name, v, default.get(name)) for name, v in doc.items()}


def _json_tensor(name, value, default_dtype):
    if isinstance(value, dict):
        if "data" not in value:
            raise PayloadError(f"input '{name}': JSON tensor needs a \"data\" field")
        data, dtype, shape = value["data"], value.get("dtype"), value.get("shape")
    else:
        data, dtype, shape = value, None, None
    dt = _parse_dtype(name, dtype) if dtype is not None else default_dtype
    try:
        arr = np.array(data, dtype=dt)
        if shape is not None:
            arr = arr.reshape([int(d) for d in shape])
    except (ValueError, TypeError, OverflowError) as e:
        raise PayloadError(f"input '{name}': cannot make a {dt} tensor"
                           f"{'' if shape is None else f' of shape {shape}'} "
                           f"from its JSON data: {e}") from None
    if arr.dtype.kind in "OUSVMm":
        raise PayloadError(f"input '{name}': JSON data must be numbers or booleans")
    return arr


def _parse_dtype(name, dtype):
    if isinstance(dtype, str):
        try:
            import ml_dtypes  # bfloat16, float8_*: names numpy alone does not know
            if hasattr(ml_dtypes, dtype):
                return np.dtype(getattr(ml_dtypes, dtype))
        except ImportError:
            pass
        try:
            dt = np.dtype(dtype)
            if dt.kind not in "OUSVMm":
                return dt
        except TypeError:
            pass
    raise PayloadError(f"input '{name}': unknown dtype {dtype!r} (numpy names: "
                       "float32, int64, bool, ...)")


def _dtype_name(dt):
    return dt.name if dt.kind != "V" else str(dt)


def _to_list(a):
    # ml_dtypes floats (bfloat16, float8) are not JSON numbers until widened.
    if a.dtype.kind == "V" or a.dtype.type.__module__.startswith("ml_dtypes"):
        a = a.astype(np.float32)
    return a.tolist()


def _load_npy(body):
    try:
        return np.load(io.BytesIO(body), allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise PayloadError(f"request body is not a valid .npy file: {e}") from None


def _load_npz(body):
    try:
        z = np.load(io.BytesIO(body), allow_pickle=False)
        if not isinstance(z, np.lib.npyio.NpzFile):
            raise ValueError("it is a single .npy array; send it as " + NPY)
        with z:
            return {name: z[name] for name in z.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        raise PayloadError(f"request body is not a valid np.savez archive: {e}") from None

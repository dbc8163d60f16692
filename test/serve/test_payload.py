"""kiln.serve's payload formats, without Ray."""
import io
import json
import re

import numpy as np
import pytest

from kiln._payload import (JSON, NPY, NPZ, PayloadError, decode, encode, response_type)


class Info:  # the two fields of kiln.TensorInfo that the codecs read
    def __init__(self, name, dtype=np.float32):
        self.name, self.dtype = name, np.dtype(dtype)


X = [Info("x")]
XZ = [Info("x"), Info("z", np.int64)]


def npy(a):
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def npz(**arrays):
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def test_json_tensor_forms():
    body = json.dumps({"x": {"dtype": "float16", "data": [[1, 2], [3, 4]]},
                       "z": [[5, 6]]}).encode()
    got = decode(body, "application/json; charset=utf-8", XZ)
    assert got["x"].dtype == np.float16 and got["x"].shape == (2, 2)
    assert got["z"].dtype == np.int64 and got["z"].tolist() == [[5, 6]]  # the input's dtype
    flat = decode(json.dumps({"x": {"data": [1, 2, 3, 4], "shape": [2, 2]}}), JSON, X)
    assert flat["x"].shape == (2, 2) and flat["x"].dtype == np.float32


@pytest.mark.parametrize("body, message", [
    (b"{not json", "not valid JSON"),
    (b"[1, 2]", "JSON body must be an object"),
    (b'{"x": {"dtype": "float32"}}', 'needs a "data" field'),
    (b'{"x": {"dtype": "complex-ish", "data": [1]}}', "unknown dtype 'complex-ish'"),
    (b'{"x": {"dtype": "str", "data": [1]}}', "unknown dtype 'str'"),
    (b'{"x": [[1, 2], [3]]}', "cannot make a float32 tensor"),
    (b'{"x": {"dtype": "uint8", "data": [300]}}', "cannot make a uint8 tensor"),
    (b'{"x": {"data": [1, 2, 3], "shape": [2, 2]}}', "of shape [2, 2]"),
    (b'{"x": ["a"]}', "cannot make a float32 tensor"),
])
def test_json_errors(body, message):
    with pytest.raises(PayloadError, match=re.escape(message)) as e:
        decode(body, JSON, X)
    assert e.value.status == 400


def test_numpy_bodies():
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert np.array_equal(decode(npy(a), NPY, X)["x"], a)
    got = decode(npz(x=a, z=a.astype(np.int64)), NPZ, XZ)
    assert list(got) == ["x", "z"] and got["z"].dtype == np.int64
    with pytest.raises(PayloadError, match="model has inputs x, z: send application/x-npz"):
        decode(npy(a), NPY, XZ)
    with pytest.raises(PayloadError, match="not a valid .npy"):
        decode(b"garbage", NPY, X)
    with pytest.raises(PayloadError, match="not a valid np.savez archive"):
        decode(npy(a), NPZ, X)
    with pytest.raises(PayloadError, match="not a valid np.savez archive"):
        decode(b"PK\x03\x04 broken", NPZ, X)
    # Pickled object arrays would run code on load: refused.
    with pytest.raises(PayloadError, match="not a valid .npy"):
        decode(npy(np.array([{"a": 1}], dtype=object)), NPY, X)


def test_unsupported_content_type():
    with pytest.raises(PayloadError, match="unsupported Content-Type 'text/plain'") as e:
        decode(b"1", "text/plain", X)
    assert e.value.status == 415
    with pytest.raises(PayloadError, match="unsupported Content-Type ''"):
        decode(b"1", None, X)


def test_response_type_and_encode():
    outs = {"y": np.ones((2, 3), np.float32), "p": np.zeros(2, np.int64)}
    assert response_type(None, NPZ, X) == NPZ
    assert response_type("text/html, application/x-npy;q=0.9", JSON, X) == NPY
    assert response_type("*/*", "text/plain", X) == JSON
    with pytest.raises(PayloadError, match="model has outputs x, z: accept") as e:
        response_type(NPY, JSON, XZ)
    assert e.value.status == 406
    body, media = encode(outs, JSON)
    doc = json.loads(body)
    assert media == JSON and list(doc) == ["y", "p"]
    assert doc["y"] == {"dtype": "float32", "shape": [2, 3], "data": [[1.0] * 3] * 2}
    assert doc["p"]["dtype"] == "int64"
    body, media = encode(outs, NPZ)
    with np.load(io.BytesIO(body)) as z:
        assert z.files == ["y", "p"] and np.array_equal(z["y"], outs["y"])
    body, media = encode({"y": outs["y"]}, NPY)
    assert media == NPY and np.array_equal(np.load(io.BytesIO(body)), outs["y"])

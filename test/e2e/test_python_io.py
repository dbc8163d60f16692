"""Session I/O without copies: inputs read in place (bind_input, and run()
for large inputs), DLPack producers as inputs, outputs into caller arrays,
large outputs written by the kernels where run() returns or puts them."""
import numpy as np
import pytest
from onnx import TensorProto, helper

import kiln

SHAPE = (256, 128)  # 128 KiB: run() binds it rather than copying


@pytest.fixture(scope="module")
def relu_plus(tmp_path_factory):
    g = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Add", ["r", "b"], ["y"])], "relu_plus",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, SHAPE),
         helper.make_tensor_value_info("b", TensorProto.FLOAT, SHAPE[1:])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, SHAPE)])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    return kiln.compile(m, tmp_path_factory.mktemp("io") / "relu_plus.kiln")


def aligned(shape, offset=0):
    """A float32 array whose data starts `offset` bytes past a 64-byte boundary."""
    n = int(np.prod(shape))
    raw = np.empty(n + 32, np.float32)
    start = (-raw.ctypes.data % 64 + offset) // 4
    return raw[start:start + n].reshape(shape)


class Producer:
    """A DLPack tensor that is not a numpy array (as torch's are)."""

    def __init__(self, arr):
        self.arr = arr

    def __dlpack__(self, **kw):
        return self.arr.__dlpack__(**kw)

    def __dlpack_device__(self):
        return self.arr.__dlpack_device__()


def want(x, b):
    return np.maximum(x, 0) + b


def test_large_input_is_read_in_place(relu_plus):
    rng = np.random.default_rng(0)
    x, b = aligned(SHAPE), rng.standard_normal(SHAPE[1:]).astype(np.float32)
    x[...] = rng.standard_normal(SHAPE)
    with kiln.Session(relu_plus, threads=1) as s:
        (y,) = s.run({"x": Producer(x), "b": b})
        np.testing.assert_allclose(y, want(x, b), rtol=1e-6)
        assert np.shares_memory(s._bound["x"], x)  # bound, not copied
        # The next run reads x as it is now: no copy was taken.
        x *= -1
        (y2,) = s.run()
        np.testing.assert_allclose(y2, want(x, b), rtol=1e-6)
        # set_input copies: later writes to the array do not reach the session.
        s.set_input("x", x)
        assert "x" not in s._bound
        x += 5
        (y3,) = s.run()
        np.testing.assert_allclose(y3, y2, rtol=1e-6)


def test_unaligned_or_strided_inputs_are_copied(relu_plus):
    rng = np.random.default_rng(1)
    b = rng.standard_normal(SHAPE[1:]).astype(np.float32)
    x = aligned(SHAPE, offset=16)
    x[...] = rng.standard_normal(SHAPE)
    wide = np.zeros((SHAPE[0], 2 * SHAPE[1]), np.float32)
    wide[:, ::2] = x
    with kiln.Session(relu_plus, threads=1) as s:
        for given in (x, wide[:, ::2]):
            (y,) = s.run({"x": given, "b": b})
            np.testing.assert_allclose(y, want(x, b), rtol=1e-6)
            assert "x" not in s._bound


def test_outputs_into_caller_arrays(relu_plus):
    rng = np.random.default_rng(2)
    x, b = rng.standard_normal(SHAPE).astype(np.float32), rng.standard_normal(SHAPE[1:]).astype(np.float32)
    out = np.full(SHAPE, np.nan, np.float32)
    with kiln.Session(relu_plus, threads=1) as s:
        (y,) = s.run({"x": x, "b": b}, out=[out])
        assert y is out
        np.testing.assert_allclose(out, want(x, b), rtol=1e-6)
        # A DLPack tensor as the destination: written through its memory.
        dest = Producer(np.zeros(SHAPE, np.float32))
        (y,) = s.run({"x": x, "b": b}, out=[dest])
        assert y is dest
        np.testing.assert_allclose(dest.arr, want(x, b), rtol=1e-6)
        with pytest.raises(ValueError, match=r"out\[0\] for output 'y': expected a writable C-contiguous "
                                             r"float32\[256, 128\], got float32\[256, 64\]"):
            s.run({"x": x, "b": b}, out=[np.zeros((256, 64), np.float32)])
        frozen = np.zeros(SHAPE, np.float32)
        frozen.flags.writeable = False
        with pytest.raises(ValueError, match="got read-only float32"):
            s.run(out=[frozen])
        with pytest.raises(ValueError, match="2 arrays for 1 outputs"):
            s.run(out=[out, out])
        (fresh,) = s.run()
    # Results are DLPack producers themselves: a consumer views them without a copy.
    assert np.shares_memory(np.from_dlpack(fresh), fresh)


def test_large_outputs_are_written_in_place(relu_plus, monkeypatch):
    rng = np.random.default_rng(3)
    x, b = rng.standard_normal(SHAPE).astype(np.float32), rng.standard_normal(SHAPE[1:]).astype(np.float32)
    with kiln.Session(relu_plus, threads=1) as s:
        dest = aligned(SHAPE)
        with monkeypatch.context() as m:
            # No copy out of the session: its read is never called.
            def no_copy(*args):
                raise AssertionError("output copied")
            m.setattr(s._lib, "kiln_session_output_read", no_copy)
            (y,) = s.run({"x": x, "b": b}, out=[dest])
            assert y is dest
            np.testing.assert_allclose(dest, want(x, b), rtol=1e-6)
            (fresh,) = s.run({"x": -x, "b": b})
            assert fresh.ctypes.data % 64 == 0 and fresh.flags.writeable
            np.testing.assert_allclose(fresh, want(-x, b), rtol=1e-6)
        # The arrays are unbound when run() returns: later runs leave them alone.
        kept = dest.copy()
        s.run({"x": 2 * x, "b": b})
        np.testing.assert_array_equal(dest, kept)
        np.testing.assert_allclose(fresh, want(-x, b), rtol=1e-6)
        # An array the cpu cannot write in place gets a copy, as before.
        odd = aligned(SHAPE, offset=16)
        (y,) = s.run({"x": x, "b": b}, out=[odd])
        assert y is odd
        np.testing.assert_allclose(odd, want(x, b), rtol=1e-6)

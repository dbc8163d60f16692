"""Casts to and from the 8- and 4-bit floats, bit for bit against ONNX's
reference semantics (onnx.reference's cast_to, i.e. ml_dtypes), over every
float16 value and a wide sample of float32 bit patterns: rounding, ties,
subnormals, overflow with and without saturate, infinities, NaN and -0."""
import ml_dtypes
import numpy as np
import pytest
from onnx import TensorProto, helper
from onnx.reference.ops.op_cast import cast_to

import kiln

SMALL_FLOATS = {
    TensorProto.FLOAT8E4M3FN: ml_dtypes.float8_e4m3fn,
    TensorProto.FLOAT8E4M3FNUZ: ml_dtypes.float8_e4m3fnuz,
    TensorProto.FLOAT8E5M2: ml_dtypes.float8_e5m2,
    TensorProto.FLOAT8E5M2FNUZ: ml_dtypes.float8_e5m2fnuz,
    TensorProto.FLOAT4E2M1: ml_dtypes.float4_e2m1fn,
}


def _cast_model(src, dst, n, saturate):
    attrs = {"to": dst}
    if saturate is not None:
        attrs["saturate"] = saturate
    node = helper.make_node("Cast", ["x"], ["y"], **attrs)
    graph = helper.make_graph([node], "cast",
                              [helper.make_tensor_value_info("x", src, [n])],
                              [helper.make_tensor_value_info("y", dst, [n])])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 23)])
    m.ir_version = 10
    return m


def _run(tmp_path, model, x):
    art = kiln.compile(model, tmp_path / "m.kiln")
    return kiln.Session(art, threads=2).run({"x": x})[0]


def _same_bits(got, want):
    g, w = got.astype(np.float32), want.astype(np.float32)
    ok = (got.view(np.uint8) == want.view(np.uint8)) | (np.isnan(g) & np.isnan(w))
    bad = np.flatnonzero(~ok)
    assert not bad.size, (f"{bad.size} of {ok.size} differ, first at {bad[0]}: "
                          f"got {got[bad[0]]} ({got.view(np.uint8)[bad[0]]:#x}), want "
                          f"{want[bad[0]]} ({want.view(np.uint8)[bad[0]]:#x})")


def _f32_sample():
    rng = np.random.default_rng(0)
    bits = rng.integers(0, 2**32, 200000, dtype=np.uint64).astype(np.uint32)
    x = bits.view(np.float32)
    # Values near each format's range: ties, overflow edges, subnormals.
    near = np.concatenate([np.arange(-1000, 1000, 0.125), np.arange(-70000, 70000, 1.0),
                           np.ldexp(np.arange(-64, 64, 0.25), -12)]).astype(np.float32)
    special = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 448, 449, 464, 465, 480,
                        57344, 61439, 61440, 1e-9, -1e-9, 6, 7, 5, 0.25, 0.75],
                       np.float32)
    return np.concatenate([x, near, special])


@pytest.mark.parametrize("saturate", [1, 0])
@pytest.mark.parametrize("dst", list(SMALL_FLOATS), ids=lambda t: TensorProto.DataType.Name(t))
@pytest.mark.parametrize("src", [TensorProto.FLOAT, TensorProto.FLOAT16], ids=["f32", "f16"])
def test_truncate(tmp_path, src, dst, saturate):
    if dst == TensorProto.FLOAT4E2M1:
        if not saturate:
            pytest.skip("float4e2m1 always saturates")
        saturate = None
    if src == TensorProto.FLOAT16:
        x = np.arange(2**16, dtype=np.uint32).astype(np.uint16).view(np.float16)
    else:
        x = _f32_sample()
    got = _run(tmp_path, _cast_model(src, dst, x.size, saturate), x)
    with np.errstate(all="ignore"):
        want = cast_to(x, dst, saturate is None or bool(saturate))
    assert got.dtype == want.dtype
    _same_bits(got, want)


@pytest.mark.parametrize("src", list(SMALL_FLOATS) + [TensorProto.FLOAT8E8M0],
                         ids=lambda t: TensorProto.DataType.Name(t))
@pytest.mark.parametrize("dst", [TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.DOUBLE],
                         ids=["f32", "f16", "f64"])
def test_extend_every_code(tmp_path, src, dst):
    np_src = ml_dtypes.float8_e8m0fnu if src == TensorProto.FLOAT8E8M0 else SMALL_FLOATS[src]
    codes = 16 if src == TensorProto.FLOAT4E2M1 else 256
    x = np.arange(codes, dtype=np.uint8).view(np_src)
    got = _run(tmp_path, _cast_model(src, dst, codes, None), x)
    with np.errstate(all="ignore"):
        want = cast_to(x, dst, True)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("saturate", [1, 0])
@pytest.mark.parametrize("round_mode", ["up", "down", "nearest"])
@pytest.mark.parametrize("src", [TensorProto.FLOAT, TensorProto.FLOAT16], ids=["f32", "f16"])
def test_truncate_e8m0(tmp_path, src, round_mode, saturate):
    if src == TensorProto.FLOAT16:
        x = np.arange(2**16, dtype=np.uint32).astype(np.uint16).view(np.float16)
    else:
        x = np.concatenate([_f32_sample(), np.array([3e38, -3e38, 1.7e38], np.float32)])
    model = _cast_model(src, TensorProto.FLOAT8E8M0, x.size, saturate)
    model.graph.node[0].attribute.append(helper.make_attribute("round_mode", round_mode))
    model.opset_import[0].version = 24
    got = _run(tmp_path, model, x)
    with np.errstate(all="ignore"):
        want = cast_to(x, TensorProto.FLOAT8E8M0, bool(saturate), round_mode)
    _same_bits(got, want)


def test_int4_inputs_must_be_canonical(tmp_path):
    # One int4 per byte in the low bits: -1 is 0x0f. 0xff is refused rather
    # than read as whatever the kernel's load makes of it.
    import ctypes
    model = _cast_model(TensorProto.INT4, TensorProto.FLOAT, 2, None)
    art = kiln.compile(model, tmp_path / "m.kiln")
    s = kiln.Session(art, threads=1)
    dims = (ctypes.c_int64 * 1)(2)
    for data, ok in [(b"\x0f\x07", True), (b"\xff\x07", False)]:
        st = s._lib.kiln_session_set_input(s._handle, b"x", TensorProto.INT4, 1, dims,
                                           data, len(data))
        assert (st == 0) == ok, s._lib.kiln_last_error()
        if ok:
            s._lib.kiln_session_run(s._handle)
    assert b"bits set above its 4" in s._lib.kiln_last_error()

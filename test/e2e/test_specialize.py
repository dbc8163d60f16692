"""Graph inputs that decide shapes (Reduce* axes, Slice starts/ends, Reshape's
shape, a Loop's trip count), given at run time: kiln-compile writes an
artifact holding the model, and the runtime compiles it for the values of
each run, once per distinct value. Results are checked against onnxruntime."""
import os

import numpy as np
import onnx
import pytest
from onnx import helper

import kiln
from conftest import assert_outputs_close, ort_run, run_tool

T = onnx.TensorProto
vi = helper.make_tensor_value_info


def _model(nodes, inputs, outputs, opset=18):
    m = helper.make_model(helper.make_graph(nodes, "g", inputs, outputs),
                          opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m


def _reduce_sum():
    return _model([helper.make_node("ReduceSum", ["x", "axes"], ["y"], keepdims=0, name="sum")],
                  [vi("x", T.FLOAT, [3, 4, 5]), vi("axes", T.INT64, [1])],
                  [vi("y", T.FLOAT, None)])


def _slice():
    return _model([helper.make_node("Slice", ["x", "starts", "ends", "axes", "steps"], ["y"])],
                  [vi("x", T.FLOAT, [6, 7]), vi("starts", T.INT64, [2]), vi("ends", T.INT64, [2]),
                   vi("axes", T.INT64, [2]), vi("steps", T.INT64, [2])],
                  [vi("y", T.FLOAT, None)])


@pytest.fixture
def cache(tmp_path, monkeypatch):
    d = tmp_path / "cache"
    monkeypatch.setenv("KILN_CACHE_DIR", str(d))
    monkeypatch.setenv("KILN_COMPILE", str(kiln._paths.tool("kiln-compile")))
    return d


def _compiled(cache):
    return sorted(p.name for p in cache.glob("*.kiln")) if cache.exists() else []


def test_reduce_axes_at_run_time(tmp_path, cache):
    m = _reduce_sum()
    art = kiln.compile(m, tmp_path / "r.kiln")
    x = np.random.default_rng(0).standard_normal((3, 4, 5)).astype(np.float32)
    with kiln.Session(art) as s:
        assert s.artifact.specializes_on == ["axes"]
        assert s.artifact.outputs == []  # known once compiled for a value
        for axes in ([1], [-1], [1]):
            feeds = {"x": x, "axes": np.array(axes, np.int64)}
            assert_outputs_close(s.run(feeds), ort_run(m, feeds))
        # One compile per distinct value; the repeated [1] reused its artifact.
        assert len(_compiled(cache)) == 2
        # A value that the model rejects is an error naming the node and the
        # value; the session keeps working afterwards.
        with pytest.raises(kiln.RuntimeError, match=r"'axes' i64\[1\]=\[3\].*ReduceSum.*out of range"):
            s.run({"axes": np.array([3], np.int64)})
        feeds = {"x": x, "axes": np.array([0], np.int64)}
        assert_outputs_close(s.run(feeds), ort_run(m, feeds))


def test_slice_needs_several_inputs(tmp_path, cache):
    # Each compile finds one more input it needs (starts, then ends, ...):
    # the runtime keeps compiling until the artifact holds code.
    m = _slice()
    art = kiln.compile(m, tmp_path / "s.kiln")
    x = np.arange(42, dtype=np.float32).reshape(6, 7)
    with kiln.Session(art) as s:
        for starts, ends, steps in (([1, 0], [5, 7], [2, 3]), ([-1, 6], [-7, -100], [-2, -1])):
            feeds = {"x": x, "starts": np.array(starts, np.int64), "ends": np.array(ends, np.int64),
                     "axes": np.array([0, 1], np.int64), "steps": np.array(steps, np.int64)}
            assert_outputs_close(s.run(feeds), ort_run(m, feeds))


def test_loop_trip_count_at_run_time(tmp_path, cache):
    body = helper.make_graph(
        [helper.make_node("Identity", ["c"], ["co"]), helper.make_node("Add", ["a", "x"], ["a2"]),
         helper.make_node("Identity", ["a2"], ["scan"])],
        "body", [vi("i", T.INT64, []), vi("c", T.BOOL, []), vi("a", T.FLOAT, [2])],
        [vi("co", T.BOOL, []), vi("a2", T.FLOAT, [2]), vi("scan", T.FLOAT, [2])])
    m = _model([helper.make_node("Loop", ["m", "", "x"], ["y", "ys"], body=body)],
               [vi("x", T.FLOAT, [2]), vi("m", T.INT64, [])],
               [vi("y", T.FLOAT, [2]), vi("ys", T.FLOAT, None)], opset=17)
    art = kiln.compile(m, tmp_path / "l.kiln")
    x = np.array([1.5, -2.0], np.float32)
    with kiln.Session(art) as s:
        for trips in (3, 5):
            feeds = {"x": x, "m": np.array(trips, np.int64)}
            got = s.run(feeds)
            assert got[1].shape == (trips, 2)
            assert_outputs_close(got, ort_run(m, feeds))


def test_kiln_run_feeds_values(tmp_path, cache):
    art = kiln.compile(_reduce_sum(), tmp_path / "r.kiln")
    x = tmp_path / "x.npy"
    np.save(x, np.ones((3, 4, 5), np.float32))
    r = run_tool("kiln-run", art, f"--input=x=@{x}", "--input=axes=1xi64=2")
    assert r.returncode == 0, r.stderr
    assert "output 'y': f32[3,4]" in r.stdout and "min=5 max=5" in r.stdout, r.stdout
    # Random values for a shape input make no sense: refused, naming it.
    r = run_tool("kiln-run", art)
    assert r.returncode == 1 and "input 'axes' decides what is compiled" in r.stderr, r.stderr


def test_compile_note_and_opt_out(tmp_path):
    p = tmp_path / "r.onnx"
    onnx.save(_reduce_sum(), str(p))
    r = run_tool("kiln-compile", p, "-o", tmp_path / "r.kiln")
    assert r.returncode == 0, r.stderr
    assert "node 'sum' (ReduceSum, opset 18): input 'axes'" in r.stderr, r.stderr
    assert "compiles for each value of 'axes'" in r.stderr, r.stderr
    out = tmp_path / "static.kiln"
    r = run_tool("kiln-compile", p, "--specialize-at-run=false", "-o", out)
    assert r.returncode == 1 and "--input-value=axes=..." in r.stderr, r.stderr
    assert not out.exists()
    # Bound at compile time, the artifact holds code and no 'axes' input.
    out = tmp_path / "bound.kiln"
    r = run_tool("kiln-compile", p, "--input-value=axes=1", "-o", out)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert [t.name for t in kiln.Artifact(out).inputs] == ["x"]


def test_missing_compiler_is_a_clear_error(tmp_path, cache, monkeypatch):
    art = kiln.compile(_reduce_sum(), tmp_path / "r.kiln")
    monkeypatch.setenv("KILN_COMPILE", str(tmp_path / "no-such-compiler"))
    with kiln.Session(art) as s:
        with pytest.raises(kiln.RuntimeError, match="cannot run the compiler.*KILN_COMPILE"):
            s.run({"x": np.zeros((3, 4, 5), np.float32), "axes": np.array([1], np.int64)})
    assert _compiled(cache) == []


def test_cache_is_shared_across_sessions(tmp_path, cache):
    art = kiln.compile(_reduce_sum(), tmp_path / "r.kiln")
    feeds = {"x": np.ones((3, 4, 5), np.float32), "axes": np.array([2], np.int64)}
    with kiln.Session(art) as s:
        s.run(feeds)
    (first,) = _compiled(cache)
    stamp = os.stat(cache / first).st_mtime_ns
    with kiln.Session(art) as s:
        (y,) = s.run(feeds)
    np.testing.assert_array_equal(y, np.full((3, 4), 5, np.float32))
    assert _compiled(cache) == [first] and os.stat(cache / first).st_mtime_ns == stamp


def _symbolic_mlp():
    rng = np.random.default_rng(1)
    w = helper.make_tensor("w", T.FLOAT, [6, 4], rng.standard_normal(24).astype(np.float32))
    m = _model([helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Relu", ["h"], ["y"])],
               [vi("x", T.FLOAT, ["batch", 6])], [vi("y", T.FLOAT, ["batch", 4])])
    m.graph.initializer.append(w)
    return m


def test_symbolic_dims_compile_per_shape(tmp_path, cache):
    m = _symbolic_mlp()
    p = tmp_path / "mlp.onnx"
    onnx.save(m, str(p))
    r = run_tool("kiln-compile", p, "-o", tmp_path / "mlp.kiln")
    assert r.returncode == 0, r.stderr
    assert "compiles for each shape of 'x'" in r.stderr, r.stderr
    rng = np.random.default_rng(2)
    with kiln.Session(tmp_path / "mlp.kiln") as s:
        assert s.inputs[0].shape == (None, 6) and s.artifact.specializes_on == ["x"]
        for batch in (1, 7, 1):
            feeds = {"x": rng.standard_normal((batch, 6)).astype(np.float32)}
            (y,) = s.run(feeds)
            assert y.shape == (batch, 4)
            assert_outputs_close([y], ort_run(m, feeds))
        with pytest.raises(kiln.RuntimeError, match=r"input 'x': expected f32\[-1,6\], got f32\[2,5\]"):
            s.set_input("x", np.zeros((2, 5), np.float32))
    assert len(_compiled(cache)) == 2
    r = run_tool("kiln-run", tmp_path / "mlp.kiln")
    assert r.returncode == 1 and "input 'x' decides what is compiled" in r.stderr, r.stderr


def test_symbolic_dims_then_shape_input(tmp_path, cache):
    # The shape is pinned first; the compile for it then needs 'shape'.
    m = _model([helper.make_node("Reshape", ["x", "shape"], ["y"])],
               [vi("x", T.FLOAT, ["n", 6]), vi("shape", T.INT64, [3])], [vi("y", T.FLOAT, None)])
    art = kiln.compile(m, tmp_path / "r.kiln")
    with kiln.Session(art) as s:
        for n, shape in ((2, [3, 2, -1]), (4, [0, 3, 2])):
            feeds = {"x": np.arange(n * 6, dtype=np.float32).reshape(n, 6),
                     "shape": np.array(shape, np.int64)}
            assert_outputs_close(s.run(feeds), ort_run(m, feeds))

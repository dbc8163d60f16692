"""The three end-to-end models (models.py) against onnxruntime, through the
Python runtime binding and through the kiln-run CLI."""
import numpy as np
import pytest

import kiln
import models
from conftest import assert_outputs_close, ort_run, run_tool

INPUT_SHAPES = {"mlp": (8, 64), "convnet": (2, 3, 16, 16), "transformer": (1, 16, 32)}


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    """{name: (onnx model, .kiln path)} compiled once per module."""
    d = tmp_path_factory.mktemp("models")
    out = {}
    for name in models.MODELS:
        m = models.build(name)
        out[name] = (m, kiln.compile(m, d / f"{name}.kiln"))
    return out


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("name", list(models.MODELS))
def test_model_python(artifacts, name, seed, threads):
    model, path = artifacts[name]
    x = np.random.default_rng(seed).standard_normal(INPUT_SHAPES[name]).astype(np.float32)
    with kiln.Session(path, threads=threads) as s:
        assert [i.name for i in s.inputs] == ["x"]
        assert s.inputs[0].shape == INPUT_SHAPES[name]
        assert s.inputs[0].dtype == np.float32
        got = s.run({"x": x})
        # Inputs persist across runs and a second run gives the same result.
        again = s.run()
    want = ort_run(model, {"x": x})
    assert_outputs_close(got, want)
    np.testing.assert_array_equal(got[0], again[0])


def test_session_reuse_new_inputs(artifacts):
    """Re-binding inputs on one session gives the new results, not stale ones."""
    model, path = artifacts["mlp"]
    rng = np.random.default_rng(7)
    with kiln.Session(path, threads=2) as s:
        for _ in range(3):
            x = rng.standard_normal((8, 64)).astype(np.float32)
            assert_outputs_close(s.run({"x": x}), ort_run(model, {"x": x}))


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("name", list(models.MODELS))
def test_model_cli(artifacts, tmp_path, name, threads):
    model, path = artifacts[name]
    x = np.random.default_rng(100 + threads).standard_normal(INPUT_SHAPES[name]).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "y.npy"
    r = run_tool("kiln-run", path, f"--input=x=@{tmp_path / 'x.npy'}", f"--output=@{out}",
                 f"--threads={threads}", "--repeat=3")
    assert r.returncode == 0, r.stderr
    assert "latency over 3 runs" in r.stdout
    assert_outputs_close([np.load(out)], ort_run(model, {"x": x}))


def test_cli_matches_python(artifacts, tmp_path):
    """kiln-run and the ctypes binding run the same artifact bit-identically."""
    _, path = artifacts["transformer"]
    x = np.random.default_rng(5).standard_normal((1, 16, 32)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    r = run_tool("kiln-run", path, f"--input=@{tmp_path / 'x.npy'}",
                 f"--output=@{tmp_path / 'y.npy'}", "--threads=1")
    assert r.returncode == 0, r.stderr
    with kiln.Session(path, threads=1) as s:
        (y,) = s.run({"x": x})
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), y)


def test_compile_from_path_default_output(tmp_path):
    import onnx
    p = tmp_path / "mlp.onnx"
    onnx.save(models.build("mlp"), str(p))
    out = kiln.compile(p)
    assert out == str(tmp_path / "mlp.kiln")
    with kiln.Session(out) as s:
        assert s.device.startswith("cpu")
        assert s.outputs[0].shape == (8, 10)


@pytest.mark.parametrize("name", list(models.LARGE_MODELS))
def test_large_model(tmp_path, name):
    """The benchmark models: large enough for many workgroups per dispatch."""
    model = models.build(name)
    path = kiln.compile(model, tmp_path / f"{name}.kiln")
    x = {"x": np.random.default_rng(3).standard_normal(
        [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]).astype(np.float32)}
    want = ort_run(model, x)
    for threads in (1, 2):
        with kiln.Session(path, threads=threads) as s:
            assert_outputs_close(s.run(x), want)


def test_external_data(tmp_path):
    """Initializers stored in a file beside the model become constants; a
    missing data file is a clear error naming it."""
    import onnx

    model = models.build("mlp")
    path = tmp_path / "ext.onnx"
    onnx.save(model, path, save_as_external_data=True, all_tensors_to_one_file=True,
              location="ext.data", size_threshold=0)
    x = np.random.default_rng(3).standard_normal(INPUT_SHAPES["mlp"]).astype(np.float32)
    with kiln.Session(kiln.compile(str(path), tmp_path / "ext.kiln")) as s:
        got = s.run({"x": x})
    # onnx.save moved the weights out of `model`; rebuild it for the reference.
    assert_outputs_close(got, ort_run(models.build("mlp"), {"x": x}))

    (tmp_path / "ext.data").unlink()
    with pytest.raises(kiln.CompileError, match="cannot read external data file '.*ext.data'"):
        kiln.compile(str(path), tmp_path / "ext2.kiln")

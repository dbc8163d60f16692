"""levelzero's SPIR-V kernels, checked without an Intel GPU.

- test_*_emulated: the model compiled with --target=levelzero-cpu (the levelzero
  pipeline up to its spirv.module, then MLIR's SPIR-V -> LLVM conversion and a
  cpu-ABI wrapper per kernel) runs on the cpu driver and matches onnxruntime.
- test_*_spirv_val: the SPIR-V that --target=levelzero writes passes
  `spirv-val --target-env opencl1.2`.

The cases are those of test_models.py (models.MODELS) and test_ops.py (CASES).
Cases known to fail are listed in XFAIL with the reason (strict: a fix shows up
as XPASS and the entry must go).
"""
import shutil
import subprocess

import numpy as np
import pytest

import kiln
import models
import test_ops
from conftest import assert_outputs_close, ort_run, run_tool
from test_models import INPUT_SHAPES

SPIRV_VAL = shutil.which("spirv-val")


def _targets():
    r = run_tool("kiln-compile", "--list-targets")
    return {line.split(":")[0] for line in r.stdout.splitlines()}


@pytest.fixture(scope="module", autouse=True)
def _need_levelzero():
    targets = _targets()
    missing = {"levelzero", "levelzero-cpu"} - targets
    if missing:
        pytest.skip(f"kiln-compile was built without {', '.join(sorted(missing))} "
                    "(KILN_BACKENDS lacks levelzero)")


# id -> reason; see the module docstring.
_SUB_BYTE = ("levelzero refuses sub-byte element types (i4, i2, f4): SPIR-V's OpenCL "
             "model has none")
XFAIL = {"dequantize-int4-blocked": _SUB_BYTE, "dequantize-uint4-per-axis": _SUB_BYTE}


def _marks(id):
    if id in XFAIL:
        return [pytest.mark.xfail(reason=XFAIL[id], strict=True)]
    return []


OP_CASES = [pytest.param(*p.values, id=p.id, marks=list(p.marks) + _marks(p.id))
            for p in test_ops.CASES]
MODEL_CASES = [pytest.param(name, id=name, marks=_marks(name)) for name in models.MODELS]


def _spirv_val(model, tmp_path):
    if SPIRV_VAL is None:
        pytest.skip("spirv-val not found on PATH (install spirv-tools)")
    path = tmp_path / "model.onnx"
    import onnx
    onnx.save(model, str(path))
    out = tmp_path / "spirv"
    r = run_tool("kiln-compile", path, "--target=levelzero", "--emit=spirv", "-o", out)
    assert r.returncode == 0, r.stderr
    files = sorted(out.glob("*.spv"))
    if not files:
        # Everything folded at compile time: no kernel, no SPIR-V.
        assert "no kernels" in r.stderr or r.stdout.strip() == "", r.stdout
        return
    for f in files:
        v = subprocess.run([SPIRV_VAL, "--target-env", "opencl1.2", str(f)],
                           capture_output=True, text=True)
        assert v.returncode == 0, f"spirv-val {f.name}:\n{v.stdout}{v.stderr}"


@pytest.mark.parametrize("name", MODEL_CASES)
def test_model_emulated(tmp_path, name):
    model = models.build(name)
    path = kiln.compile(model, tmp_path / f"{name}.kiln", target="levelzero-cpu")
    x = np.random.default_rng(11).standard_normal(INPUT_SHAPES[name]).astype(np.float32)
    want = ort_run(model, {"x": x})
    for threads in (1, 2):
        with kiln.Session(path, threads=threads) as s:
            assert s.device.startswith("cpu")
            assert_outputs_close(s.run({"x": x}), want)


@pytest.mark.parametrize("name", MODEL_CASES)
def test_model_spirv_val(tmp_path, name):
    _spirv_val(models.build(name), tmp_path)


@pytest.mark.parametrize("spec,fold", OP_CASES)
def test_op_emulated(tmp_path, spec, fold):
    model = spec.model(fold)
    feeds = spec.feeds(fold)
    want = spec.expect(spec.arrays) if spec.expect else ort_run(model, feeds)
    artifact = kiln.compile(model, tmp_path / "op.kiln", target="levelzero-cpu")
    with kiln.Session(artifact, threads=2) as s:
        got = s.run(feeds)
    assert_outputs_close(got, want, atol=spec.atol)


@pytest.mark.parametrize("spec,fold", OP_CASES)
def test_op_spirv_val(tmp_path, spec, fold):
    _spirv_val(spec.model(fold), tmp_path)


def test_cli_runs_spirv_on_cpu(tmp_path):
    """kiln-compile --target=levelzero-cpu && kiln-run: the cpu driver runs it."""
    import onnx
    path = tmp_path / "mlp.onnx"
    model = models.build("mlp")
    onnx.save(model, str(path))
    r = run_tool("kiln-compile", path, "--target=levelzero-cpu", "-o", tmp_path / "mlp.kiln")
    assert r.returncode == 0, r.stderr
    x = np.random.default_rng(4).standard_normal(INPUT_SHAPES["mlp"]).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    r = run_tool("kiln-run", tmp_path / "mlp.kiln", f"--input=x=@{tmp_path / 'x.npy'}",
                 f"--output=@{tmp_path / 'y.npy'}")
    assert r.returncode == 0, r.stderr
    assert_outputs_close([np.load(tmp_path / "y.npy")], ort_run(model, {"x": x}))

"""levelzero's SPIR-V kernels, checked without an Intel GPU.

- test_*_emulated: the model compiled with --target=levelzero-cpu (the levelzero
  pipeline up to its spirv.module, then MLIR's SPIR-V -> LLVM conversion and a
  cpu-ABI wrapper per kernel) runs on the cpu driver and matches onnxruntime.
- test_*_spirv_val: the SPIR-V that --target=levelzero writes passes
  `spirv-val --target-env opencl1.2`.

- test_barrier_*: hand-written kernels that share workgroup memory across a
  barrier (spirv_barrier_kernels.mlir) run exactly, several workgroups at once;
  test_missing_barrier_shows: one that lacks its barrier gives a wrong result.

The cases are those of test_models.py (models.MODELS) and test_ops.py (CASES).
Cases known to fail are listed in XFAIL with the reason (strict: a fix shows up
as XPASS and the entry must go).
"""
import ctypes
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

import kiln
import models
import test_ops
from conftest import assert_outputs_close, ort_run, run_tool
from test_models import INPUT_SHAPES

SPIRV_VAL = shutil.which("spirv-val")
LLVM_BIN = Path("/usr/lib/llvm-22/bin")
BARRIER_KERNELS = Path(__file__).resolve().parent / "spirv_barrier_kernels.mlir"
# LevelZeroTarget::buildCodegenPipeline from the gpu.module on (the kernels
# are written distributed already), then levelzero-cpu's lowering.
LEVELZERO_CPU_CODEGEN = (
    "builtin.module(spirv-attach-target{ver=v1.2 client_api=OpenCL "
    "caps=Addresses,Kernel,Int64,Int16,Int8,Float16,Float64,Int64Atomics},"
    "gpu.module(fold-memref-alias-ops, lower-affine, arith-expand, canonicalize, "
    "math-expand-ops{ops=rsqrt}, "
    "kiln-spirv-prepare, convert-math-to-spirv),"
    "convert-gpu-to-spirv{use-64bit-index=true},"
    "gpu.module(spirv.module(spirv-lower-abi-attrs, spirv-update-vce)),"
    "kiln-spirv-to-host)")


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


@pytest.fixture(scope="module")
def barrier_kernels(tmp_path_factory):
    """spirv_barrier_kernels.mlir through levelzero-cpu, linked and loaded the
    way the cpu driver links and loads kernels (O3, ld.lld -shared)."""
    tools = [LLVM_BIN / t for t in ("mlir-translate", "opt", "llc", "ld.lld")]
    missing = [str(t) for t in tools if not t.exists()]
    if missing:
        pytest.skip(f"LLVM tools not found: {', '.join(missing)}")
    translate, opt, llc, lld = tools
    d = tmp_path_factory.mktemp("barrier")
    r = run_tool("kiln-opt", BARRIER_KERNELS, f"--pass-pipeline={LEVELZERO_CPU_CODEGEN}",
                 "-o", d / "host.mlir")
    assert r.returncode == 0, r.stderr
    for cmd in ([translate, "--mlir-to-llvmir", d / "host.mlir", "-o", d / "k.ll"],
                [opt, "-O3", d / "k.ll", "-o", d / "k.bc"],
                [llc, "-O3", "-filetype=obj", "-relocation-model=pic", d / "k.bc",
                 "-o", d / "k.o"],
                [lld, "-shared", d / "k.o", "-o", d / "k.so"]):
        r = subprocess.run(list(map(str, cmd)), capture_output=True, text=True)
        assert r.returncode == 0, f"{cmd[0]}: {r.stderr}"
    return ctypes.CDLL(str(d / "k.so"))


def _launch(lib, name, buffers, workgroups, threads=4):
    """Runs every workgroup of kernel `name` the way the cpu driver does: one
    call of its cpu-ABI wrapper each, from a pool of threads (ctypes releases
    the GIL, so the calls overlap)."""
    fn = getattr(lib, name)
    fn.argtypes = [ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64]
    fn.restype = None
    bindings = (ctypes.c_void_p * len(buffers))(*[b.ctypes.data for b in buffers])
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda g: fn(bindings, g, 0, 0), range(workgroups)))


# Small integers: every sum is exact in f32, whatever the order.
_X = np.random.default_rng(7).integers(-50, 50, 512).astype(np.float32)


@pytest.mark.parametrize("attempt", range(3))
def test_barrier_reverse(barrier_kernels, attempt):
    y = np.full(512, np.nan, np.float32)
    _launch(barrier_kernels, "reverse", [_X, y], workgroups=8)
    np.testing.assert_array_equal(y, _X.reshape(8, 64)[:, ::-1].reshape(-1))


@pytest.mark.parametrize("attempt", range(3))
def test_barrier_tree_sum(barrier_kernels, attempt):
    sums = np.full(8, np.nan, np.float32)
    _launch(barrier_kernels, "tree_sum", [_X, sums], workgroups=8)
    np.testing.assert_array_equal(sums, _X.reshape(8, 64).sum(axis=1))


def test_missing_barrier_shows(barrier_kernels):
    """broadcast_racy has no barrier, so its invocations run one after another
    in the wrapper's scrambled order: those before invocation 0 read workgroup
    memory it has not written yet. In index order every reader would come
    after the writer and the missing barrier would pass unseen."""
    x = np.arange(1, 513, dtype=np.float32)  # every workgroup's value distinct
    y = np.full(512, np.nan, np.float32)
    _launch(barrier_kernels, "broadcast_racy", [x, y], workgroups=8, threads=1)
    want = np.repeat(x[::64], 64)
    wrong = (y != want).reshape(8, 64).sum(axis=1)
    assert (wrong >= 16).all(), wrong

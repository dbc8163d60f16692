"""Shared helpers for Kiln's end-to-end tests.

Run from the repository root:  .venv/bin/python -m pytest test/e2e -q
The build tree is $KILN_BUILD_DIR (default: build/).
"""
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
for p in (str(REPO / "python"), str(HERE)):
    if p not in sys.path:
        sys.path.insert(0, p)

import kiln  # noqa: E402

RTOL, ATOL = 1e-4, 1e-5


def tool(name):
    return kiln._paths.tool(name)


@pytest.fixture(scope="session", autouse=True)
def _require_build():
    missing = [t for t in ("kiln-compile", "kiln-run") if not tool(t).exists()]
    lib = kiln.build_dir() / "lib" / "libkiln_runtime.so"
    if not lib.exists():
        missing.append(str(lib))
    if missing:
        pytest.exit(f"Kiln build not found ({', '.join(map(str, missing))}); "
                    "build it or set KILN_BUILD_DIR", returncode=4)


def run_tool(name, *args, timeout=120):
    """Runs build/bin/<name>; returns the CompletedProcess (text)."""
    return subprocess.run([str(tool(name)), *map(str, args)], capture_output=True,
                          text=True, errors="replace", timeout=timeout)


def ort_run(model, feeds, threads=1):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    # Compare against the reference semantics, not ORT's fused/approximated kernels.
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(model.SerializeToString(), so,
                                providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def assert_outputs_close(got, want, rtol=RTOL, atol=ATOL):
    assert len(got) == len(want), f"{len(got)} outputs, expected {len(want)}"
    for i, (g, w) in enumerate(zip(got, want)):
        w = np.asarray(w)
        assert g.shape == w.shape, f"output {i}: shape {g.shape}, expected {w.shape}"
        assert g.dtype == w.dtype, f"output {i}: dtype {g.dtype}, expected {w.dtype}"
        if w.dtype.kind in "fc":
            np.testing.assert_allclose(g, w, rtol=rtol, atol=atol, err_msg=f"output {i}")
        else:
            np.testing.assert_array_equal(g, w, err_msg=f"output {i}")


class Compiler:
    """Compiles models into a per-test temporary directory."""

    def __init__(self, tmp_path):
        self.dir = tmp_path
        self.n = 0

    def onnx_file(self, model, name="model"):
        self.n += 1
        path = self.dir / f"{name}{self.n}.onnx"
        onnx.save(model, str(path))
        return path

    def __call__(self, model, **kw):
        self.n += 1
        return kiln.compile(model, self.dir / f"model{self.n}.kiln", **kw)


@pytest.fixture
def compiler(tmp_path):
    return Compiler(tmp_path)


@pytest.fixture
def check(compiler):
    """check(model, feeds, threads=1) compiles `model`, runs it through the
    Python runtime binding and compares every output with onnxruntime."""

    def _check(model, feeds, threads=1, rtol=RTOL, atol=ATOL, input_shapes=None):
        artifact = compiler(model, input_shapes=input_shapes)
        with kiln.Session(artifact, threads=threads) as s:
            got = s.run(feeds)
        want = ort_run(model, feeds)
        assert_outputs_close(got, want, rtol, atol)
        return got

    return _check

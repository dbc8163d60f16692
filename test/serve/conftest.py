"""Models and artifacts for kiln.serve's tests (test/serve).

Run from the repository root:  .venv/bin/python -m pytest -s test/serve
The build tree is $KILN_BUILD_DIR (default: build/).
"""
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

REPO = Path(__file__).resolve().parents[2]
if str(REPO / "python") not in sys.path:
    sys.path.insert(0, str(REPO / "python"))

import kiln  # noqa: E402


def pytest_configure(config):
    # Ray Serve's pydantic models warn on import; nothing for Kiln to act on.
    config.addinivalue_line("filterwarnings", r"ignore::DeprecationWarning:ray\..*")


@pytest.fixture(scope="session", autouse=True)
def _require_build():
    lib = kiln.build_dir() / "lib" / "libkiln_runtime.so"
    compiler = kiln._paths.tool("kiln-compile")
    missing = [str(p) for p in (lib, compiler) if not p.exists()]
    if missing:
        pytest.exit(f"Kiln build not found ({', '.join(missing)}); build it or set "
                    "KILN_BUILD_DIR", returncode=4)


@pytest.fixture(scope="session", autouse=True)
def _cache_dir(tmp_path_factory):
    # Symbolic-batch artifacts compile per row count into $KILN_CACHE_DIR:
    # keep that out of the user's ~/.cache (Ray replicas inherit it).
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KILN_CACHE_DIR", str(tmp_path_factory.mktemp("kiln-cache")))
        yield


def mlp(batch="batch", two_inputs=False):
    """x[batch,16] (+ z) -> Gemm -> Relu -> Gemm -> y[batch,4] (and p = Softmax(y)
    when two_inputs). `batch` is an int or a symbolic name."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(a.astype(np.float32), n) for n, a in (
        ("w1", rng.standard_normal((16, 32)) * 0.3), ("b1", rng.standard_normal(32) * 0.1),
        ("w2", rng.standard_normal((32, 4)) * 0.3), ("b2", rng.standard_normal(4) * 0.1))]
    vi = helper.make_tensor_value_info
    nodes, inputs, outputs = [], [vi("x", TensorProto.FLOAT, [batch, 16])], []
    src = "x"
    if two_inputs:
        inputs.append(vi("z", TensorProto.FLOAT, [batch, 16]))
        nodes.append(helper.make_node("Add", ["x", "z"], ["xz"]))
        src = "xz"
    nodes += [helper.make_node("Gemm", [src, "w1", "b1"], ["h"]),
              helper.make_node("Relu", ["h"], ["r"]),
              helper.make_node("Gemm", ["r", "w2", "b2"], ["y"])]
    outputs.append(vi("y", TensorProto.FLOAT, [batch, 4]))
    if two_inputs:
        nodes.append(helper.make_node("Softmax", ["y"], ["p"], axis=-1))
        outputs.append(vi("p", TensorProto.FLOAT, [batch, 4]))
    graph = helper.make_graph(nodes, "mlp", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)
    onnx.checker.check_model(model)
    return model


def ort_run(model, feeds):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), so,
                                providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


@pytest.fixture(scope="session")
def compiled(tmp_path_factory):
    """compiled(name, model) -> artifact path, compiled once per session."""
    out = tmp_path_factory.mktemp("artifacts")
    cache = {}

    def get(name, model):
        if name not in cache:
            cache[name] = kiln.compile(model, out / f"{name}.kiln")
        return cache[name]
    return get

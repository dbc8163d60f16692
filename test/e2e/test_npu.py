"""The npu target end to end: models compiled with --target=npu run on the
simulated NeuronCore (device npu) and match onnxruntime.

f32 path (--npu-autocast=none) at the suite's f32 tolerance; the default bf16
matmul path at bf16 tolerance (8 mantissa bits, f32 accumulation)."""
import numpy as np
import pytest
from onnx import TensorProto, helper

import kiln
from conftest import assert_outputs_close, ort_run, run_tool
from models import LARGE_MODELS, MODELS, build

BF16_RTOL, BF16_ATOL = 2e-2, 2e-2



def _feeds(model, seed=1):
    rng = np.random.default_rng(seed)
    feeds = {}
    for i in model.graph.input:
        shape = [d.dim_value for d in i.type.tensor_type.shape.dim]
        feeds[i.name] = rng.standard_normal(shape).astype(np.float32)
    return feeds


def _run_npu(model, tmp_path, autocast, name="m"):
    art = kiln.compile(model, tmp_path / f"{name}-{autocast}.kiln", target="npu",
                       extra_args=[f"--npu-autocast={autocast}"])
    feeds = _feeds(model)
    with kiln.Session(art, device="npu") as s:
        return s.run(feeds), feeds


@pytest.mark.parametrize("name", sorted(set(MODELS) | {"mlp_large", "convnet_large"}))
@pytest.mark.parametrize("autocast,rtol,atol", [("none", 1e-4, 1e-5),
                                                ("matmul", BF16_RTOL, BF16_ATOL)])
def test_model_on_npu(tmp_path, name, autocast, rtol, atol):
    model = build(name)
    got, feeds = _run_npu(model, tmp_path, autocast, name)
    assert_outputs_close(got, ort_run(model, feeds), rtol, atol)


def _save(model, tmp_path):
    import onnx
    path = tmp_path / "model.onnx"
    onnx.save(model, str(path))
    return path


def _single(op, shapes, out_shape, attrs=None, inits=()):
    ins = [helper.make_tensor_value_info(f"x{i}", TensorProto.FLOAT, s)
           for i, s in enumerate(shapes)]
    node = helper.make_node(op, [f"x{i}" for i in range(len(shapes))] + list(inits), ["y"],
                            **(attrs or {}))
    graph = helper.make_graph([node], op.lower(), ins,
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m


SINGLE_OPS = {
    "add_bcast": ("Add", [[200, 96], [96]], [200, 96], {}),
    "sub": ("Sub", [[64, 33], [64, 33]], [64, 33], {}),
    "mul_col": ("Mul", [[130, 40], [130, 1]], [130, 40], {}),
    "div": ("Div", [[16, 8, 8], [16, 8, 8]], [16, 8, 8], {}),
    "max": ("Max", [[50, 20], [50, 20]], [50, 20], {}),
    "relu": ("Relu", [[300, 70]], [300, 70], {}),
    "sigmoid": ("Sigmoid", [[40, 50]], [40, 50], {}),
    "tanh": ("Tanh", [[40, 50]], [40, 50], {}),
    "exp": ("Exp", [[40, 50]], [40, 50], {}),
    "neg": ("Neg", [[40, 5000]], [40, 5000], {}),
    "abs": ("Abs", [[7, 9]], [7, 9], {}),
    "transpose": ("Transpose", [[24, 40, 3]], [3, 40, 24], {"perm": [2, 1, 0]}),
    "matmul": ("MatMul", [[200, 300], [300, 600]], [200, 600], {}),
    "batch_matmul": ("MatMul", [[3, 20, 64], [3, 64, 48]], [3, 20, 48], {}),
    "gemm_transb": ("Gemm", [[64, 96], [80, 96]], [64, 80], {"transB": 1}),
    "softmax": ("Softmax", [[130, 77]], [130, 77], {"axis": -1}),
    "reduce_max": ("ReduceMax", [[12, 30, 9]], [12, 1, 9], {"axes": [1], "keepdims": 1}),
    "reduce_mean": ("ReduceMean", [[12, 30, 9]], [12, 30, 1], {"axes": [2], "keepdims": 1}),
    "maxpool": ("MaxPool", [[1, 4, 8, 8]], [1, 4, 4, 4], {"kernel_shape": [2, 2], "strides": [2, 2]}),
    "global_avg_pool": ("GlobalAveragePool", [[2, 6, 5, 5]], [2, 6, 1, 1], {}),
}


@pytest.mark.parametrize("name", sorted(SINGLE_OPS))
def test_single_op_on_npu(tmp_path, name):
    op, shapes, out, attrs = SINGLE_OPS[name]
    model = _single(op, shapes, out, attrs)
    got, feeds = _run_npu(model, tmp_path, "none", name)
    assert_outputs_close(got, ort_run(model, feeds), 1e-4, 1e-5)


def _bf16(x):
    """Rounds f32 to bf16 (nearest even), kept in f32."""
    u = x.astype(np.float32).view(np.uint32)
    u = (u + 0x7FFF + ((u >> 16) & 1)) & 0xFFFF0000
    return u.astype(np.uint32).view(np.float32)


@pytest.mark.parametrize("name", ["matmul", "batch_matmul", "gemm_transb"])
def test_matmul_bf16_on_npu(tmp_path, name):
    op, shapes, out, attrs = SINGLE_OPS[name]
    model = _single(op, shapes, out, attrs)
    got, feeds = _run_npu(model, tmp_path, "matmul", name)
    a, b = feeds["x0"], feeds["x1"]
    if attrs.get("transB"):
        b = b.T
    # Exactly the hardware's arithmetic: bf16 operands, f32 accumulation.
    exact = np.matmul(_bf16(a).astype(np.float64), _bf16(b).astype(np.float64))
    np.testing.assert_allclose(got[0], exact, rtol=1e-4, atol=1e-4)
    # And within bf16 accuracy of onnxruntime's f32 result.
    want = ort_run(model, feeds)[0]
    k = a.shape[-1]
    np.testing.assert_allclose(got[0], want, rtol=BF16_RTOL, atol=4 * 2.0**-8 * np.sqrt(k))
    # bf16 operands really are used: the result is not bit-identical to f32.
    assert not np.allclose(got[0], want, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", ["mlp", "transformer", "convnet"])
def test_cpu_and_npu_agree(tmp_path, name):
    model = build(name)
    art = kiln.compile(model, tmp_path / "both.kiln", target="cpu,npu",
                       extra_args=["--npu-autocast=none"])
    feeds = _feeds(model)
    with kiln.Session(art, device="cpu", threads=1) as s:
        cpu = s.run(feeds)
    with kiln.Session(art, device="npu") as s:
        npu = s.run(feeds)
    assert_outputs_close(npu, cpu, 1e-4, 1e-5)


def test_unsupported_op_is_named(tmp_path):
    # Floor has no npu instruction: compiling must fail and name it and the node.
    model = _single("Floor", [[4, 4]], [4, 4])
    r = run_tool("kiln-compile", _save(model, tmp_path), "--target=npu", "-o", tmp_path / "f.kiln")
    assert r.returncode != 0
    assert "'math.floor' cannot run on the npu" in r.stderr


def test_npu_asm(tmp_path):
    r = run_tool("kiln-compile", _save(build("mlp"), tmp_path), "--target=npu", "--emit=npu-asm")
    assert r.returncode == 0, r.stderr
    assert "kernel @main_dispatch_0" in r.stdout and "matmul psum" in r.stdout


# Kernels that are one plain large matmul take the hand-tuned GEMM schedule
# (the npu backend's gemm/ generator, which kiln-npu-gemm also drives;
# docs/npu.md); --npu-gemm-schedule=false keeps the generic lowering.
@pytest.mark.parametrize("op,shapes,out,attrs", [
    ("MatMul", [[512, 1024], [1024, 512]], [512, 512], {}),
    ("Gemm", [[768, 512], [1024, 768]], [512, 1024], {"transA": 1, "transB": 1}),
])
@pytest.mark.parametrize("autocast", ["matmul", "none"])
def test_gemm_schedule_on_npu(tmp_path, op, shapes, out, attrs, autocast):
    model = _single(op, shapes, out, attrs)
    r = run_tool("kiln-compile", _save(model, tmp_path), "--target=npu", "--emit=npu-asm",
                 f"--npu-autocast={autocast}")
    assert r.returncode == 0, r.stderr
    r2 = run_tool("kiln-compile", _save(model, tmp_path), "--target=npu", "--emit=npu-asm",
                  f"--npu-autocast={autocast}", "--npu-gemm-schedule=false")
    assert r2.returncode == 0, r2.stderr
    got, feeds = _run_npu(model, tmp_path, autocast, "gemm")
    a, b = feeds["x0"], feeds["x1"]
    if attrs.get("transA"):
        a = a.T
    if attrs.get("transB"):
        b = b.T
    if autocast == "matmul":
        a, b = _bf16(a), _bf16(b)
    exact = np.matmul(a.astype(np.float64), b.astype(np.float64))
    np.testing.assert_allclose(got[0], exact, rtol=1e-4, atol=1e-4)
    art = kiln.compile(model, tmp_path / "generic.kiln", target="npu",
                       extra_args=[f"--npu-autocast={autocast}", "--npu-gemm-schedule=false"])
    with kiln.Session(art, device="npu") as s:
        generic = s.run(feeds)
    np.testing.assert_allclose(got[0], generic[0], rtol=1e-4, atol=1e-4)
    assert r.stdout != r2.stdout  # The schedule was used.


def test_gemm_2048_end_to_end_cycles(tmp_path):
    # Issue 5: a 2048^3 f32 MatMul, autocast to bf16, within 1.25x the ideal
    # M*N*K/(128*128) Tensor Engine cycles end to end, DMA included.
    n = 2048
    model = _single("MatMul", [[n, n], [n, n]], [n, n])
    art = kiln.compile(model, tmp_path / "mm.kiln", target="npu")
    stats = tmp_path / "s.json"
    r = run_tool("kiln-run", art, "--device=npu", f"--stats={stats}")
    assert r.returncode == 0, r.stderr
    import json
    total_ns = json.loads(stats.read_text())["total_ns"]
    ratio = total_ns * 2.8 / (n * n * n / (128 * 128))  # trn1: 2.8 GHz.
    assert ratio <= 1.25, ratio


def test_stats_per_dispatch(tmp_path):
    # --stats lists every dispatch of the run, in order, laid end to end.
    import json
    art = kiln.compile(build("mlp"), tmp_path / "mlp.kiln", target="npu")
    stats = tmp_path / "s.json"
    r = run_tool("kiln-run", art, "--device=npu", f"--stats={stats}")
    assert r.returncode == 0, r.stderr
    s = json.loads(stats.read_text())
    spans = s["dispatches"]
    assert [d["kernel"] for d in spans] == [f"main_dispatch_{i}" for i in range(len(spans))]
    assert len(spans) > 1
    assert spans[0]["start_ns"] == 0
    for prev, cur in zip(spans, spans[1:]):
        assert abs(prev["start_ns"] + prev["total_ns"] - cur["start_ns"]) < 1e-3 * cur["start_ns"]
    assert abs(sum(d["total_ns"] for d in spans) - s["total_ns"]) < 1e-6 * s["total_ns"]
    for e in ("tensor", "vector", "scalar", "gpsimd", "dma"):
        assert sum(d["engines"][e]["instructions"] for d in spans) == s["engines"][e]["instructions"]

"""Kernels compiled for CPU feature levels below the host's still load and
give onnxruntime's answers.

A host with AVX512-BF16 and F16C turns bf16/f16 conversions into single
instructions; lower levels make LLVM call compiler-rt builtins
(`__truncsfbf2`, `__extendhfsf2`, ...) that the kernels' shared object must
carry itself, or dlopen fails. Compiling for each level here means a
feature-rich CI machine cannot hide such a dependency. The contraction
micro-kernel's shape also follows the level (4, 8 or 16 lanes), so its
ragged edges are checked at each width.
"""
import platform

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import kiln
from conftest import assert_outputs_close, ort_run

pytestmark = pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"),
                                reason="x86-64 feature levels")

LEVELS = ["x86-64", "x86-64-v2", "x86-64-v3", "x86-64-v4"]


def _model():
    rng = np.random.default_rng(7)
    w = rng.standard_normal((37, 19)).astype(np.float32)
    f = TensorProto.FLOAT
    nodes = [
        helper.make_node("Cast", ["x"], ["xb"], to=TensorProto.BFLOAT16),
        helper.make_node("Cast", ["xb"], ["bf16"], to=f),
        helper.make_node("Cast", ["x"], ["xh"], to=TensorProto.FLOAT16),
        helper.make_node("Cast", ["xh"], ["f16"], to=f),
        helper.make_node("Erf", ["x"], ["erf"]),
        helper.make_node("Tanh", ["x"], ["tanh"]),
        helper.make_node("Exp", ["x"], ["exp"]),
        helper.make_node("Sigmoid", ["x"], ["sigmoid"]),
        helper.make_node("Abs", ["x"], ["ax"]),
        helper.make_node("Log", ["ax"], ["log"]),
        helper.make_node("Pow", ["ax", "x"], ["pow"]),
        helper.make_node("MatMul", ["x", "w"], ["mm"]),
    ]
    # Depthwise tiles (filter rows shared across the tile's rows, stride 1
    # and 2) and an im2col matmul over 81 pixels, ragged at every width.
    dw = rng.standard_normal((6, 1, 3, 3)).astype(np.float32)
    cw = rng.standard_normal((20, 6, 3, 3)).astype(np.float32)
    nodes += [
        helper.make_node("Conv", ["img", "dw"], ["dw1"], group=6, pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["img", "dw"], ["dw2"], group=6, pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("Conv", ["img", "cw"], ["conv"], strides=[2, 2]),
    ]
    outs = ["bf16", "f16", "erf", "tanh", "exp", "sigmoid", "log", "pow", "mm", "dw1", "dw2", "conv"]
    shapes = {o: [5, 37] for o in outs}
    shapes.update(mm=[5, 19], dw1=[1, 6, 19, 17], dw2=[1, 6, 10, 9], conv=[1, 20, 9, 8])
    graph = helper.make_graph(
        nodes, "levels", [helper.make_tensor_value_info("x", f, [5, 37]),
                          helper.make_tensor_value_info("img", f, [1, 6, 19, 17])],
        [helper.make_tensor_value_info(o, f, shapes[o]) for o in outs],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(dw, "dw"),
         numpy_helper.from_array(cw, "cw")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


@pytest.mark.parametrize("level", LEVELS)
def test_kernels_load_and_agree_at_feature_level(tmp_path, level):
    model = _model()
    x = np.random.default_rng(1).uniform(0.1, 2.0, (5, 37)).astype(np.float32)
    x[0, :4] = [1.00390625, 3.0e-8, 65504.0, 1.0 + 2**-9]  # bf16 ties, f16 subnormal and max
    artifact = kiln.compile(model, tmp_path / f"{level}.kiln", extra_args=[f"--cpu={level}"])
    img = np.random.default_rng(2).standard_normal((1, 6, 19, 17)).astype(np.float32)
    with kiln.Session(artifact, threads=2) as s:
        got = s.run({"x": x, "img": img})
    want = ort_run(model, {"x": x, "img": img})
    assert_outputs_close(got, want, rtol=2e-4, atol=1e-5)

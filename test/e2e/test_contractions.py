"""Contractions on shapes that divide no register tile (6x16, 8x32, 6x8) and
no workgroup block, through the cpu micro-kernel's masked columns and
leftover rows, against onnxruntime at 1 and 2 threads."""
import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import kiln
from conftest import assert_outputs_close, ort_run

F = TensorProto.FLOAT


def _model(nodes, inputs, outputs, inits=()):
    graph = helper.make_graph(
        nodes, "contraction",
        [helper.make_tensor_value_info(n, t, s) for n, t, s in inputs],
        [helper.make_tensor_value_info(n, t, s) for n, t, s in outputs],
        [numpy_helper.from_array(a, n) for n, a in inits])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def _rand(rng, *shape, dtype=np.float32):
    return rng.standard_normal(shape).astype(dtype)


def _conv(rng, x_shape, w_shape, residual=False, **attrs):
    """Conv + bias + Relu; with `residual`, Conv + bias + Add(r) + Relu."""
    w = _rand(rng, *w_shape)
    b = _rand(rng, w_shape[0])
    node = helper.make_node("Conv", ["x", "w", "b"], ["c"], **attrs)
    nodes = [node]
    if residual:
        nodes.append(helper.make_node("Add", ["c", "r"], ["a"]))
    relu = helper.make_node("Relu", ["a" if residual else "c"], ["y"])
    # Output shape for the value info: ONNX's formula.
    k = w_shape[2:]
    s = attrs.get("strides", [1] * len(k))
    d = attrs.get("dilations", [1] * len(k))
    p = attrs.get("pads", [0] * 2 * len(k))
    out = [(x_shape[2 + i] + p[i] + p[i + len(k)] - d[i] * (k[i] - 1) - 1) // s[i] + 1
           for i in range(len(k))]
    y_shape = [x_shape[0], w_shape[0]] + out
    inputs = [("x", F, x_shape)] + ([("r", F, y_shape)] if residual else [])
    model = _model(nodes + [relu], inputs, [("y", F, y_shape)], [("w", w), ("b", b)])
    feeds = {"x": _rand(rng, *x_shape)}
    if residual:
        feeds["r"] = _rand(rng, *y_shape)
    return model, feeds


CASES = {
    "matmul": lambda rng: (
        _model([helper.make_node("MatMul", ["a", "b"], ["y"])],
               [("a", F, [37, 53]), ("b", F, [53, 71])], [("y", F, [37, 71])]),
        {"a": _rand(rng, 37, 53), "b": _rand(rng, 53, 71)}),
    "matmul_constant_weight": lambda rng: (
        _model([helper.make_node("MatMul", ["a", "w"], ["y"])],
               [("a", F, [13, 100])], [("y", F, [13, 201])], [("w", _rand(rng, 100, 201))]),
        {"a": _rand(rng, 13, 100)}),
    # Constant weights 1 KB or more per row are stored as column panels
    # (kiln-pack-constant-operands); 300 and 1000 columns end in a partial
    # panel, and the 2-D weight of a batched MatMul is broadcast.
    "matmul_packed_weight": lambda rng: (
        _model([helper.make_node("MatMul", ["a", "w"], ["y"])],
               [("a", F, [21, 37])], [("y", F, [21, 300])], [("w", _rand(rng, 37, 300))]),
        {"a": _rand(rng, 21, 37)}),
    "batched_matmul_packed_weight": lambda rng: (
        _model([helper.make_node("MatMul", ["a", "w"], ["y"])],
               [("a", F, [2, 19, 45])], [("y", F, [2, 19, 1000])], [("w", _rand(rng, 45, 1000))]),
        {"a": _rand(rng, 2, 19, 45)}),
    "gemm_transB_packed_weight_bias": lambda rng: (
        _model([helper.make_node("Gemm", ["a", "w", "c"], ["y"], transB=1)],
               [("a", F, [70, 33])], [("y", F, [70, 290])],
               [("w", _rand(rng, 290, 33)), ("c", _rand(rng, 290))]),
        {"a": _rand(rng, 70, 33)}),
    # Over 1024 reduction steps: blocks of 512 (the last partial) run one
    # after another over every row tile, partial sums kept in the result.
    "matmul_reduction_blocks": lambda rng: (
        _model([helper.make_node("MatMul", ["a", "b"], ["y"])],
               [("a", F, [19, 1300]), ("b", F, [1300, 45])], [("y", F, [19, 45])]),
        # Scaled so 1300-term sums stay near 1: the tolerances are f32's.
        {"a": _rand(rng, 19, 1300) / 36, "b": _rand(rng, 1300, 45)}),
    "conv3x3_reduction_blocks_residual": lambda rng: _conv(rng, [1, 150, 7, 6], [20, 150, 3, 3],
                                                           residual=True, pads=[1, 1, 1, 1]),
    "batched_matmul": lambda rng: (
        _model([helper.make_node("MatMul", ["a", "b"], ["y"])],
               [("a", F, [3, 17, 29]), ("b", F, [3, 29, 45])], [("y", F, [3, 17, 45])]),
        {"a": _rand(rng, 3, 17, 29), "b": _rand(rng, 3, 29, 45)}),
    "matmul_transposed_operand": lambda rng: (
        _model([helper.make_node("Transpose", ["b"], ["bt"], perm=[1, 0]),
                helper.make_node("MatMul", ["a", "bt"], ["y"])],
               [("a", F, [9, 40]), ("b", F, [33, 40])], [("y", F, [9, 33])]),
        {"a": _rand(rng, 9, 40), "b": _rand(rng, 33, 40)}),
    "gemm_transB_alpha_bias": lambda rng: (
        _model([helper.make_node("Gemm", ["a", "w", "c"], ["y"], transB=1, alpha=0.5, beta=2.0)],
               [("a", F, [19, 23])], [("y", F, [19, 31])],
               [("w", _rand(rng, 31, 23)), ("c", _rand(rng, 31))]),
        {"a": _rand(rng, 19, 23)}),
    "matmul_fp16": lambda rng: (
        _model([helper.make_node("MatMul", ["a", "b"], ["y"])],
               [("a", TensorProto.FLOAT16, [11, 35]), ("b", TensorProto.FLOAT16, [35, 21])],
               [("y", TensorProto.FLOAT16, [11, 21])]),
        {"a": _rand(rng, 11, 35, dtype=np.float16), "b": _rand(rng, 35, 21, dtype=np.float16)}),
    "conv3x3_pad": lambda rng: _conv(rng, [1, 5, 13, 17], [7, 5, 3, 3], pads=[1, 1, 1, 1]),
    "conv3x3_stride2": lambda rng: _conv(rng, [2, 3, 15, 19], [9, 3, 3, 3], pads=[1, 1, 1, 1],
                                         strides=[2, 2]),
    "conv7x7_stride2_stem": lambda rng: _conv(rng, [1, 3, 37, 41], [10, 3, 7, 7],
                                              pads=[3, 3, 3, 3], strides=[2, 2]),
    "conv1x1": lambda rng: _conv(rng, [2, 6, 9, 11], [10, 6, 1, 1]),
    "conv1x1_stride2": lambda rng: _conv(rng, [1, 6, 9, 11], [10, 6, 1, 1], strides=[2, 2]),
    "conv_dilated": lambda rng: _conv(rng, [1, 4, 16, 18], [5, 4, 3, 3], dilations=[2, 2]),
    # Computed over flattened pixels (im2col or a pointwise matmul) and viewed
    # back as an image: the residual Add + Relu is the contraction's epilogue.
    "conv3x3_small_image_residual": lambda rng: _conv(rng, [1, 13, 7, 7], [19, 13, 3, 3],
                                                      residual=True, pads=[1, 1, 1, 1]),
    "conv_grouped_dilated_im2col": lambda rng: _conv(rng, [2, 8, 11, 10], [34, 4, 3, 3], group=2,
                                                     dilations=[2, 2], pads=[1, 2, 2, 1]),
    "conv3x3_stride2_im2col": lambda rng: _conv(rng, [1, 5, 15, 13], [21, 5, 3, 3],
                                                pads=[1, 1, 1, 1], strides=[2, 2]),
    "conv1x1_residual": lambda rng: _conv(rng, [1, 6, 9, 11], [10, 6, 1, 1], residual=True),
    "conv1x1_stride2_residual": lambda rng: _conv(rng, [2, 7, 13, 11], [17, 7, 1, 1],
                                                  residual=True, strides=[2, 2]),
    "conv_depthwise": lambda rng: _conv(rng, [1, 12, 14, 15], [12, 1, 3, 3], pads=[1, 1, 1, 1],
                                        group=12),
    "conv_depthwise_stride2": lambda rng: _conv(rng, [1, 12, 15, 17], [12, 1, 3, 3],
                                                pads=[1, 1, 1, 1], strides=[2, 2], group=12),
    # Filter rows unrolled in the tile (each input row loaded once for the
    # output rows it serves): 5x5, two filters per channel, 19 rows.
    "conv_depthwise5x5_multiplier": lambda rng: _conv(rng, [1, 6, 19, 23], [12, 1, 5, 5],
                                                      pads=[2, 2, 2, 2], group=6),
    # Pools whose padding joins their kernel run as register-tiled
    # reductions (max or sum per accumulator) over rows loaded at stride 2.
    "maxpool3x3_stride2_pad": lambda rng: (
        _model([helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[3, 3], strides=[2, 2],
                                 pads=[1, 1, 1, 1])],
               [("x", F, [1, 5, 35, 37])], [("y", F, [1, 5, 18, 19])]),
        {"x": _rand(rng, 1, 5, 35, 37)}),
    "averagepool3x3_pad": lambda rng: (
        _model([helper.make_node("AveragePool", ["x"], ["y"], kernel_shape=[3, 3],
                                 pads=[1, 1, 1, 1])],
               [("x", F, [2, 3, 9, 11])], [("y", F, [2, 3, 9, 11])]),
        {"x": _rand(rng, 2, 3, 9, 11)}),
    "conv_grouped": lambda rng: _conv(rng, [1, 8, 10, 9], [12, 4, 3, 3], group=2),
    "conv1d": lambda rng: _conv(rng, [2, 5, 50], [6, 5, 4], pads=[2, 1]),
}


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("case", sorted(CASES))
def test_ragged_contraction(check, case, threads):
    model, feeds = CASES[case](np.random.default_rng(len(case)))
    kw = {"rtol": 2e-3, "atol": 2e-3} if case.endswith("fp16") else {}
    check(model, feeds, threads=threads, **kw)


# Rows of B over 1 KB apart and at least eight row tiles in one workgroup
# (one or two workgroups): B's columns are packed into a panel per column
# tile, the last one partial, the rows' remainder a smaller tile.
PACKED = {
    "matmul": lambda rng: (
        _model([helper.make_node("MatMul", ["a", "w"], ["y"])],
               [("a", F, [141, 70])], [("y", F, [141, 301])], [("w", _rand(rng, 70, 301))]),
        {"a": _rand(rng, 141, 70)}),
    "conv1x1": lambda rng: _conv(rng, [1, 20, 17, 19], [133, 20, 1, 1]),
}


@pytest.mark.parametrize("workgroups", [1, 2])
@pytest.mark.parametrize("case", sorted(PACKED))
def test_packed_panel(compiler, case, workgroups):
    model, feeds = PACKED[case](np.random.default_rng(3))
    artifact = compiler(model, extra_args=[f"--max-workgroups={workgroups}"])
    with kiln.Session(artifact, threads=2) as s:
        got = s.run(feeds)
    assert_outputs_close(got, ort_run(model, feeds))

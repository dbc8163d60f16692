"""Transient buffers share storage where their lifetimes do not overlap
(lib/Pipeline/MemoryPlan.cpp): a chain of MatMuls needs two scratch buffers,
not one per intermediate, and still gives onnxruntime's answer."""
import struct

import numpy as np
from onnx import TensorProto, helper, numpy_helper

import kiln
from conftest import assert_outputs_close, ort_run


def _transient_bytes(path):
    """Sizes of the artifact's transient buffers (docs/artifact-format.md)."""
    data = open(path, "rb").read()
    table, count = struct.unpack_from("<QI", data, 24)
    for i in range(count):
        name, offset, _ = struct.unpack_from("<32sQQ", data, table + 48 * i)
        if name.rstrip(b"\0") == b"meta":
            break
    pos = offset
    for _ in range(2):  # producer, name
        (n,) = struct.unpack_from("<I", data, pos)
        pos += 4 + n
    (buffers,) = struct.unpack_from("<I", data, pos)
    pos += 4
    sizes = []
    for _ in range(buffers):
        kind, _, size, _ = struct.unpack_from("<IIQQ", data, pos)
        pos += 24
        if kind == 3:
            sizes.append(size)
    return sizes


def test_matmul_chain_reuses_two_buffers(compiler):
    rng = np.random.default_rng(0)
    n, depth = 48, 6
    names = ["x"] + [f"h{i}" for i in range(1, depth)] + ["y"]
    nodes = [helper.make_node("MatMul", [names[i], f"w{i}"], [names[i + 1]]) for i in range(depth)]
    inits = [numpy_helper.from_array(rng.standard_normal((n, n)).astype(np.float32) / 8, f"w{i}")
             for i in range(depth)]
    graph = helper.make_graph(
        nodes, "chain", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [n, n])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [n, n])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    artifact = compiler(model)
    # Five intermediates of n*n floats, each dead once the next MatMul ran.
    assert sorted(_transient_bytes(artifact)) == [n * n * 4, n * n * 4]
    feeds = {"x": rng.standard_normal((n, n)).astype(np.float32)}
    with kiln.Session(artifact, threads=2) as s:
        for _ in range(2):  # buffers are reused across runs too
            got = s.run(feeds)
    assert_outputs_close(got, ort_run(model, feeds))

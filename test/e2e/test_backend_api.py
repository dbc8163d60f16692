"""kiln.backend beyond what ONNX's BackendTest drives
(test/conformance/test_onnx_backend.py): run_node, the ways inputs are given,
devices and errors."""
import numpy as np
import pytest
from onnx import TensorProto, helper

import kiln
import kiln.backend as backend


def _model(opset=17):
    # y = x + b, z = Relu(x): two outputs, reachable by position and name.
    nodes = [helper.make_node("Add", ["x", "b"], ["y"]), helper.make_node("Relu", ["x"], ["z"])]
    graph = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3]),
         helper.make_tensor_value_info("b", TensorProto.FLOAT, [3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3]),
         helper.make_tensor_value_info("z", TensorProto.FLOAT, [2, 3])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


X = np.arange(-3, 3, dtype=np.float32).reshape(2, 3)
B = np.array([10, 20, 30], np.float32)


def test_prepare_and_run():
    rep = backend.prepare(_model(), "CPU", threads=1)
    for inputs in ([X, B], {"b": B, "x": X}):
        y, z = rep.run(inputs)
        np.testing.assert_array_equal(y, X + B)
        np.testing.assert_array_equal(z, np.maximum(X, 0))
    out = rep.run([X, B])
    np.testing.assert_array_equal(out["z"], out[1])


def test_run_model_from_bytes():
    (y, _) = backend.run_model(_model().SerializeToString(), [X, B])
    np.testing.assert_array_equal(y, X + B)


def test_run_node():
    node = helper.make_node("Gemm", ["a", "b"], ["c"], transB=1)
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    (c,) = backend.run_node(node, [a, a], opset_version=13)
    np.testing.assert_allclose(c, a @ a.T, rtol=1e-6)
    (c,) = backend.run_node(node, [a, a], outputs_info=[(np.float32, (2, 2))])
    np.testing.assert_allclose(c, a @ a.T, rtol=1e-6)


def test_wrong_inputs_are_refused():
    rep = backend.prepare(_model())
    with pytest.raises(ValueError, match=r"2 inputs \(x, b\), got 1"):
        rep.run([X])
    with pytest.raises(ValueError, match="no graph input named w"):
        rep.run({"x": X, "w": B})
    with pytest.raises(ValueError, match="input 'b' not given"):
        rep.run({"x": X})
    # The runtime's own message, as an exception.
    with pytest.raises(kiln.RuntimeError, match=r"input 'x': expected f32\[2,3\], got f32\[3,2\]"):
        rep.run([X.reshape(3, 2), B])


def test_compile_errors_carry_kilns_message():
    node = helper.make_node("Bernoulli", ["a"], ["b"])
    with pytest.raises(kiln.CompileError, match="unsupported operator 'Bernoulli'"):
        backend.run_node(node, [X])


def test_devices():
    assert backend.supports_device("CPU")
    assert backend.supports_device("cpu:0")
    assert not backend.supports_device("CPU:7")
    assert not backend.supports_device("TPU")
    gpu = {d[1] for d in kiln.devices() if d[3]}
    for kind in ("CUDA", "HIP", "LEVELZERO", "NPU"):
        assert backend.supports_device(kind) == (kind.lower() in gpu)
    with pytest.raises(ValueError, match="unknown device 'TPU'"):
        backend.prepare(_model(), "TPU")


def test_npu():
    if not backend.supports_device("NPU"):
        pytest.skip("no npu device")
    node = helper.make_node("Relu", ["a"], ["b"])
    (b,) = backend.run_node(node, [X], device="NPU")
    np.testing.assert_array_equal(b, np.maximum(X, 0))

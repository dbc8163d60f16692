"""Small ONNX models built with onnx.helper for Kiln's end-to-end tests."""
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


def _init(name, arr):
    return numpy_helper.from_array(np.asarray(arr), name)


def _model(nodes, inputs, outputs, inits, name, opset=OPSET):
    graph = helper.make_graph(nodes, name, inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def f32(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def mlp(rng):
    w1 = rng.standard_normal((64, 128)).astype(np.float32) * 0.1
    b1 = rng.standard_normal(128).astype(np.float32) * 0.1
    w2 = rng.standard_normal((128, 10)).astype(np.float32) * 0.1
    b2 = rng.standard_normal(10).astype(np.float32) * 0.1
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h"]),
        helper.make_node("Add", ["h", "b1"], ["hb"]),
        helper.make_node("Relu", ["hb"], ["r"]),
        helper.make_node("Gemm", ["r", "w2", "b2"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["y"], axis=-1),
    ]
    return _model(nodes, [f32("x", [8, 64])], [f32("y", [8, 10])],
                  [_init("w1", w1), _init("b1", b1), _init("w2", w2), _init("b2", b2)], "mlp")


def convnet(rng):
    c1 = rng.standard_normal((8, 3, 3, 3)).astype(np.float32) * 0.2
    cb = rng.standard_normal(8).astype(np.float32) * 0.1
    scale = rng.uniform(0.5, 1.5, 8).astype(np.float32)
    bias = rng.standard_normal(8).astype(np.float32) * 0.1
    mean = rng.standard_normal(8).astype(np.float32) * 0.1
    var = rng.uniform(0.5, 1.5, 8).astype(np.float32)
    c2 = rng.standard_normal((16, 4, 3, 3)).astype(np.float32) * 0.2
    fc = rng.standard_normal((16, 5)).astype(np.float32) * 0.2
    nodes = [
        helper.make_node("Conv", ["x", "c1", "cb"], ["a"], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["a", "scale", "bias", "mean", "var"], ["bn"]),
        helper.make_node("Relu", ["bn"], ["r"]),
        helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p", "c2"], ["b"], group=2, strides=[2, 2], auto_pad="SAME_UPPER"),
        helper.make_node("AveragePool", ["b"], ["ap"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[1, 1]),
        helper.make_node("GlobalAveragePool", ["ap"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"]),
        helper.make_node("MatMul", ["f", "fc"], ["y"]),
    ]
    inits = [_init("c1", c1), _init("cb", cb), _init("scale", scale), _init("bias", bias),
             _init("mean", mean), _init("var", var), _init("c2", c2), _init("fc", fc)]
    return _model(nodes, [f32("x", [2, 3, 16, 16])], [f32("y", [2, 5])], inits, "convnet")


def transformer(rng, seq=16, dim=32, heads=4):
    hd = dim // heads
    def w(*s):
        return (rng.standard_normal(s) * (1.0 / np.sqrt(s[0]))).astype(np.float32)
    inits = [
        _init("wq", w(dim, dim)), _init("wk", w(dim, dim)), _init("wv", w(dim, dim)),
        _init("wo", w(dim, dim)), _init("w1", w(dim, 4 * dim)), _init("w2", w(4 * dim, dim)),
        _init("g1", np.ones(dim, np.float32)), _init("be1", np.zeros(dim, np.float32)),
        _init("g2", rng.uniform(0.5, 1.5, dim).astype(np.float32)),
        _init("be2", (rng.standard_normal(dim) * 0.1).astype(np.float32)),
        _init("scale", np.array(1.0 / np.sqrt(hd), np.float32)),
        _init("perm_shape", np.array([1, seq, heads, hd], np.int64)),
    ]
    n = helper.make_node
    nodes = [
        n("LayerNormalization", ["x", "g1", "be1"], ["ln1"], axis=-1, epsilon=1e-5),
        n("MatMul", ["ln1", "wq"], ["q0"]), n("MatMul", ["ln1", "wk"], ["k0"]),
        n("MatMul", ["ln1", "wv"], ["v0"]),
        # Reshape target computed from the input's shape, as exporters do.
        n("Shape", ["x"], ["xs"]),
        n("Gather", ["xs", "idx1"], ["seqlen"], axis=0),
        n("Concat", ["one", "seqlen", "heads", "hd"], ["qshape"], axis=0),
        n("Reshape", ["q0", "qshape"], ["q1"]), n("Reshape", ["k0", "qshape"], ["k1"]),
        n("Reshape", ["v0", "perm_shape"], ["v1"]),
        n("Transpose", ["q1"], ["q"], perm=[0, 2, 1, 3]),
        n("Transpose", ["k1"], ["kt"], perm=[0, 2, 3, 1]),
        n("Transpose", ["v1"], ["v"], perm=[0, 2, 1, 3]),
        n("MatMul", ["q", "kt"], ["s0"]), n("Mul", ["s0", "scale"], ["s"]),
        n("Softmax", ["s"], ["p"], axis=-1),
        n("MatMul", ["p", "v"], ["o0"]),
        n("Transpose", ["o0"], ["o1"], perm=[0, 2, 1, 3]),
        n("Reshape", ["o1", "flat_shape"], ["o2"]),
        n("MatMul", ["o2", "wo"], ["attn"]), n("Add", ["x", "attn"], ["h1"]),
        n("LayerNormalization", ["h1", "g2", "be2"], ["ln2"], axis=-1),
        n("MatMul", ["ln2", "w1"], ["f1"]),
        n("Div", ["f1", "sqrt2"], ["f2"]), n("Erf", ["f2"], ["f3"]),
        n("Add", ["f3", "onef"], ["f4"]), n("Mul", ["f1", "f4"], ["f5"]),
        n("Mul", ["f5", "half"], ["gelu"]),
        n("MatMul", ["gelu", "w2"], ["f6"]), n("Add", ["h1", "f6"], ["y"]),
    ]
    inits += [
        _init("idx1", np.array([1], np.int64)), _init("one", np.array([1], np.int64)),
        _init("heads", np.array([heads], np.int64)), _init("hd", np.array([hd], np.int64)),
        _init("flat_shape", np.array([1, seq, dim], np.int64)),
        _init("sqrt2", np.array(np.sqrt(2.0), np.float32)), _init("onef", np.array(1.0, np.float32)),
        _init("half", np.array(0.5, np.float32)),
    ]
    return _model(nodes, [f32("x", [1, seq, dim])], [f32("y", [1, seq, dim])], inits, "transformer")


def mlp_large(rng, batch=64, dims=(512, 1024, 1024, 10)):
    """Batch 64, 512 -> 1024 -> 1024 -> 10 with ReLU; for benchmarks."""
    nodes, inits, cur = [], [], "x"
    for i, (k, n) in enumerate(zip(dims[:-1], dims[1:])):
        inits += [_init(f"w{i}", (rng.standard_normal((k, n)) / np.sqrt(k)).astype(np.float32)),
                  _init(f"b{i}", (rng.standard_normal(n) * 0.1).astype(np.float32))]
        nodes.append(helper.make_node("Gemm", [cur, f"w{i}", f"b{i}"], [f"g{i}"]))
        cur = f"g{i}"
        if i < len(dims) - 2:
            nodes.append(helper.make_node("Relu", [cur], [f"r{i}"]))
            cur = f"r{i}"
    nodes.append(helper.make_node("Softmax", [cur], ["y"], axis=-1))
    return _model(nodes, [f32("x", [batch, dims[0]])], [f32("y", [batch, dims[-1]])], inits,
                  "mlp_large")


def convnet_large(rng, size=64):
    """1x3x64x64 through three 3x3 convs (16, 32, 64 channels) with ReLU and
    2x2 max pooling, global average pooling and a 64->10 classifier."""
    nodes, inits, cur, cin = [], [], "x", 3
    for i, cout in enumerate((16, 32, 64)):
        w = rng.standard_normal((cout, cin, 3, 3)) * np.sqrt(2.0 / (cin * 9))
        inits += [_init(f"c{i}", w.astype(np.float32)),
                  _init(f"cb{i}", (rng.standard_normal(cout) * 0.1).astype(np.float32))]
        nodes += [helper.make_node("Conv", [cur, f"c{i}", f"cb{i}"], [f"a{i}"], pads=[1, 1, 1, 1]),
                  helper.make_node("Relu", [f"a{i}"], [f"r{i}"]),
                  helper.make_node("MaxPool", [f"r{i}"], [f"p{i}"], kernel_shape=[2, 2],
                                   strides=[2, 2])]
        cur, cin = f"p{i}", cout
    inits += [_init("fc", (rng.standard_normal((64, 10)) * 0.1).astype(np.float32))]
    nodes += [helper.make_node("GlobalAveragePool", [cur], ["g"]),
              helper.make_node("Flatten", ["g"], ["f"]),
              helper.make_node("MatMul", ["f", "fc"], ["y"])]
    return _model(nodes, [f32("x", [1, 3, size, size])], [f32("y", [1, 10])], inits, "convnet_large")


MODELS = {"mlp": mlp, "convnet": convnet, "transformer": transformer}
# Larger variants, used by benchmarks/bench.py and one e2e test each.
LARGE_MODELS = {"mlp_large": mlp_large, "convnet_large": convnet_large}


def build(name, seed=0):
    fn = MODELS.get(name) or LARGE_MODELS[name]
    return fn(np.random.default_rng(seed))


if __name__ == "__main__":
    import sys
    out = sys.argv[2] if len(sys.argv) > 2 else sys.argv[1] + ".onnx"
    onnx.save(build(sys.argv[1]), out)

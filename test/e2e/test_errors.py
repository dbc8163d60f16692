"""Bad input gives a clear `tool: error: ...` message and exit status 1, never
a crash, at compile time and at run time."""
import os
import re
import struct

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

import kiln
import models
from conftest import run_tool


def assert_error(r, tool, *needles):
    """Exit status 1 (not a signal), one-line `tool: error:` message containing
    every needle."""
    assert r.returncode == 1, f"exit {r.returncode}\nstdout: {r.stdout}\nstderr: {r.stderr}"
    err = r.stderr.strip()
    assert err.startswith(f"{tool}: error: "), err
    for n in needles:
        assert n in err, f"{n!r} not in {err!r}"
    return err


def _save(model, path):
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="module")
def mlp_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("mlp")
    onnx_path = _save(models.build("mlp"), d / "mlp.onnx")
    kiln_path = d / "mlp.kiln"
    r = run_tool("kiln-compile", onnx_path, "--target=cpu", "-o", kiln_path)
    assert r.returncode == 0, r.stderr
    return onnx_path, kiln_path


def _relu_model(dims, name="x"):
    g = helper.make_graph([helper.make_node("Relu", [name], ["y"])], "g",
                          [helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, dims)],
                          [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, dims)])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m


# --- kiln-compile ---------------------------------------------------------------

def test_not_onnx(tmp_path):
    p = tmp_path / "junk.onnx"
    p.write_text("this is not a protobuf\n")
    assert_error(run_tool("kiln-compile", p, "-o", tmp_path / "o.kiln"), "kiln-compile",
                 "junk.onnx", "not a valid ONNX model")


def test_empty_file(tmp_path):
    p = tmp_path / "empty.onnx"
    p.write_bytes(b"")
    r = run_tool("kiln-compile", p, "-o", tmp_path / "o.kiln")
    assert_error(r, "kiln-compile", "empty.onnx")


@pytest.mark.parametrize("keep", [0.1, 0.5, 0.9])
def test_truncated_model(mlp_files, tmp_path, keep):
    data = mlp_files[0].read_bytes()
    p = tmp_path / "trunc.onnx"
    p.write_bytes(data[: int(len(data) * keep)])
    assert_error(run_tool("kiln-compile", p, "-o", tmp_path / "o.kiln"), "kiln-compile",
                 "trunc.onnx", "truncated")
    assert not (tmp_path / "o.kiln").exists()


def test_missing_model(tmp_path):
    assert_error(run_tool("kiln-compile", tmp_path / "nope.onnx", "-o", tmp_path / "o.kiln"),
                 "kiln-compile", "nope.onnx", "No such file")


def test_unsupported_op_names_node_op_and_opset(tmp_path):
    # Random sampling has no deterministic lowering: not supported.
    n = helper.make_node("RandomUniformLike", ["x"], ["v"], name="my_random")
    g = helper.make_graph([n], "g", [helper.make_tensor_value_info("x", 1, [2, 5])],
                          [helper.make_tensor_value_info("v", 1, [2, 5])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 15)])
    m.ir_version = 8
    p = _save(m, tmp_path / "random.onnx")
    assert_error(run_tool("kiln-compile", p, "-o", tmp_path / "o.kiln"), "kiln-compile",
                 "my_random", "RandomUniformLike", "opset 15")
    with pytest.raises(kiln.CompileError, match="RandomUniformLike"):
        kiln.compile(m, tmp_path / "o2.kiln")


def test_data_dependent_shape_only_as_graph_output(tmp_path):
    # NonZero's result has a data-dependent shape: fine as a graph output,
    # a clear error when another node consumes it.
    nodes = [helper.make_node("NonZero", ["x"], ["nz"], name="nz_node"),
             helper.make_node("Transpose", ["nz"], ["y"], name="consumer")]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", 1, [2, 3])],
                          [helper.make_tensor_value_info("y", 7, [None, 2])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    p = _save(m, tmp_path / "nonzero.onnx")
    assert_error(run_tool("kiln-compile", p, "-o", tmp_path / "o.kiln"), "kiln-compile",
                 "consumer", "Transpose", "input 'nz' has a data-dependent shape (computed by NonZero)",
                 "only as graph outputs")


def test_arithmetic_on_small_types_is_diagnosed(tmp_path):
    # ONNX has no Add on float8; the importer says so instead of codegen failing.
    n = helper.make_node("Add", ["x", "x"], ["y"], name="add8")
    vi = helper.make_tensor_value_info
    g = helper.make_graph([n], "g", [vi("x", onnx.TensorProto.FLOAT8E4M3FN, [3])],
                          [vi("y", onnx.TensorProto.FLOAT8E4M3FN, [3])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 23)])
    m.ir_version = 10
    p = _save(m, tmp_path / "add8.onnx")
    assert_error(run_tool("kiln-compile", p, "-o", tmp_path / "o.kiln"), "kiln-compile",
                 "add8", "Add", "opset 23", "f8E4M3FN")


def _control_flow_model(case):
    """Models whose control flow Kiln cannot resolve at compile time."""
    T = onnx.TensorProto
    x = helper.make_tensor_value_info("x", T.FLOAT, [2])
    ins, outs = [x], [helper.make_tensor_value_info("y", T.FLOAT, None)]
    k = lambda name, arr: helper.make_node("Constant", [], [name], value=numpy_helper.from_array(arr))
    body = helper.make_graph(
        [helper.make_node("Identity", ["c"], ["co"]), helper.make_node("Add", ["a", "x"], ["a2"])],
        "body", [helper.make_tensor_value_info("i", T.INT64, []),
                 helper.make_tensor_value_info("c", T.BOOL, []),
                 helper.make_tensor_value_info("a", T.FLOAT, [2])],
        [helper.make_tensor_value_info("co", T.BOOL, []),
         helper.make_tensor_value_info("a2", T.FLOAT, [2])])
    if case == "runtime-trip-count":
        ins.append(helper.make_tensor_value_info("m", T.INT64, []))
        nodes = [helper.make_node("Loop", ["m", "", "x"], ["y"], body=body, name="my_loop")]
    elif case == "too-many-iterations":
        nodes = [k("m", np.array(100000, np.int64)),
                 helper.make_node("Loop", ["m", "", "x"], ["y"], body=body, name="my_loop")]
    elif case == "branch-shapes-differ":
        ins.append(helper.make_tensor_value_info("c", T.BOOL, []))
        g = lambda name, op: helper.make_graph(
            [helper.make_node(op, ["x"], [name])], name, [],
            [helper.make_tensor_value_info(name, T.FLOAT, None)])
        nodes = [helper.make_node("If", ["c"], ["y"], then_branch=g("t", "Identity"),
                                  else_branch=g("e", "ReduceSum"), name="my_if")]
    elif case == "sequence-into-add":
        nodes = [helper.make_node("SequenceConstruct", ["x"], ["s"]),
                 helper.make_node("Add", ["s", "x"], ["y"], name="my_add")]
    else:  # sequence-input-needs-length
        ins = [helper.make_tensor_sequence_value_info("s", T.FLOAT, [2])]
        nodes = [k("p", np.array(0, np.int64)), helper.make_node("SequenceAt", ["s", "p"], ["y"])]
    m = helper.make_model(helper.make_graph(nodes, "g", ins, outs),
                          opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m


@pytest.mark.parametrize("case,needles", [
    ("runtime-trip-count", ["my_loop", "Loop", "input 'M' ('m')", "compile time"]),
    ("too-many-iterations", ["my_loop", "more than 4096 iterations"]),
    ("branch-shapes-differ", ["my_if", "tensor<2xf32> in the then branch", "tensor<1xf32>",
                              "run time"]),
    ("sequence-into-add", ["my_add", "'s' is a sequence", "Add does not take"]),
    ("sequence-input-needs-length", ["graph input 's' is a sequence",
                                     "--input-sequence-length=s=N"]),
])
def test_unresolvable_control_flow(tmp_path, case, needles):
    # (By default a trip count from a graph input is compiled for at run time:
    # test_specialize.py.)
    p = _save(_control_flow_model(case), tmp_path / f"{case}.onnx")
    assert_error(run_tool("kiln-compile", p, "--specialize-at-run=false", "-o", tmp_path / "o.kiln"),
                 "kiln-compile", *needles)


def _limit_model(case):
    """Models that would exhaust memory or time if Kiln did not stop them."""
    T, f = onnx.TensorProto, onnx.TensorProto.FLOAT
    big = numpy_helper.from_array(np.array([100000, 100000, 100], np.int64), "s")
    out = [helper.make_tensor_value_info("y", f, None)]
    if case == "huge-input":
        return _relu_model([1000000, 1000000])
    if case == "constant-of-shape":  # a folded splat: nothing allocated until a buffer
        nodes, ins, inits = [helper.make_node("ConstantOfShape", ["s"], ["y"], name="fill",
                                              value=numpy_helper.from_array(np.ones(1, np.float32)))], [], [big]
    elif case == "tile":
        nodes = [helper.make_node("Tile", ["x", "r"], ["y"], name="tile")]
        ins = [helper.make_tensor_value_info("x", f, [1000, 1000])]
        inits = [numpy_helper.from_array(np.array([100000, 1000], np.int64), "r")]
    else:  # nested-loops: 300 x 300 unrolled Adds
        def body(inner):
            nodes = [helper.make_node("Identity", ["c"], ["co"])]
            nodes.append(helper.make_node("Add", ["a", "one"], ["a2"]) if inner is None else
                         helper.make_node("Loop", ["m", "", "a"], ["a2"], body=inner))
            return helper.make_graph(nodes, "body", [helper.make_tensor_value_info("i", T.INT64, []),
                                                     helper.make_tensor_value_info("c", T.BOOL, []),
                                                     helper.make_tensor_value_info("a", f, [2])],
                                     [helper.make_tensor_value_info("co", T.BOOL, []),
                                      helper.make_tensor_value_info("a2", f, [2])])
        nodes = [helper.make_node("Loop", ["m", "", "x"], ["y"], body=body(body(None)), name="outer")]
        ins = [helper.make_tensor_value_info("x", f, [2])]
        inits = [numpy_helper.from_array(np.array(300, np.int64), "m"),
                 numpy_helper.from_array(np.ones(2, np.float32), "one")]
    m = helper.make_model(helper.make_graph(nodes, "g", ins, out, inits),
                          opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m


@pytest.mark.parametrize("case,flags,needles", [
    ("huge-input", [], ["graph input 'x' is f32[1000000x1000000] (4000000000000 bytes)",
                        "more than the 17179869184 one tensor may hold (--max-tensor-bytes)"]),
    ("constant-of-shape", [], ["fill", "ConstantOfShape", "output 'y' is f32[100000x100000x100]"]),
    ("tile", [], ["tile", "Tile", "output 'y' is f32[100000000x1000000]"]),
    ("tile", ["--max-tensor-bytes=1K"], ["graph input 'x' is f32[1000x1000] (4000000 bytes)",
                                         "more than the 1024"]),
    ("nested-loops", ["--max-nodes=5000"], ["Add", "more than 5000 nodes",
                                            "once per unrolled iteration; --max-nodes"]),
    ("nested-loops", ["--max-loop-iterations=100"], ["outer", "more than 100 iterations",
                                                     "--max-loop-iterations"]),
    ("tile", ["--max-tensor-bytes=12Q"], ["'12Q' is not a byte count"]),
    # 90000 unrolled Adds take about 18 s to import; the watchdog stops it at 1 s.
    ("nested-loops", ["--max-seconds=1"], ["compiling took longer than 1 s (--max-seconds)",
                                           "nothing was written"]),
])
def test_resource_limits(tmp_path, case, flags, needles):
    """A model past a limit fails fast with the limit's flag named, and
    nothing is written."""
    p = _save(_limit_model(case), tmp_path / f"{case}.onnx")
    r = run_tool("kiln-compile", p, *flags, "-o", tmp_path / "o.kiln")
    assert_error(r, "kiln-compile", *needles)
    assert not (tmp_path / "o.kiln").exists()


def test_session_memory_limit(tmp_path):
    p = _save(_relu_model([256, 256]), tmp_path / "relu.onnx")
    art = tmp_path / "relu.kiln"
    assert run_tool("kiln-compile", p, "-o", art).returncode == 0
    assert_error(run_tool("kiln-run", art, "--max-memory=100K"), "kiln-run",
                 "the session needs 524288 bytes of buffers", "262144 bytes",
                 "more than its limit of 102400", "--max-memory")
    assert run_tool("kiln-run", art, "--max-memory=1M").returncode == 0
    r = run_tool("kiln-run", art, "--max-memory=1X")
    assert r.returncode == 2 and "--max-memory must be a positive byte count" in r.stderr
    with pytest.raises(kiln.RuntimeError, match="needs 524288 bytes") as e:
        kiln.Session(art, max_memory=100 << 10)
    assert e.value.status == "KILN_ERROR_RESOURCE_EXHAUSTED"
    with kiln.Session(art, max_memory=1 << 20) as s:
        s.run({"x": np.ones((256, 256), np.float32)})


def _sequence_op_model(op, inputs, attrs, opset, domains=()):
    f = onnx.TensorProto.FLOAT
    # As many outputs as the schema requires (the importer checks it first).
    need = onnx.defs.get_schema(op, domains[0][1] if domains else opset,
                                domains[0][0] if domains else "").min_output
    n = helper.make_node(op, [i[0] for i in inputs], ["y"] + [f"y{k}" for k in range(1, need)],
                         name="seq_op", **attrs)
    if domains:
        n.domain = domains[0][0]
    g = helper.make_graph([n], "g", [helper.make_tensor_value_info(i, f, s) for i, s in inputs],
                          [helper.make_tensor_value_info("y", f, None)])
    opsets = [helper.make_opsetid("", opset)] + [helper.make_opsetid(d, v) for d, v in domains]
    m = helper.make_model(g, opset_imports=opsets)
    m.ir_version = 10
    return m


def _modifier(op, out_type=onnx.TensorProto.FLOAT, **attrs):
    f = onnx.TensorProto.FLOAT
    return helper.make_graph([helper.make_node(op, ["s"], ["o"], name="inner", **attrs)], "mod",
                             [helper.make_tensor_value_info("s", f, None)],
                             [helper.make_tensor_value_info("o", out_type, None)])


_QKV = [("q", [1, 2, 3, 4]), ("k", [1, 2, 3, 4]), ("v", [1, 2, 3, 4])]
_PREVIEW = (("ai.onnx.preview", 1),)


@pytest.mark.parametrize("model,needles", [
    (_sequence_op_model("LinearAttention", [("q", [1, 2, 8]), ("k", [1, 2, 8]), ("v", [1, 2, 8])],
                        {"q_num_heads": 2, "kv_num_heads": 2, "update_rule": "fast"}, 27),
     ["seq_op", "LinearAttention", "opset 27", "update_rule 'fast'"]),
    (_sequence_op_model("LinearAttention", [("q", [1, 2, 8]), ("k", [1, 2, 8]), ("v", [1, 2, 8])],
                        {"q_num_heads": 2, "kv_num_heads": 2, "update_rule": "gated"}, 27),
     ["seq_op", "LinearAttention", "'gated' needs decay input"]),
    (_sequence_op_model("RotaryEmbedding", [("x", [1, 3, 8]), ("c", [1, 3, 4]), ("s", [1, 3, 4])],
                        {}, 23),
     ["seq_op", "RotaryEmbedding", "opset 23", "num_heads"]),
    (_sequence_op_model("CausalConvWithState", [("x", [1, 2, 5]), ("w", [2, 1, 3])],
                        {"activation": "gelu"}, 27),
     ["seq_op", "CausalConvWithState", "activation 'gelu'"]),
    # An unsupported op inside a modifier subgraph is named itself.
    (_sequence_op_model("FlexAttention", _QKV, {"score_mod": _modifier("RandomUniformLike")}, 26,
                        _PREVIEW),
     ["inner", "unsupported operator 'RandomUniformLike'",
      "graph attribute 'mod' of the enclosing FlexAttention"]),
    # A data-dependent shape cannot leave a subgraph.
    (_sequence_op_model("FlexAttention", _QKV, {"score_mod": _modifier("Unique")}, 26, _PREVIEW),
     ["output 'o' has a data-dependent shape (computed by Unique)", "only as graph outputs"]),
    (_sequence_op_model("FlexAttention", _QKV,
                        {"prob_mod": _modifier("Cast", onnx.TensorProto.DOUBLE,
                                               to=onnx.TensorProto.DOUBLE)}, 26, _PREVIEW),
     ["seq_op", "ai.onnx.preview.FlexAttention", "prob_mod must produce one tensor of type"]),
])
def test_sequence_op_errors(tmp_path, model, needles):
    p = _save(model, tmp_path / "m.onnx")
    assert_error(run_tool("kiln-compile", p, "-o", tmp_path / "o.kiln"), "kiln-compile", *needles)


def _one_node(op, inputs, opset, **attrs):
    """`inputs`: (name, float32 shape) graph inputs, (name, (shape, TensorProto
    type)) graph inputs of another type, or (name, int64 array) initializers."""
    ins, inits = [], []
    for name, v in inputs:
        if isinstance(v, np.ndarray):
            inits.append(numpy_helper.from_array(v, name))
        elif isinstance(v, tuple):
            ins.append(helper.make_tensor_value_info(name, v[1], v[0]))
        else:
            ins.append(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, v))
    n = helper.make_node(op, [name for name, _ in inputs], ["y"], name="node_" + op.lower(), **attrs)
    g = helper.make_graph([n], "g", ins, [helper.make_tensor_value_info("y", 1, None)], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 10
    return m


@pytest.mark.parametrize("model,needles", [
    (_one_node("RoiAlign", [("x", [1, 2, 6, 6]), ("r", [3, 4]), ("i", np.array([0, 0, 0]))], 16,
               sampling_ratio=0), ["sampling_ratio=0", "is not supported"]),
    (_one_node("GridSample", [("x", [1, 1, 3, 3, 3]), ("g", [1, 2, 2, 2, 3])], 20, mode="cubic"),
     ["cubic mode supports 4-D input only"]),
    (_one_node("DeformConv", [("x", [1, 1, 4, 4, 4]), ("w", [1, 1, 2, 2, 2]), ("o", [1, 24, 3, 3, 3])], 19),
     ["only 2-D DeformConv"]),
    (_one_node("DFT", [("x", [1, 8, 1]), ("n", ([], onnx.TensorProto.INT64))], 17),
     ["dft_length", "must be known at compile time"]),
    (_one_node("ConvTranspose", [("x", [1, 2, 3, 3]), ("w", [2, 1, 3, 3])], 17, kernel_shape=[2, 2]),
     ["kernel_shape [2,2] does not match W [2,1,3,3]"]),
], ids=["roialign-adaptive", "gridsample-cubic-3d", "deformconv-3d", "dft-runtime-length",
        "convtranspose-kernel-shape"])
def test_unsupported_image_op_variants(tmp_path, model, needles):
    n = model.graph.node[0]
    p = _save(model, tmp_path / "m.onnx")
    assert_error(run_tool("kiln-compile", p, "--specialize-at-run=false", "-o", tmp_path / "o.kiln"),
                 "kiln-compile", n.name, n.op_type, *needles)


def test_unknown_target_lists_available(mlp_files, tmp_path):
    r = run_tool("kiln-compile", mlp_files[0], "--target=tpu7", "-o", tmp_path / "o.kiln")
    assert_error(r, "kiln-compile", "unknown target 'tpu7'", "available: ", "cpu")
    with pytest.raises(kiln.CompileError, match="tpu7"):
        kiln.compile(mlp_files[0], tmp_path / "o.kiln", target="tpu7")


def test_symbolic_dim_needs_input_shape(tmp_path):
    # (By default such a model is compiled per input shape at run time:
    # test_specialize.py.)
    p = _save(_relu_model(["batch", 5]), tmp_path / "sym.onnx")
    out = tmp_path / "sym.kiln"
    assert_error(run_tool("kiln-compile", p, "--specialize-at-run=false", "-o", out),
                 "kiln-compile", "'x'", "symbolic dimension 0", "batch", "--input-shape")
    assert not out.exists()
    # Pinned, it compiles and runs with that shape.
    kiln.compile(p, out, input_shapes={"x": (3, 5)})
    x = np.random.default_rng(0).standard_normal((3, 5)).astype(np.float32)
    with kiln.Session(out) as s:
        assert s.inputs[0].shape == (3, 5)
        (y,) = s.run({"x": x})
    np.testing.assert_array_equal(y, np.maximum(x, 0))


@pytest.mark.parametrize("spec,needles", [
    ("x=3x5x2", ["rank 3", "rank 2"]),
    ("x=3x6", ["dimension 1", "6", "5"]),        # contradicts the fixed dim
    ("batch=3x5", ["'batch'", "not an input"]),  # a dim name is not an input name
    ("x=3xq", ["--input-shape"]),
])
def test_bad_input_shape(tmp_path, spec, needles):
    p = _save(_relu_model(["batch", 5]), tmp_path / "sym.onnx")
    r = run_tool("kiln-compile", p, f"--input-shape={spec}", "-o", tmp_path / "o.kiln")
    assert r.returncode in (1, 2), r  # 2: command-line misuse
    assert r.stderr.startswith("kiln-compile:") and "error" in r.stderr, r.stderr
    for n in needles:
        assert n in r.stderr, r.stderr
    assert not (tmp_path / "o.kiln").exists()


@pytest.mark.parametrize("failure", ["unsupported-op", "bad-target", "symbolic-dim"])
def test_failed_compile_keeps_existing_output(mlp_files, tmp_path, failure):
    """Artifacts are written atomically: a failed compile leaves the previous
    file untouched and no temporary files behind."""
    out = tmp_path / "model.kiln"
    out.write_bytes(mlp_files[1].read_bytes())
    before = out.read_bytes()
    if failure == "unsupported-op":
        m = _relu_model([2, 3])
        m.graph.node[0].op_type = "NoSuchOp"
        args = [_save(m, tmp_path / "bad.onnx")]
    elif failure == "bad-target":
        args = [mlp_files[0], "--target=nope"]
    else:
        args = [_save(_relu_model(["n", 3]), tmp_path / "sym.onnx"), "--specialize-at-run=false"]
    listing = sorted(os.listdir(tmp_path))
    r = run_tool("kiln-compile", *args, "-o", out)
    assert_error(r, "kiln-compile")
    assert out.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == listing
    with kiln.Session(out) as s:  # still a valid artifact
        s.run({"x": np.zeros((8, 64), np.float32)})


def test_successful_compile_replaces_output(mlp_files, tmp_path):
    out = tmp_path / "model.kiln"
    out.write_bytes(b"old contents")
    p = _save(_relu_model([2, 3]), tmp_path / "relu.onnx")
    r = run_tool("kiln-compile", p, "-o", out)
    assert r.returncode == 0, r.stderr
    with kiln.Session(out) as s:
        assert s.inputs[0].shape == (2, 3)
    assert sorted(os.listdir(tmp_path)) == ["model.kiln", "relu.onnx"]


def test_unwritable_output(mlp_files, tmp_path):
    assert_error(run_tool("kiln-compile", mlp_files[0], "-o", tmp_path / "no" / "dir" / "o.kiln"),
                 "kiln-compile", "o.kiln")


# --- kiln-run: inputs -----------------------------------------------------------

def _npy(tmp_path, name, arr):
    p = tmp_path / name
    np.save(p, arr)
    return p


def test_wrong_input_name(mlp_files, tmp_path):
    x = _npy(tmp_path, "x.npy", np.zeros((8, 64), np.float32))
    assert_error(run_tool("kiln-run", mlp_files[1], f"--input=z=@{x}"), "kiln-run",
                 "'z'", "inputs: x")


def test_wrong_input_shape(mlp_files, tmp_path):
    x = _npy(tmp_path, "x.npy", np.zeros((8, 65), np.float32))
    assert_error(run_tool("kiln-run", mlp_files[1], f"--input=x=@{x}"), "kiln-run",
                 "'x'", "expected f32[8,64]", "got f32[8,65]")


def test_wrong_input_rank(mlp_files, tmp_path):
    x = _npy(tmp_path, "x.npy", np.zeros((8, 64, 1), np.float32))
    assert_error(run_tool("kiln-run", mlp_files[1], f"--input=x=@{x}"), "kiln-run",
                 "expected f32[8,64]", "got f32[8,64,1]")


def test_wrong_input_dtype(mlp_files, tmp_path):
    x = _npy(tmp_path, "x.npy", np.zeros((8, 64), np.int64))
    assert_error(run_tool("kiln-run", mlp_files[1], f"--input=x=@{x}"), "kiln-run",
                 "expected f32[8,64]", "got i64[8,64]")


def test_literal_input_count_mismatch(mlp_files):
    assert_error(run_tool("kiln-run", mlp_files[1], "--input=x=2x3xf32=1,2,3"), "kiln-run",
                 "needs 6 values, got 3")


def test_missing_npy(mlp_files, tmp_path):
    assert_error(run_tool("kiln-run", mlp_files[1], f"--input=x=@{tmp_path / 'none.npy'}"),
                 "kiln-run", "none.npy")


def test_corrupt_npy(mlp_files, tmp_path):
    p = tmp_path / "bad.npy"
    p.write_bytes(b"\x93NUMPY\x01\x00garbage")
    assert_error(run_tool("kiln-run", mlp_files[1], f"--input=x=@{p}"), "kiln-run", "bad.npy")


def test_unknown_device(mlp_files):
    assert_error(run_tool("kiln-run", mlp_files[1], "--device=gpu:3"), "kiln-run", "gpu:3", "cpu:0")


# --- kiln-run and the C API: bad artifacts -------------------------------------

def _fnv1a(data):
    h = 0xcbf29ce484222325
    for b in data:
        h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


def _reseal(data):
    """Recomputes the header checksum (FNV-1a 64 of bytes [64, end))."""
    data = bytearray(data)
    struct.pack_into("<Q", data, 40, _fnv1a(data[64:]))
    return bytes(data)


def _bad_artifact(mlp_files, tmp_path, how):
    data = bytearray(mlp_files[1].read_bytes())
    if how == "truncated":
        data = data[: len(data) // 2]
    elif how == "trailing":
        data += b"\0" * 64
    elif how == "flipped-byte":
        data[len(data) // 2] ^= 0x40
    elif how == "bad-magic":
        data[0:4] = b"ELF\x7f"
    elif how == "future-version":
        struct.pack_into("<I", data, 8, 7)
    elif how == "empty":
        data = b""
    elif how == "onnx-file":
        data = mlp_files[0].read_bytes()
    p = tmp_path / f"{how}.kiln"
    p.write_bytes(bytes(data))
    return p


BAD_ARTIFACTS = {
    "truncated": "truncated", "trailing": "trailing data", "flipped-byte": "checksum mismatch",
    "bad-magic": "not a Kiln artifact", "future-version": "version 7.", "empty": "not a Kiln artifact",
    "onnx-file": "not a Kiln artifact",
}


@pytest.mark.parametrize("how", list(BAD_ARTIFACTS))
def test_bad_artifact(mlp_files, tmp_path, how):
    p = _bad_artifact(mlp_files, tmp_path, how)
    assert_error(run_tool("kiln-run", p), "kiln-run", p.name, BAD_ARTIFACTS[how])
    with pytest.raises(kiln.RuntimeError, match=BAD_ARTIFACTS[how]) as e:
        kiln.Session(p)
    assert p.name in str(e.value)


def test_missing_artifact(tmp_path):
    assert_error(run_tool("kiln-run", tmp_path / "none.kiln"), "kiln-run", "none.kiln",
                 "No such file")
    with pytest.raises(kiln.RuntimeError, match="none.kiln"):
        kiln.Session(tmp_path / "none.kiln")


def _structural_offsets(data):
    """File offsets of the section table and of every meta-section field the
    runtime must not trust: counts, kinds, sizes, dims, grids, dispatches,
    bindings, entry names and the kernels' extents. Left out: other strings
    and the records after the extents. The workgroup counts' offsets come
    back apart: a count made huge takes long to run, not to fail."""
    table, count = struct.unpack_from("<QI", data, 24)
    grids = []
    offsets = list(range(table, table + 48 * count))
    sections = {}
    for i in range(count):
        e = table + 48 * i
        sections[data[e:e + 32].rstrip(b"\0").decode()] = struct.unpack_from("<QQ", data, e + 32)
    pos = sections["meta"][0]

    def take(n, keep=True):
        nonlocal pos
        if keep:
            offsets.extend(range(pos, pos + n))
        pos += n

    def u32(keep=True):
        v = struct.unpack_from("<I", data, pos)[0]
        take(4, keep)
        return v

    def string(keep=True):
        take(u32(keep), keep)

    string(), string()
    for _ in range(u32()):  # buffers: kind, reserved, size, constant offset
        take(8), take(8), take(8)
    for _ in range(2):  # inputs, outputs
        for _ in range(u32()):
            string(), take(8)
            take(8 * u32())
    for _ in range(u32()):  # executables
        string(), string(), string()
        for _ in range(u32()):  # entries: name, workgroup count and size
            string()
            grids.append(pos)
            take(12, keep=False), take(12)
    for _ in range(u32()):  # dispatches: kernel, bindings (buffer, reserved, offset)
        take(4), take(16 * u32())
    take(24 * u32())  # dynamic dims
    take(8 * u32())  # specializing inputs
    for _ in range(u32()):  # kernel descriptions
        string(keep=False)
    for _ in range(u32()):  # 3.3: kernel extents
        take(8 * u32())
    return offsets, grids


def test_corrupt_metadata_with_valid_checksum(mlp_files, tmp_path):
    """Structural corruption that the checksum does not catch (it is resealed)
    is reported by validation, or harmless: never a crash or a hang."""
    data = mlp_files[1].read_bytes()
    offsets, grids = _structural_offsets(data)
    assert len(offsets) > 600
    p = tmp_path / "c.kiln"
    codes = {0: 0, 1: 0}
    for off in offsets:
        for new in (data[off] ^ 0xFF, (data[off] + 1) & 0xFF):
            d = bytearray(data)
            d[off] = new
            p.write_bytes(_reseal(d))
            r = run_tool("kiln-run", p, "--threads=1", timeout=30)
            assert r.returncode in (0, 1), (off, new, r.returncode, r.stderr)
            if r.returncode == 1:
                assert r.stderr.startswith("kiln-run: error: "), (off, new, r.stderr)
            codes[r.returncode] += 1
    assert codes[1] > len(offsets) // 2, codes  # most of these must be rejected
    # A grid past the one a kernel was compiled for: the extra workgroups
    # return at once (the kernel checks its ids), nothing is reached.
    for at in grids:
        for dim in range(3):
            d = bytearray(data)
            n = struct.unpack_from("<I", d, at + 4 * dim)[0]
            struct.pack_into("<I", d, at + 4 * dim, n * 4 + 3)
            p.write_bytes(_reseal(d))
            r = run_tool("kiln-run", p, "--threads=2", timeout=30)
            assert r.returncode == 0, (at, dim, r.returncode, r.stderr)


def test_entry_named_as_another_kernel_is_refused(tmp_path):
    """An entry renamed to another kernel of the same image (what
    kiln-fuzz-artifact found: main_dispatch_22 became main_dispatch_32, and
    the kernel wrote past a buffer) is refused before anything runs: the
    cpu kernels carry what they reach through each binding, and the driver
    holds it against the artifact's extents. A renaming between kernels that
    reach the same bytes is harmless and runs."""
    onnx_path = _save(models.build("transformer"), tmp_path / "t.onnx")
    art = tmp_path / "t.kiln"
    r = run_tool("kiln-compile", onnx_path, "--target=cpu", "-o", art)
    assert r.returncode == 0, r.stderr
    data = art.read_bytes()
    names = sorted(set(re.findall(rb"main_dispatch_\d+", data)))
    assert len(names) > 10
    p = tmp_path / "bad.kiln"
    refused = 0
    for a, b in zip(names, names[1:] + names[:1]):
        if len(a) != len(b):
            continue
        d = bytearray(data)
        i = d.index(struct.pack("<I", len(a)) + a) + 4  # the meta's entry name
        d[i:i + len(a)] = b
        p.write_bytes(_reseal(d))
        r = run_tool("kiln-run", p, "--threads=1", timeout=30)
        assert r.returncode in (0, 1), (a, b, r.returncode, r.stderr)
        if r.returncode == 1:
            assert f"entry '{b.decode()}' reaches [" in r.stderr, r.stderr
            assert "but the artifact says [" in r.stderr, r.stderr
            refused += 1
    assert refused > 5, refused


# --- Python binding ---------------------------------------------------------------

def test_python_errors(mlp_files):
    with kiln.Session(mlp_files[1], threads=1) as s:
        with pytest.raises(kiln.RuntimeError, match="never set|not set|x"):
            s.run()
        with pytest.raises(kiln.RuntimeError, match=r"expected f32\[8,64\], got f32\[8,65\]"):
            s.run({"x": np.zeros((8, 65), np.float32)})
        with pytest.raises(kiln.RuntimeError, match=r"expected f32\[8,64\], got f64\[8,64\]"):
            s.run({"x": np.zeros((8, 64), np.float64)})
        with pytest.raises(kiln.RuntimeError, match="'z'"):
            s.run({"z": np.zeros((8, 64), np.float32)})
        # After errors the session still works.
        (y,) = s.run({"x": np.zeros((8, 64), np.float32)})
        assert y.shape == (8, 10)
    with pytest.raises(kiln.RuntimeError, match="gpu:9"):
        kiln.Session(mlp_files[1], device="gpu:9")


def test_python_run_paths_agree(mlp_files):
    """run() takes one C call for exact, contiguous arrays and the
    set_input path for anything else: both give the same answer."""
    x = np.random.default_rng(0).standard_normal((8, 64)).astype(np.float32)
    frozen = x.copy()
    frozen.flags.writeable = False
    wide = np.zeros((8, 128), np.float32)
    wide[:, ::2] = x  # a strided view of x's values
    with kiln.Session(mlp_files[1], threads=1) as s:
        assert s._io is not None  # the mlp's shapes are fixed
        (want,) = s.run({"x": x})
        for given in (frozen, wide[:, ::2], np.asfortranarray(x)):
            (got,) = s.run({"x": given})
            np.testing.assert_array_equal(got, want)
        # Fresh arrays every run, never a view of the last one.
        (a,), (b,) = s.run({"x": x}), s.run({"x": x})
        assert a is not b and not np.shares_memory(a, b)

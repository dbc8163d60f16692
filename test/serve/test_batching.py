"""How kiln.serve batches requests on a Session, without Ray."""

import numpy as np
import pytest
from conftest import mlp, ort_run

import kiln
from kiln._batching import Batcher, RequestError, item_weight

RNG = np.random.default_rng(1)


def x(rows, dtype=np.float32, cols=16):
    return RNG.standard_normal((rows, cols)).astype(dtype)


def check(result, model, feeds):
    assert not isinstance(result, RequestError), result
    want = ort_run(model, feeds)
    assert list(result) == [o.name for o in model.graph.output]
    for got, w in zip(result.values(), want):
        np.testing.assert_allclose(got, w, rtol=1e-4, atol=1e-5)


def test_symbolic_batch_stacks_rows(compiled):
    model = mlp("batch")
    b = Batcher(kiln.Session(compiled("dyn", model), threads=1), max_batch_size=8)
    assert b.describe() == {"batching": "rows", "max_batch_size": 8, "row_buckets": [1, 2, 4, 8]}
    b.warm_up()
    feeds = [{"x": x(n)} for n in (1, 3, 2)]
    items = [b.item(f) for f in feeds]
    assert [i.rows for i in items] == [1, 3, 2] and item_weight(items) == 6
    for r, f in zip(b.run(items), feeds):
        check(r, model, f)
    # Row counts outside 1..8 are refused here: each would be one more compile.
    too_many = b.item({"x": x(9)})
    assert too_many.weight == 1
    (r,) = b.run([too_many])
    assert isinstance(r, RequestError) and r.status == 400
    assert "the request has 9 rows (dim 0); this server runs 1 to 8 rows" in str(r)


def test_bad_requests_fail_alone_with_kilns_message(compiled):
    model = mlp("batch", two_inputs=True)
    b = Batcher(kiln.Session(compiled("dyn2", model), threads=1), max_batch_size=4)
    good = {"x": x(2), "z": x(2)}
    bad = [({"x": x(2)}, 400, "missing input 'z' (inputs: x, z)"),
           ({"x": x(2), "z": x(2), "w": x(2)}, 400, "no input named 'w'"),
           ({"x": x(2, np.float64), "z": x(2)}, 400,
            "input 'x': expected f32[-1,16], got f64[2,16]"),
           ({"x": x(2, cols=5), "z": x(2, cols=5)}, 400, "expected f32[-1,16], got f32[2,5]"),
           ({"x": x(2), "z": x(3)}, 400, None)]
    items = [b.item(good)] + [b.item(f) for f, _, _ in bad] + [b.item(good)]
    # Requests that cannot be stacked take a whole batch, so that they run alone.
    assert [i.weight for i in items] == [2, 4, 4, 4, 4, 4, 2]
    results = b.run(items)
    check(results[0], model, good)
    check(results[-1], model, good)
    for r, (_, status, message) in zip(results[1:-1], bad):
        assert isinstance(r, RequestError) and r.status == status, r
        if message:
            assert message in str(r)
    assert b.mode == "rows"  # bad requests do not turn batching off


def test_static_batch_pads_when_asked(compiled):
    model = mlp(4)
    session = kiln.Session(compiled("static4", model), threads=1)
    assert Batcher(session).mode == "each"  # padding a fixed batch is opt-in
    b = Batcher(session, "rows")
    assert b.describe() == {"batching": "rows", "max_batch_size": 4, "row_buckets": [4]}
    feeds = [{"x": x(n)} for n in (1, 2, 1)]
    for r, f in zip(b.run([b.item(f) for f in feeds]), feeds):
        check(r, mlp("batch"), f)  # (onnxruntime holds the static model to 4 rows)


def test_each_runs_exact_shapes(compiled):
    model = mlp(2)
    b = Batcher(kiln.Session(compiled("static2", model), threads=1), "each", max_batch_size=3)
    items = [b.item({"x": x(2)}), b.item({"x": x(1)}), b.item({"x": x(2)})]
    assert item_weight(items) == 3
    r = b.run(items)
    check(r[0], model, items[0].inputs)
    check(r[2], model, items[2].inputs)
    assert isinstance(r[1], RequestError) and "expected f32[2,16], got f32[1,16]" in str(r[1])


def test_rows_refused_where_dim0_is_not_the_batch(compiled):
    session = kiln.Session(compiled("static2", mlp(2)), threads=1)
    with pytest.raises(ValueError, match="batching must be 'auto', 'rows' or 'each'"):
        Batcher(session, "stack")
    # A model reducing over dim 0: stacking would mix requests.
    from onnx import TensorProto, helper
    vi = helper.make_tensor_value_info
    graph = helper.make_graph(
        [helper.make_node("ReduceSum", ["x"], ["s"], keepdims=1)], "sum",
        [vi("x", TensorProto.FLOAT, ["batch", 3])], [vi("s", TensorProto.FLOAT, [1, 1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])
    b = Batcher(kiln.Session(compiled("sum", model), threads=1), max_batch_size=2)
    assert b.mode == "rows"
    b.warm_up()  # finds out: the outputs do not have a row per input row
    assert b.mode == "each"
    (r,) = b.run([b.item({"x": np.ones((3, 3), np.float32)})])
    assert r["s"].tolist() == [[9.0]]

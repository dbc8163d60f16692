"""Profiling on the cpu: kiln-run --profile/--stats writes a Perfetto trace
and statistics whose dispatches are named by the ONNX ops fused into them,
prints the slowest dispatches, and artifacts from before kernels carried
their ops (format 3.1) still load and profile under kernel names."""
import json
import struct

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from conftest import run_tool

THREADS = 2


def _model():
    """Conv+Relu, then Flatten and MatMul+Add (the Add unnamed: it goes by
    its output)."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal(s).astype(np.float32), n)
             for n, s in [("w", (8, 3, 3, 3)), ("b", (8,)), ("fw", (8 * 14 * 14, 10)),
                          ("fb", (10,))]]
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv1"),
        helper.make_node("Relu", ["c"], ["r"], name="relu1"),
        helper.make_node("Flatten", ["r"], ["f"], name="flat"),
        helper.make_node("MatMul", ["f", "fw"], ["m"], name="fc"),
        helper.make_node("Add", ["m", "fb"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes, "profiled", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])], inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m


def _compile(tmp_path):
    onnx_path, art = tmp_path / "m.onnx", tmp_path / "m.kiln"
    onnx.save(_model(), str(onnx_path))
    r = run_tool("kiln-compile", onnx_path, "--target=cpu", "-o", art)
    assert r.returncode == 0, r.stderr
    return art


def _profile(tmp_path, art, tag, *extra):
    trace, stats, out = (tmp_path / f"{tag}.{x}" for x in ("trace.json", "stats.json", "npy"))
    r = run_tool("kiln-run", art, "--device=cpu", f"--threads={THREADS}", f"--profile={trace}",
                 f"--stats={stats}", f"--output=@{out}", *extra)
    assert r.returncode == 0, r.stderr
    return json.loads(trace.read_text()), json.loads(stats.read_text()), r.stdout, np.load(out)


def _check_files(trace, stats):
    """The trace has one slice per dispatch on the dispatches track and at
    most one per worker thread, named alike; the stats agree with it."""
    slices = [e for e in trace["traceEvents"] if e["ph"] == "X"]
    dispatches = [e for e in slices if e["cat"] == "dispatch"]
    n = len(dispatches)
    assert [e["args"]["index"] for e in dispatches] == list(range(n))
    assert all(e["tid"] == 0 for e in dispatches)
    for i, d in enumerate(dispatches):
        mine = [e for e in slices if e["cat"] == "worker" and e["args"]["index"] == i]
        assert 1 <= len(mine) <= THREADS, (i, mine)
        assert len({e["tid"] for e in mine}) == len(mine)
        assert all(1 <= e["tid"] <= THREADS for e in mine)
        assert sum(e["args"]["workgroups"] for e in mine) == d["args"]["workgroups"]
        for e in mine:
            assert e["name"] == d["name"] and e["args"]["kernel"] == d["args"]["kernel"]
            # A worker's span lies inside its dispatch (timestamps in us).
            assert d["ts"] - 1e-3 <= e["ts"] and e["ts"] + e["dur"] <= d["ts"] + d["dur"] + 1e-3
    names = {t["args"]["name"] for t in trace["traceEvents"] if t["name"] == "thread_name"}
    assert {"dispatches", "worker 0 (calling thread)", "worker 1"} <= names

    assert stats["device"] == "cpu" and stats["threads"] == THREADS
    assert len(stats["workers"]) == THREADS
    assert all(0 <= w["utilization"] <= 1 for w in stats["workers"])
    walls = [d["total_ns"] for d in stats["dispatches"]]
    assert len(walls) == n and walls == sorted(walls, reverse=True)
    assert sum(d["share"] for d in stats["dispatches"]) <= 1 + 1e-6
    assert stats["dispatch_ns"] == sum(walls) <= stats["total_ns"]
    assert [d["index"] for d in stats["top"]] == [d["index"] for d in stats["dispatches"][:10]]
    return dispatches


def test_cpu_profile_names_dispatches_by_onnx_ops(tmp_path):
    art = _compile(tmp_path)
    trace, stats, stdout, _ = _profile(tmp_path, art, "new", "--repeat=3")
    dispatches = _check_files(trace, stats)
    ops = [d["args"]["ops"] for d in dispatches]
    assert all(d["name"] == d["args"]["ops"] for d in dispatches)
    # Every node that computes is in one dispatch, in program order there
    # (the Relu goes with the Conv or, fused into its input, the MatMul); the
    # unnamed Add goes by its output, with its MatMul; the Flatten is a view.
    nodes = ["Conv(conv1)", "Relu(relu1)", "MatMul(fc)", "Add(logits)"]
    parts = [o.split(" + ") for o in ops]
    assert sorted(sum(parts, [])) == sorted(nodes), ops
    assert all(p == sorted(p, key=nodes.index) for p in parts), ops
    assert any({"MatMul(fc)", "Add(logits)"} <= set(p) for p in parts), ops
    assert {d["ops"] for d in stats["top"]} == set(ops)

    # kiln-run's table of the last run: the slowest dispatch first, its ops.
    lines = stdout.splitlines()
    head = next(i for i, l in enumerate(lines) if l.startswith("profile of the last run on cpu:0"))
    assert f"{len(dispatches)} dispatches" in lines[head]
    slowest = lines[head + 2].split()
    assert int(slowest[0]) == stats["dispatches"][0]["index"]
    assert slowest[2].endswith("%")
    assert " ".join(slowest[3:]) == stats["dispatches"][0]["ops"]


def test_no_profile_without_the_options(tmp_path):
    art = _compile(tmp_path)
    r = run_tool("kiln-run", art, "--device=cpu")
    assert r.returncode == 0, r.stderr
    assert "profile" not in r.stdout


def _fnv1a(data):
    h = 0xcbf29ce484222325
    for b in data:
        h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


def _downgrade_to_31(path, kernel_ops, hide_marker=True):
    """Rewrites a 3.4 artifact as 3.1: without the kernel descriptions (u32
    count, then each as u32 length + bytes) and the kernel extents after
    them, which end its meta section; and its cpu image as one written before
    kernels described their bindings (its marker symbol renamed), which a 3.1
    artifact without extents runs as it always did."""
    data = bytearray(path.read_bytes())
    major, minor = struct.unpack_from("<II", data, 8)
    assert (major, minor) == (3, 4)
    marker = b"\0kiln_kernel_extents\0"
    assert marker in data
    if hide_marker:
        data = bytearray(bytes(data).replace(marker, b"\0kiln_kernel_extentX\0"))
    table, count = struct.unpack_from("<QI", data, 24)
    for i in range(count):
        at = table + 48 * i
        name, offset, size = struct.unpack_from("<32sQQ", data, at)
        if name.rstrip(b"\0") == b"meta":
            break
    record = struct.pack("<I", len(kernel_ops)) + b"".join(
        struct.pack("<I", len(o.encode())) + o.encode() for o in kernel_ops)
    start = bytes(data[offset:offset + size]).rfind(record)
    assert start > 0
    cut = size - start
    data[offset + start:offset + size] = bytes(cut)
    struct.pack_into("<32sQQ", data, at, name, offset, start)
    struct.pack_into("<I", data, 12, 1)
    struct.pack_into("<Q", data, 40, _fnv1a(data[64:]))
    path.write_bytes(bytes(data))


def test_version_31_artifact_loads_and_profiles_by_kernel(tmp_path):
    art = _compile(tmp_path)
    trace, stats, _, want = _profile(tmp_path, art, "new")
    # Kernels in entry order: the order of their first dispatch.
    kernel_ops = {}
    for d in sorted(stats["dispatches"], key=lambda d: d["index"]):
        kernel_ops.setdefault(d["kernel"], d["ops"])
    _downgrade_to_31(art, list(kernel_ops.values()))

    trace, stats, stdout, got = _profile(tmp_path, art, "old")
    np.testing.assert_array_equal(got, want)
    for d in _check_files(trace, stats):
        assert d["args"]["ops"] == "" and d["name"] == d["args"]["kernel"]
        assert d["name"].startswith("main_dispatch_")
    assert "(main_dispatch_" in stdout  # The table falls back to kernel names.


def test_described_kernels_need_the_artifacts_extents(tmp_path):
    """Cutting the extents off the meta section (and calling the file 3.1)
    would skip the loader's binding checks; kernels that describe their
    bindings refuse to run without them."""
    art = _compile(tmp_path)
    _, stats, _, _ = _profile(tmp_path, art, "new")
    kernel_ops = {}
    for d in sorted(stats["dispatches"], key=lambda d: d["index"]):
        kernel_ops.setdefault(d["kernel"], d["ops"])
    _downgrade_to_31(art, list(kernel_ops.values()), hide_marker=False)
    r = run_tool("kiln-run", art, "--threads=1")
    assert r.returncode == 1, r.stderr
    assert "the artifact does not say what the kernel's bindings reach" in r.stderr, r.stderr


def test_python_session_reports_dispatch_times(tmp_path):
    import kiln
    art = _compile(tmp_path)
    x = np.ones((1, 3, 16, 16), np.float32)
    with kiln.Session(art, device="cpu", threads=THREADS) as s:
        s.run({"x": x})
        plain = s.dispatches()
    assert any("Conv(conv1)" in d.ops for d in plain)
    assert all(d.time_ns is None and d.start_ns is None for d in plain)
    stats = tmp_path / "py.stats.json"
    with kiln.Session(art, device="cpu", threads=THREADS, stats=stats) as s:
        s.run({"x": x})
        timed = s.dispatches()
    assert [(d.kernel, d.ops, d.workgroups) for d in timed] == \
        [(d.kernel, d.ops, d.workgroups) for d in plain]
    assert timed[0].start_ns == 0 and all(d.time_ns >= 0 for d in timed)
    by_index = {d["index"]: d["total_ns"] for d in json.loads(stats.read_text())["dispatches"]}
    assert [by_index[i] for i in range(len(timed))] == [d.time_ns for d in timed]

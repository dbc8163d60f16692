#!/usr/bin/env python3
"""Runs ONNX's own backend test suite through kiln-compile and kiln-run.

For each test under <onnx>/backend/test/data/<suite>/<test>/ the model is
compiled once per distinct set of input shapes (no rebuilds), run on every
test_data_set_*, and its outputs compared with the expected ones at the
suite's tolerance (rtol 1e-3, atol 1e-7; exact shape and dtype; NaN == NaN).

Every test ends in one outcome: passed, unsupported op, compile error, wrong
result, runtime error, crash (a signal or an LLVM fatal error) or timeout.
Expected failures are listed per target in the folder of the backend that
registers it, backends/<name>/test/conformance/<target>.xfail, one
`test_name  # outcome: reason` per line; the run fails when a test not in the
list fails or a listed test passes.

Standalone:
  python test/conformance/run.py --target cpu [--suite node] [-j N]
      [--filter REGEX] [--timeout S] [--xfail FILE] [--update-xfail]
      [--ops-md docs/ops.md] [--build-dir build] [--json results.json]
"""

import argparse
import collections
import concurrent.futures
import glob
import importlib.util
import json
import multiprocessing
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np
import onnx
from onnx import numpy_helper

from checks import (COMPILE_ERROR, CRASH, OUTCOMES, PASSED, RUNTIME_ERROR, TIMEOUT,
                    UNSUPPORTED, WRONG, Failed, one_line)
from xfail import read_xfail, xfail_lists, xfail_path

SUITES = ("node", "simple", "pytorch-converted", "pytorch-operator")
RTOL, ATOL = 1e-3, 1e-7
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))

# Ops that only move shapes or constants around; for multi-node models the
# "main op" is the first node that is not one of these.
PLUMBING = {"Constant", "Identity", "Shape", "Gather", "Unsqueeze", "Squeeze",
            "Concat", "Reshape", "Cast", "Slice", "ConstantOfShape", "Size",
            "Transpose", "Flatten"}

# Inputs that ONNX defines as shape- or attribute-like (op -> input indices):
# the tests feed them as graph inputs, and Kiln compiles for their values.
# By default the runner passes them to kiln-run like any input and the
# runtime compiles the model for the values it is run with (kiln-compile
# finds which inputs those are). Only --bind-inputs, and --compile-only
# (nothing runs), bind them with kiln-compile --input-value instead, using
# this table: an input is bound when every use of it is one of these slots.
_REDUCE = ("ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd",
           "ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp",
           "ReduceSumSquare")
ATTRIBUTE_INPUTS = dict(
    [(op, (1,)) for op in _REDUCE],
    Slice=(1, 2, 3, 4), Pad=(1, 2, 3), Reshape=(1,), Expand=(1,), Tile=(1,),
    Unsqueeze=(1,), Squeeze=(1,), Split=(1,), TopK=(1,), Resize=(1, 2, 3), Upsample=(1,),
    ConstantOfShape=(0,), Range=(0, 1, 2), OneHot=(1,), Trilu=(1,),
    CumSum=(1,), CumProd=(1,), CenterCropPad=(1,), DFT=(1, 2), STFT=(1, 3),
    HannWindow=(0,), HammingWindow=(0,), BlackmanWindow=(0,), MelWeightMatrix=(0, 1, 2, 3, 4),
    Col2Im=(1, 2), AffineGrid=(1,),
    MaxUnpool=(2,),
    # Kiln unrolls loops and keeps sequences as compile-time lists: trip
    # counts, positions and split sizes decide the output shapes.
    Loop=(0, 1), SequenceAt=(1,), SequenceInsert=(2,), SequenceErase=(1,),
    SplitToSequence=(1,),
    # Whether Dropout is random at all.
    Dropout=(1, 2))

# Ops whose outputs depend on their inputs' shapes only, never their values.
SHAPE_ONLY = {"Shape", "Size"}

EXPANDED_RE = re.compile(r"_expanded(_ver\d+)?$")


def data_root():
    return os.path.join(os.path.dirname(onnx.__file__), "backend", "test",
                        "data")


def discover(suites, pattern):
    root = data_root()
    tests = []
    for suite in suites:
        d = os.path.join(root, suite)
        for name in sorted(os.listdir(d)):
            path = os.path.join(d, name)
            if not os.path.isfile(os.path.join(path, "model.onnx")):
                continue
            if pattern and not pattern.search(name):
                continue
            tests.append((suite, name, path))
    return tests


def all_test_suites():
    """Test name -> suite, for every suite (names are unique across them)."""
    root = data_root()
    return {name: suite for suite in SUITES
            for name in os.listdir(os.path.join(root, suite))}


#===--- One test (runs in a worker process) ------------------------------===#

def diagnose_compile(stderr, model_path):
    """Turns kiln-compile's stderr into (outcome, reason)."""
    msg = stderr.strip()
    for line in msg.splitlines():
        if "error:" in line:
            msg = line.split("error:", 1)[1].strip()
            break
    msg = msg.replace(model_path + ": ", "")
    m = re.search(r"node .*? \(([\w.]*?)(\w+), opset (\d+)\): unsupported "
                  r"operator '(\w+)'", msg)
    if m:
        return UNSUPPORTED, "%s%s (opset %s)" % (m.group(1), m.group(2),
                                                  m.group(3))
    m = re.search(r"node .*? \(([\w.]*?)(\w+), opset (\d+)\): operator domain "
                  r"'([\w.]+)' is not supported", msg)
    if m:
        return UNSUPPORTED, "%s%s (domain %s)" % (m.group(1), m.group(2),
                                                  m.group(4))
    # Node names in the test models are arbitrary; the op type says more.
    msg = re.sub(r"^node (?:'[^']*'|\(unnamed, output '[^']*'\)) ", "", msg)
    return COMPILE_ERROR, one_line(msg)


def is_fatal(stderr):
    return ("LLVM ERROR" in stderr or "Stack dump" in stderr or
            "PLEASE submit a bug report" in stderr)


def run_cmd(cmd, deadline, what, diagnose, capture=False, env=None):
    """Runs cmd in its own process group; raises Failed on any failure.
    Returns its stderr, and (stdout, stderr) when `capture`."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise Failed(TIMEOUT, "%s: per-test time limit reached" % what)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True,
                            env=env)
    try:
        out, err = proc.communicate(timeout=remaining)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.communicate()
        raise Failed(TIMEOUT, "%s did not finish in time" % what)
    err = err.decode("utf-8", "replace")
    if proc.returncode < 0:
        sig = signal.Signals(-proc.returncode).name
        raise Failed(CRASH, "%s killed by %s" % (what, sig))
    if proc.returncode != 0:
        if is_fatal(err):
            line = next((l for l in err.splitlines() if "LLVM ERROR" in l),
                        err.strip().splitlines()[0] if err.strip() else "")
            raise Failed(CRASH, "%s: %s" % (what, one_line(line)))
        raise Failed(*diagnose(err))
    return (out.decode("utf-8", "replace"), err) if capture else err


def tensor_dims(vi):
    """Static dims of a graph input, or None if any is symbolic/unknown."""
    t = vi.type
    if not t.HasField("tensor_type") or not t.tensor_type.HasField("shape"):
        return None
    dims = []
    for d in t.tensor_type.shape.dim:
        if not d.HasField("dim_value") or d.dim_value < 0:
            return None
        dims.append(d.dim_value)
    return dims


def subgraph_inputs(node):
    """Outer names the node's subgraphs (If branches, Loop bodies) read."""
    names = set()
    for a in node.attribute:
        for g in ([a.g] if a.HasField("g") else []) + list(a.graphs):
            for n in g.node:
                names.update(n.input)
                names |= subgraph_inputs(n)
    return names


def attribute_like_inputs(model, names):
    """Graph inputs among `names` that Kiln needs at compile time: those
    whose every use is an attribute-like slot, and those whose value flows
    (through any computation but Shape/Size) into one, since an output
    shape then depends on it (e.g. a window size cast to float for Range)."""
    def slots(n):
        if n.domain not in ("", "ai.onnx"):
            return ()
        # An If that yields sequences or optionals needs its condition at
        # compile time: it decides their length or presence.
        if n.op_type == "If" and any(
                o.type.WhichOneof("value") != "tensor_type"
                for a in n.attribute if a.HasField("g") for o in a.g.output):
            return (0,)
        return ATTRIBUTE_INPUTS.get(n.op_type, ())
    uses = collections.defaultdict(list)
    for n in model.graph.node:
        for i, x in enumerate(n.input):
            if x in names:
                uses[x].append(i in slots(n))
    bind = {x for x, u in uses.items() if u and all(u)}
    for x in set(uses) - bind:
        reach = {x}
        for n in model.graph.node:  # topologically sorted
            if any(y in reach and i in slots(n) for i, y in enumerate(n.input)):
                bind.add(x)
                break
            if n.op_type not in SHAPE_ONLY and \
                    reach & (set(n.input) | subgraph_inputs(n)):
                reach.update(n.output)
    return bind


def load_value(path, type_proto):
    """A test's input or output file: a TensorProto, SequenceProto or
    OptionalProto, as the graph declares."""
    kind = type_proto.WhichOneof("value")
    msg = {"sequence_type": onnx.SequenceProto,
           "optional_type": onnx.OptionalProto}.get(kind, onnx.TensorProto)()
    with open(path, "rb") as f:
        msg.ParseFromString(f.read())
    return msg


def flatten_value(name, type_proto, msg):
    """Kiln passes sequences and optionals as plain tensors: a sequence's
    elements as NAME[0], NAME[1], ..., a present optional as its contents
    under its own name, an empty one as nothing. Returns the (name,
    TensorProto) pairs and the kiln-compile flags that say so."""
    kind = type_proto.WhichOneof("value")
    if kind == "sequence_type":
        elems = {onnx.SequenceProto.TENSOR: msg.tensor_values,
                 onnx.SequenceProto.SEQUENCE: msg.sequence_values,
                 onnx.SequenceProto.OPTIONAL: msg.optional_values}.get(msg.elem_type, [])
        tensors, flags = [], ["--input-sequence-length=%s=%d" % (name, len(elems))]
        for i, e in enumerate(elems):
            t, f = flatten_value("%s[%d]" % (name, i), type_proto.sequence_type.elem_type, e)
            tensors += t
            flags += f
        return tensors, flags
    if kind == "optional_type":
        if msg.elem_type == onnx.OptionalProto.TENSOR:
            inner = msg.tensor_value
        elif msg.elem_type == onnx.OptionalProto.SEQUENCE:
            inner = msg.sequence_value
        else:
            return [], ["--input-absent=%s" % name]
        return flatten_value(name, type_proto.optional_type.elem_type, inner)
    return [(name, msg)], []


def data_facts(name, flags, tensors):
    """What flatten_value's flags and pinned shapes tell kiln-compile about
    input `name` that the model leaves open, for the report."""
    facts = set()
    for flag in flags:
        m = re.match(r"--input-(sequence-length|absent)=(.*?)(?:=(\d+))?$", flag)
        if m and m.group(1) == "absent":
            facts.add("'%s' is absent" % m.group(2))
        elif m:
            facts.add("'%s' has %s element%s" % (m.group(2), m.group(3),
                                                  "" if m.group(3) == "1" else "s"))
    if tensors:
        facts.add("the shapes of '%s'" % name)
    return facts


def load_pb(path):
    t = onnx.TensorProto()
    with open(path, "rb") as f:
        t.ParseFromString(f.read())
    return t


def dtype_name(elem_type):
    try:
        return onnx.helper.tensor_dtype_to_string(elem_type).replace(
            "TensorProto.", "").lower()
    except Exception:
        return "type%d" % elem_type


def value_type_name(vi):
    t = vi.type
    kind = t.WhichOneof("value")
    if kind == "tensor_type":
        return dtype_name(t.tensor_type.elem_type)
    if kind == "sequence_type":
        return "seq(%s)" % value_type_name(
            onnx.ValueInfoProto(type=t.sequence_type.elem_type))
    if kind == "optional_type":
        return "optional(%s)" % value_type_name(
            onnx.ValueInfoProto(type=t.optional_type.elem_type))
    return kind or "?"


def compare(name, expected, got):
    """Returns None if equal at the suite's tolerance, else a reason."""
    if expected.dtype != got.dtype:
        return "output '%s': dtype %s, expected %s" % (name, got.dtype,
                                                       expected.dtype)
    if expected.shape != got.shape:
        return "output '%s': shape %s, expected %s" % (name, got.shape,
                                                       expected.shape)
    if expected.size == 0:
        return None
    kind = expected.dtype.kind
    if expected.dtype.name.startswith(("float8", "float4")):
        # ml_dtypes' one-byte floats: casts to them are exact, so compare
        # bit patterns (-0 is not 0), with any NaN equal to any NaN.
        e = expected.astype(np.float32)
        g = got.astype(np.float32)
        ok = (expected.view(np.uint8) == got.view(np.uint8)) | (
            np.isnan(e) & np.isnan(g))
    elif kind in "fcV" or expected.dtype.name.startswith(("bfloat", "float")):
        e = expected.astype(np.float64)
        g = got.astype(np.float64)
        with np.errstate(invalid="ignore", over="ignore"):
            ok = np.isclose(g, e, rtol=RTOL, atol=ATOL, equal_nan=True)
    elif kind in "iub":
        ok = expected == got
    else:
        ok = np.array(expected == got)
    if ok.all():
        return None
    bad = np.argwhere(~ok)
    idx = tuple(int(i) for i in bad[0])
    return "output '%s': %d of %d elements differ, first at %s: got %s, " \
           "expected %s" % (name, len(bad), ok.size, list(idx), got[idx],
                            expected[idx])


def main_ops(model):
    ops = [(n.domain + "." if n.domain not in ("", "ai.onnx") else "") +
           n.op_type for n in model.graph.node]
    for op in ops:
        if op not in PLUMBING:
            return op, ops
    return (ops[0] if ops else "(none)"), ops


def run_test(task):
    suite, name, path, cfg = task
    start = time.monotonic()
    deadline = start + cfg["timeout"]
    info = {"suite": suite, "name": name, "op": None, "ops": [],
            "opset": None, "dtypes": [], "outcome": PASSED, "reason": "",
            "bound": [], "specialized": [], "shaped": [], "facts": []}
    tmp = tempfile.mkdtemp(prefix="kiln-conf-", dir=cfg["tmp_root"])
    try:
        model_path = os.path.join(path, "model.onnx")
        model = onnx.load(model_path, load_external_data=False)
        info["op"], info["ops"] = main_ops(model)
        info["opset"] = next((o.version for o in model.opset_import
                              if o.domain in ("", "ai.onnx")), None)
        inits = {i.name for i in model.graph.initializer}
        inputs = [i for i in model.graph.input if i.name not in inits]
        outputs = list(model.graph.output)
        info["dtypes"] = sorted({value_type_name(v) for v in inputs + outputs})
        bind = attribute_like_inputs(model, {
            i.name for i in inputs
            if i.type.WhichOneof("value") == "tensor_type"}) \
            if cfg["inputs"] == "bind" or cfg["compile_only"] else set()
        info["bound"] = sorted(bind)
        # The runtime compiles at run time into this cache, with this build.
        run_env = dict(os.environ, KILN_CACHE_DIR=os.path.join(tmp, "cache"),
                       KILN_COMPILE=cfg["compile"])
        static = ["--specialize-at-run=false"] if cfg["inputs"] == "static" else []

        sets = sorted(d for d in os.listdir(path)
                      if d.startswith("test_data_set_"))
        if not sets:
            raise Failed(COMPILE_ERROR, "test has no data sets")
        # One artifact per distinct set of pinned shapes.
        artifacts = {}
        for ds in sets:
            dsdir = os.path.join(path, ds)
            in_files = [os.path.join(dsdir, "input_%d.pb" % i)
                        for i in range(len(inputs))]
            pins = []
            for vi, f in zip(inputs, in_files):
                if vi.name in bind and os.path.exists(f):
                    with open(f, "rb") as fh:
                        pins.append(("--input-value=%s=@%s" % (vi.name, f),
                                     fh.read()))
                    continue
                if vi.type.WhichOneof("value") != "tensor_type" and os.path.exists(f):
                    tensors, flags = flatten_value(vi.name, vi.type, load_value(f, vi.type))
                    pins += flags + ["--input-shape=%s=%s" % (
                        n, "x".join(map(str, t.dims)) if t.dims else "scalar")
                        for n, t in tensors]
                    # What the compiler learns from this data set, not the model.
                    info["facts"] = sorted(set(info["facts"]) | data_facts(vi.name, flags, tensors))
                    continue
                if tensor_dims(vi) is not None or not os.path.exists(f):
                    continue
                # Symbolic dims: the runtime compiles for each shape it is
                # run with, unless the artifact must be complete up front.
                if cfg["inputs"] == "run" and not cfg["compile_only"]:
                    continue
                dims = list(load_pb(f).dims)
                pins.append("--input-shape=%s=%s" % (
                    vi.name, "x".join(map(str, dims)) if dims else "scalar"))
            # Bound values are part of the key (by content, not file name).
            key = tuple(p if isinstance(p, str) else p[1] for p in pins)
            flags = [p if isinstance(p, str) else p[0] for p in pins]
            if cfg["compile_only"]:
                if key not in artifacts:
                    out = os.path.join(tmp, "bin%d" % len(artifacts))
                    kind, validate = VALIDATORS[cfg["target"]]
                    run_cmd([cfg["compile"], model_path, "--target=" + cfg["target"],
                             "--emit=" + kind, "-o", out] + flags + cfg["compile_args"],
                            deadline,
                            "kiln-compile", lambda err: diagnose_compile(err, model_path))
                    validate(out, deadline)
                    artifacts[key] = out
                continue
            if key not in artifacts:
                art = os.path.join(tmp, "m%d.kiln" % len(artifacts))
                notes = run_cmd([cfg["compile"], model_path, "--target=" + cfg["target"],
                                 "-o", art] + flags + static + cfg["compile_args"],
                                deadline, "kiln-compile",
                                lambda err: diagnose_compile(err, model_path))
                # Inputs the artifact is compiled for at run time.
                m = re.search(r"compiles for each (value|shape) of (.*) it is run with", notes)
                if m:
                    info["specialized" if m.group(1) == "value" else "shaped"] = \
                        sorted(re.findall(r"'([^']*)'", m.group(2)))
                artifacts[key] = art
            art = artifacts[key]

            for i, f in enumerate(in_files):
                if not os.path.exists(f):
                    raise Failed(RUNTIME_ERROR, "%s has no input_%d.pb for "
                                 "input '%s'" % (ds, i, inputs[i].name))
            # Sequences and optionals travel flattened into tensors.
            feeds = []
            for vi, f in zip(inputs, in_files):
                if vi.name in bind:
                    continue
                if vi.type.WhichOneof("value") == "tensor_type":
                    feeds.append((vi.name, f))
                    continue
                tensors, _ = flatten_value(vi.name, vi.type, load_value(f, vi.type))
                for k, (n, t) in enumerate(tensors):
                    elem = os.path.join(tmp, "%s_in_%s_%d.pb" % (ds, vi.name, k))
                    t.name = n
                    with open(elem, "wb") as fh:
                        fh.write(t.SerializeToString())
                    feeds.append((n, elem))
            expected = []
            for i, vi in enumerate(outputs):
                exp_file = os.path.join(dsdir, "output_%d.pb" % i)
                tensors, _ = flatten_value(vi.name, vi.type, load_value(exp_file, vi.type))
                expected += [(n, numpy_helper.to_array(t)) for n, t in tensors]
            out_files = [os.path.join(tmp, "%s_out_%d.pb" % (ds, i))
                         for i in range(len(expected))]
            cmd = [cfg["run"], art, "--threads=1"]
            if cfg["device"]:
                cmd.append("--device=" + cfg["device"])
            cmd += ["--input=%s=@%s" % (n, f) for n, f in feeds]
            cmd += ["--output=@" + f for f in out_files]
            printed, _ = run_cmd(cmd, deadline, "kiln-run",
                                 lambda err: (RUNTIME_ERROR, one_line(
                                     err.strip().replace("kiln-run: error: ", "")
                                     .replace(tmp + "/", ""))), capture=True, env=run_env)
            got_names = re.findall(r"^output '(.*)': ", printed, re.M)
            if got_names != [n for n, _ in expected]:
                raise Failed(WRONG, one_line("%s: outputs %s, expected %s" % (
                    ds, got_names, [n for n, _ in expected])))
            for (n, want), f in zip(expected, out_files):
                got = numpy_helper.to_array(load_pb(f))
                why = compare(n, want, got)
                if why:
                    raise Failed(WRONG, one_line("%s: %s" % (ds, why)))
    except Failed as e:
        info["outcome"], info["reason"] = e.outcome, e.reason
    except Exception as e:  # A bug in the test data or this runner.
        info["outcome"] = RUNTIME_ERROR
        info["reason"] = one_line("runner: %s: %s" % (type(e).__name__, e))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    info["time"] = time.monotonic() - start
    return info


#===--- Targets checked without running them -----------------------------===#

def load_target_checks():
    """target -> (--emit stage, validate(folder, deadline)) for --compile-only,
    from every backends/<name>/conformance.py that declares COMPILE_ONLY (a
    backend describes its own checks; this runner names no target)."""
    checks = {}
    for path in sorted(glob.glob(os.path.join(REPO, "backends", "*", "conformance.py"))):
        name = "conformance_" + os.path.basename(os.path.dirname(path))
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        checks.update(getattr(module, "COMPILE_ONLY", {}))
    return checks


# What --compile-only asks kiln-compile to write, and how it is checked.
VALIDATORS = load_target_checks()


#===--- Reporting ---------------------------------------------------------===#

def is_expanded(name):
    return bool(EXPANDED_RE.search(name))


def resolve_ops(results):
    """Expanded tests report the op they expand, taken from their base test."""
    by_name = {r["name"]: r for r in results}
    for r in results:
        if r["suite"] == "node" and is_expanded(r["name"]):
            base = by_name.get(EXPANDED_RE.sub("", r["name"]))
            if base is None:
                # Not run in this invocation: read the base model directly.
                base_dir = os.path.join(data_root(), "node",
                                        EXPANDED_RE.sub("", r["name"]))
                if os.path.isfile(os.path.join(base_dir, "model.onnx")):
                    m = onnx.load(os.path.join(base_dir, "model.onnx"),
                                  load_external_data=False)
                    r["op"] = main_ops(m)[0]
            else:
                r["op"] = base["op"]


def write_xfail(path, target, entries, suite_of):
    def order(name):
        return (SUITES.index(suite_of.get(name, "node")), name)
    lines = [
        "# Expected failures of ONNX's backend tests on target '%s'." % target,
        "# Generated by test/conformance/run.py --update-xfail from a real",
        "# run; one test per line: name  # outcome: reason.",
    ]
    width = max([len(n) for n in entries] + [0])
    for suite in SUITES:
        names = sorted((n for n in entries if suite_of.get(n, "node") == suite),
                       key=order)
        if not names:
            continue
        lines.append("")
        lines.append("# --- %s ---" % suite)
        for n in names:
            lines.append("%s  # %s" % (n.ljust(width), entries[n]))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def table(rows, header):
    widths = [max(len(str(r[i])) for r in rows + [header])
              for i in range(len(header))]
    fmt = "  ".join("%%-%ds" % w if i == 0 else "%%%ds" % w
                    for i, w in enumerate(widths))
    out = [fmt % tuple(header), fmt % tuple("-" * w for w in widths)]
    out += [fmt % tuple(r) for r in rows]
    return "\n".join(out)


SHORT = {PASSED: "pass", UNSUPPORTED: "unsup", COMPILE_ERROR: "compile",
         WRONG: "wrong", RUNTIME_ERROR: "runtime", CRASH: "crash",
         TIMEOUT: "timeout"}


def report(results, suites):
    lines = []
    for suite in suites:
        rs = [r for r in results if r["suite"] == suite]
        if not rs:
            continue
        groups = [("all", rs)]
        if suite == "node":
            groups = [("non-expanded", [r for r in rs
                                        if not is_expanded(r["name"])]),
                      ("expanded", [r for r in rs if is_expanded(r["name"])]),
                      ("total", rs)]
        lines.append("")
        lines.append("=== suite %s: outcomes ===" % suite)
        header = ["outcome"] + [g for g, _ in groups]
        rows = []
        for o in OUTCOMES:
            rows.append([o] + [sum(r["outcome"] == o for r in g)
                               for _, g in groups])
        rows.append(["total"] + [len(g) for _, g in groups])
        rows.append(["pass rate"] + ["%.1f%%" % (100.0 * sum(
            r["outcome"] == PASSED for r in g) / len(g)) if g else "-"
            for _, g in groups])
        lines.append(table(rows, header))
        bound = [r for r in rs if r["outcome"] == PASSED and r.get("bound")]
        if bound:
            lines.append("of the passing tests, %d bind attribute-like graph "
                         "inputs at compile time (--input-value)" % len(bound))
        late = [r for r in rs if r["outcome"] == PASSED and r.get("specialized")]
        lines.append("of the passing tests, %d feed shape-deciding inputs at run "
                     "time, compiled for their values by the runtime" % len(late))
        shaped = [r for r in rs if r["outcome"] == PASSED and r.get("shaped")]
        if shaped:
            lines.append("of the passing tests, %d have symbolic input dims, compiled "
                         "for the run's shapes by the runtime" % len(shaped))
        told = [r for r in rs if r["outcome"] == PASSED and r.get("facts")]
        if told:
            lines.append("of the passing tests, %d were compiled with facts the runner "
                         "read from their test data (sequence lengths, absent optionals, "
                         "element shapes; docs/ops.md lists them)" % len(told))

        lines.append("")
        lines.append("=== suite %s: by op type ===" % suite)
        by_op = collections.defaultdict(list)
        for r in rs:
            by_op[r["op"] or "?"].append(r)
        header = ["op", "tests", "pass"] + \
            [SHORT[o] for o in OUTCOMES[1:]] + ["exp pass"]
        rows = []
        for op in sorted(by_op):
            g = by_op[op]
            plain = [r for r in g if not is_expanded(r["name"])]
            exp = [r for r in g if is_expanded(r["name"])]
            row = [op, len(plain), sum(r["outcome"] == PASSED for r in plain)]
            row += [sum(r["outcome"] == o for r in plain) or ""
                    for o in OUTCOMES[1:]]
            row.append("%d/%d" % (sum(r["outcome"] == PASSED for r in exp),
                                  len(exp)) if exp else "")
            rows.append(row)
        lines.append(table(rows, header))
    return "\n".join(lines)


COMPILE_ONLY_TARGETS = set(VALIDATORS)


def write_ops_md(path, results, target):
    """Per op: opsets and dtypes the node tests cover, pass counts per
    target. The running target's counts come from this run; other targets'
    from their xfail lists, which their own CI runs keep exact."""
    node = [r for r in results if r["suite"] == "node"]
    lists = xfail_lists()
    others = {t: read_xfail(f) for t, f in lists.items() if t != target}
    targets = [target] + sorted(others)
    by_op = collections.defaultdict(list)
    for r in node:
        by_op[r["op"] or "?"].append(r)

    # GPU targets' lists cover only the tests that pass on cpu (their CI
    # compiles and validates those), so they count as passing only those.
    if target == "cpu":
        cpu_passes = {r["name"] for r in node if r["outcome"] == PASSED}
    else:
        cpu_passes = {r["name"] for r in node if r["name"] not in others.get("cpu", {})}

    def passes(t, rs):
        if t == target:
            return sum(r["outcome"] == PASSED for r in rs)
        if t in COMPILE_ONLY_TARGETS:
            return sum(r["name"] in cpu_passes and r["name"] not in others[t] for r in rs)
        return sum(r["name"] not in others[t] for r in rs)

    def provenance(t):
        if t == target:
            bound = sum(r["outcome"] == PASSED and bool(r.get("bound")) for r in node)
            late = sum(r["outcome"] == PASSED and bool(r.get("specialized")) for r in node)
            told = sum(r["outcome"] == PASSED and bool(r.get("facts")) for r in node)
            return (" — %d of them feed shape-deciding inputs at run time (the runtime "
                    "compiles the model for their values)" % late +
                    (", %d bind them at compile time (`--input-value`)" % bound
                     if bound else "") +
                    (", %d are compiled with facts read from their test data (listed "
                     "at the end)" % told if told else ""))
        listed = os.path.relpath(lists[t], REPO)
        if t in COMPILE_ONLY_TARGETS:
            return (" — compiled and binaries validated, not run on a GPU: the cpu-"
                    "passing tests minus `%s`" % listed)
        return " — from `%s`" % listed

    lines = [
        "# ONNX operator coverage",
        "",
        "Generated by `python test/conformance/run.py --target %s --suite node "
        "--ops-md docs/ops.md` from ONNX %s's backend node tests; do not edit "
        "by hand." % (target, onnx.__version__),
        "",
        "Each test exercises one op (expanded tests run the op's function "
        "body and count under the op they expand). *Opsets* are the model "
        "opsets of the tests, *dtypes* the element types of their inputs and "
        "outputs. A cell is passed/total; *exp* counts the expanded tests.",
        "",
    ]
    summary = []
    for t in targets:
        plain = [r for r in node if not is_expanded(r["name"])]
        exp = [r for r in node if is_expanded(r["name"])]
        summary.append("- **%s**: %d/%d node tests (%d/%d non-expanded, "
                       "%d/%d expanded)%s" % (
                           t, passes(t, node), len(node), passes(t, plain),
                           len(plain), passes(t, exp), len(exp), provenance(t)))
    lines += summary + [""]
    header = "| op | opsets | dtypes |"
    sep = "|---|---|---|"
    for t in targets:
        header += " %s | %s exp |" % (t, t)
        sep += "---|---|"
    lines += [header, sep]
    for op in sorted(by_op):
        rs = by_op[op]
        opsets = sorted({r["opset"] for r in rs if r["opset"]})
        dtypes = sorted({d for r in rs for d in r["dtypes"]})
        row = "| %s | %s | %s |" % (op, ", ".join(map(str, opsets)),
                                    ", ".join(dtypes))
        plain = [r for r in rs if not is_expanded(r["name"])]
        exp = [r for r in rs if is_expanded(r["name"])]
        for t in targets:
            row += " %s | %s |" % (
                "%d/%d" % (passes(t, plain), len(plain)) if plain else "",
                "%d/%d" % (passes(t, exp), len(exp)) if exp else "")
        lines.append(row)
    told = sorted((r["name"], r["facts"]) for r in node
                  if r["outcome"] == PASSED and r.get("facts"))
    if told:
        lines += [
            "",
            "## Tests that pass with facts from their data",
            "",
            "Kiln compiles sequences and optionals as plain tensors, so for these %d "
            "passing tests the runner tells kiln-compile what the model leaves open, "
            "read from the test's own data: a sequence's length "
            "(`--input-sequence-length`), an absent optional (`--input-absent`) and the "
            "shapes of the elements (`--input-shape`). A user compiling such a model "
            "gives the same flags." % len(told),
            "",
            "| test | given |",
            "|---|---|",
        ]
        lines += ["| %s | %s |" % (n, "; ".join(f)) for n, f in told]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


#===--- Driver ------------------------------------------------------------===#

def default_jobs():
    for var in ("KILN_CONFORMANCE_JOBS", "CTEST_PARALLEL_LEVEL"):
        v = os.environ.get(var, "")
        if v.isdigit() and int(v) > 0:
            return int(v)
    return os.cpu_count() or 1


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--target", default="cpu")
    p.add_argument("--suite", action="append", choices=SUITES + ("all",),
                   help="suite to run (repeatable; default node)")
    p.add_argument("-j", "--jobs", type=int, default=default_jobs())
    p.add_argument("--filter", help="regex on test names")
    p.add_argument("--timeout", type=float, default=60,
                   help="seconds per test, compile and runs together")
    p.add_argument("--xfail", help="expected-failure list (default: "
                   "<target>.xfail in backends/*/test/conformance/)")
    p.add_argument("--no-xfail", action="store_true",
                   help="report only; treat every failure as unexpected")
    p.add_argument("--update-xfail", action="store_true",
                   help="rewrite the xfail list from this run")
    inputs = p.add_mutually_exclusive_group()
    inputs.add_argument("--bind-inputs", action="store_true",
                        help="bind attribute-like graph inputs (Reshape's shape, "
                        "Reduce* axes, ...) at compile time with kiln-compile "
                        "--input-value instead of feeding them at run time")
    inputs.add_argument("--no-input-values", action="store_true",
                        help="neither: kiln-compile --specialize-at-run=false, so "
                        "tests with such inputs fail (static coverage)")
    p.add_argument("--ops-md", help="write the op coverage table here")
    p.add_argument("--build-dir", default=os.environ.get(
        "KILN_BUILD_DIR", os.path.join(REPO, "build")))
    p.add_argument("--json", help="write every test's result here")
    p.add_argument("--device", help="kiln-run --device (default: the "
                   "runtime's choice)")
    p.add_argument("--compile-arg", action="append", default=[],
                   help="extra kiln-compile flag (repeatable), e.g. "
                   "--compile-arg=--max-workgroups=1")
    p.add_argument("--compile-only", action="store_true",
                   help="for GPU targets without a GPU: compile the tests "
                   "that pass on cpu and validate the binaries with the "
                   "vendor checkers of backends/<target>/conformance.py "
                   "instead of running them")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="print every test's outcome as it finishes")
    args = p.parse_args(argv)

    suites = args.suite or ["node"]
    if "all" in suites:
        suites = list(SUITES)
    suites = [s for s in SUITES if s in suites]
    if args.ops_md and "node" not in suites:
        p.error("--ops-md needs the node suite")
    compile_bin = os.path.join(args.build_dir, "bin", "kiln-compile")
    run_bin = os.path.join(args.build_dir, "bin", "kiln-run")
    for b in (compile_bin, run_bin):
        if not os.access(b, os.X_OK):
            p.error("%s not found; build first or pass --build-dir" % b)
    xfail_file = args.xfail or xfail_path(args.target)
    # A new list starts in the folder named after its target; one that
    # another folder registers (levelzero-cpu) needs its file made there.
    if (args.update_xfail and not args.xfail and args.target not in xfail_lists()
            and not os.path.isdir(os.path.join(REPO, "backends", args.target))):
        p.error("no list for %s in backends/*/test/conformance/ and no folder "
                "to start one in: create it in its backend's folder or pass "
                "--xfail" % args.target)
    xfail = {} if args.no_xfail else read_xfail(xfail_file)

    pattern = re.compile(args.filter) if args.filter else None
    tests = discover(suites, pattern)
    if args.compile_only:
        if args.target not in VALIDATORS:
            p.error("--compile-only validates %s binaries only" %
                    ", ".join(VALIDATORS))
        # The bar for a GPU target is every test that passes on cpu.
        cpu_fails = read_xfail(xfail_path("cpu"))
        tests = [t for t in tests if t[1] not in cpu_fails]
    if not tests:
        p.error("no tests match")
    tmp_root = tempfile.mkdtemp(prefix="kiln-conformance-")
    cfg = {"target": args.target, "compile": compile_bin, "run": run_bin,
           "timeout": args.timeout, "tmp_root": tmp_root,
           "device": args.device, "compile_only": args.compile_only,
           "compile_args": args.compile_arg,
           "inputs": "bind" if args.bind_inputs else
                     "static" if args.no_input_values else "run"}
    print("%s %d tests (%s) on %s with %d jobs, %gs per test" % (
        "compiling and validating" if args.compile_only else "running",
        len(tests), ", ".join(suites), args.target, args.jobs, args.timeout),
        flush=True)
    start = time.monotonic()
    results = []
    # Fork so workers inherit the imported onnx/numpy instead of re-importing.
    ctx = multiprocessing.get_context("fork")
    try:
        with concurrent.futures.ProcessPoolExecutor(args.jobs,
                                                    mp_context=ctx) as pool:
            futures = [pool.submit(run_test, (s, n, d, cfg))
                       for s, n, d in tests]
            for i, fut in enumerate(concurrent.futures.as_completed(futures)):
                r = fut.result()
                results.append(r)
                if args.verbose:
                    print("[%d/%d] %-60s %s%s" % (
                        i + 1, len(tests), r["name"], r["outcome"],
                        ": " + r["reason"] if r["reason"] else ""), flush=True)
    finally:
        shutil.rmtree(tmp_root, ignore_errors=True)
    wall = time.monotonic() - start
    results.sort(key=lambda r: (SUITES.index(r["suite"]), r["name"]))
    resolve_ops(results)

    print(report(results, suites))

    ran = {r["name"] for r in results}
    failed = [r for r in results if r["outcome"] != PASSED]
    unexpected_fail = [r for r in failed if r["name"] not in xfail]
    unexpected_pass = [r for r in results
                       if r["outcome"] == PASSED and r["name"] in xfail]
    slow = sorted(results, key=lambda r: -r["time"])[:5]
    print("\nslowest: " + ", ".join("%s %.1fs" % (r["name"], r["time"])
                                    for r in slow))
    if unexpected_fail:
        print("\nUNEXPECTED FAILURES (%d; not in %s):" % (
            len(unexpected_fail), os.path.relpath(xfail_file)))
        for r in unexpected_fail:
            print("  %s  # %s: %s" % (r["name"], r["outcome"], r["reason"]))
    if unexpected_pass:
        print("\nUNEXPECTED PASSES (%d; listed in %s, remove them):" % (
            len(unexpected_pass), os.path.relpath(xfail_file)))
        for r in unexpected_pass:
            print("  " + r["name"])

    if args.update_xfail:
        suite_of = all_test_suites()
        entries = collections.OrderedDict(
            (n, c) for n, c in read_xfail(xfail_file).items() if n not in ran)
        for r in failed:
            entries[r["name"]] = "%s: %s" % (r["outcome"], r["reason"])
        write_xfail(xfail_file, args.target, entries, suite_of)
        print("\nwrote %s (%d entries)" % (os.path.relpath(xfail_file),
                                          len(entries)))
    if args.ops_md:
        write_ops_md(args.ops_md, results, args.target)
        print("wrote %s" % args.ops_md)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)

    print("\nwall time %.1fs" % wall)
    print("%d passed, %d failed" % (len(results) - len(failed), len(failed)))
    if args.update_xfail:
        return 0
    return 1 if unexpected_fail or unexpected_pass else 0


if __name__ == "__main__":
    sys.exit(main())

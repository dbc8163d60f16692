"""torch.compile(model, backend="kiln"): TorchDynamo hands each captured FX
graph to `backend`, which exports it to ONNX, compiles it with kiln-compile and
runs it through kiln.Session; what Kiln cannot take runs eagerly, after one
KilnFallbackWarning naming the reason (the op, where there is one).

    compiled = torch.compile(model, backend="kiln", options={"threads": 2})
    with torch.no_grad():
        y = compiled(x)

Options: target (kiln-compile --target, default "cpu"), device (Session's,
default: the runtime's choice), threads (0: the runtime's default).

Exporter: torch's TorchScript exporter (torch.onnx.export(dynamo=False)).
A Dynamo graph is already a straight line of torch calls on real example
inputs, which is exactly what tracing records; the torch.export-based exporter
would trace it a second time (about 8x slower on a small BERT), needs
onnxscript on top of torch, and turns ops such as torchvision's roi_pool into
conversion errors instead of ONNX nodes. The TorchScript exporter has been
deprecated since torch 2.9 (still whole in 2.15): _export is the one place
to change when it goes.

Tensors cross as numpy arrays on the CPU; outputs are fresh tensors, never
views of the inputs as eager's may be.

Shapes: each call is served by an artifact compiled for its exact input shapes
(and the values of any SymInt inputs), cached per graph, so dynamic=True and
Dynamo's automatic dynamic shapes are correct without symbolic ONNX exports.

Weights: inputs Dynamo marks as static (parameters and buffers) are baked in
as ONNX initializers, so Kiln folds them; a call that passes another tensor
there, or one modified in place since (load_state_dict, an optimizer step),
recompiles.

Autograd: Kiln compiles inference. A graph captured with grad mode on and an
input that requires grad runs eagerly (Dynamo guards on both, so this holds
for every call that reaches it).
"""
import collections
import contextlib
import importlib.metadata
import io
import os
import re
import sys
import tempfile
import warnings

import torch
from torch._dynamo.utils import get_static_address_type

from . import CompileError, Session
from . import compile as kiln_compile

__all__ = ["backend", "KilnFallbackWarning"]

_OPTIONS = ("target", "device", "threads")
# The TorchScript exporter's default; Kiln imports every opset up to its newest.
_OPSET = 18
# Distinct input shapes kept compiled per graph (each holds a session).
_CACHE_SIZE = 8
# Tensor dtypes that numpy, and so kiln.Session, can carry.
_DTYPES = {torch.float32, torch.float64, torch.float16, torch.int8, torch.int16,
           torch.int32, torch.int64, torch.uint8, torch.bool}


class KilnFallbackWarning(UserWarning):
    """A graph runs eagerly because Kiln cannot compile it."""


class _Fallback(Exception):
    """Why a graph cannot go to Kiln; the message becomes the warning."""


def backend(gm, example_inputs, *, options=None, mode=None, name=None, **kwargs):
    """The Dynamo backend. `options` (from torch.compile(options=...)) and
    keyword arguments may set target, device and threads; `mode` and `name`,
    which torch.compile also passes, change nothing here."""
    opts = {**(options or {}), **kwargs}
    unknown = sorted(set(opts) - set(_OPTIONS))
    if unknown:
        raise ValueError(f"kiln backend: unknown option(s) {unknown}; known: {list(_OPTIONS)}")
    if torch.is_grad_enabled() and any(
            isinstance(x, torch.Tensor) and x.requires_grad for x in example_inputs):
        _warn("gradients are required (grad mode is on and an input requires grad) and Kiln "
              "compiles inference only; run under torch.no_grad() or torch.inference_mode()")
        return gm.forward
    graph = _Graph(gm, example_inputs, opts)
    if any(isinstance(x, (torch.SymInt, torch.SymFloat, torch._subclasses.FakeTensor))
           for x in example_inputs):
        return graph  # sizes still symbolic: compile on the first call, for its sizes
    try:
        graph.compile_for(example_inputs)
    except _Fallback as e:
        _warn(str(e))
        return gm.forward
    return graph


def _warn(reason):
    # Attributed to this line, not the caller's (deep in Dynamo): Python's
    # default filter then shows each reason once per process.
    warnings.warn(f"kiln: running this graph eagerly: {reason}", KilnFallbackWarning)


class _Graph:
    """One Dynamo graph: a Kiln session per distinct input signature."""

    def __init__(self, gm, example_inputs, opts):
        self.gm = gm
        self.opts = opts
        self.static = [i for i, x in enumerate(example_inputs)
                       if isinstance(x, torch.Tensor) and get_static_address_type(x) is not None]
        self.others = [i for i in range(len(example_inputs)) if i not in self.static]
        self.baked = None  # [(tensor, _version)] the cached sessions were built from
        self.sessions = collections.OrderedDict()
        self.eager = False

    def __call__(self, *args):
        if self.eager:
            return self.gm.forward(*args)
        try:
            run = self.compile_for(args)
        except _Fallback as e:  # a later shape (or a deferred first one) Kiln cannot take
            _warn(str(e))
            self.eager = True
            return self.gm.forward(*args)
        return run(args)

    def compile_for(self, args):
        if self.baked is not None and any(
                args[i] is not t or t._version != v for i, (t, v) in zip(self.static, self.baked)):
            self.sessions.clear()
        self.baked = [(args[i], args[i]._version) for i in self.static]
        key = tuple((tuple(x.shape), x.dtype) if isinstance(x, torch.Tensor) else x
                    for x in map(args.__getitem__, self.others))
        run = self.sessions.get(key)
        if run is None:
            run = self._build(args)
            self.sessions[key] = run
            if len(self.sessions) > _CACHE_SIZE:
                self.sessions.popitem(last=False)
        else:
            self.sessions.move_to_end(key)
        return run

    def _build(self, args):
        for x in args:
            if isinstance(x, torch.Tensor) and x.dtype not in _DTYPES:
                raise _Fallback(f"an input has dtype {x.dtype}, which Kiln's Python binding "
                                "cannot pass")
        outs = self.gm.graph.output_node().args[0]
        if not all(isinstance(n, torch.fx.Node) and isinstance(
                n.meta.get("example_value", torch.empty(0)), torch.Tensor) for n in outs):
            raise _Fallback("the graph returns something other than tensors")
        model, dynamic = self._export(args)
        fd, art = tempfile.mkstemp(suffix=".kiln", prefix="kiln-dynamo-")
        os.close(fd)
        try:
            try:
                kiln_compile(model, art, target=self.opts.get("target", "cpu"))
            except CompileError as e:
                raise _Fallback(_describe_compile_error(str(e))) from None
            session = Session(art, device=self.opts.get("device"),
                              threads=self.opts.get("threads", 0))
        finally:  # the session maps the whole artifact: the file can go (weights make it large)
            os.unlink(art)
        if len(session.outputs) != len(outs):
            raise _Fallback(f"the ONNX export has {len(session.outputs)} outputs where the "
                            f"graph has {len(outs)}")
        wanted = {t.name for t in session.inputs}  # the exporter drops unused inputs
        feeds = [(f"in{i}", i) for i in dynamic if f"in{i}" in wanted]
        device = next((x.device for x in args if isinstance(x, torch.Tensor)),
                      torch.device("cpu"))

        def run(call_args):
            results = session.run({name: _to_numpy(call_args[i]) for name, i in feeds})
            out = [torch.from_numpy(r) for r in results]
            return [o.to(device) for o in out] if device.type != "cpu" else out
        return run

    def _export(self, args):
        """ONNX bytes for this call's signature: static inputs become
        initializers, ints constants, the other tensors inputs in<position>.
        It traces clones: tracing runs the graph, and what it does in place to
        an input (a version counter moves) ONNX cannot express."""
        clones = [x.detach().clone() if isinstance(x, torch.Tensor) else x for x in args]
        versions = [x._version if isinstance(x, torch.Tensor) else None for x in clones]
        dynamic = [i for i in self.others if isinstance(args[i], torch.Tensor)]
        module = _Bound(self.gm, clones, self.static, dynamic)
        buf = io.BytesIO()
        try:
            with warnings.catch_warnings(), torch.no_grad(), _stdout_silenced():
                warnings.simplefilter("ignore")  # the exporter's deprecation and tracer notes
                torch.onnx.export(module, tuple(clones[i] for i in dynamic), buf, dynamo=False,
                                  opset_version=_OPSET,
                                  input_names=[f"in{i}" for i in dynamic])
        except Exception as e:  # noqa: BLE001 - any export failure means eager, said once
            raise _Fallback(_describe_export_error(e)) from None
        for x, v in zip(clones, versions):
            if isinstance(x, torch.Tensor) and x._version != v:
                raise _Fallback("the graph modifies one of its inputs in place, which an ONNX "
                                "model cannot do")
        return buf.getvalue(), dynamic


class _Bound(torch.nn.Module):
    """The graph with every input but the dynamic tensors bound: static
    tensors as buffers (so they export as initializers), the rest as
    constants of this signature."""

    def __init__(self, gm, args, static, dynamic):
        super().__init__()
        self.gm = gm
        self.args = list(args)
        self.static = static
        self.dynamic = dynamic
        for k, i in enumerate(static):
            self.register_buffer(f"c{k}", args[i])

    def forward(self, *tensors):
        args = list(self.args)
        for k, i in enumerate(self.static):
            args[i] = getattr(self, f"c{k}")
        for i, t in zip(self.dynamic, tensors):
            args[i] = t
        return tuple(self.gm(*args))


@contextlib.contextmanager
def _stdout_silenced():
    """On a failed export torch's C++ prints both graphs to stdout (file
    descriptor 1, past sys.stdout); the warning already says what failed."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def _to_numpy(x):
    return x.detach().cpu().numpy()


_KILN_NODE = re.compile(r"node '([^']*)' \(([\w.]+), opset (\d+)\): (.*)")


def _describe_compile_error(message):
    """Kiln's error, led by the op it names: "kiln-compile: error: m.onnx:
    node '/X' (MaxRoiPool, opset 18): unsupported operator 'MaxRoiPool'"."""
    m = _KILN_NODE.search(message)
    if m is None:
        return f"kiln-compile failed: {message}"
    node, op, opset, what = m.groups()
    return f"Kiln cannot compile ONNX op {op} (opset {opset}, node '{node}'): {what}"


_TORCH_OP = re.compile(r"operator '([\w:.]+)'")


def _describe_export_error(e):
    m = _TORCH_OP.search(str(e))
    first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    if m is not None:
        return f"torch's ONNX exporter cannot export {m.group(1)}: {first}"
    return f"torch's ONNX exporter failed: {type(e).__name__}: {first}"


def _register():
    # An installed kiln declares this backend as an entry point, which torch
    # loads and registers itself (registering twice is an error there); the
    # in-tree package registers on import.
    if importlib.metadata.entry_points(group="torch_dynamo_backends", name="kiln"):
        return
    try:
        torch._dynamo.register_backend(backend, name="kiln")
    except AssertionError:  # "duplicate name": this module was imported again (a reload)
        pass


_register()

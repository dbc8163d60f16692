"""ONNX's backend API (onnx.backend.base) over kiln.compile and kiln.Session.

>>> import kiln.backend
>>> rep = kiln.backend.prepare(model, "CPU")
>>> (y,) = rep.run([x])

Devices are "CPU", "CUDA", "HIP", "LEVELZERO" and "NPU", optionally with an
index ("CUDA:1"); each compiles for the Kiln target of that name. Errors are
kiln.CompileError and kiln.RuntimeError, with Kiln's message.

Sequence and optional values travel as Kiln passes them (docs/design.md,
Import): a sequence's elements as inputs and outputs NAME[0], NAME[1], ...,
a present optional as its contents, an absent one as nothing. How many
elements a sequence input has, and their shapes, are compile-time facts, so
a model with such inputs is compiled on its first run with each.
"""
import os
import tempfile

import numpy as np
import onnx
from onnx.backend.base import Backend, BackendRep, namedtupledict

from . import Session, devices
from . import compile as _compile

__all__ = ["KilnBackend", "KilnRep", "prepare", "run_model", "run_node",
           "supports_device", "is_compatible"]

# ONNX device kind -> Kiln target (and runtime driver) name.
_TARGETS = {"CPU": "cpu", "CUDA": "cuda", "HIP": "hip", "LEVELZERO": "levelzero",
            "NPU": "npu"}


def _parse_device(device):
    """'CUDA:1' -> ('cuda', 'cuda:1'); 'CPU' -> ('cpu', 'cpu:0')."""
    kind, _, index = str(device).partition(":")
    target = _TARGETS.get(kind.upper())
    if target is None or (index and not index.isdigit()):
        raise ValueError(f"unknown device '{device}'; Kiln's are "
                         + ", ".join(_TARGETS) + " (optionally with ':<index>')")
    return target, f"{target}:{index or 0}"


def _kind(type_proto):
    return type_proto.WhichOneof("value")


def _flatten(name, type_proto, value, feeds, flags):
    """Adds `value` of graph type `type_proto` to `feeds` as Kiln's tensors
    and to `flags` the kiln-compile options that describe its structure."""
    kind = _kind(type_proto)
    if kind == "sequence_type":
        elems = list(value) if value is not None else []
        flags.append(f"--input-sequence-length={name}={len(elems)}")
        for i, e in enumerate(elems):
            _flatten(f"{name}[{i}]", type_proto.sequence_type.elem_type, e, feeds, flags)
    elif kind == "optional_type":
        if value is None:
            flags.append(f"--input-absent={name}")
        else:
            _flatten(name, type_proto.optional_type.elem_type, value, feeds, flags)
    else:
        feeds[name] = np.asarray(value)


def _regroup(name, type_proto, outs):
    """The inverse of _flatten for one graph output: takes its tensors from
    `outs` (name -> array)."""
    kind = _kind(type_proto)
    if kind == "sequence_type":
        elems, i = [], 0
        elem_type = type_proto.sequence_type.elem_type
        while f"{name}[{i}]" in outs or (_kind(elem_type) != "tensor_type" and any(
                k.startswith(f"{name}[{i}][") for k in outs)):
            elems.append(_regroup(f"{name}[{i}]", elem_type, outs))
            i += 1
        return elems
    if kind == "optional_type":
        inner = type_proto.optional_type.elem_type
        if _kind(inner) == "tensor_type":
            return outs.get(name)
        return _regroup(name, inner, outs) if any(
            k.startswith(name + "[") for k in outs) else None
    return outs[name]


class KilnRep(BackendRep):
    """A model compiled for one device; run() takes the graph inputs (a list
    in graph order, a dict by name, or one array) and returns the outputs in
    graph order, also reachable by name."""

    def __init__(self, model, target, device, threads=0, input_shapes=None,
                 compile_args=()):
        self._model = model.SerializeToString()
        inits = {i.name for i in model.graph.initializer}
        self._inputs = [i for i in model.graph.input if i.name not in inits]
        self._outputs = list(model.graph.output)
        self._target, self._device, self._threads = target, device, threads
        self._input_shapes, self._compile_args = input_shapes, tuple(compile_args)
        # Key: the kiln-compile flags a run's sequences and optionals imply.
        self._sessions = {}
        if all(_kind(i.type) == "tensor_type" for i in self._inputs):
            self._session(())  # Fail here, not at the first run.

    def _session(self, flags):
        s = self._sessions.get(flags)
        if s is None:
            fd, path = tempfile.mkstemp(suffix=".kiln", prefix="kiln-backend-")
            os.close(fd)
            try:
                _compile(self._model, path, self._input_shapes, self._target,
                         self._compile_args + flags)
                s = Session(path, device=self._device, threads=self._threads)
            finally:
                os.unlink(path)  # The session keeps it mapped.
            self._sessions[flags] = s
        return s

    def run(self, inputs, **kwargs):
        if kwargs:
            raise TypeError("KilnRep.run takes no options, got " + ", ".join(kwargs))
        if isinstance(inputs, dict):
            values = inputs
        else:
            if isinstance(inputs, np.ndarray):
                inputs = [inputs]
            inputs = list(inputs)
            if len(inputs) != len(self._inputs):
                raise ValueError(f"the model has {len(self._inputs)} inputs "
                                 f"({', '.join(i.name for i in self._inputs)}), "
                                 f"got {len(inputs)}")
            values = {i.name: v for i, v in zip(self._inputs, inputs)}
        known = {i.name for i in self._inputs}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"no graph input named {', '.join(unknown)}; "
                             f"the model's are {', '.join(sorted(known))}")
        feeds, flags = {}, []
        for vi in self._inputs:
            if vi.name not in values:
                raise ValueError(f"input '{vi.name}' not given")
            if _kind(vi.type) == "tensor_type":
                feeds[vi.name] = np.asarray(values[vi.name])
                continue
            seq_feeds = {}
            _flatten(vi.name, vi.type, values[vi.name], seq_feeds, flags)
            # The structure is compiled in, and so are the elements' shapes.
            flags += [f"--input-shape={n}=" + ("x".join(map(str, a.shape)) or "scalar")
                      for n, a in seq_feeds.items()]
            feeds.update(seq_feeds)
        session = self._session(tuple(flags))
        results = session.run(feeds)
        outs = dict(zip(session.output_names(), results))
        values = [_regroup(o.name, o.type, outs) for o in self._outputs]
        return namedtupledict("Outputs", [o.name for o in self._outputs])(*values)


class KilnBackend(Backend):
    @classmethod
    def is_compatible(cls, model, device="CPU", **kwargs):
        # Whether Kiln supports the model is kiln-compile's to say (prepare).
        return cls.supports_device(device)

    @classmethod
    def prepare(cls, model, device="CPU", threads=0, input_shapes=None, compile_args=()):
        """Compiles `model` (an onnx.ModelProto, its bytes or a path) for
        `device`. threads: the session's worker threads (0: the runtime's
        choice); input_shapes: {input: shape} pinning symbolic dims, else
        compiled per shape at run time; compile_args: more kiln-compile flags."""
        if isinstance(model, (bytes, bytearray)):
            model = onnx.load_model_from_string(bytes(model))
        elif isinstance(model, (str, os.PathLike)):
            model = onnx.load(os.fspath(model))
        target, runtime_device = _parse_device(device)
        return KilnRep(model, target, runtime_device, threads, input_shapes, compile_args)

    @classmethod
    def run_model(cls, model, inputs, device="CPU", **kwargs):
        return cls.prepare(model, device, **kwargs).run(inputs)

    @classmethod
    def run_node(cls, node, inputs, device="CPU", outputs_info=None, **kwargs):
        """Runs one node on `inputs` (a list in node-input order or a dict
        by name). opset_version=N picks the default domain's opset;
        outputs_info [(dtype, shape)] declares the outputs, else they are
        inferred."""
        opset = kwargs.pop("opset_version", None)
        if isinstance(inputs, dict):
            feeds = dict(inputs)
        else:
            names = [n for n in node.input if n]
            feeds = dict(zip(names, inputs))
        graph_inputs = [onnx.helper.make_tensor_value_info(
            n, onnx.helper.np_dtype_to_tensor_dtype(np.asarray(v).dtype), np.shape(v))
            for n, v in feeds.items()]
        if outputs_info is not None:
            graph_outputs = [onnx.helper.make_tensor_value_info(
                n, onnx.helper.np_dtype_to_tensor_dtype(np.dtype(dt)), shape)
                for n, (dt, shape) in zip(node.output, outputs_info)]
        else:
            graph_outputs = [onnx.ValueInfoProto(name=n) for n in node.output if n]
        imports = [onnx.helper.make_opsetid("", opset or onnx.defs.onnx_opset_version())]
        if node.domain not in ("", "ai.onnx"):
            imports.append(onnx.helper.make_opsetid(
                node.domain, onnx.defs.get_schema(node.op_type, domain=node.domain).since_version))
        model = onnx.helper.make_model(
            onnx.helper.make_graph([node], f"run_node_{node.op_type}", graph_inputs,
                                   graph_outputs),
            opset_imports=imports)
        if outputs_info is None:
            model = onnx.shape_inference.infer_shapes(model, strict_mode=True)
        return cls.run_model(model, feeds, device, **kwargs)

    @classmethod
    def supports_device(cls, device):
        """Whether a device of this kind is present and usable here."""
        try:
            target, name = _parse_device(device)
        except ValueError:
            return False
        return any(d[0] == name and d[1] == target and d[3] for d in devices())


prepare = KilnBackend.prepare
run_model = KilnBackend.run_model
run_node = KilnBackend.run_node
supports_device = KilnBackend.supports_device
is_compatible = KilnBackend.is_compatible

"""Kiln from Python: compile ONNX models with kiln-compile and run the
resulting .kiln artifacts through libkiln_runtime (ctypes).

Installed with `pip install <checkout>`, the package holds kiln-compile,
kiln-run and the runtime library; from a checkout, the build tree is
$KILN_BUILD_DIR (default: <repo>/build), which also wins over an install.
"""
import os
import subprocess
import tempfile

from . import _paths
from .runtime import Artifact, RuntimeError, Session, TensorInfo, devices

__all__ = ["compile", "CompileError", "RuntimeError", "Session", "Artifact",
           "TensorInfo", "devices", "build_dir"]

build_dir = _paths.build_dir


class CompileError(Exception):
    """kiln-compile failed; the message is its stderr."""

    def __init__(self, message, returncode=None, stderr=""):
        super().__init__(message)
        self.returncode = returncode
        self.stderr = stderr


def compile(model, out_path=None, input_shapes=None, target="cpu",  # noqa: A001
            extra_args=(), timeout=300):
    """Compiles `model` (a path, an onnx.ModelProto or serialized bytes) into a .kiln file.

    input_shapes: {input name: shape sequence} pinning symbolic dims. Inputs
    left with symbolic dims, and graph inputs whose values decide shapes
    (Reshape's shape, Reduce* axes...), make an artifact that the runtime
    compiles for each run's shapes and values (Artifact.specializes_on).
    Returns the artifact path. Raises CompileError with kiln-compile's stderr.
    """
    tmp = None
    if isinstance(model, (str, os.PathLike)):
        model_path = os.fspath(model)
    else:  # an onnx.ModelProto (anything with SerializeToString) or bytes
        data = model if isinstance(model, (bytes, bytearray)) else model.SerializeToString()
        fd, tmp = tempfile.mkstemp(suffix=".onnx", prefix="kiln-")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        model_path = tmp
    if out_path is None:
        if tmp is not None:
            fd, out_path = tempfile.mkstemp(suffix=".kiln", prefix="kiln-")
            os.close(fd)
        else:
            out_path = os.path.splitext(model_path)[0] + ".kiln"
    out_path = os.fspath(out_path)
    cmd = [str(_paths.tool("kiln-compile")), model_path, f"--target={target}", "-o", out_path]
    for name, shape in (input_shapes or {}).items():
        cmd.append(f"--input-shape={name}=" + "x".join(str(int(d)) for d in shape))
    cmd.extend(extra_args)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    finally:
        if tmp is not None:
            os.unlink(tmp)
    if proc.returncode != 0:
        msg = proc.stderr.strip() or f"kiln-compile exited with status {proc.returncode}"
        raise CompileError(msg, proc.returncode, proc.stderr)
    return out_path

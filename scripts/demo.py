"""Compiles the bundled example, runs it with kiln-run on the cpu, and compares
with onnxruntime on the same inputs."""
import os
import subprocess
import sys
import tempfile

import numpy as np
import onnx
import onnxruntime as ort

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
bindir = os.path.join(os.environ.get("KILN_BUILD_DIR", os.path.join(root, "build")), "bin")
model_path = os.path.join(root, "examples", "transformer.onnx")


def run(cmd):
    print("$ " + " ".join(os.path.relpath(c, root) if c.startswith(root) else c for c in cmd), flush=True)
    subprocess.run(cmd, check=True)


with tempfile.TemporaryDirectory() as tmp:
    artifact = os.path.join(tmp, "transformer.kiln")
    run([os.path.join(bindir, "kiln-compile"), model_path, "--target=cpu", "-o", artifact, "-v"])

    model = onnx.load(model_path)
    rng = np.random.default_rng(0)
    feeds, args = {}, []
    for inp in model.graph.input:
        shape = [d.dim_value for d in inp.type.tensor_type.shape.dim]
        x = rng.standard_normal(shape).astype(np.float32)
        path = os.path.join(tmp, inp.name + ".npy")
        np.save(path, x)
        feeds[inp.name] = x
        args.append(f"--input={inp.name}=@{path}")
    outs = [os.path.join(tmp, f"out{i}.npy") for i in range(len(model.graph.output))]
    run([os.path.join(bindir, "kiln-run"), artifact, *args, *[f"--output=@{o}" for o in outs]])

    ref = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"]).run(None, feeds)
    worst = 0.0
    for out, path, want in zip(model.graph.output, outs, ref):
        got = np.load(path)
        diff = float(np.max(np.abs(got - want)))
        worst = max(worst, diff)
        ok = np.allclose(got, want, rtol=1e-4, atol=1e-5)
        print(f"{out.name}: {got.dtype}{list(got.shape)} max |kiln - onnxruntime| = {diff:.3g} "
              f"({'within' if ok else 'OUTSIDE'} rtol 1e-4, atol 1e-5)")
    print(f"largest difference from onnxruntime: {worst:.3g}")
    sys.exit(0 if worst <= 1e-3 else 1)

"""Per-engine utilization of the e2e models on the simulated npu.

  python benchmarks/npu_util.py [--autocast matmul|none] [model ...]

Compiles each model of test/e2e/models.py with --target=npu, runs it once with
kiln-run --device=npu --stats=..., and prints the simulated time and each
engine's busy fraction (busy time / total, from the simulator's stats JSON),
for the whole model and then per dispatch, each dispatch named by the ONNX
ops fused into it (read from the kernels' locations, --emit=codegen
--mlir-print-debuginfo). Models the npu lowering rejects are listed with the
compiler's message."""
import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "test" / "e2e"))
import onnx  # noqa: E402
from models import LARGE_MODELS, MODELS, build  # noqa: E402

ENGINES = ["tensor", "vector", "scalar", "gpsimd", "dma"]


def kernel_ops(bindir, onnx_path, model, autocast):
    """kernel name -> the ONNX ops (type:name) its body came from."""
    r = subprocess.run([bindir / "kiln-compile", onnx_path, "--target=npu", "--emit=codegen",
                        f"--npu-autocast={autocast}", "--mlir-print-debuginfo",
                        "--mlir-print-local-scope"], capture_output=True, text=True, check=True)
    op_of = {}
    for n in model.graph.node:
        for key in [n.name, *n.output]:
            if key:
                op_of.setdefault(key, n.op_type)
    ops, current = {}, None
    for line in r.stdout.splitlines():
        m = re.match(r"\s*func\.func @(\w+)", line)
        if m:
            current = m.group(1)
            ops[current] = []
            continue
        # Views, temporaries and constants carry the location of whatever
        # made them; the computing ops say what the kernel fused.
        if current is None or re.search(r"memref\.|arith\.constant", line):
            continue
        for name in re.findall(r'loc\("([^"]+)"\(', line):
            label = f"{op_of.get(name, '?')}:{name}"
            if name in op_of and label not in ops[current]:
                ops[current].append(label)
    return ops


def row(label, total, engines):
    util = [100.0 * engines[e]["busy_ns"] / total if total else 0 for e in ENGINES]
    n = sum(engines[e]["instructions"] for e in ENGINES)
    return f"{label:<22} {total / 1e3:9.2f} " + " ".join(f"{u:6.1f}%" for u in util) + f" {n:7d}"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("models", nargs="*", default=sorted(MODELS) + sorted(LARGE_MODELS))
    p.add_argument("--autocast", default="matmul", choices=["matmul", "none"])
    p.add_argument("--build-dir", default=str(REPO / "build"))
    a = p.parse_args()
    bindir = Path(a.build_dir) / "bin"
    print(f"{'model / dispatch':<22} {'sim us':>9} " + " ".join(f"{e:>7}" for e in ENGINES)
          + "  instrs  ONNX ops")
    with tempfile.TemporaryDirectory() as d:
        for name in a.models:
            onnx_path, kiln_path, stats = (Path(d) / f"{name}.{x}" for x in ("onnx", "kiln", "json"))
            model = build(name)
            onnx.save(model, str(onnx_path))
            r = subprocess.run([bindir / "kiln-compile", onnx_path, "--target=npu",
                                f"--npu-autocast={a.autocast}", "-o", kiln_path],
                               capture_output=True, text=True)
            if r.returncode:
                print(f"{name:<22} not lowered: {r.stderr.strip().splitlines()[-1][:110]}")
                continue
            r = subprocess.run([bindir / "kiln-run", kiln_path, "--device=npu",
                                f"--stats={stats}"], capture_output=True, text=True)
            if r.returncode:
                print(f"{name:<22} run failed: {r.stderr.strip()[:110]}")
                continue
            s = json.loads(stats.read_text())
            print(row(name, s["total_ns"], s["engines"]))
            ops = kernel_ops(bindir, onnx_path, model, a.autocast)
            for disp in s["dispatches"]:
                kernel = disp["kernel"]
                label = "  " + kernel.replace("main_dispatch_", "dispatch ")
                print(row(label, disp["total_ns"], disp["engines"]) + "  "
                      + " ".join(ops.get(kernel, ["?"])))

if __name__ == "__main__":
    main()

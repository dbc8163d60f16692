"""Per-engine utilization of the e2e models on the simulated npu.

  python benchmarks/npu_util.py [--autocast matmul|none] [model ...]

Compiles each model of test/e2e/models.py with --target=npu, runs it once with
kiln-run --device=npu --stats=..., and prints the simulated time and each
engine's busy fraction (busy time / total, from the simulator's stats JSON).
Models the npu lowering rejects are listed with the compiler's message."""
import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "test" / "e2e"))
import onnx  # noqa: E402
from models import LARGE_MODELS, MODELS, build  # noqa: E402

ENGINES = ["tensor", "vector", "scalar", "gpsimd", "dma"]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("models", nargs="*", default=sorted(MODELS) + sorted(LARGE_MODELS))
    p.add_argument("--autocast", default="matmul", choices=["matmul", "none"])
    p.add_argument("--build-dir", default=str(REPO / "build"))
    a = p.parse_args()
    bindir = Path(a.build_dir) / "bin"
    print(f"{'model':<15} {'sim us':>9} " + " ".join(f"{e:>7}" for e in ENGINES) + "  instrs")
    with tempfile.TemporaryDirectory() as d:
        for name in a.models:
            onnx_path, kiln_path, stats = (Path(d) / f"{name}.{x}" for x in ("onnx", "kiln", "json"))
            onnx.save(build(name), str(onnx_path))
            r = subprocess.run([bindir / "kiln-compile", onnx_path, "--target=npu",
                                f"--npu-autocast={a.autocast}", "-o", kiln_path],
                               capture_output=True, text=True)
            if r.returncode:
                print(f"{name:<15} not lowered: {r.stderr.strip().splitlines()[-1][:110]}")
                continue
            r = subprocess.run([bindir / "kiln-run", kiln_path, "--device=npu",
                                f"--stats={stats}"], capture_output=True, text=True)
            if r.returncode:
                print(f"{name:<15} run failed: {r.stderr.strip()[:110]}")
                continue
            s = json.loads(stats.read_text())
            total = s["total_ns"]
            util = [100.0 * s["engines"][e]["busy_ns"] / total if total else 0 for e in ENGINES]
            n = sum(s["engines"][e]["instructions"] for e in ENGINES)
            print(f"{name:<15} {total / 1e3:9.2f} " + " ".join(f"{u:6.1f}%" for u in util) + f"  {n}")


if __name__ == "__main__":
    main()

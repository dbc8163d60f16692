#!/usr/bin/env python3
"""Kiln vs onnxruntime latency on the e2e models.

Compiles each model with kiln-compile, then times kiln (ctypes Session,
`threads=T`) and onnxruntime (intra_op_num_threads=T, inter_op 1) on the same
inputs, alternating one run of each per iteration after a warm-up, and prints
median latencies, their ratio and the largest absolute output difference.

    .venv/bin/python benchmarks/bench.py [--threads 1] [--iters 50]
"""
import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "python"), str(REPO / "test" / "e2e")]

import kiln  # noqa: E402
import models  # noqa: E402

ALL = list(models.MODELS) + list(models.LARGE_MODELS)


def inputs_for(model, rng):
    feeds = {}
    for vi in model.graph.input:
        shape = [d.dim_value for d in vi.type.tensor_type.shape.dim]
        feeds[vi.name] = rng.standard_normal(shape).astype(np.float32)
    return feeds


def bench(name, workdir, threads, iters, warmup):
    model = models.build(name)
    t0 = time.perf_counter()
    artifact = kiln.compile(model, Path(workdir) / f"{name}.kiln")
    compile_s = time.perf_counter() - t0
    feeds = inputs_for(model, np.random.default_rng(0))

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # The two runtimes alternate in one process: onnxruntime's workers would
    # otherwise spin after each run and take the cores from kiln's pool (kiln's
    # workers block instead).
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    ref = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    sess = kiln.Session(artifact, threads=threads)

    # Bind inputs once for kiln (they persist); time run + output copy, like
    # ORT's run which also returns fresh output arrays.
    for k, v in feeds.items():
        sess.set_input(k, v)
    for _ in range(warmup):
        sess.run()
        ref.run(None, feeds)
    tk, to = [], []
    for _ in range(iters):
        t = time.perf_counter()
        got = sess.run()
        tk.append(time.perf_counter() - t)
        t = time.perf_counter()
        want = ref.run(None, feeds)
        to.append(time.perf_counter() - t)
    diff = max(float(np.max(np.abs(g - w))) for g, w in zip(got, want))
    sess.close()
    return dict(model=name, kiln=np.median(tk) * 1e3, ort=np.median(to) * 1e3,
                diff=diff, compile=compile_s)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=1, help="threads for both runtimes (default 1)")
    ap.add_argument("--iters", type=int, default=50, help="timed iterations per model (default 50)")
    ap.add_argument("--warmup", type=int, default=5, help="untimed runs first (default 5)")
    ap.add_argument("--models", default=",".join(ALL), help="comma-separated subset of " + ",".join(ALL))
    args = ap.parse_args(argv)
    names = [m for m in args.models.split(",") if m]
    for m in names:
        if m not in ALL:
            ap.error(f"unknown model {m!r} (choose from {', '.join(ALL)})")

    print(f"threads={args.threads} iters={args.iters} warmup={args.warmup} "
          f"onnxruntime {ort.__version__}")
    hdr = f"{'model':<15} {'kiln ms':>10} {'ort ms':>10} {'kiln/ort':>9} {'max |diff|':>11} {'compile s':>10}"
    print(hdr)
    print("-" * len(hdr))
    with tempfile.TemporaryDirectory(prefix="kiln-bench-") as d:
        for name in names:
            r = bench(name, d, args.threads, args.iters, args.warmup)
            print(f"{r['model']:<15} {r['kiln']:>10.4f} {r['ort']:>10.4f} {r['kiln'] / r['ort']:>9.2f} "
                  f"{r['diff']:>11.2e} {r['compile']:>10.2f}", flush=True)


if __name__ == "__main__":
    main()

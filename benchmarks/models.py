#!/usr/bin/env python3
"""Kiln vs onnxruntime vs IREE on real architectures (CPU, f32, batch 1).

Models with random weights (seeded; nothing is downloaded), exported to ONNX opset 17 once into
the work directory: torchvision resnet50 and mobilenet_v2 (224x224), a bert-base encoder
(input_ids + attention_mask, 128 tokens) and a GPT-2 (124M) prefill of 128 tokens. In this one
process, per model and thread count, the three runtimes get the same inputs and are timed in
blocks in turn (warm-up, N runs of kiln, N of onnxruntime, N of IREE): median latencies, ratios,
output differences against onnxruntime, the issue's targets. Then this CPU's measured FMA peak
and kiln's and onnxruntime's GFLOP/s on single-MatMul models, and each model's contraction
dispatches' GFLOP/s as a fraction of that peak; a tiny model's per-run overhead; with --memory,
peak RSS.

Dependencies: bash scripts/setup-bench.sh (torch, torchvision, transformers, IREE into .venv).

    .venv/bin/python benchmarks/models.py [-v] [--models bert,gpt2] [--threads 1,2] [--memory]
"""
import argparse
import math
import os
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))
import kiln  # noqa: E402

MODELS = ["resnet50", "mobilenet_v2", "bert", "gpt2"]
VOCAB = {"bert": 30522, "gpt2": 50257}  # BertConfig() / GPT2Config() defaults
GEMMS = [(1024, 1024, 1024), (128, 768, 768), (128, 768, 3072), (128, 3072, 768)]  # M, K, N
IREE_FLAGS = ["--iree-hal-target-device=local", "--iree-hal-local-target-device-backends=llvm-cpu",
              "--iree-llvmcpu-target-cpu=host"]
RUNTIMES = ("ort", "kiln", "iree")
FILE = {"kiln": "kiln", "ort": "onnx", "iree": "vmfb"}  # what each runtime loads
VERBOSE = False
T0 = time.perf_counter()


def log(msg):
    if VERBOSE:
        print(f"[{time.perf_counter() - T0:6.1f}s] {msg}", file=sys.stderr, flush=True)


def short(err, n=90):
    """A failure in one line for a table cell: its first line that says error."""
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()] or ["?"]
    line = next((ln for ln in lines if "error" in ln.lower()), lines[-1])
    return f"fails ({line if len(line) <= n else line[:n - 3] + '...'})"


def make_inputs(name):
    rng = np.random.default_rng(0)
    if name not in VOCAB:
        return {"input": rng.standard_normal((1, 3, 224, 224), dtype=np.float32)}
    ids = rng.integers(0, VOCAB[name], (1, 128), dtype=np.int64)
    return {"input_ids": ids, "attention_mask": np.ones_like(ids)} if name == "bert" else {"input_ids": ids}


def export_child(name, path):
    # Its own process: the timing process never loads torch, whose thread pool
    # and ~1 GB would otherwise sit beside the runtimes measured.
    import warnings
    import torch
    warnings.filterwarnings("ignore")
    torch.manual_seed(0)
    if name not in VOCAB:
        import torchvision
        model, out = getattr(torchvision.models, name)(weights=None), "logits"
    else:
        import transformers as tf
        # Eager attention: the SDPA path traces into more ops than the
        # TorchScript exporter maps cleanly.
        if name == "bert":
            core = tf.BertModel(tf.BertConfig(attn_implementation="eager"))
            fwd = lambda ids, mask: core(input_ids=ids, attention_mask=mask)  # noqa: E731
        else:
            core = tf.GPT2Model(tf.GPT2Config(attn_implementation="eager", use_cache=False))
            # An explicit all-ones mask: without one transformers looks for
            # packed sequences with aten::diff, which has no ONNX export.
            fwd = lambda ids: core(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=False)  # noqa: E731

        class Wrap(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.core = core

            def forward(self, *args):
                return fwd(*args).last_hidden_state
        model, out = Wrap(), "last_hidden_state"
    feeds = make_inputs(name)
    with torch.no_grad():
        torch.onnx.export(model.eval(), tuple(torch.from_numpy(v) for v in feeds.values()), path + ".tmp",
                          dynamo=False, opset_version=17, input_names=list(feeds), output_names=[out])
    os.replace(path + ".tmp", path)


def ensure_onnx(name, wd):
    path = wd / f"{name}.onnx"
    if not path.exists():
        log(f"{name}: exporting to {path}")
        p = subprocess.run([sys.executable, __file__, "--_export", name, str(path)], capture_output=True, text=True)
        if p.returncode != 0:
            sys.exit(f"exporting {name} failed (torch missing? bash scripts/setup-bench.sh):\n{p.stderr[-3000:]}")
        log(f"{name}: exported")
    return path


def ort_session(path, threads):
    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
    # The runtimes share the cores in one process: spinning ORT workers would
    # be charged to whichever runtime runs next (kiln's workers block).
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    return lambda feeds: sess.run(None, feeds)


def kiln_compile(path, wd, name):
    (wd / f"{name}.kiln").unlink(missing_ok=True)  # no stale artifact for --memory after a failure
    t = time.perf_counter()
    art = kiln.compile(path, wd / f"{name}.kiln", timeout=3600)
    dt = time.perf_counter() - t
    log(f"{name}: kiln compile {dt:.1f}s")
    return art, dt


def kiln_session(art, threads):
    sess = kiln.Session(art, threads=threads)
    return lambda feeds: sess.run(feeds)  # binds the inputs each run, as ORT does


def iree_compile(path, wd, name):
    """Returns (vmfb, seconds or "cached", note); raises RuntimeError.

    When IREE rejects the export as it is (GPT-2: Reshapes whose shapes the
    TorchScript exporter left as Shape/Concat subgraphs), it gets a copy that
    onnxruntime constant-folded at its basic level (standard ONNX ops only),
    and the note says so."""
    vmfb, mlir, note_file = wd / f"{name}.vmfb", wd / f"{name}.mlir", wd / f"{name}.vmfb.note"
    if vmfb.exists() and vmfb.stat().st_mtime > path.stat().st_mtime:  # IREE is not what changes here
        return vmfb, "cached", note_file.read_text() if note_file.exists() else ""

    def build(src):
        for cmd in ([sys.executable, "-m", "iree.compiler.tools.import_onnx", str(src), "-o", str(mlir)],
                    [sys.executable, "-m", "iree.compiler.tools.scripts.iree_compile", str(mlir), *IREE_FLAGS,
                     "-o", str(vmfb)]):
            log(f"{name}: {cmd[2].rsplit('.', 1)[-1]} {Path(cmd[3]).name}")
            p = subprocess.run(cmd, capture_output=True, text=True)
            if p.returncode != 0:
                vmfb.unlink(missing_ok=True)
                raise RuntimeError(p.stderr or p.stdout or f"exit status {p.returncode}")
        mlir.unlink()
    t, note = time.perf_counter(), ""
    note_file.unlink(missing_ok=True)
    try:
        build(path)
    except RuntimeError as e:
        log(f"{name}: IREE fails on the export, retrying on a folded copy:\n{e}")
        note = f"IREE ran an ORT-constant-folded copy; the export as is {short(e)}"
        folded, so = wd / f"{name}.folded.onnx", ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        so.optimized_model_filepath = str(folded)
        ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        try:
            build(folded)
        finally:
            folded.unlink(missing_ok=True)
        note_file.write_text(note)
    log(f"{name}: IREE import+compile {time.perf_counter() - t:.1f}s")
    return vmfb, time.perf_counter() - t, note


_iree_configs = {}


def iree_config(threads):
    """A local-task device with `threads` workers, one per thread count for the process.

    The topology flags are read when a driver is made, and iree.runtime caches
    one driver per name, so each thread count gets an uncached driver made
    right after setting the flag; counting the new worker threads checks it."""
    import iree.runtime as rt
    if threads not in _iree_configs:
        def workers():
            return sum((t / "comm").read_text().startswith("iree-worker") for t in Path("/proc/self/task").iterdir())
        before = workers()
        rt.flags.parse_flags(f"--task_topology_group_count={threads}")
        driver = rt._binding.create_hal_driver("local-task")
        device = driver.create_default_device()
        deadline = time.perf_counter() + 2  # workers name themselves once they start
        while workers() - before < threads and time.perf_counter() < deadline:
            time.sleep(0.01)
        made = workers() - before
        log(f"IREE local-task device: {made} worker thread(s) for threads={threads}")
        if made != threads:
            print(f"warning: IREE started {made} workers for threads={threads}", file=sys.stderr)
        _iree_configs[threads] = (driver, rt.Config(device=device))  # devices live as long as the process
    return _iree_configs[threads][1]


def iree_session(vmfb, threads):
    import iree.runtime as rt
    config = iree_config(threads)
    vm = rt.VmModule.mmap(config.vm_instance, str(vmfb))
    ctx = rt.SystemContext(vm_modules=[vm], config=config)
    fn = ctx.modules[vm.name][next(f for f in vm.function_names if not f.startswith("__") and "$" not in f)]

    def run(feeds):
        out = fn(*feeds.values())
        return [o.to_host() for o in (out if isinstance(out, (list, tuple)) else [out])]
    run.ctx = ctx  # the function alone does not keep its context alive
    return run


def time_blocks(runners, feeds, args):
    """{label: fn(feeds)} -> {label: median seconds}: each warmed up, then one
    block of runs per runtime in turn, `rounds` times."""
    n, times = {}, {k: [] for k in runners}
    for k, fn in runners.items():
        fn(feeds)  # lazy initialisation, page faults
        warm, t_end = [], time.perf_counter() + 0.1 * args.block_seconds
        while len(warm) < 3 or time.perf_counter() < t_end:
            t = time.perf_counter()
            fn(feeds)
            warm.append(time.perf_counter() - t)
        n[k] = max(args.min_runs, min(10000, math.ceil(args.block_seconds / max(np.median(warm), 1e-6))))
    for _ in range(args.rounds):
        for k, fn in runners.items():
            t_block = time.perf_counter()
            for _ in range(n[k]):
                t = time.perf_counter()
                fn(feeds)
                times[k].append(time.perf_counter() - t)
            log(f"  {k}: {n[k]} runs in {time.perf_counter() - t_block:.1f}s, median {np.median(times[k]) * 1e3:.3f} ms")
    return {k: float(np.median(v)) for k, v in times.items()}


def fmt(x, spec):
    return format(x, spec) if isinstance(x, float) else str(x)


def bench_models(args, wd):
    rows, diff, comp, notes = [], {}, {}, []
    for name in args.models:
        path, feeds, art = ensure_onnx(name, wd), make_inputs(name), {}
        try:
            art["kiln"], comp[name, "kiln"] = kiln_compile(path, wd, name)
        except (kiln.CompileError, OSError) as e:  # OSError: build/bin/kiln-compile being relinked
            comp[name, "kiln"] = short(e)
            log(f"{name}: kiln compile failed:\n{e}")
        comp[name, "iree"] = args.iree
        if args.iree == "ok":
            try:
                art["iree"], comp[name, "iree"], note = iree_compile(path, wd, name)
                notes += [f"{name}: {note}"] if note else []
            except RuntimeError as e:
                comp[name, "iree"] = short(e)
        for T in args.threads:
            runners, row = {"ort": ort_session(path, T)}, dict(model=name, threads=T)
            want = runners["ort"](feeds)
            for k, make in (("kiln", kiln_session), ("iree", iree_session)):
                if k not in art:
                    row[k] = comp[name, k]  # why there is no number
                    continue
                try:
                    runners[k] = make(art[k], T)
                    got = runners[k](feeds)
                    d = max(float(np.max(np.abs(g.astype(np.float64) - w))) for g, w in zip(got, want))
                    scale = max(float(np.max(np.abs(w))) for w in want) or 1.0
                    old = diff.get((name, k), (0.0, 0.0))
                    diff[name, k] = (max(old[0], d), max(old[1], d / scale))
                except Exception as e:  # noqa: BLE001 - failing to run is a result too
                    runners.pop(k, None)
                    row[k] = short(e)
                    log(f"{name}: {k} fails at run time:\n{e}")
            runners = {k: runners[k] for k in ("kiln", "ort", "iree") if k in runners}  # the timing order
            log(f"{name} threads={T}: timing {', '.join(runners)}")
            row.update(time_blocks(runners, feeds, args))
            rows.append(row)
    return rows, diff, comp, notes


def report_models(rows, diff, comp, notes, args):
    def cell(name, k):
        return f"{diff[name, k][0]:.1e} ({diff[name, k][1]:.0e})" if (name, k) in diff else "-"
    ratio = lambda a, b: a / b if isinstance(a, float) and isinstance(b, float) else "-"  # noqa: E731
    print("\n## Models\n\nmax |diff|: against onnxruntime (f32), in parentheses over max |ort output|.\n")
    print("| model | threads | ort ms | kiln ms | iree ms | kiln/ort | iree/ort | kiln/iree "
          "| max \\|diff\\| kiln | max \\|diff\\| iree |\n|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        ms = [fmt(r[k] * 1e3 if isinstance(r[k], float) else r[k], ".3f") for k in RUNTIMES]
        ratios = [fmt(ratio(r[a], r[b]), ".2f") for a, b in (("kiln", "ort"), ("iree", "ort"), ("kiln", "iree"))]
        print(f"| {r['model']} | {r['threads']} | {' | '.join(ms + ratios)} | {cell(r['model'], 'kiln')} "
              f"| {cell(r['model'], 'iree')} |")
    print("\n| model | kiln compile s | iree import+compile s |\n|---|---|---|")
    for name in args.models:
        print(f"| {name} | {fmt(comp[name, 'kiln'], '.1f')} | {fmt(comp[name, 'iree'], '.1f')} |")
    for note in notes:
        print(f"\nNote, {note}")
    print("\nTargets: geomean kiln/ort <= 1.0, no model > 1.5x onnxruntime, kiln faster than IREE on every model.\n")
    for T in args.threads:
        rs = [r for r in rows if r["threads"] == T]
        failed = [r["model"] for r in rs if not isinstance(r["kiln"], float)]
        ko = {r["model"]: r["kiln"] / r["ort"] for r in rs if r["model"] not in failed}
        if not ko:
            print(f"- threads={T}: kiln ran no model")
            continue
        # A model kiln cannot run fails every target.
        verdict = lambda ok: ("holds" if ok and not failed else "does NOT hold") + (  # noqa: E731
            f" (kiln fails on {', '.join(failed)})" if failed else "")
        gm = math.exp(sum(map(math.log, ko.values())) / len(ko))
        worst = max(ko, key=ko.get)
        slower = [r["model"] for r in rs if r["model"] in ko and isinstance(r["iree"], float) and r["kiln"] >= r["iree"]]
        no_iree = [r["model"] for r in rs if not isinstance(r["iree"], float)]
        print(f"- threads={T}: geomean kiln/ort {gm:.2f} <= 1.0: {verdict(gm <= 1.0)}")
        print(f"- threads={T}: no model > 1.5x (worst {worst} {ko[worst]:.2f}x): {verdict(ko[worst] <= 1.5)}")
        print(f"- threads={T}: kiln faster than IREE on every model: {verdict(not slower)}"
              + (f"; slower on {', '.join(slower)}" if slower else "")
              + (f"; no IREE number for {', '.join(no_iree)}" if no_iree else ""))
    report_scaling(rows, args)


def report_scaling(rows, args):
    """Speed-up of the largest thread count over 1 thread, per model and runtime."""
    hi = max(args.threads)
    if 1 not in args.threads or hi == 1:
        return
    t = {(r["model"], r["threads"], k): r[k] for r in rows for k in RUNTIMES if isinstance(r[k], float)}
    up = lambda name, k: t[name, 1, k] / t[name, hi, k] if (name, 1, k) in t and (name, hi, k) in t else "-"  # noqa: E731
    print(f"\n| model | kiln {hi}T/1T speed-up | ort | iree |\n|---|---|---|---|")
    for name in args.models:
        print(f"| {name} | {' | '.join(fmt(up(name, k), '.2f') for k in ('kiln', 'ort', 'iree'))} |")
    if hi == 2 and "resnet50" in args.models:
        s = up("resnet50", "kiln")
        print(f"\nTarget: kiln at 2 threads >= 1.8x 1 thread on resnet50: {fmt(s, '.2f')}, "
              + ("holds" if isinstance(s, float) and s >= 1.8 else "does NOT hold"))


def tiny_model():
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "tiny",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def bench_overhead(args, wd):
    """What a run costs beyond its kernels: one Relu over 16 floats, called
    from Python with fresh inputs and fresh output arrays, as in the models."""
    path, feeds = wd / "tiny.onnx", {"x": np.random.default_rng(3).standard_normal((1, 16), dtype=np.float32)}
    onnx.save(tiny_model(), path)
    runners = {"kiln": kiln_session(kiln_compile(path, wd, "tiny")[0], 1), "ort": ort_session(path, 1)}
    if args.iree == "ok":
        try:
            runners["iree"] = iree_session(iree_compile(path, wd, "tiny")[0], 1)
        except RuntimeError as e:
            log(f"tiny: IREE fails: {e}")
    log("tiny threads=1: timing")
    med = time_blocks(runners, feeds, args)
    print("\n## Per-run overhead\n\nOne Relu over a [1, 16] float tensor at 1 thread, through each runtime's "
          "Python API (inputs bound and outputs returned every run): median microseconds per run.\n")
    print("| kiln us | ort us | iree us |\n|---|---|---|")
    print("| " + " | ".join(f"{med[k] * 1e6:.2f}" if k in med else "-" for k in ("kiln", "ort", "iree")) + " |")
    print(f"\nTarget: a tiny model's per-run overhead below onnxruntime's: kiln {med['kiln'] * 1e6:.2f} us, "
          f"ort {med['ort'] * 1e6:.2f} us, " + ("holds" if med["kiln"] < med["ort"] else "does NOT hold"))


FMA_C = r"""
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
/* Independent FMA chains: enough to cover latency x issue width, few enough
   to stay in registers (16 of 32 zmm, 12 of 16 ymm). */
#if defined(__AVX512F__)
enum { W = 16, NACC = 16 }; static const char *isa = "avx512";
#elif defined(__FMA__)
enum { W = 8, NACC = 12 }; static const char *isa = "avx2+fma";
#else
enum { W = 4, NACC = 12 }; static const char *isa = "generic";
#endif
typedef float vf __attribute__((vector_size(W * 4)));
static double seconds;
static double now(clockid_t c) { struct timespec t; clock_gettime(c, &t); return t.tv_sec + 1e-9 * t.tv_nsec; }
static void *work(void *arg) {
  double *res = arg, t0 = now(CLOCK_MONOTONIC), c0 = now(CLOCK_THREAD_CPUTIME_ID);
  vf acc[NACC], m = (vf){} + 0.999999f, a = (vf){} + 1e-6f;
  for (int i = 0; i < NACC; i++) acc[i] = (vf){} + (float)(i + res[0]);
  long iters = 0;
  do {
    for (int r = 0; r < 4096; r++)
      for (int i = 0; i < NACC; i++) acc[i] = __builtin_elementwise_fma(acc[i], m, a);
    iters += 4096;
  } while (now(CLOCK_MONOTONIC) - t0 < seconds);
  /* Per second of this thread's CPU time: what a core does while it runs the
     thread, however busy the machine is. */
  res[0] = 2.0 * W * NACC * iters / (now(CLOCK_THREAD_CPUTIME_ID) - c0);
  for (int i = 0; i < NACC; i++) for (int l = 0; l < W; l++) res[1] += acc[i][l]; /* keeps them live */
  return 0;
}
int main(int argc, char **argv) {
  int n = atoi(argv[1]);
  pthread_t th[64];
  double res[64][2] = {{0}}, total = 0;
  seconds = atof(argv[2]);
  for (int i = 0; i < n; i++) { res[i][0] = i; pthread_create(&th[i], 0, work, res[i]); }
  for (int i = 0; i < n; i++) { pthread_join(th[i], 0); total += res[i][0]; }
  printf("%.3f %s\n", total / 1e9, isa);
  return 0;
}
"""


def fma_peak(wd, threads):
    """({threads: GFLOP/s}, ISA) from the kernel above, built for this CPU."""
    src, exe = wd / "fma_peak.c", wd / "fma_peak"
    src.write_text(FMA_C)
    cc = next((c for c in ("/usr/bin/clang-22", "/usr/lib/llvm-22/bin/clang") if os.path.exists(c)), "clang")
    subprocess.run([cc, "-O2", "-march=native", "-pthread", str(src), "-o", str(exe)], check=True)
    peak = {}
    for T in threads:
        runs = [subprocess.run([str(exe), str(T), "1"], capture_output=True, text=True, check=True).stdout.split()
                for _ in range(3)]
        peak[T], isa = max(float(r[0]) for r in runs), runs[0][1]
        log(f"FMA peak threads={T}: {peak[T]:.1f} GFLOP/s ({isa})")
    return peak, isa


def gemm_model(m, k, n):
    b = numpy_helper.from_array(np.random.default_rng(1).standard_normal((k, n), dtype=np.float32), "b")
    graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["c"])], f"gemm_{m}x{k}x{n}",
                              [helper.make_tensor_value_info("a", TensorProto.FLOAT, [m, k])],
                              [helper.make_tensor_value_info("c", TensorProto.FLOAT, [m, n])],
                              [b])  # B constant, as weights are
    # onnx writes its newest IR version unless told, newer than onnxruntime reads.
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def bench_gemms(args, wd, peak, isa):
    print(f"\n## FMA peak and GEMMs\n\nMeasured FMA peak ({isa}, clang-22 -O2 -march=native, per second of CPU "
          f"time, best of 3): " + ", ".join(f"{peak[T]:.1f} GFLOP/s at {T} thread(s)" for T in args.threads))
    print("\n| M x K x N | threads | kiln ms | kiln GFLOP/s | kiln % peak | ort ms | ort GFLOP/s | ort % peak |\n"
          "|---|---|---|---|---|---|---|---|")
    target = None
    for m, k, n in GEMMS:
        name, feeds = f"gemm_{m}x{k}x{n}", {"a": np.random.default_rng(2).standard_normal((m, k), dtype=np.float32)}
        onnx.save(gemm_model(m, k, n), wd / f"{name}.onnx")
        try:
            art, err = kiln_compile(wd / f"{name}.onnx", wd, name)[0], None
        except (kiln.CompileError, OSError) as e:
            art, err = None, short(e)
        for T in args.threads:
            runners = {"kiln": kiln_session(art, T)} if art else {}
            runners["ort"] = ort_session(wd / f"{name}.onnx", T)
            log(f"{name} threads={T}: timing")
            med = time_blocks(runners, feeds, args)
            cells = [f"{med[r] * 1e3:.3f} | {2e-9 * m * k * n / med[r]:.1f} | {200e-9 * m * k * n / med[r] / peak[T]:.0f}%"
                     if r in med else f"{err} | - | -" for r in ("kiln", "ort")]
            print(f"| {m} x {k} x {n} | {T} | {' | '.join(cells)} |")
            if (m, k, n, T) == (1024, 1024, 1024, 1):
                target = 2e-9 * m * k * n / med["kiln"] / peak[T] if art else 0.0
    if target is not None:
        print(f"\nTarget: f32 GEMM 1024^3 at 1 thread >= 70% of the FMA peak: {100 * target:.0f}%, "
              + ("holds" if target >= 0.7 else "does NOT hold"))


def contraction_flops(path, feeds):
    """{node name: FLOPs} of the model's MatMul, Gemm and Conv nodes at the
    shapes of `feeds` (ONNX shape inference)."""
    m = onnx.load(str(path))
    for inp in m.graph.input:
        if inp.name in feeds:
            for d, v in zip(inp.type.tensor_type.shape.dim, feeds[inp.name].shape):
                d.dim_value = v  # replaces a symbolic dim_param
    m = onnx.shape_inference.infer_shapes(m)
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in [*m.graph.value_info, *m.graph.input, *m.graph.output]}
    shapes.update({t.name: list(t.dims) for t in m.graph.initializer})
    # Where inference lost a dim (BERT's batch after a Reshape), onnxruntime
    # tells: the contractions' operands become outputs of one run.
    wanted = {v for n in m.graph.node if n.op_type in ("MatMul", "Gemm", "Conv")
              for v in (n.output[0], *n.input[:2]) if not shapes.get(v) or 0 in shapes[v]}
    if wanted:
        known = {o.name for o in m.graph.output}
        m.graph.output.extend(onnx.ValueInfoProto(name=v) for v in sorted(wanted - known))
        names = [o.name for o in m.graph.output]
        for name, value in zip(names, ort.InferenceSession(m.SerializeToString()).run(names, feeds)):
            shapes[name] = list(value.shape)
    flops = {}
    for n in m.graph.node:
        if n.op_type not in ("MatMul", "Gemm", "Conv"):
            continue
        out, a, b = (shapes.get(v) for v in (n.output[0], n.input[0], n.input[1]))
        if not (out and a and b) or 0 in out + a + b:
            continue
        if n.op_type == "Conv":  # W is [F, C / group, k...]
            flops[n.name] = 2 * math.prod(out) * math.prod(b[1:])
        else:
            trans_a = any(at.name == "transA" and at.i for at in n.attribute)
            flops[n.name] = 2 * math.prod(out) * (a[0] if trans_a else a[-1])
    return flops


def bench_dispatches(args, wd, peak):
    """Each contraction dispatch's GFLOP/s as a fraction of the FMA peak, at
    one thread, from profiled runs (best of 5 per dispatch)."""
    print("\n## Contraction dispatches at 1 thread\n\n"
          f"Per dispatch with a MatMul, Gemm or Conv: its FLOPs (ONNX shape inference) over its best time "
          f"in 5 profiled runs, against the FMA peak ({peak:.1f} GFLOP/s). The slowest five per model, "
          "then all of its contraction dispatches together.\n\n"
          "| model | dispatch | GFLOP | ms | GFLOP/s | % peak |\n|---|---|---|---|---|---|")
    for name in args.models:
        art, path = wd / f"{name}.kiln", wd / f"{name}.onnx"
        if not art.exists():
            continue
        feeds = make_inputs(name)
        flops = contraction_flops(path, feeds)
        best = {}
        stats = wd / f"{name}.stats.json"
        with kiln.Session(art, threads=1, stats=str(stats)) as sess:
            for _ in range(6):
                sess.run(feeds)
                for i, d in enumerate(sess.dispatches()):
                    if d.time_ns is not None:
                        best[i] = (min(best.get(i, (math.inf,))[0], d.time_ns), d.ops)
        # A node's padding or im2col columns are dispatches of their own that
        # name it too, before it: its FLOPs go to the last one.
        nodes = {i: [node for _, node in re.findall(r"(\w+)\(([^)]*)\)", ops)] for i, (_, ops) in best.items()}
        last = {node: i for i in sorted(nodes) for node in nodes[i]}
        rows = []
        for i, (t_ns, ops) in best.items():
            f = sum(flops.get(node, 0) for node in nodes[i] if last[node] == i)
            if f:
                rows.append((t_ns, f, ops))
        total_t, total_f = sum(r[0] for r in rows), sum(r[1] for r in rows)
        for t_ns, f, ops in sorted(rows, reverse=True)[:5]:
            label = ops if len(ops) <= 70 else ops[:67] + "..."
            print(f"| {name} | {label} | {f / 1e9:.3f} | {t_ns / 1e6:.3f} | {f / t_ns:.1f} | {100 * f / t_ns / peak:.0f}% |")
        if rows:
            share = total_t / sum(b[0] for b in best.values())
            print(f"| {name} | all {len(rows)} contraction dispatches ({100 * share:.0f}% of the run) | "
                  f"{total_f / 1e9:.2f} | {total_t / 1e6:.2f} | {total_f / total_t:.1f} | "
                  f"{100 * total_f / total_t / peak:.0f}% |")


def mem_child(runtime, name, wd):
    """Prints the peak RSS (KiB) of loading `name` into `runtime` and running
    it once, above the RSS right after the imports."""
    feeds = make_inputs(name)
    if runtime == "iree":
        import iree.runtime  # noqa: F401 - part of the baseline
    status = lambda key: int(next(ln for ln in open("/proc/self/status") if ln.startswith(key)).split()[1])  # noqa: E731
    try:
        # The imports' transients leave a high-water mark that a small model
        # never reaches: reset it (Linux >= 4.0) rather than subtract it.
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        base, peak = status("VmRSS:"), lambda: status("VmHWM:")
    except OSError:
        base, peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, \
            lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    make = {"kiln": kiln_session, "ort": ort_session, "iree": iree_session}[runtime]
    make(wd / f"{name}.{FILE[runtime]}", 1)(feeds)
    print(peak() - base)


def bench_memory(args, wd):
    print("\n## Peak memory\n\nMiB above the process right after its imports: load + one run, 1 thread, "
          "a fresh process each.\n\n| model | kiln | ort | iree |\n|---|---|---|---|")
    for name in args.models:
        cells = []
        for r in ("kiln", "ort", "iree"):
            if not (wd / f"{name}.{FILE[r]}").exists() or (r == "iree" and args.iree != "ok"):
                cells.append("-")
                continue
            log(f"{name}: peak RSS of {r}")
            p = subprocess.run([sys.executable, __file__, "--_mem", r, name, "--workdir", str(wd)],
                               capture_output=True, text=True)
            cells.append(f"{int(p.stdout.split()[-1]) / 1024:.0f}" if p.returncode == 0 else short(p.stderr))
        print(f"| {name} | {' | '.join(cells)} |")


def main(argv=None):
    global VERBOSE
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=",".join(MODELS), help=f"comma-separated subset of {','.join(MODELS)} (default all)")
    ap.add_argument("--threads", default="1,2", help="comma-separated thread counts, the same for every runtime (default 1,2)")
    ap.add_argument("--workdir", default=os.path.expanduser("~/.cache/kiln-bench"),
                    help="for the ONNX exports (made when missing), kiln artifacts (compiled every run) and IREE "
                         "modules (compiled when older than their ONNX) (default ~/.cache/kiln-bench)")
    ap.add_argument("--min-runs", type=int, default=5, help="timed runs per block, at least (default 5)")
    ap.add_argument("--block-seconds", type=float, default=2.0, help="length of a timed block to aim for (default 2)")
    ap.add_argument("--rounds", type=int, default=1, help="blocks per runtime, interleaved (default 1)")
    ap.add_argument("--no-iree", action="store_true", help="leave IREE out")
    ap.add_argument("--no-models", action="store_true", help="skip the model section")
    ap.add_argument("--no-gemm", action="store_true", help="skip the FMA peak and GEMM section")
    ap.add_argument("--no-overhead", action="store_true", help="skip the per-run overhead section (a tiny model)")
    ap.add_argument("--memory", action="store_true", help="also measure peak RSS per model and runtime")
    ap.add_argument("-v", "--verbose", action="store_true", help="progress with timings on stderr")
    ap.add_argument("--_export", nargs=2, help=argparse.SUPPRESS)
    ap.add_argument("--_mem", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    wd = Path(args.workdir).resolve()
    if args._export:
        return export_child(*args._export)
    if args._mem:
        return mem_child(*args._mem, wd)
    VERBOSE = args.verbose
    args.models = [m for m in args.models.split(",") if m]
    if set(args.models) - set(MODELS):
        ap.error(f"unknown model(s) {', '.join(set(args.models) - set(MODELS))} (choose from {', '.join(MODELS)})")
    args.threads = [int(t) for t in args.threads.split(",") if t]
    wd.mkdir(parents=True, exist_ok=True)
    args.iree, iree_version = "not used", ""
    if not args.no_iree:
        try:
            import iree.compiler  # noqa: F401
            import iree.runtime  # noqa: F401
            from importlib.metadata import version
            args.iree, iree_version = "ok", " " + version("iree-base-runtime")
        except ImportError:
            args.iree = "not installed"
    print(f"# Kiln benchmark on real models\n\nonnxruntime {ort.__version__}, IREE{iree_version or ': ' + args.iree}, "
          f"{os.cpu_count()} CPUs, threads {args.threads}, blocks of >= {args.min_runs} runs or "
          f"{args.block_seconds:g} s x {args.rounds} round(s), work dir {wd}")
    if not args.no_models:
        report_models(*bench_models(args, wd), args)
    if not args.no_gemm or not args.no_models:
        peak, isa = fma_peak(wd, sorted(set(args.threads) | {1}))
    if not args.no_gemm:
        bench_gemms(args, wd, peak, isa)
    if not args.no_models:
        bench_dispatches(args, wd, peak[1])
    if not args.no_overhead:
        bench_overhead(args, wd)
    if args.memory:
        bench_memory(args, wd)
    log(f"done in {time.perf_counter() - T0:.0f}s")


if __name__ == "__main__":
    main()

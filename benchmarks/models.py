#!/usr/bin/env python3
"""Kiln vs onnxruntime vs IREE on real architectures (CPU, f32, batch 1).

Models, exported with random weights (fixed seed; nothing downloaded) to ONNX
opset 17 into the work directory: torchvision resnet50 and mobilenet_v2
(224x224), a bert-base encoder (sequence 128, input_ids + attention_mask) and a
GPT-2 (124M) prefill of 128 tokens. Each model runs in this one process on the
same inputs and thread count in all three runtimes, timed in blocks (warm-up,
then N runs of kiln, N of onnxruntime, N of IREE); the table gives median
latencies, their ratios and the output differences against onnxruntime. Then a
measured FMA peak of this CPU, kiln and onnxruntime GFLOP/s on single-MatMul
models, and with --memory the peak RSS of a session of each runtime.

Needs the bench dependencies: bash scripts/setup-bench.sh (torch, torchvision,
transformers, iree-base-compiler/runtime into .venv). Without IREE installed its
column reads "not installed".

    .venv/bin/python benchmarks/models.py [-v] [--models bert,gpt2] [--threads 1,2] [--memory]
"""
import argparse
import math
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "python"))
import kiln  # noqa: E402

MODELS = ["resnet50", "mobilenet_v2", "bert", "gpt2"]
VOCAB = {"bert": 30522, "gpt2": 50257}  # BertConfig() / GPT2Config() defaults
SEQ = 128
GEMMS = [(1024, 1024, 1024), (128, 768, 768), (128, 768, 3072), (128, 3072, 768)]  # M, K, N
IREE_FLAGS = ["--iree-hal-target-device=local", "--iree-hal-local-target-device-backends=llvm-cpu",
              "--iree-llvmcpu-target-cpu=host"]
VERBOSE = False
T0 = time.perf_counter()


def log(msg):
    if VERBOSE:
        print(f"[{time.perf_counter() - T0:7.1f}s] {msg}", file=sys.stderr, flush=True)


def short(err, n=90):
    """One line of a failure for a table cell: the first line that names an error."""
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    line = next((ln for ln in lines if "error" in ln.lower()), lines[-1] if lines else "?")
    return line if len(line) <= n else line[:n - 3] + "..."


def make_inputs(name):
    rng = np.random.default_rng(0)
    if name in VOCAB:
        ids = rng.integers(0, VOCAB[name], (1, SEQ), dtype=np.int64)
        return {"input_ids": ids, "attention_mask": np.ones_like(ids)} if name == "bert" else {"input_ids": ids}
    return {"input": rng.standard_normal((1, 3, 224, 224), dtype=np.float32)}


# ---------------------------------------------------------------- export (child process)

def export_child(name, path):
    # Runs in its own process so that the timing process never loads torch (its
    # thread pool and ~1 GB would otherwise sit beside the runtimes measured).
    import warnings
    import torch
    warnings.filterwarnings("ignore")
    torch.manual_seed(0)
    if name in ("resnet50", "mobilenet_v2"):
        import torchvision
        model = getattr(torchvision.models, name)(weights=None)
        out_name = "logits"
    else:
        import transformers as tf
        # Eager attention: the SDPA path traces into ops the TorchScript
        # exporter handles worse.
        if name == "bert":
            core = tf.BertModel(tf.BertConfig(attn_implementation="eager"))
            fwd = lambda m, ids, mask: m(input_ids=ids, attention_mask=mask)  # noqa: E731
        else:
            core = tf.GPT2Model(tf.GPT2Config(attn_implementation="eager", use_cache=False))
            # An explicit all-ones mask: without one transformers looks for
            # packed sequences with aten::diff, which has no ONNX export.
            fwd = lambda m, ids: m(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=False)  # noqa: E731

        class Wrap(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.m = core

            def forward(self, *args):
                return fwd(self.m, *args).last_hidden_state
        model = Wrap()
        out_name = "last_hidden_state"
    feeds = make_inputs(name)
    tmp = path + ".tmp"
    with torch.no_grad():
        torch.onnx.export(model.eval(), tuple(torch.from_numpy(v) for v in feeds.values()), tmp,
                          dynamo=False, opset_version=17, input_names=list(feeds),
                          output_names=[out_name])
    os.replace(tmp, path)


def ensure_onnx(name, wd):
    path = wd / f"{name}.onnx"
    if not path.exists():
        log(f"{name}: exporting to {path}")
        t = time.perf_counter()
        p = subprocess.run([sys.executable, __file__, "--_export", name, str(path)],
                           capture_output=True, text=True)
        if p.returncode != 0:
            sys.exit(f"export of {name} failed (is torch installed? bash scripts/setup-bench.sh):\n"
                     + p.stderr[-3000:])
        log(f"{name}: exported in {time.perf_counter() - t:.1f}s")
    return path


# ---------------------------------------------------------------- runtimes

def ort_session(path, threads):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    # All runtimes share the cores in one process: spinning ORT workers would
    # be charged to whichever runtime runs next (kiln's workers block).
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    return lambda feeds: sess.run(None, feeds)


def kiln_compile(onnx_path, wd, name):
    t = time.perf_counter()
    art = kiln.compile(onnx_path, wd / f"{name}.kiln", timeout=3600)
    dt = time.perf_counter() - t
    log(f"{name}: kiln compile {dt:.1f}s")
    return art, dt


def kiln_session(art, threads):
    sess = kiln.Session(art, threads=threads)
    return lambda feeds: sess.run(feeds)


def iree_available():
    try:
        import iree.runtime  # noqa: F401
        import iree.compiler  # noqa: F401
        return True
    except ImportError:
        return False


def iree_build(onnx_path, wd, name):
    vmfb, mlir = wd / f"{name}.vmfb", wd / f"{name}.mlir"
    for cmd in ([sys.executable, "-m", "iree.compiler.tools.import_onnx", str(onnx_path), "-o", str(mlir)],
                [sys.executable, "-m", "iree.compiler.tools.scripts.iree_compile", str(mlir),
                 *IREE_FLAGS, "-o", str(vmfb) + ".tmp"]):
        log(f"{name}: {cmd[2].rsplit('.', 1)[-1]} {Path(cmd[3]).name} ...")
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode != 0:
            mlir.unlink(missing_ok=True)
            raise RuntimeError(p.stderr or p.stdout or f"exit status {p.returncode}")
    os.replace(str(vmfb) + ".tmp", vmfb)
    mlir.unlink()
    return vmfb


def iree_compile(onnx_path, wd, name):
    """Returns (vmfb, seconds or "cached", note). Raises on failure.

    When IREE rejects the export as is (GPT-2: Reshapes whose shapes the
    TorchScript exporter left as Shape/Concat subgraphs), it gets a copy that
    onnxruntime constant-folded at its basic level (standard ONNX ops only);
    the note says so and why."""
    vmfb, note_file = wd / f"{name}.vmfb", wd / f"{name}.vmfb.note"
    if vmfb.exists() and vmfb.stat().st_mtime > onnx_path.stat().st_mtime:
        # IREE is the reference, not under development: reuse its module.
        return vmfb, "cached", note_file.read_text() if note_file.exists() else ""
    note_file.unlink(missing_ok=True)
    t = time.perf_counter()
    try:
        iree_build(onnx_path, wd, name)
        note = ""
    except RuntimeError as e:
        note = f"IREE ran an ORT-constant-folded copy; the export as is fails: {short(e)}"
        log(f"{name}: IREE failed on the export, retrying on a folded copy:\n{e}")
        folded = wd / f"{name}.folded.onnx"
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        so.optimized_model_filepath = str(folded)
        ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])
        try:
            iree_build(folded, wd, name)
        finally:
            folded.unlink(missing_ok=True)
        note_file.write_text(note)
    dt = time.perf_counter() - t
    log(f"{name}: IREE import+compile {dt:.1f}s")
    return vmfb, dt, note


_iree_devices = {}


def iree_config(threads):
    """A local-task device with `threads` workers, made once per thread count.

    Topology flags are read when a driver is created, and get_driver() caches
    the first one for the process, so each thread count gets its own uncached
    driver (create_hal_driver) made right after setting the flag."""
    import iree.runtime as rt
    if threads not in _iree_devices:
        def workers():
            tasks = Path("/proc/self/task")
            return sum(1 for t in tasks.iterdir() if (t / "comm").read_text().startswith("iree-worker"))
        before = workers()
        rt.flags.parse_flags(f"--task_topology_group_count={threads}")
        driver = rt._binding.create_hal_driver("local-task")
        device = driver.create_default_device()
        made = workers() - before
        log(f"IREE local-task device: {made} worker thread(s) for threads={threads}")
        if made != threads:
            print(f"warning: IREE made {made} workers, not {threads}", file=sys.stderr)
        _iree_devices[threads] = (driver, device, rt.Config(device=device))
    return _iree_devices[threads][2]


def iree_session(vmfb, threads):
    import iree.runtime as rt
    config = iree_config(threads)
    vm = rt.VmModule.mmap(config.vm_instance, str(vmfb))
    ctx = rt.SystemContext(vm_modules=[vm], config=config)
    fname = next(f for f in vm.function_names if not f.startswith("__") and not f.endswith("$async"))
    fn = ctx.modules[vm.name][fname]

    def run(feeds):
        out = fn(*feeds.values())
        return [o.to_host() for o in (out if isinstance(out, (list, tuple)) else [out])]
    run.keep = (vm, ctx)  # the function does not hold its context alive
    return run


# ---------------------------------------------------------------- timing

def time_blocks(runners, feeds, args):
    """runners: {label: fn(feeds)}. Warms each up, then times them in turn,
    one block each per round; returns {label: median seconds}."""
    n, times = {}, {k: [] for k in runners}
    for k, fn in runners.items():
        fn(feeds)  # first run: lazy initialisation, page faults
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
            log(f"  {k}: {n[k]} runs in {time.perf_counter() - t_block:.1f}s, "
                f"median {np.median(times[k]) * 1e3:.3f} ms")
    return {k: float(np.median(v)) for k, v in times.items()}


def diffs(got, want):
    """(max |got - want|, that over max |want|) across all outputs."""
    d = max(float(np.max(np.abs(g.astype(np.float64) - w))) for g, w in zip(got, want))
    scale = max(float(np.max(np.abs(w))) for w in want)
    return d, d / scale if scale else d


def fmt(x, spec=".2f"):
    return format(x, spec) if isinstance(x, float) else str(x)


def bench_models(args, wd, have_iree):
    rows, acc, comp, notes = [], {}, {}, []
    for name in args.models:
        path = ensure_onnx(name, wd)
        feeds = make_inputs(name)
        kiln_art = iree_vmfb = None
        try:
            kiln_art, comp[name, "kiln"] = kiln_compile(path, wd, name)
        except kiln.CompileError as e:
            comp[name, "kiln"] = f"fails ({short(e)})"
            log(f"{name}: kiln compile failed:\n{e}")
        if have_iree:
            try:
                iree_vmfb, comp[name, "iree"], note = iree_compile(path, wd, name)
                if note:
                    notes.append(f"{name}: {note}")
            except RuntimeError as e:
                comp[name, "iree"] = f"fails ({short(e)})"
                log(f"{name}: IREE failed:\n{e}")
        else:
            comp[name, "iree"] = "not installed"
        for T in args.threads:
            log(f"{name} threads={T}: creating sessions")
            runners, status = {"ort": ort_session(path, T)}, {}
            for label, art, make in (("kiln", kiln_art, kiln_session), ("iree", iree_vmfb, iree_session)):
                if art is None:
                    status[label] = comp[name, label]
                    continue
                try:
                    runners[label] = make(art, T)
                    want = runners["ort"](feeds)
                    d = diffs(runners[label](feeds), want)
                    old = acc.get((name, label), (0.0, 0.0))
                    acc[name, label] = (max(old[0], d[0]), max(old[1], d[1]))
                except Exception as e:  # noqa: BLE001 - a runtime failure is a result
                    runners.pop(label, None)
                    status[label] = f"fails ({short(e)})"
                    log(f"{name}: {label} failed at run time:\n{e}")
            log(f"{name} threads={T}: timing {', '.join(runners)}")
            med = time_blocks(runners, feeds, args)
            rows.append(dict(model=name, threads=T, **{k: med.get(k, status.get(k)) for k in ("ort", "kiln", "iree")}))
            runners.clear()
    return rows, acc, comp, notes


def report_models(rows, acc, comp, notes, args):
    def ratio(a, b):
        return a / b if isinstance(a, float) and isinstance(b, float) else "-"
    print("\n## Models\n")
    print("| model | threads | ort ms | kiln ms | iree ms | kiln/ort | iree/ort | kiln/iree | max \\|diff\\| kiln | max \\|diff\\| iree |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        ms = {k: r[k] * 1e3 if isinstance(r[k], float) else r[k] for k in ("ort", "kiln", "iree")}
        d = [fmt(acc[r["model"], k][0], ".2e") if (r["model"], k) in acc else "-" for k in ("kiln", "iree")]
        print(f"| {r['model']} | {r['threads']} | {fmt(ms['ort'], '.3f')} | {fmt(ms['kiln'], '.3f')} | "
              f"{fmt(ms['iree'], '.3f')} | {fmt(ratio(r['kiln'], r['ort']))} | {fmt(ratio(r['iree'], r['ort']))} | "
              f"{fmt(ratio(r['kiln'], r['iree']))} | {d[0]} | {d[1]} |")
    print("\nOutputs vs onnxruntime (f32; rel = max|diff| / max|ort output|), and compile times:\n")
    print("| model | kiln max\\|diff\\| | kiln rel | iree max\\|diff\\| | iree rel | kiln compile s | iree compile s |")
    print("|---|---|---|---|---|---|---|")
    for name in args.models:
        cells = []
        for k in ("kiln", "iree"):
            cells += [fmt(acc[name, k][0], ".2e"), fmt(acc[name, k][1], ".2e")] if (name, k) in acc else ["-", "-"]
        print(f"| {name} | {' | '.join(cells)} | {fmt(comp[name, 'kiln'], '.1f')} | {fmt(comp[name, 'iree'], '.1f')} |")
    for n in notes:
        print(f"\nNote, {n}")
    print("\nTargets: geomean kiln/ort <= 1.0, no model > 1.5x ort, kiln faster than IREE on every model.\n")
    for T in args.threads:
        rs = [r for r in rows if r["threads"] == T]
        failed = [r["model"] for r in rs if not isinstance(r["kiln"], float)]
        ko = {r["model"]: r["kiln"] / r["ort"] for r in rs if r["model"] not in failed}
        if not ko:
            print(f"- threads={T}: kiln ran no model")
            continue
        gm = math.exp(sum(map(math.log, ko.values())) / len(ko))
        worst = max(ko, key=ko.get)
        slower = [r["model"] for r in rs if isinstance(r["iree"], float) and r["model"] in ko and r["kiln"] >= r["iree"]]
        no_iree = [r["model"] for r in rs if not isinstance(r["iree"], float)]
        fail_note = f" (kiln fails on {', '.join(failed)})" if failed else ""
        yes = lambda ok: "HOLDS" if ok and not failed else "does NOT hold"  # noqa: E731
        print(f"- threads={T}: geomean kiln/ort = {gm:.3f} over {len(ko)} model(s): "
              f"{yes(gm <= 1.0)}{fail_note}")
        print(f"- threads={T}: worst kiln/ort = {ko[worst]:.2f} ({worst}): no model > 1.5x {yes(ko[worst] <= 1.5)}")
        print(f"- threads={T}: kiln faster than IREE: {yes(not slower)}"
              + (f"; slower on {', '.join(slower)}" if slower else "")
              + (f"; no IREE number for {', '.join(no_iree)}" if no_iree else ""))


# ---------------------------------------------------------------- FMA peak and GEMMs

FMA_C = r"""
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
/* Independent FMA chains, enough of them to cover FMA latency x throughput,
   few enough to stay in registers (16 zmm of 32; 12 ymm of 16). */
#if defined(__AVX512F__)
#define W 16
#define NACC 16
#define ISA "avx512"
#elif defined(__FMA__)
#define W 8
#define NACC 12
#define ISA "avx2+fma"
#else
#define W 4
#define NACC 12
#define ISA "generic"
#endif
typedef float vf __attribute__((vector_size(W * 4)));
static double seconds;
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + 1e-9 * t.tv_nsec; }
static void *work(void *arg) {
  double *res = arg;
  vf acc[NACC], m = (vf){} + 0.999999f, a = (vf){} + 1e-6f;
  for (int i = 0; i < NACC; i++) acc[i] = (vf){} + (float)(i + res[0]);
  long iters = 0;
  double t0 = now(), t;
  do {
    for (int r = 0; r < 4096; r++)
      for (int i = 0; i < NACC; i++) acc[i] = __builtin_elementwise_fma(acc[i], m, a);
    iters += 4096;
  } while ((t = now()) - t0 < seconds);
  float s = 0;
  for (int i = 0; i < NACC; i++) for (int l = 0; l < W; l++) s += acc[i][l];
  res[0] = 2.0 * W * NACC * iters / (t - t0);
  res[1] = s; /* keeps the chains live */
  return 0;
}
int main(int argc, char **argv) {
  int n = atoi(argv[1]);
  seconds = atof(argv[2]);
  pthread_t th[64];
  double res[64][2], total = 0;
  for (int i = 0; i < n; i++) { res[i][0] = i; pthread_create(&th[i], 0, work, res[i]); }
  for (int i = 0; i < n; i++) { pthread_join(th[i], 0); total += res[i][0]; }
  printf("%.3f %s\n", total / 1e9, ISA);
  return 0;
}
"""


def fma_peak(wd, threads, seconds=1.0):
    """{threads: GFLOP/s} from a C kernel compiled for this CPU, and the ISA it used."""
    src, exe = wd / "fma_peak.c", wd / "fma_peak"
    src.write_text(FMA_C)
    cc = next((c for c in ("/usr/bin/clang-22", "/usr/lib/llvm-22/bin/clang") if os.path.exists(c)), "clang")
    subprocess.run([cc, "-O2", "-march=native", "-pthread", str(src), "-o", str(exe)], check=True)
    peak, isa = {}, "?"
    for T in threads:
        # Best of three: other processes on the machine only ever lower it.
        runs = [subprocess.run([str(exe), str(T), str(seconds)], capture_output=True, text=True,
                               check=True).stdout.split() for _ in range(3)]
        peak[T], isa = max(float(r[0]) for r in runs), runs[0][1]
        log(f"FMA peak threads={T}: {peak[T]:.1f} GFLOP/s ({isa})")
    return peak, isa


def gemm_model(m, k, n):
    b = np.random.default_rng(1).standard_normal((k, n), dtype=np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["a", "b"], ["c"])], f"gemm_{m}x{k}x{n}",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, [m, k])],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, [m, n])],
        [numpy_helper.from_array(b, "b")])  # a constant B, as model weights are
    # onnx writes its newest IR version by default, newer than onnxruntime reads.
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def bench_gemms(args, wd):
    peak, isa = fma_peak(wd, args.threads)
    print(f"\n## FMA peak and GEMMs\n\nMeasured FMA peak ({isa}, clang-22 -O2 -march=native): "
          + ", ".join(f"{peak[T]:.1f} GFLOP/s at {T} thread(s)" for T in args.threads))
    if 1 in peak and any(peak[T] < 0.8 * T * peak[1] for T in peak):
        print("(the peak does not scale with threads: the cores are busy or shared, "
              "so fractions of the multi-thread peak overstate)")
    print()
    print("| M x K x N | threads | kiln ms | kiln GFLOP/s | kiln % peak | ort GFLOP/s | ort % peak |")
    print("|---|---|---|---|---|---|---|")
    target = None
    for m, k, n in GEMMS:
        name = f"gemm_{m}x{k}x{n}"
        path = wd / f"{name}.onnx"
        onnx.save(gemm_model(m, k, n), path)
        feeds = {"a": np.random.default_rng(2).standard_normal((m, k), dtype=np.float32)}
        try:
            art, _ = kiln_compile(path, wd, name)
        except kiln.CompileError as e:
            art, err = None, f"fails ({short(e)})"
        for T in args.threads:
            runners = {"ort": ort_session(path, T)}
            if art is not None:
                runners["kiln"] = kiln_session(art, T)
            log(f"{name} threads={T}: timing")
            med = time_blocks(runners, feeds, args)
            gf = {r: 2.0 * m * k * n / s / 1e9 for r, s in med.items()}
            kcells = ([f"{med['kiln'] * 1e3:.3f}", f"{gf['kiln']:.1f}", f"{100 * gf['kiln'] / peak[T]:.0f}%"]
                      if "kiln" in gf else [err, "-", "-"])
            print(f"| {m} x {k} x {n} | {T} | {' | '.join(kcells)} | {gf['ort']:.1f} | {100 * gf['ort'] / peak[T]:.0f}% |")
            if (m, k, n, T) == (1024, 1024, 1024, 1):
                target = gf.get("kiln", 0.0) / peak[T]
    if target is not None:
        print(f"\nTarget: f32 GEMM 1024^3 at 1 thread >= 70% of the FMA peak: {100 * target:.0f}%, "
              + ("HOLDS" if target >= 0.7 else "does NOT hold"))


# ---------------------------------------------------------------- peak memory

def mem_child(runtime, name, wd):
    """Prints the peak RSS (KiB) of loading `name` in `runtime` and running it
    once, above the RSS right after the imports."""
    feeds = make_inputs(name)
    if runtime == "iree":
        import iree.runtime  # noqa: F401 - its import is part of the baseline

    def status(key):
        return int(next(ln for ln in open("/proc/self/status") if ln.startswith(key)).split()[1])
    try:
        # Import transients (ORT, onnx) leave a high-water mark above the
        # steady RSS that a small model never reaches: reset it (Linux >= 4.0).
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        base, peak = status("VmRSS:"), lambda: status("VmHWM:")
    except OSError:
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # noqa: E731
    if runtime == "kiln":
        kiln_session(wd / f"{name}.kiln", 1)(feeds)
    elif runtime == "ort":
        ort_session(wd / f"{name}.onnx", 1)(feeds)
    else:
        iree_session(wd / f"{name}.vmfb", 1)(feeds)
    print(peak() - base)


def bench_memory(args, wd, have_iree):
    print("\n## Peak memory (MiB above the process after imports; load + one run, 1 thread)\n")
    print("| model | kiln | ort | iree |")
    print("|---|---|---|---|")
    for name in args.models:
        cells = []
        for rt_name, file in (("kiln", "kiln"), ("ort", "onnx"), ("iree", "vmfb")):
            if not (wd / f"{name}.{file}").exists() or (rt_name == "iree" and not have_iree):
                cells.append("-")
                continue
            log(f"{name}: peak RSS of {rt_name}")
            p = subprocess.run([sys.executable, __file__, "--_mem", rt_name, name, "--workdir", str(wd)],
                               capture_output=True, text=True)
            cells.append(f"{int(p.stdout.split()[-1]) / 1024:.0f}" if p.returncode == 0 and p.stdout.split()
                         else f"fails ({short(p.stderr)})")
        print(f"| {name} | {' | '.join(cells)} |")


def main(argv=None):
    global VERBOSE
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=",".join(MODELS), help=f"comma-separated subset of {','.join(MODELS)} (default all)")
    ap.add_argument("--threads", default="1,2", help="comma-separated thread counts, each runtime alike (default 1,2)")
    ap.add_argument("--workdir", default=os.path.expanduser("~/.cache/kiln-bench"),
                    help="ONNX exports, artifacts, IREE modules (default ~/.cache/kiln-bench); "
                         "exports are made when missing, kiln artifacts every run, IREE modules when older than the ONNX")
    ap.add_argument("--min-runs", type=int, default=5, help="timed runs per block at least (default 5)")
    ap.add_argument("--block-seconds", type=float, default=2.0, help="target length of a timed block (default 2)")
    ap.add_argument("--rounds", type=int, default=1, help="blocks per runtime, interleaved (default 1)")
    ap.add_argument("--no-iree", action="store_true", help="leave IREE out")
    ap.add_argument("--no-gemm", action="store_true", help="skip the FMA peak and GEMM section")
    ap.add_argument("--no-models", action="store_true", help="skip the model table (e.g. GEMMs only)")
    ap.add_argument("--memory", action="store_true", help="also measure peak RSS per model and runtime (a process each)")
    ap.add_argument("-v", "--verbose", action="store_true", help="progress and timings on stderr")
    ap.add_argument("--_export", nargs=2, help=argparse.SUPPRESS)
    ap.add_argument("--_mem", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args._export:
        return export_child(*args._export)
    wd = Path(args.workdir)
    if args._mem:
        return mem_child(*args._mem, wd)
    VERBOSE = args.verbose
    args.models = [m for m in args.models.split(",") if m]
    for m in args.models:
        if m not in MODELS:
            ap.error(f"unknown model {m!r} (choose from {', '.join(MODELS)})")
    args.threads = [int(t) for t in args.threads.split(",") if t]
    wd.mkdir(parents=True, exist_ok=True)
    have_iree = not args.no_iree and iree_available()
    if have_iree:
        from iree.compiler.version import VERSION as iree_version
    else:
        iree_version = "not used" if args.no_iree else "not installed"
    print(f"# Kiln model benchmark\n\nonnxruntime {ort.__version__}, IREE {iree_version}, "
          f"{os.cpu_count()} CPU(s), threads {args.threads}, block >= {args.min_runs} runs / "
          f"{args.block_seconds:g} s x {args.rounds} round(s), work dir {wd}")
    if not args.no_models:
        report_models(*bench_models(args, wd, have_iree), args)
    if not args.no_gemm:
        bench_gemms(args, wd)
    if args.memory:
        bench_memory(args, wd, have_iree)
    log(f"done in {time.perf_counter() - T0:.0f}s")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""GEMM sweep on the simulated NeuronCore, against the ideal and SCALE-Sim.

For every M, N, K in the sweep, runs build/bin/kiln-npu-gemm (a
hand-scheduled bf16 GEMM written with the npu ISA builder) twice:

* --mode=no-overlap: every instruction serialized. Its Tensor Engine cycles
  must agree with SCALE-Sim 3.0.0 (128x128 array, weight stationary) within
  1 %. Our stationary is an A^T tile (128 rows of C) and the moving operand
  streams B's N columns, so the SCALE-Sim GEMM is (M=N, N=M, K=K) in its
  naming: ifmap rows = our moving columns, filters = our stationary columns.
* --mode=pipelined: engines and DMA queues run concurrently. Reports Tensor
  Engine utilization = ideal / (last TE completion - first TE start) and the
  end-to-end time (DMA included) over ideal = M*N*K / (128*128) cycles.

SCALE-Sim builds its demand matrices in memory (rows = cycles, 128 columns
each), so it is only run where that stays small (--scalesim-max-cycles);
elsewhere the closed form read from its source is used, which the script
first checks against every real run:
    cycles = ceil(K/128) * ceil(M_ss/128) ... folds x (2*R + C + T - 2) - 1
(scalesim/compute/systolic_compute_ws.py: each fold's filter demand has R
rows of weight load then R + C + T - 2 rows of streaming and drain; the
"- 1" is its final-cycle accounting.)

Exit status 1 when a check fails; the numbers are printed either way.
"""
import argparse
import contextlib
import io
import itertools
import math
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ARRAY = 128

SCALESIM_CFG = """[general]
run_name = kiln_npu
[architecture_presets]
ArrayHeight : {rows}
ArrayWidth : {cols}
IfmapSramSzkB : 1048576
FilterSramSzkB : 1048576
OfmapSramSzkB : 1048576
IfmapOffset : 0
FilterOffset : 100000000
OfmapOffset : 200000000
Dataflow : ws
Bandwidth : 100000
ReadRequestBuffer : 1024
WriteRequestBuffer : 1024
[layout]
IfmapCustomLayout : False
IfmapSRAMBankBandwidth : 10
IfmapSRAMBankNum : 10
IfmapSRAMBankPort : 2
FilterCustomLayout : False
FilterSRAMBankBandwidth : 10
FilterSRAMBankNum : 10
FilterSRAMBankPort : 2
[sparsity]
SparsitySupport : false
SparseRep : ellpack_block
OptimizedMapping : false
BlockSize : 8
RandomNumberGeneratorSeed : 40
[run_presets]
InterfaceBandwidth : USER
UseRamulatorTrace : False
"""


def scalesim_formula(m_ss, n_ss, k_ss, rows=ARRAY, cols=ARRAY):
    """SCALE-Sim's ws compute cycles, as its demand matrices count them."""
    folds = math.ceil(k_ss / rows) * math.ceil(n_ss / cols)
    return folds * (2 * rows + cols + m_ss - 2) - 1


def scalesim_run(m_ss, n_ss, k_ss):
    """Runs SCALE-Sim (memory large enough never to stall); total cycles."""
    from scalesim.scale_sim import scalesim
    with tempfile.TemporaryDirectory() as d:
        cfg, topo, layout = (os.path.join(d, n) for n in ("c.cfg", "t.csv", "l.csv"))
        with open(cfg, "w") as f:
            f.write(SCALESIM_CFG.format(rows=ARRAY, cols=ARRAY))
        with open(topo, "w") as f:
            f.write(f"Layer, M, N, K,\ngemm, {m_ss}, {n_ss}, {k_ss},\n")
        with open(layout, "w") as f:
            f.write("Layer, unused,\ngemm, 1,\n")
        with contextlib.redirect_stdout(io.StringIO()):
            s = scalesim(save_disk_space=True, verbose=False, config=cfg,
                         topology=topo, layout=layout, input_type_gemm=True)
            s.run_scale(top_path=d)
        layer = s.runner.single_layer_sim_object_list[0]
        if layer.stall_cycles:
            raise RuntimeError(f"SCALE-Sim stalled {layer.stall_cycles} cycles")
        return int(layer.total_cycles)


def kiln_gemm(tool, m, n, k, mode, dtype, preset):
    out = subprocess.run([tool, str(m), str(n), str(k), f"--mode={mode}",
                          f"--dtype={dtype}", f"--preset={preset}"],
                         check=True, capture_output=True, text=True).stdout
    return {kv.split("=")[0]: kv.split("=")[1] for kv in out.split()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build-dir", default=os.environ.get("KILN_BUILD_DIR",
                                                          os.path.join(ROOT, "build")))
    ap.add_argument("--sizes", default="128,256,512,1024,2048,4096",
                    help="values for each of M, N, K (all combinations)")
    ap.add_argument("--preset", default="trn1")
    ap.add_argument("--scalesim-max-cycles", type=int, default=20000,
                    help="run SCALE-Sim itself up to this many cycles; use its "
                         "formula above (default keeps runs to seconds)")
    ap.add_argument("--large", type=int, default=2048,
                    help="M, N, K all >= this count as large for the 90%% check")
    args = ap.parse_args()
    tool = os.path.join(args.build_dir, "bin", "kiln-npu-gemm")
    sizes = [int(s) for s in args.sizes.split(",")]

    try:
        import scalesim  # noqa: F401
        have_scalesim = True
    except ImportError:
        have_scalesim = False
        print("scalesim is not installed (pip install scalesim==3.0.0): "
              "comparing with its formula only", file=sys.stderr)

    ok = True
    header = (f"{'M':>5} {'N':>5} {'K':>5} {'ideal':>10} {'no-overlap':>10} "
              f"{'SCALE-Sim':>10} {'src':>7} {'delta%':>7} | {'pipe TE':>10} "
              f"{'TE util':>7} {'total/ideal':>11}")
    print(header)
    print("-" * len(header))
    worst_delta, worst_large_util, formula_checks = 0.0, 1.0, 0
    for m, n, k in itertools.product(sizes, repeat=3):
        nov = kiln_gemm(tool, m, n, k, "no-overlap", "bf16", args.preset)
        pip = kiln_gemm(tool, m, n, k, "pipelined", "bf16", args.preset)
        # SCALE-Sim naming: M = streamed rows (our N), N = stationary
        # columns (our M).
        formula = scalesim_formula(n, m, k)
        src = "formula"
        ref = formula
        if have_scalesim and formula <= args.scalesim_max_cycles:
            ref = scalesim_run(n, m, k)
            src = "ran"
            formula_checks += 1
            if ref != formula:
                print(f"SCALE-Sim ran {ref} cycles, formula says {formula}",
                      file=sys.stderr)
                ok = False
        te = float(nov["te_cycles"])
        delta = 100.0 * (te - ref) / ref
        worst_delta = max(worst_delta, abs(delta))
        util = float(pip["te_util"])
        if min(m, n, k) >= args.large:
            worst_large_util = min(worst_large_util, util)
        print(f"{m:5d} {n:5d} {k:5d} {float(nov['ideal_cycles']):10.0f} {te:10.0f} "
              f"{ref:10d} {src:>7} {delta:7.3f} | {float(pip['te_cycles']):10.0f} "
              f"{util:7.3f} {float(pip['total_over_ideal']):11.3f}", flush=True)

    e2e = kiln_gemm(tool, 2048, 2048, 2048, "pipelined", "bf16", args.preset)
    ratio = float(e2e["total_over_ideal"])
    print()
    print(f"SCALE-Sim runs matching its closed form: {formula_checks}")
    print(f"no-overlap vs SCALE-Sim: max |delta| = {worst_delta:.4f} % (limit 1 %)")
    print(f"pipelined TE utilization, min over M,N,K >= {args.large}: "
          f"{100 * worst_large_util:.2f} % (limit 90 %)")
    print(f"2048^3 bf16 end to end, DMA included: {float(e2e['total_cycles']):.0f} "
          f"cycles = {ratio:.4f} x ideal {float(e2e['ideal_cycles']):.0f} (limit 1.25)")
    ok = ok and worst_delta <= 1.0 and worst_large_util >= 0.9 and ratio <= 1.25
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""Memory and time per cell of an implicit 3-D step, measured, and extrapolated to 1024³.

Usage::

    python benchmarks/scaling.py [--quick] [--out scaling.md]

For the 3-D double well E = (x² − 1)² + (y² + z²)/2 at T = 0.5 on n³
cells (n = 32 … 96; 16 … 32 with ``--quick``, which only checks that the
script works: fixed overheads swamp the slopes there), on one core:

* **bytes per cell**: the peak of the memory numpy and scipy allocate
  (``tracemalloc``) while the model, its generator L, its symmetric form S
  and one backward-Euler step are built and solved, divided by n³; and the
  part of it that is the operator (L and S in CSR) alone;
* **SpMVs per step**: the iterations of conjugate gradients on
  (I − dt S) y = D p, from the previous density, to a relative residual of
  1e-8, plain and preconditioned by smoothed-aggregation AMG (pyamg), and
  what an iteration costs in units of one product with the step matrix
  (timed), so that ``SpMV-equivalents per step`` counts the vector work
  and the multigrid cycles too. Per-cell costs are the slopes over the
  sizes (fixed Python overheads drop out);
* **time per SpMV per cell** and the memory bandwidth it implies
  (12 bytes per stored entry plus three vectors of 8 bytes per cell).

From these it predicts a 1024³ run (1.07·10⁹ cells): memory, and the
SpMV-equivalents and bytes moved per step (plain CG's count extrapolated
with its measured growth in n, AMG's taken as flat), and the time per step
at a stated aggregate memory bandwidth. ``docs/scaling.md`` explains the
model. Writes ``benchmarks/scaling.md``.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import platform
import time
import tracemalloc
from pathlib import Path

import numpy as np
import problems as P  # the sibling module (benchmarks/ is not a package)
import scipy.sparse as sp
import scipy.sparse.linalg as spla

import fpsolver as fp

DT = 0.01
RTOL = 1e-8
TARGET = 1024
#: Aggregate memory bandwidths of the prediction, bytes/s: a node of two
#: server sockets, and one H200 GPU (HBM3e, vendor figure).
BANDWIDTHS = {"one 2-socket CPU node (≈ 300 GB/s)": 300e9, "one H200 GPU (4.8 TB/s)": 4.8e12}


def model(n: int) -> fp.FokkerPlanck:
    grid = fp.Grid(x=(-2.5, 2.5, n), y=(-2.5, 2.5, n), z=(-2.5, 2.5, n))
    x, y, z = grid.mesh()
    return fp.FokkerPlanck(grid, (x**2 - 1) ** 2 + 0.5 * (y**2 + z**2), temperature=0.5)


def csr_bytes(a: sp.csr_array) -> int:
    return a.data.nbytes + a.indices.nbytes + a.indptr.nbytes


def spmv_time(S: sp.csr_array, repeat: int = 20) -> float:
    x = np.ones(S.shape[0])
    S @ x
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        S @ x
        times.append(time.perf_counter() - t)
    return float(np.min(times))


def cg_step(A: sp.csr_array, b: np.ndarray, x0: np.ndarray, M=None) -> tuple[int, float]:
    """Iterations and seconds (best of 3) of one CG solve to RTOL."""
    best = np.inf
    for _ in range(3):
        count = [0]

        def tick(_, count=count):
            count[0] += 1

        t = time.perf_counter()
        _, info = spla.cg(A, b, x0=x0, rtol=RTOL, atol=0.0, M=M, callback=tick, maxiter=10_000)
        best = min(best, time.perf_counter() - t)
        if info != 0:
            raise RuntimeError(f"CG did not converge on {A.shape[0]} cells (info={info})")
    return count[0], best


def measure(n: int) -> dict[str, float]:
    """Bytes, SpMV time, CG and AMG-CG iterations and times of one step on n³ cells."""
    import pyamg

    tracemalloc.start()
    m = model(n)
    op = m.operator
    L, S, d = op.generator, op.symmetric, np.exp(op.symmetrizer)
    p0 = fp.gaussian(m.grid, (-1.0, 0.0, 0.0), 0.05).values.ravel()
    A = (sp.identity(S.shape[0], format="csr") - DT * S).tocsr()
    b = d * p0
    iters, seconds = cg_step(A, b, b)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    cells = n**3
    t_spmv = spmv_time(A)
    t = time.perf_counter()
    ml = pyamg.smoothed_aggregation_solver(A, symmetry="symmetric")
    setup = time.perf_counter() - t
    amg_iters, amg_seconds = cg_step(A, b, b, M=ml.aspreconditioner(cycle="V"))
    return {
        "n": n,
        "cells": cells,
        "peak": peak,
        "operator_cell": (csr_bytes(L) + csr_bytes(S)) / cells,
        "nnz_cell": A.nnz / cells,
        "t_spmv": t_spmv,
        "gbs": (12 * A.nnz + 24 * cells) / t_spmv / 1e9,
        "cg_iters": iters,
        "t_cg_it": seconds / iters,
        "amg_iters": amg_iters,
        "t_amg_it": amg_seconds / amg_iters,
        "t_setup": setup,
        "amg_complexity": ml.operator_complexity(),
    }


def marginal(rows: list[dict[str, float]], key: str) -> float:
    """d(key)/d(cells): the cost of one more cell, free of fixed overheads."""
    cells = np.array([r["cells"] for r in rows], dtype=float)
    return float(np.polyfit(cells, [r[key] for r in rows], 1)[0])


def model_numbers(rows: list[dict[str, float]]) -> dict[str, float]:
    """Per-cell costs from the slopes over the sizes measured."""
    spmv = marginal(rows, "t_spmv")
    ns = np.array([r["n"] for r in rows], dtype=float)
    its = np.array([r["cg_iters"] for r in rows], dtype=float)
    return {
        "bytes_cell": marginal(rows, "peak"),
        "spmv_ns_cell": spmv * 1e9,
        "cg_equiv": marginal(rows, "t_cg_it") / spmv,
        "amg_equiv": marginal(rows, "t_amg_it") / spmv,
        "setup_equiv": marginal(rows, "t_setup") / spmv,
        "growth": float(np.polyfit(np.log(ns), np.log(its), 1)[0]),
    }


def predict(rows: list[dict[str, float]], fit: dict[str, float]) -> list[str]:
    """The 1024³ estimate from the measured rows and their per-cell slopes."""
    big = rows[-1]
    cells = TARGET**3
    cg_iters = big["cg_iters"] * (TARGET / big["n"]) ** fit["growth"]
    cg_spmv = cg_iters * fit["cg_equiv"]
    amg_spmv = big["amg_iters"] * fit["amg_equiv"]
    bytes_spmv = 12 * big["nnz_cell"] + 24  # per cell
    memory = fit["bytes_cell"] * cells
    lean = 12 * big["nnz_cell"] * (1 + big["amg_complexity"]) + 10 * 8
    lines = [
        f"## Prediction for {TARGET}³ ({cells:.3g} cells), backward Euler, dt = {DT}",
        "",
        f"* memory, this code: {fit['bytes_cell']:.0f} B/cell (the slope of the peak over "
        f"the sizes) → **{memory / 1e12:.2f} TB**; the operator alone (L and S) "
        f"{big['operator_cell']:.0f} B/cell → {big['operator_cell'] * cells / 1e9:.0f} GB.",
        f"* memory, a lean distributed solver (one step matrix in AIJ, an AMG hierarchy of "
        f"complexity {big['amg_complexity']:.2f}, ten work vectors): {lean:.0f} B/cell → "
        f"**{lean * cells / 1e9:.0f} GB**.",
        f"* plain CG: iterations grow like n^{fit['growth']:.2f} → about {cg_iters:.0f} "
        f"iterations of {fit['cg_equiv']:.1f} SpMV-equivalents: **{cg_spmv:.0f} "
        "SpMV-equivalents per step**.",
        f"* AMG-preconditioned CG: about {big['amg_iters']:.0f} iterations (flat in n) of "
        f"{fit['amg_equiv']:.1f} SpMV-equivalents: **{amg_spmv:.0f} per step**, after a "
        f"set-up of {fit['setup_equiv']:.0f} SpMV-equivalents per distinct dt.",
        f"* one SpMV moves about {bytes_spmv:.0f} B/cell, "
        f"{bytes_spmv * cells / 1e9:.0f} GB at {TARGET}³.",
        "",
        "| machine (aggregate bandwidth) | plain CG [s/step] | AMG-CG [s/step] |",
        "|---|---:|---:|",
    ]
    for name, bw in BANDWIDTHS.items():
        t_cg = cg_spmv * bytes_spmv * cells / bw
        t_amg = amg_spmv * bytes_spmv * cells / bw
        lines.append(f"| {name} | {t_cg:.1f} | {t_amg:.1f} |")
    this = fit["spmv_ns_cell"] * 1e-9 * cells
    lines += [
        f"| this machine, one core ({big['gbs']:.1f} GB/s measured) | "
        f"{cg_spmv * this:.0f} | {amg_spmv * this:.0f} |",
        "",
        "Times are bandwidth-bound estimates (bytes moved / bandwidth); a cluster of k "
        "nodes divides them by k while the halo exchange (one ghost layer) stays a few "
        "per cent of the traffic for subdomains of 128³ or more.",
    ]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="16³ to 32³ (not a model: too small)")
    parser.add_argument("--out", default=str(Path(__file__).with_suffix(".md")))
    args = parser.parse_args(argv)
    sizes = [16, 24, 32] if args.quick else [32, 48, 64, 96]
    rows = []
    header = (
        "| n³ | cells | peak B/cell | operator B/cell | nnz/cell | SpMV ns/cell | GB/s | "
        "CG its | AMG-CG its | AMG complexity |"
    )
    table = [header, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for n in sizes:
        r = measure(n)
        rows.append(r)
        table.append(
            f"| {n}³ | {r['cells']:,} | {r['peak'] / r['cells']:.0f} | "
            f"{r['operator_cell']:.0f} | {r['nnz_cell']:.2f} | "
            f"{r['t_spmv'] / r['cells'] * 1e9:.2f} | {r['gbs']:.2f} | {r['cg_iters']} | "
            f"{r['amg_iters']} | {r['amg_complexity']:.2f} |"
        )
        print(table[-1], flush=True)
    fit = model_numbers(rows)
    lines = [
        f"# Memory and time model of an implicit 3-D step{' (quick)' if args.quick else ''}",
        "",
        f"3-D double well, T = 0.5, one backward-Euler step dt = {DT} solved to relative "
        f"residual {RTOL:g} from the previous density; one core, {platform.machine()}, "
        f"Python {platform.python_version()}, numpy {np.__version__}; load average "
        f"{os.getloadavg()[0]:.1f} (a shared machine: times are noisy, counts and bytes are "
        "not). `peak B/cell`: the peak of numpy/scipy allocations (tracemalloc) for the "
        "model, L, S, the step matrix and plain CG, per cell (fixed overheads dominate the "
        "small sizes: the model below uses the slopes over the sizes).",
        "",
        *table,
        "",
        "Per cell, from the slopes over the sizes: "
        f"{fit['bytes_cell']:.0f} B at the peak, one SpMV {fit['spmv_ns_cell']:.2f} ns; a "
        f"CG iteration costs {fit['cg_equiv']:.1f} SpMVs, an AMG-CG iteration "
        f"{fit['amg_equiv']:.1f}, the AMG set-up {fit['setup_equiv']:.0f}.",
        "",
        *predict(rows, fit),
        "",
    ]
    return P.write_report(args.out, lines)


if __name__ == "__main__":
    raise SystemExit(main())

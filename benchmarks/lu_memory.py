"""Peak memory of 2-D time stepping with a sparse LU, against the estimate the solver uses.

Usage::

    python benchmarks/lu_memory.py [--quick] [--out benchmarks/lu_memory.md]

Each case runs alone in a fresh spawned process (one thread): P2 (the 2-D
double well) and P5 (Müller–Brown) of ``problems.py`` on N² cells, four
TR-BDF2 steps to t_end with ``linear_solver="lu"`` (one factorisation).
The growth of the peak resident set (``ru_maxrss``) over the process after
building the model is compared with
:func:`fpsolver.discrete.linsolve.lu_2d_bytes` (100·log2(N²) bytes a cell),
the estimate with which ``linear_solver="auto"`` leaves the LU for an
iterative solver when it would need more than half of the available
memory. Full run: N = 256, 576, 768, 1024, 1536 (P2) and 576, 1024 (P5);
``--quick``: 64 and 128 (P2).

A second table fits the cost of one factorisation of a 3-D generator
(P4, I − c L with c = 0.015, N³ cells from 16³ to 32³; ``--quick``: 8³ to
12³): factor entries and seconds against
:func:`fpsolver.discrete.linsolve.lu_cost_estimate`, the power laws with
which forcing ``linear_solver="lu"`` on a large 3-D grid warns.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import problems as P  # the sibling module (benchmarks/ is not a package)

import fpsolver as fp
from fpsolver.discrete.linsolve import LU_2D_BYTES_PER_CELL_LOG2, lu_2d_bytes, lu_cost_estimate
from fpsolver.discrete.lu import sparse_lu


def _peak_bytes() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024.0


def _case(name: str, n: int, queue) -> None:
    """In a fresh process: four TR-BDF2 steps with a sparse LU; peak growth."""
    problem = P.PROBLEMS[name]
    model = problem.model(n)
    p0 = problem.initial(model).values
    model.generator()  # the model's own fields and L before the baseline
    base = _peak_bytes()
    t0 = time.perf_counter()
    ds = fp.solve(
        model, p0, problem.t_end, method="tr_bdf2", dt=problem.t_end / 4,
        linear_solver="lu", save_at=[],
    )  # fmt: skip
    queue.put(
        dict(growth=_peak_bytes() - base, wall=time.perf_counter() - t0,
             fact=int(ds.attrs["factorizations"]))
    )  # fmt: skip


def _factor_3d(n: int, queue) -> None:
    """In a fresh process: one sparse LU of I − c L for P4 on n³ cells."""
    import scipy.sparse as sp

    L = P.PROBLEMS["P4"].model(n).generator()
    A = sp.identity(L.shape[0], format="csc") - 0.015 * L
    t0 = time.perf_counter()
    lu = sparse_lu(A)
    queue.put(dict(seconds=time.perf_counter() - t0, entries=int(lu.L.nnz + lu.U.nnz)))


def table_3d(sizes: tuple) -> list[str]:
    """Factor entries and seconds of 3-D factorisations, their power-law fit, the estimate."""
    rows = [
        "| grid | cells | factor entries | entries a cell | seconds "
        "| estimate: entries | estimate: seconds |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    cells, entries, seconds = [], [], []
    for n in sizes:
        r = P.in_fresh_process(_factor_3d, n)
        nbytes, est = lu_cost_estimate(n**3)
        cells.append(n**3), entries.append(r["entries"]), seconds.append(r["seconds"])
        rows.append(
            f"| {n}³ | {n**3:,} | {r['entries']:,} | {r['entries'] / n**3:.0f} "
            f"| {r['seconds']:.2f} | {nbytes / 12:,.0f} | {est:.2f} |"
        )
        print(rows[-1], flush=True)
    x = np.log(np.array(cells) / 4096.0)
    fill = np.polyfit(x, np.log(entries), 1)
    time_fit = np.polyfit(x, np.log(seconds), 1)
    rows += [
        "",
        f"Fit: entries ≈ {np.exp(fill[1]):.3g}·(cells/4096)^{fill[0]:.2f}, "
        f"seconds ≈ {np.exp(time_fit[1]):.3g}·(cells/4096)^{time_fit[0]:.2f}.",
    ]
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="P2 on 64² and 128² only")
    parser.add_argument("--out", default=str(HERE / "lu_memory.md"))
    args = parser.parse_args(argv)
    if args.quick:
        cases, sizes_3d = [("P2", 64), ("P2", 128)], (8, 10, 12)
    else:
        cases = [("P2", n) for n in (256, 576, 768, 1024, 1536)] + [("P5", 576), ("P5", 1024)]
        sizes_3d = (16, 20, 24, 28, 32)
    rows = [
        "| problem | grid | cells | wall [s] | peak growth [MiB] | bytes a cell "
        "| bytes a cell / log2(cells) | estimate [MiB] | measured / estimate |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    ratios = []
    for name, n in cases:
        r = P.in_fresh_process(_case, name, n)
        cells = n * n
        estimate = lu_2d_bytes(cells)
        ratios.append(r["growth"] / estimate)
        rows.append(
            f"| {name} | {n}² | {cells:,} | {r['wall']:.1f} | {r['growth'] / 2**20:.0f} "
            f"| {r['growth'] / cells:.0f} | {r['growth'] / cells / np.log2(cells):.0f} "
            f"| {estimate / 2**20:.0f} | {ratios[-1]:.2f} |"
        )
        print(rows[-1], flush=True)
    lines = [
        f"# Memory of a sparse LU on 2-D grids{' (quick)' if args.quick else ''}",
        "",
        "Growth of the peak resident set of a fresh process (one thread) over four "
        'TR-BDF2 steps with `linear_solver="lu"` (SuperLU, minimum degree on Aᵀ + A), after '
        "the model and its generator are built, against `lu_2d_bytes` = "
        f"{LU_2D_BYTES_PER_CELL_LOG2:g}·log2(cells) "
        "bytes a cell, the estimate of the automatic solver choice.",
        "",
        *rows,
        "",
        f"Measured / estimate: {min(ratios):.2f} to {max(ratios):.2f}.",
        "",
        "## One factorisation of a 3-D generator",
        "",
        "P4 on N³ cells, I − c L with c = 0.015, in a fresh process, one thread: the "
        "factor entries of L and U and the seconds of `sparse_lu`, against "
        "`lu_cost_estimate` (its bytes are 12 a factor entry).",
        "",
        *table_3d(sizes_3d),
        "",
    ]
    return P.write_report(args.out, lines)


if __name__ == "__main__":
    raise SystemExit(main())

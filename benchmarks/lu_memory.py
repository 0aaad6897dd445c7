"""Peak memory of 2-D time stepping with a sparse LU, against the estimate the solver uses.

Usage::

    python benchmarks/lu_memory.py [--quick] [--out benchmarks/lu_memory.md]

Each case runs alone in a fresh spawned process (one thread): P2 (the 2-D
double well) and P5 (Müller–Brown) of ``problems.py`` on N² cells, four
TR-BDF2 steps to t_end with ``linear_solver="lu"`` (one factorisation).
The growth of the peak resident set (``ru_maxrss``) over the process after
building the model is compared with
:func:`fpsolver.discrete.linsolve.lu_2d_bytes` (180·log2(N²) bytes a cell),
the estimate with which ``linear_solver="auto"`` leaves the LU for an
iterative solver when it would need more than half of the available
memory. Full run: N = 256, 576, 768, 1024, 1536 (P2) and 576, 1024 (P5);
``--quick``: 64 and 128 (P2).
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
from fpsolver.discrete.linsolve import lu_2d_bytes


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="P2 on 64² and 128² only")
    parser.add_argument("--out", default=str(HERE / "lu_memory.md"))
    args = parser.parse_args(argv)
    if args.quick:
        cases = [("P2", 64), ("P2", 128)]
    else:
        cases = [("P2", n) for n in (256, 576, 768, 1024, 1536)] + [("P5", 576), ("P5", 1024)]
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
        'TR-BDF2 steps with `linear_solver="lu"` (SuperLU, COLAMD ordering), after '
        "the model and its generator are built, against `lu_2d_bytes` = 180·log2(cells) "
        "bytes a cell, the estimate of the automatic solver choice.",
        "",
        *rows,
        "",
        f"Measured / estimate: {min(ratios):.2f} to {max(ratios):.2f}.",
        "",
    ]
    Path(args.out).write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Time to assemble the generator L on 2-D and 3-D grids.

Usage::

    python benchmarks/assembly.py [--quick] [--repeat 3]

Prints a markdown table (median of `--repeat` runs, one core) and writes
it to ``benchmarks/assembly.md``. Reports the time of ``model.generator()``
(face weights + sparse assembly; the energy is given as a cell array so its
evaluation is not timed) and the cost per million cells, which is flat
when the cost is linear in the number of cells. Target: a 512² generator
in under 0.5 s.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import time
from pathlib import Path

import numpy as np

import fpsolver as fp


def time_assembly(shape: tuple[int, ...], repeat: int) -> tuple[float, int]:
    axes = {n: (-2.5, 2.5, k) for n, k in zip("xyz", shape)}
    grid = fp.Grid(**axes)
    mesh = grid.mesh()
    energy = (mesh[0] ** 2 - 1) ** 2 + sum(0.5 * m**2 for m in mesh[1:])
    times = []
    nnz = 0
    for _ in range(repeat):
        model = fp.FokkerPlanck(grid, energy, temperature=0.5)
        t0 = time.perf_counter()
        L = model.generator()
        times.append(time.perf_counter() - t0)
        nnz = L.nnz
    return float(np.median(times)), nnz


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small grids only")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", default=str(Path(__file__).with_name("assembly.md")))
    args = parser.parse_args(argv)

    if args.quick:
        sizes = [(128, 128), (256, 256), (32, 32, 32)]
    else:
        sizes = [(128, 128), (256, 256), (512, 512), (1024, 1024)]
        sizes += [(32, 32, 32), (64, 64, 64), (96, 96, 96), (128, 128, 128)]
    rows = [
        "| grid | cells | nnz | generator() [s] | s per 10⁶ cells |",
        "|---|---:|---:|---:|---:|",
    ]
    results = {}
    for shape in sizes:
        t, nnz = time_assembly(shape, args.repeat)
        cells = int(np.prod(shape))
        results[shape] = t
        label = "×".join(map(str, shape))
        rows.append(f"| {label} | {cells:,} | {nnz:,} | {t:.3f} | {t / cells * 1e6:.3f} |")
        print(rows[-1], flush=True)
    lines = [f"# Generator assembly (one core, median of {args.repeat})", "", *rows, ""]
    if (512, 512) in results:
        ok = results[(512, 512)] < 0.5
        lines.append(
            f"512² target (< 0.5 s): {'met' if ok else 'NOT met'} ({results[(512, 512)]:.3f} s)"
        )
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""BLAS threads in a solve: 1 against 2, on an idle and on a busy machine.

Usage::

    python benchmarks/threads.py [--quick] [--repeat 3]

Solves P2 (the 2-D double well, 128²; 64² with ``--quick``) with TR-BDF2,
dt = 0.1, to t = 5, with ``threads=1`` and ``threads=2``, first on an idle
machine and then while another process keeps both cores busy with dense
matrix products. Reports median wall times and the slowdown busy / idle
for each setting; writes ``benchmarks/threads.md``. The default
(``threads=1``, see :mod:`fpsolver.core.threads`) is chosen from this
table.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import time
from pathlib import Path

import numpy as np


def _burn(stop) -> None:  # pragma: no cover - runs in a child process
    from threadpoolctl import threadpool_limits

    a = np.random.default_rng(0).standard_normal((600, 600))
    with threadpool_limits(limits=2):
        while not stop.is_set():
            a = np.tanh(a @ a * 1e-3)


def _solve(n: int, threads: int) -> float:
    import fpsolver as fp
    from fpsolver.cli.demo import double_well_model

    model = double_well_model(n)  # a fresh model: the factorisation is part of the cost
    p0 = fp.gaussian(model.grid, (-1, 0), 0.04)
    t0 = time.perf_counter()
    fp.solve(model, p0, 5.0, dt=0.1, method="tr_bdf2", save_at=[], threads=threads)
    return time.perf_counter() - t0


def _medians(n: int, repeat: int) -> dict[int, float]:
    times: dict[int, list[float]] = {1: [], 2: []}
    for _ in range(repeat):  # interleaved
        for k in (1, 2):
            times[k].append(_solve(n, k))
    return {k: float(np.median(v)) for k, v in times.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="64² instead of 128²")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", default=str(Path(__file__).with_name("threads.md")))
    args = parser.parse_args(argv)
    n = 64 if args.quick else 128
    idle = _medians(n, args.repeat)
    stop = mp.Event()
    burner = mp.Process(target=_burn, args=(stop,), daemon=True)
    burner.start()
    try:
        time.sleep(0.5)
        busy = _medians(n, args.repeat)
    finally:
        stop.set()
        burner.join(timeout=10)
        if burner.is_alive():
            burner.terminate()
    rows = [
        "| threads | idle [s] | busy [s] | busy / idle |",
        "|---:|---:|---:|---:|",
        *[f"| {k} | {idle[k]:.3f} | {busy[k]:.3f} | {busy[k] / idle[k]:.2f} |" for k in (1, 2)],
    ]
    lines = [
        f"# BLAS threads: P2 {n}², TR-BDF2, dt = 0.1, t = 5 (median of {args.repeat})",
        "",
        f"Machine: {os.cpu_count()} cores, {platform.machine()}, "
        f"Python {platform.python_version()}; busy = another process running dense "
        "matrix products on 2 threads.",
        "",
        *rows,
        "",
        f"threads=2 / threads=1: idle {idle[2] / idle[1]:.2f}, busy {busy[2] / busy[1]:.2f}.",
    ]
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Adaptive TR-BDF2 against fixed-step BDF2 on P2, run to equilibrium.

Usage::

    python benchmarks/adaptive.py [--quick] [--tol 1e-8]

Both runs start from P2's initial density (the 2-D double well,
N((−1, 0), 0.2² I)) and stop when KL(p‖q) < tol (``t_end="equilibrium"``).
Reports steps, rejected steps, factorisations, wall time, the time at
which the tolerance was met and the final KL, plus the L¹ difference of
the two solutions at t = 5 (how much accuracy the adaptive run gave up).

Memory (``--memory N``, default 512; 48 with ``--quick``): P2 on N² cells to
t = 5, each run alone in a fresh spawned process, one thread; the peak
resident set (``ru_maxrss``) of that process and its growth over the
process after the imports, for a fixed-step TR-BDF2 run (dt = 0.1, the
best fixed step of P2), the default adaptive control (``method="adaptive"``
without `rtol`: P2 is separable, so a plain ``solve(p0, t_end)`` would take
the exact path) and the per-step control at rtol = 1e-6. Goal: the adaptive
runs within 1.3× the peak of the fixed-step run.

Prints markdown tables and writes them to ``benchmarks/adaptive.md``.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import resource
import time
from pathlib import Path

import numpy as np
from problems import in_fresh_process  # the sibling module

import fpsolver as fp
from fpsolver.cli.demo import double_well_model

MEMORY_RUNS = {
    "fixed step: tr_bdf2, dt = 0.1": dict(method="tr_bdf2", dt=0.1),
    "default control: adaptive, no rtol": dict(method="adaptive"),
    "per-step control: adaptive, rtol = 1e-6": dict(method="adaptive", rtol=1e-6),
}


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _memory_case(n: int, label: str, queue) -> None:
    """In a fresh process: one P2 run to t = 5; peak RSS and its growth."""
    model = double_well_model(n)
    p0 = fp.gaussian(model.grid, (-1, 0), 0.04)
    base = _peak_mib()
    t0 = time.perf_counter()
    ds = fp.solve(model, p0, 5.0, save_at=[], **MEMORY_RUNS[label])
    wall = time.perf_counter() - t0
    peak = _peak_mib()
    queue.put(
        dict(label=label, peak=peak, growth=peak - base, wall=wall, steps=ds.attrs["steps"],
             fact=ds.attrs["factorizations"])
    )  # fmt: skip


def memory_table(n: int) -> list[str]:
    """Peak memory of each run of :data:`MEMORY_RUNS` in its own fresh process."""
    rows = [in_fresh_process(_memory_case, n, label) for label in MEMORY_RUNS]
    ref = rows[0]
    lines = [
        f"## Peak memory on P2 ({n}²) to t = 5, each run in a fresh process",
        "",
        "| run | steps | factorisations | wall [s] | peak RSS [MiB] | growth [MiB] "
        "| peak / fixed step | growth / fixed step |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['label']} | {r['steps']} | {r['fact']} | {r['wall']:.2f} | {r['peak']:.0f} |"
            f" {r['growth']:.0f} | {r['peak'] / ref['peak']:.2f} |"
            f" {r['growth'] / max(ref['growth'], 1e-9):.2f} |"
        )
    worst = max(r["peak"] / ref["peak"] for r in rows[1:])
    lines += ["", f"Goal peak ≤ 1.3 × the fixed-step run: {'met' if worst <= 1.3 else 'NOT met'} "
              f"(worst {worst:.2f}).", ""]  # fmt: skip
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="64² instead of 128²")
    parser.add_argument("--tol", type=float, default=1e-8, help="equilibrium KL tolerance")
    parser.add_argument("--rtol", type=float, default=1e-4, help="adaptive rtol")
    parser.add_argument("--memory", type=int, default=None, help="cells per axis (512)")
    parser.add_argument("--out", default=str(Path(__file__).with_name("adaptive.md")))
    args = parser.parse_args(argv)
    n = 64 if args.quick else 128
    model = double_well_model(n)
    p0 = fp.gaussian(model.grid, (-1, 0), 0.04)
    model.generator()

    runs = {}
    for label, kw in [
        ("BDF2, dt = 0.01", dict(method="bdf2", dt=0.01, save_every=5.0)),
        (
            f"adaptive, rtol = {args.rtol:g}",
            dict(method="adaptive", rtol=args.rtol, atol=0.0, save_at=[5.0]),
        ),  # fmt: skip
    ]:
        t0 = time.perf_counter()
        ds = fp.solve(model, p0, "equilibrium", tol=args.tol, **kw)
        runs[label] = (ds, time.perf_counter() - t0)

    (fixed, _), (adapt, _) = runs.values()
    diff5 = float(
        np.sum(
            model.grid.volumes * np.abs(fixed.p.sel(time=5.0).values - adapt.p.sel(time=5.0).values)
        )
    )
    lines = [
        f"# Adaptive vs fixed-step BDF2: P2 ({n}²) to KL(p‖q) < {args.tol:g}",
        "",
        "| run | steps | rejected | factorisations | wall [s] | t reached | final KL |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for label, (ds, wall) in runs.items():
        lines.append(
            f"| {label} | {ds.attrs['steps']} | {ds.attrs.get('rejected_steps', 0)} |"
            f" {ds.attrs['factorizations']} | {wall:.2f} | {ds.attrs['t_reached']:.2f} |"
            f" {float(ds.relative_entropy[-1]):.2e} |"
        )
    speed = runs[list(runs)[0]][1] / runs[list(runs)[1]][1]
    lines += [
        "",
        f"Speed-up of the adaptive run: {speed:.1f}×. L¹ difference of the two solutions at "
        f"t = 5: {diff5:.2e}.",
        "",
    ]
    lines += memory_table(args.memory or (48 if args.quick else 512))
    text = "\n".join(lines)
    print(text)
    Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

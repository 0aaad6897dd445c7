"""Step cost of a time-dependent model against a frozen one (256² grid).

Usage::

    python benchmarks/protocols.py [--quick] [--out FILE]

A dragged trap E = ((x − v t)² + y²)/2 and the frozen trap E = (x² + y²)/2
on the same 256² grid, TR-BDF2 at dt = 0.01, one thread. The steppers are
driven directly: 10 steps timed after one warm-up step, so the one-off
set-up (the frozen model's factorisation, the pattern of L(t)) is left
out; the minimum of two runs is kept. Rows:

- frozen: one LU of I − γdt/2 L, two solves per step;
- time-dependent, ``linear_solver="lu"``: L(t) re-assembled at the two new
  times of each step (no symbolic work) and factorised twice per step;
- time-dependent, ``linear_solver="reuse"`` (the default from 20 000
  cells): the last factorisation preconditions a Richardson iteration,
  refactorised when a solve needs more than 4 iterations.

Also the cost of one re-assembly of L(t) (values only) against assembling
the frozen generator from scratch. Goal of the issue: ≤ 1.5× the frozen
step. ``--quick``: 64² and fewer steps.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import time
from pathlib import Path

import numpy as np


def _models(n: int):
    import fpsolver as fp

    grid = fp.Grid(x=(-5, 5, n), y=(-5, 5, n))
    frozen = fp.FokkerPlanck(grid, energy=lambda x, y: 0.5 * (x**2 + y**2))
    moving = fp.FokkerPlanck(grid, energy=lambda x, y, t: 0.5 * ((x - 0.5 * t) ** 2 + y**2))
    return grid, frozen, moving


def _frozen_steps(model, p0: np.ndarray, dt: float, steps: int) -> tuple[float, dict]:
    """Seconds per TR-BDF2 step of the frozen model, after a warm-up step (its LU)."""
    from fpsolver.integrate.steppers import make_stepper

    stepper = make_stepper("tr_bdf2", model, dt=dt)
    p = stepper.step(p0, dt)
    start = time.perf_counter()
    for _ in range(steps):
        p = stepper.step(p, dt)
    return (time.perf_counter() - start) / steps, {"factorizations": stepper.factorizations}


def _moving_steps(model, p0: np.ndarray, dt: float, steps: int, kind: str) -> tuple[float, dict]:
    """Seconds per TR-BDF2 step of the time-dependent model (re-assembly included)."""
    from fpsolver.discrete.protocol import TimeDependentGenerator
    from fpsolver.integrate.protocol import make_protocol_stepper

    stepper = make_protocol_stepper(
        "tr_bdf2", TimeDependentGenerator(model), dt=dt, linear_solver=kind
    )
    p = stepper.advance(p0, dt, 0.0, dt)
    start = time.perf_counter()
    for k in range(1, steps + 1):
        p = stepper.advance(p, dt, k * dt, (k + 1) * dt)
    seconds = (time.perf_counter() - start) / steps
    info = {"factorizations": stepper.factorizations, "iterations": stepper.linear.iterations}
    return seconds, info


def _assembly(frozen, moving) -> tuple[float, float]:
    from fpsolver.discrete import sg
    from fpsolver.discrete.protocol import TimeDependentGenerator

    gen = TimeDependentGenerator(moving)
    reps = 5
    start = time.perf_counter()
    for k in range(reps):
        gen(0.1 * (k + 1))
    t_re = (time.perf_counter() - start) / reps
    start = time.perf_counter()
    for _ in range(reps):
        sg.generator_matrix(frozen.grid.volumes, sg.all_links(frozen), ())
    t_full = (time.perf_counter() - start) / reps
    return t_re, t_full


def main(argv: list[str] | None = None) -> int:
    import fpsolver as fp

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", default=str(Path(__file__).with_name("protocols.md")))
    args = parser.parse_args(argv)
    n = 64 if args.quick else 256
    steps = 8 if args.quick else 10
    dt = 0.01
    grid, frozen, moving = _models(n)
    p0 = fp.gaussian(grid, (0.5, 0.0), 0.5)
    p = p0.values.ravel()
    t_frozen = min(_frozen_steps(frozen, p, dt, steps)[0] for _ in range(2))
    rows = [("frozen model", t_frozen, "1 (before timing)", "-")]
    for kind in ("lu", "reuse"):
        runs = [_moving_steps(moving, p, dt, steps, kind) for _ in range(2)]
        t, info = min(runs, key=lambda r: r[0])
        its = info["iterations"] if kind == "reuse" else "-"
        rows.append((f"time-dependent, linear_solver={kind!r}", t, info["factorizations"], its))
    t_re, t_full = _assembly(frozen, moving)
    lines = [
        f"# Step cost of a time-dependent model ({n}² grid, TR-BDF2, dt = {dt})",
        "",
        f"Per step: {steps} steps timed after a warm-up step, minimum of 2 runs; one thread.",
        "Factorisations and Richardson iterations: all of one run, warm-up included.",
        "",
        "| case | ms per step | ratio to frozen | factorisations | Richardson iterations |",
        "|---|---|---|---|---|",
    ]
    for name, t, fac, its in rows:
        lines.append(f"| {name} | {1e3 * t:.2f} | {t / t_frozen:.2f} | {fac} | {its} |")
    lines += [
        "",
        "| assembly | ms |",
        "|---|---|",
        f"| re-assembly of L(t) (values only, fixed pattern) | {1e3 * t_re:.2f} |",
        f"| frozen generator from scratch (links + COO → CSR) | {1e3 * t_full:.2f} |",
        "",
        "Goal of the issue: ≤ 1.5× the frozen step.",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Particle backend throughput: particle-steps per second beside bare RNG speed.

For 1-D, 2-D and 3-D models with an analytic ``energy_gradient`` (the fast
path), times :func:`fpsolver.simulate_particles` on one worker and, in the
same run, the time to draw just the normal variates it needs (the same bit
generator, the same block size), so the ratio says how much of the work is
random numbers. Each figure is the best of several repeats, interleaved.
Targets (issue 4): ≥ 3e7 particle-steps/s in 2-D on one core and ≥ 40 % of
the bare random-number throughput.

Run: ``python benchmarks/particles.py [--quick]``; writes
``benchmarks/particles.md``.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np

import fpsolver as fp
from fpsolver.sampling.particles import BLOCK_SIZE


def models():
    g1 = fp.Grid(x=(-8, 8, 256))
    ou1 = fp.FokkerPlanck(g1, energy=lambda x: 0.5 * x**2, energy_gradient=lambda x: x)
    g2 = fp.Grid(x=(-2.5, 2.5, 128), y=(-2.5, 2.5, 128))
    dw = fp.FokkerPlanck(
        g2,
        energy=lambda x, y: (x**2 - 1) ** 2 + 0.5 * y**2,
        temperature=0.5,
        energy_gradient=lambda x, y: (4 * x * (x * x - 1), y),
    )
    g3 = fp.Grid(x=(-5, 5, 32), y=(-5, 5, 32), z=(-5, 5, 32))
    ou3 = fp.FokkerPlanck(
        g3,
        energy=lambda x, y, z: 0.5 * (x**2 + y**2 + z**2),
        energy_gradient=lambda x, y, z: (x, y, z),
    )
    dw_cd = fp.FokkerPlanck(g2, energy=lambda x, y: (x**2 - 1) ** 2 + 0.5 * y**2, temperature=0.5)
    return [
        ("1-D OU", ou1, (2.0,)),
        ("2-D double well", dw, (-1.0, 0.0)),
        ("3-D OU", ou3, (1.0, 1.0, 1.0)),
        ("2-D double well, central differences", dw_cd, (-1.0, 0.0)),
    ]


def bare_rng(nd: int, n: int, steps: int) -> float:
    """Seconds to draw nd·n·steps normals in blocks, as the simulation does."""
    blocks = -(-n // BLOCK_SIZE)
    buf = np.empty(nd * BLOCK_SIZE)
    t = time.perf_counter()
    for b in range(blocks):
        rng = np.random.Generator(np.random.SFC64(b))
        for _ in range(steps):
            rng.standard_normal(out=buf)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer particles and steps")
    ap.add_argument("--out", default=str(Path(__file__).with_suffix(".md")))
    args = ap.parse_args()
    n = (2 if args.quick else 8) * BLOCK_SIZE
    steps = 200 if args.quick else 500
    repeats = 2 if args.quick else 3
    dt = 1e-3

    rows = []
    for name, model, mean in models():
        p0 = fp.gaussian(model.grid, mean, 0.04)
        nd = model.grid.ndim
        sim, rng = np.inf, np.inf
        for _ in range(repeats):
            t = time.perf_counter()
            fp.simulate_particles(model, p0, n=n, t_end=steps * dt, dt=dt, seed=0)
            sim = min(sim, time.perf_counter() - t)
            rng = min(rng, bare_rng(nd, n, steps))
        ps = n * steps / sim
        pr = n * steps / rng
        rows.append((name, nd, ps, pr, ps / pr))
        print(
            f"{name:40s} {ps:10.3g} particle-steps/s   bare RNG {pr:10.3g}   ratio {ps / pr:5.0%}",
            flush=True,
        )

    lines = [
        "# Particle backend throughput",
        "",
        f"One worker, {n} particles × {steps} steps, best of {repeats}; "
        f"numpy {np.__version__}, {platform.machine()}, Python {platform.python_version()}. "
        "`bare RNG` is the rate at which the same bit generator (SFC64) only draws the "
        "normal variates, in the same blocks of "
        f"{BLOCK_SIZE} particles, measured in the same run.",
        "",
        "| model | dims | particle-steps/s | bare RNG (particle-steps/s) | fraction of RNG |",
        "|---|---|---|---|---|",
    ]
    for name, nd, ps, pr, ratio in rows:
        lines.append(f"| {name} | {nd} | {ps:.3g} | {pr:.3g} | {ratio:.0%} |")
    two = rows[1]
    lines += [
        "",
        f"Targets: 2-D ≥ 3e7 particle-steps/s: **{'met' if two[2] >= 3e7 else 'not met'}** "
        f"({two[2]:.3g}); ≥ 40 % of bare RNG: "
        f"**{'met' if two[4] >= 0.4 else 'not met'}** ({two[4]:.0%}).",
        "",
    ]
    Path(args.out).write_text("\n".join(lines))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

"""Particle ensembles on Dask worker processes: throughput against the number of workers.

Usage::

    python benchmarks/ensembles.py [--quick] [--repeat 3] [--out ensembles.md]

Simulates the 2-D double well (analytic gradient, the particle backend's
fast path) with :func:`fpsolver.simulate_particles` in this process, then
with :func:`fpsolver.api.ensembles.simulate_particles_distributed` on a
LocalCluster of 1 and of 2 worker processes (one thread each). Reports
particle-steps per second (best of ``--repeat``, after one warm-up run that
ships the model to the workers), the speed-up over one worker, the
efficiency against linear scaling and the share of a core each simulating
process actually got; writes ``benchmarks/ensembles.md``.
Every distributed result is checked to equal the serial one bit for bit.
The machine's load average is recorded: on a shared machine the second
worker competes with other processes for the second core.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import logging
import platform
import time
from pathlib import Path

import numpy as np

import fpsolver as fp
from fpsolver.api.ensembles import simulate_particles_distributed
from fpsolver.sampling.particles import BLOCK_SIZE


def model() -> fp.FokkerPlanck:
    grid = fp.Grid(x=(-2.5, 2.5, 128), y=(-2.5, 2.5, 128))
    return fp.FokkerPlanck(
        grid,
        energy=lambda x, y: (x**2 - 1) ** 2 + 0.5 * y**2,
        temperature=0.5,
        energy_gradient=lambda x, y: (4 * x * (x * x - 1), y),
    )


def best_time(run, repeat: int, cpu=time.process_time) -> tuple[float, float, object]:
    """Best wall time of `repeat` calls of `run` after a warm-up call, the CPU seconds
    (`cpu()`: of this process, or summed over the workers) of that call, the last result."""
    result = run()
    best, best_cpu = np.inf, np.nan
    for _ in range(repeat):
        c, t = cpu(), time.perf_counter()
        result = run()
        wall = time.perf_counter() - t
        if wall < best:
            best, best_cpu = wall, cpu() - c
    return best, best_cpu, result


def workers_cpu(client) -> float:
    """CPU seconds used so far by all worker processes."""
    return float(sum(client.run(time.process_time).values()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer particles and steps")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", default=str(Path(__file__).with_suffix(".md")))
    args = parser.parse_args(argv)
    from distributed import Client, LocalCluster

    blocks, steps = (16, 100) if args.quick else (64, 400)
    repeat = 1 if args.quick else args.repeat
    dt = 1e-3
    m = model()
    p0 = fp.gaussian(m.grid, (-1.0, 0.0), 0.04)
    kw = dict(n=blocks * BLOCK_SIZE, t_end=steps * dt, dt=dt, save_every=steps * dt / 4, seed=0)
    work = blocks * BLOCK_SIZE * steps
    load = os.getloadavg()[0]
    serial_t, serial_cpu, serial = best_time(lambda: fp.simulate_particles(m, p0, **kw), repeat)
    rows = [("in this process (`fp.simulate_particles`)", None, work / serial_t, serial_cpu)]
    print(f"{rows[-1][0]:45s} {rows[-1][2]:.3g} particle-steps/s", flush=True)
    for workers in (1, 2):
        with (
            LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=":0",
                silence_logs=logging.ERROR,
            ) as cluster,
            Client(cluster) as client,
        ):
            t, cpu, got = best_time(
                lambda c=client: simulate_particles_distributed(m, p0, client=c, **kw),
                repeat,
                cpu=lambda c=client: workers_cpu(c),
            )
        assert got.identical(serial), "the distributed result differs from the serial one"
        name = f"{workers} Dask worker process{'es' if workers > 1 else ''}"
        rows.append((name, workers, work / t, cpu / t / workers))
        print(f"{rows[-1][0]:45s} {rows[-1][2]:.3g} particle-steps/s", flush=True)

    one = rows[1][2]
    per_cpu = [rows[0][2] / (rows[0][3] / serial_t)]
    per_cpu += [rate / (share * workers) for _, workers, rate, share in rows[1:]]
    lines = [
        f"# Particle ensembles on Dask workers{' (quick)' if args.quick else ''}",
        "",
        f"2-D double well (128² cells, analytic gradient), {blocks} blocks of {BLOCK_SIZE} "
        f"particles × {steps} steps ({work:.3g} particle-steps), saved 4 times; best of "
        f"{repeat} after a warm-up run. LocalCluster, processes, one thread each; "
        f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}, "
        f"load average {load:.1f} at the start (other processes share the machine). Every "
        "distributed result equals the serial one bit for bit.",
        "",
        "| run | workers | particle-steps/s | speed-up over 1 worker | efficiency vs linear "
        "| CPU share of a core per process | particle-steps per CPU-second |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, workers, rate, share in rows:
        if workers is None:
            share = share / serial_t
            lines.append(f"| {name} | – | {rate:.3g} | – | – | {share:.0%} | {rate / share:.3g} |")
        else:
            lines.append(
                f"| {name} | {workers} | {rate:.3g} | {rate / one:.2f} | "
                f"{rate / (workers * one):.0%} | {share:.0%} | {rate / (share * workers):.3g} |"
            )
    lines += [
        "",
        f"Per CPU-second, one worker does {per_cpu[1] / per_cpu[0]:.0%} and each of two "
        f"workers {per_cpu[2] / per_cpu[0]:.0%} of the work of this process: the rest is the "
        "cost of Dask (shipping the model, the reductions, the worker's event loop). "
        "`CPU share`: the CPU seconds the "
        "simulating processes got during the best run, per process and per second of wall "
        "time; below 100 % they waited for a core (other processes on the machine), which "
        "the efficiency then reflects. `per CPU-second`: the throughput per second of CPU "
        "the simulating processes got, free of that contention.",
        "",
    ]
    Path(args.out).write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Particle ensembles on Dask worker processes: throughput against the number of workers.

Usage::

    python benchmarks/ensembles.py [--quick] [--repeat 5] [--out ensembles.md]

Simulates the 2-D double well (analytic gradient, the particle backend's
fast path) with :func:`fpsolver.simulate_particles` in this process and with
``client=`` a LocalCluster of 1, 2 and 4 worker processes (one thread each;
also one per core when the machine has more than four). The runs are
interleaved, round after round, so every configuration sees the same load;
each cluster is started for its own measurement and closed after it (an
idle cluster's scheduler, nannies and workers would take CPU from the one
being measured), and a short untimed run on it first ships the model to
the workers. The table reports medians over the rounds.

Reported per configuration: particle-steps per second, the speed-up over
one worker, the efficiency against linear scaling up to the core count
(``os.cpu_count()``: w workers ideally do min(w, cores) times the work of
one), and the share of a core each simulating process got. Every
distributed result is checked to equal the serial one bit for bit. The
machine's load average is recorded: on a shared machine the workers compete
with other processes for the cores, which the CPU share shows.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import contextlib
import logging
import platform
import time
from pathlib import Path

import numpy as np

import fpsolver as fp
from fpsolver.sampling.particles import BLOCK_SIZE


def model() -> fp.FokkerPlanck:
    grid = fp.Grid(x=(-2.5, 2.5, 128), y=(-2.5, 2.5, 128))
    return fp.FokkerPlanck(
        grid,
        energy=lambda x, y: (x**2 - 1) ** 2 + 0.5 * y**2,
        temperature=0.5,
        energy_gradient=lambda x, y: (4 * x * (x * x - 1), y),
    )


def worker_counts(cores: int, quick: bool) -> list[int]:
    """1, 2 and 4 workers, and one per core beyond four (quick: 1 and 2)."""
    if quick:
        return [1, 2]
    return sorted({1, 2, 4, *([cores] if cores > 4 else [])})


def workers_cpu(client) -> float:
    """CPU seconds used so far by all worker processes."""
    return float(sum(client.run(time.process_time).values()))


def timed(run, cpu) -> tuple[float, float, object]:
    """Wall seconds and CPU seconds (`cpu()` before and after) of one call of `run`."""
    c, t = cpu(), time.perf_counter()
    result = run()
    return time.perf_counter() - t, cpu() - c, result


def measure(configs: dict, rounds: int, check) -> dict[str, list[tuple[float, float]]]:
    """(wall, cpu) of every configuration per round, interleaved (the order rotates).

    ``configs`` maps a name to a factory of a context manager that yields
    ``(run, cpu, warm_up)``: a cluster is started for its own measurement
    and closed after it, so idle clusters never compete for the cores; a
    short warm-up run on it (imports on the workers, the model shipped) is
    not timed.
    """
    names = list(configs)
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            with configs[name]() as (run, cpu, warm_up):
                warm_up()
                wall, used, result = timed(run, cpu)
            check(name, result)
            times[name].append((wall, used))
            print(f"round {r + 1}: {name:32s} {wall:6.2f} s", flush=True)
    return times


@contextlib.contextmanager
def cluster(workers: int, run):
    """A LocalCluster of `workers` processes, one thread each.

    Yields ``(run on it, its workers' CPU seconds, a short warm-up run)``;
    ``run(client, short)`` runs the benchmark (or a short one).
    """
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            silence_logs=logging.CRITICAL,
        ) as local,
        Client(local) as client,
    ):
        yield (
            (lambda: run(client, False)),
            (lambda: workers_cpu(client)),
            (lambda: run(client, True)),
        )


def table(rows: list[tuple], *, header: list[str], cores: int) -> list[str]:
    """Markdown rows: (name, workers or None, rate, cpu share, rate per CPU-second)."""
    one = next(row[2] for row in rows if row[1] == 1)
    lines = [
        "| run | worker processes | particle-steps/s (median) | speed-up over 1 worker "
        f"| efficiency vs linear up to {cores} cores | CPU share of a core per process "
        "| particle-steps per CPU-second |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, workers, rate, share, per_cpu in rows:
        if workers is None:
            lines.append(f"| {name} | – | {rate:.3g} | – | – | {share:.0%} | {per_cpu:.3g} |")
            continue
        ideal = min(workers, cores)
        lines.append(
            f"| {name} | {workers} | {rate:.3g} | {rate / one:.2f} | "
            f"{rate / (ideal * one):.0%} | {share:.0%} | {per_cpu:.3g} |"
        )
    return header + lines


def verdict(rows: list[tuple], cores: int) -> str:
    """The issue's goal: ≥ 80 % of linear scaling for every worker count up to the cores."""
    one = next(row[2] for row in rows if row[1] == 1)
    within = [
        (w, rate / (w * one)) for _, w, rate, _, _ in rows if w is not None and 1 < w <= cores
    ]
    if not within:
        return (
            f"Goal ≥ 80 % of linear up to {cores} cores: no worker count in (1, {cores}] measured."
        )
    worst = min(eff for _, eff in within)
    shown = ", ".join(f"{w} workers {eff:.0%}" for w, eff in within)
    state = "met" if worst >= 0.8 else "NOT met"
    return f"Goal ≥ 80 % of linear up to the {cores} cores: {state} ({shown})."


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer particles, steps, workers")
    parser.add_argument("--repeat", type=int, default=5, help="rounds (medians over them)")
    parser.add_argument("--out", default=str(Path(__file__).with_suffix(".md")))
    args = parser.parse_args(argv)

    cores = os.cpu_count() or 1
    blocks, steps = (8, 50) if args.quick else (64, 400)
    rounds = 1 if args.quick else args.repeat
    dt = 1e-3
    m = model()
    p0 = fp.gaussian(m.grid, (-1.0, 0.0), 0.04)
    kw = dict(n=blocks * BLOCK_SIZE, t_end=steps * dt, dt=dt, save_every=steps * dt / 4, seed=0)
    work = blocks * BLOCK_SIZE * steps
    counts = worker_counts(cores, args.quick)
    load = os.getloadavg()[0]
    serial = fp.simulate_particles(m, p0, **kw)

    def check(name, result):
        assert result.identical(serial), f"{name}: the result differs from the serial one"

    def on_client(client, short: bool):
        extra = dict(n=2 * BLOCK_SIZE, t_end=10 * dt, save_every=10 * dt) if short else {}
        return fp.simulate_particles(m, p0, client=client, **{**kw, **extra})

    def here(short: bool = False):
        extra = dict(n=2 * BLOCK_SIZE, t_end=10 * dt, save_every=10 * dt) if short else {}
        return fp.simulate_particles(m, p0, **{**kw, **extra})

    configs = {
        "in this process": lambda: contextlib.nullcontext(
            (here, time.process_time, lambda: here(True))
        )
    }
    for w in counts:
        configs[f"{w} worker process{'es' if w > 1 else ''}"] = lambda w=w: cluster(w, on_client)
    times = measure(configs, rounds, check)
    load_end = os.getloadavg()[0]

    rows = []
    for (name, per_round), workers in zip(times.items(), [None, *counts]):
        walls = np.array([w for w, _ in per_round])
        shares = np.array([c / (w * (workers or 1)) for w, c in per_round])
        cpus = np.array([c for _, c in per_round])
        rate, per_cpu = work / float(np.median(walls)), work / float(np.median(cpus))
        rows.append((name, workers, rate, float(np.median(shares)), per_cpu))
        print(f"{name:32s} {rows[-1][2]:.3g} particle-steps/s", flush=True)
    header = [
        f"# Particle ensembles on Dask workers{' (quick)' if args.quick else ''}",
        "",
        f"Load average of the machine: {load:.1f} before the runs, {load_end:.1f} at the "
        "end (the runs' own processes included). Other processes on the machine compete "
        "with the workers, so the efficiency is a lower bound of what idle cores give; the "
        "CPU share column says how much of a core each simulating process got, and the "
        "throughput per CPU-second is free of that contention (its drop from this process "
        "to the workers is the cost of Dask).",
        "",
        f"2-D double well (128² cells, analytic gradient), {blocks} blocks of {BLOCK_SIZE} "
        f"particles × {steps} steps ({work:.3g} particle-steps), saved 4 times; "
        f"`fp.simulate_particles(..., client=)` on LocalClusters of worker processes, one "
        f"thread each, each started for its own measurement and closed after it (idle "
        f"clusters would compete for the cores), interleaved over {rounds} "
        f"round{'s' if rounds > 1 else ''}, a short untimed warm-up run on each; medians. "
        f"{platform.machine()}, Python {platform.python_version()}. Efficiency: the rate "
        "over min(workers, cores) times the rate of one worker. Every distributed result "
        "equals the serial one bit for bit.",
        "",
    ]
    lines = table(rows, header=header, cores=cores) + ["", verdict(rows, cores)]
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

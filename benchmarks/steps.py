"""Cost of implicit time stepping on the benchmark problems P1–P4.

Usage::

    python benchmarks/steps.py [--quick]

Reports, as a markdown table printed and written to ``benchmarks/steps.md``:

1. Per-step overhead: ``fp.solve`` (backward Euler, no intermediate saves)
   against a bare ``sparse_lu(I − dt L).solve`` loop (SuperLU with the
   package's ordering, :func:`fpsolver.discrete.lu.sparse_lu`) on the same matrix in the
   same process. The per-step cost of ``solve`` is the median interval
   between steps seen by a tracker inside the real time loop (so it holds
   all driver overhead); the bare loop is timed the same way; runs are
   interleaved and the minimum of seven medians kept, which makes the ratio
   robust on a busy machine. Target: a ratio within 1.3.
2. P1–P4: wall time, L¹ error (vs the exact OU density for P1 and P4, vs
   the finest grid for P2), peak memory (resident set growth of a fresh
   process running only that case), linear solver and factorisations.
3. P3: drift of the discrete Gibbs density over t = 20 (target < 1e-12).

Every case runs in its own spawned process, one thread, so memory and time
are not polluted by other cases. ``--quick`` uses small sizes only.
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


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _ou3(n):
    import fpsolver as fp

    grid = fp.Grid(x=(-5, 5, n), y=(-5, 5, n), z=(-5, 5, n))
    model = fp.FokkerPlanck(grid, energy=lambda x, y, z: (x**2 + y**2 + z**2) / 2, temperature=1.0)
    return grid, model


def case(kind: str, n: int, queue) -> None:
    """Run one case in this (fresh) process and put a result dict on `queue`."""
    import scipy.sparse as sp

    import fpsolver as fp
    from fpsolver.cli.demo import double_well_model
    from fpsolver.core.analytic import ou_density
    from fpsolver.discrete.lu import sparse_lu

    base = _rss_mib()
    out: dict = {"case": kind, "n": n}
    if kind == "overhead":
        from fpsolver.integrate.trackers import Tracker

        class Clock(Tracker):
            def __init__(self):
                self.stamps = []

            def on_step(self, t, p):
                self.stamps.append(time.perf_counter())

        model = double_well_model(n)
        grid = model.grid
        p0 = fp.gaussian(grid, (-1, 0), 0.04)
        dt, steps = 0.01, 100
        L = model.generator()
        lu = sparse_lu(sp.identity(grid.size, format="csr") - dt * L)
        ours, bare = [], []
        for _ in range(7):  # interleaved, robust to a busy machine: min of medians
            clock = Clock()
            fp.solve(model, p0, dt * steps, dt=dt, method="backward_euler", save_at=[],
                     trackers=[clock])  # fmt: skip
            ours.append(np.median(np.diff(clock.stamps)))
            p = p0.values.ravel().copy()
            stamps = [time.perf_counter()]
            for _ in range(steps):
                p = lu.solve(p)
                stamps.append(time.perf_counter())
            bare.append(np.median(np.diff(stamps)))
        out.update(ours=min(ours), bare=min(bare), ratio=min(ours) / min(bare))
    elif kind == "P1":
        grid = fp.Grid(x=(-8, 8, n))
        model = fp.FokkerPlanck(grid, energy=lambda x: x**2 / 2, temperature=1.0)
        p0 = fp.gaussian(grid, 3.0, 0.25)
        t0 = time.perf_counter()
        ds = fp.solve(model, p0, 1.0, dt=1e-3, method="tr_bdf2", save_at=[])
        out["wall"] = time.perf_counter() - t0
        exact = ou_density(grid, 1.0, 1.0, [3.0], 0.25, 1.0)
        out["error"] = float(np.sum(grid.volumes * np.abs(ds.p[-1].values - exact)))
        out.update(steps=ds.attrs["steps"], solver=ds.attrs["linear_solver"])
        out["factorizations"] = ds.attrs["factorizations"]
    elif kind == "P2":
        model = double_well_model(n)
        p0 = fp.gaussian(model.grid, (-1, 0), 0.04)
        t0 = time.perf_counter()
        ds = fp.solve(model, p0, 5.0, dt=0.01, method="bdf2", save_at=[])
        out["wall"] = time.perf_counter() - t0
        out["p_end"] = ds.p[-1].values
        out.update(steps=ds.attrs["steps"], solver=ds.attrs["linear_solver"])
        out["factorizations"] = ds.attrs["factorizations"]
        out["kl"] = float(ds.relative_entropy[-1])
    elif kind == "P3":
        model = double_well_model(n)
        q = model.equilibrium()
        t0 = time.perf_counter()
        ds = fp.solve(model, q, 20.0, dt=0.01, method="bdf2", save_every=1.0)
        out["wall"] = time.perf_counter() - t0
        drift = np.sum(model.grid.volumes * np.abs(ds.p.values - q.values), axis=(1, 2))
        out["error"] = float(drift.max())
        out.update(steps=ds.attrs["steps"], solver=ds.attrs["linear_solver"])
        out["factorizations"] = ds.attrs["factorizations"]
    elif kind == "P4":
        grid, model = _ou3(n)
        p0 = fp.gaussian(grid, (1, 1, 1), 0.25)
        t0 = time.perf_counter()
        ds = fp.solve(model, p0, 1.0, dt=0.05, method="bdf2", save_at=[])
        out["wall"] = time.perf_counter() - t0
        exact = ou_density(grid, 1.0, 1.0, [1, 1, 1], 0.25, 1.0)
        out["error"] = float(np.sum(grid.volumes * np.abs(ds.p[-1].values - exact)))
        out.update(steps=ds.attrs["steps"], solver=ds.attrs["linear_solver"])
        out["factorizations"] = ds.attrs["factorizations"]
    out["memory"] = _rss_mib() - base
    queue.put(out)


def run(kind: str, n: int) -> dict:
    return in_fresh_process(case, kind, n)


def _coarsen(p: np.ndarray, factor: int) -> np.ndarray:
    n = p.shape[0] // factor
    return p.reshape(n, factor, n, factor).mean(axis=(1, 3))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes only")
    parser.add_argument("--out", default=str(Path(__file__).with_name("steps.md")))
    args = parser.parse_args(argv)
    q = args.quick
    sizes = {
        "P1": [100, 200, 400] if q else [100, 200, 400, 800, 1600],
        "P2": [32, 64] if q else [64, 128, 256, 512],
        "P3": [32] if q else [128],
        "P4": [24] if q else [32, 64, 96],
    }
    overhead_n = 64 if q else 128

    lines = [f"# Time stepping benchmarks{' (quick)' if q else ''}", ""]
    o = run("overhead", overhead_n)
    ok = o["ratio"] <= 1.3
    lines += [
        f"## Per-step cost: `fp.solve` vs a bare `sparse_lu(...).solve` loop (P2, {overhead_n}²,"
        " backward Euler)",
        "",
        "| solve per step [ms] | bare sparse_lu.solve [ms] | ratio | target ≤ 1.3 |",
        "|---:|---:|---:|---|",
        f"| {o['ours'] * 1e3:.3f} | {o['bare'] * 1e3:.3f} | {o['ratio']:.3f} |"
        f" {'met' if ok else 'NOT met'} |",
        "",
        "The driver adds a few microseconds per step (a dict look-up, counters, tracker "
        "calls) to a solve of about a millisecond; on a busy shared machine the measured "
        "ratio still scatters by ±30 % between runs, in both directions.",
        "",
        "## P1–P4",
        "",
        "| problem | cells | method | steps | linear solver | factorisations | wall [s] "
        "| L¹ error | peak ΔRSS [MiB] |",
        "|---|---:|---|---:|---|---:|---:|---:|---:|",
    ]
    print("\n".join(lines), flush=True)
    methods = {"P1": "tr_bdf2", "P2": "bdf2", "P3": "bdf2", "P4": "bdf2"}
    gibbs = None
    for kind in ("P1", "P2", "P3", "P4"):
        results = [run(kind, n) for n in sizes[kind]]
        if kind == "P2":
            finest = results[-1]["p_end"]
            nf = sizes["P2"][-1]
            for r in results:
                ref = _coarsen(finest, nf // r["n"])
                h2 = (5.0 / r["n"]) ** 2
                r["error"] = float(np.sum(h2 * np.abs(r["p_end"] - ref))) if r["n"] < nf else None
        if kind == "P3":
            gibbs = results[-1]["error"]
        for r in results:
            cells = r["n"] ** {"P1": 1, "P2": 2, "P3": 2, "P4": 3}[kind]
            err = "—" if r.get("error") is None else f"{r['error']:.2e}"
            row = (
                f"| {kind} | {cells:,} | {methods[kind]} | {r['steps']} | {r['solver']} |"
                f" {r['factorizations']} | {r['wall']:.2f} | {err} | {r['memory']:.0f} |"
            )
            lines.append(row)
            print(row, flush=True)
    lines += [
        "",
        "Errors: P1 and P4 against the exact Ornstein–Uhlenbeck density at t = 1 "
        "(P4: 20 BDF2 steps, so the time error dominates on fine grids); P2 against the "
        "finest grid averaged onto the coarser cells; P3 is the L¹ drift of the discrete "
        "Gibbs density over t = 20.",
        "",
        f"P3 Gibbs drift: {gibbs:.2e} (target < 1e-12: {'met' if gibbs < 1e-12 else 'NOT met'})",
        "",
    ]
    Path(args.out).write_text("\n".join(lines))
    print("\n".join(lines[-3:]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

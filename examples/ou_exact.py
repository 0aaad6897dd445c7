"""Ornstein–Uhlenbeck in 1-D against its exact Gaussian solution.

benchmark problem P1: E = x²/2, T = 1, K = 1 on [−8, 8], p0 = N(3, 0.5²). The
exact density stays Gaussian with mean 3 e^{−t} and variance
1 − 0.75 e^{−2t} (:func:`fpsolver.core.analytic.ou_density`). The example solves
on two grids and prints the L1 error at t = 1 and the observed order.

    python examples/ou_exact.py --outdir results
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import xarray as xr

import fpsolver as fp
from fpsolver import plotting
from fpsolver.core.analytic import ou_density


def solve(n: int, dt: float):
    grid = fp.Grid(x=(-8.0, 8.0, n))
    model = fp.FokkerPlanck(grid, energy=lambda x: x**2 / 2, temperature=1.0)
    p0 = ou_density(grid, 1.0, 1.0, [3.0], 0.25, 0.0)
    p0 = p0 / np.sum(p0 * grid.volumes)
    return grid, model.solve(p0, t_end=1.0, dt=dt, method="crank_nicolson", save_every=0.25)


def main(argv: list[str] | None = None) -> list[Path]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outdir", type=Path, default=Path("results"))
    args = parser.parse_args(argv)
    out = args.outdir
    out.mkdir(parents=True, exist_ok=True)

    errors = {}
    for n in (100, 200):
        grid, ds = solve(n, dt=0.1 / n)
        exact = ou_density(grid, 1.0, 1.0, [3.0], 0.25, 1.0)
        errors[n] = float(np.sum(grid.volumes * np.abs(ds["p"].isel(time=-1).values - exact)))
    order = np.log2(errors[100] / errors[200])
    print(
        f"L1 error at t = 1: N=100 {errors[100]:.3e}, N=200 {errors[200]:.3e}; "
        f"observed order {order:.2f}"
    )

    exact = xr.concat(
        [
            grid.data_array(ou_density(grid, 1.0, 1.0, [3.0], 0.25, t), "exact")
            for t in ds["time"].values
        ],
        dim=ds["time"],
    )
    ax = plotting.plot_density(ds, reference=exact)
    ax.set_xlim(-4, 6)
    ax.set_title("OU: grid (lines) and exact Gaussian (dashed)")
    path = out / "ou_exact.png"
    ax.figure.savefig(path, dpi=90)
    plt.close("all")
    print(path)
    return [path]


if __name__ == "__main__":
    main()

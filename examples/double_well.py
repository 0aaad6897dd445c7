"""Double well in 2-D: relaxation from one well, free energy as a Lyapunov function.

E = (x² − 1)² + y²/2, T = 0.5 (benchmark problem P2 on a coarse grid). The
density starts in the left well and leaks over the saddle; the free energy
F(t) falls monotonically to F_eq and, once the density is close to q, the
relative entropy KL(p‖q) (quadratic in p − q) decays like exp(−2 λ_1 t)
with λ_1 the slowest relaxation rate of the generator.

    python examples/double_well.py --outdir results
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

import fpsolver as fp
from fpsolver import plotting


def main(argv: list[str] | None = None) -> list[Path]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outdir", type=Path, default=Path("results"))
    parser.add_argument("--n", type=int, default=48, help="cells per axis")
    args = parser.parse_args(argv)
    out = args.outdir
    out.mkdir(parents=True, exist_ok=True)

    grid = fp.Grid(x=(-2.5, 2.5, args.n), y=(-2.5, 2.5, args.n))
    model = fp.FokkerPlanck(grid, energy=lambda x, y: (x**2 - 1) ** 2 + 0.5 * y**2, temperature=0.5)
    p0 = fp.gaussian(grid, mean=(-1, 0), cov=0.04)
    ds = model.solve(p0, t_end=10.0, dt=0.05, method="bdf2", save_every=0.5)

    f = ds["free_energy"].values
    rate = model.spectrum(2)["rate"].values[1]
    kl = ds["relative_entropy"].values
    slope = -np.polyfit(ds["time"].values[-6:], np.log(kl[-6:]), 1)[0]
    print(f"F(0) = {f[0]:.4f} -> F(10) = {f[-1]:.4f}; monotone: {bool(np.all(np.diff(f) <= 0))}")
    print(f"late decay rate of KL: {slope:.4f}; 2 λ_1 from the spectrum: {2 * rate:.4f}")

    paths = [fp.save_result(ds, out / "double_well.nc")]
    axs = plotting.plot_snapshots(ds, times=[0.0, 1.0, 3.0, 10.0], energy=model)
    axs[0].figure.savefig(out / "double_well_snapshots.png", dpi=90)
    paths.append(out / "double_well_snapshots.png")
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.5), layout="constrained")
    plotting.plot_free_energy(ds, ax=a1)
    plotting.plot_relative_entropy(ds, ax=a2)
    t = ds["time"].values
    a2.plot(
        t,
        kl[-1] * np.exp(-2 * rate * (t - t[-1])),
        ":",
        color="k",
        label=r"$\propto e^{-2\lambda_1 t}$",
    )
    a2.legend(fontsize="small")
    fig.savefig(out / "double_well_relaxation.png", dpi=90)
    paths.append(out / "double_well_relaxation.png")
    plt.close("all")
    for p in paths:
        print(p)
    return paths


if __name__ == "__main__":
    main()

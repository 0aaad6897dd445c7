"""Kramers scan: the relaxation rate of a double well against 1/T, and Kramers' formula.

E = (x² − 1)² on [−2.5, 2.5]: wells at x = ±1 (E'' = 8), a barrier
ΔE = 1 at x = 0 (E'' = −4), mobility 1. The slowest non-zero rate λ₁ of
the generator (``fp.spectrum``) is the hopping rate between the wells,
both ways; Kramers' formula for high barriers (ΔE ≫ T) gives

    λ₁ ≈ 2 · sqrt(E''(1) |E''(0)|) / (2π) · exp(−ΔE/T) = (4√2/π) exp(−1/T).

``fp.sweep`` computes the spectrum at every temperature, here or on Dask
workers (``--local`` starts a LocalCluster on this machine's cores,
``--scheduler tcp://host:8786`` uses a running scheduler); the answer is
the same, bit for bit. The ratio λ₁/λ_Kramers tends to 1 as T → 0, with a
correction of order T/ΔE (extrapolated to T = 0 it is 1 to
a few parts in a thousand); the Arrhenius slope of ln λ₁ against 1/T is the
barrier.

    python examples/kramers_scan.py --outdir results [--quick] [--local]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

import fpsolver as fp

PREFACTOR = 4 * np.sqrt(2) / np.pi  # 2 sqrt(E''(1) |E''(0)|) / (2π)


def make_model(temperature: float, cells: int = 400) -> fp.FokkerPlanck:
    grid = fp.Grid(x=(-2.5, 2.5, cells))
    return fp.FokkerPlanck(grid, energy=lambda x: (x**2 - 1) ** 2, temperature=temperature)


def slowest_rates(model: fp.FokkerPlanck):
    return fp.spectrum(model, 2)


def main(argv: list[str] | None = None) -> list[Path]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outdir", type=Path, default=Path("results"))
    parser.add_argument("--quick", action="store_true", help="fewer temperatures")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--local", action="store_true", help="run on a Dask LocalCluster")
    where.add_argument("--scheduler", default=None, help="a Dask scheduler, tcp://host:8786")
    args = parser.parse_args(argv)
    out = args.outdir
    out.mkdir(parents=True, exist_ok=True)

    beta = np.linspace(1.0, 24.0, 12 if args.quick else 47)  # 1/T
    ds = fp.sweep(
        make_model,
        {"temperature": 1.0 / beta},
        run=slowest_rates,
        client="local" if args.local else None,
        scheduler=args.scheduler,
    )
    assert (ds["status"] == "ok").all(), ds["status"].values
    rate = ds["rate"].sel(k=1).values
    kramers = PREFACTOR * np.exp(-beta)
    ratio = rate / kramers
    slope = np.polyfit(beta[-4:], np.log(rate[-4:]), 1)[0]
    low = beta >= 8.0  # ratio = 1 + a T + b T² + ...: extrapolate to T = 0
    limit = np.polyval(np.polyfit(1.0 / beta[low], ratio[low], 2), 0.0)
    print("   1/T       λ₁ (spectrum)   λ_Kramers      ratio")
    for b, lam, kr, r in zip(beta, rate, kramers, ratio):
        print(f"  {b:5.2f}   {lam:.6e}   {kr:.6e}   {r:.4f}")
    print(f"ratio λ₁/λ_Kramers at 1/T = {beta[-1]:g}: {ratio[-1]:.4f}")
    print(f"ratio extrapolated to T → 0: {limit:.4f}")
    print(f"Arrhenius slope of ln λ₁ at low T: {slope:.4f} (barrier 1)")

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.8), layout="constrained")
    a1.semilogy(beta, rate, "o", ms=4, label="λ₁ of the generator")
    a1.semilogy(beta, kramers, "-", label=r"Kramers: $(4\sqrt{2}/\pi)\,e^{-1/T}$")
    a1.set_xlabel("1/T")
    a1.set_ylabel("relaxation rate")
    a1.legend()
    a1.set_title("double well (x² − 1)²")
    a2.plot(beta, ratio, "o-", ms=4)
    a2.axhline(1.0, color="k", lw=0.8)
    a2.set_xlabel("1/T")
    a2.set_ylabel("λ₁ / λ_Kramers")
    a2.set_title("the ratio tends to 1 as T → 0")
    paths = [out / "kramers_scan.png", out / "kramers_scan.nc"]
    fig.savefig(paths[0], dpi=90)
    plt.close("all")
    fp.save_result(ds.drop_vars("mode"), paths[1])
    for path in paths:
        print(path)
    return paths


if __name__ == "__main__":
    main()

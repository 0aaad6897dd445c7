"""A continuous Hopfield network: its Fokker–Planck model, Theorem 16's SDE, and learning.

One visible and one hidden unit with linear activations g = 2v, f = h/2
(so the mobility is K = diag(1/2, 2)), coupling U = 0.4, input I = 0.3,
T = 0.5. The grid solution of the Fokker–Planck model (energy E, mobility
K) relaxes to exp(−E/T)/Z along the Hopfield ODE's path, which its
noise-free drift reproduces exactly; its Langevin particles agree with it;
the SDE printed in the theory notes' Theorem 16 carries one factor of K too
many and settles to another law. Finally Recall and Learn fits U and I to
samples of the visible unit alone: the update of U is the Hebbian
⟨g f⟩_clamped − ⟨g f⟩_free. Last, a network with two linear visible units
and one tanh hidden unit stores two patterns by the same learning rule and
recalls each from a corrupted copy (hopfield_patterns.png: the visible
free-energy landscape before and after learning).

    python examples/hopfield.py --outdir results [--quick]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

import fpsolver as fp
from fpsolver.analysis.hopfield import Lagrangian, Network
from fpsolver.analysis.learning import ParametricEnergy
from fpsolver.api.learning import recall_and_learn

T = 0.5
A, B = 2.0, 0.5  # L_v = A v²/2, L_h = B h²/2


def relax(net: Network, cells: int, n: int, seed: int = 0):
    """Grid solution, FP particles and printed-SDE particles from the same Gaussian start."""
    grid = fp.Grid(v=(-2.5, 3.0, cells), h=(-4.5, 4.5, cells))
    model = net.model(grid, T, cls=fp.FokkerPlanck)
    m0, c0 = np.array([1.5, -2.0]), np.diag([0.03, 0.05])
    p0 = fp.gaussian(grid, m0, c0)
    ds = model.solve(p0, 4.0, save_every=0.5)
    parts = fp.simulate_particles(model, p0, n=n, t_end=4.0, dt=2e-3, save_every=0.5, seed=seed)
    start = np.random.default_rng(seed + 1).multivariate_normal(m0, c0, n)
    printed = net.particles(start, temperature=T, t_end=4.0, dt=2e-3, save_every=0.5,
                            seed=seed + 2)  # fmt: skip
    path = net.ode(m0[:1], m0[1:], 4.0, t_eval=np.linspace(0, 4, 81))
    return grid, model, ds, parts, printed, path


def learn(net: Network, n_data: int, cells: int, steps: int):
    """Fit (U, I) to samples of v from the network's own Gibbs marginal."""
    x_star = net.fixed_point()
    var_v = T * np.linalg.inv(net.hessian())[0, 0]
    data = np.random.default_rng(5).normal(x_star[0], np.sqrt(var_v), n_data)

    def energy(v, h, theta):
        return Network(U=theta[0], I=theta[1], L_v=A, L_h=B).energy(v[..., None], h[..., None])

    # ∂E/∂U = −g(v) f(h) (Hebbian), ∂E/∂I = −g(v)
    parametric = ParametricEnergy(
        energy, theta_gradient=lambda v, h, theta: (-(A * v) * (B * h), -A * v + 0.0 * h)
    )
    grid = fp.Grid(v=(-3.0, 3.5, cells), h=(-5.0, 5.0, cells))
    fit = recall_and_learn(parametric, [0.1, 0.0], data, grid, visible=["v"], temperature=T,
                           steps=steps, lr=[0.5, 0.1], parameters=["U", "I"])  # fmt: skip
    # closed form for the visible marginal N(I / (1 − AB U²), T / (A (1 − AB U²)))
    u_ml = np.sqrt((1 - T / (A * data.var())) / (A * B))
    i_ml = data.mean() * (1 - A * B * u_ml**2)
    return fit, (u_ml, i_ml)


def figure(results, fit, ml, path: Path) -> Path:
    grid, model, ds, parts, printed, ode = results
    fig, axs = plt.subplots(1, 3, figsize=(14, 4), constrained_layout=True)
    ax = axs[0]
    q = ds["p"].isel(time=-1)
    ax.pcolormesh(grid.centers[0], grid.centers[1], q.T, shading="auto")
    ax.plot(ode["v"][:, 0], ode["h"][:, 0], "w-", lw=1.5, label="Hopfield ODE")
    ax.plot(ds["mean"][:, 0], ds["mean"][:, 1], "o", color="orange", ms=4, label="grid mean")
    ax.set_xlabel("v")
    ax.set_ylabel("h")
    ax.set_title("density at t = 4 and the ODE path")
    ax.legend(fontsize="small")
    ax = axs[1]
    for da, style, label in (
        (ds["covariance"], "-", "Fokker–Planck grid"),
        (parts["covariance"], "o", "Fokker–Planck particles"),
        (printed["covariance"], "s--", "Theorem 16 as printed"),
    ):
        ax.plot(da["time"], da[:, 0, 0], style, mfc="none", label=f"var v, {label}")
        ax.plot(da["time"], da[:, 1, 1], style, mfc="none", label=f"var h, {label}")
    ax.set_xlabel("time")
    ax.set_title("variances")
    ax.legend(fontsize="x-small")
    ax = axs[2]
    for name in ("U", "I"):
        ax.plot(fit["iteration"], fit["theta"].sel(parameter=name), label=name)
    for k, (truth, best) in enumerate(zip((0.4, 0.3), ml)):
        ax.axhline(truth, color=f"C{k}", ls=":", lw=1)
        ax.axhline(best, color=f"C{k}", ls="--", lw=1)
    ax.set_xlabel("iteration")
    ax.set_title("learning U, I from v alone\n(dotted: true, dashed: max. likelihood)")
    ax.legend()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


PATTERNS = np.array([[1.0, 0.6], [-0.8, -1.0]])


def store_patterns(cells: int):
    """Learn U, I of a 2-visible, 1-hidden (tanh) network from two patterns at T = 0.1."""
    net0 = Network(U=[[0.3], [-0.1]], I=[0.0, 0.0], L_v=1.0, L_h=Lagrangian.log_cosh(1))
    grid = fp.Grid(v1=(-2.2, 2.2, cells), v2=(-2.2, 2.2, cells), h=(-3, 3, cells))
    fit = recall_and_learn(net0.parametric_energy(), net0.parameters(), PATTERNS, grid,
                           visible=["v1", "v2"], temperature=0.1, steps=400, lr=0.1,
                           parameters=net0.parameter_names())  # fmt: skip
    return net0, net0.with_parameters(fit["theta"].values[-1]), grid


def pattern_figure(net0: Network, net: Network, grid, path: Path) -> Path:
    fig, axs = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for ax, network, title in ((axs[0], net0, "before"), (axs[1], net, "after")):
        e = network.model(grid, 0.1).energy
        f = -0.1 * np.log(np.sum(np.exp(-(e - e.min()) / 0.1) * grid.widths[2], axis=2))
        cs = ax.contourf(grid.centers[0], grid.centers[1], f.T, 20)
        fig.colorbar(cs, ax=ax)
        ax.plot(*PATTERNS.T, "w*", ms=12, label="patterns")
        rest = np.array([network.fixed_point(xi, [0.0])[:2] for xi in PATTERNS])
        ax.plot(*rest.T, "ro", mfc="none", ms=9, label="ODE rest points")
        ax.set_xlabel("v1")
        ax.set_ylabel("v2")
        ax.set_title(f"visible free energy F(v), {title} learning")
        ax.legend(fontsize="small", loc="lower right")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> list[Path]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outdir", type=Path, default=Path("results"))
    parser.add_argument("--quick", action="store_true", help="coarser grids, fewer particles")
    args = parser.parse_args(argv)
    cells, n = (40, 10_000) if args.quick else (56, 30_000)
    net = Network(U=0.4, I=0.3, L_v=A, L_h=B)

    results = relax(net, cells, n)
    grid, model, ds, parts, printed, _ = results
    pts = [x.ravel() for x in grid.mesh()]
    dv, dh = net.rhs(pts[0][:, None], pts[1][:, None])
    gv, gh = net.energy_gradient(pts[0][:, None], pts[1][:, None])
    kv, kh = net.mobility()
    gap = max(np.abs(-kv[0, 0] * gv - dv).max(), np.abs(-kh[0, 0] * gh - dh).max())
    print(f"noise-free drift −K∇E minus the Hopfield ODE, max over the cells: {gap:.1e}")
    report = fp.compare(ds, parts)
    print(f"grid vs particles: chi-square p-value at t = 4: {float(report.p_value[-1]):.2f}")
    gibbs = T * np.linalg.inv(net.hessian())
    var_grid = float(ds["covariance"][-1, 0, 0])
    var_printed = float(printed["covariance"][-1, 0, 0])
    print(f"stationary var v: Gibbs {gibbs[0, 0]:.3f}, grid {var_grid:.3f}, "
          f"printed SDE {var_printed:.3f}")  # fmt: skip

    fit, (u_ml, i_ml) = learn(net, 20_000, 40 if args.quick else 60, 100 if args.quick else 150)
    u, i = fit["theta"].values[-1]
    print(f"learned U = {u:.4f}, I = {i:.4f} (true 0.4, 0.3; continuum maximum likelihood "
          f"{u_ml:.4f}, {i_ml:.4f})")  # fmt: skip
    path = figure(results, fit, (u_ml, i_ml), args.outdir / "hopfield.png")
    print(path)

    net0, net, pgrid = store_patterns(20)
    for k, xi in enumerate(PATTERNS):
        before = np.linalg.norm(net0.fixed_point(xi, [0.0])[:2] - xi)
        after = np.linalg.norm(net.fixed_point(xi, [0.0])[:2] - xi)
        print(f"pattern {k + 1}: nearest rest point at {before:.3f} before learning, "
              f"{after:.3f} after")  # fmt: skip
    corrupted = PATTERNS + np.array([[-0.6, 0.5], [0.7, -0.4]])
    v, _ = net.settle(corrupted, np.zeros((2, 1)))
    recalled = np.argmin(np.linalg.norm(v[:, None] - PATTERNS[None], axis=-1), axis=1) + 1
    print(f"corrupted patterns 1, 2 recalled as patterns {recalled[0]}, {recalled[1]}")
    second = pattern_figure(net0, net, pgrid, args.outdir / "hopfield_patterns.png")
    print(second)
    return [path, second]


if __name__ == "__main__":
    main()

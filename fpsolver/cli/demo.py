"""The default problem: the 2-D double well of benchmark problem P2, solved and plotted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["double_well_model", "run_demo"]


def double_well_model(n: int = 128):
    """The 2-D double well E = (x² − 1)² + y²/2, T = 0.5, K = 1 on [−2.5, 2.5]².

    Examples
    --------
    >>> double_well_model(16).grid.shape
    (16, 16)
    """
    from ..api.fokker_planck import FokkerPlanck
    from ..core.grid import Grid

    grid = Grid(x=(-2.5, 2.5, n), y=(-2.5, 2.5, n))
    return FokkerPlanck(
        grid, energy=lambda x, y: (x**2 - 1) ** 2 + 0.5 * y**2, temperature=0.5, mobility=1.0
    )


def run_demo(
    outdir: str | Path = "results", n: int = 128, t_end: float = 5.0, dt: float = 0.01
) -> list[Path]:
    """Solve P2 to `t_end` and write the result and its figures.

    The initial density N((−1, 0), 0.2² I) sits in the left well; it relaxes
    within the well quickly and then leaks over the barrier towards the
    symmetric Gibbs state. Writes

    - ``double_well.nc``: the result Dataset (every 0.1 time units),
    - ``double_well_snapshots.png``: the density at six times,
    - ``double_well_free_energy.png``: F(t) and KL(p‖q)(t) (log scale).

    Parameters
    ----------
    outdir : str or Path
        Output folder (created).
    n : int
        Cells per axis.
    t_end, dt : float
        Final time and BDF2 step.

    Returns
    -------
    list of Path
        The files written.

    Examples
    --------
    >>> import tempfile
    >>> [p.name for p in run_demo(tempfile.mkdtemp(), n=24, t_end=0.2, dt=0.02)]
    ['double_well.nc', 'double_well_snapshots.png', 'double_well_free_energy.png']
    """
    import matplotlib

    matplotlib.use("Agg")

    from ..api.runs import solve
    from ..core.initial import gaussian
    from ..io import save_result

    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    model = double_well_model(n)
    p0 = gaussian(model.grid, mean=(-1.0, 0.0), cov=0.04)
    ds = solve(model, p0, t_end, dt=dt, method="bdf2", save_every=min(0.1, t_end))
    return [
        save_result(ds, out / "double_well.nc"),
        _save(_snapshot_figure(ds, model.grid), out / "double_well_snapshots.png"),
        _save(_relaxation_figure(ds, model), out / "double_well_free_energy.png"),
    ]


def _save(fig: Any, path: Path) -> Path:
    """Write `fig` to `path` and close it."""
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _snapshot_indices(ntimes: int) -> list[int]:
    """Up to six saved-time indices, spaced geometrically, with the first and the last.

    Examples
    --------
    >>> _snapshot_indices(51)
    [0, 1, 4, 10, 22, 50]
    >>> _snapshot_indices(3)
    [0, 1, 2]
    """
    import numpy as np

    picks = np.unique(np.round(np.geomspace(1, ntimes, 6)).astype(int) - 1)
    picks = sorted({0, *picks.tolist(), ntimes - 1})[-6:]
    if 0 not in picks:
        picks[0] = 0
    return picks


def _snapshot_figure(ds: Any, grid: Any) -> Any:
    """The density p(x, y, t) at up to six saved times, in a 2 × 3 panel figure."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(12, 7), sharex=True, sharey=True)
    x, y = grid.centers
    for ax, i in zip(axes.ravel(), _snapshot_indices(ds.sizes["time"])):
        im = ax.pcolormesh(x, y, ds.p[i].values.T, shading="auto", vmin=0)
        ax.set_title(f"t = {float(ds.time[i]):.2f}")
        ax.set_aspect("equal")
        fig.colorbar(im, ax=ax, shrink=0.8)
    for ax in axes[:, 0]:
        ax.set_ylabel("y")
    for ax in axes[-1]:
        ax.set_xlabel("x")
    fig.suptitle("2-D double well E = (x² − 1)² + y²/2, T = 0.5: density p(x, y, t)")
    return fig


def _relaxation_figure(ds: Any, model: Any) -> Any:
    """F(t) against F_eq = −T ln Z, and KL(p‖q)(t) on a log scale, side by side."""
    import matplotlib.pyplot as plt

    from ..core.diagnostics import log_partition

    T = model.temperature
    F_eq = -T * log_partition(model.energy, T, model.grid.volumes)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    t = ds.time.values
    a1.plot(t, ds.free_energy.values, label="F(t)")
    a1.axhline(F_eq, color="k", ls="--", lw=1, label="F_eq = −T ln Z")
    a1.set_xlabel("t")
    a1.set_ylabel("free energy")
    a1.legend()
    kl = ds.relative_entropy.values
    a2.semilogy(t[kl > 0], kl[kl > 0])
    a2.set_xlabel("t")
    a2.set_ylabel("KL(p‖q)")
    a2.set_title("relative entropy to the Gibbs state")
    fig.tight_layout()
    return fig

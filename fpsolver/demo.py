"""The default problem: the 2-D double well of DESIGN problem P2."""

from __future__ import annotations

from pathlib import Path

__all__ = ["double_well_model", "run_demo"]


def double_well_model(n: int = 128):
    """The 2-D double well E = (x² − 1)² + y²/2, T = 0.5, K = 1 on [−2.5, 2.5]²."""
    from .grid import Grid
    from .model import FokkerPlanck

    grid = Grid(x=(-2.5, 2.5, n), y=(-2.5, 2.5, n))
    return FokkerPlanck(
        grid, energy=lambda x, y: (x**2 - 1) ** 2 + 0.5 * y**2, temperature=0.5, mobility=1.0
    )


def run_demo(outdir: str | Path = "results") -> list[Path]:
    """Compute the double-well equilibrium and save a PNG of it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    q = double_well_model().equilibrium()
    fig, ax = plt.subplots(figsize=(5, 4))
    q.T.plot(ax=ax)
    ax.set_title("double-well equilibrium density")
    path = out / "double_well_equilibrium.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return [path]

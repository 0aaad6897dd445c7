"""The benchmark problems P1–P6, shared by the scripts in this folder.

Usage::

    python benchmarks/problems.py [--quick] [--out problems.md]

As a script, writes ``benchmarks/problems.md``: the machine the tables were
measured on and one row per problem (energy, temperature, box, initial
density, final time). As a module (``import problems`` from a sibling
script, or loaded by path), provides

- :data:`PROBLEMS`: name → :class:`Problem` (``problem.model(n)`` and
  ``problem.initial(grid)`` build the case on an n-cells-per-axis grid),
- :func:`muller_brown`: the Müller–Brown surface (P5 is it divided by 20),
- :func:`restrict`: cell averages of a fine-grid density on a coarser grid
  whose cells are unions of fine cells (mass is conserved exactly),
- :func:`ou_cell_averages`: the exact Ornstein–Uhlenbeck density averaged
  over each cell (the reference of P1 and P4),
- :func:`machine`: cores, memory, CPU model and library versions.

P1 and P4 have exact solutions; P2, P5 and P6 are checked against fine-grid
references (``benchmarks/accuracy.py``); P3 starts at the discrete Gibbs
state, which must not move. P5 and P6 are not additively separable: their
generators do not split into one-dimensional operators, so no solver can
shortcut them by separation of variables.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import multiprocessing as mp
import platform
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.special import ndtr

import fpsolver as fp

__all__ = [
    "MB_MINIMA",
    "PROBLEMS",
    "Problem",
    "in_fresh_process",
    "machine",
    "muller_brown",
    "ou_cell_averages",
    "p6_energy",
    "restrict",
]

# Müller & Brown, Theor. Chim. Acta 53 (1979) 75: E = Σ_k A_k exp(a_k (x − x0_k)²
# + b_k (x − x0_k)(y − y0_k) + c_k (y − y0_k)²).
MB_A = np.array([-200.0, -100.0, -170.0, 15.0])
MB_a = np.array([-1.0, -1.0, -6.5, 0.7])
MB_b = np.array([0.0, 0.0, 11.0, 0.6])
MB_c = np.array([-10.0, -10.0, -6.5, 0.7])
MB_X0 = np.array([1.0, 0.0, -0.5, -1.0])
MB_Y0 = np.array([0.0, 0.5, 1.5, 1.0])
#: The three minima of the Müller–Brown surface (deep, middle, shallow well).
MB_MINIMA = ((-0.558224, 1.441726), (0.623499, 0.028038), (-0.050011, 0.466694))
#: P5's energy is the Müller–Brown surface divided by this.
MB_SCALE = 20.0
#: P6's parameters: E = Σ x_i⁴/4 − a Σ x_i²/2 + κ (xy + yz + zx).
P6_A, P6_KAPPA = 1.0, 0.3


def muller_brown(x, y):
    """The Müller–Brown potential energy surface (unscaled).

    Parameters
    ----------
    x, y : array_like
        Coordinates (broadcast against each other).

    Returns
    -------
    numpy.ndarray
        E(x, y); the minima are about −146.70, −108.17 and −80.77.

    Examples
    --------
    >>> round(float(muller_brown(-0.558224, 1.441726)), 2)
    -146.7
    """
    x = np.asarray(x, dtype=float)[..., None]
    y = np.asarray(y, dtype=float)[..., None]
    dx, dy = x - MB_X0, y - MB_Y0
    return np.sum(MB_A * np.exp(MB_a * dx**2 + MB_b * dx * dy + MB_c * dy**2), axis=-1)


def p5_energy(x, y):
    """P5's energy: the Müller–Brown surface divided by :data:`MB_SCALE`."""
    return muller_brown(x, y) / MB_SCALE


def p6_energy(x, y, z):
    """P6's energy: three quartic double wells coupled pairwise.

    E = (x⁴ + y⁴ + z⁴)/4 − a (x² + y² + z²)/2 + κ (xy + yz + zx) with
    a = :data:`P6_A`, κ = :data:`P6_KAPPA`.

    Examples
    --------
    >>> float(p6_energy(1.0, 1.0, 0.0))
    -0.2
    """
    quartic = (x**4 + y**4 + z**4) / 4 - P6_A * (x**2 + y**2 + z**2) / 2
    return quartic + P6_KAPPA * (x * y + y * z + z * x)


def double_well_energy(x, y):
    """P2's energy (the demo model): (x² − 1)² + y²/2."""
    return (x**2 - 1) ** 2 + 0.5 * y**2


def ou_energy(*xs):
    """The Ornstein–Uhlenbeck energy |x|²/2 (P1, P4)."""
    return sum(x**2 for x in xs) / 2


@dataclass(frozen=True)
class Problem:
    """One benchmark problem: dp/dt = ∇·(p ∇E + T ∇p) in a box with reflecting walls.

    Attributes
    ----------
    name : str
        "P1" … "P6".
    title : str
        A short description.
    energy : callable
        E(x, ...) on the axes x, y, z.
    formula : str
        E as text (for the tables).
    temperature : float
    box : tuple of (float, float)
        Bounds of each axis; the grid has n cells on every axis.
    mean : tuple of float
        Centre of the initial Gaussian.
    variance : float
        Its isotropic variance (``None``: start at the discrete Gibbs state).
    t_end : float
        Final time of the benchmark.
    """

    name: str
    title: str
    energy: Callable
    formula: str
    temperature: float
    box: tuple
    mean: tuple
    variance: float | None
    t_end: float

    @property
    def ndim(self) -> int:
        """Number of axes."""
        return len(self.box)

    def grid(self, n: int) -> fp.Grid:
        """The problem's grid with `n` cells on every axis."""
        return fp.Grid(**{a: (lo, hi, n) for a, (lo, hi) in zip("xyz", self.box)})

    def model(self, n: int) -> fp.FokkerPlanck:
        """A fresh model (nothing assembled yet) on :meth:`grid` (`n`)."""
        return fp.FokkerPlanck(self.grid(n), energy=self.energy, temperature=self.temperature)

    def initial(self, model: fp.FokkerPlanck):
        """The initial density on `model`'s grid (a DataArray)."""
        if self.variance is None:
            return model.equilibrium()
        return fp.gaussian(model.grid, self.mean, self.variance)

    def describe(self) -> str:
        """The initial density as text."""
        if self.variance is None:
            return "discrete Gibbs state"
        mean = ", ".join(f"{m:g}" for m in self.mean)
        return f"N(({mean}), {self.variance:g} I)"


PROBLEMS: dict[str, Problem] = {
    p.name: p
    for p in (
        Problem("P1", "1-D Ornstein–Uhlenbeck", ou_energy, "x²/2", 1.0,
                ((-8.0, 8.0),), (3.0,), 0.25, 1.0),
        Problem("P2", "2-D double well (the demo)", double_well_energy, "(x² − 1)² + y²/2",
                0.5, ((-2.5, 2.5),) * 2, (-1.0, 0.0), 0.04, 5.0),
        Problem("P3", "P2 started at its Gibbs state", double_well_energy,
                "(x² − 1)² + y²/2", 0.5, ((-2.5, 2.5),) * 2, (), None, 20.0),
        Problem("P4", "3-D Ornstein–Uhlenbeck", ou_energy, "(x² + y² + z²)/2", 1.0,
                ((-5.0, 5.0),) * 3, (1.0, 1.0, 1.0), 0.25, 1.0),
        Problem("P5", "2-D Müller–Brown, three wells, coupled", p5_energy,
                f"E_MB(x, y)/{MB_SCALE:g}", 1.0, ((-1.5, 1.2), (-0.5, 2.0)),
                (0.623, 0.028), 0.01, 1.0),
        Problem("P6", "3-D coupled quartic wells", p6_energy,
                f"Σ xᵢ⁴/4 − {P6_A:g}·Σ xᵢ²/2 + {P6_KAPPA:g}·(xy + yz + zx)", 0.5,
                ((-3.0, 3.0),) * 3, (1.0, 0.5, -0.5), 0.1, 1.0),
    )
}  # fmt: skip


def restrict(p: np.ndarray, fine: fp.Grid, factor: int) -> np.ndarray:
    """Cell averages of `p` on the grid whose cells are blocks of `factor`^d fine cells.

    Each coarse value is Σ V_fine p_fine over its children divided by the
    coarse volume (the sum of the children's volumes), so Σ V p is the same
    on both grids.

    Parameters
    ----------
    p : numpy.ndarray
        Density on `fine` (its shape).
    fine : fpsolver.Grid
        The fine grid; every axis has a multiple of `factor` cells.
    factor : int
        Refinement factor per axis.

    Returns
    -------
    numpy.ndarray
        The coarse cell averages.

    Examples
    --------
    >>> g = fp.Grid(x=(0, 1, 4))
    >>> restrict(np.array([1.0, 3.0, 5.0, 7.0]), g, 2).tolist()
    [2.0, 6.0]
    """
    if any(n % factor for n in fine.shape):
        raise ValueError(f"grid {fine.shape} is not a refinement by {factor}")
    blocks = [x for n in fine.shape for x in (n // factor, factor)]
    children = tuple(range(1, 2 * fine.ndim, 2))
    mass = (np.asarray(p) * fine.volumes).reshape(blocks).sum(axis=children)
    volume = fine.volumes.reshape(blocks).sum(axis=children)
    return mass / volume


def prolong(c: np.ndarray, factor: int) -> np.ndarray:
    """Sub-cell averages of the cell averages `c` of a smooth field, `factor` per axis.

    Along each axis in turn, the parabola whose averages over three
    neighbouring cells are theirs (centred on the cell, one-sided at the
    two ends) is averaged over each sub-cell. The sub-cells of a cell
    average to its value exactly, and the result is exact for a
    polynomial of degree ≤ 2 along each axis: error O(h³) on a smooth
    field. For uniform cells along each axis (the benchmark grids).

    Parameters
    ----------
    c : numpy.ndarray
        Cell averages on the coarse grid, at least 3 cells per axis.
    factor : int
        Sub-cells per cell and axis.

    Returns
    -------
    numpy.ndarray
        Averages on the grid with `factor` times as many cells per axis.

    Examples
    --------
    >>> c = np.array([1.0, 7.0, 19.0]) / 3  # averages of x² over [0, 1], [1, 2], [2, 3]
    >>> (prolong(c, 2) * 12).round(9).tolist()  # 12 × averages of x² over halves
    [1.0, 7.0, 19.0, 37.0, 61.0, 91.0]
    """
    out = np.asarray(c, dtype=float)
    for axis in range(out.ndim):
        out = np.moveaxis(_prolong_axis(np.moveaxis(out, axis, 0), factor), 0, axis)
    return out


def _prolong_axis(c: np.ndarray, r: int) -> np.ndarray:
    """:func:`prolong` along the first axis."""
    n = c.shape[0]
    if n < 3:
        raise ValueError(f"prolong needs at least 3 cells per axis, got {n}")
    centre = np.clip(np.arange(n), 1, n - 2)
    shift = (np.arange(n) - centre).reshape((n,) + (1,) * (c.ndim - 1))
    lo, mid, hi = c[centre - 1], c[centre], c[centre + 1]
    slope, curve = 0.5 * (hi - lo), hi - 2.0 * mid + lo
    # the parabola, in units of a cell from the centre: mid − curve/24 + slope ξ + curve ξ²/2
    out = np.empty((n, r) + c.shape[1:])
    for k in range(r):
        a = shift + k / r - 0.5
        b = a + 1.0 / r
        mean_sq = (a * a + a * b + b * b) / 3.0  # the mean of ξ² over [a, b]
        out[:, k] = mid - curve / 24.0 + slope * (a + b) / 2.0 + curve * mean_sq / 2.0
    return out.reshape((n * r,) + c.shape[1:])


def ou_cell_averages(grid: fp.Grid, mean0, variance0: float, t: float) -> np.ndarray:
    """Exact cell averages at time `t` of the OU process dx = −x dt + sqrt(2) dW.

    The start N(mean0, variance0 I) stays an isotropic Gaussian with mean
    mean0 e^{−t} and variance variance0 e^{−2t} + 1 − e^{−2t}; its average
    over a box cell is a product of one-dimensional differences of the
    normal CDF (the free-space solution: the reflecting walls of P1 and P4
    hold the ≈ 1e-6 of mass it puts outside the box).

    Examples
    --------
    >>> g = fp.Grid(x=(-8, 8, 64))
    >>> p = ou_cell_averages(g, [3.0], 0.25, 1.0)
    >>> round(float(np.sum(p * g.volumes)), 9)
    1.0
    """
    decay = np.exp(-t)
    sigma = np.sqrt(variance0 * decay**2 + 1.0 - decay**2)
    out = np.ones(grid.shape)
    for axis, (edges, m0) in enumerate(zip(grid.edges, mean0)):
        cdf = ndtr((edges - m0 * decay) / sigma)
        shape = [1] * grid.ndim
        shape[axis] = -1
        out = out * (np.diff(cdf) / np.diff(edges)).reshape(shape)
    return out


def in_fresh_process(target: Callable, *args: Any) -> Any:
    """``target(*args, queue)`` alone in a fresh spawned process; what it puts on the queue.

    The scripts that measure memory use it: the peak resident set of a fresh
    process belongs to that one case.
    """
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=target, args=(*args, queue))
    proc.start()
    out = queue.get()
    proc.join()
    return out


def machine() -> dict[str, str]:
    """The machine and the library versions, for the tables.

    Returns
    -------
    dict
        ``cpu`` (model name from /proc/cpuinfo), ``cores``, ``memory``,
        ``python``, ``numpy``, ``scipy``, ``fpsolver``.
    """
    import scipy

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        memory = f"{pages / 2**30:.0f} GiB"
    except (ValueError, OSError, AttributeError):
        memory = "unknown"
    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "memory": memory,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "fpsolver": fp.__version__,
    }


def machine_line() -> str:
    """:func:`machine` as one line of markdown."""
    m = machine()
    return (
        f"{m['cpu']}, {m['cores']} cores, {m['memory']}; Python {m['python']}, "
        f"numpy {m['numpy']}, scipy {m['scipy']}, fpsolver {m['fpsolver']}"
    )


def table() -> list[str]:
    """The problems as a markdown table."""
    rows = [
        "| problem | description | energy E | T | box | p₀ | t_end |",
        "|---|---|---|---:|---|---|---:|",
    ]
    for p in PROBLEMS.values():
        box = " × ".join(f"[{lo:g}, {hi:g}]" for lo, hi in p.box)
        rows.append(
            f"| {p.name} | {p.title} | {p.formula} | {p.temperature:g} | {box} |"
            f" {p.describe()} | {p.t_end:g} |"
        )
    return rows


def script_index() -> list[str]:
    """A markdown table of every script in this folder, its table and its summary line.

    The summary is the first line of each script's docstring, read without
    importing the script.
    """
    import ast

    rows = ["| table | script | what it measures |", "|---|---|---|"]
    for script in sorted(Path(__file__).parent.glob("*.py")):
        doc = ast.get_docstring(ast.parse(script.read_text())) or ""
        first = doc.strip().splitlines()[0].rstrip(".").replace("``", "`") if doc.strip() else ""
        table = script.with_suffix(".md").name
        rows.append(f"| [{table}]({table}) | `{script.name}` | {first} |")
    return rows


def write_report(out: str | Path, lines: list[str]) -> int:
    """Write the markdown `lines` of a benchmark to `out`, print them, and return 0.

    The last step of every script's ``main``.
    """
    text = "\n".join(lines)
    Path(out).write_text(text)
    print(text)
    return 0


def update_readme(block: str, text: str) -> bool:
    """Replace the lines between ``<!-- block -->`` and ``<!-- /block -->`` in README.md.

    Lets the scripts keep the README's generated parts (machine, problems,
    summary) in step with the tables they write.

    Parameters
    ----------
    block : str
        Marker name.
    text : str
        New content.

    Returns
    -------
    bool
        Whether the README had the markers and was rewritten.
    """
    readme = Path(__file__).with_name("README.md")
    if not readme.exists():
        return False
    old = readme.read_text()
    start, end = f"<!-- {block} -->", f"<!-- /{block} -->"
    i, j = old.find(start), old.find(end)
    if i < 0 or j < i:
        return False
    readme.write_text(old[: i + len(start)] + "\n" + text.strip("\n") + "\n" + old[j:])
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the same (nothing is timed)")
    parser.add_argument("--out", default=str(Path(__file__).with_name("problems.md")))
    args = parser.parse_args(argv)
    lines = [
        "# Benchmark problems",
        "",
        f"Machine: {machine_line()}.",
        "",
        "Every problem solves ∂p/∂t = ∇·(K p ∇E + K T ∇p) with K = 1, reflecting walls "
        "and n cells on every axis of the box.",
        "",
        *table(),
        "",
        "E_MB is the Müller–Brown surface (Müller & Brown, Theor. Chim. Acta 53 (1979) 75), "
        "A = (−200, −100, −170, 15), a = (−1, −1, −6.5, 0.7), b = (0, 0, 11, 0.6), "
        "c = (−10, −10, −6.5, 0.7), x₀ = (1, 0, −0.5, −1), y₀ = (0, 0.5, 1.5, 1); "
        "P5 starts in its middle well (0.623, 0.028).",
        "",
    ]
    Path(args.out).write_text("\n".join(lines))
    if Path(args.out).resolve() == Path(__file__).with_name("problems.md").resolve():
        update_readme("machine", f"Machine: {machine_line()}.")
        update_readme("problems", "\n".join(table()))
        update_readme("tables", "\n".join(script_index()))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

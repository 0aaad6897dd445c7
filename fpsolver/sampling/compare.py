"""Statistical comparison of a grid solution with a particle simulation.

:func:`compare` puts a grid result (from :meth:`FokkerPlanck.solve`) beside
a particle result (from :func:`fpsolver.simulate_particles`) on the same
cells, at every saved time common to both, and asks: are the particle
counts a plausible sample of the grid density? It relies only on the
result contracts: ``p``, ``time`` and ``free_energy`` of the grid result,
``count``, ``mass``, ``mean``, ``covariance``, ``free_energy`` and
``free_energy_se`` of the particle result (``survival`` instead of ``mass``
in results saved by earlier releases), and the grid attributes of both.

The chi-square test treats the grid density as exact. Discretisation error
of the grid and the O(dt) weak error of Euler–Maruyama both show up as a
non-centrality: keep them well below the sampling noise (about
sqrt(2·dof) in the statistic) before reading a p-value as a verdict.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..core.diagnostics import moments
from ..core.grid import Grid

if TYPE_CHECKING:
    import xarray as xr

__all__ = ["compare", "merge_bins"]

MIN_EXPECTED = 5.0


def merge_bins(expected: np.ndarray, minimum: float = MIN_EXPECTED) -> np.ndarray:
    """Group cells so that every group's expected count is at least `minimum`.

    Cells whose expected count is already ≥ `minimum` keep their own group;
    the others are merged in order of increasing expected count until each
    group reaches `minimum` (a short remainder joins the last group). The
    grouping depends on the expected counts only, never on the observed
    ones, so the chi-square distribution of the statistic is kept.

    Parameters
    ----------
    expected : ndarray
        Expected counts, flat.
    minimum : float
        Smallest expected count per group.

    Returns
    -------
    ndarray of int
        Group label of every cell (0 … groups − 1).

    Examples
    --------
    >>> import numpy as np
    >>> merge_bins(np.array([10.0, 1.0, 2.0, 3.0, 0.5, 8.0])).tolist()
    [0, 2, 2, 2, 2, 1]
    >>> merge_bins(np.array([1.0, 2.0, 3.0, 4.0])).tolist()  # 1+2+3 ≥ 5; 4 joins it
    [0, 0, 0, 0]
    """
    e = np.asarray(expected, dtype=float).ravel()
    labels = np.empty(e.size, dtype=np.intp)
    big = e >= minimum
    nbig = int(np.count_nonzero(big))
    labels[big] = np.arange(nbig)
    small = np.flatnonzero(~big)
    if small.size == 0:
        return labels
    order = small[np.argsort(e[small], kind="stable")]
    es = e[order]
    csum = np.cumsum(es)
    before = csum - es
    group = np.empty(order.size, dtype=np.intp)
    s, g = 0, 0
    while s < order.size:
        j = int(np.searchsorted(csum, before[s] + minimum, side="left"))
        if j >= order.size:  # the remainder is too small for a group of its own
            if g > 0:
                group[s:] = g - 1
            elif nbig > 0:
                labels[order] = int(np.argmin(np.where(big, e, np.inf)[big]))
                return labels
            else:
                group[s:] = 0
                g = 1
            break
        group[s : j + 1] = g
        g += 1
        s = j + 1
    labels[order] = nbig + group
    return labels


def _grid_moments(grid: Grid, p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Mean, variance (with the within-cell h²/12 term), 4th central moment, mass."""
    V = grid.volumes
    centers = [grid._along(a, grid.centers[a]) for a in range(grid.ndim)]
    widths = [grid._along(a, grid.widths[a]) for a in range(grid.ndim)]
    mean, cov = moments(V, centers, widths, p)
    w = V * p
    mass = float(w.sum())
    mu4 = np.empty(grid.ndim)
    for a in range(grid.ndim):
        d = centers[a] - mean[a]
        h2 = widths[a] ** 2
        # uniform-in-cell 4th moment: d⁴ + d² h²/2 + h⁴/80
        mu4[a] = float(np.sum(w * (d**4 + d**2 * h2 / 2.0 + h2**2 / 80.0))) / mass
    return mean, np.diag(cov).copy(), mu4, mass


def _null_free_energy(
    P: np.ndarray, E: np.ndarray, V: np.ndarray, T: float, n: int
) -> tuple[float, float]:
    """Bias and standard error of the particle free energy if the grid were exact.

    Cell counts are binomial(N, P_i) under the null. E[w ln w] for w = c/N is
    summed exactly over k for cells with N P_i ≤ 50 and from its expansion
    P ln P + (1 − P)/(2N) − (1 − P)(1 − 2P)/(6 N² P) above; the expected
    number of occupied cells is Σ 1 − (1 − P_i)^N. The variance is the
    delta-method term Var(φ)/N, φ = E + T ln(P/V) + T (0 when absorbed), plus
    the second-order T² (E[m] − 1)/(2N²) of the χ²-like quadratic part.
    """
    from scipy.stats import binom

    P = np.asarray(P, float).ravel()
    E = np.asarray(E, float).ravel()
    V = np.asarray(V, float).ravel()
    pos = P > 0
    P, E, V = P[pos], E[pos], V[pos]
    lam = n * P
    ewlnw = P * np.log(P) + (1 - P) / (2 * n) - (1 - P) * (1 - 2 * P) / (6 * n**2 * P)
    small = np.flatnonzero(lam <= 50)
    k = np.arange(1, 171, dtype=float)
    klogk = (k / n) * np.log(k / n)
    for s in range(0, small.size, 2048):
        idx = small[s : s + 2048]
        ewlnw[idx] = binom.pmf(k[None, :], n, P[idx, None]) @ klogk
    occupied = float(np.sum(-np.expm1(n * np.log1p(-np.minimum(P, 1 - 1e-16)))))
    bias = T * float(np.sum(ewlnw - P * np.log(P))) - T * (occupied - 1) / (2 * n)
    phi = E + T * np.log(P / V) + T
    var = (float(np.sum(P * phi**2)) - float(np.sum(P * phi)) ** 2) / n
    var += T**2 * max(occupied - 1, 0.0) / (2 * n**2)
    return bias, float(np.sqrt(max(var, 0.0)))


def compare(grid_result: Any, particle_result: Any) -> xr.Dataset:
    """Compare a grid solution with a particle histogram, time by time.

    Parameters
    ----------
    grid_result : xarray.Dataset
        Result of :meth:`FokkerPlanck.solve` (``p`` with dims
        ``("time", *axes)``, ``free_energy``, grid attributes).
    particle_result : xarray.Dataset
        Result of :func:`fpsolver.simulate_particles` on the same grid
        (``count`` and ``mass``; ``survival`` is read when ``mass`` is
        absent, as in results saved by earlier releases).

    Returns
    -------
    xarray.Dataset
        One row per saved time common to both (dimension ``time``):

        - ``l1`` = Σ V |p − p̂| and ``l1_noise``, its expected value under
          pure sampling noise (Σ sqrt(2 e (1 − e/N) / π) / N for expected
          counts e), so ``l1 / l1_noise`` ≈ 1 means agreement;
        - ``hellinger`` = sqrt(½ Σ V (√p − √p̂)²);
        - ``chi2``, ``dof``, ``p_value``: Pearson's chi-square test of the
          counts (and the absorbed count, when particles are absorbed)
          against N·p·V, cells merged until every expected count is ≥ 5
          (:func:`merge_bins`); p-value from ``scipy.stats.chi2.sf``;
        - ``mean_z`` (per axis): (mean − grid mean) / sqrt(s²/M) with the
          particles' sample variance s² and M survivors;
        - ``var_z`` (per axis): (s² − σ²) / sqrt((μ₄ − σ⁴)/M), σ² and μ₄
          from the grid density, counting the spread inside each cell;
        - ``survival_z``: (S − S_grid) / sqrt(S_grid (1 − S_grid)/N);
        - ``free_energy_grid``, ``free_energy_particles``,
          ``free_energy_diff`` (particles − grid); ``free_energy_bias`` and
          ``free_energy_se``, the mean and standard error the difference
          would have from sampling alone if the grid were exact (the
          histogram estimate keeps a small O(1/N) bias after the
          Miller–Madow correction, from rarely occupied cells; both are
          computed from binomial cell counts under the grid density); and
          ``free_energy_z`` = (diff − bias) / se.

        Attribute access works: ``report.p_value``, ``report.l1``,
        ``report.free_energy_diff``.

    Raises
    ------
    ValueError
        If the grids differ or the results share no saved time.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> import fpsolver as fp
    >>> grid = fp.Grid(x=(-5, 5, 40))
    >>> model = fp.FokkerPlanck(grid, energy=lambda x: 0.5 * x**2)
    >>> q = model.equilibrium()
    >>> ds = xr.Dataset({"p": q.expand_dims(time=[0.0]),
    ...                  "free_energy": ("time", [model.free_energy(q)])},
    ...                 attrs=grid.to_attrs())
    >>> parts = fp.simulate_particles(model, q, n=20000, t_end=0.0, seed=3)
    >>> report = fp.compare(ds, parts)
    >>> bool(report.p_value[0] > 1e-3), int(report.dof[0]) > 10
    (True, True)
    """
    import xarray as xr

    _check_inputs(grid_result, particle_result)
    grid = _common_grid(grid_result, particle_result)
    n = int(particle_result.attrs["n"])
    pairs = _common_times(grid_result["time"].values, particle_result["time"].values)
    data = _Inputs.read(grid, n, grid_result, particle_result)
    rows: dict[str, list[Any]] = {k: [] for k in _DESCRIPTIONS}
    for i, j in pairs:
        for k, v in _row(data, i, j).items():
            rows[k].append(v)
    times = np.asarray(particle_result["time"].values, dtype=float)[[j for _, j in pairs]]
    variables = {}
    for k, v in rows.items():
        dims = ("time", "axis") if k in ("mean_z", "var_z") else ("time",)
        variables[k] = (dims, np.asarray(v), {"long_name": _DESCRIPTIONS[k]})
    attrs = {
        "n": n,
        "min_expected": MIN_EXPECTED,
        "test": "pearson chi-square against the grid density",
    }
    attrs.update(grid.to_attrs())
    coords = {"time": ("time", times), "axis": ("axis", list(grid.names))}
    return xr.Dataset(variables, coords=coords, attrs=attrs)


#: The report's variables, in order, with their long names.
_DESCRIPTIONS = {
    "l1": "L1 distance sum V|p - p_hat|",
    "l1_noise": "expected L1 distance from sampling noise alone",
    "hellinger": "Hellinger distance",
    "chi2": "Pearson chi-square statistic (merged cells, expected >= 5)",
    "dof": "degrees of freedom of the chi-square test",
    "p_value": "chi-square p-value",
    "mean_z": "z-score of the particle mean per axis",
    "var_z": "z-score of the particle variance per axis",
    "survival_grid": "grid mass (survival)",
    "survival_particles": "fraction of particles not absorbed",
    "survival_z": "z-score of the particle survival",
    "free_energy_grid": "grid free energy",
    "free_energy_particles": "particle free energy (Miller-Madow corrected)",
    "free_energy_diff": "particle minus grid free energy",
    "free_energy_bias": "expected particle-minus-grid difference from finite N alone",
    "free_energy_se": "standard error of the particle free energy if the grid is exact",
    "free_energy_z": "(difference - bias) / standard error",
}

#: Particle variables renamed to match the grid result: new name → old name.
_RENAMED = {"mass": "survival", "p": "density"}


def _particle_var(ds: Any, name: str) -> Any:
    """Variable `name` of a particle result, or its name in the previous release."""
    if name in ds or name not in _RENAMED:
        return ds[name]
    return ds[_RENAMED[name]]


def _check_inputs(grid_result: Any, particle_result: Any) -> None:
    """Both arguments are Datasets holding the variables that compare reads."""
    import xarray as xr

    for name, ds, need, renamed in (
        ("grid_result", grid_result, ("p",), {}),
        ("particle_result", particle_result, ("count", "mass"), _RENAMED),
    ):
        if not isinstance(ds, xr.Dataset):
            raise TypeError(f"`{name}` must be an xarray.Dataset, got {type(ds).__name__}")
        missing = []
        for v in need:
            old = renamed.get(v)
            if v not in ds and (old is None or old not in ds):
                missing.append(v if old is None else f"{v} (or {old})")
        if missing:
            raise ValueError(f"`{name}` lacks the variables {missing}")


def _common_grid(grid_result: Any, particle_result: Any) -> Grid:
    """The grid of both results; they must be on the same one."""
    grid = Grid.from_attrs(grid_result.attrs)
    pgrid = Grid.from_attrs(particle_result.attrs)
    if grid != pgrid:
        raise ValueError(
            f"the results are on different grids: grid_result {grid!r}, particle_result {pgrid!r}"
        )
    return grid


def _common_times(grid_times: Any, particle_times: Any) -> list[tuple[int, int]]:
    """Index pairs (grid, particles) of the saved times the two results share."""
    tg = np.asarray(grid_times, dtype=float)
    tp = np.asarray(particle_times, dtype=float)
    scale = max(float(np.max(np.abs(tg))) if tg.size else 0.0, 1.0)
    pairs = []
    for j, t in enumerate(tp):
        i = int(np.argmin(np.abs(tg - t))) if tg.size else -1
        if i >= 0 and abs(tg[i] - t) <= 1e-9 * scale:
            pairs.append((i, j))
    if not pairs:
        raise ValueError(
            f"no common saved time: grid_result has {tg.tolist()[:6]}…, "
            f"particle_result has {tp.tolist()[:6]}…"
        )
    return pairs


def _values(ds: Any, name: str) -> np.ndarray | None:
    """``ds[name].values``, or None when `ds` has no such variable."""
    return ds[name].values if name in ds else None


@dataclass(frozen=True)
class _Inputs:
    """What :func:`compare` reads from the two results, as numpy arrays."""

    grid: Grid
    n: int
    p: np.ndarray  # grid density, ("time", *axes)
    count: np.ndarray  # particle counts, ("time", *axes)
    survival: np.ndarray  # particle fraction not absorbed, ("time",)
    mean: np.ndarray | None  # particle mean, ("time", "axis")
    covariance: np.ndarray | None  # particle covariance, ("time", "axis", "axis2")
    fe_grid: np.ndarray | None
    fe_particles: np.ndarray | None
    fe_se: np.ndarray | None
    energy: np.ndarray | None  # on the cells, for the null free-energy statistics
    temperature: float

    @classmethod
    def read(cls, grid: Grid, n: int, grid_result: Any, particle_result: Any) -> _Inputs:
        """Read the arrays of both results (on `grid`, with `n` particles)."""
        has_mean = "mean" in particle_result and "covariance" in particle_result
        energy = None
        if "energy" in particle_result:
            energy = particle_result["energy"].transpose(*grid.names).values
        return cls(
            grid=grid,
            n=n,
            p=grid_result["p"].transpose("time", *grid.names).values,
            count=particle_result["count"].transpose("time", *grid.names).values,
            survival=np.asarray(_particle_var(particle_result, "mass").values, dtype=float),
            mean=particle_result["mean"].values if has_mean else None,
            covariance=particle_result["covariance"].values if has_mean else None,
            fe_grid=_values(grid_result, "free_energy"),
            fe_particles=_values(particle_result, "free_energy"),
            fe_se=_values(particle_result, "free_energy_se"),
            energy=energy,
            temperature=float(particle_result.attrs.get("temperature", np.nan)),
        )


def _row(data: _Inputs, i: int, j: int) -> dict[str, Any]:
    """All statistics of grid time `i` against particle time `j`."""
    V = data.grid.volumes
    n = data.n
    p = np.clip(data.p[i], 0.0, None)
    c = data.count[j].astype(float)
    mass = float(np.sum(V * p))
    phat = c / (n * V)
    row: dict[str, Any] = {
        "l1": float(np.sum(V * np.abs(p - phat))),
        "hellinger": float(np.sqrt(0.5 * np.sum(V * (np.sqrt(p) - np.sqrt(phat)) ** 2))),
    }
    row.update(_chi_square(V, p, c, n, mass))
    row.update(_survival(mass, float(data.survival[j]), n))
    row.update(_moment_z(data, p, float(c.sum()), mass, j))
    row.update(_free_energy(data, p, i, j))
    return row


def _chi_square(V: np.ndarray, p: np.ndarray, c: np.ndarray, n: int, mass: float) -> dict:
    """Pearson's test of the counts (and the absorbed count) against N·p·V; ``l1_noise``."""
    from scipy import stats

    e = (n * V * p).ravel()
    obs = c.ravel()
    absorbed_obs = n - float(c.sum())
    absorbed_exp = n * max(1.0 - mass, 0.0)
    if absorbed_obs > 0 or absorbed_exp > 1e-9 * n:
        e = np.append(e, absorbed_exp)
        obs = np.append(obs, absorbed_obs)
    e *= n / e.sum()  # the grid's mass error is not the particles' fault
    cells = e[: V.size]
    l1_noise = float(np.sum(np.sqrt(2.0 * cells * np.clip(1 - cells / n, 0, 1) / np.pi))) / n
    labels = merge_bins(e)
    eg = np.bincount(labels, e)
    og = np.bincount(labels, obs)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(eg > 0, (og - eg) ** 2 / eg, np.where(og > 0, np.inf, 0.0))
    stat = float(terms.sum())
    dof = int(eg.size - 1)
    return {
        "l1_noise": l1_noise,
        "chi2": stat,
        "dof": dof,
        "p_value": float(stats.chi2.sf(stat, dof)) if dof > 0 else float("nan"),
    }


def _survival(s_grid: float, s_part: float, n: int) -> dict[str, float]:
    """Grid mass and particle survival, and the binomial z-score of their difference."""
    if s_part == 1.0 and abs(1.0 - s_grid) < 1e-9:
        z = 0.0  # nothing absorbed on either side
    else:
        s_c = min(max(s_grid, 1.0 / n), 1.0 - 1.0 / n)
        z = (s_part - s_grid) / np.sqrt(s_c * (1.0 - s_c) / n)
    return {"survival_grid": s_grid, "survival_particles": s_part, "survival_z": z}


def _moment_z(data: _Inputs, p: np.ndarray, alive: float, mass: float, j: int) -> dict:
    """z-scores of the particle mean and variance per axis (NaN when undefined)."""
    if data.mean is None or data.covariance is None or not (alive > 1 and mass > 0):
        nd = data.grid.ndim
        return {"mean_z": np.full(nd, np.nan), "var_z": np.full(nd, np.nan)}
    gmean, gvar, gmu4, _ = _grid_moments(data.grid, p)
    pmean = data.mean[j]
    pvar = np.diag(data.covariance[j])
    return {
        "mean_z": (pmean - gmean) / np.sqrt(pvar / alive),
        "var_z": (pvar - gvar) / np.sqrt(np.maximum(gmu4 - gvar**2, 0) / alive),
    }


def _free_energy(data: _Inputs, p: np.ndarray, i: int, j: int) -> dict[str, float]:
    """Grid and particle free energies, their difference and its null bias and error."""
    V = data.grid.volumes
    fg = float(data.fe_grid[i]) if data.fe_grid is not None else float("nan")
    fp_ = float(data.fe_particles[j]) if data.fe_particles is not None else float("nan")
    if data.energy is not None:
        bias, se = _null_free_energy(p * V, data.energy, V, data.temperature, data.n)
    else:
        bias, se = 0.0, float(data.fe_se[j]) if data.fe_se is not None else float("nan")
    return {
        "free_energy_grid": fg,
        "free_energy_particles": fp_,
        "free_energy_diff": fp_ - fg,
        "free_energy_bias": bias,
        "free_energy_se": se,
        "free_energy_z": (fp_ - fg - bias) / se if se > 0 else float("nan"),
    }

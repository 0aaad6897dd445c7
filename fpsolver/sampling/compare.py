"""Statistical comparison of a grid solution with a particle simulation.

:func:`compare` puts a grid result (from :meth:`FokkerPlanck.solve`) beside
a particle result (from :func:`fpsolver.simulate_particles`) on the same
cells, at every saved time common to both, and asks: are the particle
counts a plausible sample of the grid density? It relies only on the
result contracts: ``p``, ``time`` and ``free_energy`` of the grid result,
``count``, ``survival``, ``mean``, ``covariance``, ``free_energy`` and
``free_energy_se`` of the particle result, and the grid attributes of both.

The chi-square test treats the grid density as exact. Discretisation error
of the grid and the O(dt) weak error of Euler–Maruyama both show up as a
non-centrality: keep them well below the sampling noise (about
sqrt(2·dof) in the statistic) before reading a p-value as a verdict.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core.grid import Grid

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
    w = V * p
    mass = float(w.sum())
    mean = np.empty(grid.ndim)
    var = np.empty(grid.ndim)
    mu4 = np.empty(grid.ndim)
    for a in range(grid.ndim):
        x = grid._along(a, grid.centers[a])
        h2 = grid._along(a, grid.widths[a] ** 2)
        mean[a] = float(np.sum(w * x)) / mass
        d = x - mean[a]
        var[a] = float(np.sum(w * (d**2 + h2 / 12.0))) / mass
        # uniform-in-cell 4th moment: d⁴ + d² h²/2 + h⁴/80
        mu4[a] = float(np.sum(w * (d**4 + d**2 * h2 / 2.0 + h2**2 / 80.0))) / mass
    return mean, var, mu4, mass


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


def compare(grid_result: Any, particle_result: Any):
    """Compare a grid solution with a particle histogram, time by time.

    Parameters
    ----------
    grid_result : xarray.Dataset
        Result of :meth:`FokkerPlanck.solve` (``p`` with dims
        ``("time", *axes)``, ``free_energy``, grid attributes).
    particle_result : xarray.Dataset
        Result of :func:`fpsolver.simulate_particles` on the same grid.

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
    from scipy import stats

    for name, ds, need in (
        ("grid_result", grid_result, ("p",)),
        ("particle_result", particle_result, ("count", "survival")),
    ):
        if not isinstance(ds, xr.Dataset):
            raise TypeError(f"`{name}` must be an xarray.Dataset, got {type(ds).__name__}")
        missing = [v for v in need if v not in ds]
        if missing:
            raise ValueError(f"`{name}` lacks the variables {missing}")
    grid = Grid.from_attrs(grid_result.attrs)
    pgrid = Grid.from_attrs(particle_result.attrs)
    if grid != pgrid:
        raise ValueError(
            f"the results are on different grids: grid_result {grid!r}, particle_result {pgrid!r}"
        )
    n = int(particle_result.attrs["n"])

    tg = np.asarray(grid_result["time"].values, dtype=float)
    tp = np.asarray(particle_result["time"].values, dtype=float)
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

    V = grid.volumes
    nd = grid.ndim
    p_all = grid_result["p"].transpose("time", *grid.names).values
    c_all = particle_result["count"].transpose("time", *grid.names).values
    surv_p = np.asarray(particle_result["survival"].values, dtype=float)
    has_mean = "mean" in particle_result and "covariance" in particle_result
    fe_grid = grid_result["free_energy"].values if "free_energy" in grid_result else None
    fe_part = particle_result["free_energy"].values if "free_energy" in particle_result else None
    energy = None
    if "energy" in particle_result:
        energy = particle_result["energy"].transpose(*grid.names).values
    temperature = float(particle_result.attrs.get("temperature", np.nan))
    fe_se = (
        particle_result["free_energy_se"].values if "free_energy_se" in particle_result else None
    )

    rows: dict[str, list[Any]] = {
        k: []
        for k in (
            "l1",
            "l1_noise",
            "hellinger",
            "chi2",
            "dof",
            "p_value",
            "mean_z",
            "var_z",
            "survival_grid",
            "survival_particles",
            "survival_z",
            "free_energy_grid",
            "free_energy_particles",
            "free_energy_diff",
            "free_energy_bias",
            "free_energy_se",
            "free_energy_z",
        )
    }
    for i, j in pairs:
        p = np.clip(p_all[i], 0.0, None)
        c = c_all[j].astype(float)
        phat = c / (n * V)
        rows["l1"].append(float(np.sum(V * np.abs(p - phat))))
        rows["hellinger"].append(
            float(np.sqrt(0.5 * np.sum(V * (np.sqrt(p) - np.sqrt(phat)) ** 2)))
        )
        mass = float(np.sum(V * p))
        e = (n * V * p).ravel()
        obs = c.ravel()
        absorbed_obs = n - float(c.sum())
        absorbed_exp = n * max(1.0 - mass, 0.0)
        if absorbed_obs > 0 or absorbed_exp > 1e-9 * n:
            e = np.append(e, absorbed_exp)
            obs = np.append(obs, absorbed_obs)
        e *= n / e.sum()  # the grid's mass error is not the particles' fault
        rows["l1_noise"].append(
            float(np.sum(np.sqrt(2.0 * e[: V.size] * np.clip(1 - e[: V.size] / n, 0, 1) / np.pi)))
            / n
        )
        labels = merge_bins(e)
        eg = np.bincount(labels, e)
        og = np.bincount(labels, obs)
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(eg > 0, (og - eg) ** 2 / eg, np.where(og > 0, np.inf, 0.0))
        stat = float(terms.sum())
        dof = int(eg.size - 1)
        rows["chi2"].append(stat)
        rows["dof"].append(dof)
        rows["p_value"].append(float(stats.chi2.sf(stat, dof)) if dof > 0 else float("nan"))

        s_grid = mass
        s_part = float(surv_p[j])
        rows["survival_grid"].append(s_grid)
        rows["survival_particles"].append(s_part)
        if s_part == 1.0 and abs(1.0 - s_grid) < 1e-9:
            rows["survival_z"].append(0.0)  # nothing absorbed on either side
        else:
            s_c = min(max(s_grid, 1.0 / n), 1.0 - 1.0 / n)
            rows["survival_z"].append((s_part - s_grid) / np.sqrt(s_c * (1.0 - s_c) / n))

        alive = float(c.sum())
        if has_mean and alive > 1 and mass > 0:
            gmean, gvar, gmu4, _ = _grid_moments(grid, p)
            pmean = particle_result["mean"].values[j]
            pcov = particle_result["covariance"].values[j]
            pvar = np.diag(pcov)
            rows["mean_z"].append((pmean - gmean) / np.sqrt(pvar / alive))
            rows["var_z"].append((pvar - gvar) / np.sqrt(np.maximum(gmu4 - gvar**2, 0) / alive))
        else:
            rows["mean_z"].append(np.full(nd, np.nan))
            rows["var_z"].append(np.full(nd, np.nan))

        fg = float(fe_grid[i]) if fe_grid is not None else float("nan")
        fp_ = float(fe_part[j]) if fe_part is not None else float("nan")
        if energy is not None:
            bias, se = _null_free_energy(p * V, energy, V, temperature, n)
        else:
            bias, se = 0.0, float(fe_se[j]) if fe_se is not None else float("nan")
        rows["free_energy_grid"].append(fg)
        rows["free_energy_particles"].append(fp_)
        rows["free_energy_diff"].append(fp_ - fg)
        rows["free_energy_bias"].append(bias)
        rows["free_energy_se"].append(se)
        rows["free_energy_z"].append((fp_ - fg - bias) / se if se > 0 else float("nan"))

    times = tp[[j for _, j in pairs]]
    desc = {
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
    data = {}
    for k, v in rows.items():
        dims = ("time", "axis") if k in ("mean_z", "var_z") else ("time",)
        data[k] = (dims, np.asarray(v), {"long_name": desc[k]})
    attrs = {
        "n": n,
        "min_expected": MIN_EXPECTED,
        "test": "pearson chi-square against the grid density",
    }
    attrs.update(grid.to_attrs())
    return xr.Dataset(
        data, coords={"time": ("time", times), "axis": ("axis", list(grid.names))}, attrs=attrs
    )

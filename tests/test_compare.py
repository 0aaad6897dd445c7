"""fp.compare: identities, calibration under the null, cell merging, errors."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from scipy import stats

import fpsolver as fp
from fpsolver.sampling.compare import merge_bins


def _grid_ds(model: fp.FokkerPlanck, p: np.ndarray, times=(0.0,)) -> xr.Dataset:
    g = model.grid
    P = np.broadcast_to(p, (len(times), *g.shape))
    return xr.Dataset(
        {
            "p": (("time", *g.names), P),
            "free_energy": ("time", [model.free_energy(p)] * len(times)),
        },
        coords={"time": list(times)},
        attrs=g.to_attrs(),
    )


@pytest.fixture(scope="module")
def ou():
    grid = fp.Grid(x=(-5, 5, 50))
    model = fp.FokkerPlanck(grid, energy=lambda x: 0.5 * x**2, energy_gradient=lambda x: x)
    return model, model.equilibrium().values


def test_perfect_sample_gives_zero_distances(ou):
    """Counts exactly equal to N p V: L1, Hellinger and chi-square are 0, p = 1."""
    model, _ = ou
    grid = model.grid
    n = 1000
    counts = np.zeros(grid.shape, dtype=int)
    counts[20:30] = 100  # 10 cells of 100 particles
    p = counts / (n * grid.volumes)
    parts = fp.simulate_particles(model, p, n=n, t_end=0.0, seed=0)
    parts["count"][:] = counts[None]
    report = fp.compare(_grid_ds(model, p), parts)
    assert float(report.l1[0]) == 0.0 and float(report.hellinger[0]) == 0.0
    assert float(report.chi2[0]) == 0.0 and float(report.p_value[0]) == 1.0
    assert int(report.dof[0]) == 9


def test_null_calibration(ou):
    """Particles drawn from the grid density itself: p-values are uniform and
    the free-energy and mean z-scores standard normal.

    300 independent draws (t_end = 0, so each particle sample is exactly a
    sample of the grid density), away from equilibrium where the
    free-energy error is dominated by its first-order (delta-method) term.
    Near equilibrium that term vanishes and the second-order estimate is
    about 10 % optimistic. False-alarm rate: a KS test at 1e-3 and four
    4.5-sigma bounds on z-score means and spreads: about 0.1 %.
    """
    model, _ = ou
    p = fp.gaussian(model.grid, 1.0, 0.5).values
    ds = _grid_ds(model, p)
    pv, fz, mz = [], [], []
    for seed in range(300):
        parts = fp.simulate_particles(model, p, n=3000, t_end=0.0, seed=seed)
        r = fp.compare(ds, parts)
        pv.append(float(r.p_value[0]))
        fz.append(float(r.free_energy_z[0]))
        mz.append(float(r.mean_z[0, 0]))
    assert stats.kstest(pv, "uniform").pvalue > 1e-3
    for z in (np.array(fz), np.array(mz)):
        assert abs(z.mean()) < 4.5 / np.sqrt(300), z.mean()
        # the sd of a sample sd of 300 normals is 1/sqrt(600) = 0.041
        assert abs(z.std(ddof=1) - 1.0) < 4.5 * 0.041, z.std(ddof=1)


def test_l1_noise_predicts_the_null_l1(ou):
    """Under the null the mean L1 distance equals `l1_noise` (within 3 %)."""
    model, q = ou
    ds = _grid_ds(model, q)
    ratios = []
    for seed in range(40):
        r = fp.compare(ds, fp.simulate_particles(model, q, n=5000, t_end=0.0, seed=seed))
        ratios.append(float(r.l1[0] / r.l1_noise[0]))
    # 40 ratios with spread ≈ 0.06: the mean is known to ≈ 0.01
    assert abs(np.mean(ratios) - 1.0) < 0.03, np.mean(ratios)


def test_merge_bins_reaches_the_minimum():
    rng = np.random.default_rng(0)
    for _ in range(50):
        e = rng.exponential(rng.uniform(0.5, 20), size=rng.integers(5, 200))
        labels = merge_bins(e)
        sums = np.bincount(labels, e)
        assert labels.min() == 0 and np.unique(labels).size == labels.max() + 1
        if e.sum() >= 5:
            assert np.all(sums >= 5.0 - 1e-12), sums.min()
        big = e >= 5
        assert np.unique(labels[big]).size == big.sum()  # big cells stay alone
        # merging stops as soon as a group reaches the minimum: without its
        # largest cell a group is below it (the last group takes the remainder)
        for label in np.unique(labels[~big])[:-1]:
            members = e[labels == label]
            assert members.sum() - members.max() < 5.0, members


def test_errors(ou):
    model, q = ou
    parts = fp.simulate_particles(model, q, n=100, t_end=0.0, seed=0)
    other = fp.Grid(x=(-5, 5, 40))
    bad_grid = xr.Dataset(
        {"p": (("time", "x"), other.volumes[None] * 0 + 0.1)},
        coords={"time": [0.0]},
        attrs=other.to_attrs(),
    )
    with pytest.raises(ValueError, match="different grids"):
        fp.compare(bad_grid, parts)
    with pytest.raises(ValueError, match="no common saved time"):
        fp.compare(_grid_ds(model, q, times=(1.0,)), parts)
    with pytest.raises(TypeError, match="grid_result"):
        fp.compare(q, parts)

"""The particle backend against the grid solver, exact solutions and itself.

Statistical tests use fixed seeds, so each outcome is deterministic; the
false-alarm rate stated in a docstring is the probability that a correct
implementation fails the test for a seed drawn at random (a union bound over
its assertions). Every grid reference is the exact-in-time solution of the
semi-discrete system (``expm_multiply``), so the only differences left are
the grid's O(h²) discretisation error, the O(dt) weak error of
Euler–Maruyama and sampling noise; the first two are checked or chosen to be
far below the third.
"""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from scipy.sparse.linalg import expm_multiply
from scipy.stats import norm

import fpsolver as fp
from fpsolver.core.analytic import linear_moments
from fpsolver.sampling.particles import BLOCK_SIZE


def grid_reference(model: fp.FokkerPlanck, p0, times) -> xr.Dataset:
    """The grid solution at `times`, exact in time, shaped like a solve() result."""
    g = model.grid
    cur = fp.as_density(g, p0).values.ravel()
    L = model.generator()
    out, t_prev = [], 0.0
    for t in times:
        if t > t_prev:
            cur = expm_multiply(L * (t - t_prev), cur)
        out.append(cur.reshape(g.shape))
        t_prev = t
    P = np.array(out)
    return xr.Dataset(
        {
            "p": (("time", *g.names), P),
            "free_energy": ("time", [model.free_energy(np.clip(q, 0, None)) for q in P]),
            "mass": ("time", [float(np.sum(g.volumes * q)) for q in P]),
        },
        coords={"time": np.asarray(times, float), **g.coords()},
        attrs={"temperature": model.temperature, **g.to_attrs()},
    )


def ou_model(temperature: float = 1.0) -> fp.FokkerPlanck:
    grid = fp.Grid(x=(-6, 6, 240))
    return fp.FokkerPlanck(
        grid, energy=lambda x: 0.5 * x**2, temperature=temperature, energy_gradient=lambda x: x
    )


def test_ou_1d_agrees_with_grid_and_exact_moments():
    """1-D OU (benchmark P1 start): particles, grid and exact law agree.

    Bias check: the Euler–Maruyama law of a linear SDE is Gaussian with
    moments from the exact recursion m_k = (1 − dt)^k m_0,
    v_k = (1 − dt)^{2k} v_0 + 2T dt Σ (1 − dt)^{2j}; its chi-square
    non-centrality against the exact law, λ = N Σ (P_EM − P)²/P over the
    cells, must be far below the noise of the statistic (sqrt(2·dof) ≈ 16).

    False-alarm rate: 3 chi-square tests at 1e-3 and 12 |z| < 4 checks
    (6e-5 each) — below 0.4 % in total.
    """
    model = ou_model()
    grid = model.grid
    p0 = fp.gaussian(grid, 3.0, 0.25)
    n, dt, times = 100_000, 1e-3, [0.0, 0.5, 1.0]
    parts = fp.simulate_particles(model, p0, n=n, t_end=1.0, dt=dt, save_every=0.5, seed=11)
    report = fp.compare(grid_reference(model, p0, times), parts)
    assert report.time.values.tolist() == times
    assert np.all(report.p_value > 1e-3), report.p_value.values
    assert np.all(np.abs(report.mean_z) < 4) and np.all(np.abs(report.var_z) < 4)
    assert np.all(np.abs(report.free_energy_z) < 4), report.free_energy_z.values

    # exact moments at t = 1 (the continuous process), in standard errors
    m_ex, c_ex = linear_moments(1.0, 1.0, [3.0], 0.25, 1.0)
    m_p = float(parts["mean"][-1, 0])
    v_p = float(parts["covariance"][-1, 0, 0])
    assert abs(m_p - m_ex[0]) < 4 * np.sqrt(c_ex[0, 0] / n)
    assert abs(v_p - c_ex[0, 0]) < 4 * np.sqrt(2 * c_ex[0, 0] ** 2 / n)

    # weak bias of Euler–Maruyama at this dt, as a chi-square non-centrality
    k = round(1.0 / dt)
    r = 1.0 - dt
    m_em = r**k * 3.0
    v_em = r ** (2 * k) * 0.25 + 2 * dt * (1 - r ** (2 * k)) / (1 - r**2)
    cdf = norm.cdf
    e = grid.edges[0]
    P_ex = np.diff(cdf(e, m_ex[0], np.sqrt(c_ex[0, 0])))
    P_em = np.diff(cdf(e, m_em, np.sqrt(v_em)))
    keep = P_ex > 1e-12
    lam = n * np.sum((P_em[keep] - P_ex[keep]) ** 2 / P_ex[keep])
    assert lam < 0.5, lam


def test_doubled_temperature_is_rejected():
    """A model with T doubled is rejected at t = 1 (p < 1e-6) with 20 000 particles.

    Miss rate: the non-centrality is in the thousands; a miss is beyond
    reach of chance.
    """
    model = ou_model()
    p0 = fp.gaussian(model.grid, 3.0, 0.25)
    ref = grid_reference(model, p0, [0.0, 1.0])
    wrong = fp.simulate_particles(ou_model(2.0), p0, n=20_000, t_end=1.0, dt=2e-3, seed=5)
    report = fp.compare(ref, wrong)
    assert report.p_value[0] > 1e-3  # same start
    assert report.p_value[-1] < 1e-6
    assert abs(float(report.free_energy_z[-1])) > 10


def _k(x):
    return 0.5 + 1.0 / (1.0 + x**2)


def _dk(x):
    return -2.0 * x / (1.0 + x**2) ** 2


def test_position_dependent_mobility_needs_the_ito_term():
    """With K(x) = 0.5 + 1/(1 + x²) the Gibbs state q stays put only with T ∇·K.

    Start from the grid's Gibbs state; at t = 2 the correct particles still
    sample q (p > 1e-3), while dynamics without the T ∇·K drift (built as a
    force F = −T K'/K, so the drift is −K E' only) drift towards the
    Itô-convention state ∝ q/K and are rejected (p < 1e-6).

    False-alarm rate: one test at 1e-3 at t = 2 (and one at t = 0): 0.2 %.
    """
    grid = fp.Grid(x=(-5, 5, 100))
    T = 1.0

    def energy(x):
        return 0.5 * x**2

    right = fp.FokkerPlanck(grid, energy=energy, temperature=T, mobility=_k)
    wrong = fp.FokkerPlanck(
        grid, energy=energy, temperature=T, mobility=_k, force=lambda x: -T * _dk(x) / _k(x)
    )
    q = right.equilibrium()
    ref = grid_reference(right, q, [0.0, 2.0])
    ok = fp.simulate_particles(right, q, n=30_000, t_end=2.0, dt=2e-3, seed=2)
    bad = fp.simulate_particles(wrong, q, n=30_000, t_end=2.0, dt=2e-3, seed=2)
    assert np.all(fp.compare(ref, ok).p_value > 1e-3)
    assert fp.compare(ref, bad).p_value[-1] < 1e-6


def test_double_well_2d_agrees_and_dt_bias_is_small():
    """benchmark P2 on a 40² grid: particles and ``model.solve`` agree at t = 0, 1, 2.

    Bias check: the same comparison also passes at 4·dt; the weak error is
    O(dt), so the chi-square non-centrality at dt is 16 times smaller than
    at 4·dt, whose test it already passes — far below the noise.

    False-alarm rate: 5 tests at 1e-3 plus 6 |z| < 4 checks: about 0.5 %.
    """
    from fpsolver.cli.demo import double_well_model

    model = double_well_model(40)  # energy callable: central-difference drift
    p0 = fp.gaussian(model.grid, (-1.0, 0.0), 0.04)
    ref = model.solve(p0, t_end=2.0, dt=2e-3, method="bdf2", save_every=1.0)  # the real solver
    dt = 2e-3
    parts = fp.simulate_particles(model, p0, n=40_000, t_end=2.0, dt=dt, save_every=1.0, seed=7)
    report = fp.compare(ref, parts)
    assert np.all(report.p_value > 1e-3), report.p_value.values
    assert np.all(np.abs(report.mean_z) < 4), report.mean_z.values
    # a visible fraction crossed the barrier, so the test has something to check
    assert float((ref["p"][-1] * model.grid.volumes).where(ref.x > 0).sum()) > 0.05

    coarse = fp.simulate_particles(
        model, p0, n=40_000, t_end=2.0, dt=4 * dt, save_every=1.0, seed=8
    )
    assert np.all(fp.compare(ref, coarse).p_value[1:] > 1e-3)


def test_absorbing_wall_survival_matches_grid_mass():
    """Survival with an absorbing wall agrees with the grid's mass within 3 SE.

    The wall at x = 0 absorbs (Brownian-bridge test inside the step), the
    one at x = 4 reflects. False-alarm rate: 4 |z| < 3 checks, 1.1 %.
    """
    grid = fp.Grid(x=(0.0, 4.0, 200))
    model = fp.FokkerPlanck(
        grid,
        energy=lambda x: 0.5 * (x - 2.0) ** 2,
        temperature=1.0,
        boundary={"x": ("absorbing", "reflecting")},
    )
    p0 = fp.gaussian(grid, 0.8, 0.09)
    times = [0.0, 0.25, 0.5, 0.75, 1.0]
    ref = grid_reference(model, p0, times)
    parts = fp.simulate_particles(model, p0, n=50_000, t_end=1.0, dt=1e-3, save_every=0.25, seed=4)
    report = fp.compare(ref, parts)
    absorbed = 1.0 - float(ref["mass"][-1])
    assert absorbed > 0.1  # the wall matters
    assert np.all(np.abs(report.survival_z) < 3), report.survival_z.values
    # bookkeeping: every absorbed particle has an exit time and a wall
    lost = 50_000 - int(parts["count"][-1].sum())
    assert parts.sizes["exit"] == lost
    assert np.all(parts["exit_time"] <= 1.0) and np.all(parts["exit_wall"] == 0)
    assert parts.attrs["walls"].split()[0] == "x:lower"


def test_reproducible_whatever_batch_size_or_workers():
    """A seed fixes the result bit for bit; another seed changes it."""
    grid = fp.Grid(x=(0.0, 3.0, 30), y=(-2.0, 2.0, 20), periodic="y")
    model = fp.FokkerPlanck(
        grid,
        energy=lambda x, y: (x - 1.5) ** 2 + 0.3 * np.cos(np.pi * y),
        temperature=0.7,
        boundary={"x": ("absorbing", "reflecting")},
    )
    p0 = fp.gaussian(grid, (1.0, 0.0), 0.2)
    n = 2 * BLOCK_SIZE + 123
    kw = dict(n=n, t_end=0.3, dt=0.01, save_every=0.1, seed=99)
    a = fp.simulate_particles(model, p0, batch_size=BLOCK_SIZE, **kw)
    b = fp.simulate_particles(model, p0, batch_size=10 * n, **kw)
    c = fp.simulate_particles(model, p0, batch_size=1, workers=3, **kw)
    assert a.sizes["exit"] > 0
    for other in (b, c):
        xr.testing.assert_identical(a, other)
    d = fp.simulate_particles(model, p0, batch_size=BLOCK_SIZE, **{**kw, "seed": 100})
    assert not np.array_equal(a["count"].values, d["count"].values)


def test_periodic_ring_with_force_agrees():
    """Tilted periodic potential (cos x plus a constant force): wrap and force.

    False-alarm rate: 2 tests at 1e-3: 0.2 %.
    """
    grid = fp.Grid(x=(0.0, 2 * np.pi, 64), periodic="x")
    model = fp.FokkerPlanck(grid, energy=lambda x: np.cos(x), temperature=0.5, force=[1.0])
    p0 = fp.gaussian(grid, np.pi, 0.1)
    ref = grid_reference(model, p0, [0.0, 1.0, 2.0])
    parts = fp.simulate_particles(model, p0, n=20_000, t_end=2.0, dt=2e-3, save_every=1.0, seed=3)
    assert np.all(fp.compare(ref, parts).p_value > 1e-3)


def test_array_energy_and_array_mobility():
    """Energies and mobilities given as cell arrays: findiff gradients, interpolated.

    False-alarm rate: 2 tests at 1e-3: 0.2 %.
    """
    grid = fp.Grid(x=(-5, 5, 100))
    x = grid.centers[0]
    model = fp.FokkerPlanck(grid, energy=0.5 * x**2, temperature=1.0, mobility=_k(x))
    p0 = fp.gaussian(grid, 2.0, 0.25)
    ref = grid_reference(model, p0, [0.0, 1.0])
    parts = fp.simulate_particles(model, p0, n=20_000, t_end=1.0, dt=2e-3, seed=6)
    assert parts.attrs["gradient"].startswith("findiff")
    assert np.all(fp.compare(ref, parts).p_value > 1e-3)


def test_from_drift_rotation_matches_exact_moments():
    """A non-gradient linear drift f = −B x (from_drift): exact moments.

    False-alarm rate: 2 |z| < 4 checks on the mean: 1.3e-4.
    """
    grid = fp.Grid(x=(-4, 4, 32), y=(-4, 4, 32))
    B = np.array([[1.0, 1.0], [-1.0, 1.0]])
    model = fp.FokkerPlanck.from_drift(grid, lambda x, y: (-x - y, x - y), diffusion=0.5)
    start = np.tile([1.5, 0.0], (10_000, 1))
    parts = fp.simulate_particles(model, start, t_end=0.5, dt=1e-3, seed=1)
    m, c = linear_moments(B, 0.5 * np.eye(2), [1.5, 0.0], 1e-12 * np.eye(2), 0.5)
    z = (parts["mean"][-1].values - m) / np.sqrt(np.diag(c) / 10_000)
    assert np.all(np.abs(z) < 4), z


def test_3d_ou_moments():
    """3-D OU (benchmark P4 start) from grid density: mean and variance z-scores.

    False-alarm rate: 6 |z| < 4 checks: 4e-4.
    """
    grid = fp.Grid(x=(-5, 5, 12), y=(-5, 5, 12), z=(-5, 5, 12))
    model = fp.FokkerPlanck(
        grid,
        energy=lambda x, y, z: 0.5 * (x**2 + y**2 + z**2),
        energy_gradient=lambda x, y, z: (x, y, z),
    )
    p0 = np.zeros(grid.shape)
    p0[8, 8, 8] = 1.0 / grid.volumes[8, 8, 8]  # uniform in one cell
    n = 20_000
    parts = fp.simulate_particles(model, p0, n=n, t_end=0.5, dt=2e-3, seed=12)
    c0 = grid.centers[0][8]
    h2 = grid.widths[0][8] ** 2 / 12
    m, c = linear_moments(np.eye(3), np.eye(3), [c0] * 3, h2 * np.eye(3), 0.5)
    zm = (parts["mean"][-1].values - m) / np.sqrt(np.diag(c) / n)
    zv = (np.diag(parts["covariance"][-1].values) - np.diag(c)) / np.sqrt(2 * np.diag(c) ** 2 / n)
    assert np.all(np.abs(zm) < 4) and np.all(np.abs(zv) < 4), (zm, zv)


def test_initial_histogram_and_dataset_contract():
    """Counts at t = 0 sum to n, p = count/(N V), attrs and grid round-trip."""
    model = ou_model()
    grid = model.grid
    kw = dict(n=5000, t_end=0.1, dt=0.01, save_at=[0.0, 0.05, 0.1])
    parts = fp.simulate_particles(model, fp.gaussian(grid, 0.0, 1.0), seed=3, **kw)
    assert parts["count"].dims == ("time", "x") and parts["p"].dims == ("time", "x")
    assert np.array_equal(parts["count"].sum("x").values, [5000] * 3)
    np.testing.assert_array_equal(parts["p"].values, parts["count"].values / (5000 * grid.volumes))
    assert fp.Grid.from_attrs(parts.attrs) == grid
    for key in ("n", "dt", "seed", "method", "temperature"):
        assert key in parts.attrs
    assert int(parts.attrs["seed"]) == 3
    assert np.all(parts["mass"] == 1.0) and parts.sizes["exit"] == 0


def test_unseeded_run_records_the_seed_that_repeats_it():
    """Without a seed, fresh entropy is drawn and recorded; it reproduces the run.

    (The one test that draws unseeded on purpose: its assertions hold for
    whatever seed is drawn.)
    """
    model = ou_model()
    kw = dict(n=2000, t_end=0.1, dt=0.01, save_every=0.05)
    p0 = fp.gaussian(model.grid, 0.0, 1.0)
    first = fp.simulate_particles(model, p0, **kw)
    again = fp.simulate_particles(model, p0, seed=int(first.attrs["seed"]), **kw)
    xr.testing.assert_identical(again, first)


def test_steps_land_on_every_save_time():
    """dt need not divide the save interval: the last step of each is shortened."""
    model = ou_model()
    p0 = fp.gaussian(model.grid, 0.0, 1.0)
    parts = fp.simulate_particles(model, p0, n=100, t_end=1.0, dt=0.3, save_every=0.25, seed=0)
    assert parts.time.values.tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(t_end=-1.0, dt=0.1), "t_end"),
        (dict(t_end=1.0, dt=0.1, save_every=-0.25), "save_every"),
        (dict(t_end=1.0, dt=0.1, save_at=[2.0]), "save_at"),
        (dict(t_end=1.0, dt=-0.1), "dt"),
        (dict(t_end=1.0, dt=0.1, workers=0), "workers"),
    ],
)
def test_argument_errors(kwargs, match):
    model = ou_model()
    with pytest.raises(ValueError, match=match):
        fp.simulate_particles(model, fp.gaussian(model.grid, 0.0, 1.0), n=10, seed=0, **kwargs)


def test_position_errors():
    model = ou_model()
    with pytest.raises(ValueError, match="lie in"):
        fp.simulate_particles(model, np.array([[0.0], [7.0]]), t_end=0.1, dt=0.1)
    with pytest.raises(ValueError, match="positions were given"):
        fp.simulate_particles(model, np.zeros((3, 1)), n=4, t_end=0.1, dt=0.1)
    with pytest.raises(TypeError, match="`n`"):
        fp.simulate_particles(model, fp.gaussian(model.grid, 0.0, 1.0), t_end=0.1, dt=0.1)

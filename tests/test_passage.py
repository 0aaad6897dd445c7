"""Mean first-passage times and committors against exact 1-D formulas."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import slope
from scipy.integrate import cumulative_simpson

import fpsolver as fp
from fpsolver.analysis.passage import backward_generator, committor, mean_first_passage_time

T, K = 0.5, 1.0


def energy(x):
    return (x**2 - 1) ** 2


def exact_mfpt(a: float, b: float, points: np.ndarray) -> np.ndarray:
    """τ(x) = ∫_x^b dy e^{E(y)/T}/(T K) ∫_a^y dz e^{−E(z)/T} (reflecting at a).

    From L* τ = K (T τ'' − E' τ') = −1, τ'(a) = 0, τ(b) = 0; fourth-order
    cumulative Simpson on 200 001 nodes.
    """
    y = np.linspace(a, b, 200_001)
    inner = cumulative_simpson(np.exp(-energy(y) / T), x=y, initial=0)
    outer = cumulative_simpson(np.exp(energy(y) / T) * inner / (T * K), x=y, initial=0)
    return np.interp(points, y, outer[-1] - outer)


def exact_committor(xa: float, xb: float, points: np.ndarray) -> np.ndarray:
    """c(x) = ∫_{xa}^x e^{E/T} / ∫_{xa}^{xb} e^{E/T}."""
    y = np.linspace(xa, xb, 200_001)
    c = cumulative_simpson(np.exp(energy(y) / T), x=y, initial=0)
    return np.interp(points, y, c / c[-1])


def mfpt_grid(m_cells: int, a=-2.0, b=0.5):
    """Reflecting wall at a; the target starts at the cell whose centre is b."""
    h = (b - a) / (m_cells + 0.5)
    n = m_cells + 1 + m_cells // 4
    return fp.Grid(x=(a, a + n * h, n)), m_cells


def test_mfpt_double_well_second_order():
    ns = np.array([40, 80, 160])
    errors = []
    for m_cells in ns:
        grid, first = mfpt_grid(int(m_cells))
        model = fp.FokkerPlanck(grid, energy, T, mobility=K)
        target = np.zeros(grid.shape, dtype=bool)
        target[first:] = True
        tau = model.mean_first_passage_time(target)
        assert tau.name == "mfpt" and tau.dims == ("x",)
        assert np.all(tau.values[first:] == 0) and np.all(tau.values[:first] > 0)
        x = grid.centers[0][:first]
        exact = exact_mfpt(-2.0, 0.5, x)
        errors.append(np.abs(tau.values[:first] - exact).max() / exact.max())
    order = slope(ns, errors)
    assert 1.95 < order < 2.05, (order, errors)
    assert errors[-1] < 1e-3


def committor_grid(j: int) -> fp.Grid:
    # 4 j + 2 cells on [−2, 2]: cell centres at exactly −1 (index j) and 1 (3 j + 1)
    return fp.Grid(x=(-2.0, 2.0, 4 * j + 2))


def test_committor_double_well_second_order():
    js = np.array([10, 20, 40])
    errors = []
    for j in js:
        grid = committor_grid(int(j))
        model = fp.FokkerPlanck(grid, energy, T, mobility=K)
        c = model.committor(lambda x: x <= -1 + 1e-9, lambda x: x >= 1 - 1e-9)
        i_a, i_b = int(j), 3 * int(j) + 1
        assert np.all(c.values[: i_a + 1] == 0) and np.all(c.values[i_b:] == 1)
        inner = c.values[i_a + 1 : i_b]
        assert np.all(np.diff(inner) > 0)  # monotone between the sets
        # symmetric well: c(−x) = 1 − c(x) to rounding
        np.testing.assert_allclose(c.values + c.values[::-1], 1.0, atol=1e-12)
        exact = exact_committor(-1.0, 1.0, grid.centers[0][i_a + 1 : i_b])
        errors.append(np.abs(inner - exact).max())
    order = slope(js, errors)  # 1.95, the last ratio 3.91: asymptotically 2
    assert 1.9 < order < 2.05, (order, errors)
    assert 3.8 < errors[1] / errors[2] < 4.2


def test_backward_generator_is_the_weighted_adjoint():
    g = fp.Grid(x=(-2.0, 2.0, 17), y=np.array([0.0, 0.1, 0.4, 0.5, 1.0]), periodic="y")
    m = fp.FokkerPlanck(g, lambda x, y: x**2 + np.sin(2 * np.pi * y), 0.7, force=[0.3, 1.1])
    rng = np.random.default_rng(0)
    p, f = rng.random(g.size), rng.standard_normal(g.size)
    V = g.volumes.ravel()
    lhs = np.sum(V * p * (backward_generator(m) @ f))
    rhs = np.sum(V * f * (m.generator() @ p))
    assert lhs == pytest.approx(rhs, rel=1e-13)
    np.testing.assert_allclose(backward_generator(m) @ np.ones(g.size), 0, atol=1e-12)


def test_drift_route_gives_the_same_mfpt():
    # constant drift v: from_drift links carry δ = −h v/D, exactly the energy
    # route's (E = −v x, T = D), so both backward solves agree to rounding.
    g = fp.Grid(x=(0.0, 3.0, 60))
    target = lambda x: x > 2.5  # noqa: E731
    a = fp.FokkerPlanck.from_drift(g, [0.8], 0.3).mean_first_passage_time(target)
    b = fp.FokkerPlanck(g, lambda x: -0.8 * x, 0.3).mean_first_passage_time(target)
    np.testing.assert_allclose(a.values, b.values, rtol=1e-11)


def test_absorbing_walls_mean_exit_time():
    # Free diffusion D on [0, 1], both walls absorbing: τ = x (1 − x)/(2 D).
    D = 0.7
    ns = np.array([25, 50, 100])
    errors = []
    for n in ns:
        m = fp.FokkerPlanck(fp.Grid(x=(0.0, 1.0, int(n))), 0.0, D, boundary="absorbing")
        tau = m.mean_first_passage_time(None)
        assert tau.attrs["absorbing_walls"] == 1
        x = m.grid.centers[0]
        errors.append(np.abs(tau.values - x * (1 - x) / (2 * D)).max())
    assert 1.95 < slope(ns, errors) < 2.05, errors
    # with a target as well: the walk ends at the target or a wall
    m = fp.FokkerPlanck(fp.Grid(x=(0.0, 1.0, 100)), 0.0, D, boundary="absorbing")
    both = m.mean_first_passage_time(lambda x: np.abs(x - 0.5) < 0.01)
    assert np.all(both.values <= m.mean_first_passage_time(None).values + 1e-15)


def test_mfpt_matches_particle_exit_times():
    # Absorbing walls at ±1 in E = x²/2, start at x0 (a cell centre).
    # Euler–Maruyama with dt = 1e-3 and the Brownian-bridge wall test has a
    # bias well below the standard error of 4000 exit times (checked at
    # 1e5 particles: 0.1 standard errors). False-alarm rate of |z| < 3: 0.27 %.
    g = fp.Grid(x=(-1.0, 1.0, 200))
    m = fp.FokkerPlanck(g, lambda x: 0.5 * x**2, 1.0, boundary="absorbing")
    x0 = g.centers[0][130]
    tau = float(m.mean_first_passage_time(None).values[130])
    parts = fp.simulate_particles(m, np.full((4000, 1), x0), t_end=5.0, dt=1e-3, seed=0)
    exits = parts["exit_time"].values
    assert parts["survival"].values[-1] < 1e-3
    se = exits.std(ddof=1) / np.sqrt(exits.size)
    z = (exits.mean() - tau) / se
    assert abs(z) < 3, (exits.mean(), tau, se)


def test_set_errors():
    g = fp.Grid(x=(0.0, 1.0, 10))
    m = fp.FokkerPlanck(g, 0.0, 1.0)
    with pytest.raises(ValueError, match="empty"):
        m.mean_first_passage_time(np.zeros(10, dtype=bool))
    with pytest.raises(ValueError, match="whole grid"):
        m.mean_first_passage_time(lambda x: x > -1)
    with pytest.raises(TypeError, match="boolean"):
        m.mean_first_passage_time(np.ones(10))
    with pytest.raises(ValueError, match="grid shape"):
        m.mean_first_passage_time(np.ones(9, dtype=bool))
    with pytest.raises(ValueError, match="callable failed"):
        m.mean_first_passage_time(lambda x: x.undefined)
    with pytest.raises(ValueError, match="absorbing wall"):
        m.mean_first_passage_time(None)
    with pytest.raises(ValueError, match="overlap"):
        committor(m, lambda x: x < 0.5, lambda x: x > 0.3)
    with pytest.raises(ValueError, match="set `a` is empty"):
        committor(m, lambda x: x < -1, lambda x: x > 0.3)
    with pytest.raises(ValueError, match="set `b` is empty"):
        committor(m, lambda x: x < 0.2, lambda x: x > 2)
    with pytest.raises(TypeError, match="`model`"):
        mean_first_passage_time("model", np.ones(10, dtype=bool))


def test_dataarray_masks_and_whole_grid_committor():
    g = fp.Grid(x=(0.0, 1.0, 10), y=(0.0, 1.0, 4))
    m = fp.FokkerPlanck(g, 0.0, 1.0)
    x, _ = g.mesh()
    a = g.data_array(x < 0.5, "a").transpose("y", "x")  # any dim order
    c = m.committor(a, ~a.values.T)
    np.testing.assert_array_equal(c.values, (x >= 0.5).astype(float))
    tau = m.mean_first_passage_time(g.data_array(x > 0.9, "t"))
    assert np.all(np.diff(tau.values[:, 0]) <= 0)  # nearer the target, shorter

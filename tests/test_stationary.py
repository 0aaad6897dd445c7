"""Stationary densities: exact Gibbs, tilted periodic potentials, circulation."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from helpers import kl_divergence, slope
from scipy.integrate import dblquad

import fpsolver as fp
from fpsolver.analysis.stationary import stationary
from fpsolver.core.analytic import tilted_periodic_current
from fpsolver.discrete.nullspace import _inverse_iteration

V0, FORCE, TEMP = 1.0, 2.0, 0.5


def tilted_energy(x):
    return -V0 * np.cos(2 * np.pi * x) - FORCE * x


def tilted_drift(x):
    return -2 * np.pi * V0 * np.sin(2 * np.pi * x) + FORCE


def stratonovich_current(v0: float, force: float, temp: float, mobility: float = 1.0) -> float:
    """Exact stationary current on the unit period (Risken, ch. 11.3)."""
    return tilted_periodic_current(v0, force, temp, mobility)


def tilted_model(n: int, route: str) -> fp.FokkerPlanck:
    g = fp.Grid(x=(0.0, 1.0, n), periodic="x")
    if route == "energy":
        return fp.FokkerPlanck(g, tilted_energy, TEMP)
    if route == "force":
        return fp.FokkerPlanck(g, lambda x: -V0 * np.cos(2 * np.pi * x), TEMP, force=[FORCE])
    return fp.FokkerPlanck.from_drift(g, tilted_drift, TEMP)


def test_exact_current_quadrature_is_converged():
    # The reference itself: V0 → 0 gives free drift J = K F; otherwise it
    # agrees with adaptive double quadrature of the same formula,
    # J = T (1 − e^{−F/T}) / ∫₀¹ dx ∫ₓ^{x+1} dy e^{(E(y) − E(x))/T}.
    assert stratonovich_current(0.0, 2.0, 0.5) == pytest.approx(2.0, rel=1e-13)
    integral, error = dblquad(
        lambda y, x: np.exp((tilted_energy(y) - tilted_energy(x)) / TEMP),
        0.0,
        1.0,
        lambda x: x,
        lambda x: x + 1.0,
        epsabs=0.0,
        epsrel=1e-13,
    )
    assert error < 1e-12 * integral
    reference = TEMP * -np.expm1(-FORCE / TEMP) / integral
    assert stratonovich_current(V0, FORCE, TEMP) == pytest.approx(reference, rel=1e-12)


@pytest.mark.parametrize("route", ["energy", "force", "drift"])
def test_tilted_periodic_current_converges(route):
    # Observed orders: 2.00 for the energy (tilt across the wrap) and force
    # routes; the from_drift route, whose links use the drift at the face
    # midpoint, is superconvergent here (4.00): both are asserted tightly.
    exact = stratonovich_current(V0, FORCE, TEMP)
    ns = np.array([32, 64, 128, 256])
    errors = []
    for n in ns:
        model = tilted_model(int(n), route)
        assert not model.reversible
        p = model.stationary()
        assert p.attrs["method"] == "direct"
        assert abs(float((model.grid.volumes * p).sum()) - 1) < 1e-13
        assert p.attrs["residual"] < 1e-9
        J = model.current(p)["J_x"].values
        # divergence-free in 1-D: the same current through every face
        assert np.ptp(J) < 1e-10 * abs(J.mean())
        errors.append(abs(J.mean() - exact))
    assert exact > 0.1  # a genuine non-equilibrium current
    order = slope(ns, errors)
    expected = 4.0 if route == "drift" else 2.0
    assert abs(order - expected) < 0.05, (order, errors)
    assert errors[0] < (1e-4 if route == "drift" else 5e-3) * exact


def test_routes_agree_on_the_current():
    # energy callable (tilt across the wrap), force= and from_drift describe
    # the same physics. The energy and force routes build the same links, so
    # their currents agree to rounding (measured 3e-15); the from_drift route,
    # superconvergent here, is far closer to the exact current than their
    # O(h²) error (measured: 3e-5 of it).
    currents = {}
    for route in ("energy", "force", "drift"):
        m = tilted_model(256, route)
        currents[route] = float(m.current(m.stationary())["J_x"].mean())
    assert currents["energy"] == pytest.approx(currents["force"], rel=1e-13)
    exact = stratonovich_current(V0, FORCE, TEMP)
    err = abs(currents["energy"] - exact)
    assert abs(currents["drift"] - exact) < 1e-3 * err


@pytest.mark.parametrize(
    "grid",
    [
        fp.Grid(
            x=(-2.5, 2.5, 60),
            y=np.sort(np.r_[-2.0, 2.0, np.random.default_rng(1).uniform(-2, 2, 30)]),
        ),
        fp.Grid(x=(0.0, 1.0, 50), periodic="x"),
    ],
)
def test_reversible_direct_path_equals_gibbs(grid):
    if grid.ndim == 2:
        model = fp.FokkerPlanck(grid, lambda x, y: (x**2 - 1) ** 2 + 0.5 * y**2, 0.5)
    else:
        model = fp.FokkerPlanck(grid, lambda x: np.sin(2 * np.pi * x) ** 2, 0.2)
    assert model.reversible
    auto = model.stationary()
    assert auto.attrs["method"] == "gibbs"
    # the Gibbs density exp(−E/T)/Z, computed here directly
    energy = model.energy_function(*grid.mesh())
    w = np.exp(-(energy - energy.min()) / model.temperature)
    q = w / np.sum(grid.volumes * w)
    np.testing.assert_allclose(auto.values, q, rtol=1e-13)
    direct = stationary(model, method="direct")
    assert direct.attrs["method"] == "direct"
    assert np.max(np.abs(direct.values - q)) < 1e-12 * q.max()
    assert direct.attrs["residual"] < 1e-12 * np.abs(model.generator().diagonal()).max() * q.max()
    assert auto.name == "p_ss" and auto.dims == grid.names


@pytest.mark.parametrize("D", [0.08, 0.02])
def test_reanchoring_large_dynamic_range(D):
    # from_drift has E = 0, so the first anchor is a corner where p_ss is
    # e^-550 (D = 0.08) or e^-2200 (D = 0.02, overflow on the way) of its
    # peak; the solver must re-anchor without overflow. A linear drift gives
    # link differences equal to the exact potential differences, so the
    # answer is the discrete Gibbs density of U = k (x − c)²/2 at T = D.
    g = fp.Grid(x=(-3.0, 3.0, 301))
    k, c = 4.0, 1.7
    m = fp.FokkerPlanck.from_drift(g, lambda x: -k * (x - c), D)
    p = m.stationary()
    gibbs = fp.FokkerPlanck(g, lambda x: k * (x - c) ** 2 / 2, D).equilibrium().values
    assert np.all(np.isfinite(p.values)) and p.values.min() >= 0
    # normwise accuracy: rounding-level errors relative to the peak
    assert np.abs(p.values - gibbs).max() < 1e-12 * gibbs.max()
    assert p.attrs["residual"] < 1e-12 * np.abs(m.generator().diagonal()).max() * gibbs.max()


def test_tails_resolved_to_relative_accuracy():
    # Same exact discrete answer; p_ss spans 1e-239 .. 1, and every entry,
    # far tails included, is accurate to relative rounding level.
    g = fp.Grid(x=(-3.0, 3.0, 301))
    k, c, D = 4.0, 1.7, 0.08
    m = fp.FokkerPlanck.from_drift(g, lambda x: -k * (x - c), D)
    gibbs = fp.FokkerPlanck(g, lambda x: k * (x - c) ** 2 / 2, D).equilibrium().values
    assert gibbs.min() < 1e-230 * gibbs.max()
    p = m.stationary()
    np.testing.assert_allclose(p.values, gibbs, rtol=1e-10)
    assert p.attrs["residual"] < 1e-12 * np.abs(m.generator().diagonal()).max() * gibbs.max()
    with pytest.warns(DeprecationWarning, match="`tails` is deprecated"):
        again = m.stationary(tails=True)
    np.testing.assert_array_equal(again.values, p.values)


def test_inverse_iteration_fallback_agrees():
    m = tilted_model(64, "energy")
    p = _inverse_iteration(m.generator(), m.grid.volumes.ravel())
    np.testing.assert_allclose(p, m.stationary().values, rtol=1e-10)


def test_rotational_drift_has_stationary_circulation():
    # f = −x + ω(−y, x), D = 1: p_ss = N(0, I) exactly, and the stationary
    # current is J = p_ss ω (−y, x) ≠ 0 (divergence-free circulation).
    omega = 1.5
    errs = []
    for n in (40, 80):
        g = fp.Grid(x=(-5, 5, n), y=(-5, 5, n))
        m = fp.FokkerPlanck.from_drift(g, lambda x, y: (-x - omega * y, -y + omega * x), 1.0)
        p = m.stationary()
        J = m.current(p)
        jx = J["J_x"].values  # faces along x at the cell-centre y
        xf, yc = np.meshgrid(g.edges[0], g.centers[1], indexing="ij")
        exact = -omega * yc * np.exp(-(xf**2 + yc**2) / 2) / (2 * np.pi)
        assert np.abs(jx).max() > 0.1 * omega / (2 * np.pi)
        errs.append(np.abs(jx - exact).max() / np.abs(exact).max())
    assert errs[1] < errs[0] / 3.5  # second order: ratio 4
    assert errs[1] < 5e-3


@pytest.mark.parametrize("case", ["tilted", "rotational"])
def test_kl_to_stationary_never_increases_under_backward_euler(case):
    if case == "tilted":
        m = tilted_model(80, "energy")
        p = np.exp(-((m.grid.centers[0] - 0.3) ** 2) / 0.005)
    else:
        g = fp.Grid(x=(-4, 4, 36), y=(-4, 4, 36))
        m = fp.FokkerPlanck.from_drift(g, lambda x, y: (-x - 2 * y, -y + 2 * x), 0.5)
        x, y = g.mesh()
        p = np.exp(-((x - 2) ** 2 + y**2) / 0.1)
    vol = m.grid.volumes.ravel()
    p = p.ravel() + 1e-300
    p /= vol @ p
    pss = m.stationary().values.ravel()
    for dt in (1e-3, 0.1, 10.0):
        lu = spla.splu(sp.csc_array(sp.identity(p.size, format="csc") - dt * m.generator()))
        q = p.copy()
        kl = [kl_divergence(vol, q, pss)]
        for _ in range(25):
            q = lu.solve(q)
            kl.append(kl_divergence(vol, q, pss))
        kl = np.array(kl)
        assert kl[0] > 0.5
        assert np.all(np.diff(kl) <= 1e-13 * kl[0]), (dt, np.diff(kl).max())
    assert kl[-1] < 1e-10


def test_solve_reports_relative_entropy_to_stationary():
    m = tilted_model(80, "energy")
    p0 = np.exp(-((m.grid.centers[0] - 0.3) ** 2) / 0.005)
    p0 /= m.grid.volumes @ p0
    ds = m.solve(p0, 2.0, dt=0.01, method="backward_euler", save_every=0.05)
    kl = ds["relative_entropy_ss"].values
    assert kl[0] > 0.5 and kl[-1] < 1e-3 * kl[0]
    assert np.all(np.diff(kl) <= 1e-13 * kl[0])


def test_errors():
    g = fp.Grid(x=(0.0, 1.0, 20))
    absorbing = fp.FokkerPlanck(g, 0.0, 1.0, boundary="absorbing")
    with pytest.raises(ValueError, match="absorbing"):
        absorbing.stationary()
    tilted = tilted_model(20, "energy")
    with pytest.raises(ValueError, match="`method`"):
        tilted.stationary(method="lu")
    with pytest.raises(ValueError, match="reversible"):
        tilted.stationary(method="gibbs")
    with pytest.raises(TypeError, match="`model`"):
        stationary("not a model")

"""The Scharfetter–Gummel generator: properties 1–5 of the scheme (README).

Identity tests draw random grids (1-D to 3-D, uniform and non-uniform,
bounded and periodic), random energies, temperatures and mobilities with
hypothesis and check each property to machine precision.
"""

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fpsolver as fp
from fpsolver.discrete.sg import bernoulli, x_over_sinh

EPS = 1e-13  # relative tolerance of every identity: a few hundred ulp at most

AXES = ("x", "y", "z")


@st.composite
def grids(draw, max_dim=3):
    ndim = draw(st.integers(1, max_dim))
    nmax = {1: 9, 2: 6, 3: 4}[ndim]
    axes = {}
    periodic = []
    for name in AXES[:ndim]:
        n = draw(st.integers(2, nmax))
        lo = draw(st.floats(-3, 0))
        if draw(st.booleans()):
            widths = np.array(draw(st.lists(st.floats(0.05, 1.0), min_size=n, max_size=n)))
            axes[name] = lo + np.concatenate([[0.0], np.cumsum(widths)])
        else:
            axes[name] = (lo, lo + draw(st.floats(0.5, 4.0)), n)
        if draw(st.booleans()):
            periodic.append(name)
    return fp.Grid(periodic=periodic, **axes)


@st.composite
def models(draw, max_dim=3):
    grid = draw(grids(max_dim))
    T = draw(st.floats(0.05, 5.0))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    span = draw(st.floats(0.0, 40.0))  # range of E/T across the grid
    energy = rng.uniform(0, span * T, grid.shape)
    kind = draw(st.sampled_from(["scalar", "per_axis", "cells", "callable"]))
    if kind == "scalar":
        mobility = draw(st.floats(0.1, 10.0))
    elif kind == "per_axis":
        mobility = list(rng.uniform(0.1, 10.0, grid.ndim))
    elif kind == "cells":
        mobility = rng.uniform(0.1, 10.0, (grid.ndim, *grid.shape))
    else:
        c = rng.uniform(0.2, 1.0, grid.ndim)

        def mobility(*x):
            return [1.5 + np.sin(ci * sum(x)) for ci in c]

    return fp.FokkerPlanck(grid, energy=energy, temperature=T, mobility=mobility)


def dense(model):
    return model.generator().toarray()


def offdiag(L):
    return L - np.diag(np.diag(L))


# Random examples locally (a wider search over time), a fixed set in CI so a
# submission is judged on reproducible draws; FPSOLVER_HYPOTHESIS_EXAMPLES
# widens the search (1500 per test passed when these tests were written).
SETTINGS = settings(
    max_examples=int(os.environ.get("FPSOLVER_HYPOTHESIS_EXAMPLES", 60)),
    derandomize=os.environ.get("CI", "").lower() == "true",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@SETTINGS
@given(models())
def test_mass_weighted_column_sums_vanish(model):
    L = dense(model)
    V = model.grid.volumes.ravel()
    col = V @ L
    scale = V @ np.abs(L)
    assert np.all(np.abs(col) <= EPS * scale)


@SETTINGS
@given(models())
def test_offdiagonals_nonnegative_and_diagonal_nonpositive(model):
    L = dense(model)
    assert offdiag(L).min() >= 0.0
    assert np.diag(L).max() <= 0.0


@SETTINGS
@given(models())
def test_gibbs_state_is_exact_null_vector(model):
    L = dense(model)
    q = model.equilibrium().values.ravel()
    assert np.sum(model.grid.volumes.ravel() * q) == pytest.approx(1.0, rel=1e-14)
    resid = L @ q
    scale = np.abs(L) @ q
    assert np.all(np.abs(resid) <= EPS * scale)
    # every face flux vanishes, not just their sum
    for flux in model.operator.face_fluxes(q):
        fscale = np.max(np.abs(model.operator.face_fluxes(np.ones(model.grid.shape))[0])) + 1.0
        assert np.max(np.abs(flux)) <= EPS * fscale * np.max(q)


@SETTINGS
@given(models(), st.integers(0, 2**31 - 1))
def test_free_energy_dissipation_semidiscrete(model, seed):
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.01, 2.0, model.grid.size)
    V = model.grid.volumes.ravel()
    phi = model.energy.ravel() + model.temperature * np.log(p)
    Lp = model.generator() @ p
    dF = np.sum(V * phi * Lp)
    assert dF <= EPS * np.sum(V * np.abs(phi) * np.abs(Lp))


@SETTINGS
@given(models())
def test_symmetric_form_is_similar_and_symmetric(model):
    S = model.operator.symmetric.toarray()
    assert np.array_equal(S, S.T)
    d = np.exp(model.operator.symmetrizer)
    SL = d[:, None] * dense(model) / d[None, :]
    assert np.all(np.abs(SL - S) <= EPS * np.abs(S).max())


@SETTINGS
@given(models(max_dim=2), st.integers(0, 2**31 - 1))
def test_current_is_the_scheme_flux(model, seed):
    """The divergence of model.current(p) reproduces L p cell by cell."""
    g = model.grid
    p = np.random.default_rng(seed).uniform(0.1, 1.0, g.shape)
    ds = model.current(p)
    div = np.zeros(g.shape)
    for a, name in enumerate(g.names):
        J = ds[f"J_{name}"].values * g.face_areas(a)
        if g.periodic[a]:
            J_out, J_in = J, np.roll(J, 1, axis=a)
        else:
            n = g.shape[a]
            J_out, J_in = np.take(J, np.arange(1, n + 1), axis=a), np.take(J, np.arange(n), axis=a)
        div += J_out - J_in
    Lp = (model.generator() @ p.ravel()).reshape(g.shape)
    scale = (np.abs(model.generator()) @ p.ravel()).reshape(g.shape)
    assert np.all(np.abs(-div / g.volumes - Lp) <= 1e-12 * scale)


def test_bernoulli_identity_and_limits():
    z = np.concatenate([np.linspace(-50, 50, 2001), np.logspace(-12, 2, 200)])
    z = np.concatenate([z, -z])
    lhs = bernoulli(-z)
    rhs = np.exp(z) * bernoulli(z)
    np.testing.assert_allclose(lhs, rhs, rtol=4e-15, atol=0)
    assert bernoulli(0.0) == 1.0
    with np.errstate(over="raise"):
        big = bernoulli(np.array([-1e4, 1e4, 800.0]))
    assert np.all(np.isfinite(big)) and big[0] == 1e4 and big[1] == 0.0
    # the series branch matches the closed form where both are accurate
    zs = np.array([9.9e-3, -9.9e-3, 5e-3])
    np.testing.assert_allclose(bernoulli(zs), zs / np.expm1(zs), rtol=1e-15)
    np.testing.assert_allclose(x_over_sinh(zs), zs / np.sinh(zs), rtol=1e-15)
    assert x_over_sinh(1e4) == 0.0


def test_gibbs_with_position_dependent_mobility_is_exp_minus_E_over_T():
    """Null vector is exp(−E/T)/Z, not exp(−E/T)/K (the Itô trap)."""
    g = fp.Grid(x=(-2, 2, 80), y=np.linspace(-1, 1.5, 31) ** 3 / 2, periodic=())
    T = 0.7

    def E(x, y):
        return (x**2 - 1) ** 2 + 0.5 * y**2 + 0.3 * x * y

    def K(x, y):
        return 1.0 + 0.8 * np.exp(-(x**2)) * (1 + 0.5 * np.cos(3 * y))

    m = fp.FokkerPlanck(g, E, T, mobility=K)
    L = m.generator()
    X, Y = g.mesh()
    w = np.exp(-E(X, Y) / T)
    q = w / np.sum(g.volumes * w)
    np.testing.assert_allclose(m.equilibrium().values, q, rtol=1e-13)
    scale = abs(L) @ q.ravel()
    assert np.max(np.abs(L @ q.ravel()) / scale) < EPS
    wrong = (w / K(X, Y)).ravel()
    assert np.max(np.abs(L @ wrong) / (abs(L) @ wrong)) > 1e-4  # 1e9 x the tolerance


def test_tilted_periodic_callable_energy_is_not_reversible():
    g = fp.Grid(x=(0, 1, 32), periodic="x")
    tilt = fp.FokkerPlanck(g, lambda x: -np.cos(2 * np.pi * x) - 0.5 * x, 1.0)
    flat = fp.FokkerPlanck(g, lambda x: -np.cos(2 * np.pi * x), 1.0)
    assert flat.reversible and not tilt.reversible
    with pytest.raises(ValueError, match="reversible"):
        _ = tilt.operator.symmetric
    # E = −cos − F x and E = −cos with a constant force F give the same links:
    # interior links see the tilt through E, the wrap link through the unwrapped E.
    forced = fp.FokkerPlanck(g, lambda x: -np.cos(2 * np.pi * x), 1.0, force=[0.5])
    assert not forced.reversible
    Lt, Lf = tilt.generator().toarray(), forced.generator().toarray()
    np.testing.assert_allclose(Lt, Lf, rtol=1e-12, atol=1e-12 * np.abs(Lf).max())
    assert np.abs(Lt - flat.generator().toarray()).max() > 0.1
    V = g.volumes.ravel()
    np.testing.assert_allclose(V @ Lt, 0, atol=EPS * np.abs(Lt).max())


def test_absorbing_wall_loses_mass_through_its_link_only():
    g = fp.Grid(x=(0, 1, 20), y=(0, 1, 5))
    m = fp.FokkerPlanck(g, lambda x, y: 2 * x, 0.5, boundary={"x": ("absorbing", "reflecting")})
    L = m.generator().toarray()
    V = g.volumes.ravel()
    col = (V @ L).reshape(g.shape)
    assert np.all(col[1:] == pytest.approx(0, abs=1e-12))
    assert np.all(col[0] < 0)
    # the outflow equals the wall current of model.current
    p = np.ones(g.shape)
    J = m.current(p)["J_x"].values
    outflow = -J[0] * g.face_areas(0)[0]
    np.testing.assert_allclose(-col[0] * p[0], outflow, rtol=1e-13)
    # Exact wall link: δ from E at the wall (E(0) = 0), half-cell distance h/2
    h2 = 0.025
    expected = 0.5 * 1.0 * 0.2 / h2 * bernoulli((0.0 - 2 * 0.025) / 0.5)
    np.testing.assert_allclose(outflow, expected, rtol=1e-13)
    assert m.boundary.absorbing


@pytest.mark.parametrize("dim", [1, 2, 3])
def test_deep_wells_stay_finite(dim):
    """E/T spanning 1e3 and more: no overflow, no NaN, exact Gibbs."""
    axes = {n: (-2.0, 2.0, {1: 200, 2: 40, 3: 12}[dim]) for n in AXES[:dim]}
    g = fp.Grid(**axes)
    T = 4e-3  # (x² − 1)² spans 9, so E/T spans 2250 per axis

    def E(*xs):
        return sum((x**2 - 1) ** 2 for x in xs)

    with np.errstate(over="raise", invalid="raise", divide="raise"):
        m = fp.FokkerPlanck(g, E, T)
        L = m.generator()
        q = m.equilibrium().values
        S = m.operator.symmetric
    assert np.all(np.isfinite(L.data)) and np.all(np.isfinite(S.data)) and np.all(np.isfinite(q))
    assert np.ptp(m.energy / T) > 1e3
    assert np.sum(g.volumes * q) == pytest.approx(1.0, rel=1e-13)
    r = L @ q.ravel()
    assert np.all(np.abs(r) <= EPS * (abs(L) @ q.ravel()) + 1e-300)
    assert m.relative_entropy(q) == pytest.approx(0.0, abs=1e-12)


def test_free_energy_and_relative_entropy_agree():
    g = fp.Grid(x=(-3, 3, 50))
    m = fp.FokkerPlanck(g, lambda x: 0.5 * x**2, 0.8)
    p = fp.gaussian(g, 1.0, 0.3)
    from fpsolver.core.diagnostics import log_partition

    F_eq = -0.8 * log_partition(m.energy, 0.8, g.volumes)
    assert m.relative_entropy(p) == pytest.approx((m.free_energy(p) - F_eq) / 0.8, rel=1e-12)
    assert m.free_energy(m.equilibrium()) == pytest.approx(F_eq, rel=1e-13)
    with pytest.raises(ValueError, match="non-negative"):
        m.free_energy(-p)

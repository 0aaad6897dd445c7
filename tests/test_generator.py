"""The Scharfetter–Gummel generator: properties 1–5 of the scheme (README).

Identity tests draw random models with hypothesis: grids in 1-D to 3-D
(uniform and non-uniform, bounded and periodic), energies as cell values or
as callables (random polynomial and trigonometric terms), temperatures,
mobilities in every accepted form, non-conservative forces (constant and
callable) and absorbing walls on any side of a bounded axis. Each property
is checked to machine precision on the models it holds for: mass balance
and positivity on all of them, the exact Gibbs state and free-energy decay
on reversible models with closed walls.
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fpsolver as fp
from fpsolver.discrete.sg import bernoulli, x_over_sinh

EPS = 1e-13  # relative tolerance of every identity: a few hundred ulp at most

AXES = ("x", "y", "z")
SEEDS = st.integers(0, 2**31 - 1)


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


def _unit_coordinates(grid):
    """u_a = (x_a − lower edge)/length, in [0, 1] on the grid."""
    lower = [float(e[0]) for e in grid.edges]
    lengths = grid.lengths()

    def unit(xs):
        return [(x - lo) / n for x, lo, n in zip(xs, lower, lengths)]

    return unit


def _callable_energy(grid, rng, amplitude, wrap_amplitude=None):
    """A random sum of polynomial and trigonometric terms in the axis variables.

    Each term is bounded by its coefficient on the grid; the coefficients
    are scaled so that |E| ≤ `amplitude`. Polynomial terms tilt a periodic
    axis (E differs across the wrap: not reversible). With `wrap_amplitude`
    E is periodic along every periodic axis instead: no polynomial terms
    there, one period, and the terms that vary along it bounded by
    `wrap_amplitude`. (The link across a wrap takes E at the unwrapped
    position x₀ + L, which differs from E(x₀) by about |∂E/∂x|·ulp(x); a
    moderate slope there keeps the Gibbs identity at rounding level.)
    """
    unit = _unit_coordinates(grid)
    nd = grid.ndim
    poly = rng.uniform(-1, 1, (nd, 3))
    trig = rng.uniform(-1, 1, nd)
    freq = rng.integers(1, 4, nd)
    phase = rng.uniform(0, 2 * np.pi, nd + 1)
    coupling = rng.uniform(-1, 1) if nd > 1 else 0.0
    scale = amplitude / max(np.abs(poly).sum() + np.abs(trig).sum() + abs(coupling), 1e-300)
    poly, trig, coupling = poly * scale, trig * scale, coupling * scale
    if wrap_amplitude is not None:
        for a in np.flatnonzero(grid.periodic):
            poly[a] = 0.0
            freq[a] = 1
            trig[a] = np.clip(trig[a], -wrap_amplitude, wrap_amplitude)
        if nd > 1 and any(grid.periodic[:2]):
            coupling = float(np.clip(coupling, -wrap_amplitude, wrap_amplitude))

    def energy(*xs):
        u = unit(xs)
        out = 0.0
        for a in range(nd):
            out = out + poly[a, 0] * u[a] + poly[a, 1] * u[a] ** 2 + poly[a, 2] * u[a] ** 3
            out = out + trig[a] * np.sin(2 * np.pi * freq[a] * u[a] + phase[a])
        if nd > 1:
            out = out + coupling * np.sin(2 * np.pi * (u[0] + u[1]) + phase[nd])
        return out

    return energy


def _force(grid, rng, kind, magnitude):
    """A constant or a callable force with |F| ≤ `magnitude`."""
    nd = grid.ndim
    if kind == "constant":
        return list(rng.uniform(-magnitude, magnitude, nd))
    unit = _unit_coordinates(grid)
    offset = rng.uniform(-0.5, 0.5, nd) * magnitude
    wave = rng.uniform(-0.5, 0.5, nd) * magnitude
    k = rng.integers(-2, 3, (nd, nd))
    phase = rng.uniform(0, 2 * np.pi, nd)

    def force(*xs):
        u = unit(xs)
        return [
            offset[a]
            + wave[a] * np.sin(2 * np.pi * sum(k[a, b] * u[b] for b in range(nd)) + phase[a])
            for a in range(nd)
        ]

    return force


@st.composite
def boundaries(draw, grid):
    """Each side of each bounded axis reflecting or absorbing."""
    kinds = st.sampled_from(["reflecting", "absorbing"])
    return {
        name: (draw(kinds), draw(kinds))
        for name, periodic in zip(grid.names, grid.periodic)
        if not periodic
    }


@st.composite
def models(draw, max_dim=3, reversible=False, closed=False):
    """Random models; `reversible` leaves out forces and tilts, `closed` absorbing walls."""
    grid = draw(grids(max_dim))
    T = draw(st.floats(0.05, 5.0))
    rng = np.random.default_rng(draw(SEEDS))
    span = draw(st.floats(0.0, 40.0))  # range of E/T across the grid
    if draw(st.booleans()):
        energy = rng.uniform(0, span * T, grid.shape)
    else:
        energy = _callable_energy(grid, rng, 0.5 * span * T, T if reversible else None)
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

    force = None
    if not reversible:
        force_kind = draw(st.sampled_from([None, "constant", "callable"]))
        if force_kind is not None:
            # |F| L / T up to 20: as strong as the energy differences
            magnitude = draw(st.floats(0.0, 20.0)) * T / max(grid.lengths())
            force = _force(grid, rng, force_kind, magnitude)
    boundary = "reflecting" if closed else draw(boundaries(grid))
    return fp.FokkerPlanck(
        grid, energy=energy, temperature=T, mobility=mobility, force=force, boundary=boundary
    )


def dense(model):
    return model.generator().toarray()


def offdiag(L):
    return L - np.diag(np.diag(L))


def wall_outflow_rates(model):
    """r with Σ V (L p) = −Σ r p: the outflow of each cell through absorbing walls.

    Read from the wall faces of ``model.current`` (the scheme's flux at the
    walls) for p = 1, per unit density of the cell next to each wall.
    """
    g = model.grid
    current = model.current(np.ones(g.shape))
    rates = np.zeros(g.shape)
    for a, name in enumerate(g.names):
        if g.periodic[a]:
            continue
        J = current[f"J_{name}"].values * g.face_areas(a)
        n = g.shape[a]
        lower, upper = model.boundary.sides[a]
        index = [slice(None)] * g.ndim
        if lower == "absorbing":
            index[a] = slice(0, 1)
            rates[tuple(index)] -= np.take(J, [0], axis=a)  # flows towards −x
        if upper == "absorbing":
            index[a] = slice(n - 1, n)
            rates[tuple(index)] += np.take(J, [n], axis=a)
    return rates.ravel()


def next_to_absorbing_wall(model):
    g = model.grid
    mask = np.zeros(g.shape, dtype=bool)
    for a, (lower, upper) in enumerate(model.boundary.sides):
        index = [slice(None)] * g.ndim
        if lower == "absorbing":
            index[a] = 0
            mask[tuple(index)] = True
        if upper == "absorbing":
            index[a] = g.shape[a] - 1
            mask[tuple(index)] = True
    return mask.ravel()


def link_colours(grid):
    """Cell colours such that the two cells of every link differ (three suffice)."""
    colours = []
    for a, n in enumerate(grid.shape):
        c = np.arange(n) % 2
        if grid.periodic[a] and n % 2:
            c[-1] = 2  # the wrap link joins cells n − 1 and 0, both even
        colours.append(grid._along(a, c) * 3**a)
    return sum(np.broadcast_to(c, grid.shape) for c in colours)


@given(models())
def test_mass_balance_column_sums(model):
    """Σ V (L p) = −(outflow through absorbing walls) ≤ 0; zero with closed walls."""
    L = dense(model)
    V = model.grid.volumes.ravel()
    col = V @ L
    scale = V @ np.abs(L)
    rates = wall_outflow_rates(model)
    assert np.all(np.abs(col + rates) <= EPS * scale)
    wall = next_to_absorbing_wall(model)
    assert np.all(rates[~wall] == 0.0)  # reflecting walls: no flux at all
    assert np.all(rates[wall] > 0.0)
    assert np.all(col <= EPS * scale)  # mass never appears


@given(models())
def test_offdiagonals_nonnegative_and_diagonal_nonpositive(model):
    L = dense(model)
    assert offdiag(L).min() >= 0.0
    assert np.diag(L).max() <= 0.0


@given(models(reversible=True, closed=True))
def test_gibbs_state_is_exact_null_vector(model):
    assert model.reversible
    L = dense(model)
    q = model.equilibrium().values.ravel()
    assert np.sum(model.grid.volumes.ravel() * q) == pytest.approx(1.0, rel=1e-14)
    resid = L @ q
    scale = np.abs(L) @ q
    assert np.all(np.abs(resid) <= EPS * scale)
    # every face flux vanishes, not just their sum: each face's flux is the
    # difference of two terms, one from each of its cells; the cells of a
    # link have different colours, so the fluxes of q restricted to one
    # colour at a time are those terms.
    colour = link_colours(model.grid)
    fluxes = model.operator.face_fluxes(q)
    parts = [
        model.operator.face_fluxes(np.where(colour == c, q.reshape(colour.shape), 0.0))
        for c in np.unique(colour)
    ]
    for a, flux in enumerate(fluxes):
        fscale = sum(np.abs(part[a]) for part in parts)
        assert np.all(np.abs(flux) <= EPS * fscale)


@given(models(reversible=True, closed=True), SEEDS)
def test_free_energy_dissipation_semidiscrete(model, seed):
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.01, 2.0, model.grid.size)
    V = model.grid.volumes.ravel()
    phi = model.energy.ravel() + model.temperature * np.log(p)
    Lp = model.generator() @ p
    dF = np.sum(V * phi * Lp)
    assert dF <= EPS * np.sum(V * np.abs(phi) * np.abs(Lp))


@given(models(reversible=True))
def test_symmetric_form_is_similar_and_symmetric(model):
    assert model.reversible
    S = model.operator.symmetric.toarray()
    assert np.array_equal(S, S.T)
    d = np.exp(model.operator.symmetrizer)
    SL = d[:, None] * dense(model) / d[None, :]
    assert np.all(np.abs(SL - S) <= EPS * np.abs(S).max())


@given(models(max_dim=2), SEEDS)
def test_current_is_the_scheme_flux(model, seed):
    """The divergence of model.current(p) reproduces L p cell by cell, walls included."""
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
    assert np.all(np.abs(-div / g.volumes - Lp) <= EPS * scale)


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
    scale = (V @ np.abs(L)).reshape(g.shape)
    assert np.all(np.abs(col[1:]) <= EPS * scale[1:])
    assert np.all(col[0] < 0)
    # the outflow equals the wall current of model.current
    p = np.ones(g.shape)
    J = m.current(p)["J_x"].values
    outflow = -J[0] * g.face_areas(0)[0]
    np.testing.assert_allclose(-col[0] * p[0], outflow, rtol=1e-13)
    # Exact wall link T K A/(h/2) B(δ): δ = (E(0) − E(h/2))/T = −0.1, h/2 = 0.025
    z = (0.0 - 2 * 0.025) / 0.5
    expected = 0.5 * 1.0 * 0.2 / 0.025 * z / np.expm1(z)
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
    x = g.centers[0]
    F_eq = -0.8 * np.log(np.sum(g.volumes * np.exp(-0.5 * x**2 / 0.8)))  # −T ln Z_h
    assert m.relative_entropy(p) == pytest.approx((m.free_energy(p) - F_eq) / 0.8, rel=1e-12)
    assert m.free_energy(m.equilibrium()) == pytest.approx(F_eq, rel=1e-13)
    with pytest.raises(ValueError, match="non-negative"):
        m.free_energy(-p)

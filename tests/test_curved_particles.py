"""Particles on curved grids with any mobility: per-axis fields and full tensors.

The particle step of :class:`fpsolver.sampling.particles._CurvedDynamics`
against the grid solver through :func:`fpsolver.compare`, and its drift
terms against closed forms.

Statistics: each comparison tests Pearson's chi-square p-value at the two
saved times after the start at ALPHA = 1e-3, so a correct particle model
raises a false alarm with probability at most 2e-3 per test (the seeds are
fixed, so every test is deterministic). The power tests drop one term of
the drift (the wrong model) and require p < ALPHA at t = 0.4, where the
wrong models score p ≤ 1e-7 (the torus's ≈ 1e-4 at t = 0.2 is too close
to ALPHA to assert).
"""

from __future__ import annotations

import numpy as np
import pytest

import fpsolver as fp
from fpsolver.sampling import particles

ALPHA = 1e-3


def _p_values(model, p0, *, grid_model=None, monkeypatch=None, n=10_000, seed=0, **wrong):
    """Chi-square p-values of particles against the grid at t = 0.2 and 0.4.

    `wrong` (``divergence_term=False`` or ``metric_term=False``) swaps in
    the wrong particle model; `grid_model` (default `model`) is solved on
    the grid.
    """
    if wrong:
        monkeypatch.setattr(
            particles, "_dynamics_for", lambda m: particles._CurvedDynamics(m, **wrong)
        )
    parts = fp.simulate_particles(model, p0, n=n, t_end=0.4, dt=5e-3, save_every=0.2, seed=seed)
    ds = (grid_model or model).solve(p0, t_end=0.4, dt=0.01, save_every=0.2)
    return fp.compare(ds, parts)["p_value"].values[1:]


# -- the models: anisotropic tensors that vary in space -------------------------------
def _torus_mobility(theta, phi):
    """Frame components on the torus: anisotropic, off-diagonal, varying along both axes."""
    off = 0.3 * np.sin(phi)
    return [[1 + 0.5 * np.cos(theta), off], [off, 0.8 + 0.3 * np.sin(theta + phi)]]


def _torus():
    g = fp.Grid.torus(theta=16, phi=16, major=2.0, minor=1.0)
    m = fp.FokkerPlanck(
        g, energy=lambda theta, phi: np.cos(theta) + 0.5 * np.sin(phi), mobility=_torus_mobility
    )
    start = fp.FokkerPlanck(g, energy=lambda theta, phi: -1.5 * np.cos(theta - 1) - np.cos(phi))
    return m, start.equilibrium()


def _in_frame(M, phi):
    """Frame components Rᵀ M R of a Cartesian 2 × 2 tensor M (R = [ê_r, ê_φ])."""
    c, s = np.cos(phi), np.sin(phi)
    R = [[c, -s], [s, c]]
    return [
        [sum(R[i][a] * M[i][j] * R[j][b] for i in range(2) for j in range(2)) for b in range(2)]
        for a in range(2)
    ]


def _disc_mobility(r, phi):
    """A smooth Cartesian tensor field (smooth through the centre), in the polar frame."""
    x, y = r * np.cos(phi), r * np.sin(phi)
    off = 0.3 * np.sin(y)
    return _in_frame([[1 + 0.6 * np.tanh(x), off], [off, 0.8 + 0.4 * np.tanh(y)]], phi)


def _disc():
    g = fp.Grid.polar(r=(0, 3, 20), phi=20)
    m = fp.FokkerPlanck(
        g, energy=lambda r, phi: 0.5 * r**2, temperature=0.5, mobility=_disc_mobility
    )
    x, y = g.mesh()[0] * np.cos(g.mesh()[1]), g.mesh()[0] * np.sin(g.mesh()[1])
    bump = np.exp(-((x - 0.8) ** 2 + y**2) / 0.6)  # its mass crosses the centre
    return m, g.data_array(bump / np.sum(g.volumes * bump), "p")


BETA = 1.5


def _sphere_mobility(theta, phi):
    """K = P (I + β e_x e_xᵀ) P on the unit sphere, in the frame: smooth through the poles.

    Its covariant divergence is −3β n_x (P e_x) (see the closed-form test).
    """
    w0, w1 = np.cos(theta) * np.cos(phi), -np.sin(phi)
    return [[1 + BETA * w0 * w0, BETA * w0 * w1], [BETA * w0 * w1, 1 + BETA * w1 * w1]]


def _sphere():
    g = fp.Grid.sphere(n_theta=12, n_phi=12)
    m = fp.FokkerPlanck(
        g, energy=lambda theta, phi: -2.0 * np.cos(theta), mobility=_sphere_mobility
    )
    start = fp.FokkerPlanck(g, energy=lambda theta, phi: -2.0 * np.sin(theta) * np.cos(phi))
    return m, start.equilibrium()


def _curvilinear():
    """Elliptic-like coordinates h = (1, cosh u) with a per-axis mobility field."""
    g = fp.Grid.curvilinear(
        {"u": lambda u, v: 1 + 0 * u, "v": lambda u, v: np.cosh(u)},
        u=(-1, 1, 16),
        v=(0, 2 * np.pi, 16),
        periodic="v",
    )
    m = fp.FokkerPlanck(
        g,
        energy=lambda u, v: u**2 + 0.5 * np.cos(v),
        mobility=lambda u, v: [1 + 0.5 * np.tanh(2 * u), 0.6 + 0.3 * np.sin(v)],
    )
    start = fp.FokkerPlanck(g, energy=lambda u, v: 2 * (u - 0.5) ** 2 - np.sin(v))
    return m, start.equilibrium()


def _torus_cells():
    """The torus model with its tensor given as cell values (interpolated for the particles)."""
    m, p0 = _torus()
    K = np.array(_torus_mobility(*m.grid.mesh()))
    return fp.FokkerPlanck(m.grid, energy=m.energy_function, mobility=K), p0


def _sphere_per_axis():
    """Constant per-axis values k_θ ≠ k_φ (a frame tensor that is not smooth at the poles)."""
    m, p0 = _sphere()
    return fp.FokkerPlanck(
        m.grid, energy=lambda theta, phi: -np.cos(theta), mobility=(1.0, 2.0)
    ), p0


CASES = {
    "torus": _torus,
    "disc": _disc,
    "sphere": _sphere,
    "curvilinear": _curvilinear,
    "torus, cell values": _torus_cells,
    "sphere, per-axis constant": _sphere_per_axis,
}


# -- the drift terms against closed forms ----------------------------------------------
@pytest.mark.parametrize("kind", ["torus", "disc", "sphere", "curvilinear"])
def test_isotropic_mobility_reproduces_the_scalar_step(kind):
    """The general step with K = k·I is the closed-form scalar step, to rounding."""
    model, _ = CASES[kind]()
    model = fp.FokkerPlanck(model.grid, energy=model.energy_function, mobility=0.7)
    closed, general = particles._CurvedDynamics(model), particles._CurvedDynamics(model)
    assert closed.k == 0.7
    general.k, general._frame = None, particles._frame_field(model)
    rng = np.random.default_rng(1)
    pos = np.array([rng.uniform(e[0], e[-1], 2000) for e in model.grid.edges])
    noise = rng.standard_normal(pos.shape)
    a, b = pos.copy(), pos.copy()
    sa = closed.increment(a, noise.copy(), None, 0.01)
    sb = general.increment(b, noise.copy(), None, 0.01)
    d = np.abs(a - b)
    d[1] = np.minimum(d[1], 2 * np.pi - d[1])  # the angle, across its wrap
    assert d.max() < 1e-10  # central differences of a constant: rounding / step
    for x, y in zip(sa, sb):
        np.testing.assert_allclose(x, y, rtol=1e-10)


def test_sphere_divergence_is_the_covariant_one_and_finite_at_the_poles():
    """∇·K for K = P(I + β e_x e_xᵀ)P is −3β n_x P e_x, at the poles too."""
    model, _ = _sphere()
    dyn = particles._CurvedDynamics(model)
    th = np.array([1e-9, 1e-5, 0.3, 1.2, 2.0, np.pi - 1e-7])
    phi = np.array([0.1, 2.0, -1.0, 3.0, 0.5, 1.7])
    n_x = np.sin(th) * np.cos(phi)
    exact = -3 * BETA * n_x * np.array([np.cos(th) * np.cos(phi), -np.sin(phi)])
    np.testing.assert_allclose(dyn.sphere_divergence(th, phi), exact, rtol=0, atol=1e-8)
    # Away from the poles the chart drift (1/√g)∂_b(√g K^ab) equals ∇_b K^ab − Γ^a_bc S^bc
    # (Γ^θ_φφ = −sin θ cos θ, Γ^φ_θφ = cot θ), in frame components.
    pos = np.array([th[2:5], phi[2:5]])
    K, sqrt_g = dyn._coordinate_tensor(pos)
    chart = dyn._chart_divergence(pos, K, sqrt_g) / dyn.T
    t = pos[0]
    gamma = np.array([-np.sin(t) * np.cos(t) * K[1, 1], 2 / np.tan(t) * K[0, 1]])
    covariant = (chart + gamma) * np.array([np.ones_like(t), np.sin(t)])
    np.testing.assert_allclose(covariant, exact[:, 2:5], rtol=0, atol=1e-8)


# -- particles against the grid ---------------------------------------------------------
@pytest.mark.parametrize("kind", list(CASES))
def test_particles_agree_with_the_grid(kind):
    model, p0 = CASES[kind]()
    assert np.all(_p_values(model, p0) > ALPHA)


def _disc_with_rotation(r, phi):
    """`_disc_mobility` plus a(x) J, an antisymmetric part that varies in space."""
    K = _disc_mobility(r, phi)
    a = 0.8 * (1 + 0.4 * np.tanh(r * np.cos(phi)))
    return [[K[0][0], K[0][1] + a], [K[1][0] - a, K[1][1]]]


def test_antisymmetric_part_agrees_with_the_grid_on_the_disc():
    """A transient of K = S + A through the centre, against the grid's K = S + A.

    (Particles that ignore A score p ≈ 1e-32 here.)
    """
    m, p0 = _disc()
    m = fp.FokkerPlanck(
        m.grid, energy=m.energy_function, temperature=0.5, mobility=_disc_with_rotation
    )
    assert m.has_antisymmetric
    assert np.all(_p_values(m, p0) > ALPHA)


def test_antisymmetric_part_keeps_the_gibbs_state_on_the_sphere():
    """K = S + a(x) J: the Gibbs density of E stays put for any antisymmetric part.

    The grid solves the symmetric part alone (the same stationary state);
    the particles need T ∇·A (a varies) to keep it.
    """
    g = fp.Grid.sphere(n_theta=12, n_phi=12)

    def full(theta, phi):
        K = _sphere_mobility(theta, phi)
        a = 1.2 * (1 + 0.5 * np.sin(theta) * np.cos(phi))
        return [[K[0][0], K[0][1] + a], [K[1][0] - a, K[1][1]]]

    def energy(theta, phi):
        return -2.0 * np.cos(theta) + np.sin(theta) * np.sin(phi)

    m = fp.FokkerPlanck(g, energy=energy, mobility=full)
    sym = fp.FokkerPlanck(g, energy=energy, mobility=_sphere_mobility)
    assert m.has_antisymmetric
    assert np.all(_p_values(m, sym.equilibrium(), grid_model=sym) > ALPHA)


# -- power: the wrong models are rejected -------------------------------------------------
@pytest.mark.parametrize(
    ("kind", "wrong"),
    [
        ("torus", {"divergence_term": False}),
        ("torus", {"metric_term": False}),
        ("disc", {"divergence_term": False}),
        ("sphere", {"divergence_term": False}),
        ("sphere", {"metric_term": False}),
    ],
    ids=[
        "torus-divergence",
        "torus-metric",
        "disc-divergence",
        "sphere-divergence",
        "sphere-metric",
    ],
)
def test_dropping_a_drift_term_is_rejected(kind, wrong, monkeypatch):
    model, p0 = CASES[kind]()
    assert _p_values(model, p0, monkeypatch=monkeypatch, **wrong)[-1] < ALPHA


# -- errors ---------------------------------------------------------------------------------
def test_a_mobility_that_is_not_positive_definite_between_cells_is_refused():
    g = fp.Grid.torus(theta=8, phi=8, major=2.0, minor=1.0)
    m = fp.FokkerPlanck(g, energy=0.0, mobility=_torus_mobility)
    dyn = particles._CurvedDynamics(m)
    dyn._frame = lambda pts: np.broadcast_to(
        np.array([[1.0, 2.0], [2.0, 1.0]])[:, :, None], (2, 2, 3)
    )
    with pytest.raises(ValueError, match="positive definite"):
        dyn.increment(np.zeros((2, 3)), np.zeros((2, 3)), None, 0.01)


def _sphere_with_rotation(theta, phi):
    """`_sphere_mobility` plus a(x) J, an antisymmetric part that varies in space."""
    K = _sphere_mobility(theta, phi)
    a = 1.2 * (1 + 0.5 * np.sin(theta) * np.cos(phi))
    return [[K[0][0], K[0][1] + a], [K[1][0] - a, K[1][1]]]


def test_antisymmetric_transient_agrees_with_the_grid_on_the_sphere():
    """A transient of K = S + A across the poles, against the grid's K = S + A (24 × 24).

    (On 12 × 12 the grid's own error is visible to 40 000 particles; particles
    that ignore A are rejected here.)
    """
    g = fp.Grid.sphere(n_theta=24, n_phi=24)
    p0 = fp.FokkerPlanck(g, energy=lambda theta, phi: -2.0 * np.sin(theta) * np.cos(phi))
    p0 = p0.equilibrium()

    def energy(theta, phi):
        return -2.0 * np.cos(theta)

    full = fp.FokkerPlanck(g, energy=energy, mobility=_sphere_with_rotation)
    assert full.has_antisymmetric
    assert np.all(_p_values(full, p0, n=40_000) > ALPHA)
    without_a = fp.FokkerPlanck(g, energy=energy, mobility=_sphere_mobility)
    parts = fp.simulate_particles(
        without_a, p0, n=20_000, t_end=0.4, dt=5e-3, save_every=0.2, seed=0
    )
    ds = full.solve(p0, t_end=0.4, dt=0.01, save_every=0.2)
    assert fp.compare(ds, parts)["p_value"].values[-1] < ALPHA

"""Separable models: Kronecker-sum generator, exact propagation, fast solves, the stepper.

The generator of a separable model must equal the Kronecker sum of the
one-axis generators to rounding (non-uniform axes, a periodic axis with a
tilt, absorbing sides); the exact propagator must agree with
``expm_multiply`` and keep mass, positivity and the Gibbs density; the
fast-diagonalisation solver must agree with ``spsolve``; and
``method="separable"`` must reproduce ``method="exponential"`` and, on
benchmark problem P4, the exact Ornstein–Uhlenbeck Gaussian up to the
spatial error.
"""

import numpy as np
import pytest
import scipy.sparse as sp
from helpers import l1
from scipy.sparse.linalg import expm_multiply, spsolve

import fpsolver as fp
from fpsolver.core.analytic import ou_density
from fpsolver.core.threads import limit_threads
from fpsolver.discrete.separable import (
    SeparableGenerator,
    along_axes,
    factorize,
    from_generator,
    restrict,
)
from fpsolver.integrate.steppers import EXACT, METHODS, TRBDF2, make_stepper


@pytest.fixture(autouse=True)
def _one_thread():
    """Dense products on one BLAS thread, as in a solve: a shared machine stays fast."""
    with limit_threads(1):
        yield


def _edges(rng, lower, upper, n):
    """Non-uniform edges: n cells of random widths (ratio up to ~10)."""
    w = rng.uniform(0.2, 2.0, n)
    return lower + (upper - lower) * np.concatenate([[0.0], np.cumsum(w) / w.sum()])


def _cases():
    rng = np.random.default_rng(7)
    out = {}
    out["1d-absorbing"] = fp.FokkerPlanck(
        fp.Grid(x=_edges(rng, -2, 2, 15)),
        lambda x: x**4 - x**2,
        0.7,
        boundary={"x": ("absorbing", "reflecting")},
    )
    out["2d-tilt-force"] = fp.FokkerPlanck(
        fp.Grid(x=_edges(rng, -2, 2, 11), th=(0, 1, 9), periodic="th"),
        lambda x, th: x**2 + np.cos(2 * np.pi * th),
        0.5,
        force=(0.0, 1.5),
        mobility=lambda x, th: (1 + x**2, 2 + np.sin(2 * np.pi * th)),
    )
    out["2d-tilt-energy"] = fp.FokkerPlanck(
        fp.Grid(x=_edges(rng, -2, 2, 10), th=(0, 1, 8), periodic="th"),
        lambda x, th: x**2 + np.cos(2 * np.pi * th) - 0.8 * th,
        0.5,
    )
    out["3d-absorbing"] = fp.FokkerPlanck(
        fp.Grid(x=_edges(rng, -2, 2, 7), y=_edges(rng, -1, 1, 6), z=(0, 1, 5), periodic="z"),
        lambda x, y, z: x**2 + 0.5 * y**2 + np.sin(2 * np.pi * z),
        1.0,
        boundary={"x": "absorbing", "y": ("reflecting", "absorbing")},
        mobility=(1.0, 2.0, 0.5),
    )
    g = fp.Grid(x=_edges(rng, -2, 2, 7), y=_edges(rng, -1, 1, 6), z=_edges(rng, 0, 1, 5))
    X, Y, Z = g.mesh()
    out["3d-array-force"] = fp.FokkerPlanck(
        g, X**2 + np.exp(Y) + Z**3, 0.8, boundary={"z": "absorbing"}, force=(0.3, -0.2, 1.0)
    )
    return out


CASES = _cases()


def _rel(a, b):
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


# -- the Kronecker-sum identity ------------------------------------------------
@pytest.mark.parametrize("name", CASES)
def test_generator_is_the_kronecker_sum_of_the_one_axis_generators(name):
    model = CASES[name]
    op = fp.discretize(model)
    sep = op.separable
    assert isinstance(sep, SeparableGenerator) and sep.shape == model.grid.shape
    L, K = op.generator, sep.kron_sum()
    assert (abs(K) > 0).nnz == (abs(L) > 0).nnz  # the same pattern
    diff = abs(K - L).tocoo()
    scale = np.asarray(abs(L)[diff.row, diff.col]).ravel()
    assert np.all(diff.data <= 1e-13 * scale), float(np.max(diff.data / scale))
    for a, f in enumerate(sep.factors):  # built by the one-axis machinery
        one = fp.discretize(restrict(model, a)).generator.toarray()
        np.testing.assert_array_equal(f.generator, one)
        assert f.closed == ("absorbing" not in model.boundary.sides[a])


@pytest.mark.parametrize("name", CASES)
def test_unassembled_product_is_the_generators_and_is_the_steppers_L(name):
    model = CASES[name]
    op = fp.discretize(model)
    p = np.random.default_rng(3).random(model.grid.size)
    Lp = op.generator @ p
    scale = float(np.max(np.abs(Lp)))
    assert np.max(np.abs(op.separable.apply(p) - Lp)) <= 1e-13 * scale
    shaped = op.separable.apply(p.reshape(model.grid.shape))
    assert shaped.shape == model.grid.shape
    stepper = make_stepper("separable", model)
    assert stepper.L.shape == op.generator.shape
    assert np.max(np.abs(stepper.L @ p - Lp)) <= 1e-13 * scale
    with pytest.raises(ValueError, match="values; the grid has"):
        op.separable.apply(p[:-1])


@pytest.mark.parametrize("name", CASES)
def test_factors_read_off_the_assembled_generator_agree(name):
    model = CASES[name]
    op = fp.discretize(model)
    found = from_generator(op.generator, model.grid.volumes)
    assert found is not None
    assert abs(found.kron_sum() - op.generator).max() <= 1e-13 * abs(op.generator).max()
    assert [f.closed for f in found.factors] == [f.closed for f in op.separable.factors]
    p = np.random.default_rng(1).random(model.grid.shape)
    assert _rel(found.propagate(p, 0.3), op.separable.propagate(p, 0.3)) < 1e-12


def _grid2():
    return fp.Grid(x=(-2, 2, 8), y=(-2, 2, 7))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"energy": lambda x, y: x**2 + y**2 + 0.3 * x * y},  # coupled energy
        {"energy": lambda x, y: x**2, "mobility": lambda x, y: 1 + x**2 + y**2},  # K_x(y)
        {"energy": 0.0, "force": lambda x, y: (-y, x)},  # rotational force
        {"energy": 0.0, "force": lambda x, y: (np.sin(x), x * y)},  # F_y depends on x
        {"energy": 0.0, "mobility": np.stack([np.tile(np.arange(1, 8.0), (8, 1)),
                                              np.ones((8, 7))])},  # array mobility K_x(y)
    ],
)  # fmt: skip
def test_detection_says_none_for_coupled_models(kwargs):
    model = fp.FokkerPlanck(_grid2(), **kwargs)
    op = fp.discretize(model)
    assert op.separable is None
    assert from_generator(op.generator, model.grid.volumes) is None
    with pytest.raises(ValueError, match="needs a separable model"):
        make_stepper("separable", model)


def test_own_axis_callable_fields_are_separable():
    g = _grid2()
    model = fp.FokkerPlanck(
        g,
        lambda x, y: x**2 + np.cosh(y),
        force=lambda x, y: (np.sin(x), np.full_like(y, 0.5)),
        mobility=lambda x, y: (1 + x**2, np.exp(-(y**2))),
    )
    op = fp.discretize(model)
    assert op.separable is not None and not op.reversible
    assert abs(op.separable.kron_sum() - op.generator).max() <= 1e-13 * abs(op.generator).max()


def test_tiny_coupling_is_rounding_and_large_axes_are_left_to_sparse_methods():
    g = _grid2()
    assert factorize(fp.FokkerPlanck(g, lambda x, y: x**2 + y**2 + 1e-15 * x * y)) is not None
    assert factorize(fp.FokkerPlanck(fp.Grid(x=(0, 1, 5000)), 0.0)) is None


# -- exact propagation -------------------------------------------------------
@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("t", [0.01, 0.5, 3.0])
def test_exact_propagation_matches_expm_multiply(name, t):
    model = CASES[name]
    op = fp.discretize(model)
    p = np.random.default_rng(3).random(model.grid.size)
    ref = expm_multiply(t * op.generator, p)
    got = op.separable.propagate(p, t)
    assert got.shape == p.shape
    assert _rel(got, ref) < 1e-12


def _closed3d():
    g = fp.Grid(x=(-2, 2, 14), y=np.linspace(-2, 2, 11) ** 3 / 4, z=(0, 1, 9), periodic="z")
    return fp.FokkerPlanck(g, lambda x, y, z: (x**2 - 1) ** 2 + y**2 + np.cos(2 * np.pi * z), 0.6)


@pytest.mark.parametrize("t", [1e-4, 1.0, 1e3, 1e8])
def test_mass_positivity_and_gibbs_are_kept_to_rounding(t):
    model = _closed3d()
    op = fp.discretize(model)
    V = model.grid.volumes
    p0 = np.random.default_rng(4).random(model.grid.shape) ** 8  # spiky, many near-zeros
    p0 /= np.sum(V * p0)
    p = op.separable.propagate(p0, t)
    assert abs(np.sum(V * p) - 1.0) < 1e-13
    assert p.min() >= -1e-14 * p.max()  # in fact exactly non-negative:
    assert p.min() >= 0.0
    q = np.exp(op.log_equilibrium)
    assert _rel(op.separable.propagate(q, t), q) < 1e-12
    if t >= 1e3:  # relaxed: the Gibbs density, to rounding
        assert _rel(p, q) < 1e-12


def test_gibbs_state_is_the_product_of_the_one_axis_ones():
    model = _closed3d()
    op = fp.discretize(model)
    q = np.ones(model.grid.shape)
    for a in range(model.grid.ndim):
        qa = fp.discretize(restrict(model, a)).stationary_density
        q = q * qa.reshape([-1 if b == a else 1 for b in range(3)])
    assert _rel(q, np.exp(op.log_equilibrium)) < 1e-12


def test_absorbing_walls_lose_mass_monotonically():
    model = CASES["3d-absorbing"]
    sep = fp.discretize(model).separable
    V = model.grid.volumes
    p = np.full(model.grid.shape, 1.0 / V.sum())
    masses = []
    for _ in range(6):
        p = sep.propagate(p, 0.2)
        masses.append(float(np.sum(V * p)))
        assert p.min() >= 0.0
    assert np.all(np.diff(masses) < 0) and masses[0] < 1.0


def test_along_axes_is_the_kronecker_product():
    rng = np.random.default_rng(5)
    mats = [rng.random((n, n)) for n in (3, 4, 5)]
    p = rng.random((3, 4, 5))
    kron = np.kron(np.kron(mats[0], mats[1]), mats[2])
    np.testing.assert_allclose(along_axes(mats, p).ravel(), kron @ p.ravel(), rtol=1e-13)


def test_identical_axes_share_one_propagator_and_steps_share_a_cache():
    g = fp.Grid(x=(-5, 5, 12), y=(-5, 5, 12), z=(-5, 5, 12))
    sep = fp.discretize(fp.FokkerPlanck(g, lambda x, y, z: (x**2 + y**2 + z**2) / 2)).separable
    p = np.ones(g.shape)
    sep.propagate(p, 0.1)
    assert sep.decompositions == 1
    sep.propagate(p, 0.1 * (1 + 1e-15))  # rounding-level difference: same propagator
    assert sep.decompositions == 1
    sep.propagate(p, 0.2)
    assert sep.decompositions == 2


# -- implicit solves by fast diagonalisation --------------------------------
@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("c", [1e-3, 0.3, 1e4])
def test_fast_diagonalisation_matches_spsolve(name, c):
    model = CASES[name]
    op = fp.discretize(model)
    lin = op.separable.solver()
    assert lin.kind == "separable" and lin.iterations == 0
    b = np.random.default_rng(6).random(model.grid.size)
    A = sp.csc_array(sp.identity(model.grid.size) - c * op.generator)
    x = lin.solve(c, b)
    assert _rel(x, spsolve(A, b)) < (1e-11 if c < 1 else 1e-10)  # both lose digits when stiff
    if op.separable.closed:  # Vᵀ L = 0: the step keeps the mass, to rounding
        V = model.grid.volumes.ravel()
        assert abs(V @ x - V @ b) <= 1e-14 * (V @ b)


def test_separable_solver_drives_an_implicit_stepper():
    model = _closed3d()
    op = fp.discretize(model)
    p0 = fp.gaussian(model.grid, (1.0, 0.0, 0.5), 0.1).values.ravel()
    fast = TRBDF2(op.generator, op.separable.solver())
    slow = TRBDF2(op.generator)
    a, b = p0, p0
    for _ in range(5):
        a, b = fast.step(a, 0.05), slow.step(b, 0.05)
    assert _rel(a, b) < 1e-11
    assert fast.factorizations == 3  # one eigendecomposition an axis, reused by every step


def test_solver_refuses_an_ill_conditioned_basis():
    model = fp.FokkerPlanck(fp.Grid(x=(-3, 3, 40), y=(-1, 1, 5)), lambda x, y: 20 * x**2 + y)
    lin = fp.discretize(model).separable.solver()
    with pytest.raises(ValueError, match="axis 'x'.*condition number"):
        lin.solve(0.1, np.ones(200))


# -- the stepper -----------------------------------------------------------------
def test_stepper_is_registered_exact_and_needs_no_dt():
    cls = METHODS["separable"]
    assert cls.order == EXACT and cls.adaptive and not cls.uses_linear_solver


@pytest.mark.parametrize("name", ["2d-tilt-force", "3d-absorbing", "3d-array-force"])
def test_solve_with_method_separable_matches_exponential(name):
    model = CASES[name]
    p0 = np.random.default_rng(8).random(model.grid.shape) + 0.1
    p0 /= np.sum(model.grid.volumes * p0)
    ds = fp.solve(model, p0, 1.0, method="separable", save_every=0.25)
    ref = fp.solve(model, p0, 1.0, dt=0.25, method="exponential")
    np.testing.assert_array_equal(ds.time.values, [0.0, 0.25, 0.5, 0.75, 1.0])
    np.testing.assert_array_equal(ds.time.values, ref.time.values)
    assert _rel(ds.p.values, ref.p.values) < 1e-10
    assert ds.attrs["steps"] == 4 and ds.attrs["linear_solver"] == "separable"
    assert ds.attrs["factorizations"] <= model.grid.ndim  # one distinct step
    if not model.boundary.absorbing:
        np.testing.assert_allclose(ds.mass.values, ds.mass.values[0], rtol=1e-13)


def test_solve_to_equilibrium_with_method_separable():
    model = _closed3d()
    p0 = fp.gaussian(model.grid, (1.0, 0.0, 0.5), 0.1)
    ds = fp.solve(model, p0, "equilibrium", method="separable", tol=1e-10)
    assert ds.attrs["converged"] == 1
    steps = np.diff(ds.time.values)
    np.testing.assert_allclose(steps[1:] / steps[:-1], 2.0)  # dt0·2^k
    assert _rel(ds.p[-1].values, np.exp(fp.discretize(model).log_equilibrium)) < 1e-4


def test_stepper_state_round_trips():
    model = _closed3d()
    s = make_stepper("separable", model)
    p = np.ones(model.grid.size) / model.grid.volumes.sum()
    t = 0.0
    for _ in range(3):
        t, p = s.step_to(t, p, np.inf)
    other = make_stepper("separable", model)
    other.set_state(s.get_state())
    assert other.level == 3 and other.steps == 3
    assert other.step_to(t, p, np.inf)[0] == s.step_to(t, p, np.inf)[0]


# -- benchmark problem P4 -------------------------------------------------------
def _p4(n):
    g = fp.Grid(x=(-5, 5, n), y=(-5, 5, n), z=(-5, 5, n))
    return fp.FokkerPlanck(g, energy=lambda x, y, z: (x**2 + y**2 + z**2) / 2, temperature=1.0)


def test_p4_error_is_the_spatial_one():
    """3-D OU, E = |x|²/2 on [−5, 5]³, p0 = N((1, 1, 1), 0.25 I), t = 1.

    TR-BDF2 (solving with the fast-diagonalisation solver) converges to the
    separable result at second order in dt, so the separable result is the
    dt → 0 limit on this grid; its distance to the exact Gaussian is the
    spatial error, which falls at second order in h.
    """
    model = _p4(32)
    g = model.grid
    p0 = fp.gaussian(g, (1, 1, 1), 0.25).values
    exact = ou_density(g, 1.0, 1.0, [1, 1, 1], 0.25, 1.0)
    ds = fp.solve(model, p0, 1.0, method="separable", save_at=[])
    p = ds.p[-1].values
    op = fp.discretize(model)
    gaps = []
    for dt in (0.05, 0.025):
        s = TRBDF2(op.generator, op.separable.solver())
        q = p0.ravel()
        for _ in range(round(1.0 / dt)):
            q = s.step(q, dt)
        gaps.append(l1(g, q.reshape(g.shape), p))
        assert abs(l1(g, q.reshape(g.shape), exact) - l1(g, p, exact)) <= gaps[-1]
    assert 3.6 < gaps[0] / gaps[1] < 4.4, gaps  # TR-BDF2's time error, order 2
    assert gaps[1] < 1e-4 < 5e-3 < l1(g, p, exact) < 1.1e-2  # the spatial error dominates
    errors = []
    for n in (16, 32, 64):  # spatial order: the separable path needs no N-D generator
        m = _p4(n)
        q = m.operator.separable.propagate(fp.gaussian(m.grid, (1, 1, 1), 0.25).values, 1.0)
        errors.append(l1(m.grid, q, ou_density(m.grid, 1.0, 1.0, [1, 1, 1], 0.25, 1.0)))
    assert 1.7 < np.log2(errors[1] / errors[2]) < 2.3, errors
    assert p.min() >= 0.0


def test_global_control_runs_on_the_separable_solver_stand_in():
    """The stand-in has LinearSolver's interface, solve_error included (direct: 0)."""
    from fpsolver.integrate.steppers import PILOT_STEPS, AdaptiveTRBDF2

    g = fp.Grid(x=(-3, 3, 16), y=(-3, 3, 12))
    op = fp.discretize(fp.FokkerPlanck(g, lambda x, y: x**2 / 2 + y**2))
    lin = op.separable.solver()
    lin.set_volumes(g.volumes)
    s = AdaptiveTRBDF2(op.generator, lin, volumes=g.volumes, rtol=None)
    s.plan(1.0)
    t, p = 0.0, fp.gaussian(g, (1, 0), 0.2).values.ravel()
    while t < 1.0:
        t, p = s.step_to(t, p, 1.0)
    exact = op.separable.propagate(fp.gaussian(g, (1, 0), 0.2).values.ravel(), 1.0)
    assert float(g.volumes.ravel() @ np.abs(p - exact)) <= s.time_error_target
    assert lin.solve_error == 0.0 and "linear_rtol" not in s.get_state()
    # a direct solver: the short trial of a factorisation, not the iterative one
    assert s.rejected_steps in (0, PILOT_STEPS)
    assert (s.rejected_steps or s.steps) == PILOT_STEPS, (s.steps, s.rejected_steps)

"""Iterative solvers for 3-D grids: the default is the measured best, and it is right.

The choice of default (plain CG with projected warm starts, L¹ tolerance
1e-7) and the crossovers come from ``benchmarks/solvers3d.py``; these tests
pin that choice, check that it meets its tolerance and keeps mass and
positivity, that warm starts and hierarchy reuse happen, that
non-reversible models get an iterative solver that agrees with LU, and that
large stationary problems take the iterative null-vector path.
"""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.sparse.linalg import splu

import fpsolver as fp
import fpsolver.discrete.linsolve as ls
from fpsolver.core.analytic import ou_density
from fpsolver.discrete import nullspace
from fpsolver.discrete.linsolve import LinearSolver, choose_linear_solver, lu_cost_estimate
from fpsolver.integrate.steppers import TRBDF2

pytest.importorskip("pyamg")

DT = 0.05
C = 0.5 * (2 - np.sqrt(2)) * DT  # the TR-BDF2 coefficient of P4


def _cube(n, lo=-5.0, hi=5.0):
    return fp.Grid(x=(lo, hi, n), y=(lo, hi, n), z=(lo, hi, n))


def _p4(n):
    return fp.FokkerPlanck(_cube(n), energy=lambda x, y, z: (x**2 + y**2 + z**2) / 2)


def _rotating(n):
    return fp.FokkerPlanck.from_drift(_cube(n), lambda x, y, z: (-x - y, x - y, -z))


def _exact(op, c, b):
    A = sp.csc_matrix(sp.identity(op.grid.size) - c * op.generator)
    return splu(A).solve(b)


def _l1(V, a):
    return float(V @ np.abs(a))


# -- the choice ---------------------------------------------------------------------
def test_default_for_reversible_3d_is_the_measured_best():
    """Above the crossover: plain CG (no preconditioner), projected warm start, 1e-7."""
    op = fp.discretize(_p4(12))
    assert op.grid.size > ls.AUTO_ITERATIVE_SIZE
    assert choose_linear_solver(op) == "cg"
    lin = LinearSolver.for_model(op)
    assert lin.kind == "cg" and lin.preconditioner is None
    assert lin.rtol == ls.DEFAULT_RTOL == 1e-7
    assert lin._history.size == ls.HISTORY == 4


def test_a_tensor_mobility_gets_jacobi_cg_that_agrees_with_lu():
    """Full tensors: CG with Jacobi scaling (module notes), to the solver's L¹ tolerance."""
    g = fp.Grid(x=(-2, 2, 11), y=(-2, 2, 10), z=(-2, 2, 12))
    S = [[1.0, 0.3, 0.1], [0.3, 0.5, -0.1], [0.1, -0.1, 0.2]]
    op = fp.discretize(fp.FokkerPlanck(g, lambda x, y, z: x**2 + 0.5 * y**2 + z**2, mobility=S))
    lin = LinearSolver.for_model(op)
    assert lin.kind == "cg" and lin.preconditioner == "jacobi"
    b = np.exp(-(g.mesh()[0] ** 2)).ravel()
    c = 0.05
    x = lin.solve(c, b)
    exact = splu(sp.csc_matrix(sp.identity(g.size) - c * op.generator)).solve(b)
    assert np.sum(np.abs(x - exact)) <= ls.DEFAULT_RTOL * np.sum(np.abs(b))


def test_lu_stays_for_1d_2d_and_small_3d():
    big2d = fp.FokkerPlanck(fp.Grid(x=(-1, 1, 200), y=(-1, 1, 200)), energy=0.0)
    assert choose_linear_solver(big2d) == "lu"
    assert choose_linear_solver(fp.FokkerPlanck(fp.Grid(x=(-1, 1, 10**4)), energy=0.0)) == "lu"
    assert choose_linear_solver(_p4(10)) == "lu"  # 1 000 cells: the largest LU grid
    drift = fp.FokkerPlanck.from_drift(fp.Grid(x=(-1, 1, 60), y=(-1, 1, 60)), (1.0, 0.0))
    assert choose_linear_solver(drift) == "lu"


def test_a_2d_grid_too_large_for_lu_is_solved_iteratively_with_a_warning(monkeypatch):
    """The LU estimate (100·log2 N bytes a cell) against half of the available memory."""
    measured = 1746 * 2**20  # P5 at 1024², benchmarks/lu_memory.md
    assert 0.8 < measured / ls.lu_2d_bytes(1024**2) < 1.0
    model = fp.FokkerPlanck(fp.Grid(x=(-2, 2, 40), y=(-2, 2, 40)), lambda x, y: x**2 + y**4)
    drift = fp.FokkerPlanck.from_drift(model.grid, lambda x, y: (-x - y, x - y))
    p0 = fp.gaussian(model.grid, (0.5, 0.0), 0.1)
    lu = model.solve(p0, 0.5, dt=0.05, method="tr_bdf2", save_at=[])
    monkeypatch.setattr(ls, "available_memory", lambda: 2 * ls.lu_2d_bytes(1600) - 1)
    with pytest.warns(RuntimeWarning, match=r"40×40 grid would need about .*='cg' instead"):
        assert choose_linear_solver(model) == "cg"
    with pytest.warns(RuntimeWarning, match="='bicgstab' instead"):
        assert choose_linear_solver(drift) == "bicgstab"
    with pytest.warns(RuntimeWarning, match="='cg' instead"):
        ds = model.solve(p0, 0.5, dt=0.05, method="tr_bdf2", save_at=[])
    assert ds.attrs["linear_solver"] == "cg"
    V = model.grid.volumes.ravel()
    assert _l1(V, (ds.p[-1] - lu.p[-1]).values.ravel()) < 1e-6  # 20 solves of rtol 1e-7
    monkeypatch.setattr(ls, "available_memory", lambda: 2 * ls.lu_2d_bytes(1600))
    assert choose_linear_solver(model) == "lu"  # fits: no warning (errors in this suite)
    monkeypatch.setattr(ls, "available_memory", lambda: None)
    assert choose_linear_solver(model) == "lu"  # unknown: as before


def test_non_reversible_3d_gets_bicgstab_and_errors_name_the_choices():
    model = _rotating(12)
    assert choose_linear_solver(model) == "bicgstab"
    assert LinearSolver.for_model(model).kind == "bicgstab"
    with pytest.raises(ValueError, match="reversible models .* use 'bicgstab' or 'lu'"):
        choose_linear_solver(model, "cg")
    with pytest.raises(
        ValueError, match=r"`linear_solver` must be one of .*'bicgstab'.* got 'gmres'"
    ):
        choose_linear_solver(model, "gmres")
    L = fp.discretize(model).generator
    with pytest.raises(ValueError, match="`rtol` must be in \\(0, 1\\), got 2"):
        LinearSolver(L, "bicgstab", rtol=2)
    with pytest.raises(ValueError, match="`preconditioner` must be None, 'jacobi' or 'chebyshev'"):
        LinearSolver(L, "bicgstab", preconditioner="jacobi")


def test_forcing_lu_on_a_huge_3d_grid_warns_with_an_estimate():
    nbytes, seconds = lu_cost_estimate(96**3)
    assert nbytes > 20 * 2**30 and seconds > 1800
    with pytest.warns(
        RuntimeWarning, match=r"linear_solver='lu' on a 3-D grid of 110,592 cells.*GiB"
    ):
        LinearSolver.for_model(_p4(48), "lu")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        LinearSolver.for_model(_p4(16), "lu")  # 0.14 s: no warning


# -- it is right ----------------------------------------------------------------------
@pytest.mark.parametrize("rtol", [1e-5, 1e-7, 1e-10])
def test_default_reaches_the_requested_l1_tolerance(rtol):
    """Σ V|x − x*| ≤ rtol Σ V|b|: the bound the L¹ stopping test guarantees."""
    op = fp.discretize(_p4(14))
    V = op.grid.volumes.ravel()
    b = np.random.default_rng(1).random(op.grid.size)
    lin = LinearSolver.for_model(op, rtol=rtol)
    lin.set_volumes(V)
    x = lin.solve(C, b, conserve=False)
    assert _l1(V, x - _exact(op, C, b)) <= rtol * _l1(V, b)
    assert lin.iterations > 0


def test_p4_keeps_mass_and_positivity_and_matches_a_tight_solve():
    """P4 at 24³, 20 TR-BDF2 steps with the default: mass to rounding, min p ≥ −1e-15."""
    model = _p4(24)
    V = model.grid.volumes.ravel()
    p0 = fp.gaussian(model.grid, (1, 1, 1), 0.25)
    ds = fp.solve(model, p0, 1.0, dt=DT, method="tr_bdf2", save_at=[], linear_rtol=None)
    assert ds.attrs["linear_solver"] == "cg"
    p = ds.p[-1].values.ravel()
    assert abs(float(V @ p) - 1.0) < 1e-13
    assert p.min() >= -1e-15
    tight = fp.solve(model, p0, 1.0, dt=DT, method="tr_bdf2", save_at=[], linear_rtol=1e-12)
    q = tight.p[-1].values.ravel()
    assert _l1(V, p - q) <= 40 * ls.DEFAULT_RTOL  # at most rtol per solve
    exact = ou_density(model.grid, 1.0, 1.0, [1, 1, 1], 0.25, 1.0).ravel()
    assert abs(_l1(V, p - exact) - _l1(V, q - exact)) < 1e-3 * _l1(V, q - exact)


# -- warm starts and reuse ---------------------------------------------------------
def _march(lin, op, steps=12):
    lin.set_volumes(op.grid.volumes)
    stepper = TRBDF2(op.generator, lin, dt=DT)
    p = fp.gaussian(op.grid, (1, 1, 1), 0.25).values.ravel()
    for _ in range(steps):
        p = stepper.step(p, DT)
    return p


def test_projected_warm_start_saves_iterations():
    op = fp.discretize(_p4(16))
    kw = dict(symmetric=op.symmetric, log_scale=op.symmetrizer)
    projected = LinearSolver(op.generator, "cg", **kw)
    previous = LinearSolver(op.generator, "cg", history=0, **kw)
    p1, p2 = _march(projected, op), _march(previous, op)
    assert projected._history.count == 4 and previous._history.count == 0
    assert projected.iterations < 0.9 * previous.iterations
    assert _l1(op.grid.volumes.ravel(), p1 - p2) < 24 * 2 * ls.DEFAULT_RTOL


def test_amg_hierarchy_is_built_once_and_reused_within_a_factor_two():
    op = fp.discretize(_p4(12))
    lin = LinearSolver.for_model(op, "amg")
    b = fp.gaussian(op.grid, (1, 1, 1), 0.25).values.ravel()
    for c in (0.1, 0.15, 0.06, 0.1):
        lin.solve(c, b)
    assert lin.hierarchies == 1 and lin.factorizations == 3  # three matrices, one hierarchy
    lin.solve(0.25, b)  # more than twice the c the hierarchy was built for
    assert lin.hierarchies == 2
    _march(lin, op, steps=3)
    assert lin.hierarchies == 3  # the time steps' c, 40 times smaller, gets its own


# -- non-reversible: BiCGStab agrees with LU ------------------------------------------
def test_bicgstab_agrees_with_lu_on_a_rotating_drift():
    model = _rotating(12)
    V = model.grid.volumes.ravel()
    p0 = fp.gaussian(model.grid, (1, 1, 1), 0.25)
    args = dict(dt=DT, method="tr_bdf2", save_at=[])
    lu = fp.solve(model, p0, 0.5, linear_solver="lu", **args).p[-1].values.ravel()
    rtol = 1e-9
    it = fp.solve(model, p0, 0.5, linear_solver="auto", linear_rtol=rtol, **args)
    assert it.attrs["linear_solver"] == "bicgstab"
    p = it.p[-1].values.ravel()
    assert _l1(V, p - lu) <= 20 * rtol  # ten steps, two solves each, rtol of the mass each
    assert abs(float(V @ p) - 1.0) < 1e-13


def test_bicgstab_escalates_to_one_amg_hierarchy(monkeypatch):
    op = fp.discretize(_rotating(12))
    V = op.grid.volumes.ravel()
    b = fp.gaussian(op.grid, (1, 1, 1), 0.25).values.ravel()
    monkeypatch.setattr(ls, "ESCALATE_ITERATIONS", 0)
    lin = LinearSolver.for_model(op, rtol=1e-10)
    lin.set_volumes(V)
    xs = [lin.solve(c, b) for c in (1.0, 1.0, 0.7)]
    assert lin.hierarchies == 1  # built after the first solve, reused at 0.7
    for c, x in zip((1.0, 1.0, 0.7), xs):
        assert _l1(V, x - _exact(op, c, b)) <= 1e-9


def test_no_pyamg_means_no_escalation(monkeypatch):
    monkeypatch.setattr(ls, "_has_pyamg", lambda: False)
    monkeypatch.setattr(ls, "ESCALATE_ITERATIONS", 0)
    op = fp.discretize(_rotating(10))
    lin = LinearSolver(op.generator, "bicgstab")
    lin.solve(0.5, np.ones(op.grid.size))
    assert lin.hierarchies == 0 and lin.iterations > 0


# -- stationary densities -------------------------------------------------------------
def test_stationary_of_a_large_3d_grid_is_iterative_and_matches_lu():
    op = fp.discretize(_rotating(14))
    L, V = op.generator, op.grid.volumes.ravel()
    assert op.grid.size > nullspace.ITERATIVE_SIZE
    assert nullspace._resolve(sp.csr_array(L), "auto") == "iterative"
    auto = np.asarray(op.stationary_direct).ravel()
    lu = nullspace.null_vector(L, V, method="lu")
    assert np.abs(auto - lu).max() <= 1e-10 * lu.max()
    assert np.max(np.abs(auto / lu - 1)) < 1e-8  # the tails too, relatively
    assert abs(float(V @ auto) - 1.0) < 1e-13 and auto.min() > 0


def test_stationary_of_small_grids_keeps_the_lu_path_bit_for_bit():
    L = fp.discretize(_rotating(10)).generator  # 1 000 cells
    V = np.full(1000, 1e-3)
    assert nullspace._resolve(sp.csr_array(L), "auto") == "lu"
    np.testing.assert_array_equal(
        nullspace.null_vector(L, V), nullspace.null_vector(L, V, method="lu")
    )
    with pytest.raises(ValueError, match="`method` must be 'auto', 'lu' or 'iterative', got 'qr'"):
        nullspace.null_vector(L, V, method="qr")


def test_stationary_without_pyamg_warns_and_uses_lu(monkeypatch):
    monkeypatch.setattr(nullspace, "_has_pyamg", lambda: False)
    L = fp.discretize(_rotating(13)).generator
    with pytest.warns(RuntimeWarning, match="pyamg is not installed: the stationary density"):
        nullspace.null_vector(L, np.ones(L.shape[0]) / L.shape[0])


# -- solving only as tightly as the step error requires --------------------------------
def test_solve_error_counts_the_bound_of_density_solves_only():
    op = fp.discretize(_p4(12))
    V = op.grid.volumes.ravel()
    lin = LinearSolver.for_model(op, rtol=1e-6)
    lin.set_volumes(V)
    b = fp.gaussian(op.grid, (1, 1, 1), 0.5).values.ravel()
    lin.solve(C, b)
    assert lin.solve_error == pytest.approx(1e-6 * _l1(V, b), rel=1e-15)
    lin.solve(C, b - V @ b / V.sum(), conserve=False)  # no mass: an error estimate's solve
    assert lin.solve_error == pytest.approx(1e-6 * _l1(V, b), rel=1e-15)
    assert lin.rtol_given and not LinearSolver.for_model(op).rtol_given


def _coupled3d():
    g = _cube(14, -3.0, 3.0)
    model = fp.FokkerPlanck(g, lambda x, y, z: (x**2 + y**2 + z**2) / 2 + 0.3 * x * y, 1.0)
    return model, fp.gaussian(g, (1.0, 0.5, -0.5), 0.3)


def test_default_iterative_solves_spend_a_share_of_the_time_error_target():
    """Global control with CG: rtol = fraction·target/(2n + 1), the solves' bound holds."""
    from fpsolver.integrate.steppers import SOLVE_ERROR_FRACTION, _solve_rtol

    model, p0 = _coupled3d()
    V = model.grid.volumes.ravel()
    ds = model.solve(p0, 1.0, save_at=[])
    a = ds.attrs
    assert (a["linear_solver"], a["rejected_steps"]) == ("cg", 0)
    rtol, n = a["linear_rtol"], a["steps"]
    # looser than the fixed default here, and at most the fraction of the target
    assert rtol > 10 * ls.DEFAULT_RTOL
    assert (2 * n + 1) * rtol <= SOLVE_ERROR_FRACTION * a["time_error_target"] * 3.0
    tight = model.solve(p0, 1.0, save_at=[], linear_rtol=1e-12)
    assert tight.attrs["linear_rtol"] == 1e-12 and tight.attrs["steps"] == n
    diff = _l1(V, ds.p[-1].values.ravel() - tight.p[-1].values.ravel())
    assert 0 < diff <= (2 * n + 1) * rtol  # the solves' bound Σ rtol Σ V|b|
    assert abs(float(V @ ds.p[-1].values.ravel()) - 1.0) < 1e-13  # mass whatever the rtol
    assert _solve_rtol(1e-3, 1.0, 16) == pytest.approx(SOLVE_ERROR_FRACTION * 1e-3 / 33)
    assert _solve_rtol(1e3, 1.0, 1) == 1e-4 and _solve_rtol(1e-20, 1.0, 1) == 1e-12


def test_a_given_linear_rtol_is_kept_by_the_default():
    model, p0 = _coupled3d()
    ds = model.solve(p0, 1.0, save_at=[], linear_rtol=3e-9)
    assert ds.attrs["linear_rtol"] == 3e-9


def test_default_keeps_the_fixed_tolerance_with_bicgstab():
    """BiCGStab's error is rough: looser solves would leave negative densities."""
    model = _rotating(14)
    ds = model.solve(fp.gaussian(model.grid, (1, 1, 1), 0.25), 1.0, save_at=[])
    assert ds.attrs["linear_solver"] == "bicgstab"
    assert ds.attrs["linear_rtol"] == ls.DEFAULT_RTOL


def test_a_resumed_default_run_keeps_its_chosen_solve_tolerance(tmp_path):
    """The tolerance chosen from the target is part of the checkpointed state."""
    model, p0 = _coupled3d()
    path = tmp_path / "run.nc"
    kw = dict(save_every=0.25, checkpoint=path)

    class Stop(KeyboardInterrupt):
        pass

    def stop(t, p):
        if t > 0.3:
            raise Stop

    full = model.solve(p0, 1.0, save_every=0.25)
    with pytest.raises(Stop):
        model.solve(p0, 1.0, callback=stop, **kw)
    resumed = model.solve(p0, 1.0, resume=True, **kw)
    assert full.attrs["linear_rtol"] > 10 * ls.DEFAULT_RTOL
    assert resumed.attrs["linear_rtol"] == full.attrs["linear_rtol"]
    V = model.grid.volumes.ravel()
    bound = (2 * full.attrs["steps"] + 1) * full.attrs["linear_rtol"]  # both runs' solves
    assert _l1(V, resumed.p.values[-1].ravel() - full.p.values[-1].ravel()) <= 2 * bound

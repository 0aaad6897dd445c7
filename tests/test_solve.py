"""The solve driver: convergence, saving, diagnostics, adaptivity, equilibrium stop,
progress, checkpoint/resume."""

import numpy as np
import pytest
from helpers import ULP, kl_divergence, l1
from scipy.optimize import brentq

import fpsolver as fp
from fpsolver.core.analytic import ou_density
from fpsolver.core.schedule import substeps


def _ou_kl(t):
    """KL(N(3e^{-t}, 1 − 0.75e^{-2t}) ‖ N(0, 1)): the exact OU law from N(3, 0.25)."""
    m, x = 3.0 * np.exp(-t), 0.75 * np.exp(-2.0 * t)  # mean, 1 − variance
    return 0.5 * (m * m - x - np.log1p(-x))


def _ou(n, lo=-8.0, hi=8.0):
    grid = fp.Grid(x=(lo, hi, n))
    return fp.FokkerPlanck(grid, energy=lambda x: x**2 / 2, temperature=1.0)


# -- accuracy ----------------------------------------------------------------
def test_second_order_spatial_convergence_of_the_full_solve():
    """P1 at t = 1 against the exact OU density; the time error (TR-BDF2,
    dt = 1e-3, ~1e-7) sits far below the spatial error."""
    ns = [50, 100, 200, 400]
    errs = []
    for n in ns:
        model = _ou(n)
        g = model.grid
        p0 = fp.gaussian(g, 3.0, 0.25)
        ds = fp.solve(model, p0, 1.0, dt=1e-3, method="tr_bdf2", save_at=[])
        exact = ou_density(g, 1.0, 1.0, [3.0], 0.25, 1.0)
        errs.append(l1(g, ds.p[-1].values, exact))
    h = 16.0 / np.array(ns)
    slopes = np.diff(np.log(errs)) / np.diff(np.log(h))
    assert np.all(np.abs(slopes - 2) < 0.1), (slopes, errs)


# -- saving ------------------------------------------------------------------
def test_save_every_lands_exactly_including_t0_and_t_end():
    model = _ou(40)
    p0 = fp.gaussian(model.grid, 3.0, 0.25)
    ds = fp.solve(model, p0, 1.0, dt=0.07, method="bdf2", save_every=0.3)
    # save times are k·save_every as computed in floating point (3 × 0.3 is
    # 0.8999999999999999), then t_end itself
    assert ds.time.values.tolist() == [k * 0.3 for k in range(4)] + [1.0]
    # step sizes: 0.3 = 4 × 0.07 + 0.02 → last two 0.045 (never below half a step)
    assert substeps(0.3, 0.07)[-2:] == pytest.approx([0.045, 0.045], rel=1e-14)
    assert ds.step_size.values[1] == pytest.approx(0.045, rel=1e-14)
    assert np.isnan(ds.step_size.values[0])


def test_save_at_and_validation():
    model = _ou(40)
    p0 = fp.gaussian(model.grid, 3.0, 0.25)
    ds = fp.solve(model, p0, 2.0, dt=0.1, save_at=[0.5, 0.0, 0.123, 0.5])
    assert ds.time.values.tolist() == [0.0, 0.123, 0.5, 2.0]
    # the run without save points reaches the same end state bit for bit
    ref = fp.solve(model, p0, 2.0, dt=0.1, save_at=[0.123, 0.5])
    np.testing.assert_array_equal(ds.p[-1].values, ref.p[-1].values)
    with pytest.raises(ValueError, match="`save_at` has 3.0 beyond `t_end`=2.0"):
        fp.solve(model, p0, 2.0, dt=0.1, save_at=[3.0])
    with pytest.raises(ValueError, match="either `save_every` or `save_at`"):
        fp.solve(model, p0, 2.0, dt=0.1, save_at=[1.0], save_every=0.5)
    with pytest.raises(ValueError, match="`dt` is required for method='bdf2'"):
        fp.solve(model, p0, 2.0, method="bdf2")
    assert fp.solve(model, p0, 2.0).attrs["method"] == "adaptive"  # the default needs no dt
    with pytest.raises(ValueError, match="`dt` must be positive and finite, got -0.1"):
        fp.solve(model, p0, 2.0, dt=-0.1)
    with pytest.raises(ValueError, match="`t_end` must be a positive time or 'equilibrium'"):
        fp.solve(model, p0, "forever", dt=0.1)
    with pytest.raises(ValueError, match="`save_every` must be positive"):
        fp.solve(model, p0, 2.0, dt=0.1, save_every=0.0)


def test_initial_density_validation():
    model = _ou(30)
    g = model.grid
    with pytest.warns(UserWarning, match="`p0` had mass 3 ; normalised to 1|`p0` had mass 3"):
        ds = fp.solve(model, np.full(g.shape, 3 / 16), 0.1, dt=0.05)
    assert abs(float(ds.mass[0]) - 1) < 1e-14
    with pytest.raises(ValueError, match="`p0` must be non-negative"):
        fp.solve(model, -np.ones(g.shape), 0.1, dt=0.05)
    with pytest.raises(ValueError, match="`p0` must be finite"):
        fp.solve(model, np.full(g.shape, np.nan), 0.1, dt=0.05)
    with pytest.raises(ValueError, match="zero mass"):
        fp.solve(model, np.zeros(g.shape), 0.1, dt=0.05)
    with pytest.warns(UserWarning, match="normalised"):
        from_callable = fp.solve(model, lambda x: np.exp(-((x - 1) ** 2)), 0.1, dt=0.05)
    q = np.exp(-((g.centers[0] - 1) ** 2))
    np.testing.assert_allclose(from_callable.p[0].values, q / np.sum(g.volumes * q), rtol=1e-14)


# -- the dataset ---------------------------------------------------------------
def test_dataset_contract_and_diagnostics():
    grid = fp.Grid(x=(-2.5, 2.5, 20), y=(-2.5, 2.5, 16))
    model = fp.FokkerPlanck(grid, lambda x, y: (x**2 - 1) ** 2 + 0.5 * y**2, 0.5)
    p0 = fp.gaussian(grid, (-1, 0), 0.04)
    ds = model.solve(p0, t_end=1.0, dt=0.05, method="backward_euler", save_every=0.25)
    assert ds.p.dims == ("time", "x", "y")
    for name in ["mass", "mean_energy", "entropy", "free_energy", "relative_entropy"]:
        assert ds[name].dims == ("time",)
        assert ds[name].attrs["long_name"] and "units" in ds[name].attrs
    assert "absorbed" not in ds and "relative_entropy_ss" not in ds
    assert ds.p.attrs["units"] == "1/volume"
    a = ds.attrs
    assert a["temperature"] == 0.5 and a["method"] == "backward_euler" and a["dt"] == 0.05
    assert a["fpsolver_version"] == fp.__version__ and a["factorizations"] == 1
    assert fp.Grid.from_attrs(a) == grid
    # the diagnostics are the functionals of the saved frames, computed here
    # directly: F = Σ V p (E + T ln p), KL = Σ V p ln(p/q), q = e^{−E/T}/Z
    V, E = grid.volumes, model.energy
    w = np.exp(-(E - E.min()) / 0.5)
    q = w / np.sum(V * w)
    for i in range(ds.sizes["time"]):
        p = ds.p[i].values
        F = float(np.sum(V * p * (E + 0.5 * np.log(p))))
        assert ds.free_energy.values[i] == pytest.approx(F, rel=1e-13)
        assert ds.relative_entropy.values[i] == pytest.approx(kl_divergence(V, p, q), rel=1e-13)
    # KL = (F − F_eq)/T with F_eq = −T ln Z_h
    F_eq = model.free_energy(model.equilibrium())
    np.testing.assert_allclose(
        ds.relative_entropy.values, (ds.free_energy.values - F_eq) / 0.5, rtol=0, atol=1e-13
    )
    assert np.all(np.diff(ds.free_energy.values) < 0)


def test_absorbed_mass_is_the_lost_mass():
    grid = fp.Grid(x=(0, 1, 50))
    model = fp.FokkerPlanck(grid, energy=0.0, boundary={"x": ("absorbing", "reflecting")})
    ds = fp.solve(model, fp.gaussian(grid, 0.5, 0.01), 2.0, dt=0.01, method="backward_euler")
    absorbed = ds.absorbed.values
    assert absorbed[0] == 0 and np.all(np.diff(absorbed) > 0)
    # Backward Euler: what leaves in a step is dt times the wall current at
    # the step's end, J·A at the lower wall face (every step is saved here);
    # to rounding of the mass (≤ 1)
    outflow = np.array([-model.current(p)["J_x"].values[0] for p in ds.p.values[1:]])
    np.testing.assert_allclose(np.diff(absorbed), 0.01 * outflow, rtol=0, atol=100 * ULP)
    # late-time survival decays by backward Euler's factor 1/(1 − λ dt) for the
    # generator's slowest eigenvalue λ, per step
    lam = np.sort(np.linalg.eigvals(model.generator().toarray()).real)[-1]
    rate = np.log(ds.mass.values[-1] / ds.mass.values[-11]) / 0.1
    assert abs(rate + np.log(1 - lam * 0.01) / 0.01) < 1e-6 * abs(lam)


def test_non_reversible_reports_kl_to_stationary_state():
    pytest.importorskip("fpsolver.analysis.stationary")
    grid = fp.Grid(x=(0, 2 * np.pi, 40), periodic="x")
    model = fp.FokkerPlanck(grid, lambda x: np.cos(x), 0.5, force=[1.0])  # tilted washboard
    assert not model.reversible
    ds = fp.solve(model, fp.gaussian(grid, 2.0, 0.2), 3.0, dt=0.05, save_every=0.5)
    kl = ds.relative_entropy_ss.values
    assert np.all(np.diff(kl) < 0)  # KL(p‖p_ss) is a Lyapunov function
    pss = model.stationary().values
    p = ds.p[-1].values
    assert kl[-1] == pytest.approx(kl_divergence(grid.volumes, p, pss), rel=1e-12)
    # the equilibrium stop watches KL(p‖p_ss) when there is no detailed balance
    eq = fp.solve(model, fp.gaussian(grid, 2.0, 0.2), "equilibrium", method="adaptive", tol=1e-8)
    assert eq.relative_entropy_ss.values[-1] < 1e-8 <= eq.relative_entropy_ss.values[-2]
    assert eq.relative_entropy.values[-1] > 1e-3  # far from the (irrelevant) Gibbs state


# -- adaptive and equilibrium stop -----------------------------------------
def test_adaptive_error_follows_tolerance_and_steps_grow():
    model = _ou(200)
    p0 = fp.gaussian(model.grid, 3.0, 0.25)
    ref = fp.solve(model, p0, 4.0, dt=4.0, method="exponential")
    errs, steps = [], []
    for rtol in [1e-3, 1e-5]:
        ds = fp.solve(model, p0, 4.0, method="adaptive", rtol=rtol, atol=0)
        errs.append(l1(model.grid, ds.p[-1].values, ref.p[-1].values))
        steps.append(ds.attrs["steps"])
        h = ds.step_size.values[1:]
        assert h[-2] > 20 * h[0]  # steps grow as the density relaxes
        # ladder: every step is dt0·2^k except landing on t_end
        k = np.log2(h[:-1] / ds.attrs["dt"])
        np.testing.assert_allclose(k, np.round(k), atol=1e-12)
        assert ds.attrs["factorizations"] <= len(np.unique(np.round(k))) + 1
    # per-step control of an order-2 method: local error ∝ h³ ∝ tol, so the
    # global error ∝ h² ∝ tol^(2/3)
    exponent = np.log(errs[0] / errs[1]) / np.log(100)
    assert abs(exponent - 2 / 3) < 0.1, (exponent, errs)
    assert errs[1] < 1e-4 and steps[1] > steps[0]


def test_equilibrium_stop():
    model = _ou(80)
    p0 = fp.gaussian(model.grid, 3.0, 0.25)
    ds = fp.solve(model, p0, "equilibrium", method="adaptive", tol=1e-9)
    assert ds.attrs["converged"] == 1 and ds.attrs["t_end"] == "equilibrium"
    kl = ds.relative_entropy.values
    assert kl[-1] < 1e-9 <= kl[-2]
    assert ds.time.values[-1] == ds.attrs["t_reached"]
    # The exact OU law from N(3, 0.25) is N(3e^{-t}, 1 − 0.75e^{-2t}); its KL to
    # N(0, 1) falls below 1e-9 at t*. The run stops at the first step past
    # that (the grid's KL differs from the exact one by O(h²): ≈ 0.1 in t).
    t_star = brentq(lambda t: np.log(_ou_kl(t)) - np.log(1e-9), 1.0, 20.0)
    assert t_star - 0.3 < ds.attrs["t_reached"] <= t_star + 0.3 + ds.step_size.values[-1]
    fixed = fp.solve(model, p0, "equilibrium", dt=0.1, save_every=1.0, method="tr_bdf2", tol=1e-9)
    assert fixed.relative_entropy.values[-1] < 1e-9 <= fixed.relative_entropy.values[-2]
    assert np.all(np.diff(fixed.time.values[:-1]) == pytest.approx(1.0, rel=1e-12))
    assert abs(fixed.time.values[-1] - t_star) < 0.3
    with pytest.warns(RuntimeWarning, match="still above `tol`"):
        short = fp.solve(model, p0, "equilibrium", dt=0.1, t_max=1.0, tol=1e-9)
    assert short.attrs["converged"] == 0 and short.time.values[-1] == 1.0


# -- progress ------------------------------------------------------------------
def test_progress_bar_only_when_asked(capsys):
    model = _ou(40)
    p0 = fp.gaussian(model.grid, 3.0, 0.25)
    fp.solve(model, p0, 0.5, dt=0.01)
    assert capsys.readouterr().err == ""  # default: off (not a terminal, short)
    fp.solve(model, p0, 0.5, dt=0.01, progress=True)
    err = capsys.readouterr().err
    assert "/0.5 [" in err, err  # a bar over simulated time 0 … 0.5


@pytest.mark.parametrize(("tty", "t_at_1s", "shown"), [(True, 1.0, True), (True, 9.0, False),
                                                       (False, 1.0, False)])  # fmt: skip
def test_progress_bar_automatic_rule(monkeypatch, tty, t_at_1s, shown):
    """Auto mode: a bar only on a terminal and when the run will take > 3 s."""
    from fpsolver.integrate import trackers

    clock = [100.0]
    monkeypatch.setattr(trackers._time, "perf_counter", lambda: clock[0])
    monkeypatch.setattr(trackers, "_isatty", lambda: tty)
    tr = trackers.ProgressTracker(0.0, 10.0, None)
    tr.on_step(0.5, None)
    assert tr.bar is None  # undecided during the first second
    clock[0] += 1.5
    tr.on_step(t_at_1s, None)  # expected total: 1.5 s × 10 / t
    assert (tr.bar is not None) is shown
    tr.finalize()
    assert tr.bar is None


# -- checkpoint and resume -------------------------------------------------
class _Stop(KeyboardInterrupt):
    pass


@pytest.mark.parametrize("method", ["bdf2", "adaptive"])
def test_checkpoint_resume_matches_uninterrupted_run(tmp_path, method):
    grid = fp.Grid(x=(-2.5, 2.5, 16), y=(-2.5, 2.5, 12))
    model = fp.FokkerPlanck(grid, lambda x, y: (x**2 - 1) ** 2 + 0.5 * y**2, 0.5)
    p0 = fp.gaussian(grid, (-1, 0), 0.04)
    kw = dict(dt=0.03, method=method, save_every=0.1)
    full = fp.solve(model, p0, 1.0, **kw)
    path = tmp_path / "run.nc"
    seen = []

    def interrupt(t, p):
        seen.append(t)
        if len(seen) == 4:
            raise _Stop

    with pytest.raises(_Stop):
        fp.solve(model, p0, 1.0, checkpoint=path, callback=interrupt, **kw)
    partial = fp.open_result(path)
    assert partial.sizes["time"] == 4 and "checkpoint_steps" not in partial
    with pytest.raises(FileExistsError, match="resume=True"):
        fp.solve(model, p0, 1.0, checkpoint=path, **kw)
    resumed = fp.solve(model, p0, 1.0, checkpoint=path, resume=True, **kw)
    np.testing.assert_array_equal(resumed.time.values, full.time.values)
    np.testing.assert_array_equal(resumed.p.values, full.p.values)
    for v in ["free_energy", "relative_entropy", "mass", "step_size"]:
        np.testing.assert_array_equal(resumed[v].values, full[v].values)
    assert resumed.attrs["steps"] == full.attrs["steps"]
    assert fp.open_result(path).sizes["time"] == full.sizes["time"]
    with pytest.raises(ValueError, match="has method="):
        fp.solve(model, p0, 1.0, checkpoint=path, resume=True, dt=0.03, method="tr_bdf2")


def test_negative_mass_reported_and_left_out_of_entropy():
    """BDF2 on a narrow peak undershoots in the far tails; the diagnostics stay
    finite (evaluated on max(p, 0)) and report what was left out."""
    from fpsolver.cli.demo import double_well_model

    model = double_well_model(64)
    p0 = fp.gaussian(model.grid, (-1, 0), 0.04)
    kw = dict(dt=0.01, save_every=0.1)
    bdf2 = fp.solve(model, p0, 0.3, method="bdf2", **kw)
    be = fp.solve(model, p0, 0.3, method="backward_euler", **kw)
    assert np.all(be.negative_mass.values == 0)
    neg = bdf2.negative_mass.values
    p = bdf2.p.values
    vol = model.grid.volumes
    np.testing.assert_array_equal(neg, [np.sum(vol * np.maximum(-f, 0)) for f in p])
    assert neg.max() > 0 and np.all(np.isfinite(bdf2.free_energy.values))
    i = int(np.argmax(neg))
    assert bdf2.free_energy.values[i] == model.free_energy(np.maximum(p[i], 0))


def test_resuming_a_finished_equilibrium_run_adds_nothing(tmp_path):
    model = _ou(40)
    p0 = fp.gaussian(model.grid, 3.0, 0.25)
    path = tmp_path / "eq.nc"
    kw = dict(method="adaptive", tol=1e-6, checkpoint=path)
    first = fp.solve(model, p0, "equilibrium", **kw)
    again = fp.solve(model, p0, "equilibrium", resume=True, **kw)
    assert again.attrs["converged"] == 1 and again.attrs["steps"] == first.attrs["steps"]
    np.testing.assert_array_equal(again.p.values, first.p.values)
    with pytest.raises(ValueError, match="read-only"):
        fp.solve(model, p0, 0.1, dt=0.05, callback=lambda t, p: p.fill(0))


_EDGES = np.array([-2.0, -1.6, -1.0, -0.7, -0.2, 0.0, 0.4, 1.0, 1.3, 2.0])  # uneven widths


@pytest.mark.parametrize(
    "grid",
    [
        fp.Grid(x=(-2, 2, 24)),
        fp.Grid(x=(-2, 2, 24), y=(-2, 2, 20)),
        fp.Grid(x=(-2, 2, 9), y=_EDGES, z=(-1.5, 2, 7)),
        fp.Grid.sphere(10, 16),
    ],
    ids=["1d", "2d", "3d-uneven", "sphere"],
)
def test_diagnostics_computed_at_the_end_equal_those_of_each_frame(grid):
    # With no tracker reading them during the run, the diagnostics of all frames are
    # computed in batches at the end (the moments from the frames' marginals); a
    # tracker in the chain makes them per frame, cell by cell.
    from fpsolver.integrate.trackers import Tracker

    def energy(*xs):
        return (xs[0] ** 2 - 1) ** 2 + sum(x**2 + 0.5 * xs[0] * x for x in xs[1:])

    g = grid
    model = fp.FokkerPlanck(g, energy=energy)
    p0 = fp.gaussian(g, tuple(0.3 + 0.2 * a for a in range(g.ndim)), 0.05)
    batch, each = fp.solve(model, p0, 0.5), fp.solve(model, p0, 0.5, trackers=[Tracker()])
    assert list(batch.data_vars) == list(each.data_vars) and batch.sizes == each.sizes
    for name in batch.data_vars:
        assert batch[name].attrs == each[name].attrs
        scale = float(np.nanmax(np.abs(each[name].values)))
        np.testing.assert_allclose(
            batch[name].values, each[name].values, rtol=0, atol=1e-14 * scale
        )

"""The factorisation cache is bounded by bytes; the adaptive method keeps two rungs."""

import numpy as np

import fpsolver as fp
from fpsolver.discrete.linsolve import LinearSolver
from fpsolver.integrate.steppers import make_stepper


def _model(n=24):
    g = fp.Grid(x=(-2.5, 2.5, n), y=(-2.5, 2.5, n))
    # coupled (not separable), so the default path is the adaptive method
    return fp.FokkerPlanck(
        g, energy=lambda x, y: (x**2 - 1) ** 2 + 0.5 * y**2 + 0.2 * x * y, temperature=0.5
    )


def test_cache_stays_within_its_byte_budget():
    op = fp.discretize(_model())
    lin = LinearSolver(op.generator, memory_factors=2.0)
    b = np.ones(op.grid.size)
    for c in (0.01, 0.02, 0.04, 0.08, 0.16):
        lin.solve(c, b)
        assert lin.cached_bytes <= lin.max_bytes
    assert lin.factorizations == 5 and len(lin._cache) <= 2
    # the most recent two are kept: going back one rung costs nothing
    lin.solve(0.08, b)
    assert lin.factorizations == 5
    lin.solve(0.01, b)
    assert lin.factorizations == 6


def test_an_explicit_byte_budget_is_respected():
    op = fp.discretize(_model())
    first = LinearSolver(op.generator)
    first.solve(0.1, np.ones(op.grid.size))
    one = first.cached_bytes
    lin = LinearSolver(op.generator, max_bytes=1.5 * one)
    for c in (0.1, 0.2, 0.1, 0.2):
        lin.solve(c, np.ones(op.grid.size))
    assert lin.factorizations == 4 and lin.cached_bytes == one


def test_large_factors_are_not_held_twice(monkeypatch):
    """Beyond EXTRA_CACHE_BYTES the automatic budget holds one factor (the peak memory)."""
    import fpsolver.discrete.linsolve as ls

    op = fp.discretize(_model())
    b = np.ones(op.grid.size)
    small = LinearSolver(op.generator, memory_factors=2.0)
    small.solve(0.1, b)
    one = small.cached_bytes
    assert small.max_bytes == 2 * one  # small factors: the ladder keeps two
    monkeypatch.setattr(ls, "EXTRA_CACHE_BYTES", one // 4)  # as if each factor were large
    lin = LinearSolver(op.generator, memory_factors=2.0)
    held = []
    for c in (0.1, 0.2, 0.1):
        lin.solve(c, b)
        held.append(len(lin._cache))
    assert lin.max_bytes == one + one // 4
    assert held == [1, 1, 1] and lin.factorizations == 3  # the old factor went first
    np.testing.assert_allclose(lin.solve(0.1, b), small.solve(0.1, b), rtol=1e-13)


def test_adaptive_run_holds_at_most_two_factorisations():
    model = _model(32)
    stepper = make_stepper("adaptive", model, rtol=1e-5)
    seen = []
    real = stepper.linear._build

    def build(c):
        out = real(c)
        seen.append(stepper.linear.cached_bytes)
        return out

    stepper.linear._build = build
    p0 = fp.gaussian(model.grid, (-1, 0), 0.04)
    from fpsolver.core.schedule import SaveSchedule
    from fpsolver.integrate.driver import integrate

    integrate(stepper, p0.values.ravel(), SaveSchedule(5.0), [])
    assert stepper.linear.factorizations >= 3
    sizes = list(stepper.linear._sizes.values())
    assert len(sizes) <= 2 and stepper.linear.cached_bytes <= 2 * max(sizes)
    assert max(seen) <= stepper.linear.max_bytes  # never more than two before a build


def test_adaptive_default_and_ladder_aligned_with_save_times():
    """Without dt the method is adaptive; its rungs divide save_every, so no remainder steps."""
    model = _model(32)
    p0 = fp.gaussian(model.grid, (-1, 0), 0.04)
    ds = model.solve(p0, 2.0, save_every=0.5)
    assert ds.attrs["method"] == "adaptive"
    assert ds.time.values.tolist() == [0.0, 0.5, 1.0, 1.5, 2.0]
    ladder = np.log2(0.5 / ds.attrs["dt"])
    assert ladder == round(ladder)  # the base divides the save interval
    steps = ds.step_size.values[1:]
    assert np.all(
        np.abs(np.log2(steps / ds.attrs["dt"]) - np.round(np.log2(steps / ds.attrs["dt"]))) < 1e-9
    )


def test_release_drops_lu_factors_and_the_global_control_holds_one():
    model = _model()
    s = LinearSolver(model.generator())
    b = np.ones(model.grid.size)
    x = s.solve(0.1, b)
    s.release()
    assert (s.cached_bytes, len(s._cache)) == (0, 0)
    np.testing.assert_array_equal(s.solve(0.1, b), x)  # rebuilt: the same factors
    assert s.factorizations == 2
    # a drifting Gaussian: the trial (t_end/8) misses the target, the run refines;
    # the trial's factors are dropped, so one factorisation is held at the end
    grid = fp.Grid(x=(-8, 8, 200))
    ou = fp.FokkerPlanck(grid, energy=lambda x: x**2 / 2)
    stepper = make_stepper("adaptive", ou)
    stepper.plan(1.0)
    t, p = 0.0, fp.gaussian(grid, 3.0, 0.25).values.ravel()
    while t < 1.0:
        t, p = stepper.step_to(t, p, 1.0)
    assert stepper.factorizations == 2 and len(stepper.linear._cache) == 1

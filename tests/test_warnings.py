"""Warnings where a run will be wrong or slow (the suite turns warnings into errors)."""

import numpy as np
import pytest

import fpsolver as fp
from fpsolver.sampling.particles import drift_stiffness


def test_stiff_trap_warns_before_a_wrong_euler_maruyama_run():
    """A trap of stiffness 400 with dt = 4e-3: dt·λ = 1.6, the spread is badly wrong."""
    grid = fp.Grid(x=(-1.0, 1.0, 200))
    model = fp.FokkerPlanck(grid, energy=lambda x: 400.0 * x**2 / 2, temperature=0.25)
    p0 = fp.gaussian(grid, 0.0, 0.01)
    assert drift_stiffness(model) == pytest.approx(400.0, rel=1e-9)
    with pytest.raises(RuntimeWarning, match=r"dt·λ = 1.6 .*use dt ≤ 0.00025"):
        fp.simulate_particles(model, p0, n=100, t_end=0.1, dt=4e-3, seed=0)
    # with a small enough step: no warning, and the spread is right
    parts = fp.simulate_particles(model, p0, n=20_000, t_end=0.1, dt=2.5e-4, seed=0)
    std = float(np.sqrt(parts["covariance"][-1, 0, 0]))
    assert std == pytest.approx(0.025, rel=0.05)  # sqrt(T/k); sampling error ~0.5 %


def test_stiffness_counts_only_where_particles_go():
    """A steep wall far out in a double well (never visited) does not trigger the warning."""
    grid = fp.Grid(x=(-2.5, 2.5, 100))
    model = fp.FokkerPlanck(grid, energy=lambda x: (x**2 - 1) ** 2, temperature=0.5)
    assert drift_stiffness(model) > 60  # at the outer cells
    fp.simulate_particles(model, fp.gaussian(grid, -1.0, 0.04), n=100, t_end=0.1, dt=0.01, seed=0)


def test_exponential_method_warns_when_it_would_take_minutes():
    grid = fp.Grid(x=(-3.0, 3.0, 4000))
    model = fp.FokkerPlanck(grid, energy=lambda x: x**2 / 2)
    with pytest.raises(RuntimeWarning, match="method='exponential' needs about .* products"):
        model.solve(fp.gaussian(grid, 0.0, 0.3), 1000.0, dt=0.01, method="exponential")


def test_crank_nicolson_negative_mass_warns_once():
    grid = fp.Grid(x=(-1.0, 1.0, 100))
    model = fp.FokkerPlanck(grid, energy=0.0)
    with pytest.warns(RuntimeWarning, match="crank_nicolson.* negative densities") as record:
        fp.solve(model, fp.point_mass(grid, 0.0), 2.0, dt=0.5, method="crank_nicolson")
    assert len([w for w in record if "negative densities" in str(w.message)]) == 1

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


def test_stiffness_on_the_disc_is_that_of_the_cartesian_drift():
    """The particles step in the plane: a constant drift has no stiffness, −5x has 5.

    In coordinates the drift of E = 2x grows like 1/r near the centre (the
    measure was 2.5e4 on this grid before it took the Cartesian drift).
    """
    grid = fp.Grid.polar(r=(0, 1, 96), phi=192)
    linear = fp.FokkerPlanck(grid, lambda r, phi: 2.0 * r * np.cos(phi))
    assert drift_stiffness(linear) < 1e-6
    trap = fp.FokkerPlanck(grid, lambda r, phi: 5.0 * (r * np.cos(phi)) ** 2 / 2 + r**2 / 2)
    assert drift_stiffness(trap) == pytest.approx(6.0, rel=0.03)  # row (6, 0) of −∇∇E
    fp.simulate_particles(linear, fp.gaussian(grid, (0.0, 0.0), 0.05), n=200, t_end=0.05, dt=0.01)


def test_stiffness_on_the_sphere_does_not_grow_at_the_poles():
    """E = 2 sinθ cosφ (= 2x in R³): the same stiffness on a coarse and a fine grid.

    In coordinates the φ-drift grows like 1/sin²θ: the measure was 2.5e3 on
    96 × 192 cells and 1.7e4 on 384 × 768, and a run with dt = 0.01 warned.
    """
    values = []
    for n in (24, 96):
        grid = fp.Grid.sphere(n_theta=n, n_phi=2 * n)
        model = fp.FokkerPlanck(grid, lambda th, phi: 2.0 * np.sin(th) * np.cos(phi))
        values.append(drift_stiffness(model))
    assert values[1] == pytest.approx(values[0], rel=0.03)
    assert 2.0 <= values[1] <= 4.0  # the projected field −2(x̂ − (x̂·n)n): rows of size 2 to 4
    p0 = fp.gaussian(grid, (0.1, 1.0), 0.05)
    fp.simulate_particles(model, p0, n=200, t_end=0.05, dt=0.01, seed=1)


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

"""Particles under a protocol: per-trajectory work, Jarzynski and Crooks against the grid's ΔF.

Statistical tests: fixed seeds, |z| < 3.29 (a two-sided false-alarm rate of
1e-3 per check if the estimator were unbiased and normal). Euler–Maruyama
with dt = 1e-3 on a trap of stiffness ≤ 4 biases the stationary variance by
about k dt/2 ≤ 0.2 %, i.e. ΔF by ≤ 1e-3, a third of the standard error
(≈ 3.5e-3 with 20 000 trajectories).
"""

from __future__ import annotations

import numpy as np
import pytest

import fpsolver as fp

Z = 3.29


@pytest.fixture(scope="module")
def runs():
    g = fp.Grid(x=(-6, 6, 600))
    m = fp.FokkerPlanck(
        g,
        energy=lambda x, t: 0.5 * (1 + 3 * t) * x**2,
        energy_gradient=lambda x, t: (1 + 3 * t) * x,
    )
    forward = m.simulate_particles(m.at(0.0).equilibrium(), 20_000, 1.0, 1e-3, seed=1)
    backward = m.reversed(1.0).simulate_particles(
        m.at(1.0).equilibrium(), 20_000, 1.0, 1e-3, seed=2
    )
    return m, forward, backward


def test_grid_free_energy_difference_is_the_discrete_models(runs):
    m, forward, _ = runs
    dF = forward.attrs["delta_f_grid"]
    assert dF == pytest.approx(
        m.at(1.0).equilibrium_free_energy - m.at(0.0).equilibrium_free_energy, abs=1e-13
    )
    assert dF == pytest.approx(0.5 * np.log(4.0), abs=1e-4)  # continuum value, O(h²) apart


def test_jarzynski_recovers_the_grid_free_energy_difference(runs):
    _, forward, _ = runs
    r = fp.jarzynski(forward)
    assert abs(r["z"]) < Z, r
    assert r["dissipated_work"] > 10 * r["stderr"]  # second law: ⟨W⟩ > ΔF, far outside noise


def test_crooks_bennett_estimate_and_the_slope_of_the_work_ratio(runs):
    _, forward, backward = runs
    r = fp.crooks(forward, backward)
    assert abs(r["z"]) < Z, r
    assert abs(r["slope"] - 1.0) < Z * r["slope_stderr"], r  # ln(P_F/P_R) slope 1/T
    assert abs(r["crossing"] - r["delta_f_grid"]) < 0.05  # histograms cross at ΔF


def test_work_of_a_switch_is_booked_in_full():
    """A trap jumped at t = 0.5 at fixed position: W = E(x, 0.5⁺) − E(x, 0.5⁻) exactly."""
    g = fp.Grid(x=(-6, 6, 120))
    m = fp.TimeDependentFokkerPlanck(
        g, lambda x, t: 0.5 * (x - (t >= 0.5)) ** 2, breakpoints=[0.5], temperature=1e-12
    )
    x0 = np.linspace(-1, 1, 5)[:, None]
    parts = m.simulate_particles(x0, 5, 0.5 + 1e-9, 1e-3, seed=0)
    x = x0[:, 0] * (1 - 1e-3) ** 500  # Euler's positions at t = 0.5 (no noise)
    assert np.allclose(parts.work.values, 0.5 * (x - 1) ** 2 - 0.5 * x**2, atol=1e-7)


def test_particle_input_errors_name_the_argument():
    g = fp.Grid(x=(-3, 3, 30))
    m = fp.FokkerPlanck(g, energy=lambda x, t: x**2 * t, mobility=lambda x: 1 + x**2)
    with pytest.raises(ValueError, match="`mobility` must be constant"):
        m.simulate_particles(fp.gaussian(g, 0, 1), 10, 1.0, 0.1)
    with pytest.raises(TypeError, match="`temperature` is required"):
        fp.jarzynski(np.ones(10))


def test_top_level_simulate_particles_runs_a_protocol():
    g = fp.Grid(x=(-4, 4, 64))
    m = fp.FokkerPlanck(g, energy=lambda x, t: 0.5 * (1 + t) * x**2)
    p0 = fp.gaussian(g, 0.0, 1.0)
    top = fp.simulate_particles(m, p0, n=500, t_end=0.2, dt=1e-2, seed=4, save_every=0.1)
    own = m.simulate_particles(p0, 500, 0.2, 1e-2, seed=4, save_every=0.1)
    assert np.array_equal(top["work"].values, own["work"].values)
    with pytest.raises(NotImplementedError, match="`scheduler`.*one machine"):
        fp.simulate_particles(m, p0, n=10, t_end=0.1, dt=1e-2, scheduler="tcp://127.0.0.1:1")
    with pytest.raises(NotImplementedError, match="`save_at`"):
        fp.simulate_particles(m, p0, n=10, t_end=0.1, dt=1e-2, save_at=[0.05])

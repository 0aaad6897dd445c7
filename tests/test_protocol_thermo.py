"""Stochastic thermodynamics of time-dependent runs: first and second laws, discretely.

Sign convention: W is done on the system, Q released to the bath, ΔU = W − Q.
"""

from __future__ import annotations

import numpy as np
import pytest

import fpsolver as fp
from fpsolver.discrete.protocol import TimeDependentGenerator
from fpsolver.integrate.protocol import PROTOCOL_METHODS


def model(temperature=0.8):
    g = fp.Grid(x=(-6, 6, 90))
    return fp.FokkerPlanck(
        g, energy=lambda x, t: 0.5 * (1 + t) * (x - np.sin(2 * t)) ** 2, temperature=temperature
    )


def run(m, method, dt=0.05, t_end=1.0, every=None):
    p0 = fp.gaussian(m.grid, 0.8, 0.2)
    return m.solve(p0, t_end, dt, method, save_every=every or dt)


@pytest.mark.parametrize("method", sorted(PROTOCOL_METHODS))
def test_first_law_holds_to_rounding_for_every_stepper(method):
    m = model(temperature=lambda t: 0.8 + 0.3 * t)
    ds = run(m, method) if method != "adaptive" else m.solve(fp.gaussian(m.grid, 0.8, 0.2), 1.0)
    U, W, Q = (ds[v].values for v in ("mean_energy", "work", "heat"))
    scale = np.abs(U).max() + np.abs(W).max() + np.abs(Q).max()
    assert np.abs((U - U[0]) - (W - Q)).max() <= 1e-14 * scale * len(U)
    assert np.all(np.abs(ds.mass.values - 1) < 1e-13)


def test_backward_euler_heat_is_the_flux_heat_at_the_step_end():
    m = model()
    ds = run(m, "backward_euler")
    dQ = np.diff(ds.heat.values)
    rate = ds.heat_rate.values[1:]
    assert np.abs(dQ - 0.05 * rate).max() <= 1e-12 * np.abs(dQ).max()


@pytest.mark.parametrize("temperature", [0.8, lambda t: 0.8 + 0.3 * t], ids=["T", "T(t)"])
def test_backward_euler_second_law_step_by_step(temperature):
    """ΔS + Q_step/T_{n+1} ≥ h σ(t_{n+1}) ≥ 0 at every step (convexity of p ln p)."""
    m = model(temperature)
    ds = run(m, "backward_euler")
    sigma = ds.entropy_production.values
    produced = np.diff(ds.total_entropy_production.values)
    assert np.all(sigma >= 0)
    assert np.all(produced - 0.05 * sigma[1:] >= -1e-13 * np.abs(produced).max())
    assert np.all(produced > 0)
    if not callable(temperature):  # isothermal: W − ΔF = T Σ_tot ≥ 0 step by step
        F, W = ds.free_energy.values, ds.work.values
        dissipated = np.diff(W) - np.diff(F)
        assert np.allclose(dissipated, temperature * produced, rtol=1e-10, atol=1e-15)
        assert np.all(dissipated > 0)


@pytest.mark.parametrize("method", ["crank_nicolson", "bdf2", "tr_bdf2"])
def test_second_order_steppers_keep_work_and_entropy_production_to_second_order(method):
    m = model()
    ends = np.array(
        [
            [
                run(m, method, dt, every=1.0)[v].values[-1]
                for v in ("work", "total_entropy_production")
            ]
            for dt in (0.05, 0.025, 0.0125)
        ]
    )
    orders = np.log2(np.abs(ends[0] - ends[1]) / np.abs(ends[1] - ends[2]))
    assert np.all(orders > 1.8) and np.all(orders < 2.4), orders
    ds = run(m, method, 0.0125, every=0.25)
    W, F = ds.work.values, ds.free_energy.values
    assert np.all((W - (F - F[0]))[1:] > 0)  # second law W − ΔF ≥ 0 (margin ≫ the O(h²) error)


def test_entropy_production_is_entropy_change_plus_heat_over_t():
    """σ = dS/dt + Q̇/T with dS/dt = −Σ V (L p) ln p: the scheme's own fluxes, to rounding."""
    m = model()
    gen = TimeDependentGenerator(m)
    ds = run(m, "tr_bdf2", every=0.5)
    V = m.grid.volumes.ravel()
    for i, t in enumerate(ds.time.values):
        p = ds.p.values[i].ravel()
        snap = gen(float(t))
        dS = -np.sum(V * (snap.L @ p) * np.log(p))
        expected = dS + ds.heat_rate.values[i] / snap.temperature
        assert ds.entropy_production.values[i] == pytest.approx(expected, rel=1e-9, abs=1e-14)


def test_quasi_static_work_approaches_the_equilibrium_free_energy_difference():
    """Slower protocols dissipate less: W − ΔF_eq falls like 1/duration, and stays > 0."""
    g = fp.Grid(x=(-6, 6, 80))
    out = []
    for duration in (2.0, 4.0, 8.0):
        m = fp.FokkerPlanck(g, energy=lambda x, t, d=duration: 0.5 * (1 + 3 * t / d) * x**2)
        q0 = m.at(0.0).equilibrium()
        ds = m.solve(q0, duration, 0.02, "tr_bdf2", save_every=duration)
        dF = m.equilibrium_free_energy(duration) - m.equilibrium_free_energy(0.0)
        out.append(ds.work.values[-1] - dF)
    out = np.array(out)
    assert np.all(out > 0)
    assert np.all(np.abs(out[:-1] / out[1:] - 2.0) < 0.25), out

"""Time-dependent models: re-assembly of L(t), steppers' orders, breakpoints, bad input."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from helpers import dragged_trap, stiffening_trap
from scipy.integrate import solve_ivp

import fpsolver as fp
from fpsolver.core.protocol import ProtocolError, TimeDependentModel
from fpsolver.discrete.protocol import TimeDependentGenerator, entropy_production
from fpsolver.integrate.protocol import PROTOCOL_METHODS

FIXED = ["backward_euler", "crank_nicolson", "bdf2", "tr_bdf2"]


dragged, stiffening = dragged_trap, stiffening_trap


# -- model and dispatch ---------------------------------------------------------
def test_dispatch_returns_a_time_dependent_model_and_frozen_models_are_unchanged():
    g = fp.Grid(x=(-3, 3, 20))
    m = fp.FokkerPlanck(g, energy=lambda x, t: x * t)
    assert isinstance(m, TimeDependentModel) and m.depends == {"energy"}
    assert type(m.at(0.5)) is fp.FokkerPlanck
    assert fp.FokkerPlanck(g, 0.0, lambda t: 1 + t).depends == {"temperature"}
    frozen = fp.FokkerPlanck(g, energy=lambda x: x**2, temperature=0.5)
    assert type(frozen) is fp.FokkerPlanck and frozen.temperature == 0.5
    assert type(copy.deepcopy(frozen)) is fp.FokkerPlanck


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(energy=lambda x, y, t: (x - t) ** 2 + 0.5 * y**2, temperature=lambda t: 1 + t),
        dict(energy=lambda x, y, t: np.sin(x - t) + 0.3 * x + y**2, periodic=("x",)),
        dict(energy=lambda x, y, t: x * t + y**2, boundary={"x": ("absorbing", "reflecting")}),
        dict(energy=lambda x, y, t: x * y * t, force=(0.5, -0.2)),
        dict(energy=lambda x, y: x**2, mobility=lambda x, y, t: 1 + 0.5 * np.sin(x + t) ** 2),
        dict(energy=lambda x, y: x**2 + y**2, force=lambda x, y, t: (-t * y, t * x)),
    ],
    ids=["trap_T", "periodic_tilt", "absorbing", "const_force", "mobility_t", "force_t"],
)
def test_reassembled_generator_equals_the_frozen_one_at_every_time(kwargs):
    kwargs = dict(kwargs)
    per = kwargs.pop("periodic", ())
    g = fp.Grid(x=(-np.pi, np.pi, 24), y=(-2, 2, 10), periodic=per)
    m = fp.FokkerPlanck(g, **kwargs)
    gen = TimeDependentGenerator(m)
    assert gen.fast == (not ({"mobility", "force"} & m.depends))
    V = g.volumes.ravel()
    for t in (0.0, 0.37, 1.9):
        L = gen(t).L
        ref = m.at(t).generator()
        scale = abs(ref).max()
        assert abs(L - ref).max() <= 1e-14 * scale
        off = L.copy()
        off.setdiag(0)
        assert off.min() >= 0
        if not m.boundary.absorbing:
            assert np.abs(V @ L).max() <= 1e-14 * scale


def test_pattern_is_fixed_and_only_values_change():
    m = dragged(40)
    gen = TimeDependentGenerator(m)
    a, b = gen(0.1).L, gen(0.2).L
    assert np.array_equal(a.indices, b.indices) and np.array_equal(a.indptr, b.indptr)
    assert gen.assemblies == 2 and gen(0.1) is gen(0.1) and gen.assemblies == 2


# -- observed orders -----------------------------------------------------------
def _self_order(model, method, dts, t_end=1.0, breakpoints=()):
    V = model.grid.volumes.ravel()
    p0 = fp.gaussian(model.grid, 0.5, 0.5)
    ends = [
        model.solve(p0, t_end, dt, method, save_every=t_end, breakpoints=breakpoints)
        .p.values[-1]
        .ravel()
        for dt in dts
    ]
    e1 = np.sum(V * np.abs(ends[0] - ends[1]))
    e2 = np.sum(V * np.abs(ends[1] - ends[2]))
    return np.log2(e1 / e2)


@pytest.mark.parametrize("method", FIXED)
@pytest.mark.parametrize("make", [dragged, stiffening], ids=["dragged", "stiffening"])
def test_observed_time_order_on_one_grid(make, method):
    order = PROTOCOL_METHODS[method].order
    observed = _self_order(make(), method, [0.05, 0.025, 0.0125])
    assert order - 0.15 < observed < order + 0.3, observed


@pytest.mark.parametrize("method", ["tr_bdf2", "bdf2"])
def test_order_kept_across_a_switch_that_the_steps_land_on(method):
    g = fp.Grid(x=(-8, 8, 160))
    m = fp.FokkerPlanck(g, energy=lambda x, t: 0.5 * (x - (t >= 0.33)) ** 2)
    observed = _self_order(m, method, [0.05, 0.025, 0.0125], breakpoints=[0.33])
    assert 1.85 < observed < 2.3, observed


def test_exact_gaussian_moments_of_both_protocols():
    """Mean and variance against the linear ODEs; errors fall as h² (spatial order 2)."""
    cases = [
        (lambda x, t: 0.5 * 2.0 * (x - t) ** 2, lambda t: 2.0, lambda t: t, 1.0),
        (lambda x, t: 0.5 * (1 + 2 * t) * x**2, lambda t: 1 + 2 * t, lambda t: 0.0, 0.7),
    ]
    for energy, k, c, T in cases:

        def ode(t, y, k=k, c=c, T=T):
            return [-k(t) * (y[0] - c(t)), -2 * k(t) * y[1] + 2 * T]

        ref = solve_ivp(ode, (0, 1), [0.5, 0.25], rtol=1e-12, atol=1e-14).y[:, -1]
        errs = []
        for n in (100, 200):
            m = fp.FokkerPlanck(fp.Grid(x=(-7, 7, n)), energy=energy, temperature=T)
            ds = m.solve(fp.gaussian(m.grid, 0.5, 0.25), 1.0, 0.002, "tr_bdf2", save_every=1.0)
            errs.append([abs(ds["mean"].values[-1, 0] - ref[0]),
                         abs(ds["covariance"].values[-1, 0, 0] - ref[1])])  # fmt: skip
        errs = np.array(errs)
        assert errs[1].max() < 2e-3
        ratio = errs[0] / errs[1]
        assert np.all(ratio > 3.0), (errs, ratio)


# -- adaptive and breakpoints --------------------------------------------------
def test_adaptive_lands_on_a_switch_and_matches_a_fine_fixed_step_run():
    g = fp.Grid(x=(-8, 8, 160))
    m = fp.FokkerPlanck(g, energy=lambda x, t: 0.5 * (x - 2.0 * (t >= 0.7)) ** 2)
    p0 = fp.gaussian(g, 0.0, 1.0)
    ds = m.solve(p0, 2.0, rtol=1e-5, breakpoints=[0.7])
    assert 0.7 in ds.time.values.tolist()
    ref = m.solve(p0, 2.0, 0.002, "tr_bdf2", save_every=2.0, breakpoints=[0.7])
    V = g.volumes.ravel()
    err = np.sum(V * np.abs(ds.p.values[-1] - ref.p.values[-1]).ravel())
    assert err < 2e-3
    # the jump's work: Σ V p (E⁺ − E⁻) at t = 0.7, booked in full
    i = ds.time.values.tolist().index(0.7)
    p = ds.p.values[i].ravel()
    x = g.centers[0]
    jump = np.sum(V * p * (0.5 * (x - 2) ** 2 - 0.5 * x**2))
    U, W, Q = (ds[v].values for v in ("mean_energy", "work", "heat"))
    assert abs((U[i + 1] - U[i]) - (W[i + 1] - W[i]) + (Q[i + 1] - Q[i])) < 1e-13
    assert abs((W[i + 1] - W[i]) - jump) < 0.05 * abs(jump)  # plus one short step's work


def test_the_model_can_declare_its_own_breakpoints():
    g = fp.Grid(x=(-6, 6, 60))
    m = fp.TimeDependentFokkerPlanck(
        g, lambda x, t: 0.5 * (x - (t > 0.45)) ** 2, breakpoints=[0.45]
    )
    ds = m.solve(fp.gaussian(g, 0.0, 1.0), 1.0)
    assert 0.45 in ds.time.values.tolist() and ds.attrs["breakpoints"] == [0.45]


# -- bad input -------------------------------------------------------------------
def test_nan_protocol_raises_naming_t_and_keeps_the_frames():
    g = fp.Grid(x=(-4, 4, 40))
    m = fp.FokkerPlanck(g, energy=lambda x, t: x**2 * (1 + t) if t < 0.525 else np.nan * x)
    with pytest.raises(ProtocolError, match=r"`energy` returned nan at t=0\.53") as info:
        m.solve(fp.gaussian(g, 0.0, 1.0), 1.0, 0.01, "backward_euler", save_every=0.1)
    part = info.value.partial
    assert part.time.values[-1] == pytest.approx(0.5) and part.sizes["time"] == 6
    assert "t=0.53" in part.attrs["stopped"] and info.value.t == pytest.approx(0.53)


def test_non_positive_temperature_raises_naming_t():
    g = fp.Grid(x=(-4, 4, 40))
    m = fp.FokkerPlanck(g, energy=lambda x: x**2, temperature=lambda t: 1.0 - 2.0 * t)
    with pytest.raises(ProtocolError, match=r"`temperature` returned .* at t=0\.5") as info:
        m.solve(fp.gaussian(g, 0.0, 1.0), 1.0, 0.1, "backward_euler")
    assert info.value.partial.time.values[-1] == pytest.approx(0.4)
    with pytest.raises(ProtocolError, match="t=0"):
        fp.FokkerPlanck(g, energy=lambda x: x**2, temperature=lambda t: -1.0)


def test_unsupported_options_are_refused_by_name():
    m = dragged(20)
    with pytest.raises(ValueError, match="`checkpoint` is not supported"):
        fp.solve(m, fp.gaussian(m.grid, 0.0, 1.0), 1.0, 0.1, checkpoint="x.nc")
    with pytest.raises(ValueError, match="`method` must be one of"):
        m.solve(fp.gaussian(m.grid, 0.0, 1.0), 1.0, 0.1, "exponential")


def test_entropy_production_vanishes_exactly_at_the_frozen_gibbs_density():
    m = stiffening(80)
    snap = TimeDependentGenerator(m)(0.4)
    q = np.exp(m.at(0.4).log_equilibrium()).ravel()
    assert entropy_production(snap, q) < 1e-14
    assert entropy_production(snap, fp.gaussian(m.grid, 1.0, 0.3).values.ravel()) > 0.1

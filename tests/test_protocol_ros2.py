"""ROS2, the Rosenbrock W-method for time-dependent models: order with a stale W, mass, switches."""

from __future__ import annotations

import math

import numpy as np
import pytest
from helpers import dragged_trap, stiffening_trap

import fpsolver as fp
from fpsolver.discrete.protocol import TimeDependentGenerator
from fpsolver.integrate.protocol import ROS2Protocol, make_protocol_stepper

# Past the pre-asymptotic range of ROS2 on these stiff problems (h‖L‖ ≈ 0.1–0.5).
DTS = [0.00625, 0.003125, 0.0015625]


dragged, stiffening = dragged_trap, stiffening_trap


def _order(ends, V):
    e1 = np.sum(V * np.abs(ends[0] - ends[1]))
    e2 = np.sum(V * np.abs(ends[1] - ends[2]))
    return np.log2(e1 / e2)


def _drive(model, dt, t_end=1.0, **options):
    """Run the stepper directly (options the public solve does not take); (p, stepper)."""
    stepper = make_protocol_stepper("ros2", TimeDependentGenerator(model), dt=dt, **options)
    p = fp.gaussian(model.grid, 0.5, 0.5).values.ravel()
    t = model.t0
    while t < t_end:
        t, p, _, _ = stepper.step_to(t, p, t_end, after_break=False, to_break=False)
    return p, stepper


@pytest.mark.parametrize("linear_solver", ["lu", "reuse"])
@pytest.mark.parametrize("make", [dragged, stiffening], ids=["dragged", "stiffening"])
def test_observed_order_two_with_fresh_and_with_stale_w(make, linear_solver):
    m = make()
    V = m.grid.volumes.ravel()
    p0 = fp.gaussian(m.grid, 0.5, 0.5)
    runs = [m.solve(p0, 1.0, dt, "ros2", save_every=1.0, linear_solver=linear_solver) for dt in DTS]
    observed = _order([ds.p.values[-1].ravel() for ds in runs], V)
    assert 1.85 < observed < 2.3, observed
    for ds in runs:
        steps, facs = ds.attrs["steps"], ds.attrs["factorizations"]
        assert np.abs(ds.mass.values - 1).max() < 1e-13
        if linear_solver == "lu":
            assert facs == steps  # W = L(t_n): a plain Rosenbrock method
        elif make is dragged:
            assert facs <= 5 and steps >= 160  # a slow protocol: W reused
        else:
            assert 1 < facs < steps / 4  # stiffness triples: W refreshed, still reused
        # a W-method solves with its stale W as it is: no Richardson iterations to report
        assert "richardson_iterations" not in ds.attrs


def test_ros2_accurate_has_order_two_and_the_time_error_of_tr_bdf2():
    """γ = 1 − 1/√2: error constant 0.040 against TR-BDF2's, −1.37 for γ = 1 + 1/√2."""
    m = dragged()
    V = m.grid.volumes.ravel()
    p0 = fp.gaussian(m.grid, 0.5, 0.5)

    def run(method, dt):
        return m.solve(p0, 1.0, dt, method, save_every=1.0, linear_solver="reuse").p.values[-1]

    ends = [run("ros2_accurate", dt) for dt in DTS]
    assert 1.85 < _order(ends, V) < 2.3
    ref = run("tr_bdf2", DTS[-1] / 4)
    errors = {
        k: np.sum(V * np.abs(run(k, DTS[0]) - ref)) for k in ("ros2", "ros2_accurate", "tr_bdf2")
    }
    assert errors["ros2_accurate"] < 0.2 * errors["ros2"]
    assert errors["ros2_accurate"] < 2.0 * errors["tr_bdf2"]


@pytest.mark.parametrize("make", [dragged, stiffening], ids=["dragged", "stiffening"])
def test_order_two_with_w_never_refreshed(make):
    """W = L(t0) for the whole run: the W-method property, no ∂L/∂t needed."""
    m = make()
    out = [_drive(m, dt, linear_solver="reuse", refresh=math.inf) for dt in DTS]
    assert all(s.factorizations == 1 for _, s in out)
    observed = _order([p for p, _ in out], m.grid.volumes.ravel())
    assert 1.85 < observed < 2.3, observed


def test_mass_is_conserved_to_rounding_with_a_stale_w_and_a_non_reversible_model():
    g = fp.Grid(x=(-np.pi, np.pi, 24), y=(-2, 2, 12), periodic=("x",))
    m = fp.FokkerPlanck(
        g,
        energy=lambda x, y, t: np.sin(x - 2 * t) + (1 + t) * y**2,
        force=(0.7, 0.0),
        temperature=lambda t: 1 + 0.5 * t,
    )
    V = g.volumes.ravel()
    gen = TimeDependentGenerator(m)
    stepper = make_protocol_stepper("ros2", gen, dt=0.05, linear_solver="reuse")
    p = fp.gaussian(g, (0.0, 0.3), 0.4).values.ravel()
    k1 = stepper.factor(gen(0.0), stepper.gamma * 0.05).solve(gen(0.0).L @ p)
    assert abs(V @ k1) <= 1e-15 * np.sum(V * np.abs(k1))
    for k in range(40):
        new = stepper.advance(p, 0.05, 0.05 * k, 0.05 * (k + 1))
        assert abs(V @ new - V @ p) <= 1e-14
        p = new
    assert 1 < stepper.factorizations < 40


def test_a_switch_is_handled_at_its_breakpoint():
    g = fp.Grid(x=(-8, 8, 160))
    m = fp.FokkerPlanck(g, energy=lambda x, t: 0.5 * (x - (t >= 0.33)) ** 2)
    V = g.volumes.ravel()
    p0 = fp.gaussian(g, 0.5, 0.5)

    def end(dt, breaks, ls="reuse"):
        ds = m.solve(p0, 1.0, dt, "ros2", save_every=1.0, breakpoints=breaks, linear_solver=ls)
        return ds.p.values[-1].ravel(), ds.attrs["factorizations"]

    landed = [end(dt, [0.33]) for dt in DTS]
    assert 1.85 < _order([p for p, _ in landed], V) < 2.3
    assert all(f >= 2 for _, f in landed)  # W refactorised after the jump
    ref = end(DTS[-1] / 2, [0.33])[0]
    for dt, (p, _) in zip(DTS, landed):  # 0.33 falls inside a step of each dt
        err_over = np.sum(V * np.abs(end(dt, [])[0] - ref))
        assert np.sum(V * np.abs(p - ref)) < 0.1 * err_over


def test_ros2_on_a_frozen_model_is_refused_by_name():
    m = fp.FokkerPlanck(fp.Grid(x=(-3, 3, 20)), energy=lambda x: x**2)
    with pytest.raises(ValueError, match=r"`method` must be one of .*'tr_bdf2'.*got 'ros2'"):
        m.solve(fp.gaussian(m.grid, 0.0, 1.0), 1.0, 0.1, "ros2")


def test_bad_options_are_refused_by_name():
    gen = TimeDependentGenerator(dragged(20))
    with pytest.raises(ValueError, match=r"`refresh` must be positive .*got 0"):
        ROS2Protocol(gen, dt=0.1, refresh=0)
    with pytest.raises(ValueError, match=r"`gamma` must be at least 1/4 .*got 0.2"):
        ROS2Protocol(gen, dt=0.1, gamma=0.2)
    with pytest.raises(ValueError, match="`dt` is required"):
        ROS2Protocol(gen)


CONFIG = """
[grid]
x = [-6, 6, 60]
[model]
energy = "0.5*(x - 0.5*t)**2"
temperature = 1.0
[initial]
type = "gaussian"
mean = [0.0]
cov = 1.0
[solve]
t_end = 0.5
dt = 0.05
method = "ros2"
[output]
name = "drag"
figures = false
"""


def test_a_config_may_name_ros2_for_a_time_dependent_model(tmp_path):
    from fpsolver.cli.app import main
    from fpsolver.cli.config import ConfigError, load_config

    path = tmp_path / "c.toml"
    path.write_text(CONFIG)
    assert main(["run", str(path), "-o", str(tmp_path / "o")]) == 0
    import xarray as xr

    with xr.open_dataset(tmp_path / "o" / "drag.nc") as ds:
        assert ds.attrs["method"] == "ros2" and abs(float(ds.mass[-1]) - 1) < 1e-13
    path.write_text(CONFIG.replace('"ros2"', '"ros3"'))
    with pytest.raises(ConfigError, match=r"unknown method 'ros3'; valid: .*also: ros2"):
        load_config(path)


def test_richardson_iterations_are_reported_where_stale_solves_are_refined():
    m = dragged()
    p0 = fp.gaussian(m.grid, 0.5, 0.5)
    kw = dict(save_every=1.0, linear_solver="reuse")
    trbdf2 = m.solve(p0, 1.0, 0.05, "tr_bdf2", **kw)
    assert trbdf2.attrs["richardson_iterations"] > 0
    assert "richardson_iterations" not in m.solve(p0, 1.0, 0.05, "ros2", **kw).attrs

"""Inputs that are wrong are refused with a message that names them, not repaired."""

import numpy as np
import pytest

import fpsolver as fp


@pytest.mark.parametrize(
    ("spec", "error", "match"),
    [
        ((0, 1, float("nan")), ValueError, "cell count must be an integer, got nan"),
        ((0, 1, float("inf")), ValueError, "cell count must be an integer, got inf"),
        ((0, 1, None), TypeError, "cell count must be an integer, got None"),
        ((0, 1, 4.5), ValueError, "cell count must be an integer, got 4.5"),
        ((-1e308, 1e308, 4), ValueError, "too wide"),
        ((0, "a", 4), TypeError, "bounds must be numbers"),
    ],
)
def test_grid_axis_errors(spec, error, match):
    with pytest.raises(error, match=match):
        fp.Grid(x=spec)


@pytest.mark.parametrize("name", ["p", "energy", "mass", "time", "free_energy", "mean", "x_face"])
def test_axis_names_that_clash_with_result_variables_are_refused(name):
    with pytest.raises(ValueError, match=f"axis name '{name}' is reserved"):
        fp.Grid(**{name: (0.0, 1.0, 4)})


def test_complex_fields_are_refused_not_truncated():
    g = fp.Grid(x=(0.0, 1.0, 4))
    with pytest.raises(TypeError, match="`energy` must be real"):
        fp.FokkerPlanck(g, energy=np.arange(4.0) + 1e-3j)
    with pytest.raises(TypeError, match="`energy` callable must return real"):
        fp.FokkerPlanck(g, energy=lambda x: x + 1j)
    with pytest.raises(TypeError, match="`force` callable must return real"):
        fp.FokkerPlanck(g, force=lambda x: x * 1j)
    m = fp.FokkerPlanck(g)
    with pytest.raises(TypeError, match="`p0` must be real"):
        m.solve(np.ones(4) + 0j, 0.1, dt=0.1)


def test_a_density_whose_mass_overflows_is_refused():
    g = fp.Grid(x=(0.0, 100.0, 4))
    with pytest.raises(ValueError, match="`p0` has a mass .* that overflows"):
        fp.FokkerPlanck(g).solve(np.full(4, 1.7e308), 0.1, dt=0.1)


def test_a_density_from_another_grid_is_refused():
    g = fp.Grid(x=(0.0, 1.0, 8))
    other = fp.Grid(x=(0.0, 2.0, 8))
    with pytest.raises(ValueError, match="`p0` is on another grid: its 'x' coordinates"):
        fp.FokkerPlanck(g).solve(fp.gaussian(other, 1.0, 0.1), 0.1, dt=0.1)
    # the same grid rebuilt is fine
    same = fp.Grid(x=(0.0, 1.0, 8))
    ds = fp.FokkerPlanck(g).solve(fp.gaussian(same, 0.5, 0.1), 0.1, dt=0.1)
    assert ds.sizes["time"] == 2


def test_a_dt_that_needs_too_many_steps_is_refused_before_starting():
    g = fp.Grid(x=(0.0, 1.0, 8))
    with pytest.raises(ValueError, match=r"needs 1000 steps .* more than `max_steps`=10"):
        fp.FokkerPlanck(g).solve(fp.gaussian(g, 0.5, 0.1), 1.0, dt=1e-3, max_steps=10)

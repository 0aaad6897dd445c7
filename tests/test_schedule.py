"""One save schedule for the grid solver and the particles: both land exactly."""

import numpy as np
import pytest

import fpsolver as fp
from fpsolver.core.schedule import SaveSchedule, substeps


def _ou():
    grid = fp.Grid(x=(-5, 5, 50))
    return fp.FokkerPlanck(grid, energy=lambda x: x**2 / 2, temperature=1.0)


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        (dict(every=0.25), [0.25, 0.5, 0.75, 1.0]),
        (dict(every=0.3), [0.3, 0.6, 0.9, 1.0]),
        (dict(at=[0.7, 0.2, 0.2, 0.0]), [0.2, 0.7, 1.0]),
        (dict(at=[1.0]), [1.0]),
        ({}, [1.0]),
    ],
)
def test_targets_end_at_t_end(kwargs, expected):
    assert list(SaveSchedule(1.0, **kwargs).targets()) == pytest.approx(expected, rel=1e-15)


def test_open_ended_schedule_ends_with_infinity():
    targets = SaveSchedule(None, every=0.5).targets()
    assert [next(targets) for _ in range(3)] == [0.5, 1.0, 1.5]
    assert list(SaveSchedule(None).targets()) == [np.inf]
    with pytest.raises(ValueError, match="open-ended"):
        SaveSchedule(None).times()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(every=0.1, at=[0.5]), "not both"),
        (dict(every=-1.0), "save_every"),
        (dict(at=[2.0]), "beyond"),
        (dict(at=[-0.5]), "non-negative"),
        (dict(at=[np.nan]), "finite"),
    ],
)
def test_schedule_errors_name_the_argument(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SaveSchedule(1.0, **kwargs)


@pytest.mark.parametrize(("span", "dt"), [(1.0, 0.3), (1.0, 0.35), (0.3, 0.07), (2.0, 0.5)])
def test_substeps_cover_the_span_with_bounded_ratios(span, dt):
    hs = substeps(span, dt)
    assert sum(hs) == pytest.approx(span, rel=1e-14)
    assert max(hs) <= dt * (1 + 1e-12)
    assert all(0.5 <= b / a <= 2.0 for a, b in zip(hs, hs[1:]))


@pytest.mark.parametrize(("dt", "save_every"), [(0.1, 0.25), (0.3, None), (0.07, 0.2)])
def test_grid_and_particles_save_at_the_same_times(dt, save_every):
    """dt need not divide the save interval: both backends land exactly."""
    model = _ou()
    p0 = fp.gaussian(model.grid, 1.0, 0.2)
    ds = fp.solve(model, p0, 1.0, dt=dt, method="backward_euler", save_every=save_every or 1.0)
    parts = fp.simulate_particles(model, p0, n=200, t_end=1.0, dt=dt, save_every=save_every, seed=0)
    np.testing.assert_array_equal(ds.time.values, parts.time.values)
    assert parts.time.values[-1] == 1.0


def test_particle_exit_times_land_on_step_ends():
    """Absorption times are step ends: multiples of dt, and save times exactly."""
    grid = fp.Grid(x=(0.0, 1.0, 20))
    model = fp.FokkerPlanck(grid, 0.0, 1.0, boundary="absorbing")
    parts = fp.simulate_particles(
        model, np.full((500, 1), 0.5), t_end=0.25, dt=0.02, save_every=0.1, seed=3
    )
    assert parts.time.values.tolist() == [0.0, 0.1, 0.2, 0.25]
    exits = parts.exit_time.values
    assert exits.size > 0 and exits.max() <= 0.25
    # every exit time is the end of one of the planned steps
    times = parts.time.values
    ends = np.concatenate(
        [t0 + np.cumsum(substeps(t1 - t0, 0.02)) for t0, t1 in zip(times, times[1:])]
    )
    assert np.all(np.min(np.abs(exits[:, None] - ends[None, :]), axis=1) < 1e-15)

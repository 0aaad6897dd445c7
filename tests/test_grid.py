"""Grid geometry: volumes, distances, areas, immutability and input errors."""

import numpy as np
import pytest

import fpsolver as fp


def test_uniform_axis_geometry():
    g = fp.Grid(x=(-1.0, 3.0, 8))
    assert g.shape == (8,) and g.names == ("x",) and g.ndim == 1
    np.testing.assert_allclose(g.widths[0], 0.5, rtol=0, atol=1e-15)
    np.testing.assert_allclose(g.centers[0], -0.75 + 0.5 * np.arange(8), atol=1e-15)
    np.testing.assert_allclose(g.center_distances(0), 0.5, atol=1e-15)
    assert g.volumes.sum() == pytest.approx(4.0, rel=1e-15)


def test_nonuniform_periodic_axis_wrap_distance():
    edges = np.array([0.0, 0.1, 0.3, 0.6, 1.0])
    g = fp.Grid(t=edges, periodic="t")
    c = 0.5 * (edges[1:] + edges[:-1])
    h = g.center_distances(0)
    assert h.size == 4
    np.testing.assert_allclose(h[:3], np.diff(c), atol=1e-15)
    # across the wrap: from the last centre to the first centre shifted by the period
    assert h[3] == pytest.approx(c[0] + 1.0 - c[-1], abs=1e-15)
    np.testing.assert_allclose(g.face_positions(0), edges[1:], atol=0)


def test_volumes_areas_3d_product():
    g = fp.Grid(x=np.array([0.0, 1.0, 3.0]), y=(0, 1, 2), z=(0, 2, 4))
    assert g.volumes.shape == (2, 2, 4)
    assert g.volumes[1, 0, 0] == pytest.approx(2.0 * 0.5 * 0.5, rel=1e-15)
    assert g.volumes.sum() == pytest.approx(3.0 * 1.0 * 2.0, rel=1e-15)
    a = g.face_areas(0)
    assert a.shape == (1, 2, 4)
    np.testing.assert_allclose(a, 0.25, rtol=1e-15)
    assert g.face_areas(2).shape == (2, 2, 1)


def test_grid_is_immutable():
    g = fp.Grid(x=(0, 1, 4))
    with pytest.raises(AttributeError):
        g.shape = (5,)
    with pytest.raises(ValueError):
        g.volumes[0] = 3.0
    with pytest.raises(ValueError):
        g.centers[0][0] = 3.0


def test_attrs_round_trip_and_equality():
    g = fp.Grid(x=np.array([0.0, 0.2, 0.5, 1.0]), y=(0, 1, 3), periodic="y")
    g2 = fp.Grid.from_attrs(g.to_attrs())
    assert g2 == g and hash(g2) == hash(g)
    assert g2 != fp.Grid(x=np.array([0.0, 0.2, 0.5, 1.0]), y=(0, 1, 3))


def test_data_array_coordinates():
    g = fp.Grid(x=(0, 1, 4), y=(0, 2, 3))
    da = g.data_array(np.zeros(g.shape), "p")
    assert da.dims == ("x", "y")
    np.testing.assert_allclose(da["y"].values, [1 / 3, 1, 5 / 3], rtol=1e-15)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"x": (0, 1, 1)}, "at least 2 cells"),
        ({"x": (1, 0, 4)}, "lower < upper"),
        ({"x": (0, 1, 2.5)}, "integer"),
        ({"x": [0.0, 0.5, 0.4, 1.0]}, "strictly increasing"),
        ({"x": [0.0, 1.0]}, "at least 2 cells"),
        ({"x": [0.0, np.nan, 1.0]}, "finite"),
        ({"x": (0, np.inf, 4)}, "finite"),
        ({"x": np.zeros((2, 2))}, "1-D array"),
        ({"x": (0, 1, 4), "periodic": "y"}, "unknown axes"),
        ({"time": (0, 1, 4)}, "reserved"),
        ({}, "at least one axis"),
    ],
)
def test_bad_axes_raise_clear_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        fp.Grid(**kwargs)

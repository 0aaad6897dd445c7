"""Model construction: accepted input forms and clear errors for bad input."""

import numpy as np
import pytest

import fpsolver as fp
from fpsolver.core.boundary import parse_boundary


@pytest.fixture
def grid2():
    return fp.Grid(x=(-1, 1, 8), y=(0, 2, 6))


def double_well(x, y):
    return (x**2 - 1) ** 2 + 0.5 * y**2


def test_energy_forms_agree(grid2):
    """Callable (keyword or positional), array and DataArray energies give the same L."""
    X, Y = grid2.mesh()
    E = double_well(X, Y)
    forms = [
        double_well,
        lambda a, b: (a**2 - 1) ** 2 + 0.5 * b**2,  # positional: names differ
        E,
        grid2.data_array(E, "E").transpose("y", "x"),  # dims in another order
    ]
    Ls = [fp.FokkerPlanck(grid2, f, 0.5).generator().toarray() for f in forms]
    for L in Ls[1:]:
        np.testing.assert_array_equal(L, Ls[0])


def test_mobility_forms_agree(grid2):
    X, _ = grid2.mesh()
    per_axis = fp.FokkerPlanck(grid2, double_well, 0.5, mobility=[2.0, 3.0]).generator()
    cells = np.stack([np.full(grid2.shape, 2.0), np.full(grid2.shape, 3.0)])
    as_cells = fp.FokkerPlanck(grid2, double_well, 0.5, mobility=cells).generator()
    as_call = fp.FokkerPlanck(grid2, double_well, 0.5, mobility=lambda x, y: [2.0, 3.0]).generator()
    np.testing.assert_allclose(per_axis.toarray(), as_cells.toarray(), rtol=1e-15)
    np.testing.assert_allclose(per_axis.toarray(), as_call.toarray(), rtol=1e-15)
    # scalar mobility scales the generator
    one = fp.FokkerPlanck(grid2, double_well, 0.5).generator().toarray()
    two = fp.FokkerPlanck(grid2, double_well, 0.5, mobility=2.0).generator().toarray()
    np.testing.assert_allclose(two, 2 * one, rtol=1e-15)


def test_array_mobility_uses_harmonic_face_mean():
    g = fp.Grid(x=(0, 1, 2))
    m = fp.FokkerPlanck(g, 0.0, 1.0, mobility=np.array([1.0, 3.0]))
    L = m.generator().toarray()
    # T K A / h / V with K = 2·1·3/(1+3) = 1.5, h = 0.5, V = 0.5
    assert L[0, 1] == pytest.approx(1.5 / 0.5 / 0.5, rel=1e-15)


def test_boundary_specs(grid2):
    b = parse_boundary(grid2, {"x": ("absorbing", "reflecting")})
    assert b.sides == (("absorbing", "reflecting"), ("reflecting", "reflecting"))
    per = fp.Grid(x=(0, 1, 4), y=(0, 1, 4), periodic="y")
    assert parse_boundary(per, "absorbing").sides == (
        ("absorbing", "absorbing"),
        ("periodic", "periodic"),
    )
    assert "absorbing" in repr(fp.FokkerPlanck(per, 0.0, 1.0, boundary="absorbing"))


@pytest.mark.parametrize("T", [0.0, -1.0, np.nan, np.inf])
def test_bad_temperature(grid2, T):
    with pytest.raises(ValueError, match=r"`temperature` must be positive and finite, got"):
        fp.FokkerPlanck(grid2, double_well, T)


def test_temperature_type(grid2):
    with pytest.raises(TypeError, match="`temperature`"):
        fp.FokkerPlanck(grid2, double_well, "hot")


@pytest.mark.parametrize(
    "mobility",
    [0.0, -2.0, np.nan, np.inf, [1.0, -1.0], lambda x, y: -1.0 + 0 * x],
)
def test_bad_mobility(grid2, mobility):
    with pytest.raises(ValueError, match="`mobility` must be positive and finite"):
        fp.FokkerPlanck(grid2, double_well, 1.0, mobility=mobility)


def test_mobility_wrong_shape(grid2):
    with pytest.raises(ValueError, match=r"`mobility` must be a scalar.*got shape \(3,\)"):
        fp.FokkerPlanck(grid2, double_well, 1.0, mobility=[1.0, 2.0, 3.0])


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nonfinite_energy(grid2, bad):
    E = np.zeros(grid2.shape)
    E[3, 2] = bad
    with pytest.raises(ValueError, match=r"`energy` must be finite everywhere.*cell \(3, 2\)"):
        fp.FokkerPlanck(grid2, E, 1.0)
    with pytest.raises(ValueError, match="`energy` must be finite"):
        fp.FokkerPlanck(grid2, lambda x, y: np.where(x > 0, bad, 0.0), 1.0)


def test_energy_wrong_shape(grid2):
    with pytest.raises(ValueError, match=r"`energy` must have the grid shape \(8, 6\), got"):
        fp.FokkerPlanck(grid2, np.zeros((6, 8)), 1.0)
    with pytest.raises(ValueError, match=r"`energy` callable returned shape"):
        fp.FokkerPlanck(grid2, lambda x, y: np.zeros(5), 1.0)
    with pytest.raises(ValueError, match=r"`energy` has dims"):
        fp.FokkerPlanck(
            grid2, fp.Grid(a=(0, 1, 8), b=(0, 1, 6)).data_array(np.zeros((8, 6)), "E"), 1
        )


def test_energy_callable_failure_is_reported(grid2):
    with pytest.raises(ValueError, match="`energy` callable failed"):
        fp.FokkerPlanck(grid2, lambda x: x, 1.0)  # one argument for a 2-D grid


@pytest.mark.parametrize(
    "spec, match",
    [
        ("sticky", "unknown condition 'sticky'; valid: reflecting, absorbing"),
        ({"z": "absorbing"}, "unknown axes"),
        ({"x": ("absorbing",)}, "expected a kind or a"),
        ({"x": ("absorbing", "glue")}, "upper side: unknown condition 'glue'"),
        (3, None),
    ],
)
def test_bad_boundary(grid2, spec, match):
    err = TypeError if match is None else ValueError
    with pytest.raises(err, match=match or "`boundary` must be a string or a mapping"):
        fp.FokkerPlanck(grid2, double_well, 1.0, boundary=spec)


def test_absorbing_on_periodic_axis_rejected():
    g = fp.Grid(x=(0, 1, 4), periodic="x")
    with pytest.raises(ValueError, match="periodic and has no walls"):
        fp.FokkerPlanck(g, 0.0, 1.0, boundary={"x": "absorbing"})


def test_bad_force(grid2):
    with pytest.raises(ValueError, match=r"`force` must have one component per axis \(2"):
        fp.FokkerPlanck(grid2, double_well, 1.0, force=[1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match=r"`force` must return 2 components"):
        fp.FokkerPlanck(grid2, double_well, 1.0, force=lambda x, y: (x, y, x))
    with pytest.raises(ValueError, match=r"`force` must be finite"):
        fp.FokkerPlanck(grid2, double_well, 1.0, force=[np.nan, 0.0])


def test_from_drift_matches_force_route():
    """f = −K∇E given as a drift reproduces the energy model's generator."""
    g = fp.Grid(x=(-2, 2, 30), y=(-1, 1, 10))
    T, K = 0.7, 1.3
    energy_model = fp.FokkerPlanck(g, lambda x, y: 0.5 * x**2 + y**2, T, mobility=K)
    drift_model = fp.FokkerPlanck.from_drift(g, lambda x, y: (-K * x, -2 * K * y), diffusion=K * T)
    # On a uniform grid the force of a linear drift at the face midpoint times h
    # is exactly the energy difference, (x_j² − x_i²)/2 = h (x_i + x_j)/2: the
    # generators agree entry by entry to rounding (measured: 5e-16 relative).
    A, B = energy_model.generator().toarray(), drift_model.generator().toarray()
    np.testing.assert_allclose(B, A, rtol=1e-13, atol=0)
    assert not drift_model.reversible
    with pytest.raises(ValueError, match="`drift` must have one component per axis"):
        fp.FokkerPlanck.from_drift(g, [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="`drift` must return 2 components"):
        fp.FokkerPlanck.from_drift(g, lambda x, y: x)


def test_from_drift_linear_force_is_exact_on_uniform_grid():
    """For a linear drift the face-midpoint force equals the exact potential difference."""
    g = fp.Grid(x=(-2, 2, 16))
    T = 1.0
    energy_model = fp.FokkerPlanck(g, lambda x: 0.5 * x**2, T)
    drift_model = fp.FokkerPlanck.from_drift(g, lambda x: -x, diffusion=1.0)
    np.testing.assert_allclose(
        drift_model.generator().toarray(), energy_model.generator().toarray(), rtol=1e-13, atol=0
    )


def test_model_is_cached_and_generator_reused(grid2):
    m = fp.FokkerPlanck(grid2, double_well, 0.5)
    assert m.generator() is m.generator()
    with pytest.raises(ValueError):
        m.energy[0, 0] = 1.0
    with pytest.raises(AttributeError, match="immutable"):
        m.temperature = 2.0  # would otherwise leave a stale cached generator

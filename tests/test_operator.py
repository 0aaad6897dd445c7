"""The operator between physics and numerics, and the public names around it."""

import numpy as np
import pytest

import fpsolver as fp
from fpsolver.core.analytic import linear_moments


def _model(**kw):
    grid = fp.Grid(x=(-3, 3, 30), y=(-2, 2, 20))
    return fp.FokkerPlanck(grid, energy=lambda x, y: 0.5 * x**2 + y**4, temperature=0.7, **kw)


def test_operator_properties_are_computed_once_and_shared():
    m = _model()
    op = fp.discretize(m)
    assert op is m.operator is fp.discretize(m)
    assert op.generator is m.generator() and op.generator is op.generator
    assert op.symmetric is op.symmetric and op.backward is op.backward
    # a bare Model gets a fresh operator with the same matrix
    bare = fp.Model(m.grid, m.energy, m.temperature)
    other = fp.discretize(bare)
    assert other is not op
    assert (other.generator != op.generator).nnz == 0


def _energy(x, y):  # module level: picklable
    return 0.5 * x**2 + y**4


def test_model_and_operator_form_no_reference_cycle():
    """Dropping a model frees its operator by reference counting, without gc."""
    import gc
    import weakref

    m = fp.FokkerPlanck(fp.Grid(x=(-3, 3, 30), y=(-2, 2, 20)), _energy, 0.7)
    m.generator()
    refs = [weakref.ref(m), weakref.ref(m.operator), weakref.ref(m.operator.model)]
    assert m.operator.model is not m and m.operator.model.energy is m.energy
    enabled = gc.isenabled()
    gc.disable()
    try:
        del m
        assert [r() for r in refs] == [None, None, None]
    finally:
        if enabled:
            gc.enable()


def test_operator_of_a_temporary_model_keeps_its_physics():
    op = fp.discretize(_model())  # the model itself is dropped at once
    assert op.model.operator is op  # the copy finds its operator
    assert op.generator.shape == (600, 600)
    twin = op.model
    L = op.generator
    del op
    assert (twin.operator.generator != L).nnz == 0  # rebuilt for the orphaned copy
    assert twin.operator is twin.operator


def test_pickled_model_leaves_its_operator_behind():
    import pickle

    m = fp.FokkerPlanck(fp.Grid(x=(-3, 3, 30), y=(-2, 2, 20)), _energy, 0.7)
    L = m.generator()
    back = pickle.loads(pickle.dumps(m))
    assert "_operator" in vars(m) and "_operator" not in vars(back)
    assert (back.generator() != L).nnz == 0


def test_operator_numerics_accept_an_operator():
    m = _model()
    op = fp.discretize(m)
    a = fp.spectrum(op, 3)["rate"].values
    b = m.spectrum(3)["rate"].values
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(fp.stationary(op).values, m.stationary().values)


def test_backward_generator_is_the_volume_weighted_adjoint():
    op = _model(force=[0.3, -0.2]).operator
    V = op.grid.volumes.ravel()
    L, Lb = op.generator.toarray(), op.backward.toarray()
    np.testing.assert_allclose(
        V[:, None] * Lb, (V[:, None] * L).T, rtol=0, atol=1e-13 * abs(L).max()
    )
    assert np.abs(Lb @ np.ones(V.size)).max() <= 1e-13 * np.abs(L).max()


def test_partition_function_and_equilibrium_free_energy():
    m = _model()
    E, T, V = m.energy, m.temperature, m.grid.volumes
    q = m.equilibrium().values
    lnZ = np.log(np.sum(V * np.exp(-E / T)))
    assert m.log_partition() == pytest.approx(lnZ, rel=1e-14)
    assert m.equilibrium_free_energy == pytest.approx(-T * lnZ, rel=1e-14)
    # F[q] = F_eq exactly: the free energy of the Gibbs density
    assert m.free_energy(q) == pytest.approx(m.equilibrium_free_energy, rel=1e-13)


def test_relative_entropy_is_free_energy_excess():
    m = _model()
    p0 = fp.gaussian(m.grid, (1.0, 0.0), 0.3)
    kl = m.relative_entropy(p0)
    excess = (m.free_energy(p0) - m.equilibrium_free_energy) / m.temperature
    assert kl == pytest.approx(excess, rel=1e-12)


def test_grid_mean_and_covariance_follow_the_exact_ou_moments():
    """2-D OU with a coupled drift: the grid moments converge to the exact ones."""
    A = np.array([[1.0, 0.4], [0.4, 0.8]])  # E = x·A x / 2
    errors = []
    for n in (24, 48):
        g = fp.Grid(x=(-6, 6, n), y=(-6, 6, n))
        m = fp.FokkerPlanck(
            g, lambda x, y: 0.5 * (A[0, 0] * x**2 + 2 * A[0, 1] * x * y + A[1, 1] * y**2)
        )
        ds = m.solve(
            fp.gaussian(g, (1.5, -1.0), 0.2), 0.5, dt=1e-3, method="tr_bdf2", save_every=0.5
        )
        mean, cov = linear_moments(A, np.eye(2), [1.5, -1.0], 0.2 * np.eye(2), 0.5)
        errors.append(
            max(
                np.abs(ds["mean"][-1].values - mean).max(),
                np.abs(ds["covariance"][-1].values - cov).max(),
            )
        )
        assert ds["mean"].dims == ("time", "axis") and ds["covariance"].dims == (
            "time",
            "axis",
            "axis2",
        )
    assert np.log2(errors[0] / errors[1]) > 1.7  # second order in h


def test_point_mass_and_as_density_share_the_type_of_gaussian():
    g = fp.Grid(x=(0.0, 1.0, 5), y=(0.0, 2.0, 4))
    d = fp.point_mass(g, (0.45, 1.2))
    assert (
        type(d)
        is type(fp.gaussian(g, (0.5, 1.0), 0.1))
        is type(fp.as_density(g, np.full(g.shape, 0.5)))
    )
    assert float((d * g.volumes).sum()) == 1.0
    assert d.values[2, 2] == 1.0 / g.volumes[2, 2] and np.count_nonzero(d.values) == 1
    with pytest.raises(ValueError, match="outside the grid on axis 'y'"):
        fp.point_mass(g, (0.5, 3.0))
    with pytest.raises(ValueError, match="one coordinate per axis"):
        fp.point_mass(g, 0.5)


def test_diffusion_at_reads_the_cell_of_each_point():
    g = fp.Grid(x=(0.0, 1.0, 4))
    k = np.array([1.0, 2.0, 3.0, 4.0])
    m = fp.FokkerPlanck(g, mobility=k)
    (vals,) = m.diffusion_at([np.array([0.1, 0.3, 0.6, 0.9])])
    np.testing.assert_array_equal(vals, k)


def test_boundary_periodic_works_where_the_grid_is_periodic():
    g = fp.Grid(x=(0.0, 1.0, 8), periodic="x")
    assert fp.FokkerPlanck(g, boundary="periodic").boundary.sides == (("periodic", "periodic"),)
    bounded = fp.Grid(x=(0.0, 1.0, 8))
    with pytest.raises(ValueError, match=r"periodicity is a property of the grid.*periodic='x'"):
        fp.FokkerPlanck(bounded, boundary="periodic")


def test_model_is_physics_only():
    """The bare Model carries no numerics; FokkerPlanck adds thin calls."""
    for name in ("generator", "solve", "spectrum", "stationary", "operator"):
        assert not hasattr(fp.Model, name)
        assert hasattr(fp.FokkerPlanck, name)
    m = _model()
    with pytest.raises(AttributeError, match="immutable"):
        m.temperature = 2.0


def test_absorbing_model_with_force_solves_and_reports_absorbed_mass():
    g = fp.Grid(x=(0.0, 2.0, 40), y=(0.0, 1.0, 10))
    m = fp.FokkerPlanck(g, force=[1.0, 0.0], boundary={"x": ("reflecting", "absorbing")})
    ds = m.solve(fp.gaussian(g, (0.5, 0.5), 0.05), 0.5, dt=0.05, save_every=0.25)
    assert "relative_entropy_ss" not in ds and "absorbed" in ds
    assert ds["mass"][-1] < 1.0 and np.all(np.diff(ds["mass"].values) < 0)
    with pytest.raises(ValueError, match="absorbing walls"):
        m.stationary()

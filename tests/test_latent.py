"""Visible and hidden variables: conditional Gibbs densities and free energies.

Every identity of the conditional free energy is checked to rounding
against the full model's own functionals (the same discrete sums), and the
interpolation between visible cell layers against its definition.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import ULP
from scipy.special import logsumexp

import fpsolver as fp
from fpsolver.analysis.latent import conditioning, marginal_log_partition, restrict
from fpsolver.api.latent import Conditional, condition
from fpsolver.core import diagnostics as dg

T = 0.7


def energy(v, h):
    return 0.5 * (h - np.sin(v)) ** 2 + 0.25 * (v**2 - 1) ** 2 + 0.1 * v * h


@pytest.fixture(scope="module")
def model():
    w = np.linspace(0.08, 0.2, 30)
    edges_v = -2.5 + 5.0 * np.cumsum(np.r_[0.0, w]) / w.sum()  # non-uniform visible axis
    grid = fp.Grid(v=edges_v, h=(-3.5, 3.5, 45))
    return fp.FokkerPlanck(grid, energy=energy, temperature=T)


def _random_density(grid, rng):
    p = rng.random(grid.shape) + 0.05
    return p / np.sum(grid.volumes * p)


def test_conditional_is_a_model_on_the_hidden_axes(model):
    c = model.grid.centers[0][7]
    cond = condition(model, {"v": c})
    assert isinstance(cond, Conditional) and isinstance(cond, fp.FokkerPlanck)
    assert cond.grid.names == ("h",) and np.array_equal(cond.grid.edges[0], model.grid.edges[1])
    assert cond.temperature == T and cond.samples == 1
    # at a cell centre the energy is the cell layer, bit for bit
    assert np.array_equal(cond.energy, model.energy[7])


def test_equilibrium_is_the_full_gibbs_density_divided_by_the_marginal(model):
    grid = model.grid
    q = model.equilibrium().values
    marginal = np.sum(q * grid.widths[1], axis=1)  # m(v) = Σ_h V_h q(v, h)
    lz_v = marginal_log_partition(model, ["v"])
    # m(v) = Z(v) / Z
    np.testing.assert_allclose(marginal, np.exp(lz_v - model.log_partition()), rtol=1e-13)
    for i in (0, 11, len(grid.centers[0]) - 1):
        cond = condition(model, {"v": grid.centers[0][i]})
        np.testing.assert_allclose(cond.equilibrium().values, q[i] / marginal[i], rtol=1e-12)
        assert abs(cond.log_partition() - lz_v[i]) < 8 * ULP * abs(lz_v[i]) + 1e-15


def test_log_partition_is_the_sum_over_visible_cells(model):
    lz_v = marginal_log_partition(model, ["v"])
    total = logsumexp(lz_v, b=model.grid.widths[0])
    assert abs(total - model.log_partition()) < 4 * ULP * abs(total)


def test_free_energy_identities_hold_to_rounding(model):
    rng = np.random.default_rng(1)
    cond = condition(model, {"v": 0.37})
    p = _random_density(cond.grid, rng)
    f = cond.free_energy(p)
    # F[p|v] = <E(v,.)>_p - T H[p]
    vol = cond.grid.volumes
    direct = dg.mean_energy(vol, cond.energy, p) - T * dg.entropy(vol, p)
    assert abs(f - direct) < 1e-14
    # F[p|v] = T KL(p || q(.|v)) - T ln Z(v)
    via_kl = T * cond.relative_entropy(p) - T * cond.log_partition()
    assert abs(f - via_kl) < 1e-13
    # the minimum, at q(.|v), is -T ln Z(v)
    assert abs(cond.free_energy(cond.equilibrium()) + T * cond.log_partition()) < 1e-13


def test_full_free_energy_of_a_density_on_one_visible_cell(model):
    """p(v, h) = 1{v in cell i}/V_i × p_h(h): F[p] = F[p_h | v_i] − T ln V_i."""
    grid = model.grid
    rng = np.random.default_rng(2)
    i = 13
    cond = condition(model, {"v": grid.centers[0][i]})
    p_h = _random_density(cond.grid, rng)
    p = np.zeros(grid.shape)
    p[i] = p_h / grid.widths[0][i]
    expected = cond.free_energy(p_h) - T * np.log(grid.widths[0][i])
    assert abs(model.free_energy(p) - expected) < 1e-13


def test_free_energy_chain_rule(model):
    """F[p] = Σ_v V_v m(v) (F[p(.|v) | v] + T ln m(v)) for any p(v, h)."""
    grid = model.grid
    p = _random_density(grid, np.random.default_rng(3))
    m = np.sum(p * grid.widths[1], axis=1)
    total = 0.0
    for i, v in enumerate(grid.centers[0]):
        cond = condition(model, {"v": v})
        total += grid.widths[0][i] * m[i] * (cond.free_energy(p[i] / m[i]) + T * np.log(m[i]))
    assert abs(model.free_energy(p) - total) < 1e-13


def test_between_cells_the_energy_is_linear_in_the_neighbouring_layers(model):
    grid = model.grid
    c = grid.centers[0]
    for i, w in [(4, 0.5), (4, 0.25), (20, 0.9)]:
        v = (1 - w) * c[i] + w * c[i + 1]
        cond = condition(model, {"v": v})
        ww = (v - c[i]) / (c[i + 1] - c[i])
        expected = (1 - ww) * model.energy[i] + ww * model.energy[i + 1]
        np.testing.assert_allclose(cond.energy, expected, rtol=0, atol=1e-14)
    # beyond the outer centres (inside the walls): the outer layer
    assert np.array_equal(condition(model, {"v": grid.edges[0][0]}).energy, model.energy[0])
    assert np.array_equal(condition(model, {"v": grid.edges[0][-1]}).energy, model.energy[-1])


def test_energy_linear_in_v_is_interpolated_exactly():
    grid = fp.Grid(v=(-2, 2, 16), h=(-3, 3, 20))
    model = fp.FokkerPlanck(grid, energy=lambda v, h: (1 + h**2) * v + np.cos(h))
    for v in (-1.61, 0.03, 1.7):
        cond = condition(model, {"v": v})
        exact = (1 + cond.grid.centers[0] ** 2) * v + np.cos(cond.grid.centers[0])
        np.testing.assert_allclose(cond.energy, exact, rtol=0, atol=1e-13)


def test_data_set_averages_the_free_energy(model):
    rng = np.random.default_rng(4)
    data = rng.uniform(-2.0, 2.0, 9)
    cond = condition(model, {"v": data})
    assert cond.samples == 9 and cond.posterior().sizes["sample"] == 9
    p = _random_density(cond.grid, rng)
    singles = [condition(model, {"v": v}) for v in data]
    f_each = np.array([s.free_energy(p) for s in singles])
    assert abs(cond.free_energy(p) - f_each.mean()) < 1e-13
    np.testing.assert_allclose(
        cond.sample_log_partition(), [s.log_partition() for s in singles], rtol=1e-14
    )
    # mean F[p|v_i] = T mean KL(p || q(.|v_i)) - T mean ln Z(v_i)
    kl = cond.conditioning.relative_entropies(p)
    via_kl = T * kl.mean() - T * cond.sample_log_partition().mean()
    assert abs(cond.free_energy(p) - via_kl) < 1e-13
    # the model's equilibrium minimises the averaged free energy, at -T ln Z_bar
    q = cond.equilibrium().values
    assert abs(cond.free_energy(q) + T * cond.log_partition()) < 1e-13
    assert cond.free_energy(q) < cond.free_energy(p)
    # ... which lies above the average of the per-sample minima
    assert cond.free_energy(q) >= -T * cond.sample_log_partition().mean()


def test_posterior_per_sample_matches_single_conditionals(model):
    data = np.array([-1.3, 0.2, 1.9])
    post = condition(model, {"v": data}).posterior()
    for k, v in enumerate(data):
        np.testing.assert_allclose(
            post.isel(sample=k).values, condition(model, {"v": v}).equilibrium().values, rtol=1e-13
        )
    assert np.allclose(post["v"].values, data)


def test_conditional_relaxes_to_its_equilibrium(model):
    cond = condition(model, {"v": -0.8})
    p0 = fp.gaussian(cond.grid, 2.0, 0.1)
    ds = cond.solve(p0, "equilibrium", tol=1e-10)
    assert np.all(np.diff(ds["free_energy"].values) <= 1e-13)
    assert float(ds["relative_entropy"][-1]) < 1e-10
    assert abs(float(ds["free_energy"][-1]) + T * cond.log_partition()) < 1e-9


def test_gaussian_posterior_is_exact_between_cells_too():
    """E = (h − v)²/2 + v²/2 ⇒ q(h | v) = N(v, T) for every v.

    Interpolating E linearly between two layers changes it only by a
    constant in h when E is quadratic in v, so the conditional is N(v, T)
    off the centres too; the cell sums of a Gaussian are spectrally accurate,
    so what is left is the truncation of the tails at |h| = 8 (below 1e-12).
    """
    grid = fp.Grid(v=(-3, 3, 30), h=(-8, 8, 24))
    model = fp.FokkerPlanck(grid, energy=lambda v, h: 0.5 * (h - v) ** 2 + 0.5 * v**2,
                            temperature=T)  # fmt: skip
    for v in (0.3, grid.centers[0][17], -1.234):
        cond = condition(model, {"v": v})
        q = cond.equilibrium().values
        h = cond.grid.centers[0]
        mean = np.sum(cond.grid.volumes * q * h)
        var = np.sum(cond.grid.volumes * q * (h - mean) ** 2)
        assert abs(mean - v) < 1e-11 and abs(var - T) < 1e-10


def test_several_visible_axes_and_a_periodic_one():
    grid = fp.Grid(a=(0, 2 * np.pi, 24), b=(-1, 1, 10), h=(-2, 2, 12), periodic="a")
    model = fp.FokkerPlanck(grid, energy=lambda a, b, h: np.cos(a) * h + b * h**2 + h**2)
    ca, cb = grid.centers[0], grid.centers[1]
    cond = condition(model, {"a": ca[5], "b": cb[3]})
    assert cond.grid.names == ("h",) and np.array_equal(cond.energy, model.energy[5, 3])
    # across the wrap: halfway between the last and the first centre
    mid = ca[-1] + 0.5 * (ca[0] + 2 * np.pi - ca[-1])
    cond = condition(model, {"a": mid, "b": cb[3]})
    np.testing.assert_allclose(
        cond.energy, 0.5 * (model.energy[-1, 3] + model.energy[0, 3]), rtol=0, atol=1e-15
    )
    # bilinear in (a, b)
    a, b = 0.5 * (ca[2] + ca[3]), 0.25 * cb[6] + 0.75 * cb[7]
    e = model.energy
    expected = 0.5 * (0.25 * e[2, 6] + 0.75 * e[2, 7]) + 0.5 * (0.25 * e[3, 6] + 0.75 * e[3, 7])
    np.testing.assert_allclose(condition(model, {"a": a, "b": b}).energy, expected, atol=1e-14)
    # the hidden axis of a two-axis conditional keeps its walls
    two = condition(model, {"a": 1.0})
    assert two.grid.names == ("b", "h") and two.grid.periodic == (False, False)


def test_visible_axis_between_hidden_ones_keeps_the_hidden_order():
    grid = fp.Grid(h1=(-1, 1, 5), v=(-1, 1, 6), h2=(-1, 1, 7))
    e = np.random.default_rng(5).random(grid.shape)
    model = fp.FokkerPlanck(grid, energy=e)
    cond = condition(model, {"v": grid.centers[1][2]})
    assert cond.grid.names == ("h1", "h2") and np.array_equal(cond.energy, e[:, 2, :])
    out = restrict(grid, np.stack([e, 2 * e]), [1], np.array([[grid.centers[1][4]]]))
    assert out.shape == (2, 1, 5, 7) and np.array_equal(out[1, 0], 2 * e[:, 4, :])


def test_walls_and_mobility_of_the_hidden_axes():
    grid = fp.Grid(v=(-1, 1, 4), h=(-1, 1, 6))
    model = fp.FokkerPlanck(grid, energy=0.0, mobility=(2.0, 3.0),
                            boundary={"h": ("absorbing", "reflecting")})  # fmt: skip
    cond = condition(model, {"v": 0.0})
    assert cond.boundary.sides == (("absorbing", "reflecting"),)
    assert np.all(cond.mobility_cells() == 3.0)


@pytest.mark.parametrize(
    ("visible", "match"),
    [
        ({"w": 0.0}, r"unknown axes \['w'\]"),
        ({"v": 3.0}, r"axis 'v' must lie in the grid \[-1, 1\]"),
        ({"v": 0.0, "h": 0.0}, "at least one axis must stay hidden"),
        ({"v": [np.nan]}, "must be finite"),
        ({}, "at least one axis"),
    ],
)
def test_bad_visible_values_are_refused(visible, match):
    grid = fp.Grid(v=(-1, 1, 4), h=(-1, 1, 6))
    model = fp.FokkerPlanck(grid, energy=lambda v, h: v * h)
    with pytest.raises(ValueError, match=match):
        condition(model, visible)


def test_a_model_with_a_force_is_refused():
    grid = fp.Grid(v=(-1, 1, 4), h=(-1, 1, 6))
    model = fp.FokkerPlanck(grid, energy=0.0, force=(1.0, 0.0))
    with pytest.raises(ValueError, match="non-conservative force"):
        conditioning(model, {"v": 0.0})

"""Lemma 13 on the grid, the exact data likelihood, and Recall and Learn.

The derivative identities are checked against Richardson-extrapolated
finite differences of the discrete quantities (to about 1e-10, the
rounding of the differences), the Gaussian case against its closed form,
and the learned parameters against an independent optimisation of the
exact grid likelihood (scipy's BFGS).
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import slope
from scipy.optimize import minimize

import fpsolver as fp
from fpsolver.analysis.learning import (
    LangevinChains,
    ParametricEnergy,
    free_energy_gradient,
    grid_learning_terms,
)
from fpsolver.api.learning import recall_and_learn
from fpsolver.core import diagnostics as dg

T = 0.8


def richardson(f, theta, a, delta=1e-3):
    """∂f/∂θ_a by central differences extrapolated to O(δ⁴)."""

    def central(d):
        up, down = np.array(theta, float), np.array(theta, float)
        up[a] += d
        down[a] -= d
        return (f(up) - f(down)) / (2 * d)

    return (4 * central(delta / 2) - central(delta)) / 3


def well(x, y, theta):
    return theta[0] * (x**2 - 1) ** 2 + 0.5 * np.exp(theta[1]) * (y - theta[2] * x) ** 2


def well_gradient(x, y, theta):
    r = y - theta[2] * x
    return ((x**2 - 1) ** 2, 0.5 * np.exp(theta[1]) * r**2, -np.exp(theta[1]) * r * x)


GRID2 = fp.Grid(x=(-2.2, 2.2, 40), y=(-3, 3, 36))
THETA2 = np.array([0.9, 0.3, 0.7])


def _minus_t_log_z(energy, grid, theta):
    e = ParametricEnergy.of(energy).values(grid.names, grid.mesh(), theta)
    return -T * dg.log_partition(e, T, grid.volumes)


@pytest.mark.parametrize("exact", [True, False], ids=["exact-gradient", "finite-differences"])
def test_lemma_13_holds_on_the_grid_to_rounding(exact):
    """∂(−T ln Z_h)/∂θ = Σ V q ∂E/∂θ: the derivative of the discrete sum is the discrete average."""
    energy = ParametricEnergy(well, theta_gradient=well_gradient if exact else None)
    f, grad = free_energy_gradient(GRID2, energy, THETA2, T)
    assert f == pytest.approx(_minus_t_log_z(well, GRID2, THETA2), abs=1e-14)
    for a in range(3):
        fd = richardson(lambda th: _minus_t_log_z(well, GRID2, th), THETA2, a)
        assert abs(grad[a] - fd) < 2e-9 * max(1.0, abs(fd))


def test_theta_differences_are_second_order():
    x = np.linspace(-2, 2, 9)
    exact = np.stack(well_gradient(x, 0.4 * x, THETA2))
    errors = []
    steps = [1e-2, 5e-3, 2.5e-3]
    for step in steps:
        g = ParametricEnergy(well, step=step).theta_gradient(("x", "y"), [x, 0.4 * x], THETA2)
        errors.append(np.max(np.abs(g - exact)))
    assert abs(-slope(steps, errors) - 2.0) < 0.05  # error ∝ step²


def test_gaussian_free_energy_and_its_derivative_match_the_continuum():
    """E = θ x²/2: −T ln Z = −(T/2) ln(2πT/θ), d/dθ = T/(2θ) (midpoint sums of a Gaussian
    are spectrally accurate, so the grid agrees to the truncation of the tails)."""
    grid = fp.Grid(x=(-12, 12, 240))
    for theta in (0.5, 1.0, 3.0):
        f, g = free_energy_gradient(grid, lambda x, theta: 0.5 * theta[0] * x**2, [theta], T)
        assert abs(f + 0.5 * T * np.log(2 * np.pi * T / theta)) < 1e-12
        assert abs(g[0] - T / (2 * theta)) < 1e-8  # the θ difference step (1e-4): O(1e-9)


def test_gauge_fix_shifts_free_energies_and_keeps_everything_else():
    data = np.array([[0.3, -0.2], [1.1, 0.9], [-0.8, -0.1]])
    plain = ParametricEnergy(well, theta_gradient=well_gradient)
    star = (0.4, -1.0)
    gauged = plain.gauged(star)
    a = grid_learning_terms(GRID2, plain, THETA2, T, data=data, visible=["x", "y"])
    b = grid_learning_terms(GRID2, gauged, THETA2, T, data=data, visible=["x", "y"])
    shift = float(well(np.float64(star[0]), np.float64(star[1]), THETA2))
    assert b.free_free_energy == pytest.approx(a.free_free_energy - shift, abs=1e-13)
    assert b.clamped_free_energy == pytest.approx(a.clamped_free_energy - shift, abs=1e-13)
    assert abs(a.log_likelihood - b.log_likelihood) < 1e-13
    np.testing.assert_allclose(a.gibbs, b.gibbs, rtol=1e-12)
    np.testing.assert_allclose(a.gradient, b.gradient, atol=1e-12)
    # the gauged energy vanishes at x* for every θ
    assert gauged.values(("x", "y"), [np.float64(star[0]), np.float64(star[1])], THETA2) == 0.0


@pytest.mark.parametrize("visible", [["x", "y"], ["y"]], ids=["fully-visible", "hidden-x"])
def test_learning_gradient_is_minus_t_times_the_likelihood_gradient(visible):
    """data term − model term = −T ∂ℓ/∂θ for the exact grid log-likelihood ℓ (Lemma 13 twice)."""
    rng = np.random.default_rng(7)
    data = rng.uniform(-1.5, 1.5, (25, len(visible)))
    energy = ParametricEnergy(well, theta_gradient=well_gradient)
    terms = grid_learning_terms(GRID2, energy, THETA2, T, data=data, visible=visible)
    assert terms.free_energy == pytest.approx(-T * terms.log_likelihood, abs=1e-13)

    def ell(th):
        return grid_learning_terms(GRID2, energy, th, T, data=data, visible=visible).log_likelihood

    for a in range(3):
        assert abs(terms.gradient[a] + T * richardson(ell, THETA2, a)) < 2e-9


def test_likelihood_of_a_visible_cell_centre_is_the_grid_marginal():
    grid = fp.Grid(x=(-2, 2, 20), h=(-3, 3, 30))
    energy = lambda x, h, theta: 0.5 * (h - theta[0] * x) ** 2 + 0.5 * x**2  # noqa: E731
    x0 = grid.centers[0][6]
    terms = grid_learning_terms(grid, energy, [1.3], T, data=np.array([[x0]]), visible=["x"])
    marginal = np.sum(terms.gibbs * grid.widths[1], axis=1)  # m(x) = Σ_h V_h q(x, h)
    assert terms.log_likelihood == pytest.approx(np.log(marginal[6]), abs=1e-13)


# --------------------------------------------------------------------------
# Recall and Learn
GRID1 = fp.Grid(x=(-5, 5, 160))
DATA1 = np.random.default_rng(0).normal(0.8, 0.5, 300)


def gauss(x, theta):
    return 0.5 * np.exp(theta[1]) * (x - theta[0]) ** 2


GAUSS = ParametricEnergy(
    gauss,
    theta_gradient=lambda x, theta: (
        -np.exp(theta[1]) * (x - theta[0]),
        0.5 * np.exp(theta[1]) * (x - theta[0]) ** 2,
    ),
    space_gradient=lambda x, theta: np.exp(theta[1]) * (x - theta[0]),
)


@pytest.fixture(scope="module")
def grid_ml():
    """The maximum of the exact grid likelihood, by BFGS (independent of recall_and_learn)."""

    def objective(th):
        t = grid_learning_terms(GRID1, GAUSS, th, 1.0, data=DATA1[:, None], visible=["x"])
        return -t.log_likelihood, t.gradient

    res = minimize(objective, [0.0, 0.0], jac=True, method="BFGS", options={"gtol": 1e-12})
    return res.x


def test_grid_ml_is_the_continuum_ml_up_to_the_interpolation_error(grid_ml):
    # linear interpolation of (x − μ)² between centres adds w(1 − w) h² to it
    h = GRID1.widths[0][0]
    assert abs(grid_ml[0] - DATA1.mean()) < 1e-3
    assert abs(grid_ml[1] + np.log(DATA1.var())) < h**2 / 6 / DATA1.var() * 1.5


def test_grid_recall_converges_to_the_maximum_likelihood(grid_ml):
    fit = recall_and_learn(GAUSS, [0.0, 0.0], DATA1, GRID1, steps=120, lr=0.3,
                           parameters=["mean", "log_precision"])  # fmt: skip
    assert list(fit["parameter"].values) == ["mean", "log_precision"]
    np.testing.assert_allclose(fit["theta"].values[-1], grid_ml, atol=1e-7)
    # the free energy F_clamped − F_free = −T ℓ decreases at every step (lr below 2/λ_max)
    assert np.all(np.diff(fit["free_energy"].values) < 1e-13)
    np.testing.assert_allclose(fit["free_energy"], -fit["log_likelihood"], atol=1e-13)
    # exact recall: the gradient used is the exact one; KL(p || q) = 0
    np.testing.assert_allclose(fit["gradient"], fit["exact_gradient"], atol=1e-12)
    assert np.all(np.abs(fit["relative_entropy"].values) < 1e-12)


def test_a_large_learning_rate_increases_the_free_energy():
    """Along the mean the curvature of −T ℓ is e^{θ₂}/T ≈ 4: steps above lr = 2/4 overshoot."""
    fit = recall_and_learn(GAUSS, [0.0, 0.0], DATA1, GRID1, steps=40, lr=0.7)
    rises = np.diff(fit["free_energy"].values)
    assert rises.max() > 1e-3


def test_relaxing_for_a_fixed_time_warm_started_reaches_the_same_fixed_point(grid_ml):
    fit = recall_and_learn(GAUSS, [0.0, 0.0], DATA1, GRID1, steps=120, lr=0.3, relax=0.5)
    kl = fit["relative_entropy"].values
    assert kl[0] > 0.1 and kl[-1] < 1e-10  # the recalled p lags, then catches up
    np.testing.assert_allclose(fit["theta"].values[-1], grid_ml, atol=1e-7)
    # the recalled density's free energy is above the equilibrium one
    assert np.all(fit["recall_free_energy"] >= fit["model_free_energy"] - 1e-12)


def em_fixed_point(data, dt):
    """The fixed point of the particle variant: Euler–Maruyama on the OU drift has the exact mean
    and the stationary variance T / (λ (1 − λ dt / 2)), λ = e^{θ₂}; matching the data moments."""
    lam = (1 - np.sqrt(1 - 2 * dt / data.var())) / dt  # λ (1 − λ dt/2) = 1/s²
    return np.array([data.mean(), np.log(lam)])


def test_particle_recall_fluctuates_around_the_euler_maruyama_fixed_point():
    """Fixed seed. Over 8 seeds the time-averaged θ − θ_EM had mean (0.0005, −0.0016) and
    standard deviation (0.0055, 0.0057) at N = 2000; the bound is four standard deviations
    (false-alarm rate 6e-5 for a normal spread)."""
    fit = recall_and_learn(GAUSS, [0.0, 0.0], DATA1, GRID1, steps=300, lr=0.1,
                           recall="particles", particles=2000, recall_steps=5, dt=0.01,
                           seed=4)  # fmt: skip
    avg = fit["theta"].values[150:].mean(axis=0)
    target = em_fixed_point(DATA1, 0.01)
    assert abs(avg[0] - target[0]) < 0.022 and abs(avg[1] - target[1]) < 0.023
    assert np.all(np.isnan(fit["relative_entropy"]))


def test_langevin_chains_reflect_and_wrap():
    grid = fp.Grid(x=(0, 1, 4), y=(0, 2 * np.pi, 4), periodic="y")
    rng = np.random.default_rng(1)
    chains = LangevinChains(grid, rng.uniform(0, 1, (500, 2)), moving=[0, 1], temperature=1.0,
                            mobility=(1.0, 2.0), rng=rng)  # fmt: skip
    chains.run(lambda pts: [np.full_like(pts[0], -5.0), np.full_like(pts[1], 30.0)],
               steps=300, dt=0.01)  # fmt: skip
    x, y = chains.positions.T
    assert np.all((x >= 0) & (x <= 1)) and np.all((y >= 0) & (y < 2 * np.pi))
    # stationary density ∝ e^{5x} on [0, 1]: mean 1 − 1/5 + e^{−5}/(1 − e^{−5}) = 0.8068;
    # the standard error of the mean of 500 is 0.008
    assert abs(x.mean() - 0.8068) < 0.04


def test_clamped_chains_keep_their_visible_coordinates():
    grid = fp.Grid(v=(-2, 2, 4), h=(-3, 3, 6))
    rng = np.random.default_rng(2)
    fixed = rng.uniform(-2, 2, (100, 1))
    chains = LangevinChains(grid, np.zeros((100, 1)), moving=[1], fixed=fixed, temperature=0.5,
                            rng=rng)  # fmt: skip
    chains.run(lambda pts: [pts[0], pts[1] - pts[0]], steps=200, dt=0.01)
    pts = chains.points()
    assert np.array_equal(pts[0], fixed[:, 0])
    assert abs(np.mean(pts[1] - pts[0])) < 0.2  # h relaxes to v


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"recall": "exact"}, ValueError, "`recall` must be one of"),
        ({"relax": -1.0}, ValueError, "`relax` must be 'equilibrium' or a positive time"),
        ({"steps": 2.5}, ValueError, "`steps` must be a non-negative integer"),
        ({"lr": 0.0}, ValueError, "`lr` must be a positive number"),
        ({"parameters": ["a"]}, ValueError, "`parameters` names 1 parameters, theta has 2"),
    ],
)
def test_bad_options_are_refused(kwargs, error, match):
    options = {"steps": 2, "lr": 0.1} | kwargs
    with np.errstate(all="ignore"), pytest.raises(error, match=match):
        recall_and_learn(GAUSS, [0.0, 0.0], DATA1, GRID1, **options)


def test_a_diverging_fit_stops_with_a_clear_error():
    """E = sqrt(θ) x²/2 with a step that takes θ below 0: the energy turns NaN."""
    data = np.linspace(-4.5, 4.5, 50)
    energy = ParametricEnergy(
        lambda x, theta: 0.5 * np.sqrt(theta[0]) * x**2,
        theta_gradient=lambda x, theta: (0.25 * x**2 / np.sqrt(theta[0]),),
    )
    with (
        np.errstate(invalid="ignore"),
        pytest.raises(FloatingPointError, match="learning rate `lr`=10.0 is too large"),
    ):
        recall_and_learn(energy, [1.0], data, GRID1, steps=5, lr=10.0)  # fmt: skip


def test_data_outside_the_grid_are_refused():
    with pytest.raises(ValueError, match=r"axis 'x' must lie in the grid \[-5, 5\]"):
        recall_and_learn(GAUSS, [0.0, 0.0], np.array([0.0, 7.0]), GRID1, steps=1)


@pytest.mark.parametrize(
    ("gradient", "match"),
    [
        (lambda x, theta: (x,), "returned 1 components for 2 parameters"),
        (lambda x, theta: (x, x[:3]), r"component 1 has shape \(3,\), which does not broadcast"),
        (lambda x, theta: 0.0, "must return one array per parameter"),
    ],
    ids=["too-few", "wrong-shape", "scalar"],
)
def test_theta_gradients_of_the_wrong_shape_are_refused(gradient, match):
    energy = ParametricEnergy(gauss, theta_gradient=gradient)
    with pytest.raises(ValueError, match=match):
        recall_and_learn(energy, [0.0, 0.0], DATA1, GRID1, steps=1)


@pytest.mark.parametrize(
    ("visible", "match"),
    [
        (["w"], r"`visible` names unknown axes \['w'\]; the axes are \['x', 'y'\]"),
        ([], "`visible` must name at least one axis"),
    ],
)
def test_visible_names_must_be_axes(visible, match):
    data = np.zeros((3, max(1, len(visible))))
    with pytest.raises(ValueError, match=match):
        recall_and_learn(well, THETA2, data, GRID2, visible=visible, steps=1)


def test_a_blowup_stops_with_a_clear_message_and_keeps_the_trajectory():
    """E = 2 (x − θ)²: the curvature of −T ℓ in θ is 4, so lr = 1 multiplies the error by −3
    per step; once θ leaves the box F grows without bound (lr = 0.4 converges)."""
    energy = ParametricEnergy(lambda x, theta: 2.0 * (x - theta[0]) ** 2,
                              theta_gradient=lambda x, theta: (-4.0 * (x - theta[0]),))  # fmt: skip
    with pytest.raises(fp.LearningDiverged, match="the free energy grew to") as info:
        recall_and_learn(energy, [0.0], DATA1, GRID1, steps=40, lr=1.0)
    assert "lower it" in str(info.value) and "`lr`=1.0" in str(info.value)
    fit = info.value.result
    assert fit.sizes["iteration"] == 2 and fit.attrs["stopped"] == str(info.value)
    assert np.all(np.isfinite(fit["free_energy"].values))
    # without the check the fit runs on through free energies 40 times the start
    free = recall_and_learn(energy, [0.0], DATA1, GRID1, steps=10, lr=1.0, blowup=None)
    assert free["free_energy"].values.max() > 40 * free["free_energy"].values[0]
    calm = recall_and_learn(energy, [0.0], DATA1, GRID1, steps=40, lr=0.4)
    assert abs(calm["theta"].values[-1, 0] - DATA1.mean()) < 1e-6


def test_recall_and_learn_refuses_a_curved_grid():
    grid = fp.Grid.polar(r=(0, 2, 8), phi=8)
    with pytest.raises(NotImplementedError, match="recall_and_learn"):
        fp.recall_and_learn(
            energy=lambda r, phi, theta: theta[0] * r**2,
            theta0=[1.0],
            data=np.array([[0.5, 0.1]]),
            grid=grid,
            temperature=1.0,
            steps=1,
            lr=0.1,
        )

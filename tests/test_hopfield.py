"""The continuous Hopfield network: energy, its gradient, the ODE, the model and Theorem 16.

* The gradient of E is checked against central differences of E itself;
  the formula printed in the proof of Theorem 16 fails that check (its
  signs of v, I and h are slipped).
* The ODE of Definition 15 is −K ∇E with K = (∂²L)⁻¹, pointwise to
  rounding, for quadratic and non-quadratic Lagrangians; the model's own
  drift (the one its particles use) reproduces it.
* The grid solution of the model and Euler–Maruyama particles of the
  printed SDE are compared with the exact moments of linear dynamics
  (:func:`fpsolver.core.analytic.linear_moments`): the printed SDE is the
  Fokker–Planck process when K = I and a different one otherwise.
"""

from __future__ import annotations

import numpy as np
import pytest

import fpsolver as fp
from fpsolver.analysis.hopfield import Lagrangian, Network
from fpsolver.core.analytic import linear_moments
from fpsolver.sampling.particles import _Dynamics

RNG = np.random.default_rng(11)
U3 = RNG.normal(0, 0.5, (2, 3))


def log_cosh(dim, beta=1.5):
    """L = Σ log cosh(β x)/β: activation tanh(β x), Hessian β sech²(β x) (diagonal, varying)."""
    return Lagrangian.from_functions(
        dim,
        lambda x: np.sum(np.log(np.cosh(beta * x)), axis=-1) / beta,
        lambda x: np.tanh(beta * x),
        lambda x: np.einsum("...i,ij->...ij", beta / np.cosh(beta * x) ** 2, np.eye(dim)),
    )


NETWORKS = {
    "diagonal-quadratic": Network(U=U3, I=[0.3, -0.2], L_v=[2.0, 0.7], L_h=[0.5, 1.0, 1.5]),
    "full-quadratic": Network(U=U3, I=[0.3, -0.2], L_v=[[2.0, 0.3], [0.3, 1.0]],
                              L_h=[[1.0, 0.2, 0.0], [0.2, 0.8, 0.1], [0.0, 0.1, 1.2]]),
    "tanh-activations": Network(U=U3, I=[0.3, -0.2], L_v=log_cosh(2), L_h=log_cosh(3, 0.8)),
}  # fmt: skip


def _fd_gradient(net, v, h, delta=1e-5):
    def part(x, dim, which):
        out = np.empty_like(x)
        for a in range(dim):
            up, down = x.copy(), x.copy()
            up[..., a] += delta
            down[..., a] -= delta
            if which == "v":
                out[..., a] = (net.energy(up, h) - net.energy(down, h)) / (2 * delta)
            else:
                out[..., a] = (net.energy(v, up) - net.energy(v, down)) / (2 * delta)
        return out

    return part(v, net.dv, "v"), part(h, net.dh, "h")


def printed_gradient(net, v, h):
    """The proof of Theorem 16 as printed: ∂E/∂v = −[U f + v − I]·∂g, ∂E/∂h = −[Uᵀ g + h]·∂f."""
    g, f = net.L_v.gradient(v), net.L_h.gradient(h)
    hv, hh = net.L_v.hessian(v), net.L_h.hessian(h)
    rv = np.einsum("ij,...j->...i", net.U, f) + v - net.I
    rh = np.einsum("ji,...j->...i", net.U, g) + h
    return -np.einsum("...ij,...j->...i", hv, rv), -np.einsum("...ij,...j->...i", hh, rh)


@pytest.mark.parametrize("name", NETWORKS)
def test_energy_gradient_matches_finite_differences_and_the_printed_proof_does_not(name):
    net = NETWORKS[name]
    v, h = RNG.normal(0, 1, (50, 2)), RNG.normal(0, 1, (50, 3))
    fd_v, fd_h = _fd_gradient(net, v, h)
    gv, gh = net.energy_gradient(v, h)
    assert np.max(np.abs(gv - fd_v)) < 1e-8 and np.max(np.abs(gh - fd_h)) < 1e-8
    pv, ph = printed_gradient(net, v, h)
    assert np.max(np.abs(pv - fd_v)) > 0.5 and np.max(np.abs(ph - fd_h)) > 0.5


@pytest.mark.parametrize("name", NETWORKS)
def test_the_ode_is_minus_mobility_times_the_gradient_pointwise(name):
    net = NETWORKS[name]
    v, h = RNG.normal(0, 1.5, (200, 2)), RNG.normal(0, 1.5, (200, 3))
    dv, dh = net.rhs(v, h)
    gv, gh = net.energy_gradient(v, h)
    for i in range(v.shape[0]):
        kv, kh = net.mobility(v[i], h[i])
        np.testing.assert_allclose(-kv @ gv[i], dv[i], rtol=0, atol=1e-13)
        np.testing.assert_allclose(-kh @ gh[i], dh[i], rtol=0, atol=1e-13)


def test_energy_decreases_along_the_ode():
    net = NETWORKS["tanh-activations"]
    sol = net.ode([1.5, -2.0], [0.5, 2.0, -1.0], 10.0, t_eval=np.linspace(0, 10, 201))
    e = net.energy(sol["v"].values, sol["h"].values)
    assert np.all(np.diff(e) < 1e-12) and e[0] - e[-1] > 0.1
    dv, dh = net.rhs(sol["v"].values[-1], sol["h"].values[-1])
    assert np.max(np.abs(np.concatenate([dv, dh]))) < 1e-3  # at rest


NET = Network(U=0.4, I=0.3, L_v=2.0, L_h=0.5)  # K_v = 1/2, K_h = 2
UNIT = Network(U=0.4, I=0.3, L_v=1.0, L_h=1.0)  # K = I
T = 0.5


def test_the_model_drift_is_the_ode_in_the_noise_free_limit():
    grid = fp.Grid(v=(-3, 3, 30), h=(-5, 5, 40))
    model = NET.model(grid, T, cls=fp.FokkerPlanck)
    np.testing.assert_allclose(model.energy, NET.energy(*[x[..., None] for x in grid.mesh()]))
    pos = RNG.uniform(-2.5, 2.5, (2, 500))
    drift = _Dynamics(model).drift(pos)  # the particle backend's drift, −K ∇E (T ∇·K = 0)
    dv, dh = NET.rhs(pos[0][:, None], pos[1][:, None])
    np.testing.assert_allclose(drift[0], dv[:, 0], rtol=0, atol=1e-13)
    np.testing.assert_allclose(drift[1], dh[:, 0], rtol=0, atol=1e-13)


def test_the_grid_model_follows_the_exact_linear_moments():
    grid = fp.Grid(v=(-2.5, 3, 70), h=(-5, 5, 80))
    model = NET.model(grid, T, cls=fp.FokkerPlanck)
    m0, c0 = np.array([1.5, -1.0]), np.diag([0.05, 0.1])
    ds = model.solve(fp.gaussian(grid, m0, c0), 2.0, save_every=0.5, rtol=1e-6)
    b, d = NET.linear_coefficients(T)
    x_star = NET.fixed_point()
    for k, t in enumerate(ds["time"].values):
        mean, cov = linear_moments(b, d, m0 - x_star, c0, t)
        # second order in space: h ≈ 0.08, 0.125 give errors of a few 1e-3
        assert np.max(np.abs(ds["mean"].values[k] - x_star - mean)) < 3e-3
        widths = np.diag([grid.widths[0][0] ** 2, grid.widths[1][0] ** 2]) / 12  # cell variance
        assert np.max(np.abs(ds["covariance"].values[k] - widths - cov)) < 3e-3


def _z_scores(parts, mean, cov, n):
    """Mean and covariance differences in standard errors.

    For Gaussian samples var(S_ab) = (S_aa S_bb + S_ab²)/n.
    """
    z_mean = (parts["mean"] - mean) / np.sqrt(np.diag(cov) / n)
    se_cov = np.sqrt((np.outer(np.diag(cov), np.diag(cov)) + cov**2) / n)
    return np.abs(z_mean).max(), np.abs((parts["covariance"] - cov) / se_cov).max()


@pytest.mark.parametrize("noise", ["mobility", "standard"])
def test_printed_sde_particles_follow_their_own_linear_moments(noise):
    """Fixed seed; 4 saved times × 5 moments at |z| < 4.5 (false alarm about 1e-4 in all)."""
    n, m0, c0 = 20_000, np.array([1.5, -1.0]), np.diag([0.05, 0.1])
    start = np.random.default_rng(0).multivariate_normal(m0, c0, n)
    parts = NET.particles(start, temperature=T, t_end=2.0, dt=0.002, save_every=0.5, noise=noise,
                          seed=1)  # fmt: skip
    b, d = NET.linear_coefficients(T, "printed", noise)
    x_star = NET.fixed_point()
    for k, t in enumerate(parts["time"].values[1:], start=1):
        mean, cov = linear_moments(b, d, m0 - x_star, c0, t)
        frame = {
            "mean": parts["mean"].values[k] - x_star,
            "covariance": parts["covariance"].values[k],
        }
        zm, zc = _z_scores(frame, mean, cov, n)
        assert zm < 4.5 and zc < 4.5
    # ... and not the Fokker–Planck process's: at t = 2 far outside the sampling error
    b, d = NET.linear_coefficients(T)
    mean, cov = linear_moments(b, d, m0 - x_star, c0, 2.0)
    frame = {
        "mean": parts["mean"].values[-1] - x_star,
        "covariance": parts["covariance"].values[-1],
    }
    assert max(_z_scores(frame, mean, cov, n)) > 20


def test_printed_sde_is_another_process_unless_the_mobility_is_the_identity():
    # K = diag(1/2, 2): the stationary laws differ by far more than any sampling error
    b, d = NET.linear_coefficients(T, "printed")
    printed = linear_moments(b, d, [0, 0], np.eye(2), 200.0)[1]
    gibbs = T * np.linalg.inv(NET.hessian())
    assert np.max(np.abs(printed - gibbs)) > 0.25
    # K = I: the same drift and the same noise, whichever reading of dW
    for noise in ("mobility", "standard"):
        bp, dp = UNIT.linear_coefficients(T, "printed", noise)
        bf, df = UNIT.linear_coefficients(T)
        assert np.array_equal(bp, bf) and np.array_equal(dp, df)
    b, d = UNIT.linear_coefficients(T)
    np.testing.assert_allclose(linear_moments(b, d, [0, 0], np.eye(2), 200.0)[1],
                               T * np.linalg.inv(UNIT.hessian()), atol=1e-12)  # fmt: skip


def test_with_unit_mobility_printed_particles_match_the_grid():
    grid = fp.Grid(v=(-3, 3.5, 60), h=(-3.5, 3.5, 60))
    model = UNIT.model(grid, T, cls=fp.FokkerPlanck)
    m0, c0 = np.array([1.0, -1.0]), np.diag([0.05, 0.05])
    ds = model.solve(fp.gaussian(grid, m0, c0), 1.0, save_every=1.0, rtol=1e-6)
    n = 20_000
    start = np.random.default_rng(3).multivariate_normal(m0, c0, n)
    parts = UNIT.particles(start, temperature=T, t_end=1.0, dt=0.002, seed=4)
    widths = np.diag([grid.widths[0][0] ** 2, grid.widths[1][0] ** 2]) / 12
    grid_cov = ds["covariance"].values[-1] - widths
    frame = {"mean": parts["mean"].values[-1], "covariance": parts["covariance"].values[-1]}
    zm, zc = _z_scores(frame, ds["mean"].values[-1], grid_cov, n)
    assert zm < 4.5 and zc < 4.5


def test_model_needs_diagonal_quadratic_lagrangians_and_matching_axes():
    grid = fp.Grid(v1=(-1, 1, 4), v2=(-1, 1, 4), h1=(-1, 1, 4), h2=(-1, 1, 4), h3=(-1, 1, 4))
    for name in ("full-quadratic", "tanh-activations"):
        with pytest.raises(ValueError, match="full tensor mobility"):
            NETWORKS[name].model(grid, 1.0)
    with pytest.raises(ValueError, match="needs 2 axes"):
        NET.model(grid, 1.0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"U": [[np.nan]]}, "`U` must be a finite"),
        ({"I": [0.1, 0.2]}, "`I` must hold 1 finite values"),
        ({"L_v": -1.0}, "`L_v`: the Hessian of a Lagrangian must be positive definite"),
        ({"L_h": [1.0, 2.0]}, "`L_h` acts on 2 units, U has 1"),
    ],
)
def test_bad_networks_are_refused(kwargs, match):
    args = {"U": 0.4, "I": 0.3, "L_v": 1.0, "L_h": 1.0} | kwargs
    with pytest.raises(ValueError, match=match):
        Network(**args)


def test_bad_noise_is_refused():
    with pytest.raises(ValueError, match="`noise` must be 'mobility' or 'standard'"):
        NET.linear_coefficients(T, "printed", "white")

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


def test_coupled_lagrangians_give_a_tensor_mobility_with_a_stationary_gibbs_density():
    """Non-diagonal Hessians: K = diag(H_v⁻¹, H_h⁻¹) as a full tensor (constant for the coupled
    quadratic, position-dependent for a coupled non-quadratic L_v); L q = 0 to rounding."""
    coupled = Lagrangian.from_functions(
        2,
        lambda x: 0.5 * np.sum(x**2, axis=-1) + 0.3 * x[..., 0] * x[..., 1]
        + 0.25 * np.sum(x**4, axis=-1) / 3,
        lambda x: x + 0.3 * x[..., ::-1] + x**3 / 3,
        lambda x: np.einsum("...i,ij->...ij", 1 + x**2, np.eye(2)) + 0.3 * (1 - np.eye(2)),
    )  # fmt: skip
    grid = fp.Grid(v1=(-2, 2, 12), v2=(-2, 2, 11), h=(-2.5, 2.5, 10))
    for net in (
        Network(U=[[0.4], [-0.3]], I=[0.2, 0.0], L_v=[[1.0, 0.4], [0.4, 1.5]], L_h=2.0),
        Network(U=[[0.4], [-0.3]], I=[0.2, 0.0], L_v=coupled, L_h=Lagrangian.log_cosh(1)),
    ):
        model = net.model(grid, 0.5, cls=fp.FokkerPlanck)
        assert model.is_tensor
        x = np.stack(np.meshgrid(*grid.centers, indexing="ij"), axis=-1)
        kv, kh = np.linalg.inv(net.L_v.hessian(x[..., :2])), 1 / net.L_h.curvatures(x[..., 2:])
        K = model.mobility_tensor()
        np.testing.assert_allclose(np.moveaxis(K[:2, :2], (0, 1), (-2, -1)), kv, atol=1e-14)
        np.testing.assert_allclose(K[2, 2], kh[..., 0], rtol=1e-14)
        assert np.all(K[:2, 2] == 0) and np.all(K[2, :2] == 0)
        q = model.equilibrium().values.ravel()
        assert np.abs(model.generator() @ q).max() < 1e-12 * q.max()


def test_model_needs_matching_axes():
    grid = fp.Grid(v1=(-1, 1, 4), v2=(-1, 1, 4), h1=(-1, 1, 4), h2=(-1, 1, 4), h3=(-1, 1, 4))
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


def test_a_network_without_hidden_units_is_refused():
    with pytest.raises(ValueError, match=r"`U` has shape \(2, 0\): a network needs at least one"):
        Network(U=np.zeros((2, 0)), I=[0.0, 0.0], L_v=1.0, L_h=1.0)


def test_bad_learning_parameters_are_refused():
    with pytest.raises(ValueError, match="`learn` must name 'U', 'I' or both"):
        NET.parameters(learn=["W"])
    with pytest.raises(ValueError, match=r"`theta` must hold 2 values for \('U', 'I'\), got 3"):
        NET.with_parameters([1.0, 2.0, 3.0])


def test_bad_noise_is_refused():
    with pytest.raises(ValueError, match="`noise` must be 'mobility' or 'standard'"):
        NET.linear_coefficients(T, "printed", "white")


# -- nonlinear activations: a position-dependent diagonal mobility ----------------------------
TANH = Network(U=1.5, I=0.05, L_v=Lagrangian.log_cosh(1), L_h=Lagrangian.log_cosh(1))


@pytest.mark.parametrize(
    "lag", [Lagrangian.log_cosh(3, 1.7), Lagrangian.softplus(3, 0.8)], ids=["log-cosh", "softplus"]
)
def test_elementwise_lagrangians_match_finite_differences(lag):
    x, d = RNG.normal(0, 2, (100, 3)), 1e-5
    for a in range(3):
        e = np.zeros(3)
        e[a] = d
        fd_grad = (lag.value(x + e) - lag.value(x - e)) / (2 * d)
        fd_curv = (lag.gradient(x + e)[:, a] - lag.gradient(x - e)[:, a]) / (2 * d)
        np.testing.assert_allclose(lag.gradient(x)[:, a], fd_grad, rtol=0, atol=1e-9)
        np.testing.assert_allclose(lag.curvature(x)[:, a], fd_curv, rtol=0, atol=1e-9)
    h = lag.hessian(x)
    assert np.array_equal(h, np.einsum("ni,ij->nij", lag.curvature(x), np.eye(3)))
    assert lag.separable and not lag.diagonal


def test_tanh_model_has_mobility_one_over_the_curvature_and_a_stationary_gibbs_density():
    grid = fp.Grid(v=(-2.5, 2.5, 40), h=(-2.5, 2.5, 36))
    model = TANH.model(grid, 0.3, cls=fp.FokkerPlanck)
    c = [
        grid.centers[0][:, None] + 0 * grid.centers[1],
        grid.centers[1] + 0 * grid.centers[0][:, None],
    ]
    np.testing.assert_allclose(model.mobility_cells(), [np.cosh(c[0]) ** 2, np.cosh(c[1]) ** 2],
                               rtol=1e-14)  # fmt: skip
    q = model.equilibrium().values.ravel()
    assert np.abs(model.generator() @ q).max() < 1e-12 * q.max()  # L q = 0 to rounding


def test_tanh_model_drift_is_the_ode_plus_the_ito_term():
    """−K∇E is the Hopfield ODE exactly; the particles add T ∇·K = T sinh(2x) per axis
    (K = cosh² x), which vanishes as T → 0 (central differences of K: about 1e-9)."""
    grid = fp.Grid(v=(-2.5, 2.5, 30), h=(-2.5, 2.5, 30))
    model = TANH.model(grid, 0.3, cls=fp.FokkerPlanck)
    pos = RNG.uniform(-2.4, 2.4, (2, 400))
    drift = _Dynamics(model).drift(pos)
    dv, dh = TANH.rhs(pos[0][:, None], pos[1][:, None])
    np.testing.assert_allclose(drift[0], dv[:, 0] + 0.3 * np.sinh(2 * pos[0]), rtol=0, atol=1e-8)
    np.testing.assert_allclose(drift[1], dh[:, 0] + 0.3 * np.sinh(2 * pos[1]), rtol=0, atol=1e-8)


def test_tanh_model_free_energy_decays_and_particles_agree_with_the_grid():
    """Fixed seed; chi-square p-values at 4 times above 1e-3 and |z| of the means below 4.5
    (false-alarm rate about 4e-3 in all)."""
    grid = fp.Grid(v=(-2.5, 2.5, 40), h=(-2.5, 2.5, 40))
    model = TANH.model(grid, 0.3, cls=fp.FokkerPlanck)
    p0 = fp.gaussian(grid, [1.0, -1.2], np.diag([0.05, 0.05]))
    ds = model.solve(p0, 1.0, save_every=0.25)
    f = ds["free_energy"].values
    assert np.all(np.diff(f) < 0) and f[0] - f[-1] > 1.0
    assert f[-1] > model.equilibrium_free_energy
    parts = fp.simulate_particles(model, p0, n=5000, t_end=1.0, dt=2e-3, save_every=0.25, seed=1)
    report = fp.compare(ds, parts)
    assert np.all(report["p_value"].values[1:] > 1e-3)
    assert np.abs(report["mean_z"].values[1:]).max() < 4.5


def energy_hessian(net, x, d=1e-5):
    """Hessian of E at x from central differences of the exact gradient (error about 1e-10)."""
    n = x.size
    out = np.zeros((n, n))
    for a in range(n):
        up, dn = x.copy(), x.copy()
        up[a] += d
        dn[a] -= d
        gu = np.concatenate(net.energy_gradient(up[: net.dv], up[net.dv :]))
        gd = np.concatenate(net.energy_gradient(dn[: net.dv], dn[net.dv :]))
        out[:, a] = (gu - gd) / (2 * d)
    return 0.5 * (out + out.T)


def test_as_temperature_falls_the_density_concentrates_on_the_odes_fixed_points():
    """Two stable rest points x_a, x_b of the ODE (minima of E). With bounded activations E is
    bounded too (it tends to a plateau away from them), so the box matters at moderate T;
    as T halves the mass farther than 0.5 from both falls by more than 4x, and the mean
    squared distance D² to the nearer one approaches its Laplace value T tr(H_a⁻¹) (the
    global minimum x_a takes the mass): the ratio − 1 shrinks at every halving."""
    xa, xb = TANH.fixed_point([2.0], [2.0]), TANH.fixed_point([-2.0], [-2.0])
    assert xa[0] > 1.0 and xb[0] < -1.0
    for x in (xa, xb):
        assert np.abs(np.concatenate(TANH.rhs(x[:1], x[1:]))).max() < 1e-13
        assert np.all(np.linalg.eigvalsh(energy_hessian(TANH, x)) > 0.1)  # minima of E
    laplace = np.trace(np.linalg.inv(energy_hessian(TANH, xa)))
    grid = fp.Grid(v=(-2.5, 2.5, 200), h=(-2.5, 2.5, 200))
    pts = np.stack(np.meshgrid(*grid.centers, indexing="ij"), axis=-1).reshape(-1, 2)
    d2 = np.minimum(((pts - xa) ** 2).sum(1), ((pts - xb) ** 2).sum(1))
    cell_var = 2 * grid.widths[0][0] ** 2 / 12
    far, ratio = [], []
    for T in (0.01, 0.005, 0.0025, 0.00125):
        w = (TANH.model(grid, T, cls=fp.FokkerPlanck).equilibrium().values * grid.volumes).ravel()
        far.append(w[d2 > 0.25].sum())
        ratio.append((w @ d2 - cell_var) / (T * laplace))
    far, excess = np.array(far), np.abs(np.array(ratio) - 1)
    assert np.all(far[1:] < far[:-1] / 4) and far[-1] < 1e-4
    assert np.all(excess[1:] < 0.75 * excess[:-1]) and excess[-1] < 0.1


# -- Hebbian learning (Remark 17): storing two patterns ----------------------------------------
PATTERNS = np.array([[1.0, 0.6], [-0.8, -1.0]])
T_LEARN = 0.1


@pytest.fixture(scope="module")
def hebbian():
    """Two visible units (linear), one tanh hidden unit, 20³ cells; U and I learned from the
    two patterns by grid-exact Recall and Learn."""
    net0 = Network(U=[[0.3], [-0.1]], I=[0.0, 0.0], L_v=1.0, L_h=Lagrangian.log_cosh(1))
    grid = fp.Grid(v1=(-2.2, 2.2, 20), v2=(-2.2, 2.2, 20), h=(-3, 3, 20))
    fit = fp.recall_and_learn(net0.parametric_energy(), net0.parameters(), PATTERNS, grid,
                              visible=["v1", "v2"], temperature=T_LEARN, steps=400, lr=0.1,
                              parameters=net0.parameter_names())  # fmt: skip
    return net0, grid, fit


def test_the_update_of_u_is_hebbian(hebbian):
    """Direction used for U = −(⟨g f⟩_clamped − ⟨g f⟩_free), both averages computed here from
    the model's Gibbs density and fp.condition, to rounding."""
    net0, grid, fit = hebbian
    model = net0.model(grid, T_LEARN, cls=fp.FokkerPlanck)
    v1, v2, h = grid.mesh()
    w = model.equilibrium().values * grid.volumes
    free = [float(np.sum(w * v1 * np.tanh(h))), float(np.sum(w * v2 * np.tanh(h)))]
    clamped = np.zeros(2)
    for xi in PATTERNS:
        cond = fp.condition(model, {"v1": xi[0], "v2": xi[1]})
        qh = cond.equilibrium().values * cond.grid.volumes
        clamped += xi * float(np.sum(qh * np.tanh(cond.grid.centers[0]))) / len(PATTERNS)
    u_direction = fit["gradient"].isel(iteration=0).values[:2]
    np.testing.assert_allclose(u_direction, -(clamped - np.array(free)), rtol=0, atol=1e-12)


def test_learning_stores_both_patterns_and_recall_finds_the_right_one(hebbian):
    net0, _, fit = hebbian
    f = fit["free_energy"].values
    assert np.all(np.diff(f) < 1e-12) and np.abs(fit["exact_gradient"].values[-1]).max() < 1e-10
    net = net0.with_parameters(fit["theta"].values[-1])
    for xi in PATTERNS:
        # before: both patterns fall to the one rest point at 0; after: each is (near) a rest point
        assert np.linalg.norm(net0.fixed_point(xi, [0.0])[:2] - xi) > 1.0
        x = net.fixed_point(xi, [0.0])
        assert np.abs(np.concatenate(net.rhs(x[:2], x[2:]))).max() < 1e-12
        assert np.linalg.norm(x[:2] - xi) < 0.15
        assert np.all(np.linalg.eigvalsh(energy_hessian(net, x)) > 0)  # a minimum of E
    # recall: corrupted patterns settle on the stored pattern they came from
    corrupted = PATTERNS + np.array([[-0.6, 0.5], [0.7, -0.4]])
    v, _ = net.settle(corrupted, np.zeros((2, 1)))
    nearest = np.argmin(np.linalg.norm(v[:, None, :] - PATTERNS[None], axis=-1), axis=1)
    assert nearest.tolist() == [0, 1]
    assert np.linalg.norm(v - PATTERNS, axis=1).max() < 0.15

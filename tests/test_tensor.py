"""Full mobility tensors: Selling links (symmetric part) and the antisymmetric part.

Identities are checked to rounding on every model of :data:`MODELS`;
accuracy by observed convergence order against exact answers (the
Ornstein–Uhlenbeck Gaussian for a non-symmetric K, the circulating current
of a rotating Gibbs state).
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg as sl
from helpers import slope
from scipy.integrate import solve_ivp
from scipy.sparse.linalg import expm_multiply

import fpsolver as fp
from fpsolver.discrete.selling import selling


def _rotation(theta: float) -> np.ndarray:
    c, s = np.cos(theta), np.sin(theta)
    return np.array([[c, -s], [s, c]])


def _aniso(kappa: float, theta: float) -> np.ndarray:
    R = _rotation(theta)
    return R @ np.diag([1.0, 1.0 / kappa]) @ R.T


def _field(x, y):
    """A smooth SPD field with an antisymmetric part that varies in space."""
    a = 0.3 * np.cos(y)
    return [[1 + 0.3 * np.sin(x), 0.2 * np.cos(x + y) + a], [0.2 * np.cos(x + y) - a, 1.2]]


G2 = fp.Grid(x=(-3, 3, 30), y=(-3, 3, 26))
G2P = fp.Grid(x=(-np.pi, np.pi, 24), y=(-3, 3, 20), periodic="x")
G3 = fp.Grid(x=(-2, 2, 10), y=(-2, 2, 9), z=(-2, 2, 8))
E2 = lambda x, y: 0.5 * x**2 + 0.3 * y**2 + 0.2 * x * y  # noqa: E731
K3 = np.array([[1.0, 0.3, -0.2], [0.3, 0.8, 0.25], [-0.2, 0.25, 0.6]])
A3 = np.array([[0.0, 0.4, 0.1], [-0.4, 0.0, -0.3], [-0.1, 0.3, 0.0]])

MODELS = {
    "spd-constant": lambda: fp.FokkerPlanck(G2, E2, 0.7, mobility=[[1.0, 0.6], [0.6, 0.5]]),
    "kappa-1000": lambda: fp.FokkerPlanck(G2, E2, 0.7, mobility=_aniso(1000, 0.3)),
    "nonsymmetric": lambda: fp.FokkerPlanck(G2, E2, 0.7, mobility=[[1.0, 0.6], [-0.2, 0.5]]),
    "rotation-dominated": lambda: fp.FokkerPlanck(G2, E2, 0.7, mobility=[[1.0, 3.0], [-3.0, 1]]),
    "field": lambda: fp.FokkerPlanck(G2, E2, 0.7, mobility=_field),
    "periodic": lambda: fp.FokkerPlanck(
        G2P, lambda x, y: np.cos(x) + 0.5 * y**2, 0.5, mobility=[[1.0, 0.7], [-0.1, 0.8]]
    ),
    "absorbing": lambda: fp.FokkerPlanck(
        G2, E2, 0.7, mobility=_aniso(20, 0.7), boundary={"x": "absorbing"}
    ),
    "3d": lambda: fp.FokkerPlanck(
        G3, lambda x, y, z: 0.5 * (x**2 + y**2 + z**2) + 0.2 * x * z, 0.6, mobility=K3 + A3
    ),
}


# -- Selling's decomposition ----------------------------------------------------
@pytest.mark.parametrize("d", [2, 3])
def test_selling_reconstructs_spd_matrices(d):
    rng = np.random.default_rng(1)
    A = rng.normal(size=(500, d, d))
    D = A @ A.transpose(0, 2, 1) + 1e-3 * np.eye(d)
    e, w = selling(D)
    assert e.dtype.kind == "i" and e.shape == (500, d * (d + 1) // 2, d)
    assert (w >= 0).all()
    R = np.einsum("nk,nki,nkj->nij", w, e, e)
    assert np.abs(R - D).max() <= 1e-12 * np.abs(D).max()


def test_selling_on_a_diagonal_matrix_is_the_axis_stencil():
    e, w = selling(np.array([[[2.0, 0.0], [0.0, 3.0]]]))
    weights = {tuple(abs(x) for x in off): v for off, v in zip(e[0].tolist(), w[0])}
    assert weights[(1, 0)] == 2.0 and weights[(0, 1)] == 3.0 and weights[(1, 1)] == 0.0


# -- the identities, on every model ----------------------------------------------
@pytest.fixture(params=sorted(MODELS))
def model(request):
    return MODELS[request.param]()


def test_mass_conserved(model):
    L = model.generator()
    colsum = model.grid.volumes.ravel() @ L
    if model.operator.absorbing:
        assert (colsum <= 1e-13 * abs(L.diagonal()).max()).all()
    else:
        assert np.abs(colsum).max() <= 1e-13 * abs(L.diagonal()).max()


def test_off_diagonals_nonnegative(model):
    L = model.generator().tocoo()
    off = L.row != L.col
    assert L.data[off].min() >= 0.0


def test_gibbs_exactly_stationary(model):
    if model.operator.absorbing:
        pytest.skip("no stationary density with an absorbing wall")
    L = model.generator()
    q = np.exp(model.log_equilibrium()).ravel()
    assert np.abs(L @ q).max() <= 1e-13 * np.abs(L.diagonal() * q).max()


def test_free_energy_decays_under_backward_euler(model):
    import scipy.sparse as sp
    import scipy.sparse.linalg as spl

    L = model.generator()
    n = L.shape[0]
    p = np.exp(-((model.grid.mesh()[0] - 1.0) ** 2)).ravel()
    p /= model.grid.volumes.ravel() @ p
    F = [model.free_energy(p.reshape(model.grid.shape))]
    for dt in (1e-3, 0.05, 1.0, 100.0):
        p = spl.spsolve(sp.csc_array(sp.eye(n) - dt * L), p)
        assert p.min() >= 0
        F.append(model.free_energy(p.reshape(model.grid.shape)))
    assert all(b <= a + 1e-12 * abs(a) for a, b in zip(F, F[1:]))


def test_tensor_scheme_equals_axis_scheme_for_a_diagonal_tensor():
    K = np.zeros((2, 2, *G2.shape))
    K[0, 0], K[1, 1] = 1.5, 0.7
    K[0, 1] = 1e-300  # a tensor in form, diagonal in value: the Selling path
    tensor = fp.FokkerPlanck(G2, E2, 0.7, mobility=K, mobility_kind="tensor")
    diag = fp.FokkerPlanck(G2, E2, 0.7, mobility=[1.5, 0.7])
    assert tensor.is_tensor and not diag.is_tensor
    diff = abs(tensor.generator() - diag.generator()).max()
    assert diff <= 1e-13 * abs(diag.generator()).max()


def test_reversible_flags():
    assert MODELS["spd-constant"]().operator.reversible
    nonsym = MODELS["nonsymmetric"]().operator
    assert not nonsym.reversible and nonsym.gibbs_stationary


# -- accuracy --------------------------------------------------------------------
def _ou_moments(B, S, T, m0, C0, t):
    m = sl.expm(-B * t) @ m0

    def rhs(_, y):
        C = y.reshape(2, 2)
        return (-B @ C - C @ B.T + 2 * T * S).ravel()

    C = solve_ivp(rhs, (0, t), C0.ravel(), rtol=1e-12, atol=1e-14).y[:, -1].reshape(2, 2)
    return m, C


def test_ornstein_uhlenbeck_with_nonsymmetric_mobility_is_second_order():
    """dx = −K H x dt + sqrt(2T S) dW stays Gaussian; moments from linear ODEs."""
    H = np.array([[1.0, 0.3], [0.3, 0.8]])
    K = np.array([[1.0, 0.6], [-0.2, 0.5]])
    T, t = 0.5, 0.5
    m0, C0 = np.array([0.8, -0.5]), np.array([[0.1, 0.02], [0.02, 0.08]])
    m, C = _ou_moments(K @ H, 0.5 * (K + K.T), T, m0, C0, t)
    errors, hs = [], []
    for n in (24, 48, 96):
        g = fp.Grid(x=(-4, 4, n), y=(-4, 4, n))
        energy = lambda x, y: 0.5 * (H[0, 0] * x * x + 2 * H[0, 1] * x * y + H[1, 1] * y * y)  # noqa: E731
        model = fp.FokkerPlanck(g, energy, T, mobility=K)
        p = expm_multiply(model.generator() * t, fp.gaussian(g, m0, C0).values.ravel())
        V, (X, Y) = g.volumes.ravel(), (a.ravel() for a in g.mesh())
        mx, my = V @ (p * X), V @ (p * Y)
        cov = [
            [V @ (p * (X - mx) ** 2), V @ (p * (X - mx) * (Y - my))],
            [0, V @ (p * (Y - my) ** 2)],
        ]
        cov[1][0] = cov[0][1]
        errors.append(max(np.abs([mx, my] - m).max(), np.abs(np.array(cov) - C).max()))
        hs.append(n)
    assert slope(hs, errors) > 1.9


def test_rotating_gibbs_state_carries_the_exact_circulating_current():
    """K = I + a J: p = q is stationary and its current is T ∇·(A q) = T a (∂_y q, −∂_x q)."""
    a, T = 0.8, 0.5
    errs, hs = [], []
    for n in (32, 64, 128):
        g = fp.Grid(x=(-4, 4, n), y=(-4, 4, n))
        model = fp.FokkerPlanck(
            g, lambda x, y: 0.5 * (x**2 + y**2), T, mobility=[[1.0, a], [-a, 1.0]]
        )
        q = np.exp(model.log_equilibrium())
        L = model.generator()
        assert np.abs(L @ q.ravel()).max() <= 1e-13 * np.abs(L.diagonal() * q.ravel()).max()
        J = model.operator.face_fluxes(q)
        Z = 2 * np.pi * T  # ∫ exp(−r²/2T)
        xf = g.edges[0][:, None]
        yc = g.centers[1][None, :]
        qx = np.exp(-(xf**2 + yc**2) / (2 * T)) / Z
        exact_x = T * a * (-yc / T) * qx  # T a ∂_y q on the x-faces
        errs.append(np.abs(J[0] - exact_x).max() / np.abs(exact_x).max())
        hs.append(n)
        assert np.abs(J[0]).max() > 0.1 * np.abs(exact_x).max()  # a real, circulating current
    assert slope(hs, errs) > 1.9


def test_antisymmetric_part_adds_no_dissipation_to_second_order():
    """dF/dt with K = S + A minus dF/dt with S alone, relative, falls like h²."""
    T = 0.6
    rel, hs = [], []
    for n in (24, 48, 96):
        g = fp.Grid(x=(-4, 4, n), y=(-4, 4, n))
        E = lambda x, y: 0.5 * x**2 + 0.4 * y**2  # noqa: E731
        sym = fp.FokkerPlanck(g, E, T, mobility=[[1.0, 0.2], [0.2, 0.8]])
        full = fp.FokkerPlanck(g, E, T, mobility=[[1.0, 0.7], [-0.3, 0.8]])
        p = fp.gaussian(g, (1.0, -0.5), [[0.3, 0.1], [0.1, 0.5]]).values.ravel()
        phi = sym.energy.ravel() + T * np.log(p)
        V = g.volumes.ravel()
        rates = [V @ (phi * (m.generator() @ p)) for m in (sym, full)]
        assert rates[0] < 0 and rates[1] < 0
        rel.append(abs(rates[1] - rates[0]) / abs(rates[0]))
        hs.append(n)
    assert slope(hs, rel) > 1.8


def test_strong_anisotropy_stays_monotone_and_exact():
    for kappa in (100.0, 1e4):
        for theta in (0.1, 0.4, 1.0):
            m = fp.FokkerPlanck(G2, E2, 0.7, mobility=_aniso(kappa, theta))
            L = m.generator().tocoo()
            assert L.data[L.row != L.col].min() >= 0
            q = np.exp(m.log_equilibrium()).ravel()
            assert np.abs(L @ q).max() <= 1e-13 * np.abs(L.diagonal() * q).max()


def test_links_leaving_a_wall_are_dropped_and_periodic_links_wrap():
    """Stencil width: offsets up to max-norm of about sqrt(κ); none crosses a wall."""
    m = fp.FokkerPlanck(G2P, lambda x, y: 0.5 * y**2, 0.5, mobility=_aniso(100, 0.3))
    links = m.operator.links
    width = max(np.abs(ln.offset).max() for ln in links)
    assert 2 <= width <= 12
    wrapped_x = False
    for ln in links:
        (ix_s, iy_s), (ix_d, iy_d) = (np.unravel_index(c, G2P.shape) for c in (ln.src, ln.dst))
        assert (iy_d - iy_s == ln.offset[1]).all()  # y is bounded: never wraps
        wrapped_x |= bool(np.any(ix_d - ix_s != ln.offset[0]))
    assert wrapped_x  # x is periodic: some links wrap


def test_current_divergence_equals_the_generator():
    for name in ("nonsymmetric", "field", "periodic", "absorbing", "3d"):
        m = MODELS[name]()
        g = m.grid
        p = np.exp(-((g.mesh()[0] - 0.5) ** 2 + g.mesh()[1] ** 2)).ravel()
        J = m.operator.face_fluxes(p.reshape(g.shape))
        div = np.zeros(g.shape)
        for a, Ja in enumerate(J):
            flux = Ja * g.face_areas(a)
            if g.periodic[a]:
                flux = np.concatenate([np.take(flux, [-1], axis=a), flux], axis=a)
            div -= np.diff(flux, axis=a)
        lhs = div / g.volumes
        rhs = (m.generator() @ p).reshape(g.shape)
        assert np.abs(lhs - rhs).max() <= 1e-12 * np.abs(rhs).max(), name


# -- the rest of the library accepts tensor models ---------------------------------
def test_solve_stationary_spectrum_accept_tensor_models():
    m = MODELS["nonsymmetric"]()
    ds = m.solve(fp.gaussian(G2, (1, 0), 0.2), t_end=0.5, dt=0.05)
    assert abs(float(ds.mass[-1]) - 1) < 1e-12
    assert (ds.free_energy.diff("time") <= 1e-12).all()
    q = np.exp(m.log_equilibrium())
    assert np.abs(m.stationary().values - q).max() <= 1e-12 * q.max()
    rates = m.spectrum(3)["rate"].values
    assert abs(rates[0]) < 1e-8 and (rates[1:].real > 0).all()


# -- bad input ---------------------------------------------------------------------
def test_not_positive_definite_names_the_cell_and_eigenvalues():
    with pytest.raises(ValueError, match=r"positive definite.*cell \(x=.*eigenvalues"):
        fp.FokkerPlanck(G2, E2, mobility=[[1.0, 2.0], [2.0, 1.0]])
    with pytest.raises(ValueError, match="positive definite"):
        fp.FokkerPlanck(G2, E2, mobility=lambda x, y: [[1.0, x], [x, 1.0]])


def test_ambiguous_shape_needs_mobility_kind():
    g = fp.Grid(x=(0, 1, 2), y=(0, 1, 2))
    with pytest.raises(ValueError, match="ambiguous.*mobility_kind"):
        fp.FokkerPlanck(g, 0.0, mobility=[[1.0, 0.1], [0.1, 1.0]])
    assert fp.FokkerPlanck(
        g, 0.0, mobility=[[1.0, 0.1], [0.1, 1.0]], mobility_kind="tensor"
    ).is_tensor
    assert not fp.FokkerPlanck(
        g, 0.0, mobility=[[1.0, 2.0], [3.0, 4.0]], mobility_kind="scalar"
    ).is_tensor
    with pytest.raises(ValueError, match="mobility_kind"):
        fp.FokkerPlanck(g, 0.0, mobility=1.0, mobility_kind="matrix")


def test_antisymmetric_part_with_a_force_is_refused():
    m = fp.FokkerPlanck(G2, E2, mobility=[[1.0, 0.5], [-0.5, 1.0]], force=[0.3, 0.0])
    with pytest.raises(ValueError, match="antisymmetric"):
        m.generator()


# -- particles in the same model ---------------------------------------------------
def _tanh_field(x, y):
    return [
        [1 + 0.4 * np.tanh(x), 0.3 + 0.2 * np.sin(y)],
        [-0.1 + 0.2 * np.sin(y), 0.8 + 0.3 * np.tanh(y)],
    ]


def _particle_check(model, divergence_term=True, monkeypatch=None):
    """Grid and particle runs of `model`; the smallest chi-square p-value over saved times."""
    import fpsolver.sampling.particles as particles

    if not divergence_term:
        monkeypatch.setattr(
            particles,
            "_dynamics_for",
            lambda m: particles._TensorDynamics(m, divergence_term=False),
        )
    g = model.grid
    p0 = fp.gaussian(g, (1.0, -0.5), 0.1)
    ds = model.solve(p0, t_end=0.6, dt=0.01, save_every=0.3)
    parts = fp.simulate_particles(model, p0, n=10_000, t_end=0.6, dt=2e-3, save_every=0.3, seed=3)
    return float(fp.compare(ds, parts)["p_value"][1:].min())


ALPHA = 1e-3  # per saved time; two saved times: a false alarm rate of at most 2e-3


@pytest.mark.parametrize(
    "mobility",
    [_tanh_field, [[1.0, 0.6], [-0.6, 0.5]]],
    ids=["field with antisymmetric part", "constant, rotating"],
)
def test_particles_agree_with_the_grid(mobility):
    g = fp.Grid(x=(-3, 3, 30), y=(-3, 3, 30))
    model = fp.FokkerPlanck(g, lambda x, y: 0.5 * x**2 + 0.4 * y**2, 0.6, mobility=mobility)
    assert _particle_check(model) > ALPHA


def test_particles_without_the_divergence_term_are_rejected(monkeypatch):
    """Power: dropping T ∂_b K^ab (the wrong model) is detected at the same α."""
    g = fp.Grid(x=(-3, 3, 30), y=(-3, 3, 30))
    model = fp.FokkerPlanck(g, lambda x, y: 0.5 * x**2 + 0.4 * y**2, 0.6, mobility=_tanh_field)
    assert _particle_check(model, divergence_term=False, monkeypatch=monkeypatch) < ALPHA


def _almost_isotropic(theta, phi):
    tiny = 1e-300 + 0 * theta
    return [[1.0, tiny], [tiny, 1.0]]


def test_isotropic_tensor_on_the_sphere_gives_l_l_plus_1_at_second_order():
    """A tensor in form (tiny off-diagonal): rates 2 (l = 1) and 6 (l = 2), K = T = 1."""
    errors = []
    for n in (12, 24):
        g = fp.Grid.sphere(n_theta=n, n_phi=2 * n)
        m = fp.FokkerPlanck(g, 0.0, 1.0, mobility=_almost_isotropic)
        assert m.is_tensor
        rates = np.sort(np.real(m.spectrum(9)["rate"].values))
        errors.append(max(np.abs(rates[1:4] - 2).max(), np.abs(rates[4:9] - 6).max()))
    assert slope([12, 24], errors) > 1.9


def test_anisotropic_tensor_on_the_disc_keeps_the_identities_and_converges():
    """A constant Cartesian K in the polar frame: OU's slowest rate is λ_min(K).

    Exact: mass, off-diagonals ≥ 0, Gibbs stationary. The rate converges at
    an observed order of about 1.6 (the stencils of the cells at the centre
    are first order), stated in the guide.
    """
    Kc = np.array([[1.0, 0.3], [0.3, 0.6]])
    lam = np.linalg.eigvalsh(Kc)[0]

    def frame(r, phi):
        c, s = np.cos(phi), np.sin(phi)
        er, ep = (c, s), (-s, c)
        k = lambda u, v: sum(u[i] * Kc[i, j] * v[j] for i in range(2) for j in range(2))  # noqa: E731
        return [[k(er, er), k(er, ep)], [k(ep, er), k(ep, ep)]]

    errors = []
    for n in (16, 32, 64):
        g = fp.Grid.polar(r=(0, 5, n), phi=2 * n)
        m = fp.FokkerPlanck(g, lambda r, phi: 0.5 * r**2, 1.0, mobility=frame)
        L = m.generator()
        coo = L.tocoo()
        assert coo.data[coo.row != coo.col].min() >= 0
        assert np.abs(g.volumes.ravel() @ L).max() <= 1e-13 * np.abs(L.diagonal()).max()
        q = np.exp(m.log_equilibrium()).ravel()
        assert np.abs(L @ q).max() <= 1e-13 * np.abs(L.diagonal() * q).max()
        rates = np.sort(np.real(m.spectrum(2)["rate"].values))
        errors.append(abs(rates[1] - lam))
    assert slope([16, 32, 64], errors) > 1.4


def test_stationary_of_an_antisymmetric_model_is_the_gibbs_density():
    m = MODELS["nonsymmetric"]()
    ds = m.stationary()
    assert ds.attrs.get("method", "gibbs") == "gibbs"
    assert np.array_equal(ds.values, np.exp(m.log_equilibrium()))


def test_passage_tools_accept_tensor_models():
    """The mean exit time solves L* τ = −1 with τ = 0 at the absorbing walls."""
    g = fp.Grid(x=(-2, 2, 30), y=(-2, 2, 30))
    m = fp.FokkerPlanck(
        g,
        lambda x, y: 0.5 * x**2 + 0.5 * y**2,
        0.5,
        mobility=[[1.0, 0.4], [-0.4, 0.6]],
        boundary={"x": "absorbing"},
    )
    tau = fp.mean_first_passage_time(m).values.ravel()
    assert (tau > 0).all()
    residual = m.operator.backward @ tau + 1.0
    assert np.abs(residual).max() <= 1e-8


# -- the assembly against a straightforward reference -------------------------------
def test_bernoulli_pair_matches_bernoulli_to_rounding():
    from fpsolver.discrete.sg import bernoulli, bernoulli_pair

    z = np.concatenate([np.logspace(-300, np.log10(700.0), 4001), [0.0, 1e-2, 710.0, 1e5]])
    z = np.concatenate([z, -z])
    f, b = bernoulli_pair(z)
    for got, ref in ((f, bernoulli(z)), (b, bernoulli(-z))):
        assert np.all(np.abs(got - ref) <= 4.5e-16 * ref)  # two ulp
    small = np.abs(z) < 700
    assert np.all(np.abs(b[small] - np.exp(z[small]) * f[small]) <= 4.5e-16 * b[small])
    assert f[z == 0].tolist() == [1.0, 1.0] and b[z == 1e5][0] == 1e5 and f[z == 1e5][0] == 0.0


def _reference_links(model):
    """{(src, dst): weight} of the Selling links, one cell and one term at a time."""
    g = model.grid
    K = model.mobility_tensor()
    S = 0.5 * (K + np.swapaxes(K, 0, 1))
    V = g.volumes
    links = {}
    for cell in np.ndindex(g.shape):
        h = np.array([g.widths[a][cell[a]] for a in range(g.ndim)])
        St = S[(slice(None), slice(None), *cell)] / np.outer(h, h)
        offs, rho = selling(St[None])
        for e, r in zip(offs[0], rho[0]):
            if e[np.flatnonzero(e)[0]] < 0:
                e = -e
            for src in (np.array(cell), np.array(cell) - e):
                dst = src + e
                ends = np.array([src, dst])
                inside = all(
                    g.periodic[a] or (0 <= ends[:, a].min() and ends[:, a].max() < g.shape[a])
                    for a in range(g.ndim)
                )
                if r > 0 and inside:
                    key = tuple(
                        np.ravel_multi_index(tuple(np.mod(x, g.shape)), g.shape) for x in ends
                    )
                    links[key] = links.get(key, 0.0) + 0.5 * model.temperature * V[cell] * r
    return links


def _reference_antisymmetric(model, q):
    """{(i, i + e_a): β}, one face at a time, in 2-D and 3-D.

    Ψ^{ab} on each edge (a vertex in 2-D): T mean(A^{ab}) H(q) over the four
    cells around it, times the widths along the other axes (the edge's
    length), zero on a bounded wall; H is the harmonic mean. The face
    normal to a takes β = Σ_{b≠a} [Ψ^{ab}] across it, with Ψ^{ba} = −Ψ^{ab}.
    """
    g = model.grid
    shape, nd, T = g.shape, g.ndim, model.temperature
    K = model.mobility_tensor()

    def psi(a, b, cell, va, vb):  # a < b: the edge at vertex (va, vb) of axes a, b
        if (not g.periodic[a] and va in (0, shape[a])) or (
            not g.periodic[b] and vb in (0, shape[b])
        ):
            return 0.0
        around = []
        for da in (0, 1):
            for db in (0, 1):
                c = list(cell)
                c[a], c[b] = (va - 1 + da) % shape[a], (vb - 1 + db) % shape[b]
                around.append(tuple(c))
        mean_a = 0.25 * sum(0.5 * (K[(a, b, *c)] - K[(b, a, *c)]) for c in around)
        length = np.prod([g.widths[c][cell[c]] for c in range(nd) if c not in (a, b)])
        return T * mean_a * 4.0 / sum(1.0 / q[c] for c in around) * length

    def signed(a, b, cell, va, vb):
        return psi(a, b, cell, va, vb) if a < b else -psi(b, a, cell, vb, va)

    beta = {}
    for cell in np.ndindex(shape):
        for a in range(nd):
            if not g.periodic[a] and cell[a] + 1 == shape[a]:
                continue
            up = list(cell)
            up[a] = (cell[a] + 1) % shape[a]
            key = (np.ravel_multi_index(cell, shape), np.ravel_multi_index(tuple(up), shape))
            beta[key] = sum(
                signed(a, b, cell, cell[a] + 1, cell[b] + 1)
                - signed(a, b, cell, cell[a] + 1, cell[b])
                for b in range(nd)
                if b != a
            )
    return beta


def _reference_generator(model):
    """Dense L from the reference links: SG weights, A's central/hybrid face fluxes, walls."""
    from fpsolver.discrete.sg import bernoulli

    g, T = model.grid, model.temperature
    n, E, V = g.size, model.energy.ravel(), g.volumes.ravel()
    q = np.exp(model.log_equilibrium())
    rates = {}
    for (s, t), w in _reference_links(model).items():
        d = (E[t] - E[s]) / T
        rates[(s, t)] = [w * bernoulli(d), w * bernoulli(-d)]
    if model.has_antisymmetric:
        for (s, t), b in _reference_antisymmetric(model, q).items():
            c = rates.get((s, t), [0.0, 0.0])
            b_s, b_t = b / q.ravel()[s], b / q.ravel()[t]
            if abs(b_s) / 2 >= c[0] * (1 - 1e-12):
                rates[(s, t)] = [abs(b_s) / 2 + b_s / 2, abs(b_t) / 2 - b_t / 2]
            else:
                rates[(s, t)] = [c[0] + b_s / 2, c[1] - b_t / 2]
    L = np.zeros((n, n))
    for (s, t), (fwd, bwd) in rates.items():
        L[t, s] += fwd / V[t]
        L[s, t] += bwd / V[s]
        L[s, s] -= fwd / V[s]
        L[t, t] -= bwd / V[t]
    for _, _, cells, w, d in model.operator.walls:
        for c, out in zip(cells.ravel(), np.ravel(w * bernoulli(d))):
            L[c, c] -= out / V[c]
    return L, rates


G2W = fp.Grid(x=(-2, 2, 9), y=(-np.pi, np.pi, 8), periodic="y")
REFERENCE = {
    "constant": lambda: fp.FokkerPlanck(
        G2W,
        lambda x, y: 0.5 * x**2 + np.cos(y) + 0.2 * x * np.sin(y),
        0.7,
        mobility=_aniso(30, 0.4),
    ),
    "field, absorbing": lambda: fp.FokkerPlanck(
        fp.Grid(x=(-3, 3, 9), y=(-3, 3, 7)),
        E2,
        0.7,
        mobility=_tanh_field,
        boundary={"y": "absorbing"},
    ),
    "rotation-dominated, periodic": lambda: fp.FokkerPlanck(
        G2W, lambda x, y: 0.5 * x**2 + np.cos(y), 0.5, mobility=[[1.0, 3.0], [-2.0, 0.6]]
    ),
    "tiny periodic (duplicate pairs)": lambda: fp.FokkerPlanck(
        fp.Grid(x=(0, 1, 3), y=(0, 1, 2), periodic=("x", "y")), 0.0, 0.7, mobility=_aniso(20, 0.4)
    ),
    "narrow (offsets longer than an axis)": lambda: fp.FokkerPlanck(
        fp.Grid(x=(0, 1, 3), y=(-2, 2, 10)),
        lambda x, y: 0.5 * y**2 + x,
        0.7,
        mobility=_aniso(400, 0.3) + np.array([[0.0, 0.3], [-0.3, 0.0]]),
    ),
    "3d, periodic": lambda: fp.FokkerPlanck(
        fp.Grid(x=(-2, 2, 5), y=(-np.pi, np.pi, 6), z=(-2, 2, 4), periodic="y"),
        lambda x, y, z: 0.5 * x**2 + np.cos(y) + 0.3 * z**2 + 0.2 * x * z,
        0.6,
        mobility=K3,
    ),
    "3d antisymmetric, periodic, uneven": lambda: fp.FokkerPlanck(
        fp.Grid(
            x=np.array([-2.0, -1.2, -0.1, 0.5, 1.4, 2.0]),
            y=(-np.pi, np.pi, 6),
            z=np.array([-2.0, -0.7, 0.2, 2.0]),
            periodic="y",
        ),
        lambda x, y, z: 0.5 * x**2 + np.cos(y) + 0.3 * z**2 + 0.2 * x * z,
        0.6,
        mobility=K3 + 3.0 * A3,  # strong enough for hybrid faces
    ),
    "3d antisymmetric field, absorbing": lambda: fp.FokkerPlanck(
        fp.Grid(x=(-2, 2, 5), y=(-2, 2, 4), z=(-2, 2, 6)),
        lambda x, y, z: 0.5 * (x**2 + y**2 + z**2) + 0.2 * x * y,
        0.7,
        mobility=lambda x, y, z: (
            K3[:, :, None, None, None]
            + A3[:, :, None, None, None] * (1.0 + 0.5 * np.sin(x + 2 * y - z))
        ),
        boundary={"z": "absorbing"},
    ),
}


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_generator_equals_a_reference_assembly(name):
    """The vectorised assembly (boxes of links, merged A, direct CSR) against cell-by-cell loops."""
    model = REFERENCE[name]()
    L = model.generator()
    ref, rates = _reference_generator(model)
    assert np.abs(L.toarray() - ref).max() <= 1e-14 * np.abs(ref).max()
    # Canonical CSR: sorted, no duplicate columns, one stored entry per link and direction.
    starts = np.zeros(L.nnz, dtype=bool)
    starts[L.indptr[:-1][np.diff(L.indptr) > 0]] = True
    assert np.all(np.diff(L.indices)[~starts[1:]] > 0)
    pairs = {(s, t) for s, t in rates} | {(t, s) for s, t in rates}
    assert L.nnz == len(pairs | {(i, i) for i in range(L.shape[0])})
    # Hybrid faces: the vanishing coefficient is exactly zero in L, not rounding noise.
    faces, dense = model.operator.antisymmetric_faces or [], L.toarray()
    for f in faces:
        i, j = f["i"][f["hybrid"]], f["j"][f["hybrid"]]
        assert np.all(np.minimum(dense[i, j], dense[j, i]) == 0.0)
    if name.startswith("rotation"):
        assert sum(f["hybrid"].sum() for f in faces) > 0

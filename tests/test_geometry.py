"""Curved grids: polar, sphere, torus and user metrics (cell measures, faces, exact answers)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as sla

import fpsolver as fp
from fpsolver.discrete import sg
from fpsolver.discrete.separable import factorize


def _polar_scale(r, phi):
    return 1.0 + 0.0 * r, r


def _grids():
    return {
        "polar": fp.Grid.polar(r=(0, 3, 10), phi=12),
        "sphere": fp.Grid.sphere(n_theta=10, n_phi=12, radius=1.5),
        "torus": fp.Grid.torus(theta=10, phi=12, major=2.0, minor=0.7),
        "curvilinear": fp.Grid.curvilinear(
            _polar_scale, r=(0.5, 2.0, 8), phi=(0, 2 * np.pi, 10), periodic="phi"
        ),
    }


def _energy(a, b):
    return np.cos(a) * np.sin(b) + 0.3 * np.cos(2 * b)


# -- the grids ----------------------------------------------------------------
def test_measures_are_exact():
    pi = np.pi
    assert abs(fp.Grid.polar(r=(0, 3, 7), phi=9).volumes.sum() - 9 * pi) < 1e-12
    assert abs(fp.Grid.polar(r=(1, 2, 7), phi=9).volumes.sum() - 3 * pi) < 1e-12
    assert abs(fp.Grid.sphere(n_theta=7, n_phi=9, radius=2).volumes.sum() - 16 * pi) < 1e-12
    assert abs(fp.Grid.torus(theta=7, phi=9, major=3, minor=1).volumes.sum() - 12 * pi**2) < 1e-11
    g = fp.Grid.sphere(n_theta=6, n_phi=8)
    cap = (1 - np.cos(pi / 6)) * 2 * pi / 8
    assert abs(g.volumes[0, 3] - cap) < 1e-15 and abs(g.volumes[-1, 0] - cap) < 1e-15
    # the centre and the poles are faces of zero area: no link crosses them
    assert np.all(fp.Grid.polar(r=(0, 1, 4), phi=6).face_areas(0)[0] == 0)
    assert np.all(g.face_areas(0)[[0, -1]] == 0) and np.all(g.face_coefficients(0)[[0, -1]] == 0)


def test_user_metric_reproduces_polar():
    e = dict(r=(0.0, 2.0, 6), phi=(0.0, 2 * np.pi, 8))
    c = fp.Grid.curvilinear(_polar_scale, periodic="phi", **e)
    by_metric = fp.Grid.curvilinear(metric=lambda r, phi: (1.0 + 0 * r, r * r), periodic="phi", **e)
    p = fp.Grid.polar(r=e["r"], phi=8)
    for g in (c, by_metric):
        np.testing.assert_allclose(g.volumes, p.volumes, rtol=1e-14, atol=1e-16)
        for a in range(2):
            f = np.broadcast_to(p.face_coefficients(a), g.face_coefficients(a).shape)
            np.testing.assert_allclose(g.face_coefficients(a), f, rtol=1e-13, atol=1e-15)


def test_grid_identity_and_attrs_round_trip():
    grids = _grids()
    for name, g in grids.items():
        with pytest.raises(AttributeError):
            g.volumes = None
        back = fp.Grid.from_attrs(g.to_attrs())
        assert back == g and hash(back) == hash(g), name
        np.testing.assert_array_equal(back.volumes, g.volumes)
        flat = fp.Grid(
            periodic=[n for n, p in zip(g.names, g.periodic) if p], **dict(zip(g.names, g.edges))
        )
        assert g != flat and flat.kind == "cartesian" and g.kind == name
    assert fp.Grid.sphere(n_theta=10, n_phi=12) != grids["sphere"]  # another radius
    assert fp.Grid.torus(theta=10, phi=12, major=2.0, minor=0.6) != grids["torus"]
    other = fp.Grid.curvilinear(
        lambda r, phi: (1.0 + 0 * r, 1.01 * r),
        r=(0.5, 2.0, 8),
        phi=(0, 2 * np.pi, 10),
        periodic="phi",
    )
    assert other != grids["curvilinear"]
    assert len({*grids.values(), *(fp.Grid.from_attrs(g.to_attrs()) for g in grids.values())}) == 4


def test_result_netcdf_round_trip(tmp_path):
    for g in (fp.Grid.sphere(n_theta=6, n_phi=8), _grids()["curvilinear"]):
        m = fp.FokkerPlanck(g, energy=_energy, temperature=1.0)
        ds = m.solve(m.equilibrium(), t_end=0.1, dt=0.05)
        path = fp.save_result(ds, tmp_path / f"{g.kind}.nc")
        assert fp.io.results.result_grid(fp.open_result(path)) == g


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: fp.Grid.polar(r=(-1, 1, 4), phi=8), "r >= 0"),
        (lambda: fp.Grid.torus(major=1.0, minor=1.0), "major > minor"),
        (lambda: fp.Grid.sphere(n_theta=(0, 4, 4)), r"\[0, pi\]"),
        (lambda: fp.Grid.curvilinear(r=(0, 1, 4)), "exactly one"),
        (
            lambda: fp.Grid.curvilinear(
                lambda x, y: (1 + 0 * x, x - 0.5), x=(0, 1, 4), y=(0, 1, 3)
            ),
            r"singular or non-positive metric \(h_y.*inside 6 cell\(s\): \(0, 0\) at \(x=0.125",
        ),
        (
            lambda: fp.Grid.curvilinear(
                metric=lambda x, y: (1 + 0 * x, 0.5 - x), x=(0, 1, 4), y=(0, 1, 3)
            ),
            r"`metric` gives a singular.*\(2, 0\) at \(x=0.625",
        ),
        (
            lambda: fp.Grid.curvilinear(
                lambda x, y: (1 + 0 * x, 1 + y), x=(0, 1, 4), y=(0, 1, 3), periodic="y"
            ),
            "periodic but the metric is not",
        ),
    ],
)
def test_bad_geometry_is_refused(make, match):
    with pytest.raises(ValueError, match=match):
        make()


# -- the scheme's exact properties ------------------------------------------
@pytest.mark.parametrize("kind", ["polar", "sphere", "torus", "curvilinear"])
def test_scheme_properties(kind):
    g = _grids()[kind]
    m = fp.FokkerPlanck(g, energy=_energy, temperature=0.4, mobility=(1.0, 0.5))
    L = fp.discretize(m).generator
    V = g.volumes.ravel()
    scale = float(np.max(np.abs(L.diagonal()) * V))
    assert np.max(np.abs(V @ L)) < 1e-13 * scale  # mass
    off = L - sp.diags_array(L.diagonal())
    assert off.min() >= 0.0 and np.all(L.diagonal() <= 0)  # M-matrix
    q = m.equilibrium().values.ravel()
    assert np.max(np.abs(L @ q)) < 1e-13 * float(np.max(np.abs(L.diagonal()) * q))  # exact Gibbs
    ds = m.solve(
        fp.gaussian(g, mean=[float(c.mean()) for c in g.centers], cov=0.3),
        t_end=2.0,
        dt=0.5,
        method="backward_euler",
    )
    assert np.all(np.diff(ds["free_energy"].values) <= 1e-13)
    assert np.max(np.abs(ds["mass"].values - 1)) < 1e-12
    assert ds.attrs["path"] != "separable"


@pytest.mark.parametrize("kind", ["polar", "sphere", "torus", "curvilinear"])
def test_fluxes_per_area_rebuild_the_generator(kind):
    """Σ faces (flux · area) reproduces V · L p; no flux through the centre or the poles."""
    g = _grids()[kind]
    m = fp.FokkerPlanck(g, energy=_energy, temperature=0.7)
    op = fp.discretize(m)
    p = np.random.default_rng(0).random(g.shape) + 0.5
    J = sg.face_fluxes(g, op.links, op.walls, p)
    net = np.zeros(g.shape)
    for a, j in enumerate(J):
        area = g.face_areas(a)
        if g.periodic[a]:
            area = np.take(area, np.arange(1, area.shape[a]), axis=a)
            flow = j * area
            net += np.roll(flow, 1, axis=a) - flow
        else:
            flow = j * area
            net += np.diff(-flow, axis=a)
        if not g.periodic[a]:
            assert np.all(np.take(j, [0, j.shape[a] - 1], axis=a) == 0)  # reflecting walls
    ref = g.volumes * (op.generator @ p.ravel()).reshape(g.shape)
    assert np.max(np.abs(net - ref)) < 1e-12 * np.max(np.abs(ref))
    ds = m.current(m.equilibrium())
    assert set(ds.data_vars) == {f"J_{n}" for n in g.names}


def test_separable_path_is_not_taken():
    g = fp.Grid.sphere(n_theta=8, n_phi=8)
    m = fp.FokkerPlanck(g, energy=lambda theta, phi: np.cos(theta), temperature=1.0)
    assert factorize(m) is None
    flat = fp.Grid(theta=(0, np.pi, 8), phi=(0, 2 * np.pi, 8), periodic="phi")
    assert factorize(fp.FokkerPlanck(flat, energy=lambda theta, phi: np.cos(theta))) is not None


# -- exact answers -------------------------------------------------------------
def _order(errors, ns):
    """Observed orders between successive refinements (rows), per quantity (columns)."""
    e = np.asarray(errors, dtype=float)
    ratio = np.asarray(ns[1:], float) / np.asarray(ns[:-1], float)
    return np.log(e[:-1] / e[1:]) / np.log(ratio).reshape((-1,) + (1,) * (e.ndim - 1))


def test_sphere_rotational_diffusion_spectrum():
    """Rates l(l+1) K T with multiplicity 2l+1 (l ≤ 3), converging at second order."""
    K, T = 0.5, 2.0
    exact = np.concatenate([np.full(2 * l + 1, l * (l + 1) * K * T) for l in range(4)])
    errs, ns = [], [12, 24, 48]
    for n in ns:
        g = fp.Grid.sphere(n_theta=n, n_phi=2 * n)
        m = fp.FokkerPlanck(g, energy=lambda theta, phi: 0 * theta, temperature=T, mobility=K)
        rates = np.sort(fp.spectrum(m, k=16)["rate"].values)
        errs.append(np.abs(rates - exact))
    assert errs[-1][0] < 1e-10
    order = _order([e[1:] for e in errs], ns)
    assert np.all(order[-1] > 1.9), order
    assert np.max(errs[-1][1:] / exact[1:]) < 5e-3  # 4.3e-3 at l = 3, n = 48


def test_von_mises_fisher_equilibrium_second_order_at_poles_and_bulk():
    kappa, T = 3.0, 1.0
    a = kappa / T
    pole_err, bulk_err, ns = [], [], [16, 32, 64]
    for n in ns:
        g = fp.Grid.sphere(n_theta=n, n_phi=8)
        q = fp.FokkerPlanck(g, energy=lambda theta, phi: -kappa * np.cos(theta), temperature=T)
        q = q.equilibrium().values
        th = g.edges[0]
        z = 4 * np.pi * np.sinh(a) / a
        avg = (np.exp(a * np.cos(th[:-1])) - np.exp(a * np.cos(th[1:]))) / a
        avg = avg / (np.cos(th[:-1]) - np.cos(th[1:])) / z
        err = np.abs(q[:, 0] - avg) / avg
        pole_err.append(max(err[0], err[-1]))
        bulk_err.append(err[1:-1].max())
    for e in (pole_err, bulk_err):
        order = _order(e, ns)
        assert np.all((order > 1.95) & (order < 2.1)), order


def _resolvent_error(g, u, lu):
    """max |u_h − u| from (I − L) u_h = (u − ℒu) at the centres (free diffusion, T = K = 1)."""
    m = fp.FokkerPlanck(g, energy=lambda a, b: 0 * a, temperature=1.0)
    L = fp.discretize(m).generator
    X = g.mesh()
    A = sp.csc_matrix(sp.eye_array(g.size) - L)
    uh = sla.spsolve(A, (u(*X) - lu(*X)).ravel()).reshape(g.shape)
    return np.abs(uh - u(*X))


def test_poles_and_centre_converge_at_second_order():
    """Local errors in the cells touching the poles / the centre: order 2, not h² log h."""

    def su(th, ph):  # exp(x) on the unit sphere; Δ e^x = e^x (1 − x² − 2x)
        return np.exp(np.sin(th) * np.cos(ph))

    def slu(th, ph):
        x = np.sin(th) * np.cos(ph)
        return np.exp(x) * (1 - x * x - 2 * x)

    def pu(r, ph):  # a Gaussian bump off the centre of a disc
        return np.exp(-((r * np.cos(ph) - 0.5) ** 2 + (r * np.sin(ph) - 0.3) ** 2) / 2)

    def plu(r, ph):
        d2 = (r * np.cos(ph) - 0.5) ** 2 + (r * np.sin(ph) - 0.3) ** 2
        return (d2 - 2) * pu(r, ph)

    s_pole, s_bulk, c_ring, c_bulk = [], [], [], []
    for n in (16, 32, 64):
        e = _resolvent_error(fp.Grid.sphere(n_theta=n, n_phi=2 * n), su, slu)
        s_pole.append(max(e[0].max(), e[-1].max()))
        s_bulk.append(e[1:-1].max())
        e = _resolvent_error(fp.Grid.polar(r=(0, 6, 1.5 * n), phi=1.5 * n), pu, plu)
        c_ring.append(e[0].max())
        c_bulk.append(e[1:].max())
    for name, e in {
        "pole": s_pole,
        "sphere bulk": s_bulk,
        "centre": c_ring,
        "disc bulk": c_bulk,
    }.items():
        order = _order(e, np.array([16, 32, 64]))
        assert np.all(order > 1.95), (name, order)


def test_polar_ornstein_uhlenbeck_spectrum():
    """E = r²/2 on a disc: Gibbs exactly stationary, rates n (multiplicity n + 1), order 2."""
    T = 0.5
    exact = np.array([0, 1, 1, 2, 2, 2, 3, 3, 3, 3], float)
    errs, ns = [], [16, 32, 64]
    for n in ns:
        g = fp.Grid.polar(r=(0, 6 * np.sqrt(T), n), phi=n)
        m = fp.FokkerPlanck(g, energy=lambda r, phi: 0.5 * r**2, temperature=T)
        st = fp.stationary(m)
        q = np.exp(-(g.mesh()[0] ** 2) / (2 * T))
        q /= np.sum(g.volumes * q)
        assert np.max(np.abs(st.values - q)) < 1e-9 * q.max()
        errs.append(np.abs(np.sort(fp.spectrum(m, k=10)["rate"].values) - exact)[1:])
    order = _order(errs, ns)
    assert np.all(order[-1] > 1.9), order


# -- particles and compare -------------------------------------------------------
# compare's chi-square p-values at 3 saved times, each tested at 1e-3: a false alarm
# rate below 3e-3 for a correct particle model (seeds fixed, so the test is deterministic).
ALPHA = 1e-3


def _particles_vs_grid(model, p0, seed=0, **kw):
    kw = dict(n=20_000, t_end=0.5, dt=5e-3, save_every=0.25, seed=seed) | kw
    parts = fp.simulate_particles(model, p0, **kw)
    ds = model.solve(p0, t_end=kw["t_end"], dt=0.01, save_every=kw["save_every"])
    return fp.compare(ds, parts)["p_value"].values


def _vmf():
    g = fp.Grid.sphere(n_theta=12, n_phi=12)
    return fp.FokkerPlanck(g, energy=lambda theta, phi: -2.0 * np.cos(theta), temperature=1.0)


def test_compare_accepts_particles_on_the_sphere():
    """von Mises–Fisher equilibrium stays put under the embedded (chart-free) particle moves."""
    m = _vmf()
    assert np.all(_particles_vs_grid(m, m.equilibrium()) > ALPHA)


def test_compare_rejects_particles_without_the_metric_term(monkeypatch):
    """Power: moving in (θ, φ) without T ∂_a ln √g is detected at the first save after 0."""
    from fpsolver.sampling import particles

    m = _vmf()
    monkeypatch.setattr(
        particles, "_dynamics_for", lambda mm: particles._CurvedDynamics(mm, metric_term=False)
    )
    p = _particles_vs_grid(m, m.equilibrium())
    assert p[0] > ALPHA and np.all(p[1:] < 1e-12)


def test_particles_on_disc_and_torus():
    g = fp.Grid.polar(r=(0, 3, 24), phi=24)
    m = fp.FokkerPlanck(g, energy=lambda r, phi: 0.5 * r**2, temperature=0.5)
    bump = np.exp(
        -((g.mesh()[0] * np.cos(g.mesh()[1]) - 0.8) ** 2 + (g.mesh()[0] * np.sin(g.mesh()[1])) ** 2)
        / 0.6
    )
    p0 = bump / np.sum(g.volumes * bump)
    assert np.all(_particles_vs_grid(m, g.data_array(p0, "p")) > ALPHA)  # through the centre
    t = fp.Grid.torus(theta=12, phi=12, major=2.0, minor=1.0)
    mt = fp.FokkerPlanck(t, energy=lambda theta, phi: np.cos(theta) + 0.5 * np.sin(phi))
    assert np.all(
        _particles_vs_grid(mt, mt.equilibrium(), n=10_000, t_end=0.25, save_every=0.125) > ALPHA
    )


def test_particles_refuse_what_they_cannot_move():
    back = fp.Grid.from_attrs(_grids()["curvilinear"].to_attrs())
    mb = fp.FokkerPlanck(back, energy=lambda r, phi: 0 * r)
    with pytest.raises(NotImplementedError, match="scale factors"):
        fp.simulate_particles(mb, mb.equilibrium(), n=10, t_end=0.1, dt=0.01)


# -- every entry point --------------------------------------------------------------
def test_analysis_entry_points_on_a_disc():
    g = fp.Grid.polar(r=(0, 3, 12), phi=12)
    m = fp.FokkerPlanck(
        g, energy=lambda r, phi: 0.5 * r**2, temperature=0.5, boundary={"r": "absorbing"}
    )
    mfpt = fp.mean_first_passage_time(
        fp.FokkerPlanck(g, energy=lambda r, phi: 0.5 * r**2), lambda r, phi: r > 2.5
    )
    assert np.all(np.isfinite(mfpt.values)) and float(mfpt.max()) > 0
    c = fp.committor(
        fp.FokkerPlanck(g, energy=lambda r, phi: 0 * r),
        lambda r, phi: r < 0.5,
        lambda r, phi: r > 2.5,
    )
    assert 0 <= float(c.min()) and float(c.max()) <= 1
    ds = m.solve(fp.gaussian(g, mean=(1.0, 1.0), cov=0.2), t_end=0.5, dt=0.1)
    assert np.all(np.diff(ds["mass"].values) <= 0) and float(ds["mass"][-1]) < 1  # survival
    with pytest.raises(NotImplementedError, match="lyapunov.*curved grids.*'polar'"):
        fp.lyapunov(g, lambda r, phi: (-r, 0 * r), 0.5)
    with pytest.raises(NotImplementedError, match="conditioning.*curved grids"):
        fp.condition(m, {"r": 1.0})


def test_plots_in_natural_geometry():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from fpsolver import plotting

    for g in (fp.Grid.polar(r=(0, 2, 6), phi=8), fp.Grid.sphere(n_theta=6, n_phi=8)):
        m = fp.FokkerPlanck(g, energy=lambda a, b: np.cos(b), temperature=1.0)
        ds = m.solve(m.equilibrium(), t_end=0.2, dt=0.1)
        ax = plotting.plot_density(ds)
        (mesh,) = ax.collections
        xy = mesh.get_coordinates()
        radius = np.hypot(xy[..., 0], xy[..., 1])
        if g.kind == "polar":  # a disc of radius 2
            assert abs(radius.max() - 2.0) < 1e-12 and radius.min() == 0
        else:  # the Mollweide ellipse: |x| ≤ 2√2, |y| ≤ √2
            x, y = xy[..., 0], xy[..., 1]
            assert np.max((x / (2 * np.sqrt(2))) ** 2 + (y / np.sqrt(2)) ** 2) < 1 + 1e-12
            assert abs(np.abs(y).max() - np.sqrt(2)) < 1e-12
        with pytest.raises(NotImplementedError, match="plot_current.*Cartesian"):
            plotting.plot_current(m, m.equilibrium())
        plt.close("all")


def test_config_curved_grids():
    from fpsolver.cli.config import ConfigError, parse_config

    rest = {"initial": {"type": "equilibrium"}, "solve": {"t_end": 1.0}}
    model = {"energy": "0", "temperature": 1.0}
    cases = {
        "sphere": ({"n_theta": 12, "n_phi": 24, "radius": 2.0}, fp.Grid.sphere(12, 24, radius=2.0)),
        "polar": ({"r": [0, 3, 10], "phi": 16}, fp.Grid.polar(r=(0, 3, 10), phi=16)),
        "torus": ({"theta": 8, "phi": 8, "major": 2, "minor": 1}, fp.Grid.torus(8, 8)),
    }
    for kind, (keys, grid) in cases.items():
        cfg = parse_config({"grid": {"kind": kind, **keys}, "model": model, **rest})
        assert cfg.grid == grid
    with pytest.raises(ConfigError, match="grid.x: unknown key; valid keys: kind, n_theta"):
        parse_config({"grid": {"kind": "sphere", "x": 3}, "model": model, **rest})
    with pytest.raises(ConfigError, match="grid.kind: must be one of cartesian, polar, sphere"):
        parse_config({"grid": {"kind": "disc"}, "model": model, **rest})

"""Relaxation spectra against exact and independent high-accuracy answers."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg as la
from helpers import slope

import fpsolver as fp
from fpsolver.analysis.spectrum import spectrum


def ou_model(n: int, k=2.0, mobility=0.5, temp=0.7) -> fp.FokkerPlanck:
    half = 8 * np.sqrt(temp / k)
    g = fp.Grid(x=(-half, half, n))
    return fp.FokkerPlanck(g, lambda x: k * x**2 / 2, temp, mobility=mobility)


def test_ou_rates_second_order():
    # Continuum: λ_n = n K k (= n here), whatever T.
    ns = np.array([100, 200, 400])
    errors = []
    for n in ns:
        ds = ou_model(int(n)).spectrum(5)
        rate = ds["rate"].values
        assert rate.dtype == float and rate[0] == 0.0
        errors.append(np.abs(rate[1:] - np.arange(1, 5)).max())
    order = slope(ns, errors)
    assert 1.97 < order < 2.03, (order, errors)
    assert errors[-1] < 3e-3


def test_ou_modes_and_structure():
    m = ou_model(300)
    ds = m.spectrum(4)
    assert ds["rate"].dims == ("k",) and ds["mode"].dims == ("k", "x")
    assert ds.attrs["relaxation_time"] == pytest.approx(1 / ds["rate"].values[1], rel=1e-15)
    assert ds.attrs["reversible"] == 1 and ds.attrs["method"] == "eigsh"
    modes = ds["mode"].values
    # mode 0 is the Gibbs density exp(−k x²/2T)/Z, computed here directly,
    # and a null vector of L cell by cell to rounding
    x = m.grid.centers[0]
    w = np.exp(-2.0 * x**2 / (2 * 0.7))
    np.testing.assert_allclose(modes[0], w / np.sum(m.grid.volumes * w), rtol=1e-13)
    L = m.generator()
    assert np.all(np.abs(L @ modes[0]) <= 1e-13 * (abs(L) @ modes[0]))
    V, q = m.grid.volumes, m.equilibrium().values
    gram = (modes * V / q) @ modes.T
    np.testing.assert_allclose(gram[1:, 1:], np.eye(3), atol=1e-10)  # orthonormal, 1/q weight
    np.testing.assert_allclose(gram[0, 1:], 0, atol=1e-10)  # zero mass
    for lam, mode in zip(ds["rate"].values, modes):
        assert np.abs(L @ mode + lam * mode).max() < 1e-9 * np.abs(mode).max() * abs(L).max()
    # the first mode is x q (Hermite H1), the sign fixed by the convention
    corr = np.corrcoef(modes[1], x * q)[0, 1]
    assert corr > 1 - 1e-5 or corr < -1 + 1e-5
    assert ds.attrs["residual"] < 1e-12


def test_sparse_and_dense_agree():
    m = fp.FokkerPlanck(fp.Grid(x=(-2.5, 2.5, 150)), lambda x: (x**2 - 1) ** 2, 0.3)
    a, b = spectrum(m, 6, method="dense"), spectrum(m, 6, method="sparse")
    np.testing.assert_allclose(a["rate"].values, b["rate"].values, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(a["mode"].values, b["mode"].values, atol=1e-9)


def schrodinger_rates(energy_d1, energy_d2, temp, mobility, lo, hi, count, n):
    """Eigenvalues of H = −T K d²/dx² + K (E'²/(4T) − E''/2), Dirichlet, FD.

    The symmetrised form of the Fokker–Planck operator: its eigenvalues are
    the relaxation rates. Second-order finite differences on n interior
    nodes; tridiagonal eigensolver.
    """
    x = np.linspace(lo, hi, n + 2)[1:-1]
    h = x[1] - x[0]
    w = mobility * (energy_d1(x) ** 2 / (4 * temp) - energy_d2(x) / 2)
    diag = 2 * temp * mobility / h**2 + w
    off = np.full(n - 1, -temp * mobility / h**2)
    return la.eigh_tridiagonal(diag, off, select="i", select_range=(0, count - 1))[0]


def test_double_well_against_schrodinger_reference():
    T, K, lo, hi = 0.3, 1.0, -2.5, 2.5

    def d1(x):
        return 4 * x * (x**2 - 1)

    def d2(x):
        return 12 * x**2 - 4

    # Richardson-extrapolated second-order reference (h⁴ accurate)
    r1 = schrodinger_rates(d1, d2, T, K, lo, hi, 4, 8000)
    r2 = schrodinger_rates(d1, d2, T, K, lo, hi, 4, 16001)
    reference = (4 * r2 - r1) / 3
    assert abs(reference[0]) < 1e-9  # λ₀ = 0: the reference is converged
    ns = np.array([100, 200, 400])
    errors = []
    for n in ns:
        m = fp.FokkerPlanck(fp.Grid(x=(lo, hi, int(n))), lambda x: (x**2 - 1) ** 2, T, mobility=K)
        rate = m.spectrum(4)["rate"].values
        errors.append(np.abs(rate[1:] / reference[1:] - 1).max())
    order = slope(ns, errors)
    assert 1.9 < order < 2.1, (order, errors)
    assert errors[-1] < 3e-3


def test_absorbing_walls_free_diffusion():
    # D = 0.5 on [0, 1], both walls absorbing: rates D π² n², n = 1, 2, ...
    ns = np.array([50, 100, 200])
    errors = []
    for n in ns:
        m = fp.FokkerPlanck(fp.Grid(x=(0.0, 1.0, int(n))), 0.0, 0.5, boundary="absorbing")
        ds = m.spectrum(3)
        exact = 0.5 * np.pi**2 * np.arange(1, 4) ** 2
        errors.append(np.abs(ds["rate"].values / exact - 1).max())
        assert ds.attrs["relaxation_time"] == pytest.approx(1 / ds["rate"].values[0], rel=1e-15)
    assert 1.95 < slope(ns, errors) < 2.05


def test_nonreversible_linear_drift():
    # f = −B x, D = 0.5 I: OU generator rates n1 μ1 + n2 μ2 (μ eigenvalues of B).
    B = np.array([[1.0, -1.0], [1.0, 1.5]])
    mu = np.linalg.eigvals(B)
    exact = np.array([0, mu[0], mu[1], 2 * mu[0], mu[0] + mu[1], 2 * mu[1]])
    errors = []
    for n in (32, 64):
        g = fp.Grid(x=(-4.0, 4.0, n), y=(-4.0, 4.0, n))
        m = fp.FokkerPlanck.from_drift(g, lambda x, y: (-x + y, -x - 1.5 * y), 0.5)
        ds = m.spectrum(6)
        rate = ds["rate"].values
        assert np.iscomplexobj(rate) and rate[0] == 0
        assert ds.attrs["reversible"] == 0 and ds.attrs["residual"] < 1e-12
        assert np.abs(rate.imag).max() > 0.9  # genuinely complex
        # mode 0: a real, normalised, non-negative null vector of L, cell by cell
        p_ss = ds["mode"].values[0]
        assert np.all(p_ss.imag == 0) and p_ss.real.min() >= 0
        assert np.sum(g.volumes * p_ss.real) == pytest.approx(1.0, rel=1e-13)
        L, p = m.generator(), p_ss.real.ravel()
        assert np.all(np.abs(L @ p) <= 1e-13 * (abs(L) @ p))
        # the three rates with real part 2.5 split on the grid: match by distance
        errors.append(max(np.abs(rate - e).min() for e in exact))
    assert errors[1] < errors[0] / 3.8 and errors[1] < 4e-2, errors


def test_nonreversible_sparse_matches_dense():
    g = fp.Grid(x=(0.0, 1.0, 14), y=(0.0, 1.0, 10), periodic="x")
    m = fp.FokkerPlanck(
        g, lambda x, y: np.cos(2 * np.pi * x) + 3 * (y - 0.5) ** 2, 0.4, force=[1.5, 0.0]
    )
    a, b = spectrum(m, 7, method="dense"), spectrum(m, 7, method="sparse")
    np.testing.assert_allclose(a["rate"].values, b["rate"].values, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(a["mode"].values, b["mode"].values, atol=1e-8)


def test_tiny_rates_resolved_relative():
    # Barrier ΔE/T = 20: λ₁ ≈ 3.7e-9 (Kramers: twice the escape rate
    # sqrt(E''(±1)|E''(0)|) K/(2π) e^{−ΔE/T}, with corrections of relative
    # order T/ΔE = 5 %), 1e-13 of the fastest rates. The deflated
    # shift-invert solve keeps full relative accuracy. Independent check: the
    # Rayleigh quotient in Dirichlet form, a ratio of sums of positive terms
    # (no cancellation), λ = Σ κ (Δf)² / Σ π f² with π = V q, f = m/q and
    # link conductances κ = π_i L_{i+1,i}; its error is second order in the
    # mode's error.
    m = fp.FokkerPlanck(fp.Grid(x=(-2.0, 2.0, 400)), lambda x: (x**2 - 1) ** 2, 0.05)
    ds = m.spectrum(3)
    lam = ds["rate"].values[1]
    kramers = 2 * np.sqrt(8.0 * 4.0) / (2 * np.pi) * np.exp(-1.0 / 0.05)
    assert lam == pytest.approx(kramers, rel=0.1)
    q = m.equilibrium().values
    pi = m.grid.volumes * q
    f = ds["mode"].values[1] / q
    f -= np.sum(pi * f)
    L = m.generator().toarray()
    kappa = pi[:-1] * np.diag(L, -1)
    rayleigh = np.sum(kappa * np.diff(f) ** 2) / np.sum(pi * f**2)
    assert lam == pytest.approx(rayleigh, rel=1e-9)
    assert m.spectrum(2)["rate"].values[1] == pytest.approx(lam, rel=1e-9)


def test_k_errors():
    m = fp.FokkerPlanck(fp.Grid(x=(0.0, 1.0, 10)), 0.0, 1.0)
    for bad in (1.5, "3", True, None):
        with pytest.raises(TypeError, match="`k`"):
            m.spectrum(bad)
    with pytest.raises(ValueError, match="at least 1"):
        m.spectrum(0)
    with pytest.raises(ValueError, match="exceeds the number of cells"):
        m.spectrum(11)
    with pytest.raises(ValueError, match="too large for the sparse"):
        m.spectrum(9, method="sparse")
    assert m.spectrum(10)["rate"].size == 10  # dense handles all of them
    big = fp.FokkerPlanck(fp.Grid(x=(0.0, 1.0, 2100)), 0.0, 1.0)
    with pytest.raises(ValueError, match="dense eigensolver"):
        big.spectrum(2099)
    with pytest.raises(ValueError, match="`method`"):
        m.spectrum(3, method="lanczos")


def test_periodic_degenerate_pairs_and_k_one():
    # Free diffusion D on a ring of length 1: rates D (2π n)², each n ≥ 1 twice.
    errors = []
    for n in (100, 200):
        m = fp.FokkerPlanck(fp.Grid(x=(0.0, 1.0, n), periodic="x"), 0.0, 0.5)
        rate = m.spectrum(5)["rate"].values
        exact = 0.5 * (2 * np.pi) ** 2 * np.array([0, 1, 1, 4, 4])
        assert rate[0] == 0 and rate[1] == pytest.approx(rate[2], rel=1e-10)
        errors.append(np.abs(rate[1:] / exact[1:] - 1).max())
    assert 3.9 < errors[0] / errors[1] < 4.1
    one = m.spectrum(1)
    assert one["rate"].values.tolist() == [0.0] and np.isnan(one.attrs["relaxation_time"])

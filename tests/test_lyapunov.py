"""Lyapunov functions of drifts: linear (Lyapunov equation) and exact nonlinear cases."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import ULP, slope
from scipy.linalg import solve_continuous_lyapunov

import fpsolver as fp
from fpsolver.analysis.lyapunov import lyapunov

A = np.array([[1.0, 2.0], [-1.0, 1.5]])  # stable, non-normal, non-symmetric


def linear_drift(x, y):
    return (-(A[0, 0] * x + A[0, 1] * y), -(A[1, 0] * x + A[1, 1] * y))


def test_linear_drift_matches_lyapunov_equation():
    # p_ss = N(0, Σ), A Σ + Σ Aᵀ = 2 T I, so E_eff = (T/2) xᵀ Σ⁻¹ x + const and
    # the gradient part of f is −∇E_eff = −T Σ⁻¹ x (D = T).
    T = 0.5
    P = np.linalg.inv(solve_continuous_lyapunov(A, 2 * T * np.eye(2)))
    ns = np.array([48, 96, 192])
    e_err, g_err = [], []
    for n in ns:
        g = fp.Grid(x=(-4, 4, int(n)), y=(-4, 4, int(n)))
        ds = lyapunov(g, linear_drift, T)
        x, y = g.mesh()
        exact = T / 2 * (P[0, 0] * x * x + 2 * P[0, 1] * x * y + P[1, 1] * y * y)
        region = (np.abs(x) < 1.5) & (np.abs(y) < 1.5)  # the walls do not matter here
        diff = (ds["energy"].values - exact)[region]
        e_err.append(np.abs(diff - diff.mean()).max())
        grad_exact = -T * (P[0, 0] * x + P[0, 1] * y)
        g_err.append(np.abs(ds["gradient_x"].values - grad_exact)[region].max())
        # f = gradient part + circulation, cell by cell, with f the given drift
        f_x = linear_drift(x, y)[0]
        np.testing.assert_array_equal(ds["drift_x"].values, f_x)
        np.testing.assert_allclose(
            ds["gradient_x"].values + ds["circulation_x"].values,
            f_x,
            rtol=0,
            atol=4 * ULP * np.abs(f_x).max(),
        )
        assert ds.attrs["divergence_residual"] < 1e-13
        assert ds.attrs["decrease_fraction"] == 1.0  # d/dt xᵀΣ⁻¹x < 0 for linear drifts
    for errs in (e_err, g_err):
        # pre-asymptotic at 48 cells: the order of the last pair is ≈ 1.9
        assert 1.8 < slope(ns[1:], errs[1:]) < 2.1, errs
    assert e_err[-1] < 5e-3 and g_err[-1] < 5e-3


def test_orthogonal_circulation_exact_nonlinear():
    # f = −∇U + ω J ∇U (J a rotation by 90°) with D = T has p_ss ∝ e^{−U/T}
    # for every T: the circulation ω J ∇U is tangent to the level sets and
    # divergence-free against p_ss. So E_eff = U + const, gradient part −∇U.
    omega, T = 1.5, 0.4

    def grad_u(x, y):
        return x**3 - x, y

    def drift(x, y):
        gx, gy = grad_u(x, y)
        return (-gx - omega * gy, -gy + omega * gx)

    # The exact current ω p J∇U crosses the walls; reflecting walls perturb
    # p_ss by ~e^{−U_wall/T}, so the domain reaches U ≥ 8 (e^{-20}).
    errors = []
    for n in (80, 160):
        g = fp.Grid(x=(-3, 3, n), y=(-4, 4, n))
        ds = lyapunov(g, drift, T)
        x, y = g.mesh()
        u = x**4 / 4 - x**2 / 2 + y**2 / 2
        region = u < 2.0
        diff = (ds["energy"].values - u)[region]
        gx, gy = grad_u(x, y)
        errors.append(
            max(
                np.abs(diff - diff.mean()).max(),
                np.abs(ds["gradient_x"].values + gx)[region].max(),
                np.abs(ds["circulation_y"].values - omega * gx)[region].max(),
            )
        )
        assert float(np.abs(ds["circulation_y"]).max()) > 1.0
    assert errors[1] < errors[0] / 3.5 and errors[1] < 3e-2, errors


def test_effective_energy_decreases_along_flow_as_temperature_drops():
    # A non-gradient nonlinear drift (curl f = −3 y ≠ 0) with one stable fixed
    # point. dE/dt = −|∇E|²/T·D + T ∇·v: at T = 1 the second term makes E_eff
    # increase along f in some cells; as T → 0 it decreases everywhere.
    def drift(x, y):
        return (-x + y**2, -y - x * y)

    g = fp.Grid(x=(-2.5, 2.5, 100), y=(-2.5, 2.5, 100))
    fractions, peaks = [], []
    for T in (1.0, 0.1, 0.03):
        ds = lyapunov(g, drift, T)
        fractions.append(ds.attrs["decrease_fraction"])
        peaks.append(ds.attrs["max_flow_derivative"])
        flow = ds["flow_derivative"].values
        assert np.mean(flow[2:-2, 2:-2] <= 0) == ds.attrs["decrease_fraction"]
    assert fractions[0] < 0.995 and peaks[0] > 1e-3
    assert fractions[0] < fractions[1] < fractions[2]
    assert fractions[2] == 1.0 and peaks[2] <= 0


def test_dataset_contents():
    T = 0.2
    circ = []
    for n in (40, 80):
        g = fp.Grid(x=(-3, 3, n))
        ds = lyapunov(g, lambda x: -(x**3), T)
        assert set(ds.data_vars) == {
            "energy",
            "p_ss",
            "drift_x",
            "gradient_x",
            "circulation_x",
            "flow_derivative",
        }
        # normalisation: Σ V e^{−E/T} = 1, i.e. E = −T ln p_ss exactly
        total = float(np.sum(g.volumes * np.exp(-ds["energy"].values / T)))
        assert total == pytest.approx(1, rel=1e-12)
        assert fp.Grid.from_attrs(ds.attrs) == g
        # a 1-D gradient drift has no circulation: only the O(h²) error of
        # the centred derivative remains
        circ.append(float(np.abs(ds["circulation_x"][2:-2]).max()))
    assert circ[1] < circ[0] / 3.5 and circ[1] < 0.05, circ


def test_errors():
    g = fp.Grid(x=(-1, 1, 8), y=(-1, 1, 8))
    with pytest.raises(ValueError, match="drift"):
        lyapunov(g, [1.0], 1.0)  # one component on a 2-D grid
    with pytest.raises(ValueError, match="drift"):
        lyapunov(g, np.zeros((2, 8, 8)), 1.0)  # arrays of cell values are not accepted
    with pytest.raises(ValueError, match="drift"):
        lyapunov(g, lambda x, y: (-x, -y, 0 * x), 1.0)
    with pytest.raises(ValueError, match="drift"):
        lyapunov(g, lambda x, y: (-x, np.zeros(3)), 1.0)
    with pytest.raises(ValueError, match="temperature"):
        lyapunov(g, lambda x, y: (-x, -y), -1.0)
    with pytest.raises(ValueError, match="absorbing"):
        lyapunov(g, lambda x, y: (-x, -y), 1.0, boundary="absorbing")
    with pytest.raises(TypeError, match="`grid`"):
        lyapunov("grid", lambda x: -x, 1.0)

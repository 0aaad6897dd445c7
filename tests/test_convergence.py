"""Property 5: observed second-order convergence in h on smooth problems.

The exact operator is applied to p = q·g with q = exp(−E/T) and a smooth
g whose normal derivative vanishes on the walls (or that is periodic), so
the exact flux J = −T K q ∇g obeys the boundary condition. J is analytic;
its divergence is taken with a fourth-order difference of step 1e-3–1e-4
(error ~1e-11, far below the discretisation error at the finest grid), so
the log–log slope measures the scheme alone.
"""

from functools import partial

import numpy as np
import pytest
from helpers import slope

import fpsolver as fp

T = 0.6


def E1(x):
    return 0.5 * np.cos(2 * np.pi * x) + 0.3 * np.sin(4 * np.pi * x) + 0.2 * x


def K1(x):
    return 1.0 + 0.5 * np.sin(2 * np.pi * x) ** 2


def E2(x, y):
    return (x**2 - 1) ** 2 + 0.5 * y**2 + 0.2 * x * y


def K2(x, y):
    return [1.0 + 0.3 * np.cos(x) * np.cos(y), 1.5 + 0.4 * np.sin(x + y)]


def div4(flux, x, h=1e-3):
    """Fourth-order central difference of an analytic flux (error ~1e-11)."""
    return (-flux(x + 2 * h) + 8 * flux(x + h) - 8 * flux(x - h) + flux(x - 2 * h)) / (12 * h)


def exact_1d(x, periodic):
    """Energy, p = q·g and the exact L_cont p at `x` on [0, 1]."""
    if periodic:

        def Energy(x):
            return E1(x) - 0.2 * x  # periodic part only

        def g(x):
            return 1 + 0.4 * np.sin(2 * np.pi * x)

        def dg(x):
            return 0.8 * np.pi * np.cos(2 * np.pi * x)

    else:
        Energy = E1

        def g(x):
            return 1 + 0.4 * np.cos(np.pi * x)

        def dg(x):
            return -0.4 * np.pi * np.sin(np.pi * x)

    def flux(x):
        return -T * K1(x) * np.exp(-Energy(x) / T) * dg(x)

    return Energy, np.exp(-Energy(x) / T) * g(x), -div4(flux, x)


@pytest.mark.parametrize("periodic", [False, True])
def test_generator_second_order_1d_variable_mobility(periodic):
    ns = [32, 64, 128, 256]
    errs = []
    for n in ns:
        grid = fp.Grid(x=(0.0, 1.0, n), periodic=("x",) if periodic else ())
        x = grid.centers[0]
        Energy, p, Lp_exact = exact_1d(x, periodic)
        m = fp.FokkerPlanck(grid, Energy, T, mobility=K1)
        errs.append(np.max(np.abs(m.generator() @ p - Lp_exact)) / np.max(np.abs(Lp_exact)))
    order = slope(ns, errs)
    assert 1.9 < order < 2.1, (order, errs)


def _flux_2d(axis, x, y):
    """Exact flux component for p = q·g, g = 1 + 0.3 cos(πX) cos(πY) on [−2,2]²."""
    q = np.exp(-E2(x, y) / T)
    w = np.pi / 4.0
    if axis == 0:
        dg = -0.3 * w * np.sin(w * (x + 2)) * np.cos(w * (y + 2))
    else:
        dg = -0.3 * w * np.cos(w * (x + 2)) * np.sin(w * (y + 2))
    return -T * K2(x, y)[axis] * q * dg


def _flux_2d_x(x, Y):
    return _flux_2d(0, x, Y)


def _flux_2d_y(y, X):
    return _flux_2d(1, X, y)


def test_generator_second_order_2d_variable_mobility():
    ns = [24, 48, 96, 192]
    errs = []
    h = 1e-4
    for n in ns:
        grid = fp.Grid(x=(-2.0, 2.0, n), y=(-2.0, 2.0, n))
        X, Y = grid.mesh()
        w = np.pi / 4.0
        p = np.exp(-E2(X, Y) / T) * (1 + 0.3 * np.cos(w * (X + 2)) * np.cos(w * (Y + 2)))
        div = div4(partial(_flux_2d_x, Y=Y), X, h) + div4(partial(_flux_2d_y, X=X), Y, h)
        m = fp.FokkerPlanck(grid, E2, T, mobility=K2)
        Lp = (m.generator() @ p.ravel()).reshape(grid.shape)
        errs.append(np.max(np.abs(Lp + div)) / np.max(np.abs(div)))
    order = slope(ns, errs)
    assert 1.9 < order < 2.1, (order, errs)


def test_solution_second_order_on_nonuniform_grid():
    """Solve (I − L) u = f on a smoothly stretched grid; the error is O(h²)."""
    ns = [32, 64, 128, 256]
    errs = []
    import scipy.sparse as sp
    from scipy.sparse.linalg import spsolve

    for n in ns:
        xi = np.linspace(0.0, 1.0, n + 1)
        edges = xi + 0.08 * np.sin(np.pi * xi) ** 2 * np.sin(2 * np.pi * xi)
        grid = fp.Grid(x=edges)
        x = grid.centers[0]
        Energy, p, Lp_exact = exact_1d(x, False)
        m = fp.FokkerPlanck(grid, Energy, T, mobility=K1)
        f = p - Lp_exact
        u = spsolve(sp.identity(n, format="csc") - m.generator().tocsc(), f)
        errs.append(np.max(np.abs(u - p)) / np.max(np.abs(p)))
    order = slope(ns, errs)
    assert 1.85 < order < 2.15, (order, errs)

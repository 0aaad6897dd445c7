"""Helpers shared by several test modules (imported as ``from helpers import ...``).

pytest puts this directory on ``sys.path`` (rootdir-relative imports of a
test directory without ``__init__.py``), so no package is needed.
"""

from __future__ import annotations

import numpy as np

#: One ulp of 1.0.
ULP = float(np.finfo(float).eps)


def slope(ns, errors) -> float:
    """Observed order: minus the least-squares slope of log(error) against log(n).

    ``ns`` are resolutions (cells per axis, 1/h), so an error ∝ n^−k gives k.
    Pass step sizes instead of resolutions and the sign flips.
    """
    ns = np.asarray(ns, dtype=float)
    errors = np.asarray(errors, dtype=float)
    if ns.shape != errors.shape or ns.size < 2:
        raise ValueError("slope needs two or more (n, error) pairs of the same length")
    if np.any(ns <= 0) or np.any(errors <= 0):
        raise ValueError("slope needs positive resolutions and errors")
    return float(-np.polyfit(np.log(ns), np.log(errors), 1)[0])


def l1(grid, a, b) -> float:
    """Σ V |a − b|: the L1 distance of two cell arrays on `grid`."""
    return float(np.sum(grid.volumes * np.abs(np.asarray(a) - np.asarray(b))))


def kl_divergence(volumes, p, q) -> float:
    """Σ V p ln(p/q), computed directly (independent of the package's functionals)."""
    p = np.asarray(p, dtype=float)
    return float(np.sum(volumes * p * np.log(p / np.asarray(q, dtype=float))))


def dragged_trap(n=160, L=8.0, k=2.0, v=1.0):
    """A harmonic trap of stiffness k dragged at speed v (stays Gaussian; exact moments)."""
    import fpsolver as fp

    g = fp.Grid(x=(-L, L, n))
    return fp.FokkerPlanck(g, energy=lambda x, t: 0.5 * k * (x - v * t) ** 2)


def stiffening_trap(n=160, L=8.0):
    """A harmonic trap whose stiffness 1 + 2t triples over t ∈ [0, 1], at T = 0.7."""
    import fpsolver as fp

    g = fp.Grid(x=(-L, L, n))
    return fp.FokkerPlanck(g, energy=lambda x, t: 0.5 * (1.0 + 2.0 * t) * x**2, temperature=0.7)

"""Exact solutions used by tests, validation and users.

- :func:`gaussian_pdf`: a normal density evaluated at points.
- :func:`linear_moments`: mean and covariance at time t of the linear
  (Ornstein–Uhlenbeck) process dx = −B x dt + sqrt(2D) dW, from any Gaussian
  start; this covers the OU transient with any linear drift and, with B = 0,
  free diffusion.
- :func:`ou_density`: that transient's density on a grid.
- :func:`tilted_periodic_current`: Stratonovich's exact stationary current
  in the tilted periodic potential E = −V0 cos 2πx − F x.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.linalg import expm, solve_continuous_lyapunov

from .grid import Grid

__all__ = ["gaussian_pdf", "linear_moments", "ou_density", "tilted_periodic_current"]


def _as_cov(cov: float | Sequence[float] | np.ndarray, d: int) -> np.ndarray:
    c = np.asarray(cov, dtype=float)
    if c.ndim == 0:
        return np.eye(d) * float(c)
    if c.ndim == 1:
        if c.shape != (d,):
            raise ValueError(f"`cov` needs {d} variances, got {c.tolist()}")
        return np.diag(c)
    if c.shape != (d, d):
        raise ValueError(f"`cov` must be a {d}x{d} matrix, got shape {c.shape}")
    return c


def gaussian_pdf(points: Sequence[np.ndarray], mean: Sequence[float], cov) -> np.ndarray:
    """Normal density N(mean, cov) at `points` (one broadcastable array per axis).

    Examples
    --------
    >>> import numpy as np
    >>> float(gaussian_pdf([np.array(0.0)], [0.0], 1.0))  # doctest: +ELLIPSIS
    0.398942280...
    """
    d = len(points)
    mean = np.atleast_1d(np.asarray(mean, dtype=float))
    if mean.shape != (d,):
        raise ValueError(f"`mean` needs {d} components, got {mean.tolist()}")
    C = _as_cov(cov, d)
    if not np.all(np.linalg.eigvalsh(0.5 * (C + C.T)) > 0):
        raise ValueError("`cov` must be symmetric positive definite")
    P = np.linalg.inv(C)
    shape = np.broadcast_shapes(*(np.shape(p) for p in points))
    dx = [np.broadcast_to(np.asarray(p, float) - m, shape) for p, m in zip(points, mean)]
    quad = np.zeros(shape)
    for i in range(d):
        for j in range(d):
            quad = quad + P[i, j] * dx[i] * dx[j]
    norm = np.sqrt((2 * np.pi) ** d * np.linalg.det(C))
    return np.exp(-0.5 * quad) / norm


def linear_moments(
    B: np.ndarray | float,
    D: np.ndarray | float,
    mean0: Sequence[float],
    cov0,
    t: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance at time `t` of dx = −B x dt + sqrt(2D) dW.

    Parameters
    ----------
    B : (d, d) array or float
        Linear drift matrix (the drift is −B x).
    D : (d, d) array or float
        Diffusion matrix (symmetric positive semi-definite).
    mean0, cov0
        Gaussian initial condition.
    t : float

    Returns
    -------
    mean, cov : ndarray
        m(t) = e^{−Bt} m0 and Σ(t) = e^{−Bt} Σ0 e^{−Bᵀt} + ∫₀ᵗ e^{−Bs} 2D e^{−Bᵀs} ds.

    Examples
    --------
    >>> import numpy as np
    >>> m, c = linear_moments(1.0, 1.0, [3.0], 0.25, 1.0)   # benchmark problem P1
    >>> bool(np.isclose(m[0], 3 * np.exp(-1))), bool(np.isclose(c[0, 0], 1 - 0.75 * np.exp(-2)))
    (True, True)
    """
    mean0 = np.atleast_1d(np.asarray(mean0, dtype=float))
    d = mean0.size
    B = np.eye(d) * B if np.ndim(B) == 0 else np.asarray(B, float)
    D = np.eye(d) * D if np.ndim(D) == 0 else np.asarray(D, float)
    C0 = _as_cov(cov0, d)
    Phi = expm(-B * t)
    # Σ(t) − Phi Σ0 Phiᵀ solves the Lyapunov equation B X + X Bᵀ = 2D − Phi 2D Phiᵀ.
    rhs = 2 * D - Phi @ (2 * D) @ Phi.T
    if np.allclose(B, 0):
        X = 2 * D * t
    else:
        X = solve_continuous_lyapunov(B, rhs)
    cov = Phi @ C0 @ Phi.T + X
    return Phi @ mean0, 0.5 * (cov + cov.T)


def ou_density(grid: Grid, B, D, mean0, cov0, t: float) -> np.ndarray:
    """Exact density of the linear process at time `t` at the cell centres."""
    m, c = linear_moments(B, D, mean0, cov0, t)
    return gaussian_pdf(grid.mesh(), m, c)


def tilted_periodic_current(
    v0: float, force: float, temperature: float, mobility: float = 1.0
) -> float:
    """Exact stationary current for E = −V0 cos(2πx) − F x on a unit period.

    Stratonovich's formula (Risken, *The Fokker–Planck Equation*, 2nd ed.,
    §11.3) for J = −K (p E' + T p'):

        J = K T (1 − e^{−F/T}) / ∫₀¹ dx e^{−E(x)/T} ∫ₓ^{x+1} dy e^{E(y)/T}.

    The outer integrand is periodic (trapezoid rule: spectral accuracy), the
    inner one smooth (120-point Gauss–Legendre); the result is exact to
    about 1e-13 relative for V0/T up to a few.

    Examples
    --------
    >>> round(tilted_periodic_current(0.0, 2.0, 0.5), 12)   # free drift: J = K F
    2.0
    >>> round(tilted_periodic_current(1.0, 2.0, 0.5), 10)
    0.5234657365
    """
    xs = np.arange(400) / 400
    s, w = np.polynomial.legendre.leggauss(120)
    s, w = 0.5 * (s + 1), 0.5 * w

    def energy(x: np.ndarray) -> np.ndarray:
        return -v0 * np.cos(2 * np.pi * x) - force * x

    rise = energy(xs[:, None] + s[None, :]) - energy(xs[:, None])
    inner = (w * np.exp(rise / temperature)).sum(1)
    return float(mobility * temperature * -np.expm1(-force / temperature) / inner.mean())

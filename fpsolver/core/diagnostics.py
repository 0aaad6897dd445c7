"""Discrete thermodynamic diagnostics: mass, energy, entropy, free energy.

Every sum uses the same cell volumes V_i as the finite-volume scheme, so the
discrete identities (mass conservation, free-energy decay) hold exactly for
these functionals. Densities are per unit volume: Σ V p = 1.

Entries of p that are negative (possible only with a stepper that does not
preserve positivity, such as Crank–Nicolson on rough data) make entropy-type
quantities undefined; those functions then return NaN rather than clip.
"""

from __future__ import annotations

import numpy as np
from scipy.special import logsumexp, xlogy

__all__ = [
    "log_gibbs",
    "log_partition",
    "mass",
    "mean_energy",
    "entropy",
    "free_energy",
    "relative_entropy",
    "moments",
]


def log_gibbs(energy: np.ndarray, temperature: float, volumes: np.ndarray) -> np.ndarray:
    """ln q for the discrete Gibbs density q = exp(−E/T)/Z_h, Σ V q = 1.

    Uses log-sum-exp, so energies with E/T spanning thousands are safe.

    Examples
    --------
    >>> import numpy as np
    >>> lq = log_gibbs(np.array([0.0, 1000.0]), 1.0, np.array([1.0, 1.0]))
    >>> (lq + 0.0).round(6).tolist()
    [0.0, -1000.0]
    """
    a = -np.asarray(energy, float) / temperature
    return a - logsumexp(a, b=np.asarray(volumes, float))


def log_partition(energy: np.ndarray, temperature: float, volumes: np.ndarray) -> float:
    """ln Z_h = ln Σ V exp(−E/T), overflow-free."""
    return float(logsumexp(-np.asarray(energy, float) / temperature, b=volumes))


def mass(volumes: np.ndarray, p: np.ndarray) -> float:
    """Total probability Σ V p."""
    return float(np.sum(volumes * p))


def mean_energy(volumes: np.ndarray, energy: np.ndarray, p: np.ndarray) -> float:
    """⟨E⟩ = Σ V p E."""
    return float(np.sum(volumes * p * energy))


def _plogp(p: np.ndarray) -> np.ndarray | float:
    if np.any(p < 0):
        return np.nan
    return xlogy(p, p)


def entropy(volumes: np.ndarray, p: np.ndarray) -> float:
    """H = −Σ V p ln p (0 ln 0 = 0; NaN if p has negative entries)."""
    return float(-np.sum(volumes * _plogp(p)))


def free_energy(
    volumes: np.ndarray, energy: np.ndarray, temperature: float, p: np.ndarray
) -> float:
    """F_h = Σ V p (E + T ln p) = ⟨E⟩ − T H.

    Examples
    --------
    >>> import numpy as np
    >>> V = np.full(4, 0.25); E = np.zeros(4); p = np.ones(4)
    >>> free_energy(V, E, 1.0, p)
    0.0
    """
    return float(np.sum(volumes * (p * energy + temperature * _plogp(p))))


def relative_entropy(volumes: np.ndarray, log_q: np.ndarray, p: np.ndarray) -> float:
    """KL(p‖q) = Σ V p ln(p/q), with ln q given (e.g. from :func:`log_gibbs`).

    Computed directly, not as (F − F_eq)/T, so it stays accurate near
    equilibrium; ``+inf`` where p > 0 on a cell with q = 0.
    """
    if np.any(p < 0):
        return float("nan")
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * (np.log(np.where(p > 0, p, 1.0)) - log_q), 0.0)
    return float(np.sum(volumes * terms))


def moments(
    volumes: np.ndarray,
    centers: list[np.ndarray],
    widths: list[np.ndarray],
    p: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of the piecewise-constant density `p`, normalised by its mass.

    `centers` and `widths` hold, per axis, the cell centres and widths
    broadcastable to the grid shape. Within a cell the density is uniform,
    so each variance gains the cell's h²/12 (the covariances do not).

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([0.5, 1.5]); V = np.ones(2); p = np.array([0.5, 0.5])
    >>> m, c = moments(V, [x], [np.ones(2)], p)
    >>> m.tolist(), c.round(6).tolist()     # uniform on [0, 2]: mean 1, variance 1/3
    ([1.0], [[0.333333]])
    """
    w = volumes * p
    total = float(np.sum(w))
    nd = len(centers)
    if not total > 0:  # everything absorbed: the moments are undefined
        return np.full(nd, np.nan), np.full((nd, nd), np.nan)
    mean = np.array([float(np.sum(w * x)) / total for x in centers])
    cov = np.empty((nd, nd))
    for a in range(nd):
        da = centers[a] - mean[a]
        cov[a, a] = float(np.sum(w * (da * da + widths[a] ** 2 / 12.0))) / total
        for b in range(a):
            cov[a, b] = cov[b, a] = float(np.sum(w * da * (centers[b] - mean[b]))) / total
    return mean, cov

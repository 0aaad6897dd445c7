r"""Null vectors of a generator: the stationary density as linear algebra.

The stationary density solves :math:`L p = 0` with :math:`\sum_i V_i p_i = 1`.
Because the V-weighted column sums of the generator vanish, :math:`L` is
singular (its left null vector is V), so a plain LU factorisation of L
fails ("factor is exactly singular"). We proceed in three steps. First,
inverse iteration with :math:`I - \tau L` (τ = 10¹² / max|L_ii|), a
non-singular M-matrix for every τ > 0, so its sparse LU cannot fail and
needs no pivoting; three steps locate p_ss. Second, the normalised system:
fix :math:`p_r = 1` at an anchor cell r, drop equation r (it is
implied by the others, since :math:`V^{\mathsf T} L = 0`) and solve

.. math::

    L_{\hat r \hat r}\, p_{\hat r} = -L_{\hat r r},

then normalise. :math:`L_{\hat r \hat r}` (L without row and column r) is a
non-singular M-matrix whenever the grid is connected, which it always is for
the Scharfetter–Gummel generator (all link weights are positive): its
V-weighted columns are diagonally dominant, strictly so next to r, so the
sparse LU needs no pivoting and has the fill-in of L. One step of iterative
refinement follows. The anchor is the peak found by the first step: an
anchor where p_ss is small would make the reduced matrix ill-conditioned
(its smallest eigenvalue is the rate at which the anchor is hit). Of the
two answers the one with the smaller scaled residual
max|L p| / max|L_ii p_i| is returned; the first one also stands in if the
reduced factorisation fails (links whose Bernoulli weights underflow can
disconnect the grid numerically).

Accuracy: the computed p_ss has an error of order ε‖L‖/λ₁ relative to its
peak (ε the machine precision, λ₁ the spectral gap), as for any
backward-stable null-vector solver. Strongly metastable non-reversible
models (barriers of many tens of T) therefore get the *split between the
wells* only roughly, even though the residual ‖L p‖ is at rounding level.
And tails below ~1e-13 of the peak are rounding noise (the Gibbs route, by
contrast, is accurate to the last digit everywhere). A third step removes
that second limitation (:func:`refine_tails`): it rescales the system by the
current solution,
p_new = p ∘ u with diag(1/p) L diag(p) u = 0, whose solution is u ≈ 1
everywhere, so its normwise accuracy becomes relative accuracy of every
entry of p.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

__all__ = ["null_vector", "refine_tails", "scaled_residual"]


def _reduced(L: sp.csr_array, vol: np.ndarray, r: int) -> np.ndarray:
    """Fix p_r = 1, drop row and column r, solve the rest; raise RuntimeError if singular."""
    n = vol.size
    keep = np.r_[0:r, r + 1 : n]
    A = sp.csc_array(L[keep][:, keep])
    b = -L[keep][:, [r]].toarray().ravel()
    # A is a non-singular M-matrix with (V-weighted) dominant columns: no pivoting needed.
    lu = spla.splu(A, diag_pivot_thresh=0.0)
    x = lu.solve(b)
    x += lu.solve(b - A @ x)  # one step of iterative refinement
    p = np.empty(n)
    p[keep] = x
    p[r] = 1.0
    return p


def _inverse_iteration(L: sp.csr_array, vol: np.ndarray, iterations: int = 3) -> np.ndarray:
    """Null vector of L by inverse iteration with the M-matrix I − τ L, τ = 1e12/max|L_ii|.

    I − τ L is a non-singular M-matrix for every τ > 0 (strictly dominant
    V-weighted columns), so the factorisation cannot fail and needs no
    pivoting; its near-singularity only speeds up the convergence towards
    the null vector (by 1/(1 + τ λ₁) per step).
    """
    n = vol.size
    scale = float(np.max(np.abs(L.diagonal()))) or 1.0
    A = sp.csc_array(sp.identity(n, format="csc") - (1e12 / scale) * L)
    lu = spla.splu(A, diag_pivot_thresh=0.0)
    p = np.full(n, 1.0 / float(vol.sum()))
    for _ in range(iterations):
        p = lu.solve(p)
        p /= float(vol @ p)
    return p


def scaled_residual(L: sp.csr_array, p: np.ndarray) -> float:
    return float(np.max(np.abs(L @ p)) / np.max(np.abs(L.diagonal() * p)))


def null_vector(L: sp.csr_array, vol: np.ndarray) -> np.ndarray:
    """The normalised null vector p of L (L p = 0, Σ V p = 1), p ≥ 0.

    Shifted inverse iteration, then the system anchored at the peak, then
    tails resolved to relative accuracy (:func:`refine_tails`).

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> L = sp.csr_array(np.array([[-1.0, 2.0], [1.0, -2.0]]))
    >>> null_vector(L, np.ones(2)).round(12).tolist()
    [0.666666666667, 0.333333333333]
    """
    vol = np.asarray(vol, float).ravel()
    p = _direct(L, vol)
    # Entries below rounding can come out slightly negative; they are zero.
    p = np.where(p < 0, 0.0, p)
    p /= float(vol @ p)
    return refine_tails(L, vol, p)


def _direct(L: sp.csr_array, vol: np.ndarray) -> np.ndarray:
    # 1. Inverse iteration: cannot fail, and locates the peak of p_ss.
    p1 = _inverse_iteration(L, vol)
    # 2. The normalised system anchored at that peak (an anchor where p_ss is
    #    small would make the reduced matrix ill-conditioned: its smallest
    #    eigenvalue is the rate of hitting the anchor).
    try:
        with np.errstate(over="ignore", invalid="ignore"):
            p2 = _reduced(L, vol, int(np.argmax(p1)))
            p2 /= float(vol @ p2)
    except RuntimeError:  # numerically disconnected links (underflowing weights)
        return p1
    if not np.all(np.isfinite(p2)) or scaled_residual(L, p1) < scaled_residual(L, p2):
        return p1
    return p2


_FLOOR = 1e-290  # relative to the peak: the smallest tail the refinement resolves


def refine_tails(L: sp.csr_array, vol: np.ndarray, p: np.ndarray, sweeps: int = 8) -> np.ndarray:
    """Resolve the tails of p_ss to relative accuracy.

    Writes p_new = p ∘ u and solves for u with the scaled matrix
    diag(1/p) L diag(p) (anchored at the peak, u = 1 there). Near the
    solution u ≈ 1, so the normwise accuracy of the solve becomes
    componentwise accuracy of p; a tail that was rounding noise improves by
    a factor ~ε per sweep until u = 1 to rounding.
    """
    p = np.maximum(p, _FLOOR * p.max())
    for _ in range(sweeps):
        d = sp.diags_array(p)
        dinv = sp.diags_array(1.0 / p)
        M = sp.csr_array(dinv @ L @ d)
        u = _reduced(M, vol, int(np.argmax(p)))
        p = np.maximum(p * u, _FLOOR * p.max())
        p /= float(vol @ p)
        if np.max(np.abs(u / u.max() - 1.0)) < 1e-12:
            break
    return p

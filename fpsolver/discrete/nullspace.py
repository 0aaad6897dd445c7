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

Large 3-D grids (more than ``ITERATIVE_SIZE`` cells, at least six
entries per row on average) take an iterative path instead, because the
sparse LU of a 3-D generator fills in like n^1.6 (a 24³ grid already
needs 4 s for the three factorisations above, a 64³ one would need hours):
the same anchored system, written at full size with row and column r
replaced by the identity, is solved by GMRES with a non-symmetric
smoothed-aggregation AMG preconditioner (:mod:`pyamg`). A first, loose
solve anchored where the outflow rate |L_rr| is smallest (slow escape:
where a stable point lets density gather) locates the peak; the system is
then re-anchored there and solved to a relative residual of 1e-10, reusing
the hierarchy (the two matrices differ in two rows and columns). If that
first anchor turns out poor (no convergence, or p_ss there below 1e-3 of
the peak), shifted inverse iteration with I − τL (τ = 100/max|L_ii|)
locates the peak instead. The tails are then refined as above, with
GMRES on the rescaled system and the similarly rescaled preconditioner
diag(1/p) M diag(p), whose convergence matches the unscaled solve in
exact arithmetic. On a 24³ rotational Ornstein–Uhlenbeck model the result
agrees with the LU path to 1e-13 relative in every cell, 7× faster. Where
the rescaled solve does not converge (strong drift against weak noise,
barriers of many T: the rough tails then make the rescaling too uneven),
the refinement stops and the tails keep the absolute accuracy of the
anchored solve, about 1e-11 of the peak, instead of a relative one.
Without pyamg the LU path is used, with a warning.
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from .lu import sparse_lu

__all__ = ["ITERATIVE_SIZE", "null_vector", "refine_tails", "scaled_residual"]

#: Grids with more cells than this and a 3-D stencil (≥ 6 entries per row on
#: average) use the iterative path by default (about 12.6³; measured on a
#: rotating Ornstein–Uhlenbeck model, ``benchmarks/solvers3d.py``: LU is faster
#: at 10³, the iterative path 1.5× faster at 12³, 2× at 16³ and 7× at 24³).
ITERATIVE_SIZE = 2_000

#: Relative residual of the anchored GMRES solve, and of each tail sweep.
_RTOL = (1e-10, 1e-12)


def _reduced(L: sp.csr_array, vol: np.ndarray, r: int) -> np.ndarray:
    """Fix p_r = 1, drop row and column r, solve the rest; raise RuntimeError if singular."""
    n = vol.size
    keep = np.r_[0:r, r + 1 : n]
    A = sp.csc_array(L[keep][:, keep])
    b = -L[keep][:, [r]].toarray().ravel()
    # A is a non-singular M-matrix with (V-weighted) dominant columns: no pivoting needed.
    lu = sparse_lu(A, diag_pivot_thresh=0.0)
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
    lu = sparse_lu(A, diag_pivot_thresh=0.0)
    p = np.full(n, 1.0 / float(vol.sum()))
    for _ in range(iterations):
        p = lu.solve(p)
        p /= float(vol @ p)
    return p


def scaled_residual(L: sp.csr_array, p: np.ndarray) -> float:
    return float(np.max(np.abs(L @ p)) / np.max(np.abs(L.diagonal() * p)))


def null_vector(L: sp.csr_array, vol: np.ndarray, *, method: str = "auto") -> np.ndarray:
    """The normalised null vector p of L (L p = 0, Σ V p = 1), p ≥ 0.

    Parameters
    ----------
    L : sparse matrix
        A generator (non-negative off-diagonals, V-weighted column sums 0).
    vol : ndarray
        Cell volumes V.
    method : {"auto", "lu", "iterative"}
        ``"lu"``: shifted inverse iteration, then the system anchored at
        the peak, then tails resolved to relative accuracy
        (:func:`refine_tails`), all with sparse LU. ``"iterative"``: the
        same steps with AMG-preconditioned GMRES (see the module notes).
        ``"auto"``: iterative for 3-D stencils with more than
        ``ITERATIVE_SIZE`` cells when pyamg is installed, LU otherwise.

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> L = sp.csr_array(np.array([[-1.0, 2.0], [1.0, -2.0]]))
    >>> null_vector(L, np.ones(2)).round(12).tolist()
    [0.666666666667, 0.333333333333]
    """
    vol = np.asarray(vol, float).ravel()
    L = sp.csr_array(L)
    if _resolve(L, method) == "iterative":
        return _iterative(L, vol)
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


# -- the iterative path ---------------------------------------------------------
def _resolve(L: sp.csr_array, method: str) -> str:
    """``"lu"`` or ``"iterative"`` for `method` (see :func:`null_vector`)."""
    if method not in ("auto", "lu", "iterative"):
        raise ValueError(f"`method` must be 'auto', 'lu' or 'iterative', got {method!r}")
    if method == "auto":
        n = L.shape[0]
        big3d = n > ITERATIVE_SIZE and L.nnz >= 6 * n
        if not big3d:
            return "lu"
        method = "iterative"
    if not _has_pyamg():
        warnings.warn(
            "pyamg is not installed: the stationary density of this large 3-D grid is "
            "computed by sparse LU, which fills in like n^1.6 and may take very long "
            "(pip install 'fpsolver[amg]')",
            RuntimeWarning,
            stacklevel=4,
        )
        return "lu"
    return method


def _has_pyamg() -> bool:
    try:
        import pyamg  # noqa: F401
    except ImportError:
        return False
    return True


def _anchored(L: sp.csr_array, r: int) -> tuple[sp.csr_matrix, np.ndarray]:
    """L with row and column r replaced by the identity, and −L[:, r] with 1 at r.

    Its solution is p/p_r: the reduced system of :func:`_reduced` at full size,
    so that matrices for two anchors differ in two rows and columns only.
    """
    n = L.shape[0]
    keep = np.ones(n)
    keep[r] = 0.0
    K = sp.diags_array(keep)
    A = sp.csr_matrix(K @ L @ K + sp.diags_array(1.0 - keep))
    b = -L[:, [r]].toarray().ravel()
    b[r] = 1.0
    return A, b


def _amg(A: sp.csr_matrix):
    """Non-symmetric smoothed-aggregation AMG, as a preconditioner (V-cycle)."""
    import pyamg

    return pyamg.smoothed_aggregation_solver(A, symmetry="nonsymmetric").aspreconditioner()


def _gmres(A, b, x0, M, rtol: float, maxiter: int = 40) -> tuple[np.ndarray, bool]:
    """Restarted GMRES(40) to ‖b − A x‖ ≤ rtol‖b‖: (x, converged)."""
    try:
        x, info = spla.gmres(A, b, x0=x0, rtol=rtol, atol=0.0, M=M, restart=40, maxiter=maxiter)
    except TypeError:  # scipy < 1.12 names it `tol`
        x, info = spla.gmres(A, b, x0=x0, tol=rtol, atol=0.0, M=M, restart=40, maxiter=maxiter)
    return x, info == 0


def _peak(L: sp.csr_array, vol: np.ndarray) -> tuple[int, np.ndarray | None, object | None]:
    """A cell where p_ss is near its peak: (r, rough p_ss or None, preconditioner or None).

    First a loose solve anchored at the cell of smallest outflow |L_rr|;
    if it fails or p_ss there is below 1e-3 of the peak, two steps of
    shifted inverse iteration with I − τL, τ = 100/max|L_ii|.
    """
    r = int(np.argmin(np.abs(L.diagonal())))
    A, b = _anchored(L, r)
    M = _amg(A)
    p, ok = _gmres(A, b, None, M, 1e-3, maxiter=2)
    if ok and np.all(np.isfinite(p)) and p[r] >= 1e-3 * p.max():
        return int(np.argmax(p)), p, M
    tau = 100.0 / (float(np.max(np.abs(L.diagonal()))) or 1.0)
    B = sp.csr_matrix(sp.identity(L.shape[0], format="csr") - tau * L)
    MB = _amg(B)
    p = np.full(L.shape[0], 1.0 / float(vol.sum()))
    for _ in range(2):
        p, _ok = _gmres(B, p, p, MB, 1e-3, maxiter=4)
        p /= float(vol @ p)
    return int(np.argmax(p)), None, None


def _iterative(L: sp.csr_array, vol: np.ndarray) -> np.ndarray:
    """The null vector by AMG-preconditioned GMRES (see the module notes)."""
    r, rough, M = _peak(L, vol)
    A, b = _anchored(L, r)
    if M is None:
        M = _amg(A)
    x0 = None if rough is None else rough / rough[r]
    p, ok = _gmres(A, b, x0, M, _RTOL[0], maxiter=20)
    if not (ok and np.all(np.isfinite(p))):
        raise RuntimeError(
            "the iterative stationary solve did not converge (relative residual "
            f"{_RTOL[0]:g}); use method='lu' (slow on large 3-D grids)"
        )
    p = np.where(p < 0, 0.0, p)
    p /= float(vol @ p)
    return _refine_tails_iterative(L, vol, p, M, r)


def _refine_tails_iterative(
    L: sp.csr_array, vol: np.ndarray, p: np.ndarray, M, r: int, sweeps: int = 3
) -> np.ndarray:
    """:func:`refine_tails` with GMRES and the rescaled preconditioner diag(1/p) M diag(p).

    A sweep that does not converge within six GMRES(40) cycles ends the
    refinement and leaves p as it was (tails accurate to the anchored
    solve's residual, about 1e-11 of the peak, instead of relatively).
    """
    p = np.maximum(p, _FLOOR * p.max())
    for _ in range(sweeps):
        q = p.copy()
        R = sp.csr_array(sp.diags_array(1.0 / q) @ L @ sp.diags_array(q))
        A, b = _anchored(R, r)
        Mq = spla.LinearOperator(A.shape, matvec=lambda v, q=q: (M @ (q * np.ravel(v))) / q)
        with np.errstate(over="ignore", invalid="ignore"):
            u, ok = _gmres(A, b, np.ones(L.shape[0]), Mq, _RTOL[1], maxiter=6)
        if not (ok and np.all(np.isfinite(u)) and u.min() > 0):
            break
        p = np.maximum(q * u, _FLOOR * q.max())
        p /= float(vol @ p)
        if np.max(np.abs(u / u.max() - 1.0)) < 1e-12:
            break
    return p

r"""Relaxation spectra: the slowest rates and modes of the generator.

The eigenvalues of the generator, :math:`L m = -\lambda m`, give the
relaxation rates λ; a density relaxes as
:math:`p(t) = p_{ss} + \sum_{n\ge1} c_n e^{-\lambda_n t} m_n`.

*Reversible models* use the symmetric form
:math:`S = D L D^{-1}`, :math:`D = \mathrm{diag}\sqrt{V/q}`
(:attr:`fpsolver.Operator.symmetric`), which is
overflow-free for any energy range and has a real spectrum: ARPACK's
Lanczos method (``eigsh``) in shift-invert mode about 0. The modes are
mapped back to densities, :math:`m = D^{-1} w`.

*Non-reversible models* (a force, a tilt, a general drift) use L itself and
the Arnoldi method (``eigs``) in shift-invert mode; the rates are complex.

Without absorbing walls λ₀ = 0 is known exactly (mode: the stationary
density), and L is singular, so shift-invert about 0 cannot factorise
L. We deflate instead: the Krylov space is kept in the complement of the
null vector (the vectors w with uᵀw = 0, u = sqrt(V q), in the symmetric
case; the densities of zero mass, Vᵀm = 0, otherwise), where L is
invertible. The inverse is applied by fixing one cell to zero and solving
the rest (a non-singular M-matrix system, factorised once), then removing
the null component. λ₀ = 0 is then exact and tiny rates (Kramers escape
over high barriers) are resolved to full relative accuracy.

With an absorbing wall there is no λ₀ = 0: the slowest rate is the decay
rate of the survival probability.

``method="dense"`` uses LAPACK on the full matrix (up to 2000 cells): all
rates, but with absolute rather than relative accuracy for tiny ones.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
import scipy.linalg as la
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from ..discrete.lu import sparse_lu
from ..discrete.operator import Model, Operator, as_operator

__all__ = ["spectrum"]

DENSE_MAX = 2000
_METHODS = ("auto", "dense", "sparse")


def _check_k(k: Any, size: int) -> int:
    if isinstance(k, (bool, np.bool_)) or not isinstance(k, numbers.Integral):
        raise TypeError(f"`k` must be a positive integer (number of rates), got {k!r}")
    k = int(k)
    if k < 1:
        raise ValueError(f"`k` must be at least 1, got {k}")
    if k > size:
        raise ValueError(f"`k`={k} exceeds the number of cells ({size}); choose k <= {size}")
    return k


def _reduced_solver(A: sp.csr_array, r: int):
    """Solve A y = b with y_r = 0 and equation r dropped (A singular, rank n − 1)."""
    n = A.shape[0]
    keep = np.r_[0:r, r + 1 : n]
    lu = sparse_lu(A[keep][:, keep], diag_pivot_thresh=0.0)

    def solve(b: np.ndarray) -> np.ndarray:
        y = np.zeros(n)
        y[keep] = lu.solve(np.ascontiguousarray(b[keep]))
        return y

    return solve


def _deflated_inverse(A: sp.csr_array, right: np.ndarray, left: np.ndarray, r: int):
    """A⁺ on {b : leftᵀ b = 0}: x with A x = b and leftᵀ x = 0.

    `right` is A's null vector (A right = 0) and `left` its left null vector
    (leftᵀ A = 0); the reduced solve satisfies the dropped equation r
    automatically because leftᵀ b = 0 = leftᵀ A y.
    """
    n = A.shape[0]
    solve = _reduced_solver(A, r)
    lr = float(left @ right)

    def matvec(b: np.ndarray) -> np.ndarray:
        b = np.asarray(b, dtype=float).ravel()
        b = b - right * (left @ b) / lr  # onto range(A), along the null vector
        y = solve(b)
        return y - right * (left @ y) / lr

    return spla.LinearOperator((n, n), matvec=matvec, dtype=float)


def _start_vector(n: int, left: np.ndarray | None, right: np.ndarray | None) -> np.ndarray:
    v0 = np.random.default_rng(0).standard_normal(n)
    if left is not None and right is not None:
        v0 -= right * (left @ v0) / float(left @ right)
    return v0


def _order(rates: np.ndarray) -> np.ndarray:
    """Ascending real part, ties (conjugate pairs) by imaginary part."""
    re = np.real(rates)
    scale = max(float(np.max(np.abs(re))), 1e-300)
    return np.lexsort((np.imag(rates), np.round(re / scale, 8)))


def _shift_invert(solver, A, nev: int, deflate, peak, tol: float, maxiter):
    """Shift-invert eigensolve at 0; deflate the null vector when `peak` is given.

    `deflate` is the (left, right) null-vector pair (``(None, None)`` when
    there is none); `peak`, the right null vector, anchors the deflated
    inverse at its largest entry.
    """
    n = A.shape[0]
    opts = {"sigma": 0.0, "which": "LM", "tol": tol, "maxiter": maxiter}
    if peak is not None:
        left, right = deflate
        opts["OPinv"] = _deflated_inverse(A, right, left, int(np.argmax(peak)))
    return solver(A, nev, v0=_start_vector(n, *deflate), **opts)


def _reversible(op: Operator, k: int, dense: bool, tol: float, maxiter):
    S = op.symmetric
    logd = op.symmetrizer
    n = S.shape[0]
    closed = not op.absorbing
    if closed:
        u = np.exp(0.5 * (np.log(op.grid.volumes.ravel()) + op.log_equilibrium.ravel()))
        u /= np.linalg.norm(u)
    if dense:
        w, W = la.eigh(S.toarray())
        if closed:  # drop the numerical null pair; it is put back exactly below
            drop = int(np.argmin(np.abs(w)))
            w, W = np.delete(w, drop), np.delete(W, drop, axis=1)
        idx = np.argsort(-w)
        lam, W = -w[idx], W[:, idx]
        lam, W = lam[: k - 1 if closed else k], W[:, : k - 1 if closed else k]
        method = "dense"
    else:
        nev = k - 1 if closed else k
        if nev == 0:
            lam, W = np.zeros(0), np.zeros((n, 0))
        else:
            deflate = (u, u) if closed else (None, None)
            w, W = _shift_invert(spla.eigsh, S, nev, deflate, u if closed else None, tol, maxiter)
            lam = -w
        idx = np.argsort(lam)
        lam, W = lam[idx], W[:, idx]
        method = "eigsh"
    if closed:
        lam = np.concatenate([[0.0], lam])
        W = np.column_stack([u, W])
    W = W * _phases(W * np.exp(-logd)[:, None]).real[None, :]
    residual = _residual(S, lam, W)
    modes = W * np.exp(-logd)[:, None]  # m = D⁻¹ w: Σ (V/q) m² = 1
    if closed:
        modes[:, 0] = np.exp(op.log_equilibrium.ravel())
    return lam, modes, method, residual


def _nonreversible(op: Operator, k: int, dense: bool, tol: float, maxiter):
    L = op.generator
    n = L.shape[0]
    vol = op.grid.volumes.ravel()
    closed = not op.absorbing
    if closed:
        pss = op.stationary_direct.ravel()
    if dense:
        w, W = la.eig(L.toarray())
        if closed:
            drop = int(np.argmin(np.abs(w)))
            w, W = np.delete(w, drop), np.delete(W, drop, axis=1)
        lam = -w
        idx = _order(lam)[: k - 1 if closed else k]
        lam, W = lam[idx], W[:, idx]
        method = "dense"
    else:
        want = k - 1 if closed else k
        # ARPACK returns the eigenvalues nearest the shift (smallest |λ|), which
        # can differ from the smallest real parts (and split a conjugate pair):
        # ask for some more and select by real part.
        nev = min(want + 2 + want // 2, n - 2)
        if want == 0:
            lam, W = np.zeros(0, complex), np.zeros((n, 0), complex)
        else:
            deflate = (vol, pss) if closed else (None, None)
            w, W = _shift_invert(spla.eigs, L, nev, deflate, pss if closed else None, tol, maxiter)
            lam = -w
        idx = _order(lam)[:want]
        lam, W = lam[idx], W[:, idx]
        method = "eigs"
    lam = lam.astype(complex)
    W = W.astype(complex)
    if closed:
        lam = np.concatenate([[0.0 + 0.0j], lam])
        W = np.column_stack([pss.astype(complex), W])
        weight = vol / np.where(pss > 0, pss, np.inf)
    else:
        weight = vol
    # Normalise: Σ V |m|² / p_ss = 1 (Σ V |m|² = 1 with absorbing walls), and
    # rotate the phase (see _phases).
    phases = _phases(W)
    if closed:
        phases[0] = 1.0  # the stationary density as it is
    W = W * phases[None, :]
    for i in range(W.shape[1]):
        if not (closed and i == 0):
            W[:, i] /= np.sqrt(float(np.sum(weight * np.abs(W[:, i]) ** 2)))
    residual = _residual(L, lam, W)
    return lam, W, method, residual


def _phases(W: np.ndarray) -> np.ndarray:
    """Unit factors making each column's first entry above 1 % of its peak real, positive.

    (Not the peak itself: symmetric problems have modes with two equal
    peaks of opposite sign, and rounding would pick either.)
    """
    mag = np.abs(W)
    out = np.ones(W.shape[1], dtype=complex)
    for i in range(W.shape[1]):
        j = int(np.argmax(mag[:, i] >= 0.01 * mag[:, i].max()))
        if mag[j, i] > 0:
            out[i] = mag[j, i] / W[j, i]
    return out


def _residual(A: sp.csr_array, lam: np.ndarray, W: np.ndarray) -> float:
    """max over modes of ‖A m + λ m‖∞ / (‖m‖∞ max|diag A|)."""
    if W.shape[1] == 0:
        return 0.0
    R = A @ W + W * lam[None, :]
    scale = float(np.max(np.abs(A.diagonal()))) or 1.0
    return float(np.max(np.max(np.abs(R), axis=0) / np.max(np.abs(W), axis=0)) / scale)


def spectrum(
    model: Model | Operator,
    k: int = 6,
    *,
    method: str = "auto",
    tol: float = 0.0,
    maxiter: int | None = None,
):
    """The `k` slowest relaxation rates and their modes.

    Parameters
    ----------
    model : FokkerPlanck or Operator
        Any model. Reversible models give real rates (symmetric form,
        ``eigsh``); others complex rates (``eigs``).
    k : int
        How many rates, 1 ≤ k ≤ ``grid.size``; the sparse solvers need
        k ≤ ``grid.size`` − 2, the dense one at most 2000 cells.
    method : {"auto", "dense", "sparse"}
        ``"dense"``: LAPACK on the full matrix (small grids only);
        ``"sparse"``: ARPACK in shift-invert mode, deflated (accurate for
        tiny rates); ``"auto"``: sparse unless k > ``grid.size`` − 2.
    tol : float
        ARPACK's relative tolerance (0: machine precision).
    maxiter : int, optional
        ARPACK's iteration limit.

    Returns
    -------
    xarray.Dataset
        ``rate`` (dim ``k``): λ₀ ≤ λ₁ ≤ …, ascending by real part, with
        λ₀ = 0 exactly unless a wall absorbs; float for reversible models,
        complex otherwise (conjugate pairs, the negative imaginary part
        first). ``mode`` (dims ``("k", *axes)``): the eigen-densities,
        L m = −λ m; ``mode[0]`` is the stationary density (Σ V m = 1), the
        others are normalised to Σ V |m|²/p_ss = 1 (Σ V |m|² = 1 for
        non-reversible models with absorbing walls; Σ V m²/q = 1 for
        reversible ones), with the sign or phase chosen so that the first
        entry (C order) above 1 % of the peak is real and positive. ``attrs``:
        ``relaxation_time`` = 1/Re λ of the slowest non-zero rate (λ₁, or
        λ₀ with absorbing walls; NaN if not computed), ``reversible``,
        ``method`` and ``residual`` = max ‖L m + λ m‖∞ / (‖m‖∞ max|L_ii|).

    Raises
    ------
    TypeError
        If `k` is not an integer.
    ValueError
        If `k` is out of range or `method` unknown.

    Examples
    --------
    >>> import fpsolver as fp
    >>> g = fp.Grid(x=(-8.0, 8.0, 400))
    >>> ds = fp.FokkerPlanck(g, lambda x: x**2 / 2, 1.0).spectrum(4)
    >>> ds["rate"].values.round(2).tolist()
    [0.0, 1.0, 2.0, 3.0]
    >>> round(ds.attrs["relaxation_time"], 3)
    1.0
    """
    op = as_operator(model)
    if not isinstance(method, str) or method not in _METHODS:
        raise ValueError(f"`method` must be one of {_METHODS}, got {method!r}")
    n = op.grid.size
    k = _check_k(k, n)
    if method == "auto":
        method = "sparse" if k <= n - 2 else "dense"
    if method == "sparse" and k > n - 2:
        raise ValueError(
            f"`k`={k} is too large for the sparse eigensolver on {n} cells; "
            f"choose k <= {n - 2} or method='dense'"
        )
    if method == "dense" and n > DENSE_MAX:
        raise ValueError(
            f"the dense eigensolver is limited to {DENSE_MAX} cells (this grid has {n}; "
            f"`k`={k}); use method='sparse' with k <= {n - 2}"
        )
    dense = method == "dense"
    if op.reversible:
        lam, modes, used, residual = _reversible(op, k, dense, tol, maxiter)
    else:
        lam, modes, used, residual = _nonreversible(op, k, dense, tol, maxiter)
    return _dataset(op, lam, modes, used, residual)


def _dataset(op: Operator, lam: np.ndarray, modes: np.ndarray, method: str, residual: float):
    import xarray as xr

    grid = op.grid
    k = lam.size
    first = 0 if op.absorbing else 1
    tau = 1.0 / float(np.real(lam[first])) if k > first else float("nan")
    coords = dict(grid.coords())
    coords["k"] = np.arange(k)
    rate = xr.DataArray(lam, dims=("k",), attrs={"long_name": "relaxation rate", "units": "1/time"})
    mode = xr.DataArray(
        modes.T.reshape((k, *grid.shape)),
        dims=("k", *grid.names),
        attrs={"long_name": "relaxation mode (eigen-density)", "units": "1/volume"},
    )
    return xr.Dataset(
        {"rate": rate, "mode": mode},
        coords=coords,
        attrs={
            "relaxation_time": tau,
            "reversible": int(op.reversible),
            "method": method,
            "residual": residual,
            "temperature": op.temperature,
            **grid.to_attrs(),
        },
    )

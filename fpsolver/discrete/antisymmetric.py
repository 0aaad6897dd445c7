r"""The antisymmetric part of the mobility: a divergence-free transport.

With K = S + A (Aᵀ = −A) the current splits as J = J_S + J_A with

.. math::

    J_A = -T A q \nabla u, \qquad u = p/q, \quad q \propto e^{-E/T}.

Writing Ψ^{ab} = T q A^{ab} (antisymmetric) and B^a = ∂_b Ψ^{ab}, one has
∇·B = ∂_a∂_bΨ^{ab} = 0 and, because ∂_a∂_b u is symmetric,

.. math::

    \nabla\cdot J_A = B\cdot\nabla u = \nabla\cdot(u B),

so A transports u along the divergence-free field B (in 2-D, B is the
rotated gradient of the stream function ψ = T a q, a = A^{xy}). B is the
circulating current of the Gibbs state seen by particles, T ∇·(A q).

**Discretisation.** Ψ^{ab} lives on the grid's (d−2)-dimensional edges
(vertices in 2-D): the average of T A^{ab} q over the four cells around
the edge, times the cell widths along the other axes. The flux of B
through a face normal to a is β = Σ_{b≠a} [Ψ^{ab}]_{b−}^{b+}, a discrete
Stokes formula, so Σ_faces β = 0 for every cell exactly (the terms cancel
in pairs by antisymmetry). Edges on a bounded wall get Ψ = 0, so β = 0 on
the walls. The flux of p through the face from cell i to j is

.. math::

    F^A_{ij} = \beta\,\frac{u_i + u_j}{2} + \epsilon\,(u_i - u_j),
    \qquad \epsilon = \max\!\big(0, \tfrac{|\beta|}{2} - c_{ij}\big),

where c_ij = w B(δ) q_i is the Scharfetter–Gummel conductance of the
symmetric part on the same face (written in u). Hence:

- **mass** is conserved exactly (a flux form);
- **the Gibbs state is exactly stationary**: u ≡ 1 gives Σ_j F^A_ij =
  Σ_j β_ij = 0 in every cell (ε multiplies a difference of u);
- **positivity**: the combined off-diagonal coefficients are
  c ± β/2 + ε ≥ 0, so backward Euler keeps p ≥ 0 for every dt. Where the
  cell Péclet condition :math:`|\beta| \le 2c` holds (fine grids, moderate A), ε = 0
  and the flux is the central, second-order one; beyond it the face gets
  the least artificial diffusion that restores the M-matrix property
  (Spalding's hybrid scheme), first order on those faces only;
- **no dissipation from A, to second order**: along the semi-discrete
  flow dF/dt = −T Σ F_ij (ln u_i − ln u_j); the central flux contributes
  −T Σ β [(u_i + u_j)/2 · ln(u_i/u_j) − (u_i − u_j)] (the subtracted sum
  Σ β (u_i − u_j) vanishes by Σ_j β_ij = 0), which is O(|u_i − u_j|³)
  per face, O(h²) in total; ε adds dissipation only (≥ 0).

Tilted periodic energies and forces are not supported together with A
(no Gibbs reference u = p/q): such models are refused.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from ..core.model import Model

__all__ = ["face_coefficients", "merged_rates", "antisymmetric_fluxes"]


def _shift(arr: np.ndarray, axis: int, k: int, periodic: bool) -> tuple[np.ndarray, np.ndarray]:
    """``arr`` at index + k along `axis` (wrapped if periodic) and a validity mask."""
    n = arr.shape[axis]
    idx = np.arange(n) + k
    ok = np.ones(n, dtype=bool)
    if periodic:
        idx = np.mod(idx, n)
    else:
        ok = (idx >= 0) & (idx < n)
        idx = np.clip(idx, 0, n - 1)
    shape = [1] * arr.ndim
    shape[axis] = n
    return np.take(arr, idx, axis=axis), ok.reshape(shape)


def _check(model: Model) -> None:
    if model.has_force:
        raise ValueError(
            "a mobility with an antisymmetric part cannot be combined with a `force` (or "
            "a drift) yet: put the non-conservative part into the force alone, or use a "
            "symmetric mobility"
        )


def face_coefficients(model: Model, log_q: np.ndarray, links) -> list[dict]:
    """Per axis a: the faces between cells i and i + e_a and their flux coefficients.

    ``log_q`` is ln q on the cells; ``links`` the symmetric part's links
    (their unit-offset rates give c_ij). Each dict has flat ``i``, ``j``,
    the coefficients ``out_i``, ``in_j`` with F_ij = out_i p_i − in_j p_j,
    ``hybrid`` (faces beyond the cell Péclet condition), and ``fwd``,
    ``bwd``: the coefficients of the face's total flux, the symmetric
    part's included (:func:`merged_rates`).
    """
    _check(model)
    grid = model.grid
    d = grid.ndim
    T = model.temperature
    K = model.mobility_tensor()
    A = 0.5 * (K - np.swapaxes(K, 0, 1))
    idx = np.arange(grid.size).reshape(grid.shape)
    conduct = _unit_conductances(grid, links)
    # q(i ± e_c) / q(i): local ratios, never overflowing; every other ratio is a product.
    ratios = {
        (c, s): np.exp(_shift(log_q, c, s, grid.periodic[c])[0] - log_q)
        for c in range(d)
        for s in (1, -1)
    }
    out = []
    for a in range(d):
        per = grid.periodic[a]
        j_idx, ok = _shift(idx, a, 1, per)
        r_i = np.zeros(grid.shape)  # β / q_i
        for b in range(d):
            if b != a and np.any(A[a, b] != 0):
                r_i = r_i + _beta_over_q(grid, A[a, b], ratios, a, b, T)
        valid = np.broadcast_to(ok, grid.shape)
        i = idx[valid]
        j = j_idx[valid]
        r_i = r_i[valid]
        ratio = 1.0 / ratios[(a, 1)][valid]  # q_i / q_j
        c_i, c_j = (np.zeros(i.size), np.zeros(i.size))
        if conduct[a] is not None:
            c_i, c_j = conduct[a][0][i], conduct[a][1][i]
        out.append(_coefficients(i, j, r_i, r_i * ratio, c_i, c_j))
    return out


def _coefficients(i, j, b_i, b_j, c_i, c_j) -> dict:
    """F_ij = out_i p_i − in_j p_j, with the hybrid switch (module notes).

    The total coefficients of the face (symmetric part's c included) are
    ``fwd`` = c_i + β_i/2 and ``bwd`` = c_j − β_j/2, and on a hybrid face
    exactly abs(β)/2 ± β/2 (max(c, abs(β)/2) ± β/2 with c ≤ abs(β)/2), the
    vanishing one exactly zero; ``out_i``, ``in_j`` are these minus c.
    """
    hybrid = 0.5 * np.abs(b_i) >= c_i * (1.0 - 1e-12)
    half_i, half_j = 0.5 * b_i, 0.5 * b_j
    fwd = np.where(hybrid, 0.5 * np.abs(b_i) + half_i, c_i + half_i)
    bwd = np.where(hybrid, 0.5 * np.abs(b_j) - half_j, c_j - half_j)
    out_i = np.where(hybrid, fwd - c_i, half_i)
    in_j = np.where(hybrid, bwd - c_j, -half_j)
    return dict(i=i, j=j, out_i=out_i, in_j=in_j, hybrid=hybrid, fwd=fwd, bwd=bwd)


def _beta_over_q(grid, Aab, ratios: dict, a: int, b: int, T: float) -> np.ndarray:
    """[Ψ^{ab}]_{b−}^{b+} / q_i on the faces normal to a (cell i lower, j = i + e_a).

    ``ratios[(c, s)]`` is q(i + s e_c)/q(i) on the cells.
    """
    per_a, per_b = grid.periodic[a], grid.periodic[b]
    r_a = ratios[(a, 1)]  # q_j / q_i
    Aj, _ = _shift(Aab, a, 1, per_a)
    width = np.ones([1] * grid.ndim)
    for c in range(grid.ndim):
        if c not in (a, b):
            width = width * grid._along(c, grid.widths[c])
    total = np.zeros(grid.shape)
    for sign in (1, -1):
        # The edge at the b-vertex on side `sign`: cells i, j and their neighbours i±e_b, j±e_b.
        r_b = ratios[(b, sign)]  # q(i + s e_b) / q(i)
        r_bj, _ = _shift(r_b, a, 1, per_a)  # q(j + s e_b) / q(j)
        Ai_nb, ok = _shift(Aab, b, sign, per_b)
        Aj_nb, _ = _shift(Aj, b, sign, per_b)
        terms = Aab + Aj * r_a + Ai_nb * r_b + Aj_nb * (r_a * r_bj)
        edge = np.where(ok, (0.25 * T) * terms, 0.0)  # zero on a bounded wall
        total = total + sign * edge
    return total * width


def _unit_offset_axis(ln) -> int | None:
    """The axis a of a link group along the unit offset e_a, else None."""
    nz = np.flatnonzero(ln.offset)
    if nz.size == 1 and ln.offset[nz[0]] == 1:
        return int(nz[0])
    return None


def _unit_conductances(grid, links) -> list:
    """c/q_i = w B(δ) and c/q_j = w B(−δ) of the links along each unit offset e_a.

    Exactly the rates the symmetric part puts into L (``ln.rates``),
    keyed by the source cell (at most one such link per cell and axis;
    zero where the symmetric part has none).
    """
    out: list = [None] * grid.ndim
    for ln in links:  # Selling links (a model with A is a tensor model)
        a = _unit_offset_axis(ln)
        if a is not None:
            fwd, back = np.zeros(grid.size), np.zeros(grid.size)
            fwd[ln.src], back[ln.src] = ln.rates
            out[a] = (fwd, back)
    return out


def merged_rates(links, faces: list[dict]) -> list[tuple]:
    """Link groups ``(src, dst, fwd, bwd)`` of L with the antisymmetric part merged in.

    F^A on the face i → i + e_a has the form of a link flux, out_i p_i −
    in_j p_j, so it is added to the rates of the symmetric part's links
    along e_a: those groups are replaced by the faces with their total
    coefficients (``fwd``, ``bwd`` of :func:`face_coefficients`, links
    added where the symmetric part has none); the other offsets keep
    their own rates. One link set, no duplicates to sum in the assembly.
    """
    groups = [(ln.src, ln.dst, *ln.rates) for ln in links if _unit_offset_axis(ln) is None]
    groups += [(f["i"], f["j"], f["fwd"], f["bwd"]) for f in faces]
    return groups


def antisymmetric_fluxes(grid, faces: list[dict], p: np.ndarray) -> list[np.ndarray]:
    """F^A per unit face area in the layout of :func:`fpsolver.discrete.sg.face_fluxes`."""
    flat = np.asarray(p, float).ravel()
    out = []
    for a, f in enumerate(faces):
        shape = list(grid.shape)
        shape[a] += 0 if grid.periodic[a] else 1
        arr = np.zeros(shape)
        F = f["out_i"] * flat[f["i"]] - f["in_j"] * flat[f["j"]]
        multi = list(np.unravel_index(f["i"], grid.shape))
        if not grid.periodic[a]:
            multi[a] = multi[a] + 1
        np.add.at(arr, tuple(multi), F)
        out.append(arr / grid.face_areas(a))
    return out

r"""Full mobility tensors: Selling's decomposition into lattice links.

A symmetric positive definite d × d matrix D (d = 2, 3) is a non-negative
combination of rank-one matrices along integer offsets,

.. math::

    D = \sum_k \rho_k\, e_k e_k^{\mathsf T}, \qquad \rho_k \ge 0,\ e_k \in \mathbb{Z}^d,

with d(d+1)/2 terms: Selling's decomposition (Voronoi's first reduction),
computed from a *D-obtuse superbase* (e_0, …, e_d), Σ e_i = 0,
|det(e_1, …, e_d)| = 1, ⟨e_i, D e_j⟩ ≤ 0 for i ≠ j. In 2-D the weights are
ρ = −⟨e_i, D e_j⟩ on the offsets e_k^⊥ (k the third index); in 3-D on the
offsets e_k × e_l ({k, l} the complement of {i, j}). Selling's algorithm
finds the superbase by flipping a pair with ⟨e_i, D e_j⟩ > 0 until none is
left; it terminates because Σ ‖e_i‖²_D decreases. See Fehrenbach &
Mirebeau, J. Math. Imaging Vis. 49 (2014) 123–146, and Bonnans, Bonnet &
Mirebeau, ESAIM: COCV 28 (2022) 16.

**The scheme.** The symmetric part S of the mobility is scaled to index
coordinates, S̃ = H⁻¹ S H⁻¹ with H the cell widths, and decomposed in every
cell. Each term (ρ, e) of cell c is a link between c and c + e carrying the
Scharfetter–Gummel flux with weight T·V_c·ρ; a link gets half of the
weight from each end's decomposition (cells c and c + e, or c − e and c),
which makes the weights symmetric and, for a constant S, reproduces the
exact second-order stencil Σ ρ [u(x+e) − 2u(x) + u(x−e)]. The potential
difference along a link is that of the cell energies (minus F·Δx with a
force), so every property of the diagonal scheme holds for any SPD S(x):
mass conserved, off-diagonals ≥ 0, the Gibbs density exactly stationary,
the free energy non-increasing.

**Stencil width and walls.** The offsets have max-norm at most about
sqrt(κ) for a condition number κ of S̃ (κ = 100: offsets up to (3, 1)‐like),
so the stencil widens with anisotropy. A link whose other end leaves a
bounded axis is dropped: no flux crosses a wall (mass and the Gibbs state
stay exact), at the price of first-order consistency in the layer of cells
within the stencil width of a wall. Periodic axes wrap.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from ..core.model import Model

__all__ = ["selling", "OffsetLinks", "tensor_links", "offset_fluxes"]

_MAX_SWEEPS = 500


def _canonical_superbase(d: int, n: int) -> np.ndarray:
    base = np.zeros((d + 1, d), dtype=np.int64)
    base[:d] = np.eye(d, dtype=np.int64)
    base[d] = -1
    return np.broadcast_to(base, (n, d + 1, d)).copy()


def _pairs(d: int) -> list[tuple[int, int]]:
    return [(i, j) for i in range(d + 1) for j in range(i + 1, d + 1)]


def selling(D: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Selling's decomposition of SPD matrices ``D`` of shape ``(n, d, d)``.

    Returns ``(offsets, weights)`` of shapes ``(n, m, d)`` (integers) and
    ``(n, m)`` (≥ 0) with m = d(d+1)/2 and D = Σ_k w_k e_k e_kᵀ. For d = 1
    the offset is 1 and the weight D.

    Examples
    --------
    >>> import numpy as np
    >>> D = np.array([[[2.0, 0.9], [0.9, 1.0]]])
    >>> e, w = selling(D)
    >>> bool(np.allclose(np.einsum("nk,nki,nkj->nij", w, e, e), D)), bool((w >= 0).all())
    (True, True)
    """
    D = np.asarray(D, dtype=float)
    n, d = D.shape[0], D.shape[-1]
    if d == 1:
        return np.ones((n, 1, 1), dtype=np.int64), D.reshape(n, 1).copy()
    if d not in (2, 3):
        raise ValueError(f"Selling's decomposition is implemented for d = 1, 2, 3; got d = {d}")
    base = _canonical_superbase(d, n)
    pairs = _pairs(d)
    tol = 1e-13 * np.trace(D, axis1=1, axis2=2)
    for _ in range(_MAX_SWEEPS):
        dot = np.stack([np.einsum("ni,nij,nj->n", base[:, i], D, base[:, j]) for i, j in pairs], 1)
        bad = dot > tol[:, None]
        rows = np.flatnonzero(bad.any(axis=1))
        if rows.size == 0:
            break
        first = np.argmax(bad[rows], axis=1)
        for p, (i, j) in enumerate(pairs):
            r = rows[first == p]
            if r.size:
                _flip(base, r, i, j, d)
    else:
        raise RuntimeError("Selling's algorithm did not terminate (is the mobility SPD?)")
    return _weights(base, D, pairs, d)


def _flip(base: np.ndarray, r: np.ndarray, i: int, j: int, d: int) -> None:
    """Selling's step on rows `r` for the pair (i, j) with ⟨e_i, D e_j⟩ > 0."""
    ei = base[r, i].copy()
    others = [k for k in range(d + 1) if k not in (i, j)]
    base[r, i] = -ei
    if d == 2:
        base[r, others[0]] = ei - base[r, j]
    else:
        for k in others:
            base[r, k] = base[r, k] + ei


def _weights(base: np.ndarray, D: np.ndarray, pairs, d: int) -> tuple[np.ndarray, np.ndarray]:
    n = base.shape[0]
    offsets = np.zeros((n, len(pairs), d), dtype=np.int64)
    weights = np.zeros((n, len(pairs)))
    for p, (i, j) in enumerate(pairs):
        weights[:, p] = -np.einsum("ni,nij,nj->n", base[:, i], D, base[:, j])
        rest = [k for k in range(d + 1) if k not in (i, j)]
        if d == 2:
            e = base[:, rest[0]]
            offsets[:, p] = np.stack([-e[:, 1], e[:, 0]], axis=1)
        else:
            offsets[:, p] = np.cross(base[:, rest[0]], base[:, rest[1]])
    return offsets, np.maximum(weights, 0.0)


@dataclass(frozen=True)
class OffsetLinks:
    """Links along integer offsets (a tensor mobility's stencil).

    ``offsets`` is the table of canonical offsets (first non-zero component
    positive), ``oid`` each link's row in it; ``src``/``dst`` flat cell
    indices, ``weight`` T·V·ρ, ``delta`` the reduced potential difference
    from src to dst, ``disp`` the displacement (d, n_links) and ``h`` its
    length. ``axis`` is None (the links are not along one axis).
    """

    offsets: np.ndarray
    oid: np.ndarray
    src: np.ndarray
    dst: np.ndarray
    weight: np.ndarray
    delta: np.ndarray
    disp: np.ndarray
    h: np.ndarray
    axis: None = None


def _canonical(off: np.ndarray) -> np.ndarray:
    """Flip offsets so that their first non-zero component is positive."""
    first = np.take_along_axis(off, np.argmax(off != 0, axis=-1)[..., None], axis=-1)
    return np.where(first < 0, -off, off)


def _local_tensor(model: Model) -> tuple[np.ndarray, np.ndarray]:
    """S̃ = H⁻¹ S H⁻¹ per cell, as ``(n, d, d)``, and the flat cell widths ``(d, n)``."""
    grid = model.grid
    K = model.mobility_tensor()
    S = 0.5 * (K + np.swapaxes(K, 0, 1))
    d = grid.ndim
    h = np.stack([np.broadcast_to(grid._along(a, grid.widths[a]), grid.shape) for a in range(d)])
    h = h.reshape(d, -1)
    St = S.reshape(d, d, -1) / (h[:, None, :] * h[None, :, :])
    return np.moveaxis(St, -1, 0), h


def _shifted(grid, multi: np.ndarray, off: np.ndarray):
    """Indices of ``multi + off`` (``(d, n)``), the number of wraps, and validity."""
    d = grid.ndim
    target = multi + off
    wraps = np.zeros_like(target)
    ok = np.ones(target.shape[1], dtype=bool)
    for a in range(d):
        n = grid.shape[a]
        if grid.periodic[a]:
            wraps[a] = np.floor_divide(target[a], n)
            target[a] = np.mod(target[a], n)
        else:
            ok &= (target[a] >= 0) & (target[a] < n)
    return target, wraps, ok


def _position(grid, idx: np.ndarray, wraps: np.ndarray) -> np.ndarray:
    """Unwrapped cell-centre coordinates ``(d, n)`` of cells `idx` moved by `wraps` periods."""
    L = grid.lengths()
    return np.stack([grid.centers[a][idx[a]] + wraps[a] * L[a] for a in range(grid.ndim)])


def tensor_links(model: Model) -> tuple[OffsetLinks, ...]:
    """The Selling links of a tensor-mobility model (see the module notes)."""
    grid = model.grid
    d, n = grid.ndim, grid.size
    St, _ = _local_tensor(model)
    offs, rho = selling(St)
    offs = _canonical(offs)
    m = offs.shape[1]
    table, oid = np.unique(offs.reshape(-1, d), axis=0, return_inverse=True)
    oid = oid.reshape(n, m)
    cells = np.repeat(np.arange(n), m)
    half = 0.5 * model.temperature * (grid.volumes.ravel()[:, None] * rho).ravel()
    # Each (cell, ρ, e) gives half its weight to (c, c + e) and half to (c − e, c).
    multi = np.array(np.unravel_index(cells, grid.shape))
    o = oid.ravel()
    fwd, _, ok_f = _shifted(grid, multi, table[o].T)
    back, _, ok_b = _shifted(grid, multi, -table[o].T)
    src = np.concatenate([cells[ok_f], np.ravel_multi_index(back[:, ok_b], grid.shape)])
    lid = np.concatenate([o[ok_f], o[ok_b]])
    w = np.concatenate([half[ok_f], half[ok_b]])
    keep = w > 0
    key = src[keep] * len(table) + lid[keep]
    ukey, inv = np.unique(key, return_inverse=True)
    weight = np.bincount(inv, w[keep], ukey.size)
    src, lid = ukey // len(table), ukey % len(table)
    return (_link_data(model, table, src, lid, weight),)


def _link_data(model: Model, table, src, lid, weight) -> OffsetLinks:
    grid = model.grid
    T = model.temperature
    smulti = np.array(np.unravel_index(src, grid.shape))
    dmulti, wraps, _ = _shifted(grid, smulti, table[lid].T)
    dst = np.ravel_multi_index(dmulti, grid.shape)
    x_src = _position(grid, smulti, np.zeros_like(wraps))
    x_dst = _position(grid, dmulti, wraps)
    disp = x_dst - x_src
    E = model.energy.ravel()
    dE = E[dst] - E[src]
    wrapped = np.flatnonzero(np.any(wraps != 0, axis=0))
    if wrapped.size and model.energy_function is not None:
        # Energy at the unwrapped neighbour: exact for tilted periodic potentials.
        e_far = model.energy_at([x_dst[a, wrapped] for a in range(grid.ndim)])
        dE[wrapped] = e_far - E[src[wrapped]]
    mid = 0.5 * (x_src + x_dst)
    work = np.zeros_like(dE)
    if model.has_force:
        pts = [mid[a] for a in range(grid.ndim)]
        for a in range(grid.ndim):
            work += np.asarray(model.force_at(a, pts), dtype=float) * disp[a]
    delta = (dE - work) / T
    h = np.sqrt(np.sum(disp**2, axis=0))
    return OffsetLinks(table, lid, src, dst, weight, delta, disp, h)


def links_reversible(model: Model, links) -> bool:
    """Whether the offset links' potential differences derive from the cell energies."""
    if model.has_force:
        return False
    E = model.energy.ravel()
    scale = max(1.0, float(np.max(np.abs(E)))) / model.temperature
    for ln in links:
        cells = (E[ln.dst] - E[ln.src]) / model.temperature
        if ln.delta.size and np.max(np.abs(ln.delta - cells)) > 1e-12 * scale:
            return False
    return True


def offset_fluxes(grid, links, p: np.ndarray, flux_of) -> list[np.ndarray]:
    """Face fluxes (per unit area, the layout of :func:`fpsolver.discrete.sg.face_fluxes`).

    Each link's flux ``flux_of(link, p)`` is routed along two lattice
    paths, half each: axis by axis in increasing order and in decreasing
    order. The result's discrete divergence equals the scheme's dp/dt.
    """
    d = grid.ndim
    out = []
    for a in range(d):
        shape = list(grid.shape)
        shape[a] += 0 if grid.periodic[a] else 1
        out.append(np.zeros(shape))
    for ln in links:
        F = flux_of(ln, p)
        off = ln.offsets[ln.oid].T
        start = np.array(np.unravel_index(ln.src, grid.shape))
        for order in (range(d), range(d - 1, -1, -1)):
            cur = start.copy()
            for a in order:
                _walk(grid, out, cur, off[a], a, 0.5 * F)
    for a in range(d):
        out[a] /= grid.face_areas(a)
    return out


def _walk(grid, out, cur: np.ndarray, steps: np.ndarray, a: int, F: np.ndarray) -> None:
    """Add flux F across every face crossed by moving `steps` cells along axis `a`."""
    n = grid.shape[a]
    per = grid.periodic[a]
    for k in range(int(np.max(np.abs(steps), initial=0))):
        move = np.abs(steps) > k
        sgn = np.sign(steps[move])
        pos = cur[a, move]
        # Face between cells pos and pos + sgn: the upper face of min(pos, pos + sgn).
        low = np.where(sgn > 0, pos, pos - 1)
        face = np.mod(low, n) if per else low + 1
        idx = cur[:, move].copy()
        idx[a] = face
        np.add.at(out[a], tuple(idx), sgn * F[move])
        nxt = pos + sgn
        cur[a, move] = np.mod(nxt, n) if per else nxt

r"""Full mobility tensors: Selling's decomposition into lattice links.

A symmetric positive definite d × d matrix D (d = 2, 3) is a non-negative
combination of rank-one matrices along integer offsets,

.. math::

    D = \sum_k \rho_k\, e_k e_k^{\mathsf T}, \qquad \rho_k \ge 0,\ e_k \in \mathbb{Z}^d,

with d(d+1)/2 terms: Selling's decomposition (Voronoi's first reduction),
computed from a *D-obtuse superbase* (e_0, …, e_d), Σ e_i = 0,
:math:`|\det(e_1, \dots, e_d)| = 1`, ⟨e_i, D e_j⟩ ≤ 0 for i ≠ j. In 2-D the weights are
ρ = −⟨e_i, D e_j⟩ on the offsets e_k^⊥ (k the third index); in 3-D on the
offsets e_k × e_l ({k, l} the complement of {i, j}). Selling's algorithm
finds the superbase by flipping a pair with ⟨e_i, D e_j⟩ > 0 until none is
left; it terminates because Σ ‖e_i‖²_D decreases. See Fehrenbach &
Mirebeau, J. Math. Imaging Vis. 49 (2014) 123–146, and Bonnans, Bonnet &
Mirebeau, "Monotone discretization of anisotropic differential operators
using Voronoi's first reduction" (2022).

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
within the stencil width of a wall. Periodic axes wrap. The links of one
offset e join a box of cells c to c + e, so their arrays are slices of cell
arrays; a tensor that is one matrix on a uniform grid is decomposed once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

from .sg import _per_area, link_rates

if TYPE_CHECKING:
    from ..core.model import Model

__all__ = ["selling", "OffsetLinks", "tensor_links", "offset_fluxes", "per_area"]

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
    if n > 1 and np.all(D == D[:1]):  # one tensor for every cell: decompose once
        e, w = selling(D[:1])
        return np.broadcast_to(e, (n, *e.shape[1:])), np.broadcast_to(w, (n, w.shape[1]))
    base = _canonical_superbase(d, n)
    pairs = _pairs(d)
    tol = 1e-13 * np.trace(D, axis1=1, axis2=2)
    active = np.arange(n)
    for _ in range(_MAX_SWEEPS):
        dot = _pair_dots(D[active], base[active], pairs)
        bad = dot > tol[active, None]
        hit = bad.any(axis=1)
        if not hit.any():
            break
        active = active[hit]
        first = np.argmax(bad[hit], axis=1)
        for p, (i, j) in enumerate(pairs):
            r = active[first == p]
            if r.size:
                _flip(base, r, i, j, d)
    else:
        raise RuntimeError("Selling's algorithm did not terminate (is the mobility SPD?)")
    return _weights(base, D, pairs, d)


def _pair_dots(D: np.ndarray, base: np.ndarray, pairs) -> np.ndarray:
    """⟨e_i, D e_j⟩ for every pair, shape ``(n, len(pairs))``."""
    b = base.astype(float)
    Db = np.matmul(D[:, None], b[..., None])[..., 0]  # (n, d+1, d)
    return np.stack([np.sum(b[:, i] * Db[:, j], axis=1) for i, j in pairs], axis=1)


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
    dots = _pair_dots(D, base, pairs)
    for p, (i, j) in enumerate(pairs):
        weights[:, p] = -dots[:, p]
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

    ``offset`` is the integer offset (first non-zero component positive)
    shared by all links of the group; ``src``/``dst`` flat cell indices,
    ``weight`` T·V·ρ, ``delta`` the reduced potential difference from src
    to dst. ``steps`` holds, per axis, the displacement along that axis
    of the box of source cells (broadcastable to it) and ``keep`` the
    box's cells that carry a link (None: all); ``disp`` (d, n_links) and
    its length ``h`` are derived from them on first use. ``cell_delta`` is
    the very array ``delta`` when it is the δ of the cell energies,
    (E_dst − E_src)/T (no force, no energy read across a wrap), else None.
    ``axis`` is None (the links are not along one axis).
    """

    offset: np.ndarray
    src: np.ndarray
    dst: np.ndarray
    weight: np.ndarray
    delta: np.ndarray
    steps: tuple = field(repr=False)
    keep: np.ndarray | None = field(default=None, repr=False)
    cell_delta: np.ndarray | None = field(default=None, repr=False, compare=False)
    axis: None = None

    @cached_property
    def rates(self) -> tuple[np.ndarray, np.ndarray]:
        """``(w B(δ), w B(−δ))``, computed once (:func:`fpsolver.discrete.sg.link_rates`)."""
        return link_rates(self)

    @cached_property
    def disp(self) -> np.ndarray:
        """The displacement from src to dst (across a wrap: unwrapped), shape (d, n_links)."""
        return _box_disp(self.steps, self.keep)

    @cached_property
    def h(self) -> np.ndarray:
        """The length of each link's displacement."""
        return np.sqrt(np.sum(self.disp**2, axis=0))


def _canonical(off: np.ndarray) -> np.ndarray:
    """Flip offsets so that their first non-zero component is positive."""
    first = np.take_along_axis(off, np.argmax(off != 0, axis=-1)[..., None], axis=-1)
    return np.where(first < 0, -off, off)


def _offset_table(offs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct rows of integer offsets ``(k, d)`` and each row's index, in O(k)."""
    r = int(np.abs(offs).max()) + 1
    base = 2 * r + 1
    code = np.zeros(offs.shape[0], dtype=np.int64)
    for a in range(offs.shape[1]):
        code = code * base + (offs[:, a] + r)
    present = np.zeros(base ** offs.shape[1], dtype=bool)
    present[code] = True
    codes = np.flatnonzero(present)
    index = np.full(present.size, -1, dtype=np.int64)
    index[codes] = np.arange(codes.size)
    table = np.zeros((codes.size, offs.shape[1]), dtype=np.int64)
    rest = codes.copy()
    for a in range(offs.shape[1] - 1, -1, -1):
        table[:, a] = rest % base - r
        rest //= base
    return table, index[code]


def _local_tensor(model: Model) -> np.ndarray:
    """S̃ = W⁻¹ S W⁻¹ per cell (W the cell widths), as ``(n, d, d)``."""
    grid = model.grid
    K = model.mobility_tensor()
    S = 0.5 * (K + np.swapaxes(K, 0, 1))
    d = grid.ndim
    if grid.curved:
        # K is given in the orthonormal frame; coordinate components are H⁻¹ K H⁻¹.
        scale = grid.geometry.scale
        if scale is None:
            raise NotImplementedError(
                "a tensor mobility needs the scale factors of the grid's metric; a curvilinear "
                "grid read back from attributes has only its cell measures"
            )
        hs = [np.broadcast_to(h, grid.shape) for h in scale(list(grid.mesh()))]
        S = S / np.array([[ha * hb for hb in hs] for ha in hs])
    h = np.stack([np.broadcast_to(grid._along(a, grid.widths[a]), grid.shape) for a in range(d)])
    h = h.reshape(d, -1)
    St = S.reshape(d, d, -1) / (h[:, None, :] * h[None, :, :])
    return np.moveaxis(St, -1, 0)


def _offset_weights(model: Model) -> tuple[np.ndarray, list]:
    """The offsets ``(k, d)`` and, per offset, ρ on the cells (a scalar when constant)."""
    grid = model.grid
    d, n = grid.ndim, grid.size
    St = _constant_local_tensor(model)
    if St is None:
        St = _local_tensor(model)
        if np.allclose(St, St[:1], rtol=1e-12, atol=0.0):  # one tensor everywhere (to rounding)
            St = St[:1]
    if St.shape[0] == 1:
        offs, rho = selling(St)
        table, oid = _offset_table(_canonical(offs[0]))
        dense = [0.0] * len(table)
        for k, r in zip(oid, rho[0]):
            dense[k] = dense[k] + r
        return table, dense
    offs, rho = selling(St)
    offs = _canonical(offs)
    table, oid = _offset_table(offs.reshape(-1, d))
    # ρ of every offset on every cell (zero where a cell's stencil lacks it).
    dense = np.bincount(
        oid * n + np.repeat(np.arange(n), offs.shape[1]), np.ravel(rho), len(table) * n
    ).reshape(len(table), *grid.shape)
    return table, list(dense)


def _constant_local_tensor(model: Model) -> np.ndarray | None:
    """S̃ of the first cell, ``(1, d, d)``, when K is one matrix and the widths are uniform.

    A cheap test on the raw data (None otherwise, then :func:`tensor_links`
    compares S̃ cell by cell).
    """
    grid = model.grid
    if grid.curved:
        return None
    for w in grid.widths:
        w = np.asarray(w, dtype=float)
        if not np.allclose(w, w[0], rtol=1e-12, atol=0.0):
            return None
    K = model.mobility_tensor()
    flat = K.reshape(K.shape[0] * K.shape[1], -1)
    if not np.array_equal(flat, np.broadcast_to(flat[:, :1], flat.shape)):
        return None
    K0 = flat[:, 0].reshape(K.shape[:2])
    S = 0.5 * (K0 + K0.T)
    h = np.array([np.asarray(w, dtype=float)[0] for w in grid.widths])
    return (S / (h[:, None] * h[None, :]))[None]


def tensor_links(model: Model) -> tuple[OffsetLinks, ...]:
    """The Selling links of a tensor-mobility model, one group per offset (module notes).

    The links of an offset e join the box of cells c with c + e on the grid
    (wrapping along periodic axes): every array is a slice of a cell array,
    no gather.
    """
    grid = model.grid
    table, dense = _offset_weights(model)
    tv = model.temperature * grid.volumes
    idx = np.arange(grid.size, dtype=_index_dtype(grid.size)).reshape(grid.shape)
    out = []
    for k, e in enumerate(table):
        e = np.asarray(e)
        w = tv * dense[k]
        # Half of the weight from each end's decomposition.
        weight = 0.5 * (_at_src(w, grid, e) + _at_dst(w, grid, e))
        if weight.size == 0:
            continue
        keep = weight > 0
        if keep.all():
            keep = None
        elif not keep.any():
            continue
        out.append(_link_data(model, e, idx, weight, keep))
    return tuple(out)


def _index_dtype(n: int) -> type:
    """int32 for the flat cell indices of a grid that small (half the memory), else int64."""
    return np.int32 if n < np.iinfo(np.int32).max else np.int64


def _src_slices(grid, e: np.ndarray) -> tuple[slice, ...]:
    """The box of cells c whose c + e is a cell (every c along periodic axes)."""
    out = []
    for a, n in enumerate(grid.shape):
        k = int(e[a])
        out.append(slice(None) if grid.periodic[a] else slice(max(0, -k), max(0, min(n, n - k))))
    return tuple(out)


def _at_src(arr: np.ndarray, grid, e: np.ndarray) -> np.ndarray:
    """A cell array on the box of source cells."""
    return np.broadcast_to(arr, grid.shape)[_src_slices(grid, e)]


def _at_dst(arr: np.ndarray, grid, e: np.ndarray) -> np.ndarray:
    """A cell array at c + e for every c of the box of source cells (wrapped if periodic)."""
    arr = np.broadcast_to(arr, grid.shape)
    boxes = []
    for a, n in enumerate(grid.shape):
        k = int(e[a])
        if grid.periodic[a]:
            if k % n:
                arr = np.roll(arr, -k, axis=a)
            boxes.append(slice(None))
        else:
            boxes.append(slice(max(0, k), max(0, min(n, n + k))))
    return arr[tuple(boxes)]


def _box_steps(grid, e: np.ndarray) -> tuple[list[np.ndarray], np.ndarray | None]:
    """Per axis, the displacement of c + e from c on the source box (broadcastable).

    Also the box's wrapped links (None when none wraps): across a periodic
    wrap the displacement is the unwrapped one.
    """
    d = grid.ndim
    steps, crossed = [], None
    box = _src_slices(grid, e)
    for a in range(d):
        n, c = grid.shape[a], grid.centers[a]
        i = np.arange(n)[box[a]]
        j = i + int(e[a])
        if grid.periodic[a]:
            wraps = np.floor_divide(j, n)
            step = c[np.mod(j, n)] + wraps * grid.lengths()[a] - c[i]
            if np.any(wraps != 0):
                hit = grid._along(a, wraps != 0)
                crossed = hit if crossed is None else crossed | hit
        else:
            step = c[j] - c[i]
        steps.append(grid._along(a, step))
    return steps, crossed


def _box_disp(steps, keep: np.ndarray | None) -> np.ndarray:
    """Stack the per-axis displacements over the box (and `keep`) as ``(d, n_links)``."""
    shape = np.broadcast_shapes(*(np.shape(s) for s in steps))
    if keep is not None:
        return np.stack([np.broadcast_to(s, shape)[keep] for s in steps])
    return np.stack([np.broadcast_to(s, shape).ravel() for s in steps])


def _link_data(model: Model, e, idx, weight, keep) -> OffsetLinks:
    grid = model.grid
    T = model.temperature
    E = model.energy
    src, dst = _at_src(idx, grid, e), _at_dst(idx, grid, e)
    dE = _at_dst(E, grid, e) - _at_src(E, grid, e)
    steps, crossed = _box_steps(grid, e)
    box = src.shape
    sel = (lambda a: a[keep]) if keep is not None else np.ravel
    src, dst, dE, weight = sel(src), sel(dst), sel(dE), sel(weight)
    disp = None
    if crossed is not None and model.energy_function is not None:
        # Energy at the unwrapped neighbour: exact for tilted periodic potentials.
        disp = _box_disp(steps, keep)
        wrapped = np.flatnonzero(sel(np.broadcast_to(crossed, box)))
        smulti = np.unravel_index(src[wrapped], grid.shape)
        far = [grid.centers[a][smulti[a]] + disp[a, wrapped] for a in range(grid.ndim)]
        dE[wrapped] = model.energy_at(far) - E.ravel()[src[wrapped]]
    delta = dE / T
    # The cells' own δ, when neither a wrap nor a force changed it (links_reversible).
    cell_delta = delta if disp is None and not model.has_force else None
    if model.has_force:
        disp = _box_disp(steps, keep) if disp is None else disp
        smulti = np.unravel_index(src, grid.shape)
        pts = [grid.centers[a][smulti[a]] + 0.5 * disp[a] for a in range(grid.ndim)]
        work = sum(
            np.asarray(model.force_at(a, pts), dtype=float) * disp[a] for a in range(grid.ndim)
        )
        delta = (dE - work) / T
    return OffsetLinks(e, src, dst, weight, delta, tuple(steps), keep, cell_delta=cell_delta)


def links_reversible(model: Model, links) -> bool:
    """Whether the offset links' potential differences derive from the cell energies."""
    if model.has_force:
        return False
    E = model.energy.ravel()
    scale = max(1.0, float(np.max(np.abs(E)))) / model.temperature
    for ln in links:
        if getattr(ln, "cell_delta", None) is ln.delta:
            continue  # δ is the cells' own energy difference, as built
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
        off = np.repeat(ln.offset[:, None], ln.src.size, axis=1)
        start = np.array(np.unravel_index(ln.src, grid.shape))
        for order in (range(d), range(d - 1, -1, -1)):
            cur = start.copy()
            for a in order:
                _walk(grid, out, cur, off[a], a, 0.5 * F)
    return [per_area(grid, a, f) for a, f in enumerate(out)]


def per_area(grid, a: int, flux: np.ndarray) -> np.ndarray:
    """Face fluxes (layout of :meth:`~fpsolver.core.grid.Grid.flux_areas`) per unit area.

    Zero on faces of zero area (a pole, the centre of a disc), which carry no flux.
    """
    return _per_area(flux, grid.flux_areas(a))


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

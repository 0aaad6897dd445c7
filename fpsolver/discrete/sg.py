r"""Scharfetter–Gummel finite-volume discretisation.

For every link between neighbouring cells i → j (centre distance h, face
area A, face mobility K) the flux is

.. math::

    F_{ij} = \frac{T K A}{h}\,\bigl[B(\delta)\,p_i - B(-\delta)\,p_j\bigr],
    \qquad \delta = \frac{E_j - E_i - h\,F^{\rm force}_{\rm face}}{T},
    \qquad B(z) = \frac{z}{e^z - 1},

and :math:`V_i\,\dot p_i = -\sum_j F_{ij}`. Because
:math:`B(-z) = e^{z} B(z)`, the Gibbs density makes every flux vanish
exactly; column sums weighted by V vanish (mass); the off-diagonals are
positive (an M-matrix after implicit stepping); and the discrete free energy
decays. See Scharfetter & Gummel, IEEE Trans. Electron Devices 16 (1969)
64–77, and Heida, Kantner & Stephan, ESAIM: M2AN 55 (2021) 3017–3042 for the
family of such weights.

Absorbing walls add a half-cell link to a wall where p = 0, with δ from the
energy at the wall. All assembly is vectorised: one pass per axis, no loop
over cells. The Bernoulli weights of a link come from one ``expm1``
(:func:`bernoulli_pair`), and L is written directly in CSR form from a
(stencil slot, row) table (:func:`rate_matrix`), with no duplicates to sum.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

if TYPE_CHECKING:
    from ..core.grid import Grid
    from ..core.model import Model

__all__ = [
    "bernoulli",
    "bernoulli_pair",
    "x_over_sinh",
    "AxisLinks",
    "axis_links",
    "wall_links",
    "face_points",
    "all_links",
    "absorbing_walls",
    "generator_matrix",
    "rate_matrix",
    "symmetric_matrix",
    "links_reversible",
    "face_fluxes",
    "wall_fluxes",
    "current_dataset",
]

_SERIES = 1e-2


def bernoulli(z: np.ndarray | float) -> np.ndarray:
    """The Bernoulli function B(z) = z / (e^z − 1), B(0) = 1, overflow-free.

    Evaluated as ``z / expm1(z)`` with a Taylor series near 0, so that
    ``B(-z) == exp(z) * B(z)`` holds to rounding for all z.

    Examples
    --------
    >>> import numpy as np
    >>> bernoulli(np.array([0.0, 1e-9, -800.0, 800.0])).tolist()  # doctest: +ELLIPSIS
    [1.0, 0.9999999995, 800.0, 0.0]
    """
    z = np.asarray(z, dtype=float)
    small = np.abs(z) < _SERIES
    zs = np.where(small, z, 0.0)
    z2 = zs * zs
    series = 1.0 - zs / 2.0 + z2 / 12.0 - z2 * z2 / 720.0 + z2 * z2 * z2 / 30240.0
    zl = np.where(small, 1.0, z)
    with np.errstate(over="ignore"):
        large = zl / np.expm1(zl)
    return np.where(small, series, large)


def bernoulli_pair(z: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """``(B(z), B(−z))`` from one exponential, overflow-free.

    With a = |z|, B(a) = a / expm1(a) (1 at a = 0) and B(−a) = a + B(a),
    a sum of two non-negative terms: both values to a few ulp for every z,
    so ``B(-z) == exp(z) * B(z)`` holds to rounding as for :func:`bernoulli`,
    at about a third of the cost of two :func:`bernoulli` calls.

    Examples
    --------
    >>> import numpy as np
    >>> f, b = bernoulli_pair(np.array([0.0, -800.0, 800.0, 1.5]))
    >>> f.tolist()[:3], b.tolist()[:3]
    ([1.0, 800.0, 0.0], [1.0, 0.0, 800.0])
    >>> bool(np.allclose([f[3], b[3]], bernoulli(np.array([1.5, -1.5])), rtol=1e-15))
    True
    """
    z = np.asarray(z, dtype=float)
    if z.ndim == 0:
        f, b = bernoulli_pair(z.reshape(1))
        return f.reshape(()), b.reshape(())
    a = np.abs(z)
    with np.errstate(over="ignore"):
        b = np.expm1(a)
    zero = a == 0
    np.divide(a, b, out=b, where=~zero)  # B(|z|)
    b[zero] = 1.0
    fwd = np.negative(z)
    np.maximum(fwd, 0.0, out=fwd)
    fwd += b
    bwd = np.maximum(z, 0.0, out=a)  # a is not needed any more
    bwd += b
    return fwd, bwd


def link_rates(ln) -> tuple[np.ndarray, np.ndarray]:
    """``(w B(δ), w B(−δ))`` of every link of a group, in the shape of its ``src``.

    The flux src → dst is F = fwd·p_src − bwd·p_dst.
    """
    fwd, bwd = bernoulli_pair(ln.delta)
    if np.broadcast_shapes(np.shape(ln.weight), fwd.shape) == fwd.shape:
        fwd *= ln.weight
        bwd *= ln.weight
    else:
        fwd, bwd = fwd * ln.weight, bwd * ln.weight
    shape = np.shape(ln.src)
    return np.broadcast_to(fwd, shape), np.broadcast_to(bwd, shape)


def x_over_sinh(x: np.ndarray | float) -> np.ndarray:
    """x / sinh(x), equal to 1 at 0 and to 0 (not NaN) when sinh overflows."""
    x = np.asarray(x, dtype=float)
    small = np.abs(x) < _SERIES
    xs = np.where(small, x, 0.0)
    x2 = xs * xs
    series = 1.0 - x2 / 6.0 + 7.0 * x2 * x2 / 360.0 - 31.0 * x2 * x2 * x2 / 15120.0
    xl = np.where(small, 1.0, x)
    with np.errstate(over="ignore"):
        large = xl / np.sinh(xl)
    return np.where(small, series, large)


@dataclass(frozen=True)
class AxisLinks:
    """The links along one axis.

    ``src`` and ``dst`` are flat cell indices (C order) of the two ends;
    ``weight`` is T K A / h and ``delta`` the reduced potential difference
    from src to dst. All arrays have the grid shape with the axis length
    replaced by the number of links (n − 1 bounded, n periodic).
    """

    axis: int
    src: np.ndarray
    dst: np.ndarray
    weight: np.ndarray
    delta: np.ndarray
    h: np.ndarray

    @cached_property
    def rates(self) -> tuple[np.ndarray, np.ndarray]:
        """``(w B(δ), w B(−δ))``, computed once (:func:`link_rates`)."""
        return link_rates(self)


def face_points(model: Model, axis: int, positions: np.ndarray) -> list[np.ndarray]:
    """Points on the faces normal to `axis` at `positions` (other axes at cell centres)."""
    grid = model.grid
    pts = []
    for b in range(grid.ndim):
        vals = positions if b == axis else grid.centers[b]
        pts.append(grid._along(b, vals))
    return pts


def _ends(a: np.ndarray, axis: int, periodic: bool) -> tuple[np.ndarray, np.ndarray]:
    """The two ends of each link, as slices of a cell array."""
    n = a.shape[axis]
    if periodic:
        return a, np.roll(a, -1, axis=axis)
    return np.take(a, np.arange(n - 1), axis=axis), np.take(a, np.arange(1, n), axis=axis)


def axis_links(model: Model, axis: int) -> AxisLinks:
    """Weights and potential differences of every link along `axis`."""
    grid = model.grid
    T = model.temperature
    per = grid.periodic[axis]
    n = grid.shape[axis]
    idx = np.arange(grid.size).reshape(grid.shape)
    src, dst = _ends(idx, axis, per)
    h = grid._along(axis, grid.center_distances(axis))

    E_src, E_dst = _ends(model.energy, axis, per)
    dE = E_dst - E_src
    if per and model.energy_function is not None:
        # Energy at the unwrapped neighbour across the wrap: exact for tilts.
        pts = face_points(model, axis, grid.centers[axis][:1] + grid.lengths()[axis])
        e_wrap = model.energy_at(pts)
        last = [slice(None)] * grid.ndim
        last[axis] = slice(n - 1, n)
        dE = dE.copy()
        dE[tuple(last)] = e_wrap - model.energy[tuple(last)]

    faces = face_points(model, axis, grid.face_positions(axis))
    force = model.force_at(axis, faces)
    delta = (dE - h * force) / T

    k_face = model.mobility_at(axis, faces)
    if k_face is None:
        k_src, k_dst = _ends(model.mobility_cells()[axis], axis, per)
        k_face = 2.0 * k_src * k_dst / (k_src + k_dst)
    # Face coefficient ∫ √g g^aa (the face area on a flat grid); on a curved
    # grid it varies along the axis too, so it has the links' own shape there.
    weight = T * k_face * grid.link_coefficients(axis) / h
    shape = src.shape
    return AxisLinks(
        axis,
        src,
        dst,
        np.broadcast_to(weight, shape),
        np.broadcast_to(delta, shape),
        np.broadcast_to(h, shape),
    )


def wall_links(model: Model, axis: int, side: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Half-cell links of the absorbing wall on `side` (0 lower, 1 upper).

    Returns ``(cells, weight, delta)``: the flat indices of the cells next
    to the wall, T K A / (h/2), and δ = (E_wall − E_cell − (±h/2)·F)/T.
    The energy at the wall is the callable's value there, or a linear
    extrapolation from the two nearest cell values for array energies.
    """
    grid = model.grid
    T = model.temperature
    n = grid.shape[axis]
    k = 0 if side == 0 else n - 1
    k2 = 1 if side == 0 else n - 2
    wall = grid.edges[axis][0 if side == 0 else -1]
    c = grid.centers[axis]
    half = abs(wall - c[k])
    idx = np.arange(grid.size).reshape(grid.shape)
    cells = np.take(idx, [k], axis=axis)
    e_cell = np.take(model.energy, [k], axis=axis)
    pts = face_points(model, axis, np.array([wall]))
    e_wall = model.energy_at(pts)
    if e_wall is None:
        e_next = np.take(model.energy, [k2], axis=axis)
        e_wall = e_cell + (e_cell - e_next) * half / abs(c[k2] - c[k])
    step = -half if side == 0 else half  # displacement from cell centre to wall
    delta = (e_wall - e_cell - step * model.force_at(axis, pts)) / T
    k_face = model.mobility_at(axis, pts)
    if k_face is None:
        k_face = np.take(model.mobility_cells()[axis], [k], axis=axis)
    weight = T * k_face * grid.wall_coefficients(axis, side) / half
    shape = cells.shape
    return cells, np.broadcast_to(weight, shape), np.broadcast_to(delta, shape)


Wall = tuple  # (axis, side, cells, weight, delta) of one absorbing wall


def all_links(model: Model) -> tuple[AxisLinks, ...]:
    """The links of every axis of `model`'s grid."""
    return tuple(axis_links(model, a) for a in range(model.grid.ndim))


def absorbing_walls(model: Model) -> tuple[Wall, ...]:
    """``(axis, side, cells, weight, delta)`` of every absorbing wall."""
    out = []
    for axis, sides in enumerate(model.boundary.sides):
        for side, kind in enumerate(sides):
            if kind == "absorbing":
                out.append((axis, side, *wall_links(model, axis, side)))
    return tuple(out)


def _diagonal(n: int, vol: np.ndarray, links, walls) -> np.ndarray:
    """Total outflow rate from each cell (times −1), per unit volume."""
    out = np.zeros(n)
    for ln in links:
        out += np.bincount(ln.src.ravel(), (ln.weight * bernoulli(ln.delta)).ravel(), n)
        out += np.bincount(ln.dst.ravel(), (ln.weight * bernoulli(-ln.delta)).ravel(), n)
    for _, _, cells, w, d in walls:
        out += np.bincount(cells.ravel(), (w * bernoulli(d)).ravel(), n)
    return -out / vol


def _offdiagonal(links, volumes: np.ndarray, values) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """COO triplets of both directions of every link.

    ``values(link, V_src, V_dst)`` returns the (src→dst, dst→src) entries.
    """
    rows, cols, vals = [], [], []
    for ln in links:
        a, b = ln.src.ravel(), ln.dst.ravel()
        v_ab, v_ba = values(ln, volumes[a].reshape(ln.src.shape), volumes[b].reshape(ln.dst.shape))
        rows += [a, b]
        cols += [b, a]
        vals += [v_ab.ravel(), v_ba.ravel()]
    return np.concatenate(rows), np.concatenate(cols), np.concatenate(vals)


def _build(n: int, diag: np.ndarray, rows, cols, vals) -> sp.csr_array:
    rows = np.concatenate([rows, np.arange(n)])
    cols = np.concatenate([cols, np.arange(n)])
    vals = np.concatenate([vals, diag])
    return sp.csr_array(sp.coo_array((vals, (rows, cols)), shape=(n, n)))


def generator_matrix(volumes: np.ndarray, links, walls) -> sp.csr_array:
    """The generator L (dp/dt = L p) from the links and absorbing walls.

    Off-diagonals L[i, j] = T K A / h · B(−δ_ij) / V_i ≥ 0; each column's
    V-weighted sum is zero up to the outflow through absorbing walls. The
    Bernoulli weights of each link (:func:`link_rates`) are evaluated once
    and serve both the diagonal and the off-diagonal entries.

    Examples
    --------
    >>> import numpy as np, fpsolver as fp
    >>> g = fp.Grid(x=(0, 1, 5))
    >>> m = fp.Model(g, energy=lambda x: 3 * x, temperature=0.5)
    >>> L = generator_matrix(g.volumes, all_links(m), absorbing_walls(m))
    >>> bool(np.allclose(g.volumes @ L.toarray(), 0, atol=1e-13))
    True
    """
    groups = []
    for ln in links:
        fwd, bwd = ln.rates if hasattr(ln, "rates") else link_rates(ln)
        groups.append((np.ravel(ln.src), np.ravel(ln.dst), fwd.ravel(), bwd.ravel()))
    return rate_matrix(volumes, groups, walls)


def rate_matrix(volumes: np.ndarray, groups, walls=()) -> sp.csr_array:
    """L from link rates: each group ``(src, dst, fwd, bwd)`` carries F = fwd p_src − bwd p_dst.

    L[dst, src] = fwd / V_dst, L[src, dst] = bwd / V_src, and the diagonal
    is minus the total outflow rate of each cell (links and absorbing
    walls) over its volume. Built directly in CSR form (:func:`_slot_csr`)
    when every cell appears at most once as a source and once as a
    destination in each group and no two links join the same pair of
    cells; otherwise by summing COO duplicates.

    Examples
    --------
    >>> import numpy as np
    >>> L = rate_matrix(np.ones(3), [(np.array([0, 1]), np.array([1, 2]),
    ...                              np.array([2.0, 1.0]), np.array([1.0, 3.0]))])
    >>> L.toarray().tolist()
    [[-2.0, 1.0, 0.0], [2.0, -2.0, 3.0], [0.0, 1.0, -3.0]]
    """
    vol = np.asarray(volumes, float).ravel()
    n = vol.size
    out = np.zeros(n)
    for src, dst, fwd, bwd in groups:
        out += np.bincount(src, fwd, n)
        out += np.bincount(dst, bwd, n)
    for _, _, cells, w, d in walls:
        out += np.bincount(cells.ravel(), (w * bernoulli(d)).ravel(), n)
    slots = [(s, t, b) for s, t, _, b in groups] + [(t, s, f) for s, t, f, _ in groups]
    L = _slot_csr(vol, -out, slots)
    if L is not None:
        return L
    rows = [s for s, _, _ in slots]
    cols = [t for _, t, _ in slots]
    vals = [v / vol[r] for r, _, v in slots]
    return _build(n, -out / vol, np.concatenate(rows), np.concatenate(cols), np.concatenate(vals))


def _typical_step(rows: np.ndarray, cols: np.ndarray) -> int:
    """The most common column − row of a slot, from a sample (orders the slots)."""
    if rows.size == 0:
        return 0
    sample = slice(None, None, max(1, rows.size // 64))
    return int(np.median(cols[sample] - rows[sample]))


def _slot_csr(vol: np.ndarray, diag: np.ndarray, slots) -> sp.csr_array | None:
    """CSR of the diagonal and of `slots` ``(rows, cols, rates)``, each row at most once per slot.

    The entries are laid out as a (slot, row) table with the slots ordered
    by their typical column offset, so that every row whose entries all
    have their slot's offset (a structured stencil) is already sorted;
    the other rows (links across a periodic wrap) are sorted on their own.
    Absent entries have column −1. Values are the rates over the row's
    volume. Returns None when a slot repeats a row or a row repeats a
    column (the caller then sums COO duplicates).
    """
    n = vol.size
    steps = [0] + [_typical_step(r, c) for r, c, _ in slots]
    if len(set(steps)) < len(steps):
        return None
    order = np.argsort(steps)
    m = len(steps)
    total = n + sum(r.size for r, _, _ in slots)
    index = np.int32 if total < np.iinfo(np.int32).max else np.int64  # as scipy would pick
    C = np.full((m, n), -1, dtype=index)
    V = np.zeros((m, n))
    bad = None
    for pos, k in enumerate(order):
        if k == 0:
            C[pos], V[pos] = np.arange(n), diag
            continue
        rows, cols, vals = slots[k - 1]
        C[pos, rows] = cols
        V[pos, rows] = vals
        off = cols - rows
        if off.size and not off.min() == off.max() == steps[k]:  # links across a wrap
            bad = np.zeros(n, dtype=bool) if bad is None else bad
            bad[rows[off != steps[k]]] = True
    M = C >= 0
    if np.count_nonzero(M) != total:
        return None
    if bad is not None and not _sort_rows(C, V, M, np.flatnonzero(bad)):
        return None
    V /= vol
    indptr = np.zeros(n + 1, dtype=index)
    np.cumsum(np.count_nonzero(M, axis=0), out=indptr[1:])
    Mt = M.T
    L = sp.csr_array((V.T[Mt], C.T[Mt], indptr), shape=(n, n))
    L.has_sorted_indices = True
    return L


def _sort_rows(C: np.ndarray, V: np.ndarray, M: np.ndarray, rows: np.ndarray) -> bool:
    """Sort the columns of `rows` in the (slot, row) tables; False if a row repeats a column."""
    m = C.shape[0]
    sub_c, sub_v, sub_m = C[:, rows], V[:, rows], M[:, rows]
    key = np.where(sub_m, sub_c, -1 - np.arange(m)[:, None])  # absent entries first, distinct
    perm = np.argsort(key, axis=0, kind="stable")
    if np.any(np.diff(np.take_along_axis(key, perm, axis=0), axis=0) <= 0):
        return False
    C[:, rows] = np.take_along_axis(sub_c, perm, axis=0)
    V[:, rows] = np.take_along_axis(sub_v, perm, axis=0)
    M[:, rows] = np.take_along_axis(sub_m, perm, axis=0)
    return True


def symmetric_matrix(volumes: np.ndarray, links, walls) -> sp.csr_array:
    """The symmetric form S = D L D⁻¹, D = diag(sqrt(V/q)), of a reversible model.

    Off-diagonals are (T K A/h)/sqrt(V_i V_j) · (δ/2)/sinh(δ/2), the
    diagonal is L's: overflow-free for any energy range. S has the same
    spectrum as L and is negative semi-definite. Only meaningful when the
    links are reversible (:func:`links_reversible`).
    """
    vol = np.asarray(volumes, float).ravel()

    def values(ln: AxisLinks, vs: np.ndarray, vd: np.ndarray):
        v = ln.weight * x_over_sinh(0.5 * ln.delta) / np.sqrt(vs * vd)
        return v, v

    n = vol.size
    return _build(n, _diagonal(n, vol, links, walls), *_offdiagonal(links, vol, values))


def links_reversible(model: Model, links) -> bool:
    """Whether the link potential differences derive from cell potentials.

    True when there is no force and, on periodic axes, the potential
    difference across the wrap matches the cell energies (no tilt).
    """
    if model.has_force:
        return False
    grid = model.grid
    scale = max(1.0, float(np.max(np.abs(model.energy)))) / model.temperature
    for ln in links:
        if grid.periodic[ln.axis]:
            e_src, e_dst = _ends(model.energy, ln.axis, True)
            if np.max(np.abs(ln.delta - (e_dst - e_src) / model.temperature)) > 1e-12 * scale:
                return False
    return True


def face_fluxes(grid: Grid, links, walls, p: np.ndarray) -> list[np.ndarray]:
    """Scheme fluxes per unit face area, one array per axis.

    Along a bounded axis the array has n + 1 faces (walls included: zero
    on reflecting walls, the outflow on absorbing ones); along a periodic
    axis n faces, face k between cell k and k + 1 (the last across the
    wrap). Positive values flow towards increasing coordinate.
    """
    p = np.asarray(p, dtype=float).reshape(grid.shape)
    out = []
    for ln in links:
        a = ln.axis
        ps, pd = _ends(p, a, grid.periodic[a])
        flux = ln.weight * (bernoulli(ln.delta) * ps - bernoulli(-ln.delta) * pd)
        flux = _per_area(np.broadcast_to(flux, ps.shape), grid.link_areas(a))
        if not grid.periodic[a]:
            ends = wall_fluxes(grid, walls, p, a)
            flux = np.concatenate([ends[0], flux, ends[1]], axis=a)
        out.append(flux)
    return out


def wall_fluxes(grid: Grid, walls, p: np.ndarray, a: int) -> list[np.ndarray]:
    """The fluxes per unit area through the lower and upper walls of a bounded axis `a`.

    Two arrays with 1 along `a`: zero on reflecting walls, the (signed)
    outflow on absorbing ones.
    """
    p = np.asarray(p, dtype=float).reshape(grid.shape)
    shape = list(grid.shape)
    shape[a] = 1
    ends = [np.zeros(shape), np.zeros(shape)]
    for axis, side, cells, w, d in walls:
        if axis == a:
            pc = p.ravel()[cells.ravel()].reshape(cells.shape)
            sign = -1.0 if side == 0 else 1.0
            wall = _per_area(w * bernoulli(d) * pc, grid.wall_areas(a, side))
            ends[side] = sign * np.broadcast_to(wall, shape)
    return ends


def _per_area(flux: np.ndarray, area: np.ndarray) -> np.ndarray:
    """Flux per unit area; 0 on faces of zero area (they carry no flux)."""
    area = np.broadcast_to(area, flux.shape)
    out = np.zeros(flux.shape)
    np.divide(flux, area, out=out, where=area > 0)
    return out


def current_dataset(grid: Grid, fluxes: list[np.ndarray]):
    """Face fluxes (:func:`face_fluxes`) as an xarray Dataset with face coordinates."""
    import xarray as xr

    data = {}
    for a, (name, flux) in enumerate(zip(grid.names, fluxes)):
        fdim = f"{name}_face"
        dims = tuple(fdim if b == a else n for b, n in enumerate(grid.names))
        pos = grid.face_positions(a) if grid.periodic[a] else np.array(grid.edges[a])
        coords = {n: grid.centers[b] for b, n in enumerate(grid.names) if b != a}
        coords[fdim] = pos
        data[f"J_{name}"] = xr.DataArray(
            flux,
            dims=dims,
            coords=coords,
            attrs={"long_name": f"probability current along {name}", "units": "1/(area*time)"},
        )
    return xr.Dataset(data)

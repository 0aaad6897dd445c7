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
(vertices in 2-D): T times the mean of A^{ab} and the *harmonic* mean of q
over the four cells around the edge, times the cell widths along the other
axes. Any mean is a second-order edge value of a smooth q; the harmonic one
is at most four times the smallest of the four q, so β/q_i stays of order
T|A| next to every cell even where the grid does not resolve q (in the
tails of a steep energy q changes by orders of magnitude per cell, and
an arithmetic mean gave coefficients β/q_i up to 10⁵ times larger there:
the implicit systems became badly conditioned — three times more
BiCGStab iterations on ``benchmarks/tensor.py`` at 32³ — for no accuracy
where the density is negligible anyway). The flux of B
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

**Assembly.** F^A_ij = out_i p_i − in_j p_j has the form of a link flux,
so :func:`merged_rates` adds its coefficients to the rates of the
symmetric part's link along e_a (a link is added where S has none): L
gets one entry per link and direction, and on a hybrid face the combined
coefficients are exactly abs(β)/2 ± β/2, the vanishing one exactly zero.
Ψ^{ab}/q on each edge is computed once per pair of axes and shared by the
faces around it.

**Curved grids.** On a grid with a metric (cell volumes ∫√g, p a density
per unit measure) the same construction holds in coordinates with
Ψ^{ab} = T √g A^{ab} q, A^{ab} = A^{ab}_frame/(h_a h_b) the coordinate
components of the frame components a user gives: the cell value of A is
weighted by √g/(h_a h_b) (1 in 2-D). A bounded wall whose faces all have
zero area (the centre of a disc, a pole of the sphere) is one point: its
edges get the single value Ψ = T mean(A) H(q) over the ring of cells
around it instead of the zero of a wall, which keeps the transport around
the point second order (with zero there the cells next to the pole
converge at order ≈ 1.5). Their faces have zero area, so no flux crosses
the point.

Tilted periodic energies and forces are not supported together with A
(no Gibbs reference u = p/q): such models are refused.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .selling import _at_dst, _at_src, _index_dtype, per_area

if TYPE_CHECKING:
    from ..core.model import Model

__all__ = ["face_coefficients", "merged_rates", "antisymmetric_fluxes"]


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
    log_q = np.asarray(log_q, dtype=float).reshape(grid.shape)
    # q(i ± e_c) / q(i): local ratios, never overflowing; every other ratio is a product.
    up = [np.exp(np.roll(log_q, -1, axis=c) - log_q) for c in range(d)]
    down = [np.exp(np.roll(log_q, 1, axis=c) - log_q) for c in range(d)]
    beta = _beta_over_q(model, up, down, log_q)
    idx = np.arange(grid.size, dtype=_index_dtype(grid.size)).reshape(grid.shape)
    out = []
    for a in range(d):
        e = np.zeros(d, dtype=np.int64)
        e[a] = 1
        i, j, c_i, c_j = _face_links(grid, links, a, idx, e)
        r_i = np.array(_at_src(beta[a], grid, e)).ravel()  # β / q_i, a new array
        r_j = np.reciprocal(_at_src(up[a], grid, e))  # q_i / q_j, a new C-ordered array
        r_j = np.multiply(r_i, r_j.ravel(), out=r_j.ravel())  # β / q_j
        out.append(_coefficients(i, j, r_i, r_j, c_i, c_j))
    return out


def _beta_over_q(model: Model, up: list, down: list, log_q: np.ndarray) -> list[np.ndarray]:
    """β / q_i on the faces normal to each axis a (cell i lower, j = i + e_a), as cell arrays.

    Ψ^{ab}/q on the edge whose lowest cell is c (cells c, c + e_a, c + e_b,
    c + e_a + e_b) is computed once per pair a < b; the face normal to a
    takes [Ψ^{ab}]_{b−}^{b+} and the face normal to b takes −[Ψ^{ab}]_{a−}^{a+}
    from the same edges. ``up[c]``/``down[c]`` are q(i ± e_c)/q(i). On a
    curved grid A is weighted by √g/(h_a h_b) and the edges at a pole or
    centre take the value there (module notes).
    """
    grid = model.grid
    d, T = grid.ndim, model.temperature
    K = model.mobility_tensor()
    beta = [np.zeros(grid.shape) for _ in range(d)]
    for a in range(d):
        for b in range(a + 1, d):
            Aab = 0.5 * (K[a, b] - K[b, a])
            if not np.any(Aab != 0):
                continue
            Aab = np.broadcast_to(Aab * _frame_weight(grid, a, b), grid.shape)
            psi = _edge_psi(grid, Aab, up, a, b)
            psi *= 0.25 * T
            points = _degenerate_walls(grid, (a, b))
            for c, side in points:
                if side == 1:  # the edges beyond the last cells: Ψ at the pole
                    psi[_slab(grid, c, -1)] = _pole_over_q(Aab, log_q, c, -1, T)
            # beta[a] += psi − lower_b(psi)·down[b]; beta[b] += lower_a(psi)·down[a] − psi
            low = _lower(psi, grid, b)
            low *= down[b]
            beta[a] += np.subtract(psi, low, out=low)
            low = _lower(psi, grid, a)
            low *= down[a]
            low -= psi
            beta[b] += low
            for c, side in points:
                if side == 0:  # the edges before the first cells
                    pole = _pole_over_q(Aab, log_q, c, 0, T)
                    if c == b:
                        beta[a][_slab(grid, c, 0)] -= pole
                    else:
                        beta[b][_slab(grid, c, 0)] += pole
    return beta


def _frame_weight(grid, a: int, b: int) -> np.ndarray | float:
    """√g / (h_a h_b) on the cells: A's frame components to the Ψ of the scheme (1 when flat)."""
    if not grid.curved or grid.ndim == 2:  # in 2-D √g = h_a h_b
        return 1.0
    scale = grid.geometry.scale
    if scale is None:
        raise NotImplementedError(
            "an antisymmetric mobility needs the scale factors of the grid's metric; a "
            "curvilinear grid read back from attributes has only its cell measures"
        )
    hs = scale(list(grid.mesh()))
    out = np.ones(grid.shape)
    for c in range(grid.ndim):
        if c not in (a, b):
            out = out * np.broadcast_to(hs[c], grid.shape)
    return out


def _degenerate_walls(grid, axes) -> list[tuple[int, int]]:
    """(axis, side) of the bounded walls of `axes` whose faces all have zero area.

    Such a wall is a point (the centre of a disc, a pole of the sphere): its
    edges are one point, so Ψ there has one value, not the wall's zero.
    """
    out = []
    if not grid.curved:
        return out
    for c in axes:
        if grid.periodic[c]:
            continue
        area = np.broadcast_to(
            grid.face_areas(c), grid.shape[:c] + (grid.shape[c] + 1,) + grid.shape[c + 1 :]
        )
        for side, k in ((0, 0), (1, grid.shape[c])):
            if np.all(np.take(area, k, axis=c) == 0):
                if grid.ndim != 2:
                    raise NotImplementedError(
                        "an antisymmetric mobility on a 3-D grid with a degenerate wall (a "
                        f"collapsed face along axis {grid.names[c]!r}) is not supported"
                    )
                out.append((c, side))
    return out


def _slab(grid, c: int, k: int) -> tuple:
    """Index of the slab k along axis c."""
    sl: list = [slice(None)] * grid.ndim
    sl[c] = k
    return tuple(sl)


def _pole_over_q(Aab: np.ndarray, log_q: np.ndarray, c: int, k: int, T: float) -> np.ndarray:
    """Ψ/q_i on the ring of cells at slab k of axis c next to a pole (2-D grids).

    Ψ at the pole is T · mean(A) · H(q) over the ring, H the harmonic mean
    (as on every other edge), computed in logarithms.
    """
    ring = np.take(log_q, k, axis=c)
    low = float(np.min(-ring))
    log_h = np.log(ring.size) - (low + np.log(np.sum(np.exp(-ring - low))))
    return T * float(np.mean(np.take(Aab, k, axis=c))) * np.exp(log_h - ring)


def _edge_psi(grid, Aab: np.ndarray, up: list, a: int, b: int) -> np.ndarray:
    """4 · mean(A^{ab}) · H(q) / q_c on the edge with lowest cell c, times widths.

    H is the harmonic mean of q over the four cells around the edge (module
    notes); zero on the edges of a bounded wall (one of the four cells outside).
    """
    r_a, r_b = up[a], up[b]
    r_ab = np.roll(r_b, -1, axis=a)
    r_ab *= r_a  # q(c + e_a + e_b) / q(c)
    with np.errstate(divide="ignore"):
        # 1 + 1/r_a + 1/r_b + 1/r_ab = 4 q_c / H(q), summed in that order, in place
        inverse = np.reciprocal(r_a)
        inverse += 1.0
        tmp = np.reciprocal(r_b)
        inverse += tmp
        inverse += np.reciprocal(r_ab, out=tmp)
    first = Aab.flat[0]
    if np.all(Aab == first):
        mean = first
    else:
        A_a = np.roll(Aab, -1, axis=a)
        mean = 0.25 * (Aab + A_a + np.roll(Aab, -1, axis=b) + np.roll(A_a, -1, axis=b))
    psi = np.divide(16.0 * mean, inverse, out=inverse)
    for c in range(grid.ndim):
        if c not in (a, b):
            psi *= grid._along(c, grid.widths[c])
    for c in (a, b):
        if not grid.periodic[c]:
            last = [slice(None)] * grid.ndim
            last[c] = slice(-1, None)
            psi[tuple(last)] = 0.0
    return psi


def _lower(psi: np.ndarray, grid, c: int) -> np.ndarray:
    """``psi`` at cell − e_c (wrapped if periodic, zero beyond a bounded wall)."""
    out = np.roll(psi, 1, axis=c)
    if not grid.periodic[c]:
        first = [slice(None)] * grid.ndim
        first[c] = slice(0, 1)
        out[tuple(first)] = 0.0
    return out


def _coefficients(i, j, b_i, b_j, c_i, c_j) -> dict:
    """F_ij = out_i p_i − in_j p_j, with the hybrid switch (module notes).

    The total coefficients of the face (symmetric part's c included) are
    ``fwd`` = c_i + β_i/2 and ``bwd`` = c_j − β_j/2, and on a hybrid face
    exactly abs(β)/2 ± β/2 (max(c, abs(β)/2) ± β/2 with c ≤ abs(β)/2), the
    vanishing one exactly zero; ``out_i``, ``in_j`` are these minus c.
    """
    # b_i, b_j are the caller's temporaries: scaled in place (few full-size arrays);
    # hybrid faces get their values by masked copies (often all or half of an axis).
    half_i = np.multiply(b_i, 0.5, out=b_i)
    half_j = np.multiply(b_j, 0.5, out=b_j)
    upwind, fwd = np.abs(half_i), np.multiply(c_i, 1.0 - 1e-12)
    hybrid = upwind >= fwd
    fwd = np.add(c_i, half_i, out=fwd)
    bwd = np.subtract(c_j, half_j)
    out_i, in_j = half_i, np.negative(half_j)
    if hybrid.any():
        np.copyto(fwd, np.add(upwind, half_i, out=upwind), where=hybrid)  # abs(β)/2 + β/2
        upwind = np.abs(half_j)
        np.copyto(bwd, np.subtract(upwind, half_j, out=upwind), where=hybrid)  # abs(β)/2 − β/2
        out_i = np.where(hybrid, np.subtract(fwd, c_i, out=upwind), half_i)
        in_j = np.where(hybrid, np.subtract(bwd, c_j, out=half_j), in_j)
    return dict(i=i, j=j, out_i=out_i, in_j=in_j, hybrid=hybrid, fwd=fwd, bwd=bwd)


def _unit_offset_axis(ln) -> int | None:
    """The axis a of a link group along the unit offset e_a, else None."""
    nz = np.flatnonzero(ln.offset)
    if nz.size == 1 and ln.offset[nz[0]] == 1:
        return int(nz[0])
    return None


def _face_links(grid, links, a: int, idx: np.ndarray, e: np.ndarray) -> tuple:
    """The faces i → i + e_a (flat ``i``, ``j``) and c/q_i = w B(δ), c/q_j = w B(−δ) on them.

    The conductances are exactly the rates the symmetric part puts into L
    (``ln.rates`` of its links along e_a; at most one such link per cell),
    zero on faces where the symmetric part has none. When it has a link on
    every face, in the same order, its index arrays are shared.
    """
    box = _at_src(idx, grid, e)
    for ln in links:  # Selling links (a model with A is a tensor model)
        if _unit_offset_axis(ln) != a:
            continue
        fwd, back = (np.ravel(r) for r in ln.rates)
        if ln.src.size == box.size and np.array_equal(ln.src.reshape(box.shape), box):
            return ln.src, ln.dst, fwd, back
        i, j = box.ravel(), _at_dst(idx, grid, e).ravel()
        dense_f, dense_b = np.zeros(grid.size), np.zeros(grid.size)
        dense_f[ln.src], dense_b[ln.src] = fwd, back
        return i, j, dense_f[i], dense_b[i]
    i, j = box.ravel(), _at_dst(idx, grid, e).ravel()
    return i, j, np.zeros(i.size), np.zeros(i.size)


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
        out.append(per_area(grid, a, arr))
    return out

r"""Visible and hidden variables: conditional Gibbs densities and free energies.

A model on a grid whose axes split into visible ones v and hidden ones h
(energy E(v, h), temperature T) defines, for every fixed v, the
conditional Gibbs density on the hidden axes and its partition function

.. math::

    q(h \mid v) = \frac{e^{-E(v,h)/T}}{Z(v)}, \qquad
    Z(v) = \sum_h V_h\, e^{-E(v,h)/T},

and, for any density p on the hidden axes (Σ V_h p = 1), the conditional
free energy

.. math::

    F[p \mid v] = T\,\mathrm{KL}(p \,\|\, q(\cdot\mid v)) - T \ln Z(v)
                = \langle E(v,\cdot)\rangle_p - T H[p],

with the same discrete sums (the cell volumes V_h of the hidden axes) as
the rest of the library, so the identities hold to rounding:

* ln Z = ln Σ_v V_v Z(v) over the visible cells (Z the full model's);
* the visible marginal of the full Gibbs density is m(v) = Z(v)/Z and
  q(v, h) = m(v) q(h | v);
* a density p(v, h) = m_p(v) p(h | v) has
  F[p] = Σ_v V_v m_p(v) (F[p(· ∣ v) | v] + T ln m_p(v)).

**Where v lies between cells.** The grid holds E at cell centres. A visible
value between two centres gets the energy interpolated *linearly* between
the two neighbouring cell layers (multilinearly when several axes are
visible); at a cell centre this is the cell value exactly. Between the
outermost centre and the wall the outermost layer is used; periodic axes
interpolate across the wrap; a value outside the grid is an error.

**A data set of v.** Given samples v_1 … v_n, every quantity is computed
per sample; the free energy of one density p is the average
(1/n) Σ_i F[p | v_i] = Σ V_h p (Ē + T ln p) with Ē = (1/n) Σ_i E(v_i, ·)
(the free energy is linear in the energy).

The public entry point is :func:`fpsolver.condition`
(:mod:`fpsolver.api.latent`), which wraps a :class:`Conditioning` into a
model on the hidden axes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import logsumexp

from ..core import diagnostics as dg
from ..core.boundary import Boundary
from ..core.grid import Grid, cell_array, require_flat
from ..core.model import Model

__all__ = [
    "Conditioning",
    "conditioning",
    "split_axes",
    "visible_samples",
    "restrict",
    "marginal_log_partition",
]


def split_axes(grid: Grid, visible: Sequence[str]) -> tuple[list[int], list[int], Grid]:
    """The visible and hidden axis indices of `grid`, and the grid of the hidden axes.

    Parameters
    ----------
    grid : Grid
    visible : sequence of str
        Names of the visible axes (at least one; at least one axis must stay hidden).

    Returns
    -------
    visible_axes, hidden_axes : list of int
        Axis indices, in the grid's order.
    hidden : Grid
        The hidden axes with their edges and periodic flags.

    Examples
    --------
    >>> from fpsolver.core.grid import Grid
    >>> g = Grid(v=(-2, 2, 8), h=(-3, 3, 12))
    >>> va, ha, hg = split_axes(g, ["v"])
    >>> va, ha, hg.names, hg.shape
    ([0], [1], ('h',), (12,))
    """
    names = _visible_names(grid, visible)
    vis = [grid.axis(n) for n in grid.names if n in names]
    hid = [a for a in range(grid.ndim) if a not in vis]
    if not hid:
        raise ValueError(
            f"`visible` names every axis of the grid {list(grid.names)}; at least one axis "
            "must stay hidden (to fit a fully visible model pass no hidden axes to "
            "recall_and_learn instead)"
        )
    periodic = [grid.names[a] for a in hid if grid.periodic[a]]
    hidden = Grid(periodic=periodic, **{grid.names[a]: np.array(grid.edges[a]) for a in hid})
    return vis, hid, hidden


def _visible_names(grid: Grid, visible: Sequence[str]) -> list[str]:
    if isinstance(visible, str):
        visible = [visible]
    names = list(visible)
    if not names:
        raise ValueError("`visible` must name at least one axis of the grid")
    unknown = [n for n in names if n not in grid.names]
    if unknown:
        raise ValueError(f"`visible` names unknown axes {unknown}; the axes are {list(grid.names)}")
    if len(set(names)) != len(names):
        raise ValueError(f"`visible` names an axis twice: {names}")
    return names


def visible_samples(grid: Grid, visible: Any, names: Sequence[str] | None = None) -> np.ndarray:
    """The visible values as an array of shape ``(n, n_visible)``, checked against the grid.

    Parameters
    ----------
    grid : Grid
    visible : mapping or array
        ``{axis: value or 1-D array of samples}`` (one entry per visible
        axis; arrays of one length), or, with `names`, an array of shape
        ``(n,)`` (one visible axis) or ``(n, len(names))``.
    names : sequence of str, optional
        The visible axes, in the grid's order, when `visible` is an array.

    Returns
    -------
    ndarray
        One row per sample, the visible axes in the grid's order.

    Examples
    --------
    >>> from fpsolver.core.grid import Grid
    >>> g = Grid(v=(-2, 2, 8), h=(-3, 3, 12))
    >>> visible_samples(g, {"v": 0.7}).tolist()
    [[0.7]]
    >>> visible_samples(g, [0.1, -0.4], names=["v"]).shape
    (2, 1)
    """
    if isinstance(visible, Mapping):
        names = [n for n in grid.names if n in _visible_names(grid, list(visible))]
        cols = [np.atleast_1d(np.asarray(visible[n], dtype=float)) for n in names]
        if any(c.ndim != 1 for c in cols):
            raise ValueError("`visible` values must be numbers or 1-D arrays of samples")
        try:
            samples = np.stack(np.broadcast_arrays(*cols), axis=1)
        except ValueError:
            sizes = {n: c.size for n, c in zip(names, cols)}
            raise ValueError(f"`visible` arrays must have one length, got {sizes}") from None
    else:
        if names is None:
            raise TypeError("`visible` must be a mapping {axis: value(s)} when no names are given")
        names = [n for n in grid.names if n in _visible_names(grid, names)]
        samples = np.asarray(visible, dtype=float)
        if samples.ndim <= 1 and len(names) == 1:
            samples = samples.reshape(-1, 1)
        if samples.ndim != 2 or samples.shape[1] != len(names):
            raise ValueError(
                f"the visible data must have shape (n, {len(names)}) for the axes {names}, "
                f"got shape {samples.shape}"
            )
    if samples.shape[0] == 0:
        raise ValueError("the visible data are empty: give at least one sample")
    _check_inside(grid, names, samples)
    return samples


def _check_inside(grid: Grid, names: Sequence[str], samples: np.ndarray) -> None:
    if not np.all(np.isfinite(samples)):
        raise ValueError("the visible values must be finite")
    for j, n in enumerate(names):
        a = grid.axis(n)
        lo, hi = float(grid.edges[a][0]), float(grid.edges[a][-1])
        x = samples[:, j]
        if not grid.periodic[a] and (np.any(x < lo) or np.any(x > hi)):
            raise ValueError(
                f"visible values on axis {n!r} must lie in the grid [{lo:g}, {hi:g}]; "
                f"got values in [{x.min():g}, {x.max():g}]"
            )


def _weights(grid: Grid, axis: int, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Neighbouring layers i0, i1 and the weight w of i1 for linear interpolation."""
    c = grid.centers[axis]
    n = c.size
    if grid.periodic[axis]:
        length = grid.lengths()[axis]
        u = np.mod(x - c[0], length)
        ext = np.append(c - c[0], length)
        i = np.clip(np.searchsorted(ext, u, side="right") - 1, 0, n - 1)
        w = np.clip((u - ext[i]) / (ext[i + 1] - ext[i]), 0.0, 1.0)
        return i, (i + 1) % n, w
    i = np.clip(np.searchsorted(c, x, side="right") - 1, 0, n - 2)
    w = np.clip((x - c[i]) / (c[i + 1] - c[i]), 0.0, 1.0)
    return i, i + 1, w


def restrict(grid: Grid, field: np.ndarray, vis_axes: Sequence[int], samples: np.ndarray):
    """Cell values of `field` on the hidden axes at each visible sample.

    Linear interpolation between the two neighbouring cell layers along
    every visible axis (see the module notes): exact at cell centres.

    Parameters
    ----------
    grid : Grid
    field : ndarray
        Cell values, shape ``(..., *grid.shape)`` (leading axes are kept).
    vis_axes : sequence of int
        The visible axes, in the grid's order.
    samples : ndarray
        Shape ``(n, len(vis_axes))``.

    Returns
    -------
    ndarray
        Shape ``(..., n, *hidden_shape)``.

    Examples
    --------
    >>> import numpy as np
    >>> from fpsolver.core.grid import Grid
    >>> g = Grid(v=(0, 4, 4), h=(0, 1, 2))         # v centres 0.5, 1.5, 2.5, 3.5
    >>> E = np.array([[0.0, 1.0], [2.0, 3.0], [4.0, 5.0], [6.0, 7.0]])
    >>> restrict(g, E, [0], np.array([[1.5], [2.0], [0.1]])).tolist()
    [[2.0, 3.0], [3.0, 4.0], [0.0, 1.0]]
    """
    field = np.asarray(field, dtype=float)
    lead = field.ndim - grid.ndim
    nd = grid.ndim
    hid = [a for a in range(nd) if a not in vis_axes]
    order = list(range(lead)) + [lead + a for a in vis_axes] + [lead + a for a in hid]
    f = np.transpose(field, order)  # (..., v axes..., hidden axes...)
    parts = [_weights(grid, a, samples[:, j]) for j, a in enumerate(vis_axes)]
    m = samples.shape[0]
    out = 0.0
    for corner in range(2 ** len(vis_axes)):
        idx = []
        wt = np.ones(m)
        for j, (i0, i1, w) in enumerate(parts):
            up = (corner >> j) & 1
            idx.append(i1 if up else i0)
            wt = wt * (w if up else 1.0 - w)
        take = f[(slice(None),) * lead + tuple(idx)]  # (..., n, hidden...)
        out = out + take * wt.reshape((m,) + (1,) * len(hid))
    return np.asarray(out)


@dataclass(frozen=True)
class Conditioning:
    """A model conditioned on visible values: the pure numbers of q(h | v_i).

    Attributes
    ----------
    grid : Grid
        The hidden axes.
    names : tuple of str
        The visible axes.
    samples : ndarray
        Visible values, shape ``(n, len(names))``.
    energies : ndarray
        E(v_i, ·) on the hidden cells, shape ``(n, *grid.shape)``.
    temperature : float

    Examples
    --------
    >>> from fpsolver.core.grid import Grid
    >>> from fpsolver.core.model import Model
    >>> g = Grid(v=(-3, 3, 30), h=(-4, 4, 40))
    >>> m = Model(g, energy=lambda v, h: 0.5 * (h - v) ** 2 + 0.5 * v**2)
    >>> c = conditioning(m, {"v": 0.7})
    >>> c.energies.shape, c.log_partition().shape
    ((1, 40), (1,))
    """

    grid: Grid
    names: tuple[str, ...]
    samples: np.ndarray
    energies: np.ndarray
    temperature: float

    @property
    def mean_energy_field(self) -> np.ndarray:
        """Ē = (1/n) Σ_i E(v_i, ·) on the hidden cells: the energy of the averaged free energy."""
        return self.energies.mean(axis=0)

    def log_partition(self) -> np.ndarray:
        """ln Z(v_i) = ln Σ_h V_h exp(−E(v_i, h)/T) per sample (log-sum-exp), shape ``(n,)``."""
        axes = tuple(range(1, self.energies.ndim))
        return logsumexp(-self.energies / self.temperature, axis=axes, b=self.grid.volumes)

    def log_posterior(self) -> np.ndarray:
        """ln q(h | v_i) on the hidden cells, shape ``(n, *grid.shape)``; Σ_h V_h q = 1."""
        lz = self.log_partition().reshape((-1,) + (1,) * self.grid.ndim)
        return -self.energies / self.temperature - lz

    def free_energies(self, p: np.ndarray) -> np.ndarray:
        """F[p | v_i] = Σ_h V_h p (E(v_i, ·) + T ln p) for each sample, shape ``(n,)``."""
        p = _density(self.grid, p)
        return np.array(
            [dg.free_energy(self.grid.volumes, e, self.temperature, p) for e in self.energies]
        )

    def free_energy(self, p: np.ndarray) -> float:
        """The sample average (1/n) Σ_i F[p | v_i] (one number; = F of p under Ē)."""
        return float(self.free_energies(p).mean())

    def relative_entropies(self, p: np.ndarray) -> np.ndarray:
        """KL(p ‖ q(· ∣ v_i)) per sample, computed directly (not from F)."""
        p = _density(self.grid, p)
        return np.array(
            [dg.relative_entropy(self.grid.volumes, lq, p) for lq in self.log_posterior()]
        )

    def expectations(self, field: np.ndarray) -> np.ndarray:
        """⟨f(v_i, ·)⟩_{q(· ∣ v_i)} per sample for hidden-cell values ``field`` of shape
        ``(..., n, *grid.shape)``; returns shape ``(..., n)``."""
        w = np.exp(self.log_posterior()) * self.grid.volumes
        axes = tuple(range(-self.grid.ndim, 0))
        return np.sum(np.asarray(field) * w, axis=axes)


def _density(grid: Grid, p: Any) -> np.ndarray:
    arr = cell_array(grid, p, "p")
    if np.any(arr < 0):
        raise ValueError(f"`p` must be non-negative; min is {arr.min():g}")
    return arr


def conditioning(model: Model, visible: Any, names: Sequence[str] | None = None) -> Conditioning:
    """Condition `model` on visible values (see the module notes).

    Parameters
    ----------
    model : Model or FokkerPlanck
        A gradient model (no force) on a grid whose axes include the visible ones.
    visible : mapping or array
        ``{axis: value}`` for one point, ``{axis: array}`` for a data set of
        samples, or an array with `names` (see :func:`visible_samples`).
    names : sequence of str, optional
        The visible axes when `visible` is an array.

    Returns
    -------
    Conditioning

    Examples
    --------
    >>> import numpy as np
    >>> from fpsolver.core.grid import Grid
    >>> from fpsolver.core.model import Model
    >>> g = Grid(v=(-3, 3, 30), h=(-4, 4, 40))
    >>> m = Model(g, energy=lambda v, h: 0.5 * (h - v) ** 2 + 0.5 * v**2)
    >>> c = conditioning(m, {"v": g.centers[0][20]})     # at a cell centre: the cell layer
    >>> bool(np.array_equal(c.energies[0], m.energy[20]))
    True
    """
    if not isinstance(model, Model):
        raise TypeError(f"`model` must be an fpsolver.FokkerPlanck, got {type(model).__name__}")
    require_flat(model.grid, "conditioning (marginals over Cartesian cells)")
    if model.has_force:
        raise ValueError(
            "`model` has a non-conservative force: its stationary density is not "
            "exp(-E/T)/Z, so there is no conditional Gibbs density to build; condition a "
            "gradient model (energy only)"
        )
    grid = model.grid
    keys = list(visible) if isinstance(visible, Mapping) else list(names or [])
    vis, _, hidden = split_axes(grid, keys)
    samples = visible_samples(grid, visible, names)
    energies = restrict(grid, model.energy, vis, samples)
    return Conditioning(
        hidden, tuple(grid.names[a] for a in vis), samples, energies, model.temperature
    )


def hidden_mobility(model: Model, cond: Conditioning) -> np.ndarray:
    """Mobility of the hidden axes for the conditional model, shape ``(n_hidden, *hidden.shape)``.

    The hidden components of the model's cell mobility, interpolated like
    the energy and averaged over the samples (the equilibrium and the free
    energies do not depend on it; only the conditional dynamics does).
    """
    grid = model.grid
    vis = [grid.axis(n) for n in cond.names]
    hid = [a for a in range(grid.ndim) if a not in vis]
    cells = model.mobility_cells()[hid]
    return restrict(grid, cells, vis, cond.samples).mean(axis=1)


def hidden_boundary(model: Model, cond: Conditioning) -> Boundary:
    """The model's wall conditions on the hidden axes."""
    hid = [model.grid.axis(n) for n in cond.grid.names]
    return Boundary(tuple(model.boundary.sides[a] for a in hid))


def marginal_log_partition(model: Model, names: Sequence[str]) -> np.ndarray:
    """ln Z(v) on every visible cell (shape of the visible axes).

    Σ_v V_v Z(v) = Z, so ``logsumexp(result, b=V_v)`` is the model's ln Z_h,
    and the visible marginal of the Gibbs density is m(v) = Z(v)/Z.

    Examples
    --------
    >>> import numpy as np
    >>> from scipy.special import logsumexp
    >>> from fpsolver.core.grid import Grid
    >>> from fpsolver.core.model import Model
    >>> from fpsolver.core.diagnostics import log_partition
    >>> g = Grid(v=(-3, 3, 30), h=(-4, 4, 40))
    >>> m = Model(g, energy=lambda v, h: 0.5 * (h - v) ** 2 + 0.5 * v**2)
    >>> lz_v = marginal_log_partition(m, ["v"])
    >>> bool(abs(logsumexp(lz_v, b=g.widths[0]) - log_partition(m.energy, 1.0, g.volumes)) < 1e-13)
    True
    """
    grid = model.grid
    vis, hid, hidden = split_axes(grid, names)
    e = np.transpose(model.energy, vis + hid)
    axes = tuple(range(len(vis), grid.ndim))
    return logsumexp(-e / model.temperature, axis=axes, b=hidden.volumes)

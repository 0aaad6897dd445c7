r"""The generator L(t) of a time-dependent model, re-assembled without symbolic work.

The sparsity pattern of L does not change in time: only the link weights
T K A / h and the potential differences δ do. :class:`TimeDependentGenerator`
builds the pattern once (in CSC order, the order the sparse LU wants), keeps
for every link end and every diagonal entry its position in ``data``, and at
each needed time recomputes only the values and scatters them:

- when only the energy and the temperature depend on t (the common case:
  a dragged trap, a ramped temperature, a switched potential), the
  geometric part K A / h and the force term h·F of every link are kept from
  t0, and each time costs one evaluation of E on the cells (plus the wrap
  and wall points that need it), one Bernoulli function on |δ| (the other
  direction follows from B(−z) = B(z) + z, no cancellation) and one scatter;
- when the mobility or the force depend on t, the links are rebuilt with
  :func:`fpsolver.discrete.sg.all_links` on the frozen model
  ``model.at(t)``, and scattered the same way.

The values are those of :func:`fpsolver.discrete.sg.generator_matrix` on
``model.at(t)`` (to rounding), so mass, positivity and the exact Gibbs
state of the frozen model hold at every time. Frozen models never come
here: their operator and factorisations are untouched.

:func:`entropy_production` and :func:`heat_rate` evaluate the scheme's own
link fluxes of a density at one time (Seifert, Rep. Prog. Phys. 75 (2012)
126001, eq. (49) for the master-equation form Σ J ln(k⁺p/k⁻p)).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from ..core.protocol import TimeDependentModel
from . import sg

__all__ = ["TimeDependentGenerator", "Snapshot", "entropy_production", "heat_rate"]


@dataclass(frozen=True)
class Snapshot:
    """The discretisation at one time: L (CSC), the cell energies, T and the link rates.

    ``src``, ``dst`` (flat cell indices), ``forward`` = w B(δ) and
    ``backward`` = w B(−δ) of every interior link, so the flux of density
    p from src to dst is ``forward * p[src] - backward * p[dst]``;
    ``wall_cells``, ``wall_rate`` the outflow rates through absorbing walls.
    """

    t: float
    L: sp.csc_array
    energy: np.ndarray
    temperature: float
    src: np.ndarray
    dst: np.ndarray
    forward: np.ndarray
    backward: np.ndarray
    wall_cells: np.ndarray
    wall_rate: np.ndarray


def _rates(delta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(B(δ), B(−δ)) from one expm1 on |δ|, with B(−z) = B(z) + z.

    The same formula as :func:`fpsolver.discrete.sg.bernoulli` (z/expm1(z),
    its Taylor series below 1e-2), evaluated in place on |δ| only: one
    transcendental per link instead of two, no cancellation.
    """
    a = np.abs(delta)
    small = np.empty_like(a)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        np.expm1(a, out=small)
        np.divide(a, small, out=small)
    near = np.flatnonzero(a < sg._SERIES)
    if near.size:
        small[near] = sg.bernoulli(a[near])
    large = small + a
    pos = delta > 0
    return np.where(pos, small, large), np.where(pos, large, small)


class TimeDependentGenerator:
    """L(t) of a :class:`~fpsolver.core.protocol.TimeDependentModel`, by re-scattering values.

    Parameters
    ----------
    model : TimeDependentModel
    cache : int
        How many recent times to keep (steppers ask for the same time twice).

    Examples
    --------
    >>> import numpy as np, fpsolver as fp
    >>> g = fp.Grid(x=(-3, 3, 30))
    >>> m = fp.FokkerPlanck(g, energy=lambda x, t: 0.5 * (x - t) ** 2)
    >>> gen = TimeDependentGenerator(m)
    >>> L1 = gen(1.0).L
    >>> ref = m.at(1.0).generator()
    >>> bool(abs(L1 - ref).max() < 1e-12), gen.fast
    (True, True)
    """

    def __init__(self, model: TimeDependentModel, cache: int = 6) -> None:
        if not isinstance(model, TimeDependentModel):
            raise TypeError(f"`model` must be a time-dependent model, got {type(model).__name__}")
        self.model = model
        self.grid = model.grid
        self.volumes = np.asarray(self.grid.volumes, float).ravel()
        #: True when only the energy and the temperature change (the fast path).
        self.fast = not ({"mobility", "force"} & model.depends)
        self._cache: OrderedDict[float, Snapshot] = OrderedDict()
        self._size = int(cache)
        self.assemblies = 0
        m0 = model.at(model.t0)
        self._setup_pattern(sg.all_links(m0))
        if self.fast:
            self._setup_fast(m0)

    # -- the pattern, once ---------------------------------------------------
    def _setup_pattern(self, links: tuple[sg.AxisLinks, ...]) -> None:
        n = self.grid.size
        self.src = np.concatenate([ln.src.ravel() for ln in links]) if links else np.zeros(0, int)
        self.dst = np.concatenate([ln.dst.ravel() for ln in links]) if links else np.zeros(0, int)
        diag = np.arange(n)
        rows = np.concatenate([self.src, self.dst, diag])
        cols = np.concatenate([self.dst, self.src, diag])
        keys = cols.astype(np.int64) * n + rows  # CSC order: by column, then row
        unique, pos = np.unique(keys, return_inverse=True)
        self._pos = pos.ravel()
        self._nnz = unique.size
        self._indices = (unique % n).astype(np.int32)
        counts = np.bincount(unique // n, minlength=n)
        self._indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
        self._diag_pos = self._pos[-n:]
        self._unique = self._pos.size == self._nnz
        if self._unique:  # data = vals[gather]: one gather into CSC order, no scatter
            self._gather = np.empty_like(self._pos)
            self._gather[self._pos] = np.arange(self._pos.size)
        self._vol_src, self._vol_dst = self.volumes[self.src], self.volumes[self.dst]

    def _setup_fast(self, m0: Any) -> None:
        """Keep K A / h, the force term h·F and (if E is static) ΔE of every link from t0."""
        T0 = m0.temperature
        links, walls = sg.all_links(m0), sg.absorbing_walls(m0)
        func = _static(m0)
        weights = [np.ravel(ln.weight) / T0 for ln in links]
        self._weight = np.concatenate(weights) if weights else np.zeros(0)
        self._dE0 = [self._energy_difference(m0.energy, ln.axis, func) for ln in links]
        self._force_term = [dE - T0 * np.ravel(ln.delta) for dE, ln in zip(self._dE0, links)]
        self._walls = []
        for axis, side, cells, w, d in walls:
            edge = self.grid.edges[axis][0 if side == 0 else -1]
            pts = sg.face_points(m0, axis, np.array([edge]))
            e_wall = self._wall_energy(m0.energy, axis, side, pts, func)
            e_cell = m0.energy.ravel()[cells.ravel()]
            force = e_wall - e_cell - T0 * np.ravel(d)
            self._walls.append((axis, side, cells.ravel(), np.ravel(w) / T0, force, pts, e_wall))

    def _energy_difference(self, E: np.ndarray, axis: int, func: Any) -> np.ndarray:
        """E_dst − E_src of every link along `axis` (unwrapped across a periodic wrap)."""
        grid = self.grid
        per = grid.periodic[axis]
        if per:
            dE = np.roll(E, -1, axis=axis) - E
            if func is not None:
                n = grid.shape[axis]
                pts = sg.face_points(
                    _GridOnly(grid), axis, grid.centers[axis][:1] + grid.lengths()[axis]
                )
                last = [slice(None)] * grid.ndim
                last[axis] = slice(n - 1, n)
                wrap = np.broadcast_to(np.asarray(func(*pts), float), dE[tuple(last)].shape)
                dE[tuple(last)] = wrap - E[tuple(last)]
        else:
            dE = np.diff(E, axis=axis)
        return dE.ravel()

    def _wall_energy(
        self, E: np.ndarray, axis: int, side: int, pts: list[np.ndarray], func: Any
    ) -> np.ndarray:
        """Energy at the wall points (the callable, or the linear extrapolation of sg)."""
        grid = self.grid
        n = grid.shape[axis]
        k, k2 = (0, 1) if side == 0 else (n - 1, n - 2)
        e_cell = np.take(E, [k], axis=axis)
        if func is not None:
            return np.broadcast_to(np.asarray(func(*pts), float), e_cell.shape).ravel()
        c = grid.centers[axis]
        half = abs(grid.edges[axis][0 if side == 0 else -1] - c[k])
        e_next = np.take(E, [k2], axis=axis)
        return (e_cell + (e_cell - e_next) * half / abs(c[k2] - c[k])).ravel()

    # -- values at one time ------------------------------------------------
    def __call__(self, t: float) -> Snapshot:
        """The discretisation at time `t` (cached for the last few times)."""
        t = float(t)
        snap = self._cache.get(t)
        if snap is None:
            snap = self._assemble(t)
            self._cache[t] = snap
            while len(self._cache) > self._size:
                self._cache.popitem(last=False)
        return snap

    def _link_values(self, t: float):
        """(E cells, T, weights, δ per link, wall cells, wall w, wall δ) at `t`."""
        model = self.model
        if not self.fast:
            mt = model.at(t)
            links, walls = sg.all_links(mt), sg.absorbing_walls(mt)
            w = np.concatenate([np.ravel(ln.weight) for ln in links])
            d = np.concatenate([np.ravel(ln.delta) for ln in links])
            wc = [c.ravel() for *_, c, _, _ in walls]
            ww = [np.ravel(x) for *_, x, _ in walls]
            wd = [np.ravel(x) for *_, x in walls]
            return mt.energy, mt.temperature, w, d, wc, ww, wd
        T = model.temperature_at(t)
        E = model.energy_cells(t)
        moving = "energy" in model.depends
        func = model.energy_function_at(t) if moving else None
        w = self._weight * T
        parts = []
        for a, (dE0, f) in enumerate(zip(self._dE0, self._force_term)):
            dE = self._energy_difference(E, a, func) if moving else dE0
            parts.append((dE - f) / T)
        d = np.concatenate(parts) if parts else np.zeros(0)
        wc, ww, wd = [], [], []
        for axis, side, cells, g, f, pts, e_wall0 in self._walls:
            e_wall = self._wall_energy(E, axis, side, pts, func) if moving else e_wall0
            wc.append(cells)
            ww.append(g * T)
            wd.append((e_wall - E.ravel()[cells] - f) / T)
        return E, T, w, d, wc, ww, wd

    def _assemble(self, t: float) -> Snapshot:
        E, T, w, d, wall_cells, wall_w, wall_d = self._link_values(t)
        n, m = self.grid.size, self.src.size
        b_fwd, b_bwd = _rates(d)
        fwd, bwd = w * b_fwd, w * b_bwd
        out = np.bincount(self.src, fwd, n) + np.bincount(self.dst, bwd, n)
        cells = np.concatenate(wall_cells) if wall_cells else np.zeros(0, int)
        rate = (
            np.concatenate([x * sg.bernoulli(y) for x, y in zip(wall_w, wall_d)])
            if wall_cells
            else np.zeros(0)
        )
        if cells.size:
            out += np.bincount(cells, rate, n)
        vals = np.empty(2 * m + n)
        np.divide(bwd, self._vol_src, out=vals[:m])
        np.divide(fwd, self._vol_dst, out=vals[m : 2 * m])
        np.divide(out, self.volumes, out=vals[2 * m :])
        np.negative(vals[2 * m :], out=vals[2 * m :])
        if self._unique:
            data = vals[self._gather]
        else:
            data = np.bincount(self._pos, vals, self._nnz)
        L = sp.csc_array((data, self._indices, self._indptr), shape=(n, n))
        self.assemblies += 1
        return Snapshot(
            t, L, np.asarray(E, float), float(T), self.src, self.dst, fwd, bwd, cells, rate
        )

    def shifted(self, snap: Snapshot, c: float) -> sp.csc_array:
        """I − c L(t) in CSC form, sharing the pattern (no symbolic work)."""
        data = -c * snap.L.data
        data[self._diag_pos] += 1.0
        return sp.csc_array((data, self._indices, self._indptr), shape=snap.L.shape)


class _GridOnly:
    """The one attribute :func:`sg.face_points` reads."""

    def __init__(self, grid: Any) -> None:
        self.grid = grid


def _static(model: Any) -> Any:
    """The energy callable of a frozen model as a function of the axis arrays, or None."""
    if model.energy_function is None:
        return None
    return lambda *pts: model.evaluate(model.energy_function, pts, "energy")


def entropy_production(snap: Snapshot, p: np.ndarray) -> float:
    r"""Entropy production rate σ = Σ_links (J⁺ − J⁻) ln(J⁺/J⁻) ≥ 0 of density `p` at `snap`.

    J⁺ = w B(δ) p_src and J⁻ = w B(−δ) p_dst are the two directed parts of
    the scheme's own Scharfetter–Gummel flux. Each term is ≥ 0 and zero
    only when the link is balanced, so σ = 0 exactly at the Gibbs density
    of the frozen model. Since ln(B(−δ)/B(δ)) = δ,
    σ = Σ J (ln p_src − ln p_dst − δ) = dS/dt + Q̇/T. In units of k_B per unit
    time; negative entries of p are treated as 0, a link with one empty end
    and a non-zero flux gives +inf. Absorbing-wall links are left out.

    Examples
    --------
    >>> import numpy as np, fpsolver as fp
    >>> m = fp.FokkerPlanck(fp.Grid(x=(-3, 3, 30)), energy=lambda x, t: (1 + t) * x**2)
    >>> snap = TimeDependentGenerator(m)(0.5)
    >>> entropy_production(snap, np.exp(m.at(0.5).log_equilibrium()).ravel()) < 1e-15
    True
    """
    p = np.where(np.asarray(p) > 0, p, 0.0).ravel()
    a = snap.forward * p[snap.src]
    b = snap.backward * p[snap.dst]
    with np.errstate(divide="ignore", invalid="ignore"):
        term = (a - b) * (np.log(a) - np.log(b))
    term = np.where(a == b, 0.0, term)
    term = np.where((a > 0) & (b > 0) | (a == b), term, np.inf)
    return float(np.sum(term))


def heat_rate(snap: Snapshot, p: np.ndarray, volumes: np.ndarray) -> float:
    """Heat released to the bath per unit time, Q̇ = −Σ V E (L p), from the scheme's fluxes."""
    lp = snap.L @ np.ravel(p)
    return float(-np.sum(np.ravel(volumes) * snap.energy.ravel() * lp))

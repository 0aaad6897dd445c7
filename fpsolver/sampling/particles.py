"""Particle backend: Euler–Maruyama on the Langevin dynamics of a model.

The Fokker–Planck equation of :class:`~fpsolver.FokkerPlanck`,
∂p/∂t = −∇·J with J = −K (p ∇E − p F + T ∇p) and K diagonal, is the law
of the Itô diffusion

    dX = [K (F − ∇E) + T ∇·K] dt + sqrt(2 T K) dW,     (∇·K)_a = ∂_a K_aa.

:func:`simulate_particles` integrates it with the Euler–Maruyama scheme,
vectorised over particles, and reports histograms on the grid's own cells
(divided by N·V_i, so they compare cell by cell with the grid density) and
moment and free-energy estimates per saved time. It is an independent check
of the grid solver; :func:`fpsolver.sampling.compare` does the statistics.

Reproducibility. Particles are simulated in fixed blocks of
:data:`BLOCK_SIZE` particles; block ``b`` draws everything (its initial
positions and every increment) from its own generator, seeded by the
``b``-th child of ``numpy.random.SeedSequence(seed).spawn`` (bit generator SFC64, the fastest
of numpy's for normal variates). Blocks are
grouped into batches (the unit of work handed to a worker thread); every
reduction over particles is done per block and combined in block order, so
a seed gives bit-identical results whatever ``batch_size`` or ``workers``.
Memory is bounded: a worker holds one block at a time, and histograms
accumulate per block.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..core.grid import Grid, field_caller
from ..core.model import Model

__all__ = ["simulate_particles", "histogram_free_energy", "BLOCK_SIZE"]

#: Particles per reproducibility block (fixed: changing it changes results).
BLOCK_SIZE = 8192

_EPS3 = np.finfo(float).eps ** (1.0 / 3.0)


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------
def _components(out: Any, nd: int, name: str) -> list[Any]:
    """Split a vector-field result into one component per axis."""
    if isinstance(out, (list, tuple)):
        comps = list(out)
    else:
        arr = np.asarray(out, dtype=float)
        if nd == 1 and (arr.ndim <= 1):
            comps = [arr]
        else:
            comps = list(arr)
    if len(comps) != nd:
        raise ValueError(f"`{name}` must return {nd} components (one per axis), got {len(comps)}")
    return comps


class _CellInterpolator:
    """Multilinear interpolation of cell-centred fields to arbitrary points.

    Bounded axes hold the end values constant beyond the outer cell centres;
    periodic axes interpolate across the wrap.
    """

    def __init__(self, grid: Grid, fields: np.ndarray) -> None:
        self.grid = grid
        self.nf = fields.shape[0]
        self.flat = np.ascontiguousarray(fields.reshape(self.nf, -1))
        self.strides = np.array(
            [int(np.prod(grid.shape[a + 1 :])) for a in range(grid.ndim)], dtype=np.intp
        )

    def _axis(self, a: int, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        g = self.grid
        c = g.centers[a]
        n = c.size
        if g.periodic[a]:
            L = g.lengths()[a]
            u = np.mod(x - c[0], L)
            ext = np.append(c - c[0], L)
            i = np.clip(np.searchsorted(ext, u, side="right") - 1, 0, n - 1)
            w = (u - ext[i]) / (ext[i + 1] - ext[i])
            return i, (i + 1) % n, np.clip(w, 0.0, 1.0)
        i = np.clip(np.searchsorted(c, x, side="right") - 1, 0, n - 2)
        w = np.clip((x - c[i]) / (c[i + 1] - c[i]), 0.0, 1.0)
        return i, i + 1, w

    def __call__(self, pos: Sequence[np.ndarray]) -> np.ndarray:
        nd = self.grid.ndim
        parts = [self._axis(a, np.asarray(pos[a])) for a in range(nd)]
        m = np.asarray(pos[0]).shape[0]
        out = np.zeros((self.nf, m))
        for corner in range(2**nd):
            idx = np.zeros(m, dtype=np.intp)
            wt = np.ones(m)
            for a in range(nd):
                i0, i1, w = parts[a]
                if (corner >> a) & 1:
                    idx += i1 * self.strides[a]
                    wt = wt * w
                else:
                    idx += i0 * self.strides[a]
                    wt = wt * (1.0 - w)
            out += self.flat[:, idx] * wt
        return out


def _cell_gradient(grid: Grid, values: np.ndarray, axis: int) -> np.ndarray:
    """Second-order derivative of cell values along `axis` (findiff)."""
    from findiff import Diff

    c = grid.centers[axis]
    h = np.diff(c)
    uniform = np.allclose(h, h[0], rtol=1e-10, atol=0.0)
    if uniform:
        return Diff(axis, float(h[0]), periodic=grid.periodic[axis], acc=2)(values)
    return Diff(axis, np.asarray(c), acc=2)(values)


# ---------------------------------------------------------------------------
# the dynamics: drift and noise of one Euler–Maruyama step
# ---------------------------------------------------------------------------
class _Dynamics:
    """Drift and noise of the model's Itô SDE, specialised once per model."""

    def __init__(self, model: Model, dt: float) -> None:
        grid = model.grid
        nd = grid.ndim
        names = grid.names
        T = model.temperature
        self.nd, self.T, self.dt = nd, T, dt

        # -- ∇E ---------------------------------------------------------
        self.gradient_source = "none"
        self._grad: Callable[[np.ndarray], list[Any]] | None = None
        if model.energy_gradient is not None:
            grad_call = field_caller(model.energy_gradient, names)
            self._grad = lambda pos: _components(grad_call(pos), nd, "energy_gradient")
            self.gradient_source = "analytic"
        elif model.energy_function is not None:
            e_call = field_caller(model.energy_function, names)
            e_steps = [_EPS3 * max(1.0, float(np.max(np.abs(e)))) for e in grid.edges]
            self._grad = lambda pos: _central_gradient(e_call, pos, e_steps)
            self.gradient_source = "central differences"
        elif np.ptp(model.energy) > 0:
            grads = np.stack([_cell_gradient(grid, model.energy, a) for a in range(nd)])
            interp = _CellInterpolator(grid, grads)
            self._grad = lambda pos: list(interp(pos))
            self.gradient_source = "findiff on cells, multilinear interpolation"

        # -- K and ∇·K ----------------------------------------------------
        cells = model.mobility_cells().reshape(nd, -1)
        self.k_const: np.ndarray | None = None
        self._mobility: Callable[[np.ndarray], tuple[list[Any], list[Any]]] | None = None
        if model.mobility_function is None and np.all(cells == cells[:, :1]):
            self.k_const = cells[:, 0].copy()
        elif model.mobility_function is not None:
            k_call = field_caller(model.mobility_function, names)
            k_steps = [_EPS3 * max(1.0, float(np.max(np.abs(e)))) for e in grid.edges]

            def mob(pos: np.ndarray) -> tuple[list[Any], list[Any]]:
                k = _components_scalar_ok(k_call(pos), nd)
                div = []
                for a in range(nd):
                    up = list(pos)
                    dn = list(pos)
                    up[a] = pos[a] + k_steps[a]
                    dn[a] = pos[a] - k_steps[a]
                    ku = _components_scalar_ok(k_call(up), nd)[a]
                    kd = _components_scalar_ok(k_call(dn), nd)[a]
                    div.append((np.asarray(ku) - np.asarray(kd)) / (2.0 * k_steps[a]))
                return k, div

            self._mobility = mob
        else:
            kc = model.mobility_cells()
            divs = [_cell_gradient(grid, kc[a], a) for a in range(nd)]
            interp_k = _CellInterpolator(grid, np.concatenate([kc, np.stack(divs)]))

            def mob_cells(pos: np.ndarray) -> tuple[list[Any], list[Any]]:
                v = interp_k(pos)
                return list(v[:nd]), list(v[nd:])

            self._mobility = mob_cells

        # -- force ---------------------------------------------------------
        self.f_const = np.zeros(nd)
        self._force: Callable[[np.ndarray], list[Any]] | None = None
        if model.force_function is not None:
            f_call = field_caller(model.force_function, names)
            self._force = lambda pos: _components(f_call(pos), nd, "force")
        elif model.force_constant is not None:
            self.f_const = np.asarray(model.force_constant, dtype=float).copy()

        if self.k_const is not None:
            self.sigma = np.sqrt(2.0 * T * self.k_const * dt)
            self.sig2 = [float(s) ** 2 for s in self.sigma]
            self.minus_kdt = -self.k_const * dt
            self.const_shift = self.k_const * dt * self.f_const

    def increment(self, pos: np.ndarray, noise: np.ndarray, tmp: np.ndarray) -> list[Any]:
        """Advance `pos` (nd, m) in place by one step; `noise` holds N(0, 1) draws.

        Returns the per-axis noise variance 2 T K dt of the step (scalars or
        arrays), which the absorbing-wall bridge test needs.
        """
        nd = self.nd
        g = self._grad(pos) if self._grad is not None else None
        f = self._force(pos) if self._force is not None else None
        if self.k_const is not None:
            for a in range(nd):
                na = noise[a]
                na *= self.sigma[a]
                if g is not None:
                    np.multiply(g[a], self.minus_kdt[a], out=tmp[a])
                    na += tmp[a]
                if f is not None:
                    np.multiply(f[a], -self.minus_kdt[a], out=tmp[a])
                    na += tmp[a]
                elif self.const_shift[a] != 0.0:
                    na += self.const_shift[a]
                pos[a] += na
            return self.sig2
        k, div = self._mobility(pos)
        dt, T = self.dt, self.T
        sig2 = []
        for a in range(nd):
            ka = np.asarray(k[a], dtype=float)
            drive = (f[a] if f is not None else self.f_const[a]) - (g[a] if g is not None else 0.0)
            drift = ka * drive + T * np.asarray(div[a])
            s2 = 2.0 * T * dt * ka
            sig2.append(s2)
            noise[a] *= np.sqrt(s2)
            noise[a] += dt * drift
            pos[a] += noise[a]
        return sig2


def _components_scalar_ok(out: Any, nd: int) -> list[Any]:
    """Mobility callables may return one scalar field for every axis."""
    if isinstance(out, (list, tuple)):
        comps = list(out)
    else:
        arr = np.asarray(out, dtype=float)
        if nd > 1 and arr.ndim >= 1 and arr.shape[0] == nd and arr.ndim == 2:
            comps = list(arr)
        else:
            comps = [arr] * nd
    if len(comps) != nd:
        raise ValueError(f"`mobility` must return 1 or {nd} components, got {len(comps)}")
    return comps


def _central_gradient(call: Callable, pos: np.ndarray, steps: list[float]) -> list[np.ndarray]:
    grads = []
    for a in range(len(steps)):
        up = list(pos)
        dn = list(pos)
        up[a] = pos[a] + steps[a]
        dn[a] = pos[a] - steps[a]
        eu = np.asarray(call(up), dtype=float)
        ed = np.asarray(call(dn), dtype=float)
        grads.append((eu - ed) / (2.0 * steps[a]))
    return grads


# ---------------------------------------------------------------------------
# walls
# ---------------------------------------------------------------------------
@dataclass
class _Walls:
    lo: np.ndarray
    hi: np.ndarray
    sides: tuple[tuple[str, str], ...]
    absorbing_axes: list[int] = field(default_factory=list)

    @classmethod
    def of(cls, model: Model) -> _Walls:
        g = model.grid
        lo = np.array([e[0] for e in g.edges])
        hi = np.array([e[-1] for e in g.edges])
        sides = model.boundary.sides
        absorbing = [a for a, s in enumerate(sides) if "absorbing" in s]
        return cls(lo, hi, sides, absorbing)


def _fold(x: np.ndarray, lo: float, hi: float) -> None:
    """Mirror `x` into [lo, hi] (any number of reflections), in place."""
    L = hi - lo
    x -= lo
    np.mod(x, 2.0 * L, out=x)
    x -= L
    np.abs(x, out=x)
    np.subtract(hi, x, out=x)


def _wrap(x: np.ndarray, lo: float, hi: float) -> None:
    x -= lo
    np.mod(x, hi - lo, out=x)
    x += lo


# ---------------------------------------------------------------------------
# one block
# ---------------------------------------------------------------------------
@dataclass
class _Plan:
    model: Model
    dyn: _Dynamics
    walls: _Walls
    dt: float
    n_steps: int
    save_steps: np.ndarray
    n: int
    init_cdf: np.ndarray | None
    init_positions: np.ndarray | None


@dataclass
class _BlockResult:
    cells: list[np.ndarray]  # flat cell index of the alive particles, per save
    alive: np.ndarray  # (nsave,)
    sum_x: np.ndarray  # (nsave, nd)
    sum_xx: np.ndarray  # (nsave, nd, nd)
    exit_time: np.ndarray
    exit_wall: np.ndarray


def _initial(plan: _Plan, rng: np.random.Generator, start: int, m: int) -> np.ndarray:
    grid = plan.model.grid
    nd = grid.ndim
    if plan.init_positions is not None:
        return np.ascontiguousarray(plan.init_positions[start : start + m].T, dtype=float)
    u = rng.random(m)
    flat = np.searchsorted(plan.init_cdf, u, side="right")
    flat = np.minimum(flat, grid.size - 1)
    idx = np.unravel_index(flat, grid.shape)
    pos = np.empty((nd, m))
    for a in range(nd):
        e = grid.edges[a]
        w = grid.widths[a]
        pos[a] = e[idx[a]] + w[idx[a]] * rng.random(m)
    return pos


def _run_block(plan: _Plan, b: int, seed: np.random.SeedSequence) -> _BlockResult:
    grid = plan.model.grid
    nd = grid.ndim
    dyn, walls, dt = plan.dyn, plan.walls, plan.dt
    rng = np.random.Generator(np.random.SFC64(seed))
    start = b * BLOCK_SIZE
    m = min(BLOCK_SIZE, plan.n - start)

    pos_buf = np.empty(nd * m)
    noise_buf = np.empty(nd * m)
    tmp_buf = np.empty(nd * m)
    old_buf = np.empty(nd * m) if walls.absorbing_axes else None
    pos = pos_buf.reshape(nd, m)
    pos[...] = _initial(plan, rng, start, m)

    nsave = plan.save_steps.size
    cells: list[np.ndarray] = []
    alive = np.zeros(nsave, dtype=np.int64)
    sum_x = np.zeros((nsave, nd))
    sum_xx = np.zeros((nsave, nd, nd))
    exit_t: list[np.ndarray] = []
    exit_w: list[np.ndarray] = []

    def save(s: int) -> None:
        cells.append(grid.cell_index(pos).astype(np.int64))
        alive[s] = pos.shape[1]
        for a in range(nd):
            sum_x[s, a] = np.sum(pos[a])
            for c in range(a, nd):
                sum_xx[s, a, c] = sum_xx[s, c, a] = np.sum(pos[a] * pos[c])

    si = 0
    while si < nsave and plan.save_steps[si] == 0:
        save(si)
        si += 1

    fold_axes = [a for a, s in enumerate(walls.sides) if s == ("reflecting", "reflecting")]
    wrap_axes = [a for a, s in enumerate(walls.sides) if s == ("periodic", "periodic")]
    mixed_axes = [a for a in range(nd) if a not in fold_axes and a not in wrap_axes]
    lo, hi = walls.lo, walls.hi

    for k in range(1, plan.n_steps + 1):
        if m == 0:
            break
        noise = noise_buf[: nd * m].reshape(nd, m)
        tmp = tmp_buf[: nd * m].reshape(nd, m)
        rng.standard_normal(out=noise_buf[: nd * m])
        if old_buf is not None:
            old = old_buf[: nd * m].reshape(nd, m)
            old[...] = pos
        sig2 = dyn.increment(pos, noise, tmp)

        for a in fold_axes:
            x = pos[a]
            if x.min() < lo[a] or x.max() > hi[a]:
                _fold(x, lo[a], hi[a])
        for a in wrap_axes:
            x = pos[a]
            if x.min() < lo[a] or x.max() >= hi[a]:
                _wrap(x, lo[a], hi[a])
        kill = None
        for a in mixed_axes:
            x = pos[a]
            s_lo, s_hi = walls.sides[a]
            if s_lo == "reflecting" and x.min() < lo[a]:
                np.copyto(x, 2.0 * lo[a] - x, where=x < lo[a])
            if s_hi == "reflecting" and x.max() > hi[a]:
                np.copyto(x, 2.0 * hi[a] - x, where=x > hi[a])
            for side, kind in ((0, s_lo), (1, s_hi)):
                if kind != "absorbing":
                    continue
                wall = lo[a] if side == 0 else hi[a]
                d1 = x - wall if side == 0 else wall - x
                d0 = old[a] - wall if side == 0 else wall - old[a]
                out = d1 <= 0.0
                # Brownian-bridge test: the path may have touched the wall
                # between two positions inside (Gobet 2000, weak order 1).
                s2 = sig2[a]
                s2max = float(np.max(s2))
                prod = d0 * d1
                cand = np.flatnonzero(~out & (prod < 18.0 * s2max))
                if cand.size:
                    s2c = s2[cand] if np.ndim(s2) else s2
                    p_cross = np.exp(-2.0 * prod[cand] / s2c)
                    hit = rng.random(cand.size) < p_cross
                    out[cand[hit]] = True
                if out.any():
                    if kill is None:
                        kill = np.zeros(m, dtype=np.int8)
                    kill[out & (kill == 0)] = 1 + 2 * a + side
        if kill is not None and kill.any():
            dead = kill > 0
            exit_t.append(np.full(int(dead.sum()), k * dt))
            exit_w.append(kill[dead].astype(np.int8) - 1)
            keep = pos[:, ~dead]
            m = keep.shape[1]
            pos = pos_buf[: nd * m].reshape(nd, m)
            pos[...] = keep

        while si < nsave and plan.save_steps[si] == k:
            save(si)
            si += 1
    while si < nsave:  # everyone absorbed
        cells.append(np.zeros(0, dtype=np.int64))
        si += 1

    return _BlockResult(
        cells,
        alive,
        sum_x,
        sum_xx,
        np.concatenate(exit_t) if exit_t else np.zeros(0),
        np.concatenate(exit_w) if exit_w else np.zeros(0, dtype=np.int8),
    )


# ---------------------------------------------------------------------------
# estimates
# ---------------------------------------------------------------------------
def histogram_free_energy(
    counts: np.ndarray, n: int, volumes: np.ndarray, energy: np.ndarray, temperature: float
) -> tuple[float, float, float, float, int]:
    """Free energy of a histogram density, with its bias correction and error.

    The histogram density is p̂_i = c_i / (N V_i). The plug-in entropy
    Ĥ = −Σ V p̂ ln p̂ is biased low; the Miller–Madow correction adds
    (m − 1)/(2N) with m the number of occupied cells (Miller 1955;
    Paninski 2003, Neural Comput. 15, 1191). The free energy is
    F̂ = ⟨E⟩ − T Ĥ with ⟨E⟩ = Σ (c_i/N) E_i on the cells, as in the grid's
    discrete free energy. Its standard error is the delta-method one,
    sqrt(Var(φ)/N) with φ = E_i + T ln p̂_i + T the influence of a particle
    in cell i (0 for an absorbed one).

    Parameters
    ----------
    counts : ndarray
        Particle counts per cell (grid shape).
    n : int
        Initial number of particles N (absorbed ones are missing mass).
    volumes, energy : ndarray
        Cell volumes and cell energies.
    temperature : float

    Returns
    -------
    free_energy, standard_error, entropy, mean_energy, occupied : tuple
        Bias-corrected F̂ and Ĥ, their standard error (for F̂), ⟨E⟩ and m.

    Examples
    --------
    >>> import numpy as np
    >>> F, se, H, E, m = histogram_free_energy(np.array([50, 50]), 100, np.ones(2),
    ...                                        np.zeros(2), 1.0)
    >>> round(H, 6), m       # ln 2 + (2 − 1)/200
    (0.698147, 2)
    """
    c = np.asarray(counts, dtype=float).ravel()
    V = np.asarray(volumes, dtype=float).ravel()
    E = np.asarray(energy, dtype=float).ravel()
    T = float(temperature)
    occ = c > 0
    m = int(np.count_nonzero(occ))
    if m == 0:
        return float("nan"), float("nan"), float("nan"), float("nan"), 0
    w = c[occ] / n
    logp = np.log(w / V[occ])
    mean_e = float(np.sum(w * E[occ]))
    h_plugin = float(-np.sum(w * logp))
    h = h_plugin + (m - 1) / (2.0 * n)
    F = mean_e - T * h
    phi = E[occ] + T * logp + T
    mean_phi = float(np.sum(w * phi))
    var_phi = float(np.sum(w * phi**2)) - mean_phi**2
    se = float(np.sqrt(max(var_phi, 0.0) / n))
    return F, se, h, mean_e, m


# ---------------------------------------------------------------------------
# the public function
# ---------------------------------------------------------------------------
def _save_schedule(
    t_end: float, dt: float, save_every: float | None, save_at: Sequence[float] | None
) -> tuple[int, np.ndarray]:
    def steps_of(t: float, what: str) -> int:
        k = round(t / dt)
        if abs(t / dt - k) > 1e-6:
            raise ValueError(f"`{what}`={t!r} is not a multiple of `dt`={dt!r}")
        return int(k)

    n_steps = steps_of(t_end, "t_end")
    if save_every is not None and save_at is not None:
        raise ValueError("give `save_every` or `save_at`, not both")
    if save_at is not None:
        times = np.atleast_1d(np.asarray(save_at, dtype=float))
        if times.ndim != 1 or times.size == 0:
            raise ValueError(
                f"`save_at` must be a non-empty 1-D sequence of times, got {save_at!r}"
            )
        if np.any(times < 0) or np.any(times > t_end * (1 + 1e-12)):
            raise ValueError(
                f"`save_at` times must lie in [0, t_end={t_end}], got {times.tolist()}"
            )
        steps = np.unique([steps_of(float(t), "save_at") for t in times])
    elif save_every is not None:
        se = float(save_every)
        if not se > 0:
            raise ValueError(f"`save_every` must be positive, got {save_every!r}")
        k = steps_of(se, "save_every")
        if k == 0:
            raise ValueError(f"`save_every`={se} is shorter than `dt`={dt}")
        steps = np.unique(np.append(np.arange(0, n_steps + 1, k), n_steps))
    else:
        steps = np.array([0, n_steps])
    return n_steps, np.unique(steps).astype(np.int64)


def _is_positions(grid: Grid, p0: Any) -> bool:
    if callable(p0) or type(p0).__name__ == "DataArray":
        return False
    shape = np.shape(p0)
    return len(shape) == 2 and shape[1] == grid.ndim and tuple(shape) != grid.shape


def simulate_particles(
    model: Model,
    p0: Any,
    n: int | None = None,
    t_end: float = 1.0,
    dt: float = 1e-3,
    save_every: float | None = None,
    save_at: Sequence[float] | None = None,
    seed: int | np.random.SeedSequence | None = None,
    batch_size: int = 16 * BLOCK_SIZE,
    workers: int = 1,
    progress: bool | None = None,
):
    """Simulate the model's Langevin dynamics with Euler–Maruyama particles.

    Each particle follows the Itô SDE

        dX = [K (F − ∇E) + T ∇·K] dt + sqrt(2 T K) dW

    (diagonal mobility K, force F, energy E, temperature T) whose law solves
    the model's Fokker–Planck equation. Models made by
    :meth:`FokkerPlanck.from_drift` are included (E = 0, T = 1, K = D,
    F = f/D, so the drift is f + ∇·D).

    Parameters
    ----------
    model : FokkerPlanck
    p0 : density or positions
        A density on the grid (array, DataArray or callable, as for
        :func:`fpsolver.as_density`): each particle picks a cell with
        probability p·V and a uniform position inside it. Or an array of
        positions of shape ``(n, ndim)``.
    n : int
        Number of particles (optional when positions are given).
    t_end : float
        Final time; a multiple of `dt`.
    dt : float
        Time step. Euler–Maruyama has weak order 1: choose `dt` so that the
        O(dt) bias is well below the sampling noise (halve it and compare).
    save_every : float, optional
        Save histograms and moments every `save_every` (a multiple of `dt`),
        from 0 to `t_end`. Default: at 0 and `t_end` only.
    save_at : sequence of float, optional
        Explicit save times (multiples of `dt`) instead of `save_every`.
    seed : int or SeedSequence, optional
        Seed of the run. None draws fresh entropy, recorded in the result's
        ``attrs["seed"]`` so the run can be repeated.
    batch_size : int
        Particles per unit of work (rounded up to whole blocks of
        :data:`BLOCK_SIZE`). Results do not depend on it.
    workers : int
        Threads working on batches at once. Results do not depend on it.
    progress : bool, optional
        Show a progress bar over blocks (tqdm).

    Returns
    -------
    xarray.Dataset
        On the grid's cells and the saved times: ``density`` (count / (N V),
        so absorbed particles are missing mass, as on the grid), ``count``,
        ``survival`` (fraction not yet absorbed), ``mean`` and
        ``covariance`` of the surviving particles, ``mean_energy``
        (Σ c E_i / N on the cells), ``entropy`` and ``free_energy``
        (⟨E⟩ − T Ĥ with the Miller–Madow correction (m − 1)/(2N), m
        occupied cells; see :func:`histogram_free_energy`) and
        ``free_energy_se`` (its standard error); ``exit_time`` and
        ``exit_wall`` (``"<axis>:lower"``/``"<axis>:upper"`` index into
        ``attrs["walls"]``) for absorbed particles. Attributes: n, dt,
        seed, method, temperature, block size and the grid
        (:meth:`Grid.to_attrs`).

    Notes
    -----
    Reflecting walls mirror a particle that crossed them, periodic axes
    wrap. An absorbing wall removes a particle that crossed it, and also,
    with the Brownian-bridge probability exp(−2 d₀ d₁ / (2 T K dt)), one
    whose path may have touched the wall between two positions inside
    (d₀, d₁ the distances to the wall before and after the step). Without
    that test survival is overestimated by O(sqrt(dt)); with it the weak
    error is O(dt) [Gobet 2000]. The exit time is the end of the step.

    References
    ----------
    Kloeden & Platen (1992), Numerical Solution of Stochastic Differential
    Equations, §9.1 and §14.1. E. Gobet (2000), Weak approximation of
    killed diffusion using Euler schemes, Stoch. Proc. Appl. 87, 167–197.
    G. A. Miller (1955), Note on the bias of information estimates.

    Examples
    --------
    >>> import fpsolver as fp
    >>> grid = fp.Grid(x=(-5, 5, 50))
    >>> model = fp.FokkerPlanck(grid, energy=lambda x: 0.5 * x**2, temperature=1.0)
    >>> parts = fp.simulate_particles(model, fp.gaussian(grid, 2.0, 0.25), n=4000,
    ...                               t_end=0.5, dt=0.01, save_every=0.25, seed=1)
    >>> parts["time"].values.tolist()
    [0.0, 0.25, 0.5]
    >>> parts["count"].sum(dim="x").values.tolist()
    [4000, 4000, 4000]
    >>> bool(abs(float(parts["mean"][-1, 0]) - 2.0 * 0.6065) < 0.05)
    True
    """
    import xarray as xr

    from .._version import __version__
    from ..core.initial import density_array

    if not isinstance(model, Model):
        raise TypeError(f"`model` must be an fpsolver.FokkerPlanck, got {type(model).__name__}")
    grid = model.grid
    nd = grid.ndim
    try:
        dt = float(dt)
        t_end = float(t_end)
    except (TypeError, ValueError):
        raise TypeError(f"`dt` and `t_end` must be numbers, got {dt!r}, {t_end!r}") from None
    if not (np.isfinite(dt) and dt > 0):
        raise ValueError(f"`dt` must be positive and finite, got {dt}")
    if not (np.isfinite(t_end) and t_end >= 0):
        raise ValueError(f"`t_end` must be non-negative and finite, got {t_end}")
    n_steps, save_steps = _save_schedule(t_end, dt, save_every, save_at)

    init_cdf = init_positions = None
    if _is_positions(grid, p0):
        init_positions = np.array(p0, dtype=float)
        if n is None:
            n = init_positions.shape[0]
        if int(n) != init_positions.shape[0]:
            raise ValueError(f"`n`={n} but {init_positions.shape[0]} positions were given")
        if not np.all(np.isfinite(init_positions)):
            raise ValueError("`p0` positions must be finite")
        for a in range(nd):
            x = init_positions[:, a]
            lo, hi = grid.edges[a][0], grid.edges[a][-1]
            if grid.periodic[a]:
                init_positions[:, a] = lo + np.mod(x - lo, hi - lo)
            elif np.any((x < lo) | (x > hi)):
                raise ValueError(
                    f"`p0` positions on axis {grid.names[a]!r} must lie in [{lo}, {hi}]; "
                    f"got values in [{x.min():g}, {x.max():g}]"
                )
    else:
        p = density_array(grid, p0, "p0")
        w = (p * grid.volumes).ravel()
        init_cdf = np.cumsum(w)
        init_cdf /= init_cdf[-1]
    if n is None:
        raise TypeError("`n` (the number of particles) is required when `p0` is a density")
    if isinstance(n, (bool, np.bool_)) or int(n) != n or int(n) < 1:
        raise ValueError(f"`n` must be a positive integer, got {n!r}")
    n = int(n)
    if int(workers) != workers or workers < 1:
        raise ValueError(f"`workers` must be a positive integer, got {workers!r}")
    if int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"`batch_size` must be a positive integer, got {batch_size!r}")

    ss = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    n_blocks = -(-n // BLOCK_SIZE)
    children = ss.spawn(n_blocks)
    per_batch = max(1, -(-int(batch_size) // BLOCK_SIZE))
    if workers > 1:  # give every worker something to do
        per_batch = min(per_batch, max(1, -(-n_blocks // int(workers))))
    batches = [list(range(s, min(s + per_batch, n_blocks))) for s in range(0, n_blocks, per_batch)]

    plan = _Plan(
        model,
        _Dynamics(model, dt),
        _Walls.of(model),
        dt,
        n_steps,
        save_steps,
        n,
        init_cdf,
        init_positions,
    )
    nsave = save_steps.size
    counts = np.zeros((nsave, grid.size), dtype=np.int64)
    results: list[_BlockResult | None] = [None] * n_blocks
    lock = threading.Lock()

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n_blocks, desc="particle blocks", unit="block")

    def run_batch(blocks: list[int]) -> None:
        for b in blocks:
            r = _run_block(plan, b, children[b])
            with lock:
                for s in range(nsave):
                    c = r.cells[s]
                    if c.size * 4 >= grid.size:
                        counts[s] += np.bincount(c, minlength=grid.size)
                    elif c.size:
                        np.add.at(counts[s], c, 1)
                r.cells = []
                results[b] = r
                if bar is not None:
                    bar.update(1)

    try:
        if workers == 1 or len(batches) == 1:
            for batch in batches:
                run_batch(batch)
        else:
            with ThreadPoolExecutor(max_workers=int(workers)) as pool:
                for fut in [pool.submit(run_batch, batch) for batch in batches]:
                    fut.result()
    finally:
        if bar is not None:
            bar.close()

    # combine per-block reductions in block order (bit-reproducible)
    alive = np.zeros(nsave, dtype=np.int64)
    sum_x = np.zeros((nsave, nd))
    sum_xx = np.zeros((nsave, nd, nd))
    for r in results:
        alive += r.alive
        sum_x += r.sum_x
        sum_xx += r.sum_xx
    exit_time = np.concatenate([r.exit_time for r in results])
    exit_wall = np.concatenate([r.exit_wall for r in results])

    with np.errstate(invalid="ignore", divide="ignore"):
        mean = sum_x / alive[:, None]
        cov = (sum_xx - alive[:, None, None] * mean[:, :, None] * mean[:, None, :]) / (
            alive[:, None, None] - 1
        )
    times = save_steps * dt
    fe = [
        histogram_free_energy(counts[s], n, grid.volumes, model.energy, model.temperature)
        for s in range(nsave)
    ]
    count_arr = counts.reshape((nsave, *grid.shape))
    dims = ("time", *grid.names)
    coords: dict[str, Any] = {"time": ("time", times, {"long_name": "time"})}
    coords.update(grid.coords())
    coords["axis"] = ("axis", list(grid.names))
    coords["axis2"] = ("axis2", list(grid.names))
    walls = [f"{name}:{side}" for name in grid.names for side in ("lower", "upper")]
    data = {
        "density": (
            dims,
            count_arr / (n * grid.volumes),
            {"long_name": "particle histogram density", "units": "1/volume"},
        ),
        "count": (dims, count_arr, {"long_name": "particles per cell"}),
        "energy": (grid.names, np.array(model.energy), {"long_name": "cell energy E_i"}),
        "survival": (
            "time",
            alive / n,
            {"long_name": "fraction of particles not yet absorbed"},
        ),
        "mean": (("time", "axis"), mean, {"long_name": "mean position of surviving particles"}),
        "covariance": (
            ("time", "axis", "axis2"),
            cov,
            {"long_name": "sample covariance of surviving particles"},
        ),
        "mean_energy": (
            "time",
            np.array([f[3] for f in fe]),
            {"long_name": "mean energy, sum of count*E_i/N over cells"},
        ),
        "entropy": (
            "time",
            np.array([f[2] for f in fe]),
            {"long_name": "histogram entropy with Miller-Madow correction"},
        ),
        "free_energy": (
            "time",
            np.array([f[0] for f in fe]),
            {"long_name": "free energy <E> - T H (Miller-Madow corrected entropy)"},
        ),
        "free_energy_se": (
            "time",
            np.array([f[1] for f in fe]),
            {"long_name": "standard error of the free energy (delta method)"},
        ),
        "occupied_cells": ("time", np.array([f[4] for f in fe]), {"long_name": "occupied cells"}),
        "exit_time": (
            "exit",
            exit_time,
            {"long_name": "absorption time (end of the step)"},
        ),
        "exit_wall": (
            "exit",
            exit_wall,
            {"long_name": "index into attrs['walls'] of the absorbing wall"},
        ),
    }
    seed_attr: Any = ss.entropy
    if not (isinstance(seed_attr, (int, np.integer)) and 0 <= int(seed_attr) < 2**63):
        seed_attr = str(seed_attr)
    attrs = {
        "n": n,
        "dt": dt,
        "t_end": t_end,
        "seed": seed_attr,
        "method": "euler-maruyama",
        "bit_generator": "SFC64",
        "temperature": model.temperature,
        "block_size": BLOCK_SIZE,
        "gradient": plan.dyn.gradient_source,
        "entropy_correction": "miller-madow (m-1)/(2N)",
        "walls": " ".join(walls),
        "fpsolver_version": __version__,
    }
    attrs.update(grid.to_attrs())
    return xr.Dataset(data, coords=coords, attrs=attrs)

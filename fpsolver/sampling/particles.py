"""Particle backend: Euler–Maruyama on the Langevin dynamics of a model.

The Fokker–Planck equation of :class:`~fpsolver.FokkerPlanck`,
∂p/∂t = −∇·J with J = −K (p ∇E − p F + T ∇p), is the law of the Itô
diffusion

    dX = [K (F − ∇E) + T ∇·K] dt + sqrt(2 T) σ dW,     (∇·K)_a = ∂_b K_ab,

with σσᵀ = S, the symmetric part of K (for a diagonal K, σ = sqrt(K)).

:func:`simulate_particles` integrates it with the Euler–Maruyama scheme,
vectorised over particles, and reports histograms on the grid's own cells
(divided by N·V_i, so they compare cell by cell with the grid density) and
moment and free-energy estimates per saved time. It is an independent check
of the grid solver; :func:`fpsolver.compare` does the statistics.

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
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._version import __version__
from ..core.diagnostics import log_gibbs
from ..core.grid import Grid, field_caller
from ..core.initial import density_array
from ..core.model import Model
from ..core.schedule import SaveSchedule, positive, substeps

__all__ = ["simulate_particles", "histogram_free_energy", "drift_stiffness", "BLOCK_SIZE"]

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

    def __init__(self, model: Model) -> None:
        self.nd, self.T = model.grid.ndim, model.temperature
        self._grad, self.gradient_source = _energy_gradient(model)
        self.k_const, self._mobility = _mobility_field(model)
        self._force, self.f_const = _force_field(model)

    def increment(
        self, pos: np.ndarray, noise: np.ndarray, tmp: np.ndarray, dt: float
    ) -> list[Any]:
        """Advance `pos` (nd, m) in place by one step `dt`; `noise` holds N(0, 1) draws.

        Returns the per-axis noise variance 2 T K dt of the step (scalars or
        arrays), which the absorbing-wall bridge test needs.
        """
        g = self._grad(pos) if self._grad is not None else None
        f = self._force(pos) if self._force is not None else None
        if self.k_const is not None:
            return self._increment_constant(pos, noise, tmp, dt, g, f)
        k, div = self._mobility(pos)
        T = self.T
        sig2 = []
        for a in range(self.nd):
            ka = np.asarray(k[a], dtype=float)
            drive = (f[a] if f is not None else self.f_const[a]) - (g[a] if g is not None else 0.0)
            drift = ka * drive + T * np.asarray(div[a])
            s2 = 2.0 * T * dt * ka
            sig2.append(s2)
            noise[a] *= np.sqrt(s2)
            noise[a] += dt * drift
            pos[a] += noise[a]
        return sig2

    def drift(self, pos: np.ndarray) -> list[np.ndarray]:
        """The Itô drift K (F − ∇E) + T ∇·K at positions `pos` (nd, m)."""
        g = self._grad(pos) if self._grad is not None else None
        f = self._force(pos) if self._force is not None else None
        if self.k_const is not None:
            k, div = list(self.k_const), [0.0] * self.nd
        else:
            k, div = self._mobility(pos)
        out = []
        for a in range(self.nd):
            drive = (f[a] if f is not None else self.f_const[a]) - (g[a] if g is not None else 0.0)
            out.append(np.broadcast_to(k[a] * drive + self.T * np.asarray(div[a]), pos[0].shape))
        return out

    def _increment_constant(self, pos, noise, tmp, dt, g, f) -> list[Any]:
        """The step for a constant diagonal mobility (no ∇·K term), in place."""
        k = self.k_const
        sig2 = [float(2.0 * self.T * ka * dt) for ka in k]
        for a in range(self.nd):
            na = noise[a]
            na *= np.sqrt(sig2[a])
            if g is not None:
                np.multiply(g[a], -k[a] * dt, out=tmp[a])
                na += tmp[a]
            if f is not None:
                np.multiply(f[a], k[a] * dt, out=tmp[a])
                na += tmp[a]
            elif self.f_const[a] != 0.0:
                na += k[a] * dt * self.f_const[a]
            pos[a] += na
        return sig2


def _energy_gradient(model: Model) -> tuple[Callable | None, str]:
    """∇E at particle positions, and where it comes from."""
    grid, nd, names = model.grid, model.grid.ndim, model.grid.names
    if model.energy_gradient is not None:
        grad_call = field_caller(model.energy_gradient, names)
        return (lambda pos: _components(grad_call(pos), nd, "energy_gradient")), "analytic"
    if model.energy_function is not None:
        e_call = field_caller(model.energy_function, names)
        e_steps = [_EPS3 * max(1.0, float(np.max(np.abs(e)))) for e in grid.edges]
        return (lambda pos: _central_gradient(e_call, pos, e_steps)), "central differences"
    if np.ptp(model.energy) > 0:
        grads = np.stack([_cell_gradient(grid, model.energy, a) for a in range(nd)])
        interp = _CellInterpolator(grid, grads)
        return (lambda pos: list(interp(pos))), "findiff on cells, multilinear interpolation"
    return None, "none"


def _mobility_field(model: Model) -> tuple[np.ndarray | None, Callable | None]:
    """A constant diagonal K, or a callable giving (K, ∇·K) at positions."""
    grid, nd = model.grid, model.grid.ndim
    cells = model.mobility_cells().reshape(nd, -1)
    if model.mobility_function is None and np.all(cells == cells[:, :1]):
        return cells[:, 0].copy(), None
    if model.mobility_function is not None:
        k_call = field_caller(model.mobility_function, grid.names)
        k_steps = [_EPS3 * max(1.0, float(np.max(np.abs(e)))) for e in grid.edges]

        def mob(pos: np.ndarray) -> tuple[list[Any], list[Any]]:
            k = _components_scalar_ok(k_call(pos), nd)
            div = []
            for a in range(nd):
                up, dn = list(pos), list(pos)
                up[a] = pos[a] + k_steps[a]
                dn[a] = pos[a] - k_steps[a]
                ku = _components_scalar_ok(k_call(up), nd)[a]
                kd = _components_scalar_ok(k_call(dn), nd)[a]
                div.append((np.asarray(ku) - np.asarray(kd)) / (2.0 * k_steps[a]))
            return k, div

        return None, mob
    kc = model.mobility_cells()
    divs = [_cell_gradient(grid, kc[a], a) for a in range(nd)]
    interp_k = _CellInterpolator(grid, np.concatenate([kc, np.stack(divs)]))

    def mob_cells(pos: np.ndarray) -> tuple[list[Any], list[Any]]:
        v = interp_k(pos)
        return list(v[:nd]), list(v[nd:])

    return None, mob_cells


def _force_field(model: Model) -> tuple[Callable | None, np.ndarray]:
    """A force callable at positions, or the constant force (zeros without one)."""
    nd = model.grid.ndim
    if model.force_function is not None:
        f_call = field_caller(model.force_function, model.grid.names)
        return (lambda pos: _components(f_call(pos), nd, "force")), np.zeros(nd)
    if model.force_constant is not None:
        return None, np.asarray(model.force_constant, dtype=float).copy()
    return None, np.zeros(nd)


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
    steps: np.ndarray  # step sizes, landing exactly on every save time
    ends: np.ndarray  # time at the end of each step
    save_after: np.ndarray  # number of steps taken at each save (0: the start)
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
    if grid.curved:
        _measure_positions(grid, idx, pos, rng)
    return pos


class _Block:
    """The particles of one block and their per-save reductions."""

    def __init__(self, plan: _Plan, pos: np.ndarray) -> None:
        nd, nsave = plan.model.grid.ndim, plan.save_after.size
        self.grid = plan.model.grid
        self.pos = pos
        self.cells: list[np.ndarray] = []
        self.alive = np.zeros(nsave, dtype=np.int64)
        self.sum_x = np.zeros((nsave, nd))
        self.sum_xx = np.zeros((nsave, nd, nd))
        self.exit_t: list[np.ndarray] = []
        self.exit_w: list[np.ndarray] = []

    def save(self, s: int) -> None:
        pos = self.pos
        self.cells.append(self.grid.cell_index(pos).astype(np.int64))
        self.alive[s] = pos.shape[1]
        for a in range(pos.shape[0]):
            self.sum_x[s, a] = np.sum(pos[a])
            for c in range(a + 1):
                self.sum_xx[s, a, c] = self.sum_xx[s, c, a] = np.sum(pos[a] * pos[c])

    def result(self) -> _BlockResult:
        while len(self.cells) < self.alive.size:  # everyone absorbed
            self.cells.append(np.zeros(0, dtype=np.int64))
        return _BlockResult(
            self.cells,
            self.alive,
            self.sum_x,
            self.sum_xx,
            np.concatenate(self.exit_t) if self.exit_t else np.zeros(0),
            np.concatenate(self.exit_w) if self.exit_w else np.zeros(0, dtype=np.int8),
        )


def _absorbed(
    walls: _Walls, a: int, x: np.ndarray, old: np.ndarray, s2: Any, rng: np.random.Generator
) -> list[np.ndarray | None]:
    """Reflect on the reflecting sides of axis `a`; flag particles absorbed per side.

    Besides particles that crossed an absorbing wall, one whose path may have
    touched it between two positions inside is absorbed with the
    Brownian-bridge probability exp(−2 d₀ d₁ / s²) (Gobet 2000, weak order 1).
    """
    lo, hi = walls.lo[a], walls.hi[a]
    s_lo, s_hi = walls.sides[a]
    if s_lo == "reflecting" and x.min() < lo:
        np.copyto(x, 2.0 * lo - x, where=x < lo)
    if s_hi == "reflecting" and x.max() > hi:
        np.copyto(x, 2.0 * hi - x, where=x > hi)
    hits: list[np.ndarray | None] = [None, None]
    for side, kind in ((0, s_lo), (1, s_hi)):
        if kind != "absorbing":
            continue
        wall = lo if side == 0 else hi
        d1 = x - wall if side == 0 else wall - x
        d0 = old - wall if side == 0 else wall - old
        out = d1 <= 0.0
        prod = d0 * d1
        cand = np.flatnonzero(~out & (prod < 18.0 * float(np.max(s2))))
        if cand.size:
            s2c = s2[cand] if np.ndim(s2) else s2
            hit = rng.random(cand.size) < np.exp(-2.0 * prod[cand] / s2c)
            out[cand[hit]] = True
        hits[side] = out
    return hits


def _apply_walls(
    plan: _Plan, pos: np.ndarray, old: np.ndarray | None, sig2: list[Any], rng
) -> np.ndarray | None:
    """Fold, wrap or reflect every axis in place; the wall code (1 + 2a + side) of
    each absorbed particle (0 for survivors), or None when nobody was absorbed."""
    walls = plan.walls
    kill = None
    for a, sides in enumerate(walls.sides):
        x, lo, hi = pos[a], walls.lo[a], walls.hi[a]
        if sides == ("reflecting", "reflecting"):
            if x.min() < lo or x.max() > hi:
                _fold(x, lo, hi)
        elif sides == ("periodic", "periodic"):
            if x.min() < lo or x.max() >= hi:
                _wrap(x, lo, hi)
        else:
            for side, out in enumerate(_absorbed(walls, a, x, old[a], sig2[a], rng)):
                if out is not None and out.any():
                    if kill is None:
                        kill = np.zeros(x.size, dtype=np.int8)
                    kill[out & (kill == 0)] = 1 + 2 * a + side
    return kill if kill is not None and kill.any() else None


def _run_block(plan: _Plan, b: int, seed: np.random.SeedSequence) -> _BlockResult:
    nd = plan.model.grid.ndim
    rng = np.random.Generator(np.random.SFC64(seed))
    start = b * BLOCK_SIZE
    m = min(BLOCK_SIZE, plan.n - start)
    pos_buf, noise_buf, tmp_buf = np.empty(nd * m), np.empty(nd * m), np.empty(nd * m)
    old_buf = np.empty(nd * m) if plan.walls.absorbing_axes else None
    block = _Block(plan, pos_buf.reshape(nd, m))
    block.pos[...] = _initial(plan, rng, start, m)
    si = 0
    while si < plan.save_after.size and plan.save_after[si] == 0:
        block.save(si)
        si += 1
    for k in range(1, plan.steps.size + 1):
        if m == 0:
            break
        pos = block.pos
        noise = noise_buf[: nd * m].reshape(nd, m)
        rng.standard_normal(out=noise_buf[: nd * m])
        old = None
        if old_buf is not None:
            old = old_buf[: nd * m].reshape(nd, m)
            old[...] = pos
        sig2 = plan.dyn.increment(pos, noise, tmp_buf[: nd * m].reshape(nd, m), plan.steps[k - 1])
        kill = _apply_walls(plan, pos, old, sig2, rng)
        if kill is not None:
            dead = kill > 0
            block.exit_t.append(np.full(int(dead.sum()), plan.ends[k - 1]))
            block.exit_w.append(kill[dead].astype(np.int8) - 1)
            keep = pos[:, ~dead]
            m = keep.shape[1]
            block.pos = pos_buf[: nd * m].reshape(nd, m)
            block.pos[...] = keep
        while si < plan.save_after.size and plan.save_after[si] == k:
            block.save(si)
            si += 1
    return block.result()


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
def drift_stiffness(
    model: Model, where: np.ndarray | None = None, max_points: int = 50_000
) -> float:
    """The largest rate λ = max Σ_b |∂f_a/∂x_b| of the particle drift f on the grid.

    Measured by finite differences of f between cell centres (on every k-th
    cell of large grids), over the cells where the boolean mask `where`
    (grid shape) is true, or all. Euler–Maruyama on dx = −λ x dt + ... is
    unstable for dt·λ > 2 and its stationary variance is off by a factor
    1/(1 − dt·λ/2): dt·λ should stay well below 1.

    On the disc and the sphere, where the particles step in the plane or in
    R³, f is the Cartesian drift and x_b the arc length along each axis:
    the coordinate drift grows like 1/r² or 1/sin²θ near the centre and the
    poles, which says nothing of the step's stability there.

    Examples
    --------
    >>> import fpsolver as fp
    >>> g = fp.Grid(x=(-3, 3, 60))
    >>> round(drift_stiffness(fp.FokkerPlanck(g, lambda x: 20 * x**2 / 2)), 6)
    20.0
    """
    grid = model.grid
    step = max(1, int(np.ceil((grid.size / max_points) ** (1.0 / grid.ndim))))
    take = tuple(
        slice(None, None, step) if c.size > 2 * step else slice(None) for c in grid.centers
    )
    axes = [c[t] for c, t in zip(grid.centers, take)]
    if any(c.size < 2 for c in axes):
        return 0.0
    mesh = np.meshgrid(*axes, indexing="ij")
    pos = np.stack([m.ravel() for m in mesh])
    dynamics = _dynamics_for(model)
    embedded = getattr(dynamics, "embedded_drift", lambda _: None)(pos)
    if embedded is None:  # the coordinates are Cartesian (or the particles step in them)
        embedded = dynamics.drift(pos), [1.0] * len(axes), None
    total = np.zeros(mesh[0].shape)
    for row in _jacobian_rows(mesh[0].shape, axes, *embedded):
        total = np.maximum(total, sum(np.abs(j) for j in row))
    if where is not None:
        total = np.where(np.asarray(where)[take], total, 0.0)
    return float(np.max(total))


def _jacobian_rows(shape: tuple, axes: list, drift: list, scale: list, frame: Any) -> list:
    """∂f_i/∂x_j on the mesh, by central differences along the axes.

    `scale` turns a coordinate derivative into one per unit length, and
    `frame` (``(D, nd, m)``, the axes' unit vectors as Cartesian columns;
    None: the axes are Cartesian) turns derivatives along the axes into
    Cartesian ones.
    """
    scale = [np.reshape(np.broadcast_to(h, np.shape(drift[0])), shape) for h in scale]
    rows = []
    for f in drift:
        along = [
            np.gradient(np.reshape(f, shape), c, axis=b) / scale[b] for b, c in enumerate(axes)
        ]
        if frame is None:
            rows.append(along)
        else:
            rows.append(
                [sum(d * np.reshape(e[b], shape) for b, d in enumerate(along)) for e in frame]
            )
    return rows


def _warn_if_stiff(model: Model, dt: float, start: np.ndarray) -> None:
    """Warn when dt is too long for the drift where the particles are likely to be.

    That region: the cells where the initial density `start` or the Gibbs
    density exceeds 1e-6 of its peak.
    """
    log_q = log_gibbs(model.energy, model.temperature, model.grid.volumes)
    where = (log_q > log_q.max() - 14.0) | (start > 1e-6 * start.max())
    lam = drift_stiffness(model, where)
    if dt * lam > 0.5:
        warnings.warn(
            f"`dt`={dt:g} is too long for Euler–Maruyama on this model: the drift changes "
            f"at a rate up to λ ≈ {lam:.3g}, and dt·λ = {dt * lam:.2g} (unstable above 2, "
            f"variance off by about {100 * dt * lam / 2:.0f} % near 1); use dt ≤ {0.1 / lam:.2g}",
            RuntimeWarning,
            stacklevel=3,
        )


def _is_positions(grid: Grid, p0: Any) -> bool:
    if callable(p0) or type(p0).__name__ == "DataArray":
        return False
    shape = np.shape(p0)
    return len(shape) == 2 and shape[1] == grid.ndim and tuple(shape) != grid.shape


def _plan_steps(
    t_end: float, dt: float, save_every: float | None, save_at: Sequence[float] | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Step sizes, step end times, steps taken at each save, and the save times.

    The same :class:`~fpsolver.core.schedule.SaveSchedule` as the grid
    solver: 0 and `t_end` always, steps shortened to land on every save time.
    """
    if t_end == 0.0:
        if save_every is not None or (save_at is not None and np.any(np.asarray(save_at) != 0)):
            raise ValueError("with `t_end`=0 only the initial state can be saved")
        return np.zeros(0), np.zeros(0), np.zeros(1, dtype=np.int64), np.zeros(1)
    schedule = SaveSchedule(t_end, every=save_every, at=save_at)
    steps: list[float] = []
    ends: list[float] = []
    save_after = [0]
    t = 0.0
    for target in schedule.targets():
        hs = substeps(target - t, dt)
        ends.extend(t + np.cumsum(hs[:-1]))
        ends.append(target)  # land exactly
        steps.extend(hs)
        save_after.append(len(steps))
        t = target
    times = np.array([0.0, *schedule.targets()])
    return np.array(steps), np.array(ends), np.array(save_after, dtype=np.int64), times


def _initial_state(
    grid: Grid, p0: Any, n: int | None
) -> tuple[int, np.ndarray | None, np.ndarray | None]:
    """The number of particles and either the initial cell CDF or the positions."""
    if not _is_positions(grid, p0):
        if n is None:
            raise TypeError("`n` (the number of particles) is required when `p0` is a density")
        w = (density_array(grid, p0, "p0") * grid.volumes).ravel()
        cdf = np.cumsum(w)
        return _count(n), cdf / cdf[-1], None
    positions = np.array(p0, dtype=float)
    n = positions.shape[0] if n is None else n
    if _count(n) != positions.shape[0]:
        raise ValueError(f"`n`={n} but {positions.shape[0]} positions were given")
    if not np.all(np.isfinite(positions)):
        raise ValueError("`p0` positions must be finite")
    for a in range(grid.ndim):
        x = positions[:, a]
        lo, hi = grid.edges[a][0], grid.edges[a][-1]
        if grid.periodic[a]:
            positions[:, a] = lo + np.mod(x - lo, hi - lo)
        elif np.any((x < lo) | (x > hi)):
            raise ValueError(
                f"`p0` positions on axis {grid.names[a]!r} must lie in [{lo}, {hi}]; "
                f"got values in [{x.min():g}, {x.max():g}]"
            )
    return _count(n), None, positions


def _start_density(grid: Grid, cdf: np.ndarray | None, positions: np.ndarray | None):
    """Where the particles start, as cell weights (grid shape)."""
    if cdf is not None:
        return np.diff(cdf, prepend=0.0).reshape(grid.shape)
    cells = grid.cell_index(positions.T)
    return np.bincount(cells, minlength=grid.size).reshape(grid.shape).astype(float)


def _count(n: Any, name: str = "n") -> int:
    if isinstance(n, (bool, np.bool_)) or int(n) != n or int(n) < 1:
        raise ValueError(f"`{name}` must be a positive integer, got {n!r}")
    return int(n)


def _batches(n_blocks: int, batch_size: int, workers: int) -> list[list[int]]:
    """Blocks grouped into units of work (results do not depend on the grouping)."""
    per_batch = max(1, -(-batch_size // BLOCK_SIZE))
    if workers > 1:  # give every worker something to do
        per_batch = min(per_batch, max(1, -(-n_blocks // workers)))
    return [list(range(s, min(s + per_batch, n_blocks))) for s in range(0, n_blocks, per_batch)]


def _run_blocks(
    plan: _Plan, children: list, batches: list[list[int]], workers: int, progress: bool | None
) -> tuple[np.ndarray, list[_BlockResult]]:
    """Run every block; histogram counts per save and the per-block reductions."""
    size, nsave = plan.model.grid.size, plan.save_after.size
    counts = np.zeros((nsave, size), dtype=np.int64)
    results: list[Any] = [None] * len(children)
    lock = threading.Lock()
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(children), desc="particle blocks", unit="block")

    def run_batch(blocks: list[int]) -> None:
        for b in blocks:
            r = _run_block(plan, b, children[b])
            with lock:
                for s in range(nsave):
                    c = r.cells[s]
                    if c.size * 4 >= size:
                        counts[s] += np.bincount(c, minlength=size)
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
            with ThreadPoolExecutor(max_workers=workers) as pool:
                for fut in [pool.submit(run_batch, batch) for batch in batches]:
                    fut.result()
    finally:
        if bar is not None:
            bar.close()
    return counts, results


def simulate_particles(
    model: Model,
    p0: Any,
    n: int | None = None,
    *,
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
        Final time (0: only the initial state).
    dt : float
        Time step. Euler–Maruyama has weak order 1: choose `dt` so that the
        O(dt) bias is well below the sampling noise (halve it and compare).
        Steps land exactly on every save time (the step before one is
        shortened, as in :func:`fpsolver.solve`; see
        :class:`fpsolver.SaveSchedule`).
    save_every : float, optional
        Save histograms and moments every `save_every`, from 0 to `t_end`.
        Default: at 0 and `t_end` only.
    save_at : sequence of float, optional
        Explicit save times instead of `save_every` (0 and `t_end` are
        always saved).
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
        On the grid's cells and the saved times, with the names of the
        grid results (:func:`fpsolver.solve`): ``p`` (count / (N V), so
        absorbed particles are missing mass, as on the grid), ``count``,
        ``mass`` (fraction not yet absorbed), ``mean`` and ``covariance``
        of the surviving particles, ``mean_energy``
        (Σ c E_i / N on the cells), ``entropy`` and ``free_energy``
        (⟨E⟩ − T Ĥ with the Miller–Madow correction (m − 1)/(2N), m
        occupied cells; see :func:`histogram_free_energy`) and
        ``free_energy_se`` (its standard error); ``exit_time`` and
        ``exit_wall`` (``"<axis>:lower"``/``"<axis>:upper"`` index into
        ``attrs["walls"]``) for absorbed particles. Attributes: n, dt,
        seed, method, temperature, block size and the grid
        (:meth:`Grid.to_attrs`). Deprecated duplicates kept for one
        release: ``density`` (= ``p``) and ``survival`` (= ``mass``).

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
    >>> float(parts["mass"][-1])
    1.0
    >>> bool(abs(float(parts["mean"][-1, 0]) - 2.0 * 0.6065) < 0.05)
    True
    """
    run = ParticleBlocks(
        model, p0, n, t_end=t_end, dt=dt, save_every=save_every, save_at=save_at, seed=seed
    )
    workers = _count(workers, "workers")
    batch_size = _count(batch_size, "batch_size")
    children = [run.child(b) for b in range(run.n_blocks)]
    batches = _batches(run.n_blocks, batch_size, workers)
    counts, results = _run_blocks(run.plan(), children, batches, workers, progress)
    return _particle_dataset(model, run.times, counts, results, run.attrs)


def _result_attrs(
    model: Model, n: int, dt: float, t_end: float, ss: np.random.SeedSequence, gradient: str
) -> dict[str, Any]:
    """The attributes of a particle result (the seed recorded so the run can be repeated)."""
    seed_attr: Any = ss.entropy
    if not (isinstance(seed_attr, (int, np.integer)) and 0 <= int(seed_attr) < 2**63):
        seed_attr = str(seed_attr)
    return {
        "n": n,
        "dt": dt,
        "t_end": t_end,
        "seed": seed_attr,
        "method": "euler-maruyama",
        "bit_generator": "SFC64",
        "temperature": model.temperature,
        "block_size": BLOCK_SIZE,
        "gradient": gradient,
        "entropy_correction": "miller-madow (m-1)/(2N)",
        "fpsolver_version": __version__,
    }


def _particle_dataset(
    model: Model, times: np.ndarray, counts: np.ndarray, results: list, attrs: dict[str, Any]
):
    """The particle result: histograms, moments and free energies per saved time."""
    import xarray as xr

    grid, n, nsave = model.grid, attrs["n"], times.size
    alive = sum(r.alive for r in results)
    sum_x = sum(r.sum_x for r in results)
    sum_xx = sum(r.sum_xx for r in results)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = sum_x / alive[:, None]
        cov = (sum_xx - alive[:, None, None] * mean[:, :, None] * mean[:, None, :]) / (
            alive[:, None, None] - 1
        )
    fe = np.array(
        [
            histogram_free_energy(counts[s], n, grid.volumes, model.energy, model.temperature)
            for s in range(nsave)
        ]
    )
    count_arr = counts.reshape((nsave, *grid.shape))
    dims = ("time", *grid.names)
    coords: dict[str, Any] = {"time": ("time", times, {"long_name": "time"})}
    coords.update(grid.coords())
    coords["axis"] = ("axis", list(grid.names))
    coords["axis2"] = ("axis2", list(grid.names))
    walls = [f"{name}:{side}" for name in grid.names for side in ("lower", "upper")]
    density = count_arr / (n * grid.volumes)
    survival = alive / n
    data = {
        "p": (dims, density, {"long_name": "particle histogram density", "units": "1/volume"}),
        "count": (dims, count_arr, {"long_name": "particles per cell"}),
        "energy": (grid.names, np.array(model.energy), {"long_name": "cell energy E_i"}),
        "mass": ("time", survival, {"long_name": "fraction of particles not yet absorbed"}),
        "mean": (("time", "axis"), mean, {"long_name": "mean position of surviving particles"}),
        "covariance": (
            ("time", "axis", "axis2"),
            cov,
            {"long_name": "sample covariance of surviving particles"},
        ),
        "mean_energy": ("time", fe[:, 3], {"long_name": "mean energy, sum of count*E_i/N"}),
        "entropy": ("time", fe[:, 2], {"long_name": "histogram entropy, Miller-Madow corrected"}),
        "free_energy": (
            "time",
            fe[:, 0],
            {"long_name": "free energy <E> - T H (Miller-Madow corrected entropy)"},
        ),
        "free_energy_se": (
            "time",
            fe[:, 1],
            {"long_name": "standard error of the free energy (delta method)"},
        ),
        "occupied_cells": ("time", fe[:, 4].astype(int), {"long_name": "occupied cells"}),
        "exit_time": (
            "exit",
            np.concatenate([r.exit_time for r in results]),
            {"long_name": "absorption time (end of the step)"},
        ),
        "exit_wall": (
            "exit",
            np.concatenate([r.exit_wall for r in results]),
            {"long_name": "index into attrs['walls'] of the absorbing wall"},
        ),
        # deprecated names, kept for one release
        "density": (dims, density, {"long_name": "deprecated: use p", "units": "1/volume"}),
        "survival": ("time", survival, {"long_name": "deprecated: use mass"}),
    }
    attrs = dict(attrs, walls=" ".join(walls), **grid.to_attrs())
    return xr.Dataset(data, coords=coords, attrs=attrs)


# ---------------------------------------------------------------------------
# blocks as units of work: a run spread over processes or machines
# ---------------------------------------------------------------------------
__all__ += ["ParticleBlocks", "BlockSums"]


@dataclass
class BlockSums:
    """What some blocks of a particle run reduce to; no particle positions.

    ``counts`` (saves × cells, int64) sums the blocks' histograms; ``blocks``
    maps each block's index to its survivors, Σx, Σxxᵀ per save and its exit
    times and walls. ``a + b`` merges two: integer counts, exact in any order.
    """

    counts: np.ndarray
    blocks: dict[int, _BlockResult]

    def __add__(self, other: BlockSums) -> BlockSums:
        return BlockSums(self.counts + other.counts, {**self.blocks, **other.blocks})


class ParticleBlocks:
    """A particle run of :func:`simulate_particles`, simulated block by block anywhere.

    Takes the arguments of :func:`simulate_particles` (validated, and `seed`
    spawned, as it does). :meth:`run` simulates blocks ``first … stop − 1``,
    block ``b`` seeded by the ``b``-th child of ``SeedSequence(seed)``, and
    returns their :class:`BlockSums`; :meth:`dataset` turns the sums of
    every block into the result of :func:`simulate_particles`, bit for bit.
    The object pickles (its compiled dynamics are rebuilt where it runs).

    Examples
    --------
    >>> import fpsolver as fp
    >>> grid = fp.Grid(x=(-5, 5, 50))
    >>> model = fp.FokkerPlanck(grid, energy=lambda x: 0.5 * x**2)
    >>> kw = dict(n=3 * BLOCK_SIZE, t_end=0.1, dt=0.01, seed=4)
    >>> run = ParticleBlocks(model, fp.gaussian(grid, 1.0, 0.5), **kw)
    >>> sums = run.run(2, 3) + run.run(0, 2)      # any grouping, any order
    >>> run.dataset(sums).identical(simulate_particles(model, fp.gaussian(grid, 1.0, 0.5), **kw))
    True
    """

    def __init__(
        self,
        model: Model,
        p0: Any,
        n: int | None = None,
        *,
        t_end: float = 1.0,
        dt: float = 1e-3,
        save_every: float | None = None,
        save_at: Sequence[float] | None = None,
        seed: int | np.random.SeedSequence | None = None,
    ) -> None:
        if not isinstance(model, Model):
            raise TypeError(f"`model` must be an fpsolver.FokkerPlanck, got {type(model).__name__}")
        dt = positive(dt, "dt")
        if not (isinstance(t_end, (int, float, np.floating)) and np.isfinite(t_end) and t_end >= 0):
            raise ValueError(f"`t_end` must be a non-negative finite number, got {t_end!r}")
        self.model = model
        self.steps, self.ends, self.save_after, self.times = _plan_steps(
            float(t_end), dt, save_every, save_at
        )
        self.n, self.init_cdf, self.init_positions = _initial_state(model.grid, p0, n)
        _warn_if_stiff(model, dt, _start_density(model.grid, self.init_cdf, self.init_positions))
        ss = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
        self.n_blocks = -(-self.n // BLOCK_SIZE)
        self._seed = (ss.entropy, tuple(ss.spawn_key), ss.pool_size, ss.n_children_spawned)
        ss.spawn(self.n_blocks)  # the children are rebuilt per block; the parent moves on
        self._plan: _Plan | None = None
        gradient = self.plan().dyn.gradient_source
        self.attrs = _result_attrs(model, self.n, dt, float(t_end), ss, gradient)

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if k != "_plan"}  # closures: rebuilt

    def __setstate__(self, state: dict[str, Any]) -> None:
        vars(self).update(state, _plan=None)

    def plan(self) -> _Plan:
        """The run's compiled dynamics and walls, built on first use."""
        if self._plan is None:
            m = self.model
            self._plan = _Plan(
                m, _dynamics_for(m), _Walls.of(m), self.steps, self.ends, self.save_after,
                self.n, self.init_cdf, self.init_positions,
            )  # fmt: skip
        return self._plan

    def child(self, b: int) -> np.random.SeedSequence:
        """The seed of block `b`: the child ``SeedSequence.spawn`` of the run's seed made."""
        entropy, key, pool, offset = self._seed
        return np.random.SeedSequence(entropy, spawn_key=(*key, offset + b), pool_size=pool)

    def run(self, first: int, stop: int) -> BlockSums:
        """Simulate blocks ``first … stop − 1``; their histogram counts and sums."""
        if not (0 <= first <= stop <= self.n_blocks):
            raise ValueError(f"blocks {first}..{stop} outside 0..{self.n_blocks} of this run")
        plan = self.plan()
        counts = np.zeros((self.save_after.size, self.model.grid.size), dtype=np.int64)
        blocks = {}
        for b in range(first, stop):
            r = _run_block(plan, b, self.child(b))
            for s, cells in enumerate(r.cells):
                counts[s] += np.bincount(cells, minlength=counts.shape[1])
            r.cells = []
            blocks[b] = r
        return BlockSums(counts, blocks)

    def dataset(self, sums: BlockSums):
        """The result of :func:`simulate_particles` from the sums of every block."""
        missing = sorted(set(range(self.n_blocks)) - set(sums.blocks))
        if missing:
            raise ValueError(f"the sums lack {len(missing)} block(s), first {missing[0]}")
        results = [sums.blocks[b] for b in range(self.n_blocks)]
        return _particle_dataset(self.model, self.times, sums.counts, results, self.attrs)


# ---------------------------------------------------------------------------
# curved grids: the metric's drift, chart-free moves on the disc and sphere
# ---------------------------------------------------------------------------
def _dynamics_for(model: Model) -> Any:
    """The step of `model`: :class:`_CurvedDynamics` on a curved grid, else
    :class:`_TensorDynamics` for a full tensor, else :class:`_Dynamics`."""
    if model.grid.curved:
        return _CurvedDynamics(model)
    return _TensorDynamics(model) if model.is_tensor else _Dynamics(model)


def _angle_into(phi: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Angles mapped into the turn centred on the axis [lo, hi] (in place)."""
    mid = 0.5 * (lo + hi)
    phi -= mid - np.pi
    np.mod(phi, 2.0 * np.pi, out=phi)
    phi += mid - np.pi
    return phi


def _isotropic_constant(model: Model) -> float | None:
    """The mobility when it is one constant scalar (same on every axis and cell), else None."""
    if model.mobility_function is not None or model.is_tensor:
        return None
    cells = model.mobility_cells().ravel()
    return float(cells[0]) if np.all(cells == cells[0]) else None


def _frame_field(model: Model) -> Callable[[Sequence[np.ndarray]], np.ndarray]:
    """K in the orthonormal frame at positions, shape ``(nd, nd, m)``.

    A callable is evaluated at the positions (scalar, per-axis or tensor
    output); a constant is broadcast; a cell array is interpolated
    multilinearly between cell centres, so that its derivatives exist.
    """
    grid, nd = model.grid, model.grid.ndim
    if model.mobility_function is not None:
        if model.mobility_kind == "tensor" or model.is_tensor:
            return lambda pts: np.asarray(model.mobility_tensor_at(list(pts)), dtype=float)

        def diagonal(pts: Sequence[np.ndarray]) -> np.ndarray:
            comps = model.evaluate_components(model.mobility_function, list(pts), "mobility", True)
            K = np.zeros((nd, nd, *comps[0].shape))
            for a in range(nd):
                K[a, a] = comps[a]
            return K

        return diagonal
    Kc = np.asarray(model.mobility_tensor(), dtype=float)
    flat = Kc.reshape(nd, nd, -1)
    if np.all(flat == flat[:, :, :1]):
        K0 = flat[:, :, :1].copy()
        return lambda pts: np.broadcast_to(K0, (nd, nd, *np.shape(pts[0])))
    interp = _CellInterpolator(grid, Kc.reshape(nd * nd, *grid.shape))
    return lambda pts: interp(list(pts)).reshape(nd, nd, -1)


def _symmetric_root(K: np.ndarray, white: np.ndarray) -> np.ndarray:
    """σ w with σσᵀ = S = (K + Kᵀ)/2 (Cholesky, per particle): K ``(d, d, m)``, w ``(d, m)``."""
    bad = ValueError(
        "`mobility`: its symmetric part is not positive definite at some particle "
        "position (between cell centres or beyond the outer ones)"
    )
    if K.shape[0] == 2:  # closed form: L = [[√S00, 0], [S01/√S00, √(S11 − S01²/S00)]]
        s01 = 0.5 * (K[0, 1] + K[1, 0])
        with np.errstate(invalid="ignore", divide="ignore"):
            l00 = np.sqrt(K[0, 0])
            l10 = s01 / l00
            l11 = np.sqrt(K[1, 1] - l10 * l10)
        if not (np.all(l00 > 0) and np.all(l11 > 0)):
            raise bad
        return np.array([l00 * white[0], l10 * white[0] + l11 * white[1]])
    S = 0.5 * (K + np.swapaxes(K, 0, 1))
    try:
        chol = np.linalg.cholesky(np.moveaxis(S, -1, 0))
    except np.linalg.LinAlgError:
        raise bad from None
    return np.einsum("mab,bm->am", chol, white)


class _CurvedDynamics:
    r"""Euler–Maruyama for the covariant equation on a curved orthogonal grid.

    The mobility K is given by its components :math:`\hat K^{ab}` in the
    orthonormal frame :math:`\hat e_a = e_a / h_a`; its coordinate
    components are :math:`K^{ab} = \hat K^{ab} / (h_a h_b)` and K = S + A
    (S symmetric positive definite, A antisymmetric). For the density
    :math:`\rho` per unit measure the coordinate density is
    :math:`p = \sqrt g\,\rho` and

    .. math::

        \partial_t p = \partial_a\bigl(K^{ab}(p\,\partial_b E - F_b\,p)
        + T\sqrt g\,K^{ab}\,\partial_b(p/\sqrt g)\bigr).

    Writing :math:`T\sqrt g K^{ab}\partial_b(p/\sqrt g) = \partial_b(T K^{ab} p)
    - T p\,[\partial_b K^{ab} + K^{ab}\partial_b\ln\sqrt g]` and using
    :math:`\partial_a\partial_b(A^{ab}p) = 0` gives the Itô–Kolmogorov form
    :math:`\partial_t p = -\partial_a(\mu^a p) + T\partial_a\partial_b(S^{ab}p)`,
    i.e. the SDE

    .. math::

        dX^a = \Bigl[K^{ab}(F_b - \partial_b E)
        + \frac{T}{\sqrt g}\partial_b\bigl(\sqrt g\,K^{ab}\bigr)\Bigr]dt
        + \sqrt{2T}\,\sigma^{ab}\,dW_b, \qquad \sigma\sigma^{\mathsf T} = S,

    (Gardiner, *Stochastic Methods*, §4.3; Risken, *The Fokker–Planck
    Equation*, §4.2). On a flat grid (√g = 1) it is the SDE of
    :class:`_TensorDynamics`; for a scalar k, :math:`K^{ab} = k g^{ab}`
    and the last drift term is the metric drift
    :math:`(T/\sqrt g)\,\partial_a(\sqrt g\,k\,g^{aa})`. Generic grids (the
    torus, user metrics) step in coordinates with this drift and
    :math:`\sigma = H^{-1}\hat\sigma`, :math:`\hat\sigma` the Cholesky factor
    of the frame :math:`\hat S`; the derivatives are central differences.

    The chart is singular at the centre of a disc and at the poles, so there
    the particles move without it. On the **disc** the SDE is the flat one
    in Cartesian components, :math:`K_{\rm cart} = R\hat K R^{\mathsf T}`
    (:math:`R = [\hat e_r, \hat e_\varphi]`): drift
    :math:`K_{\rm cart}(F - \nabla E) + T\,\nabla\!\cdot K_{\rm cart}`
    (central differences in x, y) and noise :math:`\sigma_{\rm cart}\,dW`,
    the Cholesky factor of :math:`S_{\rm cart}`. On the **sphere** the
    particles take a tangent-plane step
    :math:`u = [\hat K\hat G + T\,\widehat{\nabla\!\cdot K}]dt +
    \sqrt{2T}\hat\sigma\,dW` in the frame (:math:`\hat G` the frame
    components of F − ∇E) and are renormalised to the sphere. The map
    :math:`n \mapsto (n + u)/|n + u|` follows the great circle to second
    order, so the step's generator is :math:`\mu\cdot\nabla f + T S:\nabla\nabla f`
    with the covariant Hessian; matching it to the chart generator
    :math:`\mu^a\partial_a f + T S^{ab}\partial_a\partial_b f` needs the
    drift :math:`K\hat G + T\,\nabla_b K^{ab}`, the covariant divergence
    (the chart term :math:`(1/\sqrt g)\partial_b(\sqrt g K^{ab})` less
    :math:`\Gamma^a_{bc}S^{bc}`, which the renormalisation supplies). The
    covariant divergence is computed in the embedding, finite at the poles
    for a smooth tensor field: :math:`\nabla\!\cdot K = P\,\partial_l\tilde
    K^{\cdot l}` for the extension :math:`\tilde K(x) = E\hat K E^{\mathsf T}`
    at :math:`x/|x|` (:math:`E = [\hat e_\theta, \hat e_\varphi]`, P the
    tangent projector), by central differences in R³.

    A constant scalar mobility keeps the closed-form steps (no tensor
    algebra). ``metric_term=False`` (tests only) moves in coordinates
    without :math:`T K^{ab}\partial_b\ln\sqrt g`; ``divergence_term=False``
    (tests only) drops :math:`T\partial_b K^{ab}` (in the chart) or
    :math:`T\nabla\!\cdot K` (disc and sphere): both are wrong models, for
    the power tests.
    """

    def __init__(
        self,
        model: Model,
        *,
        metric_term: bool = True,
        divergence_term: bool = True,
        chart: bool = False,
    ) -> None:
        grid = model.grid
        geo = grid.geometry
        if geo.scale is None:
            raise NotImplementedError(
                "particles need the scale factors of the grid's metric; a curvilinear grid "
                "read back from attributes has only its cell measures: rebuild it with "
                "Grid.curvilinear(scale_factors=...)"
            )
        self.nd, self.T = grid.ndim, model.temperature
        self._grad, self.gradient_source = _energy_gradient(model)
        self.k = _isotropic_constant(model)
        self._frame = None if self.k is not None else _frame_field(model)
        self.k_const = None
        self._force, self.f_const = _force_field(model)
        self.scale = geo.scale
        self.kind = geo.kind if (metric_term and not chart) else "chart"
        self.metric_term, self.divergence_term = metric_term, divergence_term
        self.radius = dict(geo.params).get("radius", 1.0)
        self.lo = [float(e[0]) for e in grid.edges]
        self.hi = [float(e[-1]) for e in grid.edges]
        self.steps = [1e-6 * max(1.0, abs(h - lo)) for lo, h in zip(self.lo, self.hi)]
        self.cart_step = _EPS3 * max(1.0, abs(self.hi[0]))  # disc: x, y; sphere: unit vectors

    def _drive(self, pos: np.ndarray) -> list[np.ndarray]:
        """Covariant F_a − ∂_a E at positions (per coordinate unit)."""
        g = self._grad(pos) if self._grad is not None else None
        f = self._force(pos) if self._force is not None else None
        return [
            np.broadcast_to(
                (f[a] if f is not None else self.f_const[a]) - (g[a] if g is not None else 0.0),
                pos[0].shape,
            )
            for a in range(self.nd)
        ]

    def _metric_drift(self, pos: np.ndarray) -> list[np.ndarray]:
        """(T k / √g) ∂_a(√g / h_a²) by central differences of the scale factors."""
        out = []
        for a in range(self.nd):
            vals = []
            for s in (1.0, -1.0):
                p = [np.asarray(x) for x in pos]
                p[a] = pos[a] + s * self.steps[a]
                h = self.scale(p)
                vals.append(np.prod(np.stack(h), axis=0) / h[a] ** 2)
            h = self.scale(list(pos))
            sqrt_g = np.prod(np.stack(h), axis=0)
            out.append(self.T * self.k * (vals[0] - vals[1]) / (2 * self.steps[a]) / sqrt_g)
        return out

    def _coordinate_tensor(self, pos: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Coordinate components K^{ab} = K̂^{ab}/(h_a h_b) and √g at `pos`."""
        shape = np.shape(pos[0])
        h = np.stack([np.broadcast_to(x, shape) for x in self.scale(list(pos))])
        return self._frame(list(pos)) / (h[:, None] * h[None, :]), np.prod(h, axis=0)

    def _chart_divergence(self, pos: np.ndarray, K: np.ndarray, sqrt_g: np.ndarray) -> np.ndarray:
        """T[∂_b K^{ab} + K^{ab} ∂_b ln √g] = (T/√g) ∂_b(√g K^{ab}) by central differences.

        ``divergence_term`` and ``metric_term`` switch the two parts.
        """
        out = np.zeros(pos.shape)
        for b in range(self.nd):
            up, dn = list(pos), list(pos)
            up[b], dn[b] = pos[b] + self.steps[b], pos[b] - self.steps[b]
            Ku, gu = self._coordinate_tensor(up)
            Kd, gd = self._coordinate_tensor(dn)
            if self.divergence_term:
                out += (Ku[:, b] - Kd[:, b]) / (2.0 * self.steps[b])
            if self.metric_term:
                out += K[:, b] * ((gu - gd) / (2.0 * self.steps[b]) / sqrt_g)
        return self.T * out

    def drift(self, pos: np.ndarray) -> list[np.ndarray]:
        """The coordinate drift K^{ab}(F_b − ∂_b E), without the metric term (for stiffness)."""
        drive = self._drive(pos)
        if self.k is not None:
            h = self.scale(list(pos))
            return [self.k * d / h[a] ** 2 for a, d in enumerate(drive)]
        K, _ = self._coordinate_tensor(pos)
        return [sum(K[a, b] * drive[b] for b in range(self.nd)) for a in range(self.nd)]

    def embedded_drift(self, pos: np.ndarray) -> tuple[list[np.ndarray], list, np.ndarray] | None:
        """On the disc and the sphere, where the particles move without the chart.

        Returns the drift of :meth:`drift` as a Cartesian vector field (R²
        or R³; smooth through the centre and the poles), the scale factors
        h_b that turn a coordinate derivative into one per unit length, and
        the unit vectors ê_b as Cartesian columns, shape ``(D, nd, m)``;
        None on other grids.
        """
        if self.kind not in ("polar", "sphere"):
            return None
        h = [np.broadcast_to(x, pos[0].shape) for x in self.scale(list(pos))]
        hat = [h[a] * v for a, v in enumerate(self.drift(pos))]  # frame components
        frame = _disc_frame(pos[1]) if self.kind == "polar" else _sphere_frame(pos[0], pos[1])
        return [frame[i, 0] * hat[0] + frame[i, 1] * hat[1] for i in range(len(frame))], h, frame

    def increment(
        self, pos: np.ndarray, noise: np.ndarray, tmp: np.ndarray, dt: float
    ) -> list[Any]:
        """Advance `pos` (nd, m) in place by one step; the per-axis noise variances."""
        if self.k is None:
            step = {"polar": self._tensor_disc, "sphere": self._tensor_sphere}
            return step.get(self.kind, self._tensor_chart)(pos, noise, dt)
        if self.kind == "polar":
            return self._step_disc(pos, noise, dt)
        if self.kind == "sphere":
            return self._step_sphere(pos, noise, dt)
        return self._step_chart(pos, noise, dt)

    def _step_chart(self, pos: np.ndarray, noise: np.ndarray, dt: float) -> list[Any]:
        h = self.scale(list(pos))
        drive = self._drive(pos)
        extra = self._metric_drift(pos) if self.metric_term else [0.0] * self.nd
        sig2 = []
        for a in range(self.nd):
            s2 = 2.0 * self.T * self.k * dt / h[a] ** 2
            sig2.append(s2)
            pos[a] += dt * (self.k * drive[a] / h[a] ** 2 + extra[a]) + np.sqrt(s2) * noise[a]
        return sig2

    def _step_disc(self, pos: np.ndarray, noise: np.ndarray, dt: float) -> list[Any]:
        r, phi = pos
        d = self._drive(pos)
        vr = self.k * d[0]
        vp = self.k * d[1] / np.maximum(r, 1e-300)
        c, s = np.cos(phi), np.sin(phi)
        sig = np.sqrt(2.0 * self.T * self.k * dt)
        x = r * c + dt * (vr * c - vp * s) + sig * noise[0]
        y = r * s + dt * (vr * s + vp * c) + sig * noise[1]
        pos[0] = np.hypot(x, y)
        pos[1] = _angle_into(np.arctan2(y, x), self.lo[1], self.hi[1])
        return [sig * sig, sig * sig / np.maximum(pos[0], 1e-300) ** 2]

    def _step_sphere(self, pos: np.ndarray, noise: np.ndarray, dt: float) -> list[Any]:
        th, phi = pos
        a = self.radius
        d = self._drive(pos)
        st, ct, sp, cp = np.sin(th), np.cos(th), np.sin(phi), np.cos(phi)
        sig = np.sqrt(2.0 * self.T * self.k * dt) / a  # on the unit sphere
        u_t = dt * self.k * d[0] / a**2 + sig * noise[0]  # along e_theta
        u_p = dt * self.k * d[1] / (a**2 * np.maximum(st, 1e-300)) + sig * noise[1]  # e_phi
        x = st * cp + u_t * ct * cp - u_p * sp
        y = st * sp + u_t * ct * sp + u_p * cp
        z = ct - u_t * st
        pos[0] = np.arctan2(np.hypot(x, y), z)
        pos[1] = _angle_into(np.arctan2(y, x), self.lo[1], self.hi[1])
        s2 = sig * sig * a * a
        return [s2 / a**2, s2 / (a * np.maximum(np.sin(pos[0]), 1e-300)) ** 2]

    # -- any mobility: scalar or per-axis fields, full tensors --------------------------
    def _tensor_chart(self, pos: np.ndarray, noise: np.ndarray, dt: float) -> list[Any]:
        """Coordinates: drift K G + (T/√g) ∂_b(√g K^{ab}), noise √(2T) H⁻¹ σ̂ dW."""
        shape = pos[0].shape
        h = np.stack([np.broadcast_to(x, shape) for x in self.scale(list(pos))])
        Kf = self._frame(list(pos))
        K = Kf / (h[:, None] * h[None, :])
        drive = self._drive(pos)
        mu = self._chart_divergence(pos, K, np.prod(h, axis=0))
        for a in range(self.nd):
            for b in range(self.nd):
                mu[a] += K[a, b] * drive[b]
        kick = _symmetric_root(Kf, noise) * (np.sqrt(2.0 * self.T * dt) / h)
        sig2 = [2.0 * self.T * dt * K[a, a] for a in range(self.nd)]
        pos += dt * mu + kick
        return sig2

    def _cartesian_tensor(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """K_cart = R K̂ Rᵀ at Cartesian points of the disc, ``(2, 2, m)``."""
        r = np.hypot(x, y)
        phi = _angle_into(np.arctan2(y, x), self.lo[1], self.hi[1])
        R = _disc_frame(phi)
        return np.einsum("aim,ijm,bjm->abm", R, self._frame([r, phi]), R)

    def _tensor_disc(self, pos: np.ndarray, noise: np.ndarray, dt: float) -> list[Any]:
        """The flat tensor step in the plane: drift K_cart G + T ∇·K_cart, noise σ_cart dW."""
        r, phi = pos
        Kf = self._frame([r, phi])
        d = self._drive(pos)
        g_hat = [d[0], d[1] / np.maximum(r, 1e-300)]  # frame components of F − ∇E
        v = [Kf[a, 0] * g_hat[0] + Kf[a, 1] * g_hat[1] for a in range(2)]
        R = _disc_frame(phi)
        c, s = R[0, 0], R[1, 0]
        w = _symmetric_root(np.einsum("aim,ijm,bjm->abm", R, Kf, R), noise)
        w *= np.sqrt(2.0 * self.T * dt)
        x = r * c + dt * (v[0] * c - v[1] * s) + w[0]
        y = r * s + dt * (v[0] * s + v[1] * c) + w[1]
        if self.divergence_term:
            x0, y0, e = r * c, r * s, self.cart_step
            div = (
                self._cartesian_tensor(x0 + e, y0)[:, 0] - self._cartesian_tensor(x0 - e, y0)[:, 0]
            ) / (2 * e)
            div += (
                self._cartesian_tensor(x0, y0 + e)[:, 1] - self._cartesian_tensor(x0, y0 - e)[:, 1]
            ) / (2 * e)
            x += dt * self.T * div[0]
            y += dt * self.T * div[1]
        pos[0] = np.hypot(x, y)
        pos[1] = _angle_into(np.arctan2(y, x), self.lo[1], self.hi[1])
        s2 = 2.0 * self.T * dt
        return [s2 * Kf[0, 0], s2 * Kf[1, 1] / np.maximum(pos[0], 1e-300) ** 2]

    def _embedded_apply(self, X: np.ndarray, v: np.ndarray) -> np.ndarray:
        """K̃ v, K̃ = E K̂ Eᵀ at X/|X| (the extension constant along rays), ``(3, m)``."""
        rho = np.hypot(X[0], X[1])
        r = np.hypot(rho, X[2])
        th = np.arctan2(rho, X[2])
        phi = _angle_into(np.arctan2(X[1], X[0]), self.lo[1], self.hi[1])
        safe = np.where(rho > 0, rho, 1.0)
        cp = np.where(rho > 0, X[0] / safe, np.cos(phi))
        sp = np.where(rho > 0, X[1] / safe, np.sin(phi))
        st, ct = rho / r, X[2] / r
        e_t = (ct * cp, ct * sp, -st)
        e_p = (-sp, cp)
        a0 = e_t[0] * v[0] + e_t[1] * v[1] + e_t[2] * v[2]
        a1 = e_p[0] * v[0] + e_p[1] * v[1]
        K = self._frame([th, phi])
        b0 = K[0, 0] * a0 + K[0, 1] * a1
        b1 = K[1, 0] * a0 + K[1, 1] * a1
        return np.array([e_t[0] * b0 + e_p[0] * b1, e_t[1] * b0 + e_p[1] * b1, e_t[2] * b0])

    def sphere_divergence(self, th: np.ndarray, phi: np.ndarray) -> np.ndarray:
        """Frame components (θ̂, φ̂) of the covariant divergence ∇_b K^{ab} on the sphere.

        Per unit length on a sphere of radius ``radius``. Computed in R³
        without the chart, so finite at the poles for a smooth tensor field:
        ∇·K = P Σ_e (D_e K̃) e over the tangent frame e ∈ {ê_θ, ê_φ} (the
        radial derivative of K̃ vanishes), by central differences.
        """
        E = _sphere_frame(th, phi)
        n = np.array([np.sin(th) * np.cos(phi), np.sin(th) * np.sin(phi), np.cos(th)])
        h = self.cart_step
        div = np.zeros(n.shape)
        for a in range(2):
            e = E[:, a]
            div += (self._embedded_apply(n + h * e, e) - self._embedded_apply(n - h * e, e)) / (
                2 * h
            )
        return np.einsum("iam,im->am", E, div) / self.radius

    def _tensor_sphere(self, pos: np.ndarray, noise: np.ndarray, dt: float) -> list[Any]:
        """Tangent-plane step u = [K̂ Ĝ + T ∇·K] dt + √(2T) σ̂ dW in the frame, renormalised."""
        th, phi = pos
        a = self.radius
        Kf = self._frame([th, phi])
        d = self._drive(pos)
        st, ct, sp, cp = np.sin(th), np.cos(th), np.sin(phi), np.cos(phi)
        g_hat = [d[0] / a, d[1] / (a * np.maximum(st, 1e-300))]
        v = np.array([Kf[b, 0] * g_hat[0] + Kf[b, 1] * g_hat[1] for b in range(2)])
        if self.divergence_term:
            v += self.T * self.sphere_divergence(th, phi)
        u = (dt * v + _symmetric_root(Kf, noise) * np.sqrt(2.0 * self.T * dt)) / a  # unit sphere
        x = st * cp + u[0] * ct * cp - u[1] * sp
        y = st * sp + u[0] * ct * sp + u[1] * cp
        z = ct - u[0] * st
        pos[0] = np.arctan2(np.hypot(x, y), z)
        pos[1] = _angle_into(np.arctan2(y, x), self.lo[1], self.hi[1])
        s2 = 2.0 * self.T * dt / a**2
        return [s2 * Kf[0, 0], s2 * Kf[1, 1] / np.maximum(np.sin(pos[0]), 1e-300) ** 2]


def _disc_frame(phi: np.ndarray) -> np.ndarray:
    """The unit vectors (ê_r, ê_φ) in R² as columns, shape ``(2, 2, m)``."""
    c, s = np.cos(phi), np.sin(phi)
    return np.array([[c, -s], [s, c]])


def _sphere_frame(th: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """The unit vectors (ê_θ, ê_φ) in R³ as columns, shape ``(3, 2, m)``."""
    st, ct, sp, cp = np.sin(th), np.cos(th), np.sin(phi), np.cos(phi)
    zero = np.zeros(np.shape(th))
    return np.array([[ct * cp, -sp], [ct * sp, cp], [-st, zero]])


def _measure_positions(grid: Grid, idx: tuple, pos: np.ndarray, rng: np.random.Generator) -> None:
    """Redraw positions inside their cells uniformly in the grid's measure (in place)."""
    kind = grid.kind
    e0 = grid.edges[0]
    lo, hi = e0[idx[0]], e0[idx[0] + 1]
    u = rng.random(pos.shape[1])
    if kind == "polar":
        pos[0] = np.sqrt(lo * lo + u * (hi * hi - lo * lo))
        return
    if kind == "sphere":
        c = np.cos(lo) - u * (np.cos(lo) - np.cos(hi))
        pos[0] = np.arccos(np.clip(c, -1.0, 1.0))
        return
    scale = grid.geometry.scale
    if scale is None:
        return  # read-back metric: uniform in coordinates
    flat = np.ravel_multi_index(idx, grid.shape)
    bound = 1.25 * _cell_measure_bound(grid, scale).ravel()[flat]
    todo = np.arange(pos.shape[1])
    while todo.size:
        trial = [
            grid.edges[a][idx[a][todo]] + grid.widths[a][idx[a][todo]] * rng.random(todo.size)
            for a in range(grid.ndim)
        ]
        dens = np.prod(np.stack(scale(trial)), axis=0)
        ok = rng.random(todo.size) * bound[todo] <= dens
        for a in range(grid.ndim):
            pos[a, todo[ok]] = trial[a][ok]
        todo = todo[~ok]


def _cell_measure_bound(grid: Grid, scale: Callable) -> np.ndarray:
    """max of √g over each cell's corners and centre (a rejection bound)."""
    corners = np.prod(np.stack(scale(list(np.meshgrid(*grid.edges, indexing="ij")))), axis=0)
    out = np.prod(np.stack(scale(list(grid.mesh()))), axis=0)
    for off in np.ndindex(*(2,) * grid.ndim):
        sl = tuple(slice(o, o + n) for o, n in zip(off, grid.shape))
        out = np.maximum(out, corners[sl])
    return out


# ---------------------------------------------------------------------------
# full tensor mobilities: drift K (F − ∇E) + T ∇·K, noise sqrt(2 T S)
# ---------------------------------------------------------------------------
class _TensorDynamics:
    r"""Euler–Maruyama for a full mobility tensor K = S + A.

    The Itô SDE of ∂p/∂t = ∂_a(K^{ab}(p ∂_b E − F_b p + T ∂_b p)) is

    .. math::

        dX^a = [K^{ab}(F_b − ∂_b E) + T ∂_b K^{ab}]\,dt + \sqrt{2T}\,σ^{ab}\,dW_b,
        \qquad σσ^{\mathsf T} = S,

    because ∂_a∂_b(A^{ab} p) = 0: only S enters the noise, while both parts
    enter the drift and the divergence term (∇·K)^a = ∂_b K^{ab}. σ is the
    Cholesky factor of S at each particle. ``divergence_term=False`` (tests
    only) drops T ∇·K: the wrong model, for power tests.
    """

    def __init__(self, model: Model, *, divergence_term: bool = True) -> None:
        grid = model.grid
        if grid.curved:
            raise ValueError(
                "_TensorDynamics steps on flat grids; curved grids step with _CurvedDynamics"
            )
        self.nd, self.T = grid.ndim, model.temperature
        self._grad, self.gradient_source = _energy_gradient(model)
        self._force, self.f_const = _force_field(model)
        self.k_const = None
        self._tensor = _tensor_field(model, divergence_term)

    def drift(self, pos: np.ndarray) -> list[np.ndarray]:
        """The Itô drift K (F − ∇E) + T ∇·K at positions `pos` (nd, m)."""
        K, div = self._tensor(pos)
        g = self._grad(pos) if self._grad is not None else None
        f = self._force(pos) if self._force is not None else None
        drive = [
            (f[b] if f is not None else self.f_const[b]) - (g[b] if g is not None else 0.0)
            for b in range(self.nd)
        ]
        return [
            np.broadcast_to(
                sum(K[a, b] * drive[b] for b in range(self.nd)) + self.T * div[a], pos[0].shape
            )
            for a in range(self.nd)
        ]

    def increment(
        self, pos: np.ndarray, noise: np.ndarray, tmp: np.ndarray, dt: float
    ) -> list[Any]:
        """Advance `pos` (nd, m) in place; returns the per-axis noise variances 2 T S_aa dt."""
        K, _ = self._tensor(pos)
        drift = self.drift(pos)
        S = 0.5 * (K + np.swapaxes(K, 0, 1))
        chol = np.linalg.cholesky(np.moveaxis(S.reshape(self.nd, self.nd, -1), -1, 0))
        scale = np.sqrt(2.0 * self.T * dt)
        step = np.einsum("mab,bm->am", chol, noise.reshape(self.nd, -1)) * scale
        for a in range(self.nd):
            pos[a] += dt * drift[a] + step[a].reshape(pos[a].shape)
        return [2.0 * self.T * dt * S[a, a] for a in range(self.nd)]


def _tensor_field(model: Model, divergence_term: bool) -> Callable:
    """A callable giving (K, ∇·K) at positions: K of shape (nd, nd, m)."""
    grid, nd = model.grid, model.grid.ndim
    zero = [0.0] * nd
    if model.mobility_function is not None:
        steps = [_EPS3 * max(1.0, float(np.max(np.abs(e)))) for e in grid.edges]

        def field(pos: np.ndarray) -> tuple[np.ndarray, list[Any]]:
            pts = [np.asarray(x) for x in pos]
            K = model.mobility_tensor_at(pts)
            if not divergence_term:
                return K, zero
            div = [np.zeros(pts[0].shape) for _ in range(nd)]
            for b in range(nd):
                up, dn = list(pts), list(pts)
                up[b], dn[b] = pts[b] + steps[b], pts[b] - steps[b]
                dK = (model.mobility_tensor_at(up) - model.mobility_tensor_at(dn)) / (2 * steps[b])
                for a in range(nd):
                    div[a] = div[a] + dK[a, b]
            return K, div

        return field
    Kc = model.mobility_tensor()
    flat = Kc.reshape(nd, nd, -1)
    if np.all(flat == flat[:, :, :1]):
        K0 = flat[:, :, 0]
        return lambda pos: (K0[:, :, None] * np.ones(np.shape(pos[0])), zero)
    divs = np.stack([sum(_cell_gradient(grid, Kc[a, b], b) for b in range(nd)) for a in range(nd)])
    interp = _CellInterpolator(grid, np.concatenate([Kc.reshape(nd * nd, *grid.shape), divs]))

    def cells(pos: np.ndarray) -> tuple[np.ndarray, list[Any]]:
        v = interp(pos)
        K = v[: nd * nd].reshape(nd, nd, -1)
        return K, (list(v[nd * nd :]) if divergence_term else zero)

    return cells

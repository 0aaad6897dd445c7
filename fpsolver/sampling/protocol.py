r"""Particles under a time-dependent model, with the work of every trajectory.

:func:`simulate_protocol` runs Euler–Maruyama on

    dx = K (F(x, t) − ∇E(x, t)) dt + sqrt(2 T(t) K) dW

(constant diagonal mobility K) and books the work of each trajectory as
Sekimoto's W = ∫ ∂_t E(x_t, t) dt, discretised at fixed position over each
step:

    W += E(x_n, t_{n+1}) − E(x_n, t_n),

and a jump of the protocol at a declared breakpoint t_b in full, as
E(x, t_b⁺) − E(x, t_b⁻) at the particle's position then. Euler–Maruyama has an
O(dt) weak error (also in the work statistics); choose dt so it is well
below the sampling error (Kloeden & Platen, *Numerical Solution of SDEs*,
1992, §14). Reflecting walls reflect, periodic axes wrap; absorbing walls
are not supported here. Jarzynski's and Crooks' relations on the result:
:mod:`fpsolver.sampling.fluctuation`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core.initial import density_array
from ..core.protocol import TimeDependentModel, _at_time, takes_time
from ..core.schedule import positive, substeps

__all__ = ["simulate_protocol"]


class _Fields:
    """E, ∇E and the force of a time-dependent model at particle positions."""

    def __init__(self, model: TimeDependentModel) -> None:
        self.model = model
        self.names = model.grid.names
        probe = model.at(model.t0)
        cells = probe.mobility_cells().reshape(model.grid.ndim, -1)
        if (
            "mobility" in model.depends
            or probe.mobility_function is not None
            or not np.all(cells == cells[:, :1])
        ):
            raise ValueError(
                "`mobility` must be constant (a scalar or one value per axis) for particles "
                "under a time-dependent model"
            )
        if probe.boundary.absorbing:
            raise ValueError("absorbing walls are not supported for particles under a protocol")
        self.mobility = cells[:, 0]
        self.step = 1e-5 * np.array([max(1.0, float(np.ptp(e))) for e in model.grid.edges])

    def _call(self, func: Any, t: float, pos: np.ndarray) -> Any:
        if takes_time(func):
            return _at_time(func, self.names, t)(*pos)
        probe = self.model.at(self.model.t0)
        return probe.evaluate(func, list(pos), "energy")

    def energy(self, t: float, pos: np.ndarray) -> np.ndarray:
        e = self.model.energy
        if not callable(e):
            raise ValueError("particles need the energy as a callable")
        out = np.broadcast_to(np.asarray(self._call(e, t, pos), float), pos.shape[1:])
        if not np.all(np.isfinite(out)):
            raise ValueError(f"`energy` is not finite at some particle position at t={t:g}")
        return out

    def gradient(self, t: float, pos: np.ndarray) -> np.ndarray:
        grad = self.model.energy_gradient
        if grad is not None:
            return _components(self._call(grad, t, pos), pos.shape, "energy_gradient")
        out = np.empty_like(pos)
        for a, h in enumerate(self.step):
            up, dn = pos.copy(), pos.copy()
            up[a] += h
            dn[a] -= h
            out[a] = (self.energy(t, up) - self.energy(t, dn)) / (2 * h)
        return out

    def force(self, t: float, pos: np.ndarray) -> np.ndarray | float:
        f = self.model.force
        if f is None:
            return 0.0
        if callable(f):
            return _components(self._call(f, t, pos), pos.shape, "force")
        return np.asarray(f, float).reshape(-1, 1)


def _components(out: Any, shape: tuple[int, ...], name: str) -> np.ndarray:
    """A vector field's value at the particles as an array of shape (ndim, n)."""
    if not isinstance(out, (list, tuple)):
        arr = np.asarray(out, float)
        out = list(arr) if arr.ndim == 2 and arr.shape[0] == shape[0] else [arr]
    if len(out) != shape[0]:
        raise ValueError(f"`{name}` must return {shape[0]} components, got {len(out)}")
    return np.array([np.broadcast_to(np.asarray(c, float), shape[1:]) for c in out])


def _initial(model: TimeDependentModel, p0: Any, n: int, rng: np.random.Generator) -> np.ndarray:
    grid = model.grid
    arr = np.asarray(p0, float) if not callable(p0) and not hasattr(p0, "dims") else None
    if arr is not None and arr.ndim == 2 and arr.shape[1] == grid.ndim and arr.shape != grid.shape:
        if arr.shape[0] != n:
            raise ValueError(f"`n`={n} but `p0` holds {arr.shape[0]} positions")
        return np.ascontiguousarray(arr.T)
    w = (density_array(grid, p0, "p0") * grid.volumes).ravel()
    cdf = np.cumsum(w) / np.sum(w)
    flat = np.minimum(np.searchsorted(cdf, rng.random(n), side="right"), grid.size - 1)
    idx = np.unravel_index(flat, grid.shape)
    return np.array(
        [grid.edges[a][idx[a]] + grid.widths[a][idx[a]] * rng.random(n) for a in range(grid.ndim)]
    )


def _walls(model: TimeDependentModel, pos: np.ndarray) -> None:
    """Reflect at bounded walls, wrap periodic axes (in place)."""
    grid = model.grid
    for a in range(grid.ndim):
        lo, hi = grid.edges[a][0], grid.edges[a][-1]
        x = pos[a]
        if grid.periodic[a]:
            pos[a] = lo + np.mod(x - lo, hi - lo)
            continue
        for _ in range(4):  # a step longer than the box is reflected repeatedly
            x = np.where(x < lo, 2 * lo - x, x)
            x = np.where(x > hi, 2 * hi - x, x)
        pos[a] = np.clip(x, lo, hi)


def simulate_protocol(
    model: TimeDependentModel,
    p0: Any,
    n: int,
    t_end: float,
    dt: float,
    *,
    seed: int | None = None,
    save_every: float | None = None,
):
    """Euler–Maruyama particles under a time-dependent model, with per-trajectory work.

    Parameters
    ----------
    model : TimeDependentFokkerPlanck
        Energy as a callable; constant mobility; no absorbing walls.
    p0 : density or array of shape (n, ndim)
        Initial density on the grid (particles drawn cell by cell, uniform
        within a cell) or the initial positions.
    n : int
        Number of particles.
    t_end, dt : float
        Final time (from ``model.t0``) and the time step; steps land on
        every save time and breakpoint of the model.
    seed : int, optional
        Seed of the numpy Generator (recorded in ``attrs``).
    save_every : float, optional
        Interval at which the mean work and the mean position are saved.

    Returns
    -------
    xarray.Dataset
        ``work`` (dim ``particle``): each trajectory's W; ``position``
        (``particle``, ``axis``) at t_end; ``mean_work`` and ``mean``
        (dim ``time``); attrs with ``temperature`` (T at t0), ``isothermal``,
        ``delta_f_grid`` = F_eq(t_end) − F_eq(t0) of the discrete model,
        ``dt``, ``seed``.

    Examples
    --------
    >>> import numpy as np, fpsolver as fp
    >>> g = fp.Grid(x=(-6, 6, 240))
    >>> m = fp.FokkerPlanck(g, energy=lambda x, t: 0.5 * (1 + t) * x**2)
    >>> parts = m.simulate_particles(m.at(0).equilibrium(), 2000, 1.0, 0.01, seed=1)
    >>> parts.work.shape, round(parts.attrs["delta_f_grid"], 3)
    ((2000,), 0.347)
    """
    n = int(positive(n, "n"))
    dt = positive(dt, "dt")
    t0, t_end = model.t0, float(t_end)
    if not (np.isfinite(t_end) and t_end > t0):
        raise ValueError(f"`t_end` must be after t0={t0:g}, got {t_end}")
    fields = _Fields(model)
    rng = np.random.default_rng(seed)
    pos = _initial(model, p0, n, rng)
    every = t_end - t0 if save_every is None else positive(save_every, "save_every")
    count = int(np.ceil((t_end - t0) / every - 1e-9))
    saves = {min(t0 + k * every, t_end) for k in range(1, count + 1)}
    stops = sorted(saves | {b for b in model.breakpoints if t0 < b < t_end} | {t_end})
    work = np.zeros(n)
    times, mean_work, means = [t0], [0.0], [pos.mean(axis=1)]
    K = fields.mobility.reshape(-1, 1)
    t = t0
    breaks = set(model.breakpoints)
    for stop in stops:
        hs = substeps(stop - t, dt)
        for i, h in enumerate(hs):
            last = i == len(hs) - 1
            t_next = stop if last else t + h
            t_eval = float(np.nextafter(stop, -np.inf)) if last and stop in breaks else t_next
            T = model.temperature_at(t)
            drift = K * (fields.force(t, pos) - fields.gradient(t, pos))
            work += fields.energy(t_eval, pos) - fields.energy(t, pos)
            pos = pos + h * drift + np.sqrt(2 * T * K * h) * rng.standard_normal(pos.shape)
            _walls(model, pos)
            t = t_next
        t = stop
        if stop in breaks:  # the jump at fixed position, E(x, t_b⁺) − E(x, t_b⁻)
            work += fields.energy(t, pos) - fields.energy(float(np.nextafter(t, -np.inf)), pos)
        times.append(t)
        mean_work.append(float(work.mean()))
        means.append(pos.mean(axis=1))
    return _dataset(model, work, pos, times, mean_work, means, dict(dt=dt, seed=seed, n=n))


def _dataset(model, work, pos, times, mean_work, means, run: dict[str, Any]):
    import xarray as xr

    T0 = model.temperature_at(model.t0)
    t_end = times[-1]
    iso = "temperature" not in model.depends
    ds = xr.Dataset(
        {
            "work": ("particle", work, {"long_name": "work on each trajectory", "units": "energy"}),
            "position": (("particle", "axis"), pos.T, {"long_name": "final position"}),
            "mean_work": ("time", np.array(mean_work), {"long_name": "mean work <W>"}),
            "mean": (("time", "axis"), np.array(means), {"long_name": "mean position"}),
        },
        coords={"time": np.array(times), "axis": list(model.grid.names)},
    )
    ds.attrs.update(
        title="particles under a time-dependent model (fpsolver)",
        temperature=T0,
        isothermal=int(iso),
        t0=model.t0,
        t_end=t_end,
        delta_f_grid=model.equilibrium_free_energy(t_end) - model.equilibrium_free_energy(model.t0),
        dt=run["dt"],
        n=run["n"],
        seed="none" if run["seed"] is None else int(run["seed"]),
    )
    return ds

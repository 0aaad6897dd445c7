"""What the time loop does besides stepping: diagnostics, storage, stops, progress.

The loop (:func:`fpsolver.integrate.driver.integrate`) calls every tracker's
``on_step(t, p)`` after each accepted step and ``on_frame(t, p, info)`` at
each saved time, in order; ``finalize()`` runs at the end, also when the
run is interrupted. Either hook may return True to stop the run. ``info``
is one dict per frame that the trackers share: :class:`DiagnosticsTracker`
fills it with the diagnostics, :class:`Storage` keeps it with the frame.
This keeps the loop itself free of side concerns.
"""

from __future__ import annotations

import math
import sys
import time as _time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from ..core import diagnostics as dg
from ..discrete.operator import Model, Operator, as_operator

__all__ = [
    "DIAGNOSTICS",
    "Diagnostics",
    "Tracker",
    "DiagnosticsTracker",
    "Storage",
    "EquilibriumStop",
    "ProgressTracker",
    "CallbackTracker",
    "build_dataset",
]

#: Diagnostic variables of a result: name → (long_name, units).
DIAGNOSTICS: dict[str, tuple[str, str]] = {
    "mass": ("total probability sum(V p)", "1"),
    "mean_energy": ("mean energy <E>", "energy"),
    "entropy": ("entropy -sum(V p ln p)", "1"),
    "free_energy": ("free energy <E> - T H", "energy"),
    "relative_entropy": ("relative entropy KL(p||q) to the discrete Gibbs density", "1"),
    "relative_entropy_ss": ("relative entropy KL(p||p_ss) to the stationary density", "1"),
    "absorbed": ("probability absorbed by the walls", "1"),
    "negative_mass": ("sum(V max(-p, 0)), left out of entropy-type diagnostics", "1"),
    "step_size": ("last time step before this frame", "1"),
}


class Tracker:
    """Base tracker: override any of the hooks; return True from one to stop the run."""

    def on_step(self, t: float, p: np.ndarray) -> bool | None:
        """Called after every accepted step, with the new time and density (flat)."""

    def on_frame(self, t: float, p: np.ndarray, info: dict[str, Any]) -> bool | None:
        """Called at every saved time with the density (flat, read-only) and the frame's info."""

    def finalize(self) -> None:
        """Called once at the end, also after an interruption."""


class Diagnostics:
    """Thermodynamic diagnostics of a density on `model`'s grid.

    All sums use the scheme's own cell volumes. For a non-reversible model
    without absorbing walls the KL divergence to the stationary density
    (``relative_entropy_ss``) is added; with an absorbing wall, ``absorbed``
    (the mass that left). ``mean`` and ``covariance`` of the density are
    included (per axis), as in the particle results.

    Second-order methods other than backward Euler can leave tiny negative
    values where the density falls by orders of magnitude per step (the far
    tails of a narrow initial peak). Entropy-type diagnostics (``entropy``,
    ``free_energy``, ``relative_entropy``) are then evaluated on
    p⁺ = max(p, 0), and the part left out is reported as ``negative_mass``
    (exactly 0 for backward Euler), so a value like 1e-20 shows the
    clipping is immaterial while a large one flags a step too long for the
    method.

    Examples
    --------
    >>> import fpsolver as fp
    >>> m = fp.FokkerPlanck(fp.Grid(x=(-3, 3, 40)), energy=lambda x: x**2 / 2)
    >>> d = Diagnostics(m)(m.equilibrium().values)
    >>> abs(d["relative_entropy"]) < 1e-14, abs(d["mass"] - 1) < 1e-14
    (True, True)
    """

    def __init__(self, model: Model | Operator, initial_mass: float = 1.0) -> None:
        op = as_operator(model)
        self.volumes = op.grid.volumes
        self.energy = op.model.energy
        g = op.grid
        self._centers = [g._along(a, g.centers[a]) for a in range(g.ndim)]
        self._widths = [g._along(a, g.widths[a]) for a in range(g.ndim)]
        self.temperature = op.temperature
        self.log_q = op.log_equilibrium
        self.absorbing = op.absorbing
        self.initial_mass = float(initial_mass)
        self.log_pss: np.ndarray | None = None
        if not op.reversible and not op.absorbing:
            # KL(p‖p_ss) is the Lyapunov function of a non-equilibrium model;
            # with an absorbing wall there is no stationary density.
            with np.errstate(divide="ignore"):
                self.log_pss = np.log(op.stationary_density)

    def kl(self, p: np.ndarray) -> float:
        """The Lyapunov functional the equilibrium stop watches.

        KL(p‖q) for reversible models, KL(p‖p_ss) otherwise.
        """
        p = np.reshape(p, self.volumes.shape)
        p = np.where(p < 0, 0.0, p)
        if self.log_pss is not None:
            return dg.relative_entropy(self.volumes, self.log_pss, p)
        return dg.relative_entropy(self.volumes, self.log_q, p)

    def __call__(self, p: np.ndarray) -> dict[str, float]:
        p = np.reshape(p, self.volumes.shape)
        V, E, T = self.volumes, self.energy, self.temperature
        negative = p < 0
        pp = np.where(negative, 0.0, p) if negative.any() else p
        out = {
            "mass": dg.mass(V, p),
            "mean_energy": dg.mean_energy(V, E, p),
            "entropy": dg.entropy(V, pp),
            "free_energy": dg.free_energy(V, E, T, pp),
            "relative_entropy": dg.relative_entropy(V, self.log_q, pp),
            "negative_mass": float(np.sum(V * (pp - p))),
        }
        if self.log_pss is not None:
            out["relative_entropy_ss"] = dg.relative_entropy(V, self.log_pss, pp)
        if self.absorbing:
            out["absorbed"] = self.initial_mass - out["mass"]
        return out

    def moments(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean (ndim,) and covariance (ndim, ndim) of the normalised density."""
        p = np.reshape(p, self.volumes.shape)
        return dg.moments(self.volumes, self._centers, self._widths, p)

    def frames(self, stack: np.ndarray) -> dict[str, np.ndarray]:
        """The diagnostics of every frame of `stack` (frames × cells), as arrays.

        The same quantities as calling the instance and :meth:`moments` on
        each frame (equal to rounding), as matrix–vector products over the
        frames: no Python work per frame.

        Examples
        --------
        >>> import numpy as np, fpsolver as fp
        >>> m = fp.FokkerPlanck(fp.Grid(x=(-3, 3, 40)), energy=lambda x: x**2 / 2)
        >>> d = Diagnostics(m); q = m.equilibrium().values
        >>> out = d.frames(np.stack([q, 2 * q]))
        >>> bool(np.allclose(out["mass"], [1, 2])), out["mean"].shape, out["covariance"].shape
        (True, (2, 1), (2, 1, 1))
        >>> bool(np.isclose(out["entropy"][0], d(q)["entropy"], rtol=1e-13))
        True
        """
        P = np.asarray(stack, float).reshape(len(stack), -1)
        V = self.volumes.ravel()
        negative = (P < 0).any(axis=1)
        pp = np.where(P < 0, 0.0, P) if negative.any() else P
        with np.errstate(divide="ignore", invalid="ignore"):
            logp = np.log(np.where(pp > 0, pp, 1.0))
        plogp = pp * logp
        E = np.broadcast_to(self.energy, self.volumes.shape).ravel()
        w = V * P  # row sums below add in the order of the per-frame sums

        def total(a: np.ndarray) -> np.ndarray:
            return np.sum(a, axis=1)

        out = {
            "mass": total(w),
            "mean_energy": total(w * E),
            "entropy": -total(V * plogp),
            "free_energy": total(V * (pp * E + self.temperature * plogp)),
            "relative_entropy": self._kl_frames(pp, logp, self.log_q),
            "negative_mass": total(V * (pp - P)),
        }
        if self.log_pss is not None:
            out["relative_entropy_ss"] = self._kl_frames(pp, logp, self.log_pss)
        if self.absorbing:
            out["absorbed"] = self.initial_mass - out["mass"]
        out["mean"], out["covariance"] = self._moments_frames(w, out["mass"])
        return out

    def _kl_frames(self, pp: np.ndarray, logp: np.ndarray, log_ref: np.ndarray) -> np.ndarray:
        """Σ V p ln(p/q) of each frame (+inf where p > 0 on a cell with q = 0)."""
        log_ref = np.broadcast_to(log_ref, self.volumes.shape).ravel()
        with np.errstate(invalid="ignore"):
            terms = np.where(pp > 0, pp * (logp - log_ref), 0.0)
        return np.sum(self.volumes.ravel() * terms, axis=1)

    def _moments_frames(self, w: np.ndarray, total: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and covariance of each frame of weights `w` (as :func:`dg.moments`).

        From the frames' marginals: the centres and widths vary along their
        own axis only, so the sums over the cells are sums over one axis (the
        means and variances) or two (the covariances) of marginal weights,
        one pass over the frames per pair of axes.
        """
        nd, n = len(self._centers), len(w)
        W = w.reshape((n, *self.volumes.shape))
        x = [np.ravel(c) for c in self._centers]
        h2 = [np.ravel(h) ** 2 / 12.0 for h in self._widths]
        pairs = {}  # (a, b), b < a: the weights summed over the other axes, (n, N_b, N_a)
        for a in range(nd):
            for b in range(a):
                others = tuple(k + 1 for k in range(nd) if k not in (a, b))
                pairs[a, b] = W.sum(axis=others) if others else W
        marginals = [W] if nd == 1 else [pairs[1, 0].sum(axis=2)]
        marginals += [pairs[a, 0].sum(axis=1) for a in range(1, nd)]
        with np.errstate(divide="ignore", invalid="ignore"):
            mean = np.stack([m @ xa for m, xa in zip(marginals, x)], axis=1) / total[:, None]
            cov = np.empty((n, nd, nd))
            d = [x[a][None, :] - mean[:, a : a + 1] for a in range(nd)]
            for a in range(nd):
                cov[:, a, a] = np.einsum("fi,fi->f", marginals[a], d[a] * d[a] + h2[a]) / total
                for b in range(a):
                    cross = np.einsum("fji,fj,fi->f", pairs[a, b], d[b], d[a])
                    cov[:, a, b] = cov[:, b, a] = cross / total
        empty = ~(total > 0)  # everything absorbed: the moments are undefined
        mean[empty], cov[empty] = np.nan, np.nan
        return mean, cov


class DiagnosticsTracker(Tracker):
    """Adds the :class:`Diagnostics` of every frame to its ``info``.

    Warns once (``RuntimeWarning``) when a frame has a negative mass above
    `negative_tol` of its mass: the step is too long for the method on this
    data (Crank–Nicolson rings on rough data), and the entropy-type
    diagnostics leave that part out.
    """

    #: Frames per batch of :meth:`fill`: about this many cells at once (larger
    #: batches raise the peak memory by their temporaries, measured +68 MiB at 2**21
    #: on a 48³ run, and gain nothing).
    BATCH_CELLS = 2**17

    def __init__(
        self, diagnostics: Diagnostics, method: str = "", negative_tol: float = 1e-8
    ) -> None:
        self.diagnostics = diagnostics
        self.method = method
        self.negative_tol = float(negative_tol)
        self.warned = False
        #: When True, :meth:`on_frame` leaves ``info`` alone and :meth:`fill`
        #: adds the diagnostics of all stored frames at once (set it only when
        #: no other tracker reads them during the run).
        self.deferred = False

    def on_frame(self, t: float, p: np.ndarray, info: dict[str, Any]) -> None:
        if self.deferred:
            return
        info.update(self.diagnostics(p))
        info["mean"], info["covariance"] = self.diagnostics.moments(p)
        self._check(t, info["negative_mass"], info["mass"])

    def fill(self, storage: Storage) -> None:
        """Add the diagnostics to every frame of `storage` that lacks them, in batches."""
        todo = [i for i, info in enumerate(storage.infos) if "mass" not in info]
        cells = max(1, int(np.prod(self.diagnostics.volumes.shape)))
        size = max(1, self.BATCH_CELLS // cells)
        for start in range(0, len(todo), size):
            chunk = todo[start : start + size]
            out = self.diagnostics.frames(np.stack([storage.frames[i] for i in chunk]))
            for j, i in enumerate(chunk):
                info = storage.infos[i]
                info.update({k: (v[j] if v.ndim > 1 else float(v[j])) for k, v in out.items()})
                self._check(storage.times[i], info["negative_mass"], info["mass"])

    def _check(self, t: float, negative: float, total: float) -> None:
        if not self.warned and negative > self.negative_tol * abs(total):
            self.warned = True
            warnings.warn(
                f"method={self.method!r} produced negative densities (negative mass "
                f"{negative:.3g} at t={t:g}): the step is too long for this method on this "
                "data; use a smaller dt or an L-stable method ('tr_bdf2', 'backward_euler')",
                RuntimeWarning,
                stacklevel=3,
            )


class Storage(Tracker):
    """Keeps every frame (read-only) and its info; :meth:`dataset` builds the result."""

    def __init__(self, model: Model | Operator) -> None:
        self.grid = as_operator(model).grid
        self.times: list[float] = []
        self.frames: list[np.ndarray] = []
        self.infos: list[dict[str, Any]] = []

    def on_frame(self, t: float, p: np.ndarray, info: dict[str, Any]) -> None:
        frame = np.array(p, dtype=float).reshape(self.grid.shape)
        frame.setflags(write=False)  # later trackers and callbacks see it read-only
        self.times.append(float(t))
        self.frames.append(frame)
        self.infos.append(dict(info))

    def load(self, ds: Any) -> None:
        """Take the frames of an earlier result `ds` (resuming a run)."""
        names = self.grid.names
        for i, t in enumerate(ds["time"].values):
            self.times.append(float(t))
            frame = np.array(ds["p"].isel(time=i).transpose(*names).values)
            frame.setflags(write=False)
            self.frames.append(frame)
            info = {v: float(ds[v].values[i]) for v in ds.data_vars if ds[v].dims == ("time",)}
            if "mean" in ds:
                info["mean"] = np.asarray(ds["mean"].values[i])
                info["covariance"] = np.asarray(ds["covariance"].values[i])
            self.infos.append(info)

    def dataset(self, attrs: dict[str, Any]):
        """The result so far as an :class:`xarray.Dataset` (see :func:`build_dataset`)."""
        return build_dataset(self.grid, self.times, self.frames, self.infos, attrs)


class EquilibriumStop(Tracker):
    """Stops the run once the relative entropy falls below `tol`.

    Watches KL(p‖q) for reversible models and KL(p‖p_ss) otherwise
    (:meth:`Diagnostics.kl`); ``converged`` says whether it fired.
    """

    def __init__(self, diagnostics: Diagnostics, tol: float) -> None:
        self.diagnostics = diagnostics
        self.tol = float(tol)
        self.converged = False
        self.last = math.inf

    def _check(self, p: np.ndarray) -> bool:
        self.last = self.diagnostics.kl(p)
        self.converged = self.converged or self.last < self.tol
        return self.converged

    def on_step(self, t: float, p: np.ndarray) -> bool:
        return self._check(p)

    def on_frame(self, t: float, p: np.ndarray, info: dict[str, Any]) -> bool:
        return self._check(p)


class ProgressTracker(Tracker):
    """A tqdm progress bar over simulated time.

    Parameters
    ----------
    t0, t_end : float
        Start and end time (``t_end=None`` for an open-ended run to
        equilibrium: the bar then counts steps).
    enabled : bool or None
        True: always show; False: never; None: show only when stderr is a
        terminal and, after the first second, the run is expected to take
        more than `min_seconds` in total.
    """

    def __init__(
        self,
        t0: float,
        t_end: float | None,
        enabled: bool | None = None,
        *,
        min_seconds: float = 3.0,
    ) -> None:
        self.t0, self.t_end = float(t0), t_end
        self.enabled = enabled
        self.min_seconds = min_seconds
        self.bar: Any = None
        self._start = _time.perf_counter()
        self._shown = t0
        self._decided = enabled is not None
        if enabled:
            self._open()

    def _open(self) -> None:
        from tqdm.auto import tqdm

        total = None if self.t_end is None else self.t_end - self.t0
        unit = "step" if total is None else "t"
        self.bar = tqdm(total=total, unit=unit, file=sys.stderr, leave=False, dynamic_ncols=True)
        self._shown = self.t0

    def on_step(self, t: float, p: np.ndarray) -> None:
        if self.bar is None:
            if self._decided:
                return
            elapsed = _time.perf_counter() - self._start
            if elapsed < 1.0:
                return
            self._decided = True
            if not _isatty():
                return
            if self.t_end is not None and t > self.t0:
                expected = elapsed * (self.t_end - self.t0) / (t - self.t0)
                if expected < self.min_seconds:
                    return
            self._open()
        if self.t_end is None:
            self.bar.update(1)
        else:
            self.bar.update(t - self._shown)
            self._shown = t

    def finalize(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _isatty() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


class CallbackTracker(Tracker):
    """Calls ``callback(t, p)`` at every saved frame (p read-only, with the grid shape).

    The callback may raise (e.g. ``KeyboardInterrupt``) to stop the run;
    with a checkpoint, every frame up to and including this one is on disk.
    """

    def __init__(
        self, callback: Callable[[float, np.ndarray], Any], shape: tuple[int, ...]
    ) -> None:
        if not callable(callback):
            raise TypeError(f"`callback` must be callable, got {type(callback).__name__}")
        self.callback = callback
        self.shape = tuple(shape)

    def on_frame(self, t: float, p: np.ndarray, info: dict[str, Any]) -> None:
        self.callback(t, np.reshape(p, self.shape))


def build_dataset(
    grid: Any,
    times: list[float],
    frames: list[np.ndarray],
    diags: list[dict[str, Any]],
    attrs: dict[str, Any],
):
    """Assemble the result :class:`xarray.Dataset` (see :func:`fpsolver.solve`).

    Examples
    --------
    >>> import numpy as np, fpsolver as fp
    >>> m = fp.FokkerPlanck(fp.Grid(x=(-3, 3, 40)), energy=lambda x: x**2 / 2)
    >>> q = m.equilibrium().values
    >>> ds = build_dataset(m.grid, [0.0], [q], [Diagnostics(m)(q)], {})
    >>> ds["p"].dims, sorted(ds.data_vars)[:3]
    (('time', 'x'), ['entropy', 'free_energy', 'mass'])
    """
    import xarray as xr

    coords: dict[str, Any] = dict(grid.coords())
    coords["time"] = xr.Variable(
        "time", np.asarray(times, float), attrs={"long_name": "time", "units": "1"}
    )
    dims = ("time", *grid.names)
    p = (
        np.stack([np.reshape(f, grid.shape) for f in frames])
        if frames
        else np.empty((0, *grid.shape))
    )
    data: dict[str, Any] = {
        "p": xr.Variable(dims, p, attrs={"long_name": "probability density", "units": "1/volume"})
    }
    for name, (long_name, units) in DIAGNOSTICS.items():
        if diags and name in diags[0]:
            data[name] = xr.Variable(
                "time",
                np.array([d[name] for d in diags], float),
                attrs={"long_name": long_name, "units": units},
            )
    if diags and "mean" in diags[0]:
        data["mean"] = xr.Variable(
            ("time", "axis"),
            np.array([d["mean"] for d in diags], float),
            attrs={"long_name": "mean position <x>", "units": "1"},
        )
        data["covariance"] = xr.Variable(
            ("time", "axis", "axis2"),
            np.array([d["covariance"] for d in diags], float),
            attrs={"long_name": "covariance of the position", "units": "1"},
        )
        coords["axis"] = ("axis", list(grid.names))
        coords["axis2"] = ("axis2", list(grid.names))
    ds = xr.Dataset(data, coords=coords)
    ds.attrs.update(attrs)
    return ds

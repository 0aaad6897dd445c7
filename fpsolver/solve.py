"""The time loop: integrate dp/dt = L p and return an xarray Dataset.

:func:`solve` owns the one time loop. It picks a stepper from
:data:`fpsolver.steppers.METHODS`, a linear solver from
:mod:`fpsolver.linsolve`, lands steps exactly on the save times, computes
the diagnostics at every saved time, and hands frames to
the trackers (progress bar, callback, checkpoint).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ._version import __version__
from .diagnostics import mass
from .initial import as_density
from .linsolve import LinearSolver
from .steppers import AdaptiveTRBDF2, Exponential, get_stepper
from .trackers import (
    CallbackTracker,
    CheckpointTracker,
    Diagnostics,
    ProgressTracker,
    Tracker,
    build_dataset,
)

if TYPE_CHECKING:
    from .model import FokkerPlanck

__all__ = ["solve"]

_LAND = 1e-9  # a remainder below this fraction of dt counts as landed


def substeps(span: float, dt: float) -> list[float]:
    """Step sizes that cover `span` with steps of `dt`, landing exactly.

    The last step is shortened; when the remainder would be under half a
    step the last two steps share the remainder equally, so consecutive
    steps never differ by more than a factor 2 (BDF2 stays zero-stable).

    Examples
    --------
    >>> substeps(1.0, 0.25)
    [0.25, 0.25, 0.25, 0.25]
    >>> [round(h, 12) for h in substeps(1.0, 0.35)]
    [0.35, 0.35, 0.3]
    >>> [round(h, 12) for h in substeps(1.0, 0.3)]
    [0.3, 0.3, 0.2, 0.2]
    """
    if span <= 0:
        return []
    n = span / dt
    m = math.floor(n + _LAND)
    if m == 0:
        return [span]
    r = span - m * dt
    if r <= _LAND * dt:
        return [dt] * m
    if r < 0.5 * dt:
        return [dt] * (m - 1) + [0.5 * (dt + r)] * 2
    return [dt] * m + [r]


def _schedule(
    t_end: float | None,
    dt: float | None,
    save_every: float | None,
    save_at: Sequence[float] | None,
    adaptive: bool,
) -> tuple[Iterator[float], bool]:
    """Save times after t = 0 (an iterator) and whether to save every step."""
    if save_every is not None and save_at is not None:
        raise ValueError("give either `save_every` or `save_at`, not both")
    if save_at is not None:
        times = np.unique(np.asarray(save_at, float).ravel())
        if times.size and not np.all(np.isfinite(times)):
            raise ValueError(f"`save_at` must be finite, got {times.tolist()}")
        if times.size and times[0] < 0:
            raise ValueError(f"`save_at` must be non-negative, got {times[0]}")
        if t_end is not None and times.size and times[-1] > t_end:
            raise ValueError(f"`save_at` has {times[-1]} beyond `t_end`={t_end}")
        times = times[times > 0]
        listed = [float(t) for t in times]
        if t_end is not None and (not listed or listed[-1] < t_end):
            listed.append(t_end)

        def gen_at() -> Iterator[float]:
            yield from listed
            if t_end is None:
                yield math.inf

        return gen_at(), False
    every = save_every
    if every is None and not adaptive:
        every = dt
    if every is None:
        return iter([math.inf if t_end is None else t_end]), True
    every = float(every)
    if not (np.isfinite(every) and every > 0):
        raise ValueError(f"`save_every` must be positive and finite, got {save_every}")

    def gen_every() -> Iterator[float]:
        k = 1
        while True:
            t = k * every
            if t_end is not None and t >= t_end * (1 - 1e-12):
                yield t_end
                return
            yield t
            k += 1

    return gen_every(), False


def solve(
    model: FokkerPlanck,
    p0: Any,
    t_end: float | str,
    dt: float | None = None,
    method: str = "bdf2",
    *,
    save_every: float | None = None,
    save_at: Sequence[float] | None = None,
    rtol: float = 1e-4,
    atol: float = 1e-8,
    tol: float = 1e-8,
    t_max: float | None = None,
    max_steps: int = 1_000_000,
    linear_solver: str = "auto",
    linear_rtol: float = 1e-10,
    progress: bool | None = None,
    callback: Callable[[float, np.ndarray], Any] | None = None,
    checkpoint: str | Path | None = None,
    resume: bool = False,
    trackers: Sequence[Tracker] = (),
):
    """Integrate the Fokker–Planck equation of `model` from `p0`.

    Parameters
    ----------
    model : FokkerPlanck
    p0 : array, DataArray or callable
        Initial density (see :func:`fpsolver.as_density`): negative, NaN or
        zero-mass input is an error; unnormalised input is normalised with
        a warning.
    t_end : float or "equilibrium"
        Final time, or ``"equilibrium"`` to run until the relative entropy
        KL(p‖q) (KL(p‖p_ss) for a non-reversible model) falls below `tol`;
        the time reached is the last time of the result and
        ``attrs["converged"]`` says whether `tol` was met.
    dt : float
        Time step (required for fixed-step methods). For
        ``method="adaptive"`` the base of the step ladder dt·2^k and the
        first step; default 1/max|L_ii| (a cell's diffusion time).
    method : str
        A key of :data:`fpsolver.steppers.METHODS`: ``"backward_euler"``,
        ``"crank_nicolson"``, ``"bdf2"``, ``"tr_bdf2"``, ``"exponential"``
        or ``"adaptive"``.
    save_every : float, optional
        Save at multiples of this interval (and at t_end).
    save_at : sequence of float, optional
        Save at these times (and at t_end). Steps land exactly on every
        save time. Without either, every step is saved.
    rtol, atol : float
        Adaptive method only: the local error estimate e of each step must
        satisfy Σ V|e| ≤ atol + rtol·Σ V|p| (an L¹ error per step).
    tol : float
        Equilibrium stop: the relative-entropy threshold.
    t_max : float, optional
        Equilibrium stop: give up at this time (``attrs["converged"] = 0``
        and a warning).
    max_steps : int
        Safety limit on the number of steps.
    linear_solver : {"auto", "lu", "cg", "amg"}
        See :mod:`fpsolver.linsolve`. ``"auto"``: CG + AMG on the symmetric
        form for reversible 3-D grids above 5 000 cells, LU otherwise.
    linear_rtol : float
        Residual tolerance of CG.
    progress : bool, optional
        Show a tqdm bar. Default: only when stderr is a terminal and the
        solve is expected to take more than a few seconds.
    callback : callable, optional
        ``callback(t, p)`` at every saved frame (p has the grid shape); it
        may raise to stop the run (after the checkpoint is written).
    checkpoint : str or Path, optional
        netCDF file that receives every saved frame as it is produced.
        An existing file is an error unless `resume` is true.
    resume : bool
        Continue from the last frame of `checkpoint` (if the file exists),
        bit for bit as if never interrupted; `p0` is then only validated.
    trackers : sequence of Tracker
        Extra trackers (:mod:`fpsolver.trackers`).

    Returns
    -------
    xarray.Dataset
        ``p`` (dims ``("time", *axes)``), diagnostics ``mass``,
        ``mean_energy``, ``entropy``, ``free_energy``, ``relative_entropy``,
        ``step_size``, ``negative_mass`` (see :class:`~fpsolver.trackers.Diagnostics`),
        ``absorbed`` when a wall absorbs and
        ``relative_entropy_ss`` for non-reversible models; attrs with the
        temperature, method, dt, grid (``Grid.from_attrs(ds.attrs)``),
        package version, ``factorizations`` and step counts.

    Examples
    --------
    >>> import fpsolver as fp
    >>> grid = fp.Grid(x=(-8, 8, 200))
    >>> model = fp.FokkerPlanck(grid, energy=lambda x: x**2 / 2, temperature=1.0)
    >>> ds = model.solve(fp.gaussian(grid, 3.0, 0.25), t_end=1.0, dt=0.01, save_every=0.25)
    >>> ds.time.values.tolist()
    [0.0, 0.25, 0.5, 0.75, 1.0]
    >>> bool(abs(ds.mass[-1] - 1) < 1e-12), ds.attrs["factorizations"]
    (True, 2)
    >>> bool((ds.free_energy.diff("time") < 0).all())
    True
    """
    stepper_cls = get_stepper(method)
    adaptive = stepper_cls is AdaptiveTRBDF2
    grid = model.grid
    p = as_density(grid, p0, "p0").ravel()

    equilibrium = isinstance(t_end, str)
    if equilibrium and t_end != "equilibrium":
        raise ValueError(f"`t_end` must be a positive time or 'equilibrium', got {t_end!r}")
    t_final: float | None = None
    if not equilibrium:
        t_final = _positive(t_end, "t_end")
    if t_max is not None:
        t_max = _positive(t_max, "t_max")
    tol = _positive(tol, "tol")
    rtol, atol = float(rtol), float(atol)
    if adaptive and not (rtol > 0 and atol >= 0):
        raise ValueError(f"`rtol` must be > 0 and `atol` >= 0, got rtol={rtol}, atol={atol}")

    L = model.generator()
    if dt is None:
        if not adaptive:
            raise ValueError(f"`dt` is required for method={method!r} (a positive time step)")
        dt = 1.0 / max(float(np.max(np.abs(L.diagonal()))), 1e-300)
    dt = _positive(dt, "dt")

    if stepper_cls is Exponential:
        linear = LinearSolver(L)
    else:
        linear = LinearSolver.for_model(model, linear_solver, rtol=linear_rtol)
        linear.set_volumes(grid.volumes)
    stepper = stepper_cls(L, linear)
    diagnostics = Diagnostics(model, initial_mass=mass(grid.volumes, p.reshape(grid.shape)))

    targets, every_step = _schedule(t_final, dt, save_every, save_at, adaptive)
    attrs: dict[str, Any] = {
        "title": "Fokker-Planck solution (fpsolver)",
        "fpsolver_version": __version__,
        "temperature": model.temperature,
        "method": method,
        "dt": dt,
        "t_end": "equilibrium" if equilibrium else t_final,
        "linear_solver": linear.kind if stepper_cls is not Exponential else "expm_multiply",
        "boundary": model.boundary.describe(grid.names),
        "reversible": int(model.reversible),
        **grid.to_attrs(),
    }
    if adaptive:
        attrs.update(rtol=rtol, atol=atol)
    if equilibrium:
        attrs["equilibrium_tol"] = tol
    if diagnostics.stationary_note:
        attrs["note"] = diagnostics.stationary_note

    times: list[float] = []
    frames: list[np.ndarray] = []
    diags: list[dict[str, float]] = []
    counters = {"steps": 0, "rejected_steps": 0, "level": 0, "last_step": math.nan}
    t = 0.0

    checkpoint_path = None if checkpoint is None else Path(checkpoint)
    resumed = False
    if checkpoint_path is not None and checkpoint_path.exists():
        if not resume:
            raise FileExistsError(
                f"`checkpoint` file {str(checkpoint_path)!r} exists; pass resume=True to "
                "continue it or remove it"
            )
        t, p = _load_checkpoint(
            checkpoint_path, model, attrs, times, frames, diags, stepper, counters
        )
        resumed = True
        diagnostics.initial_mass = mass(grid.volumes, frames[0])

    def snapshot() -> tuple[Any, dict[str, Any]]:
        state = dict(stepper.get_state())
        state.update(
            steps=counters["steps"],
            rejected_steps=counters["rejected_steps"],
            level=counters["level"],
            last_step=counters["last_step"],
            factorizations=linear.factorizations,
        )
        a = dict(attrs, factorizations=linear.factorizations, steps=counters["steps"])
        return build_dataset(model, times, frames, diags, a), state

    all_trackers: list[Tracker] = []
    progress_tracker = ProgressTracker(t, t_final, progress)
    all_trackers.append(progress_tracker)
    if checkpoint_path is not None:
        all_trackers.append(CheckpointTracker(checkpoint_path, snapshot))
    if callback is not None:
        all_trackers.append(CallbackTracker(callback))
    all_trackers.extend(trackers)

    def record(t_now: float, p_now: np.ndarray) -> None:
        d = diagnostics(p_now)
        d["step_size"] = counters["last_step"]
        times.append(t_now)
        frame = p_now.reshape(grid.shape).copy()
        frame.setflags(write=False)  # trackers and callbacks see it read-only
        frames.append(frame)
        diags.append(d)
        for tr in all_trackers:
            tr.on_frame(t_now, frames[-1], d)

    converged = False
    try:
        if not resumed:
            record(0.0, p)
        if equilibrium and diagnostics.kl(p) < tol:
            converged = True
        for target in targets:
            if converged:
                break
            if target <= t:
                continue  # resumed past this save time
            if t_max is not None and target > t_max:
                target = t_max
            if adaptive:
                t, p, converged = _advance_adaptive(
                    stepper, model, t, p, target, dt, rtol, atol, counters,
                    all_trackers, record if every_step else None,
                    diagnostics if equilibrium else None, tol, max_steps,
                )  # fmt: skip
            else:
                t, p, converged = _advance_fixed(
                    stepper, t, p, target, dt, counters, all_trackers,
                    diagnostics if equilibrium else None, tol, max_steps,
                )  # fmt: skip
            if times[-1] != t:
                record(t, p)
            if math.isinf(target) or (t_max is not None and t >= t_max):
                break
    finally:
        for tr in all_trackers:
            tr.finalize()

    if equilibrium:
        attrs["converged"] = int(converged)
        attrs["t_reached"] = t
        if not converged:
            warnings.warn(
                f"t_end='equilibrium': relative entropy {diagnostics.kl(p):.3g} still above "
                f"`tol`={tol:g} at t={t:g}",
                RuntimeWarning,
                stacklevel=2,
            )
    attrs.update(
        factorizations=linear.factorizations,
        steps=counters["steps"],
    )
    if adaptive:
        attrs["rejected_steps"] = counters["rejected_steps"]
    if linear.kind in ("cg", "amg"):
        attrs["cg_iterations"] = linear.iterations
    return build_dataset(model, times, frames, diags, attrs)


def _positive(value: Any, name: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"`{name}` must be a positive number, got {value!r}") from None
    if not (np.isfinite(v) and v > 0):
        raise ValueError(f"`{name}` must be positive and finite, got {v}")
    return v


def _advance_fixed(stepper, t, p, target, dt, counters, trackers, diagnostics, tol, max_steps):
    """Fixed steps from t to `target` (or until equilibrium)."""
    if math.isinf(target):
        hs: Iterator[float] | list[float] = iter(lambda: dt, None)
    else:
        hs = substeps(target - t, dt)
    n = len(hs) if isinstance(hs, list) else -1
    step = stepper.step
    for i, h in enumerate(hs):
        p = step(p, h)
        counters["steps"] += 1
        counters["last_step"] = h
        t = target if i == n - 1 else t + h
        for tr in trackers:
            tr.on_step(t)
        if diagnostics is not None and diagnostics.kl(p) < tol:
            return t, p, True
        if counters["steps"] >= max_steps:
            raise RuntimeError(f"`max_steps`={max_steps} reached at t={t:g}")
    return t, p, False


def _advance_adaptive(
    stepper, model, t, p, target, dt0, rtol, atol, counters, trackers, record, diagnostics, tol,
    max_steps,
):  # fmt: skip
    """Error-controlled steps from the ladder dt0·2^k up to `target`."""
    V = model.grid.volumes.ravel()
    while t < target:
        k = counters["level"]
        h = math.ldexp(dt0, k)
        remaining = target - t
        landing = h >= remaining * (1 - _LAND)
        if landing:
            h = remaining
        new, est = stepper.step_with_error(p, h)
        err = float(np.sum(V * np.abs(est))) / (atol + rtol * float(np.sum(V * np.abs(new))))
        counters["steps"] += 1
        if not np.isfinite(err) or err > 1.0:
            counters["rejected_steps"] += 1
            drop = 1 if not np.isfinite(err) else max(1, math.ceil(math.log2(err / 0.9) / 3))
            counters["level"] = min(k, math.floor(math.log2(h / dt0))) - drop
            if math.ldexp(dt0, counters["level"]) < 1e-14 * max(1.0, abs(t)):
                raise RuntimeError(f"adaptive step size underflow at t={t:g}")
            continue
        t = target if landing else t + h
        p = new
        counters["last_step"] = h
        if not landing and err < 0.9 / 8:
            counters["level"] = k + 1
        for tr in trackers:
            tr.on_step(t)
        if record is not None:
            record(t, p)
        if diagnostics is not None and diagnostics.kl(p) < tol:
            return t, p, True
        if counters["steps"] >= max_steps:
            raise RuntimeError(f"`max_steps`={max_steps} reached at t={t:g}")
    return t, p, False


def _load_checkpoint(path, model, attrs, times, frames, diags, stepper, counters):
    from .grid import Grid
    from .io import read_checkpoint

    ds, state = read_checkpoint(path)
    if Grid.from_attrs(ds.attrs) != model.grid:
        raise ValueError(f"`checkpoint` {str(path)!r} was computed on a different grid")
    for key in ("method", "dt", "temperature", "t_end"):
        old, new = ds.attrs.get(key), attrs.get(key)
        if str(old) != str(new):
            raise ValueError(
                f"`checkpoint` {str(path)!r} has {key}={old!r}; this run has {key}={new!r}"
            )
    names = model.grid.names
    for i, t in enumerate(ds["time"].values):
        times.append(float(t))
        frames.append(np.array(ds["p"].isel(time=i).transpose(*names).values))
        diags.append({v: float(ds[v].values[i]) for v in ds.data_vars if ds[v].dims == ("time",)})
    for key in ("steps", "rejected_steps", "level"):
        counters[key] = int(state.pop(key, 0))
    counters["last_step"] = float(state.pop("last_step", math.nan))
    state.pop("factorizations", None)
    stepper.set_state(state)
    return times[-1], frames[-1].ravel().copy()

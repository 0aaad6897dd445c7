"""The user's solve: validation, trackers, checkpoints, then the loop.

:func:`solve` turns a request (model, p0, t_end, method, saving,
checkpoint) into a stepper, a :class:`~fpsolver.core.schedule.SaveSchedule`
and a list of trackers, and hands them to the thin loop
:func:`fpsolver.integrate.driver.integrate`. It sits above the numerics
because checkpoints are files (:mod:`fpsolver.io`).
"""

from __future__ import annotations

import functools
import hashlib
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._version import __version__
from ..core.diagnostics import mass
from ..core.initial import density_array
from ..core.schedule import SaveSchedule, positive
from ..core.threads import limit_threads
from ..discrete import sg
from ..discrete.operator import Model, Operator, as_operator
from ..discrete.separable import AUTO_MAX_AXIS
from ..integrate.driver import integrate
from ..integrate.meanfield import solve_meanfield
from ..integrate.protocol_run import solve_protocol
from ..integrate.steppers import Stepper, make_stepper
from ..integrate.trackers import (
    CallbackTracker,
    Diagnostics,
    DiagnosticsTracker,
    EquilibriumStop,
    ProgressTracker,
    Storage,
    Tracker,
)
from ..io import CheckpointTracker, load_checkpoint

__all__ = ["solve"]


def _mean_field_branch(func: Callable) -> Callable:
    """Route a mean-field model (E[p]) to :func:`fpsolver.integrate.meanfield.solve_meanfield`."""

    @functools.wraps(func)
    def wrapper(model: Any, p0: Any, t_end: Any, dt: Any = None, method: Any = None, **kw: Any):
        if not getattr(model, "mean_field", False):
            return func(model, p0, t_end, dt, method, **kw)
        keep = ("save_every", "save_at", "max_steps", "callback")
        other = {k: v for k, v in kw.items() if k not in keep}
        return solve_meanfield(
            model, p0, t_end, dt, method, **{k: kw[k] for k in keep if k in kw}, unsupported=other
        )

    return wrapper


@_mean_field_branch
def solve(
    model: Model | Operator,
    p0: Any,
    t_end: float | str,
    dt: float | None = None,
    method: str | None = None,
    *,
    save_every: float | None = None,
    save_at: Sequence[float] | None = None,
    rtol: float | None = None,
    atol: float = 1e-8,
    tol: float = 1e-8,
    t_max: float | None = None,
    max_steps: int = 1_000_000,
    linear_solver: str = "auto",
    linear_rtol: float | None = None,
    progress: bool | None = None,
    callback: Callable[[float, np.ndarray], Any] | None = None,
    checkpoint: str | Path | None = None,
    resume: bool = False,
    trackers: Sequence[Tracker] = (),
    threads: int | str | None = None,
):
    """Integrate the Fokker–Planck equation of `model` from `p0`.

    Parameters
    ----------
    model : FokkerPlanck or Operator
    p0 : array, DataArray or callable
        Initial density (see :func:`fpsolver.as_density`): negative, NaN or
        zero-mass input is an error; unnormalised input is normalised with
        a warning.
    t_end : float or "equilibrium"
        Final time, or ``"equilibrium"`` to run until the relative entropy
        KL(p‖q) (KL(p‖p_ss) for a non-reversible model) falls below `tol`;
        the time reached is the last time of the result and
        ``attrs["converged"]`` says whether `tol` was met.
    dt : float, optional
        Time step of the fixed-step methods. For ``method="adaptive"`` the
        base of the step ladder dt·2^k and the first step; by default the
        adaptive method picks its first step from the rate of change of
        `p0` and a ladder base that divides `save_every`.
    method : str, optional
        A key of :data:`fpsolver.integrate.steppers.METHODS`: ``"backward_euler"``,
        ``"crank_nicolson"``, ``"bdf2"``, ``"tr_bdf2"``, ``"exponential"``
        or ``"adaptive"``. Default: ``"adaptive"`` without `dt`
        (error-controlled, see `rtol`), ``"bdf2"`` with it.
    save_every : float, optional
        Save at multiples of this interval (and at t_end).
    save_at : sequence of float, optional
        Save at these times (and at t_end). Steps land exactly on every
        save time. Without either, every step is saved.
    rtol, atol : float, optional
        Adaptive method only. Without `rtol` (the default) and with a finite
        `t_end`, the L¹ time error at `t_end` is kept below atol + 0.7 of the
        grid's estimated spatial error
        (:class:`~fpsolver.integrate.steppers.AdaptiveTRBDF2`;
        ``attrs["error_control"] = "global"``). With `rtol` (and when `dt`
        is given or ``t_end="equilibrium"``, where rtol = 1e-4), the local
        error estimate e of each step must satisfy Σ V|e| ≤ atol + rtol·Σ V|p|:
        the L¹ error committed in one step, relative to the mass.
    tol : float
        Equilibrium stop: the relative-entropy threshold.
    t_max : float, optional
        Equilibrium stop: give up at this time (``attrs["converged"] = 0``
        and a warning).
    max_steps : int
        Safety limit on the number of steps.
    linear_solver : {"auto", "lu", "cg", "amg", "bicgstab"}
        See :mod:`fpsolver.discrete.linsolve`. ``"auto"``: CG on the symmetric
        form for reversible 3-D grids above 1 000 cells, BiCGStab for other
        3-D grids of that size, LU otherwise (1-D, 2-D, small 3-D).
    linear_rtol : float, optional
        Tolerance of the iterative solvers, Σ V|r| ≤ linear_rtol·Σ V|b| (an
        L¹ bound on each solve's error relative to the mass); default: the
        linear solver's own (1e-7, 1 % of a typical step error).
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
    threads : int or "all", optional
        BLAS/OpenMP threads during the solve (:mod:`fpsolver.core.threads`):
        default ``$FPSOLVER_THREADS`` or 1, which keeps a loaded machine from
        slowing the solve down; ``"all"`` leaves the libraries' defaults.
    trackers : sequence of Tracker
        Extra trackers (:class:`fpsolver.Tracker`), called after the
        built-in ones; any of them may stop the run by returning True.

    Returns
    -------
    xarray.Dataset
        ``p`` (dims ``("time", *axes)``), diagnostics ``mass``,
        ``mean_energy``, ``entropy``, ``free_energy``, ``relative_entropy``,
        ``step_size``, ``negative_mass`` (see :class:`~fpsolver.integrate.trackers.Diagnostics`),
        ``absorbed`` when a wall absorbs and
        ``relative_entropy_ss`` for non-reversible models without absorbing
        walls, ``mean`` (dims ``("time", "axis")``) and ``covariance``
        (``("time", "axis", "axis2")``) as in the particle results; attrs with the
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
    if getattr(model, "time_dependent", False):  # a protocol: fpsolver.integrate.protocol_run
        unsupported = dict(checkpoint=checkpoint, resume=resume, trackers=list(trackers))
        return solve_protocol(
            model, p0, t_end, dt, method, save_every=save_every, save_at=save_at,
            rtol=1e-4 if rtol is None else rtol,
            atol=atol, max_steps=max_steps, linear_solver=linear_solver, callback=callback,
            threads=threads, unsupported=dict(unsupported, t_max=t_max),
        )  # fmt: skip
    op = as_operator(model)
    equilibrium = _check_t_end(t_end)
    tol = positive(tol, "tol")
    t_final = None if equilibrium else positive(t_end, "t_end")
    t_stop = t_final if not equilibrium else (None if t_max is None else positive(t_max, "t_max"))
    options = dict(
        dt=dt, rtol=rtol, atol=atol, linear_solver=linear_solver, linear_rtol=linear_rtol
    )
    path = "general"
    if method is None:
        # The shape half of SeparableGenerator.preferred first: a 1-D or large model
        # never takes the separable path, so its (dense, per-axis) factors are not built.
        shape_ok = 2 <= op.grid.ndim <= 3 and max(op.grid.shape) <= AUTO_MAX_AXIS
        sep = op.separable if dt is None and shape_ok else None
        if sep is not None and sep.preferred:
            method, path = "separable", "separable"
        else:
            method = "adaptive" if dt is None else "bdf2"
    stepper = make_stepper(method, op, **options)
    schedule = _schedule(stepper, save_every, save_at, t_stop, t_final)
    _check_max_steps(stepper, t_final, max_steps)
    _warn_if_slow(stepper, t_final, method)
    p = density_array(op.grid, p0, "p0").ravel()
    attrs = _attrs(op, stepper, method, t_end if equilibrium else t_final)
    attrs["path"] = path
    if equilibrium:
        attrs["equilibrium_tol"] = tol
    run = _Run(op, stepper, attrs, p, tol if equilibrium else None)
    if checkpoint is not None:
        run.checkpoint(Path(checkpoint), resume, _fingerprint(op, method, t_end, options))
    run.chain += [CallbackTracker(callback, op.grid.shape)] if callback is not None else []
    run.chain += [ProgressTracker(run.t0, t_final, progress), *trackers]
    with limit_threads(threads) as n:
        attrs["threads"] = "all" if n is None else n
        t = run.go(schedule, max_steps)
    if run.stop is not None:
        attrs.update(converged=int(run.stop.converged), t_reached=t)
        if not run.stop.converged:
            warnings.warn(
                f"t_end='equilibrium': relative entropy {run.stop.last:.3g} still above "
                f"`tol`={tol:g} at t={t:g}",
                RuntimeWarning,
                stacklevel=2,
            )
    return run.result()


#: Trackers that never read the diagnostics of a frame while the run goes on.
_NO_INFO = (DiagnosticsTracker, Storage, EquilibriumStop, ProgressTracker, CallbackTracker)


class _Run:
    """The pieces of one solve: stepper, trackers, and where it starts."""

    def __init__(
        self, op: Operator, stepper: Stepper, attrs: dict, p: np.ndarray, tol: float | None
    ) -> None:
        self.op, self.stepper, self.attrs, self.p = op, stepper, attrs, p
        self.diagnostics = Diagnostics(op, initial_mass=mass(op.grid.volumes.ravel(), p))
        self.storage = Storage(op)
        self.stop = EquilibriumStop(self.diagnostics, tol) if tol is not None else None
        self.tracker = tracker = DiagnosticsTracker(self.diagnostics, attrs["method"])
        self.chain: list[Tracker] = [tracker, self.storage]
        self.chain += [self.stop] if self.stop is not None else []
        self.t0, self.resumed = 0.0, False

    def result(self):
        self.tracker.fill(self.storage)  # the diagnostics of deferred frames, in batches
        return self.storage.dataset(_final(self.attrs, self.stepper))

    def state(self) -> dict[str, Any]:
        """The stepper's state and counters, for a checkpoint."""
        return dict(self.stepper.get_state(), factorizations=self.stepper.factorizations)

    def checkpoint(self, path: Path, resume: bool, fingerprint: dict[str, str]) -> None:
        """Continue from `path` if it exists (and `resume`); write every frame to it."""
        if path.exists() and not resume:
            raise FileExistsError(
                f"`checkpoint` file {str(path)!r} exists; pass resume=True to "
                "continue it or remove it"
            )
        tracker = CheckpointTracker(  # takes the file's lock first
            path, self.op.grid, lambda: self.attrs, self.state, fingerprint
        )
        if path.exists():
            try:
                self.t0, self.p = load_checkpoint(path, fingerprint, self.storage, self.stepper)
            except BaseException:
                tracker.finalize()
                raise
            tracker.resume(len(self.storage.frames))
            self.diagnostics.initial_mass = mass(self.op.grid.volumes, self.storage.frames[0])
            self.resumed = True
        self.chain.append(tracker)

    def go(self, schedule: SaveSchedule, max_steps: int) -> float:
        """Run the loop (unless a resumed run is already at equilibrium); the time reached."""
        t, p = self.t0, self.p
        # No tracker reads a frame's diagnostics during the run: compute them at the end.
        self.tracker.deferred = all(type(tr) in _NO_INFO for tr in self.chain)
        done = self.resumed and self.stop is not None and self.stop.on_step(t, p)
        try:
            if not done:
                t, p, _ = integrate(
                    self.stepper, p, schedule, self.chain, t0=t, initial_frame=not self.resumed,
                    max_steps=max_steps,
                )  # fmt: skip
        finally:
            for tr in self.chain:
                tr.finalize()
        return t


def _fingerprint(op: Operator, method: str, t_end: Any, options: dict[str, Any]) -> dict[str, str]:
    """Everything that defines a run, by name: short values as text, fields as hashes."""
    model, grid = op.model, op.grid
    faces = [sg.face_points(model, a, grid.face_positions(a)) for a in range(grid.ndim)]
    fields = {
        "grid": repr(sorted(grid.to_attrs().items())),
        "energy": model.energy,
        "mobility": [model.mobility_cells()]
        + [k for a, f in enumerate(faces) if (k := model.mobility_at(a, f)) is not None],
        "force": [np.asarray(model.force_at(a, f), float) for a, f in enumerate(faces)],
        "walls": [repr(model.boundary.sides), *[w[3:] for w in op.walls]],
    }
    out = {k: "sha256:" + _digest(v) for k, v in fields.items()}
    out.update(
        temperature=repr(op.temperature),
        method=repr(method),
        t_end=repr(t_end),
        options=repr(sorted(options.items())),
        version=repr(__version__),
    )
    return out


def _digest(value: Any) -> str:
    h = hashlib.sha256()
    for item in value if isinstance(value, list) else [value]:
        for part in item if isinstance(item, tuple) else (item,):
            if isinstance(part, np.ndarray):
                h.update(np.ascontiguousarray(part, dtype=float).tobytes())
            else:
                h.update(repr(part).encode())
    return h.hexdigest()[:16]


def _check_t_end(t_end: Any) -> bool:
    """True for ``t_end="equilibrium"``; an error for other strings."""
    if isinstance(t_end, str):
        if t_end != "equilibrium":
            raise ValueError(f"`t_end` must be a positive time or 'equilibrium', got {t_end!r}")
        return True
    return False


def _schedule(stepper, save_every, save_at, t_stop, t_final) -> SaveSchedule:
    """The save schedule, told to the stepper (ladder alignment, run length, watched times).

    Without `save_every`/`save_at` a fixed-step run saves every step; an
    adaptive one too, and only the times asked for are watched.
    """
    asked = save_every is not None or save_at is not None
    if not asked and not stepper.adaptive:
        save_every = stepper.dt
    if save_every is not None:
        stepper.align(positive(save_every, "save_every"))
    if t_final is not None:
        stepper.plan(t_final)
    schedule = SaveSchedule(t_stop, every=save_every, at=save_at, every_step=stepper.adaptive)
    if asked and t_final is not None:
        stepper.watch(_save_times(schedule, t_final))
    return schedule


def _save_times(schedule: SaveSchedule, t_final: float, limit: int = 100_000) -> list[float]:
    """The save times before `t_final` (at most `limit` of them: the control looks at a few)."""
    times = []
    for t in schedule.targets():
        if not t < t_final * (1 - 1e-12) or len(times) >= limit:
            break
        times.append(t)
    return times


def _check_max_steps(stepper: Stepper, t_final: float | None, max_steps: int) -> None:
    """Refuse up front a fixed step that would need more than `max_steps` steps."""
    if stepper.adaptive or t_final is None:
        return
    needed = int(np.ceil(t_final / stepper.dt - 1e-9))
    if needed > max_steps:
        raise ValueError(
            f"`dt`={stepper.dt:g} needs {needed} steps to reach t_end={t_final:g}, more than "
            f"`max_steps`={max_steps}; use a larger dt, method='adaptive' or raise max_steps"
        )


def _warn_if_slow(stepper: Stepper, t_final: float | None, method: str) -> None:
    """Warn when a method dominated by products L·p will take minutes."""
    products = stepper.products_estimate(t_final) if t_final is not None else None
    if not products:
        return
    p = np.ones(stepper.L.shape[0])
    start = time.perf_counter()
    for _ in range(3):
        stepper.L @ p
    seconds = products * (time.perf_counter() - start) / 3
    if seconds > 60.0:
        warnings.warn(
            f"method={method!r} needs about {products:.2g} products with L here, roughly "
            f"{seconds / 60:.0f} min on this machine; 'tr_bdf2' or 'adaptive' are far "
            "cheaper on problems of this size and stiffness",
            RuntimeWarning,
            stacklevel=3,
        )


def _attrs(op: Operator, stepper: Stepper, method: str, t_end: Any) -> dict[str, Any]:
    grid = op.grid
    attrs: dict[str, Any] = {
        "title": "Fokker-Planck solution (fpsolver)",
        "fpsolver_version": __version__,
        "temperature": op.temperature,
        "method": method,
        "dt": stepper.dt,
        "t_end": t_end,
        "linear_solver": stepper.linear.kind if stepper.linear is not None else "expm_multiply",
        "boundary": op.model.boundary.describe(grid.names),
        "reversible": int(op.reversible),
        "equilibrium_free_energy": op.equilibrium_free_energy,
        **grid.to_attrs(),
    }
    if stepper.adaptive and stepper.rtol is not None:
        attrs.update(rtol=stepper.rtol, atol=stepper.atol)
    elif stepper.adaptive:
        attrs.update(error_control="global", atol=stepper.atol)
    return attrs


def _final(attrs: dict[str, Any], stepper: Stepper) -> dict[str, Any]:
    """`attrs` with the stepper's counters."""
    out = dict(attrs, factorizations=stepper.factorizations, steps=stepper.steps)
    if stepper.adaptive:
        out["rejected_steps"] = stepper.rejected_steps
    for key in ("time_error_target", "time_error_estimate", "spatial_error"):
        if getattr(stepper, key, None) is not None:
            out[key] = getattr(stepper, key)
    if stepper.linear is not None and stepper.linear.kind in ("cg", "amg", "bicgstab"):
        out["cg_iterations"] = stepper.linear.iterations
        out["linear_rtol"] = stepper.linear.rtol
    return out

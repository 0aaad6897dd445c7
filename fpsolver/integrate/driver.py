"""The time loop: step, notify the trackers, land on every save time.

:func:`integrate` is the whole loop. It knows nothing of diagnostics,
files, progress bars or equilibrium: those are trackers
(:mod:`fpsolver.integrate.trackers`), and any of them can stop the run.
The stepper owns its step sizes (:meth:`~fpsolver.integrate.steppers.Stepper.step_to`);
the :class:`~fpsolver.core.schedule.SaveSchedule` says where to land.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..core.schedule import SaveSchedule
from .steppers import Stepper
from .trackers import Tracker

__all__ = ["integrate"]


def _readonly(p: np.ndarray) -> np.ndarray:
    view = p.view()
    view.setflags(write=False)  # trackers and callbacks cannot change the state
    return view


def _frame(trackers: Sequence[Tracker], t: float, p: np.ndarray, stepper: Stepper) -> bool:
    info = {"step_size": stepper.last_step}
    view = _readonly(p)
    stop = False
    for tr in trackers:
        stop = bool(tr.on_frame(t, view, info)) or stop
    return stop


def _step(trackers: Sequence[Tracker], t: float, p: np.ndarray) -> bool:
    view = _readonly(p)
    stop = False
    for tr in trackers:
        stop = bool(tr.on_step(t, view)) or stop
    return stop


def integrate(
    stepper: Stepper,
    p: np.ndarray,
    schedule: SaveSchedule,
    trackers: Sequence[Tracker] = (),
    *,
    t0: float = 0.0,
    initial_frame: bool = True,
    max_steps: int = 1_000_000,
) -> tuple[float, np.ndarray, bool]:
    """Advance the flat density `p` from `t0` through the save times of `schedule`.

    Every tracker sees every accepted step (``on_step``) and every saved
    frame (``on_frame``), as a read-only flat array; when one returns True
    the run stops after saving the current state as a frame.

    Returns
    -------
    t : float
        The time reached.
    p : ndarray
        The density there (flat).
    stopped : bool
        Whether a tracker stopped the run.

    Raises
    ------
    RuntimeError
        When the stepper has taken `max_steps` steps.

    Examples
    --------
    >>> import fpsolver as fp
    >>> from fpsolver.integrate.steppers import make_stepper
    >>> from fpsolver.integrate.trackers import Storage
    >>> m = fp.FokkerPlanck(fp.Grid(x=(-3, 3, 30)), energy=lambda x: x**2 / 2)
    >>> store = Storage(m)
    >>> t, p, stopped = integrate(make_stepper("bdf2", m, dt=0.1),
    ...                           fp.gaussian(m.grid, 1.0, 0.2).values.ravel(),
    ...                           SaveSchedule(1.0, every=0.5), [store])
    >>> store.times, stopped
    ([0.0, 0.5, 1.0], False)
    """
    t = float(t0)
    if initial_frame and _frame(trackers, t, p, stepper):
        return t, p, True
    for target in schedule.targets():
        if target <= t:
            continue  # resumed past this save time
        while t < target:
            t, p = stepper.step_to(t, p, target)
            stop = _step(trackers, t, p)
            if stop or schedule.every_step:
                if _frame(trackers, t, p, stepper) or stop:
                    return t, p, True
            if stepper.steps >= max_steps:
                raise RuntimeError(f"`max_steps`={max_steps} reached at t={t:g}")
        if not schedule.every_step and _frame(trackers, t, p, stepper):
            return t, p, True
    return t, p, False

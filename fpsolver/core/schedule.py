"""When to save: one schedule for the grid solver and the particles.

A :class:`SaveSchedule` lists the save times after t = 0. Both
:func:`fpsolver.solve` and :func:`fpsolver.simulate_particles` step so that
they land *exactly* on every save time (shortening the step before it,
see :func:`substeps`), so their results share one time coordinate.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

__all__ = ["SaveSchedule", "substeps", "positive"]

#: A remainder below this fraction of dt counts as landed.
LAND = 1e-9


def positive(value: Any, name: str) -> float:
    """`value` as a positive finite float, or an error that names `name`.

    Examples
    --------
    >>> positive(0.5, "dt")
    0.5
    >>> positive(-1, "dt")
    Traceback (most recent call last):
    ...
    ValueError: `dt` must be positive and finite, got -1.0
    """
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"`{name}` must be a positive number, got {value!r}")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"`{name}` must be a positive number, got {value!r}") from None
    if not (np.isfinite(v) and v > 0):
        raise ValueError(f"`{name}` must be positive and finite, got {v}")
    return v


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
    m = math.floor(n + LAND)
    if m == 0:
        return [span]
    r = span - m * dt
    if r <= LAND * dt:
        return [dt] * m
    if r < 0.5 * dt:
        return [dt] * (m - 1) + [0.5 * (dt + r)] * 2
    return [dt] * m + [r]


class SaveSchedule:
    """The times at which a run saves its state.

    Parameters
    ----------
    t_end : float or None
        The final time (always saved), or None for an open-ended run (to
        equilibrium).
    every : float, optional
        Save at multiples of `every` (and at `t_end`).
    at : sequence of float, optional
        Save at these times (and at `t_end`). Not together with `every`.
    every_step : bool
        Without `every` and `at`: save after every step (adaptive runs)
        instead of only at `t_end`.

    Examples
    --------
    >>> s = SaveSchedule(1.0, every=0.4)
    >>> list(s.targets())
    [0.4, 0.8, 1.0]
    >>> list(SaveSchedule(1.0, at=[0.5, 0.25]).targets())
    [0.25, 0.5, 1.0]
    """

    def __init__(
        self,
        t_end: float | None,
        *,
        every: float | None = None,
        at: Sequence[float] | None = None,
        every_step: bool = False,
    ) -> None:
        if every is not None and at is not None:
            raise ValueError("give either `save_every` or `save_at`, not both")
        self.t_end = None if t_end is None else positive(t_end, "t_end")
        self.every = None if every is None else positive(every, "save_every")
        self.at: tuple[float, ...] | None = None if at is None else self._check_at(at)
        self.every_step = bool(every_step) and every is None and at is None

    def _check_at(self, at: Sequence[float]) -> tuple[float, ...]:
        try:
            times = np.unique(np.asarray(at, float).ravel())
        except (TypeError, ValueError):
            raise TypeError(f"`save_at` must be a sequence of times, got {at!r}") from None
        if times.size and not np.all(np.isfinite(times)):
            raise ValueError(f"`save_at` must be finite, got {times.tolist()}")
        if times.size and times[0] < 0:
            raise ValueError(f"`save_at` must be non-negative, got {times[0]}")
        if self.t_end is not None and times.size and times[-1] > self.t_end * (1 + 1e-12):
            raise ValueError(f"`save_at` has {times[-1]} beyond `t_end`={self.t_end}")
        return tuple(float(t) for t in times if t > 0)

    def __repr__(self) -> str:
        how = f"every={self.every}" if self.every else f"at={list(self.at)}" if self.at else ""
        return f"SaveSchedule(t_end={self.t_end}{', ' + how if how else ''})"

    def targets(self) -> Iterator[float]:
        """Save times after 0, ascending; ``inf`` ends an open-ended run."""
        t_end = self.t_end
        if self.at is not None:
            listed = [t for t in self.at if t_end is None or t < t_end]
            yield from listed
            yield math.inf if t_end is None else t_end
            return
        if self.every is None:
            yield math.inf if t_end is None else t_end
            return
        k = 1
        while True:
            t = k * self.every
            if t_end is not None and t >= t_end * (1 - 1e-12):
                yield t_end
                return
            yield t
            k += 1

    def times(self) -> np.ndarray:
        """All save times including 0 (finite runs only).

        Examples
        --------
        >>> SaveSchedule(0.5, every=0.25).times().tolist()
        [0.0, 0.25, 0.5]
        """
        if self.t_end is None:
            raise ValueError("an open-ended schedule has no finite list of times")
        return np.array([0.0, *self.targets()])

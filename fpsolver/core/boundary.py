"""Boundary conditions on the walls of bounded axes.

Each side of each bounded axis is ``"reflecting"`` (no flux, the default) or
``"absorbing"`` (density zero on the wall; mass leaving is recorded).
Periodic axes have no walls: their condition comes from the grid.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .grid import Grid

__all__ = ["BOUNDARY_KINDS", "Boundary", "parse_boundary"]

BOUNDARY_KINDS = ("reflecting", "absorbing")


class Boundary:
    """Per-axis, per-side wall conditions (immutable).

    Attributes
    ----------
    sides : tuple of (str, str)
        ``(lower, upper)`` kind for every axis; ``("periodic", "periodic")``
        on periodic axes.
    """

    __slots__ = ("sides",)

    def __init__(self, sides: tuple[tuple[str, str], ...]) -> None:
        object.__setattr__(self, "sides", tuple(tuple(s) for s in sides))

    def __setattr__(self, key: str, value: Any) -> None:
        raise AttributeError("Boundary is immutable")

    @property
    def absorbing(self) -> bool:
        """Whether any wall absorbs."""
        return any("absorbing" in s for s in self.sides)

    def describe(self, names: tuple[str, ...]) -> str:
        """A compact text form, e.g. ``"x: absorbing/reflecting; y: periodic"``."""
        parts = []
        for n, (lo, hi) in zip(names, self.sides):
            parts.append(f"{n}: {lo}" if lo == hi else f"{n}: {lo}/{hi}")
        return "; ".join(parts)

    def __repr__(self) -> str:
        return f"Boundary({self.sides!r})"


def _check_kind(kind: Any, where: str) -> str:
    if kind == "periodic":
        return kind  # checked against the grid's periodic axes in parse_boundary
    if not isinstance(kind, str) or kind not in BOUNDARY_KINDS:
        raise ValueError(
            f"`boundary` {where}: unknown condition {kind!r}; valid: {', '.join(BOUNDARY_KINDS)}"
        )
    return kind


def parse_boundary(grid: Grid, spec: Any) -> Boundary:
    """Turn a user boundary specification into a :class:`Boundary`.

    Parameters
    ----------
    grid : Grid
        The grid; its periodic axes get ``"periodic"`` on both sides.
    spec : str or mapping
        One kind for every wall, or a mapping from axis name to a kind or a
        ``(lower, upper)`` pair. Axes left out are reflecting. Kinds:
        ``"reflecting"``, ``"absorbing"``; ``"periodic"`` is accepted for
        axes that the grid makes periodic (periodicity is set on the
        :class:`~fpsolver.core.grid.Grid`) and is an error elsewhere.

    Examples
    --------
    >>> import fpsolver as fp
    >>> g = fp.Grid(x=(0, 1, 4), y=(0, 1, 4))
    >>> parse_boundary(g, {"x": ("absorbing", "reflecting")}).sides
    (('absorbing', 'reflecting'), ('reflecting', 'reflecting'))
    """
    if isinstance(spec, Boundary):
        if len(spec.sides) != grid.ndim:
            raise ValueError(f"`boundary` has {len(spec.sides)} axes, the grid {grid.ndim}")
        return spec
    if spec is None:
        spec = "reflecting"
    if isinstance(spec, str):
        kind = _check_kind(spec, "value")
        per_axis: dict[str, Any] = {n: kind for n in grid.names}
        explicit = set()
    elif isinstance(spec, Mapping):
        unknown = [k for k in spec if k not in grid.names]
        if unknown:
            raise ValueError(
                f"`boundary` names unknown axes {unknown}; the axes are {list(grid.names)}"
            )
        per_axis = {n: spec.get(n, "reflecting") for n in grid.names}
        explicit = set(spec)
    else:
        raise TypeError(
            "`boundary` must be a string or a mapping {axis: kind or (lower, upper)}, "
            f"got {type(spec).__name__}"
        )
    sides = []
    for n, per in zip(grid.names, grid.periodic):
        value = per_axis[n]
        if isinstance(value, str):
            lo = hi = _check_kind(value, f"axis {n!r}")
        elif isinstance(value, (tuple, list)) and len(value) == 2:
            lo = _check_kind(value[0], f"axis {n!r} lower side")
            hi = _check_kind(value[1], f"axis {n!r} upper side")
        else:
            raise ValueError(
                f"`boundary` axis {n!r}: expected a kind or a (lower, upper) pair, got {value!r}"
            )
        if "periodic" in (lo, hi) and not (per and lo == hi):
            raise ValueError(
                f"`boundary` axis {n!r}: periodicity is a property of the grid, not a wall "
                f"condition; make the axis periodic with fp.Grid(..., periodic={n!r})"
                + ("" if per else f" (axis {n!r} of this grid is bounded)")
            )
        if per:
            if n in explicit and "absorbing" in (lo, hi):
                raise ValueError(
                    f"`boundary` axis {n!r} is periodic and has no walls; "
                    "absorbing is only valid on bounded axes"
                )
            lo = hi = "periodic"
        sides.append((lo, hi))
    return Boundary(tuple(sides))

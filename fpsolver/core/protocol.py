r"""Time-dependent models (protocols): E(x, t), T(t), K(x, t), F(x, t).

A :class:`TimeDependentModel` holds the physics of

    ∂p/∂t = ∇·( K(x,t) p ∇(T(t) ln p + E(x,t)) − K F(x,t) p )

where any of the energy, force and mobility callables may take a parameter
named ``t`` and the temperature may be a callable of t. It is validated
once, by a probe at ``t0``, and :meth:`TimeDependentModel.at` returns the
frozen :class:`~fpsolver.core.model.Model` at any time. What depends on t
is recorded (:attr:`TimeDependentModel.depends`) so the re-assembly of the
generator (:mod:`fpsolver.discrete.protocol`) re-evaluates only that.

Protocols with a jump (a potential switched on at t = 1) declare the
switch times as ``breakpoints``: every stepper lands on them, evaluates the
energy on either side, and books the work of the jump.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .boundary import Boundary
from .diagnostics import log_partition
from .grid import Grid, _is_dataarray
from .model import Model

__all__ = ["TimeDependentModel", "ProtocolError", "takes_time", "is_time_dependent"]


class ProtocolError(ValueError):
    """A protocol returned an invalid value (NaN, infinite, T ≤ 0) at time `t`.

    Attributes
    ----------
    t : float
        The time at which the protocol failed.
    partial : xarray.Dataset or None
        When raised by a solve: the frames saved before the failure (the
        run's result so far, ``attrs["stopped"]`` saying why).
    """

    def __init__(self, message: str, t: float, partial: Any = None) -> None:
        super().__init__(message)
        self.t = float(t)
        self.partial = partial


def takes_time(func: Any) -> bool:
    """Whether callable `func` has a parameter named ``t``.

    Examples
    --------
    >>> takes_time(lambda x, t: x * t), takes_time(lambda x: x), takes_time(2.0)
    (True, False, False)
    """
    if not callable(func) or _is_dataarray(func):
        return False
    try:
        params = inspect.signature(func).parameters
    except (TypeError, ValueError):
        return False
    return "t" in params and params["t"].kind is not inspect.Parameter.VAR_POSITIONAL


def is_time_dependent(
    energy: Any = None, temperature: Any = None, mobility: Any = None, force: Any = None
) -> bool:
    """Whether these model arguments describe a time-dependent model.

    The energy, mobility and force depend on time when they are callables
    with a parameter named ``t``; the temperature when it is a callable.

    Examples
    --------
    >>> is_time_dependent(energy=lambda x, t: x), is_time_dependent(temperature=lambda t: 1 + t)
    (True, True)
    >>> is_time_dependent(energy=lambda x: x, temperature=0.5)
    False
    """
    return (
        takes_time(energy)
        or takes_time(mobility)
        or takes_time(force)
        or (callable(temperature) and not _is_dataarray(temperature))
    )


def _at_time(func: Any, names: Sequence[str], t: float) -> Callable[..., Any]:
    """`func` with ``t`` fixed: a field of the axis arrays only."""
    params = inspect.signature(func).parameters
    by_name = all(n in params for n in names)
    names = tuple(names)

    def field(*points: np.ndarray) -> Any:
        if by_name:
            return func(**dict(zip(names, points)), t=t)
        return func(*points, t=t)

    return field


class TimeDependentModel:
    """A Fokker–Planck model whose energy, temperature, mobility or force change in time.

    Parameters
    ----------
    grid : Grid
    energy : callable, array or float
        E(x..., t): a callable of the axis arrays and a parameter named
        ``t`` (or a time-independent energy in any form
        :class:`~fpsolver.core.model.Model` accepts).
    temperature : float or callable
        T > 0, or a callable ``T(t)`` returning a positive number.
    mobility, force : optional
        As for :class:`~fpsolver.core.model.Model`; a callable with a
        parameter named ``t`` depends on time.
    boundary : str or mapping
        As for :class:`~fpsolver.core.model.Model` (fixed in time).
    energy_gradient : callable, optional
        Exact ∇E(x..., t), used by the particle backend.
    t0 : float
        The time at which the model is probed and validated (the start of
        a run).
    breakpoints : sequence of float
        Times at which the protocol may jump; steppers land on them.

    Examples
    --------
    >>> import fpsolver as fp
    >>> g = fp.Grid(x=(-4, 4, 64))
    >>> m = fp.FokkerPlanck(g, energy=lambda x, t: 0.5 * (x - t) ** 2,
    ...                     temperature=lambda t: 1 + 0.5 * t)
    >>> sorted(m.depends), m.at(2.0).temperature
    (['energy', 'temperature'], 2.0)
    """

    #: Marks these models for :func:`fpsolver.solve`.
    time_dependent = True
    #: The class :meth:`at` returns (the public layer sets its own).
    frozen_class: type = Model

    def __init__(
        self,
        grid: Grid,
        energy: Any = 0.0,
        temperature: float | Callable[[float], float] = 1.0,
        *,
        mobility: Any = 1.0,
        force: Any = None,
        boundary: str | dict[str, Any] | Boundary = "reflecting",
        energy_gradient: Callable[..., Any] | None = None,
        t0: float = 0.0,
        breakpoints: Sequence[float] = (),
    ) -> None:
        if not isinstance(grid, Grid):
            raise TypeError(f"`grid` must be an fpsolver.Grid, got {type(grid).__name__}")
        self.grid = grid
        self.energy = energy
        self.temperature = temperature
        self.mobility = mobility
        self.force = force
        self.energy_gradient = energy_gradient
        self.t0 = _finite(t0, "t0")
        self.breakpoints = tuple(sorted(_finite(b, "breakpoints") for b in breakpoints))
        dep = {"energy": takes_time(energy), "mobility": takes_time(mobility)}
        dep["force"] = takes_time(force)
        dep["temperature"] = callable(temperature) and not _is_dataarray(temperature)
        #: The parts of the model that depend on t.
        self.depends = frozenset(k for k, v in dep.items() if v)
        self.boundary = boundary
        probe = self.at(self.t0)  # validates everything once
        self.boundary = probe.boundary
        self._static_energy = probe.energy

    # -- evaluation at one time -------------------------------------------
    def _field(self, value: Any, name: str, t: float) -> Any:
        if name in self.depends:
            return _at_time(value, self.grid.names, t)
        return value

    def temperature_at(self, t: float) -> float:
        """T(t), checked positive and finite (:class:`ProtocolError` naming t otherwise)."""
        if "temperature" not in self.depends:
            return float(self.temperature)
        try:
            value = float(self.temperature(t))
        except (TypeError, ValueError) as err:
            raise ProtocolError(
                f"`temperature` callable must return a number at t={t:g}: {err}", t
            ) from err
        if not (np.isfinite(value) and value > 0):
            raise ProtocolError(
                f"`temperature` returned {value} at t={t:g}; it must be positive and finite", t
            )
        return value

    def energy_function_at(self, t: float) -> Any:
        """The energy at time t, in the form :class:`Model` accepts."""
        return self._field(self.energy, "energy", t)

    def energy_cells(self, t: float) -> np.ndarray:
        """E(x, t) at the cell centres, checked finite (:class:`ProtocolError` naming t)."""
        if "energy" not in self.depends:
            return self._static_energy
        func = self.energy_function_at(t)
        try:
            values = np.asarray(func(*self.grid.mesh()), dtype=float)
        except Exception as err:  # keep the cause, name the time
            raise ProtocolError(f"`energy` callable failed at t={t:g}: {err}", t) from err
        values = np.broadcast_to(values, self.grid.shape)
        if not np.all(np.isfinite(values)):
            bad = tuple(int(i) for i in np.argwhere(~np.isfinite(values))[0])
            raise ProtocolError(
                f"`energy` returned {values[bad]} at t={t:g} in cell {bad}; it must be finite",
                t,
            )
        return values

    def at(self, t: float) -> Model:
        """The frozen model at time `t` (a :attr:`frozen_class` instance).

        Raises
        ------
        ProtocolError
            When a part of the protocol is not finite, or T ≤ 0, at `t`.
        """
        t = float(t)
        kwargs = dict(
            mobility=self._field(self.mobility, "mobility", t),
            force=self._field(self.force, "force", t),
            boundary=self.boundary,
        )
        if self.energy_gradient is not None:
            kwargs["energy_gradient"] = (
                _at_time(self.energy_gradient, self.grid.names, t)
                if takes_time(self.energy_gradient)
                else self.energy_gradient
            )
        try:
            return self.frozen_class(
                self.grid,
                self.energy_function_at(t),
                self.temperature_at(t),
                **kwargs,
            )
        except ProtocolError:
            raise
        except (ValueError, TypeError) as err:
            if not self.depends:
                raise
            raise ProtocolError(f"the protocol is invalid at t={t:g}: {err}", t) from err

    # -- equilibrium quantities at one time ---------------------------------
    def equilibrium_free_energy(self, t: float) -> float:
        """F_eq(t) = −T(t) ln Σ V exp(−E(t)/T(t)) of the discrete model frozen at `t`.

        Differences of it are the ΔF of Jarzynski's and Crooks' relations,
        exact for the discrete model.

        Examples
        --------
        >>> import numpy as np, fpsolver as fp
        >>> g = fp.Grid(x=(-8, 8, 800))
        >>> m = fp.FokkerPlanck(g, energy=lambda x, t: 0.5 * (1 + t) * x**2)
        >>> dF = m.equilibrium_free_energy(3.0) - m.equilibrium_free_energy(0.0)
        >>> bool(abs(dF - 0.5 * np.log(4.0)) < 1e-4)
        True
        """
        T = self.temperature_at(t)
        return -T * log_partition(self.energy_cells(t), T, self.grid.volumes)

    def reversed(self, t_end: float) -> TimeDependentModel:
        """The time-reversed protocol on [t0, t_end]: parts at time s are this model's at t_end − s.

        Used for the backward runs of Crooks' relation.
        """
        t_end = _finite(t_end, "t_end")
        shift = t_end + self.t0

        def rev(func: Any, name: str) -> Any:
            if name not in self.depends:
                return func
            if name == "temperature":
                return lambda t: func(shift - t)

            def field(*points: np.ndarray, t: float) -> Any:
                return _at_time(func, self.grid.names, shift - t)(*points)

            return field

        grad = self.energy_gradient
        if grad is not None and takes_time(grad):
            grad = rev(grad, "energy")
        return type(self)(
            self.grid,
            rev(self.energy, "energy"),
            rev(self.temperature, "temperature"),
            mobility=rev(self.mobility, "mobility"),
            force=rev(self.force, "force"),
            boundary=self.boundary,
            energy_gradient=grad,
            t0=self.t0,
            breakpoints=[shift - b for b in self.breakpoints],
        )

    def __repr__(self) -> str:
        dep = ", ".join(sorted(self.depends)) or "nothing"
        return f"TimeDependentFokkerPlanck({self.grid!r}, depends on t: {dep})"


def _finite(value: Any, name: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"`{name}` must be a finite number, got {value!r}") from None
    if not np.isfinite(v):
        raise ValueError(f"`{name}` must be finite, got {v}")
    return v

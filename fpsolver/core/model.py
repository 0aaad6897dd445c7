"""The physical model: energy, temperature, mobility, force and walls.

:class:`Model` holds the physics of

    ∂p/∂t = ∇·( K p ∇(T ln p + E) − K F p ),

validated once, with clear errors, and evaluated on the grid once. It knows
nothing about matrices or time stepping and imports nothing above the core:
:func:`fpsolver.discretize` turns it into an operator, and the public
:class:`fpsolver.FokkerPlanck` adds thin conveniences (``model.solve``,
``model.spectrum``, ...) on top.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .boundary import Boundary, parse_boundary
from .diagnostics import free_energy
from .grid import Grid, _is_dataarray, call_field, cell_array
from .mobility import MobilityField, parse_mobility, tensor_from_output

__all__ = ["Model", "cell_array"]


def _positive_scalar(value: Any, name: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"`{name}` must be a positive number, got {value!r}") from None
    if not np.isfinite(v) or v <= 0:
        raise ValueError(f"`{name}` must be positive and finite, got {v}")
    return v


class Model:
    """A Fokker–Planck model on a structured grid: the physics only.

    Parameters
    ----------
    grid : Grid
        The finite-volume grid.
    energy : callable, array or DataArray
        The potential E. A callable takes the axis arrays (by axis name or
        positionally) and returns values of the same shape; an array holds
        E at the cell centres.
    temperature : float
        T > 0.
    mobility : float, sequence, array or callable, optional
        The mobility K: a scalar (isotropic), one value per axis (diagonal),
        a ``d × d`` matrix (a full tensor; its symmetric part must be
        positive definite, its antisymmetric part adds circulation), an
        array of cell values of shape ``grid.shape``, ``(d, *grid.shape)``
        or ``(d, d, *grid.shape)``, or a callable returning one field, one
        field per axis, or a nested ``d × d`` list of fields. Diagonal
        callables are evaluated at face midpoints and diagonal arrays
        averaged to the faces harmonically; tensors are evaluated at cell
        centres (see :mod:`fpsolver.discrete.selling`).
    force : sequence or callable, optional
        A non-conservative force F (one component per axis), constant or a
        callable returning one field per axis. The drift is ``K (F − ∇E)``.
    boundary : str or mapping, optional
        ``"reflecting"`` (default) or ``"absorbing"`` for every wall, or a
        mapping ``{axis: kind or (lower, upper)}``. Periodic axes are set by
        the grid.
    energy_gradient : callable, optional
        Exact ∇E as a callable returning one array per axis; used by the
        particle backend instead of finite differences.
    mobility_kind : {"scalar", "diagonal", "tensor"}, optional
        How to read `mobility` when its shape fits more than one reading
        (a 2 × 2 matrix on a 2 × 2 grid); such a shape without this
        argument is an error, never a guess.

    Examples
    --------
    >>> import fpsolver as fp
    >>> grid = fp.Grid(x=(-2.5, 2.5, 64), y=(-2.5, 2.5, 64))
    >>> model = fp.FokkerPlanck(grid, energy=lambda x, y: (x**2 - 1)**2 + 0.5 * y**2,
    ...                         temperature=0.5)
    >>> model.energy.shape, model.temperature
    ((64, 64), 0.5)
    """

    def __init__(
        self,
        grid: Grid,
        energy: Callable[..., Any] | np.ndarray | Any = 0.0,
        temperature: float = 1.0,
        *,
        mobility: float | Sequence[float] | np.ndarray | Callable[..., Any] = 1.0,
        force: Sequence[float] | Callable[..., Any] | None = None,
        boundary: str | dict[str, Any] | Boundary = "reflecting",
        energy_gradient: Callable[..., Any] | None = None,
        mobility_kind: str | None = None,
    ) -> None:
        if not isinstance(grid, Grid):
            raise TypeError(f"`grid` must be an fpsolver.Grid, got {type(grid).__name__}")
        self.grid = grid
        self.temperature = _positive_scalar(temperature, "temperature")
        self.boundary = parse_boundary(grid, boundary)
        self.energy_function, self.energy = self._init_energy(energy)
        self._mobility = self._init_mobility(mobility, mobility_kind)
        self.mobility_function = self._mobility.function
        self.force_function, self.force_constant = self._init_force(force)
        if energy_gradient is not None and not callable(energy_gradient):
            raise TypeError("`energy_gradient` must be a callable returning one array per axis")
        self.energy_gradient = energy_gradient
        #: The drift f of a model built by :meth:`from_drift` (else None).
        self.drift = None
        self._frozen = True

    def __setattr__(self, key: str, value: Any) -> None:
        if getattr(self, "_frozen", False):
            raise AttributeError(
                f"{type(self).__name__} is immutable (its discretisation is cached); "
                f"build a new model "
                f"instead of setting `{key}`"
            )
        object.__setattr__(self, key, value)

    # -- validation -----------------------------------------------------
    def _init_energy(self, energy: Any) -> tuple[Callable | None, np.ndarray]:
        grid = self.grid
        if callable(energy) and not _is_dataarray(energy):
            values = self.evaluate(energy, grid.mesh(), "energy")
            return energy, _frozen(cell_array(grid, values, "energy"))
        if np.ndim(energy) == 0 and not _is_dataarray(energy):
            e = float(energy)
            if not np.isfinite(e):
                raise ValueError(f"`energy` must be finite, got {e}")
            return None, _frozen(np.full(grid.shape, e))
        return None, _frozen(cell_array(grid, energy, "energy"))

    def evaluate(self, func: Callable, points: Sequence[np.ndarray], name: str) -> np.ndarray:
        """Evaluate a user scalar field at `points`, broadcast to their shape."""
        shape = np.broadcast_shapes(*(np.shape(p) for p in points))
        try:
            out = call_field(func, self.grid.names, points)
        except Exception as err:  # report which field failed, keep the cause
            raise ValueError(f"`{name}` callable failed on the grid: {err}") from err
        if np.iscomplexobj(out):
            raise TypeError(f"`{name}` callable must return real values; got complex ones")
        out = np.asarray(out, dtype=float)
        try:
            return np.broadcast_to(out, shape)
        except ValueError:
            raise ValueError(
                f"`{name}` callable returned shape {out.shape}; expected {shape}"
            ) from None

    def evaluate_components(
        self, func: Callable, points: Sequence[np.ndarray], name: str, allow_scalar: bool
    ) -> list[np.ndarray]:
        """Evaluate a user vector field (one component per axis) at `points`."""
        shape = np.broadcast_shapes(*(np.shape(p) for p in points))
        try:
            out = call_field(func, self.grid.names, points)
        except Exception as err:
            raise ValueError(f"`{name}` callable failed on the grid: {err}") from err
        if any(np.iscomplexobj(c) for c in (out if isinstance(out, (list, tuple)) else [out])):
            raise TypeError(f"`{name}` callable must return real values; got complex ones")
        ndim = self.grid.ndim
        if isinstance(out, (list, tuple)):
            comps = list(out)
        else:
            arr = np.asarray(out, dtype=float)
            if arr.ndim == len(shape) + 1 and arr.shape[0] == ndim:
                comps = list(arr)
            elif allow_scalar:
                comps = [arr] * ndim
            elif ndim == 1:
                comps = [arr]
            else:
                raise ValueError(
                    f"`{name}` must return {ndim} components (one per axis {self.grid.names}), "
                    f"got an array of shape {arr.shape}"
                )
        if len(comps) != ndim:
            raise ValueError(
                f"`{name}` must return {ndim} components (one per axis {self.grid.names}), "
                f"got {len(comps)}"
            )
        result = []
        for c in comps:
            if np.iscomplexobj(c):
                raise TypeError(f"`{name}` callable must return real values; got complex ones")
            c = np.asarray(c, dtype=float)
            try:
                result.append(np.broadcast_to(c, shape))
            except ValueError:
                raise ValueError(
                    f"`{name}` component has shape {c.shape}; expected {shape}"
                ) from None
        return result

    def _init_mobility(self, mobility: Any, kind: str | None) -> MobilityField:
        return parse_mobility(
            self.grid, mobility, kind, lambda f, pts: call_field(f, self.grid.names, pts)
        )

    def _init_force(self, force: Any) -> tuple[Callable | None, np.ndarray | None]:
        nd = self.grid.ndim
        if force is None:
            return None, None
        if callable(force):
            comps = self.evaluate_components(force, self.grid.mesh(), "force", False)
            if not all(np.all(np.isfinite(c)) for c in comps):
                raise ValueError("`force` must be finite everywhere")
            return force, None
        arr = np.atleast_1d(np.asarray(force, dtype=float))
        if arr.shape != (nd,):
            raise ValueError(
                f"`force` must have one component per axis ({nd}: {self.grid.names}), "
                f"got {arr.tolist()}"
            )
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"`force` must be finite, got {arr.tolist()}")
        return None, _frozen(arr)

    # -- physics evaluated where the scheme needs it ----------------------
    @property
    def has_force(self) -> bool:
        """Whether a non-conservative force acts."""
        return (
            getattr(self, "force_function", None) is not None
            or getattr(self, "force_constant", None) is not None
        )

    @property
    def mobility_kind(self) -> str:
        """``"scalar"``, ``"diagonal"`` or ``"tensor"`` (a tensor has off-diagonal entries)."""
        return self._mobility.kind

    @property
    def is_tensor(self) -> bool:
        """Whether K has off-diagonal entries somewhere (a full tensor mobility)."""
        return self._mobility.tensor is not None

    @property
    def has_antisymmetric(self) -> bool:
        """Whether K has a non-zero antisymmetric part A = (K − Kᵀ)/2."""
        K = self._mobility.tensor
        return K is not None and bool(np.any(K != np.swapaxes(K, 0, 1)))

    def mobility_cells(self) -> np.ndarray:
        """Diagonal of the (symmetric part of the) mobility at cell centres, ``(ndim, *shape)``."""
        return self._mobility.diagonal

    def mobility_tensor(self) -> np.ndarray:
        """The full mobility K at cell centres, shape ``(ndim, ndim, *grid.shape)``."""
        if self._mobility.tensor is not None:
            return self._mobility.tensor
        nd = self.grid.ndim
        full = np.zeros((nd, nd, *self.grid.shape))
        for a in range(nd):
            full[a, a] = self._mobility.diagonal[a]
        return _frozen(full)

    def mobility_tensor_at(self, points: Sequence[np.ndarray]) -> np.ndarray:
        """The full mobility K at `points`, shape ``(ndim, ndim, *points_shape)``.

        A callable is evaluated there; a cell array gives the value of the
        cell containing each point.
        """
        shape = np.broadcast_shapes(*(np.shape(p) for p in points))
        nd = self.grid.ndim
        if self.mobility_function is not None:
            try:
                out = call_field(self.mobility_function, self.grid.names, points)
            except Exception as err:
                raise ValueError(f"`mobility` callable failed: {err}") from err
            kind = "tensor" if self.is_tensor else None
            return tensor_from_output(out, nd, shape, kind)[1]
        K = self.mobility_tensor().reshape(nd, nd, -1)
        if np.all(K == K[:, :, :1]):
            return np.broadcast_to(
                K[:, :, :1].reshape((nd, nd) + (1,) * len(shape)), (nd, nd, *shape)
            )
        idx = self.grid.cell_index([np.broadcast_to(p, shape) for p in points])
        return K[:, :, idx]

    def mobility_at(self, axis: int, points: Sequence[np.ndarray]) -> np.ndarray | None:
        """Mobility component `axis` (diagonal of S) at `points` when K is a callable, else None."""
        if self.mobility_function is None:
            return None
        if self.is_tensor:
            K = self.mobility_tensor_at(points)
            k = K[axis, axis]
        else:
            comps = self.evaluate_components(self.mobility_function, points, "mobility", True)
            k = comps[axis]
        if not np.all(np.isfinite(k)) or not np.all(k > 0):
            raise ValueError("`mobility` must be positive and finite at every face")
        return k

    def diffusion_at(self, points: Sequence[np.ndarray]) -> list[np.ndarray]:
        """All mobility components at `points` (callable or constant K)."""
        if self.is_tensor:
            K = self.mobility_tensor_at(points)
            return [K[a, a] for a in range(self.grid.ndim)]
        if self.mobility_function is not None:
            return self.evaluate_components(self.mobility_function, points, "mobility", True)
        cells = self._mobility.diagonal.reshape(self.grid.ndim, -1)
        shape = np.broadcast_shapes(*(np.shape(p) for p in points))
        if np.all(cells == cells[:, :1]):  # constant mobility
            return [np.full(shape, v) for v in cells[:, 0]]
        # A cell array: the value of the cell that contains each point.
        idx = self.grid.cell_index([np.broadcast_to(p, shape) for p in points])
        return [c[idx] for c in cells]

    def force_at(self, axis: int, points: Sequence[np.ndarray]) -> np.ndarray | float:
        """Force component `axis` at `points` (0 without a force)."""
        if self.force_function is not None:
            return self.evaluate_components(self.force_function, points, "force", False)[axis]
        if self.force_constant is not None:
            return float(self.force_constant[axis])
        return 0.0

    def energy_at(self, points: Sequence[np.ndarray]) -> np.ndarray | None:
        """Energy at `points` when E is a callable, else None."""
        if self.energy_function is None:
            return None
        return self.evaluate(self.energy_function, points, "energy")

    def __repr__(self) -> str:
        return (
            f"FokkerPlanck({self.grid!r}, T={self.temperature:g}, "
            f"boundary={self.boundary.describe(self.grid.names)!r}"
            f"{', with force' if self.has_force else ''})"
        )

    def free_energy(self, p: Any) -> float:
        """Discrete free energy F_h[p] = Σ V p (E + T ln p)."""
        arr = cell_array(self.grid, p, "p")
        if np.any(arr < 0):
            raise ValueError(f"`p` must be non-negative; min is {arr.min():g}")
        return free_energy(self.grid.volumes, self.energy, self.temperature, arr)

    @classmethod
    def from_drift(
        cls,
        grid: Grid,
        drift: Sequence[float] | Callable[..., Any],
        diffusion: float | Sequence[float] | np.ndarray | Callable[..., Any] = 1.0,
        *,
        boundary: str | dict[str, Any] | Boundary = "reflecting",
    ) -> Model:
        """A model for general drift dynamics, J = f p − D ∇p.

        The drift f need not be a gradient. Internally T = 1, E = 0,
        K = D and F = f / D, so the Scharfetter–Gummel links carry the
        local potential difference −h·f/D. The stationary density is then
        computed (:meth:`stationary`), not known.

        Parameters
        ----------
        grid : Grid
        drift : sequence or callable
            f, constant or a callable returning one field per axis.
        diffusion : float, sequence, array or callable
            Diagonal diffusion D > 0, in any form `mobility` accepts.
        boundary : str or mapping
            As for :class:`FokkerPlanck`.

        Examples
        --------
        >>> import fpsolver as fp
        >>> g = fp.Grid(x=(-3, 3, 40), y=(-3, 3, 40))
        >>> m = fp.FokkerPlanck.from_drift(g, lambda x, y: (-x - y, x - y))
        >>> m.has_force
        True
        """
        if not callable(diffusion) and np.ndim(diffusion) > 1:
            raise ValueError(
                "`diffusion` must be a scalar, one value per axis, or a callable; "
                f"got an array of shape {np.shape(diffusion)}"
            )
        probe = cls(grid, 0.0, 1.0, mobility=diffusion, boundary=boundary)
        if callable(drift):
            probe.evaluate_components(drift, grid.mesh(), "drift", False)

            def force(*points: np.ndarray) -> list[np.ndarray]:
                f = probe.evaluate_components(drift, points, "drift", False)
                k = probe.diffusion_at(points)
                return [fa / ka for fa, ka in zip(f, k)]

        else:
            f = np.atleast_1d(np.asarray(drift, dtype=float))
            if f.shape != (grid.ndim,):
                raise ValueError(
                    f"`drift` must have one component per axis ({grid.ndim}), got {f.tolist()}"
                )
            if probe.mobility_function is None:
                force = f / probe.mobility_cells().reshape(grid.ndim, -1)[:, 0]
            else:

                def force(*points: np.ndarray) -> list[np.ndarray]:
                    return [fa / ka for fa, ka in zip(f, probe.diffusion_at(points))]

        model = cls(grid, 0.0, 1.0, mobility=diffusion, force=force, boundary=boundary)
        object.__setattr__(model, "drift", drift)
        return model


def _frozen(a: np.ndarray) -> np.ndarray:
    a = np.array(a, dtype=float)
    a.setflags(write=False)
    return a

"""Structured tensor-product grids for cell-centred finite volumes.

A :class:`Grid` is a tensor product of one-dimensional axes. Each axis is
either bounded or periodic and is given by its cell edges, uniform or not.
Everything the finite-volume scheme needs (cell centres, volumes, face
areas, centre-to-centre distances) is derived here once and stored in
read-only arrays; the grid itself is immutable.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["Grid"]

#: Names an axis may not take: the variables and dimensions of results.
RESERVED_NAMES = frozenset(
    {
        "periodic", "time", "p", "q", "p_ss", "mass", "energy", "free_energy",
        "mean_energy", "entropy", "relative_entropy", "relative_entropy_ss", "absorbed",
        "negative_mass", "step_size", "mean", "covariance", "axis", "axis2", "k", "rate",
        "mode", "count", "exit", "exit_time", "exit_wall", "survival", "density",
        "free_energy_se", "occupied_cells", "mfpt", "committor",
    }
)  # fmt: skip


def _readonly(a: np.ndarray) -> np.ndarray:
    a = np.array(a, dtype=float)
    a.setflags(write=False)
    return a


def _axis_edges(name: str, spec: Any) -> np.ndarray:
    """Turn an axis specification into a strictly increasing edge array."""
    if isinstance(spec, tuple) and len(spec) == 3 and np.ndim(spec[2]) == 0:
        lower, upper, cells = spec
        try:
            lower, upper = float(lower), float(upper)
        except (TypeError, ValueError):
            raise TypeError(
                f"axis `{name}` bounds must be numbers, got ({lower!r}, {upper!r})"
            ) from None
        if not (np.isfinite(lower) and np.isfinite(upper)):
            raise ValueError(f"axis `{name}` bounds must be finite, got ({lower}, {upper})")
        if not isinstance(cells, (numbers.Integral, float, np.floating)) or isinstance(
            cells, (bool, np.bool_)
        ):
            raise TypeError(f"axis `{name}` cell count must be an integer, got {cells!r}")
        if not (np.isfinite(cells) and int(cells) == cells):
            raise ValueError(f"axis `{name}` cell count must be an integer, got {cells!r}")
        cells = int(cells)
        if cells < 2:
            raise ValueError(f"axis `{name}` needs at least 2 cells, got {cells}")
        if not upper > lower:
            raise ValueError(f"axis `{name}` needs lower < upper, got lower={lower}, upper={upper}")
        with np.errstate(over="ignore"):
            width = upper - lower
        if not np.isfinite(width):
            raise ValueError(
                f"axis `{name}` is too wide: upper - lower = {upper} - ({lower}) overflows"
            )
        return np.linspace(lower, upper, cells + 1)
    edges = np.asarray(spec, dtype=float)
    if edges.ndim != 1:
        raise ValueError(
            f"axis `{name}` must be (lower, upper, cells) or a 1-D array of edges, "
            f"got an array of shape {edges.shape}"
        )
    if edges.size < 3:
        raise ValueError(f"axis `{name}` needs at least 2 cells (3 edges), got {edges.size} edges")
    if not np.all(np.isfinite(edges)):
        raise ValueError(f"axis `{name}` edges must be finite, got {edges}")
    with np.errstate(over="ignore"):
        if not np.isfinite(edges[-1] - edges[0]):
            raise ValueError(f"axis `{name}` is too wide: its width overflows")
    if not np.all(np.diff(edges) > 0):
        bad = int(np.argmin(np.diff(edges)))
        raise ValueError(
            f"axis `{name}` edges must be strictly increasing; edge {bad + 1} "
            f"({edges[bad + 1]}) does not exceed edge {bad} ({edges[bad]})"
        )
    return edges


class Grid:
    """An immutable tensor-product grid of finite-volume cells.

    Parameters
    ----------
    periodic : str or iterable of str, optional
        Names of the periodic axes. Other axes are bounded; their walls get
        the boundary condition chosen in the model.
    **axes
        One keyword per axis, in order. Each value is either a tuple
        ``(lower, upper, cells)`` for a uniform axis or a 1-D array of
        strictly increasing cell edges for a non-uniform one.

    Attributes
    ----------
    names : tuple of str
        Axis names, in order (C order of every array on the grid).
    shape : tuple of int
        Number of cells along each axis.
    edges, centers, widths : tuple of ndarray
        Per-axis cell edges, centres and widths.
    volumes : ndarray
        Cell volumes, shape ``shape``.

    Examples
    --------
    >>> import fpsolver as fp
    >>> grid = fp.Grid(x=(-1.0, 1.0, 4), theta=(0.0, 6.283185307179586, 8),
    ...                periodic="theta")
    >>> grid.shape, grid.names, grid.is_periodic("theta")
    ((4, 8), ('x', 'theta'), True)
    >>> float(grid.volumes.sum())  # doctest: +ELLIPSIS
    12.566370614...
    """

    __slots__ = (
        "names",
        "edges",
        "centers",
        "widths",
        "periodic",
        "shape",
        "ndim",
        "size",
        "volumes",
        "_frozen",
    )

    def __init__(self, periodic: str | Iterable[str] = (), **axes: Any) -> None:
        if not axes:
            raise ValueError("Grid needs at least one axis, e.g. Grid(x=(-1, 1, 64))")
        for name in axes:
            if name in RESERVED_NAMES or name.startswith("_") or name.endswith("_face"):
                raise ValueError(
                    f"axis name {name!r} is reserved (results use it for a variable or "
                    "dimension; names may not start with '_' or end in '_face'); choose "
                    "another name"
                )
        if isinstance(periodic, str):
            periodic = (periodic,)
        periodic = tuple(periodic)
        unknown = [p for p in periodic if p not in axes]
        if unknown:
            raise ValueError(f"`periodic` names unknown axes {unknown}; the axes are {list(axes)}")
        edges = tuple(_readonly(_axis_edges(n, s)) for n, s in axes.items())
        object.__setattr__(self, "names", tuple(axes))
        object.__setattr__(self, "edges", edges)
        object.__setattr__(self, "centers", tuple(_readonly(0.5 * (e[1:] + e[:-1])) for e in edges))
        object.__setattr__(self, "widths", tuple(_readonly(np.diff(e)) for e in edges))
        object.__setattr__(self, "periodic", tuple(n in periodic for n in axes))
        object.__setattr__(self, "shape", tuple(e.size - 1 for e in edges))
        object.__setattr__(self, "ndim", len(edges))
        object.__setattr__(self, "size", int(np.prod(self.shape)))
        vol = np.ones(self.shape)
        for a, w in enumerate(self.widths):
            vol = vol * self._along(a, w)
        object.__setattr__(self, "volumes", _readonly(vol))
        object.__setattr__(self, "_frozen", True)

    # -- immutability ---------------------------------------------------
    def __setattr__(self, key: str, value: Any) -> None:
        raise AttributeError("Grid is immutable; build a new one instead")

    def __delattr__(self, key: str) -> None:
        raise AttributeError("Grid is immutable")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Grid):
            return NotImplemented
        return (
            self.names == other.names
            and self.periodic == other.periodic
            and all(np.array_equal(a, b) for a, b in zip(self.edges, other.edges))
        )

    def __hash__(self) -> int:
        return hash((self.names, self.periodic, tuple(e.tobytes() for e in self.edges)))

    def __repr__(self) -> str:
        parts = []
        for n, e, per in zip(self.names, self.edges, self.periodic):
            tag = ", periodic" if per else ""
            parts.append(f"{n}=[{e[0]:g}, {e[-1]:g}] x {e.size - 1}{tag}")
        return "Grid(" + "; ".join(parts) + ")"

    # -- axis helpers ---------------------------------------------------
    def axis(self, name: str) -> int:
        """Index of the axis called `name`."""
        try:
            return self.names.index(name)
        except ValueError:
            raise ValueError(f"unknown axis {name!r}; the axes are {list(self.names)}") from None

    def is_periodic(self, name: str) -> bool:
        """Whether the axis called `name` is periodic."""
        return self.periodic[self.axis(name)]

    def lengths(self) -> tuple[float, ...]:
        """Length of each axis (upper minus lower edge)."""
        return tuple(float(e[-1] - e[0]) for e in self.edges)

    def _along(self, axis: int, values: np.ndarray) -> np.ndarray:
        """Reshape a 1-D array along `axis` so that it broadcasts on the grid."""
        shape = [1] * self.ndim
        shape[axis] = -1
        return np.asarray(values).reshape(shape)

    def mesh(self) -> tuple[np.ndarray, ...]:
        """Cell-centre coordinates broadcast to the full grid shape (ij indexing)."""
        return tuple(np.meshgrid(*self.centers, indexing="ij"))

    def center_distances(self, axis: int) -> np.ndarray:
        """Centre-to-centre distances of the links along `axis`.

        Bounded axes have ``n - 1`` interior links. Periodic axes have ``n``
        links; the last one joins the last cell to the first across the wrap.
        """
        c = self.centers[axis]
        h = np.diff(c)
        if self.periodic[axis]:
            L = self.edges[axis][-1] - self.edges[axis][0]
            h = np.append(h, c[0] + L - c[-1])
        return h

    def wall_distances(self, axis: int) -> tuple[float, float]:
        """Distances from the first and last cell centre to their walls."""
        w = self.widths[axis]
        return 0.5 * float(w[0]), 0.5 * float(w[-1])

    def face_areas(self, axis: int) -> np.ndarray:
        """Area of a face normal to `axis`, broadcastable on the grid.

        The shape has 1 along `axis` (the area does not depend on the
        position along it) and the cell widths of the other axes elsewhere.
        """
        area = np.ones([1] * self.ndim)
        for b, w in enumerate(self.widths):
            if b != axis:
                area = area * self._along(b, w)
        return area

    def face_positions(self, axis: int) -> np.ndarray:
        """Positions of the link faces along `axis` (see :meth:`center_distances`).

        For a periodic axis the wrap face sits at the upper edge.
        """
        e = self.edges[axis]
        return np.array(e[1:]) if self.periodic[axis] else np.array(e[1:-1])

    # -- xarray helpers -------------------------------------------------
    def cell_index(self, points: Sequence[np.ndarray]) -> np.ndarray:
        """Flat (C-order) index of the cell that contains each point.

        `points` holds one array of coordinates per axis. A point on a
        wall belongs to the cell next to it; points outside the grid are
        assigned to the nearest cell on that axis.

        Examples
        --------
        >>> g = Grid(x=(0, 1, 4), y=(0, 1, 2))
        >>> g.cell_index([np.array([0.1, 0.9, 1.0]), np.array([0.2, 0.7, 1.0])]).tolist()
        [0, 7, 7]
        """
        flat: np.ndarray | int = 0
        for a in range(self.ndim):
            n = self.shape[a]
            i = np.searchsorted(self.edges[a], np.asarray(points[a]), side="right") - 1
            np.clip(i, 0, n - 1, out=i)
            flat = flat * n + i
        return np.asarray(flat, dtype=np.intp)

    def coords(self) -> dict[str, Any]:
        """Coordinates of the cell centres, for building xarray objects."""
        import xarray as xr

        return {
            n: xr.Variable(
                n,
                np.array(c),
                attrs={"long_name": f"{n} (cell centre)", "periodic": int(p)},
            )
            for n, c, p in zip(self.names, self.centers, self.periodic)
        }

    def data_array(self, values: np.ndarray, name: str, **attrs: Any):
        """Wrap an array of cell values as an :class:`xarray.DataArray`."""
        import xarray as xr

        values = np.asarray(values)
        if values.shape != self.shape:
            raise ValueError(f"`{name}` must have the grid shape {self.shape}, got {values.shape}")
        return xr.DataArray(values, dims=self.names, coords=self.coords(), name=name, attrs=attrs)

    def to_attrs(self) -> dict[str, Any]:
        """The grid as flat netCDF-safe attributes (see :meth:`from_attrs`)."""
        out: dict[str, Any] = {"grid_axes": " ".join(self.names)}
        out["grid_periodic"] = " ".join(n for n, p in zip(self.names, self.periodic) if p)
        for n, e in zip(self.names, self.edges):
            out[f"grid_edges_{n}"] = np.array(e)
        return out

    @classmethod
    def from_attrs(cls, attrs: Mapping[str, Any]) -> Grid:
        """Rebuild a grid from attributes written by :meth:`to_attrs`."""
        try:
            names = str(attrs["grid_axes"]).split()
            periodic = str(attrs.get("grid_periodic", "")).split()
            axes = {n: np.atleast_1d(np.asarray(attrs[f"grid_edges_{n}"], float)) for n in names}
        except KeyError as err:
            raise ValueError(f"attributes do not describe a grid: missing {err}") from None
        return cls(periodic=periodic, **axes)

    def evaluate(self, func: Any, points: Sequence[np.ndarray]) -> np.ndarray:
        """Call a user field ``func`` at `points` (one array per axis).

        The callable may take the axis names as keywords or the arrays
        positionally; keywords are used when every axis name is a parameter.
        """
        return np.asarray(call_field(func, self.names, points), dtype=float)


def field_caller(func: Any, names: Sequence[str]):
    """Resolve once how a user field is called: by axis keyword or by position.

    Keywords are used when every axis name is a keyword parameter of `func`
    (or it takes ``**kwargs``); otherwise the arrays are passed positionally.
    Returns a function of one sequence of arrays.
    """
    import inspect

    try:
        params = inspect.signature(func).parameters
    except (TypeError, ValueError):
        params = {}
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    by_name = all(n in params and params[n].kind in kinds for n in names) or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()
    )
    if by_name and params:
        names = tuple(names)
        return lambda pts: func(**dict(zip(names, pts)))
    return lambda pts: func(*pts)


def call_field(func: Any, names: Sequence[str], points: Sequence[np.ndarray]) -> Any:
    """Call `func` with one array per axis (see :func:`field_caller`)."""
    return field_caller(func, names)(points)


def _is_dataarray(obj: Any) -> bool:
    return type(obj).__name__ == "DataArray" and hasattr(obj, "dims")


def cell_array(grid: Grid, value: Any, name: str) -> np.ndarray:
    """Validate an array (or DataArray) of real values on the grid's cells.

    A DataArray must have the grid's dims and, where it has coordinates,
    the grid's cell centres; complex values are refused, not truncated.
    """
    if _is_dataarray(value):
        missing = [d for d in grid.names if d not in value.dims]
        if missing or len(value.dims) != grid.ndim:
            raise ValueError(
                f"`{name}` has dims {tuple(value.dims)}; expected the grid axes {grid.names}"
            )
        _check_coords(grid, value, name)
        value = value.transpose(*grid.names).values
    if np.iscomplexobj(value):
        raise TypeError(
            f"`{name}` must be real; got complex values (dtype {np.asarray(value).dtype})"
        )
    arr = np.asarray(value, dtype=float)
    if arr.shape != grid.shape:
        raise ValueError(f"`{name}` must have the grid shape {grid.shape}, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        bad = tuple(int(i) for i in np.argwhere(~np.isfinite(arr))[0])
        raise ValueError(f"`{name}` must be finite everywhere; got {arr[bad]} at cell {bad}")
    return arr


def _check_coords(grid: Grid, da: Any, name: str) -> None:
    """Refuse a DataArray whose coordinates are not this grid's cell centres."""
    for a, axis in enumerate(grid.names):
        if axis not in da.coords:
            continue
        c = np.asarray(da.coords[axis].values, dtype=float)
        ref = grid.centers[a]
        tol = 1e-9 * float(grid.edges[a][-1] - grid.edges[a][0])
        if c.shape != ref.shape or np.max(np.abs(c - ref)) > tol:
            raise ValueError(
                f"`{name}` is on another grid: its {axis!r} coordinates "
                f"[{c.min():g} .. {c.max():g}, {c.size} cells] are not this grid's cell "
                f"centres [{ref.min():g} .. {ref.max():g}, {ref.size} cells]"
            )

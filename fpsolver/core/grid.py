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


def _positive(name: str, value: Any) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"`{name}` must be a positive number, got {value!r}") from None
    if not (np.isfinite(v) and v > 0):
        raise ValueError(f"`{name}` must be a positive finite number, got {value!r}")
    return v


def _angle_axis(
    name: str, spec: Any, period: float, periodic_only: bool = False
) -> tuple[np.ndarray, bool]:
    """Edges of an angle axis: a cell count spans the full period (periodic)."""
    if np.ndim(spec) == 0 and not isinstance(spec, tuple):
        edges = _axis_edges(name, (0.0, period, spec))
    else:
        edges = _axis_edges(name, spec)
    span = float(edges[-1] - edges[0])
    full = abs(span - period) <= 1e-12 * period
    if span > period * (1 + 1e-12):
        raise ValueError(f"angle axis `{name}` spans {span:g} > 2*pi")
    if periodic_only and not full:
        raise ValueError(f"angle axis `{name}` must span the full circle 2*pi, got {span:g}")
    return edges, full


def _per_axis(names: Sequence[str], spec: Any, what: str):
    """One function of the axis arrays returning a tuple of per-axis values."""
    if callable(spec):
        whole = field_caller(spec, names)
        return lambda pts: tuple(whole(pts))
    if isinstance(spec, Mapping):
        missing = [n for n in names if n not in spec]
        if missing or len(spec) != len(names):
            raise ValueError(
                f"`{what}` must give one callable per axis {list(names)}, got keys {list(spec)}"
            )
        spec = [spec[n] for n in names]
    if isinstance(spec, Sequence) and len(spec) == len(names) and all(map(callable, spec)):
        callers = [field_caller(f, names) for f in spec]
        return lambda pts: tuple(c(pts) for c in callers)
    raise TypeError(
        f"`{what}` must be a callable returning {len(names)} arrays, or one callable per "
        f"axis (mapping or sequence), got {spec!r}"
    )


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
        "geometry",
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
        object.__setattr__(self, "geometry", None)
        object.__setattr__(self, "_frozen", True)

    # -- curved coordinates ---------------------------------------------
    def _curved(self, geometry: Any) -> Grid:
        """This grid with a curved :class:`~fpsolver.core.geometry.Geometry`."""
        if geometry.volumes.shape != self.shape:
            raise ValueError(
                f"geometry volumes have shape {geometry.volumes.shape}, the grid {self.shape}"
            )
        object.__setattr__(self, "volumes", geometry.volumes)
        object.__setattr__(self, "geometry", geometry)
        return self

    @property
    def curved(self) -> bool:
        """Whether the coordinates are curved (the grid carries a metric)."""
        return self.geometry is not None

    @property
    def kind(self) -> str:
        """``"cartesian"`` or the kind of curved geometry (``"polar"``, ``"sphere"``, ...)."""
        return "cartesian" if self.geometry is None else self.geometry.kind

    @classmethod
    def polar(cls, r: Any = (0.0, 1.0, 64), phi: Any = 64) -> Grid:
        """Polar coordinates (r, φ) with the measure r dr dφ.

        Parameters
        ----------
        r : tuple or array
            ``(lower, upper, cells)`` or edges, with ``lower >= 0``. With
            ``lower = 0`` the first ring of cells are wedges that touch the
            centre; the centre is a point of zero area through which no
            flux passes (no singular cell).
        phi : int, tuple or array
            Number of cells on the full circle [0, 2π) (periodic), or
            ``(lower, upper, cells)`` / edges of a sector (periodic when it
            spans 2π, otherwise bounded by walls).

        Examples
        --------
        >>> import numpy as np, fpsolver as fp
        >>> g = fp.Grid.polar(r=(0, 3, 12), phi=16)
        >>> g.names, g.kind, bool(abs(g.volumes.sum() - 9 * np.pi) < 1e-12)
        (('r', 'phi'), 'polar', True)
        """
        from . import geometry as geo

        r_edges = _axis_edges("r", r)
        if r_edges[0] < 0:
            raise ValueError(f"polar axis `r` must start at r >= 0, got lower edge {r_edges[0]}")
        phi_edges, per = _angle_axis("phi", phi, 2.0 * np.pi)
        grid = cls(periodic=("phi",) if per else (), r=r_edges, phi=phi_edges)
        return grid._curved(geo.polar(grid.edges))

    @classmethod
    def sphere(cls, n_theta: Any = 64, n_phi: Any = 128, radius: float = 1.0) -> Grid:
        """The sphere surface (θ, φ) with the measure a² sin θ dθ dφ.

        Parameters
        ----------
        n_theta : int, tuple or array
            Cells in polar angle θ on [0, π] (or ``(lower, upper, cells)`` /
            edges inside [0, π] for a band). The poles are points of zero
            area: no flux crosses them.
        n_phi : int, tuple or array
            Cells in azimuth on [0, 2π) (periodic), or a sector.
        radius : float
            Sphere radius a (default 1).

        Examples
        --------
        >>> import numpy as np, fpsolver as fp
        >>> g = fp.Grid.sphere(n_theta=8, n_phi=16)
        >>> g.names, bool(abs(g.volumes.sum() - 4 * np.pi) < 1e-13)
        (('theta', 'phi'), True)
        """
        from . import geometry as geo

        th = _axis_edges("theta", (0.0, np.pi, n_theta) if np.ndim(n_theta) == 0 else n_theta)
        if th[0] < 0 or th[-1] > np.pi * (1 + 1e-15):
            raise ValueError(f"sphere axis `theta` must lie in [0, pi], got [{th[0]}, {th[-1]}]")
        phi_edges, per = _angle_axis("phi", n_phi, 2.0 * np.pi)
        a = _positive("radius", radius)
        grid = cls(periodic=("phi",) if per else (), theta=th, phi=phi_edges)
        return grid._curved(geo.sphere(grid.edges, a))

    @classmethod
    def torus(
        cls, theta: Any = 64, phi: Any = 64, *, major: float = 2.0, minor: float = 1.0
    ) -> Grid:
        """The embedded torus of radii R = `major` > r = `minor`; both angles periodic.

        θ turns around the tube (scale factor r), φ around the axis (scale
        factor R + r cos θ); the measure is r (R + r cos θ) dθ dφ.

        Examples
        --------
        >>> import numpy as np, fpsolver as fp
        >>> g = fp.Grid.torus(theta=8, phi=12, major=2.0, minor=0.5)
        >>> g.periodic, bool(abs(g.volumes.sum() - 4 * np.pi**2) < 1e-12)
        ((True, True), True)
        """
        from . import geometry as geo

        R, r = _positive("major", major), _positive("minor", minor)
        if not R > r:
            raise ValueError(f"torus needs major > minor radius, got major={R}, minor={r}")
        th, _ = _angle_axis("theta", theta, 2.0 * np.pi, periodic_only=True)
        ph, _ = _angle_axis("phi", phi, 2.0 * np.pi, periodic_only=True)
        grid = cls(periodic=("theta", "phi"), theta=th, phi=ph)
        return grid._curved(geo.torus(grid.edges, R, r))

    @classmethod
    def curvilinear(
        cls,
        scale_factors: Any = None,
        *,
        metric: Any = None,
        periodic: str | Iterable[str] = (),
        **axes: Any,
    ) -> Grid:
        """Orthogonal curved coordinates from Lamé scale factors or a diagonal metric.

        Parameters
        ----------
        scale_factors : callable, mapping or sequence of callables
            h_a(x) > 0: one callable returning all of them, or one per axis
            (a mapping by axis name or a sequence in axis order). Callables
            take the axis arrays by keyword or position, like energies.
        metric : same forms, optional
            The diagonal metric g_aa = h_a² instead (give one of the two).
        periodic, **axes
            As for :class:`Grid`.

        Cell measures and face areas are integrated by Gauss–Legendre
        quadrature. A scale factor that is not finite and > 0 inside a cell
        raises ``ValueError`` naming the cells.

        Examples
        --------
        >>> import numpy as np, fpsolver as fp
        >>> g = fp.Grid.curvilinear({"r": lambda r, z: 1 + 0 * r, "z": lambda r, z: 1 + 0 * r},
        ...                         r=(1, 2, 4), z=(0, 1, 2))
        >>> g.kind, bool(np.allclose(g.volumes, fp.Grid(r=(1, 2, 4), z=(0, 1, 2)).volumes))
        ('curvilinear', True)
        """
        from . import geometry as geo

        if (scale_factors is None) == (metric is None):
            raise ValueError("give exactly one of `scale_factors` and `metric`")
        grid = cls(periodic=periodic, **axes)
        what = "scale_factors" if metric is None else "metric"
        funcs = _per_axis(grid.names, scale_factors if metric is None else metric, what)

        def scale(pts: Sequence[np.ndarray]) -> tuple[np.ndarray, ...]:
            vals = funcs(pts)
            if metric is None:
                return vals
            with np.errstate(invalid="ignore"):
                return tuple(np.where(np.asarray(v) >= 0, np.sqrt(np.abs(v)), np.nan) for v in vals)

        g = geo.curvilinear(grid.names, grid.edges, grid.periodic, scale, what)
        return grid._curved(g)

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
            and self._geometry_key() == other._geometry_key()
        )

    def __hash__(self) -> int:
        return hash(
            (
                self.names,
                self.periodic,
                tuple(e.tobytes() for e in self.edges),
                self._geometry_key(),
            )
        )

    def _geometry_key(self) -> tuple:
        return ("cartesian",) if self.geometry is None else self.geometry.key()

    def __repr__(self) -> str:
        parts = [] if self.geometry is None else [f"{self.geometry.kind}"]
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

        On a flat grid the shape has 1 along `axis` (the area does not
        depend on the position along it) and the cell widths of the other
        axes elsewhere. On a curved grid it is the physical area of every
        face normal to `axis` (``n + 1`` along it, walls included).
        """
        if self.geometry is not None:
            return self.geometry.areas[axis]
        area = np.ones([1] * self.ndim)
        for b, w in enumerate(self.widths):
            if b != axis:
                area = area * self._along(b, w)
        return area

    def flux_areas(self, axis: int) -> np.ndarray:
        """Face areas in the layout of face-flux arrays, broadcastable on them.

        n + 1 faces along a bounded axis (walls included), n along a
        periodic one (face k between cells k and k + 1, the last across the
        wrap), as :func:`fpsolver.discrete.sg.face_fluxes` lays them out.

        Examples
        --------
        >>> import fpsolver as fp
        >>> g = fp.Grid.polar(r=(0, 1, 4), phi=8)
        >>> g.flux_areas(0).shape, g.flux_areas(1).shape
        ((5, 8), (4, 8))
        """
        area = self.face_areas(axis)
        if self.geometry is None or not self.periodic[axis]:
            return area
        return np.take(area, np.arange(1, area.shape[axis]), axis=axis)

    def face_coefficients(self, axis: int) -> np.ndarray:
        """Flux coefficient of every face normal to `axis`, broadcastable on the grid.

        The coefficient c multiplies the coordinate difference quotient of a
        flux: the face area on a flat grid, ∫ √g g^aa over the face (as
        A / h_a at the face centre, see :mod:`fpsolver.core.geometry`) on a
        curved one. The shape has ``n + 1`` along `axis` (walls included)
        on curved grids, 1 on flat ones.

        Examples
        --------
        >>> g = Grid.polar(r=(0, 1, 2), phi=4)
        >>> g.face_coefficients(0)[:, 0].round(4).tolist()   # r_face * dphi
        [0.0, 0.7854, 1.5708]
        """
        if self.geometry is not None:
            return self.geometry.coefficients[axis]
        return self.face_areas(axis)

    def link_coefficients(self, axis: int) -> np.ndarray:
        """Face coefficients of the links along `axis` (see :meth:`center_distances`)."""
        if self.geometry is not None:
            return self.geometry.link_coefficients(axis, self.periodic[axis])
        return self.face_areas(axis)

    def wall_coefficients(self, axis: int, side: int) -> np.ndarray:
        """Face coefficients of the wall of `axis` on `side` (0 lower, 1 upper)."""
        c = self.face_coefficients(axis)
        if self.geometry is None:
            return c
        return np.take(c, [0 if side == 0 else c.shape[axis] - 1], axis=axis)

    def wall_areas(self, axis: int, side: int) -> np.ndarray:
        """Physical areas of the wall faces of `axis` on `side` (0 lower, 1 upper)."""
        a = self.face_areas(axis)
        if self.geometry is None:
            return a
        return np.take(a, [0 if side == 0 else a.shape[axis] - 1], axis=axis)

    def link_areas(self, axis: int) -> np.ndarray:
        """Physical areas of the link faces along `axis`."""
        a = self.face_areas(axis)
        if self.geometry is None:
            return a
        n = a.shape[axis]
        idx = np.arange(1, n) if self.periodic[axis] else np.arange(1, n - 1)
        return np.take(a, idx, axis=axis)

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
        if self.geometry is not None:
            out.update(self.geometry.to_attrs())
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
        grid = cls(periodic=periodic, **axes)
        kind = str(attrs.get("grid_geometry", "cartesian"))
        return grid if kind == "cartesian" else _curved_from_attrs(grid, kind, attrs)

    def evaluate(self, func: Any, points: Sequence[np.ndarray]) -> np.ndarray:
        """Call a user field ``func`` at `points` (one array per axis).

        The callable may take the axis names as keywords or the arrays
        positionally; keywords are used when every axis name is a parameter.
        """
        return np.asarray(call_field(func, self.names, points), dtype=float)


def require_flat(grid: Grid, what: str) -> None:
    """Refuse a curved grid in a tool that assumes Cartesian coordinates.

    Examples
    --------
    >>> require_flat(Grid.sphere(n_theta=4, n_phi=4), "this tool")
    Traceback (most recent call last):
    ...
    NotImplementedError: this tool does not support curved grids (this grid is 'sphere'); ...
    """
    if grid.curved:
        raise NotImplementedError(
            f"{what} does not support curved grids (this grid is {grid.kind!r}); it assumes "
            "Cartesian coordinates: use a Grid(...) without a metric"
        )


def _curved_from_attrs(grid: Grid, kind: str, attrs: Mapping[str, Any]) -> Grid:
    """Attach the geometry described by :meth:`Grid.to_attrs` attributes."""
    from . import geometry as geo

    try:
        if kind == "polar":
            g = geo.polar(grid.edges)
        elif kind == "sphere":
            g = geo.sphere(grid.edges, float(attrs["grid_geometry_radius"]))
        elif kind == "torus":
            g = geo.torus(
                grid.edges,
                float(attrs["grid_geometry_major"]),
                float(attrs["grid_geometry_minor"]),
            )
        elif kind == "curvilinear":
            g = geo.tabulated(attrs, grid.shape)
        else:
            raise ValueError(
                f"unknown grid geometry {kind!r}; known: cartesian, polar, sphere, torus, "
                "curvilinear"
            )
    except KeyError as err:
        raise ValueError(f"attributes do not describe a {kind} grid: missing {err}") from None
    return grid._curved(g)


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

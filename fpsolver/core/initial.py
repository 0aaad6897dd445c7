"""Initial densities: validation and common shapes."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .analytic import gaussian_pdf
from .grid import Grid, call_field, cell_array

__all__ = ["gaussian", "point_mass", "as_density", "density_array"]


def gaussian(grid: Grid, mean: Sequence[float] | float, cov: Any):
    """A normal density on the grid's cells, normalised so that Σ V p = 1.

    Parameters
    ----------
    grid : Grid
    mean : sequence of float
        One value per axis.
    cov : float, sequence or matrix
        Isotropic variance, per-axis variances, or a full covariance.

    Returns
    -------
    xarray.DataArray

    Examples
    --------
    >>> import fpsolver as fp
    >>> g = fp.Grid(x=(-3, 3, 60))
    >>> p = fp.gaussian(g, mean=0.5, cov=0.1)
    >>> round(float((p * g.volumes).sum()), 12)
    1.0
    """
    p = gaussian_pdf(grid.mesh(), np.atleast_1d(mean), cov)
    total = float(np.sum(grid.volumes * p))
    if not total > 0:
        raise ValueError(f"`mean`={mean} and `cov`={cov} put no mass on the grid")
    return _density(p / total, grid)


def _density(values: np.ndarray, grid: Grid):
    return grid.data_array(values, "p", long_name="probability density", units="1/volume")


def point_mass(grid: Grid, at: Sequence[float] | float):
    """All probability in the cell that contains the point `at` (p = 1/V there).

    The grid's closest approximation of a delta function; a point on a
    face between two cells goes to the upper one.

    Parameters
    ----------
    grid : Grid
    at : sequence of float
        The point, one coordinate per axis, inside the grid.

    Returns
    -------
    xarray.DataArray
        The density, Σ V p = 1 (the same type as :func:`gaussian`).

    Examples
    --------
    >>> import fpsolver as fp
    >>> g = fp.Grid(x=(0, 1, 4))
    >>> fp.point_mass(g, 0.3).values.tolist()
    [0.0, 4.0, 0.0, 0.0]
    """
    point = np.atleast_1d(np.asarray(at, dtype=float))
    if point.shape != (grid.ndim,) or not np.all(np.isfinite(point)):
        raise ValueError(
            f"`at` must be a finite point with one coordinate per axis {grid.names}, got {at!r}"
        )
    for a, name in enumerate(grid.names):
        lo, hi = grid.edges[a][0], grid.edges[a][-1]
        if not lo <= point[a] <= hi:
            raise ValueError(
                f"`at` lies outside the grid on axis {name!r}: {point[a]} not in [{lo}, {hi}]"
            )
    p = np.zeros(grid.size)
    cell = int(grid.cell_index([np.array([x]) for x in point])[0])
    p[cell] = 1.0 / grid.volumes.ravel()[cell]
    return _density(p.reshape(grid.shape), grid)


def as_density(grid: Grid, p0: Any, name: str = "p0"):
    """Validate an initial density and return it normalised, as a DataArray.

    Accepts an array of cell values, a DataArray with the grid's dims, or a
    callable of the axis arrays. Negative, non-finite or zero-mass input is
    an error; input whose mass differs from 1 is normalised with a warning.
    Returns the same type as :func:`gaussian` and :func:`point_mass`.

    Examples
    --------
    >>> import numpy as np, fpsolver as fp
    >>> g = fp.Grid(x=(0, 1, 4))
    >>> fp.as_density(g, np.full(4, 1.0)).values.tolist()
    [1.0, 1.0, 1.0, 1.0]
    """
    return _density(density_array(grid, p0, name), grid)


def density_array(grid: Grid, p0: Any, name: str = "p0") -> np.ndarray:
    """:func:`as_density` as a plain array of the grid shape (for the numerics)."""
    if callable(p0) and type(p0).__name__ != "DataArray":
        f: Callable = p0
        p0 = np.broadcast_to(np.asarray(call_field(f, grid.names, grid.mesh()), float), grid.shape)
    p = cell_array(grid, p0, name).copy()
    if np.any(p < 0):
        raise ValueError(f"`{name}` must be non-negative; min is {p.min():g}")
    with np.errstate(over="ignore"):
        total = float(np.sum(grid.volumes * p))
    if not np.isfinite(total):
        raise ValueError(
            f"`{name}` has a mass Σ V p that overflows (max value {p.max():g}); "
            "give a density of finite mass"
        )
    if not total > 0:
        raise ValueError(f"`{name}` has zero mass; a density needs Σ V p > 0")
    if abs(total - 1.0) > 1e-10:
        warnings.warn(f"`{name}` had mass {total:.6g}; normalised to 1", UserWarning, stacklevel=3)
        p /= total
    return p

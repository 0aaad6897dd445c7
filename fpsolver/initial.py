"""Initial densities: validation and common shapes."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .analytic import gaussian_pdf
from .grid import Grid, call_field

__all__ = ["gaussian", "as_density"]


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
    return grid.data_array(p / total, "p", long_name="probability density", units="1/volume")


def as_density(grid: Grid, p0: Any, name: str = "p0") -> np.ndarray:
    """Validate an initial density and return it as a normalised array.

    Accepts an array of cell values, a DataArray with the grid's dims, or a
    callable of the axis arrays. Negative, non-finite or zero-mass input is
    an error; input whose mass differs from 1 is normalised with a warning.
    """
    from .model import cell_array

    if callable(p0) and type(p0).__name__ != "DataArray":
        f: Callable = p0
        p0 = np.broadcast_to(np.asarray(call_field(f, grid.names, grid.mesh()), float), grid.shape)
    p = cell_array(grid, p0, name).copy()
    if np.any(p < 0):
        raise ValueError(f"`{name}` must be non-negative; min is {p.min():g}")
    total = float(np.sum(grid.volumes * p))
    if not total > 0:
        raise ValueError(f"`{name}` has zero mass; a density needs Σ V p > 0")
    if abs(total - 1.0) > 1e-10:
        warnings.warn(f"`{name}` had mass {total:.6g}; normalised to 1", UserWarning, stacklevel=3)
        p /= total
    return p

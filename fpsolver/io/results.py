"""Saving and reopening results; checkpoints for long runs.

Results are plain :class:`xarray.Dataset` objects, so ``ds.to_netcdf`` works
with any of xarray's engines. These helpers add: an engine that is always
available (scipy's netCDF3 writer is used when neither netCDF4 nor
h5netcdf is installed), attributes made netCDF-safe (booleans become
integers, ``None`` is dropped), and reading back the grid.

Every write goes to a unique temporary file beside the target and is
renamed over it (:func:`fpsolver.io.files.atomic_write`), so a failed write
never leaves a corrupt file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..core.grid import Grid
from .files import atomic_write

__all__ = ["save_result", "open_result", "result_grid"]

_STATE = "checkpoint_"


def _engine(engine: str | None) -> str:
    if engine is not None:
        return engine
    for name, modules in (("netcdf4", ("netCDF4",)), ("h5netcdf", ("h5netcdf", "h5py"))):
        try:
            for module in modules:
                __import__(module)
        except ImportError:
            continue
        return name
    return "scipy"


def _safe_attrs(attrs: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in attrs.items():
        if v is None:
            continue
        if isinstance(v, (bool, np.bool_)):
            v = int(v)
        elif isinstance(v, (np.integer, int)) and not isinstance(v, bool):
            v = int(v) if abs(int(v)) < 2**31 else float(v)
        out[k] = v
    return out


def _netcdf_safe(ds):
    ds = ds.copy()
    ds.attrs = _safe_attrs(dict(ds.attrs))
    for name in ds.variables:
        ds[name].attrs = _safe_attrs(dict(ds[name].attrs))
    return ds


def save_result(ds, path: str | Path, engine: str | None = None) -> Path:
    """Write a result to netCDF and return the path.

    Parameters
    ----------
    ds : xarray.Dataset
        A result of :func:`fpsolver.solve` (or any Dataset).
    path : str or Path
    engine : {"netcdf4", "h5netcdf", "scipy"}, optional
        Default: the first installed of these (scipy is always present).

    Examples
    --------
    >>> import tempfile, os, fpsolver as fp
    >>> m = fp.FokkerPlanck(fp.Grid(x=(-3, 3, 20)), energy=lambda x: x**2 / 2)
    >>> ds = m.solve(fp.gaussian(m.grid, 1.0, 0.3), 0.2, dt=0.1)
    >>> path = save_result(ds, os.path.join(tempfile.mkdtemp(), "run.nc"))
    >>> back = open_result(path)
    >>> bool((back["p"] == ds["p"]).all()), result_grid(back) == m.grid
    (True, True)
    """
    safe = _netcdf_safe(ds)
    return atomic_write(Path(path), lambda tmp: safe.to_netcdf(tmp, engine=_engine(engine)))


def open_result(path: str | Path, engine: str | None = None):
    """Load a saved result (or checkpoint) into memory and close the file.

    Checkpoint-only variables are dropped, so a checkpoint opens as the
    result it will become.
    """
    import xarray as xr

    ds = xr.load_dataset(path, engine=engine)
    drop = [v for v in ds.variables if str(v).startswith(_STATE)]
    return ds.drop_vars(drop)


def result_grid(ds) -> Grid:
    """The :class:`~fpsolver.core.grid.Grid` a result was computed on (from its attrs)."""
    return Grid.from_attrs(ds.attrs)
